/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * QEMU (vm.h): we listen on four Unix sockets in the job's directory
 * (guest channel, QMP, the gate's QMP, network) and start QEMU in the
 * job's cgroup as the job's user; QEMU connects to all four, so nothing
 * polls for sockets to appear.  Its exit (SIGCHLD, through the host's
 * reaped()) fails the guest with the best reason we can find.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/memfd.h> /* before sys/mman.h, which defines MFD_* only if not yet */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/kvm.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"
#include "hec/qmp.h"
#include "partition/vm/vnet.h"

static const char *const sock_names[NLISTEN] = { "guest.sock", "qmp.sock", "gate.sock", "net.sock" };

void close_listeners(struct vm *v)
{
	for (int i = 0; i < NLISTEN; i++) {
		if (v->lev[i]) {
			event_free(v->lev[i]);
			v->lev[i] = NULL;
		}
		if (v->lfd[i] >= 0) {
			close(v->lfd[i]);
			v->lfd[i] = -1;
		}
	}
}


/* EOF or error on one of QEMU's connections: QEMU is going; its exit
 * (SIGCHLD) tells why.  The guest channel alone closing is a failure. */
static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct vm *v = arg;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (bev == v->q.guest) {
		bufferevent_free(v->q.guest);
		v->q.guest = NULL;
	} else if (bev == v->q.qmp) {
		qmp_gone(v);
	} else if (bev == v->q.netq) {
		vnet_port_del(v->net, v->port_guest);
		bufferevent_free(v->q.netq);
		v->q.netq = NULL;
	}
}

static void on_accept(evutil_socket_t lfd, short what, void *arg);

static struct bufferevent *wrap(struct vm *v, int fd, bufferevent_data_cb rd)
{
	struct bufferevent *bev = bufferevent_socket_new(v->host->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (!bev) {
		close(fd);
		return NULL;
	}
	bufferevent_setcb(bev, rd, NULL, conn_event, v);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return bev;
}

static int listener_index(struct vm *v, evutil_socket_t lfd)
{
	for (int i = 0; i < NLISTEN; i++)
		if (v->lfd[i] == lfd)
			return i;
	return -1;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct vm *v = arg;
	int i = listener_index(v, lfd), fd;

	(void)what;
	fd = accept4((int)lfd, NULL, NULL, SOCK_CLOEXEC | (i == L_GATE ? 0 : SOCK_NONBLOCK));
	if (fd < 0 || i < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* One connection each: QEMU's.  Nobody else gets a second go. */
	event_del(v->lev[i]);
	switch (i) {
	case L_GUEST:
		v->q.guest = wrap(v, fd, guest_read);
		break;
	case L_QMP:
		v->q.qmp = wrap(v, fd, qmp_read);
		break;
	case L_NET:
		v->q.netq = wrap(v, fd, net_read);
		if (v->q.netq)
			v->port_guest = vnet_port_add(v->net, send_to_guest, v);
		break;
	case L_GATE: {
		/* Blocking on purpose: the dispatcher thread waits on it. */
		int rc = qmp_mon_open(fd, GATE_QMP_TIMEOUT_MS, &v->q.mon);

		if (rc)
			hec_job_warn(v->host->node, v->job,
				     "QMP gate monitor: %s; the guest is switched by cgroup freeze",
				     strerror(-rc));
		break;
	}
	}
}


static int chown_sock(struct vm *v, const char *path)
{
	if (geteuid() == 0 && chown(path, v->uid, v->gid))
		return -errno;
	return 0;
}

int make_listeners(struct vm *v, char *why, size_t len)
{
	char path[PATH_MAX];

	for (int i = 0; i < NLISTEN; i++) {
		int rc = hec_fmt(path, sizeof(path), "%s/%s", v->dir, sock_names[i]);

		if (rc) {
			hec_fmt(why, len, "%s/%s: path too long", v->dir, sock_names[i]);
			return rc;
		}
		unlink(path);
		v->lfd[i] = hec_listen_unix(path, 0600);
		if (v->lfd[i] < 0) {
			rc = v->lfd[i];
			hec_fmt(why, len, "listen on %s: %s", path, strerror(-rc));
			return rc;
		}
		rc = chown_sock(v, path);
		if (rc) {
			hec_fmt(why, len, "chown %s: %s", path, strerror(-rc));
			return rc;
		}
		v->lev[i] = event_new(v->host->base, v->lfd[i], EV_READ | EV_PERSIST, on_accept, v);
		if (!v->lev[i] || event_add(v->lev[i], NULL)) {
			hec_fmt(why, len, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

/* The guest's address on the job's network: link-local, by node index. */
static void guest_ip(int index, char *buf, size_t len)
{
	hec_fmt(buf, len, "169.254.%d.%d", 1 + index / 250, 1 + index % 250);
}

int build_cmdline(struct vm *v, const json_t *nodes)
{
	char ip[32], *p = v->cmdline;
	size_t left = sizeof(v->cmdline), i;
	json_t *n;
	int k;

	guest_ip(v->index, ip, sizeof(ip));
	k = snprintf(p, left, "console=ttyS0 panic=-1 quiet hec.node=%s hec.ip=%s/16 hec.key=%s hec.hosts=",
		     v->host->node, ip, v->gkey);
	if (k < 0 || (size_t)k >= left)
		return -ENAMETOOLONG;
	p += k;
	left -= (size_t)k;
	json_array_foreach(nodes, i, n) {
		guest_ip((int)i, ip, sizeof(ip));
		k = snprintf(p, left, "%s%s:%s", i ? "," : "",
			     json_string_value(json_object_get(n, "name")), ip);
		if (k < 0 || (size_t)k >= left)
			return -ENAMETOOLONG;
		p += k;
		left -= (size_t)k;
	}
	return 0;
}

/*
 * KVM where the device answers and the CPU we run on shows VMX or SVM: a
 * /dev/kvm can exist without them (a VM without nested virtualisation),
 * and QEMU then aborts setting up the vCPU instead of falling back.
 */
static int kvm_usable(void)
{
	static char info[1 << 16];
	int fd, ok;

	if (hec_read_file("/proc/cpuinfo", info, sizeof(info)) ||
	    (!strstr(info, " vmx") && !strstr(info, " svm")))
		return 0;
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ok = ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
	close(fd);
	return ok;
}

/* ---- guest RAM: 2 MiB hugetlb pages or anonymous memory ---- */

/*
 * QEMU 7.2's background snapshot lifts the write protection of the guest's
 * RAM one host page at a time, an ioctl each in its single migration
 * thread, whether the page is zero or not: 262144 of them per GiB of
 * anonymous memory (4 KiB pages), 512 in 2 MiB hugetlb pages.  That walk
 * bounds the capture of a large, mostly empty guest (doc/design.md).
 */
#define HUGE_MB 2
#define HUGE_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB"

int ram_huge_choose(enum hec_vm_hugepages mode, long mem_mb, long avail, char *why, size_t len)
{
	int rc;

	why[0] = 0;
	if (mode == HEC_VM_HUGE_OFF)
		return 0;
	if (avail < 0) {
		hec_fmt(why, len, "the kernel has no 2 MiB huge pages (%s)", HUGE_SYSFS);
		rc = -EOPNOTSUPP;
	} else if (mem_mb <= 0 || mem_mb % HUGE_MB) {
		hec_fmt(why, len, "%ld MB of RAM are not a whole number of 2 MiB huge pages", mem_mb);
		rc = -EINVAL;
	} else if (avail < mem_mb / HUGE_MB) {
		hec_fmt(why, len, "%ld MB of RAM need %ld free 2 MiB huge pages, %ld are (vm.nr_hugepages)",
			mem_mb, mem_mb / HUGE_MB, avail);
		rc = -ENOMEM;
	} else {
		return 1;
	}
	return mode == HEC_VM_HUGE_ON ? rc : 0;
}

static long sysfs_long(const char *path)
{
	char buf[32];
	long n;

	if (hec_read_file(path, buf, sizeof(buf)) || hec_parse_long(buf, 0, LONG_MAX, &n))
		return -1;
	return n;
}

/* The 2 MiB pages nobody holds or has reserved; -1: no such pages. */
static long huge_avail(void)
{
	long free_ = sysfs_long(HUGE_SYSFS "/free_hugepages"), resv = sysfs_long(HUGE_SYSFS "/resv_hugepages");

	if (free_ < 0 || resv < 0)
		return -1;
	return free_ > resv ? free_ - resv : 0;
}

/*
 * A hugetlb memfd of @mem_mb MB whose pages are reserved for it: a shared
 * mapping reserves every page of its range for the file at mmap (and the
 * reservation stays with the file after munmap), all or none, so the kernel
 * arbitrates between guests starting at once, this agent's or another's on
 * the same host; QEMU mapping the file later takes the same pages.  Cheap:
 * nothing is faulted in.  \return the fd, or -errno (-ENOMEM: the pool has
 * not that many free).
 */
static int huge_reserve(long mem_mb)
{
	size_t size = (size_t)mem_mb << 20;
	void *m;
	int fd = memfd_create("hec-guest-ram", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB), rc;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size))
		goto fail;
	m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		goto fail;
	munmap(m, size);
	return fd;
fail:
	rc = -errno;
	close(fd);
	return rc;
}

/*
 * What backs the guest's RAM (v->huge), by vm_hugepages: *@ramfd gets the
 * reserved memfd for huge pages (else -1); @note says which, for the log.
 */
static int ram_backing(struct vm *v, int *ramfd, char *note, size_t nlen, char *why, size_t len)
{
	enum hec_vm_hugepages mode = v->host->vm_hugepages;
	char cause[256];
	int rc = ram_huge_choose(mode, v->mem_mb, huge_avail(), cause, sizeof(cause));

	*ramfd = -1;
	if (rc == 1) {
		*ramfd = huge_reserve(v->mem_mb);
		if (*ramfd < 0) {
			/* taken meanwhile, by a guest starting at the same time */
			hec_fmt(cause, sizeof(cause), "reserving %ld free 2 MiB huge pages for %ld MB of RAM: %s",
				v->mem_mb / HUGE_MB, v->mem_mb, strerror(-*ramfd));
			rc = mode == HEC_VM_HUGE_ON ? *ramfd : 0;
			*ramfd = -1;
		}
	}
	if (rc < 0) {
		hec_fmt(why, len, "vm_hugepages = on: %s", cause);
		return rc;
	}
	v->huge = rc;
	if (v->huge)
		hec_fmt(note, nlen, "in 2 MiB huge pages");
	else
		hec_fmt(note, nlen, "anonymous%s%s%s", cause[0] ? " (vm_hugepages = auto: " : "", cause,
			cause[0] ? ")" : "");
	return 0;
}

int start_qemu(struct vm *v, char *why, size_t len)
{
	char smp[16], mem[32], name[64], chr[4][PATH_MAX + 64], netdev[PATH_MAX + 64], mac[64];
	char serial[PATH_MAX + 64], log[PATH_MAX], accel[64], ctx[PATH_MAX + 64] = "";
	char ram[128], ramnote[320];
	const char *argv[64];
	int argc = 0, logfd = -1, nullfd = -1, ramfd, rc;
	struct hec_spawn_req req;
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	int kvm = kvm_usable();

	rc = ram_backing(v, &ramfd, ramnote, sizeof(ramnote), why, len);
	if (rc)
		return rc;
	rc = make_listeners(v, why, len);
	if (rc)
		goto out;
	hec_fmt(smp, sizeof(smp), "%d", v->vcpus);
	hec_fmt(mem, sizeof(mem), "%ldM", v->mem_mb);
	hec_fmt(name, sizeof(name), "hec-job%ld-%s", v->job, v->host->node);
	/* The reserved memfd is QEMU's stdin (it reads none: no stdio
	 * chardev), which it maps as its own /proc/self/fd/0.  pc.ram: the id
	 * of -m's own RAM, which a migration stream names its pages by, so a
	 * checkpoint of either backing loads into the other.  prealloc: the
	 * pages are the guest's already; faulting them in now keeps that out of
	 * the first capture (which reads every page) and of a restart's load. */
	hec_fmt(ram, sizeof(ram), "memory-backend-file,id=pc.ram,size=%ldM,mem-path=/proc/self/fd/0,share=on,prealloc=on",
		v->mem_mb);
	hec_fmt(accel, sizeof(accel), "q35,accel=%s%s", kvm ? "kvm:tcg" : "tcg",
		v->huge ? ",memory-backend=pc.ram" : "");
	/* reconnect: a restarted agent listens on the same paths, and QEMU
	 * comes back to it within a second (reattach.c). */
	hec_fmt(chr[0], sizeof(chr[0]), "socket,id=hecg,path=%s/%s,reconnect=1", v->dir, sock_names[L_GUEST]);
	hec_fmt(chr[1], sizeof(chr[1]), "socket,id=qmp,path=%s/%s,reconnect=1", v->dir, sock_names[L_QMP]);
	hec_fmt(chr[2], sizeof(chr[2]), "socket,id=qmpg,path=%s/%s,reconnect=1", v->dir, sock_names[L_GATE]);
	hec_fmt(netdev, sizeof(netdev), "stream,id=n0,server=off,addr.type=unix,addr.path=%s/%s",
	    v->dir, sock_names[L_NET]);
	hec_fmt(mac, sizeof(mac), "virtio-net-pci,netdev=hp0,mac=52:54:%02x:%02x:%02x:%02x",
	    (unsigned)(v->job >> 16) & 0xff, (unsigned)(v->job >> 8) & 0xff, (unsigned)v->job & 0xff,
	    (unsigned)v->index & 0xff);
	hec_fmt(serial, sizeof(serial), "file,id=con,append=on,path=%s/console.log", v->dir);
	argv[argc++] = v->host->qemu;
	argv[argc++] = "-name";
	argv[argc++] = name;
	argv[argc++] = "-machine";
	argv[argc++] = accel;
	argv[argc++] = "-cpu";
	argv[argc++] = kvm ? "host" : "max";
	argv[argc++] = "-smp";
	argv[argc++] = smp;
	argv[argc++] = "-m";
	argv[argc++] = mem;
	if (v->huge) {
		argv[argc++] = "-object";
		argv[argc++] = ram;
	}
	argv[argc++] = "-nodefaults";
	argv[argc++] = "-no-user-config";
	argv[argc++] = "-display";
	argv[argc++] = "none";
	argv[argc++] = "-no-reboot";
	argv[argc++] = "-kernel";
	argv[argc++] = v->kernel;
	argv[argc++] = "-initrd";
	argv[argc++] = v->initrd;
	argv[argc++] = "-append";
	argv[argc++] = v->cmdline;
	argv[argc++] = "-chardev";
	argv[argc++] = serial;
	argv[argc++] = "-serial";
	argv[argc++] = "chardev:con";
	argv[argc++] = "-device";
	argv[argc++] = "virtio-serial-pci";
	argv[argc++] = "-chardev";
	argv[argc++] = chr[0];
	argv[argc++] = "-device";
	argv[argc++] = "virtserialport,chardev=hecg,name=" HEC_GUEST_PORT;
	argv[argc++] = "-chardev";
	argv[argc++] = chr[1];
	argv[argc++] = "-mon";
	argv[argc++] = "chardev=qmp,mode=control";
	argv[argc++] = "-chardev";
	argv[argc++] = chr[2];
	argv[argc++] = "-mon";
	argv[argc++] = "chardev=qmpg,mode=control";
	/* The NIC is on a hub, and the stream to us on another of its ports:
	 * a stream netdev does not reconnect, so a restarted agent plugs a
	 * new one into the hub instead (reattach.c). */
	argv[argc++] = "-netdev";
	argv[argc++] = "hubport,id=hp0,hubid=0";
	argv[argc++] = "-netdev";
	argv[argc++] = netdev;
	argv[argc++] = "-netdev";
	argv[argc++] = "hubport,id=hpn0,hubid=0,netdev=n0";
	argv[argc++] = "-device";
	argv[argc++] = mac;
	if (v->from_stream) {
		/* Restarted from a checkpoint: paused, until migrate-incoming has
		 * loaded the state. */
		argv[argc++] = "-incoming";
		argv[argc++] = "defer";
		argv[argc++] = "-S";
	}
	argv[argc] = NULL;

	/* The job's first QEMU here, a restarted one too: its files start afresh. */
	hec_fmt(log, sizeof(log), "%s/qemu.log", v->dir);
	logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0) {
		rc = -errno;
		hec_fmt(why, len, "%s: %s", log, strerror(-rc));
		goto out;
	}
	/* QEMU writes the console file as the job's user. */
	hec_fmt(log, sizeof(log), "%s/console.log", v->dir);
	close(open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
	chown_sock(v, log);
	req = (struct hec_spawn_req){ .argv = argv, .envp = envp, .cwd = v->dir, .uid = v->uid,
				      .gid = v->gid, .groups = &v->groups, .stdin_fd = ramfd >= 0 ? ramfd : nullfd, .stdout_fd = logfd,
				      .stderr_fd = logfd };
	rc = hec_partition_proc_ops.spawn(v->cg, &req, &v->q.pid, ctx, sizeof(ctx));
	if (rc) {
		hec_fmt(why, len, "cannot start %s: %s: %s", v->host->qemu, ctx, strerror(-rc));
	} else {
		v->q_start = hec_proc_start(v->q.pid);
		hec_job_info(v->host->node, v->job, "QEMU pid %d: %d vCPUs, %ld MB %s, %s%s",
			     (int)v->q.pid, v->vcpus, v->mem_mb, ramnote, kvm ? "KVM" : "TCG",
			     v->from_stream ? ", waiting for the state to restore" : "");
	}
out:
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	/* QEMU holds the file, and its pages with it, or nobody does */
	if (ramfd >= 0)
		close(ramfd);
	return rc;
}

void qemu_log_tail(struct vm *v, char *out, size_t len)
{
	char path[PATH_MAX], buf[4096], *end, *start;

	out[0] = 0;
	if (hec_fmt(path, sizeof(path), "%s/qemu.log", v->dir) || hec_read_file(path, buf, sizeof(buf)))
		return;
	end = buf + strlen(buf);
	while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
		*--end = 0;
	start = strrchr(buf, '\n');
	hec_fmt(out, len, "%s", start ? start + 1 : buf);
}


void qemu_drop(struct qemu *c)
{
	if (c->guest)
		bufferevent_free(c->guest);
	if (c->qmp)
		bufferevent_free(c->qmp);
	if (c->netq)
		bufferevent_free(c->netq);
	qmp_mon_put(c->mon);
	c->guest = c->qmp = c->netq = NULL;
	c->mon = NULL;
	if (c->pid > 0)
		kill(c->pid, SIGKILL);
}

/* ---- a guest restarted from a checkpoint's stream (start() with restore) ---- */

#define IN_POLL_MS 50
#define IN_FDNAME "hecin"
/* hec-guest answers a PING at once once its vCPUs run; a guest the gang
 * keeps switched out gets its slots within a few seconds even on a loaded
 * node. */
#define RESUME_PONG_TIMEOUT_S 120

static void in_after(struct vm *v, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(v->in_timer, &tv);
}

/* QEMU's own words on a failed load: its log's last line, else @fallback. */
static void in_fail(struct vm *v, const char *fallback)
{
	char tail[600];

	qemu_log_tail(v, tail, sizeof(tail));
	vm_fail(v, "the checkpoint's state did not load: %s", tail[0] ? tail : fallback);
}

/* The state is in: the guest is up, its vCPUs stopped until resume(). */
static void in_loaded(struct vm *v)
{
	v->state = VM_UP;
	v->paused = 1;
	hec_job_info(v->host->node, v->job,
		     "guest loaded from the checkpoint (%d vCPUs, %ld MB); paused until resumed",
		     v->vcpus, v->mem_mb);
	guest_save(v);
	start_finish(v, 0, NULL);
}

static void in_status(struct vm *v, json_t *reply, const char *error)
{
	json_t *r = json_object_get(reply, "return");
	const char *st = json_string_value(json_object_get(r, "status"));
	const char *desc = json_string_value(json_object_get(r, "error-desc"));
	char msg[400];

	if (v->state != VM_BOOTING)
		return;
	if (!reply || error) {
		hec_fmt(msg, sizeof(msg), "QEMU: %s", reply ? error : "its monitor went away");
		in_fail(v, msg);
	} else if (st && !strcmp(st, "completed")) {
		in_loaded(v);
	} else if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
		/* QEMU's own reason where it gives one: its log may end with an
		 * older warning when the failure is polled */
		hec_fmt(msg, sizeof(msg), "QEMU: the migration %s%s%s", st, desc ? ": " : "",
			desc ? desc : "");
		if (desc)
			vm_fail(v, "the checkpoint's state did not load: %s", msg);
		else
			in_fail(v, msg);
	} else {
		in_after(v, IN_POLL_MS);
	}
}

/* A command of the load whose answer only needs checking. */
static void in_check(struct vm *v, json_t *reply, const char *error)
{
	char msg[400];

	if (v->state != VM_BOOTING || (reply && !error))
		return;
	hec_fmt(msg, sizeof(msg), "QEMU: %s", reply ? error : "its monitor went away");
	in_fail(v, msg);
}

static void resume_ponged(struct vm *v, const struct hec_guest_frame *f);

static void in_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;

	(void)fd;
	(void)what;
	if (v->state == VM_BOOTING)
		qmp_call(v, json_pack("{s:s}", "execute", "query-migrate"), -1, in_status);
	else if (v->state == VM_UP && v->on_pong == resume_ponged)
		vm_fail(v, "the restored guest does not answer on its channel within %d s of its resume",
			RESUME_PONG_TIMEOUT_S);
}

void incoming_begin(struct vm *v)
{
	int fd = v->in_fd;

	v->in_fd = -1;
	v->in_timer = evtimer_new(v->host->base, in_timer_cb, v);
	if (!v->in_timer) {
		if (fd >= 0)
			close(fd);
		vm_fail(v, "out of memory");
		return;
	}
	/* Queued until QEMU's monitor greets us; the fd goes with getfd. */
	qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "getfd", "arguments", "fdname", IN_FDNAME),
		 fd, in_check);
	qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "migrate-incoming", "arguments", "uri",
			      "fd:" IN_FDNAME), -1, in_check);
	qmp_call(v, json_pack("{s:s}", "execute", "query-migrate"), -1, in_status);
}

/* PONG to resume()'s PING: hec-guest runs, and says which batch step. */
static void resume_ponged(struct vm *v, const struct hec_guest_frame *f)
{
	long long seq = -1, run = 0;

	if (hec_guest_kv_int(f->payload, f->len, "seq", 0, 1LL << 62, &seq) || seq != v->ping_seq)
		return;
	hec_guest_kv_int(f->payload, f->len, "run", 0, 1LL << 40, &run);
	v->on_pong = NULL;
	evtimer_del(v->in_timer);
	v->ponged = 1;
	v->guest_run = (long)run;
	hec_job_info(v->host->node, v->job, "restored guest resumed; hec-guest answers (%s)",
		     run ? "the batch step runs" : "no batch step runs");
	if (v->running && v->attach_unknown) {
		v->attach_unknown = 0;
		if (!run) {
			run_ended(v);
			vm_exited(v, 1, 0, "the guest was restored to a state in which no batch step runs");
			return;
		}
		v->run_id = (long)run;
	}
	/* Switched by cgroup freeze until now (a QMP gate would have run the
	 * paused guest at its slot): now it runs, the way is chosen as at a
	 * boot. */
	calibrate(v);
}

static void resume_conted(struct vm *v, json_t *reply, const char *error)
{
	struct hec_guest_kvbuf kv = { 0 };
	int rc;

	if (v->state != VM_UP)
		return;
	if (!reply || error) {
		vm_fail(v, "the restored guest did not resume: QEMU: %s",
			reply ? error : "its monitor went away");
		return;
	}
	rc = hec_guest_kv_addf(&kv, "seq", "%ld", ++v->ping_seq);
	if (!rc)
		rc = guest_send(v, HEC_G_PING, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	if (rc) {
		vm_fail(v, "the restored guest's channel: %s", strerror(-rc));
		return;
	}
	v->on_pong = resume_ponged;
	in_after(v, RESUME_PONG_TIMEOUT_S * 1000);
}

int vm_resume(struct hec_partition *p, char *why, size_t len)
{
	struct vm *v = p->priv;

	if (v->state != VM_UP || !v->paused) {
		hec_fmt(why, len, "%s%s%s",
			v->state == VM_UP ? "the guest was not restarted from a checkpoint, or runs already" :
					    "the guest is not loaded",
			v->why[0] ? ": " : "", v->why);
		return v->state == VM_UP ? -EALREADY : -ENOTCONN;
	}
	v->paused = 0;
	/* A guest the gang holds frozen answers once its slot thaws it. */
	qmp_call(v, json_pack("{s:s}", "execute", "cont"), -1, resume_conted);
	return 0;
}
