/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec/store.h: the checkpoint storage client (doc/storage.md).
 *
 * A session talks to every storage server of a cluster at once over the
 * fabric layer (rdma/hecfab.h: verbs where a device exists, tcp elsewhere),
 * from one thread and one poll loop: no thread per connection.
 *
 * Objects are streams named (job, epoch, part).  A stream is cut into chunks
 * of chunk_size bytes; chunk i goes to r servers chosen from the session's
 * server list (placement below), each chunk carries an XXH3-64 hash that the
 * server checks on arrival and on every read, and the reader checks again.
 * A checkpoint (job, epoch) becomes visible only when the coordinator
 * commits its manifest (hec_store_commit): the manifest lists every stream,
 * its size and hash and where each chunk lives, and is written last and
 * atomically on every server that is up.  Only committed checkpoints are
 * ever read back; anything else is garbage the servers collect.
 *
 * Every call returns 0 or a negative errno and, on failure, leaves one line
 * in the session's why (hec_store_why()) naming the server, object and cause.
 */
#ifndef HEC_STORE_H
#define HEC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "hec/common.h" /* part names and hashes: hec_name_ok, hec_hash_hex */

#define HEC_STORE_CHUNK_DEFAULT (4u << 20)

struct hec_store;

struct hec_store_server {
	const char *name;     /* "s0" */
	const char *addr;     /* its fabric address "host:port" */
	int down;             /* known to be down (the controller says so): it
			       * keeps its place in the ring, no connection is tried */
};

struct hec_store_opts {
	const struct hec_store_server *servers; /* every server of the cluster */
	size_t nservers;
	const char *key;        /* the cluster key (STORE_HELLO) */
	const char *client;     /* our name, for the servers' logs */
	const char *provider;   /* "auto" (NULL), "verbs" or "tcp" */
	unsigned replicas;      /* 0: 2, capped at nservers */
	size_t chunk_size;      /* 0: HEC_STORE_CHUNK_DEFAULT */
	int timeout_ms;         /* per operation; 0: 30000 */
};

/** Connect to every server that answers.  A server that is down is left out
 *  (writes place around it, reads use other replicas) and named in why;
 *  \return -EHOSTUNREACH only if none answers, -EACCES on a wrong key.
 *  *@out is set even on failure (for hec_store_why()); close it either way. */
int hec_store_open(const struct hec_store_opts *o, struct hec_store **out);
void hec_store_close(struct hec_store *s);
/** The last call's failure in one line; after a success, a warning (servers
 *  left out, chunks degraded) or "no error". */
const char *hec_store_why(const struct hec_store *s);
/** The transport in use ("verbs" or "tcp"). */
const char *hec_store_provider(const struct hec_store *s);
/** How many servers are in the session now, and the copies per chunk (r). */
size_t hec_store_servers_up(const struct hec_store *s);
unsigned hec_store_replicas(const struct hec_store *s);

/** Statistics of the last stream written or read. */
struct hec_store_stat {
	uint64_t bytes, chunks;
	uint64_t hash;          /* XXH3-64 of the whole stream */
	uint64_t degraded;      /* chunks written to fewer than r servers */
	uint64_t corrupt;       /* chunk copies found bad on read (and repaired if possible) */
	uint64_t repaired;      /* copies re-written by this call */
	double seconds;
};

/** Write the stream read from @fd until EOF as (job, epoch, part).  Data is
 *  sent as it is read: at most a few chunks per server are in memory.
 *  \return 0 and fills @st (the manifest entry for the stream in *@entry,
 *  a JSON object the caller passes to hec_store_commit), or -errno: the
 *  stream failed and the coordinator aborts the epoch. */
int hec_store_put_fd(struct hec_store *s, uint64_t job, uint64_t epoch, const char *part,
		     int fd, json_t **entry, struct hec_store_stat *st);

/** Commit checkpoint (job, epoch) whose streams are @entries (an array of the
 *  entries hec_store_put_fd returned, from any number of writers): the
 *  manifest is written last and atomically; after 0 the checkpoint survives
 *  any one server's loss (r >= 2) and is what hec_store_latest finds. */
int hec_store_commit(struct hec_store *s, uint64_t job, uint64_t epoch, json_t *entries);
/** hec_store_commit whose manifest also carries @meta (NULL: none) as its
 *  "meta": what a restart needs to know of the job that was saved (its
 *  spec, nodes, and per stream the node, guest image and pause; the format
 *  hec_store_meta_check accepts, doc/storage.md "Manifest meta").
 *  -EINVAL (why says it) if @meta does not fit the streams. */
int hec_store_commit_meta(struct hec_store *s, uint64_t job, uint64_t epoch, json_t *entries,
			  const json_t *meta);

/** The newest committed epoch of @job (*@epoch), and its manifest
 *  (*@manifest, caller decrefs; may be NULL).  -ENOENT: none committed. */
int hec_store_latest(struct hec_store *s, uint64_t job, uint64_t *epoch, json_t **manifest);

/** The manifest of committed checkpoint (job, epoch) (*@manifest, caller
 *  decrefs).  -ENOENT: not committed; -ESTALE: deleted. */
int hec_store_manifest(struct hec_store *s, uint64_t job, uint64_t epoch, json_t **manifest);

/** Read committed stream (job, epoch, part) into @fd, checking every chunk's
 *  hash and the stream's; a bad or missing copy is read from another replica
 *  and re-written where it was bad.  -ENOENT: not committed; -EIO: every copy
 *  of some chunk is lost or bad (why names it). */
int hec_store_get_fd(struct hec_store *s, uint64_t job, uint64_t epoch, const char *part,
		     int fd, struct hec_store_stat *st);

/** Delete checkpoint (job, epoch): every server up writes its tombstone
 *  (atomically, synced), then drops the manifest and chunks.  A server that
 *  was down keeps its copy, but latest and get never return an epoch whose
 *  tombstone a reachable server holds, and repair deletes the copy. */
int hec_store_delete(struct hec_store *s, uint64_t job, uint64_t epoch);
/** Drop an uncommitted epoch's chunks now (the servers would collect them
 *  later anyway).  -EEXIST: it is committed (use hec_store_delete). */
int hec_store_abort(struct hec_store *s, uint64_t job, uint64_t epoch);

/** Bring every committed checkpoint back to r good copies: missing or bad
 *  chunk copies and manifests are re-copied from a good replica.  Fills
 *  *@copied and *@lost (chunks with no good copy left). */
int hec_store_repair(struct hec_store *s, uint64_t *copied, uint64_t *lost);
/** The same, first propagating deletions: a (job, epoch) whose tombstone
 *  some server holds is deleted on every server up that still holds some of
 *  it, and is never repaired.  *@report (also on failure, NULL only on
 *  ENOMEM): {"copied", "lost", "removed" (epoch copies deleted), "servers"
 *  (up), "lost_chunks": [{"job", "epoch", "chunks"}]}; caller decrefs.
 *  \return 0, or -EIO with why when chunks are lost or copies failed. */
int hec_store_repair_report(struct hec_store *s, json_t **report);

/** Each server's status (a JSON array of objects; caller decrefs). */
int hec_store_status(struct hec_store *s, json_t **servers);

/*
 * Pure helpers (rdma/manifest.c): placement and the formats the client,
 * hec-store and the tests share.  No I/O.
 */

/** The home of chunk @idx of (job, epoch, part) among @m servers sorted by
 *  name (strcmp): (XXH3-64 of "job/epoch/part" + idx) mod m, computed without
 *  overflow.  Copies go to the home and the next servers of the ring. */
size_t hec_store_home(uint64_t job, uint64_t epoch, const char *part, uint64_t idx, size_t m);
/** Parse a byte count with an optional unit K, M or G (powers of 1024).
 *  \return 0, -EINVAL if malformed, -ERANGE if 0 or above 1 TiB. */
int hec_store_parse_size(const char *s, uint64_t *out);
/** Check a stream's manifest entry (what hec_store_put_fd returns): fields,
 *  types, chunk lengths adding up to "size", every chunk but the last full.
 *  \return 0 or -EINVAL with the first fault in @why. */
int hec_store_entry_check(const json_t *entry, char *why, size_t whylen);
/** Check a checkpoint's manifest: @job and @epoch (0: any) match, "replicas",
 *  "chunk_size", "servers", every entry of "streams" (distinct parts), and
 *  "meta" where there is one (hec_store_meta_check).
 *  \return 0 or -EINVAL with the first fault in @why. */
int hec_store_manifest_check(const json_t *m, uint64_t job, uint64_t epoch, char *why,
			     size_t whylen);
/** Check a manifest's "meta" against its @streams (an array of entries):
 *  {"job": {name, user, uid, nnodes, ntasks, vcpus, mem_mb, vm_files [str],
 *  command}, "nodes": [nnodes names], "parts": [{part, node, image,
 *  pause_us}] naming every stream once and only those, on nodes of
 *  "nodes"}.  \return 0 or -EINVAL with the first fault in @why. */
int hec_store_meta_check(const json_t *meta, const json_t *streams, char *why, size_t whylen);
/** The entry of @part in manifest @m, or NULL. */
const json_t *hec_store_manifest_stream(const json_t *m, const char *part);
/** The -errno a STORE_REP "error" stands for: the exact strings of
 *  doc/config.md ("no such chunk", "no committed checkpoint": -ENOENT;
 *  "corrupt", "checksum mismatch": -EBADMSG; "committed": -EEXIST;
 *  "deleted": -ESTALE; "larger than the slot": -EMSGSIZE; "no such slot",
 *  "bad part name": -EINVAL), a full disk's strerror -ENOSPC, anything else
 *  (or NULL) -EREMOTEIO. */
int hec_store_rep_errno(const char *error);

#endif
