/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-fakeagent SOCK SCENARIO LOG: the agent's side of libhecckpt's socket
 * protocol, scripted, for tests/integration/hecckpt_lib.sh.  Listens on
 * SOCK, serves one connection, appends every line it receives to LOG and
 * exits when the library closes the connection (or after 60 s).
 *   ok       hello ok, then request epoch 7; begin 7 -> (nothing), begin 0
 *            -> epoch 9; written E -> taken E (the file is checked to exist)
 *   own      hello ok, no request (the program checkpoints on its own)
 *   silent   accepts and never answers
 *   close    reads hello and closes the connection
 *   refuse   as ok, but written -> error "disk full"
 *   cancel   as ok, but begin 7 -> cancel 7; written -> error "cancelled"
 *   garbage  hello ok, then a line that is not JSON
 *   deny     hello with ok false
 * Exit 0, or 1 on a system error, 2 on bad arguments.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int say(int fd, const char *line)
{
	size_t len = strlen(line);

	return send(fd, line, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* The integer after "key": in @line, or -1. */
static long long field(const char *line, const char *key)
{
	char pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	return p ? atoll(p + strlen(pat)) : -1;
}

static void answer(int fd, const char *sc, const char *line)
{
	char out[256], path[1024];
	const char *p;
	long long e = field(line, "epoch");
	struct stat sb;

	if (strstr(line, "\"op\":\"hello\"")) {
		if (!strcmp(sc, "deny")) {
			say(fd, "{\"op\":\"hello\",\"ok\":false,\"error\":\"job 5 is not running here\"}\n");
			return;
		}
		say(fd, "{\"op\":\"hello\",\"ok\":true}\n");
		if (!strcmp(sc, "garbage"))
			say(fd, "this is not json\n");
		else if (strcmp(sc, "own"))
			say(fd, "{\"op\":\"request\",\"epoch\":7}\n");
	} else if (strstr(line, "\"op\":\"begin\"")) {
		if (e == 0) {
			say(fd, "{\"op\":\"epoch\",\"epoch\":9}\n");
		} else if (!strcmp(sc, "cancel")) {
			snprintf(out, sizeof(out), "{\"op\":\"cancel\",\"epoch\":%lld}\n", e);
			say(fd, out);
		}
	} else if (strstr(line, "\"op\":\"written\"")) {
		path[0] = 0;
		p = strstr(line, "\"path\":\"");
		if (p)
			sscanf(p + 8, "%1023[^\"]", path);
		if (!strcmp(sc, "refuse"))
			snprintf(out, sizeof(out), "{\"op\":\"error\",\"error\":\"disk full\"}\n");
		else if (!strcmp(sc, "cancel"))
			snprintf(out, sizeof(out), "{\"op\":\"error\",\"error\":\"checkpoint %lld was cancelled\"}\n", e);
		else if (stat(path, &sb) < 0 || sb.st_size != field(line, "bytes"))
			snprintf(out, sizeof(out), "{\"op\":\"error\",\"error\":\"no file %.100s of that size\"}\n", path);
		else
			snprintf(out, sizeof(out), "{\"op\":\"taken\",\"epoch\":%lld}\n", e);
		say(fd, out);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[8192];
	size_t len = 0;
	FILE *log;
	int lfd, fd;

	if (argc != 4 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "usage: hec-fakeagent SOCK SCENARIO LOG\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	log = fopen(argv[3], "a");
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(argv[1]);
	if (!log || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
		perror("hec-fakeagent");
		return 1;
	}
	setvbuf(log, NULL, _IOLBF, 0);
	alarm(60);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("hec-fakeagent: accept");
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		char *nl;

		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			fprintf(log, "%s\n", buf);
			if (!strcmp(argv[2], "close")) {
				close(fd);
				fd = -1;
				break;
			}
			if (strcmp(argv[2], "silent"))
				answer(fd, argv[2], buf);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
		if (fd < 0)
			break;
	}
	if (fd >= 0)
		close(fd);
	unlink(argv[1]);
	return 0;
}
