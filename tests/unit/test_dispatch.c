/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CUnit: the gang dispatcher's pure parts: which partitions a slot boundary
 * freezes and thaws (gang/dispatch.c), boundary arithmetic, and the clock
 * offset estimator (gang/clock.c) on probes with known offsets and delays.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "gang/clock.h"
#include "gang/dispatch.h"
#include "tests/unit/cunit_main.h"

/* Gates are opaque to the plan; any non-NULL pointer means "partition here". */
static struct hec_gate *const GATE = (struct hec_gate *)&GATE;

static int listed(const struct ds_plan *p, int idx)
{
	for (int i = 0; i < p->nfreeze; i++)
		if (p->freeze[i] == idx)
			return 1;
	return 0;
}

/* Two jobs alternating (rows [7], [8]), job 9 held, job 10 named but absent. */
static struct ds_table *two_rows(void)
{
	struct ds_table *t = ds_table_new(2, 4);

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	t->epoch = 3;
	t->start = 1000000000;
	t->slot_ns = 10000000;
	t->slots[0] = 7;
	t->slots[1] = 8;
	t->e[0] = (struct ds_entry){ .job = 7, .gate = GATE };
	t->e[1] = (struct ds_entry){ .job = 8, .gate = GATE };
	t->e[2] = (struct ds_entry){ .job = 9, .gate = GATE, .hold = 1 };
	t->e[3] = (struct ds_entry){ .job = 10, .gate = NULL };
	return t;
}

static void test_plan_alternate(void)
{
	struct ds_table *t = two_rows();
	struct ds_plan p;

	CU_ASSERT_EQUAL(ds_find(t, 8), 1);
	CU_ASSERT_EQUAL(ds_find(t, 11), -1);

	/* Unknown states: everything but the row's job is frozen, it is thawed. */
	ds_plan(t, 0, &p);
	CU_ASSERT_EQUAL(p.run, 0);
	CU_ASSERT_EQUAL(p.thaw, 0);
	CU_ASSERT_EQUAL(p.nfreeze, 2);
	CU_ASSERT(listed(&p, 1) && listed(&p, 2));
	CU_ASSERT(!listed(&p, 0) && !listed(&p, 3)); /* never the runner, never an absent one */

	/* After row 0 was applied: row 1 freezes 7 only and thaws 8. */
	t->e[0].state = DS_RUNNING;
	t->e[1].state = DS_FROZEN;
	t->e[2].state = DS_FROZEN;
	ds_plan(t, 1, &p);
	CU_ASSERT_EQUAL(p.run, 1);
	CU_ASSERT_EQUAL(p.thaw, 1);
	CU_ASSERT_EQUAL(p.nfreeze, 1);
	CU_ASSERT(listed(&p, 0));

	/* Applying the same row again changes nothing. */
	ds_plan(t, 0, &p);
	CU_ASSERT_EQUAL(p.thaw, -1);
	CU_ASSERT_EQUAL(p.nfreeze, 0);

	/* A broken gate is left alone, in every role. */
	t->e[0].state = DS_RUNNING;
	t->e[1].state = DS_UNKNOWN;
	t->e[1].broken = 1;
	ds_plan(t, 1, &p);
	CU_ASSERT_EQUAL(p.run, -1);
	CU_ASSERT_EQUAL(p.thaw, -1);
	CU_ASSERT_EQUAL(p.nfreeze, 1);
	CU_ASSERT(listed(&p, 0));
	ds_table_free(t);
}

static void test_plan_special(void)
{
	struct ds_table *t = ds_table_new(1, 1);
	struct ds_plan p;

	/* nslots 1, slots [0], nothing held: nothing to do, ever. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	t->n = 0;
	ds_plan(t, 0, &p);
	CU_ASSERT_EQUAL(p.run, -1);
	CU_ASSERT_EQUAL(p.thaw, -1);
	CU_ASSERT_EQUAL(p.nfreeze, 0);

	/* An exclusive job (in the only row) found running: no switch. */
	t->n = 1;
	t->slots[0] = 5;
	t->e[0] = (struct ds_entry){ .job = 5, .gate = GATE, .state = DS_RUNNING };
	ds_plan(t, 0, &p);
	CU_ASSERT_EQUAL(p.run, 0);
	CU_ASSERT_EQUAL(p.thaw, -1);
	CU_ASSERT_EQUAL(p.nfreeze, 0);

	/* Held and in a row at once: held wins, it is frozen. */
	t->e[0].hold = 1;
	ds_plan(t, 0, &p);
	CU_ASSERT_EQUAL(p.run, -1);
	CU_ASSERT_EQUAL(p.thaw, -1);
	CU_ASSERT_EQUAL(p.nfreeze, 1);

	/* The row's job has no partition here: nothing runs, nothing breaks. */
	t->e[0] = (struct ds_entry){ .job = 5, .gate = NULL };
	ds_plan(t, 0, &p);
	CU_ASSERT_EQUAL(p.run, -1);
	CU_ASSERT_EQUAL(p.nfreeze, 0);
	/* Out-of-range rows plan "nothing runs". */
	ds_plan(t, 3, &p);
	CU_ASSERT_EQUAL(p.run, -1);
	ds_table_free(t);

	CU_ASSERT_PTR_NULL(ds_table_new(0, 1));
	CU_ASSERT_PTR_NULL(ds_table_new(DS_MAX_SLOTS + 1, 1));
	t = ds_table_new(DS_MAX_SLOTS, 0);
	CU_ASSERT_PTR_NOT_NULL(t);
	ds_table_free(t);
	ds_table_free(NULL);
}

static void test_boundaries(void)
{
	struct ds_table *t = two_rows();

	CU_ASSERT_EQUAL(ds_boundary_time(t, 0), 1000000000);
	CU_ASSERT_EQUAL(ds_boundary_time(t, 3), 1030000000);
	/* Before the start: boundary 0 is next and in force. */
	CU_ASSERT_EQUAL(ds_boundary_next(t, 5), 0);
	CU_ASSERT_EQUAL(ds_boundary_current(t, 5), 0);
	CU_ASSERT_EQUAL(ds_boundary_next(t, 1000000000), 0);
	/* Start already past: join at the next boundary. */
	CU_ASSERT_EQUAL(ds_boundary_next(t, 1000000001), 1);
	CU_ASSERT_EQUAL(ds_boundary_current(t, 1000000001), 0);
	CU_ASSERT_EQUAL(ds_boundary_next(t, 1010000000), 1);
	CU_ASSERT_EQUAL(ds_boundary_current(t, 1010000000), 1);
	CU_ASSERT_EQUAL(ds_boundary_next(t, 1025000000), 3);
	CU_ASSERT_EQUAL(ds_boundary_current(t, 1025000000), 2);
	CU_ASSERT_EQUAL(ds_row(t, 0), 0);
	CU_ASSERT_EQUAL(ds_row(t, 3), 1);
	CU_ASSERT_EQUAL(ds_row(t, 1000001), 1);
	/* A long-running epoch: a day of 1 ms slots still fits. */
	t->slot_ns = 1000000;
	CU_ASSERT_EQUAL(ds_boundary_current(t, t->start + 86400LL * 1000000000), 86400000);
	ds_table_free(t);
}

/* A probe of an agent whose controller clock is @offset ahead, with one-way
 * delays @up and @down and controller processing time @proc. */
static struct clock_sample probe(int64_t t1, int64_t offset, int64_t up, int64_t down, int64_t proc)
{
	struct clock_sample s;

	s.t1 = t1;
	s.t2 = t1 + up + offset;
	s.t3 = s.t2 + proc;
	s.t4 = s.t3 - offset + down;
	return s;
}

static void test_clock(void)
{
	const int64_t off = 1763000000123456789LL - 5000000000LL; /* realtime vs mono */
	struct clock_burst b;
	struct clock_sample s;
	int64_t o, r;

	/* Symmetric delays: exact. */
	s = probe(5000000000LL, off, 40000, 40000, 7000);
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), 0);
	CU_ASSERT_EQUAL(o, off);
	CU_ASSERT_EQUAL(r, 80000);
	/* Negative offsets too. */
	s = probe(5000000000LL, -123456789, 1000, 1000, 0);
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), 0);
	CU_ASSERT_EQUAL(o, -123456789);
	CU_ASSERT_EQUAL(r, 2000);
	/* Asymmetric: the error is half the asymmetry. */
	s = probe(5000000000LL, off, 100000, 20000, 0);
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), 0);
	CU_ASSERT_EQUAL(o, off + 40000);
	CU_ASSERT_EQUAL(r, 120000);
	/* Impossible instants are refused. */
	s = probe(5000000000LL, off, 1000, 1000, 0);
	s.t4 = s.t1 - 1;
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), -EINVAL);
	s = probe(5000000000LL, off, 1000, 1000, 0);
	s.t3 = s.t2 - 1;
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), -EINVAL);
	s = probe(5000000000LL, off, 1000, 1000, 50000); /* answer took longer than the rtt */
	s.t4 = s.t1 + 2000;
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), -EINVAL);
	/* A controller clock near the int64 limit would overflow mono + offset. */
	s = probe(1000, INT64_MAX - 1000000, 10, 10, 0);
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), -EINVAL);
	s = probe(INT64_MAX - 100000, -(INT64_MAX - 200000), 10, 10, 0);
	CU_ASSERT_EQUAL(clock_sample_eval(&s, &o, &r), -EINVAL);

	/* A burst keeps the minimum-rtt probe, whatever its place. */
	clock_burst_reset(&b);
	CU_ASSERT_EQUAL(b.nsamples, 0);
	CU_ASSERT_EQUAL(clock_burst_add(&b, &(struct clock_sample){ 10, 5, 4, 20 }), -EINVAL);
	CU_ASSERT_EQUAL(b.nsamples, 0);
	s = probe(1000000, off, 300000, 50000, 10000);       /* rtt 350 us, error +125 us */
	CU_ASSERT_EQUAL(clock_burst_add(&b, &s), 0);
	s = probe(2000000, off, 30000, 25000, 10000);        /* rtt 55 us, error +2.5 us */
	CU_ASSERT_EQUAL(clock_burst_add(&b, &s), 0);
	s = probe(3000000, off, 20000, 200000, 10000);       /* rtt 220 us, error -90 us */
	CU_ASSERT_EQUAL(clock_burst_add(&b, &s), 0);
	CU_ASSERT_EQUAL(b.nsamples, 3);
	CU_ASSERT_EQUAL(b.rtt, 55000);
	CU_ASSERT_EQUAL(b.offset, off + 2500);
	/* A new burst starts from nothing. */
	clock_burst_reset(&b);
	s = probe(4000000, off, 500000, 500000, 0);
	CU_ASSERT_EQUAL(clock_burst_add(&b, &s), 0);
	CU_ASSERT_EQUAL(b.rtt, 1000000);
	CU_ASSERT_EQUAL(b.offset, off);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "plan: two jobs alternating, held, absent, broken", test_plan_alternate },
		{ "plan: one slot, exclusive, held wins, absent", test_plan_special },
		{ "boundary arithmetic", test_boundaries },
		{ "clock offset estimator", test_clock },
		{ NULL, NULL },
	};

	return hec_cunit_run("dispatch", tests);
}
