/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The partition driver registry (include/hec/partition.h): a table of
 * const ops tables the caller owns.  Registration is where a table's
 * contract is checked, so that callers may call required ops without
 * testing them, and optional ones through the wrappers.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "hec/partition.h"

static int table_complete(const struct hec_partition_ops *o)
{
	int gates = !!o->gate_open + !!o->gate_set + !!o->gate_wait + !!o->gate_close;

	return o->name && o->name[0] && o->node_init && o->create && o->open && o->list &&
	       o->spawn && o->nprocs && o->kill && o->destroy && o->release &&
	       (gates == 0 || gates == 4);
}

int hec_part_register(struct hec_part_registry *r, const struct hec_partition_ops *ops)
{
	if (!ops || !table_complete(ops) || hec_part_driver(r, ops->name))
		return -EINVAL;
	if (r->n >= HEC_PART_DRIVERS_MAX)
		return -ENOSPC;
	r->drv[r->n++] = ops;
	return 0;
}

const struct hec_partition_ops *hec_part_driver(const struct hec_part_registry *r, const char *name)
{
	for (int i = 0; name && i < r->n; i++)
		if (!strcmp(r->drv[i]->name, name))
			return r->drv[i];
	return NULL;
}
