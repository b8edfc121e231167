/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-guest: PID 1 of a vm partition (the initramfs's /init), multi-call by
 * argv[0]:
 *
 *   /init (or any name, as PID 1)   the guest's init: mounts, kernel modules,
 *        hostname, /etc/hosts, network from the kernel command line (hec.*),
 *        then serves the host's frames (include/hec/guest.h) on the
 *        virtio-serial port HEC_GUEST_PORT and the remote-shell service on
 *        TCP HEC_GUEST_RSH_PORT.  It never exits: PID 1 exiting panics the
 *        kernel.
 *   hec-rsh HOST CMD...   (or "hec-guest rsh HOST CMD...")  what Hydra runs
 *        per proxy: runs "/bin/sh -c CMD" on HOST's remote-shell service,
 *        relays stdio and exits with the command's status.
 *
 * One event loop, no threads: every descriptor is non-blocking and polled,
 * so a slow or vanished peer never stalls the others.  Output of a command
 * is read only while its connection has room (WBUF_MAX): a peer that does not
 * read blocks the command's writes, not init.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hec/guest.h"
#include "vm/guest_client.h"

#define PROG "hec-guest"
#define MAX_CONNS 64
#define WBUF_MAX (4u << 20)  /* stop reading a command's output past this */
#define INBUF_MAX (1u << 20) /* stop reading a connection's IN frames past this */
#define DRAIN_MS 2000        /* after the exit, wait this long for the pipes' EOF */
#define PORT_RETRY_MS 100    /* how often a disconnected host port is probed */
#define AUTH_MS 10000        /* an rsh connection must send its RUN within this */
#define LINGER_MS 5000       /* after our last frame, how long an rsh client has to close */
#define RSH_CONNECT_MS 15000 /* hec-rsh: the other guest may still be booting */
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
#define ENV_DEFAULTS "/etc/hec/environment"
#define MODULES_LIST "/etc/hec/modules"
#define CGROUP_ROOT "/sys/fs/cgroup"

extern char **environ;

/* ---- logging: the serial console, and the host channel when it is up ---- */

static int console_fd = -1;
static void chan_log(const char *level, const char *msg);

static void glog(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void glog(const char *level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (console_fd >= 0)
		dprintf(console_fd, PROG ": %s\n", line);
	if (strcmp(level, "info"))
		chan_log(level, line);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- kernel command line ---- */

struct bootcfg {
	char node[65];
	char ip[64];	/* A.B.C.D/PREFIX */
	char *hosts;	/* NAME:IP,NAME:IP */
	char key[256];
	int mtu;
};

static char *read_file(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf;
	size_t len = 0;

	if (fd < 0)
		return NULL;
	buf = malloc(max + 1);
	while (buf && len < max) {
		ssize_t n = read(fd, buf + len, max - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf)
		buf[len] = 0;
	return buf;
}

/* The value of "NAME=" in /proc/cmdline, copied into @out; \return 0 or -ENOENT. */
static int cmdline_get(const char *cmdline, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = cmdline;

	while (*p) {
		size_t wl;

		p += strspn(p, " \t\n");
		wl = strcspn(p, " \t\n");
		if (wl > nl && !strncmp(p, name, nl) && p[nl] == '=') {
			size_t vl = wl - nl - 1;

			if (vl >= len)
				return -ENAMETOOLONG;
			memcpy(out, p + nl + 1, vl);
			out[vl] = 0;
			return 0;
		}
		p += wl;
	}
	return -ENOENT;
}

static void parse_cmdline(struct bootcfg *c)
{
	char *cmd = read_file("/proc/cmdline", 65536), mtu[16];
	static char hosts[16384];

	memset(c, 0, sizeof(*c));
	if (!cmd) {
		glog("err", "/proc/cmdline: %s", strerror(errno));
		return;
	}
	if (cmdline_get(cmd, "hec.node", c->node, sizeof(c->node)))
		glog("warn", "no hec.node= on the kernel command line: hostname left unset");
	if (cmdline_get(cmd, "hec.ip", c->ip, sizeof(c->ip)))
		glog("warn", "no hec.ip= on the kernel command line: eth0 left unconfigured");
	if (!cmdline_get(cmd, "hec.hosts", hosts, sizeof(hosts)))
		c->hosts = hosts;
	if (cmdline_get(cmd, "hec.key", c->key, sizeof(c->key)))
		glog("warn", "no hec.key= on the kernel command line: the remote-shell service refuses every client");
	if (!cmdline_get(cmd, "hec.mtu", mtu, sizeof(mtu)))
		c->mtu = atoi(mtu);
	free(cmd);
}

/* ---- system setup (init only) ---- */

static void do_mount(const char *src, const char *dir, const char *type, unsigned long fl,
		     const char *opts)
{
	mkdir(dir, 0755);
	if (mount(src, dir, type, fl, opts) < 0 && errno != EBUSY)
		glog("err", "mount %s on %s: %s", type, dir, strerror(errno));
}

static void mount_all(void)
{
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
	/* MPICH/UCX shared-memory transports live in /dev/shm: world-writable, sticky */
	do_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	/* /tmp and /run stay on the rootfs (a tmpfs already): a mount would hide
	 * what hec-mkimage --add put there, such as a job's program in /tmp */
	mkdir("/tmp", 01777);
	chmod("/tmp", 01777);
	mkdir("/run", 0755);
	do_mount("cgroup2", CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* fds 0-2 on the console, so nothing we open later lands on them. */
static void setup_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	for (int i = 0; i < 3 && fd >= 0; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
	console_fd = fcntl(1, F_DUPFD_CLOEXEC, 3);
}

static void load_modules(void)
{
	char *list = read_file(MODULES_LIST, 1 << 20), *line, *save = NULL;
	int n = 0;

	if (!list)
		return;
	for (line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int fd;

		line += strspn(line, " \t");
		if (!*line || *line == '#')
			continue;
		fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			glog("err", "%s: %s", line, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			glog("err", "finit_module %s: %s", line, strerror(errno));
		else
			n++;
		close(fd);
	}
	free(list);
	glog("info", "%d kernel modules loaded", n);
}

static void write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		glog("err", "%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void write_hosts(const struct bootcfg *c)
{
	size_t cap = 256 + (c->hosts ? 2 * strlen(c->hosts) : 0), len;
	char *out = malloc(cap), *h, *save = NULL, *copy;

	if (!out)
		return;
	len = (size_t)snprintf(out, cap, "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
	copy = c->hosts ? strdup(c->hosts) : NULL;
	for (h = copy ? strtok_r(copy, ",", &save) : NULL; h; h = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(h, ':');
		struct in_addr a;

		if (!colon || colon == h || inet_pton(AF_INET, colon + 1, &a) != 1) {
			glog("err", "hec.hosts: '%s' is not NAME:A.B.C.D", h);
			continue;
		}
		*colon = 0;
		len += (size_t)snprintf(out + len, cap - len, "%s\t%s\n", colon + 1, h);
	}
	mkdir("/etc", 0755);
	write_text("/etc/hosts", out);
	free(copy);
	free(out);
}

static int ifreq_addr(int s, unsigned long req, const char *ifn, in_addr_t a)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifn);
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = a;
	return ioctl(s, req, &ifr);
}

static int if_up(int s, const char *ifn)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifn);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(s, SIOCSIFFLAGS, &ifr);
}

/* The first interface that is not lo (virtio-net), waiting for its driver. */
static int find_ether(char *name, size_t len)
{
	long long deadline = now_ms() + 5000;

	do {
		DIR *d = opendir("/sys/class/net");
		struct dirent *e;
		int found = 0;

		while (d && (e = readdir(d)))
			if (e->d_name[0] != '.' && strcmp(e->d_name, "lo") &&
			    strlen(e->d_name) < len && (!found || strcmp(e->d_name, name) < 0)) {
				memcpy(name, e->d_name, strlen(e->d_name) + 1);
				found = 1;
			}
		if (d)
			closedir(d);
		if (found)
			return 0;
		usleep(50000);
	} while (now_ms() < deadline);
	return -ENODEV;
}

/*
 * HELLO says the network is set, and MPI's TCP transport skips an
 * interface that is not RUNNING: wait for the carrier (the host raises
 * the link once QEMU's netdev is connected).  \return 0 when up.
 */
static int wait_oper_up(const char *ifn)
{
	long long deadline = now_ms() + 10000;
	char path[128];

	snprintf(path, sizeof(path), "/sys/class/net/%s/operstate", ifn);
	do {
		char *state = read_file(path, 16);
		int up = state && !strncmp(state, "up", 2);

		free(state);
		if (up)
			return 0;
		usleep(20000);
	} while (now_ms() < deadline);
	return -ETIMEDOUT;
}

static void setup_network(const struct bootcfg *c)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char ifn[IFNAMSIZ], addr[64], *slash;
	struct in_addr a;
	long prefix = 32;

	if (s < 0) {
		glog("err", "socket: %s", strerror(errno));
		return;
	}
	if (ifreq_addr(s, SIOCSIFADDR, "lo", htonl(INADDR_LOOPBACK)) < 0 ||
	    ifreq_addr(s, SIOCSIFNETMASK, "lo", htonl(0xff000000)) < 0 || if_up(s, "lo") < 0)
		glog("err", "lo: %s", strerror(errno));
	if (!c->ip[0])
		goto out;
	snprintf(addr, sizeof(addr), "%s", c->ip);
	slash = strchr(addr, '/');
	if (slash) {
		char *end;

		*slash = 0;
		prefix = strtol(slash + 1, &end, 10);
		if (*end || prefix < 0 || prefix > 32)
			prefix = -1;
	}
	if (inet_pton(AF_INET, addr, &a) != 1 || prefix < 0) {
		glog("err", "hec.ip=%s: not A.B.C.D/PREFIX", c->ip);
		goto out;
	}
	if (find_ether(ifn, sizeof(ifn))) {
		glog("err", "no network interface besides lo (is virtio_net loaded?)");
		goto out;
	}
	if (ifreq_addr(s, SIOCSIFADDR, ifn, a.s_addr) < 0 ||
	    ifreq_addr(s, SIOCSIFNETMASK, ifn,
		       htonl(prefix ? 0xffffffffu << (32 - prefix) : 0)) < 0) {
		glog("err", "%s: address %s: %s", ifn, c->ip, strerror(errno));
		goto out;
	}
	if (c->mtu > 0) {
		struct ifreq ifr;

		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifn);
		ifr.ifr_mtu = c->mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
			glog("err", "%s: mtu %d: %s", ifn, c->mtu, strerror(errno));
	}
	if (if_up(s, ifn) < 0)
		glog("err", "%s: up: %s", ifn, strerror(errno));
	else if (wait_oper_up(ifn))
		glog("warn", "%s: %s, but the link is not up (no carrier)", ifn, c->ip);
	else
		glog("info", "%s: %s", ifn, c->ip);
out:
	close(s);
}

/* /sys/class/virtio-ports/vportNpM/name == HEC_GUEST_PORT -> /dev/vportNpM */
static int find_port(char *dev, size_t len)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int rc = -ENOENT;

	while (d && (e = readdir(d))) {
		char path[PATH_MAX], *name;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		name = read_file(path, 256);
		if (name) {
			name[strcspn(name, "\n")] = 0;
			if (!strcmp(name, HEC_GUEST_PORT)) {
				snprintf(dev, len, "/dev/%s", e->d_name);
				rc = 0;
			}
			free(name);
		}
		if (!rc)
			break;
	}
	if (d)
		closedir(d);
	return rc;
}

/* ---- connections and the commands they run ---- */

struct guest_run {
	long long id;
	pid_t pid;		/* 0: no command */
	int in_fd, out_fd, err_fd;
	int exited, status;
	long long exit_ms;
	uint8_t *in;		/* IN bytes not yet written to the command */
	size_t in_len;
	int in_eof;		/* an empty IN arrived: close stdin once in[] is written */
	unsigned cg;		/* its cgroup CGROUP_ROOT/run.<cg>, 0: none */
};

struct conn {
	int fd;
	int is_port;		/* the host's virtio-serial port, else an rsh client */
	int up;			/* port: the host is connected */
	int broken;		/* port: a bad frame arrived; ignore input until the host reconnects */
	int authed;		/* rsh: its RUN carried the right key */
	int closing;		/* rsh: close once wbuf is written */
	long long shut_ms;	/* rsh: when our side was shut down (the peer's close is awaited) */
	long long opened_ms;
	struct gc_reader r;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	struct guest_run job;
};

static struct conn *conns[MAX_CONNS + 1];
static struct conn *port_conn;
static struct bootcfg boot;
static int in_chan_log;

static void job_reset(struct guest_run *j)
{
	free(j->in);
	memset(j, 0, sizeof(*j));
	j->in_fd = j->out_fd = j->err_fd = -1;
}

/* Queue a frame; dropped if the peer is gone (a port frame is never half-queued). */
static int conn_send(struct conn *c, unsigned type, const void *p, uint32_t len)
{
	size_t need = HEC_GUEST_HDR + len;

	if (c->is_port && !c->up)
		return -ENOTCONN;
	if (c->woff && c->woff == c->wlen)
		c->wlen = c->woff = 0;
	if (c->wcap - c->wlen < need) {
		size_t cap = c->wcap ? c->wcap : 65536;
		uint8_t *nb;

		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		while (cap - c->wlen < need)
			cap *= 2;
		nb = realloc(c->wbuf, cap);
		if (!nb)
			return -ENOMEM;
		c->wbuf = nb;
		c->wcap = cap;
	}
	hec_guest_header(c->wbuf + c->wlen, type, len);
	if (len)
		memcpy(c->wbuf + c->wlen + HEC_GUEST_HDR, p, len);
	c->wlen += need;
	return 0;
}

static void conn_send_kv(struct conn *c, unsigned type, struct hec_guest_kvbuf *kv)
{
	conn_send(c, type, kv->p, kv->len);
	hec_guest_kv_free(kv);
}

static void chan_log(const char *level, const char *msg)
{
	struct hec_guest_kvbuf kv = { 0 };

	if (!port_conn || !port_conn->up || in_chan_log)
		return;
	in_chan_log = 1;
	if (!hec_guest_kv_add(&kv, "level", level) && !hec_guest_kv_add(&kv, "msg", msg))
		conn_send(port_conn, HEC_G_LOG, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	in_chan_log = 0;
}

static void send_exit(struct conn *c, long long id, int code, int sig, const char *error)
{
	struct hec_guest_kvbuf kv = { 0 };

	hec_guest_kv_addf(&kv, "id", "%lld", id);
	hec_guest_kv_addf(&kv, "exit", "%d", code);
	hec_guest_kv_addf(&kv, "signal", "%d", sig);
	if (error)
		hec_guest_kv_add(&kv, "error", error);
	conn_send_kv(c, HEC_G_EXIT, &kv);
}

static void send_hello(struct conn *c)
{
	struct hec_guest_kvbuf kv = { 0 };
	struct utsname u;
	struct timespec ts;

	uname(&u);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	hec_guest_kv_addf(&kv, "version", "%d", HEC_GUEST_VERSION);
	hec_guest_kv_add(&kv, "node", boot.node);
	hec_guest_kv_add(&kv, "kernel", u.release);
	hec_guest_kv_add(&kv, "ip", boot.ip);
	hec_guest_kv_addf(&kv, "uptime_ms", "%lld",
			  (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	conn_send_kv(c, HEC_G_HELLO, &kv);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * Each RUN runs in a cgroup of its own, so that ending it ends everything it
 * started: Hydra's proxies and ranks call setsid(), so neither the process
 * group nor the session holds them all.  Without cgroup2 (it did not mount)
 * the session is what is killed.
 */
static unsigned cg_next = 1;

static int cg_write(unsigned cg, const char *file, const char *text)
{
	char path[96];
	int fd, rc = 0;

	snprintf(path, sizeof(path), CGROUP_ROOT "/run.%u/%s", cg, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	return rc;
}

static unsigned cg_create(void)
{
	char path[64];
	unsigned cg = cg_next++;

	snprintf(path, sizeof(path), CGROUP_ROOT "/run.%u", cg);
	return mkdir(path, 0755) == 0 ? cg : 0;
}

/* Remove the cgroups of ended RUNs that have emptied (rmdir fails while not). */
static void cg_sweep(const unsigned *live, int nlive)
{
	DIR *d = opendir(CGROUP_ROOT);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[PATH_MAX];
		unsigned cg;
		int in_use = 0;

		if (sscanf(e->d_name, "run.%u", &cg) != 1)
			continue;
		for (int i = 0; i < nlive; i++)
			in_use |= live[i] == cg;
		if (in_use)
			continue;
		snprintf(path, sizeof(path), CGROUP_ROOT "/%s", e->d_name);
		rmdir(path);
	}
	if (d)
		closedir(d);
}

/* Kill what is left of a RUN: its cgroup (cgroup.kill, Linux 5.14+; the
 * guest's kernel is Debian's), else its process group. */
static void job_kill_all(struct guest_run *j)
{
	if (j->cg && cg_write(j->cg, "cgroup.kill", "1") == 0)
		return;
	if (j->pid)
		kill(-j->pid, SIGKILL);
}

static void job_abandon(struct guest_run *j)
{
	if (j->pid)
		job_kill_all(j);
	close_fd(&j->in_fd);
	close_fd(&j->out_fd);
	close_fd(&j->err_fd);
	job_reset(j);
}

static void conn_free(struct conn *c)
{
	job_abandon(&c->job);
	close_fd(&c->fd);
	gc_reader_free(&c->r);
	free(c->wbuf);
	free(c);
}

static void conn_close(int i)
{
	conn_free(conns[i]);
	conns[i] = NULL;
}

/* The host went away: what was queued for it is lost (a new host must not
 * start in the middle of a frame); the command keeps running. */
static void port_down(struct conn *c)
{
	if (c->up)
		glog("info", "host channel closed; waiting for the host to reconnect");
	c->up = 0;
	c->broken = 0;
	c->wlen = c->woff = 0;
	c->r.len = c->r.off = 0;
}

/* ---- running a command ---- */

/* What a child reports through its close-on-exec pipe when it cannot exec. */
struct exec_failure {
	int err;
	char what[200];
};

static void child_fail(int fd, int err, const char *step, const char *arg)
{
	struct exec_failure e = { .err = err };
	ssize_t n;

	snprintf(e.what, sizeof(e.what), "%s%s%s", step, *arg ? " " : "", arg);
	n = write(fd, &e, sizeof(e));
	(void)n;
	_exit(127);
}

/* mkdir -p @path as root, giving what it creates to the command's user. */
static void make_dirs(const char *path, uid_t uid, gid_t gid)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p == '/' || !*p) {
			char saved = *p;

			*p = 0;
			if (mkdir(buf, 0755) == 0 && chown(buf, uid, gid) < 0)
				break;
			*p = saved;
			if (!saved)
				break;
		}
	}
}

static const char *env_lookup(char **env, const char *key)
{
	size_t kl = strlen(key);

	for (; *env; env++)
		if (!strncmp(*env, key, kl) && (*env)[kl] == '=')
			return *env + kl + 1;
	return NULL;
}

/* execve @file, searched in @path like execvp does (but in the command's PATH). */
static int exec_in_path(const char *file, char **argv, char **envp, const char *path)
{
	char full[PATH_MAX];
	int err = ENOENT;

	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return errno;
	}
	while (*path) {
		size_t dl = strcspn(path, ":");

		if (dl + strlen(file) + 2 <= sizeof(full)) {
			if (dl)
				snprintf(full, sizeof(full), "%.*s/%s", (int)dl, path, file);
			else
				snprintf(full, sizeof(full), "./%s", file);
			execve(full, argv, envp);
			/* keep the first interesting error, as execvp does */
			if (errno != ENOENT && errno != ENOTDIR)
				err = errno;
		}
		path += dl;
		if (*path == ':')
			path++;
	}
	return err;
}

/* The command's environment: the RUN's env= entries, then the image's
 * defaults (/etc/hec/environment) for keys the RUN does not set. */
static char **build_env(const struct hec_guest_frame *f)
{
	static char *defaults;
	size_t n = 0, cap = 64;
	char **env = malloc(cap * sizeof(*env));
	uint32_t pos = 0;
	const char *s;

	if (!defaults) {
		defaults = read_file(ENV_DEFAULTS, 65536);
		if (!defaults)
			defaults = strdup("");
	}
	while (env && (s = hec_guest_kv_next(f->payload, f->len, &pos))) {
		if (strncmp(s, "env=", 4) || !strchr(s + 4, '='))
			continue;
		if (n + 2 > cap) {
			char **ne = realloc(env, (cap *= 2) * sizeof(*env));

			if (!ne)
				goto fail;
			env = ne;
		}
		env[n++] = (char *)s + 4;
	}
	for (char *line = defaults; env && line && *line;) {
		char *nl = strchr(line, '\n'), *eq = strchr(line, '=');

		if (eq && (!nl || eq < nl) && eq != line && *line != '#') {
			char *entry = strndup(line, nl ? (size_t)(nl - line) : strlen(line));
			int have = 0;

			if (!entry)
				goto fail;
			entry[eq - line] = 0;
			env[n] = NULL;
			have = env_lookup(env, entry) != NULL;
			entry[eq - line] = '=';
			if (have) {
				free(entry);
			} else {
				if (n + 2 > cap) {
					char **ne = realloc(env, (cap *= 2) * sizeof(*env));

					if (!ne) {
						free(entry);
						goto fail;
					}
					env = ne;
				}
				env[n++] = entry; /* the child's copy: the parent frees nothing of it */
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (env)
		env[n] = NULL;
	return env;
fail:
	free(env);
	return NULL;
}

/* Give the command's user a name: MPICH and UCX look the uid up. */
static void ensure_passwd(uid_t uid, gid_t gid)
{
	char *pw = read_file("/etc/passwd", 1 << 20), line[128];
	int fd;

	if (pw) {
		char pat[32];
		int found;

		snprintf(pat, sizeof(pat), ":x:%u:", (unsigned)uid);
		found = strstr(pw, pat) != NULL;
		free(pw);
		if (found)
			return;
	}
	fd = open("/etc/passwd", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	snprintf(line, sizeof(line), "u%u:x:%u:%u::/tmp:/bin/sh\n", (unsigned)uid, (unsigned)uid,
		 (unsigned)gid);
	if (write(fd, line, strlen(line)) < 0)
		glog("err", "/etc/passwd: %s", strerror(errno));
	close(fd);
}

static __attribute__((noreturn)) void child(char **argv, char **envp, uid_t uid, gid_t gid,
					   const char *cwd, int fds[3], int errfd, unsigned cg)
{
	sigset_t none;
	const char *path;
	int err;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	/* into the RUN's cgroup before anything can fork: all it starts stays there */
	if (cg)
		cg_write(cg, "cgroup.procs", "0"); /* "0": the writer itself */
	/* Out of the way of 0-3 first, so no dup2 below clobbers a source. */
	errfd = fcntl(errfd, F_DUPFD, 10);
	for (int i = 0; i < 3; i++)
		fds[i] = fcntl(fds[i], F_DUPFD, 10);
	if (errfd < 0 || dup2(errfd, 3) < 0)
		_exit(127);
	errfd = 3;
	for (int i = 0; i < 3; i++)
		if (fds[i] < 0 || dup2(fds[i], i) < 0)
			child_fail(errfd, errno, "dup2", "stdio");
	fcntl(errfd, F_SETFD, FD_CLOEXEC);
	syscall(SYS_close_range, 4, ~0u, 0);
	make_dirs(cwd, uid, gid);
	if (setgroups(0, NULL) < 0)
		child_fail(errfd, errno, "setgroups", "");
	if (setgid(gid) < 0)
		child_fail(errfd, errno, "setgid", "");
	if (setuid(uid) < 0)
		child_fail(errfd, errno, "setuid", "");
	if (chdir(cwd) < 0)
		child_fail(errfd, errno, "chdir", cwd);
	path = env_lookup(envp, "PATH");
	err = exec_in_path(argv[0], argv, envp, path ? path : DEFAULT_PATH);
	child_fail(errfd, err, "execve", argv[0]);
	_exit(127);
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* RUN: start the command; STARTED, or EXIT with error= if it cannot start. */
static void start_run(struct conn *c, const struct hec_guest_frame *f)
{
	long long id = 0, uid = 0, gid = 0;
	const char *cwd = hec_guest_kv_get(f->payload, f->len, "cwd"), *s;
	char **argv = NULL, **envp = NULL, err[256];
	size_t argc = 0;
	uint32_t pos = 0;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct exec_failure fail;
	struct hec_guest_kvbuf kv = { 0 };
	unsigned cg;
	ssize_t n;
	pid_t pid;

	if (hec_guest_kv_int(f->payload, f->len, "id", 0, LLONG_MAX, &id) == -EINVAL ||
	    hec_guest_kv_int(f->payload, f->len, "uid", 0, 0xfffffffe, &uid) == -EINVAL ||
	    hec_guest_kv_int(f->payload, f->len, "gid", 0, 0xfffffffe, &gid) == -EINVAL) {
		send_exit(c, id, 127, 0, "RUN: bad id, uid or gid");
		return;
	}
	if (c->job.pid) {
		snprintf(err, sizeof(err), "RUN %lld: command %lld still running on this channel",
			 id, c->job.id);
		send_exit(c, id, 127, 0, err);
		return;
	}
	if (!cwd || cwd[0] != '/')
		cwd = "/";
	argv = calloc(f->len / 2 + 2, sizeof(*argv));
	while (argv && (s = hec_guest_kv_next(f->payload, f->len, &pos)))
		if (!strncmp(s, "arg=", 4))
			argv[argc++] = (char *)s + 4;
	if (!argv || !argc || !argv[0][0]) {
		send_exit(c, id, 127, 0, argv ? "RUN: no arg= (the program to run)" : strerror(ENOMEM));
		free(argv);
		return;
	}
	envp = build_env(f);
	if (!envp || pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		snprintf(err, sizeof(err), "RUN %lld: pipe: %s", id, strerror(errno));
		send_exit(c, id, 127, 0, err);
		goto out;
	}
	ensure_passwd((uid_t)uid, (gid_t)gid);
	cg = cg_create();
	pid = fork();
	if (pid < 0) {
		snprintf(err, sizeof(err), "RUN %lld: fork: %s", id, strerror(errno));
		send_exit(c, id, 127, 0, err);
		goto out;
	}
	if (pid == 0) {
		int fds[3] = { in[0], out[1], errp[1] };

		child(argv, envp, (uid_t)uid, (gid_t)gid, cwd, fds, ep[1], cg);
	}
	close_fd(&ep[1]);
	/* Blocks only until the child's execve: a failure must come back as an
	 * EXIT with the reason, not as a command that printed nothing. */
	do
		n = read(ep[0], &fail, sizeof(fail));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(fail)) {
		fail.what[sizeof(fail.what) - 1] = 0;
		snprintf(err, sizeof(err), "%s: %s", fail.what, strerror(fail.err));
		waitpid(pid, NULL, 0);
		send_exit(c, id, 127, 0, err);
		glog("info", "RUN %lld: %s", id, err);
		goto out;
	}
	c->job.id = id;
	c->job.pid = pid;
	c->job.cg = cg;
	c->job.in_fd = in[1];
	c->job.out_fd = out[0];
	c->job.err_fd = errp[0];
	in[1] = out[0] = errp[0] = -1;
	set_nonblock(c->job.in_fd);
	set_nonblock(c->job.out_fd);
	set_nonblock(c->job.err_fd);
	hec_guest_kv_addf(&kv, "id", "%lld", id);
	hec_guest_kv_addf(&kv, "pid", "%d", (int)pid);
	conn_send_kv(c, HEC_G_STARTED, &kv);
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&errp[i]);
		close_fd(&ep[i]);
	}
	/* entries past the RUN's are the defaults, strdup'ed for the child */
	if (envp)
		for (char **e = envp; *e; e++)
			if (!((uint8_t *)*e >= f->payload && (uint8_t *)*e < f->payload + f->len))
				free(*e);
	free(envp);
	free(argv);
}

/* Constant time in the length of the expected key. */
static int key_ok(const char *given, const char *want)
{
	size_t gl = strlen(given), wl = strlen(want);
	unsigned char diff = (unsigned char)(gl != wl || wl == 0);

	for (size_t i = 0; i < wl; i++)
		diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
	return diff == 0;
}

static void job_input(struct guest_run *j, const struct hec_guest_frame *f)
{
	uint8_t *nb;

	if (j->in_fd < 0)
		return;
	/* EOF: just the stream byte, or (leniently) nothing at all */
	if (f->len <= 1) {
		j->in_eof = 1;
		if (!j->in_len)
			close_fd(&j->in_fd);
		return;
	}
	nb = realloc(j->in, j->in_len + f->len - 1);
	if (!nb)
		return;
	j->in = nb;
	memcpy(j->in + j->in_len, f->payload + 1, f->len - 1);
	j->in_len += f->len - 1;
}

static void handle_frame(int i, const struct hec_guest_frame *f)
{
	struct conn *c = conns[i];
	struct hec_guest_kvbuf kv = { 0 };
	long long v;
	int kv_ok = f->type == HEC_G_IN || !hec_guest_kv_check(f->payload, f->len);

	if (!kv_ok) {
		glog("warn", "frame type %u with a malformed payload ignored", f->type);
		return;
	}
	if (!c->is_port && !c->authed) {
		const char *key = hec_guest_kv_get(f->payload, f->len, "key");

		if (f->type != HEC_G_RUN || !key || !key_ok(key, boot.key)) {
			glog("warn", "rsh client refused: %s",
			     f->type != HEC_G_RUN ? "first frame is not a RUN" : "wrong job key");
			send_exit(c, 0, 127, 0, "remote shell: wrong job key");
			c->closing = 1;
			return;
		}
		c->authed = 1;
	}
	switch (f->type) {
	case HEC_G_RUN:
		start_run(c, f);
		if (!c->is_port && !c->job.pid)
			c->closing = 1;
		break;
	case HEC_G_SIGNAL:
		if (!hec_guest_kv_int(f->payload, f->len, "signal", 1, 64, &v) && c->job.pid &&
		    !c->job.exited)
			kill(-c->job.pid, (int)v);
		break;
	case HEC_G_PING:
		hec_guest_kv_add(&kv, "seq", hec_guest_kv_get(f->payload, f->len, "seq") ?: "0");
		/* After a restore hecd checks the RUN it waits for is ours. */
		hec_guest_kv_addf(&kv, "run", "%lld", c->job.pid ? c->job.id : 0);
		conn_send_kv(c, HEC_G_PONG, &kv);
		break;
	case HEC_G_IN:
		job_input(&c->job, f);
		break;
	default:
		glog("warn", "unexpected frame type %u from the %s ignored", f->type,
		     c->is_port ? "host" : "rsh client");
		break;
	}
}

/* Input on a connection: frames until the buffer runs out. */
static void conn_read(int i)
{
	struct conn *c = conns[i];
	struct hec_guest_frame f;
	long n;
	int rc = 0;

	if (c->shut_ms) {
		uint8_t sink[4096];
		ssize_t got = read(c->fd, sink, sizeof(sink));

		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
			conn_close(i);
		return;
	}
	n = gc_fill(c->fd, &c->r);
	if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
		if (c->is_port)
			port_down(c);
		else
			conn_close(i);
		return;
	}
	if (c->is_port && c->broken) {
		c->r.len = c->r.off = 0;
		return;
	}
	while (conns[i] == c && !c->closing && (rc = gc_next(&c->r, &f)) > 0)
		handle_frame(i, &f);
	if (conns[i] == c && rc < 0 && !c->closing) {
		glog("err", "%s: bad frame (%s): %s", c->is_port ? "host channel" : "rsh client",
		     strerror(-rc), c->is_port ? "ignoring input until the host reconnects" : "closed");
		if (c->is_port) {
			c->broken = 1;
			c->r.len = c->r.off = 0;
		} else {
			conn_close(i);
		}
	}
}

/*
 * Done with an rsh client: send our FIN and wait for the client's close.
 * Closing at once, with bytes of the client's still unread (an IN it sent
 * meanwhile), would send a reset that can destroy the EXIT in flight.
 */
static void conn_shut(int i)
{
	struct conn *c = conns[i];

	if (c->shut_ms)
		return;
	if (shutdown(c->fd, SHUT_WR) < 0) {
		conn_close(i);
		return;
	}
	c->shut_ms = now_ms();
}

static void conn_write(int i)
{
	struct conn *c = conns[i];

	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			if (c->is_port)
				port_down(c);
			else
				conn_close(i);
			return;
		}
		c->woff += (size_t)n;
	}
	c->wlen = c->woff = 0;
	if (c->closing && !c->job.pid)
		conn_shut(i);
}

static void job_output(struct conn *c, int *fd, int stream)
{
	uint8_t buf[65536];
	ssize_t n;

	buf[0] = (uint8_t)stream;
	n = read(*fd, buf + 1, sizeof(buf) - 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_fd(fd);
		return;
	}
	/* A closed rsh client loses the output, as a closed terminal would
	 * (the host's port is not read while the host is away). */
	conn_send(c, HEC_G_OUT, buf, (uint32_t)n + 1);
}

static void job_write_input(struct guest_run *j)
{
	ssize_t n = write(j->in_fd, j->in, j->in_len);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* the command closed its stdin: what is left is not wanted */
		j->in_len = 0;
		close_fd(&j->in_fd);
		return;
	}
	memmove(j->in, j->in + n, j->in_len - (size_t)n);
	j->in_len -= (size_t)n;
	if (!j->in_len && j->in_eof)
		close_fd(&j->in_fd);
}

/* Exited and drained (or DRAIN_MS past the exit: a daemon kept the pipes). */
static void job_finish(int i)
{
	struct conn *c = conns[i];
	struct guest_run *j = &c->job;
	int code, sig = 0;

	if (!j->pid || !j->exited)
		return;
	/* Its end waits for a host to tell (hecd restarting), as its output does. */
	if (c->is_port && !c->up)
		return;
	if ((j->out_fd >= 0 || j->err_fd >= 0) && now_ms() - j->exit_ms < DRAIN_MS)
		return;
	if (WIFSIGNALED(j->status)) {
		sig = WTERMSIG(j->status);
		code = 128 + sig;
	} else {
		code = WEXITSTATUS(j->status);
	}
	send_exit(c, j->id, code, sig, NULL);
	/* The command is over: so is what it left behind (hec-rsh clients, proxies). */
	job_abandon(j);
	if (!c->is_port)
		c->closing = 1;
}

static void reap(int sfd)
{
	struct signalfd_siginfo si;
	unsigned live[MAX_CONNS + 1];
	int st, nlive = 0;
	pid_t pid;

	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (int i = 0; i <= MAX_CONNS; i++)
			if (conns[i] && conns[i]->job.pid == pid) {
				conns[i]->job.exited = 1;
				conns[i]->job.status = st;
				conns[i]->job.exit_ms = now_ms();
			}
	for (int i = 0; i <= MAX_CONNS; i++)
		if (conns[i] && conns[i]->job.cg)
			live[nlive++] = conns[i]->job.cg;
	cg_sweep(live, nlive);
}

static struct conn *conn_new(int fd, int is_port)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->is_port = is_port;
	c->opened_ms = now_ms();
	job_reset(&c->job);
	return c;
}

static void rsh_accept(int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

	if (fd < 0)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = 1; i <= MAX_CONNS; i++)
		if (!conns[i]) {
			conns[i] = conn_new(fd, 0);
			if (conns[i])
				return;
			break;
		}
	glog("err", "rsh client refused: %d connections already open", MAX_CONNS);
	close(fd);
}

static int rsh_listen(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(HEC_GUEST_RSH_PORT) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		glog("err", "remote-shell service on port %d: %s", HEC_GUEST_RSH_PORT, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Is the host connected to the port?  virtio-console reports POLLHUP while
 * it is not (and reads return EOF), so this is polled on a timer. */
static void port_probe(struct conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (poll(&p, 1, 0) < 0 || (p.revents & POLLHUP))
		return;
	c->up = 1;
	glog("info", "host connected on " HEC_GUEST_PORT);
	send_hello(c);
	/* a command that ended meanwhile drains its pipes to the new host */
	if (c->job.exited)
		c->job.exit_ms = now_ms();
}

static void open_port(void)
{
	char dev[PATH_MAX];
	long long deadline = now_ms() + 10000;
	int fd;

	while (find_port(dev, sizeof(dev)) && now_ms() < deadline)
		usleep(50000);
	if (find_port(dev, sizeof(dev))) {
		glog("err", "no virtio-serial port named " HEC_GUEST_PORT " (is virtio_console loaded, and -device virtserialport,name=" HEC_GUEST_PORT " given?)");
		return;
	}
	while ((fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0 && errno == ENOENT &&
	       now_ms() < deadline)
		usleep(50000);
	if (fd < 0) {
		glog("err", "%s: %s", dev, strerror(errno));
		return;
	}
	port_conn = conns[0] = conn_new(fd, 1);
	if (port_conn)
		port_probe(port_conn);
}

static __attribute__((noreturn)) void serve(void)
{
	struct pollfd p[2 + 4 * (MAX_CONNS + 1)];
	int owner[2 + 4 * (MAX_CONNS + 1)], what[2 + 4 * (MAX_CONNS + 1)];
	sigset_t mask;
	int sfd, lfd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);
	lfd = rsh_listen();
	open_port();
	for (;;) {
		int n = 0, timeout = -1;
		long long now = now_ms();

		p[n].fd = sfd;
		p[n++].events = POLLIN;
		p[n].fd = lfd;
		p[n++].events = POLLIN;
		for (int i = 0; i <= MAX_CONNS; i++) {
			struct conn *c = conns[i];
			struct guest_run *j;

			if (!c)
				continue;
			if ((!c->is_port && !c->authed && now - c->opened_ms > AUTH_MS) ||
			    (c->shut_ms && now - c->shut_ms > LINGER_MS)) {
				conn_close(i);
				continue;
			}
			if (c->shut_ms)
				timeout = timeout < 0 || timeout > 1000 ? 1000 : timeout;
			j = &c->job;
			if (c->is_port && !c->up) {
				timeout = PORT_RETRY_MS;
			} else {
				short ev = (short)(c->wlen > c->woff ? POLLOUT : 0);

				if (j->in_len < INBUF_MAX)
					ev |= POLLIN;
				owner[n] = i, what[n] = 0, p[n].fd = c->fd, p[n++].events = ev;
			}
			if (!c->is_port && !c->authed)
				timeout = 1000;
			/* A disconnected host's output stays in the pipes: the
			 * command blocks once they are full, until a host (a
			 * restarted hecd) comes back for it. */
			if (c->wlen - c->woff < WBUF_MAX && (!c->is_port || c->up)) {
				if (j->out_fd >= 0)
					owner[n] = i, what[n] = 1, p[n].fd = j->out_fd, p[n++].events = POLLIN;
				if (j->err_fd >= 0)
					owner[n] = i, what[n] = 2, p[n].fd = j->err_fd, p[n++].events = POLLIN;
			}
			if (j->in_fd >= 0 && j->in_len)
				owner[n] = i, what[n] = 3, p[n].fd = j->in_fd, p[n++].events = POLLOUT;
			if (j->exited)
				timeout = timeout < 0 || timeout > 100 ? 100 : timeout;
		}
		if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			glog("err", "poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (p[0].revents)
			reap(sfd);
		if (p[1].revents & POLLIN)
			rsh_accept(lfd);
		for (int k = 2; k < n; k++) {
			struct conn *c = conns[owner[k]];

			if (!c || !p[k].revents || p[k].fd < 0)
				continue;
			switch (what[k]) {
			case 0:
				if (c->fd != p[k].fd)
					break;
				if (p[k].revents & (POLLIN | POLLHUP | POLLERR))
					conn_read(owner[k]);
				if (conns[owner[k]] == c && (c->is_port ? c->up : 1) &&
				    (p[k].revents & POLLOUT))
					conn_write(owner[k]);
				break;
			case 1:
				if (c->job.out_fd == p[k].fd)
					job_output(c, &c->job.out_fd, 1);
				break;
			case 2:
				if (c->job.err_fd == p[k].fd)
					job_output(c, &c->job.err_fd, 2);
				break;
			case 3:
				if (c->job.in_fd == p[k].fd)
					job_write_input(&c->job);
				break;
			}
		}
		for (int i = 0; i <= MAX_CONNS; i++) {
			if (conns[i])
				job_finish(i);
			/* try the write at once: most frames fit the socket */
			if (conns[i] && conns[i]->wlen > conns[i]->woff &&
			    (!conns[i]->is_port || conns[i]->up))
				conn_write(i);
			else if (conns[i] && conns[i]->closing && !conns[i]->job.pid &&
				 conns[i]->wlen == conns[i]->woff)
				conn_shut(i);
		}
		if (port_conn && !port_conn->up)
			port_probe(port_conn);
	}
}

static __attribute__((noreturn)) void init_main(void)
{
	setenv("PATH", DEFAULT_PATH, 1);
	setenv("HOME", "/root", 1);
	mount_all();
	setup_console();
	glog("info", "starting");
	load_modules();
	parse_cmdline(&boot);
	if (boot.node[0] && sethostname(boot.node, strlen(boot.node)) < 0)
		glog("err", "sethostname %s: %s", boot.node, strerror(errno));
	write_hosts(&boot);
	setup_network(&boot);
	serve();
}

/* ---- hec-rsh HOST CMD... ---- */

/* HOST as an IPv4 literal or from /etc/hosts (static glibc cannot use NSS). */
static int resolve(const char *host, struct in_addr *a)
{
	char *hosts, *line, *save = NULL;
	int rc = -ENOENT;

	if (inet_pton(AF_INET, host, a) == 1)
		return 0;
	hosts = read_file("/etc/hosts", 1 << 20);
	if (!hosts)
		return -errno;
	for (line = strtok_r(hosts, "\n", &save); line && rc; line = strtok_r(NULL, "\n", &save)) {
		char *tok, *tsave = NULL, *ip;

		*strchrnul(line, '#') = 0;
		ip = strtok_r(line, " \t", &tsave);
		if (!ip || inet_pton(AF_INET, ip, a) != 1)
			continue;
		while ((tok = strtok_r(NULL, " \t", &tsave)))
			if (!strcasecmp(tok, host)) {
				rc = 0;
				break;
			}
	}
	free(hosts);
	return rc;
}

static int rsh_connect(const char *host, const struct in_addr *a)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(HEC_GUEST_RSH_PORT),
				  .sin_addr = *a };
	long long deadline = now_ms() + RSH_CONNECT_MS;
	int err;

	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return fd;
		}
		err = errno;
		close(fd);
		if (now_ms() >= deadline || (err != ECONNREFUSED && err != EHOSTUNREACH &&
					     err != ENETUNREACH && err != ETIMEDOUT && err != EINTR))
			break;
		usleep(200000);
	}
	fprintf(stderr, "hec-rsh: %s:%d: %s\n", host, HEC_GUEST_RSH_PORT, strerror(err));
	return -err;
}

static int rsh_main(int argc, char **argv)
{
	struct hec_guest_kvbuf kv = { 0 };
	struct gc_reader r = { 0 };
	struct in_addr a;
	char key[256] = "", cwd[PATH_MAX], *cmdline, *cmd;
	const char *host, *env_key = getenv("HEC_RSH_KEY");
	size_t len = 1;
	int fd, rc, status;

	if (argc < 3) {
		fprintf(stderr, "usage: hec-rsh HOST COMMAND...\n");
		return 2;
	}
	host = argv[1];
	/* key: the environment overrides the kernel command line (for tests) */
	if (env_key)
		snprintf(key, sizeof(key), "%s", env_key);
	else if ((cmdline = read_file("/proc/cmdline", 65536))) {
		cmdline_get(cmdline, "hec.key", key, sizeof(key));
		free(cmdline);
	}
	if (!key[0]) {
		fprintf(stderr, "hec-rsh: no job key (hec.key= on the kernel command line)\n");
		return 255;
	}
	rc = resolve(host, &a);
	if (rc) {
		fprintf(stderr, "hec-rsh: %s: not an address nor in /etc/hosts\n", host);
		return 255;
	}
	/* Hydra passes the proxy command as one or several words: run it as sh would */
	for (int i = 2; i < argc; i++)
		len += strlen(argv[i]) + 1;
	cmd = calloc(1, len);
	if (!cmd)
		return 255;
	for (int i = 2; i < argc; i++) {
		if (i > 2)
			strcat(cmd, " ");
		strcat(cmd, argv[i]);
	}
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	rc = hec_guest_kv_add(&kv, "id", "1");
	rc = rc ?: hec_guest_kv_addf(&kv, "uid", "%u", (unsigned)getuid());
	rc = rc ?: hec_guest_kv_addf(&kv, "gid", "%u", (unsigned)getgid());
	rc = rc ?: hec_guest_kv_add(&kv, "cwd", cwd);
	rc = rc ?: hec_guest_kv_add(&kv, "key", key);
	rc = rc ?: hec_guest_kv_add(&kv, "arg", "/bin/sh");
	rc = rc ?: hec_guest_kv_add(&kv, "arg", "-c");
	rc = rc ?: hec_guest_kv_add(&kv, "arg", cmd);
	for (char **e = environ; !rc && *e; e++)
		if (strchr(*e, '='))
			rc = hec_guest_kv_add(&kv, "env", *e);
	free(cmd);
	if (rc) {
		fprintf(stderr, "hec-rsh: RUN: %s\n", strerror(-rc));
		return 255;
	}
	fd = rsh_connect(host, &a);
	if (fd < 0)
		return 255;
	rc = gc_send(fd, HEC_G_RUN, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	if (rc) {
		fprintf(stderr, "hec-rsh: %s: %s\n", host, strerror(-rc));
		return 255;
	}
	status = gc_relay(fd, &r, "hec-rsh", host, 1);
	gc_reader_free(&r);
	close(fd);
	return status;
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');

	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "hec-rsh"))
		return rsh_main(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "rsh"))
		return rsh_main(argc - 1, argv + 1);
	if (getpid() == 1)
		init_main();
	fprintf(stderr, "usage: hec-guest is the guest's init (PID 1); as hec-rsh (or 'hec-guest rsh'): HOST COMMAND...\n");
	return 2;
}
