/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What hecckpt_need costs a program: N calls in a loop, timed on rank 0
 * (bench/app-ckpt runs it under hec, where rank 0 polls the agent's socket
 * and broadcasts one int; outside hec a call communicates nothing).
 *
 * Usage: hecckpt-need [N]   (default 100000)
 * Output (rank 0): "need: N calls, R ranks, X ns per call (mode)".
 * Exit 0, 1 if a call failed, 2 on bad arguments.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include <hec/hecckpt.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	int rank, size, need = 0, rc = 0, asked = 0;
	double t0, t;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (n < 1) {
		if (rank == 0)
			fprintf(stderr, "usage: hecckpt-need [N >= 1]\n");
		MPI_Finalize();
		return 2;
	}
	rc = hecckpt_init(MPI_COMM_WORLD);
	if (rc < 0) {
		if (rank == 0)
			fprintf(stderr, "hecckpt-need: init: %s\n", hecckpt_last_error());
		MPI_Finalize();
		return 1;
	}
	MPI_Barrier(MPI_COMM_WORLD);
	t0 = MPI_Wtime();
	for (long i = 0; i < n && rc == 0; i++) {
		rc = hecckpt_need(&need);
		asked |= need;
	}
	t = MPI_Wtime() - t0;
	if (rc < 0 && rank == 0)
		fprintf(stderr, "hecckpt-need: need: %s\n", hecckpt_last_error());
	if (rank == 0)
		printf("need: %ld calls, %d ranks, %.1f ns per call (%s%s)\n", n, size, t * 1e9 / (double)n,
		       getenv("HEC_CKPT_SOCK") ? "under hec" : "outside hec",
		       asked ? ", a checkpoint was asked for" : "");
	hecckpt_finalize();
	MPI_Finalize();
	return rc < 0 ? 1 : 0;
}
