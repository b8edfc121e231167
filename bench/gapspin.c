/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Switch dead time and overlap, for bench/gang-overhead: run as every rank
 * of two (or more) gang-shared jobs, each rank busy-reads CLOCK_MONOTONIC
 * for SECONDS and logs every gap between two reads longer than GAP_US: the
 * last instant it ran user code before the gap, the first after, and the
 * CPU on each side.  The clock is the host's, so the logs of all jobs line
 * up, and --analyze turns them into what a gang switch costs:
 *
 *   gapspin [--gap-us US] SECONDS DIR
 *        writes DIR/gaps.JOB.RANK (JOB: $HEC_JOB_ID, RANK: $PMI_RANK) and
 *        prints "gapspin job J rank R gaps N ..." on stdout
 *   gapspin --analyze [--node CPULIST]... FILE...
 *        one line per CPU and one summary (see below); --node groups CPUs
 *        into a node for the overlap (default: each CPU is a node)
 *
 * Method.  Between two logged gaps a rank ran user code all the time (to
 * within GAP_US), so each log is a list of run intervals, each on one CPU.
 * Sorted by start, the intervals of one CPU (of all jobs) change from job X
 * to job Y at a switch: its dead time is Y's first instant there less X's
 * last one.  The same walk over all CPUs of a node gives the overlap: X's
 * last instant on any of the node's CPUs less Y's first on any; above 0,
 * both jobs ran user code on the node at once.  Only switches while every
 * job was running count (not a job's start or exit).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 1024
#define MAX_JOBS 64

struct gap {
	int64_t stop, resume;   /* last read before, first read after (ns) */
	int cpu_before, cpu_after;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int run(double seconds, const char *dir, int64_t gap_ns)
{
	const char *job = getenv("HEC_JOB_ID"), *rank = getenv("PMI_RANK");
	size_t cap = (size_t)(seconds * 100000) + 100000, n = 0, lost = 0;
	struct gap *g = calloc(cap, sizeof(*g));
	int64_t start, end, prev, t;
	int cpu, c, cpu0;
	char path[4096];
	FILE *f;

	if (!g) {
		fprintf(stderr, "gapspin: out of memory\n");
		return 1;
	}
	/* touch the log now: no page faults while timing */
	memset(g, 0, cap * sizeof(*g));
	job = job ? job : "0";
	rank = rank ? rank : "0";
	cpu = cpu0 = sched_getcpu();
	start = prev = now_ns();
	end = start + (int64_t)(seconds * 1e9);
	while (prev < end) {
		t = now_ns();
		c = sched_getcpu();
		if (t - prev > gap_ns) {
			if (n < cap)
				g[n++] = (struct gap){ prev, t, cpu, c };
			else
				lost++;
		}
		cpu = c;
		prev = t;
	}
	snprintf(path, sizeof(path), "%s/gaps.%s.%s", dir, job, rank);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "gapspin: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(f, "gapspin job %s rank %s start_ns %" PRId64 " end_ns %" PRId64 " cpu %d gap_ns %" PRId64
		" gaps %zu lost %zu\n", job, rank, start, prev, cpu0, gap_ns, n, lost);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%" PRId64 " %" PRId64 " %d %d\n", g[i].stop, g[i].resume, g[i].cpu_before,
			g[i].cpu_after);
	if (fclose(f)) {
		fprintf(stderr, "gapspin: %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("gapspin job %s rank %s gaps %zu lost %zu log %s\n", job, rank, n, lost, path);
	free(g);
	return lost ? 1 : 0;
}

/* ---- analysis ---- */

struct ival {
	int64_t start, end;
	int cpu, job;           /* job: index into jobs[] */
};

static struct ival *iv;
static size_t niv, capiv;
static long jobs[MAX_JOBS];
static int njobs;
static int64_t win_start = INT64_MIN, win_end = INT64_MAX;
static long migrations;

static int add_ival(int64_t s, int64_t e, int cpu, int job)
{
	if (cpu < 0 || cpu >= MAX_CPUS)
		return -1;
	if (niv == capiv) {
		size_t nc = capiv ? capiv * 2 : 4096;
		struct ival *p = realloc(iv, nc * sizeof(*p));

		if (!p)
			return -1;
		iv = p;
		capiv = nc;
	}
	iv[niv++] = (struct ival){ s, e, cpu, job };
	return 0;
}

static int job_index(long id)
{
	for (int i = 0; i < njobs; i++)
		if (jobs[i] == id)
			return i;
	if (njobs == MAX_JOBS)
		return -1;
	jobs[njobs] = id;
	return njobs++;
}

static int load(const char *path)
{
	FILE *f = fopen(path, "r");
	long job, rank;
	int64_t start, end, s, e, gap_ns, cur;
	int cpu, cb, ca, j, rc = 0;
	size_t ngaps, lost;

	if (!f) {
		fprintf(stderr, "gapspin: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fscanf(f, "gapspin job %ld rank %ld start_ns %" SCNd64 " end_ns %" SCNd64 " cpu %d gap_ns %" SCNd64
		   " gaps %zu lost %zu", &job, &rank, &start, &end, &cpu, &gap_ns, &ngaps, &lost) != 8 ||
	    (j = job_index(job)) < 0) {
		fprintf(stderr, "gapspin: %s: not a gapspin log\n", path);
		fclose(f);
		return -1;
	}
	if (lost)
		fprintf(stderr, "gapspin: %s: %zu gaps lost (log full)\n", path, lost);
	/* switches count only while every rank of every job runs */
	if (start > win_start)
		win_start = start;
	if (end < win_end)
		win_end = end;
	cur = start;
	for (size_t i = 0; i < ngaps && !rc; i++) {
		if (fscanf(f, "%" SCNd64 " %" SCNd64 " %d %d", &s, &e, &cb, &ca) != 4 || s < cur || e < s) {
			fprintf(stderr, "gapspin: %s: bad gap line %zu\n", path, i + 2);
			rc = -1;
			break;
		}
		if (cb != cpu)
			migrations++;   /* moved without a gap: the interval keeps its first CPU */
		rc = add_ival(cur, s, cpu, j);
		cur = e;
		cpu = ca;
	}
	if (!rc)
		rc = add_ival(cur, end, cpu, j);
	if (rc)
		fprintf(stderr, "gapspin: %s: cannot use it\n", path);
	fclose(f);
	return rc;
}

static int by_start(const void *a, const void *b)
{
	const struct ival *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static int by_value(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Walk the intervals (sorted by start) on the CPUs in set; at each change of
 * job, store (incoming's first instant - outgoing's last instant) in out[].
 */
static size_t walk(const unsigned char *set, int64_t *out)
{
	int64_t last_end[MAX_JOBS];
	size_t n = 0;
	int cur = -1;

	for (int i = 0; i < MAX_JOBS; i++)
		last_end[i] = INT64_MIN;
	for (size_t i = 0; i < niv; i++) {
		const struct ival *v = &iv[i];

		if (!set[v->cpu])
			continue;
		if (cur >= 0 && v->job != cur && last_end[cur] > win_start && v->start < win_end)
			out[n++] = v->start - last_end[cur];
		cur = v->job;
		if (v->end > last_end[v->job])
			last_end[v->job] = v->end;
	}
	return n;
}

static double pct_us(const int64_t *v, size_t n, double p)
{
	size_t k = (size_t)(p * (double)n + 0.999999);

	if (!n)
		return 0;
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1e3;
}

static int parse_cpus(const char *s, unsigned char *set)
{
	char *end;

	while (*s) {
		long a = strtol(s, &end, 10), b = a;

		if (end == s || a < 0 || a >= MAX_CPUS)
			return -1;
		s = end;
		if (*s == '-') {
			b = strtol(s + 1, &end, 10);
			if (end == s + 1 || b < a || b >= MAX_CPUS)
				return -1;
			s = end;
		}
		for (long c = a; c <= b; c++)
			set[c] = 1;
		if (*s == ',')
			s++;
		else if (*s)
			return -1;
	}
	return 0;
}

static int analyze(int argc, char **argv)
{
	static unsigned char node[16][MAX_CPUS], used[MAX_CPUS], one[MAX_CPUS];
	int nnodes = 0, i;
	int64_t *d, *all, *ov;
	size_t nall = 0, nov = 0;
	double ovmax = -1e18;

	for (i = 0; i < argc && !strcmp(argv[i], "--node"); i += 2) {
		if (i + 1 >= argc || nnodes == 16 || parse_cpus(argv[i + 1], node[nnodes]) < 0) {
			fprintf(stderr, "gapspin: --node needs a CPU list (at most 16 nodes)\n");
			return 2;
		}
		nnodes++;
	}
	if (i == argc) {
		fprintf(stderr, "gapspin: --analyze: no log files\n");
		return 2;
	}
	for (; i < argc; i++)
		if (load(argv[i]) < 0)
			return 1;
	if (njobs < 2 || win_start >= win_end) {
		fprintf(stderr, "gapspin: need the logs of at least two jobs that ran at the same time\n");
		return 1;
	}
	qsort(iv, niv, sizeof(*iv), by_start);
	d = malloc(niv * sizeof(*d));
	all = malloc(niv * sizeof(*all));
	ov = malloc(niv * sizeof(*ov));
	if (!d || !all || !ov)
		return 1;
	for (size_t k = 0; k < niv; k++)
		used[iv[k].cpu] = 1;
	if (!nnodes)    /* each CPU is its own node */
		for (int c = 0; c < MAX_CPUS && nnodes < 16; c++)
			if (used[c])
				node[nnodes++][c] = 1;
	/* dead time per CPU */
	for (int c = 0; c < MAX_CPUS; c++) {
		size_t n;

		if (!used[c])
			continue;
		memset(one, 0, sizeof(one));
		one[c] = 1;
		n = walk(one, d);
		qsort(d, n, sizeof(*d), by_value);
		printf("cpu %d switches %zu dead_p50_us %.1f dead_p99_us %.1f dead_max_us %.1f\n", c, n,
		       pct_us(d, n, 0.5), pct_us(d, n, 0.99), n ? (double)d[n - 1] / 1e3 : 0.0);
		memcpy(all + nall, d, n * sizeof(*d));
		nall += n;
	}
	/* overlap per node: outgoing's last - incoming's first = -(dead time on the node) */
	for (int k = 0; k < nnodes; k++) {
		size_t n = walk(node[k], d);

		for (size_t m = 0; m < n; m++) {
			ov[nov++] = -d[m];
			if ((double)-d[m] / 1e3 > ovmax)
				ovmax = (double)-d[m] / 1e3;
		}
	}
	qsort(all, nall, sizeof(*all), by_value);
	qsort(ov, nov, sizeof(*ov), by_value);
	printf("gapspin jobs %d switches %zu dead_p50_us %.1f dead_p99_us %.1f dead_max_us %.1f"
	       " overlap_p99_us %.1f overlap_max_us %.1f node_switches %zu migrations %ld window_s %.3f\n",
	       njobs, nall, pct_us(all, nall, 0.5), pct_us(all, nall, 0.99),
	       nall ? (double)all[nall - 1] / 1e3 : 0.0, pct_us(ov, nov, 0.99), nov ? ovmax : 0.0, nov,
	       migrations, (double)(win_end - win_start) / 1e9);
	free(d);
	free(all);
	free(ov);
	free(iv);
	return nall ? 0 : 1;
}

int main(int argc, char **argv)
{
	double gap_us = 2.0, seconds;
	int i = 1;

	if (argc > 1 && !strcmp(argv[1], "--analyze"))
		return analyze(argc - 2, argv + 2);
	if (argc > 2 && !strcmp(argv[1], "--gap-us")) {
		gap_us = atof(argv[2]);
		i = 3;
	}
	if (argc - i != 2 || (seconds = atof(argv[i])) <= 0 || gap_us <= 0) {
		fprintf(stderr, "usage: gapspin [--gap-us US] SECONDS DIR | gapspin --analyze [--node CPULIST]... FILE...\n");
		return 2;
	}
	return run(seconds, argv[i + 1], (int64_t)(gap_us * 1e3));
}
