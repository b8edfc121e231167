/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A deterministic MPI program for the checkpoint/restart tests: its final
 * checksum depends only on its arguments and the number of ranks, never on
 * timing, so a run that was checkpointed, killed and restarted (or restored
 * from any checkpoint) must print the same checksum as an uninterrupted run.
 *
 * Usage: ckpt_prog ITERATIONS [SLEEP_MS [WORDS]]
 *   Every rank keeps WORDS 64-bit words of state (default 8192: 64 KiB).
 *   Each iteration: a local update of every word; a point-to-point ring
 *   exchange (MPI_Sendrecv of 256 words to the right, from the left) mixed
 *   in; an MPI_Allreduce (sum) and an MPI_Bcast from a rotating root mixed
 *   in; then SLEEP_MS of sleep (default 0) so that a run lasts long enough
 *   to be checkpointed.
 * Output (rank 0): "iter N" every 10 iterations, then
 *   "checksum HEX16 ranks R iterations N".
 * Exit 0, or 2 on bad arguments.
 */
#include <inttypes.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RING 256

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static int arg(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == 0 || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	long iters, sleep_ms = 0, words = 8192;
	int rank, size;
	uint64_t *a, ring[RING], sum, local, all = 0, *hashes = NULL;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc < 2 || argc > 4 || arg(argv[1], 1, 100000000, &iters) ||
	    (argc > 2 && arg(argv[2], 0, 60000, &sleep_ms)) ||
	    (argc > 3 && arg(argv[3], RING, 1L << 24, &words))) {
		if (rank == 0)
			fprintf(stderr, "usage: ckpt_prog ITERATIONS [SLEEP_MS [WORDS >= %d]]\n", RING);
		MPI_Finalize();
		return 2;
	}
	a = malloc((size_t)words * sizeof(*a));
	if (!a) {
		fprintf(stderr, "ckpt_prog: rank %d: out of memory\n", rank);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	for (long k = 0; k < words; k++)
		a[k] = mix(((uint64_t)rank << 40) ^ (uint64_t)k);

	for (long it = 0; it < iters; it++) {
		int right = (rank + 1) % size, left = (rank + size - 1) % size;
		uint64_t out[RING], root_word;

		for (long k = 0; k < words; k++)
			a[k] = mix(a[k] + (uint64_t)it + (k ? a[k - 1] : a[words - 1]));
		for (int k = 0; k < RING; k++)
			out[k] = a[(it * 7 + k) % words];
		MPI_Sendrecv(out, RING, MPI_UINT64_T, right, 1, ring, RING, MPI_UINT64_T, left, 1,
			     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (int k = 0; k < RING; k++)
			a[(it * 13 + k) % words] ^= ring[k];
		MPI_Allreduce(&a[it % words], &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
		a[(it + 1) % words] += sum;
		root_word = a[(it * 3) % words];
		MPI_Bcast(&root_word, 1, MPI_UINT64_T, (int)(it % size), MPI_COMM_WORLD);
		a[(it + 2) % words] ^= root_word;
		if (rank == 0 && (it + 1) % 10 == 0) {
			printf("iter %ld\n", it + 1);
			fflush(stdout);
		}
		if (sleep_ms) {
			struct timespec ts = { sleep_ms / 1000, (sleep_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
	}

	/* FNV-1a over every rank's state, combined in rank order */
	local = 0xcbf29ce484222325ULL;
	for (long k = 0; k < words; k++)
		for (int b = 0; b < 8; b++)
			local = (local ^ ((a[k] >> (8 * b)) & 0xff)) * 0x100000001b3ULL;
	if (rank == 0)
		hashes = malloc((size_t)size * sizeof(*hashes));
	if (rank == 0 && !hashes)
		MPI_Abort(MPI_COMM_WORLD, 1);
	MPI_Gather(&local, 1, MPI_UINT64_T, hashes, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		for (int r = 0; r < size; r++)
			all = mix(all ^ hashes[r]);
		printf("checksum %016" PRIx64 " ranks %d iterations %ld\n", all, size, iters);
		fflush(stdout);
	}
	free(hashes);
	free(a);
	/* hec's MPI programs end with a barrier (doc/design.md, "MPICH 4.0 over TCP") */
	MPI_Barrier(MPI_COMM_WORLD);
	MPI_Finalize();
	return 0;
}
