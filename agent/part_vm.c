/*
 * vm partitions (part_vm.h): each node's share of a job is a QEMU guest.
 *
 * Life of a guest, all on the agent's event loop:
 *   LAUNCH -> hec-mkimage builds (or finds in its cache) kernel + initramfs
 *   -> we listen on four Unix sockets in the job's directory (guest channel,
 *   QMP, the gate's QMP, network) and start QEMU in the job's cgroup as the
 *   job's user; QEMU connects to all four -> hec-guest (PID 1) sets up the
 *   job's network and says HELLO -> we measure what a gang switch costs by
 *   cgroup freeze and by QMP stop/cont -> LAUNCHED.
 * QEMU connects to us rather than we to it, so nothing polls for sockets
 * to appear.  The guest's exit (QEMU gone, guest panic, channel broken)
 * ends the job as failed with the reason.
 *
 * Snapshot and restore (the ops of the same names) run on the loop too, as
 * chains of QMP commands on the event monitor, one in flight at a time:
 *   snapshot: query-status -> background-snapshot on (or stop, where the
 *   kernel refuses it) -> getfd + migrate fd: -> poll query-migrate.
 *   restore: stop the guest and set its QEMU aside -> a new QEMU with
 *   -incoming defer -> getfd + migrate-incoming fd: -> poll -> the old one
 *   goes, cont, PING/PONG on the guest channel; if the state does not load
 *   the new one goes and the old one resumes.
 *
 * The network: every node's agent runs a learning switch for the job
 * (vnet.c) with its guest on one port; the first node's switch is the hub,
 * and every other node's agent links to it over TCP (NET_JOIN, then
 * NET_FRAME data frames, authenticated by the job key).  On a real cluster
 * the same shape is a bridge per host plus VXLAN tunnels to the hub's.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/kvm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "hec/common.h"
#include "hec/guest.h"
#include "hec/msg.h"
#include "agent/agent.h"
#include "agent/part_proc.h"
#include "agent/part_vm.h"
#include "agent/qmp.h"
#include "agent/vnet.h"

#define VM_BOOT_TIMEOUT_S 180     /* image build + TCG boot to HELLO */
#define UPLINK_RETRY_MS 200
#define NET_QUEUE_MAX (8u << 20)  /* queued frames on a link beyond which we drop */
#define CALIBRATE_ROUNDS 5
/* Between rounds the guest runs a little, as it does between slots: a
 * freeze right after a thaw finds QEMU's threads still asleep, which is
 * cheaper than any real switch. */
#define CALIBRATE_GAP_US 2000
#define GATE_QMP_TIMEOUT_MS 2000
#define MK_OUT_MAX 16384
#define QMP_LINE_MAX (1u << 20)

enum { L_GUEST, L_QMP, L_GATE, L_NET, NLISTEN };
static const char *const sock_names[NLISTEN] = { "guest.sock", "qmp.sock", "gate.sock", "net.sock" };

enum vm_state { VM_IMAGE, VM_BOOTING, VM_UP, VM_DEAD };
enum vm_op { OP_NONE, OP_SNAPSHOT, OP_RESTORE };

struct vm;
/* The answer to a QMP command sent on the event loop: the reply object
 * (NULL: the monitor went away) and, for an "error" reply, its text. */
typedef void (*qmp_cb)(struct vm *v, json_t *reply, const char *error);

struct qmp_call {
	struct qmp_call *next;
	char *line;                   /* the command, newline-terminated */
	int fd;                       /* passed with it (getfd), or -1; owned */
	qmp_cb cb;
	unsigned gen;                 /* the op it belongs to (vm.op_gen), 0: none */
};

/* The QMP way of switching a guest (the cgroup way is the proc driver's
 * own gate, handed out as it is). */
struct qmp_gate {
	struct hec_gate base;     /* first */
	struct qmp_mon *mon;      /* a reference */
};

/* A QEMU process and our connections to it. */
struct qemu {
	pid_t pid;
	struct bufferevent *guest, *qmp, *netq; /* guest channel, event QMP, network */
	struct qmp_mon *mon;          /* the gate's monitor */
};

struct vm {
	struct vm *next;
	struct agent *ag;
	long job;
	struct hec_partition *part;   /* the job's cgroup, owned by the job */
	enum vm_state state;
	int index;                    /* in the job's nodes; 0: the first node, the network's hub */
	int vcpus;
	long mem_mb;
	uid_t uid;
	gid_t gid;
	char key[257];                /* the job's secret: NET_JOIN */
	char gkey[257];               /* the guests' remote-shell secret (kernel command line) */
	char dir[PATH_MAX];
	char kernel[PATH_MAX], initrd[PATH_MAX];
	char cmdline[8192];
	char hub_addr[320];           /* first node's agent, for the uplink */
	char why[1024];               /* why it failed, once it has */

	/* the image tool */
	pid_t mk_pid;
	int mk_fd;
	struct event *mk_ev;
	char mk_out[MK_OUT_MAX];
	size_t mk_len;
	int mk_eof, mk_reaped, mk_status;

	/* QEMU */
	struct qemu q;                /* the one running the guest */
	int lfd[NLISTEN];
	struct event *lev[NLISTEN];
	struct event *timer;
	int64_t deadline_ns;
	char shutdown_reason[64];
	int panicked;
	int incoming;                 /* restore: this QEMU is loading the state */
	int resync;                   /* restored: the channel may begin inside a frame */
	size_t resync_skipped;

	/* restore: the QEMU being replaced, stopped and set aside (connections
	 * idle) until the new one has loaded: it runs on if that fails; once
	 * dropped, its pid stays until it is reaped */
	struct qemu old;

	/* QMP commands on the event loop: one in flight, answers in order */
	struct qmp_call *qq;
	int qmp_greeted, qq_sent;

	/* start(): the outcome goes here, once */
	hec_part_done_fn start_done;
	void *start_arg;

	/* a snapshot or restore under way: one at a time */
	enum vm_op op;
	unsigned op_gen;              /* counts ops: answers to an earlier one are ignored */
	int op_fd;
	hec_part_done_fn op_done;
	void *op_arg;
	int op_stopped;               /* snapshot: the guest stopped for it (no background snapshot) */
	int op_rc;                    /* the outcome, once op_end() decided it */
	char op_why[512];
	int op_ending;
	int64_t op_deadline_ns;
	long ping_seq;                /* restore: the PING whose PONG ends it */
	struct event *op_timer;       /* polls the migration; then delivers the outcome */

	/* network */
	struct vnet *net;
	int port_guest;
	struct hec_conn *uplink;
	int port_uplink;

	/* the batch step (first node) */
	int running;
	long run_id;
	int out_fd, err_fd;

	/* gang switching, measured at boot */
	int use_qmp;
	long long cg_ns, qmp_ns;      /* freeze + thaw, median of CALIBRATE_ROUNDS */
};

/* Gates find their guest by partition handle from the ops table, which
 * knows no agent: one agent per process, so a file-level list will do. */
static struct vm *vms;


static struct vm *vm_find(long job)
{
	for (struct vm *v = vms; v; v = v->next)
		if (v->job == job)
			return v;
	return NULL;
}

static struct vm *vm_by_part(struct hec_partition *p)
{
	for (struct vm *v = vms; v; v = v->next)
		if (v->part == p)
			return v;
	return NULL;
}

/* ---- the ops table: the proc driver's, with the guest's gates ---- */

static int vm_node_init(const struct hec_partition_env *env)
{
	return hec_partition_proc_ops.node_init(env);
}

static int vm_create(const struct hec_partition_env *env, long job, struct hec_partition **out)
{
	return hec_partition_proc_ops.create(env, job, out);
}

static int vm_open(const struct hec_partition_env *env, long job, struct hec_partition **out)
{
	return hec_partition_proc_ops.open(env, job, out);
}

static int vm_list(const struct hec_partition_env *env, long *jobs, int max)
{
	return hec_partition_proc_ops.list(env, jobs, max);
}

static int vm_spawn(struct hec_partition *p, const struct hec_spawn_req *req, pid_t *pid)
{
	return hec_partition_proc_ops.spawn(p, req, pid);
}

static int vm_nprocs(struct hec_partition *p)
{
	return hec_partition_proc_ops.nprocs(p);
}

/* Stop / resume the guest's vCPUs (its devices and QEMU keep running). */
static int vm_freeze_thaw(struct hec_partition *p, int frozen)
{
	struct vm *v = vm_by_part(p);
	int rc;

	if (!v || !v->q.mon)
		return frozen ? hec_partition_proc_ops.freeze(p) : hec_partition_proc_ops.thaw(p);
	rc = qmp_mon_set(v->q.mon, frozen);
	return rc ? rc : qmp_mon_wait(v->q.mon, frozen, GATE_QMP_TIMEOUT_MS * 1000L);
}

static int vm_freeze(struct hec_partition *p)
{
	return vm_freeze_thaw(p, 1);
}

static int vm_thaw(struct hec_partition *p)
{
	return vm_freeze_thaw(p, 0);
}

static int vm_kill(struct hec_partition *p)
{
	return hec_partition_proc_ops.kill(p);
}

static int vm_destroy(struct hec_partition *p)
{
	return hec_partition_proc_ops.destroy(p);
}

static void vm_release(struct hec_partition *p)
{
	hec_partition_proc_ops.release(p);
}

static const char *vm_path(struct hec_partition *p, int i)
{
	return hec_partition_proc_ops.path(p, i);
}

static int vm_cpu_usage(struct hec_partition *p, unsigned long long *usec)
{
	return hec_partition_proc_ops.cpu_usage(p, usec);
}

static struct hec_gate *qmp_gate_new(struct qmp_mon *m)
{
	struct qmp_gate *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->base.ops = &hec_partition_vm_ops;
	qmp_mon_get(m);
	g->mon = m;
	return &g->base;
}

static int vm_gate_open(struct hec_partition *p, struct hec_gate **out)
{
	struct vm *v = vm_by_part(p);

	/* Switched by cgroup freeze: the proc gate itself, so the slot switch
	 * goes through no layer of ours. */
	if (!v || !v->use_qmp || !v->q.mon)
		return hec_partition_proc_ops.gate_open(p, out);
	if (v->op != OP_NONE)
		return -EBUSY; /* out of the gang until the snapshot or restore ends */
	*out = qmp_gate_new(v->q.mon);
	return *out ? 0 : -ENOMEM;
}

/* Only QMP gates reach these: the proc gates carry the proc ops. */
static int vm_gate_set(struct hec_gate *gate, int frozen)
{
	return qmp_mon_set(((struct qmp_gate *)gate)->mon, frozen);
}

static int vm_gate_wait(struct hec_gate *gate, int frozen, long timeout_us)
{
	return qmp_mon_wait(((struct qmp_gate *)gate)->mon, frozen, timeout_us);
}

static void vm_gate_close(struct hec_gate *gate)
{
	struct qmp_gate *g = (struct qmp_gate *)gate;

	if (!g)
		return;
	qmp_mon_put(g->mon);
	free(g);
}

static int vm_start(struct hec_partition *p, const struct hec_start_req *req, char *why, size_t len);
static int vm_snapshot(struct hec_partition *p, int fd, hec_part_done_fn done, void *arg,
		       char *why, size_t len);
static int vm_restore(struct hec_partition *p, int fd, hec_part_done_fn done, void *arg,
		      char *why, size_t len);

const struct hec_partition_ops hec_partition_vm_ops = {
	.name = "vm",
	.node_init = vm_node_init,
	.create = vm_create,
	.open = vm_open,
	.list = vm_list,
	.spawn = vm_spawn,
	.nprocs = vm_nprocs,
	.freeze = vm_freeze,
	.thaw = vm_thaw,
	.kill = vm_kill,
	.destroy = vm_destroy,
	.release = vm_release,
	.path = vm_path,
	.cpu_usage = vm_cpu_usage,
	.start = vm_start,
	.snapshot = vm_snapshot,
	.restore = vm_restore,
	.gate_open = vm_gate_open,
	.gate_set = vm_gate_set,
	.gate_wait = vm_gate_wait,
	.gate_close = vm_gate_close,
};

/* ---- teardown ---- */

static void close_listeners(struct vm *v)
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

static void start_finish(struct vm *v, int rc, const char *why)
{
	hec_part_done_fn done = v->start_done;

	v->start_done = NULL;
	if (done)
		done(v->start_arg, rc, why);
}

static void op_deliver(struct vm *v, int rc, const char *why, int rejoin);
static void qemu_drop(struct qemu *c);
static void qmp_flush(struct vm *v, int answer);
static void run_ended(struct vm *v);

/* The event monitor is closed or broken: what waits on it hears so. */
static void qmp_gone(struct vm *v)
{
	bufferevent_free(v->q.qmp);
	v->q.qmp = NULL;
	v->qmp_greeted = 0;
	qmp_flush(v, 1);
}

static void vm_free(struct vm *v)
{
	struct vm **pp;

	/* Whoever waits on the guest hears that it is gone. */
	start_finish(v, -ECANCELED, "the partition is going away");
	if (v->op != OP_NONE)
		op_deliver(v, -ECANCELED, "the partition is going away", 0);
	for (pp = &vms; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	close_listeners(v);
	if (v->mk_ev)
		event_free(v->mk_ev);
	if (v->mk_fd >= 0)
		close(v->mk_fd);
	if (v->mk_pid > 0 && !v->mk_reaped)
		kill(v->mk_pid, SIGKILL); /* reaped by the SIGCHLD loop as unknown */
	/* The running QEMU goes with the job's cgroup (KILL_JOB): only the
	 * connections close here. */
	v->q.pid = 0;
	qemu_drop(&v->q);
	qemu_drop(&v->old);
	qmp_flush(v, 0);
	if (v->op_timer)
		event_free(v->op_timer);
	if (v->uplink)
		hec_conn_free(v->uplink);
	if (v->timer)
		event_free(v->timer);
	vnet_free(v->net);
	run_ended(v);
	free(v);
}

void vm_forget(struct agent *ag, long job)
{
	struct vm *v = vm_find(job);

	(void)ag;
	if (v)
		vm_free(v);
}

void vm_free_all(struct agent *ag)
{
	(void)ag;
	while (vms)
		vm_free(vms);
}

/* The last lines QEMU's console got, for a failure's reason: the kernel's
 * panic message if there is one. */
static void console_reason(struct vm *v, char *out, size_t len)
{
	char path[PATH_MAX], buf[16384], *p, *best = NULL;
	ssize_t n;
	int fd;

	out[0] = 0;
	if (hec_fmt(path, sizeof(path), "%s/console.log", v->dir))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, n > (ssize_t)sizeof(buf) - 1 ? n - (ssize_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (p = buf; (p = strstr(p, "Kernel panic")); p++)
		best = p;
	if (best) {
		size_t l = strcspn(best, "\r\n");

		hec_fmt(out, len, "guest kernel panic: %.*s", (int)(l > 300 ? 300 : l), best);
	}
}

/*
 * The guest is gone or unusable: record why (first reason wins), kill QEMU
 * (the cgroup keeps nothing else), and tell the job: before LAUNCHED it is
 * a launch failure, afterwards the job fails with the reason.
 */
static void op_end(struct vm *v, int rc, const char *fmt_, ...) __attribute__((format(printf, 3, 4)));

static void vm_fail(struct vm *v, const char *fmt_, ...) __attribute__((format(printf, 2, 3)));
static void vm_fail(struct vm *v, const char *fmt_, ...)
{
	struct agent *ag = v->ag;
	enum vm_state was = v->state;
	struct job *j = job_find(ag, v->job);
	va_list ap;

	if (was == VM_DEAD)
		return;
	va_start(ap, fmt_);
	vsnprintf(v->why, sizeof(v->why), fmt_, ap);
	va_end(ap);
	v->state = VM_DEAD;
	if (v->q.pid > 0)
		kill(v->q.pid, SIGKILL);
	if (v->timer)
		evtimer_del(v->timer);
	hec_err("%s: job %ld: guest failed: %s", ag->conf.name, v->job, v->why);
	if (v->op != OP_NONE) {
		v->op_stopped = 0;
		op_end(v, -EIO, "%s", v->why);
	}
	if (was != VM_UP)
		start_finish(v, -EIO, v->why);
	else if (j && !j->killing)
		job_vm_exited(ag, j, 1, 0, v->why);
}

/* ---- network ---- */

/* QEMU's stream netdev: each frame is a 4-byte big-endian length, then it. */
static int send_to_guest(void *arg, const uint8_t *frame, size_t len)
{
	struct vm *v = arg;
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			   (uint8_t)len };
	struct evbuffer *out;

	if (!v->q.netq)
		return -ENOTCONN;
	out = bufferevent_get_output(v->q.netq);
	if (evbuffer_get_length(out) > NET_QUEUE_MAX)
		return -ENOBUFS;
	if (evbuffer_add(out, hdr, 4) || evbuffer_add(out, frame, len))
		return -ENOMEM;
	return 0;
}

static int send_to_conn(void *arg, const uint8_t *frame, size_t len)
{
	struct hec_conn *c = arg;

	if (hec_conn_pending(c) > NET_QUEUE_MAX)
		return -ENOBUFS;
	return hec_conn_send_data(c, HEC_MSG_NET_FRAME, frame, len);
}

static void net_read(struct bufferevent *bev, void *arg)
{
	struct vm *v = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		uint8_t *p;
		size_t len;

		if (evbuffer_get_length(in) < 4)
			return;
		p = evbuffer_pullup(in, 4);
		len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
		if (len > VNET_FRAME_MAX) {
			vm_fail(v, "QEMU sent a network frame of %zu bytes (at most %d)", len, VNET_FRAME_MAX);
			return;
		}
		if (evbuffer_get_length(in) < 4 + len)
			return;
		p = evbuffer_pullup(in, (ev_ssize_t)(4 + len));
		vnet_input(v->net, v->port_guest, p + 4, len);
		evbuffer_drain(in, 4 + len);
	}
}

static void conn_event(struct bufferevent *bev, short what, void *arg);

static void uplink_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct vm *v = arg;

	(void)c;
	if (m->type == HEC_MSG_NET_FRAME)
		vnet_input(v->net, v->port_uplink, m->data, m->len);
}

static void uplink_retry(struct vm *v);

static void uplink_close(struct hec_conn *c, const char *reason, void *arg)
{
	struct vm *v = arg;

	(void)c;
	vnet_port_del(v->net, v->port_uplink);
	v->port_uplink = 0;
	/* Freed from the timer, not here: we are inside the conn's callback. */
	hec_debug("%s: job %ld: link to the job's first node closed: %s", v->ag->conf.name, v->job,
		  reason ? reason : "EOF");
	if (v->state != VM_DEAD)
		uplink_retry(v);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void op_timer_cb(evutil_socket_t fd, short what, void *arg);

static void uplink_retry(struct vm *v)
{
	struct timeval tv = { 0, UPLINK_RETRY_MS * 1000 };

	evtimer_add(v->timer, &tv);
}

/* Link this node's switch to the first node's (retried until that agent
 * knows the job: LAUNCH reaches the nodes in no particular order). */
static void uplink_connect(struct vm *v)
{
	struct agent *ag = v->ag;
	json_t *join;
	int fd;

	if (v->uplink) {
		hec_conn_free(v->uplink);
		v->uplink = NULL;
	}
	fd = hec_connect_tcp(v->hub_addr, 2000);
	if (fd < 0) {
		uplink_retry(v);
		return;
	}
	v->uplink = hec_conn_new(ag->base, fd, v->hub_addr, uplink_msg, uplink_close, v);
	if (!v->uplink) {
		close(fd);
		uplink_retry(v);
		return;
	}
	v->port_uplink = vnet_port_add(v->net, send_to_conn, v->uplink);
	join = json_pack("{s:I,s:s,s:s}", "job", (json_int_t)v->job, "key", v->key, "node",
			 ag->conf.name);
	if (v->port_uplink <= 0 || !join || hec_conn_send(v->uplink, HEC_MSG_NET_JOIN, join))
		hec_err("%s: job %ld: cannot join the job's network at %s", ag->conf.name, v->job,
			v->hub_addr);
	json_decref(join);
}

int vm_net_join(struct agent *ag, const json_t *body, struct hec_conn *c, char *why, size_t len)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	const char *key = json_string_value(json_object_get(body, "key"));
	const char *node = json_string_value(json_object_get(body, "node"));
	struct vm *v = vm_find(id);
	int port;

	if (!v || v->state == VM_DEAD) {
		hec_fmt(why, len, "job %ld: no guest on %s (yet)", id, ag->conf.name);
		return -ENOENT;
	}
	if (!agent_key_equal(key, v->key)) {
		hec_fmt(why, len, "job %ld: wrong job key from %s", id, node);
		return -EACCES;
	}
	if (v->index != 0) {
		hec_fmt(why, len, "job %ld: %s is not the job's first node", id, ag->conf.name);
		return -EINVAL;
	}
	port = vnet_port_add(v->net, send_to_conn, c);
	if (port < 0) {
		hec_fmt(why, len, "job %ld: %s", id, strerror(-port));
		return port;
	}
	hec_info("%s: job %ld: %s joined the job's network", ag->conf.name, id, node);
	return port;
}

void vm_net_peer_frame(struct agent *ag, long job, int port, const void *frame, size_t len)
{
	struct vm *v = vm_find(job);

	(void)ag;
	if (v)
		vnet_input(v->net, port, frame, len);
}

void vm_net_peer_gone(struct agent *ag, long job, int port)
{
	struct vm *v = vm_find(job);

	(void)ag;
	if (v)
		vnet_port_del(v->net, port);
}

/* ---- the guest channel ---- */

static int guest_send(struct vm *v, unsigned type, const void *payload, uint32_t len)
{
	uint8_t hdr[HEC_GUEST_HDR];
	struct evbuffer *out;

	if (!v->q.guest)
		return -ENOTCONN;
	out = bufferevent_get_output(v->q.guest);
	hec_guest_header(hdr, type, len);
	if (evbuffer_add(out, hdr, sizeof(hdr)) || (len && evbuffer_add(out, payload, len)))
		return -ENOMEM;
	return 0;
}

static long long median(long long *x, int n)
{
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && x[k - 1] > x[k]; k--) {
			long long t = x[k];

			x[k] = x[k - 1];
			x[k - 1] = t;
		}
	return x[n / 2];
}

/* A switch out and in through @g, CALIBRATE_ROUNDS times with the guest
 * running in between: the median in ns, or -1 if a round failed.  Closes
 * @g, and leaves the guest running. */
static long long switch_cost(struct hec_gate *g)
{
	long long t[CALIBRATE_ROUNDS];
	int n;

	for (n = 0; n < CALIBRATE_ROUNDS; n++) {
		int64_t t0 = hec_now_mono_ns();

		if (hec_gate_set(g, 1) || hec_gate_wait(g, 1, 500000) || hec_gate_set(g, 0) ||
		    hec_gate_wait(g, 0, 500000))
			break;
		t[n] = hec_now_mono_ns() - t0;
		usleep(CALIBRATE_GAP_US);
	}
	if (n < CALIBRATE_ROUNDS && !hec_gate_set(g, 0))
		hec_gate_wait(g, 0, 500000);
	hec_gate_close(g);
	return n == CALIBRATE_ROUNDS ? median(t, n) : -1;
}

/*
 * What a gang switch of this guest costs each way, measured on the guest
 * as it is now: cgroup freeze + thaw of the QEMU process against QMP
 * stop + cont.  The cheaper one switches it from now on.
 */
static void calibrate(struct vm *v)
{
	struct hec_gate *g;

	v->cg_ns = hec_partition_proc_ops.gate_open(v->part, &g) ? -1 : switch_cost(g);
	g = v->q.mon ? qmp_gate_new(v->q.mon) : NULL;
	v->qmp_ns = g ? switch_cost(g) : -1;
	v->use_qmp = v->qmp_ns >= 0 && (v->cg_ns < 0 || v->qmp_ns < v->cg_ns);
	hec_info("%s: job %ld: gang switch of the guest: cgroup freeze+thaw %lld us, QMP stop+cont %lld us: using %s",
		 v->ag->conf.name, v->job, v->cg_ns / 1000, v->qmp_ns / 1000,
		 v->use_qmp ? "QMP" : "cgroup");
}

static void on_hello(struct vm *v, const struct hec_guest_frame *f)
{
	const char *kernel = hec_guest_kv_get(f->payload, f->len, "kernel");

	if (v->state != VM_BOOTING)
		return;
	v->state = VM_UP;
	evtimer_del(v->timer);
	hec_info("%s: job %ld: guest up (kernel %s, %d vCPUs, %ld MB)", v->ag->conf.name, v->job,
		 kernel ? kernel : "?", v->vcpus, v->mem_mb);
	calibrate(v);
	start_finish(v, 0, NULL);
}

static void on_out(struct vm *v, const struct hec_guest_frame *f)
{
	int fd, rc;

	if (f->len < 1 || !v->running)
		return;
	fd = f->payload[0] == 2 && v->err_fd >= 0 ? v->err_fd : v->out_fd;
	/* The output file is a regular file: a short blocking write is fine. */
	rc = fd >= 0 ? hec_write_all(fd, f->payload + 1, f->len - 1) : 0;
	if (rc)
		hec_warn("%s: job %ld: output lost: %s", v->ag->conf.name, v->job, strerror(-rc));
}

/* The batch step is over for us: its output files close. */
static void run_ended(struct vm *v)
{
	v->running = 0;
	if (v->out_fd >= 0)
		close(v->out_fd);
	if (v->err_fd >= 0 && v->err_fd != v->out_fd)
		close(v->err_fd);
	v->out_fd = v->err_fd = -1;
}

static void on_exit_frame(struct vm *v, const struct hec_guest_frame *f)
{
	long long code = 1, sig = 0, id = -1;
	const char *error = hec_guest_kv_get(f->payload, f->len, "error");
	struct job *j = job_find(v->ag, v->job);
	char why[1100];

	if (hec_guest_kv_int(f->payload, f->len, "id", 0, 1LL << 40, &id) || id != v->run_id ||
	    !v->running)
		return;
	hec_guest_kv_int(f->payload, f->len, "exit", 0, 255, &code);
	hec_guest_kv_int(f->payload, f->len, "signal", 0, 128, &sig);
	run_ended(v);
	if (error)
		hec_fmt(why, sizeof(why), "in the guest: %s", error);
	hec_info("%s: job %ld: batch step in the guest ended: exit %lld, signal %lld%s%s",
		 v->ag->conf.name, v->job, code, sig, error ? ": " : "", error ? error : "");
	if (j)
		job_vm_exited(v->ag, j, (int)code, (int)sig, error ? why : NULL);
}

static void restore_ponged(struct vm *v, const struct hec_guest_frame *f);

/*
 * A restored guest's channel may begin inside a frame: hec-guest had sent
 * its head to the QEMU replaced (whose connection is gone with it) when the
 * snapshot was taken, and sends the rest now.  Skip to the first header of
 * a frame a guest sends.  \return 1 once in step.
 */
static int guest_resync(struct vm *v, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in), k;
	int found;

	k = hec_guest_sync(evbuffer_pullup(in, -1), avail, &found);
	evbuffer_drain(in, k);
	v->resync_skipped += k;
	if (!found)
		return 0;
	if (v->resync_skipped)
		hec_warn("%s: job %ld: restored guest: %zu bytes of a frame cut by the snapshot skipped",
			 v->ag->conf.name, v->job, v->resync_skipped);
	v->resync = 0;
	return 1;
}

static void guest_read(struct bufferevent *bev, void *arg)
{
	struct vm *v = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (v->resync && !guest_resync(v, in))
		return;

	while (v->q.guest && evbuffer_get_length(in) >= HEC_GUEST_HDR) {
		/* Draining frames off the front keeps the rest contiguous, so
		 * this copies at most once per read. */
		size_t avail = evbuffer_get_length(in);
		struct hec_guest_frame f;
		long n = hec_guest_decode(evbuffer_pullup(in, -1), avail, &f);

		if (n == 0)
			return; /* the rest of the frame is on its way */
		if (n < 0) {
			vm_fail(v, "the guest channel broke: %s", strerror((int)-n));
			return;
		}
		if (f.type != HEC_G_OUT && hec_guest_kv_check(f.payload, f.len)) {
			vm_fail(v, "the guest sent a malformed frame (type %u)", f.type);
			return;
		}
		switch (f.type) {
		case HEC_G_HELLO:
			on_hello(v, &f);
			break;
		case HEC_G_OUT:
			on_out(v, &f);
			break;
		case HEC_G_EXIT:
			on_exit_frame(v, &f);
			break;
		case HEC_G_LOG: {
			const char *msg = hec_guest_kv_get(f.payload, f.len, "msg");

			hec_info("%s: job %ld: guest: %s", v->ag->conf.name, v->job, msg ? msg : "?");
			break;
		}
		case HEC_G_PONG:
			restore_ponged(v, &f);
			break;
		default:
			break; /* STARTED: nothing to do */
		}
		if (v->state == VM_DEAD || !v->q.guest)
			return;
		evbuffer_drain(in, (size_t)n);
	}
}

/* ---- QMP on the event loop: events, and commands one at a time ---- */

static void qmp_call_free(struct qmp_call *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->line);
	free(c);
}

/* Send the head of the queue if nothing is in flight.  Written straight to
 * the socket (a command is a short line, and the socket has nothing else
 * queued: each is sent only once the one before is answered), which is
 * also how a file descriptor goes with it. */

static void qmp_kick(struct vm *v)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct qmp_call *c;

	while ((c = v->qq) && !v->qq_sent && v->q.qmp && v->qmp_greeted) {
		struct iovec iov = { c->line, strlen(c->line) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (c->fd >= 0) {
			struct cmsghdr *cm;

			memset(&u, 0, sizeof(u));
			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));
		}
		do
			n = sendmsg(bufferevent_getfd(v->q.qmp), &mh, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)iov.iov_len) {
			v->qq_sent = 1;
			return;
		}
		/* Half a line in the stream, or none: its answers can no longer be
		 * matched to commands.  The monitor is given up. */
		hec_warn("%s: job %ld: QMP: cannot write a command: %s", v->ag->conf.name, v->job,
			 n < 0 ? strerror(errno) : "short write");
		qmp_gone(v);
		return;
	}
}

/* Queue @cmd (stolen) with @fd (owned from here on, or -1); @cb (NULL:
 * an error is logged) gets the answer, or NULL if the monitor goes. */
static void qmp_call(struct vm *v, json_t *cmd, int fd, qmp_cb cb)
{
	struct qmp_call *c = calloc(1, sizeof(*c)), **pp;
	char *text = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;

	json_decref(cmd);
	if (!c || !text || asprintf(&c->line, "%s\n", text) < 0) {
		free(text);
		free(c);
		if (fd >= 0)
			close(fd);
		if (cb)
			cb(v, NULL, "out of memory");
		return;
	}
	free(text);
	c->fd = fd;
	c->cb = cb;
	c->gen = v->op != OP_NONE ? v->op_gen : 0;
	for (pp = &v->qq; *pp; pp = &(*pp)->next)
		;
	*pp = c;
	qmp_kick(v);
}

/* A command of an op that has ended: its answer goes to nobody. */
static int call_stale(const struct vm *v, const struct qmp_call *c)
{
	return c->gen && (c->gen != v->op_gen || v->op == OP_NONE);
}

/*
 * Empty the queue: the monitor is gone, and with @answer every command is
 * answered NULL; without, they are just forgotten (their monitor is swapped
 * out under an op that decides for itself).  Detached first: a callback may
 * queue on another monitor (a restore swapping back).
 */
static void qmp_flush(struct vm *v, int answer)
{
	struct qmp_call *q = v->qq;

	v->qq = NULL;
	v->qq_sent = 0;
	while (q) {
		struct qmp_call *c = q;

		q = c->next;
		if (answer && c->cb && !call_stale(v, c))
			c->cb(v, NULL, "QEMU's monitor went away");
		qmp_call_free(c);
	}
}

static void qmp_answer(struct vm *v, json_t *o, const char *line)
{
	struct qmp_call *c = v->qq;
	json_t *err = json_object_get(o, "error");
	const char *desc = json_string_value(json_object_get(err, "desc"));

	if (!c || !v->qq_sent) {
		hec_warn("%s: job %ld: QMP answer to no command: %s", v->ag->conf.name, v->job, line);
		return;
	}
	v->qq = c->next;
	v->qq_sent = 0;
	if (call_stale(v, c))
		hec_debug("%s: job %ld: QMP answer for an op that has ended: %s", v->ag->conf.name,
			  v->job, line);
	else if (c->cb)
		c->cb(v, o, err ? (desc ? desc : "error") : NULL);
	else if (err)
		hec_warn("%s: job %ld: QMP: %s", v->ag->conf.name, v->job, line);
	qmp_call_free(c);
	qmp_kick(v);
}

/*
 * At the greeting: capabilities first, then say the link is up.  QEMU's
 * stream netdev connects after the NIC is made, and the NIC may keep the
 * "no carrier" it saw then, which MPI's transports take for a dead
 * interface: say the link is up as soon as QMP is there, long before the
 * guest's driver looks (a change of link state later would leave the
 * interface not RUNNING for a moment, which MPI may just hit).
 */
static void on_greeting(struct vm *v)
{
	struct qmp_call *rest = v->qq, **pp;

	v->qq = NULL;
	qmp_call(v, json_pack("{s:s}", "execute", "qmp_capabilities"), -1, NULL);
	qmp_call(v, json_pack("{s:s,s:{s:s,s:b}}", "execute", "set_link", "arguments", "name", "n0",
			      "up", 1), -1, NULL);
	/* What was queued before the greeting follows them. */
	for (pp = &v->qq; *pp; pp = &(*pp)->next)
		;
	*pp = rest;
	v->qmp_greeted = 1;
	qmp_kick(v);
}

static void qmp_read(struct bufferevent *bev, void *arg)
{
	struct vm *v = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (bev == v->q.qmp && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF))) {
		json_t *o = json_loadb(line, n, 0, NULL);
		const char *ev = json_string_value(json_object_get(o, "event"));

		if (json_object_get(o, "QMP")) {
			if (!v->qmp_greeted)
				on_greeting(v);
		} else if (!ev && (json_object_get(o, "return") || json_object_get(o, "error"))) {
			qmp_answer(v, o, line);
		} else if (ev && !strcmp(ev, "SHUTDOWN")) {
			const char *r = json_string_value(json_object_get(json_object_get(o, "data"), "reason"));

			hec_fmt(v->shutdown_reason, sizeof(v->shutdown_reason), "%s", r ? r : "?");
		} else if (ev && !strcmp(ev, "GUEST_PANICKED")) {
			v->panicked = 1;
		}
		json_decref(o);
		free(line);
	}
	if (evbuffer_get_length(in) > QMP_LINE_MAX)
		evbuffer_drain(in, evbuffer_get_length(in));
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
	struct bufferevent *bev = bufferevent_socket_new(v->ag->base, fd, BEV_OPT_CLOSE_ON_FREE);

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
			hec_warn("%s: job %ld: QMP gate monitor: %s; the guest is switched by cgroup freeze",
				 v->ag->conf.name, v->job, strerror(-rc));
		break;
	}
	}
}

/* ---- QEMU ---- */

static int chown_sock(struct vm *v, const char *path)
{
	if (agent_is_root() && chown(path, v->uid, v->gid))
		return -errno;
	return 0;
}

static int make_listeners(struct vm *v, char *why, size_t len)
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
		v->lev[i] = event_new(v->ag->base, v->lfd[i], EV_READ | EV_PERSIST, on_accept, v);
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

static int build_cmdline(struct vm *v, const json_t *nodes)
{
	char ip[32], *p = v->cmdline;
	size_t left = sizeof(v->cmdline), i;
	json_t *n;
	int k;

	guest_ip(v->index, ip, sizeof(ip));
	k = snprintf(p, left, "console=ttyS0 panic=-1 quiet hec.node=%s hec.ip=%s/16 hec.key=%s hec.hosts=",
		     v->ag->conf.name, ip, v->gkey);
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

static int start_qemu(struct vm *v, char *why, size_t len)
{
	struct agent *ag = v->ag;
	char smp[16], mem[32], name[64], chr[4][PATH_MAX + 64], netdev[PATH_MAX + 64], mac[64];
	char serial[PATH_MAX + 64], log[PATH_MAX], accel[48];
	const char *argv[64];
	int argc = 0, logfd, nullfd, rc;
	struct hec_spawn_req req;
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	int kvm = kvm_usable();

	rc = make_listeners(v, why, len);
	if (rc)
		return rc;
	hec_fmt(smp, sizeof(smp), "%d", v->vcpus);
	hec_fmt(mem, sizeof(mem), "%ldM", v->mem_mb);
	hec_fmt(name, sizeof(name), "hec-job%ld-%s", v->job, ag->conf.name);
	hec_fmt(accel, sizeof(accel), "q35,accel=%s", kvm ? "kvm:tcg" : "tcg");
	hec_fmt(chr[0], sizeof(chr[0]), "socket,id=hecg,path=%s/%s", v->dir, sock_names[L_GUEST]);
	hec_fmt(chr[1], sizeof(chr[1]), "socket,id=qmp,path=%s/%s", v->dir, sock_names[L_QMP]);
	hec_fmt(chr[2], sizeof(chr[2]), "socket,id=qmpg,path=%s/%s", v->dir, sock_names[L_GATE]);
	hec_fmt(netdev, sizeof(netdev), "stream,id=n0,server=off,addr.type=unix,addr.path=%s/%s",
	    v->dir, sock_names[L_NET]);
	hec_fmt(mac, sizeof(mac), "virtio-net-pci,netdev=n0,mac=52:54:%02x:%02x:%02x:%02x",
	    (unsigned)(v->job >> 16) & 0xff, (unsigned)(v->job >> 8) & 0xff, (unsigned)v->job & 0xff,
	    (unsigned)v->index & 0xff);
	hec_fmt(serial, sizeof(serial), "file,id=con,append=on,path=%s/console.log", v->dir);
	argv[argc++] = ag->conf.qemu;
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
	argv[argc++] = "-netdev";
	argv[argc++] = netdev;
	argv[argc++] = "-device";
	argv[argc++] = mac;
	if (v->incoming) {
		/* A restore: paused, until migrate-incoming has loaded the state. */
		argv[argc++] = "-incoming";
		argv[argc++] = "defer";
		argv[argc++] = "-S";
	}
	argv[argc] = NULL;

	hec_fmt(log, sizeof(log), "%s/qemu.log", v->dir);
	/* A restore's QEMU writes after the one it replaces. */
	logfd = open(log, O_WRONLY | O_CREAT | (v->incoming ? O_APPEND : O_TRUNC) | O_CLOEXEC | O_NOFOLLOW,
		     0600);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd < 0 || nullfd < 0) {
		rc = -errno;
		hec_fmt(why, len, "%s: %s", log, strerror(-rc));
		goto out;
	}
	/* QEMU writes the console file as the job's user. */
	if (!v->incoming) {
		hec_fmt(log, sizeof(log), "%s/console.log", v->dir);
		close(open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
		chown_sock(v, log);
	}
	req = (struct hec_spawn_req){ .argv = argv, .envp = envp, .cwd = v->dir, .uid = v->uid,
				      .gid = v->gid, .stdin_fd = nullfd, .stdout_fd = logfd,
				      .stderr_fd = logfd };
	rc = hec_partition_proc_ops.spawn(v->part, &req, &v->q.pid);
	if (rc)
		hec_fmt(why, len, "cannot start %s: %s: %s", ag->conf.qemu, hec_part_proc_context(),
		    strerror(-rc));
	else
		hec_info("%s: job %ld: QEMU pid %d: %d vCPUs, %ld MB, %s%s", ag->conf.name, v->job,
			 (int)v->q.pid, v->vcpus, v->mem_mb, kvm ? "KVM" : "TCG",
			 v->incoming ? ", waiting for the state to restore" : "");
out:
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	return rc;
}

/* QEMU's own complaint (bad -m, missing file): the last line of its log. */
static void qemu_log_tail(struct vm *v, char *out, size_t len)
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

static void restore_undo(struct vm *v, int rc, const char *why);

static void qemu_ended(struct vm *v, int status)
{
	char reason[512], tail[600];
	int code, sig;

	agent_wait_status(status, &code, &sig);
	v->q.pid = 0;
	if (v->state == VM_DEAD)
		return;
	if (v->incoming) {
		/* The new QEMU of a restore: e.g. it could not load the state. */
		qemu_log_tail(v, tail, sizeof(tail));
		if (sig)
			hec_fmt(reason, sizeof(reason), "the new QEMU was killed by signal %d", sig);
		else
			hec_fmt(reason, sizeof(reason), "the new QEMU exited with status %d%s%.400s", code,
			    tail[0] ? ": " : "", tail);
		restore_undo(v, -EIO, reason);
		return;
	}
	console_reason(v, reason, sizeof(reason));
	if (reason[0]) {
		vm_fail(v, "%s", reason);
	} else if (v->panicked) {
		vm_fail(v, "guest kernel panic (QEMU reported GUEST_PANICKED)");
	} else if (sig) {
		vm_fail(v, "QEMU was killed by signal %d (%s)", sig, strsignal(sig));
	} else if (v->shutdown_reason[0]) {
		vm_fail(v, "the guest shut down (%s) while the job ran", v->shutdown_reason);
	} else {
		qemu_log_tail(v, tail, sizeof(tail));
		vm_fail(v, "QEMU exited with status %d%s%s", code, tail[0] ? ": " : "", tail);
	}
}

/* ---- the image ---- */

static void mk_done(struct vm *v)
{
	char *line, *save = NULL, *last = NULL, why[1024];
	int code, sig;

	agent_wait_status(v->mk_status, &code, &sig);
	v->mk_out[v->mk_len] = 0;
	for (line = strtok_r(v->mk_out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "kernel=", 7))
			hec_fmt(v->kernel, sizeof(v->kernel), "%s", line + 7);
		else if (!strncmp(line, "initrd=", 7))
			hec_fmt(v->initrd, sizeof(v->initrd), "%s", line + 7);
		else
			last = line;
	}
	if (code || sig || !v->kernel[0] || !v->initrd[0]) {
		vm_fail(v, "guest image: %s", last ? last :
			sig ? "hec-mkimage was killed" : "hec-mkimage printed no kernel= and initrd=");
		return;
	}
	v->state = VM_BOOTING;
	if (start_qemu(v, why, sizeof(why)))
		vm_fail(v, "%s", why);
}

static void mk_read(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;
	ssize_t n;

	(void)what;
	n = read((int)fd, v->mk_out + v->mk_len, sizeof(v->mk_out) - 1 - v->mk_len);
	if (n > 0) {
		v->mk_len += (size_t)n;
		if (v->mk_len < sizeof(v->mk_out) - 1)
			return;
	} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	v->mk_eof = 1;
	event_del(v->mk_ev);
	if (v->mk_reaped)
		mk_done(v);
}

/* Files of the job go into the image only if its user may read them. */
static int user_may_read(struct vm *v, const json_t *files, char *why, size_t len)
{
	size_t i;
	json_t *f;
	pid_t pid;
	int st, pfd[2];
	char bad[PATH_MAX] = "";

	if (!agent_is_root() || json_array_size(files) == 0)
		return 0;
	if (pipe2(pfd, O_CLOEXEC)) {
		hec_fmt(why, len, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		if (setgroups(0, NULL) || setgid(v->gid) || setuid(v->uid))
			_exit(2);
		json_array_foreach(files, i, f)
			if (access(json_string_value(f), R_OK)) {
				const char *s = json_string_value(f);
				int e = errno;

				if (write(pfd[1], s, strlen(s)) < 0)
					_exit(3);
				_exit(e == ENOENT ? 4 : 1);
			}
		_exit(0);
	}
	close(pfd[1]);
	if (pid < 0) {
		hec_fmt(why, len, "fork: %s", strerror(errno));
		close(pfd[0]);
		return -errno;
	}
	st = (int)read(pfd[0], bad, sizeof(bad) - 1);
	bad[st > 0 ? st : 0] = 0;
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	hec_fmt(why, len, "%s: %s for uid %u, so it cannot go into the guest image", bad[0] ? bad : "a vm file",
	    WIFEXITED(st) && WEXITSTATUS(st) == 4 ? "no such file" : "not readable", (unsigned)v->uid);
	return -EACCES;
}

static int start_mkimage(struct vm *v, const json_t *files, char *why, size_t len)
{
	struct agent *ag = v->ag;
	const char **argv;
	size_t n = json_array_size(files), i;
	int pfd[2], argc = 0, nullfd;
	json_t *f;
	pid_t pid;
	sigset_t all, old;

	argv = calloc(14 + 2 * n, sizeof(*argv));
	if (!argv) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	argv[argc++] = ag->mkimage;
	argv[argc++] = "--cache";
	argv[argc++] = ag->conf.image_cache;
	argv[argc++] = "--guest";
	argv[argc++] = ag->guest_bin;
	if (ag->conf.vm_kernel[0]) {
		argv[argc++] = "--kernel";
		argv[argc++] = ag->conf.vm_kernel;
	}
	argv[argc++] = "--mpifix";
	argv[argc++] = ag->mpifix;
	json_array_foreach(files, i, f) {
		argv[argc++] = "--add";
		argv[argc++] = json_string_value(f);
	}
	argv[argc] = NULL;
	if (pipe2(pfd, O_CLOEXEC)) {
		free(argv);
		hec_fmt(why, len, "pipe: %s", strerror(errno));
		return -errno;
	}
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigset_t none;

		for (int s = 1; s < NSIG; s++)
			sigaction(s, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(nullfd, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pfd[1]);
	if (nullfd >= 0)
		close(nullfd);
	free(argv);
	if (pid < 0) {
		close(pfd[0]);
		hec_fmt(why, len, "fork: %s", strerror(errno));
		return -errno;
	}
	v->mk_pid = pid;
	v->mk_fd = pfd[0];
	evutil_make_socket_nonblocking(v->mk_fd);
	v->mk_ev = event_new(ag->base, v->mk_fd, EV_READ | EV_PERSIST, mk_read, v);
	if (!v->mk_ev || event_add(v->mk_ev, NULL)) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int vm_reaped(struct agent *ag, pid_t pid, int status)
{
	(void)ag;
	for (struct vm *v = vms; v; v = v->next) {
		if (v->mk_pid == pid && !v->mk_reaped) {
			v->mk_reaped = 1;
			v->mk_status = status;
			if (v->mk_eof)
				mk_done(v);
			return 1;
		}
		if (v->q.pid == pid) {
			qemu_ended(v, status);
			return 1;
		}
		if (v->old.pid == pid) {
			v->old.pid = 0; /* replaced (restore), or set aside and died */
			return 1;
		}
	}
	return 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;
	struct timeval tv = { 1, 0 };

	(void)fd;
	(void)what;
	if (v->state != VM_UP && hec_now_mono_ns() > v->deadline_ns) {
		vm_fail(v, "the guest did not come up within %d s (console: %s/console.log)",
			VM_BOOT_TIMEOUT_S, v->dir);
		return;
	}
	if (v->state == VM_DEAD)
		return;
	if (v->index != 0 && !v->port_uplink)
		uplink_connect(v);
	if (v->index != 0 && !v->port_uplink)
		tv = (struct timeval){ 0, UPLINK_RETRY_MS * 1000 };
	else if (v->state == VM_UP)
		return; /* nothing to watch until the uplink drops */
	evtimer_add(v->timer, &tv);
}

/* The newest Debian kernel in /boot, for a clear error before building. */
static int kernel_present(struct agent *ag, char *why, size_t len)
{
	struct dirent *de;
	DIR *d;
	int found = 0;

	if (ag->conf.vm_kernel[0]) {
		if (access(ag->conf.vm_kernel, R_OK) == 0)
			return 0;
		hec_fmt(why, len, "guest kernel %s: %s (vm_kernel in the node's config)",
		    ag->conf.vm_kernel, strerror(errno));
		return -ENOENT;
	}
	d = opendir("/boot");
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "vmlinuz-", 8))
			found = 1;
	if (d)
		closedir(d);
	if (found)
		return 0;
	hec_fmt(why, len, "no guest kernel: /boot has no vmlinuz-*: install the Debian package linux-image-amd64");
	return -ENOENT;
}

static int vm_start(struct hec_partition *p, const struct hec_start_req *req, char *why, size_t len)
{
	struct agent *ag = req->host;
	struct job *j = req->job;
	const json_t *launch = (const json_t *)req->launch;
	const json_t *nodes = json_object_get(launch, "nodes"), *n;
	const json_t *files = json_object_get(launch, "vm_files");
	const char *gkey = json_string_value(json_object_get(launch, "guest_key"));
	struct timeval tv = { 1, 0 };
	struct vm *v;
	size_t i;
	int rc;

	if (vm_find(j->id)) {
		hec_fmt(why, len, "job %ld already has a guest here", j->id);
		return -EEXIST;
	}
	if (access(ag->conf.qemu, X_OK)) {
		hec_fmt(why, len, "%s: %s: install the Debian package qemu-system-x86", ag->conf.qemu,
		    strerror(errno));
		return -ENOENT;
	}
	if (access(ag->mkimage, X_OK)) {
		hec_fmt(why, len, "the image tool %s: %s", ag->mkimage, strerror(errno));
		return -ENOENT;
	}
	if (access(ag->guest_bin, R_OK)) {
		hec_fmt(why, len, "hec-guest %s: %s", ag->guest_bin, strerror(errno));
		return -ENOENT;
	}
	if (access(ag->mpifix, R_OK)) {
		hec_fmt(why, len, "%s: %s", ag->mpifix, strerror(errno));
		return -ENOENT;
	}
	rc = kernel_present(ag, why, len);
	if (rc)
		return rc;
	v = calloc(1, sizeof(*v));
	if (!v) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	v->ag = ag;
	v->job = j->id;
	v->part = p;
	v->uid = j->uid;
	v->gid = j->gid;
	v->mk_fd = v->out_fd = v->err_fd = v->op_fd = -1;
	for (i = 0; i < NLISTEN; i++)
		v->lfd[i] = -1;
	v->vcpus = (int)json_integer_value(json_object_get(launch, "vcpus"));
	v->mem_mb = (long)json_integer_value(json_object_get(launch, "mem_mb"));
	if (v->vcpus < 1)
		v->vcpus = 1;
	hec_fmt(v->key, sizeof(v->key), "%s", j->key);
	/* QEMU's command line is anyone's to read (ps): never the job key there. */
	if (!gkey || strlen(gkey) < 32 || strlen(gkey) >= sizeof(v->gkey) ||
	    strspn(gkey, "0123456789abcdef") != strlen(gkey)) {
		hec_fmt(why, len, "LAUNCH without a usable guest_key");
		vm_free(v);
		return -EINVAL;
	}
	hec_fmt(v->gkey, sizeof(v->gkey), "%s", gkey);
	v->index = -1;
	json_array_foreach(nodes, i, n)
		if (!strcmp(json_string_value(json_object_get(n, "name")), ag->conf.name))
			v->index = (int)i;
	hec_fmt(v->hub_addr, sizeof(v->hub_addr), "%s",
	    json_string_value(json_object_get(json_array_get(nodes, 0), "addr")));
	v->next = vms;
	vms = v;
	if (v->index < 0) {
		hec_fmt(why, len, "this node is not among the job's nodes");
		rc = -EINVAL;
		goto err;
	}
	if (v->mem_mb < HEC_VM_MEM_MIN_MB) {
		hec_fmt(why, len, "guest memory %ld MB is too small", v->mem_mb);
		rc = -EINVAL;
		goto err;
	}
	if (job_dir(ag, j->id, v->dir, sizeof(v->dir)) || build_cmdline(v, nodes)) {
		hec_fmt(why, len, "job directory or kernel command line too long");
		rc = -ENAMETOOLONG;
		goto err;
	}
	rc = user_may_read(v, files, why, len);
	if (rc)
		goto err;
	v->net = vnet_new();
	v->timer = evtimer_new(ag->base, timer_cb, v);
	v->op_timer = evtimer_new(ag->base, op_timer_cb, v);
	if (!v->net || !v->timer || !v->op_timer) {
		hec_fmt(why, len, "out of memory");
		rc = -ENOMEM;
		goto err;
	}
	rc = start_mkimage(v, files, why, len);
	if (rc)
		goto err;
	v->deadline_ns = hec_now_mono_ns() + (int64_t)VM_BOOT_TIMEOUT_S * 1000000000;
	evtimer_add(v->timer, &tv);
	v->start_done = req->done;
	v->start_arg = req->arg;
	return 0;

err:
	vm_free(v);
	return rc;
}

int vm_run(struct agent *ag, struct job *j, const char *const *argv, const char *const *envp,
	   const char *cwd, int out_fd, int err_fd, char *why, size_t len)
{
	struct vm *v = vm_find(j->id);
	struct hec_guest_kvbuf kv = { 0 };
	int rc = 0;

	(void)ag;
	if (!v || v->state != VM_UP || !v->q.guest) {
		hec_fmt(why, len, "the job's guest is not up%s%s", v && v->why[0] ? ": " : "",
		    v ? v->why : "");
		return -ENOTCONN;
	}
	if (v->running) {
		hec_fmt(why, len, "a batch step already runs in the guest");
		return -EBUSY;
	}
	v->run_id++;
	rc = hec_guest_kv_addf(&kv, "id", "%ld", v->run_id);
	if (!rc)
		rc = hec_guest_kv_addf(&kv, "uid", "%u", (unsigned)j->uid);
	if (!rc)
		rc = hec_guest_kv_addf(&kv, "gid", "%u", (unsigned)j->gid);
	if (!rc)
		rc = hec_guest_kv_add(&kv, "cwd", cwd);
	for (int i = 0; !rc && argv[i]; i++)
		rc = hec_guest_kv_add(&kv, "arg", argv[i]);
	for (int i = 0; !rc && envp[i]; i++)
		rc = hec_guest_kv_add(&kv, "env", envp[i]);
	if (!rc)
		rc = guest_send(v, HEC_G_RUN, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	if (rc) {
		hec_fmt(why, len, "cannot send the batch step to the guest: %s", strerror(-rc));
		return rc;
	}
	v->out_fd = dup(out_fd);
	v->err_fd = err_fd >= 0 ? dup(err_fd) : v->out_fd;
	v->running = 1;
	return 0;
}

/* ---- snapshot and restore ---- */

#define OP_POLL_MS 50
#define OP_TIMEOUT_S 600
#define SNAP_FDNAME "hecsnap"
/* QEMU throttles migration to 32 MiB/s by default: a snapshot goes as
 * fast as the file takes it. */
#define SNAP_BANDWIDTH (64LL << 30)

static void restore_stopped(struct vm *v, json_t *reply, const char *error);

static void op_after(struct vm *v, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(v->op_timer, &tv);
}

/* Hand the outcome to the op's caller: from op_timer, or with -ECANCELED
 * when the guest is dropped. */
static void op_deliver(struct vm *v, int rc, const char *why, int rejoin)
{
	hec_part_done_fn done = v->op_done;
	void *arg = v->op_arg;
	struct job *j = job_find(v->ag, v->job);
	char copy[sizeof(v->op_why)];

	hec_fmt(copy, sizeof(copy), "%s", why ? why : "");
	if (v->op_fd >= 0)
		close(v->op_fd);
	v->op_fd = -1;
	v->op = OP_NONE;
	v->op_ending = 0;
	v->op_done = NULL;
	if (v->op_timer)
		evtimer_del(v->op_timer);
	/* A QMP-switched guest left the gang for the op (op_begin): its gate
	 * monitor learns the state our own stop/cont left, then the
	 * dispatcher takes it back and switches it as its slots say. */
	if (rejoin && v->use_qmp && v->state == VM_UP && v->q.mon && j) {
		if (!qmp_mon_set(v->q.mon, 0))
			qmp_mon_wait(v->q.mon, 0, GATE_QMP_TIMEOUT_MS * 1000L);
		gang_job_ready(v->ag, j);
	}
	if (done)
		done(arg, rc, rc ? copy : NULL);
}

static void op_resumed(struct vm *v, json_t *reply, const char *error)
{
	if (!reply || error)
		hec_warn("%s: job %ld: the guest did not resume after its snapshot: %s",
			 v->ag->conf.name, v->job, error ? error : "QEMU's monitor went away");
	op_after(v, 0);
}

/*
 * The op's outcome is decided (the first decision counts): a guest we
 * stopped for its snapshot resumes first; the caller hears of it from the
 * loop, never from inside one of our own calls.
 */
static void op_end(struct vm *v, int rc, const char *fmt_, ...)
{
	struct qmp_call **pp;
	char why[sizeof(v->op_why)] = "";
	va_list ap;

	if (v->op == OP_NONE || v->op_ending)
		return;
	if (fmt_) {
		va_start(ap, fmt_);
		vsnprintf(why, sizeof(why), fmt_, ap);
		va_end(ap);
	}
	/* A restore that fails while its new QEMU loads is undone: the old
	 * guest comes back (restore_undo ends the op itself). */
	if (v->op == OP_RESTORE && v->incoming && v->state != VM_DEAD) {
		restore_undo(v, rc, why);
		return;
	}
	v->op_ending = 1;
	v->op_rc = rc;
	hec_fmt(v->op_why, sizeof(v->op_why), "%s", why);
	/* What the op queued and did not send yet is not sent. */
	for (pp = &v->qq; *pp;) {
		struct qmp_call *c = *pp;

		if (c->gen == v->op_gen && !(c == v->qq && v->qq_sent)) {
			*pp = c->next;
			qmp_call_free(c);
		} else {
			pp = &c->next;
		}
	}
	evtimer_del(v->op_timer);
	if (v->op_stopped) {
		v->op_stopped = 0;
		qmp_call(v, json_pack("{s:s}", "execute", "cont"), -1, op_resumed);
		op_after(v, GATE_QMP_TIMEOUT_MS); /* delivered anyway if QEMU does not answer */
	} else {
		op_after(v, 0);
	}
}

/* The op's commands whose answer only needs checking. */
static int op_live(struct vm *v)
{
	return v->op != OP_NONE && !v->op_ending;
}

static void op_check(struct vm *v, json_t *reply, const char *error)
{
	char tail[600], msg[900];

	if (!op_live(v))
		return;
	if (v->op == OP_RESTORE && v->incoming && (!reply || error)) {
		/* The new QEMU refused or is going (its monitor may close before
		 * its exit is reaped): its log says why. */
		qemu_log_tail(v, tail, sizeof(tail));
		if (reply)
			hec_fmt(msg, sizeof(msg), "the new QEMU: %s", error);
		else
			hec_fmt(msg, sizeof(msg), "the new QEMU went away%s%.600s", tail[0] ? ": " : "", tail);
		restore_undo(v, reply ? -EIO : -ECONNRESET, msg);
		return;
	}
	if (!reply)
		op_end(v, -ECONNRESET, "QEMU's monitor went away");
	else if (error)
		op_end(v, -EIO, "QEMU: %s", error);
}

static void op_poll(struct vm *v, json_t *reply, const char *error)
{
	op_check(v, reply, error);
	if (op_live(v))
		op_after(v, OP_POLL_MS);
}

static void pass_fd(struct vm *v)
{
	int fd = fcntl(v->op_fd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0) {
		op_end(v, -errno, "dup: %s", strerror(errno));
		return;
	}
	qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "getfd", "arguments", "fdname", SNAP_FDNAME),
		 fd, op_check);
}

static void snap_migrate(struct vm *v)
{
	pass_fd(v);
	if (op_live(v))
		qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "migrate", "arguments", "uri",
				      "fd:" SNAP_FDNAME), -1, op_poll);
}

static void snap_stopped(struct vm *v, json_t *reply, const char *error)
{
	op_check(v, reply, error);
	if (!op_live(v))
		return;
	v->op_stopped = 1;
	qmp_call(v, json_pack("{s:s,s:{s:[{s:s,s:b}]}}", "execute", "migrate-set-capabilities",
			      "arguments", "capabilities", "capability", "background-snapshot",
			      "state", 0), -1, op_check);
	snap_migrate(v);
}

/* Background snapshot: the guest runs on while its memory is written as
 * of this instant (pages it writes meanwhile are copied first).  It needs
 * userfaultfd write protection, which a kernel may refuse to QEMU (an
 * unprivileged user when vm.unprivileged_userfaultfd is 0): then the
 * guest stops while its state is written. */
static void snap_caps(struct vm *v, json_t *reply, const char *error)
{
	if (!op_live(v))
		return;
	if (reply && error) {
		hec_info("%s: job %ld: no background snapshot (%s): the guest stops while its state is written",
			 v->ag->conf.name, v->job, error);
		qmp_call(v, json_pack("{s:s}", "execute", "stop"), -1, snap_stopped);
		return;
	}
	op_check(v, reply, error);
	if (op_live(v))
		snap_migrate(v);
}

static void snap_status(struct vm *v, json_t *reply, const char *error)
{
	int running;

	op_check(v, reply, error);
	if (!op_live(v))
		return;
	running = json_is_true(json_object_get(json_object_get(reply, "return"), "running"));
	qmp_call(v, json_pack("{s:s,s:{s:I}}", "execute", "migrate-set-parameters", "arguments",
			      "max-bandwidth", (json_int_t)SNAP_BANDWIDTH), -1, op_check);
	/* A stopped guest (switched out by QMP) is written as it is. */
	qmp_call(v, json_pack("{s:s,s:{s:[{s:s,s:b}]}}", "execute", "migrate-set-capabilities",
			      "arguments", "capabilities", "capability", "background-snapshot",
			      "state", running), -1, running ? snap_caps : op_check);
	if (!running)
		snap_migrate(v);
}

/* Why no snapshot or restore of @v can begin now. */
static int op_refused(struct vm *v, char *why, size_t len)
{
	if (!v) {
		hec_fmt(why, len, "the partition has no guest");
		return -ENODEV;
	}
	if (v->state != VM_UP || !v->q.qmp) {
		hec_fmt(why, len, "the guest is not up%s%s", v->why[0] ? ": " : "", v->why);
		return -ENOTCONN;
	}
	if (v->op != OP_NONE) {
		hec_fmt(why, len, "a snapshot or restore of the guest is under way");
		return -EBUSY;
	}
	hec_fmt(why, len, "the QEMU replaced by the last restore is still exiting");
	return -EBUSY;
}

/* Start a snapshot or restore of @v with its first command. */
static int op_begin(struct vm *v, enum vm_op op, int fd, hec_part_done_fn done, void *arg,
		    char *why, size_t len, json_t *first, qmp_cb cb)
{
	if (!v || v->state != VM_UP || !v->q.qmp || v->op != OP_NONE ||
	    (op == OP_RESTORE && v->old.pid > 0)) {
		json_decref(first);
		return op_refused(v, why, len);
	}
	v->op_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (v->op_fd < 0) {
		hec_fmt(why, len, "dup: %s", strerror(errno));
		json_decref(first);
		return -errno;
	}
	v->op = op;
	v->op_gen++;
	v->op_done = done;
	v->op_arg = arg;
	v->op_stopped = 0;
	v->op_deadline_ns = hec_now_mono_ns() + (int64_t)OP_TIMEOUT_S * 1000000000;
	hec_info("%s: job %ld: %s of the guest begins", v->ag->conf.name, v->job,
		 op == OP_SNAPSHOT ? "snapshot" : "restore");
	/* A QMP-switched guest leaves the gang for the op (op_deliver takes it
	 * back): the dispatcher must not stop or resume it under us, and the
	 * state written is the one of now. */
	if (v->use_qmp)
		gang_job_forget(v->ag, v->job);
	/* The watchdog, until polling takes the timer over: an answer that
	 * never comes (a QEMU frozen or wedged) ends the op at the deadline. */
	op_after(v, OP_TIMEOUT_S * 1000 + 10);
	qmp_call(v, first, -1, cb);
	return 0;
}


static int vm_snapshot(struct hec_partition *p, int fd, hec_part_done_fn done, void *arg,
		       char *why, size_t len)
{
	/* Running or stopped decides how its state is written. */
	return op_begin(vm_by_part(p), OP_SNAPSHOT, fd, done, arg, why, len,
			json_pack("{s:s}", "execute", "query-status"), snap_status);
}

/* Let @c's connections read (1), or leave them idle (0: set aside). */
static void qemu_listen(struct qemu *c, int on)
{
	struct bufferevent *b[] = { c->guest, c->qmp, c->netq };

	for (size_t i = 0; i < HEC_ARRAY_SIZE(b); i++)
		if (b[i] && on)
			bufferevent_enable(b[i], EV_READ | EV_WRITE);
		else if (b[i])
			bufferevent_disable(b[i], EV_READ);
}

/* Close our connections to @c; the process is killed, and its pid stays
 * in @c until it is reaped (quietly, as v->old). */
static void qemu_drop(struct qemu *c)
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

/* The running QEMU and the one set aside trade places. */
static void swap_aside(struct vm *v)
{
	struct qemu t = v->q;

	if (v->q.netq)
		vnet_port_del(v->net, v->port_guest);
	v->port_guest = 0;
	v->q = v->old;
	v->old = t;
	qemu_listen(&v->q, 1);
	qemu_listen(&v->old, 0);
	if (v->q.netq)
		v->port_guest = vnet_port_add(v->net, send_to_guest, v);
	v->qmp_greeted = v->q.qmp != NULL;
	v->qq_sent = 0;
}

/*
 * The new QEMU could not load the state: it goes, the old one comes back
 * and resumes as it was.  Nothing of the job is lost.
 */
static void restore_undo(struct vm *v, int rc, const char *why)
{
	struct job *j = job_find(v->ag, v->job);
	char msg[sizeof(v->op_why)];

	if (!op_live(v) || !v->incoming)
		return; /* undone already, or the guest failed meanwhile */
	hec_fmt(msg, sizeof(msg), "the snapshot could not be loaded (%s); the guest runs on as it was", why);
	hec_warn("%s: job %ld: %s", v->ag->conf.name, v->job, msg);
	v->incoming = 0;
	if (v->q.pid > 0)
		kill(v->q.pid, SIGKILL);
	qmp_flush(v, 0);
	close_listeners(v);
	swap_aside(v);     /* the old one is current again; the new one's are "old" */
	qemu_drop(&v->old);       /* the new QEMU's connections; it is killed already */
	if (v->q.pid <= 0) {
		op_end(v, rc, "%s", why);
		vm_fail(v, "the guest's QEMU died while a restore was tried (%s)", why);
		return;
	}
	v->op_stopped = 1; /* op_end resumes it */
	if (v->use_qmp && j)
		gang_job_ready(v->ag, j);
	op_end(v, rc, "%s", msg);
}

static void restore_pinged(struct vm *v)
{
	long long seq = ++v->ping_seq;
	struct hec_guest_kvbuf kv = { 0 };
	int rc = hec_guest_kv_addf(&kv, "seq", "%lld", seq);

	if (!rc)
		rc = guest_send(v, HEC_G_PING, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	if (rc) {
		op_end(v, rc, "the restored guest's channel did not come back: %s", strerror(-rc));
		vm_fail(v, "the restored guest's channel did not come back: %s", strerror(-rc));
	} else
		op_after(v, OP_TIMEOUT_S * 1000); /* op_timer_cb: the PONG's deadline */
}

static void restore_resumed(struct vm *v, json_t *reply, const char *error)
{
	const char *e = error ? error : "QEMU's monitor went away";

	if (!op_live(v))
		return;
	if (!reply || error) {
		/* The old QEMU is gone: a guest that cannot go on fails. */
		op_end(v, reply ? -EIO : -ECONNRESET, "the restored guest did not resume: %s", e);
		vm_fail(v, "the restored guest did not resume: %s", e);
		return;
	}
	restore_pinged(v);
}

/* The state is in: the old QEMU goes, the restored guest runs. */
static void restore_loaded(struct vm *v)
{
	v->incoming = 0;
	v->resync = 1;
	v->resync_skipped = 0;
	qemu_drop(&v->old);
	hec_info("%s: job %ld: guest restored; QEMU pid %d replaces the old one", v->ag->conf.name,
		 v->job, (int)v->q.pid);
	qmp_call(v, json_pack("{s:s}", "execute", "cont"), -1, restore_resumed);
}

/* PONG to the restore's PING: hec-guest runs in the restored guest; the
 * batch step it runs must be the one we wait for. */
static void restore_ponged(struct vm *v, const struct hec_guest_frame *f)
{
	struct job *j = job_find(v->ag, v->job);
	long long seq = -1, run = 0;

	if (v->op != OP_RESTORE || v->op_ending || v->incoming ||
	    hec_guest_kv_int(f->payload, f->len, "seq", 0, 1LL << 62, &seq) || seq != v->ping_seq)
		return;
	hec_guest_kv_int(f->payload, f->len, "run", 0, 1LL << 40, &run);
	if (v->use_qmp && j)
		gang_job_ready(v->ag, j);
	op_end(v, 0, NULL);
	if (v->running && run != v->run_id) {
		run_ended(v);
		if (j)
			job_vm_exited(v->ag, j, 1, 0,
				      "the guest was restored to a state in which the batch step does not run");
	}
}

static int vm_restore(struct hec_partition *p, int fd, hec_part_done_fn done, void *arg,
		      char *why, size_t len)
{
	/* The old guest stops and waits aside; restore_stopped goes on. */
	return op_begin(vm_by_part(p), OP_RESTORE, fd, done, arg, why, len,
			json_pack("{s:s}", "execute", "stop"), restore_stopped);
}

static void op_status(struct vm *v, json_t *reply, const char *error)
{
	json_t *r = json_object_get(reply, "return");
	const char *st = json_string_value(json_object_get(r, "status"));
	const char *desc = json_string_value(json_object_get(r, "error-desc"));
	char msg[400];

	op_check(v, reply, error);
	if (!op_live(v))
		return;
	if (st && !strcmp(st, "completed")) {
		if (v->op == OP_RESTORE) {
			restore_loaded(v);
			return;
		}
		hec_info("%s: job %ld: snapshot of the guest written (%lld bytes of RAM; vCPUs stopped %lld ms%s)",
			 v->ag->conf.name, v->job,
			 (long long)json_integer_value(json_object_get(json_object_get(r, "ram"), "transferred")),
			 (long long)json_integer_value(json_object_get(r, "downtime")),
			 v->op_stopped ? ": no background snapshot" : "");
		op_end(v, 0, NULL);
	} else if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
		hec_fmt(msg, sizeof(msg), "QEMU: the migration %s%s%s", st, desc ? ": " : "",
		    desc ? desc : "");
		if (v->op == OP_RESTORE && v->incoming)
			restore_undo(v, -EIO, msg);
		else
			op_end(v, -EIO, "%s", msg);
	} else {
		op_after(v, OP_POLL_MS);
	}
}

static void op_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;
	char msg[128];

	(void)fd;
	(void)what;
	if (v->op == OP_NONE)
		return;
	if (v->op_ending) {
		op_deliver(v, v->op_rc, v->op_why, 1);
		return;
	}
	if (hec_now_mono_ns() > v->op_deadline_ns) {
		if (v->op == OP_RESTORE && v->incoming) {
			hec_fmt(msg, sizeof(msg), "the state did not load within %d s", OP_TIMEOUT_S);
			restore_undo(v, -ETIMEDOUT, msg);
		} else if (v->op == OP_RESTORE) {
			op_end(v, -ETIMEDOUT, "the restored guest does not answer on its channel");
			vm_fail(v, "the restored guest does not answer on its channel");
		} else {
			op_end(v, -ETIMEDOUT, "the snapshot did not end within %d s", OP_TIMEOUT_S);
			qmp_call(v, json_pack("{s:s}", "execute", "migrate_cancel"), -1, NULL);
		}
		return;
	}
	if (v->op == OP_RESTORE && !v->incoming)
		return; /* waiting for the PONG */
	qmp_call(v, json_pack("{s:s}", "execute", "query-migrate"), -1, op_status);
}

/* The old guest is stopped: set it aside, start the new QEMU, which waits
 * for the state (-incoming defer), and feed it. */
static void restore_stopped(struct vm *v, json_t *reply, const char *error)
{
	char why[1024];
	int rc;

	op_check(v, reply, error);
	if (!op_live(v))
		return;
	swap_aside(v);
	close_listeners(v);
	v->incoming = 1;
	v->shutdown_reason[0] = 0;
	v->panicked = 0;
	rc = start_qemu(v, why, sizeof(why));
	if (rc) {
		restore_undo(v, rc, why);
		return;
	}
	pass_fd(v);
	if (op_live(v))
		qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "migrate-incoming", "arguments", "uri",
				      "fd:" SNAP_FDNAME), -1, op_poll);
}

json_t *vm_stats_json(struct agent *ag)
{
	json_t *a = json_array();

	(void)ag;
	for (struct vm *v = vms; a && v; v = v->next)
		if (v->state == VM_UP)
			json_array_append_new(a, json_pack("{s:I,s:s,s:I,s:I}", "job", (json_int_t)v->job,
							   "method", v->use_qmp ? "qmp" : "cgroup",
							   "cgroup_ns", (json_int_t)v->cg_ns,
							   "qmp_ns", (json_int_t)v->qmp_ns));
	return a;
}
