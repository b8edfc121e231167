/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: the storage client's pure parts (rdma/manifest.c): placement ring,
 * part names, sizes, hashes, manifest entries and manifests. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "hec/common.h"
#include "hec/store.h"
#include "tests/unit/cunit_main.h"

static void test_home(void)
{
	size_t seen[5] = { 0 };
	uint64_t h = XXH3_64bits("7/3/node0", 9);

	/* the rule of doc/storage.md, written out */
	for (uint64_t i = 0; i < 50; i++) {
		size_t home = hec_store_home(7, 3, "node0", i, 5);

		CU_ASSERT_EQUAL(home, (size_t)((h % 5 + i) % 5));
		seen[home]++;
	}
	/* consecutive chunks go round the ring: every server is home to 10 */
	for (int k = 0; k < 5; k++)
		CU_ASSERT_EQUAL(seen[k], 10);
	/* next chunk, next server */
	CU_ASSERT_EQUAL(hec_store_home(7, 3, "node0", 1, 5), (hec_store_home(7, 3, "node0", 0, 5) + 1) % 5);
	/* an index near 2^64 does not wrap the sum */
	CU_ASSERT_EQUAL(hec_store_home(7, 3, "node0", UINT64_MAX, 3),
			(size_t)((h % 3 + UINT64_MAX % 3) % 3));
	CU_ASSERT_EQUAL(hec_store_home(1, 1, "a", 5, 1), 0);
	CU_ASSERT_EQUAL(hec_store_home(1, 1, "a", 5, 0), 0);
	/* the name is part of the key: streams start at different homes */
	{
		int differ = 0;

		for (int p = 0; p < 16; p++) {
			char part[16];

			snprintf(part, sizeof(part), "node%d", p);
			differ |= hec_store_home(1, 1, part, 0, 7) != hec_store_home(1, 1, "node0", 0, 7);
		}
		CU_ASSERT(differ);
	}
}

static void test_part_ok(void)
{
	char longest[HEC_NAME_MAX + 2];

	CU_ASSERT(hec_name_ok("node0"));
	CU_ASSERT(hec_name_ok("a.b-c_D9"));
	CU_ASSERT(!hec_name_ok(""));
	CU_ASSERT(!hec_name_ok(NULL));
	CU_ASSERT(!hec_name_ok(".hidden"));
	CU_ASSERT(!hec_name_ok("a/b"));
	CU_ASSERT(!hec_name_ok("a b"));
	CU_ASSERT(!hec_name_ok(".."));
	memset(longest, 'x', HEC_NAME_MAX);
	longest[HEC_NAME_MAX] = 0;
	CU_ASSERT(hec_name_ok(longest));
	longest[HEC_NAME_MAX] = 'x';
	longest[HEC_NAME_MAX + 1] = 0;
	CU_ASSERT(!hec_name_ok(longest));
}

static void test_parse_size(void)
{
	static const struct { const char *in; uint64_t v; int rc; } cases[] = {
		{ "4096", 4096, 0 }, { "1K", 1024, 0 }, { "4M", 4u << 20, 0 }, { "4m", 4u << 20, 0 },
		{ "2G", 2ull << 30, 0 }, { "4MiB", 4u << 20, 0 }, { "4MB", 4u << 20, 0 },
		{ "1024G", 1ull << 40, 0 }, { "1025G", 0, -ERANGE }, { "0", 0, -ERANGE },
		{ "", 0, -EINVAL }, { "M", 0, -EINVAL }, { "-1", 0, -EINVAL }, { "4X", 0, -EINVAL },
		{ "4 M", 0, -EINVAL }, { "4Mx", 0, -EINVAL }, { "99999999999999999999", 0, -ERANGE },
	};

	for (size_t i = 0; i < HEC_ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;
		int rc = hec_store_parse_size(cases[i].in, &v);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != cases[i].rc)
			fprintf(stderr, "size '%s': rc %d\n", cases[i].in, rc);
		if (!rc)
			CU_ASSERT_EQUAL(v, cases[i].v);
	}
}

static void test_hash_hex(void)
{
	char hex[17];
	uint64_t v;

	hec_hash_hex(0x00ab00cd00ef0012ull, hex);
	CU_ASSERT_STRING_EQUAL(hex, "00ab00cd00ef0012");
	CU_ASSERT_EQUAL(hec_hash_parse(hex, &v), 0);
	CU_ASSERT_EQUAL(v, 0x00ab00cd00ef0012ull);
	CU_ASSERT_EQUAL(hec_hash_parse("00AB00CD00EF0012", &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse("abc", &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse("0123456789abcdef0", &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_hash_parse(NULL, &v), -EINVAL);
}

#define H "0123456789abcdef"

static json_t *entry(const char *text)
{
	json_t *e = json_loads(text, 0, NULL);

	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	return e;
}

static void test_entry_check(void)
{
	static const struct { const char *json; int ok; const char *why; } cases[] = {
		{ "{\"part\":\"n0\",\"size\":10,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":["
		  "{\"len\":4,\"hash\":\"" H "\",\"on\":[\"s0\",\"s1\"]},"
		  "{\"len\":4,\"hash\":\"" H "\",\"on\":[\"s1\"]},"
		  "{\"len\":2,\"hash\":\"" H "\",\"on\":[\"s2\",\"s0\"]}]}", 1, NULL },
		{ "{\"part\":\"n0\",\"size\":0,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":[]}", 1, NULL },
		/* lengths that do not add up */
		{ "{\"part\":\"n0\",\"size\":9,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":["
		  "{\"len\":4,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}", 0, "chunks hold 4 bytes" },
		/* a short chunk in the middle */
		{ "{\"part\":\"n0\",\"size\":6,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":["
		  "{\"len\":2,\"hash\":\"" H "\",\"on\":[\"s0\"]},"
		  "{\"len\":4,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}", 0, "only the last" },
		/* a chunk nobody holds */
		{ "{\"part\":\"n0\",\"size\":4,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":["
		  "{\"len\":4,\"hash\":\"" H "\",\"on\":[]}]}", 0, "no server holds it" },
		{ "{\"part\":\"n0\",\"size\":4,\"hash\":\"xyz\",\"chunk_size\":4,\"chunks\":[]}", 0, "\"hash\"" },
		{ "{\"part\":\"../x\",\"size\":0,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":[]}", 0, "part" },
		{ "{\"part\":\"n0\",\"size\":4,\"hash\":\"" H "\",\"chunk_size\":4,\"chunks\":["
		  "{\"len\":5,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}", 0, "chunk 0" },
		{ "[1,2]", 0, "not a JSON object" },
		/* lengths whose sum overflows: 4 x 2^62 wraps to the "size" 0 */
		{ "{\"part\":\"n0\",\"size\":0,\"hash\":\"" H "\",\"chunk_size\":4611686018427387904,\"chunks\":["
		  "{\"len\":4611686018427387904,\"hash\":\"" H "\",\"on\":[\"s0\"]},"
		  "{\"len\":4611686018427387904,\"hash\":\"" H "\",\"on\":[\"s0\"]},"
		  "{\"len\":4611686018427387904,\"hash\":\"" H "\",\"on\":[\"s0\"]},"
		  "{\"len\":4611686018427387904,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}", 0,
		  "chunks hold more than \"size\" says (0)" },
		{ "{\"part\":\"n0\",\"size\":9223372036854775807,\"hash\":\"" H "\",\"chunk_size\":9223372036854775807,\"chunks\":["
		  "{\"len\":9223372036854775807,\"hash\":\"" H "\",\"on\":[\"s0\"]},"
		  "{\"len\":9223372036854775807,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}", 0,
		  "chunks hold more than" },
	};

	for (size_t i = 0; i < HEC_ARRAY_SIZE(cases); i++) {
		json_t *e = entry(cases[i].json);
		char why[256] = "";
		int rc = hec_store_entry_check(e, why, sizeof(why));

		CU_ASSERT_EQUAL(rc, cases[i].ok ? 0 : -EINVAL);
		if (!cases[i].ok) {
			CU_ASSERT_PTR_NOT_NULL(strstr(why, cases[i].why));
			if (!strstr(why, cases[i].why))
				fprintf(stderr, "case %zu: why '%s'\n", i, why);
		}
		json_decref(e);
	}
}

static void test_manifest_check(void)
{
	const char *stream = "{\"part\":\"n0\",\"size\":4,\"hash\":\"" H "\",\"chunk_size\":4,"
			     "\"chunks\":[{\"len\":4,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}";
	char text[1024], why[256] = "";
	json_t *m;

	snprintf(text, sizeof(text), "{\"job\":7,\"epoch\":3,\"time\":1,\"replicas\":2,"
		 "\"chunk_size\":4,\"servers\":[\"s0\"],\"streams\":[%s]}", stream);
	m = entry(text);
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 3, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 0, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 4, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 8, 3, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "8/3 was asked"));
	CU_ASSERT_PTR_NOT_NULL(hec_store_manifest_stream(m, "n0"));
	CU_ASSERT_PTR_NULL(hec_store_manifest_stream(m, "n1"));
	json_decref(m);

	/* the same part twice */
	snprintf(text, sizeof(text), "{\"job\":7,\"epoch\":3,\"time\":1,\"replicas\":2,"
		 "\"chunk_size\":4,\"servers\":[\"s0\"],\"streams\":[%s,%s]}", stream, stream);
	m = entry(text);
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 3, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "n0 twice"));
	json_decref(m);

	m = entry("{\"job\":7,\"epoch\":3,\"servers\":[],\"streams\":[]}");
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 3, why, sizeof(why)), -EINVAL);
	json_decref(m);
}

/* "meta": the job's spec, nodes and one part per stream, checked with the manifest. */
static void test_meta_check(void)
{
#define META_STREAM "{\"part\":\"p%d\",\"size\":4,\"hash\":\"" H "\",\"chunk_size\":4," \
			    "\"chunks\":[{\"len\":4,\"hash\":\"" H "\",\"on\":[\"s0\"]}]}"
	const char *spec = "\"job\":{\"name\":\"j\",\"user\":\"u\",\"uid\":0,\"nnodes\":2,"
			   "\"ntasks\":2,\"vcpus\":1,\"mem_mb\":256,\"vm_files\":[\"/bin/x\"],"
			   "\"command\":\"x\"}";
	static const struct {
		const char *meta;   /* after the spec */
		const char *why;    /* NULL: accepted */
	} cases[] = {
		{ "\"nodes\":[\"n0\",\"n1\"],\"parts\":[{\"part\":\"p0\",\"node\":\"n0\",\"image\":\"i\","
		  "\"pause_us\":5},{\"part\":\"p1\",\"node\":\"n1\",\"image\":\"\",\"pause_us\":0}]", NULL },
		/* a part without its stream, a stream without its part */
		{ "\"nodes\":[\"n0\",\"n1\"],\"parts\":[{\"part\":\"p0\",\"node\":\"n0\",\"image\":\"i\","
		  "\"pause_us\":5},{\"part\":\"p2\",\"node\":\"n1\",\"image\":\"i\",\"pause_us\":0}]",
		  "part p2 has no stream" },
		{ "\"nodes\":[\"n0\",\"n1\"],\"parts\":[{\"part\":\"p0\",\"node\":\"n0\",\"image\":\"i\","
		  "\"pause_us\":5}]", "does not list the 2 streams" },
		{ "\"nodes\":[\"n0\",\"n1\"],\"parts\":[{\"part\":\"p0\",\"node\":\"n0\",\"image\":\"i\","
		  "\"pause_us\":5},{\"part\":\"p0\",\"node\":\"n1\",\"image\":\"i\",\"pause_us\":0}]",
		  "part p0 twice" },
		/* a node that is not the job's, nodes that are not nnodes */
		{ "\"nodes\":[\"n0\",\"n1\"],\"parts\":[{\"part\":\"p0\",\"node\":\"n0\",\"image\":\"i\","
		  "\"pause_us\":5},{\"part\":\"p1\",\"node\":\"n7\",\"image\":\"i\",\"pause_us\":0}]",
		  "node n7 is not one of the job's nodes" },
		{ "\"nodes\":[\"n0\"],\"parts\":[]", "not a list of the job's 2 nodes" },
		{ "\"nodes\":[\"n0\",\"../n1\"],\"parts\":[]", "node 1: bad or missing name" },
		{ "\"nodes\":[\"n0\",\"n1\"],\"parts\":[{\"part\":\"p0\",\"node\":\"n0\",\"image\":\"i\","
		  "\"pause_us\":-1},{\"part\":\"p1\",\"node\":\"n1\",\"image\":\"i\",\"pause_us\":0}]",
		  "\"image\" or \"pause_us\"" },
	};
	char text[4096], streams[1024], one[2][400], why[256];
	json_t *m;

	for (int i = 0; i < 2; i++)
		snprintf(one[i], sizeof(one[i]), META_STREAM, i);
	snprintf(streams, sizeof(streams), "[%s,%s]", one[0], one[1]);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "{\"job\":7,\"epoch\":1765000000000000,\"time\":1,"
			 "\"replicas\":2,\"chunk_size\":4,\"servers\":[\"s0\"],\"streams\":%s,"
			 "\"meta\":{%s,%s}}", streams, spec, cases[i].meta);
		m = entry(text);
		why[0] = 0;
		CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 1765000000000000ULL, why, sizeof(why)),
				cases[i].why ? -EINVAL : 0);
		if (cases[i].why && !strstr(why, cases[i].why)) {
			CU_FAIL("reason");
			fprintf(stderr, "case %zu: why '%s'\n", i, why);
		}
		json_decref(m);
	}
	/* the spec's own fields */
	snprintf(text, sizeof(text), "{\"job\":7,\"epoch\":3,\"time\":1,\"replicas\":2,"
		 "\"chunk_size\":4,\"servers\":[\"s0\"],\"streams\":[],\"meta\":{\"job\":"
		 "{\"name\":\"j\",\"user\":\"u\",\"uid\":0,\"nnodes\":0,\"ntasks\":1,\"vcpus\":1,"
		 "\"mem_mb\":0,\"vm_files\":[],\"command\":\"x\"},\"nodes\":[],\"parts\":[]}}");
	m = entry(text);
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 3, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "\"nnodes\" missing or bad"));
	json_decref(m);
	m = entry("{\"job\":7,\"epoch\":3,\"time\":1,\"replicas\":2,\"chunk_size\":4,"
		  "\"servers\":[],\"streams\":[],\"meta\":[]}");
	CU_ASSERT_EQUAL(hec_store_manifest_check(m, 7, 3, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "meta: not an object"));
	json_decref(m);
}

/* STORE_REP errors: the exact strings of doc/config.md, and only those. */
static void test_rep_errno(void)
{
	char text[128];

	CU_ASSERT_EQUAL(hec_store_rep_errno("no such chunk"), -ENOENT);
	CU_ASSERT_EQUAL(hec_store_rep_errno("no committed checkpoint"), -ENOENT);
	CU_ASSERT_EQUAL(hec_store_rep_errno("corrupt"), -EBADMSG);
	CU_ASSERT_EQUAL(hec_store_rep_errno("checksum mismatch"), -EBADMSG);
	CU_ASSERT_EQUAL(hec_store_rep_errno("committed"), -EEXIST);
	CU_ASSERT_EQUAL(hec_store_rep_errno("deleted"), -ESTALE);
	/* the client's request is at fault, not the server */
	CU_ASSERT_EQUAL(hec_store_rep_errno("larger than the slot"), -EMSGSIZE);
	CU_ASSERT_EQUAL(hec_store_rep_errno("no such slot"), -EINVAL);
	CU_ASSERT_EQUAL(hec_store_rep_errno("bad part name"), -EINVAL);
	/* a full disk in the server's words: the chunk goes elsewhere */
	CU_ASSERT_EQUAL(hec_store_rep_errno(strerror(ENOSPC)), -ENOSPC);
	snprintf(text, sizeof(text), "s1: %s", strerror(EDQUOT));
	CU_ASSERT_EQUAL(hec_store_rep_errno(text), -ENOSPC);
	/* exact strings: no prefix or substring matches */
	CU_ASSERT_EQUAL(hec_store_rep_errno("no such chunk here"), -EREMOTEIO);
	CU_ASSERT_EQUAL(hec_store_rep_errno("uncommitted"), -EREMOTEIO);
	CU_ASSERT_EQUAL(hec_store_rep_errno("Corrupt"), -EREMOTEIO);
	CU_ASSERT_EQUAL(hec_store_rep_errno(strerror(EIO)), -EREMOTEIO);
	CU_ASSERT_EQUAL(hec_store_rep_errno(""), -EREMOTEIO);
	CU_ASSERT_EQUAL(hec_store_rep_errno(NULL), -EREMOTEIO);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "placement ring", test_home },
		{ "part names", test_part_ok },
		{ "sizes", test_parse_size },
		{ "hash hex", test_hash_hex },
		{ "manifest entries", test_entry_check },
		{ "manifests", test_manifest_check },
		{ "manifest meta", test_meta_check },
		{ "reply errors", test_rep_errno },
		{ NULL, NULL },
	};

	return hec_cunit_run("store", tests);
}
