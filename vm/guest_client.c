/* SPDX-License-Identifier: BSD-3-Clause */
/* Client end of the guest channel: see guest_client.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vm/guest_client.h"

#define EXIT_BROKEN 255
#define IN_CHUNK 65536

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int gc_send(int fd, unsigned type, const void *payload, uint32_t len)
{
	uint8_t hdr[HEC_GUEST_HDR];
	int rc;

	hec_guest_header(hdr, type, len);
	rc = write_all(fd, hdr, sizeof(hdr));
	if (!rc && len)
		rc = write_all(fd, payload, len);
	return rc;
}

long gc_fill(int fd, struct gc_reader *r)
{
	ssize_t n;

	/* Frames handed out point into buf: compact only now, on the next read. */
	if (r->off) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->cap - r->len < IN_CHUNK) {
		size_t cap = r->cap ? r->cap * 2 : 2 * IN_CHUNK;
		uint8_t *nb;

		if (cap > 2 * (HEC_GUEST_HDR + HEC_GUEST_MAX_PAYLOAD) + IN_CHUNK)
			cap = 2 * (HEC_GUEST_HDR + HEC_GUEST_MAX_PAYLOAD) + IN_CHUNK;
		if (cap - r->len < IN_CHUNK)
			return -ENOBUFS;
		nb = realloc(r->buf, cap);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	do
		n = read(fd, r->buf + r->len, r->cap - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	r->len += (size_t)n;
	return n;
}

int gc_next(struct gc_reader *r, struct hec_guest_frame *f)
{
	long used;

	if (!r->buf)
		return 0; /* nothing read yet */
	used = hec_guest_decode(r->buf + r->off, r->len - r->off, f);
	if (used <= 0)
		return (int)used;
	r->off += (size_t)used;
	return 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gc_wait_frame(int fd, struct gc_reader *r, struct hec_guest_frame *f, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left;
		long n;
		int rc = gc_next(r, f);

		if (rc)
			return rc;
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc <= 0)
			continue;
		n = gc_fill(fd, r);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return (int)n;
	}
}

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	ssize_t n = write(sig_pipe[1], &c, 1);

	(void)n;
	errno = saved;
}

static int watch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	/* A reader that went away must not kill us before the EXIT arrives. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int send_signal(int fd, long long id, int sig)
{
	struct hec_guest_kvbuf kv = { 0 };
	int rc = hec_guest_kv_addf(&kv, "id", "%lld", id);

	if (!rc)
		rc = hec_guest_kv_addf(&kv, "signal", "%d", sig);
	if (!rc)
		rc = gc_send(fd, HEC_G_SIGNAL, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	return rc;
}

/* An EXIT frame -> the status to exit with. */
static int exit_status(const char *prog, const char *who, const struct hec_guest_frame *f)
{
	long long code = 0, sig = 0;
	const char *err;

	if (hec_guest_kv_check(f->payload, f->len)) {
		fprintf(stderr, "%s: %s: malformed EXIT frame\n", prog, who);
		return EXIT_BROKEN;
	}
	err = hec_guest_kv_get(f->payload, f->len, "error");
	if (err)
		fprintf(stderr, "%s: %s: %s\n", prog, who, err);
	if (hec_guest_kv_int(f->payload, f->len, "signal", 0, 127, &sig) == 0 && sig)
		return 128 + (int)sig;
	if (hec_guest_kv_int(f->payload, f->len, "exit", 0, 255, &code))
		return err ? 127 : EXIT_BROKEN;
	return (int)code;
}

int gc_relay(int fd, struct gc_reader *r, const char *prog, const char *who, long long id)
{
	uint8_t *in = malloc(IN_CHUNK + 1);
	int stdin_open = 1, status = EXIT_BROKEN;

	if (!in || watch_signals() < 0) {
		fprintf(stderr, "%s: %s\n", prog, strerror(ENOMEM));
		free(in);
		return EXIT_BROKEN;
	}
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = sig_pipe[0], .events = POLLIN },
			{ .fd = stdin_open ? 0 : -1, .events = POLLIN },
		};
		struct hec_guest_frame f;
		int rc;

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
			break;
		}
		if (p[1].revents & POLLIN) {
			unsigned char c;

			while (read(sig_pipe[0], &c, 1) == 1)
				if (send_signal(fd, id, c) < 0)
					goto out;
		}
		if (p[2].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) {
			ssize_t n = read(0, in + 1, IN_CHUNK);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				stdin_open = 0;
			in[0] = 0;
			if (gc_send(fd, HEC_G_IN, in, n > 0 ? (uint32_t)n + 1 : 1) < 0) {
				fprintf(stderr, "%s: %s: connection lost\n", prog, who);
				goto out;
			}
		}
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		{
			long n = gc_fill(fd, r);

			if (n <= 0) {
				fprintf(stderr, "%s: %s: connection closed before the command's exit status\n",
					prog, who);
				goto out;
			}
		}
		while ((rc = gc_next(r, &f)) > 0) {
			switch (f.type) {
			case HEC_G_OUT:
				if (f.len >= 1) {
					int out = f.payload[0] == 2 ? 2 : 1;

					/* our reader gone: keep going, the exit status still matters */
					write_all(out, f.payload + 1, f.len - 1);
				}
				break;
			case HEC_G_EXIT:
				status = exit_status(prog, who, &f);
				goto out;
			case HEC_G_LOG:
				if (!hec_guest_kv_check(f.payload, f.len)) {
					const char *m = hec_guest_kv_get(f.payload, f.len, "msg");

					if (m)
						fprintf(stderr, "%s: %s: guest: %s\n", prog, who, m);
				}
				break;
			default:
				break; /* STARTED, PONG, HELLO: nothing to relay */
			}
		}
		if (rc < 0) {
			fprintf(stderr, "%s: %s: bad frame: %s\n", prog, who, strerror(-rc));
			goto out;
		}
	}
out:
	free(in);
	return status;
}

void gc_reader_free(struct gc_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->off = r->cap = 0;
}
