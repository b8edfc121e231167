/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fan-out requests of the controller (contracts in fanout.h).
 *
 * A request settles node by node; whatever settles its last node finishes
 * it: the request leaves the set before done runs, so done may start or
 * cancel other requests.  Where one event settles nodes of several
 * requests (a node lost), the requests are marked first and finished one at
 * a time afterwards, looking them up again each time, because a done
 * callback may have cancelled the next one in between.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "fanout.h"

/* The reason of a node whose reason text could not be allocated. */
static const char oom_why[] = "controller out of memory";

struct fanout {
	struct fanout_set *set;
	unsigned kind;
	int64_t id;
	char *what;
	void *owner;
	long timeout_ms;
	int (*answer)(void *arg, const char *node, const json_t *body, char *why, size_t len);
	void (*done)(void *arg, const struct fanout_done *d);
	void *arg;
	struct event *timer;         /* NULL: no deadline */
	int64_t started;             /* mono ns */
	const char *cancelled;       /* fanout_cancel's reason (may be oom_why) */
	struct fanout_result *res;   /* node and why are ours (why may be oom_why) */
	int *by_name;                /* indices of res in node name order: answers
				      * are looked up by name, N of them at 1024 nodes */
	int nnodes, waiting;
	struct fanout *prev, *next;
};

struct fanout_set {
	struct event_base *base;
	struct fanout *head;
	int closing;                 /* fanout_set_free runs: no new requests */
};

const char *fanout_state_name(enum fanout_state s)
{
	static const char *const names[] = {
		[FANOUT_WAITING] = "waiting", [FANOUT_ANSWERED] = "answered",
		[FANOUT_FAILED] = "failed", [FANOUT_UNSENT] = "unsent", [FANOUT_LOST] = "lost",
		[FANOUT_TIMEOUT] = "timeout", [FANOUT_CANCELLED] = "cancelled",
	};

	return (unsigned)s < HEC_ARRAY_SIZE(names) ? names[s] : "?";
}

int fanout_set_new(struct event_base *base, struct fanout_set **out)
{
	struct fanout_set *set = calloc(1, sizeof(*set));

	if (!set)
		return -ENOMEM;
	set->base = base;
	*out = set;
	return 0;
}

static struct fanout *find(const struct fanout_set *set, unsigned kind, int64_t id)
{
	struct fanout *f;

	for (f = set ? set->head : NULL; f && (f->kind != kind || f->id != id); f = f->next)
		;
	return f;
}

int fanout_waiting(const struct fanout_set *set, unsigned kind, int64_t id)
{
	return find(set, kind, id) != NULL;
}

static int by_name_cmp(const void *a, const void *b, void *arg)
{
	const struct fanout_result *res = arg;

	return strcmp(res[*(const int *)a].node, res[*(const int *)b].node);
}

/* The index in f->res of @node, or -1. */
static int node_index(const struct fanout *f, const char *node)
{
	int lo = 0, hi = f->nnodes - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2, c = strcmp(f->res[f->by_name[mid]].node, node);

		if (!c)
			return f->by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static void fanout_free(struct fanout *f)
{
	if (f->timer)
		event_free(f->timer);
	for (int i = 0; i < f->nnodes; i++) {
		free((char *)f->res[i].node);
		if (f->res[i].why != oom_why)
			free((char *)f->res[i].why);
		json_decref(f->res[i].body);
	}
	free(f->res);
	free(f->by_name);
	if (f->cancelled != oom_why)
		free((char *)f->cancelled);
	free(f->what);
	free(f);
}

static void unlink_req(struct fanout *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		f->set->head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
}

/* Settle node @i as failed in @state (no-op if it has settled already). */
__attribute__((format(printf, 4, 5)))
static void settle(struct fanout *f, int i, enum fanout_state state, const char *fmt, ...)
{
	struct fanout_result *r = &f->res[i];
	char *why = NULL;
	va_list ap;

	if (r->state != FANOUT_WAITING)
		return;
	r->state = state;
	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	r->why = why ? why : oom_why;
	f->waiting--;
}

/* Every node has settled: out of the set, done, freed. */
static void finish(struct fanout *f)
{
	struct fanout_done d = {
		.kind = f->kind, .id = f->id, .owner = f->owner, .cancelled = f->cancelled,
		.elapsed_ns = hec_now_mono_ns() - f->started, .nodes = f->res, .nnodes = f->nnodes,
	};

	unlink_req(f);
	if (f->timer)
		event_del(f->timer);
	for (int i = 0; i < f->nnodes; i++)
		d.answered += f->res[i].state == FANOUT_ANSWERED;
	f->done(f->arg, &d);
	fanout_free(f);
}

/* Finish the requests an event left with nothing to wait for. */
static void reap(struct fanout_set *set)
{
	for (;;) {
		struct fanout *f;

		for (f = set->head; f && f->waiting; f = f->next)
			;
		if (!f)
			return;
		finish(f);
	}
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fanout *f = arg;
	int late = f->waiting;

	(void)fd;
	(void)what;
	hec_warn("%s request %lld: no answer from %d of %d node%s within %g s", f->what,
		 (long long)f->id, late, f->nnodes, f->nnodes == 1 ? "" : "s",
		 (double)f->timeout_ms / 1000.0);
	for (int i = 0; i < f->nnodes; i++)
		settle(f, i, FANOUT_TIMEOUT, "no answer within %g s", (double)f->timeout_ms / 1000.0);
	finish(f);
}

/* Checks of fanout_start that need no allocation. */
static int req_valid(const struct fanout_req *req)
{
	if (!req->send || !req->done || req->nnodes < 0 || (req->nnodes && !req->nodes) ||
	    req->timeout_ms < 0)
		return -EINVAL;
	for (int i = 0; i < req->nnodes; i++)
		if (!req->nodes[i])
			return -EINVAL;
	return 0; /* a name given twice: fanout_start, once they are sorted */
}

int fanout_start(struct fanout_set *set, const struct fanout_req *req)
{
	struct fanout *f;
	int rc = req_valid(req);

	if (rc)
		return rc;
	if (set->closing)
		return -ESHUTDOWN;
	if (find(set, req->kind, req->id))
		return -EEXIST;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->set = set;
	f->kind = req->kind;
	f->id = req->id;
	f->owner = req->owner;
	f->timeout_ms = req->timeout_ms;
	f->answer = req->answer;
	f->done = req->done;
	f->arg = req->arg;
	f->nnodes = f->waiting = req->nnodes;
	f->what = strdup(req->what ? req->what : "request");
	f->res = calloc((size_t)req->nnodes + 1, sizeof(*f->res));
	f->by_name = calloc((size_t)req->nnodes + 1, sizeof(*f->by_name));
	if (!f->what || !f->res || !f->by_name)
		goto err_free;
	for (int i = 0; i < req->nnodes; i++) {
		if (!(f->res[i].node = strdup(req->nodes[i])))
			goto err_free;
		f->by_name[i] = i;
	}
	qsort_r(f->by_name, (size_t)f->nnodes, sizeof(*f->by_name), by_name_cmp, f->res);
	for (int i = 1; i < f->nnodes; i++)
		if (!strcmp(f->res[f->by_name[i - 1]].node, f->res[f->by_name[i]].node)) {
			fanout_free(f);
			return -EINVAL;
		}
	if (req->timeout_ms) {
		struct timeval tv = { .tv_sec = req->timeout_ms / 1000,
				      .tv_usec = (req->timeout_ms % 1000) * 1000 };

		f->timer = evtimer_new(set->base, timeout_cb, f);
		if (!f->timer || evtimer_add(f->timer, &tv))
			goto err_free;
	}
	f->started = hec_now_mono_ns();
	f->next = set->head;
	if (set->head)
		set->head->prev = f;
	set->head = f;
	for (int i = 0; i < f->nnodes; i++) {
		rc = f->res[i].state == FANOUT_WAITING ? req->send(req->arg, f->res[i].node, f->id) : 0;
		if (!rc)
			continue;
		f->res[i].err = rc;
		if (rc == -ENOTCONN)
			settle(f, i, FANOUT_UNSENT, "not connected to the controller");
		else
			settle(f, i, FANOUT_UNSENT, "%s not sent: %s", f->what, strerror(-rc));
	}
	if (!f->waiting)
		finish(f);
	return 0;

err_free:
	fanout_free(f);
	return -ENOMEM;
}

int fanout_answer(struct fanout_set *set, unsigned kind, int64_t id, const char *node,
		  const json_t *body)
{
	struct fanout *f = find(set, kind, id);
	struct fanout_result *r;
	char why[512] = "";
	int rc = FANOUT_ANSWERED, i;

	if (!f)
		return -ENOENT;
	i = node_index(f, node);
	if (i < 0)
		return -ESRCH;
	r = &f->res[i];
	if (r->state != FANOUT_WAITING)
		return -EALREADY;
	if (f->answer) {
		rc = f->answer(f->arg, node, body, why, sizeof(why));
		if (rc < 0)
			return rc;
	}
	if (rc == FANOUT_FAILED) {
		settle(f, (int)(r - f->res), FANOUT_FAILED, "%s", *why ? why : "failed");
	} else {
		r->state = FANOUT_ANSWERED;
		f->waiting--;
	}
	r->body = json_incref((json_t *)body);
	r->recv_ns = hec_now_real_ns();
	if (!f->waiting)
		finish(f);
	return 0;
}

int fanout_node_lost(struct fanout_set *set, const char *node, const char *reason)
{
	int n = 0;

	if (!set)
		return 0;
	for (struct fanout *f = set->head; f; f = f->next) {
		int i = node_index(f, node);

		if (i < 0 || f->res[i].state != FANOUT_WAITING)
			continue;
		hec_warn("%s request %lld: %s went away (%s)", f->what, (long long)f->id, node,
			 reason);
		settle(f, i, FANOUT_LOST, "went away (%s)", reason);
		n++;
	}
	reap(set);
	return n;
}

int fanout_cancel(struct fanout_set *set, unsigned kind, int64_t id, const char *reason)
{
	struct fanout *f = find(set, kind, id);

	if (!f)
		return -ENOENT;
	f->cancelled = strdup(reason);
	if (!f->cancelled) /* done still learns that it was cancelled */
		f->cancelled = oom_why;
	for (int i = 0; i < f->nnodes; i++)
		settle(f, i, FANOUT_CANCELLED, "%s", reason);
	finish(f);
	return 0;
}

int fanout_forget_owner(struct fanout_set *set, const void *owner)
{
	int n = 0;

	for (struct fanout *f = set ? set->head : NULL; f; f = f->next)
		if (owner && f->owner == owner) {
			f->owner = NULL;
			n++;
		}
	return n;
}

void fanout_set_free(struct fanout_set *set)
{
	if (!set)
		return;
	set->closing = 1;
	for (struct fanout *f = set->head; f; f = f->next)
		f->owner = NULL;
	while (set->head)
		fanout_cancel(set, set->head->kind, set->head->id, "the controller is exiting");
	free(set);
}
