/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Partition drivers: a partition is one job's share of one node.  Each
 * driver (proc: cgroups, partition/proc.c; vm: QEMU guests, partition/vm/)
 * exports one const ops table and nothing else; hecd and the CLI reach a
 * driver only through this header.  Drivers are found by name in a
 * registry the caller owns (struct hec_part_registry), which checks at
 * registration that a table has every required op.
 *
 * An instance (struct hec_partition) carries its ops, the driver's private
 * state (priv) and the host it lives in: the host's environment and
 * callbacks (struct hec_part_host), so that a driver calls nothing of the
 * program above it.  Optional ops are reached through the inline wrappers
 * below, which return -EOPNOTSUPP where a driver has none.
 *
 * Errors: every op that can fail returns 0 (or a count) or a negative
 * errno.  Those that can fail for a reason of the host (a cgroup file, a
 * missing tool) take @why/@len: on failure, @why gets a one-line reason,
 * and that is the only way error detail leaves a driver.  For the cgroup
 * ops (node_init .. gate_open) it says what was being done ("cgroup mkdir
 * /sys/fs/cgroup/hec/c/node0/job.7") and the caller adds the errno's text;
 * for the machine ops (start, capture, resume, run, net_join) it is the
 * whole reason.  @why may be NULL (with @len 0) when the caller does not
 * want it.  Errors are the caller's to log, naming the node and job (a
 * driver logs only its machine's progress).
 */
#ifndef HEC_PARTITION_H
#define HEC_PARTITION_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct hec_groups; /* hec/common.h */

struct hec_partition_ops;
struct hec_conn;
struct event_base;
struct json_t;

/**
 * The end of an asynchronous op (start, capture): called exactly
 * once, later, on the host's event loop, with @rc 0 or -errno and @why a
 * one-line reason when @rc < 0 (NULL otherwise).  Also called, with
 * -ECANCELED, if the partition's machine is dropped before the op ends.
 */
typedef void (*hec_part_done_fn)(void *arg, int rc, const char *why);

/* How a vm partition's guest is switched in and out of its gang slots
 * (hecd's vm_switch): both ways are measured when it boots, and auto takes
 * the cheaper. */
enum hec_vm_switch { HEC_VM_SWITCH_AUTO, HEC_VM_SWITCH_CGROUP, HEC_VM_SWITCH_QMP };

/* What backs a vm partition's guest RAM (hecd's vm_hugepages): anonymous
 * memory (off, the default), 2 MiB hugetlb pages (on), or huge pages where
 * the host's pool has them free when QEMU starts (auto). */
enum hec_vm_hugepages { HEC_VM_HUGE_OFF, HEC_VM_HUGE_AUTO, HEC_VM_HUGE_ON };

/**
 * What a driver may use of the program it runs in (hecd fills one per
 * agent).  Callbacks get the instance's host_arg and run on the event loop.
 */
struct hec_part_host {
	struct event_base *base;   /* the event loop every op but the gates runs on */
	const char *node;          /* this node's name, for logs and the guests */
	/* vm partitions: the tools and files a guest is made of */
	const char *qemu;          /* qemu-system-x86_64 */
	const char *vm_kernel;     /* guest kernel, "": the newest /boot/vmlinuz-* */
	const char *image_cache;   /* hec-mkimage's cache directory */
	const char *mkimage;       /* hec-mkimage */
	const char *guest_bin;     /* hec-guest, the guests' init */
	const char *mpifix;        /* libhec-mpifix.so, preloaded in the guests */
	enum hec_vm_switch vm_switch;
	enum hec_vm_hugepages vm_hugepages;
	/** The batch step inside the machine ended (run), or the machine failed
	 *  once up (@error: why). */
	void (*exited)(void *arg, int code, int sig, const char *error);
	/** Take the partition out of the gang schedule for a while (the driver
	 *  switches its machine itself meanwhile) ... */
	void (*gang_hold)(void *arg);
	/** ... and give it back: the scheduler opens its gate again. */
	void (*gang_release)(void *arg);
};

/**
 * One partition.  Made by create() or open(); the caller may then set
 * @host and @host_arg (start() and run() need them; a partition without a
 * host, as in the CLI, has no machine).  Freed by release().
 */
struct hec_partition {
	const struct hec_partition_ops *ops;
	void *priv;                       /* the driver's */
	long job;
	const struct hec_part_host *host; /* NULL: none */
	void *host_arg;                   /* for host's callbacks: the host's job */
};

/** What start() needs to bring up a partition's machine. */
struct hec_start_req {
	const char *dir;             /* the job's directory on this node (sockets, logs) */
	uid_t uid;                   /* the job's user */
	gid_t gid;
	const struct hec_groups *groups; /* its groups (NULL: none but gid) */
	const char *key;             /* the job's secret (vm: NET_JOIN to the other nodes) */
	const struct json_t *launch; /* LAUNCH: nodes, vcpus, mem_mb, vm_files, guest_key */
	hec_part_done_fn done;       /* the machine is up (0) or could not come up */
	void *arg;
	/* Restart from a checkpoint (restore 1; 0: a fresh boot).  The machine is made
	 * with the same shape and image and loads its state from this fd (the
	 * checked stream, as capture() wrote it; dup'ed, the caller keeps its
	 * own); done() comes once the state has loaded, and the machine then
	 * stays paused until resume().  A state that does not load ends in
	 * done() with the reason (QEMU's last log line). */
	int restore;
	int incoming_fd;
};

/** A batch step to run inside the partition's machine (run()). */
struct hec_run_req {
	const char *const *argv;
	const char *const *envp;
	const char *cwd;
	uid_t uid;
	gid_t gid;
	const struct hec_groups *groups; /* the user's groups (NULL: none but gid) */
	int out_fd, err_fd;          /* dup'ed, the caller keeps its own; err_fd -1: out_fd */
	/* 1: the machine was restarted from a checkpoint taken while its batch
	 * step ran: start nothing, attach out_fd/err_fd and the step's end to
	 * the step already running there (argv, envp, cwd unused).  -ENOENT:
	 * no batch step runs in the restored machine (known once resume() has
	 * heard from it; an attach before that learns it through
	 * host->exited(), with an error). */
	int attach;
};

/** A machine that outlived the agent which started it (reattach()). */
struct hec_reattach_req {
	const char *dir;             /* the job's directory, as start() had it */
	const char *key;             /* the job's secret (the job network) */
	int step;                    /* a batch step was running: attach to it */
	/* its output files, reopened for append (dup'ed, the caller keeps its
	 * own; out_fd -1: its output is lost, err_fd -1: out_fd) */
	int out_fd, err_fd;
};

/** What capture() reports besides its end (done()). */
/** What a capture tells captured(). */
struct hec_capture_fix {
	/** How long the machine's CPUs were stopped for the capture; 0 for a
	 *  machine that was stopped already (switched out by the gang). */
	long long pause_ns;
	/** CLOCK_MONOTONIC ns: from when to when the capture kept the CPUs
	 *  stopped, so that the gang could not run them (a switched-out
	 *  machine: from the capture's start); 0, 0 if not known. */
	int64_t held_from_ns, held_to_ns;
	/** The machine was switched out (stopped or frozen) when its capture
	 *  began: an off-slot capture. */
	int switched_out;
};

struct hec_capture_cbs {
	/** The state is fixed (the instant it describes has passed; a
	 *  background capture lets the machine run on from here). */
	void (*captured)(void *arg, const struct hec_capture_fix *fix);
	/** Bytes of state written so far (optional: NULL; about once a second). */
	void (*progress)(void *arg, unsigned long long bytes);
	/** The machine had to stay stopped while its state was written (no
	 *  background capture: captured() said 0): the whole pause, just
	 *  before a successful done() (optional: NULL). */
	void (*paused)(void *arg, long long pause_ns);
	void *arg;
};

/**
 * A gate (see the ops below) starts with this header, so that a holder of
 * gates of several drivers (the slot dispatcher) switches each through the
 * ops of the driver that opened it: use the hec_gate_*() wrappers.
 */
struct hec_gate {
	const struct hec_partition_ops *ops;
	/*
	 * 1: once gate_set(1) has returned 0, no task of the partition runs
	 * user code again until thawed (a cgroup freeze: the write marks every
	 * task and kicks the running ones, which stop at their next return to
	 * user mode, a few microseconds; one inside a system call may finish
	 * it in the kernel first).  The dispatcher then thaws the next
	 * partition at once, without waiting for "frozen".  0: the switch
	 * takes effect only when gate_wait says so (QMP stop).
	 */
	int immediate;
};

/** Where a node agent keeps its partitions; filled from the agent's config. */
struct hec_partition_env {
	const char *node;        /* node name, e.g. "node0" */
	const char *cgroup_base; /* relative group under each hierarchy, e.g. "hec/clusterX/node0" */
	const char *cpus;        /* the node's CPU list, "" for all */
	long pids_max;           /* tasks (processes and threads) a partition may hold; 0: no limit */
};

struct hec_spawn_req {
	const char *const *argv; /* execvp()'d; argv[0] looked up in PATH */
	const char *const *envp; /* full environment of the child */
	const char *cwd;         /* NULL: stay in "/" */
	uid_t uid;
	gid_t gid;
	const struct hec_groups *groups; /* the user's groups (NULL: none but gid) */
	int stdin_fd, stdout_fd, stderr_fd; /* dup2()'d onto 0, 1, 2; -1: /dev/null */
};

struct hec_partition_ops {
	const char *name;

	/*
	 * Required (hec_part_register() refuses a table without one).
	 */
	/** Prepare the driver on this node (check hierarchies, make the node's
	 *  group with its cpuset). -ENODEV: the mechanism is absent. */
	int (*node_init)(const struct hec_partition_env *env, char *why, size_t len);
	/** Create job @job's partition; -EEXIST if it already exists. */
	int (*create)(const struct hec_partition_env *env, long job, struct hec_partition **out,
		      char *why, size_t len);
	/** Re-attach to a partition found on disk (after an agent restart). */
	int (*open)(const struct hec_partition_env *env, long job, struct hec_partition **out,
		    char *why, size_t len);
	/** List job ids with a partition on this node into @jobs (up to @max).
	 *  \return the count, or -errno. */
	int (*list)(const struct hec_partition_env *env, long *jobs, int max, char *why, size_t len);
	/** Fork and exec a process inside the partition. \return 0, *@pid set.
	 *  Does not wait for the exec (the partition may be frozen): a failed
	 *  exec shows later as exit status 127. */
	int (*spawn)(struct hec_partition *p, const struct hec_spawn_req *req, pid_t *pid,
		     char *why, size_t len);
	/** \return number of live processes in the partition, or -errno. */
	int (*nprocs)(struct hec_partition *p, char *why, size_t len);
	/** SIGKILL every process (idempotent; a thawed partition is required
	 *  by no caller: the driver thaws if needed). */
	int (*kill)(struct hec_partition *p, char *why, size_t len);
	/** Remove the partition: -EBUSY while processes remain.  Never frees
	 *  the handle: call release() afterwards in every case. */
	int (*destroy)(struct hec_partition *p, char *why, size_t len);
	/** Free the handle, and whatever the driver holds for it on the host
	 *  (a machine's connections, as forget()), without touching the
	 *  partition's processes or groups. */
	void (*release)(struct hec_partition *p);

	/*
	 * Optional: reached through the hec_partition_*() wrappers.
	 */
	/** Undo node_init where nothing is left: remove the node's (empty)
	 *  groups and the empty ones above them.  Idempotent. */
	int (*node_fini)(const struct hec_partition_env *env, char *why, size_t len);
	/** Stop / resume every process (idempotent). */
	int (*freeze)(struct hec_partition *p, char *why, size_t len);
	int (*thaw)(struct hec_partition *p, char *why, size_t len);
	/** Path of the partition's group in hierarchy @i (0: the freeze hierarchy,
	 *  1: cpuset), or NULL.  For tests and `hec show`. */
	const char *(*path)(struct hec_partition *p, int i);
	/** CPU time used by the partition's processes so far, in microseconds. */
	int (*cpu_usage)(struct hec_partition *p, unsigned long long *usec, char *why, size_t len);

	/*
	 * The partition's machine (optional: a proc partition has none, it is
	 * ready once created, and cannot be checkpointed: CRIU, the way to save
	 * bare processes, fails on these hosts).  Each returns 0 when under way,
	 * and its done() follows; or -errno with a one-line reason in @why, and
	 * no done().  They need the instance's host.
	 */
	/** Bring up the machine (vm: build the image, boot the guest).  Once
	 *  up, a machine that fails reaches host->exited().  -EEXIST: it has
	 *  one already. */
	int (*start)(struct hec_partition *p, const struct hec_start_req *req, char *why, size_t len);
	/** A checkpoint's capture: write the machine's whole state, as of the
	 *  call, to @fd (a file or a pipe; dup'ed, the caller keeps its own),
	 *  what start() with restore loads.  The partition keeps running (vm:
	 *  QEMU background snapshot; where the host kernel does not allow it,
	 *  the guest is stopped while its state is written).  The partition
	 *  leaves the gang from the call until its state is fixed
	 *  (host->gang_hold, then gang_release): a boundary does not switch it
	 *  in the middle of its pause.  One switched out when the call comes
	 *  is captured as it is, without running in its slots (an off-slot
	 *  capture).  Reports through @cbs the instant the state is fixed
	 *  (captured) and, while the state is written, the bytes so far.
	 *  done() follows the last byte (rc 0) or the failure; after captured()
	 *  the machine runs on either way.  -EBUSY: a capture is under way. */
	int (*capture)(struct hec_partition *p, int fd, const struct hec_capture_cbs *cbs,
		       hec_part_done_fn done, void *arg, char *why, size_t len);
	/** Stop the capture under way (its done() follows with -ECANCELED);
	 *  0 if there was one, -ENOENT if none.  Until done(), the capture's
	 *  fd must still be read: a machine may have to write its state to
	 *  the end first (the vm driver's background snapshot, QEMU 7.2). */
	int (*cancel)(struct hec_partition *p);
	/** A machine started with incoming_fd and loaded: its CPUs run now. */
	int (*resume)(struct hec_partition *p, char *why, size_t len);
	/** Hold (1) or release (0) the job network at this partition: while
	 *  held, no frame from this machine leaves it and none reaches it
	 *  (dropped, as a switch under load would; the guests' TCP resends).
	 *  The checkpoint's consistent cut (doc/design.md). */
	int (*net_hold)(struct hec_partition *p, int hold);
	/** The machine of a partition that open() found again after an agent
	 *  restart: connect to it again, and to its batch step (@req).  0 when
	 *  under way: a machine that then proves gone or mute ends through
	 *  host->exited() with the reason, as a failure does.  -ESRCH: it is
	 *  gone already; -ENOENT: it never came up; @why says which. */
	int (*reattach)(struct hec_partition *p, const struct hec_reattach_req *req, char *why,
			size_t len);
	/** Run the batch step inside the machine (a partition with this op runs
	 *  its batch step nowhere else); its end reaches host->exited().
	 *  -ENOTCONN: the machine is not up; -EBUSY: a step runs already. */
	int (*run)(struct hec_partition *p, const struct hec_run_req *req, char *why, size_t len);
	/** A child of the host was reaped: \return 1 if it was one of the
	 *  driver's for this partition (image tool, QEMU), else 0. */
	int (*reaped)(struct hec_partition *p, pid_t pid, int status);
	/** The partition is being killed: drop the machine's host-side state
	 *  (connections, timers, the job network); ops under way end with
	 *  -ECANCELED.  Idempotent; its processes go with kill(). */
	void (*forget)(struct hec_partition *p);
	/** What STATS says of the machine (a new JSON object), or NULL. */
	struct json_t *(*stats)(struct hec_partition *p);
	/**
	 * The job's network: NET_JOIN from another node's agent, over @c
	 * (authenticated by the caller: the job key), attaches @c to the
	 * partition's switch.  \return a port id > 0, or -errno with @why
	 * (-ENOENT: no machine here, -EINVAL: not the job's first node).
	 */
	int (*net_join)(struct hec_partition *p, const char *node, struct hec_conn *c,
			char *why, size_t len);
	/** A frame from that peer's port; the peer is gone (idempotent). */
	void (*net_frame)(struct hec_partition *p, int port, const void *frame, size_t len);
	void (*net_gone)(struct hec_partition *p, int port);

	/*
	 * Gates: the hot path of the gang slot dispatcher (optional: all four
	 * or none).  A gate holds the partition's freeze controls open, so a
	 * switch is one write and one wait with no path lookups.  A gate is
	 * independent of the handle it came from and may be used from another
	 * thread; once the partition is removed, its calls fail with -ENODEV
	 * and harm nothing.  gate_set and gate_wait report by errno only.
	 * gate_open: -EBUSY while the driver switches the machine itself (a
	 * capture's gang_hold); it calls host->gang_release when done.
	 */
	int (*gate_open)(struct hec_partition *p, struct hec_gate **out, char *why, size_t len);
	/** Ask for frozen (1) or running (0); returns without waiting.
	 *  -EAGAIN: the switch asked before is not answered yet, nothing was
	 *  asked now (ask again later). */
	int (*gate_set)(struct hec_gate *g, int frozen);
	/** Wait until the state asked for is reached, up to @timeout_us.
	 *  \return 0, -ETIMEDOUT, or -errno. */
	int (*gate_wait)(struct hec_gate *g, int frozen, long timeout_us);
	void (*gate_close)(struct hec_gate *g);
	/** Optional: the state last asked for, by anyone (1 frozen, 0
	 *  running), reached or not: an immediate gate's freeze is asked
	 *  long before the kernel reports it reached.  \return 1, 0, -errno. */
	int (*gate_asked)(struct hec_gate *g);
};

extern const struct hec_partition_ops hec_partition_proc_ops;
extern const struct hec_partition_ops hec_partition_vm_ops;

/*
 * The registry: the drivers a program knows, by name.  Owned by the caller
 * (hecd keeps one in its agent; no driver keeps a list of anything), so
 * that tests build their own.  Zero-initialise it before use.
 */
#define HEC_PART_DRIVERS_MAX 8

struct hec_part_registry {
	int n;
	const struct hec_partition_ops *drv[HEC_PART_DRIVERS_MAX];
};

/**
 * Add @ops.  \return 0; -EINVAL if the table has no name, lacks a required
 * op, has only some of the gate ops, or a driver of that name is
 * registered already; -ENOSPC when the registry is full.
 */
int hec_part_register(struct hec_part_registry *r, const struct hec_partition_ops *ops);
/** The driver named @name, or NULL. */
const struct hec_partition_ops *hec_part_driver(const struct hec_part_registry *r, const char *name);

/* An optional op the driver lacks: -EOPNOTSUPP, and why. */
static inline int hec_part_absent(const struct hec_partition_ops *ops, const char *what, char *why,
				  size_t len)
{
	if (why && len)
		snprintf(why, len, "the %s partition driver has no %s", ops->name, what);
	return -EOPNOTSUPP;
}

static inline int hec_gate_set(struct hec_gate *g, int frozen)
{
	return g->ops->gate_set(g, frozen);
}

static inline int hec_gate_wait(struct hec_gate *g, int frozen, long timeout_us)
{
	return g->ops->gate_wait(g, frozen, timeout_us);
}

static inline int hec_gate_asked(struct hec_gate *g)
{
	return g->ops->gate_asked ? g->ops->gate_asked(g) : -EOPNOTSUPP;
}

static inline void hec_gate_close(struct hec_gate *g)
{
	if (g)
		g->ops->gate_close(g);
}

static inline int hec_partition_has_gates(const struct hec_partition_ops *ops)
{
	return ops->gate_open != NULL;
}

static inline int hec_partition_node_fini(const struct hec_partition_ops *ops,
					  const struct hec_partition_env *env, char *why, size_t len)
{
	return ops->node_fini ? ops->node_fini(env, why, len) : 0;
}

static inline int hec_partition_freeze(struct hec_partition *p, char *why, size_t len)
{
	return p->ops->freeze ? p->ops->freeze(p, why, len) : hec_part_absent(p->ops, "freeze", why, len);
}

static inline int hec_partition_thaw(struct hec_partition *p, char *why, size_t len)
{
	return p->ops->thaw ? p->ops->thaw(p, why, len) : hec_part_absent(p->ops, "thaw", why, len);
}

static inline int hec_partition_cpu_usage(struct hec_partition *p, unsigned long long *usec,
					  char *why, size_t len)
{
	return p->ops->cpu_usage ? p->ops->cpu_usage(p, usec, why, len) :
				   hec_part_absent(p->ops, "CPU accounting", why, len);
}

static inline int hec_partition_gate_open(struct hec_partition *p, struct hec_gate **out,
					  char *why, size_t len)
{
	return p->ops->gate_open ? p->ops->gate_open(p, out, why, len) :
				   hec_part_absent(p->ops, "freeze gates", why, len);
}

/** A partition whose batch step runs inside its machine (run()). */
static inline int hec_partition_runs_inside(const struct hec_partition_ops *ops)
{
	return ops->run != NULL;
}

static inline int hec_partition_start(struct hec_partition *p, const struct hec_start_req *req,
				      char *why, size_t len)
{
	if (p->ops->start)
		return p->ops->start(p, req, why, len);
	if (why && len)
		snprintf(why, len, "the %s partition driver has no machine to start", p->ops->name);
	return -EOPNOTSUPP;
}

static inline int hec_partition_capture(struct hec_partition *p, int fd,
					const struct hec_capture_cbs *cbs, hec_part_done_fn done,
					void *arg, char *why, size_t len)
{
	if (p->ops->capture)
		return p->ops->capture(p, fd, cbs, done, arg, why, len);
	return hec_part_absent(p->ops, "checkpoint capture", why, len);
}

static inline int hec_partition_cancel(struct hec_partition *p)
{
	return p->ops->cancel ? p->ops->cancel(p) : -ENOENT;
}

static inline int hec_partition_reattach(struct hec_partition *p,
					 const struct hec_reattach_req *req, char *why, size_t len)
{
	if (p->ops->reattach)
		return p->ops->reattach(p, req, why, len);
	return hec_part_absent(p->ops, "machine to re-attach", why, len);
}

static inline int hec_partition_resume(struct hec_partition *p, char *why, size_t len)
{
	if (p->ops->resume)
		return p->ops->resume(p, why, len);
	return hec_part_absent(p->ops, "resume", why, len);
}

static inline int hec_partition_net_hold(struct hec_partition *p, int hold, char *why, size_t len)
{
	if (p->ops->net_hold)
		return p->ops->net_hold(p, hold);
	return hec_part_absent(p->ops, "job network", why, len);
}

static inline int hec_partition_run(struct hec_partition *p, const struct hec_run_req *req,
				    char *why, size_t len)
{
	if (p->ops->run)
		return p->ops->run(p, req, why, len);
	if (why && len)
		snprintf(why, len, "the %s partition driver runs no batch step inside", p->ops->name);
	return -EOPNOTSUPP;
}

static inline int hec_partition_reaped(struct hec_partition *p, pid_t pid, int status)
{
	return p->ops->reaped ? p->ops->reaped(p, pid, status) : 0;
}

static inline void hec_partition_forget(struct hec_partition *p)
{
	if (p->ops->forget)
		p->ops->forget(p);
}

static inline struct json_t *hec_partition_stats(struct hec_partition *p)
{
	return p->ops->stats ? p->ops->stats(p) : NULL;
}

static inline int hec_partition_net_join(struct hec_partition *p, const char *node,
					 struct hec_conn *c, char *why, size_t len)
{
	if (p->ops->net_join)
		return p->ops->net_join(p, node, c, why, len);
	if (why && len)
		snprintf(why, len, "job %ld: the %s partition driver has no job network", p->job,
			 p->ops->name);
	return -EOPNOTSUPP;
}

static inline void hec_partition_net_frame(struct hec_partition *p, int port, const void *frame,
					   size_t len)
{
	if (p->ops->net_frame)
		p->ops->net_frame(p, port, frame, len);
}

static inline void hec_partition_net_gone(struct hec_partition *p, int port)
{
	if (p->ops->net_gone)
		p->ops->net_gone(p, port);
}

#endif
