/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-relay PROG [ARG...]: one MPI proxy's end of a spawn bridge, outliving
 * hecd (as sshd's per-session child outlives a restart of the listener).
 *
 * hec-launch (Hydra's rsh) connects to a node's hecd and sends SPAWN; hecd
 * checks it and spawns this program in the job's partition, as the job's
 * user, with the connection as its fd 0 and 1, then forgets the connection.
 * From then on hecd is not in the proxy's way: a hecd restart or upgrade
 * leaves the MPI job running.  This program forks and execs PROG (the
 * proxy's `/bin/sh -c CMD`) in a process group of its own, answers SPAWNED,
 * sends PROG's output as STDOUT/STDERR frames, and once PROG is reaped and
 * its pipes are drained (or LINGER_MS after its end, when something it
 * started still holds them) sends EXITED and waits for hec-launch to close.
 * If hec-launch goes away first (mpiexec gave up on the proxy), PROG's
 * process group is killed.  When its own output is not read, it stops
 * reading PROG's pipes: PROG blocks, as on a slow terminal.
 *
 * Its frames are msg.c's (libhec), as hec-launch decodes them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "hec/msg.h"

#define CONN 0             /* the connection: fd 0 (and 1) */
#define READ_CHUNK 65536
#define LINGER_MS 2000     /* pipes held open by a grandchild after PROG's end */
#define FLUSH_MS 10000     /* hec-launch not closing after EXITED */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write all of @buf to the connection (non-blocking: hecd's accept made it
 * so); -1 when hec-launch has gone. */
static int conn_write(const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(CONN, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { CONN, POLLOUT, 0 };

			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A data frame: its header (msg.c's), then the bytes as they are. */
static int send_data(int type, const void *payload, size_t len)
{
	uint8_t hdr[HEC_MSG_HDR_LEN];

	return hec_msg_header(hdr, (unsigned)type, len) || conn_write(hdr, sizeof(hdr)) ||
	       conn_write(payload, len) ? -1 : 0;
}

/* A message of @type with @body (taken), encoded and checked by msg.c. */
static int send_msg(int type, json_t *body)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	int rc = body ? hec_msg_encode((unsigned)type, body, &frame, &len) : -ENOMEM;

	json_decref(body);
	if (!rc)
		rc = conn_write(frame, len);
	free(frame);
	return rc ? -1 : 0;
}

static int send_exited(int status)
{
	return send_msg(HEC_MSG_EXITED, json_pack("{s:i, s:i}", "exit",
						  WIFSIGNALED(status) ? 0 : WEXITSTATUS(status),
						  "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0));
}

/* hec-launch went away: the proxy must not run on without it */
static void __attribute__((noreturn)) abandon(pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	_exit(1);
}

static pid_t start(char **argv, int out[2], int err[2], int *e)
{
	int ep[2];
	pid_t pid;

	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(ep, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0)
			_exit(126);
		if (null > 2)
			close(null);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		*e = errno;
		(void)!write(ep[1], e, sizeof(*e));
		_exit(*e == ENOENT ? 127 : 126);
	}
	close(out[1]);
	close(err[1]);
	close(ep[1]);
	if (pid > 0 && read(ep[0], e, sizeof(*e)) != (ssize_t)sizeof(*e))
		*e = 0;
	close(ep[0]);
	return pid;
}

int main(int argc, char **argv)
{
	int out[2], err[2], e = 0, status = 0, reaped = 0, pidfd;
	int fds[2];
	int64_t linger_end = 0;
	char buf[READ_CHUNK];
	pid_t pid;

	if (argc < 2) {
		fprintf(stderr, "usage: hec-relay PROG [ARG...] (fd 0: the spawn bridge's connection)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	pid = start(argv + 1, out, err, &e);
	if (pid < 0) {
		send_msg(HEC_MSG_ERROR, json_pack("{s:s+}", "error", "hec-relay: cannot start the proxy: ",
						  strerror(errno)));
		return 1;
	}
	if (e) {
		char line[512];
		int n = snprintf(line, sizeof(line), "hec-relay: cannot run %s: %s\n", argv[1], strerror(e));

		if (n > 0)
			send_data(HEC_MSG_STDERR, line, (size_t)n);
	}
	if (send_msg(HEC_MSG_SPAWNED, json_pack("{s:i}", "pid", (int)pid)))
		abandon(pid);
	/* PROG's end wakes the poll below (a pidfd: Linux 5.3) */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fds[0] = out[0];
	fds[1] = err[0];
	while (fds[0] >= 0 || fds[1] >= 0 || !reaped) {
		struct pollfd p[4] = {
			{ CONN, POLLIN, 0 }, { fds[0], POLLIN, 0 }, { fds[1], POLLIN, 0 },
			{ reaped ? -1 : pidfd, POLLIN, 0 },
		};
		int timeout = -1;

		if (reaped)
			timeout = (int)(linger_end - now_ms() > 0 ? linger_end - now_ms() : 0);
		else if (pidfd < 0)
			timeout = 100; /* no pidfd: look for PROG's end now and then */
		if (poll(p, 4, timeout) < 0 && errno != EINTR)
			abandon(pid);
		if (p[0].revents) {
			/* hec-launch sends nothing after SPAWN: this is its close */
			ssize_t n = recv(CONN, buf, sizeof(buf), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				abandon(pid);
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (fds[i] < 0 || !p[1 + i].revents)
				continue;
			n = read(fds[i], buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(fds[i]);
				fds[i] = -1;
			} else if (send_data(i == 0 ? HEC_MSG_STDOUT : HEC_MSG_STDERR, buf, (size_t)n)) {
				abandon(pid);
			}
		}
		if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
			reaped = 1;
			linger_end = now_ms() + LINGER_MS;
		}
		if (reaped && now_ms() >= linger_end)
			for (int i = 0; i < 2; i++)
				if (fds[i] >= 0) {
					close(fds[i]);
					fds[i] = -1;
				}
	}
	if (send_exited(status))
		return 1;
	/* hec-launch closes once it has read EXITED: closing first, with its
	 * bytes unread, could reset the connection under them */
	shutdown(CONN, SHUT_WR);
	for (int64_t end = now_ms() + FLUSH_MS; now_ms() < end;) {
		struct pollfd p = { CONN, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		n = recv(CONN, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
	return 0;
}
