/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vm partition driver's private header (partition/vm/): each node's
 * share of a job is a QEMU guest whose process lives in the job's cgroup
 * partition.  The cgroup part is the proc driver's (a proc partition under
 * each vm one); this driver adds the guest: its image (image.c), QEMU
 * (qemu.c) and its QMP monitors (qmp.c on the event loop, qmp_mon.c
 * synchronous for the gates, gate.c), the guest channel to hec-guest, PID 1
 * inside (chan.c), the job's private network (net.c, vnet.c), a
 * checkpoint's capture (capture.c), and its state: failure and outcomes
 * (state.c); ops.c holds
 * the ops table, the only symbol the rest of the program sees
 * (include/hec/partition.h), and the instance's life.  It
 * calls nothing above it: what it needs of hecd comes through the
 * instance's host (struct hec_part_host).  See doc/design.md, "vm
 * partitions".
 *
 * Everything runs on the host's event loop except the gang gates, which
 * the slot dispatcher thread drives (a QMP gate owns its own monitor).
 *
 *
 * Life of a guest, all on the host's event loop:
 *   LAUNCH -> hec-mkimage builds (or finds in its cache) kernel + initramfs
 *   -> we listen on four Unix sockets in the job's directory (guest channel,
 *   QMP, the gate's QMP, network) and start QEMU in the job's cgroup as the
 *   job's user; QEMU connects to all four -> hec-guest (PID 1) sets up the
 *   job's network and says HELLO -> we measure what a gang switch costs by
 *   cgroup freeze and by QMP stop/cont -> LAUNCHED.
 * A guest restarted from a checkpoint (start() with restore) skips the
 * boot: the same QEMU with -incoming defer -S is given the stream (getfd +
 * migrate-incoming fd:) and is up, paused, once query-migrate says
 * completed; resume() then conts it and PINGs hec-guest (qemu.c).
 * QEMU connects to us rather than we to it, so nothing polls for sockets
 * to appear; its chardevs connect again to an agent restarted meanwhile
 * (reattach.c).  The guest's exit (QEMU gone, guest panic, channel broken)
 * ends the job as failed with the reason.
 *
 * A checkpoint's capture (the op of that name) runs on the loop too, as a
 * chain of QMP commands on the event monitor, one in flight at a time:
 * query-status -> background-snapshot on (or stop, where the kernel
 * refuses it) -> getfd + migrate fd: -> poll query-migrate; the QMP events
 * STOP and RESUME tell when the state is fixed and how long the vCPUs
 * stood.
 *
 * The network: every node's agent runs a learning switch for the job
 * (vnet.c) with its guest on one port; the first node's switch is the hub,
 * and every other node's agent links to it over TCP (NET_JOIN, then
 * NET_FRAME data frames, authenticated by the job key).  On a real cluster
 * the same shape is a bridge per host plus VXLAN tunnels to the hub's.
 * net_hold holds the guest's port (a checkpoint's cut): nothing in or out.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#ifndef HEC_PARTITION_VM_H
#define HEC_PARTITION_VM_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>
#include <event2/bufferevent.h>
#include <jansson.h>

#include "hec/guest.h"
#include "hec/net.h"
#include "hec/partition.h"

struct vnet;
struct qmp_mon;

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

enum vm_state { VM_NONE, VM_IMAGE, VM_BOOTING, VM_UP, VM_DEAD };
enum vm_op { OP_NONE, OP_CAPTURE };

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

/* An instance's priv.  VM_NONE until start(); VM_DEAD once failed or
 * dropped (forget), for good. */
struct vm {
	struct hec_partition *self;   /* the instance this is the priv of */
	struct hec_partition *cg;     /* the proc partition under it: the job's cgroups */
	const struct hec_part_host *host; /* self->host, as of start() */
	long job;
	enum vm_state state;
	int index;                    /* in the job's nodes; 0: the first node, the network's hub */
	int nnodes;                   /* the job's nodes */
	int vcpus;
	long mem_mb;
	uid_t uid;
	gid_t gid;
	struct hec_groups groups;
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
	int huge;                     /* its RAM in 2 MiB hugetlb pages (else anonymous) */
	int lfd[NLISTEN];
	struct event *lev[NLISTEN];
	struct event *timer;
	int64_t deadline_ns;
	char shutdown_reason[64];
	int panicked;
	int resync;                   /* restored: the channel may begin inside a frame */
	size_t resync_skipped;

	/* QMP commands on the event loop: one in flight, answers in order */
	struct qmp_call *qq;
	int qmp_greeted, qq_sent;

	/* start(): the outcome goes here, once */
	hec_part_done_fn start_done;
	void *start_arg;

	/* a capture under way: one at a time */
	enum vm_op op;
	unsigned op_gen;              /* counts ops: answers to an earlier one are ignored */
	int op_fd;
	hec_part_done_fn op_done;
	void *op_arg;
	int op_stopped;               /* the guest stopped for it (no background snapshot) */
	int op_rc;                    /* the outcome, once op_decide() decided it */
	char op_why[512];
	int op_ending;
	int64_t op_deadline_ns;
	long ping_seq;                /* resume(): the PING whose PONG ends it */
	/* a PONG from the guest goes here (the resume that sent the PING) */
	void (*on_pong)(struct vm *v, const struct hec_guest_frame *f);
	struct event *op_timer;       /* polls the migration; then delivers the outcome */
	/* what the capture reports besides done() */
	struct hec_capture_cbs cap;
	int cap_fixed;                /* captured() was called */
	int cap_whole;                /* no background snapshot: stopped while written */
	int cap_bg;                   /* QEMU's background snapshot was asked for */
	int cap_cancelled;            /* cancel() of a background one: it ends as cancelled */
	int64_t cap_stop_us, cap_resume_us; /* QMP STOP / RESUME timestamps (0: not seen) */
	int64_t cap_stopped_ns;       /* cap_whole: when our stop was answered */
	int64_t cap_progress_ns;      /* progress() last called */
	int cap_held;                 /* out of the gang for the capture (op_rejoin ends it) */
	int cap_rejoining;            /* op_rejoin's cont sent, its answer gives it back */
	int64_t cap_hold_ns;          /* since when (CLOCK_MONOTONIC) */
	int cap_switched_out;         /* stopped or frozen by the gang when it began */
	/* QMP events STOP and RESUME go here (a capture waiting for them):
	 * @ts_us is the event's timestamp (QEMU's wall clock) */
	void (*on_runstate)(struct vm *v, int running, int64_t ts_us);

	/* network */
	struct vnet *net;
	int port_guest;
	struct hec_conn *uplink;
	int port_uplink;
	int net_held;                 /* net_hold(1): the guest's port drops both ways */
	int64_t net_held_ns;          /* since when */

	/* start() from a checkpoint's stream (hec_start_req.restore): QEMU
	 * loads it, the guest stays paused until resume(), which PINGs it */
	int from_stream;
	int in_fd;                    /* the stream, until QEMU has it */
	char want_image[72];          /* the checkpoint's image identity ("": not checked) */
	struct event *in_timer;       /* polls the load; then the PONG's deadline */
	int paused;                   /* loaded, not resumed yet */
	int ponged;                   /* resumed and hec-guest answered: */
	long guest_run;               /* the RUN it runs (0: none) */
	int attach_unknown;           /* attached before the PONG: take the guest's RUN id */

	/* an agent restart: the guest of the previous one, connected again */
	int reattached;
	unsigned long long q_start;   /* QEMU's /proc starttime (pid reuse check) */
	struct event *watch;          /* polls QEMU, not our child since the restart */
	int64_t reattach_deadline_ns; /* for the guest's PONG */
	int net_gen;                  /* its stream netdev: n<gen> on hub port hpn<gen> */
	void (*on_greeted)(struct vm *v); /* the event monitor greeted us (again) */

	/* the batch step (first node) */
	int running;
	long run_id;
	int out_fd, err_fd;

	/* gang switching, measured at boot */
	int use_qmp;
	long long cg_ns, qmp_ns;      /* freeze + thaw, median of CALIBRATE_ROUNDS */
};

/*
 * Who calls whom, top down (no file calls one above it; what must reach
 * up goes through a pointer: a QMP command's answer, on_pong, the host's
 * callbacks): ops.c > reattach.c > capture.c > image.c > qemu.c > chan.c, net.c >
 * gate.c > state.c > qmp.c.
 */

/* capture.c: a checkpoint's capture */
int vm_capture(struct hec_partition *p, int fd, const struct hec_capture_cbs *cbs,
	       hec_part_done_fn done, void *arg, char *why, size_t len);
int vm_cancel(struct hec_partition *p);
void op_timer_cb(evutil_socket_t fd, short what, void *arg);

/* image.c: hec-mkimage */
/* Files of the job go into the image only if its user may read them. */
int user_may_read(struct vm *v, const json_t *files, char *why, size_t len);
int start_mkimage(struct vm *v, const json_t *files, char *why, size_t len);
/* The image tool is done (exited and its output read): boot, or load the
 * checkpoint's stream if the image is the checkpoint's. */
void mk_done(struct vm *v);
/* The image's identity: the hec-mkimage key naming its cache directory (a
 * hash of every input), what a checkpoint records and a restart compares.
 * -ENOENT before the image is there. */
int vm_image_id(const struct vm *v, char *out, size_t len);

/* reattach.c: the guest of an agent that was restarted */
/* Connect to the guest guest.json names, in @v->dir (0: under way; its
 * outcome comes as a failure's would, vm_fail).  -ENOENT: no guest.json,
 * or no batch step where @req has one; -ESRCH: QEMU is gone. */
int vm_reattach(struct vm *v, const struct hec_reattach_req *req, char *why, size_t len);

/* qemu.c: the QEMU process and our connections to it */
int build_cmdline(struct vm *v, const json_t *nodes);
/* Listen on the guest's sockets in the job's directory (QEMU connects to
 * them, and again after an agent restart: reconnect=1). */
int make_listeners(struct vm *v, char *why, size_t len);
/* Listen on the guest's sockets in the job's directory and start QEMU in
 * the partition (v->from_stream: paused, to load a state). */
int start_qemu(struct vm *v, char *why, size_t len);
void close_listeners(struct vm *v);
/*
 * What backs the guest RAM of @mem_mb MB for vm_hugepages @mode, with
 * @avail 2 MiB huge pages free for it (-1: the kernel has none of that
 * size): 1 huge pages, 0 anonymous memory (auto, off; @why says why when
 * huge pages were wanted), or, for on, -ENOMEM (too few free), -EINVAL
 * (@mem_mb not a whole number of huge pages) or -EOPNOTSUPP (no 2 MiB
 * pages), with @why naming the cause.
 */
int ram_huge_choose(enum hec_vm_hugepages mode, long mem_mb, long avail, char *why, size_t len);
/* QEMU's own complaint (bad -m, missing file): the last line of its log. */
void qemu_log_tail(struct vm *v, char *out, size_t len);
/* Close our connections to @c; the process is killed, and its pid stays
 * in @c until it is reaped. */
void qemu_drop(struct qemu *c);
/* start() from a stream: QEMU (started with -incoming defer -S) is given
 * the stream and loads it; the guest is up and paused once it has. */
void incoming_begin(struct vm *v);
int vm_resume(struct hec_partition *p, char *why, size_t len);

/* chan.c: the guest channel */
void guest_read(struct bufferevent *bev, void *arg);
int guest_send(struct vm *v, unsigned type, const void *payload, uint32_t len);
int vm_run(struct hec_partition *p, const struct hec_run_req *req, char *why, size_t len);
/* The step's output frames go to these files (dup'ed; @err_fd -1: @out_fd)
 * from now on. */
void run_attach(struct vm *v, int out_fd, int err_fd);

/* net.c: the job's network */
int send_to_guest(void *arg, const uint8_t *frame, size_t len);
void net_read(struct bufferevent *bev, void *arg);
/* Link this node's switch to the first node's. */
void uplink_connect(struct vm *v);
int vm_net_join(struct hec_partition *p, const char *node, struct hec_conn *c, char *why,
		size_t len);
void vm_net_frame(struct hec_partition *p, int port, const void *frame, size_t len);
void vm_net_gone(struct hec_partition *p, int port);
int vm_net_hold(struct hec_partition *p, int hold);

/* gate.c: gang switching */
struct hec_gate *qmp_gate_new(struct qmp_mon *m);
int qmp_gate_set(struct hec_gate *gate, int frozen);
int qmp_gate_wait(struct hec_gate *gate, int frozen, long timeout_us);
void qmp_gate_close(struct hec_gate *gate);
/* What a gang switch of the guest costs by cgroup freeze and by QMP, as
 * it is now: the one vm_switch names, or the cheaper, switches it from now
 * on (v->use_qmp), and the dispatcher's gates are reopened that way. */
void calibrate(struct vm *v);

/* state.c: failure and outcomes */
/* The guest is gone or unusable: record why (first reason wins), kill
 * QEMU, and tell: before it was up, start()'s done; afterwards the host
 * (exited), which fails the job with the reason. */
void vm_fail(struct vm *v, const char *fmt_, ...) __attribute__((format(printf, 2, 3)));
/* start()'s outcome goes to its caller, once. */
void start_finish(struct vm *v, int rc, const char *why);
/* The batch step is over for us: its output files close. */
void run_ended(struct vm *v);
/* guest.json in the job's directory: what a restarted agent needs to
 * re-attach to the guest (reattach.c), written once it is up and at each
 * change of its batch step.  A failure is logged: the guest runs on,
 * only a restart could not re-attach it. */
void guest_save(struct vm *v);
/* The op's outcome is decided (the first decision counts): a guest we
 * stopped for its capture resumes first; the caller hears of it from the
 * loop (op_timer), never from inside one of our own calls. */
void op_decide(struct vm *v, int rc, const char *why);
void op_after(struct vm *v, int ms);
/* Hand the outcome to the op's caller (with -ECANCELED when the guest is
 * dropped); @rejoin: a guest still out of the gang for it goes back. */
void op_deliver(struct vm *v, int rc, const char *why, int rejoin);
/* A guest out of the gang for its capture (cap_held) goes back, its vCPUs
 * running: a cont on the event monitor, and once QEMU has answered it the
 * gate's monitor is told (a QMP gate believes it) and the dispatcher
 * switches the guest as its slots say.  Never waits: a QEMU that does not
 * answer stays out of the gang until it does (a capture begun meanwhile
 * keeps it). */
void op_rejoin(struct vm *v);

static inline void vm_exited(struct vm *v, int code, int sig, const char *error)
{
	if (v->host->exited)
		v->host->exited(v->self->host_arg, code, sig, error);
}

/* Whether the dispatcher's gate of @v is QMP stop/cont (ops.c,
 * vm_gate_open): a guest switched so, and any guest while a capture of it
 * runs: a cgroup freeze would stop its QEMU writing the stream too (QMP
 * stop parks only the vCPUs), so the stream goes on in other jobs' slots. */
static inline int vm_gate_is_qmp(const struct vm *v)
{
	return v->q.mon && (v->use_qmp || v->op != OP_NONE);
}

static inline void vm_gang_hold(struct vm *v)
{
	if (v->host->gang_hold)
		v->host->gang_hold(v->self->host_arg);
}

static inline void vm_gang_release(struct vm *v)
{
	if (v->host->gang_release)
		v->host->gang_release(v->self->host_arg);
}

/* qmp.c: QMP on the event loop, commands one at a time */
void qmp_read(struct bufferevent *bev, void *arg);
/* Queue @cmd (stolen) with @fd (owned from here on, or -1); @cb (NULL:
 * an error is logged) gets the answer, or NULL if the monitor goes. */
void qmp_call(struct vm *v, json_t *cmd, int fd, qmp_cb cb);
/* qmp_call() of no op: answered even once the op under way has ended. */
void qmp_call_always(struct vm *v, json_t *cmd, qmp_cb cb);
void qmp_call_free(struct qmp_call *c);
/* Empty the queue: with @answer every command is answered NULL. */
void qmp_flush(struct vm *v, int answer);
/* The event monitor is closed or broken: what waits on it hears so. */
void qmp_gone(struct vm *v);

#endif
