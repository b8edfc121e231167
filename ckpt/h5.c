/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A committed checkpoint as a self-describing HDF5 file, and back
 * (ckpt/h5.h; doc/design.md, "Checkpoint and restart").
 *
 * Layout (format 1):
 *   /                 attributes hec_format (1), job, epoch, time (Unix s of
 *                     the commit), parts (count)
 *   /manifest         the checkpoint's manifest, as JSON text (a scalar
 *                     string dataset: manifests outgrow attribute limits)
 *   /meta             the manifest's "meta" (the job's spec), as JSON text,
 *                     if it has one
 *                     and, from it, root attributes name, user, uid,
 *                     nnodes, ntasks, vcpus, mem_mb, command, nodes
 *   /parts/<part>/    a group per partition (guest), with attributes bytes,
 *                     xxh3 (16 hex digits: the stream's XXH3-64, as the
 *                     manifest has it), chunks, and node, image, pause_us
 *                     where the job spec has them
 *   /parts/<part>/stream  its stream, a 1-D uint8 dataset in 1 MiB chunks
 * h5ls and h5dump read it; nothing in it is hec's own binary format.
 *
 * Streams move between the storage servers and the file through a pipe:
 * one thread runs the storage side (hec_store_get_fd / hec_store_put_fd,
 * which take a file descriptor), the other the HDF5 side, so a stream is
 * never held whole in memory.  Only one thread touches HDF5 and only the
 * other the store session at any time.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>
#include <jansson.h>
#include <xxhash.h>

#include "hec/common.h"
#include "hec/store.h"
#include "ckpt/h5.h"

#define H5_FORMAT 1
#define BLOCK (1u << 20) /* bytes per HDF5 chunk and per pipe transfer */

static int say(char *why, size_t len, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int say(char *why, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- small HDF5 helpers: each returns 0 or -1 ---- */

static int attr_u64(hid_t obj, const char *name, uint64_t v)
{
	hid_t sp = H5Screate(H5S_SCALAR), a = -1;
	int rc = -1;

	if (sp < 0)
		return -1;
	a = H5Acreate2(obj, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
	if (a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, &v) >= 0)
		rc = 0;
	if (a >= 0)
		H5Aclose(a);
	H5Sclose(sp);
	return rc;
}

static int attr_str(hid_t obj, const char *name, const char *v)
{
	hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1), a = -1;
	int rc = -1;

	if (sp < 0 || t < 0 || H5Tset_size(t, strlen(v) + 1) < 0)
		goto out;
	a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
	if (a >= 0 && H5Awrite(a, t, v) >= 0)
		rc = 0;
out:
	if (a >= 0)
		H5Aclose(a);
	if (t >= 0)
		H5Tclose(t);
	if (sp >= 0)
		H5Sclose(sp);
	return rc;
}

static int read_attr_u64(hid_t obj, const char *name, uint64_t *v)
{
	hid_t a;
	int rc;

	if (H5Aexists(obj, name) <= 0)
		return -1;
	a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0)
		return -1;
	rc = H5Aread(a, H5T_NATIVE_UINT64, v) < 0 ? -1 : 0;
	H5Aclose(a);
	return rc;
}

/* A string attribute into @buf (at most @len - 1 characters). */
static int read_attr_str(hid_t obj, const char *name, char *buf, size_t len)
{
	hid_t a = -1, t = -1, mt = -1;
	int rc = -1;

	if (H5Aexists(obj, name) <= 0)
		return -1;
	a = H5Aopen(obj, name, H5P_DEFAULT);
	if (a < 0)
		return -1;
	t = H5Aget_type(a);
	if (t < 0 || H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) > 0 ||
	    H5Tget_size(t) >= len)
		goto out;
	mt = H5Tcopy(t);
	memset(buf, 0, len);
	if (mt >= 0 && H5Aread(a, mt, buf) >= 0)
		rc = 0;
out:
	if (mt >= 0)
		H5Tclose(mt);
	if (t >= 0)
		H5Tclose(t);
	H5Aclose(a);
	return rc;
}

/* A scalar string dataset holding @text. */
static int write_text(hid_t loc, const char *name, const char *text)
{
	hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1), d = -1;
	int rc = -1;

	if (sp < 0 || t < 0 || H5Tset_size(t, strlen(text) + 1) < 0)
		goto out;
	d = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (d >= 0 && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0)
		rc = 0;
out:
	if (d >= 0)
		H5Dclose(d);
	if (t >= 0)
		H5Tclose(t);
	if (sp >= 0)
		H5Sclose(sp);
	return rc;
}

/* The text of scalar string dataset @name (malloc'ed), or NULL. */
static char *read_text(hid_t loc, const char *name, size_t max)
{
	hid_t d, t = -1, sp = -1;
	char *buf = NULL;
	size_t n;

	if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
		return NULL;
	d = H5Dopen2(loc, name, H5P_DEFAULT);
	if (d < 0)
		return NULL;
	t = H5Dget_type(d);
	sp = H5Dget_space(d);
	if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) > 0 ||
	    H5Sget_simple_extent_type(sp) != H5S_SCALAR)
		goto out;
	n = H5Tget_size(t);
	if (n == 0 || n > max)
		goto out;
	buf = calloc(1, n + 1);
	if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
		free(buf);
		buf = NULL;
	}
out:
	if (sp >= 0)
		H5Sclose(sp);
	if (t >= 0)
		H5Tclose(t);
	H5Dclose(d);
	return buf;
}

/* ---- the storage side of a transfer, on its own thread ---- */

struct xfer {
	struct hec_store *s;
	uint64_t job, epoch;
	const char *part;
	int fd;                  /* the pipe end this thread uses; closed when done */
	int put;                 /* 1: hec_store_put_fd, 0: hec_store_get_fd */
	int rc;
	json_t *entry;           /* put: the stream's manifest entry */
	struct hec_store_stat st;
	char why[512];
};

static void *xfer_main(void *arg)
{
	struct xfer *x = arg;

	if (x->put)
		x->rc = hec_store_put_fd(x->s, x->job, x->epoch, x->part, x->fd, &x->entry, &x->st);
	else
		x->rc = hec_store_get_fd(x->s, x->job, x->epoch, x->part, x->fd, &x->st);
	if (x->rc)
		snprintf(x->why, sizeof(x->why), "%s", hec_store_why(x->s));
	close(x->fd);
	x->fd = -1;
	return NULL;
}

static int read_full(int fd, unsigned char *buf, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = read(fd, buf + *got, n - *got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- export ---- */

/* The job spec's string and integer fields of @o as attributes of @obj. */
static int attrs_from(hid_t obj, const json_t *o)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v) {
		if (json_is_string(v) && attr_str(obj, k, json_string_value(v)))
			return -1;
		if (json_is_integer(v) && json_integer_value(v) >= 0 &&
		    attr_u64(obj, k, (uint64_t)json_integer_value(v)))
			return -1;
	}
	return 0;
}

/* One stream into group /parts/<part> (@pmeta: its entry of the job spec's
 * parts, or NULL): its bytes read from the storage servers (every chunk
 * checked by the client) through a pipe into dataset "stream". */
static int export_part(struct hec_store *s, hid_t parts, uint64_t job, uint64_t epoch,
		       const json_t *entry, const json_t *pmeta, unsigned char *buf, char *why,
		       size_t len)
{
	const char *part = json_string_value(json_object_get(entry, "part"));
	const char *hash = json_string_value(json_object_get(entry, "hash"));
	uint64_t size = (uint64_t)json_integer_value(json_object_get(entry, "size"));
	hsize_t dim = size, chunk = size < BLOCK ? (size ? size : 1) : BLOCK, off = 0;
	hid_t sp = -1, dcpl = -1, d = -1, g = -1;
	struct xfer x = { .s = s, .job = job, .epoch = epoch, .part = part, .fd = -1 };
	pthread_t th;
	int p[2], rc = 0, started = 0;

	g = H5Gcreate2(parts, part, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (g < 0 || attr_u64(g, "bytes", size) || attr_str(g, "xxh3", hash) ||
	    attr_u64(g, "chunks", json_array_size(json_object_get(entry, "chunks"))) ||
	    (pmeta && attrs_from(g, pmeta))) {
		rc = say(why, len, -EIO, "%s: HDF5 could not make its group", part);
		goto out;
	}
	sp = H5Screate_simple(1, &dim, NULL);
	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (sp < 0 || dcpl < 0 || (size && H5Pset_chunk(dcpl, 1, &chunk) < 0)) {
		rc = say(why, len, -EIO, "%s: HDF5 could not make its dataspace", part);
		goto out;
	}
	d = H5Dcreate2(g, "stream", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	if (d < 0) {
		rc = say(why, len, -EIO, "%s: HDF5 could not make its dataset", part);
		goto out;
	}
	if (pipe2(p, O_CLOEXEC)) {
		rc = say(why, len, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	x.fd = p[1];
	if ((errno = pthread_create(&th, NULL, xfer_main, &x))) {
		rc = say(why, len, -errno, "thread: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		goto out;
	}
	started = 1;
	while (off < size) {
		size_t got;
		hsize_t n;
		hid_t ms;

		rc = read_full(p[0], buf, BLOCK, &got);
		if (rc || got == 0)
			break;
		n = got;
		if (off + n > size) {
			rc = say(why, len, -EIO, "%s: the servers sent more than its %" PRIu64 " bytes",
				 part, size);
			break;
		}
		ms = H5Screate_simple(1, &n, NULL);
		if (ms < 0 || H5Sselect_hyperslab(sp, H5S_SELECT_SET, &off, NULL, &n, NULL) < 0 ||
		    H5Dwrite(d, H5T_NATIVE_UCHAR, ms, sp, H5P_DEFAULT, buf) < 0) {
			if (ms >= 0)
				H5Sclose(ms);
			rc = say(why, len, -EIO, "%s: HDF5 write at byte %llu failed (disk full?)", part,
				 (unsigned long long)off);
			break;
		}
		H5Sclose(ms);
		off += n;
	}
	/* a reader that stopped early must not leave the writer blocked */
	close(p[0]);
	pthread_join(th, NULL);
	if (!rc && x.rc)
		rc = say(why, len, x.rc, "%s", x.why);
	else if (!rc && off != size)
		rc = say(why, len, -EIO, "%s: %llu of its %" PRIu64 " bytes came back", part,
			 (unsigned long long)off, size);
out:
	(void)started;
	if (d >= 0)
		H5Dclose(d);
	if (dcpl >= 0)
		H5Pclose(dcpl);
	if (sp >= 0)
		H5Sclose(sp);
	if (g >= 0)
		H5Gclose(g);
	return rc;
}

int hec_ckpt_h5_export(struct hec_store *s, uint64_t job, uint64_t epoch, const char *path,
		       char *why, size_t len)
{
	json_t *m = NULL, *streams;
	const json_t *meta;
	char *text = NULL;
	unsigned char *buf = NULL;
	hid_t f = -1, parts = -1;
	int rc;

	rc = hec_store_manifest(s, job, epoch, &m);
	if (rc)
		return say(why, len, rc, "%s", rc == -ENOENT ? "no such committed checkpoint" :
			   rc == -ESTALE ? "that checkpoint was deleted" : hec_store_why(s));
	streams = json_object_get(m, "streams");
	meta = json_object_get(m, "meta");
	text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
	buf = malloc(BLOCK);
	if (!text || !buf) {
		rc = say(why, len, -ENOMEM, "out of memory");
		goto out;
	}
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	if (f < 0) {
		rc = say(why, len, -EIO, "%s: HDF5 cannot create it (%s)", path,
			 access(path, F_OK) == 0 ? "not writable?" : "no such directory or no permission");
		goto out;
	}
	if (attr_u64(f, "hec_format", H5_FORMAT) || attr_u64(f, "job", job) ||
	    attr_u64(f, "epoch", epoch) ||
	    attr_u64(f, "time", (uint64_t)json_integer_value(json_object_get(m, "time"))) ||
	    attr_u64(f, "parts", json_array_size(streams)) || write_text(f, "manifest", text)) {
		rc = say(why, len, -EIO, "%s: HDF5 could not write the checkpoint's description", path);
		goto out;
	}
	if (json_is_object(meta)) {
		char *mt = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
		const json_t *nodes = json_object_get(meta, "nodes"), *nd;
		char list[4096] = "";
		size_t k, used = 0;

		json_array_foreach(nodes, k, nd)
			if (json_is_string(nd) && used < sizeof(list))
				used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
							 used ? "," : "", json_string_value(nd));
		if (!mt || write_text(f, "meta", mt) || attrs_from(f, json_object_get(meta, "job")) ||
		    (list[0] && attr_str(f, "nodes", list))) {
			free(mt);
			rc = say(why, len, -EIO, "%s: HDF5 could not write the job's spec", path);
			goto out;
		}
		free(mt);
	}
	parts = H5Gcreate2(f, "parts", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
	if (parts < 0) {
		rc = say(why, len, -EIO, "%s: HDF5 could not make /parts", path);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(streams); i++) {
		const json_t *e = json_array_get(streams, i), *pm, *found = NULL;
		const char *part = json_string_value(json_object_get(e, "part"));
		size_t k;

		json_array_foreach(json_object_get(meta, "parts"), k, pm)
			if (part && json_is_string(json_object_get(pm, "part")) &&
			    !strcmp(part, json_string_value(json_object_get(pm, "part"))))
				found = pm;
		rc = export_part(s, parts, job, epoch, e, found, buf, why, len);
		if (rc)
			goto out;
	}
out:
	if (parts >= 0)
		H5Gclose(parts);
	if (f >= 0 && H5Fclose(f) < 0 && !rc)
		rc = say(why, len, -EIO, "%s: HDF5 could not finish the file (disk full?)", path);
	if (rc && f >= 0)
		unlink(path); /* no half file left behind to be mistaken for one */
	free(buf);
	free(text);
	json_decref(m);
	return rc;
}

/* ---- import ---- */

/* The HDF5 side of an import: dataset @d's bytes into @fd, hashed. */
struct feed {
	hid_t d;
	uint64_t size;
	int fd;
	unsigned char *buf;
	uint64_t hash;
	int rc;
};

static void *feed_main(void *arg)
{
	struct feed *fe = arg;
	hid_t sp = H5Dget_space(fe->d);
	XXH3_state_t *xs = XXH3_createState();
	hsize_t off = 0;

	fe->rc = sp < 0 || !xs ? -ENOMEM : 0;
	if (xs)
		XXH3_64bits_reset(xs);
	while (!fe->rc && off < fe->size) {
		hsize_t n = fe->size - off < BLOCK ? fe->size - off : BLOCK;
		hid_t ms = H5Screate_simple(1, &n, NULL);

		if (ms < 0 || H5Sselect_hyperslab(sp, H5S_SELECT_SET, &off, NULL, &n, NULL) < 0 ||
		    H5Dread(fe->d, H5T_NATIVE_UCHAR, ms, sp, H5P_DEFAULT, fe->buf) < 0)
			fe->rc = -EIO;
		if (ms >= 0)
			H5Sclose(ms);
		if (fe->rc)
			break;
		XXH3_64bits_update(xs, fe->buf, (size_t)n);
		fe->rc = write_full(fe->fd, fe->buf, (size_t)n);
		off += n;
	}
	if (!fe->rc)
		fe->hash = XXH3_64bits_digest(xs);
	XXH3_freeState(xs);
	if (sp >= 0)
		H5Sclose(sp);
	close(fe->fd);
	fe->fd = -1;
	return NULL;
}

/* One dataset into stream (job, epoch, part); its entry appended to @entries. */
static int import_part(struct hec_store *s, hid_t parts, const char *part, uint64_t job,
		       uint64_t epoch, const json_t *want, json_t *entries, unsigned char *buf,
		       char *why, size_t len)
{
	const char *want_hash = json_string_value(json_object_get(want, "hash"));
	uint64_t want_size = (uint64_t)json_integer_value(json_object_get(want, "size"));
	uint64_t bytes = 0;
	char attr_hash[32] = "", got[HEC_HASH_HEX];
	hid_t d, sp, g;
	hssize_t npoints;
	struct feed fe = { .fd = -1, .buf = buf };
	json_t *entry = NULL;
	struct hec_store_stat st = { 0 };
	pthread_t th;
	int p[2], rc;

	if (!hec_name_ok(part))
		return say(why, len, -EINVAL, "part name '%s' is not a safe name", part);
	g = H5Gopen2(parts, part, H5P_DEFAULT);
	d = g >= 0 ? H5Dopen2(g, "stream", H5P_DEFAULT) : -1;
	if (d < 0) {
		if (g >= 0)
			H5Gclose(g);
		return say(why, len, -EINVAL, "the manifest names part %s, the file has no "
			   "/parts/%s/stream", part, part);
	}
	sp = H5Dget_space(d);
	npoints = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 ? H5Sget_simple_extent_npoints(sp) : -1;
	if (sp >= 0)
		H5Sclose(sp);
	rc = npoints < 0 || read_attr_u64(g, "bytes", &bytes) ||
	     read_attr_str(g, "xxh3", attr_hash, sizeof(attr_hash));
	H5Gclose(g);
	if (rc ||
	    (uint64_t)npoints != bytes || bytes != want_size || !want_hash ||
	    strcmp(attr_hash, want_hash)) {
		H5Dclose(d);
		return say(why, len, -EINVAL, "/parts/%s does not match the manifest (size or xxh3 "
			   "attribute)", part);
	}
	if (pipe2(p, O_CLOEXEC)) {
		H5Dclose(d);
		return say(why, len, -errno, "pipe: %s", strerror(errno));
	}
	fe.d = d;
	fe.size = bytes;
	fe.fd = p[1];
	if ((errno = pthread_create(&th, NULL, feed_main, &fe))) {
		rc = say(why, len, -errno, "thread: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		H5Dclose(d);
		return rc;
	}
	rc = hec_store_put_fd(s, job, epoch, part, p[0], &entry, &st);
	close(p[0]); /* a put that failed early must not leave the feeder blocked */
	pthread_join(th, NULL);
	H5Dclose(d);
	hec_hash_hex(fe.hash, got);
	if (rc)
		rc = say(why, len, rc, "%s", hec_store_why(s));
	else if (fe.rc)
		rc = say(why, len, fe.rc, "/parts/%s: HDF5 read failed", part);
	else if (strcmp(got, want_hash) || st.bytes != bytes)
		rc = say(why, len, -EBADMSG, "/parts/%s: checksum mismatch (the file says %s, its "
			 "%" PRIu64 " bytes hash to %s)", part, want_hash, bytes, got);
	else if (json_array_append_new(entries, entry) == 0)
		entry = NULL;
	else
		rc = say(why, len, -ENOMEM, "out of memory");
	json_decref(entry);
	return rc;
}

int hec_ckpt_h5_read(const char *path, uint64_t *job, uint64_t *epoch, json_t **manifest,
		     char *why, size_t len)
{
	hid_t f;
	uint64_t fmt = 0;
	char *text;
	json_t *m;
	json_error_t jerr;
	char mwhy[256];

	*manifest = NULL;
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
	if (H5Fis_hdf5(path) <= 0)
		return say(why, len, -EINVAL, "%s: not an HDF5 file (or unreadable)", path);
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	if (f < 0)
		return say(why, len, -EIO, "%s: HDF5 cannot open it", path);
	if (read_attr_u64(f, "hec_format", &fmt) || fmt != H5_FORMAT || read_attr_u64(f, "job", job) ||
	    read_attr_u64(f, "epoch", epoch)) {
		H5Fclose(f);
		return say(why, len, -EINVAL, "%s: not a hec checkpoint (format %" PRIu64 ", want %d)",
			   path, fmt, H5_FORMAT);
	}
	text = read_text(f, "manifest", 64u << 20);
	H5Fclose(f);
	if (!text)
		return say(why, len, -EINVAL, "%s: no readable /manifest", path);
	m = json_loads(text, 0, &jerr);
	free(text);
	if (!m)
		return say(why, len, -EINVAL, "%s: /manifest is not JSON (%s)", path, jerr.text);
	if (hec_store_manifest_check(m, *job, *epoch, mwhy, sizeof(mwhy))) {
		json_decref(m);
		return say(why, len, -EINVAL, "%s: /manifest: %s", path, mwhy);
	}
	*manifest = m;
	return 0;
}

int hec_ckpt_h5_import(struct hec_store *s, const char *path, uint64_t job, uint64_t epoch,
		       json_t **entries_out, json_t **meta_out, char *why, size_t len)
{
	uint64_t fjob, fepoch;
	json_t *m = NULL, *entries = NULL, *streams;
	unsigned char *buf = NULL;
	hid_t f = -1, parts = -1;
	int rc;

	*entries_out = NULL;
	if (meta_out)
		*meta_out = NULL;
	rc = hec_ckpt_h5_read(path, &fjob, &fepoch, &m, why, len);
	if (rc)
		return rc;
	entries = json_array();
	buf = malloc(BLOCK);
	if (!entries || !buf) {
		rc = say(why, len, -ENOMEM, "out of memory");
		goto out;
	}
	f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
	parts = f >= 0 ? H5Gopen2(f, "parts", H5P_DEFAULT) : -1;
	if (parts < 0) {
		rc = say(why, len, -EINVAL, "%s: no /parts group", path);
		goto out;
	}
	streams = json_object_get(m, "streams");
	for (size_t i = 0; i < json_array_size(streams); i++) {
		const json_t *e = json_array_get(streams, i);

		rc = import_part(s, parts, json_string_value(json_object_get(e, "part")), job, epoch, e,
				 entries, buf, why, len);
		if (rc)
			break;
	}
	if (rc)
		hec_store_abort(s, job, epoch); /* its chunks now, not at the servers' next sweep */
out:
	if (parts >= 0)
		H5Gclose(parts);
	if (f >= 0)
		H5Fclose(f);
	free(buf);
	if (!rc) {
		*entries_out = entries;
		entries = NULL;
		if (meta_out && json_object_get(m, "meta"))
			*meta_out = json_incref(json_object_get(m, "meta"));
	}
	json_decref(entries);
	json_decref(m);
	return rc;
}
