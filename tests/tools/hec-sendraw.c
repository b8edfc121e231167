/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test tool: send raw bytes (stdin) to a hec endpoint and print what comes
 * back, one line per frame: "TYPE {json}" or "TYPE <n bytes>".  Lets the
 * integration tests speak to daemons exactly as a broken or hostile peer
 * would.  Exit 0 after the peer closes or --wait ms pass without data.
 *
 * Usage: hec-sendraw unix:PATH|tcp:HOST:PORT [--wait MS] < bytes
 *        hec-sendraw --frame TYPE JSON     (write one well-formed frame to stdout)
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"

static int make_frame(const char *type, const char *json)
{
	json_error_t jerr;
	json_t *body;
	uint8_t *buf;
	size_t len;
	long t;
	int rc;

	if (hec_parse_long(type, 0, 255, &t))
		return fprintf(stderr, "hec-sendraw: bad type '%s'\n", type), 2;
	body = json_loads(json, 0, &jerr);
	if (!body)
		return fprintf(stderr, "hec-sendraw: bad JSON: %s\n", jerr.text), 2;
	/* Bypass the encoder's schema check on purpose: tests send bad bodies. */
	{
		char *text = json_dumps(body, JSON_COMPACT);
		size_t tl = strlen(text);

		len = HEC_MSG_HDR_LEN + tl;
		buf = malloc(len);
		buf[0] = 'H';
		buf[1] = 'C';
		buf[2] = HEC_PROTO_VERSION;
		buf[3] = (uint8_t)t;
		buf[4] = (uint8_t)(tl >> 24);
		buf[5] = (uint8_t)(tl >> 16);
		buf[6] = (uint8_t)(tl >> 8);
		buf[7] = (uint8_t)tl;
		memcpy(buf + HEC_MSG_HDR_LEN, text, tl);
		free(text);
	}
	rc = fwrite(buf, 1, len, stdout) == len ? 0 : 1;
	free(buf);
	json_decref(body);
	return rc;
}

int main(int argc, char **argv)
{
	char in[1 << 16];
	long wait_ms = 2000;
	size_t n;
	int fd;

	if (argc == 4 && !strcmp(argv[1], "--frame"))
		return make_frame(argv[2], argv[3]);
	if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--wait"))) {
		fprintf(stderr, "usage: hec-sendraw unix:PATH|tcp:HOST:PORT [--wait MS] < bytes\n");
		return 2;
	}
	if (argc == 4 && hec_parse_long(argv[3], 1, 600000, &wait_ms))
		return fprintf(stderr, "hec-sendraw: bad --wait\n"), 2;
	if (!strncmp(argv[1], "unix:", 5))
		fd = hec_connect_unix(argv[1] + 5);
	else if (!strncmp(argv[1], "tcp:", 4))
		fd = hec_connect_tcp(argv[1] + 4, 5000);
	else
		return fprintf(stderr, "hec-sendraw: endpoint must start with unix: or tcp:\n"), 2;
	if (fd < 0)
		return fprintf(stderr, "hec-sendraw: %s: %s\n", argv[1], strerror(-fd)), 1;
	while ((n = fread(in, 1, sizeof(in), stdin)) > 0)
		if (write(fd, in, n) != (ssize_t)n)
			break;
	for (;;) {
		struct hec_msg m;
		char err[512];
		void *buf;
		int rc = hec_frame_read(fd, &m, &buf, (int)wait_ms, err, sizeof(err));

		if (rc == -ETIMEDOUT || rc == -ECONNRESET)
			break;
		if (rc) {
			printf("UNDECODABLE %s\n", err);
			break;
		}
		if (m.body) {
			char *t = json_dumps(m.body, JSON_COMPACT);

			printf("%s %s\n", hec_msg_type_name(m.type), t);
			free(t);
		} else {
			printf("%s <%zu bytes>\n", hec_msg_type_name(m.type), m.len);
		}
		hec_msg_clear(&m);
		free(buf);
	}
	close(fd);
	return 0;
}
