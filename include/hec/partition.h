/*
 * Partition drivers: a partition is one job's share of one node.  Each
 * driver (proc: cgroups, agent/part_proc.c; vm: QEMU guests,
 * agent/part_vm.c) exports one const ops table; the agent only calls
 * through it.  Optional ops are reached through the inline wrappers below,
 * which return -EOPNOTSUPP where a driver has none.
 *
 * All ops return 0 or a negative errno; errors are the caller's to log,
 * naming the node and job (a driver logs only its machine's progress).
 */
#ifndef HEC_PARTITION_H
#define HEC_PARTITION_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct hec_partition;
struct hec_partition_ops;
struct agent;
struct job;
struct json_t;

/**
 * The end of an asynchronous op (start, snapshot, restore): called exactly
 * once, later, on the caller's event loop, with @rc 0 or -errno and @why a
 * one-line reason when @rc < 0 (NULL otherwise).  Also called, with
 * -ECANCELED, if the partition's machine is dropped before the op ends.
 */
typedef void (*hec_part_done_fn)(void *arg, int rc, const char *why);

/** What start() needs to bring up a partition's machine. */
struct hec_start_req {
	struct agent *host;          /* the node agent: its event loop and config */
	struct job *job;             /* the job the partition belongs to */
	const struct json_t *launch; /* LAUNCH: nodes, vcpus, mem_mb, vm_files, guest_key */
	hec_part_done_fn done;       /* the machine is up (0) or could not come up */
	void *arg;
};

/**
 * A gate (see the ops below) starts with this header, so that a holder of
 * gates of several drivers (the slot dispatcher) switches each through the
 * ops of the driver that opened it: use the hec_gate_*() wrappers.
 */
struct hec_gate {
	const struct hec_partition_ops *ops;
};

/** Where a node agent keeps its partitions; filled from the agent's config. */
struct hec_partition_env {
	const char *node;        /* node name, e.g. "node0" */
	const char *cgroup_base; /* relative group under each hierarchy, e.g. "hec/clusterX/node0" */
	const char *cpus;        /* the node's CPU list, "" for all */
};

struct hec_spawn_req {
	const char *const *argv; /* execvp()'d; argv[0] looked up in PATH */
	const char *const *envp; /* full environment of the child */
	const char *cwd;         /* NULL: stay in "/" */
	uid_t uid;
	gid_t gid;
	int stdin_fd, stdout_fd, stderr_fd; /* dup2()'d onto 0, 1, 2; -1: /dev/null */
};

struct hec_partition_ops {
	const char *name;
	/** Prepare the driver on this node (check hierarchies, make the node's
	 *  group with its cpuset). -ENODEV: the mechanism is absent. */
	int (*node_init)(const struct hec_partition_env *env);
	/** Create job @job's partition; -EEXIST if it already exists. */
	int (*create)(const struct hec_partition_env *env, long job, struct hec_partition **out);
	/** Re-attach to a partition found on disk (after an agent restart). */
	int (*open)(const struct hec_partition_env *env, long job, struct hec_partition **out);
	/** List job ids with a partition on this node into @jobs (up to @max).
	 *  \return the count, or -errno. */
	int (*list)(const struct hec_partition_env *env, long *jobs, int max);
	/** Fork and exec a process inside the partition. \return 0, *@pid set.
	 *  Does not wait for the exec (the partition may be frozen): a failed
	 *  exec shows later as exit status 127. */
	int (*spawn)(struct hec_partition *p, const struct hec_spawn_req *req, pid_t *pid);
	/** \return number of live processes in the partition, or -errno. */
	int (*nprocs)(struct hec_partition *p);
	/** Stop / resume every process (optional; idempotent). */
	int (*freeze)(struct hec_partition *p);
	int (*thaw)(struct hec_partition *p);
	/** SIGKILL every process (idempotent; a thawed partition is required
	 *  by no caller: the driver thaws if needed). */
	int (*kill)(struct hec_partition *p);
	/** Remove the partition: -EBUSY while processes remain.  Never frees
	 *  the handle: call release() afterwards in every case. */
	int (*destroy)(struct hec_partition *p);
	/** Free the handle without touching the partition. */
	void (*release)(struct hec_partition *p);
	/** Path of the partition's group in hierarchy @i (0: the freeze hierarchy,
	 *  1: cpuset), or NULL.  For tests and `hec show`. */
	const char *(*path)(struct hec_partition *p, int i);
	/** CPU time used by the partition's processes so far, in microseconds
	 *  (optional). */
	int (*cpu_usage)(struct hec_partition *p, unsigned long long *usec);

	/*
	 * The partition's machine (optional: a proc partition has none, it is
	 * ready once created, and cannot be snapshotted: CRIU, the way to save
	 * bare processes, fails on these hosts).  Each returns 0 when under way, and its done()
	 * follows; or -errno with a one-line reason in @why, and no done().
	 */
	/** Bring up the machine (vm: build the image, boot the guest). */
	int (*start)(struct hec_partition *p, const struct hec_start_req *req, char *why, size_t len);
	/** Write the machine's whole state, as of the call, to @fd (a file or a
	 *  pipe; dup'ed, the caller keeps its own).  The partition keeps
	 *  running (vm: QEMU background snapshot; where the host kernel does
	 *  not allow it, the guest is stopped while its state is written).  A
	 *  partition switched out by cgroup freeze writes during its slots. */
	int (*snapshot)(struct hec_partition *p, int fd, hec_part_done_fn done, void *arg,
			char *why, size_t len);
	/** Replace the running machine by the state read from @fd, as written
	 *  by snapshot() of a partition of the same job and shape; it then runs
	 *  on from there (vm: a new QEMU loads it, and only then is the old one
	 *  killed).  A state that does not load ends in done() with the error,
	 *  and the machine runs on as it was. */
	int (*restore)(struct hec_partition *p, int fd, hec_part_done_fn done, void *arg,
		       char *why, size_t len);

	/*
	 * Gates: the hot path of the gang slot dispatcher (optional).  A gate
	 * holds the partition's freeze controls open, so a switch is one write
	 * and one wait with no path lookups.  A gate is independent of the
	 * handle it came from and may be used from another thread; once the
	 * partition is removed, its calls fail with -ENODEV and harm nothing.
	 */
	int (*gate_open)(struct hec_partition *p, struct hec_gate **out);
	/** Ask for frozen (1) or running (0); returns without waiting. */
	int (*gate_set)(struct hec_gate *g, int frozen);
	/** Wait until the state asked for is reached, up to @timeout_us.
	 *  \return 0, -ETIMEDOUT, or -errno. */
	int (*gate_wait)(struct hec_gate *g, int frozen, long timeout_us);
	void (*gate_close)(struct hec_gate *g);
};

extern const struct hec_partition_ops hec_partition_proc_ops;

static inline int hec_gate_set(struct hec_gate *g, int frozen)
{
	return g->ops->gate_set(g, frozen);
}

static inline int hec_gate_wait(struct hec_gate *g, int frozen, long timeout_us)
{
	return g->ops->gate_wait(g, frozen, timeout_us);
}

static inline void hec_gate_close(struct hec_gate *g)
{
	if (g)
		g->ops->gate_close(g);
}

static inline int hec_partition_freeze(const struct hec_partition_ops *ops, struct hec_partition *p)
{
	return ops->freeze ? ops->freeze(p) : -EOPNOTSUPP;
}

static inline int hec_partition_thaw(const struct hec_partition_ops *ops, struct hec_partition *p)
{
	return ops->thaw ? ops->thaw(p) : -EOPNOTSUPP;
}

static inline int hec_partition_start(const struct hec_partition_ops *ops, struct hec_partition *p,
				      const struct hec_start_req *req, char *why, size_t len)
{
	if (ops->start)
		return ops->start(p, req, why, len);
	snprintf(why, len, "the %s partition driver has no machine to start", ops->name);
	return -EOPNOTSUPP;
}

static inline int hec_partition_snapshot(const struct hec_partition_ops *ops, struct hec_partition *p,
					 int fd, hec_part_done_fn done, void *arg, char *why, size_t len)
{
	if (ops->snapshot)
		return ops->snapshot(p, fd, done, arg, why, len);
	snprintf(why, len, "the %s partition driver cannot snapshot", ops->name);
	return -EOPNOTSUPP;
}

static inline int hec_partition_restore(const struct hec_partition_ops *ops, struct hec_partition *p,
					int fd, hec_part_done_fn done, void *arg, char *why, size_t len)
{
	if (ops->restore)
		return ops->restore(p, fd, done, arg, why, len);
	snprintf(why, len, "the %s partition driver cannot restore", ops->name);
	return -EOPNOTSUPP;
}

#endif
