/* SPDX-License-Identifier: BSD-3-Clause */
/* rdma/chunkstore.c: chunk files, manifests, space and GC under one directory. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hec/common.h"
#include "rdma/chunkstore.h"
#include "rdma/xxh3.h"

#define MAGIC1 "hecchnk1" /* header first (read only) */
#define MAGIC2 "hecchnk2" /* header last, after the data */
#define MANIFEST "MANIFEST"
#define DELETED "DELETED"
#define TMP_PREFIX ".tmp."
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct hec_cs {
	int lockfd;
	int objfd;   /* DIR/objects */
	uint64_t used, chunks, manifests, corrupt, repaired;
};

/* ---- names and hashes ---- */

uint64_t hec_cs_hash(const void *buf, size_t len)
{
	return hec_xxh3(buf, len);
}

/* A directory entry that is a number we could have written ("0" is not: job
 * and epoch are positive); \return 0 and *@v, or -EINVAL. */
static int parse_num(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (*s < '1' || *s > '9')
		return -EINVAL;
	for (; *s; s++) {
		/* indexes and ids travel as signed JSON integers */
		if (*s < '0' || *s > '9' || x > (INT64_MAX - 9) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return 0;
}

/* "PART.IDX" -> part and idx; \return 0 or -EINVAL (not a chunk file name). */
static int parse_chunk_name(const char *name, char part[HEC_NAME_MAX + 1], uint64_t *idx)
{
	const char *dot = strrchr(name, '.');
	size_t n;

	if (!dot || dot == name)
		return -EINVAL;
	n = (size_t)(dot - name);
	if (n > HEC_NAME_MAX)
		return -EINVAL;
	if (strcmp(dot + 1, "0") == 0)
		*idx = 0;
	else if (parse_num(dot + 1, idx))
		return -EINVAL;
	memcpy(part, name, n);
	part[n] = 0;
	return hec_name_ok(part) ? 0 : -EINVAL;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void make_header(uint8_t h[HEC_CS_HDR_LEN], const char *magic, uint64_t job,
			uint64_t epoch, const char *part, uint64_t idx, uint64_t len, uint64_t hash)
{
	memcpy(h, magic, 8);
	put_le64(h + 8, job);
	put_le64(h + 16, epoch);
	put_le64(h + 24, idx);
	put_le64(h + 32, len);
	put_le64(h + 40, hash);
	put_le64(h + 48, hec_cs_hash(part, strlen(part)));
	put_le64(h + 56, hec_cs_hash(h, 56));
}

/* A DIR stream of directory @dfd with its own offset (a dup() would share
 * @dfd's, and a second walk would find it at the end). */
static DIR *opendir_at(int dfd)
{
	int fd = openat(dfd, ".", DIR_FLAGS);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

/* ---- opening ---- */

int hec_cs_open(const char *dir, struct hec_cs **out, char *why, size_t whylen)
{
	struct hec_cs *cs = calloc(1, sizeof(*cs));
	char path[4096];
	int rc;

	if (!cs)
		return -ENOMEM;
	cs->lockfd = cs->objfd = -1;
	rc = hec_fmt(path, sizeof(path), "%s/objects", dir);
	if (rc) {
		snprintf(why, whylen, "%s: path too long", dir);
		goto err_free;
	}
	rc = hec_mkdir_p(path, 0700);
	if (rc) {
		snprintf(why, whylen, "%s: %s", path, strerror(-rc));
		goto err_free;
	}
	hec_fmt(path, sizeof(path), "%s/lock", dir);
	cs->lockfd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (cs->lockfd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		goto err_free;
	}
	if (flock(cs->lockfd, LOCK_EX | LOCK_NB)) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(why, whylen, "%s: %s", path,
			 rc == -EBUSY ? "another hecstored uses this directory" : strerror(-rc));
		goto err_lock;
	}
	hec_fmt(path, sizeof(path), "%s/objects", dir);
	cs->objfd = open(path, DIR_FLAGS);
	if (cs->objfd < 0) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		goto err_lock;
	}
	/* The counters start from what is there. */
	{
		json_t *inv = NULL;

		rc = hec_cs_list(cs, 0, &inv);
		json_decref(inv);
		if (rc) {
			snprintf(why, whylen, "%s: cannot take the inventory: %s", path, strerror(-rc));
			goto err_obj;
		}
	}
	*out = cs;
	return 0;

err_obj:
	close(cs->objfd);
err_lock:
	close(cs->lockfd);
err_free:
	free(cs);
	return rc;
}

void hec_cs_close(struct hec_cs *cs)
{
	if (!cs)
		return;
	close(cs->objfd);
	close(cs->lockfd);
	free(cs);
}

/* The directory of (job[, epoch]) as an fd; @create makes it.
 * \return fd or -errno (-ENOENT when absent and not created). */
static int open_dir_at(int at, uint64_t n, int create)
{
	char name[24];
	int fd;

	snprintf(name, sizeof(name), "%" PRIu64, n);
	fd = openat(at, name, DIR_FLAGS);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd >= 0 ? fd : -errno;
	if (mkdirat(at, name, 0700) && errno != EEXIST)
		return -errno;
	fd = openat(at, name, DIR_FLAGS);
	return fd >= 0 ? fd : -errno;
}

static int open_epoch(struct hec_cs *cs, uint64_t job, uint64_t epoch, int create)
{
	int jfd, efd;

	if (job == 0 || epoch == 0)
		return -EINVAL;
	jfd = open_dir_at(cs->objfd, job, create);
	if (jfd < 0)
		return jfd;
	efd = open_dir_at(jfd, epoch, create);
	close(jfd);
	return efd;
}

/* Size of regular file @name in @dfd, or -errno (-ENOENT; a symlink: -ELOOP). */
static int64_t file_size_at(int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ELOOP;
	return (int64_t)st.st_size;
}

/* pwrite all of @len bytes at @off. */
static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t w = pwrite(fd, p, len, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

/*
 * Write @n buffers to a new temporary file in @dfd, fsync it, rename it to
 * @name and fsync the directory (manifests and tombstones).  On any failure
 * the temporary file is removed and @name is untouched.
 */
static int write_replace(int dfd, const char *name, const struct iovec *iov, int n)
{
	char tmp[128], rnd[9];
	off_t off = 0;
	int fd, rc;

	rc = hec_random_hex(rnd, 4);
	if (rc)
		return rc;
	hec_fmt(tmp, sizeof(tmp), TMP_PREFIX "%s.%s", name, rnd);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		rc = pwrite_all(fd, iov[i].iov_base, iov[i].iov_len, off);
		if (rc)
			goto err_tmp;
		off += (off_t)iov[i].iov_len;
	}
	if (fsync(fd)) {
		rc = -errno;
		goto err_tmp;
	}
	/* close() may report a deferred write error (NFS, quota). */
	if (close(fd)) {
		fd = -1;
		rc = -errno;
		goto err_tmp;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, name)) {
		rc = -errno;
		goto err_tmp;
	}
	if (fsync(dfd))
		return -errno;
	return 0;

err_tmp:
	if (fd >= 0)
		close(fd);
	unlinkat(dfd, tmp, 0);
	return rc;
}

/* ---- chunks ---- */

/*
 * A chunk file is its data, then the 64-byte header as a trailer ("hecchnk2"):
 * the data starts at offset 0, so whole 4 KiB blocks of it move by direct I/O
 * between the disk and the caller's (aligned) buffer, with no page-cache copy.
 * Files of the first format ("hecchnk1": the header first) are still read.
 * Both are 64 + len bytes long, so a chunk's length is its file's size less 64
 * whatever the format (the inventory needs no read).
 */
#define DIO_ALIGN 4096u
#define TAIL_MAX (2 * DIO_ALIGN) /* the last partial block and the trailer */

static int aligned(const void *p, size_t n)
{
	return ((uintptr_t)p % DIO_ALIGN) == 0 && n % DIO_ALIGN == 0;
}

static void io_reset(struct hec_cs_io *io)
{
	memset(io, 0, sizeof(*io));
	io->fd = io->efd = -1;
}

/* Close what @io holds; a put's temporary file is removed. */
static void io_close(struct hec_cs_io *io)
{
	if (io->fd >= 0)
		close(io->fd);
	if (io->efd >= 0 && io->tmp[0])
		unlinkat(io->efd, io->tmp, 0);
	if (io->efd >= 0)
		close(io->efd);
	free(io->tail);
	io_reset(io);
}

int hec_cs_put_start(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t idx, const void *data, size_t len, uint64_t hash, int direct,
		     struct hec_cs_io *io)
{
	uint8_t tail[TAIL_MAX];
	size_t whole, rest;
	char rnd[9];
	int rc;

	io_reset(io);
	if (!hec_name_ok(part))
		return -EINVAL;
	if (hec_cs_hash(data, len) != hash)
		return -EBADMSG;
	io->efd = open_epoch(cs, job, epoch, 1);
	if (io->efd < 0) {
		rc = io->efd;
		io->efd = -1;
		return rc;
	}
	if (file_size_at(io->efd, DELETED) >= 0) {
		rc = -ESTALE;
		goto err;
	}
	hec_fmt(io->name, sizeof(io->name), "%s.%" PRIu64, part, idx);
	rc = hec_random_hex(rnd, 4);
	if (rc)
		goto err;
	hec_fmt(io->tmp, sizeof(io->tmp), TMP_PREFIX "%s.%s", io->name, rnd);
	io->fd = openat(io->efd, io->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			0600);
	if (io->fd < 0) {
		rc = -errno;
		io->tmp[0] = 0; /* not ours to remove */
		goto err;
	}
	/* The rest of the data and the trailer first, through the cache: the
	 * file has its size before the blocks come, and a direct write into
	 * allocated space within the size is not held up (ext4 completes a
	 * direct write that extends the file or fills a hole synchronously). */
	whole = len & ~(size_t)(DIO_ALIGN - 1);
	rest = len - whole;
	memcpy(tail, (const uint8_t *)data + whole, rest);
	make_header(tail + rest, MAGIC2, job, epoch, part, idx, len, hash);
	rc = pwrite_all(io->fd, tail, rest + HEC_CS_HDR_LEN, (off_t)whole);
	if (rc)
		goto err;
	/* then the whole blocks by direct I/O, when the buffer suits it and
	 * the file system takes it (not every one does: then through the
	 * cache) */
	if (direct && whole && aligned(data, whole) && fcntl(io->fd, F_SETFL, O_DIRECT) == 0) {
		io->direct = 1;
		(void)fallocate(io->fd, 0, 0, (off_t)whole); /* a hint: unsupported is fine */
	}
	io->put = 1;
	io->job = job;
	io->epoch = epoch;
	io->len = len;
	io->iov[0].iov_base = (void *)data;
	io->iov[0].iov_len = whole;
	io->iovcnt = whole ? 1 : 0;
	io->bytes = whole;
	return 0;
err:
	io_close(io);
	return rc;
}

int hec_cs_put_finish(struct hec_cs *cs, struct hec_cs_io *io, ssize_t res)
{
	int64_t old;
	int rc;

	if (!io->put)
		return -EINVAL;
	if (res < 0) {
		rc = (int)res;
		goto err;
	}
	if ((size_t)res != io->bytes) {
		rc = -EIO;
		goto err;
	}
	/* Unsynced: start writeback of what went through the cache, without
	 * waiting, so the commit's syncfs finds little left.  Only a hint. */
	(void)sync_file_range(io->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	/* close() may report a deferred write error (NFS, quota). */
	rc = close(io->fd) ? -errno : 0;
	io->fd = -1;
	if (rc)
		goto err;
	/* deleted while the data was on its way: a tombstone is final */
	if (file_size_at(io->efd, DELETED) >= 0) {
		rc = -ESTALE;
		goto err;
	}
	old = file_size_at(io->efd, io->name);
	if (renameat(io->efd, io->tmp, io->efd, io->name)) {
		rc = -errno;
		goto err;
	}
	io->tmp[0] = 0;
	if (file_size_at(io->efd, MANIFEST) >= 0)
		cs->repaired++;
	if (old >= 0) {
		cs->used -= (uint64_t)old;
		cs->chunks--;
	}
	cs->used += HEC_CS_HDR_LEN + io->len;
	cs->chunks++;
	io_close(io);
	return 0;
err:
	io_close(io);
	return rc;
}

ssize_t hec_cs_io_run(struct hec_cs_io *io, size_t done)
{
	/* a read ends at the end of the file (a direct one asks for whole
	 * blocks past it) */
	size_t end = io->put ? io->bytes : io->size;

	while (done < end) {
		struct iovec iov[2];
		size_t skip = done;
		int n = 0;
		ssize_t r;

		for (int i = 0; i < io->iovcnt; i++) {
			if (skip >= io->iov[i].iov_len) {
				skip -= io->iov[i].iov_len;
				continue;
			}
			iov[n].iov_base = (uint8_t *)io->iov[i].iov_base + skip;
			iov[n++].iov_len = io->iov[i].iov_len - skip;
			skip = 0;
		}
		r = io->put ? pwritev(io->fd, iov, n, (off_t)done) : preadv(io->fd, iov, n, (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break; /* the file shrank under a read */
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int hec_cs_put(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part, uint64_t idx,
	       const void *data, size_t len, uint64_t hash)
{
	struct hec_cs_io io;
	int rc = hec_cs_put_start(cs, job, epoch, part, idx, data, len, hash, 1, &io);

	return rc ? rc : hec_cs_put_finish(cs, &io, hec_cs_io_run(&io, 0));
}

int hec_cs_get_start(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t idx, void *buf, size_t cap, int direct, struct hec_cs_io *io,
		     size_t *len)
{
	struct stat st;
	size_t dlen, whole;
	int rc;

	io_reset(io);
	if (!hec_name_ok(part))
		return -EINVAL;
	io->efd = open_epoch(cs, job, epoch, 0);
	if (io->efd < 0) {
		rc = io->efd;
		io->efd = -1;
		return rc;
	}
	hec_fmt(io->name, sizeof(io->name), "%s.%" PRIu64, part, idx);
	io->direct = direct && aligned(buf, 0);
	io->fd = openat(io->efd, io->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (io->fd < 0 && direct && errno == EINVAL) {
		io->direct = 0;
		io->fd = openat(io->efd, io->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (io->fd < 0) {
		rc = -errno;
		goto err;
	}
	if (fstat(io->fd, &st)) {
		rc = -errno;
		goto err;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -ELOOP;
		goto err;
	}
	if ((size_t)st.st_size < HEC_CS_HDR_LEN) {
		cs->corrupt++;
		rc = -EUCLEAN;
		goto err;
	}
	dlen = (size_t)st.st_size - HEC_CS_HDR_LEN;
	if (dlen > cap) {
		*len = dlen;
		rc = -EMSGSIZE;
		goto err;
	}
	/* whole blocks straight into @buf, the rest (a partial block of data
	 * and the 64-byte header) into an aligned bounce buffer */
	whole = dlen & ~(size_t)(DIO_ALIGN - 1);
	if (posix_memalign((void **)&io->tail, DIO_ALIGN, TAIL_MAX)) {
		io->tail = NULL;
		rc = -ENOMEM;
		goto err;
	}
	io->job = job;
	io->epoch = epoch;
	io->idx = idx;
	io->len = dlen;
	io->buf = buf;
	io->whole = whole;
	io->iov[0].iov_base = buf;
	io->iov[0].iov_len = whole;
	io->iov[1].iov_base = io->tail;
	io->iov[1].iov_len = io->direct ? TAIL_MAX : (size_t)st.st_size - whole;
	io->iovcnt = 2;
	io->bytes = whole + io->iov[1].iov_len;
	io->size = (size_t)st.st_size;
	hec_fmt(io->part, sizeof(io->part), "%s", part);
	return 0;
err:
	io_close(io);
	return rc;
}

/* Does the 64 bytes at @h head chunk @io (format @magic, data hash in *@hash)? */
static int header_ok(const uint8_t *h, const char *magic, const struct hec_cs_io *io,
		     uint64_t *hash)
{
	uint8_t want[HEC_CS_HDR_LEN];

	*hash = get_le64(h + 40);
	make_header(want, magic, io->job, io->epoch, io->part, io->idx, io->len, *hash);
	return !memcmp(h, want, sizeof(want));
}

int hec_cs_get_finish(struct hec_cs *cs, struct hec_cs_io *io, ssize_t res, size_t *len,
		      uint64_t *hash)
{
	uint8_t *buf = io->buf;
	size_t tl;
	uint64_t h;
	int rc;

	if (io->put || !io->buf)
		return -EINVAL;
	if (res < 0) {
		rc = (int)res;
		goto out;
	}
	if ((size_t)res != io->size) {
		rc = -EUCLEAN; /* shrank or grew under us */
		cs->corrupt++;
		goto out;
	}
	tl = io->size - io->whole; /* bytes in the bounce buffer */
	if (header_ok(io->tail + tl - HEC_CS_HDR_LEN, MAGIC2, io, &h)) {
		memcpy(buf + io->whole, io->tail, tl - HEC_CS_HDR_LEN);
	} else if (io->whole >= HEC_CS_HDR_LEN && header_ok(buf, MAGIC1, io, &h)) {
		/* the first format: header first */
		memmove(buf, buf + HEC_CS_HDR_LEN, io->whole - HEC_CS_HDR_LEN);
		memcpy(buf + io->whole - HEC_CS_HDR_LEN, io->tail, tl);
	} else if (io->whole == 0 && header_ok(io->tail, MAGIC1, io, &h)) {
		memcpy(buf, io->tail + HEC_CS_HDR_LEN, io->len);
	} else {
		rc = -EUCLEAN;
		cs->corrupt++;
		goto out;
	}
	if (hec_cs_hash(buf, io->len) != h) {
		rc = -EUCLEAN;
		cs->corrupt++;
		goto out;
	}
	*len = io->len;
	*hash = h;
	rc = 0;
out:
	io_close(io);
	return rc;
}

int hec_cs_get(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part, uint64_t idx,
	       void *buf, size_t cap, size_t *len, uint64_t *hash)
{
	struct hec_cs_io io;
	int rc = hec_cs_get_start(cs, job, epoch, part, idx, buf, cap, 0, &io, len);

	return rc ? rc : hec_cs_get_finish(cs, &io, hec_cs_io_run(&io, 0), len, hash);
}

void hec_cs_io_cancel(struct hec_cs_io *io)
{
	io_close(io);
}

/* Read all of regular file @name in @dfd (not following a symlink) at most
 * @cap bytes into @buf after skipping @skip bytes; *@size: the file's size. */
static int read_at(int dfd, const char *name, uint8_t *hdr, size_t hlen, void *buf, size_t cap,
		   size_t *size)
{
	struct stat st;
	size_t want, got = 0;
	int fd, rc = 0;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -ELOOP;
		goto out;
	}
	*size = (size_t)st.st_size;
	if ((size_t)st.st_size < hlen) {
		rc = -EUCLEAN;
		goto out;
	}
	if ((size_t)st.st_size - hlen > cap) {
		rc = -EMSGSIZE;
		goto out;
	}
	want = (size_t)st.st_size;
	while (got < want) {
		ssize_t r;

		if (got < hlen)
			r = pread(fd, hdr + got, hlen - got, (off_t)got);
		else
			r = pread(fd, (uint8_t *)buf + (got - hlen), want - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EUCLEAN; /* shrank under us */
			goto out;
		}
		got += (size_t)r;
	}
out:
	close(fd);
	return rc;
}

void hec_cs_prefetch(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t from, uint64_t to)
{
	char name[HEC_NAME_MAX + 24];
	int efd, fd;

	if (!hec_name_ok(part))
		return;
	efd = open_epoch(cs, job, epoch, 0);
	if (efd < 0)
		return;
	for (uint64_t idx = from; idx <= to && idx >= from; idx++) {
		hec_fmt(name, sizeof(name), "%s.%" PRIu64, part, idx);
		fd = openat(efd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
		close(fd);
	}
	close(efd);
}

/* ---- manifests ---- */

int hec_cs_commit(struct hec_cs *cs, uint64_t job, uint64_t epoch, const void *manifest,
		  size_t len)
{
	struct iovec iov = { (void *)manifest, len };
	int64_t old;
	int efd, rc;

	efd = open_epoch(cs, job, epoch, 1);
	if (efd < 0)
		return efd;
	if (file_size_at(efd, DELETED) >= 0) {
		rc = -ESTALE;
		goto out;
	}
	/* Chunks are written unsynced; one syncfs makes them (and the directory
	 * entries) durable before the manifest can name them. */
	if (syncfs(efd)) {
		rc = -errno;
		goto out;
	}
	old = file_size_at(efd, MANIFEST);
	rc = write_replace(efd, MANIFEST, &iov, 1);
	if (rc)
		goto out;
	if (old >= 0) {
		cs->used -= (uint64_t)old;
		cs->manifests--;
	}
	cs->used += len;
	cs->manifests++;
out:
	close(efd);
	return rc;
}

/* The newest epoch of @job below @before (0: any) with a MANIFEST and no
 * tombstone; \return 0 or -ENOENT. */
static int newest_committed(struct hec_cs *cs, uint64_t job, uint64_t before, uint64_t *epoch)
{
	struct dirent *de;
	uint64_t best = 0, e;
	DIR *d;
	int jfd;

	jfd = open_dir_at(cs->objfd, job, 0);
	if (jfd < 0)
		return jfd == -ENOTDIR || jfd == -ELOOP ? -ENOENT : jfd;
	d = fdopendir(jfd);
	if (!d) {
		close(jfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		char path[64];

		if (parse_num(de->d_name, &e) || e <= best || (before && e >= before))
			continue;
		hec_fmt(path, sizeof(path), "%s/" DELETED, de->d_name);
		if (file_size_at(dirfd(d), path) >= 0)
			continue;
		hec_fmt(path, sizeof(path), "%s/" MANIFEST, de->d_name);
		/* AT_SYMLINK_NOFOLLOW covers only the last component: check the
		 * epoch entry is a real directory too. */
		if (file_size_at(dirfd(d), path) >= 0) {
			struct stat st;

			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode))
				best = e;
		}
	}
	closedir(d);
	if (!best)
		return -ENOENT;
	*epoch = best;
	return 0;
}

int hec_cs_manifest_before(struct hec_cs *cs, uint64_t job, uint64_t before, uint64_t *epoch,
			   void *buf, size_t cap, size_t *len)
{
	size_t size = 0;
	int efd, rc;

	if (job == 0)
		return -EINVAL;
	if (*epoch == 0) {
		rc = newest_committed(cs, job, before, epoch);
		if (rc)
			return rc;
	}
	efd = open_epoch(cs, job, *epoch, 0);
	if (efd < 0)
		return efd == -ENOTDIR || efd == -ELOOP ? -ENOENT : efd;
	if (file_size_at(efd, DELETED) >= 0) {
		close(efd);
		return -ESTALE;
	}
	rc = read_at(efd, MANIFEST, NULL, 0, buf, cap, &size);
	close(efd);
	*len = size;
	return rc == -ELOOP ? -ENOENT : rc;
}

int hec_cs_manifest(struct hec_cs *cs, uint64_t job, uint64_t *epoch, void *buf, size_t cap,
		    size_t *len)
{
	return hec_cs_manifest_before(cs, job, 0, epoch, buf, cap, len);
}

/* ---- removal ---- */

struct rm_stats {
	uint64_t bytes, chunks, manifests, temps;
};

/* Unlink every entry of epoch directory @efd but its tombstone if @keep_tomb
 * (no recursion: nothing we write there is a directory; a planted one makes
 * the rmdir fail). */
static int empty_epoch(int efd, struct rm_stats *rs, int keep_tomb)
{
	struct dirent *de;
	DIR *d = opendir_at(efd);
	int rc = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char part[HEC_NAME_MAX + 1];
		struct stat st;
		uint64_t idx;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(efd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (S_ISDIR(st.st_mode) || (keep_tomb && !strcmp(de->d_name, DELETED)))
			continue;
		if (unlinkat(efd, de->d_name, 0)) {
			rc = -errno;
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		if (!strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX))) {
			rs->temps++;
		} else if (!strcmp(de->d_name, MANIFEST)) {
			rs->manifests++;
			rs->bytes += (uint64_t)st.st_size;
		} else if (!parse_chunk_name(de->d_name, part, &idx)) {
			rs->chunks++;
			rs->bytes += (uint64_t)st.st_size;
		}
	}
	closedir(d);
	return rc;
}

static void account_removed(struct hec_cs *cs, const struct rm_stats *rs)
{
	cs->used -= rs->bytes > cs->used ? cs->used : rs->bytes;
	cs->chunks -= rs->chunks > cs->chunks ? cs->chunks : rs->chunks;
	cs->manifests -= rs->manifests > cs->manifests ? cs->manifests : rs->manifests;
}

/* Remove the (emptied) epoch directory and the job's if it is empty now. */
static void remove_dirs(struct hec_cs *cs, uint64_t job, uint64_t epoch)
{
	char name[24];
	int jfd = open_dir_at(cs->objfd, job, 0);

	if (jfd < 0)
		return;
	snprintf(name, sizeof(name), "%" PRIu64, epoch);
	unlinkat(jfd, name, AT_REMOVEDIR);
	close(jfd);
	snprintf(name, sizeof(name), "%" PRIu64, job);
	unlinkat(cs->objfd, name, AT_REMOVEDIR); /* ENOTEMPTY: other epochs */
}

int hec_cs_abort(struct hec_cs *cs, uint64_t job, uint64_t epoch)
{
	struct rm_stats rs = { 0 };
	int efd, rc;

	efd = open_epoch(cs, job, epoch, 0);
	if (efd < 0)
		return efd == -ENOTDIR || efd == -ELOOP ? -ENOENT : efd;
	if (file_size_at(efd, DELETED) >= 0) {
		/* deleted already: what a crash left beside the tombstone goes */
		rc = empty_epoch(efd, &rs, 1);
		close(efd);
		account_removed(cs, &rs);
		return rc ? rc : -ENOENT;
	}
	if (file_size_at(efd, MANIFEST) >= 0) {
		close(efd);
		return -EEXIST;
	}
	rc = empty_epoch(efd, &rs, 0);
	close(efd);
	account_removed(cs, &rs);
	remove_dirs(cs, job, epoch);
	return rc;
}

int hec_cs_delete(struct hec_cs *cs, uint64_t job, uint64_t epoch)
{
	struct rm_stats rs = { 0 };
	struct iovec iov;
	char text[128];
	int efd, rc;

	efd = open_epoch(cs, job, epoch, 1);
	if (efd < 0)
		return efd;
	/* The tombstone first, synced: from its rename on the epoch is deleted
	 * whatever is still beside it (a crash before the rest is removed leaves
	 * files that abort or GC remove and nobody reads). */
	if (file_size_at(efd, DELETED) < 0) {
		iov.iov_base = text;
		iov.iov_len = (size_t)snprintf(text, sizeof(text),
					       "{\"job\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"time\":%lld}\n",
					       job, epoch, (long long)time(NULL));
		rc = write_replace(efd, DELETED, &iov, 1);
		if (rc) {
			close(efd);
			return rc;
		}
	}
	rc = empty_epoch(efd, &rs, 1);
	close(efd);
	account_removed(cs, &rs);
	return rc;
}

/* ---- walking the tree: inventory and GC ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The numeric subdirectories of @dfd, sorted (*@out malloc'ed). */
static int list_nums(int dfd, uint64_t **out, size_t *n)
{
	struct dirent *de;
	uint64_t *v = NULL, x;
	size_t cnt = 0, cap = 0;
	DIR *d = opendir_at(dfd);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st;

		if (parse_num(de->d_name, &x) ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode))
			continue;
		if (cnt == cap) {
			uint64_t *nv = realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[cnt++] = x;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_u64);
	*out = v;
	*n = cnt;
	return 0;
}

struct chunk_ent {
	char part[HEC_NAME_MAX + 1];
	uint64_t idx, len;
};

static int cmp_chunk(const void *a, const void *b)
{
	const struct chunk_ent *x = a, *y = b;
	int c = strcmp(x->part, y->part);

	return c ? c : x->idx < y->idx ? -1 : x->idx > y->idx;
}

struct epoch_scan {
	int committed;
	int deleted;            /* a tombstone: committed or not, it is gone */
	uint64_t manifest_bytes;
	struct chunk_ent *chunks;
	size_t nchunks;
	size_t temps;
	time_t newest; /* newest mtime of the directory and its entries */
};

static int scan_epoch(int efd, struct epoch_scan *es)
{
	struct dirent *de;
	size_t cap = 0;
	struct stat st;
	DIR *d;

	memset(es, 0, sizeof(*es));
	if (fstat(efd, &st) == 0)
		es->newest = st.st_mtime;
	d = opendir_at(efd);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct chunk_ent ce;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(efd, de->d_name, &st, AT_SYMLINK_NOFOLLOW))
			continue;
		if (st.st_mtime > es->newest)
			es->newest = st.st_mtime;
		if (!S_ISREG(st.st_mode))
			continue;
		if (!strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX))) {
			es->temps++;
			continue;
		}
		if (!strcmp(de->d_name, DELETED)) {
			es->deleted = 1;
			continue;
		}
		if (!strcmp(de->d_name, MANIFEST)) {
			es->committed = 1;
			es->manifest_bytes = (uint64_t)st.st_size;
			continue;
		}
		if (parse_chunk_name(de->d_name, ce.part, &ce.idx) || st.st_size < HEC_CS_HDR_LEN)
			continue;
		ce.len = (uint64_t)st.st_size - HEC_CS_HDR_LEN;
		if (es->nchunks == cap) {
			struct chunk_ent *nc = realloc(es->chunks,
						       (cap ? cap * 2 : 16) * sizeof(*nc));

			if (!nc) {
				closedir(d);
				return -ENOMEM;
			}
			es->chunks = nc;
			cap = cap ? cap * 2 : 16;
		}
		es->chunks[es->nchunks++] = ce;
	}
	closedir(d);
	if (es->nchunks)
		qsort(es->chunks, es->nchunks, sizeof(*es->chunks), cmp_chunk);
	return 0;
}

/* Call @fn for every (job, epoch) directory, job @only or all (0). */
typedef int (*epoch_fn)(struct hec_cs *cs, uint64_t job, uint64_t epoch, int efd, void *arg);

static int walk(struct hec_cs *cs, uint64_t only, epoch_fn fn, void *arg)
{
	uint64_t *jobs = NULL, one = only;
	size_t njobs = 0;
	int rc = 0;

	if (only) {
		jobs = &one;
		njobs = 1;
	} else {
		rc = list_nums(cs->objfd, &jobs, &njobs);
		if (rc)
			return rc;
	}
	for (size_t j = 0; j < njobs && !rc; j++) {
		uint64_t *epochs = NULL;
		size_t nep = 0;
		int jfd = open_dir_at(cs->objfd, jobs[j], 0);

		if (jfd < 0)
			continue; /* gone meanwhile, or not a directory */
		rc = list_nums(jfd, &epochs, &nep);
		for (size_t e = 0; e < nep && !rc; e++) {
			int efd = open_dir_at(jfd, epochs[e], 0);

			if (efd < 0)
				continue;
			rc = fn(cs, jobs[j], epochs[e], efd, arg);
			close(efd);
		}
		free(epochs);
		close(jfd);
	}
	if (!only)
		free(jobs);
	return rc;
}

struct list_ctx {
	json_t *epochs;
	uint64_t used, chunks, manifests;
};

static int list_one(struct hec_cs *cs, uint64_t job, uint64_t epoch, int efd, void *arg)
{
	struct list_ctx *lc = arg;
	struct epoch_scan es;
	json_t *chunks, *e;
	int rc;

	(void)cs;
	rc = scan_epoch(efd, &es);
	if (rc)
		goto out;
	chunks = json_array();
	e = json_pack("{s:I, s:I, s:b, s:b, s:o}", "job", (json_int_t)job,
		      "epoch", (json_int_t)epoch, "committed", es.committed && !es.deleted,
		      "deleted", es.deleted, "chunks", chunks);
	if (!e || json_array_append_new(lc->epochs, e)) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < es.nchunks; i++) {
		json_t *c = json_pack("{s:s, s:I, s:I}", "part", es.chunks[i].part,
				      "idx", (json_int_t)es.chunks[i].idx,
				      "len", (json_int_t)es.chunks[i].len);

		if (!c || json_array_append_new(chunks, c)) {
			rc = -ENOMEM;
			goto out;
		}
		lc->used += es.chunks[i].len + HEC_CS_HDR_LEN;
	}
	lc->chunks += es.nchunks;
	lc->manifests += (uint64_t)es.committed;
	lc->used += es.manifest_bytes;
out:
	free(es.chunks);
	return rc;
}

int hec_cs_list(struct hec_cs *cs, uint64_t job, json_t **out)
{
	struct list_ctx lc = { .epochs = json_array() };
	int rc;

	if (!lc.epochs)
		return -ENOMEM;
	rc = walk(cs, job, list_one, &lc);
	if (!rc)
		*out = json_pack("{s:o}", "epochs", lc.epochs);
	else
		json_decref(lc.epochs);
	if (!rc && !*out)
		rc = -ENOMEM;
	/* A whole inventory recounts what we hold (a partial one cannot). */
	if (!rc && !job) {
		cs->used = lc.used;
		cs->chunks = lc.chunks;
		cs->manifests = lc.manifests;
	}
	return rc;
}

int hec_cs_status(struct hec_cs *cs, struct hec_cs_status *st)
{
	struct statvfs sv;

	if (fstatvfs(cs->objfd, &sv))
		return -errno;
	st->total = (uint64_t)sv.f_blocks * sv.f_frsize;
	st->free = (uint64_t)sv.f_bavail * sv.f_frsize;
	st->used = cs->used;
	st->chunks = cs->chunks;
	st->manifests = cs->manifests;
	st->corrupt = cs->corrupt;
	st->repaired = cs->repaired;
	return 0;
}

struct gc_ctx {
	time_t cutoff;
	hec_cs_busy_fn busy;
	void *arg;
	struct hec_cs_gc_stats st;
};

static int remove_temps(int efd, uint64_t *count)
{
	struct dirent *de;
	DIR *d = opendir_at(efd);

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) &&
		    unlinkat(efd, de->d_name, 0) == 0)
			(*count)++;
	closedir(d);
	return 0;
}

static int gc_one(struct hec_cs *cs, uint64_t job, uint64_t epoch, int efd, void *arg)
{
	struct gc_ctx *g = arg;
	struct epoch_scan es;
	int rc;

	rc = scan_epoch(efd, &es);
	free(es.chunks);
	if (rc)
		return rc;
	/* Writes are synchronous in our one thread: a temporary file that
	 * exists between calls is a leftover of a crash or a failed write. */
	if (es.temps)
		remove_temps(efd, &g->st.temps);
	if (es.deleted) {
		/* the tombstone stays (doc/storage.md); what a crash left beside it goes */
		if (es.nchunks || es.committed) {
			struct rm_stats rs = { 0 };

			empty_epoch(efd, &rs, 1);
			account_removed(cs, &rs);
		}
		return 0;
	}
	if (es.committed || es.newest > g->cutoff || (g->busy && g->busy(g->arg, job, epoch)))
		return 0;
	{
		struct rm_stats rs = { 0 };

		empty_epoch(efd, &rs, 0);
		account_removed(cs, &rs);
		g->st.temps += rs.temps;
		remove_dirs(cs, job, epoch);
		g->st.epochs++;
	}
	return 0;
}

int hec_cs_gc(struct hec_cs *cs, long grace_s, hec_cs_busy_fn busy, void *arg,
	      struct hec_cs_gc_stats *st)
{
	struct gc_ctx g = { .cutoff = time(NULL) - grace_s, .busy = busy, .arg = arg };
	int rc = walk(cs, 0, gc_one, &g);

	if (st)
		*st = g.st;
	return rc;
}
