/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ckpt/h5.h: a committed checkpoint as a self-describing HDF5 file
 * (`hec ckpt export` / `hec ckpt import`; the layout is in ckpt/h5.c).
 * Each call returns 0 or a negative errno with one line in @why.  The
 * caller ignores SIGPIPE (a transfer moves through a pipe between threads).
 */
#ifndef HEC_CKPT_H5_H
#define HEC_CKPT_H5_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct hec_store;

/** Write committed checkpoint (job, epoch) to @path (created or truncated):
 *  every stream read from the servers, each chunk checked on the way.  A
 *  failure removes the half-written file. */
int hec_ckpt_h5_export(struct hec_store *s, uint64_t job, uint64_t epoch, const char *path,
		       char *why, size_t len);
/** Read @path's job, epoch and manifest (checked) without touching storage. */
int hec_ckpt_h5_read(const char *path, uint64_t *job, uint64_t *epoch, json_t **manifest,
		     char *why, size_t len);
/** Put every stream of @path to the servers as (job, epoch), checking each
 *  against the XXH3-64 the file records; *@entries gets their manifest
 *  entries and *@meta (may be NULL) the file's job spec, for the caller to
 *  commit.  On failure the epoch's chunks are dropped (hec_store_abort). */
int hec_ckpt_h5_import(struct hec_store *s, const char *path, uint64_t job, uint64_t epoch,
		       json_t **entries, json_t **meta, char *why, size_t len);

#endif
