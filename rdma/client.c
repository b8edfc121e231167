/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The checkpoint storage client (include/hec/store.h, doc/storage.md).
 *
 * One thread, one poll loop over every server's fabric wait fds.  Each
 * request is a struct op that the loop moves through its stages:
 *
 *   WAIT     waiting for a free slot on its server (ops that need one)
 *   WRITE    RMA-write the op's local buffer into the slot (put, commit)
 *   SEND     send the STORE_REQ (the fabric layer delivers it after the
 *            write's data)
 *   SENT     waiting for the STORE_REP
 *   READ     RMA-read the reply's len bytes out of the slot (get, manifest,
 *            list)
 *   DONE     finished: err 0 or -errno with why
 *
 * A stage that the fabric refuses for now (-EAGAIN) is retried on the next
 * turn of the loop.  An op that is not answered within timeout_ms takes its
 * server out of the session (the connection is closed, its other ops fail):
 * a dead or wedged server costs one timeout, never a hang.
 *
 * Local memory is one pool of nbuf buffers of bufsz bytes, registered on
 * every server's fabric; a chunk in flight holds one buffer and one slot on
 * each server it is being written to.  nbuf is what the servers' slots can
 * take at once (sum of slots / r, at most 16) plus the one being filled, so
 * memory stays at a few chunks per server whatever the stream's size.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "hec/store.h"
#include "rdma/hecfab.h"
#include "rdma/xxh3.h"

#define WHY_LEN 1024
#define ERRS_LEN 768 /* a list of causes, with room in why for what it is about */
#define TIMEOUT_DEFAULT_MS 30000
#define NBUF_MAX 16
/* Buffers a get fills at once: two, one copy arriving while the one before
 * is written (the tcp provider copies in the client's thread; 3 or 6 were
 * no faster at 1 GiB over 4 servers here, and slower at 64 MiB by their
 * fresh pages). */
#define GET_BUFS 2
#define EVS 16

enum srv_state { SRV_DOWN, SRV_HELLO, SRV_UP };

struct srv {
	struct hec_store *s;
	size_t idx;                 /* in the sorted list */
	char *name, *addr;
	enum srv_state state;
	struct hec_fab *fab;
	struct hec_fab_ep *ep;
	struct hec_fab_mr *mr;      /* the pool, registered on this fabric */
	unsigned nslots;
	uint64_t slot_busy;         /* bit per slot */
	size_t slot_size;
	uint64_t base, rkey;
	int64_t hello_deadline;
	char down_why[512];         /* why it is out of the session */
	int down_err;
	int known_down;             /* the caller said so: not dialled */
};

enum op_stage { OP_NEW, OP_WAIT, OP_WRITE, OP_SEND, OP_SENT, OP_READ, OP_DRAIN, OP_DONE };

struct op {
	struct srv *sv;
	json_t *req;                /* the request; "req" and "slot" are set here */
	int need_slot;
	int buf;                    /* local buffer, -1: none */
	size_t wlen;                /* bytes of buf to RMA-write first (0: none) */
	int read;                   /* RMA-read the reply's "len" bytes into buf */
	/* a read with buf -1 takes a buffer when its data is ready, if the
	 * caller allows: 1 take one, 0 wait, -1 give up (-ECANCELED) */
	int may_buf;
	/* engine state */
	enum op_stage stage;
	uint64_t id;
	int slot;
	int pend;                   /* RMA operations not completed yet */
	int64_t deadline;
	uint8_t *frame;
	size_t framelen;
	struct op *next;            /* the session's active list */
	/* result */
	json_t *rep;
	size_t rlen;
	int err;
	char why[512];
};

struct hec_store {
	struct srv *sv;
	size_t m;                   /* servers in the list (the ring) */
	char *key, *client;
	const char *provider;
	unsigned r;
	size_t chunk_size;
	int timeout_ms;
	uint64_t next_id;
	struct op *active;
	uint8_t *pool;
	size_t bufsz;
	unsigned nbuf;
	uint64_t buf_busy;
	struct pollfd *pfd;         /* the loop's: 2 per server + the stream's */
	int stalled;                /* an op met -EAGAIN: retry soon, whatever the fds say */
	int moved;                  /* an op ended: pump returns before waiting (the caller looks) */
	int get_warm;               /* a get touched its buffers before its first chunk came */
	char why[WHY_LEN];
};

static int64_t now_ms(void)
{
	return hec_now_mono_ns() / 1000000;
}

/* ---- why ---- */

static int fail(struct hec_store *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct hec_store *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return err;
}

/* Append "; text" to @buf (a list of causes in one line). */
static void why_add(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void why_add(char *buf, size_t len, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	if (n && n + 2 < len) {
		memcpy(buf + n, "; ", 3);
		n += 2;
	}
	if (n + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, len - n, fmt, ap);
	va_end(ap);
}

const char *hec_store_why(const struct hec_store *s)
{
	return s && s->why[0] ? s->why : "no error";
}

/* ---- servers ---- */

static void op_finish(struct op *op, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void srv_down(struct srv *sv, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void srv_down(struct srv *sv, int err, const char *fmt, ...)
{
	struct hec_store *s = sv->s;
	struct op *op, *next;
	va_list ap;

	if (sv->state == SRV_DOWN)
		return;
	va_start(ap, fmt);
	vsnprintf(sv->down_why, sizeof(sv->down_why), fmt, ap);
	va_end(ap);
	sv->state = SRV_DOWN;
	sv->down_err = err;
	/* closing the fabric frees its endpoint and registrations: no event of
	 * it is polled again, so no op of it is touched by one */
	hec_fab_close(sv->fab);
	sv->fab = NULL;
	sv->ep = NULL;
	sv->mr = NULL;
	for (op = s->active; op; op = next) {
		next = op->next;
		if (op->sv == sv) {
			op->pend = 0;
			op_finish(op, err, "%s", sv->down_why);
		}
	}
	sv->slot_busy = 0;
}

static int srv_up(const struct srv *sv)
{
	return sv && sv->state == SRV_UP;
}

static struct srv *srv_by_name(struct hec_store *s, const char *name)
{
	for (size_t i = 0; name && i < s->m; i++)
		if (!strcmp(s->sv[i].name, name))
			return &s->sv[i];
	return NULL;
}

static size_t nup(const struct hec_store *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->m; i++)
		n += srv_up(&s->sv[i]);
	return n;
}

static const char *srv_state_why(const struct srv *sv)
{
	if (!sv)
		return "not in this session's server list";
	if (sv->state == SRV_UP)
		return "up";
	return sv->down_why[0] ? sv->down_why : "down";
}

/* ---- buffers ---- */

static int buf_get(struct hec_store *s)
{
	for (unsigned i = 0; i < s->nbuf; i++)
		if (!(s->buf_busy & (1ull << i))) {
			s->buf_busy |= 1ull << i;
			return (int)i;
		}
	return -1;
}

static void buf_put(struct hec_store *s, int b)
{
	if (b >= 0)
		s->buf_busy &= ~(1ull << b);
}

static uint8_t *buf_ptr(struct hec_store *s, int b)
{
	return s->pool + (size_t)b * s->bufsz;
}

/* ---- ops ---- */

static void op_unlink(struct op *op)
{
	struct hec_store *s = op->sv->s;

	for (struct op **p = &s->active; *p; p = &(*p)->next)
		if (*p == op) {
			*p = op->next;
			break;
		}
	op->next = NULL;
}

static void op_finish(struct op *op, int err, const char *fmt, ...)
{
	va_list ap;

	if (op->stage == OP_DONE)
		return;
	if (err && !op->err) {
		op->err = err;
		va_start(ap, fmt);
		vsnprintf(op->why, sizeof(op->why), fmt, ap);
		va_end(ap);
	}
	if (op->pend > 0) {
		/* the buffer may still be read or written by the fabric */
		op->stage = OP_DRAIN;
		return;
	}
	if (op->slot >= 0)
		op->sv->slot_busy &= ~(1ull << op->slot);
	op->slot = -1;
	free(op->frame);
	op->frame = NULL;
	op_unlink(op);
	op->stage = OP_DONE;
	op->sv->s->moved = 1; /* the caller looks before waiting again */
}

/* Prepare @op (the caller fills sv, req (stolen), need_slot, buf, wlen, read). */
static void op_init(struct op *op, struct srv *sv, json_t *req, int need_slot, int buf,
		    size_t wlen, int read)
{
	json_decref(op->rep);
	free(op->frame);
	memset(op, 0, sizeof(*op));
	op->sv = sv;
	op->req = req;
	op->need_slot = need_slot;
	op->buf = buf;
	op->wlen = wlen;
	op->read = read;
	op->slot = -1;
	op->stage = OP_NEW;
}

static void op_clear(struct op *op)
{
	json_decref(op->req);
	json_decref(op->rep);
	free(op->frame);
	op->req = op->rep = NULL;
	op->frame = NULL;
}

/* Move @op as far as it goes now. */
static void op_advance(struct op *op)
{
	struct srv *sv = op->sv;
	struct hec_store *s = sv->s;
	int rc;

	if (op->stage == OP_DONE || op->stage == OP_DRAIN)
		return;
	if (!srv_up(sv)) {
		op_finish(op, -EHOSTUNREACH, "%s", srv_state_why(sv));
		return;
	}
	if (op->stage == OP_WAIT) {
		if (op->need_slot) {
			unsigned i;

			for (i = 0; i < sv->nslots; i++)
				if (!(sv->slot_busy & (1ull << i)))
					break;
			if (i == sv->nslots)
				return;
			sv->slot_busy |= 1ull << i;
			op->slot = (int)i;
			json_object_set_new(op->req, "slot", json_integer(i));
		}
		op->id = s->next_id++;
		json_object_set_new(op->req, "req", json_integer((json_int_t)op->id));
		op->deadline = now_ms() + s->timeout_ms;
		op->stage = op->wlen ? OP_WRITE : OP_SEND;
	}
	if (op->stage == OP_WRITE) {
		rc = hec_fab_write(sv->ep, sv->mr, (size_t)op->buf * s->bufsz, op->wlen,
				   sv->base + (uint64_t)op->slot * sv->slot_size, sv->rkey, op);
		if (rc == -EAGAIN) {
			s->stalled = 1;
			return;
		}
		if (rc) {
			op_finish(op, rc, "RMA write: %s", strerror(-rc));
			return;
		}
		op->pend++;
		op->stage = OP_SEND;
	}
	if (op->stage == OP_SEND) {
		if (!op->frame) {
			rc = hec_msg_encode(HEC_MSG_STORE_REQ, op->req, &op->frame, &op->framelen);
			if (rc) {
				op_finish(op, rc, "encoding the request: %s", strerror(-rc));
				return;
			}
		}
		rc = hec_fab_send(sv->ep, op->frame, op->framelen, NULL);
		if (rc == -EAGAIN) {
			s->stalled = 1;
			return;
		}
		if (rc) {
			op_finish(op, rc, "send: %s", strerror(-rc));
			return;
		}
		free(op->frame);
		op->frame = NULL;
		op->stage = OP_SENT;
	}
	if (op->stage == OP_READ && op->buf < 0) {
		if (op->may_buf < 0) {
			op_finish(op, -ECANCELED, "cancelled");
			return;
		}
		op->buf = op->may_buf ? buf_get(s) : -1;
		if (op->buf < 0)
			return; /* the caller's turn: a written chunk gives one back */
		op->deadline = now_ms() + s->timeout_ms;
	}
	if (op->stage == OP_READ) {
		rc = hec_fab_read(sv->ep, sv->mr, (size_t)op->buf * s->bufsz, op->rlen,
				  sv->base + (uint64_t)op->slot * sv->slot_size, sv->rkey, op);
		if (rc == -EAGAIN) {
			s->stalled = 1;
			return;
		}
		if (rc) {
			op_finish(op, rc, "RMA read: %s", strerror(-rc));
			return;
		}
		op->pend++;
		op->stage = OP_SENT; /* now waiting for the read's completion */
		op->read = 0;
	}
}

static void op_start(struct op *op)
{
	struct op **pp = &op->sv->s->active;

	/* at the end: the oldest waiting op takes the next free slot (a get's
	 * next chunk before the ones behind it) */
	while (*pp)
		pp = &(*pp)->next;
	op->stage = OP_WAIT;
	op->next = NULL;
	*pp = op;
	op_advance(op);
}

/* A completion or reply may have finished @op. */
static void op_check(struct op *op)
{
	if (op->stage == OP_DRAIN && op->pend == 0) {
		op->stage = OP_SENT;
		op_finish(op, op->err, "%s", op->why);
		return;
	}
	if (op->stage != OP_SENT || op->pend > 0 || !op->rep)
		return;
	if (op->read) {
		op->stage = OP_READ;
		op_advance(op);
		return;
	}
	op_finish(op, 0, " ");
}

static void on_reply(struct srv *sv, json_t *body)
{
	struct hec_store *s = sv->s;
	json_int_t req = json_integer_value(json_object_get(body, "req"));
	const char *e = json_string_value(json_object_get(body, "error"));
	struct op *op;

	for (op = s->active; op; op = op->next)
		if (op->sv == sv && op->id == (uint64_t)req && op->stage >= OP_SEND)
			break;
	if (!op || op->rep)
		return; /* a late answer to an op given up on */
	op->rep = json_incref(body);
	if (e) {
		op->read = 0;
		op_finish(op, hec_store_rep_errno(e), "%s", e);
		return;
	}
	if (op->read) {
		json_int_t len = json_integer_value(json_object_get(body, "len"));

		if (!json_is_integer(json_object_get(body, "len")) || len < 0 ||
		    (size_t)len > sv->slot_size || (size_t)len > s->bufsz) {
			op->read = 0;
			op_finish(op, -EPROTO, "answer without a usable \"len\"");
			return;
		}
		op->rlen = (size_t)len;
		if (len == 0)
			op->read = 0;
	}
	op_check(op);
}

static void on_welcome(struct srv *sv, const json_t *b)
{
	const char *base = json_string_value(json_object_get(b, "base"));
	const char *rkey = json_string_value(json_object_get(b, "rkey"));
	char *end1, *end2;

	sv->nslots = (unsigned)json_integer_value(json_object_get(b, "slots"));
	sv->slot_size = (size_t)json_integer_value(json_object_get(b, "slot_size"));
	sv->base = strtoull(base, &end1, 16);
	sv->rkey = strtoull(rkey, &end2, 16);
	if (*end1 || *end2 || !*base || !*rkey) {
		srv_down(sv, -EPROTO, "%s: STORE_WELCOME with a bad base or rkey", sv->name);
		return;
	}
	if (sv->nslots > 64)
		sv->nslots = 64;
	sv->state = SRV_UP;
}

static void on_event(struct srv *sv, struct hec_fab_ev *ev)
{
	struct hec_msg m = { 0 };
	char err[256];
	size_t used;
	struct op *op;

	switch (ev->type) {
	case HEC_FAB_EV_DONE:
		op = ev->ctx;
		if (!op)
			return;
		op->pend--;
		if (ev->err)
			op_finish(op, ev->err, "%s", ev->why[0] ? ev->why : strerror(-ev->err));
		op_check(op);
		return;
	case HEC_FAB_EV_CLOSED:
		srv_down(sv, ev->err ? ev->err : -ECONNRESET, "%s: connection closed%s%s", sv->name,
			 ev->why[0] ? ": " : "", ev->why);
		return;
	case HEC_FAB_EV_RECV:
		break;
	default:
		return;
	}
	if (hec_msg_decode(ev->data, ev->len, &m, &used, err, sizeof(err))) {
		srv_down(sv, -EPROTO, "%s: bad message: %s", sv->name, err);
		return;
	}
	switch (m.type) {
	case HEC_MSG_ERROR: {
		const char *e = json_string_value(json_object_get(m.body, "error"));

		/* an ERROR frame ends the connection; before WELCOME it is the key */
		srv_down(sv, sv->state == SRV_HELLO ? -EACCES : -ECONNRESET, "%s: refused: %s",
			 sv->name, e ? e : "no reason given");
		break;
	}
	case HEC_MSG_STORE_WELCOME:
		if (sv->state == SRV_HELLO)
			on_welcome(sv, m.body);
		break;
	case HEC_MSG_STORE_REP:
		if (sv->state == SRV_UP)
			on_reply(sv, m.body);
		break;
	default:
		srv_down(sv, -EPROTO, "%s: unexpected %s message", sv->name, hec_msg_type_name(m.type));
		break;
	}
	hec_msg_clear(&m);
}

/* Drain @sv's events.  \return how many were handled. */
static int srv_poll(struct srv *sv)
{
	struct hec_fab_ev ev[EVS];
	int n, total = 0;

	while (sv->state != SRV_DOWN) {
		n = hec_fab_poll(sv->fab, ev, EVS);
		if (n < 0) {
			srv_down(sv, n, "%s: %s", sv->name, strerror(-n));
			break;
		}
		if (n == 0)
			break;
		for (int i = 0; i < n && sv->state != SRV_DOWN; i++)
			on_event(sv, &ev[i]);
		total += n;
	}
	return total;
}

/* @op waits for its server (not for a buffer of ours): its deadline runs. */
static int op_timed(const struct op *op)
{
	return op->stage >= OP_WRITE && !(op->stage == OP_READ && op->buf < 0);
}

/*
 * One turn of the loop: handle what has arrived, retry stalled stages, give
 * up on what is past its deadline, else block on the wait fds (and @extra,
 * whose revents are set) at most @max_ms and until the nearest deadline.
 */
static void pump(struct hec_store *s, struct pollfd *extra, int max_ms)
{
	struct pollfd *pfd;
	struct op *op, *next;
	int64_t now, first = -1;
	size_t i, n = 0;
	int handled = 0, rc, wait_ms;

	if (extra)
		extra->revents = 0;
	for (i = 0; i < s->m; i++)
		if (s->sv[i].state != SRV_DOWN)
			handled += srv_poll(&s->sv[i]);
	s->stalled = 0;
	for (op = s->active; op; op = next) {
		next = op->next;
		op_advance(op);
	}
	handled += s->moved;
	s->moved = 0;
	now = now_ms();
	for (op = s->active; op; op = op->next)
		if (op_timed(op) && op->deadline <= now) {
			srv_down(op->sv, -ETIMEDOUT, "%s: no answer within %d ms", op->sv->name,
				 s->timeout_ms);
			return;
		}
	for (i = 0; i < s->m; i++)
		if (s->sv[i].state == SRV_HELLO && s->sv[i].hello_deadline <= now)
			srv_down(&s->sv[i], -ETIMEDOUT, "%s: no STORE_WELCOME within %d ms",
				 s->sv[i].name, s->timeout_ms);
	if (handled) {
		/* more may come at once; only look whether the stream is ready */
		if (extra && poll(extra, 1, 0) < 0)
			extra->revents = 0;
		return;
	}
	for (op = s->active; op; op = op->next)
		if (op_timed(op) && (first < 0 || op->deadline < first))
			first = op->deadline;
	for (i = 0; i < s->m; i++)
		if (s->sv[i].state == SRV_HELLO &&
		    (first < 0 || s->sv[i].hello_deadline < first))
			first = s->sv[i].hello_deadline;
	pfd = s->pfd;
	for (i = 0; i < s->m; i++) {
		struct srv *sv = &s->sv[i];
		int fds[2], k;

		if (sv->state == SRV_DOWN)
			continue;
		rc = hec_fab_trywait(sv->fab);
		if (rc == -EAGAIN)
			return; /* events pending: the next turn polls them */
		k = hec_fab_wait_fds(sv->fab, fds);
		for (int j = 0; j < k; j++) {
			pfd[n].fd = fds[j];
			pfd[n++].events = POLLIN;
		}
	}
	if (extra)
		pfd[n++] = *extra;
	if (n == 0)
		return; /* nothing left to wait for: every server is down */
	wait_ms = max_ms;
	if (first >= 0 && (wait_ms < 0 || first - now < wait_ms))
		wait_ms = first - now < 0 ? 0 : (int)(first - now);
	if (s->stalled && (wait_ms < 0 || wait_ms > 1))
		wait_ms = 1;
	rc = poll(pfd, n, wait_ms);
	if (rc > 0 && extra)
		extra->revents = pfd[n - 1].revents;
}

/* Push every deadline by the time the loop spent blocked outside it (a slow
 * reader or writer of the stream is not the servers' fault). */
static void stall(struct hec_store *s, int64_t since)
{
	int64_t d = now_ms() - since;

	if (d <= 0)
		return;
	for (struct op *op = s->active; op; op = op->next)
		op->deadline += d;
}

/* Start @n ops and run the loop until all are done. */
static void run_ops(struct hec_store *s, struct op *ops, size_t n)
{
	size_t i, left;

	for (i = 0; i < n; i++)
		op_start(&ops[i]);
	for (;;) {
		for (left = 0, i = 0; i < n; i++)
			left += ops[i].stage != OP_DONE;
		if (!left)
			break;
		pump(s, NULL, -1);
	}
}

static json_t *req_new(const char *op, uint64_t job, uint64_t epoch)
{
	json_t *r = json_pack("{ss}", "op", op);

	if (r && job)
		json_object_set_new(r, "job", json_integer((json_int_t)job));
	if (r && epoch)
		json_object_set_new(r, "epoch", json_integer((json_int_t)epoch));
	return r;
}

/* ---- open / close ---- */

static int cmp_srv(const void *a, const void *b)
{
	return strcmp(((const struct srv *)a)->name, ((const struct srv *)b)->name);
}

static int pool_setup(struct hec_store *s)
{
	unsigned slots = 0;
	size_t maxslot = 0, i;
	char why[HEC_FAB_WHY];
	int rc;

	for (i = 0; i < s->m; i++)
		if (srv_up(&s->sv[i])) {
			slots += s->sv[i].nslots;
			if (s->sv[i].slot_size > maxslot)
				maxslot = s->sv[i].slot_size;
		}
	s->bufsz = s->chunk_size > maxslot ? s->chunk_size : maxslot;
	s->bufsz = (s->bufsz + 4095) & ~(size_t)4095;
	s->nbuf = slots / s->r;
	if (s->nbuf < 2)
		s->nbuf = 2;
	if (s->nbuf > NBUF_MAX)
		s->nbuf = NBUF_MAX;
	s->nbuf++; /* the one being filled from the stream */
	/* 4 KiB pages, not huge ones: a process touches its pool once, and
	 * faulting in fresh huge pages cost 55-86 ms per 36 MiB on this VM
	 * against 16 ms in small pages (a 64 MiB get took 0.10 s, now 0.05 s;
	 * 1 GiB 0.50 s, now 0.42 s); the TLB misses they would save cost less */
	if (posix_memalign((void **)&s->pool, 4096, s->bufsz * s->nbuf))
		return fail(s, -ENOMEM, "%zu bytes of buffers: %s", s->bufsz * s->nbuf,
			    strerror(ENOMEM));
	for (i = 0; i < s->m; i++) {
		struct srv *sv = &s->sv[i];

		if (!srv_up(sv))
			continue;
		rc = hec_fab_mr_reg(sv->fab, s->pool, s->bufsz * s->nbuf, &sv->mr, why, sizeof(why));
		if (rc)
			srv_down(sv, rc, "%s: registering memory: %s", sv->name, why);
	}
	return 0;
}

int hec_store_open(const struct hec_store_opts *o, struct hec_store **out)
{
	struct hec_fab_opts fo = { .provider = o->provider };
	struct hec_fab_dial dial[64];
	struct hec_store *s;
	char downs[ERRS_LEN] = "";
	uint8_t *frame = NULL;
	size_t i, k, ndial = 0, flen = 0, refused = 0;
	json_t *hj;
	int rc, rc2 = 0;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	*out = s;
	if (!o->nservers)
		return fail(s, -EINVAL, "no storage servers given");
	if (o->nservers > 64)
		return fail(s, -EINVAL, "%zu storage servers: at most 64", o->nservers);
	s->sv = calloc(o->nservers, sizeof(*s->sv));
	s->pfd = calloc(2 * o->nservers + 1, sizeof(*s->pfd));
	s->key = strdup(o->key ? o->key : "");
	s->client = strdup(o->client ? o->client : "hec-store");
	if (!s->sv || !s->pfd || !s->key || !s->client)
		return fail(s, -ENOMEM, "out of memory");
	s->m = o->nservers;
	s->provider = o->provider;
	s->r = o->replicas ? o->replicas : 2;
	if (s->r > s->m)
		s->r = (unsigned)s->m;
	s->chunk_size = o->chunk_size ? o->chunk_size : HEC_STORE_CHUNK_DEFAULT;
	s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : TIMEOUT_DEFAULT_MS;
	s->next_id = 1;
	for (i = 0; i < s->m; i++) {
		s->sv[i].name = strdup(o->servers[i].name ? o->servers[i].name : "");
		s->sv[i].addr = strdup(o->servers[i].addr ? o->servers[i].addr : "");
		s->sv[i].known_down = o->servers[i].down;
		if (!s->sv[i].name || !s->sv[i].addr)
			return fail(s, -ENOMEM, "out of memory");
	}
	qsort(s->sv, s->m, sizeof(*s->sv), cmp_srv);
	for (i = 0; i < s->m; i++) {
		struct srv *sv = &s->sv[i];

		sv->s = s;
		sv->idx = i;
		if (i && !strcmp(sv->name, s->sv[i - 1].name))
			return fail(s, -EINVAL, "storage server %s named twice", sv->name);
		if (sv->known_down)
			snprintf(sv->down_why, sizeof(sv->down_why), "%s (%s): down", sv->name, sv->addr);
		else
			dial[ndial++].hostport = sv->addr;
	}
	/* every server at once: a session costs one connection's round trip,
	 * not one per server */
	hec_fab_connect_all(&fo, dial, ndial, s->timeout_ms);
	hj = json_pack("{ssss}", "key", s->key, "client", s->client);
	rc = hj ? hec_msg_encode(HEC_MSG_STORE_HELLO, hj, &frame, &flen) : -ENOMEM;
	json_decref(hj);
	for (i = 0, k = 0; i < s->m; i++) {
		struct srv *sv = &s->sv[i];
		struct hec_fab_dial *d;

		if (sv->known_down)
			continue;
		d = &dial[k++];
		if (d->err) {
			snprintf(sv->down_why, sizeof(sv->down_why), "%s (%s): %s", sv->name, sv->addr,
				 d->why);
			continue;
		}
		sv->fab = d->fab;
		sv->ep = d->ep;
		hec_fab_ep_set_arg(sv->ep, sv);
		sv->state = SRV_HELLO;
		sv->hello_deadline = now_ms() + s->timeout_ms;
		if (rc || (rc2 = hec_fab_send(sv->ep, frame, flen, NULL)))
			srv_down(sv, rc ? rc : rc2, "%s: sending STORE_HELLO: %s", sv->name,
				 strerror(rc ? -rc : -rc2));
	}
	free(frame);
	for (;;) {
		size_t hello = 0;

		for (i = 0; i < s->m; i++)
			hello += s->sv[i].state == SRV_HELLO;
		if (!hello)
			break;
		pump(s, NULL, -1);
	}
	for (i = 0; i < s->m; i++) {
		struct srv *sv = &s->sv[i];

		if (sv->state == SRV_UP)
			continue;
		why_add(downs, sizeof(downs), "%s", sv->down_why);
		refused += sv->down_err == -EACCES;
	}
	snprintf(s->why, sizeof(s->why), "%s", downs);
	if (refused)
		return fail(s, -EACCES, "%s", downs);
	if (!nup(s))
		return fail(s, -EHOSTUNREACH, "no storage server answers: %s", downs);
	rc = pool_setup(s);
	if (rc)
		return rc;
	if (!nup(s))
		return fail(s, -EHOSTUNREACH, "no storage server usable: %s", s->sv[0].down_why);
	/* what is down stays in why: the caller may report it */
	snprintf(s->why, sizeof(s->why), "%s", downs);
	return 0;
}

void hec_store_close(struct hec_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->sv && i < s->m; i++) {
		hec_fab_close(s->sv[i].fab);
		free(s->sv[i].name);
		free(s->sv[i].addr);
	}
	free(s->sv);
	free(s->pfd);
	free(s->pool);
	free(s->key);
	free(s->client);
	free(s);
}

size_t hec_store_servers_up(const struct hec_store *s)
{
	return s ? nup(s) : 0;
}

unsigned hec_store_replicas(const struct hec_store *s)
{
	return s ? s->r : 0;
}

const char *hec_store_provider(const struct hec_store *s)
{
	for (size_t i = 0; s && i < s->m; i++)
		if (s->sv[i].fab)
			return hec_fab_provider(s->sv[i].fab);
	return s && s->provider ? s->provider : "auto";
}

/* ---- put ---- */

enum { PS_UNTRIED, PS_INFLIGHT, PS_OK, PS_FAILED };

struct pchunk {
	int used;
	uint64_t idx;
	size_t len;
	uint64_t hash;
	int buf;
	size_t home;
	signed char *st;            /* per ring position k (server (home + k) % m) */
	struct op *ops;             /* per ring position */
	char why[512];              /* the causes of failed copies */
};

struct put {
	struct hec_store *s;
	uint64_t job, epoch;
	const char *part;
	struct pchunk *c;
	json_t *chunks;             /* the entry's "chunks", in order */
	uint64_t degraded;
};

static void ph_free(struct put *p)
{
	for (unsigned i = 0; p->c && i < p->s->nbuf; i++) {
		for (size_t k = 0; p->c[i].ops && k < p->s->m; k++)
			op_clear(&p->c[i].ops[k]);
		free(p->c[i].st);
		free(p->c[i].ops);
	}
	free(p->c);
}

static json_t *put_req(struct put *p, uint64_t idx, size_t len, uint64_t hash)
{
	char hex[17];
	json_t *r = req_new("put", p->job, p->epoch);

	hec_hash_hex(hash, hex);
	if (r && json_object_update_new(r, json_pack("{sssIsIss}", "part", p->part,
						     "idx", (json_int_t)idx, "len", (json_int_t)len,
						     "hash", hex))) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/*
 * Move chunk @c on: take the results of its finished copies, start copies
 * on the next servers of the ring until r are placed or in flight.
 * \return 1 when the chunk is finished (placed, or failed), 0 otherwise,
 * -errno when it could not be placed at all.
 */
static int pchunk_step(struct put *p, struct pchunk *c)
{
	struct hec_store *s = p->s;
	unsigned ok = 0, inflight = 0;
	size_t k;

	for (k = 0; k < s->m; k++) {
		struct op *op = &c->ops[k];

		if (c->st[k] == PS_INFLIGHT && op->stage == OP_DONE) {
			if (op->err) {
				c->st[k] = PS_FAILED;
				why_add(c->why, sizeof(c->why), "%s: %s", op->sv->name, op->why);
			} else {
				c->st[k] = PS_OK;
			}
			op_clear(op);
		}
		ok += c->st[k] == PS_OK;
		inflight += c->st[k] == PS_INFLIGHT;
	}
	for (k = 0; k < s->m && ok + inflight < s->r; k++) {
		struct srv *sv = &s->sv[(c->home + k) % s->m];
		json_t *req;

		if (c->st[k] != PS_UNTRIED)
			continue;
		if (!srv_up(sv) || sv->slot_size < c->len) {
			c->st[k] = PS_FAILED;
			if (!srv_up(sv))
				why_add(c->why, sizeof(c->why), "%s", srv_state_why(sv));
			else
				why_add(c->why, sizeof(c->why), "%s: slots of %zu bytes", sv->name,
					sv->slot_size);
			continue;
		}
		req = put_req(p, c->idx, c->len, c->hash);
		if (!req)
			return fail(s, -ENOMEM, "put %" PRIu64 "/%" PRIu64 "/%s: out of memory", p->job,
				    p->epoch, p->part);
		op_init(&c->ops[k], sv, req, 1, c->buf, c->len, 0);
		c->st[k] = PS_INFLIGHT;
		inflight++;
		op_start(&c->ops[k]);
		/* it may have failed at once (the server went down) */
		if (c->ops[k].stage == OP_DONE)
			return pchunk_step(p, c);
	}
	if (inflight)
		return 0;
	if (ok == 0)
		return fail(s, -EIO, "put %" PRIu64 "/%" PRIu64 "/%s chunk %" PRIu64 ": no server took it: %s",
			    p->job, p->epoch, p->part, c->idx, c->why);
	{
		json_t *on = json_array(), *entry = json_array_get(p->chunks, c->idx);

		for (k = 0; k < s->m; k++)
			if (c->st[k] == PS_OK)
				json_array_append_new(on, json_string(s->sv[(c->home + k) % s->m].name));
		json_object_set_new(entry, "on", on);
	}
	if (ok < s->r)
		p->degraded++;
	return 1;
}

/* A stream from a pipe comes 64 KiB (the default pipe size) per read and
 * per wake-up of the writer; a larger pipe (up to a chunk, as far as
 * /proc/sys/fs/pipe-max-size lets) moves it in fewer, larger pieces.  Only
 * a hint: not a pipe, or refused, changes nothing. */
static void pipe_grow(int fd, size_t chunk)
{
	int cur = fcntl(fd, F_GETPIPE_SZ);
	size_t want = chunk < (1u << 20) ? chunk : (1u << 20);

	if (cur > 0 && (size_t)cur < want)
		(void)fcntl(fd, F_SETPIPE_SZ, (int)want);
}

/*
 * Read from @fd (readable) into @buf from *@fill on, until the chunk (@cap)
 * is full, the end of the stream (*@eof), or nothing more is there right
 * now; each piece goes into the stream's and the chunk's hashes (@xs, @cs)
 * while it is still in the cache.  \return 0 or -errno.
 */
static int read_in(int fd, uint8_t *buf, size_t cap, size_t *fill, int *eof, XXH3_state_t *xs,
		   XXH3_state_t *cs)
{
	while (*fill < cap) {
		size_t want = cap - *fill;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		/* pieces that stay in the cache for the hashes */
		if (want > (1u << 20))
			want = 1u << 20;
		n = read(fd, buf + *fill, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		if (n == 0) {
			*eof = 1;
			return 0;
		}
		hec_xxh3_update(xs, buf + *fill, (size_t)n);
		hec_xxh3_update(cs, buf + *fill, (size_t)n);
		*fill += (size_t)n;
		/* a short read: go on only if more is there already */
		if ((size_t)n < want && (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & (POLLIN | POLLHUP))))
			return 0;
	}
	return 0;
}

int hec_store_put_fd(struct hec_store *s, uint64_t job, uint64_t epoch, const char *part,
		     int fd, json_t **entry, struct hec_store_stat *st)
{
	struct put p = { .s = s, .job = job, .epoch = epoch, .part = part };
	struct pchunk *cur = NULL;
	XXH3_state_t *xs = NULL, *cs = NULL;
	uint64_t bytes = 0, nchunks = 0;
	int64_t t0 = hec_now_mono_ns();
	size_t fill = 0;
	int eof = 0, rc = 0;
	unsigned i;
	char hex[17];

	s->why[0] = 0;
	*entry = NULL;
	if (st)
		memset(st, 0, sizeof(*st));
	if (!job || !epoch || !hec_name_ok(part))
		return fail(s, -EINVAL, "put %" PRIu64 "/%" PRIu64 "/%s: bad name (job and epoch > 0, part of [A-Za-z0-9_.-], not starting with '.' or '-')",
			    job, epoch, part ? part : "");
	if (!nup(s))
		return fail(s, -EHOSTUNREACH, "put %" PRIu64 "/%" PRIu64 "/%s: no storage server is up",
			    job, epoch, part);
	{
		size_t maxslot = 0;

		for (i = 0; i < s->m; i++)
			if (srv_up(&s->sv[i]) && s->sv[i].slot_size > maxslot)
				maxslot = s->sv[i].slot_size;
		if (s->chunk_size > maxslot)
			return fail(s, -EINVAL, "put %" PRIu64 "/%" PRIu64 "/%s: chunks of %zu bytes do not fit the servers' slots of %zu bytes",
				    job, epoch, part, s->chunk_size, maxslot);
	}
	p.c = calloc(s->nbuf, sizeof(*p.c));
	p.chunks = json_array();
	xs = XXH3_createState();
	cs = XXH3_createState();
	if (!p.c || !p.chunks || !xs || !cs) {
		rc = fail(s, -ENOMEM, "put: out of memory");
		goto out;
	}
	XXH3_64bits_reset(xs);
	XXH3_64bits_reset(cs);
	pipe_grow(fd, s->chunk_size);
	for (i = 0; i < s->nbuf; i++) {
		p.c[i].st = calloc(s->m, 1);
		p.c[i].ops = calloc(s->m, sizeof(struct op));
		p.c[i].buf = -1;
		if (!p.c[i].st || !p.c[i].ops) {
			rc = fail(s, -ENOMEM, "put: out of memory");
			goto out;
		}
	}
	for (;;) {
		struct pollfd in = { .fd = fd, .events = POLLIN };
		unsigned busy = 0;

		for (i = 0; i < s->nbuf; i++) {
			struct pchunk *c = &p.c[i];

			if (!c->used || c == cur)
				continue;
			rc = pchunk_step(&p, c);
			if (rc < 0)
				goto out;
			if (rc == 1) {
				buf_put(s, c->buf);
				c->buf = -1;
				c->used = 0;
			}
			busy += c->used;
		}
		rc = 0;
		if (!eof && !cur) {
			for (i = 0; i < s->nbuf; i++)
				if (!p.c[i].used)
					break;
			if (i < s->nbuf) {
				cur = &p.c[i];
				cur->buf = buf_get(s);
				if (cur->buf < 0) {
					cur = NULL;
				} else {
					cur->used = 1;
					fill = 0;
				}
			}
		}
		if (eof && !busy)
			break;
		pump(s, cur ? &in : NULL, -1);
		if (!cur || !(in.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		{
			int64_t since = now_ms();

			rc = read_in(fd, buf_ptr(s, cur->buf), s->chunk_size, &fill, &eof, xs, cs);
			stall(s, since);
			if (rc) {
				rc = fail(s, rc, "put %" PRIu64 "/%" PRIu64 "/%s: reading the stream: %s",
					  job, epoch, part, strerror(-rc));
				goto out;
			}
		}
		if (fill < s->chunk_size && !eof)
			continue;
		if (fill == 0) {
			buf_put(s, cur->buf);
			cur->buf = -1;
			cur->used = 0;
			cur = NULL;
			continue;
		}
		/* a whole chunk (or the last): place it */
		cur->idx = nchunks++;
		cur->len = fill;
		cur->hash = XXH3_64bits_digest(cs);
		XXH3_64bits_reset(cs);
		cur->home = hec_store_home(job, epoch, part, cur->idx, s->m);
		cur->why[0] = 0;
		memset(cur->st, PS_UNTRIED, s->m);
		hec_hash_hex(cur->hash, hex);
		json_array_append_new(p.chunks, json_pack("{sIss}", "len", (json_int_t)fill,
							  "hash", hex));
		bytes += fill;
		fill = 0;
		cur = NULL;
	}
	hec_hash_hex(XXH3_64bits_digest(xs), hex);
	*entry = json_pack("{sssIsssIsO}", "part", part, "size", (json_int_t)bytes, "hash", hex,
			   "chunk_size", (json_int_t)s->chunk_size, "chunks", p.chunks);
	if (!*entry)
		rc = fail(s, -ENOMEM, "put: out of memory");
	if (st) {
		st->bytes = bytes;
		st->chunks = nchunks;
		st->hash = XXH3_64bits_digest(xs);
		st->degraded = p.degraded;
		st->seconds = (double)(hec_now_mono_ns() - t0) / 1e9;
	}
	if (!rc && p.degraded)
		snprintf(s->why, sizeof(s->why), "put %" PRIu64 "/%" PRIu64 "/%s: %" PRIu64 " chunks degraded (fewer than %u copies)",
			 job, epoch, part, p.degraded, s->r);
out:
	/* a failed stream: abandon what is in flight (the servers answer into
	 * slots we no longer read; their connections stay usable) */
	if (rc && p.c) {
		for (i = 0; i < s->nbuf && p.c[i].ops; i++)
			for (size_t k = 0; k < s->m; k++) {
				struct op *op = &p.c[i].ops[k];

				while (op->stage != OP_DONE && op->stage != OP_NEW)
					pump(s, NULL, -1);
			}
		for (i = 0; i < s->nbuf; i++)
			if (p.c[i].buf >= 0)
				buf_put(s, p.c[i].buf);
	}
	ph_free(&p);
	json_decref(p.chunks);
	if (xs)
		XXH3_freeState(xs);
	if (cs)
		XXH3_freeState(cs);
	return rc;
}

/* ---- manifests ---- */

/*
 * Fetch the manifest of (job, epoch) (0: the newest below @before, 0: any)
 * from every server up (@only: those with only[i] set), in batches of nbuf;
 * @got (may be NULL): the epoch each server answered with, 0 for none.
 * \return 0 with the newest good one, -ENOENT if none has one, -ESTALE if
 * some server holds the tombstone of (job, epoch) (whatever the others
 * have: a deletion outweighs a manifest), another -errno if some failed
 * and none had one.
 */
static int fetch_manifest(struct hec_store *s, uint64_t job, uint64_t epoch, uint64_t before,
			  const unsigned char *only, uint64_t *got, json_t **out,
			  uint64_t *out_epoch, const char *what)
{
	struct op *ops = calloc(s->nbuf, sizeof(*ops));
	char errs[ERRS_LEN] = "";
	const char *tomb = NULL;
	json_t *best = NULL;
	uint64_t best_epoch = 0;
	int rc = -ENOENT, other = 0;
	size_t i = 0;

	if (!ops)
		return fail(s, -ENOMEM, "%s: out of memory", what);
	for (i = 0; got && i < s->m; i++)
		got[i] = 0;
	i = 0;
	while (i < s->m) {
		size_t n = 0;

		for (; i < s->m && n < s->nbuf; i++) {
			json_t *req;

			if (!srv_up(&s->sv[i]) || (only && !only[i]))
				continue;
			req = req_new("manifest", job, epoch);
			if (!req)
				continue;
			if (before && !epoch)
				json_object_set_new(req, "before", json_integer((json_int_t)before));
			op_init(&ops[n], &s->sv[i], req, 1, (int)n, 0, 1);
			n++;
		}
		run_ops(s, ops, n);
		for (size_t k = 0; k < n; k++) {
			struct op *op = &ops[k];
			const char *hex = json_string_value(json_object_get(op->rep, "hash"));
			char why[256];
			uint64_t h;
			json_t *m;

			if (op->err == -ESTALE) {
				tomb = op->sv->name;
				op_clear(op);
				continue;
			}
			if (op->err) {
				if (op->err != -ENOENT) {
					why_add(errs, sizeof(errs), "%s: %s", op->sv->name, op->why);
					other = op->err;
				}
				op_clear(op);
				continue;
			}
			if (hec_hash_parse(hex, &h) || h != XXH3_64bits(buf_ptr(s, (int)k), op->rlen)) {
				why_add(errs, sizeof(errs), "%s: manifest hash mismatch", op->sv->name);
				other = -EBADMSG;
				op_clear(op);
				continue;
			}
			m = json_loadb((const char *)buf_ptr(s, (int)k), op->rlen, 0, NULL);
			if (!m || hec_store_manifest_check(m, job, epoch, why, sizeof(why))) {
				why_add(errs, sizeof(errs), "%s: %s", op->sv->name,
					m ? why : "manifest is not JSON");
				other = -EBADMSG;
				json_decref(m);
				op_clear(op);
				continue;
			}
			h = (uint64_t)json_integer_value(json_object_get(m, "epoch"));
			if (got)
				got[op->sv->idx] = h;
			if (h > best_epoch) {
				json_decref(best);
				best = m;
				best_epoch = h;
			} else {
				json_decref(m);
			}
			op_clear(op);
		}
	}
	free(ops);
	if (tomb) {
		json_decref(best);
		return fail(s, -ESTALE, "%s: checkpoint %" PRIu64 "/%" PRIu64 " was deleted (%s holds its tombstone)",
			    what, job, epoch, tomb);
	}
	if (best) {
		*out = best;
		*out_epoch = best_epoch;
		return 0;
	}
	if (other)
		rc = other;
	if (rc == -ENOENT)
		return fail(s, rc, "%s: no committed checkpoint%s%s", what, errs[0] ? ": " : "", errs);
	return fail(s, rc, "%s: %s", what, errs);
}

int hec_store_commit(struct hec_store *s, uint64_t job, uint64_t epoch, json_t *entries)
{
	return hec_store_commit_meta(s, job, epoch, entries, NULL);
}

int hec_store_commit_meta(struct hec_store *s, uint64_t job, uint64_t epoch, json_t *entries,
			  const json_t *meta)
{
	json_t *m, *names;
	struct op *ops = NULL;
	char *text = NULL, errs[ERRS_LEN] = "", why[256], hex[17];
	size_t len, i, n = 0, ok = 0, live = nup(s), need;
	int rc = 0, last = -EIO;

	s->why[0] = 0;
	if (!job || !epoch)
		return fail(s, -EINVAL, "commit %" PRIu64 "/%" PRIu64 ": job and epoch must be > 0", job,
			    epoch);
	names = json_array();
	for (i = 0; i < s->m; i++)
		json_array_append_new(names, json_string(s->sv[i].name));
	m = json_pack("{sIsIsIsIsIsoso}", "job", (json_int_t)job, "epoch", (json_int_t)epoch,
		      "time", (json_int_t)(hec_now_real_ns() / 1000000000), "replicas",
		      (json_int_t)s->r, "chunk_size", (json_int_t)s->chunk_size, "servers", names,
		      "streams", entries ? json_incref(entries) : json_array());
	if (m && meta && json_object_set_new(m, "meta", json_deep_copy(meta))) {
		json_decref(m);
		m = NULL;
	}
	if (!m)
		return fail(s, -ENOMEM, "commit: out of memory");
	if (hec_store_manifest_check(m, job, epoch, why, sizeof(why))) {
		rc = fail(s, -EINVAL, "commit %" PRIu64 "/%" PRIu64 ": %s", job, epoch, why);
		goto out;
	}
	text = json_dumps(m, JSON_COMPACT);
	if (!text) {
		rc = fail(s, -ENOMEM, "commit: out of memory");
		goto out;
	}
	len = strlen(text);
	for (i = 0; i < s->m; i++)
		if (srv_up(&s->sv[i]) && s->sv[i].slot_size < len) {
			rc = fail(s, -EFBIG, "commit %" PRIu64 "/%" PRIu64 ": the manifest is %zu bytes, more than %s's slot of %zu bytes (fewer streams or chunks, or larger slots)",
				  job, epoch, len, s->sv[i].name, s->sv[i].slot_size);
			goto out;
		}
	if (!live) {
		rc = fail(s, -EHOSTUNREACH, "commit %" PRIu64 "/%" PRIu64 ": no storage server is up",
			  job, epoch);
		goto out;
	}
	memcpy(buf_ptr(s, 0), text, len);
	hec_hash_hex(XXH3_64bits(text, len), hex);
	ops = calloc(s->m, sizeof(*ops));
	if (!ops) {
		rc = fail(s, -ENOMEM, "commit: out of memory");
		goto out;
	}
	for (i = 0; i < s->m; i++) {
		json_t *req;

		if (!srv_up(&s->sv[i]))
			continue;
		req = req_new("commit", job, epoch);
		json_object_set_new(req, "len", json_integer((json_int_t)len));
		json_object_set_new(req, "hash", json_string(hex));
		op_init(&ops[n++], &s->sv[i], req, 1, 0, len, 0);
	}
	run_ops(s, ops, n);
	for (i = 0; i < n; i++) {
		if (ops[i].err) {
			why_add(errs, sizeof(errs), "%s: %s", ops[i].sv->name, ops[i].why);
			last = ops[i].err;
		} else {
			ok++;
		}
		op_clear(&ops[i]);
	}
	need = s->r < live ? s->r : live;
	if (ok < need || ok == 0)
		rc = fail(s, last, "commit %" PRIu64 "/%" PRIu64 ": manifest on %zu of %zu servers, %zu needed: %s",
			  job, epoch, ok, live, need, errs);
	else if (errs[0])
		snprintf(s->why, sizeof(s->why), "commit %" PRIu64 "/%" PRIu64 ": %s", job, epoch, errs);
out:
	free(ops);
	free(text);
	json_decref(m);
	return rc;
}

int hec_store_latest(struct hec_store *s, uint64_t job, uint64_t *epoch, json_t **manifest)
{
	char what[64];
	json_t *m = NULL;
	uint64_t *got = NULL, before = 0;
	unsigned char *only = NULL;
	int rc;

	s->why[0] = 0;
	if (manifest)
		*manifest = NULL;
	snprintf(what, sizeof(what), "latest %" PRIu64, job);
	got = calloc(s->m, sizeof(*got));
	only = calloc(s->m, 1);
	if (!got || !only) {
		rc = fail(s, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	for (;;) {
		json_t *m2 = NULL;
		uint64_t ep2;
		int any = 0;

		rc = fetch_manifest(s, job, 0, before, NULL, got, &m, epoch, what);
		if (rc)
			goto out;
		/* A server that answered an older epoch may hold the newest one's
		 * tombstone (it was deleted while the others were away). */
		for (size_t i = 0; i < s->m; i++) {
			only[i] = srv_up(&s->sv[i]) && got[i] != *epoch;
			any |= only[i];
		}
		if (!any)
			break;
		rc = fetch_manifest(s, job, *epoch, 0, only, NULL, &m2, &ep2, what);
		json_decref(m2);
		if (rc != -ESTALE)
			break;
		json_decref(m);
		m = NULL;
		before = *epoch;
	}
	rc = 0;
	s->why[0] = 0;
out:
	free(got);
	free(only);
	if (rc) {
		json_decref(m);
		return rc;
	}
	if (manifest)
		*manifest = m;
	else
		json_decref(m);
	return 0;
}

int hec_store_manifest(struct hec_store *s, uint64_t job, uint64_t epoch, json_t **manifest)
{
	char what[64];
	uint64_t ep;
	int rc;

	s->why[0] = 0;
	*manifest = NULL;
	if (!job || !epoch)
		return fail(s, -EINVAL, "manifest %" PRIu64 "/%" PRIu64 ": job and epoch must be > 0",
			    job, epoch);
	snprintf(what, sizeof(what), "manifest %" PRIu64 "/%" PRIu64, job, epoch);
	rc = fetch_manifest(s, job, epoch, 0, NULL, NULL, manifest, &ep, what);
	if (!rc)
		s->why[0] = 0;
	return rc;
}

/* ---- get ---- */

/* GS_ARRIVED: a copy is in the buffer, its hash not checked yet (the writer
 * checks it when the chunk's turn comes, hashing it for the stream too) */
enum { GS_IDLE, GS_FETCH, GS_ARRIVED, GS_GOOD };

struct gchunk {
	int state;
	uint64_t idx;
	size_t len;
	uint64_t hash;
	int buf;
	size_t nh;                  /* holders, from the manifest's "on" */
	const char **holder;
	signed char *bad;           /* holder answered missing/corrupt: re-put there */
	size_t cur;                 /* holder being tried */
	struct op get;
	struct op *rep;             /* re-puts, per holder */
	int written;
	char why[512];
};

struct get {
	struct hec_store *s;
	uint64_t job, epoch;
	const char *part;
	const json_t *chunks;
	struct gchunk *c;           /* nbuf of them: chunk idx uses c[idx % nbuf] */
	uint64_t corrupt, repaired;
};

static void gchunk_free(struct gchunk *c)
{
	op_clear(&c->get);
	for (size_t k = 0; c->rep && k < c->nh; k++)
		op_clear(&c->rep[k]);
	free(c->holder);
	free(c->bad);
	free(c->rep);
	c->holder = NULL;
	c->bad = NULL;
	c->rep = NULL;
}

static int gchunk_load(struct get *g, struct gchunk *c, uint64_t idx)
{
	const json_t *e = json_array_get(g->chunks, idx), *on = json_object_get(e, "on");

	gchunk_free(c);
	memset(c, 0, sizeof(*c));
	c->get.buf = -1;
	c->idx = idx;
	c->len = (size_t)json_integer_value(json_object_get(e, "len"));
	hec_hash_parse(json_string_value(json_object_get(e, "hash")), &c->hash);
	c->nh = json_array_size(on);
	c->holder = calloc(c->nh, sizeof(*c->holder));
	c->bad = calloc(c->nh, 1);
	c->rep = calloc(c->nh, sizeof(*c->rep));
	c->buf = -1;
	if (!c->holder || !c->bad || !c->rep)
		return -ENOMEM;
	for (size_t k = 0; k < c->nh; k++)
		c->holder[k] = json_string_value(json_array_get(on, k));
	c->state = GS_FETCH;
	return 0;
}

/* Move chunk @c on.  \return 0, or -EIO when no copy of it is good. */
static int gchunk_step(struct get *g, struct gchunk *c)
{
	struct hec_store *s = g->s;

	while (c->state == GS_FETCH) {
		struct op *op = &c->get;

		if (op->stage == OP_DONE) {
			if (op->buf >= 0) {
				c->buf = op->buf; /* taken when the copy was ready */
				op->buf = -1;
			}
			if (!op->err && op->rlen != c->len) {
				op->err = -EBADMSG;
				snprintf(op->why, sizeof(op->why), "copy arrived with a wrong length or hash");
			}
			if (!op->err) {
				c->state = GS_ARRIVED;
				break;
			}
			why_add(c->why, sizeof(c->why), "%s: %s", op->sv->name, op->why);
			if (op->err == -EBADMSG)
				g->corrupt++;
			/* the server answered: its copy is missing or bad, re-put it */
			if (op->rep && srv_up(op->sv))
				c->bad[c->cur] = 1;
			op_clear(op);
			op->stage = OP_NEW;
			c->cur++;
			continue;
		}
		if (op->stage != OP_NEW)
			return 0; /* in flight */
		if (c->cur >= c->nh)
			return fail(s, -EIO, "get %" PRIu64 "/%" PRIu64 "/%s chunk %" PRIu64 ": no good copy: %s",
				    g->job, g->epoch, g->part, c->idx, c->why[0] ? c->why : "no holder");
		{
			struct srv *sv = srv_by_name(s, c->holder[c->cur]);
			json_t *req;

			if (!srv_up(sv)) {
				why_add(c->why, sizeof(c->why), "%s: %s", c->holder[c->cur],
					srv_state_why(sv));
				c->cur++;
				continue;
			}
			req = req_new("get", g->job, g->epoch);
			json_object_set_new(req, "part", json_string(g->part));
			json_object_set_new(req, "idx", json_integer((json_int_t)c->idx));
			op_init(op, sv, req, 1, c->buf, 0, 1);
			op_start(op);
		}
	}
	if (c->state == GS_GOOD) {
		char hex[17];

		hec_hash_hex(c->hash, hex);
		for (size_t k = 0; k < c->nh; k++) {
			struct srv *sv = srv_by_name(s, c->holder[k]);
			json_t *req;

			if (!c->bad[k])
				continue;
			if (c->rep[k].stage == OP_DONE) {
				if (!c->rep[k].err)
					g->repaired++;
				c->bad[k] = 0;
				op_clear(&c->rep[k]);
				continue;
			}
			if (c->rep[k].stage != OP_NEW || !srv_up(sv) || c->buf < 0)
				continue;
			req = json_pack("{sssIsIsssIsIss}", "op", "put", "job", (json_int_t)g->job,
					"epoch", (json_int_t)g->epoch, "part", g->part,
					"idx", (json_int_t)c->idx, "len", (json_int_t)c->len, "hash", hex);
			op_init(&c->rep[k], sv, req, 1, c->buf, c->len, 0);
			op_start(&c->rep[k]);
		}
	}
	return 0;
}

/*
 * Chunk @c arrived and is the stream's next: check its hash and fold it into
 * the stream's hash @xs in one pass, piece by piece, so that the second hash
 * of each piece reads it from the cache.  @ts and @cs: scratch states.
 * \return 1 if good (GS_GOOD, @xs advanced), 0 if not (the copy counts as
 * corrupt and the next holder is asked: GS_FETCH).
 */
static int gchunk_check(struct get *g, struct gchunk *c, XXH3_state_t *xs, XXH3_state_t *ts,
			XXH3_state_t *cs)
{
	const uint8_t *p = buf_ptr(g->s, c->buf);
	struct op *op = &c->get;

	XXH3_copyState(ts, xs);
	XXH3_64bits_reset(cs);
	for (size_t off = 0; off < c->len; off += 256u << 10) {
		size_t n = c->len - off < (256u << 10) ? c->len - off : 256u << 10;

		hec_xxh3_update(cs, p + off, n);
		hec_xxh3_update(ts, p + off, n);
	}
	if (XXH3_64bits_digest(cs) == c->hash) {
		XXH3_copyState(xs, ts);
		c->state = GS_GOOD;
		op_clear(op);
		return 1;
	}
	op->err = -EBADMSG;
	snprintf(op->why, sizeof(op->why), "copy arrived with a wrong length or hash");
	c->state = GS_FETCH;
	return 0;
}

static int gchunk_busy(const struct gchunk *c)
{
	for (size_t k = 0; k < c->nh; k++)
		if (c->bad[k] && c->rep[k].stage != OP_NEW && c->rep[k].stage != OP_DONE)
			return 1;
	return c->get.stage != OP_NEW && c->get.stage != OP_DONE;
}

int hec_store_get_fd(struct hec_store *s, uint64_t job, uint64_t epoch, const char *part,
		     int fd, struct hec_store_stat *st)
{
	struct get g = { .s = s, .job = job, .epoch = epoch, .part = part };
	json_t *m = NULL;
	const json_t *e;
	XXH3_state_t *xs = NULL, *ts = NULL, *cs = NULL;
	uint64_t n, next_write = 0, next_load = 0, ep, want_hash = 0, bytes = 0;
	int64_t t0 = hec_now_mono_ns();
	char what[128];
	unsigned i;
	int rc;

	s->why[0] = 0;
	if (st)
		memset(st, 0, sizeof(*st));
	snprintf(what, sizeof(what), "get %" PRIu64 "/%" PRIu64 "/%s", job, epoch, part ? part : "");
	if (!job || !epoch || !hec_name_ok(part))
		return fail(s, -EINVAL, "%s: bad name", what);
	rc = fetch_manifest(s, job, epoch, 0, NULL, NULL, &m, &ep, what);
	if (rc)
		return rc == -ESTALE ? -ENOENT : rc;
	e = hec_store_manifest_stream(m, part);
	if (!e) {
		json_decref(m);
		return fail(s, -ENOENT, "%s: checkpoint %" PRIu64 "/%" PRIu64 " has no stream %s", what,
			    job, epoch, part);
	}
	g.chunks = json_object_get(e, "chunks");
	n = json_array_size(g.chunks);
	hec_hash_parse(json_string_value(json_object_get(e, "hash")), &want_hash);
	g.c = calloc(s->nbuf, sizeof(*g.c));
	xs = XXH3_createState();
	ts = XXH3_createState();
	cs = XXH3_createState();
	if (!g.c || !xs || !ts || !cs) {
		rc = fail(s, -ENOMEM, "%s: out of memory", what);
		goto out;
	}
	XXH3_64bits_reset(xs);
	for (i = 0; i < s->nbuf; i++)
		g.c[i].buf = g.c[i].get.buf = -1;
	/*
	 * nbuf - 1 chunks are asked for ahead of the writer (the servers read
	 * them from disk into their slots), but only the GET_BUFS next in line take
	 * a buffer here, when their copy is ready, and give it back once
	 * written: a get touches a few buffers of the pool, not all of it
	 * (fresh memory costs a page fault per page; a 64 MiB get took 0.05 s,
	 * now 0.03 s here).  No deadlock: the next chunk to write always finds
	 * a buffer, as at most nbuf chunks hold one; and a server slot, as the
	 * oldest waiting op takes a freed slot first and, should one next in
	 * line still wait for a slot, every chunk may take a buffer.
	 */
	while (next_write < n) {
		while (next_load < n && next_load < next_write + s->nbuf - 1) {
			struct gchunk *c = &g.c[next_load % s->nbuf];

			if (c->state != GS_IDLE)
				gchunk_step(&g, c); /* count its finished re-puts */
			if (c->state != GS_IDLE && (gchunk_busy(c) || !c->written))
				break;
			if (c->buf >= 0)
				buf_put(s, c->buf);
			if (gchunk_load(&g, c, next_load)) {
				rc = fail(s, -ENOMEM, "%s: out of memory", what);
				goto out;
			}
			next_load++;
		}
		for (uint64_t k = next_write; k < next_load; k++) {
			rc = gchunk_step(&g, &g.c[k % s->nbuf]);
			if (rc)
				goto out;
		}
		if (!s->get_warm) {
			/* the first requests are out: touch the buffers the chunks
			 * will fill while the servers read them (fresh memory
			 * faults a page at a time) */
			for (unsigned b = 0; b < GET_BUFS && b < s->nbuf; b++)
				if (!(s->buf_busy & (1ull << b)))
					memset(buf_ptr(s, (int)b), 0, s->bufsz);
			s->get_warm = 1;
		}
		{
			struct gchunk *c = &g.c[next_write % s->nbuf];

			if (c->state == GS_ARRIVED && !gchunk_check(&g, c, xs, ts, cs)) {
				rc = gchunk_step(&g, c); /* ask the next holder */
				if (rc)
					goto out;
				continue;
			}
			if (c->state == GS_GOOD && !c->written) {
				int64_t since = now_ms();

				rc = hec_write_all(fd, buf_ptr(s, c->buf), c->len);
				stall(s, since);
				if (rc) {
					rc = fail(s, rc, "%s: writing the stream: %s", what, strerror(-rc));
					goto out;
				}
				bytes += c->len;
				c->written = 1;
				next_write++;
				/* its re-puts start now, and once none is in flight its
				 * buffer goes back for the chunks behind it */
				gchunk_step(&g, c);
				if (!gchunk_busy(c)) {
					buf_put(s, c->buf);
					c->buf = -1;
				}
				continue;
			}
		}
		/* the chunks next in line may take a buffer when their copy is
		 * ready; the rest wait in their server's slot.  Unless one next
		 * in line waits for a slot: those that hold one may be waiting
		 * for a buffer (a retry, or more chunks asked ahead than one
		 * server has slots), so all take one, as every chunk may */
		{
			int all = 0;

			for (uint64_t k = next_write; k < next_load && k < next_write + GET_BUFS; k++)
				all |= g.c[k % s->nbuf].get.stage == OP_WAIT;
			for (uint64_t k = next_write; k < next_load; k++)
				g.c[k % s->nbuf].get.may_buf = all || k < next_write + GET_BUFS;
		}
		pump(s, NULL, -1);
	}
	/* the last re-puts */
	for (;;) {
		int busy = 0;

		for (i = 0; i < s->nbuf; i++) {
			if (g.c[i].state == GS_IDLE)
				continue;
			gchunk_step(&g, &g.c[i]);
			busy |= gchunk_busy(&g.c[i]);
		}
		if (!busy)
			break;
		pump(s, NULL, -1);
	}
	if (XXH3_64bits_digest(xs) != want_hash ||
	    bytes != (uint64_t)json_integer_value(json_object_get(e, "size")))
		rc = fail(s, -EIO, "%s: the stream's hash or size does not match the manifest", what);
	if (st) {
		st->bytes = bytes;
		st->chunks = n;
		st->hash = XXH3_64bits_digest(xs);
		st->corrupt = g.corrupt;
		st->repaired = g.repaired;
		st->seconds = (double)(hec_now_mono_ns() - t0) / 1e9;
	}
out:
	if (rc) {
		/* let what is in flight finish before its buffer goes back;
		 * a copy still in its server's slot stays there */
		for (i = 0; g.c && i < s->nbuf; i++)
			g.c[i].get.may_buf = -1;
		for (i = 0; g.c && i < s->nbuf; i++)
			while (g.c[i].state != GS_IDLE && gchunk_busy(&g.c[i])) {
				for (size_t k = 0; k < g.c[i].nh; k++)
					if (g.c[i].rep[k].stage == OP_NEW)
						g.c[i].bad[k] = 0;
				pump(s, NULL, -1);
			}
	}
	for (i = 0; g.c && i < s->nbuf; i++) {
		if (g.c[i].buf >= 0)
			buf_put(s, g.c[i].buf);
		if (g.c[i].get.buf >= 0 && g.c[i].get.buf != g.c[i].buf)
			buf_put(s, g.c[i].get.buf); /* a read that failed */
		gchunk_free(&g.c[i]);
	}
	free(g.c);
	if (xs)
		XXH3_freeState(xs);
	if (ts)
		XXH3_freeState(ts);
	if (cs)
		XXH3_freeState(cs);
	json_decref(m);
	return rc;
}

/* ---- delete, abort, status ---- */

/* Run op @name on (job, epoch) on every server up.  \return the number that
 * succeeded; failures in @errs, the last errno in *@last.  Errors @ignore
 * count as success. */
static size_t on_all(struct hec_store *s, const char *name, uint64_t job, uint64_t epoch,
		     int ignore, char *errs, size_t errlen, int *last, json_t *reps)
{
	struct op *ops = calloc(s->m, sizeof(*ops));
	size_t n = 0, ok = 0, i;

	if (!ops) {
		*last = -ENOMEM;
		why_add(errs, errlen, "out of memory");
		return 0;
	}
	for (i = 0; i < s->m; i++)
		if (srv_up(&s->sv[i]))
			op_init(&ops[n++], &s->sv[i], req_new(name, job, epoch), 0, -1, 0, 0);
	run_ops(s, ops, n);
	for (i = 0; i < n; i++) {
		if (ops[i].err && ops[i].err != ignore) {
			why_add(errs, errlen, "%s: %s", ops[i].sv->name, ops[i].why);
			*last = ops[i].err;
		} else {
			ok++;
		}
		if (reps) {
			json_t *o = json_object();

			if (ops[i].rep)
				json_object_update(o, ops[i].rep);
			json_object_del(o, "req");
			json_object_set_new(o, "name", json_string(ops[i].sv->name));
			json_object_set_new(o, "addr", json_string(ops[i].sv->addr));
			json_object_set_new(o, "state", json_string(ops[i].err ? "error" : "up"));
			json_array_append_new(reps, o);
		}
		op_clear(&ops[i]);
	}
	free(ops);
	return ok;
}

static int epoch_op(struct hec_store *s, const char *name, uint64_t job, uint64_t epoch)
{
	char errs[ERRS_LEN] = "";
	int last = 0;

	s->why[0] = 0;
	if (!job || !epoch)
		return fail(s, -EINVAL, "%s %" PRIu64 "/%" PRIu64 ": job and epoch must be > 0", name,
			    job, epoch);
	if (!nup(s))
		return fail(s, -EHOSTUNREACH, "%s %" PRIu64 "/%" PRIu64 ": no storage server is up",
			    name, job, epoch);
	on_all(s, name, job, epoch, -ENOENT, errs, sizeof(errs), &last, NULL);
	if (last)
		return fail(s, last, "%s %" PRIu64 "/%" PRIu64 ": %s", name, job, epoch, errs);
	return 0;
}

int hec_store_delete(struct hec_store *s, uint64_t job, uint64_t epoch)
{
	return epoch_op(s, "delete", job, epoch);
}

int hec_store_abort(struct hec_store *s, uint64_t job, uint64_t epoch)
{
	return epoch_op(s, "abort", job, epoch);
}

int hec_store_status(struct hec_store *s, json_t **servers)
{
	char errs[ERRS_LEN] = "";
	json_t *a = json_array();
	int last = 0;

	s->why[0] = 0;
	*servers = NULL;
	if (!a)
		return fail(s, -ENOMEM, "status: out of memory");
	on_all(s, "status", 0, 0, 0, errs, sizeof(errs), &last, a);
	for (size_t i = 0; i < s->m; i++)
		if (!srv_up(&s->sv[i]))
			json_array_append_new(a, json_pack("{ssssssss}", "name", s->sv[i].name,
							   "addr", s->sv[i].addr, "state", "down",
							   "error", srv_state_why(&s->sv[i])));
	*servers = a;
	if (errs[0])
		snprintf(s->why, sizeof(s->why), "status: %s", errs);
	return 0;
}

/* ---- repair ---- */

/* Every server's inventory (list op), indexed like s->sv; NULL where none. */
static int fetch_lists(struct hec_store *s, json_t **lists)
{
	struct op *ops = calloc(s->nbuf, sizeof(*ops));
	size_t i = 0;

	if (!ops)
		return fail(s, -ENOMEM, "repair: out of memory");
	while (i < s->m) {
		size_t n = 0;

		for (; i < s->m && n < s->nbuf; i++)
			if (srv_up(&s->sv[i])) {
				op_init(&ops[n], &s->sv[i], req_new("list", 0, 0), 1, (int)n, 0, 1);
				n++;
			}
		run_ops(s, ops, n);
		for (size_t k = 0; k < n; k++) {
			const char *hex = json_string_value(json_object_get(ops[k].rep, "hash"));
			uint64_t h;

			if (!ops[k].err && (!hex || (!hec_hash_parse(hex, &h) &&
						     h == hec_xxh3(buf_ptr(s, (int)k), ops[k].rlen))))
				lists[ops[k].sv->idx] = json_loadb((const char *)buf_ptr(s, (int)k),
								   ops[k].rlen, 0, NULL);
			op_clear(&ops[k]);
		}
	}
	free(ops);
	return 0;
}

/*
 * The inventory's shape is the server's (rdma/chunkstore.c); read loosely:
 * an object with "epochs" (or an array) of {job, epoch, committed,
 * chunks: [{part, idx, len}]}.
 */
static const json_t *inv_epochs(const json_t *inv)
{
	if (json_is_array(inv))
		return inv;
	return json_object_get(inv, "epochs");
}

static const json_t *inv_find(const json_t *inv, uint64_t job, uint64_t epoch)
{
	const json_t *a = inv_epochs(inv);

	for (size_t i = 0; i < json_array_size(a); i++) {
		const json_t *e = json_array_get(a, i);

		if ((uint64_t)json_integer_value(json_object_get(e, "job")) == job &&
		    (uint64_t)json_integer_value(json_object_get(e, "epoch")) == epoch)
			return e;
	}
	return NULL;
}

static int inv_has(const json_t *ep, const char *part, uint64_t idx, size_t len)
{
	const json_t *a = json_object_get(ep, "chunks");

	for (size_t i = 0; i < json_array_size(a); i++) {
		const json_t *c = json_array_get(a, i);
		const char *p = json_string_value(json_object_get(c, "part"));

		if (p && !strcmp(p, part) &&
		    (uint64_t)json_integer_value(json_object_get(c, "idx")) == idx &&
		    (!json_object_get(c, "len") ||
		     (size_t)json_integer_value(json_object_get(c, "len")) == len))
			return 1;
	}
	return 0;
}

/* Read chunk (job, epoch, part, idx) from @sv into buffer 0: the server
 * checks its file's hash, and so do we.  \return 0 if the copy is good. */
static int read_chunk(struct hec_store *s, struct srv *sv, uint64_t job, uint64_t epoch,
		      const char *part, uint64_t idx, size_t len, uint64_t hash)
{
	struct op op = { 0 };
	int rc;

	op_init(&op, sv, json_pack("{sssIsIsssI}", "op", "get", "job", (json_int_t)job,
				   "epoch", (json_int_t)epoch, "part", part, "idx", (json_int_t)idx),
		1, 0, 0, 1);
	run_ops(s, &op, 1);
	rc = op.err;
	if (!rc && (op.rlen != len || hec_xxh3(buf_ptr(s, 0), len) != hash))
		rc = -EBADMSG;
	op_clear(&op);
	return rc;
}

/* Copy chunk (job, epoch, part, idx) from one of @from (names) to @to. */
static int copy_chunk(struct hec_store *s, uint64_t job, uint64_t epoch, const char *part,
		      uint64_t idx, size_t len, uint64_t hash, const json_t *from, struct srv *to)
{
	struct op op = { 0 };
	char hex[17];
	int rc = -EIO;

	for (size_t k = 0; k < json_array_size(from) && rc; k++) {
		struct srv *sv = srv_by_name(s, json_string_value(json_array_get(from, k)));

		if (srv_up(sv) && sv != to)
			rc = read_chunk(s, sv, job, epoch, part, idx, len, hash) ? -EIO : 0;
	}
	if (rc)
		return rc;
	hec_hash_hex(hash, hex);
	op_init(&op, to, json_pack("{sssIsIsssIsIss}", "op", "put", "job", (json_int_t)job,
				   "epoch", (json_int_t)epoch, "part", part, "idx", (json_int_t)idx,
				   "len", (json_int_t)len, "hash", hex), 1, 0, len, 0);
	run_ops(s, &op, 1);
	rc = op.err;
	op_clear(&op);
	return rc;
}

/* Bring checkpoint @m to r good copies per chunk.  \return 1 if the
 * manifest's placement changed (it must be committed again). */
static int repair_one(struct hec_store *s, json_t *m, json_t **lists, uint64_t *copied,
		      uint64_t *lost, char *errs, size_t errlen)
{
	uint64_t job = (uint64_t)json_integer_value(json_object_get(m, "job"));
	uint64_t epoch = (uint64_t)json_integer_value(json_object_get(m, "epoch"));
	const json_t *streams = json_object_get(m, "streams");
	unsigned r = (unsigned)json_integer_value(json_object_get(m, "replicas"));
	int changed = 0;

	if (r > nup(s))
		r = (unsigned)nup(s);
	for (size_t i = 0; i < json_array_size(streams); i++) {
		const json_t *e = json_array_get(streams, i);
		const char *part = json_string_value(json_object_get(e, "part"));
		const json_t *chunks = json_object_get(e, "chunks");

		for (size_t idx = 0; idx < json_array_size(chunks); idx++) {
			json_t *c = json_array_get(chunks, idx), *on = json_object_get(c, "on");
			json_t *good = json_array();
			size_t len = (size_t)json_integer_value(json_object_get(c, "len"));
			uint64_t hash = 0;
			size_t k, home;

			hec_hash_parse(json_string_value(json_object_get(c, "hash")), &hash);
			for (k = 0; k < json_array_size(on); k++) {
				const char *name = json_string_value(json_array_get(on, k));
				struct srv *sv = srv_by_name(s, name);

				/* listed, and read back good (a corrupt copy is re-copied) */
				if (srv_up(sv) && lists[sv->idx] &&
				    inv_has(inv_find(lists[sv->idx], job, epoch), part, idx, len) &&
				    !read_chunk(s, sv, job, epoch, part, idx, len, hash))
					json_array_append_new(good, json_string(name));
			}
			if (json_array_size(good) == 0) {
				(*lost)++;
				why_add(errs, errlen, "%" PRIu64 "/%" PRIu64 "/%s chunk %zu: no copy left",
					job, epoch, part, idx);
				json_decref(good);
				continue;
			}
			/* holders that are up but lack it first, then the ring */
			home = hec_store_home(job, epoch, part, idx, s->m);
			for (k = 0; k < json_array_size(on) + s->m && json_array_size(good) < r; k++) {
				struct srv *sv;
				int listed = k < json_array_size(on);
				int rc;

				sv = listed ? srv_by_name(s, json_string_value(json_array_get(on, k)))
					    : &s->sv[(home + k - json_array_size(on)) % s->m];
				if (!srv_up(sv))
					continue;
				{
					int have = 0;

					for (size_t j = 0; j < json_array_size(good); j++)
						have |= !strcmp(json_string_value(json_array_get(good, j)),
								sv->name);
					if (have)
						continue;
				}
				rc = copy_chunk(s, job, epoch, part, idx, len, hash, good, sv);
				if (rc) {
					why_add(errs, errlen, "%" PRIu64 "/%" PRIu64 "/%s chunk %zu to %s: %s",
						job, epoch, part, idx, sv->name,
						rc == -EIO ? "no good copy could be read" : strerror(-rc));
					continue;
				}
				(*copied)++;
				json_array_append_new(good, json_string(sv->name));
				if (!listed)
					changed = 1;
			}
			if (changed) {
				/* the manifest says where the copies are: the live ones first */
				json_t *all = json_deep_copy(good);

				for (k = 0; k < json_array_size(on); k++) {
					const char *name = json_string_value(json_array_get(on, k));
					int have = 0;

					for (size_t j = 0; j < json_array_size(all); j++)
						have |= !strcmp(json_string_value(json_array_get(all, j)), name);
					if (!have)
						json_array_append_new(all, json_string(name));
				}
				json_object_set_new(c, "on", all);
			}
			json_decref(good);
		}
	}
	return changed;
}

/* Does some inventory hold the tombstone of (job, epoch)? */
static int inv_deleted(json_t **lists, size_t m, uint64_t job, uint64_t epoch)
{
	for (size_t i = 0; i < m; i++) {
		const json_t *o = lists[i] ? inv_find(lists[i], job, epoch) : NULL;

		if (o && json_is_true(json_object_get(o, "deleted")))
			return 1;
	}
	return 0;
}

/* Deleted epochs: every server up that still holds something of one but not
 * its tombstone deletes it (and so gets the tombstone).  \return the copies
 * removed. */
static uint64_t repair_deletions(struct hec_store *s, json_t **lists, char *errs, size_t errlen)
{
	uint64_t removed = 0;

	for (size_t i = 0; i < s->m; i++) {
		const json_t *a = inv_epochs(lists[i]);

		for (size_t k = 0; k < json_array_size(a); k++) {
			const json_t *e = json_array_get(a, k);
			uint64_t job = (uint64_t)json_integer_value(json_object_get(e, "job"));
			uint64_t epoch = (uint64_t)json_integer_value(json_object_get(e, "epoch"));

			if (!json_is_true(json_object_get(e, "deleted")))
				continue;
			for (size_t j = 0; j < s->m; j++) {
				const json_t *o = lists[j] ? inv_find(lists[j], job, epoch) : NULL;
				struct op op = { 0 };

				if (!o || json_is_true(json_object_get(o, "deleted")) || !srv_up(&s->sv[j]))
					continue;
				op_init(&op, &s->sv[j], req_new("delete", job, epoch), 0, -1, 0, 0);
				run_ops(s, &op, 1);
				if (op.err) {
					why_add(errs, errlen, "deleting %" PRIu64 "/%" PRIu64 " on %s: %s", job,
						epoch, s->sv[j].name, op.why);
				} else {
					removed++;
					/* it holds the tombstone now: not deleted again */
					json_object_set_new((json_t *)o, "deleted", json_true());
					json_object_set_new((json_t *)o, "committed", json_false());
				}
				op_clear(&op);
			}
		}
	}
	return removed;
}

int hec_store_repair_report(struct hec_store *s, json_t **report)
{
	json_t **lists = calloc(s->m, sizeof(*lists));
	json_t *lost_list = json_array();
	char errs[ERRS_LEN] = "";
	uint64_t copied = 0, lost = 0, removed = 0;
	size_t i, k;
	int rc = 0;

	s->why[0] = 0;
	*report = NULL;
	if (!lists || !lost_list) {
		free(lists);
		json_decref(lost_list);
		return fail(s, -ENOMEM, "repair: out of memory");
	}
	rc = fetch_lists(s, lists);
	if (rc)
		goto out;
	removed = repair_deletions(s, lists, errs, sizeof(errs));
	/* every committed (job, epoch) any server knows, once */
	for (i = 0; i < s->m; i++) {
		const json_t *a = inv_epochs(lists[i]);

		for (k = 0; k < json_array_size(a); k++) {
			const json_t *e = json_array_get(a, k);
			uint64_t job = (uint64_t)json_integer_value(json_object_get(e, "job"));
			uint64_t epoch = (uint64_t)json_integer_value(json_object_get(e, "epoch"));
			json_t *m = NULL;
			uint64_t ep, lost_before = lost;
			size_t j, missing = 0;
			int seen = 0;
			char what[64];

			if (!json_is_true(json_object_get(e, "committed")) ||
			    inv_deleted(lists, s->m, job, epoch))
				continue;
			for (j = 0; j < i && !seen; j++) {
				const json_t *o = inv_find(lists[j], job, epoch);

				seen = o && json_is_true(json_object_get(o, "committed"));
			}
			if (seen)
				continue;
			snprintf(what, sizeof(what), "repair %" PRIu64 "/%" PRIu64, job, epoch);
			rc = fetch_manifest(s, job, epoch, 0, NULL, NULL, &m, &ep, what);
			if (rc == -ESTALE) {
				rc = 0;
				continue; /* deleted meanwhile, or on a server whose list failed */
			}
			if (rc) {
				rc = 0;
				why_add(errs, sizeof(errs), "%s", s->why);
				continue;
			}
			for (j = 0; j < s->m; j++) {
				const json_t *o = lists[j] ? inv_find(lists[j], job, epoch) : NULL;

				if (srv_up(&s->sv[j]) && !(o && json_is_true(json_object_get(o, "committed"))))
					missing++;
			}
			if (repair_one(s, m, lists, &copied, &lost, errs, sizeof(errs)) || missing) {
				json_t *streams = json_incref(json_object_get(m, "streams"));
				uint64_t saved_r = s->r;
				size_t saved_cs = s->chunk_size;

				/* commit it again as it was, with today's placement */
				s->r = (unsigned)json_integer_value(json_object_get(m, "replicas"));
				s->chunk_size = (size_t)json_integer_value(json_object_get(m, "chunk_size"));
				if (hec_store_commit_meta(s, job, epoch, streams,
							  json_object_get(m, "meta")))
					why_add(errs, sizeof(errs), "%s", s->why);
				s->r = (unsigned)saved_r;
				s->chunk_size = saved_cs;
				json_decref(streams);
			}
			if (lost > lost_before)
				json_array_append_new(lost_list,
						      json_pack("{sIsIsI}", "job", (json_int_t)job,
								"epoch", (json_int_t)epoch, "chunks",
								(json_int_t)(lost - lost_before)));
			json_decref(m);
		}
	}
	if (lost)
		rc = fail(s, -EIO, "repair: %" PRIu64 " chunks lost: %s", lost, errs);
	else if (errs[0])
		rc = fail(s, -EIO, "repair: %s", errs);
	else
		s->why[0] = 0;
	*report = json_pack("{sIsIsIsIsO}", "copied", (json_int_t)copied, "lost", (json_int_t)lost,
			    "removed", (json_int_t)removed, "servers", (json_int_t)nup(s),
			    "lost_chunks", lost_list);
	if (!*report && !rc)
		rc = fail(s, -ENOMEM, "repair: out of memory");
out:
	for (i = 0; i < s->m; i++)
		json_decref(lists[i]);
	free(lists);
	json_decref(lost_list);
	return rc;
}

int hec_store_repair(struct hec_store *s, uint64_t *copied, uint64_t *lost)
{
	json_t *r = NULL;
	int rc = hec_store_repair_report(s, &r);

	*copied = (uint64_t)json_integer_value(json_object_get(r, "copied"));
	*lost = (uint64_t)json_integer_value(json_object_get(r, "lost"));
	json_decref(r);
	return rc;
}
