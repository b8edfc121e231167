/*
 * CUnit: the proc partition driver on this host's real cgroups.  Needs root
 * and a cgroup2 mount or the v1 freezer; skips (77) otherwise.  Everything
 * lives under hec/test-<pid>/ and is removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "agent/part_proc.h"
#include "tests/unit/cunit_main.h"

static const struct hec_partition_ops *ops = &hec_partition_proc_ops;
static char base[128], cpus[16];
static struct hec_partition_env env = { .node = "node0", .cgroup_base = base, .cpus = cpus };
static const char *const test_envp[] = { "PATH=/usr/bin:/bin", "HEC_TEST=1", NULL };

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
		n = ops->nprocs(p);
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

	*rc = ops->spawn(p, &req, &pid);
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

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 7, &p), 0);
	CU_ASSERT_EQUAL(ops->create(&env, 7, &q), -EEXIST);
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
	CU_ASSERT_EQUAL(ops->nprocs(p), 1);

	n = ops->list(&env, jobs, 8);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT(n >= 1 && jobs[0] == 7);
	CU_ASSERT_EQUAL(ops->open(&env, 7, &q), 0);
	if (q) {
		CU_ASSERT_STRING_EQUAL(ops->path(q, 0), dir0);
		CU_ASSERT_EQUAL(ops->nprocs(q), 1);
		ops->release(q);
		q = NULL;
	}
	CU_ASSERT_EQUAL(ops->open(&env, 8, &q), -ENOENT);

	CU_ASSERT_EQUAL(hec_partition_freeze(ops, p), 0);
	if (is_v2(p)) {
		CU_ASSERT(wait_line(dir0, "cgroup.events", "frozen 1"));
	} else {
		CU_ASSERT(wait_line(dir0, "freezer.state", "FROZEN"));
	}
	CU_ASSERT_EQUAL(hec_partition_freeze(ops, p), 0); /* idempotent */
	CU_ASSERT_EQUAL(hec_partition_thaw(ops, p), 0);
	if (is_v2(p)) {
		CU_ASSERT(wait_line(dir0, "cgroup.events", "frozen 0"));
	} else {
		CU_ASSERT(wait_line(dir0, "freezer.state", "THAWED"));
	}

	CU_ASSERT_EQUAL(ops->destroy(p), -EBUSY);
	CU_ASSERT_EQUAL(ops->kill(p), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	CU_ASSERT_EQUAL(ops->kill(p), 0); /* idempotent on an empty partition */
	CU_ASSERT_EQUAL(ops->destroy(p), 0);
	CU_ASSERT(access(dir0, F_OK) != 0);
	if (*dir1) {
		CU_ASSERT(access(dir1, F_OK) != 0);
	}
	CU_ASSERT_EQUAL(ops->destroy(p), 0); /* already gone */
	CU_ASSERT_EQUAL(ops->list(&env, jobs, 8), 0);
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

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 8, &p), 0);
	pid = spawn(p, argv, getuid(), getgid(), -1, NULL, &rc);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(wait_nprocs(p, 6), 6);
	CU_ASSERT_EQUAL(ops->kill(p), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_EQUAL(wait_nprocs(p, 0), 0);
	CU_ASSERT_EQUAL(ops->destroy(p), 0);
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

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 9, &p), 0);
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
	CU_ASSERT_EQUAL(ops->destroy(p), 0);
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
		CU_ASSERT_EQUAL(ops->create(&bad, 1, &p), -EINVAL);
		CU_ASSERT_EQUAL(ops->list(&bad, jobs, 2), -EINVAL);
	}
	CU_ASSERT_EQUAL(ops->create(&env, 0, &p), -EINVAL);
	CU_ASSERT_EQUAL(ops->open(&env, -3, &p), -EINVAL);
}

static void test_node_fini(void)
{
	struct hec_partition *p = NULL;
	char node_dir[PATH_MAX];

	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 10, &p), 0);
	snprintf(node_dir, sizeof(node_dir), "%s", ops->path(p, 0));
	*strrchr(node_dir, '/') = 0;
	/* A partition is still there: the node group stays. */
	CU_ASSERT_EQUAL(hec_part_proc_node_fini(&env), 0);
	CU_ASSERT(access(node_dir, F_OK) == 0);
	CU_ASSERT_EQUAL(ops->destroy(p), 0);
	ops->release(p);
	CU_ASSERT_EQUAL(hec_part_proc_node_fini(&env), 0);
	CU_ASSERT(access(node_dir, F_OK) != 0);
	/* create() makes the node group again when it is gone. */
	CU_ASSERT_EQUAL_FATAL(ops->create(&env, 11, &p), 0);
	CU_ASSERT_EQUAL(ops->destroy(p), 0);
	ops->release(p);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "create, spawn, freeze, kill, destroy", test_lifecycle },
		{ "kill a forking tree", test_kill_tree },
		{ "spawn as another user, spawn errors", test_spawn_user_and_errors },
		{ "bad input", test_bad_input },
		{ "node teardown", test_node_fini },
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
	rc = ops->node_init(&env);
	if (rc == -ENODEV) {
		fprintf(stderr, "test_part_proc: SKIP: %s\n", hec_part_proc_context());
		return 77;
	}
	if (rc) {
		fprintf(stderr, "test_part_proc: node_init: %s: %s\n", hec_part_proc_context(),
			strerror(-rc));
		hec_part_proc_node_fini(&env);
		return 1;
	}
	rc = hec_cunit_run("part_proc", tests);
	if (hec_part_proc_node_fini(&env))
		fprintf(stderr, "test_part_proc: cleanup: %s\n", hec_part_proc_context());
	return rc;
}
