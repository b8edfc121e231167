/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The gang matrix (Ousterhout): rows are time slots, columns are nodes.
 * Pure bookkeeping, no I/O and no globals: the controller feeds it jobs and
 * node facts, runs a pass, and reads back who runs where; doc/design.md
 * ("Gang scheduling") is the policy this implements.
 *
 * - A share job occupies its N columns in one row; an exclusive job occupies
 *   its columns in every row (nothing else may sit on its nodes, not even a
 *   suspended job).
 * - Placement is first fit: the lowest row with N free columns, the
 *   lowest-numbered free columns in it; a new row only when no row has room
 *   and rows < max_share.
 * - Memory: the mem_mb of every job placed or suspended on a column must fit
 *   the column's mem_mb (0 on either side: not counted).
 * - A pending share job that does not fit evicts running share jobs of lower
 *   priority, lowest priority first and newest first among equals, until it
 *   fits; they become SUSPENDED and keep their columns and memory.  If the
 *   evictions do not make room they are all undone.  They are undone too
 *   when a guarded job (gm_job_guard) would be left SUSPENDED: the guarded
 *   ones are marked wanted by the evicting job, which waits (GANG_WAIT_CKPT)
 *   until the caller lifts the guard (after the job's checkpoint, say).
 * - A pass takes suspended and pending jobs in queue order (priority
 *   descending; at equal priority suspended before pending, then by id).  A
 *   suspended job goes back on its own columns as soon as a row has room
 *   there.  The first pending job that does not fit blocks every job behind
 *   it (no backfill), unless it could not fit even in an empty matrix (too
 *   many nodes or too much memory for the columns that are up now): such a
 *   job waits without holding up the others.
 * - Rows without share jobs are removed (rows above move down).
 *
 * Every mutating call leaves the matrix compacted.  Columns are numbered
 * 0..ncols-1 in the order the caller wants "lowest-numbered" to mean (the
 * controller uses natural node name order).
 */
#ifndef HEC_GANG_H
#define HEC_GANG_H

#include <stddef.h>

#define GANG_MAX_ROWS 64 /* the largest max_share; EPOCH's nslots bound */

struct gang_matrix;

enum gang_state { GANG_PENDING, GANG_RUNNING, GANG_SUSPENDED };

/* Why a pending job waits (the queue's "reason"). */
enum gang_wait {
	GANG_WAIT_NONE,        /* not pending */
	GANG_WAIT_RESOURCES,   /* no room for it (it is the head, or can never fit now) */
	GANG_WAIT_PRIORITY,    /* a job ahead of it waits for room */
	GANG_WAIT_CKPT,        /* it would evict a guarded job: it waits for its guard */
};

/* A job as the caller describes it. */
struct gang_job_spec {
	long id;               /* > 0, unique */
	int priority;
	int nodes;             /* columns wanted, >= 1 */
	int share;             /* 1: one row; 0: exclusive (every row) */
	long mem_mb;           /* per node, 0 = not counted */
};

/* A job as the matrix sees it (gm_job_info()). */
struct gang_job_info {
	enum gang_state state;
	int row;               /* RUNNING share job: its row; otherwise -1 */
	const int *cols;       /* RUNNING/SUSPENDED: its columns, ascending; valid
				* until the next mutating call */
	int ncols;
	long preempted_by;     /* SUSPENDED by an eviction: the evicting job, else 0 */
	enum gang_wait wait;   /* PENDING: why, after the last pass */
	int pinned;
	int guard;
	long ckpt_wanted_by;   /* RUNNING: the pending job that would have evicted it
				* in the last pass but waits for a guarded job
				* (this one, or another victim), else 0 */
	long ckpt_of;          /* PENDING, GANG_WAIT_CKPT: the first guarded job it
				* would evict (eviction order), else 0 */
};

/** \return 0 with a new empty matrix in *@out, -EINVAL (max_share not in
 *  1..GANG_MAX_ROWS) or -ENOMEM. */
int gm_new(int max_share, struct gang_matrix **out);
void gm_free(struct gang_matrix *m);

/**
 * Change the row bound.  Running jobs keep their rows while those are below
 * the new bound; call gm_repack() afterwards to move or suspend the rest.
 * \return 0 or -EINVAL (not in 1..GANG_MAX_ROWS).
 */
int gm_set_max_share(struct gang_matrix *m, int max_share);
int gm_max_share(const struct gang_matrix *m);
/** Preemption on (default) or off; off: pending jobs never evict. */
void gm_set_preempt(struct gang_matrix *m, int on);

/**
 * Insert a column before position @pos (0..ncols; ncols appends); columns
 * from @pos on, and the jobs' references to them, move up by one.
 * \return 0, -EINVAL (bad @pos or mem_mb < 0) or -ENOMEM.
 */
int gm_col_insert(struct gang_matrix *m, int pos, long mem_mb, int up);
/** Where pending jobs may go: @ok(@arg, id, col) says whether job @id may
 *  take column @col (NULL: any column).  Placement and the "could it ever
 *  fit" test of pending jobs ask it; jobs holding columns keep them. */
void gm_set_col_filter(struct gang_matrix *m, int (*ok)(void *arg, long id, int col), void *arg);
/** Update a column: memory (MB, 0 = not counted) and whether new jobs may
 *  be placed there.  Jobs already there stay.  \return 0 or -EINVAL. */
int gm_col_set(struct gang_matrix *m, int col, long mem_mb, int up);
int gm_ncols(const struct gang_matrix *m);

/** Add a pending job. \return 0, -EINVAL (bad spec), -EEXIST, -ENOMEM. */
int gm_job_add(struct gang_matrix *m, const struct gang_job_spec *spec);
/**
 * Add a job that already holds columns @cols (after a controller restart),
 * RUNNING (@suspended 0) or SUSPENDED.  Memory is counted without a check:
 * it is what the nodes hold.  A running share job is not in a row yet:
 * gm_repack() puts it there, trying row @row_hint first (-1: none).
 * \return 0, -EINVAL (bad spec or column, @ncols != nodes, exclusive and
 *         suspended), -EEXIST (id known), -EBUSY (an exclusive job and
 *         another job on one column), -ENOMEM.
 */
int gm_job_restore(struct gang_matrix *m, const struct gang_job_spec *spec,
		     const int *cols, int ncols, int suspended, int row_hint);
/** Drop a job wherever it is; its columns and memory are free again.
 *  \return 0 or -ENOENT. */
int gm_job_remove(struct gang_matrix *m, long id);
/** A pinned job is never evicted, and never re-placed while suspended (the
 *  controller pins jobs that are starting or ending).  \return 0 or -ENOENT. */
int gm_job_pin(struct gang_matrix *m, long id, int pinned);
/**
 * A guarded job is evicted only once the guard is lifted: a pass that would
 * leave it SUSPENDED undoes that eviction (nothing changes, nothing to
 * publish), reports every victim it would leave suspended wanted
 * (ckpt_wanted_by, guarded or not) and the evicting job waiting
 * (GANG_WAIT_CKPT, ckpt_of: the first guarded one), which blocks the queue
 * behind it as any head without room does.  Victims that would go straight
 * back are no reason to wait.  The guard changes nothing else (a shrinking
 * bound, gm_repack, still suspends).  \return 0 or -ENOENT.
 */
int gm_job_guard(struct gang_matrix *m, long id, int on);
/** \return 0 and fills @out, or -ENOENT. */
int gm_job_info(const struct gang_matrix *m, long id, struct gang_job_info *out);

/**
 * One scheduling pass (see the top of this file): suspended jobs re-enter,
 * pending jobs are placed or evict, wait reasons are set.
 * \return the number of jobs whose state changed.
 */
int gm_schedule(struct gang_matrix *m);

/**
 * Place every running share job again, in queue order: each goes back to its
 * row hint (its current row, or the restore hint) if that is below the bound
 * and its columns are free there, else by first fit on its own columns.  A
 * packing that was valid stays as it was; a bound that shrank suspends the
 * lowest-priority jobs (SUSPENDED, preempted_by 0).  Needed after restores
 * and after lowering max_share; gm_schedule() does it by itself when
 * restored jobs wait for a row.
 * \return the number of jobs suspended, or -ENOMEM.
 */
int gm_repack(struct gang_matrix *m);

/**
 * Turn the rows so that row @first becomes row 0 and the others follow in
 * their cyclic order (row @first + 1 becomes 1, ..., row @first - 1 the
 * last): what a new epoch runs first.  Jobs keep their rows' neighbours and
 * their columns; a change counts in gm_version() unless @first is 0.
 * \return 0, or -EINVAL when @first is not a row in use.
 */
int gm_rows_rotate(struct gang_matrix *m, int first);

/** Rows in use (0 when no share job runs). */
int gm_nrows(const struct gang_matrix *m);
/** Job at (@row, @col): a share job in that row, an exclusive job on that
 *  column whatever @row (0..GANG_MAX_ROWS-1), else 0 (also for bad args). */
long gm_cell(const struct gang_matrix *m, int row, int col);
/** Suspended jobs on column @col into @ids (at most @max).
 *  \return how many there are (may exceed @max), or -EINVAL. */
int gm_col_suspended(const struct gang_matrix *m, int col, long *ids, int max);
/** Memory counted on @col (MB), or -EINVAL. */
long gm_col_mem_used(const struct gang_matrix *m, int col);
/** Counts every change of rows, cells or the suspended set; a caller that
 *  saw the same value twice has nothing new to publish. */
unsigned long gm_version(const struct gang_matrix *m);

#endif
