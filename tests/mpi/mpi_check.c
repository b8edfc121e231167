/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * MPI program for the integration tests: computes a known result with
 * collectives and reports, per rank, the cgroups and CPUs it runs in, so a
 * test can check that each rank sat in its node's partition of the job.
 *
 * Usage: mpi_check [ITER]   (ITER allreduce rounds; default 1)
 * Output (rank 0, in rank order):
 *   rank R size S cgroup2 PATH cpuset PATH cpus LIST
 *   result sum=X expected=Y OK|WRONG
 * Exit 0 if the result is right, 1 otherwise.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE 512

static void read_cgroups(char *v2, char *cpuset, size_t len)
{
	char line[LINE];
	FILE *f = fopen("/proc/self/cgroup", "r");

	snprintf(v2, len, "-");
	snprintf(cpuset, len, "-");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, ':');

		line[strcspn(line, "\n")] = 0;
		if (!path || !(path = strchr(path + 1, ':')))
			continue;
		path++;
		if (!strncmp(line, "0::", 3))
			snprintf(v2, len, "%s", path);
		else if (strstr(line, ":cpuset:"))
			snprintf(cpuset, len, "%s", path);
	}
	fclose(f);
}

static void read_cpus(char *cpus, size_t len)
{
	char line[LINE];
	FILE *f = fopen("/proc/self/status", "r");

	snprintf(cpus, len, "-");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cpus_allowed_list:", 18)) {
			char *p = line + 18;

			p += strspn(p, " \t");
			p[strcspn(p, "\n")] = 0;
			snprintf(cpus, len, "%s", p);
		}
	fclose(f);
}

int main(int argc, char **argv)
{
	int rank, size, iter = argc > 1 ? atoi(argv[1]) : 1;
	long sum = 0, expected;
	char mine[4 * LINE], *all = NULL, v2[LINE], cpuset[LINE], cpus[LINE];
	char host[MPI_MAX_PROCESSOR_NAME] = "-";
	int hostlen;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	read_cgroups(v2, cpuset, sizeof(v2));
	read_cpus(cpus, sizeof(cpus));
	/* MPICH's name of the rank's host (gethostname): tests of several
	 * hosts check that the ranks ran where they should */
	MPI_Get_processor_name(host, &hostlen);
	snprintf(mine, sizeof(mine), "rank %d size %d cgroup2 %s cpuset %s cpus %s host %s",
		 rank, size, v2, cpuset, cpus, host);
	if (rank == 0)
		all = malloc((size_t)size * sizeof(mine));
	MPI_Gather(mine, sizeof(mine), MPI_CHAR, all, sizeof(mine), MPI_CHAR, 0, MPI_COMM_WORLD);

	for (int i = 0; i < (iter > 0 ? iter : 1); i++) {
		long contrib = (long)(rank + 1) * (i + 1), s;

		MPI_Allreduce(&contrib, &s, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
		sum += s;
	}
	/* sum over i of (i+1) * size*(size+1)/2 */
	expected = (long)size * (size + 1) / 2 * ((long)iter * (iter + 1) / 2);
	if (iter <= 0)
		expected = (long)size * (size + 1) / 2;
	if (rank == 0) {
		for (int r = 0; r < size; r++)
			printf("%s\n", all + (size_t)r * sizeof(mine));
		printf("result sum=%ld expected=%ld %s\n", sum, expected, sum == expected ? "OK" : "WRONG");
		fflush(stdout);
		free(all);
	}
	/*
	 * Enter MPI_Finalize together.  MPICH 4.0's UCX netmod (Debian 12)
	 * disconnects and then waits in a PMI barrier; over UCX's TCP transport
	 * (ranks in different guests) a rank already in that barrier no longer
	 * makes progress for a peer still disconnecting, and both wait forever
	 * (MPICH removed the barrier later, pmodels/mpich#6596).  A rank that
	 * reaches Finalize much later, as rank 0 does after printing, makes
	 * that likely.
	 */
	MPI_Barrier(MPI_COMM_WORLD);
	MPI_Finalize();
	return sum == expected ? 0 : 1;
}
