/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Small pure helpers of hecctld's placement, unit-tested on their own
 * (tests/unit/test_place.c).  The queue and placement policy itself is the
 * gang matrix (include/hec/gang.h, gang/matrix.c).
 */
#ifndef HEC_PLACE_H
#define HEC_PLACE_H

#include <stddef.h>

/**
 * Block distribution of @ntasks ranks over @nnodes nodes: every node gets
 * ntasks / nnodes ranks and the first ntasks % nnodes nodes one more.
 * \return the ranks of node @i (0-based), or 0 for bad arguments.
 */
int place_ranks(int ntasks, int nnodes, int i);

/** Natural order of node names: "node2" sorts before "node10". */
int place_name_cmp(const char *a, const char *b);

#endif
