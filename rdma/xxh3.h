/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rdma/xxh3.h: XXH3-64, exactly libxxhash's XXH3_64bits, faster on CPUs
 * with AVX2 (rdma/xxh3.c).
 */
#ifndef HEC_RDMA_XXH3_H
#define HEC_RDMA_XXH3_H

#include <stddef.h>
#include <stdint.h>

/** XXH3_64bits(@buf, @len). */
uint64_t hec_xxh3(const void *buf, size_t len);
/** XXH3_64bits_update(@st, @buf, @len): @st is an XXH3_state_t * of
 *  libxxhash (XXH3_createState, XXH3_64bits_reset, XXH3_64bits_digest). */
void hec_xxh3_update(void *st, const void *buf, size_t len);

#endif
