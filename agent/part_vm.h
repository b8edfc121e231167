/*
 * The vm partition driver (agent/part_vm.c): a job's share of a node is a
 * QEMU guest whose process lives in the job's cgroup partition.  The cgroup
 * part is the proc driver's; this driver adds the guest: its image, QEMU
 * and its QMP monitors, the guest channel to hec-guest (PID 1 inside), and
 * the job's private network.  See doc/design.md, "vm partitions".
 *
 * Everything runs on the agent's event loop except the gang gates, which
 * the slot dispatcher thread drives (a QMP gate owns its own monitor).
 */
#ifndef HEC_AGENT_PART_VM_H
#define HEC_AGENT_PART_VM_H

#include <jansson.h>

#include "hec/partition.h"
#include "hec/net.h"

struct agent;
struct job;

/**
 * The vm ops table: the proc driver's cgroup ops, with gates that switch
 * the guest by whichever of cgroup freeze and QMP stop/cont measured
 * cheaper on this guest, and freeze/thaw through QMP stop/cont.
 */
extern const struct hec_partition_ops hec_partition_vm_ops;

/**
 * Boot job @j's guest on this node (LAUNCH with partition "vm"): build the
 * image, start QEMU in @j's partition, join the job's network, wait for
 * hec-guest's HELLO.  The outcome reaches job_vm_launched() later.
 * \return 0 (under way), or -errno with a one-line reason in @why (nothing
 * was started).
 */
int vm_launch(struct agent *ag, struct job *j, const json_t *launch, char *why, size_t len);

/**
 * Run the batch step inside the guest: @argv with @envp in @cwd as the
 * job's user; its output goes to @out_fd / @err_fd (dup'ed, caller keeps
 * its own).  The end reaches job_vm_exited().
 * \return 0 or -errno with @why.
 */
int vm_run(struct agent *ag, struct job *j, const char *const *argv, const char *const *envp,
	   const char *cwd, int out_fd, int err_fd, char *why, size_t len);

/** A child was reaped: \return 1 if it was one of ours (image tool, QEMU). */
int vm_reaped(struct agent *ag, pid_t pid, int status);
/** The job's partition is being killed or is gone: drop all guest state. */
void vm_forget(struct agent *ag, long job);
void vm_free_all(struct agent *ag);

/** NET_JOIN from another node's agent (bridge.c): attach @c to the job's
 *  switch.  \return a port id > 0, or -errno with @why. */
int vm_net_join(struct agent *ag, const json_t *body, struct hec_conn *c, char *why, size_t len);
void vm_net_peer_frame(struct agent *ag, long job, int port, const void *frame, size_t len);
void vm_net_peer_gone(struct agent *ag, long job, int port);

/** "vm" entries for STATS: how each guest here is switched, and the costs
 *  measured when it booted. */
json_t *vm_stats_json(struct agent *ag);

#endif
