/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rdma/chunkstore.h: a storage server's directory (doc/storage.md).
 *
 *   DIR/lock                            flock()ed by the one process using DIR
 *   DIR/objects/JOB/EPOCH/PART.IDX      chunk: data + 64-byte header
 *   DIR/objects/JOB/EPOCH/MANIFEST      committed manifest, written last
 *   DIR/objects/JOB/EPOCH/DELETED       tombstone: the epoch was deleted; it
 *                                       outweighs a MANIFEST and is kept
 *   DIR/objects/JOB/EPOCH/.tmp.*        files being written
 *
 * Chunk header (64 bytes, integers little-endian):
 *   0  magic "hecchnk2"     8  job      16 epoch     24 idx
 *   32 len (data bytes)     40 hash: XXH3-64 of the data
 *   48 XXH3-64 of the part name (the file name holds the name itself)
 *   56 XXH3-64 of bytes 0..55 (the header's own check)
 * It follows the data (at offset len), so that the data's whole 4 KiB blocks
 * move by direct I/O.  The first format, "hecchnk1", had the same header
 * before the data; such files are still read (never written).  A chunk file
 * is len + 64 bytes in both.
 *
 * Pure file code, single-threaded.  Every name below DIR/objects is made
 * here from integers and a checked part name, and every file and directory
 * is opened relative to DIR/objects with O_NOFOLLOW: a symlink planted in
 * the tree is never followed (it makes the operation fail with -ELOOP or
 * -ENOTDIR, or is removed as an entry when its epoch is).
 *
 * Every call returns 0 or a negative errno.  Errors a caller must tell apart:
 *   -EINVAL   a bad part name, job or epoch 0
 *   -ENOENT   no such chunk / no committed manifest / no such epoch
 *   -EBADMSG  put: the data does not hash to the hash given
 *   -EUCLEAN  get/manifest: the file is corrupt (header or hash); counted
 *   -EEXIST   abort: the epoch is committed
 *   -ESTALE   put/commit/manifest: the epoch has a tombstone (was deleted)
 *   -EMSGSIZE the caller's buffer is too small (*len says how much is needed)
 *   -ENOSPC, -EIO, ...: the file system's; a failed write leaves no
 *             temporary file and the previous copy (if any) intact
 */
#ifndef HEC_RDMA_CHUNKSTORE_H
#define HEC_RDMA_CHUNKSTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <jansson.h>

#include "hec/common.h"

#define HEC_CS_HDR_LEN 64

struct hec_cs;

struct hec_cs_status {
	uint64_t total, free;   /* bytes of the file system holding DIR (free: for us) */
	uint64_t used;          /* bytes of chunk and manifest files (headers included) */
	uint64_t chunks, manifests;
	uint64_t corrupt;       /* corrupt files found by get/manifest since open */
	uint64_t repaired;      /* chunks put into committed epochs since open: only
				 * repair writes there */
};

/** Open (creating DIR and DIR/objects if needed) the store in @dir.
 *  -EBUSY: another process holds DIR/lock.  @why names the cause. */
int hec_cs_open(const char *dir, struct hec_cs **out, char *why, size_t whylen);
/** NULL is a no-op. */
void hec_cs_close(struct hec_cs *cs);

/** XXH3-64 (part names and hash text: hec_name_ok, hec_hash_hex and
 *  hec_hash_parse in hec/common.h). */
uint64_t hec_cs_hash(const void *buf, size_t len);

/** Store chunk (job, epoch, part, idx) of @len bytes whose XXH3-64 must be
 *  @hash (-EBADMSG otherwise), replacing any previous copy atomically.  Not
 *  synced: hec_cs_commit syncs the epoch.  Allowed into a committed epoch
 *  (repair re-copies chunks), not into a deleted one (-ESTALE).  A 4 KiB
 *  aligned @data goes to the disk by direct I/O where the file system
 *  allows. */
int hec_cs_put(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part, uint64_t idx,
	       const void *data, size_t len, uint64_t hash);
/** Read a chunk into @buf (@cap bytes), checking its header and hash: fills
 *  *@len and *@hash.  -ENOENT, -EUCLEAN (counted), -EMSGSIZE. */
int hec_cs_get(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part, uint64_t idx,
	       void *buf, size_t cap, size_t *len, uint64_t *hash);

/*
 * The same in two halves, for a caller that moves the data itself (an
 * asynchronous I/O): *_start does the checks and file work before the bulk
 * transfer and fills @io; the caller then transfers io->iov (io->iovcnt
 * buffers, io->bytes in all) to (a put) or from (a get) io->fd at offset 0,
 * e.g. with pwritev/preadv (repeated until done, or a read reaches the end
 * of the file), and passes what it moved (or -errno) to the matching
 * *_finish, which completes (put: rename into place; get: check header and
 * hash) and releases @io whatever happens.  hec_cs_io_cancel() releases a
 * started @io instead (a put leaves nothing behind).  With @direct, io->fd
 * is opened O_DIRECT where the file system and the buffer allow it
 * (io->direct): then io->iov suits direct I/O (4 KiB aligned).  The buffer
 * must stay untouched until *_finish.  Meanwhile the caller must not run
 * hec_cs_gc (it removes temporary files); other operations are safe (a put
 * finishing into an epoch deleted meanwhile fails with -ESTALE).
 */
struct hec_cs_io {
	int fd;                   /* -1 when not started */
	int direct;               /* fd is O_DIRECT */
	struct iovec iov[2];
	int iovcnt;
	size_t bytes;
	/* the store's own */
	int put, efd;
	uint64_t job, epoch, idx;
	size_t len, size, whole;
	uint8_t *buf, *tail;
	char part[HEC_NAME_MAX + 1];
	char name[HEC_NAME_MAX + 24];
	char tmp[HEC_NAME_MAX + 48];
};

int hec_cs_put_start(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t idx, const void *data, size_t len, uint64_t hash, int direct,
		     struct hec_cs_io *io);
int hec_cs_put_finish(struct hec_cs *cs, struct hec_cs_io *io, ssize_t res);
/** -EMSGSIZE: *@len says how large the chunk is. */
int hec_cs_get_start(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t idx, void *buf, size_t cap, int direct, struct hec_cs_io *io,
		     size_t *len);
int hec_cs_get_finish(struct hec_cs *cs, struct hec_cs_io *io, ssize_t res, size_t *len,
		      uint64_t *hash);
void hec_cs_io_cancel(struct hec_cs_io *io);
/** Do (the rest of) a started transfer synchronously from byte @done on:
 *  \return the bytes moved in all (@done included), or -errno. */
ssize_t hec_cs_io_run(struct hec_cs_io *io, size_t done);

/** Ask the kernel to start reading chunks @from..@to of (job, epoch, part)
 *  that are here, without waiting (a hint: missing chunks are skipped, and
 *  nothing fails). */
void hec_cs_prefetch(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t from, uint64_t to);

/** Commit (job, epoch): sync what is stored, then write @manifest (@len
 *  bytes) as MANIFEST through a synced temporary file, rename and sync the
 *  directory.  Re-committing replaces the manifest atomically.  -ESTALE: the
 *  epoch was deleted (a deleted epoch never comes back). */
int hec_cs_commit(struct hec_cs *cs, uint64_t job, uint64_t epoch, const void *manifest,
		  size_t len);
/** The committed manifest of (job, *@epoch), or of the newest committed
 *  epoch without a tombstone when *@epoch is 0 (then set).  -ENOENT: none
 *  committed; -ESTALE: *@epoch was deleted. */
int hec_cs_manifest(struct hec_cs *cs, uint64_t job, uint64_t *epoch, void *buf, size_t cap,
		    size_t *len);
/** The same, where *@epoch 0 looks only at epochs below @before (0: all):
 *  a client skipping an epoch another server holds the tombstone of. */
int hec_cs_manifest_before(struct hec_cs *cs, uint64_t job, uint64_t before, uint64_t *epoch,
			   void *buf, size_t cap, size_t *len);

/** Delete (job, epoch): write its tombstone DELETED (synced file and
 *  directory: from then on it is deleted, whatever is left), then remove
 *  the manifest and chunks.  The tombstone is written even if nothing of
 *  the epoch is stored here, and stays (doc/storage.md).  Idempotent. */
int hec_cs_delete(struct hec_cs *cs, uint64_t job, uint64_t epoch);
/** Remove an uncommitted epoch's chunks.  -EEXIST: committed (untouched);
 *  -ENOENT: nothing stored for it, or deleted (leftovers beside the
 *  tombstone are removed, the tombstone stays). */
int hec_cs_abort(struct hec_cs *cs, uint64_t job, uint64_t epoch);

/** Inventory of @job (0: every job): {"epochs":[{"job","epoch","committed",
 *  "deleted","chunks":[{"part","idx","len"}]}]}, sorted by job, epoch, part,
 *  idx; "deleted": the epoch has a tombstone (then "committed" is false). */
int hec_cs_list(struct hec_cs *cs, uint64_t job, json_t **out);

int hec_cs_status(struct hec_cs *cs, struct hec_cs_status *st);

/** Is someone writing (job, epoch) right now?  (GC leaves it alone.) */
typedef int (*hec_cs_busy_fn)(void *arg, uint64_t job, uint64_t epoch);

struct hec_cs_gc_stats {
	uint64_t temps;   /* temporary files removed */
	uint64_t epochs;  /* uncommitted epochs removed */
};

/** Remove every temporary file, and every uncommitted epoch whose newest
 *  file (or the directory itself) is older than @grace_s seconds and for
 *  which @busy (may be NULL) says no.  Committed epochs are never touched
 *  but for their temporary files; of a deleted epoch only the tombstone is
 *  kept.  Fills @st (may be NULL). */
int hec_cs_gc(struct hec_cs *cs, long grace_s, hec_cs_busy_fn busy, void *arg,
	      struct hec_cs_gc_stats *st);

#endif
