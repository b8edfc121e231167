/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tests only: what the proc driver (partition/proc.c) offers its unit test
 * beyond its ops table.  Nothing else includes this.
 */
#ifndef HEC_PARTITION_PROC_H
#define HEC_PARTITION_PROC_H

/**
 * Behave as if no cgroup2 file system were mounted, so that the v1 freezer
 * (and v1 cpuacct) paths can be exercised on a host that has both.
 * Affects partitions created or opened afterwards.
 */
void hec_part_proc_force_v1(int on);

#endif
