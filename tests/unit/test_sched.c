/* CUnit: queue order and whole-node placement of hecctld (launcher/sched.c). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "launcher/sched.h"
#include "tests/unit/cunit_main.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void set_idle(struct sched_node *nodes, size_t n, const int *idle)
{
	for (size_t i = 0; i < n; i++)
		nodes[i].idle = idle[i];
}

static void test_order(void)
{
	struct sched_job jobs[] = {
		{ .id = 5, .priority = 0, .nodes = 1 },
		{ .id = 2, .priority = 0, .nodes = 1 },
		{ .id = 9, .priority = 10, .nodes = 1 },
		{ .id = 1, .priority = -5, .nodes = 1 },
		{ .id = 7, .priority = 10, .nodes = 1 },
		{ .id = 3, .priority = 0, .nodes = 1 },
	};
	const long want[] = { 7, 9, 2, 3, 5, 1 };

	sched_sort(jobs, N(jobs));
	for (size_t i = 0; i < N(jobs); i++)
		CU_ASSERT_EQUAL(jobs[i].id, want[i]);
	CU_ASSERT(sched_job_cmp(&jobs[0], &jobs[1]) < 0);
	CU_ASSERT(sched_job_cmp(&jobs[1], &jobs[0]) > 0);
	CU_ASSERT_EQUAL(sched_job_cmp(&jobs[2], &jobs[2]), 0);
}

/* Jobs that fit start in queue order; nodes are handed out lowest first. */
static void test_prefix_starts(void)
{
	struct sched_node nodes[4];
	const int idle[] = { 1, 1, 1, 1 };
	struct sched_job jobs[] = {
		{ .id = 1, .nodes = 2 }, { .id = 2, .nodes = 1 }, { .id = 3, .nodes = 2 },
		{ .id = 4, .nodes = 1 },
	};
	size_t alloc[4] = { 99, 99, 99, 99 };
	size_t started;

	set_idle(nodes, N(nodes), idle);
	started = sched_plan(nodes, N(nodes), jobs, N(jobs), alloc);
	/* 1 takes 0,1; 2 takes 2; 3 needs two with one left: stop, and 4
	 * (which would fit) does not jump ahead. */
	CU_ASSERT_EQUAL(started, 2);
	CU_ASSERT_EQUAL(alloc[0], 0);
	CU_ASSERT_EQUAL(alloc[1], 1);
	CU_ASSERT_EQUAL(alloc[2], 2);
	CU_ASSERT_EQUAL(alloc[3], 99);
	CU_ASSERT_EQUAL(nodes[0].idle, 0);
	CU_ASSERT_EQUAL(nodes[2].idle, 0);
	CU_ASSERT_EQUAL(nodes[3].idle, 1);
	CU_ASSERT_STRING_EQUAL(sched_pending_reason(2, started), "Resources");
	CU_ASSERT_STRING_EQUAL(sched_pending_reason(3, started), "Priority");
}

/* The head job blocks the queue even when a later, smaller job would fit. */
static void test_head_of_line_blocking(void)
{
	struct sched_node nodes[3];
	const int idle[] = { 1, 0, 1 };
	struct sched_job jobs[] = {
		{ .id = 10, .priority = 5, .nodes = 3 },
		{ .id = 4, .priority = 0, .nodes = 1 },
		{ .id = 11, .priority = 0, .nodes = 1 },
	};
	size_t alloc[3];

	sched_sort(jobs, N(jobs));
	set_idle(nodes, N(nodes), idle);
	CU_ASSERT_EQUAL(jobs[0].id, 10);
	CU_ASSERT_EQUAL(sched_plan(nodes, N(nodes), jobs, N(jobs), alloc), 0);
	CU_ASSERT_EQUAL(nodes[0].idle, 1); /* nothing handed out */
	CU_ASSERT_EQUAL(nodes[2].idle, 1);
	CU_ASSERT_STRING_EQUAL(sched_pending_reason(0, 0), "Resources");
	CU_ASSERT_STRING_EQUAL(sched_pending_reason(1, 0), "Priority");

	/* Once node 1 is free the big job goes first, then nothing is left. */
	nodes[1].idle = 1;
	CU_ASSERT_EQUAL(sched_plan(nodes, N(nodes), jobs, N(jobs), alloc), 1);
	CU_ASSERT_EQUAL(alloc[0], 0);
	CU_ASSERT_EQUAL(alloc[1], 1);
	CU_ASSERT_EQUAL(alloc[2], 2);
}

/* A job bigger than the idle set (or the cluster) waits; no partial start. */
static void test_cannot_fit_waits(void)
{
	struct sched_node nodes[2];
	const int idle[] = { 1, 1 };
	struct sched_job big = { .id = 1, .nodes = 3 };
	struct sched_job zero = { .id = 2, .nodes = 0 };
	size_t alloc[2] = { 7, 7 };

	set_idle(nodes, N(nodes), idle);
	CU_ASSERT_EQUAL(sched_plan(nodes, N(nodes), &big, 1, alloc), 0);
	CU_ASSERT_EQUAL(alloc[0], 7);
	CU_ASSERT_EQUAL(nodes[0].idle, 1);
	CU_ASSERT_EQUAL(nodes[1].idle, 1);
	CU_ASSERT_EQUAL(sched_plan(nodes, N(nodes), &zero, 1, alloc), 0);
	CU_ASSERT_EQUAL(sched_plan(nodes, 0, &big, 1, alloc), 0);
	CU_ASSERT_EQUAL(sched_plan(nodes, N(nodes), NULL, 0, alloc), 0);
}

/* Busy nodes in between are skipped. */
static void test_skips_busy_nodes(void)
{
	struct sched_node nodes[5];
	const int idle[] = { 0, 1, 0, 1, 1 };
	struct sched_job jobs[] = { { .id = 1, .nodes = 2 }, { .id = 2, .nodes = 1 } };
	size_t alloc[5];

	set_idle(nodes, N(nodes), idle);
	CU_ASSERT_EQUAL(sched_plan(nodes, N(nodes), jobs, N(jobs), alloc), 2);
	CU_ASSERT_EQUAL(alloc[0], 1);
	CU_ASSERT_EQUAL(alloc[1], 3);
	CU_ASSERT_EQUAL(alloc[2], 4);
	for (size_t i = 0; i < N(nodes); i++)
		CU_ASSERT_EQUAL(nodes[i].idle, 0);
}

static void test_ranks(void)
{
	static const struct { int ntasks, nnodes; int want[4]; } cases[] = {
		{ 4, 2, { 2, 2 } },
		{ 5, 2, { 3, 2 } },
		{ 7, 3, { 3, 2, 2 } },
		{ 3, 3, { 1, 1, 1 } },
		{ 10, 4, { 3, 3, 2, 2 } },
		{ 1, 1, { 1 } },
	};

	for (size_t c = 0; c < N(cases); c++) {
		int sum = 0;

		for (int i = 0; i < cases[c].nnodes; i++) {
			int r = sched_ranks(cases[c].ntasks, cases[c].nnodes, i);

			CU_ASSERT_EQUAL(r, cases[c].want[i]);
			sum += r;
		}
		CU_ASSERT_EQUAL(sum, cases[c].ntasks);
	}
	CU_ASSERT_EQUAL(sched_ranks(4, 2, 2), 0);
	CU_ASSERT_EQUAL(sched_ranks(4, 0, 0), 0);
	CU_ASSERT_EQUAL(sched_ranks(0, 2, 0), 0);
	CU_ASSERT_EQUAL(sched_ranks(4, 2, -1), 0);
}

static void test_name_order(void)
{
	CU_ASSERT(sched_name_cmp("node2", "node10") < 0);
	CU_ASSERT(sched_name_cmp("node10", "node9") > 0);
	CU_ASSERT(sched_name_cmp("node1", "node1") == 0);
	CU_ASSERT(sched_name_cmp("a", "b") < 0);
	CU_ASSERT(sched_name_cmp("node", "node0") < 0);
	CU_ASSERT(sched_name_cmp("rack2-n3", "rack10-n1") < 0);
	CU_ASSERT(sched_name_cmp("node01", "node1") != 0); /* total order */
	CU_ASSERT(sched_name_cmp("node01", "node2") < 0);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "priority then FIFO order", test_order },
		{ "jobs that fit start as a prefix", test_prefix_starts },
		{ "head-of-line blocking, no backfill", test_head_of_line_blocking },
		{ "a job that cannot fit waits", test_cannot_fit_waits },
		{ "busy nodes are skipped", test_skips_busy_nodes },
		{ "block rank distribution", test_ranks },
		{ "natural node name order", test_name_order },
		{ NULL, NULL },
	};

	return hec_cunit_run("sched", tests);
}
