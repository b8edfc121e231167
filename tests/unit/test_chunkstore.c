/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: the storage server's chunk store (rdma/chunkstore.c). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "rdma/chunkstore.h"
#include "tests/unit/cunit_main.h"

static char base[256];
static int skipped_enospc;

/* A fresh store directory per test, under one mkdtemp for the program. */
static struct hec_cs *fresh(char *dir, size_t len, const char *name)
{
	struct hec_cs *cs = NULL;
	char why[256] = "";

	snprintf(dir, len, "%s/%s", base, name);
	CU_ASSERT_EQUAL_FATAL(hec_cs_open(dir, &cs, why, sizeof(why)), 0);
	return cs;
}

static void rm_rf(const char *path)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
}

static int exists(const char *dir, const char *rel)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

static int count_temps(const char *dir, const char *rel)
{
	char cmd[600];
	FILE *f;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s/%s' | grep -c '^\\.tmp\\.'", dir, rel);
	f = popen(cmd, "r");
	if (f) {
		if (fscanf(f, "%d", &n) != 1)
			n = -1;
		pclose(f);
	}
	return n;
}

static int put_str(struct hec_cs *cs, uint64_t job, uint64_t epoch, const char *part,
		   uint64_t idx, const char *s)
{
	return hec_cs_put(cs, job, epoch, part, idx, s, strlen(s), hec_cs_hash(s, strlen(s)));
}

static void test_hash_hex(void)
{
	char hex[HEC_HASH_HEX];
	uint64_t h = hec_cs_hash("abc", 3), back = 0;

	hec_hash_hex(h, hex);
	CU_ASSERT_EQUAL(strlen(hex), 16);
	CU_ASSERT_EQUAL(hec_hash_parse(hex, &back), 0);
	CU_ASSERT_EQUAL(back, h);
	CU_ASSERT_EQUAL(hec_hash_parse("xyz", &back), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse("", &back), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse("00000000000000001", &back), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse("000000000000000A", &back), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse("0", &back), -EINVAL);
	CU_ASSERT_NOT_EQUAL(hec_cs_hash("abd", 3), h);
}

static void test_roundtrip(void)
{
	char dir[300], buf[4096];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "roundtrip");
	struct hec_cs_status st;
	static char big[100000];
	size_t len = 0;
	uint64_t hash = 0;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	CU_ASSERT_EQUAL(put_str(cs, 3, 1, "node0", 0, "hello"), 0);
	CU_ASSERT_EQUAL(hec_cs_put(cs, 3, 1, "node0", 1, big, sizeof(big),
				   hec_cs_hash(big, sizeof(big))), 0);
	CU_ASSERT(exists(dir, "objects/3/1/node0.0"));
	CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 1, "node0", 0, buf, sizeof(buf), &len, &hash), 0);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT(memcmp(buf, "hello", 5) == 0);
	CU_ASSERT_EQUAL(hash, hec_cs_hash("hello", 5));
	/* too small a buffer: the size needed */
	CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 1, "node0", 1, buf, sizeof(buf), &len, &hash), -EMSGSIZE);
	CU_ASSERT_EQUAL(len, sizeof(big));
	{
		char *b2 = malloc(sizeof(big));

		CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 1, "node0", 1, b2, sizeof(big), &len, &hash), 0);
		CU_ASSERT_EQUAL(len, sizeof(big));
		CU_ASSERT(memcmp(b2, big, sizeof(big)) == 0);
		free(b2);
	}
	/* an empty chunk is a chunk */
	CU_ASSERT_EQUAL(put_str(cs, 3, 1, "e", 0, ""), 0);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 1, "e", 0, buf, sizeof(buf), &len, &hash), 0);
	CU_ASSERT_EQUAL(len, 0);
	/* replace */
	CU_ASSERT_EQUAL(put_str(cs, 3, 1, "node0", 0, "bye"), 0);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 1, "node0", 0, buf, sizeof(buf), &len, &hash), 0);
	CU_ASSERT_EQUAL(len, 3);
	CU_ASSERT(memcmp(buf, "bye", 3) == 0);
	CU_ASSERT_EQUAL(count_temps(dir, "objects/3/1"), 0);
	/* missing */
	CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 1, "node0", 9, buf, sizeof(buf), &len, &hash), -ENOENT);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 3, 2, "node0", 0, buf, sizeof(buf), &len, &hash), -ENOENT);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 4, 1, "node0", 0, buf, sizeof(buf), &len, &hash), -ENOENT);
	/* a hash that does not match the data */
	CU_ASSERT_EQUAL(hec_cs_put(cs, 3, 1, "x", 0, "abc", 3, hec_cs_hash("abd", 3)), -EBADMSG);
	CU_ASSERT(!exists(dir, "objects/3/1/x.0"));
	CU_ASSERT_EQUAL(hec_cs_put(cs, 0, 1, "x", 0, "abc", 3, hec_cs_hash("abc", 3)), -EINVAL);
	CU_ASSERT_EQUAL(hec_cs_put(cs, 1, 0, "x", 0, "abc", 3, hec_cs_hash("abc", 3)), -EINVAL);

	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.chunks, 3);
	CU_ASSERT_EQUAL(st.manifests, 0);
	CU_ASSERT_EQUAL(st.used, 3 * HEC_CS_HDR_LEN + 3 + sizeof(big));
	CU_ASSERT(st.total > 0 && st.free > 0 && st.free <= st.total);
	hec_cs_close(cs);

	/* reopening recounts from the files */
	cs = fresh(dir, sizeof(dir), "roundtrip");
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.chunks, 3);
	CU_ASSERT_EQUAL(st.used, 3 * HEC_CS_HDR_LEN + 3 + sizeof(big));
	hec_cs_close(cs);
}

static void test_lock(void)
{
	char dir[300], why[256] = "";
	struct hec_cs *cs = fresh(dir, sizeof(dir), "lock"), *cs2 = NULL;

	CU_ASSERT_EQUAL(hec_cs_open(dir, &cs2, why, sizeof(why)), -EBUSY);
	CU_ASSERT(strstr(why, "another hecstored") != NULL);
	hec_cs_close(cs);
	CU_ASSERT_EQUAL(hec_cs_open(dir, &cs2, why, sizeof(why)), 0);
	hec_cs_close(cs2);
}

/* Flip one byte at @off of @rel. */
static void flip(const char *dir, const char *rel, off_t off)
{
	char p[512];
	unsigned char c;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	fd = open(p, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	CU_ASSERT_EQUAL(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_corrupt(void)
{
	char dir[300], buf[256], p[512];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "corrupt");
	struct hec_cs_status st;
	size_t len;
	uint64_t hash;

	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "a", 0, "some data here"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "a", 1, "other data"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "a", 2, "third"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "a", 3, "fourth"), 0);
	flip(dir, "objects/1/1/a.0", 5);                   /* data */
	flip(dir, "objects/1/1/a.1", 10 + 9);              /* header (after the data): job */
	CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, "a", 0, buf, sizeof(buf), &len, &hash), -EUCLEAN);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, "a", 1, buf, sizeof(buf), &len, &hash), -EUCLEAN);
	/* truncated below a header */
	snprintf(p, sizeof(p), "%s/objects/1/1/a.2", dir);
	CU_ASSERT_EQUAL(truncate(p, 10), 0);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, "a", 2, buf, sizeof(buf), &len, &hash), -EUCLEAN);
	/* a chunk renamed to another index is caught by its header */
	{
		char q[512];

		snprintf(q, sizeof(q), "%s/objects/1/1/a.7", dir);
		snprintf(p, sizeof(p), "%s/objects/1/1/a.3", dir);
		CU_ASSERT_EQUAL(rename(p, q), 0);
		CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, "a", 7, buf, sizeof(buf), &len, &hash),
				-EUCLEAN);
	}
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.corrupt, 4);
	CU_ASSERT_EQUAL(st.repaired, 0);
	/* a good copy put again heals it; into a committed epoch it is a repair */
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 1, 1, "{}", 2), 0);
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "a", 0, "some data here"), 0);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, "a", 0, buf, sizeof(buf), &len, &hash), 0);
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.repaired, 1);
	hec_cs_close(cs);
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A chunk file of the first format ("hecchnk1": header, then data). */
static void write_v1(const char *dir, const char *rel, uint64_t job, uint64_t epoch,
		     const char *part, uint64_t idx, const void *data, size_t len)
{
	uint8_t h[HEC_CS_HDR_LEN];
	char p[1024];
	FILE *f;

	memcpy(h, "hecchnk1", 8);
	le64(h + 8, job);
	le64(h + 16, epoch);
	le64(h + 24, idx);
	le64(h + 32, len);
	le64(h + 40, hec_cs_hash(data, len));
	le64(h + 48, hec_cs_hash(part, strlen(part)));
	le64(h + 56, hec_cs_hash(h, 56));
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "w");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_EQUAL(fwrite(h, 1, sizeof(h), f), sizeof(h));
	CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
	CU_ASSERT_EQUAL(fclose(f), 0);
}

/* Files of both formats read back, by any buffer; the split (asynchronous)
 * put and get with a 4 KiB aligned buffer (direct I/O where the file
 * system has it); a put finishing into an epoch deleted meanwhile. */
static void test_formats(void)
{
	char dir[300], p[512];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "formats");
	const size_t sizes[] = { 0, 1, 100, 4096, 4096 * 3 + 17, (1 << 20) + 4032 };
	struct hec_cs_io io;
	uint8_t *data, *al = NULL;
	char *odd, rel[64];
	size_t len;
	uint64_t hash;
	struct stat st;

	data = malloc(2 << 20);
	odd = malloc((2 << 20) + 1);
	CU_ASSERT_FATAL(data && odd && posix_memalign((void **)&al, 4096, 2 << 20) == 0);
	for (size_t i = 0; i < (2 << 20); i++)
		data[i] = (uint8_t)(i * 13 + (i >> 12));
	CU_ASSERT_EQUAL_FATAL(put_str(cs, 5, 1, "x", 0, "make the epoch"), 0);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];

		/* the first format, written by an older server */
		snprintf(rel, sizeof(rel), "objects/5/1/old.%zu", k);
		write_v1(dir, rel, 5, 1, "old", k, data, n);
		memset(odd, 0, n + 1);
		CU_ASSERT_EQUAL(hec_cs_get(cs, 5, 1, "old", k, odd + 1, n, &len, &hash), 0);
		CU_ASSERT(len == n && memcmp(odd + 1, data, n) == 0);
		memset(al, 0, n);
		CU_ASSERT_EQUAL_FATAL(hec_cs_get_start(cs, 5, 1, "old", k, al, 2 << 20, 1, &io, &len), 0);
		CU_ASSERT_EQUAL(hec_cs_get_finish(cs, &io, hec_cs_io_run(&io, 0), &len, &hash), 0);
		CU_ASSERT(len == n && memcmp(al, data, n) == 0);
		CU_ASSERT_EQUAL(hash, hec_cs_hash(data, n));

		/* today's: from an aligned buffer in two halves, data first */
		memcpy(al, data, n);
		CU_ASSERT_EQUAL_FATAL(hec_cs_put_start(cs, 5, 1, "new", k, al, n, hec_cs_hash(data, n),
						       1, &io), 0);
		CU_ASSERT_EQUAL(hec_cs_put_finish(cs, &io, hec_cs_io_run(&io, 0)), 0);
		snprintf(p, sizeof(p), "%s/objects/5/1/new.%zu", dir, k);
		CU_ASSERT_EQUAL(stat(p, &st), 0);
		CU_ASSERT_EQUAL((size_t)st.st_size, n + HEC_CS_HDR_LEN);
		{
			FILE *f = fopen(p, "r");
			char magic[9] = "";

			CU_ASSERT_FATAL(f != NULL);
			CU_ASSERT_EQUAL(fseek(f, (long)n, SEEK_SET), 0);
			CU_ASSERT_EQUAL(fread(magic, 1, 8, f), 8);
			CU_ASSERT_STRING_EQUAL(magic, "hecchnk2");
			fclose(f);
		}
		memset(al, 0, n);
		CU_ASSERT_EQUAL_FATAL(hec_cs_get_start(cs, 5, 1, "new", k, al, 2 << 20, 1, &io, &len), 0);
		CU_ASSERT_EQUAL(hec_cs_get_finish(cs, &io, hec_cs_io_run(&io, 0), &len, &hash), 0);
		CU_ASSERT(len == n && memcmp(al, data, n) == 0);
		memset(odd, 0, n + 1);
		CU_ASSERT_EQUAL(hec_cs_get(cs, 5, 1, "new", k, odd + 1, n, &len, &hash), 0);
		CU_ASSERT(len == n && memcmp(odd + 1, data, n) == 0);
		/* too small a buffer: the size needed */
		if (n)
			CU_ASSERT_EQUAL(hec_cs_get(cs, 5, 1, "new", k, odd, n - 1, &len, &hash), -EMSGSIZE);
	}
	/* a cancelled put leaves nothing */
	CU_ASSERT_EQUAL_FATAL(hec_cs_put_start(cs, 5, 1, "gone", 0, al, 8192, hec_cs_hash(al, 8192), 1,
					       &io), 0);
	hec_cs_io_cancel(&io);
	CU_ASSERT(!exists(dir, "objects/5/1/gone.0"));
	CU_ASSERT_EQUAL(count_temps(dir, "objects/5/1"), 0);
	/* a failed transfer leaves nothing either, and the old copy */
	CU_ASSERT_EQUAL_FATAL(hec_cs_put_start(cs, 5, 1, "new", 1, al, 8192, hec_cs_hash(al, 8192), 1,
					       &io), 0);
	CU_ASSERT_EQUAL(hec_cs_put_finish(cs, &io, -EIO), -EIO);
	CU_ASSERT_EQUAL(count_temps(dir, "objects/5/1"), 0);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 5, 1, "new", 1, odd, 2 << 20, &len, &hash), 0);
	CU_ASSERT_EQUAL(len, 1);
	/* deleted while the data was on its way: refused, nothing left */
	CU_ASSERT_EQUAL_FATAL(hec_cs_put_start(cs, 5, 1, "late", 0, al, 8192, hec_cs_hash(al, 8192), 1,
					       &io), 0);
	CU_ASSERT_EQUAL(hec_cs_delete(cs, 5, 1), 0);
	CU_ASSERT_EQUAL(hec_cs_put_finish(cs, &io, hec_cs_io_run(&io, 0)), -ESTALE);
	CU_ASSERT(!exists(dir, "objects/5/1/late.0"));
	CU_ASSERT_EQUAL(count_temps(dir, "objects/5/1"), 0);
	free(data);
	free(odd);
	free(al);
	hec_cs_close(cs);
}

static void test_part_names(void)
{
	char dir[300], buf[64], long_name[80];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "names");
	size_t len;
	uint64_t hash;
	static const char *const bad[] = { "../x", ".hidden", "a/b", "", ".", "..", "a b",
					   "x\n", "é" };

	memset(long_name, 'a', 65);
	long_name[65] = 0;
	for (size_t i = 0; i < HEC_ARRAY_SIZE(bad); i++) {
		CU_ASSERT(!hec_name_ok(bad[i]));
		CU_ASSERT_EQUAL(put_str(cs, 1, 1, bad[i], 0, "x"), -EINVAL);
		CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, bad[i], 0, buf, sizeof(buf), &len, &hash),
				-EINVAL);
	}
	CU_ASSERT(!hec_name_ok(long_name));
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, long_name, 0, "x"), -EINVAL);
	long_name[64] = 0;
	CU_ASSERT(hec_name_ok(long_name));
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, long_name, 0, "x"), 0);
	CU_ASSERT(hec_name_ok("node-0_a.b"));
	CU_ASSERT(hec_name_ok("MANIFEST"));
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "MANIFEST", 0, "x"), 0);
	/* a part named MANIFEST is not the manifest */
	CU_ASSERT(!exists(dir, "objects/1/1/MANIFEST"));
	CU_ASSERT(!exists(base, "x.0") && !exists(dir, "x.0") && !exists(dir, "objects/1/x.0"));
	hec_cs_close(cs);
}

static void test_symlinks(void)
{
	char dir[300], out[300], p[600], buf[64];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "symlinks");
	size_t len;
	uint64_t hash;
	struct stat st;

	/* a job directory that points outside */
	snprintf(out, sizeof(out), "%s/outside", base);
	CU_ASSERT_EQUAL(mkdir(out, 0700), 0);
	snprintf(p, sizeof(p), "%s/objects/5", dir);
	CU_ASSERT_EQUAL(symlink(out, p), 0);
	CU_ASSERT(put_str(cs, 5, 1, "a", 0, "x") < 0);
	CU_ASSERT(!exists(out, "1"));
	{
		int rc = hec_cs_get(cs, 5, 1, "a", 0, buf, sizeof(buf), &len, &hash);

		CU_ASSERT(rc == -ELOOP || rc == -ENOTDIR);
	}

	/* a chunk that is a symlink to a file outside: not read, and a put
	 * replaces the link, not the file it points to */
	snprintf(p, sizeof(p), "%s/secret", out);
	CU_ASSERT_EQUAL(hec_create_file(p, "secret!", 7, 0600), 0);
	CU_ASSERT_EQUAL(put_str(cs, 6, 1, "a", 1, "y"), 0);
	snprintf(p, sizeof(p), "%s/objects/6/1/a.0", dir);
	{
		char target[400];

		snprintf(target, sizeof(target), "%s/secret", out);
		CU_ASSERT_EQUAL(symlink(target, p), 0);
	}
	CU_ASSERT(hec_cs_get(cs, 6, 1, "a", 0, buf, sizeof(buf), &len, &hash) < 0);
	CU_ASSERT_EQUAL(put_str(cs, 6, 1, "a", 0, "overwritten"), 0);
	CU_ASSERT_EQUAL(lstat(p, &st), 0);
	CU_ASSERT(S_ISREG(st.st_mode));
	snprintf(p, sizeof(p), "%s/secret", out);
	CU_ASSERT_EQUAL(hec_read_file(p, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "secret!");

	/* a MANIFEST symlink is not a committed manifest */
	snprintf(p, sizeof(p), "%s/objects/6/1/MANIFEST", dir);
	{
		char target[400];

		snprintf(target, sizeof(target), "%s/secret", out);
		CU_ASSERT_EQUAL(symlink(target, p), 0);
	}
	{
		uint64_t ep = 1;

		CU_ASSERT(hec_cs_manifest(cs, 6, &ep, buf, sizeof(buf), &len) < 0);
	}
	/* removing the epoch removes the link, not its target */
	CU_ASSERT_EQUAL(hec_cs_delete(cs, 6, 1), 0);
	CU_ASSERT(!exists(dir, "objects/6/1/MANIFEST") && !exists(dir, "objects/6/1/a.0"));
	CU_ASSERT(exists(dir, "objects/6/1/DELETED"));
	CU_ASSERT(exists(out, "secret"));
	/* the job symlink: delete does not go through it (nor write its
	 * tombstone there) */
	CU_ASSERT_EQUAL(mkdir(strcat(strcpy(p, out), "/1"), 0700), 0);
	{
		int rc = hec_cs_delete(cs, 5, 1);

		CU_ASSERT(rc == -ELOOP || rc == -ENOTDIR);
	}
	CU_ASSERT(exists(out, "1"));
	CU_ASSERT(!exists(out, "1/DELETED"));
	hec_cs_close(cs);
}

static void test_commit(void)
{
	char dir[300], buf[256];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "commit");
	struct hec_cs_status st;
	uint64_t ep = 0;
	size_t len = 0;

	CU_ASSERT_EQUAL(put_str(cs, 2, 10, "p", 0, "chunk"), 0);
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, sizeof(buf), &len), -ENOENT);
	ep = 10;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, sizeof(buf), &len), -ENOENT);
	CU_ASSERT(!exists(dir, "objects/2/10/MANIFEST"));
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 2, 10, "{\"e\":10}", 8), 0);
	CU_ASSERT(exists(dir, "objects/2/10/MANIFEST"));
	CU_ASSERT_EQUAL(count_temps(dir, "objects/2/10"), 0);
	ep = 10;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(len, 8);
	CU_ASSERT(memcmp(buf, "{\"e\":10}", 8) == 0);
	/* newest: 10 committed, 12 not, 9 committed, 11 committed */
	CU_ASSERT_EQUAL(put_str(cs, 2, 12, "p", 0, "chunk"), 0);
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 2, 9, "{\"e\":9}", 7), 0);
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(ep, 10);
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 2, 11, "{\"e\":11}", 8), 0);
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(ep, 11);
	CU_ASSERT(memcmp(buf, "{\"e\":11}", 8) == 0);
	/* too small a buffer */
	ep = 11;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, 4, &len), -EMSGSIZE);
	CU_ASSERT_EQUAL(len, 8);
	/* re-commit replaces */
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 2, 11, "{\"e\":111}", 9), 0);
	ep = 11;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 2, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(len, 9);
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.manifests, 3);
	CU_ASSERT_EQUAL(st.chunks, 2);
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 3, &ep, buf, sizeof(buf), &len), -ENOENT);

	/* inventory */
	{
		json_t *inv = NULL, *e;

		CU_ASSERT_EQUAL(hec_cs_list(cs, 2, &inv), 0);
		e = json_object_get(inv, "epochs");
		CU_ASSERT_EQUAL(json_array_size(e), 4);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(e, 0), "epoch")), 9);
		CU_ASSERT(json_is_true(json_object_get(json_array_get(e, 1), "committed")));
		CU_ASSERT(json_is_false(json_object_get(json_array_get(e, 3), "committed")));
		{
			json_t *c = json_array_get(json_object_get(json_array_get(e, 1), "chunks"), 0);

			CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(c, "part")), "p");
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(c, "len")), 5);
			CU_ASSERT_EQUAL(json_integer_value(json_object_get(c, "idx")), 0);
		}
		json_decref(inv);
		CU_ASSERT_EQUAL(hec_cs_list(cs, 77, &inv), 0);
		CU_ASSERT_EQUAL(json_array_size(json_object_get(inv, "epochs")), 0);
		json_decref(inv);
	}
	hec_cs_close(cs);
}

static void test_delete_abort(void)
{
	char dir[300], buf[64];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "delete");
	struct hec_cs_status st;
	uint64_t ep;
	size_t len;

	CU_ASSERT_EQUAL(put_str(cs, 4, 1, "p", 0, "a"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 4, 1, "p", 1, "b"), 0);
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 4, 1, "{}", 2), 0);
	CU_ASSERT_EQUAL(put_str(cs, 4, 2, "p", 0, "c"), 0);
	/* abort refuses a committed epoch and leaves it whole */
	CU_ASSERT_EQUAL(hec_cs_abort(cs, 4, 1), -EEXIST);
	CU_ASSERT(exists(dir, "objects/4/1/MANIFEST") && exists(dir, "objects/4/1/p.1"));
	CU_ASSERT_EQUAL(hec_cs_abort(cs, 4, 2), 0);
	CU_ASSERT(!exists(dir, "objects/4/2"));
	CU_ASSERT_EQUAL(hec_cs_abort(cs, 4, 2), -ENOENT);
	CU_ASSERT_EQUAL(hec_cs_delete(cs, 4, 1), 0);
	/* only the tombstone is left */
	CU_ASSERT(exists(dir, "objects/4/1/DELETED"));
	CU_ASSERT(!exists(dir, "objects/4/1/MANIFEST") && !exists(dir, "objects/4/1/p.0") &&
		  !exists(dir, "objects/4/1/p.1"));
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 4, &ep, buf, sizeof(buf), &len), -ENOENT);
	CU_ASSERT_EQUAL(hec_cs_delete(cs, 4, 1), 0); /* idempotent */
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.chunks, 0);
	CU_ASSERT_EQUAL(st.manifests, 0);
	CU_ASSERT_EQUAL(st.used, 0);
	hec_cs_close(cs);
}

static void age(const char *dir, const char *rel, long ago);

/* Tombstones: a deleted epoch never comes back on this server, and
 * outweighs a MANIFEST a crash left beside it. */
static void test_tombstone(void)
{
	char dir[300], buf[256], p[600];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "tomb");
	struct hec_cs_gc_stats gs;
	struct hec_cs_status st;
	json_t *inv = NULL, *e;
	uint64_t ep, h;
	size_t len;

	for (uint64_t i = 1; i <= 3; i++) {
		CU_ASSERT_EQUAL(put_str(cs, 5, i, "p", 0, "data"), 0);
		CU_ASSERT_EQUAL(hec_cs_commit(cs, 5, i, "{}", 2), 0);
	}
	CU_ASSERT_EQUAL(hec_cs_delete(cs, 5, 3), 0);
	/* the newest is the newest not deleted; the deleted one says so */
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 5, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(ep, 2);
	ep = 3;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 5, &ep, buf, sizeof(buf), &len), -ESTALE);
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest_before(cs, 5, 2, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(ep, 1);
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest_before(cs, 5, 1, &ep, buf, sizeof(buf), &len), -ENOENT);
	/* nothing comes back into it: no chunk, no manifest (a repair's or a late writer's) */
	CU_ASSERT_EQUAL(put_str(cs, 5, 3, "p", 0, "late"), -ESTALE);
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 5, 3, "{}", 2), -ESTALE);
	CU_ASSERT(!exists(dir, "objects/5/3/p.0") && !exists(dir, "objects/5/3/MANIFEST"));
	CU_ASSERT_EQUAL(hec_cs_get(cs, 5, 3, "p", 0, buf, sizeof(buf), &len, &h), -ENOENT);
	/* an epoch never stored here gets its tombstone too */
	CU_ASSERT_EQUAL(hec_cs_delete(cs, 6, 9), 0);
	CU_ASSERT(exists(dir, "objects/6/9/DELETED"));
	CU_ASSERT_EQUAL(put_str(cs, 6, 9, "p", 0, "x"), -ESTALE);
	/* abort leaves it deleted */
	CU_ASSERT_EQUAL(hec_cs_abort(cs, 6, 9), -ENOENT);
	CU_ASSERT(exists(dir, "objects/6/9/DELETED"));

	/* the inventory shows it deleted, not committed */
	CU_ASSERT_EQUAL(hec_cs_list(cs, 5, &inv), 0);
	e = json_array_get(json_object_get(inv, "epochs"), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(e, "epoch")), 3);
	CU_ASSERT(json_is_true(json_object_get(e, "deleted")));
	CU_ASSERT(json_is_false(json_object_get(e, "committed")));
	CU_ASSERT_EQUAL(json_array_size(json_object_get(e, "chunks")), 0);
	e = json_array_get(json_object_get(inv, "epochs"), 1);
	CU_ASSERT(json_is_false(json_object_get(e, "deleted")));
	CU_ASSERT(json_is_true(json_object_get(e, "committed")));
	json_decref(inv);

	/* a crash between the tombstone and the rest: the tombstone wins, GC
	 * removes what is beside it and keeps the tombstone however old */
	snprintf(p, sizeof(p), "%s/objects/5/3/MANIFEST", dir);
	CU_ASSERT_EQUAL(hec_create_file(p, "{}", 2, 0600), 0);
	snprintf(p, sizeof(p), "%s/objects/5/3/p.0", dir);
	memset(buf, 'x', 100);
	CU_ASSERT_EQUAL(hec_create_file(p, buf, 100, 0600), 0);
	ep = 0;
	CU_ASSERT_EQUAL(hec_cs_manifest(cs, 5, &ep, buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(ep, 2);
	age(dir, "objects", 7200);
	CU_ASSERT_EQUAL(hec_cs_gc(cs, 600, NULL, NULL, &gs), 0);
	CU_ASSERT(exists(dir, "objects/5/3/DELETED"));
	CU_ASSERT(!exists(dir, "objects/5/3/MANIFEST") && !exists(dir, "objects/5/3/p.0"));
	CU_ASSERT(exists(dir, "objects/6/9/DELETED"));
	CU_ASSERT(exists(dir, "objects/5/1/MANIFEST") && exists(dir, "objects/5/2/p.0"));
	/* and a reopened store still knows */
	hec_cs_close(cs);
	cs = NULL;
	{
		char why[256];

		CU_ASSERT_EQUAL_FATAL(hec_cs_open(dir, &cs, why, sizeof(why)), 0);
	}
	CU_ASSERT_EQUAL(put_str(cs, 5, 3, "p", 0, "late"), -ESTALE);
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.manifests, 2);
	CU_ASSERT_EQUAL(st.chunks, 2);
	hec_cs_close(cs);
}

/* Set the mtime of @rel and everything in it @ago seconds back. */
static void age(const char *dir, const char *rel, long ago)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "find '%s/%s' -exec touch -h -d @%ld {} +", dir, rel,
		 (long)time(NULL) - ago);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static int busy_7_3(void *arg, uint64_t job, uint64_t epoch)
{
	(*(int *)arg)++;
	return job == 7 && epoch == 3;
}

static void test_gc(void)
{
	char dir[300], p[600];
	struct hec_cs *cs = fresh(dir, sizeof(dir), "gc");
	struct hec_cs_gc_stats gs;
	struct hec_cs_status st;
	int asked = 0;

	CU_ASSERT_EQUAL(put_str(cs, 7, 1, "p", 0, "committed"), 0);
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 7, 1, "{}", 2), 0);
	CU_ASSERT_EQUAL(put_str(cs, 7, 2, "p", 0, "stale"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 7, 3, "p", 0, "stale but being written"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 7, 4, "p", 0, "fresh"), 0);
	CU_ASSERT_EQUAL(put_str(cs, 8, 1, "p", 0, "stale, alone in its job"), 0);
	/* leftovers of a crash mid-write, in a committed and an uncommitted epoch */
	snprintf(p, sizeof(p), "%s/objects/7/1/.tmp.p.1.abcd", dir);
	CU_ASSERT_EQUAL(hec_create_file(p, "x", 1, 0600), 0);
	snprintf(p, sizeof(p), "%s/objects/7/4/.tmp.p.1.abcd", dir);
	CU_ASSERT_EQUAL(hec_create_file(p, "x", 1, 0600), 0);
	age(dir, "objects/7/1", 3600);
	age(dir, "objects/7/2", 3600);
	age(dir, "objects/7/3", 3600);
	age(dir, "objects/8", 3600);
	/* one young file keeps an old epoch */
	age(dir, "objects/7/4", 3600);
	CU_ASSERT_EQUAL(put_str(cs, 7, 4, "p", 1, "new"), 0);

	CU_ASSERT_EQUAL(hec_cs_gc(cs, 600, busy_7_3, &asked, &gs), 0);
	CU_ASSERT(asked >= 1);
	CU_ASSERT_EQUAL(gs.temps, 2);
	CU_ASSERT_EQUAL(gs.epochs, 2);
	CU_ASSERT(exists(dir, "objects/7/1/MANIFEST") && exists(dir, "objects/7/1/p.0"));
	CU_ASSERT(!exists(dir, "objects/7/2"));
	CU_ASSERT(exists(dir, "objects/7/3/p.0"));
	CU_ASSERT(exists(dir, "objects/7/4/p.0") && exists(dir, "objects/7/4/p.1"));
	CU_ASSERT(!exists(dir, "objects/8"));
	CU_ASSERT_EQUAL(count_temps(dir, "objects/7/1"), 0);
	CU_ASSERT_EQUAL(count_temps(dir, "objects/7/4"), 0);
	CU_ASSERT_EQUAL(hec_cs_status(cs, &st), 0);
	CU_ASSERT_EQUAL(st.chunks, 4);
	CU_ASSERT_EQUAL(st.manifests, 1);

	/* the writer gone: the epoch goes too (it is still old) */
	age(dir, "objects/7/3", 3600);
	CU_ASSERT_EQUAL(hec_cs_gc(cs, 600, NULL, NULL, &gs), 0);
	CU_ASSERT_EQUAL(gs.epochs, 1);
	CU_ASSERT(!exists(dir, "objects/7/3"));
	CU_ASSERT(exists(dir, "objects/7/1/p.0"));
	hec_cs_close(cs);
}

/* A put that hits ENOSPC leaves no temporary file and the old copy intact. */
static void test_enospc(void)
{
	char dir[400], mnt[300], buf[64];
	struct hec_cs *cs;
	size_t len;
	uint64_t hash;
	char *big;

	snprintf(mnt, sizeof(mnt), "%s/tiny", base);
	CU_ASSERT_EQUAL_FATAL(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k")) {
		fprintf(stderr, "SKIP test_enospc: cannot mount a tmpfs at %s: %s\n", mnt,
			strerror(errno));
		skipped_enospc = 1;
		return;
	}
	snprintf(dir, sizeof(dir), "%s/store", mnt);
	{
		char why[256];

		cs = NULL;
		CU_ASSERT_EQUAL_FATAL(hec_cs_open(dir, &cs, why, sizeof(why)), 0);
	}
	CU_ASSERT_EQUAL(put_str(cs, 1, 1, "p", 0, "old copy"), 0);
	big = malloc(1 << 20);
	CU_ASSERT_FATAL(big != NULL);
	memset(big, 'z', 1 << 20);
	CU_ASSERT_EQUAL(hec_cs_put(cs, 1, 1, "p", 0, big, 1 << 20, hec_cs_hash(big, 1 << 20)),
			-ENOSPC);
	CU_ASSERT_EQUAL(count_temps(dir, "objects/1/1"), 0);
	CU_ASSERT_EQUAL(hec_cs_get(cs, 1, 1, "p", 0, buf, sizeof(buf), &len, &hash), 0);
	CU_ASSERT_EQUAL(len, 8);
	CU_ASSERT(memcmp(buf, "old copy", 8) == 0);
	/* a manifest that does not fit leaves none */
	CU_ASSERT_EQUAL(hec_cs_commit(cs, 1, 1, big, 1 << 20), -ENOSPC);
	CU_ASSERT(!exists(dir, "objects/1/1/MANIFEST"));
	CU_ASSERT_EQUAL(count_temps(dir, "objects/1/1"), 0);
	free(big);
	hec_cs_close(cs);
	CU_ASSERT_EQUAL(umount(mnt), 0);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "hash hex", test_hash_hex },
		{ "put/get roundtrip, status", test_roundtrip },
		{ "one process per directory", test_lock },
		{ "corrupt chunks detected", test_corrupt },
		{ "chunk formats, split put and get", test_formats },
		{ "part names", test_part_names },
		{ "symlinks not followed", test_symlinks },
		{ "commit, manifest, inventory", test_commit },
		{ "delete and abort", test_delete_abort },
		{ "tombstones", test_tombstone },
		{ "gc", test_gc },
		{ "ENOSPC", test_enospc },
		{ NULL, NULL },
	};
	const char *tmp = getenv("TMPDIR");
	int rc;

	snprintf(base, sizeof(base), "%s/test_chunkstore.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 99;
	}
	rc = hec_cunit_run("chunkstore", tests);
	{
		char mnt[300];

		snprintf(mnt, sizeof(mnt), "%s/tiny", base);
		umount2(mnt, MNT_DETACH); /* still there if its test stopped early */
	}
	rm_rf(base);
	if (rc == 0 && skipped_enospc)
		fprintf(stderr, "note: the ENOSPC case was skipped (see above)\n");
	return rc;
}
