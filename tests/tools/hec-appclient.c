/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-appclient SCRIPT: speaks to a proc job's checkpoint socket
 * (HEC_CKPT_SOCK) as a program might, hostile ones included, for the
 * integration tests (tests/integration/app_ckpt_sock.sh).  It runs as the
 * job's batch step.  SCRIPT, one command a line:
 *   send TEXT    send TEXT and a newline; $E is the last epoch the agent
 *                named (request, epoch), $D is HEC_CKPT_DIR, $J HEC_JOB_ID
 *   raw N        send N bytes of 'x' and a newline (an over-long line)
 *   expect OP    read lines until one whose "op" is OP (60 s at most)
 *   sh CMD       run CMD with /bin/sh, E and D in its environment
 *   connect      (re)connect
 * Every line read is printed "< LINE", every line sent "> LINE".  Exit 0
 * at the end of SCRIPT, 1 on an expect not met or a lost connection.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static int sock = -1;
static char epoch[32] = "0";
static char inbuf[1 << 16];
static size_t inlen;

static int do_connect(void)
{
	const char *path = getenv("HEC_CKPT_SOCK");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (sock >= 0)
		close(sock);
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "hec-appclient: HEC_CKPT_SOCK is not set\n");
		return -1;
	}
	strcpy(sa.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "hec-appclient: %s: %s\n", path, strerror(errno));
		return -1;
	}
	inlen = 0;
	return 0;
}

static int send_all(const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(sock, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* TEXT with $E and $D replaced */
static void expand(const char *in, char *out, size_t len)
{
	const char *dir = getenv("HEC_CKPT_DIR");
	size_t o = 0;

	for (; *in && o + 1 < len; in++) {
		const char *rep = NULL;

		if (in[0] == '$' && in[1] == 'E')
			rep = epoch;
		else if (in[0] == '$' && in[1] == 'J')
			rep = getenv("HEC_JOB_ID") ? getenv("HEC_JOB_ID") : "0";
		else if (in[0] == '$' && in[1] == 'D')
			rep = dir ? dir : "";
		if (rep) {
			o += (size_t)snprintf(out + o, len - o, "%s", rep);
			in++;
			if (o >= len)
				o = len - 1;
			continue;
		}
		out[o++] = *in;
	}
	out[o] = 0;
}

/* Read lines until one with "op" @op; \return 0, or -1. */
static int expect(const char *op)
{
	time_t end = time(NULL) + 60;

	for (;;) {
		char *nl;

		while ((nl = memchr(inbuf, '\n', inlen))) {
			json_t *o;
			const char *got;
			int match;

			*nl = 0;
			printf("< %s\n", inbuf);
			fflush(stdout);
			o = json_loads(inbuf, 0, NULL);
			got = json_string_value(json_object_get(o, "op"));
			if (got && (!strcmp(got, "request") || !strcmp(got, "epoch")) &&
			    json_is_integer(json_object_get(o, "epoch")))
				snprintf(epoch, sizeof(epoch), "%lld",
					 (long long)json_integer_value(json_object_get(o, "epoch")));
			match = got && !strcmp(got, op);
			json_decref(o);
			inlen -= (size_t)(nl + 1 - inbuf);
			memmove(inbuf, nl + 1, inlen);
			if (match)
				return 0;
		}
		{
			struct pollfd p = { .fd = sock, .events = POLLIN };
			int left = (int)(end - time(NULL));
			ssize_t k;

			if (left <= 0 || poll(&p, 1, left * 1000) <= 0) {
				fprintf(stderr, "hec-appclient: no '%s' within 60 s\n", op);
				return -1;
			}
			k = read(sock, inbuf + inlen, sizeof(inbuf) - 1 - inlen);
			if (k <= 0) {
				printf("< (closed)\n");
				fprintf(stderr, "hec-appclient: the agent closed the connection waiting for '%s'\n", op);
				return -1;
			}
			inlen += (size_t)k;
		}
	}
}

int main(int argc, char **argv)
{
	char line[8192], text[16384];
	FILE *f;

	if (argc != 2 || !(f = fopen(argv[1], "r"))) {
		fprintf(stderr, "usage: hec-appclient SCRIPT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN); /* an agent that closes on us is a case tested */
	if (do_connect())
		return 1;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "send ", 5)) {
			expand(line + 5, text, sizeof(text) - 1);
			printf("> %s\n", text);
			strcat(text, "\n");
			if (send_all(text, strlen(text)))
				return 1;
		} else if (!strncmp(line, "raw ", 4)) {
			size_t n = strtoul(line + 4, NULL, 10);
			char *buf = malloc(n + 1);

			if (!buf)
				return 1;
			memset(buf, 'x', n);
			buf[n] = '\n';
			printf("> (%zu bytes of x)\n", n);
			/* the agent may close before all is sent: that is the point */
			send_all(buf, n + 1);
			free(buf);
		} else if (!strncmp(line, "expect ", 7)) {
			if (expect(line + 7))
				return 1;
		} else if (!strncmp(line, "sh ", 3)) {
			setenv("E", epoch, 1);
			setenv("D", getenv("HEC_CKPT_DIR") ? getenv("HEC_CKPT_DIR") : "", 1);
			if (system(line + 3) != 0)
				printf("sh failed: %s\n", line + 3);
		} else if (!strcmp(line, "connect")) {
			if (do_connect())
				return 1;
		}
	}
	return 0;
}
