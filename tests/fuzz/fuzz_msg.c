/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the frame decoder and schemas, as a daemon sees a
 * stream: decode frames back to back until the input runs out or a frame is
 * refused.  Also feeds the same bytes to the config parser and the time
 * limit parser, the other decoders of outside input.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "hec/config.h"
#include "hec/msg.h"
#include "ckpt/appmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fconf {
	char s[32];
	long i, ms;
};

static const struct hec_conf_key keys[] = {
	{ "s", HEC_CONF_STR, "x", 0, 0, "", offsetof(struct fconf, s), 32 },
	{ "i", HEC_CONF_INT, "1", 0, 100, "", offsetof(struct fconf, i), 0 },
	{ "ms", HEC_CONF_MS, "1s", 0, 100000, "", offsetof(struct fconf, ms), 0 },
	{ NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	char err[512], *text;
	struct fconf c;
	long secs;

	while (off < size) {
		struct hec_msg m;
		size_t used = 0;
		int rc = hec_msg_decode(data + off, size - off, &m, &used, err, sizeof(err));

		if (rc)
			break;
		if (m.body) {
			/* a decoded body must re-encode: the schema held */
			uint8_t *out;
			size_t outlen;

			if (hec_msg_encode(m.type, m.body, &out, &outlen) == 0)
				free(out);
			else
				abort();
		}
		hec_msg_clear(&m);
		off += used;
	}

	/* the lines a proc job's program sends its agent (ckpt/appmsg.h) */
	for (size_t start = 0, i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		{
			struct hec_app_msg *am = malloc(sizeof(*am));

			if (am) {
				if (hec_app_msg_decode((const char *)data + start, i - start, am, err,
						       sizeof(err)) == 0 &&
				    (strlen(am->path) >= sizeof(am->path) ||
				     strlen(am->error) >= sizeof(am->error)))
					abort();
				free(am);
			}
		}
		start = i + 1;
	}

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	hec_conf_defaults(keys, &c);
	hec_conf_load_text(keys, &c, "fuzz", text, err, sizeof(err));
	hec_parse_time_limit(text, &secs);
	{
		struct hec_cpuset set;
		char buf[256];

		long mb;

		hec_parse_mem_mb(text, &mb);
		if (hec_cpuset_parse(text, &set) >= 0)
			hec_cpuset_format(&set, buf, sizeof(buf));
	}
	free(text);
	return 0;
}
