/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test tool: a link emulator for kernels without sch_netem (tc's "netem"
 * qdisc), for tests/hosts/hec-hosts.  It stands in one host's cable: the
 * bridge-side end of the host's veth pair (IFACE, taken off the bridge) on
 * one side, a TAP device (TAP, made here, which hec-hosts puts on the
 * bridge) on the other, and it forwards every Ethernet frame between them,
 * delaying and dropping frames as a netem qdisc would.
 *
 * Usage: hec-linkem IFACE TAP SPEC...   or   hec-linkem IFACE TAP @FILE
 * SPEC is netem's words: "delay TIME" (TIME in us, ms or s) and "loss P%",
 * for the frames the host sends ("out": read from IFACE, written to TAP),
 * which is what `tc qdisc ... netem` on the host's eth0 shapes (a qdisc acts
 * on egress only).  After the word "in" the words that follow shape the
 * frames towards the host instead.  Each direction has its own queue and its
 * own independent draw per frame; a delayed frame keeps its order (one
 * delay per direction, so the queue is first in, first out).
 *
 * With @FILE the words are read from FILE, and again on SIGHUP: the link
 * is shaped anew without a moment down (restarting would take the cable
 * off the bridge, and the hosts' ARP back-off would stretch the gap past a
 * node timeout); frames already queued keep their times (still in order).
 * A FILE that does not parse on SIGHUP leaves the shaping as it was.
 *
 * Prints "ready" once the TAP exists (it lives as long as this process).
 * On SIGUSR1 and at exit (SIGTERM, SIGINT) prints each direction's counts
 * to stderr.
 *
 * Frames keep their offload state: both fds carry a virtio-net header
 * before the frame (PACKET_VNET_HDR, IFF_VNET_HDR), so a TCP segment the
 * host's stack left with a partial checksum, or a GSO super-frame, crosses
 * as it would cross the bridge.  Without it such frames would arrive with
 * bad checksums or above the MTU.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>

/* virtio-net header plus the largest frame either fd can hand us (GSO) */
#define FRAME_MAX (sizeof(struct virtio_net_hdr) + 65536 + ETH_HLEN)
/* Frames held back per direction at most (50 ms of a saturated 1 Gb/s
 * link is ~4200 full frames); past it frames are dropped, as by a full
 * netem queue (netem's default limit is 1000). */
#define QUEUE_MAX 8192

struct frame {
	struct frame *next;
	int64_t due;     /* CLOCK_MONOTONIC ns */
	size_t len;
	unsigned char data[];
};

struct dir {
	const char *name;
	int64_t delay_ns;
	double loss;     /* probability per frame */
	struct frame *head, *tail;
	unsigned long queued, forwarded, lost, overflow, send_err;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int parse_time(const char *s, int64_t *ns)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (!strcmp(end, "us"))
		v *= 1e3;
	else if (!strcmp(end, "ms"))
		v *= 1e6;
	else if (!strcmp(end, "s"))
		v *= 1e9;
	else
		return -1;
	if (v > 60e9) /* a minute: a test's link, not a satellite's */
		return -1;
	*ns = (int64_t)v;
	return 0;
}

static int parse_pct(const char *s, double *p)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || strcmp(end, "%") || v < 0 || v > 100)
		return -1;
	*p = v / 100;
	return 0;
}

/* netem's words, into the two directions' parameters */
static int parse_spec(int argc, char **argv, struct dir *out, struct dir *in)
{
	struct dir *d = out;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "in")) {
			d = in;
		} else if (!strcmp(argv[i], "delay") && i + 1 < argc) {
			if (parse_time(argv[++i], &d->delay_ns))
				return fprintf(stderr, "hec-linkem: bad delay '%s' (e.g. 50ms)\n", argv[i]), -1;
		} else if (!strcmp(argv[i], "loss") && i + 1 < argc) {
			if (parse_pct(argv[++i], &d->loss))
				return fprintf(stderr, "hec-linkem: bad loss '%s' (e.g. 1%%)\n", argv[i]), -1;
		} else {
			return fprintf(stderr, "hec-linkem: '%s': only \"delay TIME\", \"loss P%%\" and \"in\" are emulated\n",
				       argv[i]), -1;
		}
	}
	return 0;
}

/* The words of @file (at most 32), into fresh parameters of both
 * directions; on failure both stay as they were. */
static int parse_spec_file(const char *file, struct dir *out, struct dir *in)
{
	char text[1024], *words[32], *save = NULL, *w;
	struct dir o = *out, i = *in;
	size_t n;
	int k = 0;
	FILE *f = fopen(file, "re");

	if (!f)
		return fprintf(stderr, "hec-linkem: %s: %s\n", file, strerror(errno)), -1;
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	for (w = strtok_r(text, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (k == (int)(sizeof(words) / sizeof(words[0])))
			return fprintf(stderr, "hec-linkem: %s: too many words\n", file), -1;
		words[k++] = w;
	}
	o.delay_ns = i.delay_ns = 0;
	o.loss = i.loss = 0;
	if (parse_spec(k, words, &o, &i))
		return -1;
	out->delay_ns = o.delay_ns;
	out->loss = o.loss;
	in->delay_ns = i.delay_ns;
	in->loss = i.loss;
	return 0;
}

static int open_tap(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return fprintf(stderr, "hec-linkem: /dev/net/tun: %s\n", strerror(errno)), -1;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "hec-linkem: TAP %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	/* Let the bridge hand over unsegmented frames too (a saving, not a
	 * need: without it the kernel segments them first). */
	if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)
		fprintf(stderr, "hec-linkem: TAP %s: no offloads (%s); going on\n", name, strerror(errno));
	return fd;
}

static int open_packet(const char *name)
{
	struct sockaddr_ll sll;
	struct packet_mreq mr;
	int one = 1, fd;
	unsigned idx = if_nametoindex(name);

	if (!idx)
		return fprintf(stderr, "hec-linkem: %s: no such interface\n", name), -1;
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0)
		return fprintf(stderr, "hec-linkem: packet socket: %s\n", strerror(errno)), -1;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)idx;
	memset(&mr, 0, sizeof(mr));
	mr.mr_ifindex = (int)idx;
	mr.mr_type = PACKET_MR_PROMISC;
	if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
	    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		fprintf(stderr, "hec-linkem: packet socket on %s: %s\n", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* A frame that arrived now: drawn for loss, then queued until due. */
static void take(struct dir *d, const unsigned char *buf, size_t len, int64_t now)
{
	struct frame *f;

	if (d->loss > 0 && drand48() < d->loss) {
		d->lost++;
		return;
	}
	if (d->queued >= QUEUE_MAX || !(f = malloc(sizeof(*f) + len))) {
		d->overflow++;
		return;
	}
	f->next = NULL;
	f->due = now + d->delay_ns;
	f->len = len;
	memcpy(f->data, buf, len);
	if (d->tail)
		d->tail->next = f;
	else
		d->head = f;
	d->tail = f;
	d->queued++;
}

/* Send the due frames of d on fd. */
static void flush(struct dir *d, int fd, int64_t now)
{
	struct frame *f;

	while ((f = d->head) && f->due <= now) {
		d->head = f->next;
		if (!d->head)
			d->tail = NULL;
		d->queued--;
		if (write(fd, f->data, f->len) == (ssize_t)f->len)
			d->forwarded++;
		else
			d->send_err++;
		free(f);
	}
}

static void arm(int tfd, const struct dir *a, const struct dir *b)
{
	struct itimerspec its;
	int64_t due = -1;

	if (a->head)
		due = a->head->due;
	if (b->head && (due < 0 || b->head->due < due))
		due = b->head->due;
	memset(&its, 0, sizeof(its));
	if (due >= 0) {
		/* 0 would disarm: an instant already past is 1 ns */
		due = due > 0 ? due : 1;
		its.it_value.tv_sec = due / 1000000000;
		its.it_value.tv_nsec = due % 1000000000;
	}
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void drop_all(struct dir *d)
{
	struct frame *f;

	while ((f = d->head)) {
		d->head = f->next;
		free(f);
	}
	d->tail = NULL;
}

static void report(const struct dir *d)
{
	fprintf(stderr, "hec-linkem: %s: delay %lld us loss %.3f%%: %lu forwarded, %lu lost, %lu queued, %lu overflow, %lu send errors\n",
		d->name, (long long)(d->delay_ns / 1000), d->loss * 100, d->forwarded, d->lost,
		d->queued, d->overflow, d->send_err);
}

int main(int argc, char **argv)
{
	struct dir out = { .name = "out (host -> bridge)" }, in = { .name = "in (bridge -> host)" };
	struct pollfd pfd[4];
	sigset_t sigs;
	unsigned char *buf;
	int pkt, tap, tfd, sfd;

	const char *file = argc == 4 && argv[3][0] == '@' ? argv[3] + 1 : NULL;

	if (argc < 3) {
		fprintf(stderr, "usage: hec-linkem IFACE TAP [delay TIME] [loss P%%] [in [delay TIME] [loss P%%]]\n"
				"       hec-linkem IFACE TAP @FILE   (those words in FILE, read again on SIGHUP)\n");
		return 2;
	}
	if (file ? parse_spec_file(file, &out, &in) : parse_spec(argc - 3, argv + 3, &out, &in))
		return 2;
	srand48((long)now_ns() ^ getpid());
	buf = malloc(FRAME_MAX);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (!buf || sfd < 0 || tfd < 0)
		return fprintf(stderr, "hec-linkem: setup: %s\n", strerror(errno)), 1;
	if ((pkt = open_packet(argv[1])) < 0 || (tap = open_tap(argv[2])) < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);

	pfd[0] = (struct pollfd){ .fd = pkt, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = tap, .events = POLLIN };
	pfd[2] = (struct pollfd){ .fd = tfd, .events = POLLIN };
	pfd[3] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (;;) {
		struct signalfd_siginfo si;
		struct sockaddr_ll from;
		socklen_t fl;
		ssize_t n;
		int64_t now;

		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			return fprintf(stderr, "hec-linkem: poll: %s\n", strerror(errno)), 1;
		}
		now = now_ns();
		for (;;) {
			fl = sizeof(from);
			n = recvfrom(pkt, buf, FRAME_MAX, 0, (struct sockaddr *)&from, &fl);
			if (n < 0)
				break;
			/* our own writes towards the host, seen going out */
			if (from.sll_pkttype != PACKET_OUTGOING)
				take(&out, buf, (size_t)n, now);
		}
		if (errno != EAGAIN && errno != EINTR)
			return fprintf(stderr, "hec-linkem: %s: %s\n", argv[1], strerror(errno)), 1;
		while ((n = read(tap, buf, FRAME_MAX)) > 0)
			take(&in, buf, (size_t)n, now);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return fprintf(stderr, "hec-linkem: %s: %s\n", argv[2], strerror(errno)), 1;
		if (pfd[2].revents) {
			uint64_t ticks;

			if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				return fprintf(stderr, "hec-linkem: timerfd: %s\n", strerror(errno)), 1;
		}
		now = now_ns();
		flush(&out, tap, now);
		flush(&in, pkt, now);
		arm(tfd, &out, &in);
		while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGHUP) {
				if (file && parse_spec_file(file, &out, &in) == 0)
					fprintf(stderr, "hec-linkem: shaped anew from %s\n", file);
				else if (!file)
					fprintf(stderr, "hec-linkem: SIGHUP without @FILE: nothing to read\n");
				report(&out);
				report(&in);
				continue;
			}
			report(&out);
			report(&in);
			if (si.ssi_signo != SIGUSR1) {
				drop_all(&out);
				drop_all(&in);
				free(buf);
				return 0;
			}
		}
	}
}
