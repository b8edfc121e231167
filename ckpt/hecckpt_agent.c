/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libhecckpt, rank 0's side of the agent protocol: one line of JSON per
 * message over the agent's per-job unix stream socket (HEC_CKPT_SOCK).
 *
 * The agent may send "request" and "cancel" at any time; they only change
 * the pending request that hecckpt_need reports.  Every other message of
 * the agent answers one of ours, and at most one answer is outstanding.
 * The socket is non-blocking: polling for requests never waits, and every
 * wait for an answer (or for room to send) has a deadline.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ckpt/hecckpt_int.h"

#define LINE_MAX_BYTES 65536 /* longer lines from the agent break the protocol */

struct hecckpt_agent {
	int fd;                 /* -1 once broken */
	int timeout_ms;
	int broken;             /* the first cause (negative errno), 0 while usable */
	char why[HECCKPT_ERRLEN]; /* its sentence */
	long long pending;      /* the requested epoch, 0: none */
	long long current;      /* the epoch being written, 0: none */
	int cancelled;          /* @current was cancelled meanwhile */
	json_t *answer;         /* an answer not yet taken */
	size_t len;             /* bytes in buf */
	char buf[LINE_MAX_BYTES];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection is unusable from now on: remember why. */
static int breaks(struct hecckpt_agent *a, int rc)
{
	if (!a->broken) {
		a->broken = rc;
		snprintf(a->why, sizeof(a->why), "%s", hecckpt_errbuf());
	}
	if (a->fd >= 0) {
		close(a->fd);
		a->fd = -1;
	}
	return rc;
}

static int check_usable(struct hecckpt_agent *a)
{
	if (!a->broken)
		return 0;
	return hecckpt_fail(-EPIPE, "the connection to the hec agent is gone: %s", a->why);
}

static int gone(struct hecckpt_agent *a)
{
	return breaks(a, hecckpt_fail(-EPIPE, "the hec agent closed the checkpoint socket"));
}

static int protocol(struct hecckpt_agent *a, const char *what, const char *line)
{
	return breaks(a, hecckpt_fail(-EPROTO, "the hec agent broke the checkpoint protocol: %s: %.200s",
				      what, line));
}

/* The epoch of @msg, a positive integer. */
static long long msg_epoch(json_t *msg)
{
	json_t *e = json_object_get(msg, "epoch");

	if (!json_is_integer(e) || json_integer_value(e) <= 0)
		return 0;
	return json_integer_value(e);
}

static int take_line(struct hecckpt_agent *a, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *msg = json_loadb(line, len, 0, &jerr);
	const char *op = json_string_value(json_object_get(msg, "op"));
	long long e;

	if (!op) {
		json_decref(msg);
		return protocol(a, "not a JSON object with an op", line);
	}
	if (!strcmp(op, "request") || !strcmp(op, "cancel")) {
		int request = op[0] == 'r';

		e = msg_epoch(msg);
		json_decref(msg);
		if (!e)
			return protocol(a, "no epoch", line);
		if (request) {
			a->pending = e;
		} else {
			if (a->pending == e)
				a->pending = 0;
			if (a->current == e)
				a->cancelled = 1;
		}
		return 0;
	}
	if (strcmp(op, "hello") && strcmp(op, "epoch") && strcmp(op, "taken") && strcmp(op, "error")) {
		json_decref(msg);
		return protocol(a, "unknown op", line);
	}
	if (a->answer) {
		json_decref(msg);
		return protocol(a, "an answer to nothing", line);
	}
	a->answer = msg;
	return 0;
}

/* Read whatever has arrived (never waits) and act on every whole line. */
static int drain(struct hecckpt_agent *a)
{
	ssize_t n;
	char *nl;
	int rc;

	for (;;) {
		n = read(a->fd, a->buf + a->len, sizeof(a->buf) - 1 - a->len);
		if (n == 0)
			return gone(a);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == ECONNRESET)
				return gone(a);
			return breaks(a, hecckpt_fail(-errno, "HEC_CKPT_SOCK: read: %s", strerror(errno)));
		}
		a->len += (size_t)n;
		a->buf[a->len] = 0;
		while ((nl = memchr(a->buf, '\n', a->len))) {
			size_t used = (size_t)(nl - a->buf) + 1;

			*nl = 0;
			rc = take_line(a, a->buf, used - 1);
			if (rc < 0)
				return rc;
			memmove(a->buf, a->buf + used, a->len - used);
			a->len -= used;
			a->buf[a->len] = 0;
		}
		if (a->len == sizeof(a->buf) - 1)
			return protocol(a, "a line longer than 64 KiB", a->buf);
	}
}

static int send_msg(struct hecckpt_agent *a, json_t *msg)
{
	char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	long long deadline = now_ms() + a->timeout_ms;
	size_t len, off = 0;
	int rc = 0;

	json_decref(msg);
	if (!text)
		return hecckpt_fail(-ENOMEM, "out of memory for a message to the hec agent");
	len = strlen(text);
	text[len] = '\n'; /* replaces the terminator: the line is text[0..len] */
	while (off <= len) {
		ssize_t n = send(a->fd, text + off, len + 1 - off, MSG_NOSIGNAL);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET) {
			rc = gone(a);
			break;
		}
		if (errno != EAGAIN) {
			rc = breaks(a, hecckpt_fail(-errno, "HEC_CKPT_SOCK: send: %s", strerror(errno)));
			break;
		}
		struct pollfd p = { .fd = a->fd, .events = POLLOUT };
		long long left = deadline - now_ms();

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			rc = breaks(a, hecckpt_fail(-ETIMEDOUT, "the hec agent read nothing for %d s",
						    a->timeout_ms / 1000));
			break;
		}
	}
	free(text);
	return rc;
}

/* Wait up to the timeout for the answer to @what. */
static int wait_answer(struct hecckpt_agent *a, const char *what, json_t **out)
{
	long long deadline = now_ms() + a->timeout_ms;
	int rc;

	while (!a->answer) {
		struct pollfd p = { .fd = a->fd, .events = POLLIN };
		long long left = deadline - now_ms();

		if (left <= 0)
			return breaks(a, hecckpt_fail(-ETIMEDOUT, "the hec agent did not answer %s within %d s",
						      what, a->timeout_ms / 1000));
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno != EINTR)
			return breaks(a, hecckpt_fail(-errno, "HEC_CKPT_SOCK: poll: %s", strerror(errno)));
		if (rc > 0 && (rc = drain(a)) < 0)
			return rc;
	}
	*out = a->answer;
	a->answer = NULL;
	return 0;
}

/* The agent's "error" answer as -EIO, or a wrong answer breaking the protocol. */
static int unexpected(struct hecckpt_agent *a, json_t *ans, const char *what)
{
	const char *op = json_string_value(json_object_get(ans, "op"));
	const char *err = json_string_value(json_object_get(ans, "error"));
	char *text;
	int rc;

	if (!strcmp(op, "error")) {
		rc = hecckpt_fail(-EIO, "the hec agent refused %s: %s", what, err ? err : "(no reason given)");
	} else {
		text = json_dumps(ans, JSON_COMPACT);
		rc = protocol(a, what, text ? text : op);
		free(text);
	}
	json_decref(ans);
	return rc;
}

int hecckpt_agent_open(const char *path, long long job, int ranks, int timeout_s,
		       struct hecckpt_agent **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hecckpt_agent *a;
	json_t *ans;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return hecckpt_fail(-ENAMETOOLONG, "HEC_CKPT_SOCK %s: longer than a socket path can be", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	a = calloc(1, sizeof(*a));
	if (!a)
		return hecckpt_fail(-ENOMEM, "out of memory");
	a->timeout_ms = timeout_s * 1000;
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->fd < 0) {
		rc = hecckpt_fail(-errno, "HEC_CKPT_SOCK: socket: %s", strerror(errno));
		goto free_a;
	}
	if (connect(a->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = hecckpt_fail(-errno, "HEC_CKPT_SOCK %s: connect: %s", path, strerror(errno));
		goto close_fd;
	}
	if (fcntl(a->fd, F_SETFL, O_NONBLOCK) < 0) {
		rc = hecckpt_fail(-errno, "HEC_CKPT_SOCK: fcntl: %s", strerror(errno));
		goto close_fd;
	}
	rc = send_msg(a, json_pack("{s:s, s:I, s:i}", "op", "hello", "job", (json_int_t)job,
				   "ranks", ranks));
	if (rc < 0 || (rc = wait_answer(a, "hello", &ans)) < 0)
		goto close_fd;
	if (strcmp(json_string_value(json_object_get(ans, "op")), "hello")) {
		rc = unexpected(a, ans, "hello");
		goto close_fd;
	}
	if (!json_is_true(json_object_get(ans, "ok"))) {
		const char *err = json_string_value(json_object_get(ans, "error"));

		rc = hecckpt_fail(-EPROTO, "the hec agent refused hello: %s", err ? err : "(no reason given)");
		json_decref(ans);
		goto close_fd;
	}
	json_decref(ans);
	*out = a;
	return 0;

close_fd:
	if (a->fd >= 0)
		close(a->fd);
	json_decref(a->answer); /* an answer that came with the line that broke the protocol */
free_a:
	free(a);
	return rc;
}

void hecckpt_agent_close(struct hecckpt_agent *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	json_decref(a->answer);
	free(a);
}

int hecckpt_agent_poll(struct hecckpt_agent *a, long long *epoch)
{
	int rc = check_usable(a);

	*epoch = 0;
	if (rc < 0 || (rc = drain(a)) < 0)
		return rc;
	if (a->answer) {
		char *text = json_dumps(a->answer, JSON_COMPACT);

		rc = protocol(a, "an answer to nothing", text ? text : "?");
		free(text);
		return rc;
	}
	*epoch = a->pending;
	return 0;
}

int hecckpt_agent_begin(struct hecckpt_agent *a, long long epoch, long long *out)
{
	json_t *ans;
	long long e;
	int rc = check_usable(a);

	if (rc < 0)
		return rc;
	if (epoch && a->pending == epoch)
		a->pending = 0;
	a->cancelled = 0;
	rc = send_msg(a, json_pack("{s:s, s:I}", "op", "begin", "epoch", (json_int_t)epoch));
	if (rc < 0)
		return rc;
	if (epoch) {
		a->current = *out = epoch;
		return 0;
	}
	rc = wait_answer(a, "a checkpoint of the program's own (begin)", &ans);
	if (rc < 0)
		return rc;
	if (strcmp(json_string_value(json_object_get(ans, "op")), "epoch"))
		return unexpected(a, ans, "a checkpoint of the program's own (begin)");
	e = msg_epoch(ans);
	json_decref(ans);
	if (!e)
		return protocol(a, "an epoch answer without an epoch", "epoch");
	a->current = *out = e;
	return 0;
}

int hecckpt_agent_written(struct hecckpt_agent *a, long long epoch, const char *path,
			  long long bytes)
{
	json_t *ans;
	char what[64];
	int rc = check_usable(a);

	if (rc < 0)
		return rc;
	snprintf(what, sizeof(what), "checkpoint %lld (written)", epoch);
	rc = send_msg(a, json_pack("{s:s, s:I, s:s, s:I}", "op", "written", "epoch", (json_int_t)epoch,
				   "path", path, "bytes", (json_int_t)bytes));
	if (rc < 0 || (rc = wait_answer(a, what, &ans)) < 0)
		goto done;
	if (strcmp(json_string_value(json_object_get(ans, "op")), "taken")) {
		rc = unexpected(a, ans, what);
		if (rc == -EIO && a->cancelled) {
			char why[HECCKPT_ERRLEN];

			snprintf(why, sizeof(why), "%s", hecckpt_errbuf());
			rc = hecckpt_fail(-ECANCELED, "hec cancelled checkpoint %lld: %s", epoch, why);
		}
		goto done;
	}
	if (msg_epoch(ans) != epoch) {
		json_decref(ans);
		rc = protocol(a, "taken names another epoch", what);
		goto done;
	}
	json_decref(ans);
done:
	a->current = 0;
	return rc;
}

int hecckpt_agent_failed(struct hecckpt_agent *a, long long epoch, const char *why)
{
	int rc = check_usable(a);

	a->current = 0;
	if (rc < 0)
		return rc;
	return send_msg(a, json_pack("{s:s, s:I, s:s}", "op", "failed", "epoch", (json_int_t)epoch,
				     "error", why));
}

int hecckpt_agent_restored(struct hecckpt_agent *a, long long epoch, const char *why)
{
	int rc = check_usable(a);

	if (rc < 0)
		return rc;
	if (!why)
		return send_msg(a, json_pack("{s:s, s:I}", "op", "restored", "epoch", (json_int_t)epoch));
	return send_msg(a, json_pack("{s:s, s:I, s:s}", "op", "restore_failed", "epoch",
				     (json_int_t)epoch, "error", why));
}
