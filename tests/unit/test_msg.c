/* CUnit: frame codec and message schemas (common/msg.c). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "hec/msg.h"
#include "tests/unit/cunit_main.h"

static int decode_text(unsigned type, const char *json, struct hec_msg *m, char *err, size_t errlen)
{
	size_t len = strlen(json), used = 0;
	uint8_t *buf = malloc(HEC_MSG_HDR_LEN + len);
	int rc;

	buf[0] = 'H';
	buf[1] = 'C';
	buf[2] = HEC_PROTO_VERSION;
	buf[3] = (uint8_t)type;
	buf[4] = (uint8_t)(len >> 24);
	buf[5] = (uint8_t)(len >> 16);
	buf[6] = (uint8_t)(len >> 8);
	buf[7] = (uint8_t)len;
	memcpy(buf + HEC_MSG_HDR_LEN, json, len);
	rc = hec_msg_decode(buf, HEC_MSG_HDR_LEN + len, m, &used, err, errlen);
	if (rc == 0)
		CU_ASSERT_EQUAL(used, HEC_MSG_HDR_LEN + len);
	free(buf);
	return rc;
}

static void test_roundtrip(void)
{
	json_t *body = json_pack("{s:I,s:s,s:s,s:[s]}", "job", (json_int_t)7, "key", "abc",
				 "node", "node1", "cmd", "x");
	uint8_t *frame;
	size_t len, used;
	struct hec_msg m;
	char err[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	/* cmd must be a string: the encoder refuses a body that breaks the schema */
	CU_ASSERT_EQUAL(hec_msg_encode(HEC_MSG_SPAWN, body, &frame, &len), -EINVAL);
	json_object_set_new(body, "cmd", json_string("hydra_pmi_proxy --x"));
	CU_ASSERT_EQUAL_FATAL(hec_msg_encode(HEC_MSG_SPAWN, body, &frame, &len), 0);
	CU_ASSERT_EQUAL(frame[0], 'H');
	CU_ASSERT_EQUAL(frame[2], HEC_PROTO_VERSION);
	CU_ASSERT_EQUAL(frame[3], HEC_MSG_SPAWN);

	/* every prefix is incomplete, never an error */
	for (size_t i = 0; i < len; i++)
		CU_ASSERT_EQUAL(hec_msg_decode(frame, i, &m, &used, err, sizeof(err)), -EAGAIN);
	CU_ASSERT_EQUAL_FATAL(hec_msg_decode(frame, len, &m, &used, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(used, len);
	CU_ASSERT_EQUAL(m.type, HEC_MSG_SPAWN);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(m.body, "job")), 7);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(m.body, "cmd")), "hydra_pmi_proxy --x");
	hec_msg_clear(&m);
	free(frame);
	json_decref(body);
}

static void test_data_frame(void)
{
	uint8_t *frame;
	size_t len, used;
	struct hec_msg m;
	char err[128];
	const char raw[] = "bytes\0with nul";

	CU_ASSERT_EQUAL_FATAL(hec_msg_encode_data(HEC_MSG_STDOUT, raw, sizeof(raw), &frame, &len), 0);
	CU_ASSERT_EQUAL_FATAL(hec_msg_decode(frame, len, &m, &used, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NULL(m.body);
	CU_ASSERT_EQUAL(m.len, sizeof(raw));
	CU_ASSERT(memcmp(m.data, raw, sizeof(raw)) == 0);
	hec_msg_clear(&m);
	free(frame);
	CU_ASSERT_EQUAL(hec_msg_encode_data(HEC_MSG_LAUNCH, raw, 3, &frame, &len), -EINVAL);
}

static void test_bad_headers(void)
{
	uint8_t buf[16] = { 'H', 'C', HEC_PROTO_VERSION, HEC_MSG_HEARTBEAT, 0, 0, 0, 2, '{', '}' };
	struct hec_msg m;
	size_t used;
	char err[256];

	CU_ASSERT_EQUAL(hec_msg_decode(buf, 10, &m, &used, err, sizeof(err)), 0);
	hec_msg_clear(&m);

	buf[0] = 'G';
	CU_ASSERT_EQUAL(hec_msg_decode(buf, 10, &m, &used, err, sizeof(err)), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "magic"));
	/* a stray client is refused on its first byte */
	CU_ASSERT_EQUAL(hec_msg_decode(buf, 1, &m, &used, err, sizeof(err)), -EPROTO);
	buf[0] = 'H';

	buf[2] = 9;
	CU_ASSERT_EQUAL(hec_msg_decode(buf, 10, &m, &used, err, sizeof(err)), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "version 9"));
	buf[2] = HEC_PROTO_VERSION;

	buf[3] = 200;
	CU_ASSERT_EQUAL(hec_msg_decode(buf, 10, &m, &used, err, sizeof(err)), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown message type 200"));
	buf[3] = HEC_MSG_HEARTBEAT;

	buf[4] = 0x7f; /* 2 GiB payload */
	CU_ASSERT_EQUAL(hec_msg_decode(buf, 10, &m, &used, err, sizeof(err)), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "exceeds"));
}

static void test_schemas(void)
{
	struct hec_msg m;
	char err[256];

	CU_ASSERT_EQUAL(decode_text(HEC_MSG_HEARTBEAT, "[1]", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "JSON object"));
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_HEARTBEAT, "{", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "invalid JSON"));
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_KILL_JOB, "{}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "KILL_JOB: missing field 'job'");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_KILL_JOB, "{\"job\":\"1\"}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "KILL_JOB: field 'job' must be an integer");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_KILL_JOB, "{\"job\":0}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "KILL_JOB: field 'job' is out of range");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_KILL_JOB, "{\"job\":1,\"job\":2}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_KILL_JOB, "{\"job\":3,\"extra\":1}", &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);

	/* nested: LAUNCH nodes[] elements are checked too */
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_LAUNCH,
		"{\"job\":1,\"key\":\"k\",\"uid\":0,\"gid\":0,\"nodes\":[{\"name\":\"n\",\"addr\":\"a:1\",\"ranks\":0}]}",
		&m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'ranks'"));
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_LAUNCH,
		"{\"job\":1,\"key\":\"k\",\"uid\":0,\"gid\":0,\"nodes\":[{\"name\":\"n\",\"addr\":\"a:1\",\"ranks\":2}]}",
		&m, err, sizeof(err)), 0);
	hec_msg_clear(&m);

	/* strings with an embedded NUL are refused */
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_ERROR, "{\"error\":\"a\\u0000b\"}", &m, err, sizeof(err)), -EBADMSG);
}

static void test_requests(void)
{
	struct hec_msg m;
	char err[256];

	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, "{\"op\":\"frobnicate\"}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "REQUEST: unknown op 'frobnicate'");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, "{\"op\":\"show\"}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "REQUEST: missing field 'job'");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, "{\"op\":\"show\",\"job\":5}", &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);

	const char *base = "{\"op\":\"submit\",\"nodes\":2,\"ntasks\":4,\"time_limit\":60,\"name\":\"x\","
			   "\"priority\":0,\"cwd\":\"/\",\"env\":[\"A=B\"]";
	char buf[512];

	snprintf(buf, sizeof(buf), "%s}", base);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, buf, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "exactly one of"));
	snprintf(buf, sizeof(buf), "%s,\"argv\":[]}", base);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, buf, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));
	snprintf(buf, sizeof(buf), "%s,\"argv\":[\"a\"],\"script\":\"b\"}", base);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, buf, &m, err, sizeof(err)), -EBADMSG);
	snprintf(buf, sizeof(buf), "%s,\"argv\":[\"/bin/true\"]}", base);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST, buf, &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);
	/* nodes out of range */
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST,
		"{\"op\":\"submit\",\"nodes\":0,\"ntasks\":4,\"time_limit\":60,\"name\":\"x\",\"priority\":0,"
		"\"cwd\":\"/\",\"env\":[],\"argv\":[\"a\"]}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "REQUEST: field 'nodes' is out of range");
}

/* vm partitions: LAUNCH's fields, the job network's frames, submit's vm fields. */
static void test_vm_messages(void)
{
	static const uint8_t eth[20] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54 };
	struct hec_msg m;
	uint8_t *buf;
	size_t len, used;
	char err[256], text[512];

#define VM_LAUNCH "{\"job\":1,\"key\":\"k\",\"uid\":0,\"gid\":0," \
	"\"nodes\":[{\"name\":\"n\",\"addr\":\"a:1\",\"ranks\":2}]," \
	"\"partition\":\"vm\",\"mem_mb\":512,\"vcpus\":%d,\"vm_files\":%s}"
	snprintf(text, sizeof(text), VM_LAUNCH, 2, "[\"/bin/true\"]");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_LAUNCH, text, &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);
	snprintf(text, sizeof(text), VM_LAUNCH, 65, "[]");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_LAUNCH, text, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "LAUNCH: field 'vcpus' is out of range");
	snprintf(text, sizeof(text), VM_LAUNCH, 1, "[7]");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_LAUNCH, text, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'vm_files'"));

	CU_ASSERT_EQUAL(decode_text(HEC_MSG_NET_JOIN, "{\"job\":3,\"node\":\"n1\"}", &m, err,
				    sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "NET_JOIN: missing field 'key'");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_NET_JOIN, "{\"job\":3,\"key\":\"k\",\"node\":\"n1\"}", &m,
				    err, sizeof(err)), 0);
	hec_msg_clear(&m);
	/* NET_FRAME is raw bytes both ways, not JSON */
	CU_ASSERT_EQUAL(hec_msg_encode_data(HEC_MSG_NET_FRAME, eth, sizeof(eth), &buf, &len), 0);
	CU_ASSERT_EQUAL(hec_msg_decode(buf, len, &m, &used, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NULL(m.body);
	CU_ASSERT_EQUAL(m.len, sizeof(eth));
	CU_ASSERT(m.data && memcmp(m.data, eth, sizeof(eth)) == 0);
	hec_msg_clear(&m);
	free(buf);
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_NET_JOIN), "NET_JOIN");

	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REQUEST,
		"{\"op\":\"submit\",\"nodes\":1,\"ntasks\":1,\"time_limit\":0,\"name\":\"x\",\"priority\":0,"
		"\"cwd\":\"/\",\"env\":[],\"argv\":[\"a\"],\"partition\":\"vm\",\"vcpus\":0}",
		&m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "REQUEST: field 'vcpus' is out of range");
}

/* Snapshots of vm jobs: SNAPSHOT, SNAPSHOT_DONE and the snapshot request. */
static void test_snapshot_messages(void)
{
	static const struct {
		unsigned type;
		const char *body, *err; /* err NULL: valid */
	} cases[] = {
		{ HEC_MSG_SNAPSHOT, "{\"job\":7,\"req\":1,\"revert\":false}", NULL },
		{ HEC_MSG_SNAPSHOT, "{\"job\":7,\"req\":1764590000000000,\"revert\":true}", NULL },
		{ HEC_MSG_SNAPSHOT, "{\"job\":7,\"req\":1}", "SNAPSHOT: missing field 'revert'" },
		{ HEC_MSG_SNAPSHOT, "{\"job\":7,\"revert\":true}", "SNAPSHOT: missing field 'req'" },
		{ HEC_MSG_SNAPSHOT, "{\"req\":1,\"revert\":true}", "SNAPSHOT: missing field 'job'" },
		{ HEC_MSG_SNAPSHOT, "{\"job\":7,\"req\":1,\"revert\":1}",
		  "SNAPSHOT: field 'revert' must be true or false" },
		{ HEC_MSG_SNAPSHOT, "{\"job\":7,\"req\":0,\"revert\":false}",
		  "SNAPSHOT: field 'req' is out of range" },
		{ HEC_MSG_SNAPSHOT, "{\"job\":0,\"req\":1,\"revert\":false}",
		  "SNAPSHOT: field 'job' is out of range" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":160645120,\"ms\":2410}", NULL },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":0,\"ms\":0,"
		  "\"error\":\"savevm: No space left on device\"}", NULL },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"ms\":5}",
		  "SNAPSHOT_DONE: missing field 'bytes'" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":5}",
		  "SNAPSHOT_DONE: missing field 'ms'" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"bytes\":5,\"ms\":5}",
		  "SNAPSHOT_DONE: missing field 'req'" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":-1,\"ms\":5}",
		  "SNAPSHOT_DONE: field 'bytes' is out of range" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":5,\"ms\":-3}",
		  "SNAPSHOT_DONE: field 'ms' is out of range" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":\"5\",\"ms\":5}",
		  "SNAPSHOT_DONE: field 'bytes' must be an integer" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":1.5,\"ms\":5}",
		  "SNAPSHOT_DONE: field 'bytes' must be an integer" },
		{ HEC_MSG_SNAPSHOT_DONE, "{\"job\":7,\"req\":1,\"bytes\":5,\"ms\":5,\"error\":false}",
		  "SNAPSHOT_DONE: field 'error' must be a string" },
		{ HEC_MSG_REQUEST, "{\"op\":\"snapshot\",\"job\":7,\"revert\":false}", NULL },
		{ HEC_MSG_REQUEST, "{\"op\":\"snapshot\",\"job\":7}", "REQUEST: missing field 'revert'" },
		{ HEC_MSG_REQUEST, "{\"op\":\"snapshot\",\"revert\":true}", "REQUEST: missing field 'job'" },
		{ HEC_MSG_REQUEST, "{\"op\":\"snapshot\",\"job\":\"7\",\"revert\":true}",
		  "REQUEST: field 'job' must be an integer" },
		{ HEC_MSG_REQUEST, "{\"op\":\"snapshot\",\"job\":7,\"revert\":\"yes\"}",
		  "REQUEST: field 'revert' must be true or false" },
	};
	json_t *body = json_pack("{s:i,s:I,s:b}", "job", 7, "req", (json_int_t)3, "revert", 1);
	struct hec_msg m;
	uint8_t *frame;
	size_t len, used;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = decode_text(cases[i].type, cases[i].body, &m, err, sizeof(err));

		if (!cases[i].err) {
			CU_ASSERT_EQUAL(rc, 0);
			if (rc)
				fprintf(stderr, "\n  %s refused: %s\n", cases[i].body, err);
			else
				hec_msg_clear(&m);
			continue;
		}
		CU_ASSERT_EQUAL(rc, -EBADMSG);
		CU_ASSERT_STRING_EQUAL(err, cases[i].err);
	}

	/* what the controller sends encodes, and decodes to the same fields */
	CU_ASSERT_EQUAL_FATAL(hec_msg_encode(HEC_MSG_SNAPSHOT, body, &frame, &len), 0);
	CU_ASSERT_EQUAL(frame[3], HEC_MSG_SNAPSHOT);
	CU_ASSERT_EQUAL_FATAL(hec_msg_decode(frame, len, &m, &used, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(m.body, "req")), 3);
	CU_ASSERT(json_is_true(json_object_get(m.body, "revert")));
	hec_msg_clear(&m);
	free(frame);
	/* and a body that breaks the schema is refused by the encoder */
	json_object_set_new(body, "revert", json_integer(1));
	CU_ASSERT_EQUAL(hec_msg_encode(HEC_MSG_SNAPSHOT, body, &frame, &len), -EINVAL);
	json_decref(body);

	CU_ASSERT_EQUAL(HEC_MSG_SNAPSHOT, 45);
	CU_ASSERT_EQUAL(HEC_MSG_SNAPSHOT_DONE, 46);
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_SNAPSHOT), "SNAPSHOT");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_SNAPSHOT_DONE), "SNAPSHOT_DONE");
}

static void test_type_names(void)
{
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_REGISTER), "REGISTER");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_EXITED), "EXITED");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(0), "?");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(255), "?");
}

static const struct hec_cunit_test tests[] = {
	{ "roundtrip and partial frames", test_roundtrip },
	{ "data frames", test_data_frame },
	{ "bad headers", test_bad_headers },
	{ "schemas", test_schemas },
	{ "requests by op", test_requests },
	{ "type names", test_type_names },
	{ "vm partitions: LAUNCH, NET_JOIN, NET_FRAME, submit", test_vm_messages },
	{ "vm snapshots: SNAPSHOT, SNAPSHOT_DONE, the snapshot request", test_snapshot_messages },
	{ NULL, NULL },
};

int main(void)
{
	return hec_cunit_run("msg", tests);
}
