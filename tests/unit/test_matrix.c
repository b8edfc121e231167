/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: the gang matrix (gang/matrix.c): packing, bounds, preemption. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hec/gang.h"
#include "tests/unit/cunit_main.h"

static struct gang_matrix *mk(int max_share, int ncols, long mem_mb)
{
	struct gang_matrix *m = NULL;

	CU_ASSERT_EQUAL_FATAL(gm_new(max_share, &m), 0);
	for (int c = 0; c < ncols; c++)
		CU_ASSERT_EQUAL_FATAL(gm_col_insert(m, c, mem_mb, 1), 0);
	return m;
}

static void add(struct gang_matrix *m, long id, int prio, int nodes, int share, long mem)
{
	struct gang_job_spec s = { .id = id, .priority = prio, .nodes = nodes, .share = share,
				   .mem_mb = mem };

	CU_ASSERT_EQUAL_FATAL(gm_job_add(m, &s), 0);
}

static struct gang_job_info info(struct gang_matrix *m, long id)
{
	struct gang_job_info i;

	memset(&i, 0, sizeof(i));
	CU_ASSERT_EQUAL(gm_job_info(m, id, &i), 0);
	return i;
}

static enum gang_state state(struct gang_matrix *m, long id)
{
	return info(m, id).state;
}

static int row(struct gang_matrix *m, long id)
{
	return info(m, id).row;
}

/* "cols" of a job as a bitmask, for compact asserts. */
static unsigned mask(struct gang_matrix *m, long id)
{
	struct gang_job_info i = info(m, id);
	unsigned b = 0;

	for (int k = 0; k < i.ncols; k++)
		b |= 1u << i.cols[k];
	return b;
}

/* First fit: lowest row with room, lowest columns; a new row only when full. */
static void test_first_fit(void)
{
	struct gang_matrix *m = mk(3, 4, 0);

	add(m, 1, 0, 2, 1, 0);
	add(m, 2, 0, 2, 1, 0);
	add(m, 3, 0, 3, 1, 0);
	add(m, 4, 0, 1, 1, 0);
	add(m, 5, 0, 4, 1, 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 5);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(mask(m, 1), 0x3);
	CU_ASSERT_EQUAL(row(m, 2), 0);
	CU_ASSERT_EQUAL(mask(m, 2), 0xc);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	CU_ASSERT_EQUAL(mask(m, 3), 0x7);
	CU_ASSERT_EQUAL(row(m, 4), 1); /* fills row 1's last column, no new row */
	CU_ASSERT_EQUAL(mask(m, 4), 0x8);
	CU_ASSERT_EQUAL(row(m, 5), 2);
	CU_ASSERT_EQUAL(gm_nrows(m), 3);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 3), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 1, 3), 4);
	CU_ASSERT_EQUAL(gm_cell(m, 2, 0), 5);
	CU_ASSERT_EQUAL(gm_cell(m, 3, 0), 0);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 9), 0);

	/* A hole in row 0 is taken before row 2's. */
	CU_ASSERT_EQUAL(gm_job_remove(m, 2), 0);
	add(m, 6, 0, 1, 1, 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 1);
	CU_ASSERT_EQUAL(row(m, 6), 0);
	CU_ASSERT_EQUAL(mask(m, 6), 0x4);
	CU_ASSERT_EQUAL(gm_job_remove(m, 99), -ENOENT);
	gm_free(m);
}

/* max_share bounds the rows; the head waits, nothing jumps it. */
static void test_rows_bound(void)
{
	struct gang_matrix *m = mk(2, 2, 0);
	unsigned long v;

	add(m, 1, 0, 2, 1, 0);
	add(m, 2, 0, 2, 1, 0);
	add(m, 3, 0, 2, 1, 0);
	add(m, 4, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(gm_nrows(m), 2);
	CU_ASSERT_EQUAL(state(m, 3), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 3).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 4).wait, GANG_WAIT_PRIORITY);
	/* A pass that changes nothing leaves the version alone. */
	v = gm_version(m);
	CU_ASSERT_EQUAL(gm_schedule(m), 0);
	CU_ASSERT_EQUAL(gm_version(m), v);

	/* Job 1 ends: 3 takes its row, then 4 has no room. */
	gm_job_remove(m, 1);
	CU_ASSERT_EQUAL(gm_nrows(m), 1); /* row 0 emptied and was removed */
	CU_ASSERT_EQUAL(row(m, 2), 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 4).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_NOT_EQUAL(gm_version(m), v);

	/* Raising the bound makes room. */
	CU_ASSERT_EQUAL(gm_set_max_share(m, 65), -EINVAL);
	CU_ASSERT_EQUAL(gm_set_max_share(m, 0), -EINVAL);
	CU_ASSERT_EQUAL(gm_set_max_share(m, 3), 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 4), 2);
	gm_free(m);
}

/* Memory per node: placed and suspended jobs count; 0 is not counted. */
static void test_memory_bound(void)
{
	struct gang_matrix *m = mk(4, 2, 1000);

	add(m, 1, 0, 2, 1, 600);
	add(m, 2, 0, 1, 1, 600);  /* fits in no row: both nodes hold 600 */
	add(m, 3, -1, 1, 1, 400); /* lower priority, behind the head */
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 2), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 2).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 3), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 3).wait, GANG_WAIT_PRIORITY);
	CU_ASSERT_EQUAL(gm_col_mem_used(m, 0), 600);
	CU_ASSERT_EQUAL(gm_col_mem_used(m, 5), -EINVAL);

	/* A job that does not count memory goes in a second row. */
	gm_job_remove(m, 2);
	add(m, 4, 0, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 4), 1);
	CU_ASSERT_EQUAL(row(m, 3), 2); /* 400 fits beside 600 */
	CU_ASSERT_EQUAL(mask(m, 3), 0x1);
	CU_ASSERT_EQUAL(gm_col_mem_used(m, 0), 1000);

	/* Eviction never frees memory: a suspended job keeps its share, so a
	 * high-priority job that needs the memory evicts nobody for good. */
	gm_job_remove(m, 4);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	add(m, 5, 10, 1, 1, 500);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 5), GANG_PENDING);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	gm_free(m);
}

/* The memory bound against preemption: evicting makes no room, so undo. */
static void test_memory_blocks_preemption(void)
{
	struct gang_matrix *m = mk(1, 1, 1000);

	add(m, 1, 0, 1, 1, 600);
	gm_schedule(m);
	add(m, 2, 5, 1, 1, 600);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(state(m, 2), GANG_PENDING);
	CU_ASSERT_EQUAL(gm_col_mem_used(m, 0), 600);
	/* With room in memory it evicts. */
	gm_job_remove(m, 2);
	add(m, 3, 5, 1, 1, 400);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(info(m, 1).preempted_by, 3);
	CU_ASSERT_EQUAL(gm_col_mem_used(m, 0), 1000);
	gm_free(m);
}

/* Exclusive jobs hold their columns in every row and need empty columns. */
static void test_exclusive_vs_share(void)
{
	struct gang_matrix *m = mk(4, 4, 0);
	long ids[4];

	add(m, 1, 0, 1, 1, 0);   /* share on col 0 */
	add(m, 2, 0, 2, 0, 0);   /* exclusive: cols 1,2 */
	add(m, 3, 0, 2, 1, 0);   /* share: 0 and 3 in row 0? col 0 taken in row 0 -> row 1 */
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 1), 0x1);
	CU_ASSERT_EQUAL(mask(m, 2), 0x6);
	CU_ASSERT_EQUAL(row(m, 2), -1);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	CU_ASSERT_EQUAL(mask(m, 3), 0x9);
	CU_ASSERT_EQUAL(gm_nrows(m), 2);
	for (int r = 0; r < 2; r++) {
		CU_ASSERT_EQUAL(gm_cell(m, r, 1), 2);
		CU_ASSERT_EQUAL(gm_cell(m, r, 2), 2);
	}
	CU_ASSERT_EQUAL(gm_cell(m, 0, 3), 0);

	/* Another exclusive job: col 3 has a share job in row 1, col 0 too. */
	add(m, 4, 0, 1, 0, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	/* Exclusive jobs are not evicted, and do not evict. */
	add(m, 5, 9, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 5), GANG_RUNNING); /* row 0, col 3 */
	CU_ASSERT_EQUAL(mask(m, 5), 0x8);
	CU_ASSERT_EQUAL(gm_col_suspended(m, 1, ids, 4), 0);
	/* An exclusive job alone still shows in every row, even with no rows. */
	gm_job_remove(m, 1);
	gm_job_remove(m, 3);
	gm_job_remove(m, 5);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 4), 0x1);
	CU_ASSERT_EQUAL(gm_nrows(m), 0);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 1), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 5, 0), 4);
	gm_free(m);
}

/* Exclusive jobs keep the old whole-node queue: prefix starts, no backfill. */
static void test_exclusive_queue(void)
{
	struct gang_matrix *m = mk(4, 4, 0);

	add(m, 1, 0, 2, 0, 0);
	add(m, 2, 0, 1, 0, 0);
	add(m, 3, 0, 2, 0, 0);
	add(m, 4, 0, 1, 0, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 1), 0x3);
	CU_ASSERT_EQUAL(mask(m, 2), 0x4);
	CU_ASSERT_EQUAL(state(m, 3), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 3).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING); /* would fit, must not jump */
	CU_ASSERT_EQUAL(info(m, 4).wait, GANG_WAIT_PRIORITY);
	/* Priority beats submit order. */
	add(m, 5, 10, 1, 0, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 5), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 5), 0x8);
	gm_job_remove(m, 1);
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 3), 0x3);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	gm_free(m);
}

/* Lower priority evicted first, newest first among equals; undo if useless. */
static void test_preemption(void)
{
	struct gang_matrix *m = mk(1, 2, 0);

	add(m, 1, 0, 1, 1, 0);
	add(m, 2, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 1), 0x1);
	CU_ASSERT_EQUAL(mask(m, 2), 0x2);

	/* One column needed: the newest of the equals goes. */
	add(m, 3, 1, 1, 1, 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 2); /* 3 started, 2 suspended */
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 2), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(info(m, 2).preempted_by, 3);
	CU_ASSERT_EQUAL(mask(m, 3), 0x2);
	CU_ASSERT_EQUAL(mask(m, 2), 0x2); /* keeps its column */
	{
		long ids[2] = { 0, 0 };

		CU_ASSERT_EQUAL(gm_col_suspended(m, 1, ids, 2), 1);
		CU_ASSERT_EQUAL(ids[0], 2);
		CU_ASSERT_EQUAL(gm_col_suspended(m, 0, ids, 2), 0);
		CU_ASSERT_EQUAL(gm_col_suspended(m, 7, ids, 2), -EINVAL);
	}

	/* Two columns at priority 5: 1 (prio 0) goes first, then 3 (prio 1). */
	add(m, 4, 5, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 3), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(info(m, 1).preempted_by, 4);
	CU_ASSERT_EQUAL(info(m, 2).preempted_by, 3); /* unchanged */

	/* Equal priority never evicts, and a useless eviction is undone:
	 * job 6 (prio 5) could only evict nothing here. */
	add(m, 6, 5, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 6), GANG_PENDING);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	gm_free(m);
}

static void test_preemption_undo(void)
{
	struct gang_matrix *m = mk(1, 2, 0);

	add(m, 1, 0, 1, 1, 0);  /* col 0, low */
	gm_schedule(m);
	add(m, 2, 5, 1, 1, 0);  /* col 1, as high as the newcomer */
	gm_schedule(m);
	add(m, 3, 5, 2, 1, 0);  /* needs both: evicting 1 is not enough */
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_PENDING);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(mask(m, 1), 0x1);
	{
		/* An undone eviction is no change: nothing to publish. */
		unsigned long v = gm_version(m);

		CU_ASSERT_EQUAL(gm_schedule(m), 0);
		CU_ASSERT_EQUAL(gm_version(m), v);
	}
	CU_ASSERT_EQUAL(info(m, 1).preempted_by, 0);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 0), 1);

	/* Pinned jobs (starting or ending) are not evicted. */
	gm_job_remove(m, 3);
	CU_ASSERT_EQUAL(gm_job_pin(m, 1, 1), 0);
	CU_ASSERT_EQUAL(gm_job_pin(m, 42, 1), -ENOENT);
	add(m, 4, 5, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	/* Preemption switched off (timeslice none): no eviction either. */
	gm_job_pin(m, 1, 0);
	gm_set_preempt(m, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	gm_set_preempt(m, 1);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	gm_free(m);
}

/* Evicted more than needed (order is by priority, not by columns): the
 * extra victim goes straight back. */
static void test_preemption_gives_back(void)
{
	struct gang_matrix *m = mk(1, 2, 0);

	add(m, 1, 0, 1, 1, 0); /* col 0, prio 0 */
	gm_schedule(m);
	add(m, 2, 1, 1, 1, 0); /* col 1, prio 1 */
	gm_schedule(m);
	add(m, 3, 5, 1, 1, 0);
	gm_schedule(m);
	/* 1 is evicted first (lowest) and that is enough. */
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 3), 0x1);
	gm_free(m);

	/* Here the lowest victim is on the wrong column for a 2-column job in
	 * a 3-column matrix: 1 (col 0) then 2 (col 1) are evicted, the job
	 * takes cols 0,1, and nobody comes back (no room). */
	m = mk(1, 3, 0);
	add(m, 1, 0, 1, 1, 0);
	gm_schedule(m);
	add(m, 2, 1, 1, 1, 0);
	gm_schedule(m);
	add(m, 3, 9, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 3), 0x4);
	add(m, 4, 5, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 4), 0x3);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 2), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	gm_free(m);

	/* The first victim (col 2) is not enough; after the second (cols 0,1)
	 * the job takes cols 0,1 and the first victim is not needed: it comes
	 * straight back. */
	m = mk(1, 3, 0);
	add(m, 1, 1, 2, 1, 0); /* cols 0,1, prio 1 */
	gm_schedule(m);
	add(m, 2, 0, 1, 1, 0); /* col 2, prio 0 */
	gm_schedule(m);
	add(m, 3, 5, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 3), 0x3);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(info(m, 1).preempted_by, 3);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 2).preempted_by, 0);
	CU_ASSERT_EQUAL(row(m, 2), 0);
	CU_ASSERT_EQUAL(gm_col_set(m, 3, 0, 1), -EINVAL);
	gm_free(m);
}

/* One row, two columns: job 1 (@prio1) on column 0, job 2 (@prio2) on
 * column 1, job @guarded (0: none) guarded. */
static struct gang_matrix *two_running(int prio1, int prio2, long guarded)
{
	struct gang_matrix *m = mk(1, 2, 0);

	add(m, 1, prio1, 1, 1, 0);
	add(m, 2, prio2, 1, 1, 0);
	gm_schedule(m);
	if (guarded)
		CU_ASSERT_EQUAL(gm_job_guard(m, guarded, 1), 0);
	return m;
}

/* A guarded victim is not left suspended: the evicting job waits for it
 * (GANG_WAIT_CKPT) until the guard is lifted; unguarded ones wait with it. */
static void test_preemption_guard(void)
{
	struct gang_matrix *m = two_running(0, 0, 2); /* 2, the newest, is evicted first */
	unsigned long v;

	CU_ASSERT_EQUAL(gm_job_guard(m, 42, 1), -ENOENT);
	CU_ASSERT_EQUAL(info(m, 2).guard, 1);
	add(m, 3, 5, 1, 1, 0);
	add(m, 4, 0, 1, 1, 0); /* behind 3: blocked (and evicts nobody) */
	v = gm_version(m);
	CU_ASSERT_EQUAL(gm_schedule(m), 0);
	CU_ASSERT_EQUAL(gm_version(m), v); /* nothing to publish */
	CU_ASSERT_EQUAL(gm_nrows(m), 1);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(row(m, 2), 0);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 1), 2);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 3);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 1).ckpt_wanted_by, 0); /* the guard picks no other victim */
	CU_ASSERT_EQUAL(state(m, 3), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 3).wait, GANG_WAIT_CKPT);
	CU_ASSERT_EQUAL(info(m, 3).ckpt_of, 2);
	CU_ASSERT_EQUAL(info(m, 3).ncols, 0);
	CU_ASSERT_EQUAL(info(m, 4).wait, GANG_WAIT_PRIORITY);
	CU_ASSERT_EQUAL(gm_col_suspended(m, 1, NULL, 0), 0);
	/* Still wanted on the next pass; then the guard goes: suspended. */
	gm_schedule(m);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 3);
	CU_ASSERT_EQUAL(gm_job_guard(m, 2, 0), 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 2);
	CU_ASSERT_EQUAL(state(m, 2), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(info(m, 2).preempted_by, 3);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 0);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 3).ckpt_of, 0);
	CU_ASSERT_EQUAL(mask(m, 3), 0x2);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	/* Back once 3 is gone; guarded again, a new preemptor waits again. */
	gm_job_remove(m, 3);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	gm_job_remove(m, 4);
	gm_job_guard(m, 2, 1);
	add(m, 5, 5, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 5).ckpt_of, 2);
	/* The preemptor gone: nobody wants it any more. */
	gm_job_remove(m, 5);
	gm_schedule(m);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 0);
	gm_free(m);

	/* Two victims needed, one guarded: neither is suspended until the
	 * guard goes, then both are; two guarded: not until both guards go. */
	m = two_running(0, 0, 1);
	add(m, 3, 5, 2, 1, 0);
	v = gm_version(m);
	CU_ASSERT_EQUAL(gm_schedule(m), 0);
	CU_ASSERT_EQUAL(gm_version(m), v);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 0), 1);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 1), 2);
	CU_ASSERT_EQUAL(info(m, 1).ckpt_wanted_by, 3);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 3); /* it waits with 1 */
	CU_ASSERT_EQUAL(info(m, 3).wait, GANG_WAIT_CKPT);
	CU_ASSERT_EQUAL(info(m, 3).ckpt_of, 1);
	gm_job_guard(m, 1, 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 3);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 2), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	gm_job_remove(m, 3);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	gm_job_guard(m, 1, 1);
	gm_job_guard(m, 2, 1);
	add(m, 4, 5, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(info(m, 4).ckpt_of, 2); /* the first evicted */
	CU_ASSERT_EQUAL(info(m, 1).ckpt_wanted_by, 4);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 4);
	gm_job_guard(m, 2, 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 0);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 4).ckpt_of, 1);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 4);
	gm_job_guard(m, 1, 0);
	CU_ASSERT_EQUAL(gm_schedule(m), 3);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 2), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	gm_free(m);

	/* A guarded job evicted on the way but not needed (it goes straight
	 * back) holds nothing up; nor does one that is not a victim at all. */
	m = mk(1, 3, 0);
	add(m, 1, 1, 2, 1, 0); /* cols 0,1, prio 1 */
	add(m, 2, 0, 1, 1, 0); /* col 2, prio 0: evicted first, comes back */
	gm_schedule(m);
	gm_job_guard(m, 2, 1);
	add(m, 3, 5, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 0);
	gm_free(m);
	m = two_running(0, 1, 2);
	add(m, 3, 5, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 2), GANG_RUNNING);
	CU_ASSERT_EQUAL(info(m, 2).ckpt_wanted_by, 0);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	gm_free(m);
}

/* Suspended jobs come back on their own columns, before pending jobs of the
 * same priority, and not past a blocked head. */
static void test_suspended_reentry(void)
{
	struct gang_matrix *m = mk(1, 3, 0);

	add(m, 1, 0, 1, 1, 0);
	add(m, 2, 0, 1, 1, 0);
	add(m, 3, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 3), 0x4);
	add(m, 4, 5, 1, 1, 0); /* evicts 3 (newest) from col 2 */
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(mask(m, 4), 0x4);

	/* Col 0 frees up: 3 must not move there, and a pending job of the
	 * same priority submitted later does not take 3's place. */
	gm_job_remove(m, 1);
	add(m, 5, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(mask(m, 5), 0x1);

	/* Col 2 frees: 3 re-enters there (pending 6 of equal priority waits). */
	add(m, 6, 0, 1, 1, 0);
	gm_job_remove(m, 4);
	CU_ASSERT_EQUAL(gm_schedule(m), 1);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 3), 0x4);
	CU_ASSERT_EQUAL(info(m, 3).preempted_by, 0);
	CU_ASSERT_EQUAL(state(m, 6), GANG_PENDING);
	gm_free(m);

	/* A blocked pending head of higher priority holds back a resume. */
	m = mk(1, 2, 0);
	add(m, 1, 0, 1, 1, 0);
	gm_schedule(m);
	add(m, 2, 3, 1, 1, 0);
	gm_schedule(m);         /* 1 on col 0, 2 on col 1 */
	add(m, 3, 5, 1, 1, 0);
	gm_schedule(m);         /* evicts 1 */
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	gm_job_pin(m, 2, 1);
	add(m, 4, 4, 2, 1, 0);    /* blocked: 3 (prio 5) and pinned 2 */
	gm_job_remove(m, 3);    /* col 0 is free again */
	gm_schedule(m);
	/* 4 could not evict pinned 2: it is the blocked head; 1 (prio 0)
	 * stays suspended behind it. */
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 4).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	/* A pinned suspended job never resumes. */
	gm_job_remove(m, 4);
	gm_job_pin(m, 1, 1);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	gm_job_pin(m, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	gm_free(m);
}

/* A job that can never fit on the columns that are up waits without
 * blocking; one that could fit blocks the queue. */
static void test_never_fits(void)
{
	struct gang_matrix *m = mk(2, 3, 1000);

	add(m, 1, 9, 4, 1, 0);     /* more nodes than columns */
	add(m, 2, 8, 1, 1, 2000);  /* more memory than any node */
	add(m, 3, 7, 3, 0, 0);     /* exclusive, fits an empty matrix */
	add(m, 4, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 1), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 1).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 2), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 2).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 3), GANG_RUNNING);
	CU_ASSERT_EQUAL(state(m, 4), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 4).wait, GANG_WAIT_RESOURCES);
	/* With a column down, the 3-node exclusive job cannot ever fit now. */
	gm_job_remove(m, 3);
	add(m, 5, 7, 3, 0, 0);
	gm_col_set(m, 1, 1000, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 5), GANG_PENDING);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 4), 0x1);
	gm_free(m);
}

/* The filter: job 1 may use columns 2 and 3 only; job 3 only column 0. */
static int only_some(void *arg, long id, int col)
{
	int *asked = arg;

	(*asked)++;
	if (id == 1)
		return col >= 2;
	if (id == 3)
		return col == 0;
	return 1;
}

/* A column filter (hec restart --nodes): placement keeps to it, and a job
 * that cannot fit on its allowed columns does not block those behind it. */
static void test_col_filter(void)
{
	struct gang_matrix *m = mk(2, 4, 0);
	int asked = 0;

	gm_set_col_filter(m, only_some, &asked);
	add(m, 1, 9, 2, 0, 0);      /* exclusive, 2 of columns 2-3 */
	add(m, 2, 5, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT(asked > 0);
	CU_ASSERT_EQUAL(state(m, 1), GANG_RUNNING);
	CU_ASSERT_EQUAL(mask(m, 1), 0xc);
	CU_ASSERT_EQUAL(mask(m, 2), 0x1);
	/* 2 nodes where only one column is allowed: never fits, blocks nobody */
	add(m, 3, 9, 2, 1, 0);
	add(m, 4, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 3), GANG_PENDING);
	CU_ASSERT_EQUAL(info(m, 3).wait, GANG_WAIT_RESOURCES);
	CU_ASSERT_EQUAL(state(m, 4), GANG_RUNNING);
	/* with its column down, job 1 may not move elsewhere */
	gm_job_remove(m, 1);
	gm_col_set(m, 3, 0, 0);
	add(m, 5, 9, 2, 0, 0);
	gm_set_col_filter(m, NULL, NULL);
	gm_schedule(m);
	CU_ASSERT_EQUAL(state(m, 5), GANG_PENDING); /* columns 0,1 hold share jobs, 3 is down */
	gm_free(m);
}

/* Rows that empty out are removed; the rows above move down. */
static void test_compaction(void)
{
	struct gang_matrix *m = mk(4, 2, 0);

	for (long id = 1; id <= 4; id++)
		add(m, id, 0, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(gm_nrows(m), 4);
	CU_ASSERT_EQUAL(row(m, 4), 3);
	gm_job_remove(m, 2);
	CU_ASSERT_EQUAL(gm_nrows(m), 3);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	CU_ASSERT_EQUAL(row(m, 4), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 2, 0), 4);
	CU_ASSERT_EQUAL(gm_cell(m, 3, 0), 0);
	gm_job_remove(m, 1);
	gm_job_remove(m, 4);
	CU_ASSERT_EQUAL(gm_nrows(m), 1);
	CU_ASSERT_EQUAL(row(m, 3), 0);
	gm_job_remove(m, 3);
	CU_ASSERT_EQUAL(gm_nrows(m), 0);
	gm_free(m);
}

/* Rows turn so that a given row comes first; the cyclic order, the
 * columns and a later placement stay right. */
static void test_rows_rotate(void)
{
	struct gang_matrix *m = mk(4, 2, 0);
	unsigned long v;

	add(m, 1, 0, 2, 1, 0);
	add(m, 2, 0, 2, 1, 0);
	add(m, 3, 0, 1, 1, 0);
	add(m, 4, 0, 1, 1, 0); /* beside 3 in row 2 */
	gm_schedule(m);
	CU_ASSERT_EQUAL(gm_nrows(m), 3);
	CU_ASSERT_EQUAL(row(m, 3), 2);
	CU_ASSERT_EQUAL(row(m, 4), 2);
	v = gm_version(m);
	CU_ASSERT_EQUAL(gm_rows_rotate(m, 0), 0);
	CU_ASSERT_EQUAL(gm_version(m), v); /* nothing moved */
	CU_ASSERT_EQUAL(gm_rows_rotate(m, 2), 0);
	CU_ASSERT(gm_version(m) != v);
	/* 3 and 4 first, then 1, then 2 */
	CU_ASSERT_EQUAL(row(m, 3), 0);
	CU_ASSERT_EQUAL(row(m, 4), 0);
	CU_ASSERT_EQUAL(row(m, 1), 1);
	CU_ASSERT_EQUAL(row(m, 2), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 0), 3);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 1), 4);
	CU_ASSERT_EQUAL(gm_cell(m, 1, 0), 1);
	CU_ASSERT_EQUAL(gm_cell(m, 1, 1), 1);
	CU_ASSERT_EQUAL(gm_cell(m, 2, 1), 2);
	CU_ASSERT_EQUAL(mask(m, 3), 0x1);
	CU_ASSERT_EQUAL(mask(m, 4), 0x2);
	/* row 1 again: 1, 2, then 3 and 4 */
	CU_ASSERT_EQUAL(gm_rows_rotate(m, 1), 0);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(row(m, 2), 1);
	CU_ASSERT_EQUAL(row(m, 3), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 2, 1), 4);
	/* out of range: refused, nothing moved */
	v = gm_version(m);
	CU_ASSERT_EQUAL(gm_rows_rotate(m, 3), -EINVAL);
	CU_ASSERT_EQUAL(gm_rows_rotate(m, -1), -EINVAL);
	CU_ASSERT_EQUAL(gm_rows_rotate(NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(gm_version(m), v);
	/* placement after a turn: a new row below the last, removal compacts */
	add(m, 5, 0, 2, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 5), 3);
	gm_job_remove(m, 2);
	CU_ASSERT_EQUAL(gm_nrows(m), 3);
	CU_ASSERT_EQUAL(row(m, 1), 0);
	CU_ASSERT_EQUAL(row(m, 3), 1);
	CU_ASSERT_EQUAL(row(m, 5), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 1, 1), 4);
	gm_free(m);
}

/* A column inserted in the middle renumbers the jobs' columns. */
static void test_col_insert(void)
{
	struct gang_matrix *m = mk(2, 2, 0);

	add(m, 1, 0, 1, 1, 0);
	add(m, 2, 0, 1, 0, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(mask(m, 1), 0x1);
	CU_ASSERT_EQUAL(mask(m, 2), 0x2);
	CU_ASSERT_EQUAL(gm_col_insert(m, 1, 0, 1), 0);
	CU_ASSERT_EQUAL(gm_ncols(m), 3);
	CU_ASSERT_EQUAL(mask(m, 1), 0x1);
	CU_ASSERT_EQUAL(mask(m, 2), 0x4);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 2), 2);
	CU_ASSERT_EQUAL(gm_cell(m, 0, 1), 0);
	CU_ASSERT_EQUAL(gm_col_insert(m, 5, 0, 1), -EINVAL);
	CU_ASSERT_EQUAL(gm_col_insert(m, 0, -1, 1), -EINVAL);
	gm_free(m);
}

/* Restart: jobs come back on their columns, rows hinted, then repacked. */
static void test_restore_repack(void)
{
	struct gang_matrix *m = mk(2, 3, 1000);
	struct gang_job_spec a = { .id = 7, .nodes = 2, .share = 1, .mem_mb = 100 };
	struct gang_job_spec b = { .id = 8, .nodes = 2, .share = 1 };
	struct gang_job_spec c = { .id = 9, .nodes = 1, .share = 1, .mem_mb = 50 };
	struct gang_job_spec x = { .id = 10, .nodes = 1, .share = 0 };
	struct gang_job_spec y = { .id = 11, .nodes = 1, .share = 0 };
	const int ca[] = { 1, 0 }, cb[] = { 0, 1 }, cc[] = { 1 }, cx[] = { 2 }, bad[] = { 0, 0 };

	CU_ASSERT_EQUAL(gm_job_restore(m, &a, ca, 2, 0, 1), 0);
	CU_ASSERT_EQUAL(gm_job_restore(m, &a, ca, 2, 0, 1), -EEXIST);
	CU_ASSERT_EQUAL(gm_job_restore(m, &b, bad, 2, 0, 0), -EINVAL);
	CU_ASSERT_EQUAL(gm_job_restore(m, &b, cb, 1, 0, 0), -EINVAL);
	CU_ASSERT_EQUAL(gm_job_restore(m, &b, cb, 2, 0, 0), 0);
	CU_ASSERT_EQUAL(gm_job_restore(m, &c, cc, 1, 1, -1), 0);
	CU_ASSERT_EQUAL(gm_job_restore(m, &x, cc, 1, 0, -1), -EBUSY);
	CU_ASSERT_EQUAL(gm_job_restore(m, &x, cx, 1, 1, -1), -EINVAL);
	CU_ASSERT_EQUAL(gm_job_restore(m, &x, cx, 1, 0, -1), 0);
	CU_ASSERT_EQUAL(gm_job_restore(m, &y, cx, 1, 0, -1), -EBUSY);
	CU_ASSERT_EQUAL(gm_col_mem_used(m, 1), 150);
	CU_ASSERT_EQUAL(mask(m, 7), 0x3);
	CU_ASSERT_EQUAL(state(m, 9), GANG_SUSPENDED);
	/* The pass repacks first: 7 keeps row 1, 8 row 0; 9 finds no row. */
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 7), 1);
	CU_ASSERT_EQUAL(row(m, 8), 0);
	CU_ASSERT_EQUAL(state(m, 9), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(state(m, 10), GANG_RUNNING);
	CU_ASSERT_EQUAL(gm_cell(m, 1, 2), 10);

	/* Lowering the bound: queue order decides; 7 (older) moves to row 0,
	 * 8 has no row and is suspended. */
	CU_ASSERT_EQUAL(gm_set_max_share(m, 1), 0);
	CU_ASSERT_EQUAL(gm_repack(m), 1);
	CU_ASSERT_EQUAL(row(m, 7), 0);
	CU_ASSERT_EQUAL(state(m, 8), GANG_SUSPENDED);
	CU_ASSERT_EQUAL(info(m, 8).preempted_by, 0);
	CU_ASSERT_EQUAL(gm_nrows(m), 1);
	/* Back up: both suspended ones return, in queue order. */
	gm_set_max_share(m, 3);
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 8), 1);
	CU_ASSERT_EQUAL(row(m, 9), 2);
	/* A repack of a valid packing changes nobody's row. */
	CU_ASSERT_EQUAL(gm_repack(m), 0);
	CU_ASSERT_EQUAL(row(m, 7), 0);
	CU_ASSERT_EQUAL(row(m, 8), 1);
	CU_ASSERT_EQUAL(row(m, 9), 2);
	gm_free(m);

	/* The lower priority loses its row when the bound shrinks, even if
	 * the higher-priority job sat in the row that goes away. */
	m = mk(2, 1, 0);
	add(m, 1, 0, 1, 1, 0);
	gm_schedule(m);
	add(m, 2, 5, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(row(m, 2), 1);
	gm_set_max_share(m, 1);
	CU_ASSERT_EQUAL(gm_repack(m), 1);
	CU_ASSERT_EQUAL(row(m, 2), 0);
	CU_ASSERT_EQUAL(state(m, 1), GANG_SUSPENDED);
	gm_free(m);
}

static void test_bad_args(void)
{
	struct gang_matrix *m = NULL;
	struct gang_job_spec s = { .id = 1, .nodes = 1 };

	CU_ASSERT_EQUAL(gm_new(0, &m), -EINVAL);
	CU_ASSERT_EQUAL(gm_new(GANG_MAX_ROWS + 1, &m), -EINVAL);
	m = mk(GANG_MAX_ROWS, 1, 0);
	CU_ASSERT_EQUAL(gm_job_add(m, &s), 0);
	CU_ASSERT_EQUAL(gm_job_add(m, &s), -EEXIST);
	s.id = 0;
	CU_ASSERT_EQUAL(gm_job_add(m, &s), -EINVAL);
	s.id = 2;
	s.nodes = 0;
	CU_ASSERT_EQUAL(gm_job_add(m, &s), -EINVAL);
	s.nodes = 1;
	s.mem_mb = -1;
	CU_ASSERT_EQUAL(gm_job_add(m, &s), -EINVAL);
	CU_ASSERT_EQUAL(gm_job_add(m, NULL), -EINVAL);
	{
		struct gang_job_info i;

		CU_ASSERT_EQUAL(gm_job_info(m, 2, &i), -ENOENT);
	}
	/* 64 rows of one column each hold 64 share jobs, no more. */
	gm_job_remove(m, 1);
	for (long id = 1; id <= GANG_MAX_ROWS + 1; id++)
		add(m, id, 0, 1, 1, 0);
	gm_schedule(m);
	CU_ASSERT_EQUAL(gm_nrows(m), GANG_MAX_ROWS);
	CU_ASSERT_EQUAL(row(m, GANG_MAX_ROWS), GANG_MAX_ROWS - 1);
	CU_ASSERT_EQUAL(state(m, GANG_MAX_ROWS + 1), GANG_PENDING);
	gm_free(m);
	gm_free(NULL);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "first fit packing", test_first_fit },
		{ "max_share bounds the rows", test_rows_bound },
		{ "memory per node is bounded", test_memory_bound },
		{ "memory makes eviction useless: undone", test_memory_blocks_preemption },
		{ "exclusive jobs hold every row", test_exclusive_vs_share },
		{ "exclusive queue: prefix, no backfill", test_exclusive_queue },
		{ "preemption order", test_preemption },
		{ "preemption undo, pinned, off", test_preemption_undo },
		{ "surplus victims come back", test_preemption_gives_back },
		{ "guarded victims: the preemptor waits", test_preemption_guard },
		{ "suspended jobs re-enter on their nodes", test_suspended_reentry },
		{ "a job that can never fit does not block", test_never_fits },
		{ "a column filter bounds placement", test_col_filter },
		{ "empty rows are removed", test_compaction },
		{ "rows turn to put one first", test_rows_rotate },
		{ "column insert renumbers", test_col_insert },
		{ "restore and repack", test_restore_repack },
		{ "bad arguments and the 64-row bound", test_bad_args },
		{ NULL, NULL },
	};

	return hec_cunit_run("matrix", tests);
}
