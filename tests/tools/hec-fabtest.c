/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-fabtest: moves bytes through the fabric layer (rdma/fabric.h) the way
 * the storage client does, verifies every byte, and measures the rate.
 *
 *   hec-fabtest server HOST:PORT [--provider P] [--timeout S]
 *   hec-fabtest client HOST:PORT [--provider P] [--bytes N] [--block B] [--timeout S]
 *
 * The server prints "listening ADDRESS provider P" and serves one client.
 * The client RMA-writes N bytes in blocks of B into the server's region
 * (HEC_FABTEST_SLOTS slots of B bytes), each block's content derived from its
 * offset in the stream, and sends a message after each write; on that message
 * the server checks the slot (the fabric layer delivers the message after the
 * write's data) and answers.  The client prints provider, bytes, seconds and
 * Gbit/s.  Exit status: 0 all verified, 1 a mismatch or an error, 2 usage.
 *
 * Messages (text): "H B" hello with the block size; "R BASE KEY SLOTS"
 * region; "W SEQ OFF LEN SLOT" a block was written; "A SEQ OK|BAD" answer;
 * "E" end; "B" bye.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rdma/fabric.h"

#define SLOTS 4

static const char *prog = "hec-fabtest";

struct opts {
	const char *provider;
	uint64_t bytes, block;
	int timeout_s;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The 8-byte word at stream offset o (o a multiple of 8). */
static inline uint64_t pattern_word(uint64_t o)
{
	uint64_t x = (o >> 3) * 0x9E3779B97F4A7C15ull;

	return x ^ (x >> 29) ^ 0x5bd1e995u;
}

static inline uint8_t pattern_byte(uint64_t o)
{
	return (uint8_t)(pattern_word(o & ~7ull) >> (8 * (o & 7)));
}

static void pattern_fill(unsigned char *buf, uint64_t off, size_t len)
{
	size_t i = 0;

	for (; i < len && ((off + i) & 7); i++)
		buf[i] = pattern_byte(off + i);
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(off + i);

		memcpy(buf + i, &w, 8);
	}
	for (; i < len; i++)
		buf[i] = pattern_byte(off + i);
}

/* \return the index of the first wrong byte, or len. */
static size_t pattern_check(const unsigned char *buf, uint64_t off, size_t len)
{
	size_t i = 0;

	for (; i < len && ((off + i) & 7); i++)
		if (buf[i] != pattern_byte(off + i))
			return i;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(off + i), g;

		memcpy(&g, buf + i, 8);
		if (g != w)
			break;
	}
	for (; i < len; i++)
		if (buf[i] != pattern_byte(off + i))
			return i;
	return len;
}

static int send_text(struct hec_fab_ep *ep, struct hec_fab *f, double end, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Send one text message, polling while the send queue is full.  Events
 * polled meanwhile are lost: callers send only when they expect none that
 * matters (the layer keeps them queued: poll is not called here). */
static int send_text(struct hec_fab_ep *ep, struct hec_fab *f, double end, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	while ((r = hec_fab_send(ep, buf, (size_t)n + 1, NULL)) == -EAGAIN) {
		if (now_s() > end)
			return -ETIMEDOUT;
		hec_fab_wait(f, 10);
	}
	return r;
}

/* SLOTS blocks of registered memory.  \return 0, or -1 (said on stderr). */
static int slots_alloc(struct hec_fab *f, uint64_t block, unsigned char **buf,
		       struct hec_fab_mr **mr)
{
	char why[HEC_FAB_WHY];

	*buf = aligned_alloc(4096, (block * SLOTS + 4095) & ~4095ull);
	if (!*buf) {
		fprintf(stderr, "%s: %s\n", prog, strerror(ENOMEM));
		return -1;
	}
	if (hec_fab_mr_reg(f, *buf, block * SLOTS, mr, why, sizeof(why))) {
		fprintf(stderr, "%s: %s\n", prog, why);
		return -1;
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: %s server HOST:PORT [--provider P] [--timeout S]\n"
		"       %s client HOST:PORT [--provider P] [--bytes N] [--block B] [--timeout S]\n",
		prog, prog);
	return 2;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end == 'i')
		end++;
	if (*end == 'B')
		end++;
	if (*end || !v)
		return -1;
	*out = v;
	return 0;
}

static int server(const char *hp, const struct opts *o)
{
	struct hec_fab_opts fo = { .provider = o->provider };
	char why[HEC_FAB_WHY];
	struct hec_fab *f = NULL;
	struct hec_fab_ep *cl = NULL;
	struct hec_fab_mr *mr = NULL;
	unsigned char *region = NULL;
	uint64_t block = 0, got = 0, bad = 0;
	double end = now_s() + o->timeout_s;
	int r, rc = 1, done = 0;

	r = hec_fab_listen(&fo, hp, &f, why, sizeof(why));
	if (r) {
		fprintf(stderr, "%s: %s\n", prog, why);
		return 1;
	}
	printf("listening %s provider %s\n", hec_fab_address(f), hec_fab_provider(f));
	fflush(stdout);
	while (!done) {
		struct hec_fab_ev ev[16];
		int i, n;

		if (now_s() > end) {
			fprintf(stderr, "%s: timed out after %d s\n", prog, o->timeout_s);
			goto out;
		}
		hec_fab_wait(f, 100);
		n = hec_fab_poll(f, ev, 16);
		for (i = 0; i < n; i++) {
			char *m = (char *)ev[i].data;

			switch (ev[i].type) {
			case HEC_FAB_EV_ACCEPTED:
				if (cl) {
					hec_fab_ep_free(ev[i].ep);
					break;
				}
				cl = ev[i].ep;
				end = now_s() + o->timeout_s;
				break;
			case HEC_FAB_EV_CLOSED:
				if (ev[i].ep == cl) {
					fprintf(stderr, "%s: client went away: %s\n", prog, ev[i].why);
					goto out;
				}
				hec_fab_ep_free(ev[i].ep);
				break;
			case HEC_FAB_EV_DONE:
				if (ev[i].err) {
					fprintf(stderr, "%s: %s\n", prog, ev[i].why);
					goto out;
				}
				break;
			case HEC_FAB_EV_RECV:
				if (ev[i].ep != cl || !ev[i].len || m[ev[i].len - 1]) {
					fprintf(stderr, "%s: bad message\n", prog);
					goto out;
				}
				if (m[0] == 'H') {
					if (region || sscanf(m, "H %" SCNu64, &block) != 1 || !block ||
					    block > (1ull << 30)) {
						fprintf(stderr, "%s: bad hello '%s'\n", prog, m);
						goto out;
					}
					if (slots_alloc(f, block, &region, &mr))
						goto out;
					r = send_text(cl, f, end, "R %" PRIx64 " %" PRIx64 " %u",
						      hec_fab_mr_base(mr), hec_fab_mr_key(mr), SLOTS);
				} else if (m[0] == 'W') {
					uint64_t seq, off, len;
					unsigned slot;
					size_t at;

					if (!region ||
					    sscanf(m, "W %" SCNu64 " %" SCNu64 " %" SCNu64 " %u", &seq, &off,
						   &len, &slot) != 4 || slot >= SLOTS || len > block) {
						fprintf(stderr, "%s: bad message '%s'\n", prog, m);
						goto out;
					}
					at = pattern_check(region + slot * block, off, len);
					if (at != len) {
						fprintf(stderr,
							"%s: block %" PRIu64 " (offset %" PRIu64 "): byte %zu differs\n",
							prog, seq, off, at);
						bad++;
					}
					got += len;
					r = send_text(cl, f, end, "A %" PRIu64 " %s", seq,
						      at == len ? "OK" : "BAD");
				} else if (m[0] == 'E') {
					r = send_text(cl, f, end, "B");
					done = 1;
				} else {
					fprintf(stderr, "%s: bad message '%s'\n", prog, m);
					goto out;
				}
				if (r) {
					fprintf(stderr, "%s: send: %s\n", prog, strerror(-r));
					goto out;
				}
				break;
			}
		}
	}
	/* let the bye go out before closing */
	{
		double until = now_s() + 2;

		while (now_s() < until) {
			struct hec_fab_ev ev[8];
			int i, n;

			hec_fab_wait(f, 50);
			n = hec_fab_poll(f, ev, 8);
			for (i = 0; i < n; i++)
				if (ev[i].type == HEC_FAB_EV_CLOSED && ev[i].ep == cl)
					until = 0;
		}
	}
	printf("server: provider %s bytes %" PRIu64 " bad blocks %" PRIu64 "\n", hec_fab_provider(f),
	       got, bad);
	rc = bad ? 1 : 0;
out:
	hec_fab_close(f); /* frees cl and mr */
	free(region);
	return rc;
}

struct slot {
	int busy, wrote, acked;
	uint64_t seq;
};

static int client(const char *hp, const struct opts *o)
{
	struct hec_fab_opts fo = { .provider = o->provider };
	char why[HEC_FAB_WHY];
	struct hec_fab *f = NULL;
	struct hec_fab_ep *ep = NULL;
	struct hec_fab_mr *mr = NULL;
	unsigned char *local = NULL;
	struct slot slots[SLOTS];
	uint64_t base = 0, key = 0, off = 0, acked = 0, seq = 0, block = o->block;
	unsigned nslots = 0;
	double t0, t1, end = now_s() + o->timeout_s;
	int r, rc = 1, bye = 0, sent_end = 0, bad = 0;

	memset(slots, 0, sizeof(slots));
	r = hec_fab_connect(&fo, hp, o->timeout_s * 1000, &f, &ep, why, sizeof(why));
	if (r) {
		fprintf(stderr, "%s: %s\n", prog, why);
		return 1;
	}
	if (slots_alloc(f, block, &local, &mr))
		goto out;
	r = send_text(ep, f, end, "H %" PRIu64, block);
	if (r) {
		fprintf(stderr, "%s: send: %s\n", prog, strerror(-r));
		goto out;
	}
	t0 = now_s();
	while (!bye) {
		struct hec_fab_ev ev[16];
		int i, n;

		if (now_s() > end) {
			fprintf(stderr, "%s: timed out after %d s\n", prog, o->timeout_s);
			goto out;
		}
		/* start writes into free slots */
		for (i = 0; nslots && off < o->bytes && i < (int)nslots; i++) {
			struct slot *s = &slots[i];
			uint64_t len = o->bytes - off < block ? o->bytes - off : block;

			if (s->busy)
				continue;
			pattern_fill(local + (size_t)i * block, off, len);
			r = hec_fab_write(ep, mr, (size_t)i * block, len, base + (uint64_t)i * block, key,
					  s);
			if (r == -EAGAIN)
				break;
			if (r) {
				fprintf(stderr, "%s: write: %s\n", prog, strerror(-r));
				goto out;
			}
			r = send_text(ep, f, end, "W %" PRIu64 " %" PRIu64 " %" PRIu64 " %d", seq, off, len,
				      i);
			if (r) {
				fprintf(stderr, "%s: send: %s\n", prog, strerror(-r));
				goto out;
			}
			s->busy = 1;
			s->wrote = s->acked = 0;
			s->seq = seq++;
			off += len;
		}
		if (nslots && off >= o->bytes && acked == seq && !sent_end) {
			r = send_text(ep, f, end, "E");
			if (r) {
				fprintf(stderr, "%s: send: %s\n", prog, strerror(-r));
				goto out;
			}
			sent_end = 1;
		}
		hec_fab_wait(f, 100);
		n = hec_fab_poll(f, ev, 16);
		for (i = 0; i < n; i++) {
			const char *m = ev[i].data;

			switch (ev[i].type) {
			case HEC_FAB_EV_ACCEPTED:
				break;
			case HEC_FAB_EV_CLOSED:
				fprintf(stderr, "%s: server went away: %s\n", prog, ev[i].why);
				ep = NULL;
				goto out;
			case HEC_FAB_EV_DONE:
				if (ev[i].err) {
					fprintf(stderr, "%s: %s\n", prog, ev[i].why);
					goto out;
				}
				if (ev[i].ctx) {
					struct slot *s = ev[i].ctx;

					s->wrote = 1;
					if (s->acked)
						s->busy = 0;
				}
				break;
			case HEC_FAB_EV_RECV:
				if (!ev[i].len || m[ev[i].len - 1]) {
					fprintf(stderr, "%s: bad message\n", prog);
					goto out;
				}
				if (m[0] == 'R') {
					if (sscanf(m, "R %" SCNx64 " %" SCNx64 " %u", &base, &key, &nslots) != 3 ||
					    !nslots || nslots > SLOTS) {
						fprintf(stderr, "%s: bad region '%s'\n", prog, m);
						goto out;
					}
				} else if (m[0] == 'A') {
					uint64_t aseq;
					char verdict[8];
					unsigned k;

					if (sscanf(m, "A %" SCNu64 " %7s", &aseq, verdict) != 2) {
						fprintf(stderr, "%s: bad answer '%s'\n", prog, m);
						goto out;
					}
					if (strcmp(verdict, "OK")) {
						fprintf(stderr, "%s: block %" PRIu64 ": server saw wrong data\n",
							prog, aseq);
						bad = 1;
					}
					for (k = 0; k < nslots; k++)
						if (slots[k].busy && slots[k].seq == aseq) {
							slots[k].acked = 1;
							if (slots[k].wrote)
								slots[k].busy = 0;
						}
					acked++;
				} else if (m[0] == 'B') {
					bye = 1;
				}
				break;
			}
		}
	}
	t1 = now_s();
	printf("provider %s bytes %" PRIu64 " block %" PRIu64 " seconds %.3f gbit/s %.2f%s\n",
	       hec_fab_provider(f), o->bytes, block, t1 - t0,
	       (double)o->bytes * 8 / (t1 - t0) / 1e9, bad ? " MISMATCH" : "");
	rc = bad ? 1 : 0;
out:
	hec_fab_close(f);
	free(local);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = { .provider = "auto", .bytes = 256ull << 20, .block = 4u << 20,
			  .timeout_s = 300 };
	const char *mode, *hp;
	int i;

	if (argc < 3)
		return usage();
	mode = argv[1];
	hp = argv[2];
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--provider") && i + 1 < argc) {
			o.provider = argv[++i];
		} else if (!strcmp(argv[i], "--bytes") && i + 1 < argc) {
			if (parse_size(argv[++i], &o.bytes))
				return usage();
		} else if (!strcmp(argv[i], "--block") && i + 1 < argc) {
			if (parse_size(argv[++i], &o.block) || o.block > (1ull << 30))
				return usage();
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			o.timeout_s = atoi(argv[++i]);
			if (o.timeout_s <= 0)
				return usage();
		} else {
			return usage();
		}
	}
	if (!strcmp(mode, "server"))
		return server(hp, &o);
	if (!strcmp(mode, "client"))
		return client(hp, &o);
	return usage();
}
