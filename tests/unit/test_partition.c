/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The partition driver registry (partition/registry.c) and the contract of
 * include/hec/partition.h around it: drivers are found by name; a table
 * without a required op, with only some gate ops, or under a name taken
 * is refused; the wrappers of optional ops answer -EOPNOTSUPP with a
 * reason where a driver has none, and call the op where it has one; an
 * instance carries its ops, its driver's data and its host, whose
 * callbacks get the host's argument.  Pure code: no cgroup is touched.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "hec/partition.h"
#include "tests/unit/cunit_main.h"

/* ---- a fake driver: every required op, recording what it was asked ---- */

struct fake {
	int released, runs, reaped_pid, forgotten, frames;
	long job;
};

static int f_node_init(const struct hec_partition_env *env, char *why, size_t len)
{
	(void)env;
	(void)why;
	(void)len;
	return 0;
}

static struct hec_partition *fake_new(const struct hec_partition_ops *ops, long job)
{
	struct hec_partition *p = calloc(1, sizeof(*p));
	struct fake *f = calloc(1, sizeof(*f));

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	f->job = job;
	p->ops = ops;
	p->priv = f;
	p->job = job;
	return p;
}

static const struct hec_partition_ops fake_ops;

static int f_create(const struct hec_partition_env *env, long job, struct hec_partition **out,
		    char *why, size_t len)
{
	(void)env;
	if (job <= 0) {
		snprintf(why, len, "job id %ld", job);
		return -EINVAL;
	}
	*out = fake_new(&fake_ops, job);
	return 0;
}

static int f_list(const struct hec_partition_env *env, long *jobs, int max, char *why, size_t len)
{
	(void)env;
	(void)jobs;
	(void)max;
	(void)why;
	(void)len;
	return 0;
}

static int f_spawn(struct hec_partition *p, const struct hec_spawn_req *req, pid_t *pid, char *why,
		   size_t len)
{
	(void)p;
	(void)req;
	(void)pid;
	(void)why;
	(void)len;
	return -ENOSYS;
}

static int f_count(struct hec_partition *p, char *why, size_t len)
{
	(void)p;
	(void)why;
	(void)len;
	return 0;
}

static void f_release(struct hec_partition *p)
{
	free(p->priv);
	free(p);
}

#define FAKE_REQUIRED                                                                   \
	.node_init = f_node_init, .create = f_create, .open = f_create, .list = f_list,  \
	.spawn = f_spawn, .nprocs = f_count, .kill = f_count, .destroy = f_count,        \
	.release = f_release

/* Only the required ops. */
static const struct hec_partition_ops fake_ops = { .name = "fake", FAKE_REQUIRED };

/* ---- a driver with a machine: optional ops that use the host ---- */

static int m_run(struct hec_partition *p, const struct hec_run_req *req, char *why, size_t len)
{
	struct fake *f = p->priv;

	(void)why;
	(void)len;
	f->runs++;
	/* A step that ends at once: its end goes to the host, with its arg. */
	p->host->exited(p->host_arg, req->argv ? 0 : 1, 0, NULL);
	return 0;
}

static int m_reaped(struct hec_partition *p, pid_t pid, int status)
{
	struct fake *f = p->priv;

	(void)status;
	if (pid != 4242)
		return 0;
	f->reaped_pid = pid;
	return 1;
}

static void m_forget(struct hec_partition *p)
{
	((struct fake *)p->priv)->forgotten++;
}

static void m_frame(struct hec_partition *p, int port, const void *frame, size_t len)
{
	(void)port;
	(void)frame;
	((struct fake *)p->priv)->frames += (int)len;
}

static int g_open(struct hec_partition *p, struct hec_gate **out, char *why, size_t len)
{
	(void)p;
	(void)out;
	snprintf(why, len, "gate of job %ld", p->job);
	return -ENODEV;
}

static int g_set(struct hec_gate *g, int frozen)
{
	(void)g;
	(void)frozen;
	return 0;
}

static int g_wait(struct hec_gate *g, int frozen, long timeout_us)
{
	(void)g;
	(void)frozen;
	(void)timeout_us;
	return 0;
}

static void g_close(struct hec_gate *g)
{
	(void)g;
}

static const struct hec_partition_ops machine_ops = {
	.name = "machine", FAKE_REQUIRED,
	.run = m_run, .reaped = m_reaped, .forget = m_forget, .net_frame = m_frame,
	.gate_open = g_open, .gate_set = g_set, .gate_wait = g_wait, .gate_close = g_close,
};

/* ---- tests ---- */

static void test_lookup(void)
{
	struct hec_part_registry r = { 0 };

	CU_ASSERT_PTR_NULL(hec_part_driver(&r, "proc"));
	CU_ASSERT_EQUAL(hec_part_register(&r, &hec_partition_proc_ops), 0);
	CU_ASSERT_EQUAL(hec_part_register(&r, &hec_partition_vm_ops), 0);
	CU_ASSERT_EQUAL(hec_part_register(&r, &fake_ops), 0);
	CU_ASSERT_PTR_EQUAL(hec_part_driver(&r, "proc"), &hec_partition_proc_ops);
	CU_ASSERT_PTR_EQUAL(hec_part_driver(&r, "vm"), &hec_partition_vm_ops);
	CU_ASSERT_PTR_EQUAL(hec_part_driver(&r, "fake"), &fake_ops);
	CU_ASSERT_PTR_NULL(hec_part_driver(&r, "vms"));
	CU_ASSERT_PTR_NULL(hec_part_driver(&r, "pro"));
	CU_ASSERT_PTR_NULL(hec_part_driver(&r, ""));
	CU_ASSERT_PTR_NULL(hec_part_driver(&r, NULL));
	/* What the agent asks of a driver instead of comparing tables. */
	CU_ASSERT(hec_partition_runs_inside(&hec_partition_vm_ops));
	CU_ASSERT(!hec_partition_runs_inside(&hec_partition_proc_ops));
	CU_ASSERT(hec_partition_has_gates(&hec_partition_proc_ops));
	CU_ASSERT(!hec_partition_has_gates(&fake_ops));
}

static void test_refused(void)
{
	/* Each required op, by its place in the table. */
	static const size_t required[] = {
		offsetof(struct hec_partition_ops, node_init),
		offsetof(struct hec_partition_ops, create),
		offsetof(struct hec_partition_ops, open),
		offsetof(struct hec_partition_ops, list),
		offsetof(struct hec_partition_ops, spawn),
		offsetof(struct hec_partition_ops, nprocs),
		offsetof(struct hec_partition_ops, kill),
		offsetof(struct hec_partition_ops, destroy),
		offsetof(struct hec_partition_ops, release),
	};
	struct hec_part_registry r = { 0 };
	struct hec_partition_ops t;

	for (size_t i = 0; i < HEC_ARRAY_SIZE(required); i++) {
		t = fake_ops;
		memset((char *)&t + required[i], 0, sizeof(void (*)(void)));
		CU_ASSERT_EQUAL(hec_part_register(&r, &t), -EINVAL);
	}
	t = fake_ops;
	t.name = NULL;
	CU_ASSERT_EQUAL(hec_part_register(&r, &t), -EINVAL);
	t.name = "";
	CU_ASSERT_EQUAL(hec_part_register(&r, &t), -EINVAL);
	CU_ASSERT_EQUAL(hec_part_register(&r, NULL), -EINVAL);
	/* Gates come as all four or none. */
	t = machine_ops;
	t.gate_wait = NULL;
	CU_ASSERT_EQUAL(hec_part_register(&r, &t), -EINVAL);
	CU_ASSERT_EQUAL(r.n, 0);
	/* A name taken, even by another table. */
	CU_ASSERT_EQUAL(hec_part_register(&r, &fake_ops), 0);
	CU_ASSERT_EQUAL(hec_part_register(&r, &fake_ops), -EINVAL);
	t = machine_ops;
	t.name = "fake";
	CU_ASSERT_EQUAL(hec_part_register(&r, &t), -EINVAL);
	CU_ASSERT_PTR_EQUAL(hec_part_driver(&r, "fake"), &fake_ops);
	CU_ASSERT_EQUAL(r.n, 1);
}

static void test_full(void)
{
	static char names[HEC_PART_DRIVERS_MAX + 1][16];
	static struct hec_partition_ops t[HEC_PART_DRIVERS_MAX + 1];
	struct hec_part_registry r = { 0 };

	for (int i = 0; i <= HEC_PART_DRIVERS_MAX; i++) {
		t[i] = fake_ops;
		snprintf(names[i], sizeof(names[i]), "d%d", i);
		t[i].name = names[i];
	}
	for (int i = 0; i < HEC_PART_DRIVERS_MAX; i++)
		CU_ASSERT_EQUAL(hec_part_register(&r, &t[i]), 0);
	CU_ASSERT_EQUAL(hec_part_register(&r, &t[HEC_PART_DRIVERS_MAX]), -ENOSPC);
	CU_ASSERT_PTR_EQUAL(hec_part_driver(&r, "d7"), &t[7]);
}

static void test_absent_optional_ops(void)
{
	struct hec_partition_env env = { .node = "n", .cgroup_base = "b", .cpus = "" };
	struct hec_partition *p = NULL;
	struct hec_gate *g = NULL;
	struct hec_start_req sreq = { 0 };
	struct hec_run_req rreq = { 0 };
	struct hec_capture_cbs cbs = { 0 };
	unsigned long long usec;
	char why[256];

	CU_ASSERT_EQUAL_FATAL(fake_ops.create(&env, 5, &p, why, sizeof(why)), 0);
#define ABSENT(call, what)                                              \
	do {                                                            \
		why[0] = 0;                                             \
		CU_ASSERT_EQUAL(call, -EOPNOTSUPP);                     \
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "fake"));            \
		CU_ASSERT_PTR_NOT_NULL(strstr(why, what));              \
	} while (0)
	ABSENT(hec_partition_start(p, &sreq, why, sizeof(why)), "no machine");
	ABSENT(hec_partition_capture(p, 3, &cbs, NULL, NULL, why, sizeof(why)), "checkpoint capture");
	ABSENT(hec_partition_resume(p, why, sizeof(why)), "resume");
	ABSENT(hec_partition_run(p, &rreq, why, sizeof(why)), "runs no batch step");
	ABSENT(hec_partition_net_join(p, "node1", NULL, why, sizeof(why)), "no job network");
	ABSENT(hec_partition_freeze(p, why, sizeof(why)), "freeze");
	ABSENT(hec_partition_thaw(p, why, sizeof(why)), "thaw");
	ABSENT(hec_partition_cpu_usage(p, &usec, why, sizeof(why)), "CPU accounting");
	ABSENT(hec_partition_gate_open(p, &g, why, sizeof(why)), "gates");
#undef ABSENT
	/* No buffer for the reason: the same answer. */
	CU_ASSERT_EQUAL(hec_partition_run(p, &rreq, NULL, 0), -EOPNOTSUPP);
	CU_ASSERT_EQUAL(hec_partition_freeze(p, NULL, 0), -EOPNOTSUPP);
	/* What has no error: nothing of ours, nothing to say, nothing to do. */
	CU_ASSERT_EQUAL(hec_partition_reaped(p, 4242, 0), 0);
	CU_ASSERT_PTR_NULL(hec_partition_stats(p));
	hec_partition_forget(p);
	hec_partition_net_frame(p, 1, "x", 1);
	hec_partition_net_gone(p, 1);
	CU_ASSERT_EQUAL(hec_partition_node_fini(&fake_ops, &env, why, sizeof(why)), 0);
	p->ops->release(p);
}

struct host_seen {
	int exited, code;
	void *arg;
};

static struct host_seen seen;

static void h_exited(void *arg, int code, int sig, const char *error)
{
	(void)sig;
	(void)error;
	seen.exited++;
	seen.code = code;
	seen.arg = arg;
}

static void test_instance(void)
{
	static const char *const argv[] = { "true", NULL };
	const struct hec_part_host host = { .node = "node0", .exited = h_exited };
	struct hec_partition_env env = { .node = "n", .cgroup_base = "b", .cpus = "" };
	struct hec_run_req rreq = { .argv = argv };
	struct hec_partition *p = NULL, *q = NULL;
	struct hec_gate *g = NULL;
	int job_of_host = 0;
	char why[256] = "";
	struct fake *f;

	CU_ASSERT_EQUAL(fake_ops.create(&env, 0, &p, why, sizeof(why)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(why, "job id 0");
	CU_ASSERT_EQUAL_FATAL(fake_ops.create(&env, 9, &p, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL_FATAL(fake_ops.create(&env, 10, &q, why, sizeof(why)), 0);
	/* Each instance: its ops, its own driver data, its job. */
	CU_ASSERT_PTR_EQUAL(p->ops, &fake_ops);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p->priv);
	CU_ASSERT_PTR_NOT_EQUAL(p->priv, q->priv);
	CU_ASSERT_EQUAL(((struct fake *)p->priv)->job, 9);
	CU_ASSERT_EQUAL(p->job, 9);
	CU_ASSERT_EQUAL(q->job, 10);
	CU_ASSERT_PTR_NULL(p->host);
	p->ops->release(q);

	/* The wrappers call the ops of the instance's table, which reach the
	 * host through the instance. */
	p->ops = &machine_ops;
	p->host = &host;
	p->host_arg = &job_of_host;
	f = p->priv;
	memset(&seen, 0, sizeof(seen));
	CU_ASSERT_EQUAL(hec_partition_run(p, &rreq, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(f->runs, 1);
	CU_ASSERT_EQUAL(seen.exited, 1);
	CU_ASSERT_EQUAL(seen.code, 0);
	CU_ASSERT_PTR_EQUAL(seen.arg, &job_of_host);
	CU_ASSERT_EQUAL(hec_partition_reaped(p, 4241, 0), 0);
	CU_ASSERT_EQUAL(hec_partition_reaped(p, 4242, 0), 1);
	CU_ASSERT_EQUAL(f->reaped_pid, 4242);
	hec_partition_forget(p);
	CU_ASSERT_EQUAL(f->forgotten, 1);
	hec_partition_net_frame(p, 1, "abc", 3);
	CU_ASSERT_EQUAL(f->frames, 3);
	why[0] = 0;
	CU_ASSERT_EQUAL(hec_partition_gate_open(p, &g, why, sizeof(why)), -ENODEV);
	CU_ASSERT_STRING_EQUAL(why, "gate of job 9");
	/* Still absent in this table too. */
	CU_ASSERT_EQUAL(hec_partition_start(p, &(struct hec_start_req){ 0 }, why, sizeof(why)),
			-EOPNOTSUPP);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "machine"));
	p->ops->release(p);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "drivers looked up by name", test_lookup },
		{ "incomplete tables and taken names refused", test_refused },
		{ "a full registry", test_full },
		{ "absent optional ops: -EOPNOTSUPP and why", test_absent_optional_ops },
		{ "an instance: its ops, its data, its host", test_instance },
		{ NULL, NULL },
	};

	return hec_cunit_run("partition", tests);
}
