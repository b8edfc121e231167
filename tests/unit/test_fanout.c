/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: the controller's fan-out service (launcher/fanout.c) on a real event loop. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "hec/common.h"
#include "launcher/fanout.h"
#include "tests/unit/cunit_main.h"

#define KIND 7
#define MAXN 8

/* What one request's callbacks saw. */
struct rec {
	struct fanout_set *set;
	/* send */
	int sends;
	char sent[MAXN][16];
	int64_t sent_id[MAXN];
	const char *fail_node;       /* send to it returns fail_rc */
	int fail_rc;
	/* done, copied */
	int done_calls;
	int64_t id;
	void *owner;
	int cancelled;
	char cancel_why[128];
	int nnodes, answered;
	int64_t elapsed_ns;
	struct {
		char node[16];
		enum fanout_state state;
		json_t *body;
		int err;
		char why[160];
		int64_t recv_ns;
	} res[MAXN];
	/* done starts another request (re-entrancy) */
	struct fanout_req *chain;
	int chain_rc;
};

static int rec_send(void *arg, const char *node, int64_t id)
{
	struct rec *r = arg;

	if (r->sends < MAXN) {
		snprintf(r->sent[r->sends], sizeof(r->sent[0]), "%s", node);
		r->sent_id[r->sends] = id;
	}
	r->sends++;
	return r->fail_node && !strcmp(node, r->fail_node) ? r->fail_rc : 0;
}

static void rec_done(void *arg, const struct fanout_done *d)
{
	struct rec *r = arg;

	r->done_calls++;
	r->id = d->id;
	r->owner = d->owner;
	r->cancelled = d->cancelled != NULL;
	snprintf(r->cancel_why, sizeof(r->cancel_why), "%s", d->cancelled ? d->cancelled : "");
	r->nnodes = d->nnodes;
	r->answered = d->answered;
	r->elapsed_ns = d->elapsed_ns;
	for (int i = 0; i < d->nnodes && i < MAXN; i++) {
		snprintf(r->res[i].node, sizeof(r->res[i].node), "%s", d->nodes[i].node);
		r->res[i].state = d->nodes[i].state;
		json_decref(r->res[i].body);
		r->res[i].body = json_incref(d->nodes[i].body);
		r->res[i].err = d->nodes[i].err;
		snprintf(r->res[i].why, sizeof(r->res[i].why), "%s",
			 d->nodes[i].why ? d->nodes[i].why : "(null)");
		r->res[i].recv_ns = d->nodes[i].recv_ns;
	}
	if (r->chain)
		r->chain_rc = fanout_start(r->set, r->chain);
}

/* Answers carrying "error" fail the node; answers carrying "bogus" are refused. */
static int rec_answer(void *arg, const char *node, const json_t *body, char *why, size_t len)
{
	const char *err = json_string_value(json_object_get(body, "error"));

	(void)arg;
	if (json_object_get(body, "bogus"))
		return -EBADMSG;
	if (err) {
		snprintf(why, len, "%s: %s", node, err);
		return FANOUT_FAILED;
	}
	return FANOUT_ANSWERED;
}

static void rec_clear(struct rec *r)
{
	for (int i = 0; i < MAXN; i++)
		json_decref(r->res[i].body);
	memset(r, 0, sizeof(*r));
}

static const char *const abc[] = { "a", "b", "c" };

static struct fanout_req req_of(struct rec *r, int64_t id, const char *const *nodes, int n,
				long timeout_ms)
{
	return (struct fanout_req){ .kind = KIND, .id = id, .what = "PING", .nodes = nodes,
				    .nnodes = n, .timeout_ms = timeout_ms, .send = rec_send,
				    .answer = rec_answer, .done = rec_done, .arg = r };
}

static struct event_base *base;
static struct fanout_set *set;

static void setup(void)
{
	base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	CU_ASSERT_EQUAL_FATAL(fanout_set_new(base, &set), 0);
}

static void teardown(void)
{
	fanout_set_free(set);
	set = NULL;
	event_base_free(base);
	base = NULL;
}

/* Run the loop until @r is done or @max_ms pass. */
static void run_until_done(struct rec *r, long max_ms)
{
	int64_t end = hec_now_mono_ns() + max_ms * 1000000LL;

	while (!r->done_calls && hec_now_mono_ns() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

/* Run the loop for @ms whatever happens. */
static void run_for(long ms)
{
	int64_t end = hec_now_mono_ns() + ms * 1000000LL;

	while (hec_now_mono_ns() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static json_t *num(int v)
{
	return json_pack("{s:i}", "v", v);
}

/* Every node answers: one done with every body, after the last answer only. */
static void test_all_answer(void)
{
	struct rec r = { 0 };
	struct fanout_req q = req_of(&r, 41, abc, 3, 5000);
	json_t *b;

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(r.sends, 3);
	CU_ASSERT_STRING_EQUAL(r.sent[0], "a");
	CU_ASSERT_STRING_EQUAL(r.sent[2], "c");
	CU_ASSERT_EQUAL(r.sent_id[1], 41);
	CU_ASSERT_TRUE(fanout_waiting(set, KIND, 41));
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(r.done_calls, 0);
		b = num(10 + i);
		CU_ASSERT_EQUAL(fanout_answer(set, KIND, 41, abc[2 - i], b), 0);
		json_decref(b); /* the set keeps its own reference */
	}
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_FALSE(fanout_waiting(set, KIND, 41));
	CU_ASSERT_EQUAL(r.id, 41);
	CU_ASSERT_EQUAL(r.nnodes, 3);
	CU_ASSERT_EQUAL(r.answered, 3);
	CU_ASSERT_FALSE(r.cancelled);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_STRING_EQUAL(r.res[i].node, abc[i]); /* request order, not answer order */
		CU_ASSERT_EQUAL(r.res[i].state, FANOUT_ANSWERED);
		CU_ASSERT_STRING_EQUAL(r.res[i].why, "(null)");
		CU_ASSERT_TRUE(r.res[i].recv_ns > 0);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r.res[i].body, "v")), 12 - i);
	}
	run_for(20); /* the deadline timer is gone with the request */
	CU_ASSERT_EQUAL(r.done_calls, 1);
	teardown();
	rec_clear(&r);
}

/* A node that cannot be sent to is an error answer at once. */
static void test_send_error(void)
{
	struct rec r = { .fail_node = "b", .fail_rc = -EIO };
	struct rec all = { .fail_rc = -ENOTCONN };
	struct fanout_req q = req_of(&r, 1, abc, 3, 5000);
	const char *const only[] = { "x" };
	struct fanout_req q2 = req_of(&all, 2, only, 1, 5000);
	json_t *b = num(1);

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(r.sends, 3); /* the others still get theirs */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 1, "b", b), -EALREADY);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 1, "a", b), 0);
	CU_ASSERT_EQUAL(r.done_calls, 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 1, "c", b), 0);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_EQUAL(r.answered, 2);
	CU_ASSERT_EQUAL(r.res[1].state, FANOUT_UNSENT);
	CU_ASSERT_EQUAL(r.res[1].err, -EIO);
	CU_ASSERT_PTR_NULL(r.res[1].body);
	CU_ASSERT_STRING_EQUAL(r.res[1].why, "PING not sent: Input/output error");

	/* Every send fails: done before fanout_start returns. */
	all.fail_node = "x";
	CU_ASSERT_EQUAL(fanout_start(set, &q2), 0);
	CU_ASSERT_EQUAL(all.done_calls, 1);
	CU_ASSERT_EQUAL(all.answered, 0);
	CU_ASSERT_EQUAL(all.res[0].state, FANOUT_UNSENT);
	CU_ASSERT_STRING_EQUAL(all.res[0].why, "not connected to the controller");
	CU_ASSERT_FALSE(fanout_waiting(set, KIND, 2));
	json_decref(b);
	teardown();
	rec_clear(&r);
	rec_clear(&all);
}

/* No nodes: done at once with nothing in it. */
static void test_empty(void)
{
	struct rec r = { 0 };
	struct fanout_req q = req_of(&r, 3, NULL, 0, 100);

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_EQUAL(r.nnodes, 0);
	CU_ASSERT_EQUAL(r.sends, 0);
	teardown();
	rec_clear(&r);
}

/* The deadline settles who has not answered; the others keep their answers. */
static void test_timeout(void)
{
	struct rec r = { 0 };
	struct fanout_req q = req_of(&r, 5, abc, 3, 60);
	json_t *b = num(7);

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 5, "b", b), 0);
	run_until_done(&r, 5000);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	/* libevent times with CLOCK_MONOTONIC_COARSE: a few ms early is on time */
	CU_ASSERT_TRUE(r.elapsed_ns >= 50000000LL);
	CU_ASSERT_TRUE(r.elapsed_ns < 5000000000LL);
	CU_ASSERT_EQUAL(r.answered, 1);
	CU_ASSERT_EQUAL(r.res[0].state, FANOUT_TIMEOUT);
	CU_ASSERT_STRING_EQUAL(r.res[0].why, "no answer within 0.06 s");
	CU_ASSERT_EQUAL(r.res[1].state, FANOUT_ANSWERED);
	CU_ASSERT_EQUAL(r.res[2].state, FANOUT_TIMEOUT);
	/* Late answers are unknown; nothing is called again. */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 5, "a", b), -ENOENT);
	CU_ASSERT_EQUAL(fanout_node_lost(set, "c", "gone"), 0);
	run_for(100);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	json_decref(b);
	teardown();
	rec_clear(&r);
}

/* A node lost settles it in every request waiting for it. */
static void test_node_lost(void)
{
	struct rec r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	const char *const bc[] = { "b", "c" }, *const only_b[] = { "b" };
	struct fanout_req q1 = req_of(&r1, 10, abc, 3, 5000);
	struct fanout_req q2 = req_of(&r2, 11, bc, 2, 5000);
	struct fanout_req q3 = req_of(&r3, 12, only_b, 1, 5000);
	json_t *b = num(1);

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q1), 0);
	CU_ASSERT_EQUAL(fanout_start(set, &q2), 0);
	CU_ASSERT_EQUAL(fanout_start(set, &q3), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 11, "b", b), 0); /* b answered this one */
	CU_ASSERT_EQUAL(fanout_node_lost(set, "nobody", "gone"), 0);
	CU_ASSERT_EQUAL(fanout_node_lost(set, "b", "DOWN: no heartbeat"), 2);
	CU_ASSERT_EQUAL(r3.done_calls, 1); /* nothing else to wait for */
	CU_ASSERT_EQUAL(r3.res[0].state, FANOUT_LOST);
	CU_ASSERT_STRING_EQUAL(r3.res[0].why, "went away (DOWN: no heartbeat)");
	CU_ASSERT_EQUAL(r1.done_calls, 0);
	CU_ASSERT_EQUAL(r2.done_calls, 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 10, "b", b), -EALREADY);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 10, "a", b), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 10, "c", b), 0);
	CU_ASSERT_EQUAL(r1.done_calls, 1);
	CU_ASSERT_EQUAL(r1.answered, 2);
	CU_ASSERT_EQUAL(r1.res[1].state, FANOUT_LOST);
	CU_ASSERT_PTR_NULL(r1.res[1].body);
	/* One event finishing two requests at once. */
	CU_ASSERT_EQUAL(fanout_node_lost(set, "c", "agent connection closed"), 1);
	CU_ASSERT_EQUAL(r2.done_calls, 1);
	CU_ASSERT_EQUAL(r2.res[0].state, FANOUT_ANSWERED); /* b's earlier answer stands */
	CU_ASSERT_EQUAL(r2.res[1].state, FANOUT_LOST);
	CU_ASSERT_EQUAL(fanout_node_lost(set, "c", "again"), 0);
	CU_ASSERT_EQUAL(r1.done_calls + r2.done_calls + r3.done_calls, 3);
	json_decref(b);
	teardown();
	rec_clear(&r1);
	rec_clear(&r2);
	rec_clear(&r3);
}

/* Answers that do not fit a waiting node change nothing. */
static void test_ignored_answers(void)
{
	struct rec r = { 0 };
	struct fanout_req q = req_of(&r, 20, abc, 3, 5000);
	json_t *ok = num(1), *bogus = json_pack("{s:b}", "bogus", 1);
	json_t *err = json_pack("{s:s}", "error", "disk full");

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 21, "a", ok), -ENOENT);     /* unknown id */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND + 1, 20, "a", ok), -ENOENT); /* other kind */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "d", ok), -ESRCH);      /* not asked */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "a", bogus), -EBADMSG); /* refused */
	CU_ASSERT_TRUE(fanout_waiting(set, KIND, 20));
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "a", ok), 0);           /* still waiting */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "a", ok), -EALREADY);   /* duplicate */
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "b", err), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "b", ok), -EALREADY);
	CU_ASSERT_EQUAL(r.done_calls, 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "c", ok), 0);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 20, "c", ok), -ENOENT);     /* late */
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_EQUAL(r.answered, 2);
	CU_ASSERT_EQUAL(r.res[0].state, FANOUT_ANSWERED);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(r.res[0].body, "v")), 1);
	CU_ASSERT_EQUAL(r.res[1].state, FANOUT_FAILED);
	CU_ASSERT_STRING_EQUAL(r.res[1].why, "b: disk full");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.res[1].body, "error")),
			       "disk full"); /* a failed node's answer is still there */
	json_decref(ok);
	json_decref(bogus);
	json_decref(err);
	teardown();
	rec_clear(&r);
}

/* Cancel: done once with the reason; the deadline never fires afterwards. */
static void test_cancel(void)
{
	struct rec r = { 0 };
	struct fanout_req q = req_of(&r, 30, abc, 3, 50);
	json_t *b = num(3);

	setup();
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 30, "a", b), 0);
	CU_ASSERT_EQUAL(fanout_cancel(set, KIND, 31, "no such"), -ENOENT);
	CU_ASSERT_EQUAL(r.done_calls, 0);
	CU_ASSERT_EQUAL(fanout_cancel(set, KIND, 30, "job 7 ended (CANCELLED)"), 0);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_TRUE(r.cancelled);
	CU_ASSERT_STRING_EQUAL(r.cancel_why, "job 7 ended (CANCELLED)");
	CU_ASSERT_EQUAL(r.answered, 1);
	CU_ASSERT_EQUAL(r.res[0].state, FANOUT_ANSWERED);
	CU_ASSERT_EQUAL(r.res[1].state, FANOUT_CANCELLED);
	CU_ASSERT_STRING_EQUAL(r.res[2].why, "job 7 ended (CANCELLED)");
	CU_ASSERT_EQUAL(fanout_cancel(set, KIND, 30, "again"), -ENOENT);
	run_for(120);
	CU_ASSERT_EQUAL(r.done_calls, 1);
	json_decref(b);
	teardown();
	rec_clear(&r);
}

/* The owner can go while the request keeps collecting. */
static void test_forget_owner(void)
{
	struct rec r1 = { 0 }, r2 = { 0 };
	int me = 0, other = 0;
	struct fanout_req q1 = req_of(&r1, 40, abc, 1, 5000), q2 = req_of(&r2, 41, abc, 1, 5000);
	json_t *b = num(1);

	setup();
	q1.owner = &me;
	q2.owner = &other;
	CU_ASSERT_EQUAL(fanout_start(set, &q1), 0);
	CU_ASSERT_EQUAL(fanout_start(set, &q2), 0);
	CU_ASSERT_EQUAL(fanout_forget_owner(set, &me), 1);
	CU_ASSERT_EQUAL(fanout_forget_owner(set, &me), 0);
	CU_ASSERT_TRUE(fanout_waiting(set, KIND, 40));
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 40, "a", b), 0);
	CU_ASSERT_EQUAL(fanout_answer(set, KIND, 41, "a", b), 0);
	CU_ASSERT_EQUAL(r1.done_calls, 1);
	CU_ASSERT_PTR_NULL(r1.owner);
	CU_ASSERT_EQUAL(r1.answered, 1);
	CU_ASSERT_PTR_EQUAL(r2.owner, &other);
	json_decref(b);
	teardown();
	rec_clear(&r1);
	rec_clear(&r2);
}

/* Requests fanout_start refuses: nothing sent, done never called. */
static void test_refused(void)
{
	struct rec r = { 0 }, bad = { 0 };
	const char *const twice[] = { "a", "b", "a" }, *const null_name[] = { "a", NULL };
	struct fanout_req q = req_of(&r, 50, abc, 3, 5000);
	struct fanout_req d = req_of(&bad, 50, abc, 1, 5000);
	struct fanout_req t = req_of(&bad, 51, twice, 3, 5000);
	struct fanout_req nn = req_of(&bad, 52, null_name, 2, 5000);
	struct fanout_req nodone = req_of(&bad, 53, abc, 1, 5000);
	struct fanout_req neg = req_of(&bad, 54, abc, 1, -1);

	setup();
	nodone.done = NULL;
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	CU_ASSERT_EQUAL(fanout_start(set, &d), -EEXIST);
	CU_ASSERT_EQUAL(fanout_start(set, &t), -EINVAL);
	CU_ASSERT_EQUAL(fanout_start(set, &nn), -EINVAL);
	CU_ASSERT_EQUAL(fanout_start(set, &nodone), -EINVAL);
	CU_ASSERT_EQUAL(fanout_start(set, &neg), -EINVAL);
	CU_ASSERT_EQUAL(bad.sends, 0);
	CU_ASSERT_EQUAL(bad.done_calls, 0);
	/* The same id under another kind is another request. */
	d.kind = KIND + 1;
	CU_ASSERT_EQUAL(fanout_start(set, &d), 0);
	CU_ASSERT_EQUAL(fanout_cancel(set, KIND + 1, 50, "x"), 0);
	CU_ASSERT_EQUAL(bad.done_calls, 1);
	CU_ASSERT_TRUE(fanout_waiting(set, KIND, 50));
	teardown(); /* cancels request 50 */
	CU_ASSERT_EQUAL(r.done_calls, 1);
	rec_clear(&r);
	rec_clear(&bad);
}

/* Freeing the set finishes every request: owner gone, reason given, no new ones. */
static void test_set_free(void)
{
	struct rec r = { 0 }, chained = { 0 };
	int owner = 0;
	struct fanout_req q = req_of(&r, 60, abc, 2, 5000), c = req_of(&chained, 61, abc, 1, 5000);

	setup();
	q.owner = &owner;
	r.set = set;
	r.chain = &c;
	CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	teardown();
	CU_ASSERT_EQUAL(r.done_calls, 1);
	CU_ASSERT_PTR_NULL(r.owner);
	CU_ASSERT_STRING_EQUAL(r.cancel_why, "the controller is exiting");
	CU_ASSERT_EQUAL(r.res[1].state, FANOUT_CANCELLED);
	CU_ASSERT_EQUAL(r.chain_rc, -ESHUTDOWN);
	CU_ASSERT_EQUAL(chained.sends, 0);
	CU_ASSERT_EQUAL(chained.done_calls, 0);
	rec_clear(&r);
	rec_clear(&chained);
}

/* Many requests at once, answered interleaved; a done starting the next phase. */
static void test_many(void)
{
	enum { NREQ = 200 };
	static const char *const five[] = { "n1", "n2", "n3", "n4", "n5" };
	struct rec *r = calloc(NREQ, sizeof(*r)), next = { 0 };
	struct fanout_req nq = req_of(&next, 1000000, five, 5, 5000);
	json_t *b = num(9);
	int order[NREQ * 5], total_done = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	setup();
	for (int i = 0; i < NREQ; i++) {
		struct fanout_req q = req_of(&r[i], 1000 + i, five, 5, i % 2 ? 5000 : 0);

		CU_ASSERT_EQUAL(fanout_start(set, &q), 0);
	}
	r[NREQ - 1].set = set;
	r[NREQ - 1].chain = &nq;
	/* A fixed shuffle of (request, node) pairs. */
	for (int k = 0; k < NREQ * 5; k++)
		order[k] = k;
	srand(12345);
	for (int k = NREQ * 5 - 1; k > 0; k--) {
		int m = rand() % (k + 1), t = order[k];

		order[k] = order[m];
		order[m] = t;
	}
	for (int k = 0; k < NREQ * 5; k++) {
		int i = order[k] / 5, n = order[k] % 5;

		if (n == 4 && i % 10 == 0)
			continue; /* left for the node loss below */
		CU_ASSERT_EQUAL(fanout_answer(set, KIND, 1000 + i, five[n], b), 0);
	}
	/* The tenth requests, and the chained one (r[NREQ - 1] is done by now). */
	CU_ASSERT_EQUAL(fanout_node_lost(set, "n5", "gone"), NREQ / 10 + 1);
	for (int i = 0; i < NREQ; i++) {
		CU_ASSERT_EQUAL(r[i].done_calls, 1);
		CU_ASSERT_EQUAL(r[i].id, 1000 + i);
		CU_ASSERT_EQUAL(r[i].answered, i % 10 == 0 ? 4 : 5);
		CU_ASSERT_EQUAL(r[i].sends, 5);
		CU_ASSERT_EQUAL(r[i].sent_id[4], 1000 + i);
		total_done += r[i].done_calls;
	}
	CU_ASSERT_EQUAL(total_done, NREQ);
	/* The request started from a done callback runs like any other. */
	CU_ASSERT_EQUAL(r[NREQ - 1].chain_rc, 0);
	CU_ASSERT_EQUAL(next.sends, 5);
	CU_ASSERT_TRUE(fanout_waiting(set, KIND, 1000000));
	CU_ASSERT_EQUAL(fanout_node_lost(set, "n1", "gone"), 1);
	json_decref(b);
	teardown();
	CU_ASSERT_EQUAL(next.done_calls, 1);
	CU_ASSERT_EQUAL(next.res[0].state, FANOUT_LOST);
	CU_ASSERT_EQUAL(next.res[1].state, FANOUT_CANCELLED);
	CU_ASSERT_EQUAL(next.res[4].state, FANOUT_LOST);
	for (int i = 0; i < NREQ; i++)
		rec_clear(&r[i]);
	free(r);
	rec_clear(&next);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "all nodes answer", test_all_answer },
		{ "a send fails", test_send_error },
		{ "no nodes", test_empty },
		{ "deadline", test_timeout },
		{ "node lost", test_node_lost },
		{ "late, duplicate, unknown and refused answers", test_ignored_answers },
		{ "cancel", test_cancel },
		{ "owner forgotten", test_forget_owner },
		{ "refused requests", test_refused },
		{ "set freed with requests", test_set_free },
		{ "many concurrent requests", test_many },
		{ NULL, NULL },
	};

	hec_log_init("test_fanout", HEC_LOG_ERR);
	return hec_cunit_run("fanout", tests);
}
