/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sockets and framed connections.
 *
 * Daemons use struct hec_conn on a libevent loop: whole decoded messages are
 * delivered to a callback; a peer that sends an undecodable frame is sent an
 * ERROR frame and dropped (the close callback runs), never crashing the
 * daemon.  Front ends (CLI, launch bridge) use the blocking helpers.
 */
#ifndef HEC_NET_H
#define HEC_NET_H

#include <stddef.h>
#include <sys/types.h>
#include <event2/event.h>
#include <jansson.h>

#include "hec/msg.h"

struct hec_conn;

/** Called with each valid message; @m and its body are freed after return. */
typedef void (*hec_conn_msg_cb)(struct hec_conn *c, const struct hec_msg *m, void *arg);
/** Called once when the connection ends (@reason: NULL for a clean EOF).
 *  The callee must hec_conn_free() @c (or let the owner do it later). */
typedef void (*hec_conn_close_cb)(struct hec_conn *c, const char *reason, void *arg);

/** Wrap a connected non-blocking fd (ownership moves to the conn). */
struct hec_conn *hec_conn_new(struct event_base *base, int fd, const char *peer,
			      hec_conn_msg_cb on_msg, hec_conn_close_cb on_close, void *arg);
void hec_conn_free(struct hec_conn *c);
/** 1 once an ERROR was queued to close @c (or it closed). */
int hec_conn_closing(const struct hec_conn *c);
/** The largest frame @c takes (default HEC_MSG_MAX): a daemon's TCP peer
 *  that has not proven itself (REGISTER with the key) gets a small one, so
 *  that strangers cannot make it buffer megabytes each; a larger frame is
 *  refused (ERROR, then closed) before it is read. */
void hec_conn_set_max_frame(struct hec_conn *c, size_t max); /* (@c NULL: nothing) */
/** Queue a JSON message. \return 0 or -errno (-EINVAL: body breaks schema). */
int hec_conn_send(struct hec_conn *c, unsigned type, const json_t *body);
int hec_conn_send_data(struct hec_conn *c, unsigned type, const void *data, size_t len);

/* One message for many connections (a body that goes to every node of a
 * job): encoded once, queued on each without a copy, freed when the last
 * connection has sent it (or dropped it) and its maker let go. */
struct hec_frame;
/** Encode @body (not stolen) as a frame of @type.  \return 0 with *@out,
 *  -EINVAL (the body breaks the schema), -EMSGSIZE, -ENOMEM. */
int hec_frame_new(unsigned type, const json_t *body, struct hec_frame **out);
/** The maker lets go of @f (NULL: nothing). */
void hec_frame_put(struct hec_frame *f);
/** Queue @f on @c.  \return 0, -EPIPE (closing), -ENOMEM. */
int hec_conn_send_frame(struct hec_conn *c, struct hec_frame *f);
/** Queue an ERROR frame, then close after it is flushed. */
void hec_conn_send_error_and_close(struct hec_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** Peer description given at creation ("unix:uid=0" or "127.0.0.1:4567"). */
const char *hec_conn_peer(const struct hec_conn *c);
int hec_conn_fd(const struct hec_conn *c);
/** Bytes queued for sending (back-pressure for data streams). */
size_t hec_conn_pending(const struct hec_conn *c);
void hec_conn_set_arg(struct hec_conn *c, void *arg);
void *hec_conn_get_arg(const struct hec_conn *c);

/** Listening sockets (non-blocking, CLOEXEC). \return fd or -errno. */
int hec_listen_unix(const char *path, mode_t mode);
/** @hostport "host:port" (port 0: any); the bound port is stored in *@port. */
int hec_listen_tcp(const char *hostport, int *port);
/** Split "host:port"; \return 0 or -EINVAL. */
int hec_split_hostport(const char *hostport, char *host, size_t hostlen, int *port);

/** Blocking connects (CLOEXEC). \return fd or -errno. */
int hec_connect_unix(const char *path);
int hec_connect_tcp(const char *hostport, int timeout_ms);
/** Peer credentials of a Unix socket. \return 0 or -errno. */
int hec_peer_cred(int fd, uid_t *uid, gid_t *gid, pid_t *pid);

/** Blocking frame I/O. Read: \return 0, -ETIMEDOUT, -ECONNRESET on EOF,
 *  or a decode error (@err says why). timeout_ms < 0 waits forever. */
int hec_frame_write(int fd, unsigned type, const json_t *body);
int hec_frame_write_data(int fd, unsigned type, const void *data, size_t len);
int hec_frame_read(int fd, struct hec_msg *m, void **bufp, int timeout_ms,
		   char *err, size_t errlen);

#endif
