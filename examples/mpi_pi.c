/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Quick start's job: estimate pi by midpoint integration of 4/(1+x^2)
 * over [0,1], split across the ranks, combined with MPI_Reduce.
 * Usage: mpi_pi [INTERVALS]  (default 10000000)
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000L;
	int rank, size, len;
	double h, local = 0.0, pi = 0.0, t0;
	char host[MPI_MAX_PROCESSOR_NAME];

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Get_processor_name(host, &len);
	t0 = MPI_Wtime();
	h = 1.0 / (double)n;
	for (long i = rank; i < n; i += size) {
		double x = h * ((double)i + 0.5);

		local += 4.0 / (1.0 + x * x);
	}
	local *= h;
	MPI_Reduce(&local, &pi, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
	printf("rank %d of %d on %s (pid %d): partial %.12f\n", rank, size, host, (int)getpid(), local);
	fflush(stdout);
	MPI_Barrier(MPI_COMM_WORLD);
	if (rank == 0)
		printf("pi ~= %.12f, error %.3e, %ld intervals, %d ranks, %.3f s\n", pi,
		       fabs(pi - M_PI), n, size, MPI_Wtime() - t0);
	/* Only rank 0 holds the reduced value; it alone judges the answer. */
	int ok = rank != 0 || fabs(pi - M_PI) < 1e-6;

	/* Into MPI_Finalize together: Debian 12's MPICH 4.0 can hang there over
	 * TCP when one rank arrives much later (see tests/mpi/mpi_check.c). */
	MPI_Barrier(MPI_COMM_WORLD);
	MPI_Finalize();
	return ok ? 0 : 1;
}
