/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fan-out requests of the controller: send one message to N nodes, collect
 * each node's answer (or why it has none) until a deadline, then hand every
 * node's outcome to one done callback.  `hec gang stats` (STATS_REQ) and
 * a checkpoint's capture and stream phases (CKPT_PREPARE, CKPT_STORED) go
 * through it.
 *
 * The service knows nodes by name only and sends through the caller's
 * callback, so it depends on libevent and jansson, not on the controller's
 * records.  Everything runs on the thread of the event base given to
 * fanout_set_new.
 *
 * Life of a request: fanout_start sends to every node; each node then
 * settles exactly once, as one of
 *   ANSWERED / FAILED   fanout_answer matched it (the answer callback
 *                       decides which of the two),
 *   UNSENT              the send callback returned an error,
 *   LOST                fanout_node_lost named it,
 *   TIMEOUT             the deadline passed first,
 *   CANCELLED           fanout_cancel, or fanout_set_free,
 * and once no node is waiting, done is called exactly once and the request
 * is forgotten (an answer for it afterwards is "unknown").
 */
#ifndef HEC_FANOUT_H
#define HEC_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

struct fanout_set;

enum fanout_state {
	FANOUT_WAITING,     /* not settled yet; never seen by done */
	FANOUT_ANSWERED,
	FANOUT_FAILED,      /* answered, but the answer reports a failure */
	FANOUT_UNSENT,      /* the send callback failed */
	FANOUT_LOST,        /* its agent connection went away */
	FANOUT_TIMEOUT,
	FANOUT_CANCELLED,
};

/* One node's outcome, as done sees it. */
struct fanout_result {
	const char *node;
	enum fanout_state state;
	/* ANSWERED / FAILED: the answer; borrowed, valid until done returns
	 * (json_incref it to keep it).  NULL otherwise. */
	json_t *body;
	int64_t recv_ns;            /* CLOCK_REALTIME ns the answer came, else 0 */
	int err;                    /* UNSENT: the send callback's -errno */
	/* Every state but ANSWERED: why, as a phrase for "node1: <why>":
	 * FAILED the answer callback's text; UNSENT "not connected to the
	 * controller" (-ENOTCONN) or "<what> not sent: <strerror>"; LOST
	 * "went away (<reason>)"; TIMEOUT "no answer within <t> s";
	 * CANCELLED the cancel reason.  NULL for ANSWERED. */
	const char *why;
};

/* What done gets; all of it borrowed for the call. */
struct fanout_done {
	unsigned kind;
	int64_t id;
	void *owner;                /* the request's owner, NULL once forgotten */
	const char *cancelled;      /* the fanout_cancel reason, or NULL */
	int64_t elapsed_ns;         /* since fanout_start (monotonic) */
	const struct fanout_result *nodes; /* in the request's order */
	int nnodes;
	int answered;               /* nodes in state ANSWERED; the others failed */
};

struct fanout_req {
	/* Match key of the answers: a kind (the controller uses the answer's
	 * message type) and an id the caller chose (sent in the message, echoed
	 * in the answers).  Only one waiting request per (kind, id). */
	unsigned kind;
	int64_t id;
	const char *what;           /* the message, for log lines and reasons ("CKPT_PREPARE") */
	const char *const *nodes;   /* names, copied; no name twice */
	int nnodes;
	long timeout_ms;            /* nodes not settled by then: TIMEOUT; 0: no deadline */
	/* Who waits for the result (the controller: a CLI connection);
	 * fanout_forget_owner turns it to NULL.  May be NULL. */
	void *owner;
	/* Send the request to @node. \return 0, or -errno: the node is UNSENT
	 * at once.  Called in node order from within fanout_start only; must
	 * not call into the set. */
	int (*send)(void *arg, const char *node, int64_t id);
	/* Optional: judge an answer that matched a waiting node.
	 * \return FANOUT_ANSWERED, FANOUT_FAILED with a reason written to @why,
	 * or a negative errno: the answer is ignored, the node keeps waiting,
	 * and fanout_answer returns that value.  Must not call into the set.
	 * Without it every matching answer is ANSWERED. */
	int (*answer)(void *arg, const char *node, const json_t *body, char *why, size_t len);
	/* Every node settled: called exactly once for a request fanout_start
	 * accepted, possibly before fanout_start returns (every send failed,
	 * or no nodes).  The request is out of the set by then: done may start
	 * new requests (but not while fanout_set_free runs) and frees @arg if
	 * it owns it. */
	void (*done)(void *arg, const struct fanout_done *d);
	void *arg;
};

/** A set of requests whose timers run on @base. \return 0 or -ENOMEM. */
int fanout_set_new(struct event_base *base, struct fanout_set **out);
/**
 * Cancel every waiting request with reason "the controller is exiting"
 * (owners forgotten first, so nobody is answered) and free the set.
 * NULL is a no-op.  Must not be called from a callback of the set.
 */
void fanout_set_free(struct fanout_set *set);

/**
 * Start @req: copy it, send to every node, arm the deadline.
 * \return 0: done will be called exactly once (maybe already has been);
 * -EINVAL (no send or done, nnodes < 0, a NULL or repeated name),
 * -EEXIST (a request with this kind and id is waiting), -ESHUTDOWN (the
 * set is being freed), -ENOMEM: nothing was sent and done is never called.
 */
int fanout_start(struct fanout_set *set, const struct fanout_req *req);

/**
 * An answer from @node to request (@kind, @id); @body is borrowed (the set
 * takes its own reference if it keeps it).  \return 0 when it settled the
 * node (done runs here if it was the last), -ENOENT (no such request is
 * waiting: late or unknown), -ESRCH (@node is not in it), -EALREADY (that
 * node has settled already), or the answer callback's negative result.
 */
int fanout_answer(struct fanout_set *set, unsigned kind, int64_t id, const char *node,
		  const json_t *body);

/**
 * @node's agent connection is gone: in every request it is still waiting
 * in, it becomes LOST with @reason ("went away (<reason>)").  Requests left
 * with nothing to wait for finish here.  \return how many it was waiting in.
 */
int fanout_node_lost(struct fanout_set *set, const char *node, const char *reason);

/**
 * Settle every waiting node of (@kind, @id) as CANCELLED with @reason and
 * call done (with d->cancelled = @reason).  \return 0 or -ENOENT.
 */
int fanout_cancel(struct fanout_set *set, unsigned kind, int64_t id, const char *reason);

/** Every request owned by @owner keeps collecting, but done will see a NULL
 *  owner (nobody to answer).  \return how many requests it owned. */
int fanout_forget_owner(struct fanout_set *set, const void *owner);

/** 1 if (@kind, @id) is waiting, else 0. */
int fanout_waiting(const struct fanout_set *set, unsigned kind, int64_t id);

const char *fanout_state_name(enum fanout_state s);

#endif
