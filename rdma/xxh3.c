/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rdma/xxh3.c: XXH3-64 for storage's hot paths.  The same hash as
 * libxxhash's XXH3_64bits (so every stored hash stays valid), computed with
 * AVX2 where the CPU has it: Debian's libxxhash is built for SSE2, which
 * hashes data in the cache at about half the speed.  The AVX2 code is
 * xxhash.h's own (its header-only mode), compiled here for that target and
 * chosen at run time.
 */
#include "config.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/xxh3.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HEC_XXH3_AVX2 1
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

static uint64_t avx2_hash(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

static void avx2_update(void *st, const void *buf, size_t len)
{
	XXH3_64bits_update(st, buf, len);
}
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
/* libxxhash's own, under the names header-only mode took over */
#undef XXH3_64bits
#undef XXH3_64bits_update
uint64_t XXH3_64bits(const void *buf, size_t len);
int XXH3_64bits_update(void *st, const void *buf, size_t len);
#else
#include <xxhash.h>
#endif

#ifdef HEC_XXH3_AVX2
static int avx2(void)
{
	static int have = -1;

	if (have < 0) {
		__builtin_cpu_init();
		have = __builtin_cpu_supports("avx2") ? 1 : 0;
	}
	return have;
}
#endif

uint64_t hec_xxh3(const void *buf, size_t len)
{
#ifdef HEC_XXH3_AVX2
	if (avx2())
		return avx2_hash(buf, len);
#endif
	return XXH3_64bits(buf, len);
}

void hec_xxh3_update(void *st, const void *buf, size_t len)
{
#ifdef HEC_XXH3_AVX2
	if (avx2()) {
		avx2_update(st, buf, len);
		return;
	}
#endif
	XXH3_64bits_update(st, buf, len);
}
