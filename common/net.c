/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sockets and framed connections on a libevent loop (see include/hec/net.h).
 *
 * A conn reads into its bufferevent's input buffer and decodes whole frames
 * in place; a frame that fails to decode ends the connection with an ERROR
 * frame naming the reason, so one bad peer never disturbs the daemon.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "hec/common.h"
#include "hec/net.h"

struct hec_conn {
	struct bufferevent *bev;
	char peer[128];
	hec_conn_msg_cb on_msg;
	hec_conn_close_cb on_close;
	void *arg;
	int closing;       /* ERROR queued: close once the output drains */
	int closed;        /* on_close already called */
	int in_callback;   /* inside read_cb: freeing is deferred */
	int free_pending;
	size_t max_frame;  /* 0: HEC_MSG_MAX */
};

int hec_conn_closing(const struct hec_conn *c)
{
	return c->closing || c->closed;
}

void hec_conn_set_max_frame(struct hec_conn *c, size_t max)
{
	if (!c)
		return;
	c->max_frame = max >= HEC_MSG_MAX ? 0 : max;
}

static void conn_end(struct hec_conn *c, const char *reason)
{
	if (c->closed)
		return;
	c->closed = 1;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->on_close)
		c->on_close(c, reason, c->arg);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct hec_conn *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_end(c, "closed after error");
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct hec_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->in_callback = 1;
	while (!c->closed && !c->closing && !c->free_pending) {
		size_t avail = evbuffer_get_length(in), used = 0;
		struct hec_msg m;
		char err[512];
		uint8_t *buf;
		int rc;

		if (avail == 0)
			break;
		if (c->max_frame && avail >= HEC_MSG_HDR_LEN) {
			const uint8_t *h = evbuffer_pullup(in, HEC_MSG_HDR_LEN);
			long long flen = h ? hec_msg_peek_len(h) : -1;

			if (flen > (long long)c->max_frame) {
				hec_conn_send_error_and_close(c, "a message of %lld bytes exceeds the %zu this connection may send (now)",
							      flen, c->max_frame);
				break;
			}
		}
		if (avail > HEC_MSG_HDR_LEN + HEC_MSG_MAX)
			avail = HEC_MSG_HDR_LEN + HEC_MSG_MAX;
		buf = evbuffer_pullup(in, (ev_ssize_t)avail);
		if (!buf) {
			conn_end(c, "out of memory");
			break;
		}
		rc = hec_msg_decode(buf, avail, &m, &used, err, sizeof(err));
		if (rc == -EAGAIN)
			break;
		if (rc) {
			/* a flood of bad frames must not flood the log: 20 lines
			 * per 10 s, then a count */
			static struct hec_ratelimit bad;
			char more[64] = "";
			long held;

			if (hec_ratelimit_ok(&bad, 20, 10000000000LL, hec_now_mono_ns(), &held)) {
				if (held)
					snprintf(more, sizeof(more), " (and %ld more not logged)", held);
				hec_warn("%s: bad message: %s%s", c->peer, err, more);
			}
			hec_conn_send_error_and_close(c, "bad message: %s", err);
			break;
		}
		c->on_msg(c, &m, c->arg);
		hec_msg_clear(&m);
		evbuffer_drain(in, used);
	}
	c->in_callback = 0;
	if (c->free_pending) {
		c->free_pending = 0;
		hec_conn_free(c);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hec_conn *c = arg;
	char why[160];

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		conn_end(c, NULL);
	} else if (what & BEV_EVENT_ERROR) {
		snprintf(why, sizeof(why), "%s", strerror(EVUTIL_SOCKET_ERROR()));
		conn_end(c, why);
	}
}

struct hec_conn *hec_conn_new(struct event_base *base, int fd, const char *peer,
			      hec_conn_msg_cb on_msg, hec_conn_close_cb on_close, void *arg)
{
	struct hec_conn *c = calloc(1, sizeof(*c));

	if (!c)
		goto err_close_fd;
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto err_free;
	snprintf(c->peer, sizeof(c->peer), "%s", peer ? peer : "peer");
	c->on_msg = on_msg;
	c->on_close = on_close;
	c->arg = arg;
	evutil_make_socket_nonblocking(fd);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE))
		goto err_free_bev;
	return c;

err_free_bev:
	bufferevent_free(c->bev);
	free(c);
	return NULL;
err_free:
	free(c);
err_close_fd:
	close(fd);
	return NULL;
}

void hec_conn_free(struct hec_conn *c)
{
	if (!c)
		return;
	if (c->in_callback) {
		/* Freed from its own message callback: finish the loop first. */
		c->closed = 1;
		c->free_pending = 1;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	bufferevent_free(c->bev);
	free(c);
}

static int conn_queue(struct hec_conn *c, uint8_t *frame, size_t len)
{
	int rc = 0;

	if (c->closed || c->closing)
		rc = -EPIPE;
	else if (evbuffer_add(bufferevent_get_output(c->bev), frame, len))
		rc = -ENOMEM;
	free(frame);
	return rc;
}

int hec_conn_send(struct hec_conn *c, unsigned type, const json_t *body)
{
	uint8_t *frame;
	size_t len;
	int rc = hec_msg_encode(type, body, &frame, &len);

	if (rc) {
		char err[256] = "";

		if (rc == -EINVAL && body)
			hec_msg_validate(type, body, err, sizeof(err));
		hec_err("%s: not sending %s: %s", c->peer, hec_msg_type_name(type),
			*err ? err : strerror(-rc));
		return rc;
	}
	return conn_queue(c, frame, len);
}

struct hec_frame {
	unsigned refs;     /* the maker's, and one per output buffer holding it */
	size_t len;
	uint8_t *bytes;
};

int hec_frame_new(unsigned type, const json_t *body, struct hec_frame **out)
{
	struct hec_frame *f = calloc(1, sizeof(*f));
	int rc = f ? hec_msg_encode(type, body, &f->bytes, &f->len) : -ENOMEM;

	if (rc) {
		free(f);
		return rc;
	}
	f->refs = 1;
	*out = f;
	return 0;
}

void hec_frame_put(struct hec_frame *f)
{
	if (f && !--f->refs) {
		free(f->bytes);
		free(f);
	}
}

static void frame_sent(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	hec_frame_put(arg);
}

int hec_conn_send_frame(struct hec_conn *c, struct hec_frame *f)
{
	if (c->closed || c->closing)
		return -EPIPE;
	f->refs++;
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), f->bytes, f->len, frame_sent, f)) {
		f->refs--;
		return -ENOMEM;
	}
	return 0;
}

/* Header and payload straight into the output buffer: output streams and
 * the job network's frames go through here once per chunk or frame. */
int hec_conn_send_data(struct hec_conn *c, unsigned type, const void *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint8_t hdr[HEC_MSG_HDR_LEN];
	int rc = hec_msg_is_data(type) ? hec_msg_header(hdr, type, len) : -EINVAL;

	if (rc)
		return rc;
	if (c->closed || c->closing)
		return -EPIPE;
	if (evbuffer_expand(out, sizeof(hdr) + len) || evbuffer_add(out, hdr, sizeof(hdr)) ||
	    (len && evbuffer_add(out, data, len)))
		return -ENOMEM;
	return 0;
}

void hec_conn_send_error_and_close(struct hec_conn *c, const char *fmt, ...)
{
	char text[1024];
	json_t *body;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	body = json_pack("{s:s}", "error", text);
	if (body) {
		hec_conn_send(c, HEC_MSG_ERROR, body);
		json_decref(body);
	}
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	write_cb(c->bev, c);
}

const char *hec_conn_peer(const struct hec_conn *c)
{
	return c->peer;
}

int hec_conn_fd(const struct hec_conn *c)
{
	return (int)bufferevent_getfd(c->bev);
}

size_t hec_conn_pending(const struct hec_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void hec_conn_set_arg(struct hec_conn *c, void *arg)
{
	c->arg = arg;
}

void *hec_conn_get_arg(const struct hec_conn *c)
{
	return c->arg;
}

static int fill_sun(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	strcpy(sun->sun_path, path);
	return 0;
}

int hec_listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un sun;
	int fd, rc;

	rc = fill_sun(&sun, path);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || chmod(path, mode) ||
	    listen(fd, 64)) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int hec_split_hostport(const char *hostport, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(hostport, ':');
	long p;

	if (!colon || colon == hostport || (size_t)(colon - hostport) >= hostlen)
		return -EINVAL;
	if (hec_parse_long(colon + 1, 0, 65535, &p))
		return -EINVAL;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	*port = (int)p;
	return 0;
}

static int resolve(const char *hostport, int passive, struct addrinfo **res)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	char host[256], port[16];
	int p, rc;

	if (hec_split_hostport(hostport, host, sizeof(host), &p))
		return -EINVAL;
	snprintf(port, sizeof(port), "%d", p);
	if (passive)
		hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, res);
	if (rc)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	return 0;
}

int hec_listen_tcp(const char *hostport, int *port)
{
	struct addrinfo *res, *ai;
	int fd = -EADDRNOTAVAIL, rc, one = 1;

	rc = resolve(hostport, 1, &res);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128) ||
		    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
			rc = -errno;
			close(fd);
			fd = rc;
			continue;
		}
		if (port)
			*port = ntohs(ss.ss_family == AF_INET6 ?
				      ((struct sockaddr_in6 *)&ss)->sin6_port :
				      ((struct sockaddr_in *)&ss)->sin_port);
		break;
	}
	freeaddrinfo(res);
	return fd;
}

int hec_connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd, rc;

	rc = fill_sun(&sun, path);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Connect with a deadline: non-blocking connect, poll, then back to blocking. */
static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int flags = fcntl(fd, F_GETFL), err = 0;
	socklen_t el = sizeof(err);

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, sa, len) == 0)
		goto done;
	if (errno != EINPROGRESS)
		return -errno;
	for (;;) {
		int n = poll(&pfd, 1, timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el))
		return -errno;
	if (err)
		return -err;
done:
	fcntl(fd, F_SETFL, flags);
	return 0;
}

int hec_connect_tcp(const char *hostport, int timeout_ms)
{
	struct addrinfo *res, *ai;
	int fd = -ECONNREFUSED, rc, one = 1;

	rc = resolve(hostport, 0, &res);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fd = -errno;
			continue;
		}
		rc = connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		if (rc) {
			close(fd);
			fd = rc;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	}
	freeaddrinfo(res);
	return fd;
}

int hec_peer_cred(int fd, uid_t *uid, gid_t *gid, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return -errno;
	if (uid)
		*uid = cred.uid;
	if (gid)
		*gid = cred.gid;
	if (pid)
		*pid = cred.pid;
	return 0;
}

/* send() with MSG_NOSIGNAL: a vanished peer is an error, not a SIGPIPE. */
static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			return hec_write_all(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int hec_frame_write(int fd, unsigned type, const json_t *body)
{
	uint8_t *frame;
	size_t len;
	int rc = hec_msg_encode(type, body, &frame, &len);

	if (rc)
		return rc;
	rc = write_all(fd, frame, len);
	free(frame);
	return rc;
}

int hec_frame_write_data(int fd, unsigned type, const void *data, size_t len)
{
	uint8_t *frame;
	size_t flen;
	int rc = hec_msg_encode_data(type, data, len, &frame, &flen);

	if (rc)
		return rc;
	rc = write_all(fd, frame, flen);
	free(frame);
	return rc;
}

/* Read exactly @len bytes before the deadline. */
static int read_full(int fd, uint8_t *p, size_t len, int64_t deadline_ns)
{
	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int timeout = -1, n;
		ssize_t r;

		if (deadline_ns >= 0) {
			int64_t left = deadline_ns - hec_now_mono_ns();

			if (left <= 0)
				return -ETIMEDOUT;
			timeout = (int)(left / 1000000) + 1;
		}
		n = poll(&pfd, 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		r = read(fd, p, len);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ECONNRESET;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int hec_frame_read(int fd, struct hec_msg *m, void **bufp, int timeout_ms,
		   char *err, size_t errlen)
{
	int64_t deadline = timeout_ms < 0 ? -1 : hec_now_mono_ns() + (int64_t)timeout_ms * 1000000;
	uint8_t hdr[HEC_MSG_HDR_LEN], *buf;
	size_t used, len;
	int rc;

	*bufp = NULL;
	rc = read_full(fd, hdr, sizeof(hdr), deadline);
	if (rc)
		return rc;
	/* Let the decoder judge the header (magic, version, type, length). */
	rc = hec_msg_decode(hdr, sizeof(hdr), m, &used, err, errlen);
	if (rc != -EAGAIN && rc != 0)
		return rc;
	if (rc == 0) { /* empty payload */
		hec_msg_clear(m);
	}
	len = (size_t)hdr[4] << 24 | (size_t)hdr[5] << 16 | (size_t)hdr[6] << 8 | hdr[7];
	buf = malloc(HEC_MSG_HDR_LEN + len + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, hdr, sizeof(hdr));
	rc = read_full(fd, buf + HEC_MSG_HDR_LEN, len, deadline);
	if (rc)
		goto err_free;
	rc = hec_msg_decode(buf, HEC_MSG_HDR_LEN + len, m, &used, err, errlen);
	if (rc)
		goto err_free;
	*bufp = buf;
	return 0;

err_free:
	free(buf);
	return rc;
}
