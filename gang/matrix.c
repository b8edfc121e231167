/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The gang matrix (include/hec/gang.h): pure bookkeeping for the controller.
 *
 * Cells are stored per column (col->cell[row]), so inserting a column never
 * touches the rows, and removing a row is a memmove per column.  An
 * exclusive job is not stored in the cells at all: col->excl marks the
 * column as taken in every row, which stays true however many rows come and
 * go.  Everything here is O(jobs x columns x rows) at worst, which is small
 * for an embedded cluster and keeps the code plain.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hec/gang.h"

struct gjob {
	struct gang_job_spec s;
	enum gang_state state;
	int row;                 /* RUNNING share: its row; -1 otherwise (or not yet placed) */
	int hint;                /* restore: the row it had before */
	int *cols;               /* room for s.nodes; ncols used once it holds columns */
	int ncols;
	long preempted_by;
	enum gang_wait wait;
	int pinned;
	int guard;               /* gm_job_guard */
	long ckpt_wanted_by;     /* RUNNING: who would evict it but waits (last pass) */
	long ckpt_of;            /* pending: the guarded job it waits for (last pass) */
	struct gjob *next;       /* insertion order */
};

struct gcol {
	long mem_mb;             /* 0: not counted */
	int up;
	long mem_used;
	struct gjob *excl;       /* exclusive job holding the column in every row */
	int nsusp;               /* suspended jobs holding the column */
	struct gjob *cell[GANG_MAX_ROWS];
};

struct gang_matrix {
	int max_share;
	int preempt;
	int nrows;
	struct gcol *cols;
	int ncols;
	struct gjob *jobs;
	unsigned long version;
	int (*col_ok)(void *arg, long id, int col); /* gm_set_col_filter, or NULL */
	void *col_arg;
};

int gm_new(int max_share, struct gang_matrix **out)
{
	struct gang_matrix *m;

	if (max_share < 1 || max_share > GANG_MAX_ROWS)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->max_share = max_share;
	m->preempt = 1;
	*out = m;
	return 0;
}

static void gjob_free(struct gjob *j)
{
	free(j->cols);
	free(j);
}

void gm_free(struct gang_matrix *m)
{
	struct gjob *j, *next;

	if (!m)
		return;
	for (j = m->jobs; j; j = next) {
		next = j->next;
		gjob_free(j);
	}
	free(m->cols);
	free(m);
}

int gm_set_max_share(struct gang_matrix *m, int max_share)
{
	if (max_share < 1 || max_share > GANG_MAX_ROWS)
		return -EINVAL;
	m->max_share = max_share;
	return 0;
}

int gm_max_share(const struct gang_matrix *m)
{
	return m->max_share;
}

void gm_set_preempt(struct gang_matrix *m, int on)
{
	m->preempt = !!on;
}

int gm_ncols(const struct gang_matrix *m)
{
	return m->ncols;
}

int gm_nrows(const struct gang_matrix *m)
{
	return m->nrows;
}

unsigned long gm_version(const struct gang_matrix *m)
{
	return m->version;
}

static struct gjob *find(const struct gang_matrix *m, long id)
{
	struct gjob *j;

	for (j = m->jobs; j; j = j->next)
		if (j->s.id == id)
			return j;
	return NULL;
}

/* ---- columns ---- */

int gm_col_insert(struct gang_matrix *m, int pos, long mem_mb, int up)
{
	struct gcol *cols;
	struct gjob *j;

	if (pos < 0 || pos > m->ncols || mem_mb < 0)
		return -EINVAL;
	cols = realloc(m->cols, (size_t)(m->ncols + 1) * sizeof(*cols));
	if (!cols)
		return -ENOMEM;
	m->cols = cols;
	memmove(&cols[pos + 1], &cols[pos], (size_t)(m->ncols - pos) * sizeof(*cols));
	memset(&cols[pos], 0, sizeof(*cols));
	cols[pos].mem_mb = mem_mb;
	cols[pos].up = !!up;
	m->ncols++;
	for (j = m->jobs; j; j = j->next)
		for (int i = 0; i < j->ncols; i++)
			if (j->cols[i] >= pos)
				j->cols[i]++;
	m->version++;
	return 0;
}

int gm_col_set(struct gang_matrix *m, int col, long mem_mb, int up)
{
	if (col < 0 || col >= m->ncols || mem_mb < 0)
		return -EINVAL;
	m->cols[col].mem_mb = mem_mb;
	m->cols[col].up = !!up;
	return 0;
}

void gm_set_col_filter(struct gang_matrix *m, int (*ok)(void *arg, long id, int col), void *arg)
{
	m->col_ok = ok;
	m->col_arg = arg;
}

/* May pending job @j take column @c at all? */
static int col_allowed(const struct gang_matrix *m, const struct gjob *j, int c)
{
	return !m->col_ok || m->col_ok(m->col_arg, j->s.id, c);
}

static int mem_fits(const struct gcol *c, const struct gjob *j)
{
	return !c->mem_mb || !j->s.mem_mb || c->mem_used + j->s.mem_mb <= c->mem_mb;
}

/* ---- holding columns ---- */

/* A pending job takes columns: memory is counted from now on. */
static void take_cols(struct gang_matrix *m, struct gjob *j, const int *cols, int n)
{
	for (int i = 0; i < n; i++) {
		j->cols[i] = cols[i];
		m->cols[cols[i]].mem_used += j->s.mem_mb;
	}
	j->ncols = n;
}

static void set_cells(struct gang_matrix *m, struct gjob *j, int row, struct gjob *val)
{
	for (int i = 0; i < j->ncols; i++)
		m->cols[j->cols[i]].cell[row] = val;
}

/* RUNNING share job into @row (its columns are free there). */
static void put_in_row(struct gang_matrix *m, struct gjob *j, int row)
{
	set_cells(m, j, row, j);
	j->row = row;
	if (row >= m->nrows)
		m->nrows = row + 1;
	m->version++;
}

static void take_out_of_row(struct gang_matrix *m, struct gjob *j)
{
	if (j->row >= 0)
		set_cells(m, j, j->row, NULL);
	j->row = -1;
	m->version++;
}

static void set_suspended(struct gang_matrix *m, struct gjob *j, int on)
{
	for (int i = 0; i < j->ncols; i++)
		m->cols[j->cols[i]].nsusp += on ? 1 : -1;
	j->state = on ? GANG_SUSPENDED : GANG_RUNNING;
	m->version++;
}

/* Give back whatever @j holds. */
static void release(struct gang_matrix *m, struct gjob *j)
{
	if (j->state == GANG_RUNNING && j->s.share)
		take_out_of_row(m, j);
	if (j->state == GANG_SUSPENDED)
		set_suspended(m, j, 0);
	for (int i = 0; i < j->ncols; i++) {
		struct gcol *c = &m->cols[j->cols[i]];

		c->mem_used -= j->s.mem_mb;
		if (c->excl == j)
			c->excl = NULL;
	}
	j->ncols = 0;
	j->state = GANG_PENDING;
	m->version++;
}

/* Remove rows without share jobs; rows above move down. */
static void compact(struct gang_matrix *m)
{
	int r = 0;

	while (r < m->nrows) {
		int used = 0;
		struct gjob *j;

		for (int c = 0; c < m->ncols && !used; c++)
			used = m->cols[c].cell[r] != NULL;
		if (used) {
			r++;
			continue;
		}
		for (int c = 0; c < m->ncols; c++) {
			struct gcol *col = &m->cols[c];

			memmove(&col->cell[r], &col->cell[r + 1],
				(size_t)(m->nrows - r - 1) * sizeof(col->cell[0]));
			col->cell[m->nrows - 1] = NULL;
		}
		for (j = m->jobs; j; j = j->next)
			if (j->state == GANG_RUNNING && j->s.share && j->row > r)
				j->row--;
		m->nrows--;
		m->version++;
	}
}

/* ---- placement ---- */

/* Rows a share job may use: the existing ones, plus one more below the bound. */
static int row_limit(const struct gang_matrix *m)
{
	int lim = m->nrows < m->max_share ? m->nrows + 1 : m->nrows;

	return lim < m->max_share ? lim : m->max_share;
}

/* First fit of a pending share job on any columns. */
static int place_share(struct gang_matrix *m, struct gjob *j)
{
	int pick[j->s.nodes];
	int lim = row_limit(m);

	for (int r = 0; r < lim; r++) {
		int got = 0;

		for (int c = 0; c < m->ncols && got < j->s.nodes; c++) {
			const struct gcol *col = &m->cols[c];

			if (col->up && !col->excl && !col->cell[r] && mem_fits(col, j) &&
			    col_allowed(m, j, c))
				pick[got++] = c;
		}
		if (got < j->s.nodes)
			continue;
		take_cols(m, j, pick, got);
		j->state = GANG_RUNNING;
		put_in_row(m, j, r);
		return 1;
	}
	return 0;
}

static int col_empty(const struct gang_matrix *m, const struct gcol *col)
{
	if (col->excl || col->nsusp)
		return 0;
	for (int r = 0; r < m->nrows; r++)
		if (col->cell[r])
			return 0;
	return 1;
}

/* An exclusive job needs columns nothing else sits on, in any row. */
static int place_exclusive(struct gang_matrix *m, struct gjob *j)
{
	int pick[j->s.nodes];
	int got = 0;

	for (int c = 0; c < m->ncols && got < j->s.nodes; c++) {
		const struct gcol *col = &m->cols[c];

		if (col->up && col_empty(m, col) && mem_fits(col, j) && col_allowed(m, j, c))
			pick[got++] = c;
	}
	if (got < j->s.nodes)
		return 0;
	take_cols(m, j, pick, got);
	for (int i = 0; i < got; i++)
		m->cols[pick[i]].excl = j;
	j->state = GANG_RUNNING;
	j->row = -1;
	m->version++;
	return 1;
}

static int row_free_for(const struct gang_matrix *m, const struct gjob *j, int r)
{
	for (int i = 0; i < j->ncols; i++) {
		const struct gcol *col = &m->cols[j->cols[i]];

		if (col->cell[r] || (col->excl && col->excl != j))
			return 0;
	}
	return 1;
}

/* A job that holds columns (suspended, or being repacked) into the lowest
 * row where they are all free.  Memory is already counted. */
static int place_own(struct gang_matrix *m, struct gjob *j)
{
	int lim = row_limit(m);

	for (int r = 0; r < lim; r++)
		if (row_free_for(m, j, r)) {
			put_in_row(m, j, r);
			return 1;
		}
	return 0;
}

/* Could @j fit if the matrix were empty?  Only the columns that are up and
 * big enough count. */
static int could_ever_fit(const struct gang_matrix *m, const struct gjob *j)
{
	int n = 0;

	for (int c = 0; c < m->ncols; c++) {
		const struct gcol *col = &m->cols[c];

		if (col->up && (!col->mem_mb || j->s.mem_mb <= col->mem_mb) && col_allowed(m, j, c))
			n++;
	}
	return n >= j->s.nodes;
}

/* Queue order: priority descending, suspended before pending, id ascending. */
static int queue_cmp(const void *pa, const void *pb)
{
	const struct gjob *a = *(struct gjob *const *)pa, *b = *(struct gjob *const *)pb;

	if (a->s.priority != b->s.priority)
		return a->s.priority > b->s.priority ? -1 : 1;
	if ((a->state == GANG_SUSPENDED) != (b->state == GANG_SUSPENDED))
		return a->state == GANG_SUSPENDED ? -1 : 1;
	if (a->s.id != b->s.id)
		return a->s.id < b->s.id ? -1 : 1;
	return 0;
}

/* Eviction order: priority ascending, newest (highest id) first. */
static int victim_cmp(const void *pa, const void *pb)
{
	const struct gjob *a = *(struct gjob *const *)pa, *b = *(struct gjob *const *)pb;

	if (a->s.priority != b->s.priority)
		return a->s.priority < b->s.priority ? -1 : 1;
	if (a->s.id != b->s.id)
		return a->s.id > b->s.id ? -1 : 1;
	return 0;
}

/* @p, placed by evicting @v[0..ne), would leave a guarded victim SUSPENDED:
 * mark every victim it would leave suspended wanted, take @p out again and
 * leave every victim suspended without a row, as if @p had not fit.
 * \return 1 if so, else 0. */
static int wait_for_guarded(struct gang_matrix *m, struct gjob *p, struct gjob **v, int ne)
{
	for (int k = 0; k < ne && !p->ckpt_of; k++)
		if (v[k]->state == GANG_SUSPENDED && v[k]->guard)
			p->ckpt_of = v[k]->s.id;
	if (!p->ckpt_of)
		return 0;
	release(m, p);
	for (int k = 0; k < ne; k++) {
		if (v[k]->state == GANG_RUNNING) {
			take_out_of_row(m, v[k]);
			set_suspended(m, v[k], 1);
		} else {
			v[k]->ckpt_wanted_by = p->s.id;
		}
	}
	return 1;
}

/*
 * Evict lower-priority share jobs until @p fits.  Victims go one at a time
 * so no more are suspended than the eviction order needs; once @p is in,
 * victims that find a row again (on their own columns) go straight back.
 * Should a guarded victim stay suspended, everything is undone and
 * @p->ckpt_of names it.
 * \return 1 + the number of victims left suspended when @p is placed, 0 when
 * nothing changed, -ENOMEM.
 */
static int try_preempt(struct gang_matrix *m, struct gjob *p)
{
	unsigned long version = m->version;
	int nrows = m->nrows;
	struct gjob **v, *j;
	int *rows, nv = 0, ne, placed = 0;

	for (j = m->jobs; j; j = j->next)
		if (j->state == GANG_RUNNING && j->s.share && !j->pinned && j->row >= 0 &&
		    j->s.priority < p->s.priority)
			nv++;
	if (!nv)
		return 0;
	v = calloc((size_t)nv, sizeof(*v));
	rows = calloc((size_t)nv, sizeof(*rows));
	if (!v || !rows) {
		free(v);
		free(rows);
		return -ENOMEM;
	}
	nv = 0;
	for (j = m->jobs; j; j = j->next)
		if (j->state == GANG_RUNNING && j->s.share && !j->pinned && j->row >= 0 &&
		    j->s.priority < p->s.priority)
			v[nv++] = j;
	qsort(v, (size_t)nv, sizeof(*v), victim_cmp);
	for (ne = 0; ne < nv && !placed; ne++) {
		rows[ne] = v[ne]->row;
		take_out_of_row(m, v[ne]);
		set_suspended(m, v[ne], 1);
		placed = place_share(m, p);
	}
	if (placed) {
		/* Reverse eviction order is queue order. */
		for (int k = ne - 1; k >= 0; k--)
			if (place_own(m, v[k]))
				set_suspended(m, v[k], 0);
		if (wait_for_guarded(m, p, v, ne))
			placed = 0;
		else
			for (int k = 0; k < ne; k++)
				v[k]->preempted_by = v[k]->state == GANG_SUSPENDED ? p->s.id : 0;
	}
	if (!placed) {
		for (int k = ne - 1; k >= 0; k--) {
			set_suspended(m, v[k], 0);
			put_in_row(m, v[k], rows[k]);
		}
		/* Exactly as before: nothing new to publish (rows a victim or @p
		 * opened are empty again). */
		m->nrows = nrows;
		m->version = version;
	}
	if (placed)
		for (int k = 0; k < ne; k++)
			placed += v[k]->state == GANG_SUSPENDED;
	free(v);
	free(rows);
	return placed;
}

static int needs_repack(const struct gang_matrix *m)
{
	const struct gjob *j;

	for (j = m->jobs; j; j = j->next)
		if (j->state == GANG_RUNNING && j->s.share && j->row < 0)
			return 1;
	return 0;
}

int gm_schedule(struct gang_matrix *m)
{
	struct gjob **q, *j;
	int n = 0, changes = 0, blocked = 0;

	if (needs_repack(m) && gm_repack(m) > 0)
		changes++;
	for (j = m->jobs; j; j = j->next) {
		if (j->state == GANG_PENDING || (j->state == GANG_SUSPENDED && !j->pinned))
			n++;
		if (j->state != GANG_PENDING)
			j->wait = GANG_WAIT_NONE;
		j->ckpt_wanted_by = 0;
		j->ckpt_of = 0;
	}
	if (!n)
		goto out;
	q = calloc((size_t)n, sizeof(*q));
	if (!q) /* nothing changes this pass; the caller tries again */
		goto out;
	n = 0;
	for (j = m->jobs; j; j = j->next)
		if (j->state == GANG_PENDING || (j->state == GANG_SUSPENDED && !j->pinned))
			q[n++] = j;
	qsort(q, (size_t)n, sizeof(*q), queue_cmp);
	for (int i = 0; i < n; i++) {
		int rc;

		j = q[i];
		if (j->state == GANG_SUSPENDED) {
			/* Behind a blocked head nothing moves, resuming included:
			 * the row it would take may be what the head needs. */
			if (!blocked && place_own(m, j)) {
				set_suspended(m, j, 0);
				j->preempted_by = 0;
				changes++;
			}
			continue;
		}
		if (j->state != GANG_PENDING)
			continue; /* evicted earlier in this pass: it was running */
		if (blocked) {
			j->wait = GANG_WAIT_PRIORITY;
			continue;
		}
		rc = j->s.share ? place_share(m, j) : place_exclusive(m, j);
		if (!rc && j->s.share && m->preempt)
			rc = try_preempt(m, j);
		if (rc > 0) {
			j->wait = GANG_WAIT_NONE;
			changes += rc;
			continue;
		}
		/* (one waiting for a guarded victim could fit: it blocks) */
		j->wait = j->ckpt_of ? GANG_WAIT_CKPT : GANG_WAIT_RESOURCES;
		if (could_ever_fit(m, j))
			blocked = 1;
	}
	free(q);
out:
	compact(m);
	return changes;
}

int gm_repack(struct gang_matrix *m)
{
	struct gjob **q, *j;
	int n = 0, suspended = 0;

	for (j = m->jobs; j; j = j->next)
		if (j->state == GANG_RUNNING && j->s.share) {
			if (j->row >= 0)
				j->hint = j->row;
			n++;
		}
	if (!n) {
		compact(m);
		return 0;
	}
	q = calloc((size_t)n, sizeof(*q));
	if (!q)
		return -ENOMEM;
	n = 0;
	for (j = m->jobs; j; j = j->next)
		if (j->state == GANG_RUNNING && j->s.share)
			q[n++] = j;
	qsort(q, (size_t)n, sizeof(*q), queue_cmp);
	for (int c = 0; c < m->ncols; c++)
		memset(m->cols[c].cell, 0, sizeof(m->cols[c].cell));
	m->nrows = 0;
	m->version++;
	for (int i = 0; i < n; i++)
		q[i]->row = -1;
	/* In queue order, so a bound that shrank suspends the lowest priority;
	 * a packing that was valid before gets every job its old row back. */
	for (int i = 0; i < n; i++) {
		int hint = q[i]->hint;

		j = q[i];
		j->hint = -1;
		if (hint >= 0 && hint < m->max_share && row_free_for(m, j, hint)) {
			put_in_row(m, j, hint);
			continue;
		}
		if (!place_own(m, j)) {
			set_suspended(m, j, 1);
			j->preempted_by = 0;
			suspended++;
		}
	}
	free(q);
	compact(m);
	return suspended;
}

int gm_rows_rotate(struct gang_matrix *m, int first)
{
	struct gjob *tmp[GANG_MAX_ROWS];
	int n = m ? m->nrows : 0;

	if (!m || first < 0 || first >= n)
		return -EINVAL;
	if (first == 0)
		return 0;
	for (int c = 0; c < m->ncols; c++) {
		struct gcol *col = &m->cols[c];

		for (int r = 0; r < n; r++)
			tmp[r] = col->cell[(r + first) % n];
		memcpy(col->cell, tmp, (size_t)n * sizeof(tmp[0]));
	}
	for (struct gjob *j = m->jobs; j; j = j->next)
		if (j->state == GANG_RUNNING && j->s.share && j->row >= 0)
			j->row = (j->row - first + n) % n;
	m->version++;
	return 0;
}

/* ---- jobs ---- */

static int spec_ok(const struct gang_job_spec *s)
{
	return s && s->id > 0 && s->nodes >= 1 && s->mem_mb >= 0;
}

static struct gjob *gjob_new(struct gang_matrix *m, const struct gang_job_spec *spec)
{
	struct gjob *j = calloc(1, sizeof(*j)), **pp;

	if (!j)
		return NULL;
	j->cols = calloc((size_t)spec->nodes, sizeof(*j->cols));
	if (!j->cols) {
		free(j);
		return NULL;
	}
	j->s = *spec;
	j->s.share = !!spec->share;
	j->state = GANG_PENDING;
	j->row = -1;
	j->hint = -1;
	j->wait = GANG_WAIT_PRIORITY;
	for (pp = &m->jobs; *pp; pp = &(*pp)->next)
		;
	*pp = j;
	return j;
}

int gm_job_add(struct gang_matrix *m, const struct gang_job_spec *spec)
{
	if (!spec_ok(spec))
		return -EINVAL;
	if (find(m, spec->id))
		return -EEXIST;
	return gjob_new(m, spec) ? 0 : -ENOMEM;
}

static int int_cmp(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

int gm_job_restore(struct gang_matrix *m, const struct gang_job_spec *spec,
		     const int *cols, int ncols, int suspended, int row_hint)
{
	int sorted[ncols > 0 ? ncols : 1];
	struct gjob *j;

	if (!spec_ok(spec) || ncols != spec->nodes || (!spec->share && suspended))
		return -EINVAL;
	for (int i = 0; i < ncols; i++) {
		if (cols[i] < 0 || cols[i] >= m->ncols)
			return -EINVAL;
		sorted[i] = cols[i];
	}
	qsort(sorted, (size_t)ncols, sizeof(sorted[0]), int_cmp);
	for (int i = 1; i < ncols; i++)
		if (sorted[i] == sorted[i - 1])
			return -EINVAL;
	if (find(m, spec->id))
		return -EEXIST;
	for (int i = 0; i < ncols; i++) {
		const struct gcol *col = &m->cols[sorted[i]];

		if (col->excl || (!spec->share && !col_empty(m, col)))
			return -EBUSY;
	}
	/* A running share job restored but not yet in a row also sits there. */
	if (!spec->share)
		for (j = m->jobs; j; j = j->next)
			if (j->state != GANG_PENDING)
				for (int i = 0; i < j->ncols; i++)
					if (bsearch(&j->cols[i], sorted, (size_t)ncols, sizeof(int), int_cmp))
						return -EBUSY;
	j = gjob_new(m, spec);
	if (!j)
		return -ENOMEM;
	take_cols(m, j, sorted, ncols);
	j->state = GANG_RUNNING;
	j->wait = GANG_WAIT_NONE;
	if (!spec->share)
		for (int i = 0; i < ncols; i++)
			m->cols[sorted[i]].excl = j;
	else if (suspended)
		set_suspended(m, j, 1);
	else
		j->hint = row_hint >= 0 && row_hint < GANG_MAX_ROWS ? row_hint : -1;
	m->version++;
	return 0;
}

int gm_job_remove(struct gang_matrix *m, long id)
{
	struct gjob **pp, *j;

	for (pp = &m->jobs; *pp && (*pp)->s.id != id; pp = &(*pp)->next)
		;
	j = *pp;
	if (!j)
		return -ENOENT;
	release(m, j);
	*pp = j->next;
	gjob_free(j);
	compact(m);
	return 0;
}

int gm_job_pin(struct gang_matrix *m, long id, int pinned)
{
	struct gjob *j = find(m, id);

	if (!j)
		return -ENOENT;
	j->pinned = !!pinned;
	return 0;
}

int gm_job_guard(struct gang_matrix *m, long id, int on)
{
	struct gjob *j = find(m, id);

	if (!j)
		return -ENOENT;
	j->guard = !!on;
	return 0;
}

int gm_job_info(const struct gang_matrix *m, long id, struct gang_job_info *out)
{
	const struct gjob *j = find(m, id);

	if (!j)
		return -ENOENT;
	memset(out, 0, sizeof(*out));
	out->state = j->state;
	out->row = j->state == GANG_RUNNING && j->s.share ? j->row : -1;
	out->cols = j->cols;
	out->ncols = j->ncols;
	out->preempted_by = j->state == GANG_SUSPENDED ? j->preempted_by : 0;
	out->wait = j->state == GANG_PENDING ? j->wait : GANG_WAIT_NONE;
	out->pinned = j->pinned;
	out->guard = j->guard;
	out->ckpt_wanted_by = j->state == GANG_RUNNING ? j->ckpt_wanted_by : 0;
	out->ckpt_of = out->wait == GANG_WAIT_CKPT ? j->ckpt_of : 0;
	return 0;
}

/* ---- export ---- */

long gm_cell(const struct gang_matrix *m, int row, int col)
{
	const struct gcol *c;

	if (col < 0 || col >= m->ncols || row < 0 || row >= GANG_MAX_ROWS)
		return 0;
	c = &m->cols[col];
	if (c->excl)
		return c->excl->s.id;
	return row < m->nrows && c->cell[row] ? c->cell[row]->s.id : 0;
}

int gm_col_suspended(const struct gang_matrix *m, int col, long *ids, int max)
{
	const struct gjob *j;
	int n = 0;

	if (col < 0 || col >= m->ncols)
		return -EINVAL;
	for (j = m->jobs; j; j = j->next) {
		if (j->state != GANG_SUSPENDED)
			continue;
		for (int i = 0; i < j->ncols; i++)
			if (j->cols[i] == col) {
				if (n < max)
					ids[n] = j->s.id;
				n++;
				break;
			}
	}
	return n;
}

long gm_col_mem_used(const struct gang_matrix *m, int col)
{
	if (col < 0 || col >= m->ncols)
		return -EINVAL;
	return m->cols[col].mem_used;
}
