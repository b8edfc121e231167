/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-launch HOST CMD...: the launcher Hydra's mpiexec runs for each proxy
 * (HYDRA_LAUNCHER=rsh, HYDRA_LAUNCHER_EXEC=hec-launch), in place of rsh.
 *
 * It asks HOST's agent (found in HEC_AGENT_MAP) to run CMD with /bin/sh -c
 * inside the job's partition there, relays the command's stdout and stderr
 * to its own, and exits with the command's status (128+signal if killed),
 * so to Hydra it looks exactly like rsh.  SIGTERM/SIGINT close the
 * connection, which makes the agent kill the command.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"

#define CONNECT_TIMEOUT_MS 5000
#define EXIT_USAGE 2
#define EXIT_FAIL 255

static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;
	ssize_t n;

	got_signal = sig;
	n = write(sig_pipe[1], &c, 1);
	(void)n;
	errno = saved;
}

/* "node0=127.0.0.1:4001,node1=..." -> the address of @host. */
static int lookup(const char *map, const char *host, char *addr, size_t len)
{
	size_t hl = strlen(host);
	const char *p = map;

	while (p && *p) {
		const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);

		if ((size_t)(end - p) > hl && !strncmp(p, host, hl) && p[hl] == '=') {
			size_t al = (size_t)(end - p) - hl - 1;

			if (al == 0 || al >= len)
				return -EINVAL;
			memcpy(addr, p + hl + 1, al);
			addr[al] = 0;
			return 0;
		}
		p = comma ? comma + 1 : NULL;
	}
	return -ENOENT;
}

static char *join_args(int argc, char **argv)
{
	size_t len = 1;
	char *cmd;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	cmd = calloc(1, len);
	if (!cmd)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (i)
			strcat(cmd, " ");
		strcat(cmd, argv[i]);
	}
	return cmd;
}

static int spawned; /* the agent started the command */

static int launch(int argc, char **argv)
{
	const char *host, *map = getenv("HEC_AGENT_MAP"), *jobs = getenv("HEC_JOB_ID");
	const char *key = getenv("HEC_JOB_KEY");
	struct sigaction sa = { .sa_handler = on_signal };
	char addr[320], err[512];
	uint8_t *buf = NULL;
	size_t used = 0, cap = 0;
	json_t *spawn;
	long job;
	char *cmd;
	int fd, rc, status = EXIT_FAIL, done = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: hec-launch HOST COMMAND... (run by mpiexec, HYDRA_LAUNCHER_EXEC)\n");
		return EXIT_USAGE;
	}
	host = argv[1];
	if (!map || !jobs || !key) {
		fprintf(stderr, "hec-launch: %s: HEC_AGENT_MAP, HEC_JOB_ID and HEC_JOB_KEY must be set (run inside a hec job)\n",
			host);
		return EXIT_USAGE;
	}
	if (hec_parse_long(jobs, 1, 2147483647L, &job)) {
		fprintf(stderr, "hec-launch: %s: HEC_JOB_ID '%s' is not a job id\n", host, jobs);
		return EXIT_USAGE;
	}
	rc = lookup(map, host, addr, sizeof(addr));
	if (rc) {
		fprintf(stderr, "hec-launch: %s: not a node of this job (HEC_AGENT_MAP=%s)\n", host, map);
		return EXIT_FAIL;
	}
	cmd = join_args(argc - 2, argv + 2);
	if (!cmd) {
		fprintf(stderr, "hec-launch: %s: out of memory\n", host);
		return EXIT_FAIL;
	}

	if (pipe2(sig_pipe, O_CLOEXEC) == 0) {
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);

	fd = hec_connect_tcp(addr, CONNECT_TIMEOUT_MS);
	if (fd < 0) {
		fprintf(stderr, "hec-launch: %s: cannot reach agent at %s: %s\n", host, addr,
			strerror(-fd));
		free(cmd);
		return EXIT_FAIL;
	}
	spawn = json_pack("{s:I, s:s, s:s, s:s}", "job", (json_int_t)job, "key", key, "node", host,
			  "cmd", cmd);
	free(cmd);
	rc = spawn ? hec_frame_write(fd, HEC_MSG_SPAWN, spawn) : -ENOMEM;
	json_decref(spawn);
	if (rc) {
		fprintf(stderr, "hec-launch: %s: cannot send SPAWN to %s: %s\n", host, addr,
			strerror(-rc));
		close(fd);
		return EXIT_FAIL;
	}

	/* Relay frames until EXITED, an ERROR, the agent going away, or a signal. */
	while (!done) {
		struct pollfd pfd[2] = { { fd, POLLIN, 0 }, { sig_pipe[0], POLLIN, 0 } };
		struct hec_msg m;
		size_t consumed;
		ssize_t n;

		if (got_signal) {
			/* Closing the connection makes the agent kill the command. */
			status = 128 + got_signal;
			break;
		}
		if (poll(pfd, sig_pipe[0] >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "hec-launch: %s: poll: %s\n", host, strerror(errno));
			break;
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (cap - used < 65536) {
			size_t ncap = cap ? cap * 2 : 131072;
			uint8_t *nb;

			if (ncap > HEC_MSG_MAX + HEC_MSG_HDR_LEN + 65536)
				ncap = HEC_MSG_MAX + HEC_MSG_HDR_LEN + 65536;
			nb = ncap > cap ? realloc(buf, ncap) : NULL;
			if (!nb) {
				fprintf(stderr, "hec-launch: %s: out of memory\n", host);
				break;
			}
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "hec-launch: %s: agent at %s closed the connection%s%s\n", host,
				addr, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			break;
		}
		used += (size_t)n;
		while (!done) {
			rc = hec_msg_decode(buf, used, &m, &consumed, err, sizeof(err));
			if (rc == -EAGAIN)
				break;
			if (rc) {
				fprintf(stderr, "hec-launch: %s: bad message from %s: %s\n", host, addr, err);
				done = 1;
				break;
			}
			switch (m.type) {
			case HEC_MSG_STDOUT:
			case HEC_MSG_STDERR:
				hec_write_all(m.type == HEC_MSG_STDOUT ? 1 : 2, m.data, m.len);
				break;
			case HEC_MSG_SPAWNED:
				spawned = 1;
				break;
			case HEC_MSG_EXITED: {
				int code = (int)json_integer_value(json_object_get(m.body, "exit"));
				int sig = (int)json_integer_value(json_object_get(m.body, "signal"));

				status = sig ? 128 + sig : code;
				done = 1;
				break;
			}
			case HEC_MSG_ERROR:
				fprintf(stderr, "hec-launch: %s: %s\n", host,
					json_string_value(json_object_get(m.body, "error")));
				status = EXIT_FAIL;
				done = 1;
				break;
			default:
				fprintf(stderr, "hec-launch: %s: unexpected %s from %s\n", host,
					hec_msg_type_name(m.type), addr);
				done = 1;
			}
			hec_msg_clear(&m);
			memmove(buf, buf + consumed, used - consumed);
			used -= consumed;
		}
	}
	free(buf);
	close(fd);
	return status > 255 ? EXIT_FAIL : status;
}

/*
 * Hydra waits for every proxy to connect back, for ever: a proxy whose
 * shell could not run it (126, 127: not found, not executable) would hang
 * the job until its time limit.  Then end mpiexec, our parent, saying why;
 * only an mpiexec (a shell running us by hand is left alone).  An agent
 * that cannot be reached is not this: its node is lost, and the controller
 * ends the job as NODE_FAIL (or restarts it) once it says so.
 */
static void stop_mpiexec(const char *host, int status)
{
	char path[64], comm[64] = "";
	pid_t pp = getppid();

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pp);
	if (hec_read_file(path, comm, sizeof(comm)) || (strncmp(comm, "mpiexec", 7) && strncmp(comm, "mpirun", 6)))
		return;
	fprintf(stderr, "hec-launch: %s: the MPI proxy could not be run there (status %d): ending %s (pid %d), which would wait for it for ever\n",
		host, status, comm, (int)pp);
	kill(pp, SIGTERM);
}

int main(int argc, char **argv)
{
	int status = launch(argc, argv);

	if (!got_signal && spawned && (status == 126 || status == 127))
		stop_mpiexec(argc > 1 ? argv[1] : "?", status);
	return status;
}
