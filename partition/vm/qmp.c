/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * QMP on the event loop (vm.h): the event monitor's events (SHUTDOWN,
 * GUEST_PANICKED; STOP and RESUME to a capture), and commands one in flight at a time, answers in order.
 * The gate's monitor is the synchronous one of qmp_mon.c.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "hec/common.h"
#include "partition/vm/vm.h"

void qmp_gone(struct vm *v)
{
	bufferevent_free(v->q.qmp);
	v->q.qmp = NULL;
	v->qmp_greeted = 0;
	qmp_flush(v, 1);
}


void qmp_call_free(struct qmp_call *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->line);
	free(c);
}

/* Send the head of the queue if nothing is in flight.  Written straight to
 * the socket (a command is a short line, and the socket has nothing else
 * queued: each is sent only once the one before is answered), which is
 * also how a file descriptor goes with it. */

static void qmp_kick(struct vm *v)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct qmp_call *c;

	while ((c = v->qq) && !v->qq_sent && v->q.qmp && v->qmp_greeted) {
		struct iovec iov = { c->line, strlen(c->line) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (c->fd >= 0) {
			struct cmsghdr *cm;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
		}
		do
			n = sendmsg(bufferevent_getfd(v->q.qmp), &mh, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)iov.iov_len) {
			v->qq_sent = 1;
			return;
		}
		/* Half a line in the stream, or none: its answers can no longer be
		 * matched to commands.  The monitor is given up. */
		hec_job_warn(v->host->node, v->job, "QMP: cannot write a command: %s",
			     n < 0 ? strerror(errno) : "short write");
		qmp_gone(v);
		return;
	}
}

static void call_queue(struct vm *v, json_t *cmd, int fd, qmp_cb cb, unsigned gen)
{
	struct qmp_call *c = calloc(1, sizeof(*c)), **pp;
	char *text = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;

	json_decref(cmd);
	if (!c || !text || asprintf(&c->line, "%s\n", text) < 0) {
		free(text);
		free(c);
		if (fd >= 0)
			close(fd);
		if (cb)
			cb(v, NULL, "out of memory");
		return;
	}
	free(text);
	c->fd = fd;
	c->cb = cb;
	c->gen = gen;
	for (pp = &v->qq; *pp; pp = &(*pp)->next)
		;
	*pp = c;
	qmp_kick(v);
}

void qmp_call(struct vm *v, json_t *cmd, int fd, qmp_cb cb)
{
	call_queue(v, cmd, fd, cb, v->op != OP_NONE ? v->op_gen : 0);
}

void qmp_call_always(struct vm *v, json_t *cmd, qmp_cb cb)
{
	call_queue(v, cmd, -1, cb, 0);
}

/* A command of an op that has ended: its answer goes to nobody. */
static int call_stale(const struct vm *v, const struct qmp_call *c)
{
	return c->gen && (c->gen != v->op_gen || v->op == OP_NONE);
}

/*
 * Empty the queue: the monitor is gone, and with @answer every command is
 * answered NULL; without, they are just forgotten (their monitor is swapped
 * out under an op that decides for itself).  Detached first: a callback may
 * queue on another monitor (a restore swapping back).
 */
void qmp_flush(struct vm *v, int answer)
{
	struct qmp_call *q = v->qq;

	v->qq = NULL;
	v->qq_sent = 0;
	while (q) {
		struct qmp_call *c = q;

		q = c->next;
		if (answer && c->cb && !call_stale(v, c))
			c->cb(v, NULL, "QEMU's monitor went away");
		qmp_call_free(c);
	}
}

static void qmp_answer(struct vm *v, json_t *o, const char *line)
{
	struct qmp_call *c = v->qq;
	json_t *err = json_object_get(o, "error");
	const char *desc = json_string_value(json_object_get(err, "desc"));

	if (!c || !v->qq_sent) {
		hec_job_warn(v->host->node, v->job, "QMP answer to no command: %s", line);
		return;
	}
	v->qq = c->next;
	v->qq_sent = 0;
	if (call_stale(v, c))
		hec_job_debug(v->host->node, v->job, "QMP answer for an op that has ended: %s",
			      line);
	else if (c->cb)
		c->cb(v, o, err ? (desc ? desc : "error") : NULL);
	else if (err)
		hec_job_warn(v->host->node, v->job, "QMP: %s", line);
	qmp_call_free(c);
	qmp_kick(v);
}

/*
 * At the greeting: capabilities first, then say the link is up.  QEMU's
 * stream netdev connects after the NIC is made, and the NIC may keep the
 * "no carrier" it saw then, which MPI's transports take for a dead
 * interface: say the link is up as soon as QMP is there, long before the
 * guest's driver looks (a change of link state later would leave the
 * interface not RUNNING for a moment, which MPI may just hit).
 */
static void on_greeting(struct vm *v)
{
	struct qmp_call *rest = v->qq, **pp;

	v->qq = NULL;
	qmp_call(v, json_pack("{s:s}", "execute", "qmp_capabilities"), -1, NULL);
	/* Not to a re-attached guest's: its netdev lost its connection with
	 * the previous agent, and QEMU 7.2 crashes sending on it once told the
	 * link is up. */
	if (!v->reattached)
		qmp_call(v, json_pack("{s:s,s:{s:s,s:b}}", "execute", "set_link", "arguments", "name",
				      "n0", "up", 1), -1, NULL);
	if (v->on_greeted)
		v->on_greeted(v);
	/* What was queued before the greeting follows them. */
	for (pp = &v->qq; *pp; pp = &(*pp)->next)
		;
	*pp = rest;
	v->qmp_greeted = 1;
	qmp_kick(v);
}

void qmp_read(struct bufferevent *bev, void *arg)
{
	struct vm *v = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (bev == v->q.qmp && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF))) {
		json_t *o = json_loadb(line, n, 0, NULL);
		const char *ev = json_string_value(json_object_get(o, "event"));

		if (json_object_get(o, "QMP")) {
			if (!v->qmp_greeted)
				on_greeting(v);
		} else if (!ev && (json_object_get(o, "return") || json_object_get(o, "error"))) {
			qmp_answer(v, o, line);
		} else if (ev && !strcmp(ev, "SHUTDOWN")) {
			const char *r = json_string_value(json_object_get(json_object_get(o, "data"), "reason"));

			hec_fmt(v->shutdown_reason, sizeof(v->shutdown_reason), "%s", r ? r : "?");
		} else if (ev && !strcmp(ev, "GUEST_PANICKED")) {
			v->panicked = 1;
		} else if (ev && v->on_runstate && (!strcmp(ev, "STOP") || !strcmp(ev, "RESUME"))) {
			const json_t *ts = json_object_get(o, "timestamp");

			v->on_runstate(v, ev[0] == 'R',
				       (int64_t)json_integer_value(json_object_get(ts, "seconds")) * 1000000 +
					   (int64_t)json_integer_value(json_object_get(ts, "microseconds")));
		}
		json_decref(o);
		free(line);
	}
	if (evbuffer_get_length(in) > QMP_LINE_MAX)
		evbuffer_drain(in, evbuffer_get_length(in));
}
