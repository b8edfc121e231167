/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec's example of an application-assisted checkpoint (README.md,
 * "Application-assisted checkpoints"): the 2-D heat equation by an explicit
 * 5-point stencil on an NX x NY grid, rows split between the ranks (1-D
 * decomposition), halo rows exchanged with MPI_Sendrecv every step.  The
 * top edge is held at 100, the other edges at 0; a hot square starts in the
 * middle.  The field and the step counter are protected with libhecckpt:
 * at a restart the program resumes from the saved step, and its result is
 * bit for bit the one of a run never interrupted (every operation happens
 * in the same order whatever restarts happened).
 *
 * Usage: heat [NX NY STEPS [EVERY]]   (default 1024 1024 2000 1)
 *   EVERY: ask hec whether a checkpoint is wanted every EVERY steps.
 * Output (rank 0): "restored epoch E at step S" after a restart, "step S"
 * every STEPS/10 steps, at the end "checksum fnv1a64=H sum=X steps=S"
 * (FNV-1a of the whole field's bytes in row order, and its sum in row
 * order, %.17g).  Exit 1 if a checkpoint cannot be restored.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hec/hecckpt.h>

#define ALPHA 0.2 /* diffusion number: stable below 0.25 */

static int rank, size;

static void die(const char *what, int rc)
{
	fprintf(stderr, "heat: rank %d: %s: %s\n", rank, what,
		rc ? hecckpt_last_error() : "out of memory");
	MPI_Abort(MPI_COMM_WORLD, 1);
}

/* The initial field: rows [r0, r0 + n) of the grid, without halos. */
static void init_field(double *u, long nx, long ny, long r0, long n)
{
	for (long i = 0; i < n; i++)
		for (long x = 0; x < nx; x++) {
			long y = r0 + i;
			int hot = y > ny * 3 / 8 && y < ny * 5 / 8 && x > nx * 3 / 8 && x < nx * 5 / 8;

			u[i * nx + x] = hot ? 50.0 : 0.0;
		}
}

/* One step: halos from the neighbours (or the fixed edges), then the
 * stencil from @u (n + 2 rows) into @v; the side columns stay at 0. */
static void step(double *u, double *v, long nx, long n)
{
	int up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
	int down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;

	MPI_Sendrecv(u + nx, (int)nx, MPI_DOUBLE, up, 0, u + (n + 1) * nx, (int)nx, MPI_DOUBLE, down,
		     0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	MPI_Sendrecv(u + n * nx, (int)nx, MPI_DOUBLE, down, 1, u, (int)nx, MPI_DOUBLE, up, 1,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	for (long i = 1; i <= n; i++) {
		const double *c = u + i * nx;
		double *o = v + i * nx;

		o[0] = o[nx - 1] = 0.0;
		for (long x = 1; x < nx - 1; x++)
			o[x] = c[x] + ALPHA * (c[x - 1] + c[x + 1] + c[x - nx] + c[x + nx] - 4.0 * c[x]);
	}
}

/* FNV-1a 64 of the field and its sum, both in row order, on rank 0. */
static void checksum(const double *mine, long nx, long n, long ny, long long steps)
{
	int *counts = NULL, *displs = NULL, c = (int)(n * nx);
	double *all = NULL, sum = 0.0;
	uint64_t h = 0xcbf29ce484222325ull;

	if (!rank) {
		counts = malloc(sizeof(*counts) * (size_t)size);
		displs = malloc(sizeof(*displs) * (size_t)size);
		all = malloc(sizeof(*all) * (size_t)(nx * ny));
		if (!counts || !displs || !all)
			die("checksum", 0);
	}
	MPI_Gather(&c, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (!rank)
		for (int r = 0, off = 0; r < size; off += counts[r], r++)
			displs[r] = off;
	MPI_Gatherv(mine, c, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
	if (rank)
		return;
	for (long k = 0; k < nx * ny; k++) {
		const unsigned char *b = (const unsigned char *)&all[k];

		sum += all[k];
		for (size_t i = 0; i < sizeof(double); i++)
			h = (h ^ b[i]) * 0x100000001b3ull;
	}
	printf("checksum fnv1a64=%016llx sum=%.17g steps=%lld\n", (unsigned long long)h, sum, steps);
	free(all);
	free(displs);
	free(counts);
}

int main(int argc, char **argv)
{
	long nx = argc > 1 ? atol(argv[1]) : 1024, ny = argc > 2 ? atol(argv[2]) : 1024;
	long long steps = argc > 3 ? atoll(argv[3]) : 2000, every = argc > 4 ? atoll(argv[4]) : 1;
	long long s = 0, epoch;
	long n, r0;
	double *u, *v, *t;
	int restarted, need, rc;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (nx < 3 || ny < size || steps < 0 || every < 1) {
		if (!rank)
			fprintf(stderr, "usage: heat [NX NY STEPS [EVERY]] (NX >= 3, NY >= ranks)\n");
		MPI_Finalize();
		return 2;
	}
	n = ny / size + (rank < ny % size);
	r0 = rank * (ny / size) + (rank < ny % size ? rank : ny % size);
	u = calloc((size_t)((n + 2) * nx), sizeof(*u));
	v = calloc((size_t)((n + 2) * nx), sizeof(*v));
	if (!u || !v)
		die("the field", 0);
	/* the fixed top edge is the first rank's upper halo, in both buffers */
	if (!rank)
		for (long x = 0; x < nx; x++)
			u[x] = v[x] = 100.0;
	init_field(u + nx, nx, ny, r0, n);

	if ((rc = hecckpt_init(MPI_COMM_WORLD)) < 0)
		die("hecckpt_init", rc);
	if ((rc = hecckpt_protect("step", &s, 1, MPI_LONG_LONG)) < 0 ||
	    (rc = hecckpt_protect("u", u + nx, (size_t)(n * nx), MPI_DOUBLE)) < 0)
		die("hecckpt_protect", rc);
	if ((rc = hecckpt_restore(&restarted, &epoch)) < 0)
		die("hecckpt_restore", rc);
	if (restarted && !rank)
		printf("restored epoch %lld at step %lld\n", epoch, s);

	while (s < steps) {
		step(u, v, nx, n);
		t = u, u = v, v = t;
		s++;
		if (!rank && s % (steps / 10 ? steps / 10 : 1) == 0) {
			printf("step %lld\n", s);
			fflush(stdout);
		}
		if (s % every || s == steps)
			continue;
		if ((rc = hecckpt_need(&need)) < 0)
			die("hecckpt_need", rc);
		if (!need)
			continue;
		/* the field lives in the other buffer since the last swap */
		if ((rc = hecckpt_protect("u", u + nx, (size_t)(n * nx), MPI_DOUBLE)) < 0)
			die("hecckpt_protect", rc);
		if ((rc = hecckpt_checkpoint(&epoch)) < 0) {
			if (!rank)
				fprintf(stderr, "heat: checkpoint at step %lld: %s\n", s, hecckpt_last_error());
		} else if (!rank) {
			printf("checkpoint %lld at step %lld\n", epoch, s);
		}
	}
	checksum(u + nx, nx, n, ny, s);
	hecckpt_finalize();
	free(v);
	free(u);
	MPI_Barrier(MPI_COMM_WORLD);
	MPI_Finalize();
	return 0;
}
