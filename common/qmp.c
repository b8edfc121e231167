/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Synchronous QMP monitor (hec/qmp.h).  QMP is one JSON object per line; a
 * reply is the next line holding "return" or "error" (replies come in
 * order, events may come between them).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hec/common.h"
#include "hec/qmp.h"

struct qmp_mon {
	pthread_mutex_t lock;
	int fd;
	int refs;
	int stopped;              /* last confirmed state */
	int pending;              /* -1 none, else the state the command in flight asks for */
	char buf[8192];
	size_t len, used;         /* bytes held; bytes of the line last returned */
};

static int64_t now_ms(void)
{
	return hec_now_mono_ns() / 1000000;
}

/* Next line within @timeout_ms, NUL-terminated at m->buf.  \return its
 * length or -errno. */
static int next_line(struct qmp_mon *m, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	if (m->used) {
		memmove(m->buf, m->buf + m->used, m->len - m->used);
		m->len -= m->used;
		m->used = 0;
	}
	for (;;) {
		char *nl = memchr(m->buf, '\n', m->len);
		struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
		int64_t left;
		ssize_t n;

		if (nl) {
			*nl = 0;
			m->used = (size_t)(nl - m->buf) + 1;
			return (int)(nl - m->buf);
		}
		if (m->len == sizeof(m->buf) - 1)
			m->len = 0; /* longer than any reply we wait for: an event; skip it */
		left = deadline - now_ms();
		if (left < 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0 && left == 0)
			return -ETIMEDOUT; /* (not spinning out the rest of this ms) */
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(m->fd, m->buf + m->len, sizeof(m->buf) - 1 - m->len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		m->len += (size_t)n;
	}
}

/* What a line from QEMU is: a reply, an error reply, the greeting, or
 * anything else (an event, or a line that is not JSON: skipped). */
enum line_kind { L_OTHER, L_RETURN, L_ERROR, L_GREETING };

static enum line_kind classify(const char *line, size_t len)
{
	json_t *o = json_loadb(line, len, 0, NULL);
	enum line_kind k = L_OTHER;

	if (json_is_object(o)) {
		if (json_object_get(o, "return"))
			k = L_RETURN;
		else if (json_object_get(o, "error"))
			k = L_ERROR;
		else if (json_object_get(o, "QMP"))
			k = L_GREETING;
	}
	json_decref(o);
	return k;
}

/* Wait for the reply to the command in flight. */
static int reply(struct qmp_mon *m, int timeout_ms, char *out, size_t len)
{
	for (;;) {
		int rc = next_line(m, timeout_ms);
		enum line_kind k;

		if (rc < 0)
			return rc;
		k = classify(m->buf, (size_t)rc);
		if (k != L_RETURN && k != L_ERROR)
			continue;
		if (out && len)
			snprintf(out, len, "%s", m->buf);
		return k == L_ERROR ? -EIO : 0;
	}
}

static int send_line(struct qmp_mon *m, const char *cmd)
{
	int rc = hec_write_all(m->fd, cmd, strlen(cmd));

	return rc ? rc : hec_write_all(m->fd, "\n", 1);
}

int qmp_mon_open(int fd, int timeout_ms, struct qmp_mon **out)
{
	struct qmp_mon *m = calloc(1, sizeof(*m));
	int rc;

	if (!m) {
		close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->fd = fd;
	m->refs = 1;
	m->pending = -1;
	rc = next_line(m, timeout_ms);
	if (rc >= 0 && classify(m->buf, (size_t)rc) != L_GREETING)
		rc = -EPROTO;
	if (rc >= 0)
		rc = send_line(m, "{\"execute\":\"qmp_capabilities\"}");
	if (rc >= 0)
		rc = reply(m, timeout_ms, NULL, 0);
	if (rc < 0) {
		qmp_mon_put(m);
		return rc;
	}
	*out = m;
	return 0;
}

void qmp_mon_get(struct qmp_mon *m)
{
	pthread_mutex_lock(&m->lock);
	m->refs++;
	pthread_mutex_unlock(&m->lock);
}

void qmp_mon_put(struct qmp_mon *m)
{
	int last;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	last = --m->refs == 0;
	pthread_mutex_unlock(&m->lock);
	if (!last)
		return;
	close(m->fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Settle a stop/cont in flight: its reply decides the state. */
static int settle(struct qmp_mon *m, long timeout_us)
{
	int rc;

	if (m->pending < 0)
		return 0;
	rc = reply(m, (int)(timeout_us / 1000), NULL, 0);
	if (rc == -ETIMEDOUT)
		return rc;
	if (rc == 0)
		m->stopped = m->pending;
	m->pending = -1;
	return rc;
}

#define SETTLE_US 2000000L

int qmp_mon_command(struct qmp_mon *m, const char *cmd, char *out, size_t len, int timeout_ms)
{
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = settle(m, SETTLE_US);
	if (!rc)
		rc = send_line(m, cmd);
	if (!rc)
		rc = reply(m, timeout_ms, out, len);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* Called with m->lock held, which it lets go: if the command before settled
 * (@rc 0), send stop or cont, unanswered. \return @rc or send's error. */
static int send_switch(struct qmp_mon *m, int rc, int stopped)
{
	if (!rc)
		rc = send_line(m, stopped ? "{\"execute\":\"stop\"}" : "{\"execute\":\"cont\"}");
	if (!rc)
		m->pending = !!stopped;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int qmp_mon_set(struct qmp_mon *m, int stopped)
{
	pthread_mutex_lock(&m->lock);
	return send_switch(m, settle(m, SETTLE_US), stopped);
}

int qmp_mon_try_set(struct qmp_mon *m, int stopped)
{
	int rc;

	if (pthread_mutex_trylock(&m->lock))
		return -EAGAIN;
	rc = settle(m, 0);
	return send_switch(m, rc == -ETIMEDOUT ? -EAGAIN : rc, stopped);
}

void qmp_mon_assume(struct qmp_mon *m, int stopped)
{
	pthread_mutex_lock(&m->lock);
	m->stopped = !!stopped;
	if (m->pending >= 0)
		m->pending = !!stopped;
	pthread_mutex_unlock(&m->lock);
}

/* The monitor's lock within @timeout_us: another thread's wait on it is
 * bounded too, but it is not ours to sit out beyond our own budget. */
static int lock_within(struct qmp_mon *m, long timeout_us)
{
	struct timespec ts;

	if (!pthread_mutex_trylock(&m->lock))
		return 0;
	if (timeout_us <= 0)
		return -ETIMEDOUT;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_us / 1000000;
	ts.tv_nsec += (timeout_us % 1000000) * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_mutex_timedlock(&m->lock, &ts) ? -ETIMEDOUT : 0;
}

int qmp_mon_wait(struct qmp_mon *m, int stopped, long timeout_us)
{
	int64_t t0 = hec_now_mono_ns();
	int rc;

	if (lock_within(m, timeout_us))
		return -ETIMEDOUT;
	timeout_us -= (long)((hec_now_mono_ns() - t0) / 1000);
	rc = settle(m, timeout_us > 0 ? timeout_us : 0);
	if (!rc && m->stopped != !!stopped)
		rc = -ETIMEDOUT; /* nobody asked for that state */
	pthread_mutex_unlock(&m->lock);
	return rc;
}
