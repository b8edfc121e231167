/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench/app-ckpt's MPI program: MIB MiB of random bytes per rank,
 * protected with libhecckpt.  First the raw path, ROUNDS times: the same
 * bytes written collectively with plain MPI-IO (each rank's block at its
 * offset, MPI_File_write_at_all) into HEC_CKPT_DIR, once closed as it is
 * (in the page cache, like the checkpoint file the program hands to hec)
 * and once after MPI_File_sync (on the disk), the file removed after
 * each.  Then it polls hecckpt_need every 2 ms and takes every checkpoint
 * hec asks for, until killed.  After a restart it says when the restore
 * ended and polls on.
 *
 * Usage: app-ckpt-prog MIB ROUNDS
 * Output (rank 0): "dir D", "mpiio S SYNCED_S" per raw round (seconds,
 * slowest rank: without and with MPI_File_sync), "ckpt E S" per
 * checkpoint (hecckpt_checkpoint's time: the write and the hand-off),
 * "restored E T" (T: CLOCK_REALTIME ns at the end of hecckpt_restore).
 * Exit 1 on any error.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hec/hecckpt.h>

static int rank;

static void die(const char *what)
{
	fprintf(stderr, "app-ckpt-prog: rank %d: %s: %s\n", rank, what, hecckpt_last_error());
	MPI_Abort(MPI_COMM_WORLD, 1);
}

static double raw_round(const char *dir, const uint64_t *buf, size_t bytes, int sync)
{
	char path[4096];
	MPI_File f;
	double t0, t;

	snprintf(path, sizeof(path), "%s/raw-mpiio.bin", dir);
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	if (MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &f))
		die("MPI_File_open");
	/* blocks of at most 1 GiB: MPI counts are ints */
	for (size_t off = 0; off < bytes; off += 1u << 30) {
		size_t n = bytes - off < (1u << 30) ? bytes - off : 1u << 30;

		if (MPI_File_write_at_all(f, (MPI_Offset)(rank * bytes + off), (const char *)buf + off,
					  (int)n, MPI_BYTE, MPI_STATUS_IGNORE))
			die("MPI_File_write_at_all");
	}
	if (sync)
		MPI_File_sync(f);
	MPI_File_close(&f);
	t = MPI_Wtime() - t0;
	MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	if (!rank)
		unlink(path);
	MPI_Barrier(MPI_COMM_WORLD); /* gone before the next round */
	return t;
}

int main(int argc, char **argv)
{
	size_t bytes = (size_t)(argc > 1 ? atol(argv[1]) : 64) << 20;
	int rounds = argc > 2 ? atoi(argv[2]) : 3, restarted, need;
	const char *dir = getenv("HEC_CKPT_DIR");
	uint64_t *buf, x;
	long long epoch;
	struct timespec ts;
	double t0;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (!dir || !bytes) {
		fprintf(stderr, "app-ckpt-prog: run it under hec (no HEC_CKPT_DIR), MIB >= 1\n");
		MPI_Abort(MPI_COMM_WORLD, 2);
	}
	buf = malloc(bytes);
	if (!buf)
		die("malloc");
	x = 0x9e3779b97f4a7c15ull * (uint64_t)(rank + 1);
	for (size_t i = 0; i < bytes / 8; i++) { /* xorshift: nothing to compress */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = x;
	}
	if (hecckpt_init(MPI_COMM_WORLD) || hecckpt_protect("data", buf, bytes, MPI_BYTE))
		die("init");
	if (hecckpt_restore(&restarted, &epoch))
		die("restore");
	clock_gettime(CLOCK_REALTIME, &ts);
	if (!rank && restarted)
		printf("restored %lld %lld\n", epoch, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if (!rank)
		printf("dir %s\n", dir);
	fflush(stdout);
	for (int r = 0; !restarted && r < rounds; r++) {
		double t = raw_round(dir, buf, bytes, 0), synced = raw_round(dir, buf, bytes, 1);

		if (!rank) {
			printf("mpiio %.6f %.6f\n", t, synced);
			fflush(stdout);
		}
	}
	for (;;) {
		usleep(2000);
		if (hecckpt_need(&need))
			die("need");
		if (!need)
			continue;
		MPI_Barrier(MPI_COMM_WORLD);
		t0 = MPI_Wtime();
		if (hecckpt_checkpoint(&epoch))
			die("checkpoint");
		if (!rank) {
			printf("ckpt %lld %.6f\n", epoch, MPI_Wtime() - t0);
			fflush(stdout);
		}
	}
}
