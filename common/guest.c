/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest channel codec (include/hec/guest.h).  libc only: hec-guest is a
 * static binary and compiles this file in directly.  Everything here reads
 * outside input, so every access is bounded by the length it was given.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/guest.h"

static int known_type(unsigned t)
{
	switch (t) {
	case HEC_G_HELLO: case HEC_G_STARTED: case HEC_G_OUT: case HEC_G_EXIT:
	case HEC_G_LOG: case HEC_G_PONG: case HEC_G_RUN: case HEC_G_SIGNAL:
	case HEC_G_PING: case HEC_G_IN:
		return 1;
	}
	return 0;
}

size_t hec_guest_sync(const uint8_t *buf, size_t len, int *found)
{
	size_t k;

	*found = 0;
	if (len < 4)
		return 0;
	for (k = 0; k + 4 <= len; k++)
		if (buf[k] == 'H' && buf[k + 1] == 'G' && buf[k + 2] == HEC_GUEST_VERSION &&
		    buf[k + 3] >= HEC_G_HELLO && buf[k + 3] <= HEC_G_PONG) {
			*found = 1;
			return k;
		}
	return len - 3;
}

long hec_guest_decode(const uint8_t *buf, size_t len, struct hec_guest_frame *f)
{
	uint32_t plen;

	/* Check what has arrived so far, so a stream of garbage is refused at
	 * its first byte rather than after 8. */
	if ((len >= 1 && buf[0] != 'H') || (len >= 2 && buf[1] != 'G') ||
	    (len >= 3 && buf[2] != HEC_GUEST_VERSION))
		return -EPROTO;
	if (len >= 4 && !known_type(buf[3]))
		return -EBADMSG;
	if (len < HEC_GUEST_HDR)
		return 0;
	plen = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
	if (plen > HEC_GUEST_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (len - HEC_GUEST_HDR < plen)
		return 0;
	f->type = buf[3];
	f->payload = buf + HEC_GUEST_HDR;
	f->len = plen;
	return (long)(HEC_GUEST_HDR + plen);
}

void hec_guest_header(uint8_t hdr[HEC_GUEST_HDR], unsigned type, uint32_t len)
{
	hdr[0] = 'H';
	hdr[1] = 'G';
	hdr[2] = HEC_GUEST_VERSION;
	hdr[3] = (uint8_t)type;
	hdr[4] = (uint8_t)(len >> 24);
	hdr[5] = (uint8_t)(len >> 16);
	hdr[6] = (uint8_t)(len >> 8);
	hdr[7] = (uint8_t)len;
}

int hec_guest_kv_check(const uint8_t *p, uint32_t len)
{
	uint32_t pos = 0;

	while (pos < len) {
		const uint8_t *nul = memchr(p + pos, 0, len - pos);
		const uint8_t *eq = memchr(p + pos, '=', len - pos);

		if (!nul || !eq || eq > nul || eq == p + pos)
			return -EBADMSG;
		pos = (uint32_t)(nul - p) + 1;
	}
	return 0;
}

/* Safe on unchecked payloads too: an entry without its NUL ends the list. */
const char *hec_guest_kv_next(const uint8_t *p, uint32_t len, uint32_t *pos)
{
	const uint8_t *nul;
	const char *s;

	if (*pos >= len)
		return NULL;
	nul = memchr(p + *pos, 0, len - *pos);
	if (!nul)
		return NULL;
	s = (const char *)p + *pos;
	*pos = (uint32_t)(nul - p) + 1;
	return s;
}

const char *hec_guest_kv_get(const uint8_t *p, uint32_t len, const char *key)
{
	size_t kl = strlen(key);
	uint32_t pos = 0;
	const char *s;

	if (!kl)
		return NULL;
	while ((s = hec_guest_kv_next(p, len, &pos)))
		if (!strncmp(s, key, kl) && s[kl] == '=')
			return s + kl + 1;
	return NULL;
}

int hec_guest_kv_int(const uint8_t *p, uint32_t len, const char *key, long long min,
		     long long max, long long *out)
{
	const char *s = hec_guest_kv_get(p, len, key);
	unsigned long long mag = 0, limit;
	int neg = 0;

	if (!s)
		return -ENOENT;
	/* Strict decimal: no blanks, no '+', no base prefixes, no overflow. */
	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (!*s)
		return -EINVAL;
	limit = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	for (; *s; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = (unsigned)(*s - '0');
		if (mag > (limit - d) / 10)
			return -EINVAL;
		mag = mag * 10 + d;
	}
	{
		long long v = neg ? (mag == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN
								    : -(long long)mag)
				  : (long long)mag;

		if (v < min || v > max)
			return -EINVAL;
		*out = v;
	}
	return 0;
}

static int kv_reserve(struct hec_guest_kvbuf *b, size_t more)
{
	size_t need = (size_t)b->len + more, cap;
	uint8_t *np;

	if (need > HEC_GUEST_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > HEC_GUEST_MAX_PAYLOAD)
		cap = HEC_GUEST_MAX_PAYLOAD;
	np = realloc(b->p, cap);
	if (!np)
		return -ENOMEM;
	b->p = np;
	b->cap = (uint32_t)cap;
	return 0;
}

int hec_guest_kv_add(struct hec_guest_kvbuf *b, const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);
	int rc;

	if (!kl || strchr(key, '='))
		return -EINVAL;
	if (kl > HEC_GUEST_MAX_PAYLOAD || vl > HEC_GUEST_MAX_PAYLOAD)
		return -EMSGSIZE;
	rc = kv_reserve(b, kl + vl + 2);
	if (rc)
		return rc;
	memcpy(b->p + b->len, key, kl);
	b->p[b->len + kl] = '=';
	memcpy(b->p + b->len + kl + 1, value, vl + 1);
	b->len += (uint32_t)(kl + vl + 2);
	return 0;
}

int hec_guest_kv_addf(struct hec_guest_kvbuf *b, const char *key, const char *fmt, ...)
{
	char small[64], *s = small;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(small)) {
		if ((size_t)n > HEC_GUEST_MAX_PAYLOAD)
			return -EMSGSIZE;
		s = malloc((size_t)n + 1);
		if (!s)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	rc = hec_guest_kv_add(b, key, s);
	if (s != small)
		free(s);
	return rc;
}

void hec_guest_kv_free(struct hec_guest_kvbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
