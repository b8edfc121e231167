/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest channel: frames between hecd and hec-guest (PID 1 inside a vm
 * partition), over a virtio-serial port named HEC_GUEST_PORT.  Also used by
 * hec-guest's remote-shell service on the job's private network (Hydra's
 * proxies are started through it), with the same frames.
 *
 * A frame is an 8-byte header followed by the payload:
 *   u8 'H', u8 'G', u8 version (HEC_GUEST_VERSION), u8 type,
 *   u32 payload length, big endian (at most HEC_GUEST_MAX_PAYLOAD).
 * Payloads are lists of NUL-terminated "key=value" strings ("kv" below),
 * except OUT/IN (raw bytes after a 1-byte stream id).
 *
 * Pure C with no library beyond libc, so the static hec-guest links it too.
 * Everything that reaches hecd from a guest is outside input: the decoder
 * is fuzzed (tests/fuzz/fuzz_guest.c).
 */
#ifndef HEC_GUEST_H
#define HEC_GUEST_H

#include <stddef.h>
#include <stdint.h>

#define HEC_GUEST_PORT "hec.0"
#define HEC_GUEST_VERSION 1
#define HEC_GUEST_HDR 8
#define HEC_GUEST_MAX_PAYLOAD (1u << 20)
#define HEC_GUEST_RSH_PORT 7020 /* hec-guest's remote-shell service, private network */

enum hec_guest_type {
	/* guest -> host */
	HEC_G_HELLO = 1,   /* kv: version=1, node=NAME, kernel=RELEASE, ip=A.B.C.D/P, uptime_ms=N
			    * (guest is up, network set); sent each time a host connects */
	HEC_G_STARTED = 2, /* kv: id=N, pid=N */
	HEC_G_OUT = 3,     /* u8 stream (1 stdout, 2 stderr), then bytes; id of the RUN is implied (one at a time per channel) */
	HEC_G_EXIT = 4,    /* kv: id=N, exit=N, signal=N, [error=TEXT] (error: it could not start,
			    * exit=127); killed by signal S: exit=128+S, signal=S */
	HEC_G_LOG = 5,     /* kv: level=err|warn|info, msg=TEXT (hec-guest's own diagnostics) */
	HEC_G_PONG = 6,    /* kv: seq=N, run=ID of the RUN this channel runs (0: none) */
	/* host -> guest */
	HEC_G_RUN = 16,    /* kv: id=N, uid=N, gid=N, cwd=PATH, key=JOBKEY (rsh only), then arg=.. (1+), env=K=V (0+) */
	HEC_G_SIGNAL = 17, /* kv: id=N, signal=N: sent to the RUN's process group */
	HEC_G_PING = 18,   /* kv: seq=N */
	HEC_G_IN = 19,     /* u8 stream (0), then bytes for the RUN's stdin; empty: EOF */
};

/** A decoded frame; payload points into the caller's buffer (not copied). */
struct hec_guest_frame {
	unsigned type;
	const uint8_t *payload;
	uint32_t len;
};

/**
 * Decode one frame from @buf (@len bytes available).
 * \return bytes consumed (> 0) with *@f set; 0 if more bytes are needed;
 *         -EPROTO bad magic or version, -EMSGSIZE payload too long,
 *         -EBADMSG unknown type.  A stream that returned < 0 cannot be
 *         resynchronised: close it.
 */
long hec_guest_decode(const uint8_t *buf, size_t len, struct hec_guest_frame *f);

/**
 * Find where frames start again in a stream that may begin inside one (a
 * restored guest's channel: the head of a frame went to the QEMU replaced).
 * \return the offset of the first header of a frame a guest sends (magic,
 * version, a type HELLO..PONG), *@found 1; or, with *@found 0, how many
 * bytes can be dropped for sure (a header may begin in the last 3).
 */
size_t hec_guest_sync(const uint8_t *buf, size_t len, int *found);

/** Write a header for @type with @len payload bytes into @hdr (8 bytes). */
void hec_guest_header(uint8_t hdr[HEC_GUEST_HDR], unsigned type, uint32_t len);

/**
 * kv payloads.  hec_guest_kv_check: every entry NUL-terminated, contains
 * '=' and a non-empty key; \return 0 or -EBADMSG.
 * hec_guest_kv_get: the value of the first entry for @key, or NULL.
 * hec_guest_kv_next: iterate entries: *@pos starts at 0; \return the next
 * "key=value" string or NULL at the end.  _get and _next stay within @len
 * on any payload (an entry without its NUL ends the list), but only a
 * payload that passed _check is guaranteed to hold "key=value" entries.
 * hec_guest_kv_int: parse a decimal value in [min, max] (optional '-', digits
 * only: no blanks, '+' or 0x); \return 0, -ENOENT (absent) or -EINVAL
 * (malformed, overflowing or out of range).
 */
int hec_guest_kv_check(const uint8_t *p, uint32_t len);
const char *hec_guest_kv_get(const uint8_t *p, uint32_t len, const char *key);
const char *hec_guest_kv_next(const uint8_t *p, uint32_t len, uint32_t *pos);
int hec_guest_kv_int(const uint8_t *p, uint32_t len, const char *key, long long min,
		     long long max, long long *out);

/**
 * Build a kv payload: append "key=value\0" to a growing buffer (start from
 * a zeroed struct; hec_guest_kv_free releases it and leaves it reusable).
 * \return 0, -ENOMEM, -EMSGSIZE (past HEC_GUEST_MAX_PAYLOAD) or -EINVAL
 * (empty key, or a key containing '=': it could not be read back).
 */
struct hec_guest_kvbuf {
	uint8_t *p;
	uint32_t len, cap;
};
int hec_guest_kv_add(struct hec_guest_kvbuf *b, const char *key, const char *value);
int hec_guest_kv_addf(struct hec_guest_kvbuf *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void hec_guest_kv_free(struct hec_guest_kvbuf *b);

#endif
