/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bulk-synchronous MPI microbenchmark for bench/gang-overhead: ITERS rounds
 * of a fixed amount of computation followed by an MPI_Allreduce.  The work
 * is a fixed number of floating-point steps, not a wall-clock interval, so
 * time spent frozen or descheduled is never counted as work done.
 *
 *   bsp --calibrate US        print the step count that takes about US
 *                             microseconds here (run alone, outside MPI jobs)
 *   bsp ITERS STEPS           the benchmark; rank 0 prints one line:
 *   bsp ranks R iters I steps S start_ns A end_ns B elapsed_s E per_iter_us P check C
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A dependent chain the compiler cannot shorten. */
static double work(long steps, double x)
{
	for (long i = 0; i < steps; i++)
		x = x * 1.0000001 + 1e-9;
	return x;
}

static int calibrate(double us)
{
	long steps = 1000;
	double t, best = 1e9;

	for (;;) {
		t = now_s(CLOCK_MONOTONIC);
		volatile double sink = work(steps, 1.0);
		(void)sink;
		t = now_s(CLOCK_MONOTONIC) - t;
		if (t > 0.05)
			break;
		steps *= 2;
	}
	/* best of 5 at this size: the least disturbed */
	for (int i = 0; i < 5; i++) {
		t = now_s(CLOCK_MONOTONIC);
		volatile double sink = work(steps, 1.0);
		(void)sink;
		t = now_s(CLOCK_MONOTONIC) - t;
		if (t < best)
			best = t;
	}
	printf("%ld\n", (long)((double)steps * us * 1e-6 / best));
	return 0;
}

int main(int argc, char **argv)
{
	long iters, steps;
	int rank, size;
	double x = 1.0, sum = 0.0, t0, t1, r0, r1;

	if (argc == 3 && !strcmp(argv[1], "--calibrate"))
		return calibrate(atof(argv[2]));
	if (argc != 3 || (iters = atol(argv[1])) <= 0 || (steps = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: bsp ITERS STEPS | bsp --calibrate US\n");
		return 2;
	}
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Barrier(MPI_COMM_WORLD);
	r0 = now_s(CLOCK_REALTIME);
	t0 = MPI_Wtime();
	for (long i = 0; i < iters; i++) {
		double in, out;

		x = work(steps, x);
		in = x;
		MPI_Allreduce(&in, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
		sum += out;
	}
	t1 = MPI_Wtime();
	r1 = now_s(CLOCK_REALTIME);
	if (rank == 0)
		printf("bsp ranks %d iters %ld steps %ld start_ns %.0f end_ns %.0f elapsed_s %.6f per_iter_us %.2f check %.6e\n",
		       size, iters, steps, r0 * 1e9, r1 * 1e9, t1 - t0, (t1 - t0) * 1e6 / (double)iters,
		       sum);
	MPI_Finalize();
	return 0;
}
