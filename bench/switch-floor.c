/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a gang switch costs at the kernel's floor, without hec around it
 * (bench/gang-overhead measures hec's; this says how much of that any
 * dispatcher would pay here): two groups A and B of TASKS processes each,
 * all on one CPU; in each group one spins (the "rank": it busy-reads
 * CLOCK_MONOTONIC and logs every gap longer than 2 us) and the others
 * sleep (a job's launcher, shell and proxy); a switcher thread at
 * SCHED_FIFO wakes at every slot boundary (absolute clock_nanosleep, 1 ns
 * timer slack) and moves the CPU from one group to the other by MECH:
 *
 *   freeze      write 1 to the leaving cgroup's cgroup.freeze, then 0 to
 *               the entering one's (hec's dispatcher)
 *   thaw-first  the same writes in the other order
 *   signal      SIGSTOP to every leaving task, then SIGCONT to every
 *               entering one (SLURM's gang scheduler)
 *
 * The dead time of a switch is the entering spinner's first instant less
 * the leaving one's last: the CPU ran neither (on one CPU the two never
 * overlap).  Printed: p50/p90/p99 over the switches, how many switches
 * kept the leaving spinner off the CPU for 90% of the next slot or more
 * ("held": all of them, when the mechanism works), and the switcher's own
 * time from its wake-up to the end of its writes.
 *
 *   switch-floor [--mech M] [--tasks N] [--slot-us US] [--seconds S]
 *                [--cpu C] [--switcher-cpu C] [--csv FILE]
 *
 * Root, and a cgroup2 mount with cgroup.freeze (for the freeze mechanisms;
 * its groups are made under it and removed at the end).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"

#define GAP_NS 2000
#define MAX_GAPS 400000
#define MAX_TASKS 64

enum mech { M_FREEZE, M_THAW_FIRST, M_SIGNAL };

struct gap {
	int64_t stop, resume;
};

/* shared with the spinners */
struct spinlog {
	volatile int go, stop;
	size_t n[2];
	struct gap g[2][MAX_GAPS];
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* made groups, removed at exit (the children die with us: PDEATHSIG) */
static char made[3][640];

static void cleanup(void)
{
	for (int i = 2; i >= 0; i--)
		if (made[i][0]) {
			/* until the killed children have left it */
			for (int t = 0; t < 200 && rmdir(made[i]) && errno == EBUSY; t++)
				usleep(5000);
			made[i][0] = 0;
		}
}

static void die(const char *what)
{
	fprintf(stderr, "switch-floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A decimal number for option @opt, or exit 2 saying so. */
static double num(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end) {
		fprintf(stderr, "switch-floor: %s: '%s' is not a number\n", opt, s);
		exit(2);
	}
	return v;
}

/* A whole number from @lo to @hi for option @opt, or exit 2 saying so (a
 * range checked after a cast to int would let 2^32 + 1 pass as 1). */
static long whole(const char *opt, const char *s, long lo, long hi)
{
	long v;

	if (hec_parse_long(s, lo, hi, &v)) {
		fprintf(stderr, "switch-floor: %s: '%s' is not a whole number from %ld to %ld\n", opt, s,
			lo, hi);
		exit(2);
	}
	return v;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	if (sched_setaffinity(0, sizeof(s), &s))
		die("sched_setaffinity");
}

static void spin(struct spinlog *L, int who)
{
	int64_t prev, t;
	size_t n = 0;

	while (!L->go)
		;
	prev = now_ns();
	while (!L->stop) {
		t = now_ns();
		if (t - prev > GAP_NS && n < MAX_GAPS) {
			L->g[who][n] = (struct gap){ prev, t };
			L->n[who] = ++n;
		}
		prev = t;
	}
	_exit(0);
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The cgroup2 mount with cgroup.freeze, or NULL. */
static const char *v2_mount(void)
{
	static const char *const cands[] = { "/sys/fs/cgroup/unified", "/sys/fs/cgroup" };
	static char path[256];

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", cands[i]);
		if (access(path, F_OK))
			continue;
		/* the root has no cgroup.freeze: look for one in a child */
		snprintf(path, sizeof(path), "%s/init.scope/cgroup.freeze", cands[i]);
		if (!access(path, F_OK) || !access(cands[i], W_OK))
			return cands[i];
	}
	return NULL;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mech", required_argument, NULL, 'm' },   { "tasks", required_argument, NULL, 'n' },
		{ "slot-us", required_argument, NULL, 's' }, { "seconds", required_argument, NULL, 't' },
		{ "cpu", required_argument, NULL, 'c' },    { "switcher-cpu", required_argument, NULL, 'w' },
		{ "csv", required_argument, NULL, 'o' },    { NULL, 0, NULL, 0 },
	};
	enum mech mech = M_FREEZE;
	const char *mname = "freeze", *csv = NULL, *mnt = NULL;
	int ntasks = 1, cpu = 0, wcpu = -1, opt, fd[2] = { -1, -1 };
	long slot_us = 1000;
	double seconds = 3;
	char dir[256], grp[2][300], path[640];
	pid_t pids[2][MAX_TASKS], parent;
	struct spinlog *L;
	int64_t *dead, *work, start, k, end;
	size_t nd = 0, nw = 0, nsw = 0, held = 0;
	struct sched_param sp = { .sched_priority = 50 };

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mname = optarg;
			if (!strcmp(optarg, "freeze"))
				mech = M_FREEZE;
			else if (!strcmp(optarg, "thaw-first"))
				mech = M_THAW_FIRST;
			else if (!strcmp(optarg, "signal"))
				mech = M_SIGNAL;
			else {
				fprintf(stderr, "switch-floor: --mech: freeze, thaw-first or signal\n");
				return 2;
			}
			break;
		case 'n':
			ntasks = (int)whole("--tasks", optarg, 1, MAX_TASKS);
			break;
		case 's':
			slot_us = whole("--slot-us", optarg, 100, 600000000);
			break;
		case 't':
			seconds = num("--seconds", optarg);
			break;
		case 'c':
			cpu = (int)whole("--cpu", optarg, 0, CPU_SETSIZE - 1);
			break;
		case 'w':
			wcpu = (int)whole("--switcher-cpu", optarg, 0, CPU_SETSIZE - 1);
			break;
		case 'o':
			csv = optarg;
			break;
		default:
			return 2;
		}
	}
	if (seconds <= 0 || seconds > 600) {
		fprintf(stderr, "switch-floor: --seconds: more than 0, at most 600\n");
		return 2;
	}
	if (wcpu < 0)
		wcpu = cpu;
	if (mech != M_SIGNAL) {
		mnt = v2_mount();
		if (!mnt) {
			fprintf(stderr, "switch-floor: no writable cgroup2 mount with cgroup.freeze\n");
			return 77;
		}
		snprintf(dir, sizeof(dir), "%s/hec-switch-floor.%d", mnt, (int)getpid());
		atexit(cleanup);
		if (mkdir(dir, 0755))
			die(dir);
		snprintf(made[0], sizeof(made[0]), "%s", dir);
		for (int j = 0; j < 2; j++) {
			snprintf(grp[j], sizeof(grp[j]), "%s/%c", dir, 'a' + j);
			if (mkdir(grp[j], 0755))
				die(grp[j]);
			snprintf(made[1 + j], sizeof(made[1 + j]), "%s", grp[j]);
		}
	}
	L = mmap(NULL, sizeof(*L), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (L == MAP_FAILED)
		die("mmap");
	memset(L, 0, sizeof(*L)); /* no page faults in the spinners' logs */
	parent = getpid();
	for (int j = 0; j < 2; j++)
		for (int i = 0; i < ntasks; i++) {
			if (pipe(fd))
				die("pipe");
			pids[j][i] = fork();
			if (pids[j][i] < 0)
				die("fork");
			if (pids[j][i] == 0) {
				char c;

				close(fd[1]);
				prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
				if (getppid() != parent)
					_exit(1);
				pin(cpu);
				/* joined its group: the parent says so */
				if (read(fd[0], &c, 1) != 1)
					_exit(1);
				if (i == 0)
					spin(L, j);
				for (;;)
					pause();
			}
			close(fd[0]);
			if (mech != M_SIGNAL) {
				char pid[32];

				snprintf(path, sizeof(path), "%s/cgroup.procs", grp[j]);
				snprintf(pid, sizeof(pid), "%d", (int)pids[j][i]);
				if (write_str(path, pid))
					die(path);
			}
			if (write(fd[1], "x", 1) != 1)
				die("pipe write");
			close(fd[1]);
		}
	pin(wcpu);
	if (sched_setscheduler(0, SCHED_FIFO, &sp))
		fprintf(stderr, "switch-floor: no SCHED_FIFO (%s): timer slack 1 ns\n", strerror(errno));
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	dead = calloc((size_t)(seconds * 1e6 / (double)slot_us) + 16, sizeof(*dead));
	work = calloc((size_t)(seconds * 1e6 / (double)slot_us) + 16, sizeof(*work));
	if (!dead || !work)
		die("calloc");

	/* B starts frozen; A runs */
	{
		int cf[2] = { -1, -1 };

		if (mech != M_SIGNAL) {
			for (int j = 0; j < 2; j++) {
				snprintf(path, sizeof(path), "%s/cgroup.freeze", grp[j]);
				cf[j] = open(path, O_WRONLY | O_CLOEXEC);
				if (cf[j] < 0)
					die(path);
			}
			if (pwrite(cf[1], "1", 1, 0) != 1)
				die("freeze B");
		} else {
			for (int i = 0; i < ntasks; i++)
				kill(pids[1][i], SIGSTOP);
		}
		L->go = 1;
		start = now_ns() + 100000000;
		end = start + (int64_t)(seconds * 1e9);
		for (k = 1;; k++) {
			int64_t b = start + k * slot_us * 1000, w;
			struct timespec ts = { (time_t)(b / 1000000000), (long)(b % 1000000000) };
			int out = (int)((k + 1) % 2), in = (int)(k % 2);

			if (b >= end)
				break;
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
			w = now_ns();
			switch (mech) {
			case M_FREEZE:
				if (pwrite(cf[out], "1", 1, 0) != 1 || pwrite(cf[in], "0", 1, 0) != 1)
					die("cgroup.freeze");
				break;
			case M_THAW_FIRST:
				if (pwrite(cf[in], "0", 1, 0) != 1 || pwrite(cf[out], "1", 1, 0) != 1)
					die("cgroup.freeze");
				break;
			case M_SIGNAL:
				for (int i = 0; i < ntasks; i++)
					kill(pids[out][i], SIGSTOP);
				for (int i = 0; i < ntasks; i++)
					kill(pids[in][i], SIGCONT);
				break;
			}
			work[nw++] = now_ns() - w;
			nsw++;
		}
		L->stop = 1;
		for (int j = 0; j < 2; j++) {
			if (mech != M_SIGNAL) {
				if (pwrite(cf[j], "0", 1, 0) != 1)
					die("thaw");
				close(cf[j]);
			}
			for (int i = 0; i < ntasks; i++) {
				kill(pids[j][i], SIGCONT);
				kill(pids[j][i], SIGKILL);
			}
		}
		for (int j = 0; j < 2; j++)
			for (int i = 0; i < ntasks; i++)
				waitpid(pids[j][i], NULL, 0);
	}
	cleanup();

	/* For every boundary: the leaving spinner's gap that covers it starts
	 * at its last instant, the entering one's ends at its first. */
	for (k = 1; k < (int64_t)nsw + 1; k++) {
		int64_t b = start + k * slot_us * 1000, last = -1, first = -1;
		int out = (int)((k + 1) % 2), in = (int)(k % 2);
		size_t lo, hi;

		/* leaving: the last gap whose stop is <= b + slot/2 and resume > b */
		lo = 0, hi = L->n[out];
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (L->g[out][mid].stop <= b + slot_us * 500)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t x = lo; x-- > 0;)
			if (L->g[out][x].resume > b) {
				last = L->g[out][x].stop;
				/* out of the CPU for (nearly) the whole slot */
				held += L->g[out][x].resume >= b + slot_us * 900;
				break;
			}
		/* entering: the first gap whose resume > b, if its stop < b + slot/2 */
		lo = 0, hi = L->n[in];
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (L->g[in][mid].resume <= b)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < L->n[in] && L->g[in][lo].stop < b + slot_us * 500)
			first = L->g[in][lo].resume;
		if (last > 0 && first > 0)
			dead[nd++] = first - last;
	}
	qsort(dead, nd, sizeof(*dead), cmp64);
	qsort(work, nw, sizeof(*work), cmp64);
	printf("switch-floor mech %s tasks %d slot %ld us cpu %d switcher-cpu %d switches %zu judged %zu "
	       "held %zu dead_p50_us %.1f dead_p90_us %.1f dead_p99_us %.1f switcher_p50_us %.1f switcher_p99_us %.1f\n",
	       mname, ntasks, slot_us, cpu, wcpu, nsw, nd, held, pct(dead, nd, 50), pct(dead, nd, 90),
	       pct(dead, nd, 99), pct(work, nw, 50), pct(work, nw, 99));
	if (csv) {
		FILE *f = fopen(csv, "a");

		if (!f)
			die(csv);
		fprintf(f, "%s,%d,%ld,%d,%d,%zu,%.1f,%.1f,%.1f,%.1f,%.1f\n", mname, ntasks, slot_us, cpu,
			wcpu, nd, pct(dead, nd, 50), pct(dead, nd, 90), pct(dead, nd, 99), pct(work, nw, 50),
			pct(work, nw, 99));
		fclose(f);
	}
	free(dead);
	free(work);
	return nd ? 0 : 1;
}
