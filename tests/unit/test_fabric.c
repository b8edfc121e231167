/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: the fabric layer (rdma/fabric.c) on 127.0.0.1 with the tcp provider,
 * one process driving both sides by polling.  Every wait is bounded. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rdma/hecfab.h"
#include "tests/unit/cunit_main.h"

#define LIMIT_MS 10000

static const struct hec_fab_opts tcp = { .provider = "tcp", .msg_depth = 8 };

/* ---- event log: everything both sides report, RECV data copied ---------- */

struct tev {
	struct hec_fab_ev ev;
	unsigned char *copy;
	int region_ok; /* RECV on the watched fabric: the region as expected then */
};

#define LOG_MAX 4096
static struct tev evlog[LOG_MAX];
static int nlog;
static struct hec_fab *pumped[4];
static int nfabs;

/* While set, each RECV on @watch_fab compares @watch_buf to @watch_expect at
 * the moment the message is handed out. */
static struct hec_fab *watch_fab;
static const unsigned char *watch_buf, *watch_expect;
static size_t watch_len;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_reset(void)
{
	int i;

	for (i = 0; i < nlog; i++)
		free(evlog[i].copy);
	nlog = 0;
	nfabs = 0;
	watch_fab = NULL;
}

static void track(struct hec_fab *f)
{
	pumped[nfabs++] = f;
}

static void untrack(struct hec_fab *f)
{
	int i;

	for (i = 0; i < nfabs; i++)
		if (pumped[i] == f) {
			pumped[i] = pumped[--nfabs];
			return;
		}
}

static int pump_once(void)
{
	struct hec_fab_ev ev[16];
	int i, j, n, got = 0;

	for (i = 0; i < nfabs; i++) {
		n = hec_fab_poll(pumped[i], ev, 16);
		CU_ASSERT(n >= 0);
		for (j = 0; j < n && nlog < LOG_MAX; j++) {
			struct tev *t = &evlog[nlog++];

			t->ev = ev[j];
			t->copy = NULL;
			t->region_ok = -1;
			if (ev[j].type == HEC_FAB_EV_RECV) {
				t->copy = malloc(ev[j].len ? ev[j].len : 1);
				memcpy(t->copy, ev[j].data, ev[j].len);
				if (pumped[i] == watch_fab)
					t->region_ok = !memcmp(watch_buf, watch_expect, watch_len);
			}
			got++;
		}
	}
	return got;
}

/* Take the first logged event of @type (on @ep unless NULL), pumping up to
 * @ms.  \return 1 with *out (its copy is the caller's), 0 on time-out. */
static int take(enum hec_fab_ev_type type, struct hec_fab_ep *ep, struct tev *out, int ms)
{
	long long end = now_ms() + ms;
	int i;

	for (;;) {
		for (i = 0; i < nlog; i++)
			if (evlog[i].ev.type == type && (!ep || evlog[i].ev.ep == ep)) {
				*out = evlog[i];
				memmove(&evlog[i], &evlog[i + 1], (size_t)(nlog - i - 1) * sizeof(evlog[0]));
				nlog--;
				return 1;
			}
		if (now_ms() > end)
			return 0;
		if (!pump_once() && nfabs)
			hec_fab_wait(pumped[0], 1);
	}
}

/* ---- a connected pair ------------------------------------------------------ */

struct pair {
	struct hec_fab *lf, *cf;
	struct hec_fab_ep *lep, *cep;
};

struct conn_arg {
	const char *addr;
	struct hec_fab *f;
	struct hec_fab_ep *ep;
	int rc;
	char why[HEC_FAB_WHY];
};

/* hec_fab_connect() blocks until the listener accepts, and the listener
 * accepts only when polled: the test runs the connect in a thread. */
static void *connect_thread(void *a)
{
	struct conn_arg *c = a;

	c->rc = hec_fab_connect(&tcp, c->addr, LIMIT_MS, &c->f, &c->ep, c->why, sizeof(c->why));
	return NULL;
}

static int pair_connect(struct hec_fab *lf, struct hec_fab **cf, struct hec_fab_ep **cep,
			struct hec_fab_ep **lep)
{
	struct conn_arg c = { .addr = hec_fab_address(lf) };
	long long end = now_ms() + LIMIT_MS;
	struct hec_fab_ev ev[8];
	pthread_t t;
	int i, n, done = 0;

	*lep = NULL;
	if (pthread_create(&t, NULL, connect_thread, &c))
		return -1;
	/* only the listener is polled until the thread is done */
	while (!*lep && now_ms() < end) {
		hec_fab_wait(lf, 10);
		n = hec_fab_poll(lf, ev, 8);
		for (i = 0; i < n; i++)
			if (ev[i].type == HEC_FAB_EV_ACCEPTED)
				*lep = ev[i].ep;
	}
	pthread_join(t, NULL);
	done = c.rc == 0 && *lep;
	if (c.rc)
		fprintf(stderr, "connect: %s\n", c.why);
	*cf = c.f;
	*cep = c.ep;
	return done ? 0 : -1;
}

static int pair_open(struct pair *p, const struct hec_fab_opts *o)
{
	char why[HEC_FAB_WHY];
	int r;

	memset(p, 0, sizeof(*p));
	log_reset();
	r = hec_fab_listen(o, "127.0.0.1:0", &p->lf, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(r, 0);
	if (r) {
		fprintf(stderr, "listen: %s\n", why);
		return r;
	}
	CU_ASSERT_STRING_EQUAL(hec_fab_provider(p->lf), "tcp");
	CU_ASSERT_EQUAL(strncmp(hec_fab_address(p->lf), "127.0.0.1:", 10), 0);
	CU_ASSERT_STRING_NOT_EQUAL(hec_fab_address(p->lf), "127.0.0.1:0");
	r = pair_connect(p->lf, &p->cf, &p->cep, &p->lep);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	track(p->lf);
	track(p->cf);
	CU_ASSERT_STRING_EQUAL(hec_fab_provider(p->cf), "tcp");
	CU_ASSERT_PTR_NOT_NULL(hec_fab_ep_peer(p->lep));
	return 0;
}

static void pair_close(struct pair *p)
{
	hec_fab_close(p->cf);
	hec_fab_close(p->lf);
	log_reset();
}

static void fill(unsigned char *b, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = (unsigned char)((i * 131 + seed * 7919 + (i >> 11)) & 0xff);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_messages(void)
{
	static const size_t sizes[] = { 1, 2, 100, 4096, 65535, HEC_FAB_MSG_MAX };
	unsigned char *buf = malloc(HEC_FAB_MSG_MAX + 1);
	struct pair p;
	struct tev t;
	size_t i;
	int ctx;

	if (pair_open(&p, &tcp))
		goto out;
	/* arguments travel with the endpoint */
	hec_fab_ep_set_arg(p.lep, &ctx);
	CU_ASSERT_PTR_EQUAL(hec_fab_ep_get_arg(p.lep), &ctx);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(buf, sizes[i], (unsigned)i);
		/* client -> listener, with a completion */
		CU_ASSERT_EQUAL(hec_fab_send(p.cep, buf, sizes[i], &ctx), 0);
		CU_ASSERT_FATAL(take(HEC_FAB_EV_RECV, p.lep, &t, LIMIT_MS));
		CU_ASSERT_EQUAL(t.ev.len, sizes[i]);
		CU_ASSERT(t.ev.len == sizes[i] && !memcmp(t.copy, buf, sizes[i]));
		free(t.copy);
		CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.cep, &t, LIMIT_MS));
		CU_ASSERT_PTR_EQUAL(t.ev.ctx, &ctx);
		CU_ASSERT_EQUAL(t.ev.err, 0);
		/* listener -> client, without one */
		fill(buf, sizes[i], (unsigned)i + 100);
		CU_ASSERT_EQUAL(hec_fab_send(p.lep, buf, sizes[i], NULL), 0);
		CU_ASSERT_FATAL(take(HEC_FAB_EV_RECV, p.cep, &t, LIMIT_MS));
		CU_ASSERT(t.ev.len == sizes[i] && !memcmp(t.copy, buf, sizes[i]));
		free(t.copy);
	}
	/* many more than msg_depth in a row: receive buffers are reposted, order kept */
	for (i = 0; i < 100; i++) {
		unsigned v = (unsigned)i;
		int r;

		while ((r = hec_fab_send(p.cep, &v, sizeof(v), NULL)) == -EAGAIN)
			pump_once();
		CU_ASSERT_EQUAL(r, 0);
	}
	for (i = 0; i < 100; i++) {
		unsigned v;

		CU_ASSERT_FATAL(take(HEC_FAB_EV_RECV, p.lep, &t, LIMIT_MS));
		memcpy(&v, t.copy, sizeof(v));
		CU_ASSERT_EQUAL(v, (unsigned)i);
		free(t.copy);
	}
	CU_ASSERT_EQUAL(hec_fab_send(p.cep, buf, HEC_FAB_MSG_MAX + 1, NULL), -EMSGSIZE);
	CU_ASSERT_EQUAL(hec_fab_send(p.cep, buf, 0, NULL), -EINVAL);
	/* the refused ones left nothing behind: the next one still arrives */
	CU_ASSERT_EQUAL(hec_fab_send(p.cep, "x", 1, NULL), 0);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_RECV, p.lep, &t, LIMIT_MS));
	CU_ASSERT(t.ev.len == 1 && t.copy[0] == 'x');
	free(t.copy);
	pair_close(&p);
out:
	free(buf);
}

/* Write a region, send right behind it without waiting, and check at the
 * message that the region holds the write's data; read it back. */
static void rma_rounds(int hold)
{
	const size_t rlen = 8u << 20, wlen = 3u << 20, at = (1u << 20) + 4096;
	unsigned char *region = calloc(1, rlen), *local = malloc(2 * wlen), *expect = malloc(wlen);
	struct hec_fab_mr *rmr = NULL, *lmr = NULL;
	char why[HEC_FAB_WHY];
	int wctx, sctx, rctx;
	void *first;
	unsigned round;
	struct pair p;
	struct tev t;

	if (pair_open(&p, &tcp))
		goto out;
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.lf, region, rlen, &rmr, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.cf, local, 2 * wlen, &lmr, why, sizeof(why)), 0);
	watch_fab = p.lf;
	watch_buf = region + at;
	watch_expect = expect;
	watch_len = wlen;
	for (round = 1; round <= 4; round++) {
		fill(local, wlen, round);
		memcpy(expect, local, wlen);
		CU_ASSERT_EQUAL(hec_fab_write(p.cep, lmr, 0, wlen, hec_fab_mr_base(rmr) + at,
					      hec_fab_mr_key(rmr), &wctx), 0);
		CU_ASSERT_EQUAL(hec_fab_send(p.cep, &round, sizeof(round), &sctx), 0);
		CU_ASSERT_FATAL(take(HEC_FAB_EV_RECV, p.lep, &t, LIMIT_MS));
		CU_ASSERT_EQUAL(t.region_ok, 1);
		free(t.copy);
		/* both complete; a held send only after the write */
		CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.cep, &t, LIMIT_MS));
		first = t.ev.ctx;
		CU_ASSERT_EQUAL(t.ev.err, 0);
		CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.cep, &t, LIMIT_MS));
		CU_ASSERT_EQUAL(t.ev.err, 0);
		CU_ASSERT((first == &wctx && t.ev.ctx == &sctx) || (first == &sctx && t.ev.ctx == &wctx));
		if (hold)
			CU_ASSERT_PTR_EQUAL(first, &wctx);
	}
	watch_fab = NULL;
	/* nothing outside the written range was touched */
	CU_ASSERT_EQUAL(region[at - 1], 0);
	CU_ASSERT_EQUAL(region[at + wlen], 0);
	/* read back into the second half of the local region */
	memset(local + wlen, 0, wlen);
	CU_ASSERT_EQUAL(hec_fab_read(p.cep, lmr, wlen, wlen, hec_fab_mr_base(rmr) + at,
				     hec_fab_mr_key(rmr), &rctx), 0);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.cep, &t, LIMIT_MS));
	CU_ASSERT_PTR_EQUAL(t.ev.ctx, &rctx);
	CU_ASSERT_EQUAL(t.ev.err, 0);
	CU_ASSERT_EQUAL(memcmp(local + wlen, expect, wlen), 0);
	/* the listener reads from the client's region too */
	fill(local, wlen, 99);
	CU_ASSERT_EQUAL(hec_fab_read(p.lep, rmr, 0, wlen, hec_fab_mr_base(lmr), hec_fab_mr_key(lmr),
				     &rctx), 0);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.lep, &t, LIMIT_MS));
	CU_ASSERT_EQUAL(t.ev.err, 0);
	CU_ASSERT_EQUAL(memcmp(region, local, wlen), 0);
	/* out of the local region: refused before anything is posted */
	CU_ASSERT_EQUAL(hec_fab_write(p.cep, lmr, 2 * wlen - 10, 11, hec_fab_mr_base(rmr),
				      hec_fab_mr_key(rmr), NULL), -EINVAL);
	hec_fab_mr_free(lmr); /* hec_fab_close() frees rmr */
	pair_close(&p);
out:
	free(region);
	free(local);
	free(expect);
}

static void test_rma_ordered(void)
{
	unsetenv("HEC_FAB_ORDER");
	rma_rounds(0);
}

/* The path for providers without FI_ORDER_SAW: sends held behind writes. */
static void test_rma_hold(void)
{
	setenv("HEC_FAB_ORDER", "hold", 1);
	rma_rounds(1);
	unsetenv("HEC_FAB_ORDER");
}

/* A wrong key fails the operation (or the connection), never the process,
 * and the listener keeps serving. */
static void test_bad_rkey(void)
{
	const size_t len = 1u << 20;
	unsigned char *region = calloc(1, len), *local = calloc(1, len);
	struct hec_fab_mr *rmr, *lmr;
	char why[HEC_FAB_WHY];
	int wctx, closed = 0;
	struct hec_fab *cf2;
	struct hec_fab_ep *cep2, *lep2;
	struct pair p;
	struct tev t;

	if (pair_open(&p, &tcp))
		goto out;
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.lf, region, len, &rmr, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.cf, local, len, &lmr, why, sizeof(why)), 0);
	memset(local, 0xab, len);
	CU_ASSERT_EQUAL(hec_fab_write(p.cep, lmr, 0, len, hec_fab_mr_base(rmr),
				      hec_fab_mr_key(rmr) ^ 0x5a5a5a5a5a5a5a5aull, &wctx), 0);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.cep, &t, LIMIT_MS));
	CU_ASSERT_PTR_EQUAL(t.ev.ctx, &wctx);
	CU_ASSERT(t.ev.err < 0);
	CU_ASSERT(t.ev.why[0] != 0);
	fprintf(stderr, "wrong key: err %d: %s\n", t.ev.err, t.ev.why);
	/* the region was not written */
	CU_ASSERT_EQUAL(region[0], 0);
	CU_ASSERT_EQUAL(region[len - 1], 0);
	/* the endpoint either still works or is reported closed */
	if (hec_fab_send(p.cep, "ping", 5, NULL) == 0 && take(HEC_FAB_EV_RECV, p.lep, &t, 2000)) {
		CU_ASSERT_STRING_EQUAL((char *)t.copy, "ping");
		free(t.copy);
	} else {
		closed = take(HEC_FAB_EV_CLOSED, p.cep, &t, LIMIT_MS);
		CU_ASSERT(closed);
	}
	fprintf(stderr, "after the wrong key the connection %s\n", closed ? "closed" : "still works");
	/* a read with a wrong key fails too */
	if (!closed) {
		CU_ASSERT_EQUAL(hec_fab_read(p.cep, lmr, 0, 4096, hec_fab_mr_base(rmr),
					     hec_fab_mr_key(rmr) + 1, &wctx), 0);
		CU_ASSERT_FATAL(take(HEC_FAB_EV_DONE, p.cep, &t, LIMIT_MS));
		CU_ASSERT(t.ev.err < 0);
	}
	/* the listener still accepts and serves */
	untrack(p.cf);
	hec_fab_close(p.cf);
	p.cf = NULL;
	CU_ASSERT_EQUAL_FATAL(pair_connect(p.lf, &cf2, &cep2, &lep2), 0);
	track(cf2);
	CU_ASSERT_EQUAL(hec_fab_send(cep2, "again", 6, NULL), 0);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_RECV, lep2, &t, LIMIT_MS));
	CU_ASSERT_STRING_EQUAL((char *)t.copy, "again");
	free(t.copy);
	hec_fab_close(cf2);
	pair_close(&p);
out:
	free(region);
	free(local);
}

static void test_close(void)
{
	struct pair p;
	struct tev t;
	int ctx;

	if (pair_open(&p, &tcp))
		goto done;
	/* the client goes: the listener sees CLOSED for its endpoint */
	hec_fab_ep_free(p.cep);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_CLOSED, p.lep, &t, LIMIT_MS));
	CU_ASSERT_EQUAL(hec_fab_send(p.lep, "late", 5, NULL), -ENOTCONN);
	hec_fab_ep_free(p.lep);
	pair_close(&p);

	/* the listener goes: the client sees CLOSED, and its pending send (if
	 * any was still pending) completed first */
	if (pair_open(&p, &tcp))
		goto done;
	hec_fab_ep_free(p.lep);
	CU_ASSERT_FATAL(take(HEC_FAB_EV_CLOSED, p.cep, &t, LIMIT_MS));
	CU_ASSERT_EQUAL(hec_fab_send(p.cep, "late", 5, &ctx), -ENOTCONN);
	/* nothing about the freed endpoint is ever reported again */
	hec_fab_ep_free(p.cep);
	pump_once();
	CU_ASSERT_EQUAL(nlog, 0);
	pair_close(&p);
done:;
}

static int log_find(enum hec_fab_ev_type type, struct hec_fab_ep *ep, void *ctx)
{
	int i;

	for (i = 0; i < nlog; i++)
		if (evlog[i].ev.type == type && evlog[i].ev.ep == ep &&
		    (type != HEC_FAB_EV_DONE || evlog[i].ev.ctx == ctx))
			return i;
	return -1;
}

/* Operations in flight when the peer goes complete with an error, before
 * CLOSED; a send held behind a failed write is never delivered. */
static void pending_on_close(int hold)
{
	const size_t len = 32u << 20;
	unsigned char *region = calloc(1, len), *local = calloc(1, len);
	struct hec_fab_mr *rmr, *lmr;
	char why[HEC_FAB_WHY];
	int wctx, sctx, iw, is, ic;
	long long end;
	struct pair p;

	if (hold)
		setenv("HEC_FAB_ORDER", "hold", 1);
	if (pair_open(&p, &tcp))
		goto out;
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.lf, region, len, &rmr, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.cf, local, len, &lmr, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(hec_fab_write(p.cep, lmr, 0, len, hec_fab_mr_base(rmr), hec_fab_mr_key(rmr),
				      &wctx), 0);
	CU_ASSERT_EQUAL(hec_fab_send(p.cep, "after", 6, &sctx), 0);
	/* the listener drops the connection without reading anything */
	hec_fab_ep_free(p.lep);
	p.lep = NULL;
	end = now_ms() + LIMIT_MS;
	while (log_find(HEC_FAB_EV_CLOSED, p.cep, NULL) < 0 && now_ms() < end)
		if (!pump_once())
			hec_fab_wait(p.cf, 1);
	iw = log_find(HEC_FAB_EV_DONE, p.cep, &wctx);
	is = log_find(HEC_FAB_EV_DONE, p.cep, &sctx);
	ic = log_find(HEC_FAB_EV_CLOSED, p.cep, NULL);
	CU_ASSERT_FATAL(ic >= 0 && iw >= 0 && is >= 0);
	CU_ASSERT(iw < ic && is < ic);
	CU_ASSERT(evlog[iw].ev.err < 0);
	if (hold)
		CU_ASSERT(evlog[is].ev.err < 0);
	fprintf(stderr, "write: %d %s; send: %d %s; closed: %d %s\n", evlog[iw].ev.err,
		evlog[iw].ev.why, evlog[is].ev.err, evlog[is].ev.why, evlog[ic].ev.err, evlog[ic].ev.why);
	CU_ASSERT_EQUAL(hec_fab_write(p.cep, lmr, 0, 1, hec_fab_mr_base(rmr), hec_fab_mr_key(rmr), NULL),
			-ENOTCONN);
	pair_close(&p);
out:
	unsetenv("HEC_FAB_ORDER");
	free(region);
	free(local);
}

static void test_pending_on_close(void)
{
	pending_on_close(0);
}

static void test_pending_on_close_hold(void)
{
	pending_on_close(1);
}

/* Hold mode: a send held behind a write the peer refuses is failed, never
 * delivered (it would announce data that is not there). */
static void test_hold_bad_write(void)
{
	const size_t len = 1u << 20;
	unsigned char *region = calloc(1, len), *local = calloc(1, len);
	struct hec_fab_mr *rmr, *lmr;
	char why[HEC_FAB_WHY];
	int wctx, sctx, iw, is;
	long long end;
	struct pair p;
	struct tev t;

	setenv("HEC_FAB_ORDER", "hold", 1);
	if (pair_open(&p, &tcp))
		goto out;
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.lf, region, len, &rmr, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL_FATAL(hec_fab_mr_reg(p.cf, local, len, &lmr, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(hec_fab_write(p.cep, lmr, 0, len, hec_fab_mr_base(rmr),
				      ~hec_fab_mr_key(rmr), &wctx), 0);
	CU_ASSERT_EQUAL(hec_fab_send(p.cep, "after", 6, &sctx), 0);
	end = now_ms() + LIMIT_MS;
	while ((log_find(HEC_FAB_EV_DONE, p.cep, &wctx) < 0 ||
		log_find(HEC_FAB_EV_DONE, p.cep, &sctx) < 0) && now_ms() < end)
		if (!pump_once())
			hec_fab_wait(p.cf, 1);
	iw = log_find(HEC_FAB_EV_DONE, p.cep, &wctx);
	is = log_find(HEC_FAB_EV_DONE, p.cep, &sctx);
	CU_ASSERT_FATAL(iw >= 0 && is >= 0);
	CU_ASSERT(evlog[iw].ev.err < 0);
	CU_ASSERT(evlog[is].ev.err < 0);
	CU_ASSERT_FALSE(take(HEC_FAB_EV_RECV, p.lep, &t, 200));
	pair_close(&p);
out:
	unsetenv("HEC_FAB_ORDER");
	free(region);
	free(local);
}

/* hec_fab_connect_all() waits for every listener together: one that never
 * answers (not polled: its handshake never completes) costs the others
 * nothing, where dialling one after another would give them no time left;
 * a refused one fails alone. */
struct dial_arg {
	struct hec_fab_dial *d;
	size_t n;
	int done;
};

static void *dial_thread(void *a)
{
	struct dial_arg *g = a;

	hec_fab_connect_all(&tcp, g->d, g->n, 1500);
	__atomic_store_n(&g->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void test_connect_all(void)
{
	struct hec_fab *lf[3] = { NULL, NULL, NULL };
	struct hec_fab_ep *lep[3] = { NULL, NULL, NULL };
	struct hec_fab_dial d[4];
	struct dial_arg g = { .d = d, .n = 4 };
	struct hec_fab_ev ev[8];
	char why[HEC_FAB_WHY], addr[3][80];
	long long end = now_ms() + LIMIT_MS;
	pthread_t t;
	int i, j, n;

	for (i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(hec_fab_listen(&tcp, "127.0.0.1:0", &lf[i], why, sizeof(why)), 0);
		snprintf(addr[i], sizeof(addr[i]), "%s", hec_fab_address(lf[i]));
	}
	memset(d, 0, sizeof(d));
	d[0].hostport = addr[0]; /* never polled */
	d[1].hostport = addr[1];
	d[2].hostport = addr[2];
	d[3].hostport = "127.0.0.1:1"; /* nobody listens */
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, dial_thread, &g), 0);
	while (!__atomic_load_n(&g.done, __ATOMIC_SEQ_CST) && now_ms() < end)
		for (i = 1; i < 3; i++) {
			hec_fab_wait(lf[i], 5);
			n = hec_fab_poll(lf[i], ev, 8);
			for (j = 0; j < n; j++)
				if (ev[j].type == HEC_FAB_EV_ACCEPTED)
					lep[i] = ev[j].ep;
		}
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(d[0].err, -ETIMEDOUT);
	CU_ASSERT_PTR_NULL(d[0].fab);
	CU_ASSERT_PTR_NOT_NULL(strstr(d[0].why, addr[0]));
	for (i = 1; i < 3; i++) {
		CU_ASSERT_EQUAL(d[i].err, 0);
		if (d[i].err) {
			fprintf(stderr, "dial %d: %s\n", i, d[i].why);
			continue;
		}
		CU_ASSERT_STRING_EQUAL(hec_fab_provider(d[i].fab), "tcp");
		CU_ASSERT_PTR_NOT_NULL(lep[i]);
		/* usable: a message gets through */
		CU_ASSERT_EQUAL(hec_fab_send(d[i].ep, "hi", 2, NULL), 0);
		for (n = 0, end = now_ms() + LIMIT_MS; !n && now_ms() < end;) {
			hec_fab_wait(d[i].fab, 5);
			hec_fab_poll(d[i].fab, ev, 8); /* the send's progress */
			hec_fab_wait(lf[i], 5);
			for (j = hec_fab_poll(lf[i], ev, 8); j > 0; j--)
				n += ev[j - 1].type == HEC_FAB_EV_RECV && ev[j - 1].len == 2;
		}
		CU_ASSERT_EQUAL(n, 1);
		hec_fab_close(d[i].fab);
	}
	CU_ASSERT(d[3].err < 0);
	CU_ASSERT_NOT_EQUAL(d[3].err, -ETIMEDOUT);
	CU_ASSERT_PTR_NULL(d[3].fab);
	CU_ASSERT_PTR_NOT_NULL(strstr(d[3].why, "127.0.0.1:1"));
	fprintf(stderr, "unanswered: %s; refused: %s\n", d[0].why, d[3].why);
	for (i = 0; i < 3; i++)
		hec_fab_close(lf[i]);
}

static void test_providers(void)
{
	char why[HEC_FAB_WHY] = "";
	struct hec_fab_opts verbs = { .provider = "verbs" }, bogus = { .provider = "bogus" };
	struct hec_fab *f = NULL;
	struct hec_fab_ep *ep = NULL;
	int r;

	r = hec_fab_listen(&verbs, "127.0.0.1:0", &f, why, sizeof(why));
	CU_ASSERT_EQUAL(r, -ENODEV);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "verbs"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "127.0.0.1:0"));
	fprintf(stderr, "verbs: %s\n", why);
	why[0] = 0;
	r = hec_fab_connect(&verbs, "127.0.0.1:1", 1000, &f, &ep, why, sizeof(why));
	CU_ASSERT_EQUAL(r, -ENODEV);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "verbs"));
	why[0] = 0;
	r = hec_fab_listen(&bogus, "127.0.0.1:0", &f, why, sizeof(why));
	CU_ASSERT_EQUAL(r, -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "bogus"));
	r = hec_fab_listen(NULL, "127.0.0.1", &f, why, sizeof(why));
	CU_ASSERT_EQUAL(r, -EINVAL);
	r = hec_fab_listen(NULL, "127.0.0.1:99999", &f, why, sizeof(why));
	CU_ASSERT_EQUAL(r, -EINVAL);
	/* auto falls back to tcp here (no RDMA device) */
	r = hec_fab_listen(NULL, "127.0.0.1:0", &f, why, sizeof(why));
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_STRING_EQUAL(hec_fab_provider(f), "tcp");
	hec_fab_close(f);
	/* nobody listening: refused, not hung */
	r = hec_fab_connect(&tcp, "127.0.0.1:1", 3000, &f, &ep, why, sizeof(why));
	CU_ASSERT(r < 0);
	fprintf(stderr, "refused: %d %s\n", r, why);
}

static void test_address_and_wait(void)
{
	char why[HEC_FAB_WHY];
	struct hec_fab *f;
	struct hec_fab_ev ev[4];
	const char *a;
	int fds[2], n, i, r = 0;

	CU_ASSERT_EQUAL_FATAL(hec_fab_listen(&tcp, "0.0.0.0:0", &f, why, sizeof(why)), 0);
	a = hec_fab_address(f);
	fprintf(stderr, "wildcard listener dials as %s\n", a);
	CU_ASSERT_EQUAL(strncmp(a, "0.0.0.0", 7) != 0, 1);
	CU_ASSERT_PTR_NOT_NULL(strchr(a, ':'));
	CU_ASSERT(atoi(strrchr(a, ':') + 1) > 0);
	n = hec_fab_wait_fds(f, fds);
	CU_ASSERT(n == 1 || n == 2);
	for (i = 0; i < n; i++)
		CU_ASSERT(fds[i] >= 0);
	/* idle: wait times out (after at most a few spurious wake-ups) */
	for (i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL(hec_fab_poll(f, ev, 4), 0);
		r = hec_fab_wait(f, 20);
		if (r == -ETIMEDOUT)
			break;
	}
	CU_ASSERT_EQUAL(r, -ETIMEDOUT);
	CU_ASSERT_EQUAL(hec_fab_trywait(f), 0);
	hec_fab_close(f);
	hec_fab_close(NULL);
}

static const struct hec_cunit_test tests[] = {
	{ "messages both ways", test_messages },
	{ "rma write then send (FI_ORDER_SAW)", test_rma_ordered },
	{ "rma write then send (held sends)", test_rma_hold },
	{ "wrong rkey", test_bad_rkey },
	{ "peer closes", test_close },
	{ "pending operations fail before CLOSED", test_pending_on_close },
	{ "pending operations fail before CLOSED (held sends)", test_pending_on_close_hold },
	{ "held send behind a refused write", test_hold_bad_write },
	{ "providers and addresses", test_providers },
	{ "connect to several listeners at once", test_connect_all },
	{ "wildcard address, wait fds", test_address_and_wait },
	{ NULL, NULL },
};

int main(void)
{
	return hec_cunit_run("fabric", tests);
}
