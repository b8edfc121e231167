/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-guestctl: the host end of a guest channel, for tests and debugging.
 *
 *   hec-guestctl [--timeout SECS] SOCKET hello
 *   hec-guestctl [--timeout SECS] SOCKET ping
 *   hec-guestctl [--timeout SECS] SOCKET run [--uid U] [--gid G] [--cwd DIR]
 *                [--env K=V]... [--id N] -- PROGRAM ARGS...
 *
 * SOCKET is the Unix socket of QEMU's chardev for the virtserialport named
 * hec.0, in server mode (-chardev socket,id=hc,path=SOCKET,server=on,wait=off):
 * hec-guestctl connects to it (retrying until it exists) and waits for the
 * guest's HELLO (hec-guest sends one whenever a host connects).  "hello"
 * prints the HELLO's entries, one per line; "ping" a PONG's round trip;
 * "run" relays stdin/stdout/stderr and exits with the command's status
 * (128+signal if killed, 127 if it could not start).  --timeout bounds the
 * wait for HELLO (default 60 s), not the command.  Exit 255: no guest.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hec/guest.h"
#include "vm/guest_client.h"

#define PROG "hec-guestctl"
#define NO_GUEST 255

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int usage(void)
{
	fprintf(stderr, "usage: " PROG " [--timeout SECS] SOCKET hello|ping|run [--uid U] [--gid G] [--cwd DIR] [--env K=V]... [--id N] -- PROGRAM ARGS...\n");
	return 2;
}

static int connect_unix(const char *path, long long deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int err;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, PROG ": %s: path too long for a Unix socket\n", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		err = errno;
		close(fd);
		if (now_ms() >= deadline || (err != ENOENT && err != ECONNREFUSED))
			break;
		usleep(100000);
	}
	fprintf(stderr, PROG ": %s: %s\n", path, strerror(err));
	return -err;
}

/* Wait for HELLO; a PING a second makes a guest that missed our connect answer. */
static int wait_hello(int fd, struct gc_reader *r, struct hec_guest_frame *f, long long deadline)
{
	for (int seq = 1;; seq++) {
		long long left = deadline - now_ms();
		int rc;

		if (left <= 0)
			break;
		rc = gc_wait_frame(fd, r, f, left < 1000 ? (int)left : 1000);
		if (rc == 1 && f->type == HEC_G_HELLO)
			return 0;
		if (rc == 1 && f->type == HEC_G_PONG)
			return 1;
		if (rc == 1)
			continue;
		if (rc != -ETIMEDOUT) {
			fprintf(stderr, PROG ": guest channel: %s\n",
				rc == -ECONNRESET ? "closed by QEMU" : strerror(-rc));
			return -1;
		}
		{
			char ping[32];
			int n = snprintf(ping, sizeof(ping), "seq=%d", seq);

			if (gc_send(fd, HEC_G_PING, ping, (uint32_t)n + 1) < 0)
				return -1;
		}
	}
	fprintf(stderr, PROG ": no HELLO from the guest within the timeout\n");
	return -1;
}

static void print_kv(const struct hec_guest_frame *f)
{
	uint32_t pos = 0;
	const char *s;

	if (hec_guest_kv_check(f->payload, f->len))
		return;
	while ((s = hec_guest_kv_next(f->payload, f->len, &pos)))
		printf("%s\n", s);
}

static int do_run(int fd, struct gc_reader *r, int argc, char **argv)
{
	struct hec_guest_kvbuf kv = { 0 };
	const char *uid = NULL, *gid = NULL, *cwd = "/", *id = "1";
	int i, rc = 0, status;

	for (i = 0; i < argc && strcmp(argv[i], "--"); i += 2) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			return usage();
		if (!strcmp(opt, "--uid"))
			uid = val;
		else if (!strcmp(opt, "--gid"))
			gid = val;
		else if (!strcmp(opt, "--cwd"))
			cwd = val;
		else if (!strcmp(opt, "--id"))
			id = val;
		else if (!strcmp(opt, "--env"))
			rc = rc ?: hec_guest_kv_add(&kv, "env", val);
		else
			return usage();
	}
	if (i + 1 >= argc)
		return usage();
	rc = rc ?: hec_guest_kv_add(&kv, "id", id);
	rc = rc ?: (uid ? hec_guest_kv_add(&kv, "uid", uid) : hec_guest_kv_addf(&kv, "uid", "%u", (unsigned)getuid()));
	rc = rc ?: (gid ? hec_guest_kv_add(&kv, "gid", gid) : hec_guest_kv_addf(&kv, "gid", "%u", (unsigned)getgid()));
	rc = rc ?: hec_guest_kv_add(&kv, "cwd", cwd);
	for (i++; !rc && i < argc; i++)
		rc = hec_guest_kv_add(&kv, "arg", argv[i]);
	if (!rc)
		rc = gc_send(fd, HEC_G_RUN, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	if (rc) {
		fprintf(stderr, PROG ": RUN: %s\n", strerror(-rc));
		return NO_GUEST;
	}
	status = gc_relay(fd, r, PROG, "guest", strtoll(id, NULL, 10));
	return status;
}

int main(int argc, char **argv)
{
	struct gc_reader r = { 0 };
	struct hec_guest_frame f;
	long long timeout_ms = 60000, deadline, t0;
	const char *sock, *cmd;
	int fd, rc, status = 0;

	if (argc > 2 && !strcmp(argv[1], "--timeout")) {
		timeout_ms = atoll(argv[2]) * 1000;
		argc -= 2;
		argv += 2;
	}
	if (argc < 3)
		return usage();
	sock = argv[1];
	cmd = argv[2];
	t0 = now_ms();
	deadline = t0 + timeout_ms;
	fd = connect_unix(sock, deadline);
	if (fd < 0)
		return NO_GUEST;
	rc = wait_hello(fd, &r, &f, deadline);
	if (rc < 0)
		return NO_GUEST;
	if (!strcmp(cmd, "hello")) {
		if (rc == 0)
			print_kv(&f);
		else
			printf("pong (the guest was up before we connected)\n");
	} else if (!strcmp(cmd, "ping")) {
		long long t1 = now_ms();

		rc = gc_send(fd, HEC_G_PING, "seq=0", 6);
		while (rc == 0 && (rc = gc_wait_frame(fd, &r, &f, 10000)) == 1 && f.type != HEC_G_PONG)
			rc = 0;
		if (rc != 1) {
			fprintf(stderr, PROG ": no PONG\n");
			status = NO_GUEST;
		} else {
			printf("pong in %lld ms (HELLO after %lld ms)\n", now_ms() - t1, t1 - t0);
		}
	} else if (!strcmp(cmd, "run")) {
		status = do_run(fd, &r, argc - 3, argv + 3);
	} else {
		status = usage();
	}
	gc_reader_free(&r);
	close(fd);
	return status;
}
