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
 * The vm ops table: the proc driver's cgroup ops, with
 * - start: build the image, start QEMU in the partition, join the job's
 *   network, wait for hec-guest's HELLO, measure the gang switch;
 * - snapshot: QMP migrate to the caller's file descriptor (passed with
 *   getfd), as a background snapshot where the host kernel allows it;
 * - restore: a new QEMU started with -incoming defer loads the state, and
 *   replaces the running one only once it has (else the old one resumes);
 * - gates that switch the guest by whichever of cgroup freeze and QMP
 *   stop/cont measured cheaper on this guest; freeze/thaw by QMP stop/cont.
 * start()'s req->launch is the LAUNCH body (json_t).  A guest that fails
 * once up reaches job_vm_exited().
 */
extern const struct hec_partition_ops hec_partition_vm_ops;

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
