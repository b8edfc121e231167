/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CUnit: the proc partition driver (partition/proc.c) on this host's real
 * cgroups, gates and CPU time included.  Needs root and a cgroup2 mount or
 * the v1 freezer; skips (77) otherwise.  Built twice: test_part_proc, and
 * with PART_PROC_V1 test_part_proc_v1, the gates on the v1 freezer (and v1
 * cpuacct) of a host that mounts one, which skips (77) on a host that does
 * not.  Everything lives under hec/test-<pid>/ and is removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/partition.h"
#include "partition/proc.h"
#include "tests/unit/cunit_main.h"

static const struct hec_partition_ops *ops = &hec_partition_proc_ops;
static char base[128], cpus[16];
static struct hec_partition_env env = { .node = "node0", .cgroup_base = base, .cpus = cpus };
static const char *const test_envp[] = { "PATH=/usr/bin:/bin", "HEC_TEST=1", NULL };
/* The last failing op's reason (ops that fail report through @why). */
static char why[PATH_MAX + 64];

#define WHY why, sizeof(why)
/* A bound for what must happen soon, generous for a loaded machine: the
 * tests wait for a state, never assert a duration. */
#define BOUND_MS 30000

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int file_has_line(const char *dir, const char *file, const char *want)
{
	char path[PATH_MAX + 64], line[256];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		found = !strcmp(line, want);
	}
	fclose(f);
	return found;
}

/* Poll up to 2 s for @file of @dir to contain the line @want. */
static int wait_line(const char *dir, const char *file, const char *want)
{
	for (int i = 0; i < 200; i++) {
		if (file_has_line(dir, file, want))
			return 1;
		sleep_ms(10);
	}
	return 0;
}

static int wait_nprocs(struct hec_partition *p, int want)
{
	int n = -1;

	for (int i = 0; i < 200; i++) {
		n = ops->nprocs(p, WHY);
		if (n == want)
			break;
		sleep_ms(10);
	}
	return n;
}

static pid_t spawn(struct hec_partition *p, const char *const *argv, uid_t uid, gid_t gid,
		   int out_fd, const char *cwd, int *rc)
{
	struct hec_spawn_req req = {
		.argv = argv, .envp = test_envp, .cwd = cwd, .uid = uid, .gid = gid,
		.stdin_fd = -1, .stdout_fd = out_fd, .stderr_fd = -1,
	};
	pid_t pid = 0;

	*rc = ops->spawn(p, &req, &pid, WHY);
	return pid;
}

static int is_v2(struct hec_partition *p)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/cgroup.freeze", ops->path(p, 0));
	return access(path, F_OK) == 0;
}

static void test_lifecycle(void)
{
	static const char *const argv[] = { "sleep", "60", NULL };
	struct hec_partition *p = NULL, *q = NULL;
	char pidtext[16], dir0[PATH_MAX], dir1[PATH_MAX] = "";
	long jobs[8];
	int rc, status, n;
	pid_t pid;

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 7, &p, WHY), 0);
	CU_ASSERT_EQUAL(ops->create(&env, 7, &q, WHY), -EEXIST);
	snprintf(dir0, sizeof(dir0), "%s", ops->path(p, 0));
	if (ops->path(p, 1))
		snprintf(dir1, sizeof(dir1), "%s", ops->path(p, 1));
	CU_ASSERT(strstr(dir0, "/hec/test-") != NULL);
	CU_ASSERT(access(dir0, F_OK) == 0);

	pid = spawn(p, argv, getuid(), getgid(), -1, "/", &rc);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT(pid > 0);
	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	CU_ASSERT(file_has_line(dir0, "cgroup.procs", pidtext));
	if (*dir1) {
		char cur[64] = "";
		char path[PATH_MAX + 32];

		CU_ASSERT(file_has_line(dir1, "cgroup.procs", pidtext));
		snprintf(path, sizeof(path), "%s/cpuset.cpus", dir1);
		CU_ASSERT_EQUAL(hec_read_file(path, cur, sizeof(cur)), 0);
		CU_ASSERT_STRING_EQUAL(cur, cpus);
	}
	if (!*dir1 && *cpus) {
		/* No cpuset hierarchy: the child pinned itself. */
		cpu_set_t got, want;

		CPU_ZERO(&want);
		CPU_SET(atoi(cpus), &want);
		CU_ASSERT_EQUAL(sched_getaffinity(pid, sizeof(got), &got), 0);
		CU_ASSERT(CPU_EQUAL(&got, &want));
	}
	CU_ASSERT_EQUAL(ops->nprocs(p, WHY), 1);

	n = ops->list(&env, jobs, 8, WHY);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT(n >= 1 && jobs[0] == 7);
	CU_ASSERT_EQUAL(ops->open(&env, 7, &q, WHY), 0);
	if (q) {
		CU_ASSERT_STRING_EQUAL(ops->path(q, 0), dir0);
		CU_ASSERT_EQUAL(ops->nprocs(q, WHY), 1);
		ops->release(q);
		q = NULL;
	}
	CU_ASSERT_EQUAL(ops->open(&env, 8, &q, WHY), -ENOENT);

	CU_ASSERT_EQUAL(hec_partition_freeze(p, WHY), 0);
	if (is_v2(p)) {
		CU_ASSERT(wait_line(dir0, "cgroup.events", "frozen 1"));
	} else {
		CU_ASSERT(wait_line(dir0, "freezer.state", "FROZEN"));
	}
	CU_ASSERT_EQUAL(hec_partition_freeze(p, WHY), 0); /* idempotent */
	CU_ASSERT_EQUAL(hec_partition_thaw(p, WHY), 0);
	if (is_v2(p)) {
		CU_ASSERT(wait_line(dir0, "cgroup.events", "frozen 0"));
	} else {
		CU_ASSERT(wait_line(dir0, "freezer.state", "THAWED"));
	}

	CU_ASSERT_EQUAL(ops->destroy(p, WHY), -EBUSY);
	CU_ASSERT_EQUAL(ops->kill(p, WHY), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	CU_ASSERT_EQUAL(ops->kill(p, WHY), 0); /* idempotent on an empty partition */
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	CU_ASSERT(access(dir0, F_OK) != 0);
	if (*dir1) {
		CU_ASSERT(access(dir1, F_OK) != 0);
	}
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0); /* already gone */
	CU_ASSERT_EQUAL(ops->list(&env, jobs, 8, WHY), 0);
	ops->release(p);
}

static void test_kill_tree(void)
{
	/* A shell that keeps forking: kill must catch every generation. */
	static const char *const argv[] = {
		"sh", "-c", "for i in 1 2 3 4; do sleep 60 & done; while :; do sleep 60 & wait; done", NULL };
	struct hec_partition *p = NULL;
	int rc, status;
	pid_t pid;

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 8, &p, WHY), 0);
	pid = spawn(p, argv, getuid(), getgid(), -1, NULL, &rc);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(wait_nprocs(p, 6), 6);
	CU_ASSERT_EQUAL(ops->kill(p, WHY), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	ops->release(p);
}

static void test_spawn_user_and_errors(void)
{
	static const char *const id_argv[] = { "sh", "-c", "id -u; id -g; id -G; pwd; echo $HEC_TEST", NULL };
	static const char *const bad_argv[] = { "/nonexistent/prog", NULL };
	static const char *const nopath_argv[] = { "no-such-program-hec", NULL };
	struct hec_partition *p = NULL;
	char buf[256] = "";
	int fds[2], rc, status;
	ssize_t n, got = 0;
	pid_t pid;

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 9, &p, WHY), 0);
	CU_ASSERT_EQUAL_FATAL(pipe2(fds, O_CLOEXEC), 0);
	pid = spawn(p, id_argv, 65534, 65534, fds[1], "/tmp", &rc);
	close(fds[1]);
	CU_ASSERT_EQUAL(rc, 0);
	while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
		got += n;
	buf[got] = 0;
	close(fds[0]);
	CU_ASSERT_STRING_EQUAL(buf, "65534\n65534\n65534\n/tmp\n1\n");
	if (rc == 0) {
		CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}

	spawn(p, bad_argv, getuid(), getgid(), -1, NULL, &rc);
	CU_ASSERT_EQUAL(rc, -ENOENT);
	spawn(p, nopath_argv, getuid(), getgid(), -1, NULL, &rc);
	CU_ASSERT_EQUAL(rc, -ENOENT);
	spawn(p, id_argv, getuid(), getgid(), -1, "/nonexistent-dir", &rc);
	CU_ASSERT_EQUAL(rc, -ENOENT);
	/* nobody may not enter a root-only directory. */
	mkdir("/tmp/hec-test-private", 0700);
	spawn(p, id_argv, 65534, 65534, -1, "/tmp/hec-test-private", &rc);
	CU_ASSERT_EQUAL(rc, -EACCES);
	rmdir("/tmp/hec-test-private");
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	ops->release(p);
}

static void test_bad_input(void)
{
	struct hec_partition_env bad = { .node = "x", .cgroup_base = "../etc", .cpus = "" };
	struct hec_partition *p = NULL;
	long jobs[2];

	static const char *const bases[] = { "../etc", "hec/../x", "hec//x", "hec/x/", "/hec", "hec/.", "" };

	for (size_t i = 0; i < HEC_ARRAY_SIZE(bases); i++) {
		bad.cgroup_base = bases[i];
		why[0] = 0;
		CU_ASSERT_EQUAL(ops->create(&bad, 1, &p, WHY), -EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "bad cgroup base"));
		CU_ASSERT_EQUAL(ops->list(&bad, jobs, 2, WHY), -EINVAL);
	}
	CU_ASSERT_EQUAL(ops->create(&env, 0, &p, WHY), -EINVAL);
	CU_ASSERT_STRING_EQUAL(why, "job id 0");
	CU_ASSERT_EQUAL(ops->open(&env, -3, &p, WHY), -EINVAL);
	/* The reason is optional: no buffer, the same errno. */
	CU_ASSERT_EQUAL(ops->open(&env, -3, &p, NULL, 0), -EINVAL);
}

static void test_node_fini(void)
{
	struct hec_partition *p = NULL;
	char node_dir[PATH_MAX];

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 10, &p, WHY), 0);
	snprintf(node_dir, sizeof(node_dir), "%s", ops->path(p, 0));
	*strrchr(node_dir, '/') = 0;
	/* A partition is still there: the node group stays. */
	CU_ASSERT_EQUAL(ops->node_fini(&env, WHY), 0);
	CU_ASSERT(access(node_dir, F_OK) == 0);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	ops->release(p);
	CU_ASSERT_EQUAL(ops->node_fini(&env, WHY), 0);
	CU_ASSERT(access(node_dir, F_OK) != 0);
	/* create() makes the node group again when it is gone. */
	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 11, &p, WHY), 0);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	ops->release(p);
}

/* utime of @pid in clock ticks (field 14 of /proc/PID/stat), or -1. */
static long long proc_utime(pid_t pid)
{
	char path[64], buf[1024], *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (hec_read_file(path, buf, sizeof(buf)))
		return -1;
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	for (field = 2, p++; *p && field < 14; p++)
		if (*p == ' ')
			field++;
	return field == 14 ? strtoll(p, NULL, 10) : -1;
}

static long long usage_of(struct hec_partition *p)
{
	unsigned long long u = 0;
	int rc = ops->cpu_usage(p, &u, WHY);

	CU_ASSERT_EQUAL(rc, 0);
	return rc ? -1 : (long long)u;
}

/* Wait (up to BOUND_MS) until the group has used @more us of CPU beyond
 * @from and, with @pid, that process @ticks clock ticks beyond @t.
 * \return 1 once it has, 0 if it never did. */
static int wait_cpu(struct hec_partition *p, long long from, long long more, pid_t pid,
		    long long t, long long ticks)
{
	for (int i = 0; i < BOUND_MS / 10; i++) {
		if (usage_of(p) - from > more && (!pid || proc_utime(pid) > t + ticks))
			return 1;
		sleep_ms(10);
	}
	return 0;
}

/*
 * Gates on a busy child: frozen, it gets no CPU (its utime and the group's
 * usage stand still); thawed, it spins again; killed while frozen, it dies;
 * after destroy the gate fails cleanly.
 */
static void gates_on(long job)
{
	static const char *const argv[] = { "sh", "-c", "while :; do :; done", NULL };
	struct hec_partition *p = NULL;
	struct hec_gate *g = NULL;
	long long u0, u1, t0, t1;
	int64_t start, took;
	int rc, status;
	pid_t pid;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ops->gate_open);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ops->cpu_usage);
	CU_ASSERT_EQUAL_FATAL(ops->create(&env, job, &p, WHY), 0);
	CU_ASSERT_EQUAL_FATAL(ops->gate_open(p, &g, WHY), 0);
	/* An empty group freezes at once. */
	CU_ASSERT_EQUAL(ops->gate_wait(g, 0, 0), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 0), -ETIMEDOUT);
	CU_ASSERT_EQUAL(ops->gate_set(g, 1), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 1000000), 0);
	CU_ASSERT_EQUAL(ops->gate_set(g, 0), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 0, 1000000), 0);

	pid = spawn(p, argv, getuid(), getgid(), -1, NULL, &rc);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	/* Spinning: the group's CPU time grows. */
	u0 = usage_of(p);
	CU_ASSERT(wait_cpu(p, u0, 50000, 0, 0, 0));

	/* What was asked is known at once, whether reached or not (a capture
	 * of a guest the gang just switched out relies on it). */
	CU_ASSERT_PTR_NOT_NULL_FATAL(ops->gate_asked);
	CU_ASSERT_EQUAL(ops->gate_asked(g), 0);
	start = hec_now_mono_ns();
	CU_ASSERT_EQUAL(ops->gate_set(g, 1), 0);
	CU_ASSERT_EQUAL(ops->gate_asked(g), 1);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 1000000), 0);
	took = hec_now_mono_ns() - start;
	fprintf(stderr, "[freeze of a spinning child: %lld us] ", (long long)(took / 1000));
	CU_ASSERT_EQUAL(ops->gate_set(g, 1), 0); /* idempotent */
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 0), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 0, 20000), -ETIMEDOUT);
	t0 = proc_utime(pid);
	u0 = usage_of(p);
	sleep_ms(300);
	t1 = proc_utime(pid);
	u1 = usage_of(p);
	CU_ASSERT(t0 >= 0);
	CU_ASSERT_EQUAL(t1, t0);
	CU_ASSERT(u1 - u0 < 5000);

	/* Thawed: it spins again. */
	CU_ASSERT_EQUAL(ops->gate_set(g, 0), 0);
	CU_ASSERT_EQUAL(ops->gate_asked(g), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 0, 1000000), 0);
	CU_ASSERT(wait_cpu(p, u1, 50000, pid, t1, 5));

	/* Killed while frozen (SHUTDOWN and KILL_JOB do not thaw first). */
	CU_ASSERT_EQUAL(ops->gate_set(g, 1), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 1000000), 0);
	CU_ASSERT_EQUAL(ops->kill(p, WHY), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);

	/* The partition is gone: every gate call fails, nothing crashes. */
	CU_ASSERT(ops->gate_set(g, 0) < 0);
	CU_ASSERT(ops->gate_set(g, 1) < 0);
	CU_ASSERT(ops->gate_asked(g) < 0);
	rc = ops->gate_wait(g, 1, 10000);
	CU_ASSERT(rc < 0 && rc != -ETIMEDOUT);
	rc = ops->gate_wait(g, 0, 0);
	CU_ASSERT(rc < 0 && rc != -ETIMEDOUT);
	{
		unsigned long long u;

		CU_ASSERT(ops->cpu_usage(p, &u, WHY) < 0);
	}
	ops->gate_close(g);
	ops->release(p);
}

struct frozen_spawns {
	struct hec_partition *p;
	pid_t pid, bad;
	int rc, rc_bad;
	int done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *spawn_two(void *arg)
{
	static const char *const ok_argv[] = { "sh", "-c", "exit 3", NULL };
	static const char *const bad_argv[] = { "/nonexistent/prog", NULL };
	struct frozen_spawns *s = arg;
	int rc, rc_bad;
	pid_t pid = spawn(s->p, ok_argv, getuid(), getgid(), -1, NULL, &rc);
	pid_t bad = spawn(s->p, bad_argv, getuid(), getgid(), -1, NULL, &rc_bad);

	pthread_mutex_lock(&s->lock);
	s->pid = pid;
	s->bad = bad;
	s->rc = rc;
	s->rc_bad = rc_bad;
	s->done = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/*
 * A child spawned into a frozen partition stops before its exec: spawn()
 * must not wait for it (hecd's loop would stall for a slot, or for ever for
 * a suspended job); it runs when thawed, and an exec failure becomes 127.
 * The spawns run in a thread: while the partition stays frozen they must
 * return (within BOUND_MS; a spawn waiting for its exec never would).
 */
static void test_spawn_frozen(void)
{
	struct frozen_spawns s = { .lock = PTHREAD_MUTEX_INITIALIZER,
				   .cond = PTHREAD_COND_INITIALIZER };
	struct hec_partition *p = NULL;
	struct hec_gate *g = NULL;
	struct timespec deadline;
	pthread_t t;
	int rc, status, returned;
	int64_t start;
	pid_t pid, bad;

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 14, &p, WHY), 0);
	CU_ASSERT_EQUAL_FATAL(ops->gate_open(p, &g, WHY), 0);
	CU_ASSERT_EQUAL(ops->gate_set(g, 1), 0);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 1000000), 0);
	s.p = p;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, spawn_two, &s), 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += BOUND_MS / 1000;
	pthread_mutex_lock(&s.lock);
	while (!s.done && pthread_cond_timedwait(&s.cond, &s.lock, &deadline) == 0)
		;
	returned = s.done;
	pthread_mutex_unlock(&s.lock);
	CU_ASSERT(returned); /* spawn() did not wait for the frozen child's exec */
	if (!returned)
		ops->gate_set(g, 0); /* let it go, to end the thread */
	pthread_join(t, NULL);
	pid = s.pid;
	bad = s.bad;
	CU_ASSERT_EQUAL(s.rc, 0);
	CU_ASSERT_EQUAL(s.rc_bad, 0);
	/* The newcomers freeze: the group reads frozen again. */
	start = hec_now_mono_ns();
	rc = ops->gate_wait(g, 1, 1000000);
	CU_ASSERT_EQUAL(rc, 0);
	fprintf(stderr, "[frozen again %lld us after the spawns: %d] ", (long long)((hec_now_mono_ns() - start) / 1000), rc);
	sleep_ms(50);
	CU_ASSERT_EQUAL(ops->gate_wait(g, 1, 0), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, WNOHANG), 0); /* still held */
	CU_ASSERT_EQUAL(ops->gate_set(g, 0), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CU_ASSERT_EQUAL(waitpid(bad, &status, 0), bad);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 127);
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	ops->gate_close(g);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	ops->release(p);
}

static void test_gates(void)
{
	gates_on(12);
}

/* The same on the v1 freezer (and v1 cpuacct); main() forced v1 and made
 * sure the host has it. */
static void test_gates_v1(void)
{
	struct hec_partition *p = NULL;
	char path[PATH_MAX + 32];

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 13, &p, WHY), 0);
	snprintf(path, sizeof(path), "%s/freezer.state", ops->path(p, 0));
	CU_ASSERT(access(path, F_OK) == 0);
	CU_ASSERT_EQUAL(ops->destroy(p, WHY), 0);
	ops->release(p);
	gates_on(13);
}

/* Which of the two programs this is (see the top). */
#ifdef PART_PROC_V1
static const int v1_only = 1;
#else
static const int v1_only = 0;
#endif

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "create, spawn, freeze, kill, destroy", test_lifecycle },
		{ "kill a forking tree", test_kill_tree },
		{ "spawn as another user, spawn errors", test_spawn_user_and_errors },
		{ "bad input", test_bad_input },
		{ "node teardown", test_node_fini },
		{ "gates and CPU time", test_gates },
		{ "spawn into a frozen partition", test_spawn_frozen },
		{ NULL, NULL },
	};
	static const struct hec_cunit_test tests_v1[] = {
		{ "gates and CPU time on the v1 freezer", test_gates_v1 },
		{ NULL, NULL },
	};
	cpu_set_t allowed;
	int rc;

	if (geteuid() != 0) {
		fprintf(stderr, "test_part_proc: SKIP: needs root to create cgroups\n");
		return 77;
	}
	snprintf(base, sizeof(base), "hec/test-%d/node0", (int)getpid());
	/* Pin the node to the first CPU we may use, to see the cpuset applied. */
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &allowed)) {
				snprintf(cpus, sizeof(cpus), "%d", c);
				break;
			}
	}
	hec_part_proc_force_v1(v1_only);
	rc = ops->node_init(&env, WHY);
	if (rc == -ENODEV) {
		fprintf(stderr, "test_part_proc: SKIP: %s\n", why);
		return 77;
	}
	if (rc) {
		fprintf(stderr, "test_part_proc: node_init: %s: %s\n", why, strerror(-rc));
		ops->node_fini(&env, NULL, 0);
		return 1;
	}
	rc = hec_cunit_run(v1_only ? "part_proc_v1" : "part_proc", v1_only ? tests_v1 : tests);
	if (ops->node_fini(&env, WHY))
		fprintf(stderr, "test_part_proc: cleanup: %s\n", why);
	return rc;
}
