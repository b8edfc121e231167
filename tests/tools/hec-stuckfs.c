/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test tool: a FUSE file system that never answers a lookup, so that a
 * process looking a name up in it cannot be frozen.  The kernel waits for
 * the answer interruptibly, and once a signal (or the cgroup v2 freezer's
 * wake-up) has interrupted that wait, killably only: the task sleeps in the
 * kernel and never reaches the freezer's trap, so its cgroup's freeze does
 * not complete (tests/integration/claims_gang.sh uses this for a freeze
 * that a slot boundary overtakes).
 *
 * Usage: hec-stuckfs MOUNTPOINT
 * Mounts, prints "ready", then one "lookup NAME" line per lookup it leaves
 * unanswered.  On SIGTERM or SIGINT it detaches the mount and exits; closing
 * /dev/fuse aborts the connection, which ends every waiting lookup with an
 * error (ENOTCONN), so the stuck processes go on.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fuse.h>

/* The kernel refuses reads into a smaller buffer than this. */
#define BUF_SIZE (FUSE_MIN_READ_BUFFER + 65536)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int reply(int fd, uint64_t unique, int error, const void *body, size_t len)
{
	char buf[sizeof(struct fuse_out_header) + 256];
	struct fuse_out_header h = { .len = (uint32_t)(sizeof(h) + len), .error = error,
				     .unique = unique };

	if (len > sizeof(buf) - sizeof(h))
		return -EINVAL;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), body, len);
	if (write(fd, buf, h.len) != (ssize_t)h.len)
		return -errno;
	return 0;
}

static void reply_init(int fd, uint64_t unique, const struct fuse_init_in *in)
{
	struct fuse_init_out out = {
		.major = FUSE_KERNEL_VERSION,
		.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = in->max_readahead,
		/* lookups in one directory wait for each other without it */
		.flags = in->flags & FUSE_PARALLEL_DIROPS,
		.max_background = 16,
		.congestion_threshold = 12,
		.max_write = 4096,
		.time_gran = 1,
	};

	reply(fd, unique, 0, &out, sizeof(out));
}

static void reply_root_attr(int fd, uint64_t unique)
{
	struct fuse_attr_out out = {
		.attr_valid = 3600,
		.attr = { .ino = FUSE_ROOT_ID, .mode = S_IFDIR | 0755, .nlink = 2 },
	};

	reply(fd, unique, 0, &out, sizeof(out));
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: read() returns */
	char opts[128], *buf;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: hec-stuckfs MOUNTPOINT\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	buf = malloc(BUF_SIZE);
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (!buf || fd < 0) {
		fprintf(stderr, "hec-stuckfs: /dev/fuse: %s\n", strerror(errno));
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fd,
		 (unsigned)getuid(), (unsigned)getgid());
	if (mount("hec-stuckfs", argv[1], "fuse", MS_NOSUID | MS_NODEV, opts)) {
		fprintf(stderr, "hec-stuckfs: mount %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		ssize_t n = read(fd, buf, BUF_SIZE);
		struct fuse_in_header *h = (struct fuse_in_header *)buf;
		char *arg = buf + sizeof(*h);

		if (n < 0 && (errno == EINTR || errno == ENOENT || errno == EAGAIN))
			continue; /* ENOENT: a request interrupted before we read it */
		if (n < (ssize_t)sizeof(*h))
			break; /* ENODEV: unmounted */
		switch (h->opcode) {
		case FUSE_INIT:
			reply_init(fd, h->unique, (const struct fuse_init_in *)arg);
			break;
		case FUSE_GETATTR:
			if (h->nodeid == FUSE_ROOT_ID)
				reply_root_attr(fd, h->unique);
			else
				reply(fd, h->unique, -ENOENT, NULL, 0);
			break;
		case FUSE_LOOKUP:
			/* The point of this file system: no answer, ever. */
			buf[n - 1] = 0;
			printf("lookup %s\n", arg);
			fflush(stdout);
			break;
		case FUSE_INTERRUPT:
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
			break; /* no answer expected (an interrupt we may ignore) */
		case FUSE_DESTROY:
			stop = 1;
			break;
		default:
			reply(fd, h->unique, -ENOSYS, NULL, 0);
			break;
		}
	}
	umount2(argv[1], MNT_DETACH);
	close(fd);
	free(buf);
	return 0;
}
