/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the guest channel decoder, as hecd (and hec-guest) see a
 * stream: frames back to back until the input runs out or one is refused.
 * Every kv payload is checked, iterated, looked up and parsed as integers;
 * one that passes the check must rebuild byte for byte with the builder.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hec/guest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void kv_exercise(const uint8_t *p, uint32_t len)
{
	static const char *keys[] = { "id", "uid", "gid", "cwd", "key", "arg", "env",
				      "exit", "signal", "seq", "error", "" };
	struct hec_guest_kvbuf b = { 0 };
	uint32_t pos = 0;
	const char *s;
	long long v;
	int checked = hec_guest_kv_check(p, len) == 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		hec_guest_kv_get(p, len, keys[i]);
		hec_guest_kv_int(p, len, keys[i], -1000, 1000, &v);
	}
	while ((s = hec_guest_kv_next(p, len, &pos))) {
		const char *eq = strchr(s, '=');
		char *key;

		if (!checked)
			continue;
		/* a checked entry has a non-empty key before its first '=' */
		if (!eq || eq == s)
			abort();
		key = strndup(s, (size_t)(eq - s));
		if (!key || hec_guest_kv_add(&b, key, eq + 1))
			abort();
		free(key);
	}
	if (checked && (b.len != len || (len && memcmp(b.p, p, len))))
		abort();
	hec_guest_kv_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct hec_guest_frame f;
		long used = hec_guest_decode(data + off, size - off, &f);

		if (used <= 0)
			break;
		if (f.payload != data + off + HEC_GUEST_HDR || (size_t)used != HEC_GUEST_HDR + f.len)
			abort();
		if (f.type == HEC_G_OUT || f.type == HEC_G_IN) {
			if (f.len)
				kv_exercise(f.payload + 1, f.len - 1);
		} else {
			kv_exercise(f.payload, f.len);
		}
		off += (size_t)used;
	}
	/* as a restored channel: found a header, or dropped at most all but 3 */
	{
		int found;
		size_t k = hec_guest_sync(data, size, &found);

		if (found ? k + 4 > size || data[k] != 'H' : size >= 4 && k != size - 3)
			abort();
	}
	/* the bytes as a bare payload too: the kv readers see more shapes */
	kv_exercise(data, size > HEC_GUEST_MAX_PAYLOAD ? HEC_GUEST_MAX_PAYLOAD : (uint32_t)size);
	return 0;
}
