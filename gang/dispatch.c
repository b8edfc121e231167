/* SPDX-License-Identifier: BSD-3-Clause */
/* Slot tables and dispatch decisions: see gang/dispatch.h. */
#include "config.h"

#include <stdlib.h>

#include "gang/dispatch.h"

struct ds_table *ds_table_new(int nslots, int n)
{
	struct ds_table *t;

	if (nslots < 1 || nslots > DS_MAX_SLOTS || n < 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nslots = nslots;
	/* +1: calloc(0) may return NULL. */
	t->e = calloc((size_t)n + 1, sizeof(*t->e));
	t->scratch = calloc((size_t)n + 1, sizeof(*t->scratch));
	if (!t->e || !t->scratch) {
		ds_table_free(t);
		return NULL;
	}
	t->n = n;
	return t;
}

void ds_table_free(struct ds_table *t)
{
	if (!t)
		return;
	free(t->e);
	free(t->scratch);
	free(t);
}

int ds_find(const struct ds_table *t, long job)
{
	for (int i = 0; i < t->n; i++)
		if (t->e[i].job == job)
			return i;
	return -1;
}

static int usable(const struct ds_entry *e)
{
	return e->gate && !e->broken;
}

void ds_plan(const struct ds_table *t, int row, struct ds_plan *p)
{
	long job = row >= 0 && row < t->nslots ? t->slots[row] : 0;
	int run = job ? ds_find(t, job) : -1;

	if (run >= 0 && (!usable(&t->e[run]) || t->e[run].hold))
		run = -1;
	p->run = run;
	p->thaw = run >= 0 && t->e[run].state != DS_RUNNING ? run : -1;
	p->freeze = t->scratch;
	p->nfreeze = 0;
	for (int i = 0; i < t->n; i++)
		if (i != run && usable(&t->e[i]) && t->e[i].state != DS_FROZEN)
			p->freeze[p->nfreeze++] = i;
}

int64_t ds_boundary_time(const struct ds_table *t, int64_t k)
{
	return t->start + k * t->slot_ns;
}

int64_t ds_boundary_next(const struct ds_table *t, int64_t now)
{
	if (now <= t->start)
		return 0;
	return (now - t->start + t->slot_ns - 1) / t->slot_ns;
}

int64_t ds_boundary_current(const struct ds_table *t, int64_t now)
{
	if (now <= t->start)
		return 0;
	return (now - t->start) / t->slot_ns;
}

int ds_row(const struct ds_table *t, int64_t k)
{
	return (int)(k % t->nslots);
}
