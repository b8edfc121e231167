/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What this node offers, from hwloc: cores, PUs, NUMA nodes and memory of
 * the node's CPU list.  Several nodes of an embedded cluster share a host,
 * so everything is counted within the node's CPUs only; memory is that of
 * the NUMA nodes those CPUs belong to.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hwloc.h>

#include "hec/common.h"
#include "agent/agent.h"

static int to_hwloc(const struct hec_cpuset *set, hwloc_bitmap_t bm)
{
	hwloc_bitmap_zero(bm);
	for (int c = 0; c < HEC_MAX_CPUS; c++)
		if (set->bits[c / 64] & (1ULL << (c % 64)))
			if (hwloc_bitmap_set(bm, (unsigned)c))
				return -ENOMEM;
	return 0;
}

static void from_hwloc(hwloc_const_bitmap_t bm, struct hec_cpuset *set)
{
	int c;

	memset(set, 0, sizeof(*set));
	hwloc_bitmap_foreach_begin(c, bm)
		if (c < HEC_MAX_CPUS)
			set->bits[c / 64] |= 1ULL << (c % 64);
	hwloc_bitmap_foreach_end();
}

int agent_topology(const char *cpus, char *cpus_out, size_t outlen, struct agent_topo *t,
		   char *err, size_t errlen)
{
	hwloc_topology_t topo;
	hwloc_bitmap_t want = NULL;
	hwloc_obj_t obj = NULL;
	struct hec_cpuset set;
	unsigned long long mem = 0;
	int rc = -ENOMEM;

	memset(t, 0, sizeof(*t));
	if (hwloc_topology_init(&topo) || hwloc_topology_load(topo)) {
		rc = errno ? -errno : -EIO;
		snprintf(err, errlen, "hwloc topology: %s", strerror(-rc));
		return rc;
	}
	want = hwloc_bitmap_alloc();
	if (!want)
		goto err_destroy;
	if (cpus && *cpus) {
		if (hec_cpuset_parse(cpus, &set) <= 0) {
			snprintf(err, errlen, "cpus '%s': not a CPU list like 0-3,6", cpus);
			rc = -EINVAL;
			goto err_free;
		}
		if (to_hwloc(&set, want))
			goto err_free;
		if (!hwloc_bitmap_isincluded(want, hwloc_topology_get_complete_cpuset(topo))) {
			char have[256];

			hwloc_bitmap_list_snprintf(have, sizeof(have),
						   hwloc_topology_get_complete_cpuset(topo));
			snprintf(err, errlen, "cpus '%s': this host has CPUs %s only", cpus, have);
			rc = -EINVAL;
			goto err_free;
		}
	} else {
		/* Our own affinity: a node started inside a cpuset gets that cpuset. */
		if (hwloc_get_cpubind(topo, want, HWLOC_CPUBIND_PROCESS))
			hwloc_bitmap_copy(want, hwloc_topology_get_allowed_cpuset(topo));
		hwloc_bitmap_and(want, want, hwloc_topology_get_allowed_cpuset(topo));
		from_hwloc(want, &set);
	}

	while ((obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_CORE, obj)))
		if (obj->cpuset && hwloc_bitmap_intersects(obj->cpuset, want))
			t->cores++;
	while ((obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_PU, obj)))
		if (obj->cpuset && hwloc_bitmap_isset(want, obj->os_index))
			t->pus++;
	while ((obj = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, obj)))
		if (obj->cpuset && hwloc_bitmap_intersects(obj->cpuset, want)) {
			t->numa_nodes++;
			mem += obj->attr->numanode.local_memory;
		}
	if (t->cores == 0) /* no core objects (some VMs): PUs are the cores */
		t->cores = t->pus;
	if (t->numa_nodes == 0)
		mem = hwloc_get_root_obj(topo)->total_memory;
	t->memory_mb = (long)(mem >> 20);

	if (hec_cpuset_format(&set, cpus_out, outlen)) {
		snprintf(err, errlen, "cpus: list too long");
		rc = -ENOSPC;
		goto err_free;
	}
	rc = 0;
err_free:
	hwloc_bitmap_free(want);
err_destroy:
	hwloc_topology_destroy(topo);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "hwloc: out of memory");
	return rc;
}
