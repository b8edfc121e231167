/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: frame codec and message schemas (common/msg.c). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <CUnit/Basic.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hec/auth.h"
#include "hec/msg.h"
#include "hec/net.h"
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

	/* instants an agent schedules from are bounded (no overflow past them) */
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_EPOCH,
		"{\"epoch\":1,\"start\":9223372036854775807,\"slot_ns\":1000000,\"nslots\":1,\"slots\":[0],\"frozen\":[]}",
		&m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "EPOCH: field 'start' is out of range");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_EPOCH,
		"{\"epoch\":1,\"start\":1796599703065525000,\"slot_ns\":1000000,\"nslots\":1,\"slots\":[0],\"frozen\":[]}",
		&m, err, sizeof(err)), 0);
	hec_msg_clear(&m);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_RESUME, "{\"job\":1,\"t\":9000000000000000000}", &m, err,
				    sizeof(err)), -EBADMSG);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_CKPT_PREPARE,
		"{\"job\":1,\"epoch\":2,\"t\":9000000000000000000}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'t'"));

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

/* REGISTER's started (the jobs whose START the node has had): optional, so
 * an agent that does not say still registers; job ids only. */
static void test_register_started(void)
{
	struct hec_msg m;
	char err[256], text[512];

#define REG "{\"node\":\"n0\",\"key\":\"k\",\"hostname\":\"h\",\"addr\":\"a:1\",\"cpus\":\"\"," \
	"\"topology\":{\"cores\":1,\"pus\":1,\"numa_nodes\":1,\"memory_mb\":1}," \
	"\"partitions\":[4,5],\"exits\":[],\"pid\":9%s}"
	snprintf(text, sizeof(text), REG, "");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REGISTER, text, &m, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NULL(json_object_get(m.body, "started"));
	hec_msg_clear(&m);
	snprintf(text, sizeof(text), REG, ",\"started\":[5]");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REGISTER, text, &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(json_array_size(json_object_get(m.body, "started")), 1);
	hec_msg_clear(&m);
	snprintf(text, sizeof(text), REG, ",\"started\":[0]");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REGISTER, text, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'started'"));
	snprintf(text, sizeof(text), REG, ",\"started\":[\"5\"]");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_REGISTER, text, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'started'"));
#undef REG
}

/* Message types 45 and 46 are retired (msg.h): frames of them are refused
 * like any unknown type's. */
static void test_retired_types(void)
{
	struct hec_msg m;
	char err[256];

	for (unsigned type = 45; type <= 46; type++) {
		CU_ASSERT_EQUAL(decode_text(type, "{\"job\":7,\"req\":1}", &m, err, sizeof(err)),
				-EPROTO);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown message type"));
		CU_ASSERT_STRING_EQUAL(hec_msg_type_name(type), "?");
	}
}

/* Storage requests: the schema is chosen by "op" as for REQUEST, and the
 * 64-bit values travel as fixed-width hex strings. */
static void test_store_messages(void)
{
	struct hec_msg m;
	char err[256];
	const char *put = "{\"op\":\"put\",\"req\":1,\"job\":3,\"epoch\":2,\"part\":\"node0\","
			  "\"idx\":0,\"len\":10,\"slot\":1,\"hash\":";
	char buf[512];

	snprintf(buf, sizeof(buf), "%s\"0123456789abcdef\"}", put);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, buf, &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);
	snprintf(buf, sizeof(buf), "%s\"0123\"}", put);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, buf, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "STORE_REQ: field 'hash' is too short");
	snprintf(buf, sizeof(buf), "%s\"0123456789abcdef0\"}", put);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, buf, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "STORE_REQ: field 'hash' is too long");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, "{\"op\":\"shred\",\"req\":1}", &m, err,
				    sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "STORE_REQ: unknown op 'shred'");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, "{\"op\":\"get\",\"req\":1,\"job\":3,"
				    "\"epoch\":2,\"part\":\"p\",\"idx\":0,\"slot\":64}", &m, err,
				    sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "STORE_REQ: field 'slot' is out of range");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, "{\"op\":\"delete\",\"req\":1,\"job\":3}",
				    &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "STORE_REQ: missing field 'epoch'");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_STORE_REQ, "{\"op\":\"status\",\"req\":9}", &m, err,
				    sizeof(err)), 0);
	hec_msg_clear(&m);
	/* the side that dispatches STORE_REQ finds its row by op */
	CU_ASSERT_TRUE(hec_msg_received_by(HEC_MSG_STORE_REQ, HEC_SIDE_STORE));
	CU_ASSERT_FALSE(hec_msg_received_by(HEC_MSG_STORE_REQ, HEC_SIDE_CTL));
}

/* The remote CLI's MUNGE exchange: a nonce of exactly its length, a
 * credential of bounded length, an AUTH_OK with its user. */
static void test_auth_messages(void)
{
	char buf[HEC_AUTH_CRED_MAX + 64], nonce[HEC_AUTH_NONCE_LEN + 2];
	struct hec_msg m;
	char err[256];

	memset(nonce, 'a', sizeof(nonce));
	nonce[HEC_AUTH_NONCE_LEN] = 0;
	snprintf(buf, sizeof(buf), "{\"nonce\":\"%s\"}", nonce);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH_NONCE, buf, &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);
	nonce[HEC_AUTH_NONCE_LEN - 1] = 0;
	snprintf(buf, sizeof(buf), "{\"nonce\":\"%s\"}", nonce);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH_NONCE, buf, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "AUTH_NONCE: field 'nonce' is too short");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH, "{\"cred\":\"MUNGE:x:\"}", &m, err, sizeof(err)), 0);
	hec_msg_clear(&m);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH, "{\"cred\":\"\"}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "AUTH: field 'cred' is too short");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH, "{\"cred\":7}", &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "AUTH: field 'cred' must be a string");
	strcpy(buf, "{\"cred\":\"");
	memset(buf + strlen(buf), 'c', HEC_AUTH_CRED_MAX + 1);
	strcpy(buf + 9 + HEC_AUTH_CRED_MAX + 1, "\"}");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH, buf, &m, err, sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "AUTH: field 'cred' is too long");
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH_OK, "{\"uid\":65534,\"gid\":65534}", &m, err,
				    sizeof(err)), 0);
	hec_msg_clear(&m);
	CU_ASSERT_EQUAL(decode_text(HEC_MSG_AUTH_OK, "{\"uid\":-1,\"gid\":0}", &m, err,
				    sizeof(err)), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(err, "AUTH_OK: field 'uid' is out of range");
	/* taken before any table's dispatch (ctl_cli.c), so no side lists them */
	CU_ASSERT_FALSE(hec_msg_received_by(HEC_MSG_AUTH, HEC_SIDE_CTL_CLI));
}

static void test_type_names(void)
{
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_REGISTER), "REGISTER");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(HEC_MSG_EXITED), "EXITED");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(0), "?");
	CU_ASSERT_STRING_EQUAL(hec_msg_type_name(255), "?");
}

/* ---- handler tables ---- */

static int calls;
static void count_call(void *ctx, const struct hec_msg *m)
{
	(void)ctx;
	(void)m;
	calls++;
}

/* Who receives what, as doc/protocol.md's direction column says. */
static const unsigned to_agent[] = {
	HEC_MSG_ERROR, HEC_MSG_REGISTERED, HEC_MSG_LAUNCH, HEC_MSG_START, HEC_MSG_EXIT_ACK,
	HEC_MSG_KILL_JOB, HEC_MSG_SHUTDOWN, HEC_MSG_TIME_RESP, HEC_MSG_EPOCH, HEC_MSG_STATS_REQ,
	HEC_MSG_CKPT_PREPARE, HEC_MSG_CKPT_REOPEN, HEC_MSG_CKPT_ABORT, HEC_MSG_CKPT_REFUSED,
	HEC_MSG_RESUME,
};
static const unsigned to_ctl[] = {
	HEC_MSG_ERROR, HEC_MSG_REGISTER, HEC_MSG_HEARTBEAT, HEC_MSG_LAUNCHED, HEC_MSG_JOB_EXIT,
	HEC_MSG_JOB_GONE, HEC_MSG_TIME_REQ, HEC_MSG_STATS,
	HEC_MSG_STORE_REGISTER, HEC_MSG_STORE_STATUS, HEC_MSG_CKPT_CAPTURED, HEC_MSG_CKPT_STORED,
	HEC_MSG_CKPT_PROGRESS, HEC_MSG_CKPT_ASK, HEC_MSG_CKPT_LOADED,
};
static const char *const req_ops[] = {
	"submit", "queue", "show", "cancel", "nodes", "status", "shutdown", "gang",
	"gang_stats", "gang_set", "storage", "ckpt", "ckpts", "ckpt_delete", "restart",
	"ckpt_export", "ckpt_import",
	"storage_repair",
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static int listed(const unsigned *list, size_t n, unsigned type)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == type)
			return 1;
	return 0;
}

static void test_sides(void)
{
	for (unsigned t = 0; t < 256; t++) {
		CU_ASSERT_EQUAL(hec_msg_received_by(t, HEC_SIDE_AGENT), listed(to_agent, N(to_agent), t));
		CU_ASSERT_EQUAL(hec_msg_received_by(t, HEC_SIDE_CTL), listed(to_ctl, N(to_ctl), t));
		CU_ASSERT_EQUAL(hec_msg_received_by(t, HEC_SIDE_CTL_CLI), t == HEC_MSG_REQUEST);
	}
	/* data frames and the bridge's messages go to no table */
	CU_ASSERT_FALSE(hec_msg_received_by(HEC_MSG_SPAWN, HEC_SIDE_AGENT | HEC_SIDE_CTL));
	CU_ASSERT_FALSE(hec_msg_received_by(HEC_MSG_NET_FRAME, HEC_SIDE_AGENT | HEC_SIDE_CTL));
}

/* A table with one row for every type of @list (rule @rule); room for 4 more rows. */
static struct hec_msg_handler *table_for(const unsigned *list, size_t n, enum hec_msg_rule rule)
{
	struct hec_msg_handler *t = calloc(n + 4, sizeof(*t));

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	for (size_t i = 0; i < n; i++)
		t[i] = (struct hec_msg_handler){ .type = (uint8_t)list[i], .rule = rule, .fn = count_call };
	return t;
}

static struct hec_msg_handler *cli_table(void)
{
	struct hec_msg_handler *t = calloc(N(req_ops) + 4, sizeof(*t));

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	for (size_t i = 0; i < N(req_ops); i++)
		t[i] = (struct hec_msg_handler){ .type = HEC_MSG_REQUEST, .op = req_ops[i],
						 .rule = HEC_RULE_USER, .fn = count_call };
	return t;
}

/* The check fails on @t (@n rows) with a reason containing @why. */
static void expect_bad(const struct hec_msg_handler *t, size_t n, enum hec_msg_side side,
		       const char *why)
{
	char err[256] = "";

	CU_ASSERT_EQUAL(hec_msg_handlers_check(t, n, side, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fprintf(stderr, "reason '%s' does not say '%s'\n", err, why);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, why));
}

static void test_handlers_check_links(void)
{
	size_t na = N(to_agent), nc = N(to_ctl);
	struct hec_msg_handler *a = table_for(to_agent, na, HEC_RULE_REGISTERED);
	struct hec_msg_handler *c = table_for(to_ctl, nc, HEC_RULE_PEER);
	char err[256];

	CU_ASSERT_EQUAL(hec_msg_handlers_check(a, na, HEC_SIDE_AGENT, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(hec_msg_handlers_check(c, nc, HEC_SIDE_CTL, err, sizeof(err)), 0);
	/* each side's table is not the other's */
	expect_bad(a, na, HEC_SIDE_CTL, "REGISTERED is not received on this side");
	expect_bad(c, nc, HEC_SIDE_AGENT, "REGISTER is not received on this side");

	/* a missing row, and a second one */
	expect_bad(a, na - 1, HEC_SIDE_AGENT, "RESUME has 0 rows (expected 1)");
	a[na] = a[0];
	expect_bad(a, na + 1, HEC_SIDE_AGENT, "ERROR has 2 rows (expected 1)");
	/* a row for a message only bridges send */
	a[na] = (struct hec_msg_handler){ .type = HEC_MSG_SPAWN, .rule = HEC_RULE_PEER, .fn = count_call };
	expect_bad(a, na + 1, HEC_SIDE_AGENT, "row 15: SPAWN is not received");
	a[na].type = 200;
	expect_bad(a, na + 1, HEC_SIDE_AGENT, "row 15: ? is not received");

	/* rows without a handler, a rule, or with a rule of the CLI socket */
	c[2].fn = NULL;
	expect_bad(c, nc, HEC_SIDE_CTL, "row 2: HEARTBEAT has no handler");
	c[2].fn = count_call;
	c[3].rule = HEC_RULE_NONE;
	expect_bad(c, nc, HEC_SIDE_CTL, "row 3: LAUNCHED: rule 0 is not one of this side");
	c[3].rule = HEC_RULE_ROOT;
	expect_bad(c, nc, HEC_SIDE_CTL, "LAUNCHED: rule");
	/* the storage servers' rule is the controller's agent port's only */
	c[3].rule = HEC_RULE_STORE;
	CU_ASSERT_EQUAL(hec_msg_handlers_check(c, nc, HEC_SIDE_CTL, err, sizeof(err)), 0);
	a[0].rule = HEC_RULE_STORE;
	expect_bad(a, na, HEC_SIDE_AGENT, "row 0: ERROR: rule");
	a[0].rule = HEC_RULE_REGISTERED;
	c[3].rule = HEC_RULE_REGISTERED;
	/* only requests have an op */
	c[4].op = "submit";
	expect_bad(c, nc, HEC_SIDE_CTL, "row 4: submit has an op");
	c[4].op = NULL;
	CU_ASSERT_EQUAL(hec_msg_handlers_check(c, nc, HEC_SIDE_CTL, err, sizeof(err)), 0);
	free(a);
	free(c);
}

static void test_handlers_check_requests(void)
{
	size_t n = N(req_ops);
	struct hec_msg_handler *t = cli_table();
	char err[256];

	CU_ASSERT_EQUAL(hec_msg_handlers_check(t, n, HEC_SIDE_CTL_CLI, err, sizeof(err)), 0);
	/* every op needs its row */
	expect_bad(t, n - 1, HEC_SIDE_CTL_CLI, "REQUEST op 'storage_repair' has 0 rows");
	t[n] = t[1];
	expect_bad(t, n + 1, HEC_SIDE_CTL_CLI, "REQUEST op 'queue' has 2 rows");
	t[n].op = "frobnicate";
	expect_bad(t, n + 1, HEC_SIDE_CTL_CLI, "row 18: REQUEST op 'frobnicate' is unknown");
	t[n].op = NULL;
	expect_bad(t, n + 1, HEC_SIDE_CTL_CLI, "row 18: REQUEST op 'REQUEST' is unknown");
	/* only REQUEST comes on the CLI socket, and with the CLI's rules */
	t[n] = (struct hec_msg_handler){ .type = HEC_MSG_ERROR, .rule = HEC_RULE_USER, .fn = count_call };
	expect_bad(t, n + 1, HEC_SIDE_CTL_CLI, "row 18: ERROR is not received");
	t[0].rule = HEC_RULE_REGISTERED;
	expect_bad(t, n, HEC_SIDE_CTL_CLI, "row 0: submit: rule");
	t[0].rule = HEC_RULE_USER;

	/* owner and root rules say what is refused; owner needs a job to own */
	t[3].rule = HEC_RULE_OWNER; /* cancel */
	expect_bad(t, n, HEC_SIDE_CTL_CLI, "row 3: cancel: an owner or root rule needs its what");
	t[3].what = "cancel it";
	t[6].rule = HEC_RULE_ROOT; /* shutdown */
	expect_bad(t, n, HEC_SIDE_CTL_CLI, "row 6: shutdown: an owner or root rule needs its what");
	t[6].what = "shut the cluster down";
	CU_ASSERT_EQUAL(hec_msg_handlers_check(t, n, HEC_SIDE_CTL_CLI, err, sizeof(err)), 0);
	t[5].rule = HEC_RULE_OWNER; /* status names no job */
	t[5].what = "see it";
	expect_bad(t, n, HEC_SIDE_CTL_CLI, "row 5: status: owner rule without a required 'job'");
	t[5].rule = HEC_RULE_ROOT;
	CU_ASSERT_EQUAL(hec_msg_handlers_check(t, n, HEC_SIDE_CTL_CLI, err, sizeof(err)), 0);
	free(t);
}

static void test_handler_find(void)
{
	struct hec_msg_handler *t = cli_table();
	struct hec_msg_handler *c = table_for(to_ctl, N(to_ctl), HEC_RULE_REGISTERED);
	struct hec_msg m = { .type = HEC_MSG_REQUEST };
	const struct hec_msg_handler *h;

	m.body = json_pack("{s:s,s:i}", "op", "cancel", "job", 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m.body);
	h = hec_msg_handler_find(t, N(req_ops), &m);
	CU_ASSERT_PTR_EQUAL(h, &t[3]);
	/* by "op", not by position or prefix */
	json_object_set_new(m.body, "op", json_string("canc"));
	CU_ASSERT_PTR_NULL(hec_msg_handler_find(t, N(req_ops), &m));
	json_object_set_new(m.body, "op", json_string("gang_set"));
	CU_ASSERT_PTR_EQUAL(hec_msg_handler_find(t, N(req_ops), &m), &t[9]);
	json_object_set_new(m.body, "op", json_string("gang"));
	CU_ASSERT_PTR_EQUAL(hec_msg_handler_find(t, N(req_ops), &m), &t[7]);
	/* a request does not match a table of agent messages, nor they the CLI's */
	CU_ASSERT_PTR_NULL(hec_msg_handler_find(c, N(to_ctl), &m));
	json_decref(m.body);
	m = (struct hec_msg){ .type = HEC_MSG_JOB_GONE };
	CU_ASSERT_PTR_NULL(hec_msg_handler_find(t, N(req_ops), &m));
	h = hec_msg_handler_find(c, N(to_ctl), &m);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(h->type, HEC_MSG_JOB_GONE);
	calls = 0;
	h->fn(NULL, &m);
	CU_ASSERT_EQUAL(calls, 1);
	m.type = HEC_MSG_LAUNCH;
	CU_ASSERT_PTR_NULL(hec_msg_handler_find(c, N(to_ctl), &m));
	free(t);
	free(c);
}

static void no_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	(void)c;
	(void)m;
	(void)arg;
}

static void no_close(struct hec_conn *c, const char *reason, void *arg)
{
	(void)c;
	(void)reason;
	(void)arg;
}

/* One frame queued on two connections arrives whole on both (the
 * connections hold it after its maker let go); a body that breaks its
 * schema makes none; a closing connection takes none. */
static void test_shared_frame(void)
{
	struct event_base *base = event_base_new();
	json_t *body = json_pack("{s:I,s:s}", "job", (json_int_t)7, "error", "x");
	struct hec_conn *c[2];
	struct hec_frame *f = NULL;
	struct hec_msg m;
	void *buf;
	char err[256];
	int sv[2][2];

	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	CU_ASSERT_EQUAL(hec_frame_new(HEC_MSG_LAUNCHED, body, &f), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		fcntl(sv[i][0], F_SETFL, O_NONBLOCK);
		c[i] = hec_conn_new(base, sv[i][0], "test", no_msg, no_close, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
		CU_ASSERT_EQUAL(hec_conn_send_frame(c[i], f), 0);
	}
	hec_frame_put(f);
	for (int k = 0; k < 10 && (hec_conn_pending(c[0]) || hec_conn_pending(c[1])); k++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	for (int i = 0; i < 2; i++) {
		buf = NULL;
		CU_ASSERT_EQUAL(hec_frame_read(sv[i][1], &m, &buf, 1000, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(m.type, HEC_MSG_LAUNCHED);
		CU_ASSERT_TRUE(json_equal(m.body, body));
		hec_msg_clear(&m);
		free(buf);
	}
	json_object_del(body, "job"); /* LAUNCHED without its job */
	f = NULL;
	CU_ASSERT_EQUAL(hec_frame_new(HEC_MSG_LAUNCHED, body, &f), -EINVAL);
	CU_ASSERT_PTR_NULL(f);
	CU_ASSERT_EQUAL(hec_frame_new(HEC_MSG_HEARTBEAT, NULL, &f), -EINVAL);
	json_object_set_new(body, "job", json_integer(8));
	CU_ASSERT_EQUAL_FATAL(hec_frame_new(HEC_MSG_LAUNCHED, body, &f), 0);
	hec_conn_send_error_and_close(c[0], "closing");
	CU_ASSERT_EQUAL(hec_conn_send_frame(c[0], f), -EPIPE);
	hec_frame_put(f);
	for (int i = 0; i < 2; i++) {
		hec_conn_free(c[i]);
		close(sv[i][1]);
	}
	json_decref(body);
	event_base_free(base);
}

static const struct hec_cunit_test tests[] = {
	{ "one frame shared by connections", test_shared_frame },
	{ "roundtrip and partial frames", test_roundtrip },
	{ "data frames", test_data_frame },
	{ "bad headers", test_bad_headers },
	{ "schemas", test_schemas },
	{ "requests by op", test_requests },
	{ "type names", test_type_names },
	{ "remote CLI: AUTH_NONCE, AUTH, AUTH_OK", test_auth_messages },
	{ "storage: STORE_REQ by op, hex fields", test_store_messages },
	{ "vm partitions: LAUNCH, NET_JOIN, NET_FRAME, submit", test_vm_messages },
	{ "REGISTER: started", test_register_started },
	{ "retired types 45 and 46", test_retired_types },
	{ "handler tables: who receives what", test_sides },
	{ "handler tables: agent links checked against the schemas", test_handlers_check_links },
	{ "handler tables: requests checked against the ops", test_handlers_check_requests },
	{ "handler tables: lookup by type and op", test_handler_find },
	{ NULL, NULL },
};

int main(void)
{
	return hec_cunit_run("msg", tests);
}
