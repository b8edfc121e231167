/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Placement and the manifest formats of checkpoint storage (doc/storage.md,
 * include/hec/store.h): pure code, unit-tested without a fabric.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "hec/store.h"

size_t hec_store_home(uint64_t job, uint64_t epoch, const char *part, uint64_t idx, size_t m)
{
	char name[3 * 21 + HEC_NAME_MAX];
	int n;

	if (m == 0)
		return 0;
	n = snprintf(name, sizeof(name), "%" PRIu64 "/%" PRIu64 "/%s", job, epoch, part);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(name))
		n = (int)sizeof(name) - 1;
	/* (H + idx) mod m as integers, not as a uint64_t sum that may wrap */
	return (size_t)((XXH3_64bits(name, (size_t)n) % m + idx % m) % m);
}

int hec_store_parse_size(const char *s, uint64_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	default: return -EINVAL;
	}
	/* "4M", "4MiB" and "4MB" all mean 4 MiB */
	if (mul > 1 && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (v == 0 || v > (1ull << 40) / mul)
		return -ERANGE;
	*out = v * mul;
	return 0;
}

static int bad(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (why && whylen)
		vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A JSON integer field >= @min, or -1. */
static long long int_field(const json_t *o, const char *k, long long min)
{
	const json_t *v = json_object_get(o, k);

	if (!json_is_integer(v) || json_integer_value(v) < min)
		return -1;
	return json_integer_value(v);
}

static int hash_field(const json_t *o, const char *k)
{
	uint64_t h;

	return hec_hash_parse(json_string_value(json_object_get(o, k)), &h);
}

int hec_store_entry_check(const json_t *e, char *why, size_t whylen)
{
	const char *part = json_string_value(json_object_get(e, "part"));
	const json_t *chunks = json_object_get(e, "chunks");
	long long size = int_field(e, "size", 0), csize = int_field(e, "chunk_size", 1);
	long long sum = 0;
	size_t i, n;

	if (!json_is_object(e))
		return bad(why, whylen, "a stream entry is not a JSON object");
	if (!hec_name_ok(part))
		return bad(why, whylen, "stream entry: bad or missing \"part\"");
	if (size < 0 || csize < 1 || hash_field(e, "hash") || !json_is_array(chunks))
		return bad(why, whylen, "stream %s: \"size\", \"hash\", \"chunk_size\" or \"chunks\" missing or bad",
			   part);
	n = json_array_size(chunks);
	for (i = 0; i < n; i++) {
		const json_t *c = json_array_get(chunks, i), *on = json_object_get(c, "on");
		long long len = int_field(c, "len", 1);
		size_t k;

		if (len < 1 || len > csize || hash_field(c, "hash"))
			return bad(why, whylen, "stream %s chunk %zu: \"len\" or \"hash\" missing or bad",
				   part, i);
		if (i + 1 < n && len != csize)
			return bad(why, whylen, "stream %s chunk %zu: %lld bytes, only the last may be shorter than %lld",
				   part, i, len, csize);
		if (!json_is_array(on) || json_array_size(on) == 0)
			return bad(why, whylen, "stream %s chunk %zu: no server holds it (\"on\")", part, i);
		for (k = 0; k < json_array_size(on); k++)
			if (!json_is_string(json_array_get(on, k)))
				return bad(why, whylen, "stream %s chunk %zu: \"on\" is not a list of names",
					   part, i);
		/* sum <= size throughout: no overflow, whatever the lengths claim */
		if (len > size - sum)
			return bad(why, whylen, "stream %s: chunks hold more than \"size\" says (%lld)",
				   part, size);
		sum += len;
	}
	if (sum != size)
		return bad(why, whylen, "stream %s: chunks hold %lld bytes, \"size\" says %lld", part,
			   sum, size);
	return 0;
}

static int str_field(const json_t *o, const char *k)
{
	return json_is_string(json_object_get(o, k));
}

/* Is @name one of the strings of @arr? */
static int in_names(const json_t *arr, const char *name)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (name && !strcmp(name, json_string_value(json_array_get(arr, i))))
			return 1;
	return 0;
}

int hec_store_meta_check(const json_t *meta, const json_t *streams, char *why, size_t whylen)
{
	static const char *const ints[] = { "uid", "nnodes", "ntasks", "vcpus", "mem_mb" };
	const json_t *spec = json_object_get(meta, "job"), *nodes = json_object_get(meta, "nodes");
	const json_t *parts = json_object_get(meta, "parts"), *files;
	size_t i, k;

	if (!json_is_object(meta) || !json_is_object(spec))
		return bad(why, whylen, "meta: not an object with a \"job\" object");
	if (!str_field(spec, "name") || !str_field(spec, "user") || !str_field(spec, "command"))
		return bad(why, whylen, "meta job: \"name\", \"user\" or \"command\" missing or not text");
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (int_field(spec, ints[i], !strcmp(ints[i], "uid") || !strcmp(ints[i], "mem_mb") ?
					     0 : 1) < 0)
			return bad(why, whylen, "meta job: \"%s\" missing or bad", ints[i]);
	files = json_object_get(spec, "vm_files");
	if (!json_is_array(files))
		return bad(why, whylen, "meta job: \"vm_files\" is not a list");
	for (i = 0; i < json_array_size(files); i++)
		if (!json_is_string(json_array_get(files, i)))
			return bad(why, whylen, "meta job: \"vm_files\" is not a list of paths");
	if (!json_is_array(nodes) ||
	    (long long)json_array_size(nodes) != int_field(spec, "nnodes", 1))
		return bad(why, whylen, "meta: \"nodes\" is not a list of the job's %lld nodes",
			   int_field(spec, "nnodes", 1));
	for (i = 0; i < json_array_size(nodes); i++)
		if (!hec_name_ok(json_string_value(json_array_get(nodes, i))))
			return bad(why, whylen, "meta: node %zu: bad or missing name", i);
	if (!json_is_array(parts) || json_array_size(parts) != json_array_size(streams))
		return bad(why, whylen, "meta: \"parts\" does not list the %zu streams",
			   json_array_size(streams));
	for (i = 0; i < json_array_size(parts); i++) {
		const json_t *p = json_array_get(parts, i);
		const char *part = json_string_value(json_object_get(p, "part"));
		const char *node = json_string_value(json_object_get(p, "node"));

		if (!hec_name_ok(part))
			return bad(why, whylen, "meta: part %zu: bad or missing \"part\"", i);
		for (k = 0; k < json_array_size(streams); k++) {
			const char *sp = json_string_value(json_object_get(json_array_get(streams, k),
									   "part"));

			if (sp && !strcmp(part, sp))
				break;
		}
		if (k == json_array_size(streams))
			return bad(why, whylen, "meta: part %s has no stream", part);
		for (k = 0; k < i; k++)
			if (!strcmp(part, json_string_value(json_object_get(json_array_get(parts, k),
									     "part"))))
				return bad(why, whylen, "meta: part %s twice", part);
		if (!in_names(nodes, node))
			return bad(why, whylen, "meta: part %s: node %s is not one of the job's nodes",
				   part, node ? node : "(missing)");
		if (!str_field(p, "image") || int_field(p, "pause_us", 0) < 0)
			return bad(why, whylen, "meta: part %s: \"image\" or \"pause_us\" missing or bad",
				   part);
	}
	return 0;
}

int hec_store_manifest_check(const json_t *m, uint64_t job, uint64_t epoch, char *why,
			     size_t whylen)
{
	const json_t *streams = json_object_get(m, "streams"), *servers = json_object_get(m, "servers");
	long long mj = int_field(m, "job", 1), me = int_field(m, "epoch", 1);
	size_t i, k;
	int rc;

	if (!json_is_object(m))
		return bad(why, whylen, "the manifest is not a JSON object");
	if (mj < 1 || me < 1)
		return bad(why, whylen, "manifest: \"job\" or \"epoch\" missing or bad");
	if ((uint64_t)mj != job || (epoch && (uint64_t)me != epoch))
		return bad(why, whylen, "manifest of %lld/%lld where %" PRIu64 "/%" PRIu64 " was asked",
			   mj, me, job, epoch);
	if (int_field(m, "replicas", 1) < 1 || int_field(m, "chunk_size", 1) < 1 ||
	    !json_is_array(servers) || !json_is_array(streams))
		return bad(why, whylen, "manifest %lld/%lld: \"replicas\", \"chunk_size\", \"servers\" or \"streams\" missing or bad",
			   mj, me);
	for (i = 0; i < json_array_size(streams); i++) {
		const json_t *e = json_array_get(streams, i);
		const char *part = json_string_value(json_object_get(e, "part"));

		rc = hec_store_entry_check(e, why, whylen);
		if (rc)
			return rc;
		for (k = 0; k < i; k++)
			if (!strcmp(part, json_string_value(json_object_get(json_array_get(streams, k),
									     "part"))))
				return bad(why, whylen, "manifest %lld/%lld: stream %s twice", mj, me,
					   part);
	}
	if (json_object_get(m, "meta") &&
	    hec_store_meta_check(json_object_get(m, "meta"), streams, why, whylen)) {
		char inner[256];

		snprintf(inner, sizeof(inner), "%s", why ? why : "");
		return bad(why, whylen, "manifest %lld/%lld: %s", mj, me, inner);
	}
	return 0;
}

const json_t *hec_store_manifest_stream(const json_t *m, const char *part)
{
	const json_t *streams = json_object_get(m, "streams");

	for (size_t i = 0; i < json_array_size(streams); i++) {
		const json_t *e = json_array_get(streams, i);
		const char *p = json_string_value(json_object_get(e, "part"));

		if (p && part && !strcmp(p, part))
			return e;
	}
	return NULL;
}

/*
 * The protocol's errors are text (STORE_REP "error"); doc/config.md lists
 * the exact strings a client acts on.  Anything else is -EREMOTEIO, but a
 * full disk (the server's strerror) is told apart: the chunk goes elsewhere.
 */
int hec_store_rep_errno(const char *error)
{
	static const struct { const char *text; int err; } map[] = {
		{ "no such chunk", ENOENT }, { "no committed checkpoint", ENOENT },
		{ "corrupt", EBADMSG }, { "checksum mismatch", EBADMSG },
		{ "committed", EEXIST }, { "deleted", ESTALE },
		/* the request, not the server, is at fault */
		{ "larger than the slot", EMSGSIZE }, { "no such slot", EINVAL },
		{ "bad part name", EINVAL },
	};

	if (!error)
		return -EREMOTEIO;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(error, map[i].text))
			return -map[i].err;
	if (strstr(error, strerror(ENOSPC)) || strstr(error, strerror(EDQUOT)))
		return -ENOSPC;
	return -EREMOTEIO;
}
