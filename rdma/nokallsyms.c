/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rdma/nokallsyms.c: keep libfabric's verbs provider from scanning
 * /proc/kallsyms in hec-store, a process started for every stream.
 *
 * libfabric (1.17, every provider built in) initialises every provider at
 * the first fi_getinfo(), whatever FI_PROVIDER or the hints' prov_name say:
 * the filter is applied to what an initialisation returns, after it ran.  The
 * verbs provider's initialisation reads all of /proc/kallsyms (5 MB here),
 * line by line, twice: for ib_register_peer_memory_client and
 * ib_umem_dmabuf_get, which decide whether it may register device (GPU)
 * memory (FI_HMEM).  That is 0.15-0.3 s of a process's start, more than a
 * 64 MiB stream takes; hec registers host memory only, so the answer is
 * never used.
 *
 * hec-store's own fopen() therefore answers that one path with ENOENT, as on
 * a kernel without kallsyms (verbs then assumes neither, and works as
 * before: tests/vm/storage_verbs.sh); every other path goes to the C
 * library's.  An executable's definition takes precedence over the C
 * library's for every object of the process (libfabric's calls included);
 * this file is linked into hec-store only, which reads kallsyms for nothing
 * else.  HEC_STORE_KALLSYMS=1 in the environment lets the scan happen (to
 * measure what it costs).
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

FILE *fopen(const char *path, const char *mode)
{
	static FILE *(*libc_fopen)(const char *, const char *);

	if (path && !strcmp(path, "/proc/kallsyms") && !getenv("HEC_STORE_KALLSYMS")) {
		errno = ENOENT;
		return NULL;
	}
	if (!libc_fopen) {
		libc_fopen = (FILE * (*)(const char *, const char *))dlsym(RTLD_NEXT, "fopen");
		if (!libc_fopen) {
			errno = ENOSYS;
			return NULL;
		}
	}
	return libc_fopen(path, mode);
}
