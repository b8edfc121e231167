/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rdma/fabric.c: the fabric layer (rdma/hecfab.h) over libfabric FI_EP_MSG.
 *
 * Resources: one fabric, domain, EQ and CQ per struct hec_fab; a listener's
 * accepted endpoints share them.  Every posted operation carries a struct
 * fab_op (owned by the fabric, never by the endpoint) so that a completion
 * read after its endpoint went away still points at valid memory: such an
 * "orphan" op is simply recycled.
 *
 * Events are produced into a queue (f->evq) by draining the CQ and the EQ,
 * and handed out by hec_fab_poll(); one CQ or EQ entry may make several
 * events (a broken connection: DONE with an error for every pending
 * operation, then CLOSED).  A RECV event lends its buffer to the caller until
 * the next hec_fab_poll(), which reposts it.
 *
 * Ordering (send after write): where the provider offers FI_ORDER_SAW (tcp,
 * verbs) the endpoints ask for it and the transport keeps the order.
 * Elsewhere (or with HEC_FAB_ORDER=hold in the environment, for tests) the
 * layer holds each send while writes posted before it on that endpoint are
 * in flight, and writes ask for FI_DELIVERY_COMPLETE where the provider
 * supports it, so a write's completion means its data is in the peer's
 * memory before the message behind it is posted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "rdma/hecfab.h"

#define FAB_API FI_VERSION(1, 11)
#define FAB_DEPTH_DEF 16u
#define FAB_DEPTH_MAX 256u
#define FAB_RMA_MAX 64u    /* RMA operations in flight per endpoint */
#define FAB_CQ_SIZE 8192u  /* shared by all endpoints: bounds how many a listener accepts */
#define FAB_EQ_SIZE 256u
#define FAB_OPS_CHUNK 64u

enum op_kind { OP_RECV, OP_SEND, OP_WRITE, OP_READ };
enum op_state { OP_FREE, OP_POSTED, OP_HELD, OP_LENT, OP_ORPHAN };

struct fab_op {
	struct fi_context2 fctx; /* first: providers with FI_CONTEXT(2) mode own it */
	struct fab_op *next;     /* free list, held queue or lent list */
	struct hec_fab_ep *ep;
	void *ctx;
	enum op_kind kind;
	enum op_state state;
	unsigned buf;            /* send or receive buffer index */
	size_t len;              /* held send's length */
	uint64_t seq;            /* write: its number on the endpoint; held send:
				  * the last write posted before it */
};

struct fab_ops_chunk {
	struct fab_ops_chunk *next;
	struct fab_op ops[FAB_OPS_CHUNK];
};

struct fab_evn {
	struct fab_evn *next;
	struct fab_op *lend; /* RECV: the buffer lent with this event */
	struct hec_fab_ev ev;
};

enum ep_state { EP_ACCEPTING, EP_CONNECTING, EP_UP, EP_DOWN };

struct hec_fab_ep {
	struct hec_fab *f;
	struct hec_fab_ep *next;
	struct fid_ep *ep; /* NULL once down */
	enum ep_state state;
	char *rbufs, *sbufs;
	struct fid_mr *rmr, *smr;
	void *rdesc, *sdesc;
	unsigned *sfree, nsfree;
	unsigned nrma, nwrites;
	uint64_t wposted;        /* writes posted so far */
	struct fab_op *held, *held_tail;
	void *arg;
	char peer[64];
};

struct hec_fab_mr {
	struct hec_fab *f;
	struct hec_fab_mr *next;
	struct fid_mr *mr;
	void *desc;
	char *buf;
	size_t len;
	uint64_t base, key;
};

struct hec_fab {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_cq *cq;
	struct fid_pep *pep;
	int fds[2], nfds;
	uint64_t mr_mode;
	size_t key_size;
	int hold;            /* ordering by holding sends (no FI_ORDER_SAW) */
	uint64_t wflags;     /* fi_writemsg flags */
	unsigned depth, nrma_max, budget;
	size_t rma_max;
	char prov[16];
	char addr[80];
	struct hec_fab_ep *eps;
	struct hec_fab_mr *mrs;
	struct fab_evn *evq, *evq_tail;
	unsigned nev;
	struct fab_op *lent;
	struct fab_op *ofree;
	struct fab_ops_chunk *chunks;
};

static void setwhy(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void setwhy(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* libfabric's errors are errno values (FI_ENODATA == ENODATA ...). */
static int fab_err(ssize_t r)
{
	return r < 0 ? (int)r : -(int)r;
}

/* ---- operations and events ---------------------------------------------- */

static struct fab_op *op_get(struct hec_fab *f, struct hec_fab_ep *ep, enum op_kind kind, void *ctx)
{
	struct fab_op *op;

	if (!f->ofree) {
		struct fab_ops_chunk *c = calloc(1, sizeof(*c));
		unsigned i;

		if (!c)
			return NULL;
		c->next = f->chunks;
		f->chunks = c;
		for (i = 0; i < FAB_OPS_CHUNK; i++) {
			c->ops[i].next = f->ofree;
			f->ofree = &c->ops[i];
		}
	}
	op = f->ofree;
	f->ofree = op->next;
	memset(op, 0, sizeof(*op));
	op->ep = ep;
	op->kind = kind;
	op->ctx = ctx;
	op->state = OP_POSTED;
	return op;
}

static void op_put(struct hec_fab *f, struct fab_op *op)
{
	op->state = OP_FREE;
	op->ep = NULL;
	op->next = f->ofree;
	f->ofree = op;
}

static struct hec_fab_ev *ev_push(struct hec_fab *f, enum hec_fab_ev_type type, struct hec_fab_ep *ep)
{
	struct fab_evn *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL; /* out of memory: the event is lost, nothing else breaks */
	n->ev.type = type;
	n->ev.ep = ep;
	if (f->evq_tail)
		f->evq_tail->next = n;
	else
		f->evq = n;
	f->evq_tail = n;
	f->nev++;
	return &n->ev;
}

static void ev_done(struct hec_fab *f, struct hec_fab_ep *ep, void *ctx, int err, const char *why)
{
	struct hec_fab_ev *ev = ev_push(f, HEC_FAB_EV_DONE, ep);

	if (!ev)
		return;
	ev->ctx = ctx;
	ev->err = err;
	if (why)
		snprintf(ev->why, sizeof(ev->why), "%s", why);
}

/* ---- memory registration ------------------------------------------------ */

static int mr_open(struct hec_fab *f, void *buf, size_t len, uint64_t access, struct fid_mr **mr,
		   char *why, size_t whylen)
{
	int tries, r = 0;

	for (tries = 0; tries < 8; tries++) {
		uint64_t key = 0;

		if (!(f->mr_mode & FI_MR_PROV_KEY)) {
			/* we choose the key: random, so a peer cannot guess another
			 * client's region */
			if (getrandom(&key, sizeof(key), 0) != sizeof(key)) {
				r = -errno;
				setwhy(why, whylen, "getrandom: %s", strerror(errno));
				return r;
			}
			if (f->key_size < sizeof(key))
				key &= (1ull << (8 * f->key_size)) - 1;
		}
		r = fi_mr_reg(f->domain, buf, len, access, 0, key, 0, mr, NULL);
		if (r != -FI_ENOKEY)
			break;
	}
	if (r) {
		setwhy(why, whylen, "fi_mr_reg %s %zu bytes: %s", f->prov, len, fi_strerror(-r));
		return fab_err(r);
	}
	return 0;
}

int hec_fab_mr_reg(struct hec_fab *f, void *buf, size_t len, struct hec_fab_mr **out, char *why,
		   size_t whylen)
{
	struct hec_fab_mr *m;
	int r;

	if (!f || !buf || !len || !out) {
		setwhy(why, whylen, "hec_fab_mr_reg: invalid argument");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		setwhy(why, whylen, "hec_fab_mr_reg: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	r = mr_open(f, buf, len, FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, &m->mr, why,
		    whylen);
	if (r) {
		free(m);
		return r;
	}
	m->f = f;
	m->buf = buf;
	m->len = len;
	m->desc = fi_mr_desc(m->mr);
	m->key = fi_mr_key(m->mr);
	m->base = (f->mr_mode & FI_MR_VIRT_ADDR) ? (uint64_t)(uintptr_t)buf : 0;
	m->next = f->mrs;
	f->mrs = m;
	*out = m;
	return 0;
}

void hec_fab_mr_free(struct hec_fab_mr *m)
{
	struct hec_fab_mr **pp;

	if (!m)
		return;
	for (pp = &m->f->mrs; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	fi_close(&m->mr->fid);
	free(m);
}

uint64_t hec_fab_mr_base(const struct hec_fab_mr *m)
{
	return m->base;
}

uint64_t hec_fab_mr_key(const struct hec_fab_mr *m)
{
	return m->key;
}

/* ---- endpoints ---------------------------------------------------------- */

static unsigned ep_cost(const struct hec_fab *f)
{
	return 2 * f->depth + f->nrma_max;
}

static int ep_post_recv(struct hec_fab_ep *ep, struct fab_op *op)
{
	ssize_t r;

	op->state = OP_POSTED;
	r = fi_recv(ep->ep, ep->rbufs + (size_t)op->buf * HEC_FAB_MSG_MAX, HEC_FAB_MSG_MAX, ep->rdesc,
		    0, op);
	return r ? fab_err(r) : 0;
}

static void peer_name(struct hec_fab_ep *ep)
{
	struct sockaddr_storage ss;
	size_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	snprintf(ep->peer, sizeof(ep->peer), "?");
	if (fi_getpeer(ep->ep, &ss, &len))
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
		snprintf(ep->peer, sizeof(ep->peer), "%s:%u", host, port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		snprintf(ep->peer, sizeof(ep->peer), "[%s]:%u", host, port);
	}
}

/* @ep's operations not yet completed: a completion may still come for them
 * (cancelled on close), and finds them orphans. */
static void ep_orphan_ops(struct hec_fab_ep *ep)
{
	struct fab_ops_chunk *c;
	unsigned i;

	for (c = ep->f->chunks; c; c = c->next)
		for (i = 0; i < FAB_OPS_CHUNK; i++)
			if (c->ops[i].ep == ep && c->ops[i].state != OP_FREE) {
				c->ops[i].state = OP_ORPHAN;
				c->ops[i].ep = NULL;
			}
}

static void ep_release(struct hec_fab_ep *ep)
{
	if (ep->ep)
		fi_close(&ep->ep->fid);
	if (ep->rmr)
		fi_close(&ep->rmr->fid);
	if (ep->smr)
		fi_close(&ep->smr->fid);
	free(ep->rbufs);
	free(ep->sbufs);
	free(ep->sfree);
	free(ep);
}

/* Free an endpoint the caller never saw (not in f->eps). */
static void ep_discard(struct hec_fab_ep *ep)
{
	if (ep->ep) {
		fi_close(&ep->ep->fid);
		ep->ep = NULL;
	}
	ep_orphan_ops(ep);
	ep_release(ep);
}

/* A new endpoint from @info, bound to the fabric's EQ and CQ, enabled, its
 * receive buffers posted.  Not yet in f->eps. */
static int ep_new(struct hec_fab *f, struct fi_info *info, enum ep_state state,
		  struct hec_fab_ep **out, char *why, size_t whylen)
{
	size_t bytes = (size_t)f->depth * HEC_FAB_MSG_MAX;
	struct hec_fab_ep *ep;
	const char *what;
	unsigned i;
	int r;

	ep = calloc(1, sizeof(*ep));
	if (!ep)
		goto nomem;
	ep->f = f;
	ep->state = state;
	ep->rbufs = malloc(bytes);
	ep->sbufs = malloc(bytes);
	ep->sfree = calloc(f->depth, sizeof(*ep->sfree));
	if (!ep->rbufs || !ep->sbufs || !ep->sfree)
		goto nomem_ep;
	for (i = 0; i < f->depth; i++)
		ep->sfree[i] = f->depth - 1 - i;
	ep->nsfree = f->depth;
	if (f->mr_mode & FI_MR_LOCAL) {
		r = mr_open(f, ep->rbufs, bytes, FI_RECV, &ep->rmr, why, whylen);
		if (!r)
			r = mr_open(f, ep->sbufs, bytes, FI_SEND, &ep->smr, why, whylen);
		if (r)
			goto fail;
		ep->rdesc = fi_mr_desc(ep->rmr);
		ep->sdesc = fi_mr_desc(ep->smr);
	}
	/* queues sized for what the layer posts (verbs would otherwise size
	 * its QP for the device's maximum) */
	if (info->tx_attr) {
		info->tx_attr->msg_order = f->info->tx_attr->msg_order;
		if (!info->tx_attr->size || info->tx_attr->size > f->depth + f->nrma_max)
			info->tx_attr->size = f->depth + f->nrma_max;
	}
	if (info->rx_attr) {
		info->rx_attr->msg_order = f->info->rx_attr->msg_order;
		if (!info->rx_attr->size || info->rx_attr->size > f->depth)
			info->rx_attr->size = f->depth;
	}
	what = "fi_endpoint";
	r = fi_endpoint(f->domain, info, &ep->ep, ep);
	if (r)
		goto fail_fi;
	what = "fi_ep_bind eq";
	r = fi_ep_bind(ep->ep, &f->eq->fid, 0);
	if (r)
		goto fail_fi;
	what = "fi_ep_bind cq";
	r = fi_ep_bind(ep->ep, &f->cq->fid, FI_TRANSMIT | FI_RECV);
	if (r)
		goto fail_fi;
	what = "fi_enable";
	r = fi_enable(ep->ep);
	if (r)
		goto fail_fi;
	what = "fi_recv";
	for (i = 0; i < f->depth; i++) {
		struct fab_op *op = op_get(f, ep, OP_RECV, NULL);

		if (!op)
			goto nomem_ep;
		op->buf = i;
		r = ep_post_recv(ep, op);
		if (r) {
			op_put(f, op);
			goto fail_fi;
		}
	}
	*out = ep;
	return 0;
fail_fi:
	setwhy(why, whylen, "%s %s: %s", what, f->prov, fi_strerror(-r));
	r = fab_err(r);
	goto fail;
nomem_ep:
	setwhy(why, whylen, "fabric endpoint: %s", strerror(ENOMEM));
	r = -ENOMEM;
	goto fail;
nomem:
	setwhy(why, whylen, "fabric endpoint: %s", strerror(ENOMEM));
	return -ENOMEM;
fail:
	ep_discard(ep);
	return r;
}

static void ep_link(struct hec_fab *f, struct hec_fab_ep *ep)
{
	ep->next = f->eps;
	f->eps = ep;
	f->budget += ep_cost(f);
}

static struct hec_fab_ep *ep_find(struct hec_fab *f, const struct fid *fid)
{
	struct hec_fab_ep *ep;

	for (ep = f->eps; ep; ep = ep->next)
		if (ep->ep && &ep->ep->fid == fid)
			return ep;
	return NULL;
}

static void cq_drain(struct hec_fab *f);

/* The connection is gone: close it, report every pending operation with an
 * error, then CLOSED (if the caller knows the endpoint). */
static void ep_down(struct hec_fab_ep *ep, int err, const char *why)
{
	struct hec_fab *f = ep->f;
	struct fab_ops_chunk *c;
	struct fab_op *op;
	struct hec_fab_ev *ev;
	char msg[HEC_FAB_WHY];
	unsigned i;

	if (!ep->ep)
		return;
	snprintf(msg, sizeof(msg), "%s: %s", ep->peer, why);
	fi_close(&ep->ep->fid);
	ep->ep = NULL;
	ep->state = EP_DOWN;
	/* completions the provider wrote (or flushed on close) come first */
	cq_drain(f);
	for (c = f->chunks; c; c = c->next)
		for (i = 0; i < FAB_OPS_CHUNK; i++) {
			op = &c->ops[i];
			if (op->ep != ep || op->state != OP_POSTED)
				continue;
			if (op->kind != OP_RECV)
				ev_done(f, ep, op->ctx, err ? err : -ECONNRESET, msg);
			/* a late completion for it is dropped */
			op->state = OP_ORPHAN;
			op->ep = NULL;
		}
	while ((op = ep->held)) {
		ep->held = op->next;
		if (op->ctx)
			ev_done(f, ep, op->ctx, err ? err : -ECONNRESET, msg);
		op_put(f, op);
	}
	ep->held_tail = NULL;
	ev = ev_push(f, HEC_FAB_EV_CLOSED, ep);
	if (ev) {
		ev->err = err;
		snprintf(ev->why, sizeof(ev->why), "%s", msg);
	}
}

/* Drop everything that refers to @ep (queued events, lent buffers, held and
 * posted operations), then free it. */
static void ep_destroy(struct hec_fab_ep *ep)
{
	struct hec_fab *f = ep->f;
	struct hec_fab_ep **pp;
	struct fab_evn **np, *n;
	struct fab_op **op, *o;

	for (pp = &f->eps; *pp; pp = &(*pp)->next)
		if (*pp == ep) {
			*pp = ep->next;
			f->budget -= ep_cost(f);
			break;
		}
	if (ep->ep) {
		fi_shutdown(ep->ep, 0);
		fi_close(&ep->ep->fid);
		ep->ep = NULL;
	}
	f->evq_tail = NULL;
	for (np = &f->evq; (n = *np);) {
		if (n->ev.ep == ep) {
			*np = n->next;
			if (n->lend)
				op_put(f, n->lend);
			free(n);
			f->nev--;
			continue;
		}
		f->evq_tail = n;
		np = &n->next;
	}
	for (op = &f->lent; (o = *op);) {
		if (o->ep == ep) {
			*op = o->next;
			op_put(f, o);
			continue;
		}
		op = &o->next;
	}
	while ((o = ep->held)) {
		ep->held = o->next;
		op_put(f, o);
	}
	ep_orphan_ops(ep);
	ep_release(ep);
}

void hec_fab_ep_free(struct hec_fab_ep *ep)
{
	if (ep)
		ep_destroy(ep);
}

const char *hec_fab_ep_peer(const struct hec_fab_ep *ep)
{
	return ep->peer;
}

void hec_fab_ep_set_arg(struct hec_fab_ep *ep, void *arg)
{
	ep->arg = arg;
}

void *hec_fab_ep_get_arg(const struct hec_fab_ep *ep)
{
	return ep->arg;
}

/* An endpoint's first completion proves the connection: report ACCEPTED
 * before anything else about it (the EQ's CONNECTED may come later). */
static void ep_accepted(struct hec_fab_ep *ep)
{
	if (ep->state != EP_ACCEPTING)
		return;
	ep->state = EP_UP;
	peer_name(ep);
	ev_push(ep->f, HEC_FAB_EV_ACCEPTED, ep);
}

/* ---- sending ------------------------------------------------------------- */

static int send_post(struct hec_fab_ep *ep, struct fab_op *op)
{
	ssize_t r;

	op->state = OP_POSTED;
	r = fi_send(ep->ep, ep->sbufs + (size_t)op->buf * HEC_FAB_MSG_MAX, op->len, ep->sdesc, 0, op);
	return r ? fab_err(r) : 0;
}

/* The number of @ep's oldest write in flight (UINT64_MAX: none). */
static uint64_t write_floor(struct hec_fab_ep *ep)
{
	struct fab_ops_chunk *c;
	uint64_t min = UINT64_MAX;
	unsigned i;

	if (!ep->nwrites)
		return min;
	for (c = ep->f->chunks; c; c = c->next)
		for (i = 0; i < FAB_OPS_CHUNK; i++)
			if (c->ops[i].ep == ep && c->ops[i].kind == OP_WRITE &&
			    c->ops[i].state == OP_POSTED && c->ops[i].seq < min)
				min = c->ops[i].seq;
	return min;
}

/* Hold mode: the first held send may go (the writes before it completed). */
static int held_ready(struct hec_fab_ep *ep)
{
	return ep->held && ep->ep && ep->held->seq < write_floor(ep);
}

/* Hold mode: post the held sends whose writes completed, in order.  A
 * send waits only for the writes posted before it: writes posted after it
 * do not delay it. */
static void held_flush(struct hec_fab_ep *ep)
{
	struct fab_op *op;
	int r;

	while (held_ready(ep)) {
		op = ep->held;
		r = send_post(ep, op);

		if (r == -EAGAIN) {
			op->state = OP_HELD;
			return; /* retried at the next hec_fab_poll() */
		}
		ep->held = op->next;
		if (!ep->held)
			ep->held_tail = NULL;
		if (r) {
			if (op->ctx)
				ev_done(ep->f, ep, op->ctx, r, "fi_send: posting a held message failed");
			ep->sfree[ep->nsfree++] = op->buf;
			op_put(ep->f, op);
		}
	}
}

/* Hold mode, write @wseq failed: the messages held behind it would announce
 * data that is not there; they fail too. */
static void held_fail(struct hec_fab_ep *ep, uint64_t wseq)
{
	struct fab_op **pp, *op;
	char msg[HEC_FAB_WHY];

	snprintf(msg, sizeof(msg), "fi_send %s: not sent, an earlier write failed", ep->peer);
	ep->held_tail = NULL;
	for (pp = &ep->held; (op = *pp);) {
		if (op->seq < wseq) {
			ep->held_tail = op;
			pp = &op->next;
			continue;
		}
		*pp = op->next;
		ev_done(ep->f, ep, op->ctx, -ECANCELED, msg);
		ep->sfree[ep->nsfree++] = op->buf;
		op_put(ep->f, op);
	}
}

int hec_fab_send(struct hec_fab_ep *ep, const void *buf, size_t len, void *ctx)
{
	struct hec_fab *f;
	struct fab_op *op;
	int r;

	if (!ep || (!buf && len) || !len)
		return -EINVAL;
	if (len > HEC_FAB_MSG_MAX)
		return -EMSGSIZE;
	if (!ep->ep)
		return -ENOTCONN;
	if (!ep->nsfree)
		return -EAGAIN;
	f = ep->f;
	op = op_get(f, ep, OP_SEND, ctx);
	if (!op)
		return -ENOMEM;
	op->buf = ep->sfree[--ep->nsfree];
	op->len = len;
	memcpy(ep->sbufs + (size_t)op->buf * HEC_FAB_MSG_MAX, buf, len);
	op->seq = ep->wposted;
	if (f->hold && (ep->nwrites || ep->held)) {
		op->state = OP_HELD;
		if (ep->held_tail)
			ep->held_tail->next = op;
		else
			ep->held = op;
		ep->held_tail = op;
		return 0;
	}
	r = send_post(ep, op);
	if (r) {
		ep->sfree[ep->nsfree++] = op->buf;
		op_put(f, op);
	}
	return r;
}

/* ---- RMA ------------------------------------------------------------------ */

static int rma(struct hec_fab_ep *ep, enum op_kind kind, struct hec_fab_mr *local, size_t off,
	       size_t len, uint64_t raddr, uint64_t rkey, void *ctx)
{
	struct hec_fab *f;
	struct fi_rma_iov riov;
	struct fi_msg_rma msg;
	struct iovec iov;
	struct fab_op *op;
	void *desc;
	ssize_t r;

	if (!ep || !local || !len || off > local->len || len > local->len - off)
		return -EINVAL;
	f = ep->f;
	if (len > f->rma_max)
		return -EMSGSIZE;
	if (!ep->ep)
		return -ENOTCONN;
	if (ep->nrma >= f->nrma_max)
		return -EAGAIN;
	op = op_get(f, ep, kind, ctx);
	if (!op)
		return -ENOMEM;
	if (kind == OP_WRITE)
		op->seq = ep->wposted + 1;
	iov.iov_base = local->buf + off;
	iov.iov_len = len;
	desc = local->desc;
	riov.addr = raddr;
	riov.len = len;
	riov.key = rkey;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.desc = &desc;
	msg.iov_count = 1;
	msg.rma_iov = &riov;
	msg.rma_iov_count = 1;
	msg.context = op;
	if (kind == OP_WRITE)
		r = fi_writemsg(ep->ep, &msg, FI_COMPLETION | f->wflags);
	else
		r = fi_readmsg(ep->ep, &msg, FI_COMPLETION);
	if (r) {
		op_put(f, op);
		return fab_err(r);
	}
	ep->nrma++;
	if (kind == OP_WRITE) {
		ep->nwrites++;
		ep->wposted++;
	}
	return 0;
}

int hec_fab_write(struct hec_fab_ep *ep, struct hec_fab_mr *local, size_t off, size_t len,
		  uint64_t raddr, uint64_t rkey, void *ctx)
{
	return rma(ep, OP_WRITE, local, off, len, raddr, rkey, ctx);
}

int hec_fab_read(struct hec_fab_ep *ep, struct hec_fab_mr *local, size_t off, size_t len,
		 uint64_t raddr, uint64_t rkey, void *ctx)
{
	return rma(ep, OP_READ, local, off, len, raddr, rkey, ctx);
}

/* ---- completions and connection events ---------------------------------- */

/* An error entry as text: the errno's, plus the provider's own where it
 * has one (@prov, from fi_cq_strerror/fi_eq_strerror). */
static const char *err_text(const char *prov, int err, int prov_errno, char *buf, size_t len)
{
	if (prov_errno && prov && *prov)
		snprintf(buf, len, "%s (%s)", fi_strerror(err ? err : FI_EIO), prov);
	else
		snprintf(buf, len, "%s", fi_strerror(err ? err : FI_EIO));
	return buf;
}

static const char *op_name(enum op_kind k)
{
	switch (k) {
	case OP_RECV: return "fi_recv";
	case OP_SEND: return "fi_send";
	case OP_WRITE: return "fi_write";
	case OP_READ: return "fi_read";
	}
	return "?";
}

/* One completion (@err 0) or failure of @op. */
static void op_complete(struct hec_fab *f, struct fab_op *op, size_t len, int err, const char *why)
{
	struct hec_fab_ep *ep = op->ep;
	char msg[HEC_FAB_WHY];

	if (op->state == OP_ORPHAN || !ep) {
		op_put(f, op);
		return;
	}
	ep_accepted(ep);
	/* the provider flushes posted operations when the connection breaks
	 * (tcp: the peer closed or died); its own text for that ("Operation
	 * canceled (No such file or directory)") names no cause a reader could
	 * act on */
	if (err == -ECANCELED)
		why = "closed by the peer or lost";
	if (err)
		snprintf(msg, sizeof(msg), "%s %s: %s", op_name(op->kind), ep->peer, why);
	switch (op->kind) {
	case OP_RECV:
		if (err) {
			op_put(f, op);
			ep_down(ep, err, why);
			return;
		}
		{
			struct hec_fab_ev *ev = ev_push(f, HEC_FAB_EV_RECV, ep);

			op->state = OP_LENT;
			if (!ev) {
				op->next = f->lent; /* lost event: repost the buffer */
				f->lent = op;
				return;
			}
			ev->data = ep->rbufs + (size_t)op->buf * HEC_FAB_MSG_MAX;
			ev->len = len;
			((struct fab_evn *)((char *)ev - offsetof(struct fab_evn, ev)))->lend = op;
		}
		return;
	case OP_SEND:
		ep->sfree[ep->nsfree++] = op->buf;
		if (op->ctx || err)
			ev_done(f, ep, op->ctx, err, err ? msg : NULL);
		break;
	case OP_WRITE:
	case OP_READ:
		ep->nrma--;
		if (op->kind == OP_WRITE)
			ep->nwrites--;
		if (op->ctx || err)
			ev_done(f, ep, op->ctx, err, err ? msg : NULL);
		if (err && op->kind == OP_WRITE)
			held_fail(ep, op->seq);
		break;
	}
	op_put(f, op);
	if (ep->held)
		held_flush(ep);
}

/* Read up to @max completions into events. \return how many were read. */
static int cq_read(struct hec_fab *f, int max)
{
	struct fi_cq_msg_entry ent[16];
	ssize_t n;
	int i, got = 0;

	while (got < max) {
		n = fi_cq_read(f->cq, ent, max - got < 16 ? max - got : 16);
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry e;
			char buf[128], buf2[HEC_FAB_WHY];
			const char *s;

			memset(&e, 0, sizeof(e));
			if (fi_cq_readerr(f->cq, &e, 0) != 1)
				break;
			s = err_text(fi_cq_strerror(f->cq, e.prov_errno, e.err_data, buf, sizeof(buf)),
				     e.err, e.prov_errno, buf2, sizeof(buf2));
			if (e.op_context)
				op_complete(f, e.op_context, 0, e.err ? -e.err : -EIO, s);
			got++;
			continue;
		}
		if (n <= 0)
			break;
		for (i = 0; i < n; i++)
			op_complete(f, ent[i].op_context, ent[i].len, 0, NULL);
		got += n;
	}
	return got;
}

static void cq_drain(struct hec_fab *f)
{
	while (cq_read(f, 64) > 0)
		;
}

/* A connection request: accept it unless the CQ would be over-committed. */
static void eq_connreq(struct hec_fab *f, struct fi_info *info)
{
	struct hec_fab_ep *ep;
	char why[HEC_FAB_WHY];

	if (f->budget + ep_cost(f) > FAB_CQ_SIZE ||
	    ep_new(f, info, EP_ACCEPTING, &ep, why, sizeof(why))) {
		fi_reject(f->pep, info->handle, NULL, 0);
		return;
	}
	if (fi_accept(ep->ep, NULL, 0)) {
		ep_discard(ep);
		return;
	}
	ep_link(f, ep);
}

/* Read one EQ event. \return 1 if one was read, 0 if none. */
static int eq_read(struct hec_fab *f)
{
	struct fi_eq_cm_entry ent;
	struct hec_fab_ep *ep;
	uint32_t event;
	ssize_t n;

	n = fi_eq_read(f->eq, &event, &ent, sizeof(ent), 0);
	if (n == -FI_EAVAIL) {
		struct fi_eq_err_entry e;
		char buf[128], buf2[HEC_FAB_WHY];
		const char *s;

		memset(&e, 0, sizeof(e));
		if (fi_eq_readerr(f->eq, &e, 0) < 0)
			return 0;
		ep = ep_find(f, e.fid);
		if (!ep)
			return 1;
		s = err_text(fi_eq_strerror(f->eq, e.prov_errno, e.err_data, buf, sizeof(buf)), e.err,
			     e.prov_errno, buf2, sizeof(buf2));
		if (ep->state == EP_ACCEPTING)
			ep_destroy(ep); /* the caller never saw it */
		else
			ep_down(ep, e.err ? -e.err : -ECONNRESET, s);
		return 1;
	}
	if (n < 0)
		return 0;
	switch (event) {
	case FI_CONNREQ:
		if (n >= (ssize_t)sizeof(ent) && ent.info) {
			eq_connreq(f, ent.info);
			fi_freeinfo(ent.info);
		}
		break;
	case FI_CONNECTED:
		ep = ep_find(f, ent.fid);
		if (ep && ep->state == EP_ACCEPTING)
			ep_accepted(ep);
		else if (ep && ep->state == EP_CONNECTING)
			ep->state = EP_UP;
		break;
	case FI_SHUTDOWN:
		ep = ep_find(f, ent.fid);
		if (!ep)
			break;
		if (ep->state == EP_ACCEPTING)
			ep_destroy(ep);
		else
			ep_down(ep, 0, "connection closed by the peer");
		break;
	default:
		break;
	}
	return 1;
}

static void lent_repost(struct hec_fab *f)
{
	struct fab_op *op;

	while ((op = f->lent)) {
		f->lent = op->next;
		if (!op->ep || !op->ep->ep) {
			op_put(f, op);
			continue;
		}
		if (ep_post_recv(op->ep, op)) {
			struct hec_fab_ep *ep = op->ep;

			op_put(f, op);
			ep_down(ep, -EIO, "fi_recv: cannot repost a receive buffer");
		}
	}
}

static void held_all(struct hec_fab *f)
{
	struct hec_fab_ep *ep;

	for (ep = f->eps; ep; ep = ep->next)
		if (ep->held)
			held_flush(ep);
}

int hec_fab_poll(struct hec_fab *f, struct hec_fab_ev *ev, int max)
{
	int n = 0;

	if (!f || !ev || max <= 0)
		return -EINVAL;
	lent_repost(f);
	held_all(f);
	while (f->nev < (unsigned)max) {
		int got = cq_read(f, max - (int)f->nev);

		got += eq_read(f);
		if (!got)
			break;
	}
	while (n < max && f->evq) {
		struct fab_evn *node = f->evq;

		f->evq = node->next;
		if (!f->evq)
			f->evq_tail = NULL;
		f->nev--;
		ev[n++] = node->ev;
		if (node->lend) {
			node->lend->next = f->lent;
			f->lent = node->lend;
		}
		free(node);
	}
	return n;
}

int hec_fab_wait_fds(struct hec_fab *f, int fds[2])
{
	int i;

	for (i = 0; i < f->nfds; i++)
		fds[i] = f->fds[i];
	return f->nfds;
}

int hec_fab_trywait(struct hec_fab *f)
{
	struct fid *fids[2] = { &f->eq->fid, &f->cq->fid };
	struct hec_fab_ep *ep;
	int r;

	if (f->evq || f->lent)
		return -EAGAIN;
	for (ep = f->eps; ep; ep = ep->next)
		if (held_ready(ep))
			return -EAGAIN;
	r = fi_trywait(f->fabric, fids, 2);
	if (r == -FI_EAGAIN)
		return -EAGAIN;
	if (r) {
		/* a provider without trywait on its EQ: the EQ's fd alone tells */
		r = fi_trywait(f->fabric, &fids[1], 1);
		if (r == -FI_EAGAIN)
			return -EAGAIN;
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hec_fab_wait(struct hec_fab *f, int timeout_ms)
{
	long long end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct pollfd pfd[2];
	int i, r, left;

	for (;;) {
		if (hec_fab_trywait(f) == -EAGAIN)
			return 0;
		for (i = 0; i < f->nfds; i++) {
			pfd[i].fd = f->fds[i];
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		left = -1;
		if (end >= 0) {
			long long d = end - now_ms();

			left = d < 0 ? 0 : (int)d;
		}
		r = poll(pfd, (nfds_t)f->nfds, left);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* ---- opening and closing ------------------------------------------------- */

/* "host:port" or "[v6]:port" into @host and @port. */
static int split_hostport(const char *hp, char *host, size_t hl, char *port, size_t pl)
{
	const char *c, *h = hp;
	size_t n;
	char *end;
	unsigned long p;

	if (!hp)
		return -EINVAL;
	c = strrchr(hp, ':');
	if (!c || c == hp)
		return -EINVAL;
	n = (size_t)(c - hp);
	if (hp[0] == '[') {
		if (n < 3 || hp[n - 1] != ']')
			return -EINVAL;
		h = hp + 1;
		n -= 2;
	}
	if (n >= hl || !c[1] || strlen(c + 1) >= pl)
		return -EINVAL;
	errno = 0;
	p = strtoul(c + 1, &end, 10);
	if (*end || errno || p > 65535)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	snprintf(port, pl, "%lu", p);
	return 0;
}

/* What we ask of a provider, best first: the send-after-write order from the
 * transport (else sends are held behind writes), and writes that complete
 * only once their data is in the peer's memory (so that a write the peer
 * refuses, a wrong key, fails its own DONE).  HEC_FAB_ORDER=hold in the
 * environment starts at the held-sends rows, for tests. */
static const struct {
	uint64_t msg_order, wflags;
	int hold;
} fab_wants[] = {
	{ FI_ORDER_SAW, FI_DELIVERY_COMPLETE, 0 },
	{ FI_ORDER_SAW, 0, 0 },
	{ 0, FI_DELIVERY_COMPLETE, 1 },
	{ 0, 0, 1 },
};

/* fi_getinfo for one provider, with the first of fab_wants it offers.
 * \return 0 with *out, -ENODEV if it does not serve the address. */
static int getinfo_prov(struct hec_fab *f, const char *prov, const char *host, const char *port,
			uint64_t flags, const char *hostport, struct fi_info **out, char *why,
			size_t whylen)
{
	const char *forced = getenv("HEC_FAB_ORDER");
	unsigned w = forced && !strcmp(forced, "hold") ? 2 : 0;
	int r = -FI_ENODATA;

	for (; w < sizeof(fab_wants) / sizeof(fab_wants[0]); w++) {
		struct fi_info *hints = fi_allocinfo(), *list = NULL, *i;

		if (!hints) {
			setwhy(why, whylen, "fi_allocinfo: %s", strerror(ENOMEM));
			return -ENOMEM;
		}
		hints->caps = FI_MSG | FI_RMA;
		hints->mode = FI_CONTEXT | FI_CONTEXT2;
		hints->ep_attr->type = FI_EP_MSG;
		hints->domain_attr->mr_mode =
			FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
		hints->domain_attr->threading = FI_THREAD_DOMAIN;
		hints->fabric_attr->prov_name = strdup(prov);
		hints->tx_attr->msg_order = fab_wants[w].msg_order;
		hints->rx_attr->msg_order = fab_wants[w].msg_order;
		hints->tx_attr->op_flags = fab_wants[w].wflags;
		r = fi_getinfo(FAB_API, host, port, flags, hints, &list);
		fi_freeinfo(hints);
		if (r == 0) {
			for (i = list; i; i = i->next)
				if (!strcmp(i->fabric_attr->prov_name, prov))
					break;
			if (i) {
				*out = fi_dupinfo(i);
				fi_freeinfo(list);
				if (!*out) {
					setwhy(why, whylen, "fi_dupinfo: %s", strerror(ENOMEM));
					return -ENOMEM;
				}
				/* the op flags are per operation (fi_writemsg), not
				 * the endpoint's default */
				(*out)->tx_attr->op_flags = 0;
				f->hold = fab_wants[w].hold;
				f->wflags = fab_wants[w].wflags;
				return 0;
			}
			fi_freeinfo(list);
			r = -FI_ENODATA;
		}
		if (r != -FI_ENODATA)
			break;
	}
	setwhy(why, whylen, "fi_getinfo %s %s: %s", prov, hostport, fi_strerror(-r));
	return r == -FI_ENODATA ? -ENODEV : fab_err(r);
}

static void fab_free(struct hec_fab *f)
{
	struct fab_ops_chunk *c;
	struct fab_evn *n;

	while (f->eps)
		ep_destroy(f->eps);
	while (f->mrs)
		hec_fab_mr_free(f->mrs);
	if (f->pep)
		fi_close(&f->pep->fid);
	if (f->cq)
		fi_close(&f->cq->fid);
	if (f->eq)
		fi_close(&f->eq->fid);
	if (f->domain)
		fi_close(&f->domain->fid);
	if (f->fabric)
		fi_close(&f->fabric->fid);
	if (f->info)
		fi_freeinfo(f->info);
	while ((n = f->evq)) {
		f->evq = n->next;
		free(n);
	}
	while ((c = f->chunks)) {
		f->chunks = c->next;
		free(c);
	}
	free(f);
}

/* Open fabric, domain, EQ and CQ with provider @prov ("verbs" or "tcp"). */
static int fab_open(const struct hec_fab_opts *o, const char *prov, const char *hostport,
		    uint64_t flags, struct hec_fab **out, char *why, size_t whylen)
{
	char host[256], port[16];
	struct fi_eq_attr eqa;
	struct fi_cq_attr cqa;
	struct hec_fab *f;
	const char *what;
	int r;

	if (split_hostport(hostport, host, sizeof(host), port, sizeof(port))) {
		setwhy(why, whylen, "fabric address %s: not host:port", hostport ? hostport : "(null)");
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		setwhy(why, whylen, "fabric: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	f->fds[0] = f->fds[1] = -1;
	r = getinfo_prov(f, prov, host, port, flags, hostport, &f->info, why, whylen);
	if (r)
		goto fail;
	snprintf(f->prov, sizeof(f->prov), "%s", f->info->fabric_attr->prov_name);
	f->mr_mode = f->info->domain_attr->mr_mode;
	f->key_size = f->info->domain_attr->mr_key_size ? f->info->domain_attr->mr_key_size : 8;
	f->depth = o && o->msg_depth ? o->msg_depth : FAB_DEPTH_DEF;
	if (f->depth > FAB_DEPTH_MAX)
		f->depth = FAB_DEPTH_MAX;
	if (f->info->rx_attr->size && f->depth > f->info->rx_attr->size)
		f->depth = (unsigned)f->info->rx_attr->size;
	f->nrma_max = FAB_RMA_MAX;
	if (f->info->tx_attr->size && f->info->tx_attr->size < (size_t)f->depth + FAB_RMA_MAX)
		f->nrma_max = f->info->tx_attr->size > f->depth ?
				      (unsigned)(f->info->tx_attr->size - f->depth) : 1;
	f->rma_max = f->info->ep_attr->max_msg_size ? f->info->ep_attr->max_msg_size : SIZE_MAX;

	what = "fi_fabric";
	r = fi_fabric(f->info->fabric_attr, &f->fabric, f);
	if (r)
		goto fail_fi;
	what = "fi_domain";
	r = fi_domain(f->fabric, f->info, &f->domain, f);
	if (r)
		goto fail_fi;
	memset(&eqa, 0, sizeof(eqa));
	eqa.size = FAB_EQ_SIZE;
	eqa.wait_obj = FI_WAIT_FD;
	what = "fi_eq_open";
	r = fi_eq_open(f->fabric, &eqa, &f->eq, f);
	if (r)
		goto fail_fi;
	memset(&cqa, 0, sizeof(cqa));
	cqa.size = FAB_CQ_SIZE;
	cqa.format = FI_CQ_FORMAT_MSG;
	cqa.wait_obj = FI_WAIT_FD;
	cqa.wait_cond = FI_CQ_COND_NONE;
	what = "fi_cq_open";
	r = fi_cq_open(f->domain, &cqa, &f->cq, f);
	if (r)
		goto fail_fi;
	what = "fi_control FI_GETWAIT";
	r = fi_control(&f->eq->fid, FI_GETWAIT, &f->fds[0]);
	if (r)
		goto fail_fi;
	r = fi_control(&f->cq->fid, FI_GETWAIT, &f->fds[1]);
	if (r)
		goto fail_fi;
	f->nfds = f->fds[0] == f->fds[1] ? 1 : 2;
	*out = f;
	return 0;
fail_fi:
	setwhy(why, whylen, "%s %s %s: %s", what, f->prov, hostport, fi_strerror(-r));
	r = fab_err(r);
fail:
	fab_free(f);
	return r;
}

/* The address a client dials for a listener bound to the wildcard: the first
 * configured, up, non-loopback address of the family, else loopback. */
static void primary_addr(int family, char *buf, size_t len)
{
	struct ifaddrs *ifa, *i;

	snprintf(buf, len, "%s", family == AF_INET6 ? "::1" : "127.0.0.1");
	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != family)
			continue;
		if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, buf, len);
			break;
		}
		if (!IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr)) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, buf, len);
			break;
		}
	}
	freeifaddrs(ifa);
}

/* The providers to try, in order: "auto" is verbs, then tcp.  \return how
 * many, or -EINVAL for an unknown name. */
static int fab_provs(const struct hec_fab_opts *o, const char *provs[2], char *why, size_t whylen)
{
	const char *p = o && o->provider ? o->provider : "auto";

	if (!strcmp(p, "auto")) {
		provs[0] = "verbs";
		provs[1] = "tcp";
		return 2;
	}
	if (!strcmp(p, "verbs") || !strcmp(p, "tcp")) {
		provs[0] = p;
		return 1;
	}
	setwhy(why, whylen, "fabric provider %s: not auto, verbs or tcp", p);
	return -EINVAL;
}

static int listen_one(const struct hec_fab_opts *o, const char *prov, const char *hostport,
		      struct hec_fab **out, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	size_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	struct hec_fab *f;
	const char *what;
	int r;

	r = fab_open(o, prov, hostport, FI_SOURCE, &f, why, whylen);
	if (r)
		return r;
	what = "fi_passive_ep";
	r = fi_passive_ep(f->fabric, f->info, &f->pep, f);
	if (r)
		goto fail_fi;
	what = "fi_pep_bind";
	r = fi_pep_bind(f->pep, &f->eq->fid, 0);
	if (r)
		goto fail_fi;
	what = "fi_listen";
	r = fi_listen(f->pep);
	if (r)
		goto fail_fi;
	what = "fi_getname";
	r = fi_getname(&f->pep->fid, &ss, &sl);
	if (r)
		goto fail_fi;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		if (s->sin_addr.s_addr == htonl(INADDR_ANY))
			primary_addr(AF_INET, host, sizeof(host));
		else
			inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		snprintf(f->addr, sizeof(f->addr), "%s:%u", host, ntohs(s->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&s->sin6_addr))
			primary_addr(AF_INET6, host, sizeof(host));
		else
			inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		snprintf(f->addr, sizeof(f->addr), "[%s]:%u", host, ntohs(s->sin6_port));
	} else {
		snprintf(f->addr, sizeof(f->addr), "%s", hostport);
	}
	*out = f;
	return 0;
fail_fi:
	setwhy(why, whylen, "%s %s %s: %s", what, f->prov, hostport, fi_strerror(-r));
	fab_free(f);
	return fab_err(r);
}

/* "auto" falls back to tcp whenever verbs fails, not only where verbs has
 * no device for the address: a verbs listener may be absent behind a
 * verbs-capable client. */
int hec_fab_listen(const struct hec_fab_opts *o, const char *hostport, struct hec_fab **out,
		   char *why, size_t whylen)
{
	const char *provs[2];
	int i, n, r = -EINVAL;

	if (!out) {
		setwhy(why, whylen, "hec_fab_listen: invalid argument");
		return -EINVAL;
	}
	n = fab_provs(o, provs, why, whylen);
	for (i = 0; i < n; i++) {
		r = listen_one(o, provs[i], hostport, out, why, whylen);
		if (!r || r == -EINVAL)
			break;
	}
	return r;
}

/* Open a fabric with provider @prov and start connecting one endpoint to
 * @hostport, without waiting for the listener. */
static int connect_begin(const struct hec_fab_opts *o, const char *prov, const char *hostport,
			 struct hec_fab **out, struct hec_fab_ep **epp, char *why, size_t whylen)
{
	struct hec_fab_ep *ep;
	struct hec_fab *f;
	int r;

	r = fab_open(o, prov, hostport, 0, &f, why, whylen);
	if (r)
		return r;
	r = ep_new(f, f->info, EP_CONNECTING, &ep, why, whylen);
	if (r)
		goto fail;
	ep_link(f, ep);
	snprintf(ep->peer, sizeof(ep->peer), "%s", hostport);
	r = fi_connect(ep->ep, f->info->dest_addr, NULL, 0);
	if (r) {
		setwhy(why, whylen, "fi_connect %s %s: %s", f->prov, hostport, fi_strerror(-r));
		r = fab_err(r);
		goto fail;
	}
	*out = f;
	*epp = ep;
	return 0;
fail:
	fab_free(f);
	return r;
}

/* Read what @f's EQ has for the connecting @ep, without waiting.
 * \return 1 connected, 0 not yet, -errno refused or broken (@why). */
static int connect_step(struct hec_fab *f, struct hec_fab_ep *ep, const char *hostport, char *why,
			size_t whylen)
{
	for (;;) {
		struct fi_eq_cm_entry ent;
		uint32_t event;
		ssize_t n;

		n = fi_eq_read(f->eq, &event, &ent, sizeof(ent), 0);
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry e;
			char buf[128], buf2[HEC_FAB_WHY];
			const char *s;

			memset(&e, 0, sizeof(e));
			fi_eq_readerr(f->eq, &e, 0);
			s = err_text(fi_eq_strerror(f->eq, e.prov_errno, e.err_data, buf, sizeof(buf)),
				     e.err, e.prov_errno, buf2, sizeof(buf2));
			setwhy(why, whylen, "fi_connect %s %s: %s", f->prov, hostport, s);
			return e.err ? -e.err : -ECONNREFUSED;
		}
		if (n == -FI_EAGAIN || n == -FI_EINTR)
			return 0;
		if (n < 0) {
			setwhy(why, whylen, "fi_eq_read %s %s: %s", f->prov, hostport,
			       fi_strerror((int)-n));
			return fab_err(n);
		}
		if (event == FI_CONNECTED && ent.fid == &ep->ep->fid) {
			ep->state = EP_UP;
			return 1;
		}
		if (event == FI_SHUTDOWN && ent.fid == &ep->ep->fid) {
			setwhy(why, whylen, "fi_connect %s %s: %s", f->prov, hostport,
			       strerror(ECONNRESET));
			return -ECONNRESET;
		}
	}
}

/* One hec_fab_dial under way: its providers, the one being tried. */
struct dial {
	struct hec_fab_dial *d;
	const struct hec_fab_opts *o;
	const char *provs[2];
	int nprovs, pi;
	int busy;            /* connecting with provs[pi] */
};

/* Start connecting with the current provider, else the next ones. */
static void dial_start(struct dial *g)
{
	struct hec_fab_dial *d = g->d;
	int r = -EINVAL;

	for (; g->pi < g->nprovs; g->pi++) {
		r = connect_begin(g->o, g->provs[g->pi], d->hostport, &d->fab, &d->ep, d->why,
				  sizeof(d->why));
		if (!r) {
			g->busy = 1;
			return;
		}
		if (r == -EINVAL)
			break;
	}
	d->fab = NULL;
	d->ep = NULL;
	d->err = r;
}

/* The attempt failed with @r (@why set): "auto" goes on with the next
 * provider, unless time is up. */
static void dial_failed(struct dial *g, int r)
{
	fab_free(g->d->fab);
	g->d->fab = NULL;
	g->d->ep = NULL;
	g->busy = 0;
	g->pi++;
	if (r != -ETIMEDOUT && g->pi < g->nprovs)
		dial_start(g); /* sets err itself if no provider is left */
	else
		g->d->err = r;
}

void hec_fab_connect_all(const struct hec_fab_opts *o, struct hec_fab_dial *d, size_t n,
			 int timeout_ms)
{
	long long end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	struct dial *g = calloc(n ? n : 1, sizeof(*g));
	struct pollfd *pfd = calloc(n ? 2 * n : 1, sizeof(*pfd));
	size_t i;

	for (i = 0; i < n; i++) {
		d[i].fab = NULL;
		d[i].ep = NULL;
		d[i].err = 0;
		d[i].why[0] = 0;
		g[i].d = &d[i];
		g[i].o = o;
		if (!g || !pfd) {
			setwhy(d[i].why, sizeof(d[i].why), "hec_fab_connect: %s", strerror(ENOMEM));
			d[i].err = -ENOMEM;
			continue;
		}
		g[i].nprovs = fab_provs(o, g[i].provs, d[i].why, sizeof(d[i].why));
		if (g[i].nprovs < 0)
			d[i].err = g[i].nprovs;
		else
			dial_start(&g[i]);
	}
	while (g && pfd) {
		size_t busy = 0, np = 0;
		int left = -1;

		for (i = 0; i < n; i++) {
			struct hec_fab_dial *di = &d[i];
			int r;

			if (!g[i].busy)
				continue;
			r = connect_step(di->fab, di->ep, di->hostport, di->why, sizeof(di->why));
			if (r == 1) {
				g[i].busy = 0;
				peer_name(di->ep);
				continue;
			}
			if (r < 0)
				dial_failed(&g[i], r); /* or busy again with the next provider */
			busy += g[i].busy;
		}
		if (!busy)
			break;
		if (end >= 0) {
			long long dl = end - now_ms();

			if (dl <= 0) {
				for (i = 0; i < n; i++)
					if (g[i].busy) {
						setwhy(d[i].why, sizeof(d[i].why), "fi_connect %s %s: %s",
						       d[i].fab->prov, d[i].hostport, strerror(ETIMEDOUT));
						dial_failed(&g[i], -ETIMEDOUT);
					}
				break;
			}
			left = (int)dl;
		}
		/* block until one of the connecting fabrics has news (fi_trywait
		 * first, as everywhere) */
		for (i = 0; i < n; i++) {
			struct hec_fab *f = d[i].fab;
			int k;

			if (!g[i].busy)
				continue;
			if (hec_fab_trywait(f) == -EAGAIN)
				left = 0;
			for (k = 0; k < f->nfds; k++) {
				pfd[np].fd = f->fds[k];
				pfd[np].events = POLLIN;
				pfd[np++].revents = 0;
			}
		}
		if (poll(pfd, (nfds_t)np, left) < 0 && errno != EINTR) {
			int err = errno;

			for (i = 0; i < n; i++)
				if (g[i].busy) {
					setwhy(d[i].why, sizeof(d[i].why), "poll: %s", strerror(err));
					dial_failed(&g[i], -err);
				}
			break;
		}
	}
	free(pfd);
	free(g);
}

int hec_fab_connect(const struct hec_fab_opts *o, const char *hostport, int timeout_ms,
		    struct hec_fab **out, struct hec_fab_ep **epp, char *why, size_t whylen)
{
	struct hec_fab_dial d = { .hostport = hostport };

	if (!out || !epp) {
		setwhy(why, whylen, "hec_fab_connect: invalid argument");
		return -EINVAL;
	}
	hec_fab_connect_all(o, &d, 1, timeout_ms);
	if (d.err) {
		setwhy(why, whylen, "%s", d.why);
		return d.err;
	}
	*out = d.fab;
	*epp = d.ep;
	return 0;
}

void hec_fab_close(struct hec_fab *f)
{
	if (f)
		fab_free(f);
}

const char *hec_fab_provider(const struct hec_fab *f)
{
	return f->prov;
}

const char *hec_fab_address(const struct hec_fab *f)
{
	return f->addr;
}
