/*
 * Extras of the proc (cgroup) partition driver beyond the generic ops table
 * in include/hec/partition.h.  Used by hecd and by `hec cluster down`.
 */
#ifndef HEC_AGENT_PART_PROC_H
#define HEC_AGENT_PART_PROC_H

#include "hec/partition.h"

/**
 * What the last failing proc-driver op was doing, e.g.
 * "cgroup mkdir /sys/fs/cgroup/unified/hec/c/node0/job.7", so that callers
 * can say "node0: <this>: Permission denied".  Valid until the next op;
 * "" when nothing failed yet.
 */
const char *hec_part_proc_context(void);

/**
 * Remove the node's (now empty) groups and the empty cluster and "hec"
 * groups above them in every hierarchy.  Groups still holding partitions
 * (or other nodes) are left alone.  Idempotent; \return 0 or -errno of the
 * first group that could not be removed for another reason than being busy.
 */
int hec_part_proc_node_fini(const struct hec_partition_env *env);

/**
 * Tests only: behave as if no cgroup2 file system were mounted, so that the
 * v1 freezer (and v1 cpuacct) paths can be exercised on a host that has
 * both.  Affects partitions created or opened afterwards.
 */
void hec_part_proc_force_v1(int on);

#endif
