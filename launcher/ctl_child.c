/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helper programs the controller runs (hec-store for the storage repair and
 * for every checkpoint's commit, abort and delete): a child in its own
 * session, never waited on by the event loop.  Its stdout and stderr are
 * read by events (the tail of each is kept), it is reaped by a timer, and
 * past its time limit its whole process group is killed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hec/common.h"
#include "ctld.h"

#define CHILD_OUT_MAX 16384
#define CHILD_POLL_MS 100
/* output still open this long after the exit: a grandchild holds it; enough */
#define CHILD_LINGER_NS 2000000000LL

struct child_pipe {
	int fd;                     /* -1 once at EOF */
	struct event *ev;
	char buf[CHILD_OUT_MAX + 1];
	size_t len;
};

struct ctl_child {
	pid_t pid;
	struct child_pipe p[2];     /* stdout, stderr */
	struct event *timer;
	int status, reaped, killed;
	long limit_ms;
	int64_t deadline, reaped_at; /* mono ns */
	ctl_child_done_fn done;
	void *arg;
	char name[64];              /* the program's base name, for the log */
};

pid_t ctl_child_pid(const struct ctl_child *c)
{
	return c ? c->pid : 0;
}

static void pipe_close(struct child_pipe *p)
{
	if (p->ev)
		event_free(p->ev);
	p->ev = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

static void child_free(struct ctl_child *c)
{
	pipe_close(&c->p[0]);
	pipe_close(&c->p[1]);
	if (c->timer)
		event_free(c->timer);
	free(c);
}

/* Reaped and read: tell the owner, then forget the child. */
static void child_finish(struct ctl_child *c)
{
	struct ctl_child_result r = { .status = c->status, .killed = c->killed,
				      .limit_ms = c->limit_ms };

	pipe_close(&c->p[0]);
	pipe_close(&c->p[1]);
	event_free(c->timer);
	c->timer = NULL;
	c->p[0].buf[c->p[0].len] = 0;
	c->p[1].buf[c->p[1].len] = 0;
	r.out = c->p[0].buf;
	r.err = c->p[1].buf;
	c->done(c->arg, &r);
	child_free(c);
}

static void child_on_out(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_child *c = arg;
	struct child_pipe *p = fd == c->p[0].fd ? &c->p[0] : &c->p[1];
	char buf[4096];
	ssize_t n;

	(void)what;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		break;
	}
	if (n > 0) {
		/* the end matters (a result line comes last): keep the tail */
		if (p->len + (size_t)n > CHILD_OUT_MAX) {
			size_t drop = p->len + (size_t)n - CHILD_OUT_MAX;

			if (drop > p->len)
				drop = p->len;
			memmove(p->buf, p->buf + drop, p->len - drop);
			p->len -= drop;
		}
		memcpy(p->buf + p->len, buf, (size_t)n);
		p->len += (size_t)n;
		return;
	}
	pipe_close(p);
	if (c->reaped && c->p[0].fd < 0 && c->p[1].fd < 0)
		child_finish(c);
}

/* Reap, and enforce the time limit, without ever blocking the loop. */
static void child_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_child *c = arg;
	int64_t now = hec_now_mono_ns();

	(void)fd;
	(void)what;
	if (!c->reaped) {
		pid_t w = waitpid(c->pid, &c->status, WNOHANG);

		if (w == c->pid || (w < 0 && errno == ECHILD)) {
			c->reaped = 1;
			c->reaped_at = now;
			if (w < 0)
				c->status = 0x7f00; /* exit 127: reaped by someone else */
		} else if (!c->killed && now > c->deadline) {
			hec_warn("%s: pid %ld still running after %.1f s; killing it", c->name,
				 (long)c->pid, c->limit_ms / 1000.0);
			kill(-c->pid, SIGKILL);
			c->killed = 1;
		}
	}
	if (c->reaped && ((c->p[0].fd < 0 && c->p[1].fd < 0) ||
			  now - c->reaped_at > CHILD_LINGER_NS))
		child_finish(c);
}

/* The child: its own process group (killed whole), output to the pipes. */
static void child_exec(int out, int err, char *const *argv)
{
	sigset_t all;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

	setsid();
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (null >= 0)
		dup2(null, 0);
	dup2(out, 1);
	dup2(err, 2);
	execv(argv[0], argv);
	dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

int ctl_child_start(struct event_base *base, char *const *argv, long limit_ms,
		    ctl_child_done_fn done, void *arg, struct ctl_child **out)
{
	struct timeval tv = { 0, CHILD_POLL_MS * 1000 };
	struct ctl_child *c;
	int fds[2][2] = { { -1, -1 }, { -1, -1 } }, rc;

	if (!base || !argv || !argv[0] || !done || limit_ms <= 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->p[0].fd = c->p[1].fd = -1;
	c->done = done;
	c->arg = arg;
	c->limit_ms = limit_ms;
	snprintf(c->name, sizeof(c->name), "%s",
		 strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0]);
	if (pipe2(fds[0], O_CLOEXEC) || pipe2(fds[1], O_CLOEXEC)) {
		rc = -errno;
		goto err_close;
	}
	c->pid = fork();
	if (c->pid < 0) {
		rc = -errno;
		goto err_close;
	}
	if (c->pid == 0)
		child_exec(fds[0][1], fds[1][1], argv);
	close(fds[0][1]);
	close(fds[1][1]);
	for (int i = 0; i < 2; i++) {
		c->p[i].fd = fds[i][0];
		fcntl(c->p[i].fd, F_SETFL, fcntl(c->p[i].fd, F_GETFL) | O_NONBLOCK);
		c->p[i].ev = event_new(base, c->p[i].fd, EV_READ | EV_PERSIST, child_on_out, c);
	}
	c->deadline = hec_now_mono_ns() + limit_ms * 1000000LL;
	c->timer = event_new(base, -1, EV_PERSIST, child_on_timer, c);
	if (!c->p[0].ev || !c->p[1].ev || !c->timer || event_add(c->p[0].ev, NULL) ||
	    event_add(c->p[1].ev, NULL) || event_add(c->timer, &tv)) {
		/* cannot watch it: stop it now rather than lose track of it */
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		child_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;

err_close:
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 2; k++)
			if (fds[i][k] >= 0)
				close(fds[i][k]);
	free(c);
	return rc;
}

void ctl_child_kill(struct ctl_child *c)
{
	if (!c)
		return;
	if (!c->reaped) {
		kill(-c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
	}
	child_free(c);
}

void ctl_child_describe(const struct ctl_child_result *r, char *buf, size_t len)
{
	const char *last = NULL, *p, *end;
	size_t n = 0;

	/* the last non-empty line of stderr: hec-store's one-line reason */
	for (p = r->err; p && *p; p = end + (*end != 0)) {
		end = strchrnul(p, '\n');
		if (end > p) {
			last = p;
			n = (size_t)(end - p);
		}
	}
	if (r->killed)
		snprintf(buf, len, "no result within %.1f s: killed", r->limit_ms / 1000.0);
	else if (WIFSIGNALED(r->status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(r->status));
	else if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0)
		snprintf(buf, len, "done");
	else if (last)
		snprintf(buf, len, "%.*s", (int)n, last);
	else
		snprintf(buf, len, "exit status %d", WEXITSTATUS(r->status));
}
