/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: the guest channel codec (common/guest.c): frames and kv payloads. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "hec/guest.h"
#include "tests/unit/cunit_main.h"

/* header + payload in one buffer */
static size_t frame(uint8_t *out, unsigned type, const void *p, uint32_t len)
{
	hec_guest_header(out, type, len);
	memcpy(out + HEC_GUEST_HDR, p, len);
	return HEC_GUEST_HDR + len;
}

static void test_header_layout(void)
{
	uint8_t h[HEC_GUEST_HDR];

	hec_guest_header(h, HEC_G_RUN, 0x01020304);
	CU_ASSERT_EQUAL(h[0], 'H');
	CU_ASSERT_EQUAL(h[1], 'G');
	CU_ASSERT_EQUAL(h[2], HEC_GUEST_VERSION);
	CU_ASSERT_EQUAL(h[3], HEC_G_RUN);
	/* big endian */
	CU_ASSERT_EQUAL(h[4], 1);
	CU_ASSERT_EQUAL(h[5], 2);
	CU_ASSERT_EQUAL(h[6], 3);
	CU_ASSERT_EQUAL(h[7], 4);
}

static void test_round_trip(void)
{
	static const unsigned types[] = { HEC_G_HELLO, HEC_G_STARTED, HEC_G_OUT, HEC_G_EXIT,
					  HEC_G_LOG, HEC_G_PONG, HEC_G_RUN, HEC_G_SIGNAL,
					  HEC_G_PING, HEC_G_IN };
	uint8_t buf[64];

	for (size_t i = 0; i < HEC_ARRAY_SIZE(types); i++) {
		struct hec_guest_frame f = { 0 };
		size_t n = frame(buf, types[i], "abc\0", 4);

		CU_ASSERT_EQUAL(hec_guest_decode(buf, n, &f), (long)n);
		CU_ASSERT_EQUAL(f.type, types[i]);
		CU_ASSERT_EQUAL(f.len, 4);
		CU_ASSERT_PTR_EQUAL(f.payload, buf + HEC_GUEST_HDR);
		CU_ASSERT_EQUAL(memcmp(f.payload, "abc", 4), 0);
	}
}

static void test_empty_payload(void)
{
	struct hec_guest_frame f = { 0 };
	uint8_t buf[HEC_GUEST_HDR];

	hec_guest_header(buf, HEC_G_PING, 0);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, sizeof(buf), &f), HEC_GUEST_HDR);
	CU_ASSERT_EQUAL(f.len, 0);
	CU_ASSERT_EQUAL(f.type, HEC_G_PING);
}

/* Every strict prefix of a valid frame asks for more; the whole one decodes. */
static void test_truncated(void)
{
	uint8_t buf[64];
	size_t n = frame(buf, HEC_G_EXIT, "id=1\0exit=0\0", 12);

	for (size_t len = 0; len < n; len++) {
		struct hec_guest_frame f = { .type = 99 };

		CU_ASSERT_EQUAL(hec_guest_decode(buf, len, &f), 0);
		CU_ASSERT_EQUAL(f.type, 99); /* untouched */
	}
}

/* Two frames back to back: the first decode consumes exactly the first. */
static void test_back_to_back(void)
{
	struct hec_guest_frame f;
	uint8_t buf[64];
	size_t n1 = frame(buf, HEC_G_PING, "seq=1\0", 6);
	size_t n2 = frame(buf + n1, HEC_G_IN, "\0x", 2);
	long used = hec_guest_decode(buf, n1 + n2, &f);

	CU_ASSERT_EQUAL(used, (long)n1);
	CU_ASSERT_EQUAL(f.type, HEC_G_PING);
	CU_ASSERT_EQUAL(hec_guest_decode(buf + used, n1 + n2 - (size_t)used, &f), (long)n2);
	CU_ASSERT_EQUAL(f.type, HEC_G_IN);
	CU_ASSERT_EQUAL(f.len, 2);
}

static void test_bad_header(void)
{
	struct hec_guest_frame f;
	uint8_t buf[HEC_GUEST_HDR];

	hec_guest_header(buf, HEC_G_PING, 0);
	buf[0] = 'X';
	CU_ASSERT_EQUAL(hec_guest_decode(buf, sizeof(buf), &f), -EPROTO);
	/* refused at the first byte, without waiting for a whole header */
	CU_ASSERT_EQUAL(hec_guest_decode(buf, 1, &f), -EPROTO);

	hec_guest_header(buf, HEC_G_PING, 0);
	buf[1] = 'H';
	CU_ASSERT_EQUAL(hec_guest_decode(buf, 2, &f), -EPROTO);

	hec_guest_header(buf, HEC_G_PING, 0);
	buf[2] = HEC_GUEST_VERSION + 1;
	CU_ASSERT_EQUAL(hec_guest_decode(buf, sizeof(buf), &f), -EPROTO);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, 3, &f), -EPROTO);

	for (unsigned t = 0; t < 256; t++) {
		int known = (t >= HEC_G_HELLO && t <= HEC_G_PONG) || (t >= HEC_G_RUN && t <= HEC_G_IN);
		long rc;

		hec_guest_header(buf, t, 0);
		rc = hec_guest_decode(buf, sizeof(buf), &f);
		CU_ASSERT_EQUAL(rc, known ? HEC_GUEST_HDR : -EBADMSG);
		if (!known)
			CU_ASSERT_EQUAL(hec_guest_decode(buf, 4, &f), -EBADMSG);
	}
}

static void test_oversize(void)
{
	struct hec_guest_frame f;
	uint8_t buf[HEC_GUEST_HDR];

	/* the limit itself is fine (needs more bytes), one more is refused at once */
	hec_guest_header(buf, HEC_G_OUT, HEC_GUEST_MAX_PAYLOAD);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, sizeof(buf), &f), 0);
	hec_guest_header(buf, HEC_G_OUT, HEC_GUEST_MAX_PAYLOAD + 1);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, sizeof(buf), &f), -EMSGSIZE);
	hec_guest_header(buf, HEC_G_OUT, 0xffffffffu);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, sizeof(buf), &f), -EMSGSIZE);
}

static void test_max_payload(void)
{
	size_t n = HEC_GUEST_HDR + HEC_GUEST_MAX_PAYLOAD;
	uint8_t *buf = calloc(1, n);
	struct hec_guest_frame f;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	hec_guest_header(buf, HEC_G_OUT, HEC_GUEST_MAX_PAYLOAD);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, n, &f), (long)n);
	CU_ASSERT_EQUAL(f.len, HEC_GUEST_MAX_PAYLOAD);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, n - 1, &f), 0);
	free(buf);
}

#define KV(s) (const uint8_t *)(s), (uint32_t)(sizeof(s) - 1)

static void test_kv_check(void)
{
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("")), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("a=1\0")), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("a=\0b==\0")), 0); /* empty value, '=' in value */
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("env=K=V\0")), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("a=1")), -EBADMSG);	/* no NUL */
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("a=1\0b=2")), -EBADMSG);
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("=1\0")), -EBADMSG);	/* empty key */
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("abc\0")), -EBADMSG);	/* no '=' */
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("\0")), -EBADMSG);	/* empty entry */
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("a=1\0\0")), -EBADMSG);
	/* the '=' of the next entry does not count for this one */
	CU_ASSERT_EQUAL(hec_guest_kv_check(KV("ab\0c=1\0")), -EBADMSG);
}

static void test_kv_get_next(void)
{
	static const char p[] = "id=7\0arg=/bin/sh\0arg=-c\0env=A=B\0ide=x\0empty=\0";
	uint32_t len = sizeof(p) - 1, pos = 0;
	const uint8_t *u = (const uint8_t *)p;
	const char *s;
	int args = 0;

	CU_ASSERT_EQUAL(hec_guest_kv_check(u, len), 0);
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(u, len, "id"), "7");
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(u, len, "arg"), "/bin/sh"); /* the first */
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(u, len, "env"), "A=B");
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(u, len, "ide"), "x");
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(u, len, "empty"), "");
	CU_ASSERT_PTR_NULL(hec_guest_kv_get(u, len, "i"));	/* a prefix is not a key */
	CU_ASSERT_PTR_NULL(hec_guest_kv_get(u, len, "A"));	/* nor is a value's content */
	CU_ASSERT_PTR_NULL(hec_guest_kv_get(u, len, ""));
	CU_ASSERT_PTR_NULL(hec_guest_kv_get(u, 0, "id"));
	while ((s = hec_guest_kv_next(u, len, &pos)))
		if (!strncmp(s, "arg=", 4))
			args++;
	CU_ASSERT_EQUAL(args, 2);
	CU_ASSERT_EQUAL(pos, len);
	CU_ASSERT_PTR_NULL(hec_guest_kv_next(u, len, &pos)); /* stays at the end */
}

/* On a payload that did not pass _check, the readers stay within len. */
static void test_kv_unchecked(void)
{
	/* "b=2" lacks its NUL inside len: it is not returned */
	static const char p[] = "a=1\0b=2";
	const uint8_t *u = (const uint8_t *)p;
	uint32_t pos = 0;

	CU_ASSERT_STRING_EQUAL(hec_guest_kv_next(u, 7, &pos), "a=1");
	CU_ASSERT_PTR_NULL(hec_guest_kv_next(u, 7, &pos));
	CU_ASSERT_PTR_NULL(hec_guest_kv_get(u, 7, "b"));
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(u, 4, "a"), "1");
	CU_ASSERT_PTR_NULL(hec_guest_kv_get(u, 3, "a"));
}

static void test_kv_int(void)
{
	static const char p[] = "a=42\0neg=-5\0big=9223372036854775807\0over=9223372036854775808\0"
				"min=-9223372036854775808\0under=-9223372036854775809\0"
				"plus=+1\0sp= 1\0hex=0x10\0empty=\0minus=-\0trail=1x\0zero=007\0";
	const uint8_t *u = (const uint8_t *)p;
	uint32_t len = sizeof(p) - 1;
	long long v = -1;

	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "a", 0, 100, &v), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "a", 0, 41, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "a", 43, 100, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "neg", -10, 10, &v), 0);
	CU_ASSERT_EQUAL(v, -5);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "neg", 0, 10, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "big", 0, LLONG_MAX, &v), 0);
	CU_ASSERT_EQUAL(v, LLONG_MAX);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "over", 0, LLONG_MAX, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "min", LLONG_MIN, 0, &v), 0);
	CU_ASSERT_EQUAL(v, LLONG_MIN);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "under", LLONG_MIN, 0, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "zero", 0, 10, &v), 0);
	CU_ASSERT_EQUAL(v, 7);
	v = 99;
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "plus", 0, 10, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "sp", 0, 10, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "hex", 0, 100, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "empty", 0, 10, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "minus", -10, 10, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "trail", 0, 10, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_int(u, len, "absent", 0, 10, &v), -ENOENT);
	CU_ASSERT_EQUAL(v, 99); /* untouched on failure */
}

static void test_kv_build(void)
{
	struct hec_guest_kvbuf b = { 0 };
	char longv[300];
	long long v;

	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = 0;
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "id", "12"), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_addf(&b, "pid", "%d", -3), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "env", "K=V"), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "empty", ""), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_addf(&b, "long", "%s", longv), 0); /* past addf's small buffer */
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "", "x"), -EINVAL);
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "a=b", "x"), -EINVAL);
	CU_ASSERT_EQUAL(b.len, sizeof("id=12\0pid=-3\0env=K=V\0empty=\0long=") - 1 + sizeof(longv));
	CU_ASSERT_EQUAL(hec_guest_kv_check(b.p, b.len), 0);
	CU_ASSERT_EQUAL(hec_guest_kv_int(b.p, b.len, "pid", -10, 10, &v), 0);
	CU_ASSERT_EQUAL(v, -3);
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(b.p, b.len, "env"), "K=V");
	CU_ASSERT_STRING_EQUAL(hec_guest_kv_get(b.p, b.len, "long"), longv);
	hec_guest_kv_free(&b);
	CU_ASSERT_PTR_NULL(b.p);
	CU_ASSERT_EQUAL(b.len, 0);
	/* reusable after free */
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "a", "1"), 0);
	CU_ASSERT_EQUAL(b.len, 4);
	hec_guest_kv_free(&b);
}

/* The builder refuses to grow a payload past what a frame may carry. */
static void test_kv_limit(void)
{
	struct hec_guest_kvbuf b = { 0 };
	size_t vl = HEC_GUEST_MAX_PAYLOAD / 4;
	char *v = malloc(vl + 1);
	int rc = 0, added = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	memset(v, 'x', vl);
	v[vl] = 0;
	while (!rc && added < 10) {
		rc = hec_guest_kv_add(&b, "k", v);
		if (!rc)
			added++;
	}
	CU_ASSERT_EQUAL(rc, -EMSGSIZE);
	CU_ASSERT_EQUAL(added, 3);
	CU_ASSERT(b.len <= HEC_GUEST_MAX_PAYLOAD);
	CU_ASSERT_EQUAL(hec_guest_kv_check(b.p, b.len), 0);
	/* what fits still fits */
	CU_ASSERT_EQUAL(hec_guest_kv_add(&b, "k", "small"), 0);
	free(v);
	hec_guest_kv_free(&b);
}

/* A built RUN payload goes through a frame and reads back entry by entry. */
static void test_run_frame(void)
{
	struct hec_guest_kvbuf b = { 0 };
	struct hec_guest_frame f;
	uint8_t *buf;
	uint32_t pos = 0;
	const char *s, *want[] = { "id=1", "uid=0", "arg=/bin/echo", "arg=a b", "env=X=1" };
	size_t i = 0, n;

	hec_guest_kv_add(&b, "id", "1");
	hec_guest_kv_add(&b, "uid", "0");
	hec_guest_kv_add(&b, "arg", "/bin/echo");
	hec_guest_kv_add(&b, "arg", "a b");
	hec_guest_kv_add(&b, "env", "X=1");
	buf = malloc(HEC_GUEST_HDR + b.len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	n = frame(buf, HEC_G_RUN, b.p, b.len);
	CU_ASSERT_EQUAL(hec_guest_decode(buf, n, &f), (long)n);
	CU_ASSERT_EQUAL(hec_guest_kv_check(f.payload, f.len), 0);
	while ((s = hec_guest_kv_next(f.payload, f.len, &pos)) && i < HEC_ARRAY_SIZE(want))
		CU_ASSERT_STRING_EQUAL(s, want[i++]);
	CU_ASSERT_EQUAL(i, HEC_ARRAY_SIZE(want));
	free(buf);
	hec_guest_kv_free(&b);
}

/* A stream that begins inside a frame finds the next header. */
static void test_sync(void)
{
	uint8_t buf[64];
	size_t n;
	int found;

	/* the tail of an OUT frame ("HG" inside its data), then a PONG */
	memcpy(buf, "xxHGzz", 6);
	n = 6 + frame(buf + 6, HEC_G_PONG, (const uint8_t *)"seq=1", 6);
	CU_ASSERT_EQUAL(hec_guest_sync(buf, n, &found), 6);
	CU_ASSERT_EQUAL(found, 1);
	/* a stream that starts in step stays so */
	CU_ASSERT_EQUAL(hec_guest_sync(buf + 6, n - 6, &found), 0);
	CU_ASSERT_EQUAL(found, 1);
	/* host-bound types only: a RUN header (host -> guest) is no frame here */
	n = frame(buf, HEC_G_RUN, (const uint8_t *)"id=1", 5);
	CU_ASSERT_EQUAL(hec_guest_sync(buf, n, &found), n - 3);
	CU_ASSERT_EQUAL(found, 0);
	/* a header cut by the end: the last 3 bytes are kept */
	memcpy(buf, "abcdefHG", 8);
	buf[8] = HEC_GUEST_VERSION;
	CU_ASSERT_EQUAL(hec_guest_sync(buf, 9, &found), 6);
	CU_ASSERT_EQUAL(found, 0);
	/* too short to tell */
	CU_ASSERT_EQUAL(hec_guest_sync(buf, 3, &found), 0);
	CU_ASSERT_EQUAL(found, 0);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "header layout", test_header_layout },
		{ "round trip of every type", test_round_trip },
		{ "empty payload", test_empty_payload },
		{ "truncated frames", test_truncated },
		{ "frames back to back", test_back_to_back },
		{ "bad magic, version, type", test_bad_header },
		{ "oversize payload", test_oversize },
		{ "payload at the limit", test_max_payload },
		{ "kv check", test_kv_check },
		{ "kv get and next", test_kv_get_next },
		{ "kv readers on unchecked payloads", test_kv_unchecked },
		{ "kv integers", test_kv_int },
		{ "kv builder", test_kv_build },
		{ "kv builder limit", test_kv_limit },
		{ "RUN frame", test_run_frame },
		{ "resynchronising a cut stream", test_sync },
		{ NULL, NULL },
	};

	return hec_cunit_run("guest", tests);
}
