/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The gang slot table of one schedule epoch on this node, and the pure
 * decisions of the slot dispatcher (agent/gang.c runs them): which
 * boundary is next, and at a boundary which partitions to freeze and which
 * to thaw.  No I/O here; tests/unit/test_dispatch.c drives it.
 *
 * Times are controller time in ns (the agent's CLOCK_MONOTONIC plus the
 * clock offset, gang/clock.h).  Boundary k of an epoch is at
 * start + k * slot_ns and opens slot row k mod nslots.
 */
#ifndef HEC_AGENT_DISPATCH_H
#define HEC_AGENT_DISPATCH_H

#include <stdint.h>

#define DS_MAX_SLOTS 64

struct hec_gate;

enum ds_state {
	DS_UNKNOWN = 0,   /* never set by us and not known */
	DS_RUNNING,       /* thawed (or found so) */
	DS_FROZEN,        /* freeze asked for (and normally reached) */
};

/* One job the epoch names on this node. */
struct ds_entry {
	long job;
	struct hec_gate *gate;   /* NULL: no partition here (yet / any more) */
	enum ds_state state;
	int hold;                /* in the epoch's frozen set: frozen throughout */
	int broken;              /* a gate call failed: left alone from then on */
	/* Freezes of an immediate gate are not waited for (agent/gang.c,
	 * apply()); whether they were reached is looked at lazily: */
	int64_t frozen_at;       /* mono ns of the last freeze asked, 0: none */
	int64_t unconfirmed_ns;  /* freezes in a row never seen reached: their time */
	int stuck;               /* so long that its next freezes are waited for */
	int wait;                /* this switch waits for its freeze */
};

struct ds_table {
	int64_t epoch, start, slot_ns;
	int nslots;
	long slots[DS_MAX_SLOTS];  /* job of each row here, 0 = none */
	int n;                     /* entries */
	struct ds_entry *e;
	int *scratch;              /* n ints for plans: no allocation at a boundary */
};

struct ds_plan {
	int run;        /* entry that runs in the row, -1 none */
	int thaw;       /* == run when it must be thawed, else -1 */
	int nfreeze;
	int *freeze;    /* entries to freeze (the table's scratch) */
};

/**
 * A table for @nslots rows with room for @n entries (zeroed; slots all 0).
 * \return NULL when out of memory.  ds_table_free() does not close gates.
 */
struct ds_table *ds_table_new(int nslots, int n);
void ds_table_free(struct ds_table *t);

/** Index of @job's entry, or -1. */
int ds_find(const struct ds_table *t, long job);

/**
 * What boundary opening @row needs: every entry with a gate, not broken,
 * other than the row's job (and every held one) must be frozen; those not
 * known frozen are listed.  The row's job is thawed unless known running.
 * A job both in a row and held stays frozen.  Nothing listed = no switch.
 */
void ds_plan(const struct ds_table *t, int row, struct ds_plan *p);

/** Instant of boundary @k. */
int64_t ds_boundary_time(const struct ds_table *t, int64_t k);
/** First boundary at or after @now (0 if the epoch has not started). */
int64_t ds_boundary_next(const struct ds_table *t, int64_t now);
/** Boundary in force at @now: the last one at or before it (0 before start). */
int64_t ds_boundary_current(const struct ds_table *t, int64_t now);
/** Row opened by boundary @k. */
int ds_row(const struct ds_table *t, int64_t k);

#endif
