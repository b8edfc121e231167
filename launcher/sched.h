/*
 * Placement and queue order for hecctld: pure functions over plain arrays,
 * no I/O and no globals, so the policy is unit-tested on its own
 * (tests/unit/test_sched.c).
 *
 * Policy (doc/design.md): whole nodes, strict priority order, FIFO within a
 * priority, no backfill.  The job at the head of the queue waits until enough
 * nodes are idle and nothing behind it may start before it does; a big job is
 * therefore never starved by a stream of small ones.
 */
#ifndef HEC_SCHED_H
#define HEC_SCHED_H

#include <stddef.h>

/** One node as the planner sees it. */
struct sched_node {
	int idle;              /* up, connected and holding no job: may be allocated */
};

/** One pending job as the planner sees it. */
struct sched_job {
	long id;
	int priority;
	int nodes;             /* whole nodes wanted, >= 1 */
	void *ptr;             /* caller's record; the planner never touches it */
};

/** Queue order: priority descending, then id (submit order) ascending.
 *  \return <0, 0, >0 like strcmp. */
int sched_job_cmp(const struct sched_job *a, const struct sched_job *b);

/** Sort @jobs into queue order (stable with respect to sched_job_cmp). */
void sched_sort(struct sched_job *jobs, size_t njobs);

/**
 * Decide which of the pending jobs start now.
 *
 * @jobs must be in queue order (sched_sort()).  Jobs are taken from the head
 * while each finds enough idle nodes; the first one that does not fit ends the
 * pass, so the jobs that start are always a prefix of @jobs.  Nodes are given
 * out lowest index first.  @alloc (room for @nnodes entries) receives the node
 * indices: the first job's @jobs[0].nodes indices, then the second job's, and
 * so on.  Allocated nodes have their @idle cleared.
 *
 * \return the number of jobs that start (0..@njobs).
 */
size_t sched_plan(struct sched_node *nodes, size_t nnodes,
		  const struct sched_job *jobs, size_t njobs, size_t *alloc);

/** Pending reason of the job at queue position @pos after a pass that started
 *  @nstarted jobs: "Resources" for the new head, "Priority" behind it. */
const char *sched_pending_reason(size_t pos, size_t nstarted);

/**
 * Block distribution of @ntasks ranks over @nnodes nodes: every node gets
 * ntasks / nnodes ranks and the first ntasks % nnodes nodes one more.
 * \return the ranks of node @i (0-based), or 0 for bad arguments.
 */
int sched_ranks(int ntasks, int nnodes, int i);

/** Natural order of node names: "node2" sorts before "node10". */
int sched_name_cmp(const char *a, const char *b);

#endif
