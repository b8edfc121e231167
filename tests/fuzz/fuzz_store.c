/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: what checkpoint storage reads from outside.
 *
 * - Manifests and stream entries (JSON from servers, from `hec-store commit`
 *   files and lines): the checks of rdma/manifest.c.  One that passes must
 *   hold what readers rely on (chunk lengths adding up to "size", every chunk
 *   but the last full, hashes parseable, a holder per chunk, distinct parts
 *   findable), and pass again after a round trip through text.
 * - A chunk file from a server's disk ("hecchnk1..." inputs: header, then
 *   data; "hecchnk2...": the same bytes, written as today's files are, data
 *   first and the 64-byte header after it): written into a scratch store and
 *   read with hec_cs_get, asked for the (job, epoch, idx) its header claims.
 *   One it accepts must hash to what it says.
 * - A directory entry name ("name:..." inputs): planted as a file in an
 *   epoch directory and as a job directory, then the inventory
 *   (hec_cs_list) and status scan run.  A chunk it lists must be the file's
 *   name exactly, with a valid part name.
 * - Every input as text: an accepted part name is a plain file name, a hash
 *   parses only from the form it prints as, sizes parse within their range.
 *
 * The inventory the client reads back in repair is parsed in rdma/client.c by
 * static functions (tolerant jansson getters only); it is not reached here.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <xxhash.h>

#include "hec/store.h"
#include "rdma/chunkstore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHUNK_CAP (64u << 10)

static struct hec_cs *cs;
static char objdir[256];
static uint8_t *chunkbuf;

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_store: invariant broken: %s\n", what);
		abort();
	}
}

static void setup(void)
{
	char tmpl[] = "/tmp/hec-fuzz-store.XXXXXX", why[256];

	if (cs)
		return;
	must(mkdtemp(tmpl) != NULL, "mkdtemp");
	must(hec_cs_open(tmpl, &cs, why, sizeof(why)) == 0, "hec_cs_open");
	snprintf(objdir, sizeof(objdir), "%s/objects", tmpl);
	chunkbuf = malloc(CHUNK_CAP);
	must(chunkbuf != NULL, "malloc");
}

/* What a reader of an entry that passed hec_store_entry_check relies on. */
static void entry_holds(const json_t *e)
{
	const json_t *chunks = json_object_get(e, "chunks");
	json_int_t size = json_integer_value(json_object_get(e, "size"));
	json_int_t csize = json_integer_value(json_object_get(e, "chunk_size"));
	json_int_t sum = 0;
	uint64_t h;

	must(hec_name_ok(json_string_value(json_object_get(e, "part"))), "entry part");
	must(!hec_hash_parse(json_string_value(json_object_get(e, "hash")), &h), "entry hash");
	must(csize >= 1 && size >= 0, "entry sizes");
	for (size_t i = 0; i < json_array_size(chunks); i++) {
		const json_t *c = json_array_get(chunks, i), *on = json_object_get(c, "on");
		json_int_t len = json_integer_value(json_object_get(c, "len"));

		must(len >= 1 && len <= csize, "chunk len within chunk_size");
		must(i + 1 == json_array_size(chunks) || len == csize, "only the last chunk short");
		must(!hec_hash_parse(json_string_value(json_object_get(c, "hash")), &h),
		     "chunk hash");
		must(json_array_size(on) >= 1, "chunk holders");
		for (size_t k = 0; k < json_array_size(on); k++)
			must(json_is_string(json_array_get(on, k)), "holder names");
		must(sum <= size - len, "sum of chunks within size");
		sum += len;
	}
	must(sum == size, "chunks add up to size");
}

static void json_case(const uint8_t *data, size_t size)
{
	json_t *j = json_loadb((const char *)data, size, 0, NULL);
	const json_t *streams;
	char why[256];
	int mok, eok;

	if (!j)
		return;
	eok = hec_store_entry_check(j, why, sizeof(why)) == 0;
	if (eok)
		entry_holds(j);
	{
		json_int_t job = json_integer_value(json_object_get(j, "job"));
		json_int_t epoch = json_integer_value(json_object_get(j, "epoch"));

		/* as a reader asking for this checkpoint, and for the newest */
		mok = hec_store_manifest_check(j, (uint64_t)job, (uint64_t)epoch, why, sizeof(why)) == 0;
		must(mok == (hec_store_manifest_check(j, (uint64_t)job, 0, why, sizeof(why)) == 0),
		     "epoch 0 (any) accepts what the exact epoch does");
		hec_store_manifest_check(j, 1, 1, why, sizeof(why));
	}
	streams = json_object_get(j, "streams");
	for (size_t i = 0; i < json_array_size(streams); i++) {
		const json_t *e = json_array_get(streams, i);
		const char *part = json_string_value(json_object_get(e, "part"));

		if (!mok)
			continue;
		entry_holds(e);
		must(hec_store_manifest_stream(j, part) == e, "a manifest's part finds its entry");
	}
	hec_store_manifest_stream(j, "node0");
	if (mok || eok) {
		/* what was accepted is accepted again after a round trip as text */
		char *text = json_dumps(j, JSON_COMPACT);
		json_t *again = text ? json_loads(text, 0, NULL) : NULL;

		if (again) {
			json_int_t job = json_integer_value(json_object_get(again, "job"));
			json_int_t epoch = json_integer_value(json_object_get(again, "epoch"));

			must(!eok || !hec_store_entry_check(again, why, sizeof(why)), "entry round trip");
			must(!mok || !hec_store_manifest_check(again, (uint64_t)job, (uint64_t)epoch,
							       why, sizeof(why)),
			     "manifest round trip");
		}
		json_decref(again);
		free(text);
	}
	json_decref(j);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void chunk_case(const uint8_t *data, size_t size, int trailer)
{
	char path[512];
	uint64_t job = size >= 16 ? le64(data + 8) : 1, epoch = size >= 24 ? le64(data + 16) : 1;
	uint64_t idx = size >= 32 ? le64(data + 24) : 0, hash = 0;
	size_t len = 0;
	int fd, rc;

	/* names the store could have made: the header's if usable, else 1/1/p.0 */
	if (job == 0 || job > (1ull << 53) || epoch == 0 || epoch > (1ull << 53))
		job = epoch = 1;
	snprintf(path, sizeof(path), "%s/%" PRIu64, objdir, job);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%" PRIu64 "/%" PRIu64, objdir, job, epoch);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%" PRIu64 "/%" PRIu64 "/p.%" PRIu64, objdir, job, epoch,
		 idx);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	must(fd >= 0, "create the chunk file");
	if (trailer && size >= HEC_CS_HDR_LEN) {
		must(write(fd, data + HEC_CS_HDR_LEN, size - HEC_CS_HDR_LEN) ==
			     (ssize_t)(size - HEC_CS_HDR_LEN) &&
			     write(fd, data, HEC_CS_HDR_LEN) == HEC_CS_HDR_LEN,
		     "write the chunk file");
	} else {
		must(write(fd, data, size) == (ssize_t)size, "write the chunk file");
	}
	close(fd);
	rc = hec_cs_get(cs, job, epoch, "p", idx, chunkbuf, CHUNK_CAP, &len, &hash);
	if (rc == 0) {
		must(len + HEC_CS_HDR_LEN == size, "accepted length is the file's");
		must(XXH3_64bits(chunkbuf, len) == hash, "accepted data hashes to its hash");
		must(le64(data + 40) == hash, "the hash is the header's");
	} else {
		must(rc == -EUCLEAN || rc == -EMSGSIZE, "a bad chunk file is corrupt or too large");
	}
	unlink(path);
	/* and the same bytes as a manifest: read back whole */
	if (size <= CHUNK_CAP) {
		uint64_t ep = epoch;

		snprintf(path, sizeof(path), "%s/%" PRIu64 "/%" PRIu64 "/MANIFEST", objdir, job, epoch);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		must(fd >= 0 && write(fd, data, size) == (ssize_t)size, "write a manifest");
		close(fd);
		must(hec_cs_manifest(cs, job, &ep, chunkbuf, CHUNK_CAP, &len) == 0 && len == size &&
		     !memcmp(chunkbuf, data, size), "a manifest reads back as written");
		unlink(path);
	}
	/* a delete leaves a tombstone, which would refuse the next input's
	 * manifest in this epoch: remove the epoch whole */
	hec_cs_delete(cs, job, epoch);
	snprintf(path, sizeof(path), "%s/%" PRIu64 "/%" PRIu64 "/DELETED", objdir, job, epoch);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%" PRIu64 "/%" PRIu64, objdir, job, epoch);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/%" PRIu64, objdir, job);
	rmdir(path);
}

static void name_case(const uint8_t *data, size_t size)
{
	char name[256], path[600];
	json_t *inv = NULL;
	struct hec_cs_status st;
	size_t n = 0;
	int fd;

	/* a file name: no '/', no NUL, not "." or "..", at most 255 bytes */
	for (size_t i = 0; i < size && n < sizeof(name) - 1; i++)
		if (data[i] && data[i] != '/')
			name[n++] = (char)data[i];
	name[n] = 0;
	if (n == 0 || !strcmp(name, ".") || !strcmp(name, ".."))
		return;
	snprintf(path, sizeof(path), "%s/7", objdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/7/3", objdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/7/3/%s", objdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	must(fd >= 0, "create the planted file");
	/* a header's worth of bytes: the inventory lists chunk files that long */
	must(write(fd, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX", 65) == 65,
	     "write the planted file");
	close(fd);
	/* and the name as a job directory */
	snprintf(path, sizeof(path), "%s/%s", objdir, name);
	mkdir(path, 0700);
	must(hec_cs_list(cs, 0, &inv) == 0, "hec_cs_list");
	{
		const json_t *eps = json_object_get(inv, "epochs");

		for (size_t i = 0; i < json_array_size(eps); i++) {
			const json_t *e = json_array_get(eps, i), *ch = json_object_get(e, "chunks");

			must(json_integer_value(json_object_get(e, "job")) >= 1 &&
			     json_integer_value(json_object_get(e, "epoch")) >= 1, "listed job and epoch");
			for (size_t k = 0; k < json_array_size(ch); k++) {
				const json_t *c = json_array_get(ch, k);
				const char *part = json_string_value(json_object_get(c, "part"));
				char back[300];

				must(hec_name_ok(part), "listed part is valid");
				/* an index above 2^63 (planted: the wire allows none) is
				 * listed negative; readers cast it back */
				snprintf(back, sizeof(back), "%s.%" PRIu64, part,
					 (uint64_t)json_integer_value(json_object_get(c, "idx")));
				must(!strcmp(back, name), "a listed chunk is the planted file");
				must(json_integer_value(json_object_get(c, "len")) == 1, "listed length");
			}
		}
	}
	json_decref(inv);
	must(hec_cs_status(cs, &st) == 0, "hec_cs_status");
	snprintf(path, sizeof(path), "%s/7/3/%s", objdir, name);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", objdir, name);
	rmdir(path);
}

static void text_case(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	uint64_t a = 0, v = 0;

	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = 0;
	if (hec_name_ok(text))
		must(strlen(text) <= HEC_NAME_MAX && text[0] != '.' && !strchr(text, '/'),
		     "a part name is a plain file name");
	if (!hec_hash_parse(text, &a)) {
		char hex[HEC_HASH_HEX];

		hec_hash_hex(a, hex);
		must(!strcmp(hex, text), "a hash parses only from its own form");
	}
	if (hec_store_parse_size(text, &v) == 0)
		must(v >= 1 && v <= (1ull << 40), "a size within 1 .. 1 TiB");
	hec_store_home(7, 1, text, v, 3);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	text_case(data, size);
	json_case(data, size);
	if (size >= 8 && !memcmp(data, "hecchnk1", 8))
		chunk_case(data, size, 0);
	if (size >= 8 && !memcmp(data, "hecchnk2", 8))
		chunk_case(data, size, 1);
	if (size > 5 && !memcmp(data, "name:", 5))
		name_case(data + 5, size - 5);
	return 0;
}
