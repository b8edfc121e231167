/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frame codec and message schemas (see include/hec/msg.h, doc/protocol.md).
 *
 * Everything a peer sends passes through hec_msg_decode(): handlers may rely
 * on the fields the schema marks required being present with the right JSON
 * type and range.  This is the code the fuzz target (tests/fuzz) exercises.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/auth.h"
#include "hec/msg.h"

enum field_kind { F_INT, F_STR, F_BOOL, F_STRS, F_INTS, F_OBJ, F_OBJS };

struct field {
	const char *name;
	enum field_kind kind;
	int required;
	long long min, max;          /* ints: value range; strings: max length */
	const struct field *sub;     /* F_OBJ / F_OBJS: schema of the element */
};

#define INT_REQ(n, lo, hi) { .name = n, .kind = F_INT, .required = 1, .min = lo, .max = hi }
#define INT_OPT(n, lo, hi) { .name = n, .kind = F_INT, .min = lo, .max = hi }
#define STR_REQ(n, len) { .name = n, .kind = F_STR, .required = 1, .max = len }
#define STR_OPT(n, len) { .name = n, .kind = F_STR, .max = len }
#define END { .name = NULL }

#define ID_MAX 2147483647LL
#define PATH_LEN 4096
#define ARGS_MAX 65536 /* elements in argv / env arrays */
#define NS_MAX 9223372036854775807LL
/* Instants of the controller's clock (ns since 1970) an agent schedules
 * from: up to 2096, so that an instant plus slots (up to 64 x 60 s) or a
 * wait never overflows. */
#define AT_MAX 4000000000000000000LL
#define TIME_MAX 253402300799LL /* s: 9999-12-31 */

static const struct field s_error[] = { STR_REQ("error", 4096), END };
static const struct field s_response[] = {
	{ .name = "ok", .kind = F_BOOL, .required = 1 }, STR_OPT("error", 4096), END };

/* the remote CLI's MUNGE exchange (include/hec/auth.h) */
static const struct field s_auth_nonce[] = {
	{ .name = "nonce", .kind = F_STR, .required = 1, .min = HEC_AUTH_NONCE_LEN,
	  .max = HEC_AUTH_NONCE_LEN }, END };
static const struct field s_auth[] = {
	{ .name = "cred", .kind = F_STR, .required = 1, .min = 1, .max = HEC_AUTH_CRED_MAX }, END };
static const struct field s_auth_ok[] = {
	INT_REQ("uid", 0, 4294967294LL), INT_REQ("gid", 0, 4294967294LL), END };

static const struct field s_topology[] = {
	INT_REQ("cores", 0, 1 << 20), INT_REQ("pus", 0, 1 << 20),
	INT_REQ("numa_nodes", 0, 1 << 16), INT_REQ("memory_mb", 0, 1LL << 40), END };
static const struct field s_exit[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("exit", 0, 255), INT_REQ("signal", 0, 128),
	STR_OPT("error", 4096), STR_OPT("note", 4096), INT_OPT("time", 0, TIME_MAX), END };
static const struct field s_register[] = {
	STR_REQ("node", 64), STR_REQ("key", 256), STR_REQ("hostname", 256),
	STR_REQ("addr", 300), STR_REQ("cpus", 4096),
	{ .name = "topology", .kind = F_OBJ, .required = 1, .sub = s_topology },
	{ .name = "partitions", .kind = F_INTS, .required = 1, .min = 1, .max = ID_MAX },
	{ .name = "started", .kind = F_INTS, .min = 1, .max = ID_MAX },
	{ .name = "exits", .kind = F_OBJS, .required = 1, .sub = s_exit },
	INT_REQ("pid", 1, ID_MAX), INT_OPT("rtt_ns", 0, NS_MAX), END };
static const struct field s_registered[] = { INT_REQ("heartbeat_ms", 1, 3600000), END };
static const struct field s_empty[] = { END };
/* the round trip of the agent's clock estimate (0: none yet), for the epochs' lead */
static const struct field s_heartbeat[] = { INT_OPT("rtt_ns", 0, NS_MAX), END };
static const struct field s_launch_node[] = {
	STR_REQ("name", 64), STR_REQ("addr", 300), INT_REQ("ranks", 1, 1 << 20), END };
/* LAUNCH's restore: the partition starts from checkpoint (job, epoch), stream part */
static const struct field s_launch_restore[] = {
	INT_REQ("epoch", 1, NS_MAX), STR_REQ("part", 64), STR_REQ("servers", 1 << 16),
	INT_REQ("replicas", 1, 64), STR_OPT("provider", 16), STR_OPT("image", 64),
	STR_OPT("hash", 16), INT_OPT("bytes", 0, NS_MAX), END };
static const struct field s_launch[] = {
	INT_REQ("job", 1, ID_MAX), STR_REQ("key", 256),
	INT_REQ("uid", 0, 4294967294LL), INT_REQ("gid", 0, 4294967294LL),
	{ .name = "nodes", .kind = F_OBJS, .required = 1, .sub = s_launch_node },
	STR_OPT("partition", 8), INT_OPT("vcpus", 1, HEC_VM_VCPUS_MAX), INT_OPT("mem_mb", 0, 1LL << 40),
	{ .name = "vm_files", .kind = F_STRS, .max = PATH_LEN }, STR_OPT("guest_key", 256),
	{ .name = "restore", .kind = F_OBJ, .sub = s_launch_restore }, END };
static const struct field s_launched[] = { INT_REQ("job", 1, ID_MAX), STR_OPT("error", 4096), END };
static const struct field s_start[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("ntasks", 1, 1 << 20), STR_REQ("cwd", PATH_LEN),
	{ .name = "env", .kind = F_STRS, .required = 1, .max = 1 << 17 },
	{ .name = "argv", .kind = F_STRS, .max = 1 << 17 },
	STR_OPT("script", 1 << 20), STR_REQ("output", PATH_LEN), STR_OPT("error", PATH_LEN),
	{ .name = "restored", .kind = F_BOOL }, END };
static const struct field s_job_only[] = { INT_REQ("job", 1, ID_MAX), END };
static const struct field s_spawn[] = {
	INT_REQ("job", 1, ID_MAX), STR_REQ("key", 256), STR_REQ("node", 64),
	STR_REQ("cmd", 1 << 17), END };
static const struct field s_spawn_net[] = {
	INT_REQ("job", 1, ID_MAX), STR_REQ("key", 256), STR_REQ("node", 64), END };
static const struct field s_spawned[] = { INT_REQ("pid", 1, ID_MAX), END };
static const struct field s_exited[] = { INT_REQ("exit", 0, 255), INT_REQ("signal", 0, 128), END };

static const struct field s_time_req[] = { INT_REQ("t1", 0, NS_MAX), END };
static const struct field s_time_resp[] = {
	INT_REQ("t1", 0, NS_MAX), INT_REQ("t2", 0, NS_MAX), INT_REQ("t3", 0, NS_MAX), END };
static const struct field s_epoch[] = {
	INT_REQ("epoch", 1, NS_MAX), INT_REQ("start", 0, AT_MAX),
	INT_REQ("slot_ns", 1000000, 60000000000LL), INT_REQ("nslots", 1, 64),
	{ .name = "slots", .kind = F_INTS, .required = 1, .min = 0, .max = ID_MAX },
	{ .name = "frozen", .kind = F_INTS, .required = 1, .min = 1, .max = ID_MAX }, END };
static const struct field s_stats_req[] = { INT_REQ("req", 1, NS_MAX), END };
static const struct field s_switch[] = {
	INT_REQ("epoch", 1, NS_MAX), INT_REQ("boundary", 0, NS_MAX),
	INT_REQ("planned", 0, NS_MAX), INT_REQ("actual", 0, NS_MAX),
	INT_REQ("freeze_ns", 0, NS_MAX), INT_REQ("thaw_ns", 0, NS_MAX), INT_OPT("waited", 0, 1), END };
static const struct field s_usage[] = { INT_REQ("job", 1, ID_MAX), INT_REQ("usec", 0, NS_MAX), END };
static const struct field s_vm_switch[] = {
	INT_REQ("job", 1, ID_MAX), STR_REQ("method", 8), INT_REQ("cgroup_ns", -1, NS_MAX),
	INT_REQ("qmp_ns", -1, NS_MAX), END };
static const struct field s_stats[] = {
	INT_REQ("req", 1, NS_MAX), INT_REQ("offset_ns", -NS_MAX, NS_MAX), INT_REQ("rtt_ns", 0, NS_MAX),
	INT_REQ("now", 0, NS_MAX),
	{ .name = "switches", .kind = F_OBJS, .required = 1, .sub = s_switch },
	{ .name = "usage", .kind = F_OBJS, .required = 1, .sub = s_usage },
	{ .name = "vm", .kind = F_OBJS, .sub = s_vm_switch }, END };
static const struct field s_ckpt_prepare[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), INT_REQ("t", 0, AT_MAX),
	STR_REQ("part", 64), STR_REQ("servers", 1 << 16), INT_REQ("replicas", 1, 64),
	STR_OPT("provider", 16), INT_REQ("timeout_ms", 1000, 86400000), STR_OPT("kind", 8), END };
static const struct field s_ckpt_captured[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), INT_OPT("pause_us", 0, NS_MAX),
	INT_OPT("slot_pause_us", 0, NS_MAX), { .name = "switched_out", .kind = F_BOOL },
	INT_OPT("at", 0, NS_MAX), STR_OPT("error", 4096), INT_OPT("ranks", 1, 1 << 20), END };
static const struct field s_ckpt_stored[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), STR_REQ("part", 64),
	INT_OPT("bytes", 0, NS_MAX), INT_OPT("ms", 0, NS_MAX),
	{ .name = "entry", .kind = F_OBJ, .sub = s_empty }, STR_OPT("image", 64),
	INT_OPT("pause_us", 0, NS_MAX), INT_OPT("slot_pause_us", 0, NS_MAX),
	STR_OPT("error", 4096), END };
static const struct field s_ckpt_progress[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), INT_REQ("bytes", 0, NS_MAX), END };
static const struct field s_ckpt_job_epoch[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), END };
/* application-assisted checkpoints of proc jobs (APP-CKPT) */
static const struct field s_ckpt_refused[] = { INT_REQ("job", 1, ID_MAX), STR_REQ("error", 4096), END };
static const struct field s_ckpt_loaded[] = {
	INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), STR_OPT("error", 4096), END };
static const struct field s_resume[] = { INT_REQ("job", 1, ID_MAX), INT_REQ("t", 0, AT_MAX), END };

/* Requests: the schema is chosen by "op". */
static const struct field s_req_submit[] = {
	STR_REQ("op", 16), INT_REQ("nodes", 1, 4096), INT_REQ("ntasks", 1, 1 << 20),
	INT_REQ("time_limit", 0, 365LL * 86400), STR_REQ("name", 128),
	INT_REQ("priority", -1000000, 1000000), STR_REQ("cwd", PATH_LEN),
	{ .name = "env", .kind = F_STRS, .required = 1, .max = 1 << 17 },
	{ .name = "argv", .kind = F_STRS, .max = 1 << 17 },
	STR_OPT("script", 1 << 20), STR_OPT("output", PATH_LEN), STR_OPT("error", PATH_LEN),
	{ .name = "share", .kind = F_BOOL }, INT_OPT("mem_mb", 0, 1LL << 40),
	STR_OPT("partition", 8), INT_OPT("vcpus", 1, HEC_VM_VCPUS_MAX),
	{ .name = "vm_files", .kind = F_STRS, .max = PATH_LEN },
	INT_OPT("ckpt_interval", 0, 365LL * 86400), INT_OPT("ckpt_keep", 1, 1000),
	STR_OPT("restart", 8), INT_OPT("max_restarts", 0, 1000), END };
static const struct field s_req_queue[] = {
	STR_REQ("op", 16), { .name = "all", .kind = F_BOOL }, INT_OPT("limit", 1, 100000),
	INT_OPT("before", 1, ID_MAX), END };
static const struct field s_req_job[] = { STR_REQ("op", 16), INT_REQ("job", 1, ID_MAX), END };
static const struct field s_req_plain[] = { STR_REQ("op", 16), END };
static const struct field s_req_ckpt[] = {
	STR_REQ("op", 16), INT_REQ("job", 1, ID_MAX), STR_OPT("when", 16), END };
static const struct field s_req_ckpt_delete[] = {
	STR_REQ("op", 16), INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX), END };
static const struct field s_req_ckpt_export[] = {
	STR_REQ("op", 16), INT_REQ("job", 1, ID_MAX), INT_REQ("epoch", 1, NS_MAX),
	STR_REQ("path", PATH_LEN), END };
static const struct field s_req_ckpt_import[] = {
	STR_REQ("op", 16), STR_REQ("path", PATH_LEN), INT_OPT("job", 1, ID_MAX), END };
static const struct field s_req_restart[] = {
	STR_REQ("op", 16), INT_REQ("job", 1, ID_MAX), INT_OPT("epoch", 1, NS_MAX),
	{ .name = "nodes", .kind = F_STRS, .max = 64 }, END };
static const struct field s_req_gang_set[] = {
	STR_REQ("op", 16), INT_OPT("slot_us", 1000, 60000000), INT_OPT("max_share", 1, 64),
	STR_OPT("timeslice", 8), END };

struct op_schema {
	const char *op;
	const struct field *schema;
};

static const struct op_schema req_ops[] = {
	{ "submit", s_req_submit }, { "queue", s_req_queue }, { "show", s_req_job },
	{ "cancel", s_req_job }, { "nodes", s_req_plain },
	{ "status", s_req_plain }, { "shutdown", s_req_plain }, { "gang", s_req_plain },
	{ "gang_stats", s_req_plain }, { "gang_set", s_req_gang_set }, { "storage", s_req_plain },
	{ "storage_repair", s_req_plain }, { "ckpt", s_req_ckpt }, { "ckpts", s_req_job },
	{ "ckpt_delete", s_req_ckpt_delete }, { "restart", s_req_restart },
	{ "ckpt_export", s_req_ckpt_export }, { "ckpt_import", s_req_ckpt_import },
};

/*
 * Storage (doc/storage.md).  A chunk hash is XXH3-64 as 16 lowercase hex
 * digits, a registered-memory address or key 1 to 16 hex digits: JSON
 * integers are signed and these are full 64-bit values.  A partition name is
 * checked for a safe file name by the server, not only by length here.
 */
#define HASH_LEN 16
#define SLOT_MAX (1LL << 30) /* bytes in one slot: the largest chunk */
#define STR_EXACT(n, len) { .name = n, .kind = F_STR, .required = 1, .min = len, .max = len }
static const struct field s_store_hello[] = { STR_REQ("key", 256), STR_REQ("client", 64), END };
static const struct field s_store_welcome[] = {
	STR_REQ("server", 64), INT_REQ("slots", 1, 64), INT_REQ("slot_size", 4096, SLOT_MAX),
	STR_REQ("base", 16), STR_REQ("rkey", 16), END };
static const struct field s_store_req[] = { STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), END };
static const struct field s_store_put[] = {
	STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), INT_REQ("job", 1, ID_MAX),
	INT_REQ("epoch", 1, NS_MAX), STR_REQ("part", 64), INT_REQ("idx", 0, ID_MAX),
	INT_REQ("len", 0, SLOT_MAX), STR_EXACT("hash", HASH_LEN), INT_REQ("slot", 0, 63), END };
static const struct field s_store_get[] = {
	STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), INT_REQ("job", 1, ID_MAX),
	INT_REQ("epoch", 1, NS_MAX), STR_REQ("part", 64), INT_REQ("idx", 0, ID_MAX),
	INT_REQ("slot", 0, 63), END };
static const struct field s_store_commit[] = {
	STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), INT_REQ("job", 1, ID_MAX),
	INT_REQ("epoch", 1, NS_MAX), INT_REQ("len", 0, SLOT_MAX), STR_EXACT("hash", HASH_LEN),
	INT_REQ("slot", 0, 63), END };
static const struct field s_store_manifest[] = {
	STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), INT_REQ("job", 1, ID_MAX),
	INT_OPT("epoch", 1, NS_MAX), INT_OPT("before", 1, NS_MAX), INT_REQ("slot", 0, 63), END };
static const struct field s_store_list[] = {
	STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), INT_OPT("job", 1, ID_MAX),
	INT_REQ("slot", 0, 63), END };
static const struct field s_store_epoch[] = {
	STR_REQ("op", 16), INT_REQ("req", 1, NS_MAX), INT_REQ("job", 1, ID_MAX),
	INT_REQ("epoch", 1, NS_MAX), END };
static const struct op_schema store_ops[] = {
	{ "put", s_store_put }, { "get", s_store_get }, { "commit", s_store_commit },
	{ "manifest", s_store_manifest }, { "list", s_store_list }, { "delete", s_store_epoch },
	{ "abort", s_store_epoch }, { "status", s_store_req },
};
/* The reply to every STORE_REQ: "error" set means the request failed and
 * nothing it would have changed was changed; the connection stays usable. */
static const struct field s_store_rep[] = {
	INT_REQ("req", 1, NS_MAX), STR_OPT("error", 4096), INT_OPT("len", 0, SLOT_MAX),
	{ .name = "hash", .kind = F_STR, .min = HASH_LEN, .max = HASH_LEN },
	INT_OPT("epoch", 1, NS_MAX), INT_OPT("total", 0, NS_MAX), INT_OPT("free", 0, NS_MAX),
	INT_OPT("used", 0, NS_MAX), INT_OPT("chunks", 0, NS_MAX), INT_OPT("manifests", 0, NS_MAX),
	INT_OPT("corrupt", 0, NS_MAX), END };
/* hecstored -> hecctld, on the controller's agent port */
static const struct field s_store_register[] = {
	STR_REQ("name", 64), STR_REQ("key", 256), STR_REQ("addr", 300), STR_REQ("provider", 16),
	STR_REQ("dir", PATH_LEN), INT_REQ("pid", 1, ID_MAX), END };
static const struct field s_store_status[] = {
	INT_REQ("total", 0, NS_MAX), INT_REQ("free", 0, NS_MAX), INT_REQ("used", 0, NS_MAX),
	INT_REQ("chunks", 0, NS_MAX), INT_REQ("manifests", 0, NS_MAX),
	INT_REQ("corrupt", 0, NS_MAX), INT_REQ("repaired", 0, NS_MAX),
	INT_REQ("clients", 0, NS_MAX), STR_OPT("health", 4096), END };

static const struct {
	const char *name;
	const struct field *schema; /* NULL: a data frame */
	unsigned to;                /* enum hec_msg_side bits: who dispatches it by a table */
} types[] = {
	[HEC_MSG_ERROR] = { "ERROR", s_error, HEC_SIDE_AGENT | HEC_SIDE_CTL },
	[HEC_MSG_REQUEST] = { "REQUEST", s_req_plain, HEC_SIDE_CTL_CLI },
	[HEC_MSG_RESPONSE] = { "RESPONSE", s_response, 0 },
	/* AUTH comes before any table's dispatch: ctl_cli.c takes it first */
	[HEC_MSG_AUTH_NONCE] = { "AUTH_NONCE", s_auth_nonce, 0 },
	[HEC_MSG_AUTH] = { "AUTH", s_auth, 0 },
	[HEC_MSG_AUTH_OK] = { "AUTH_OK", s_auth_ok, 0 },
	[HEC_MSG_REGISTER] = { "REGISTER", s_register, HEC_SIDE_CTL },
	[HEC_MSG_REGISTERED] = { "REGISTERED", s_registered, HEC_SIDE_AGENT },
	[HEC_MSG_HEARTBEAT] = { "HEARTBEAT", s_heartbeat, HEC_SIDE_CTL },
	[HEC_MSG_LAUNCH] = { "LAUNCH", s_launch, HEC_SIDE_AGENT },
	[HEC_MSG_LAUNCHED] = { "LAUNCHED", s_launched, HEC_SIDE_CTL },
	[HEC_MSG_START] = { "START", s_start, HEC_SIDE_AGENT },
	[HEC_MSG_JOB_EXIT] = { "JOB_EXIT", s_exit, HEC_SIDE_CTL },
	[HEC_MSG_EXIT_ACK] = { "EXIT_ACK", s_job_only, HEC_SIDE_AGENT },
	[HEC_MSG_KILL_JOB] = { "KILL_JOB", s_job_only, HEC_SIDE_AGENT },
	[HEC_MSG_JOB_GONE] = { "JOB_GONE", s_job_only, HEC_SIDE_CTL },
	[HEC_MSG_SHUTDOWN] = { "SHUTDOWN", s_empty, HEC_SIDE_AGENT },
	[HEC_MSG_SPAWN] = { "SPAWN", s_spawn, 0 },
	[HEC_MSG_SPAWNED] = { "SPAWNED", s_spawned, 0 },
	[HEC_MSG_STDOUT] = { "STDOUT", NULL, 0 },
	[HEC_MSG_STDERR] = { "STDERR", NULL, 0 },
	[HEC_MSG_EXITED] = { "EXITED", s_exited, 0 },
	[HEC_MSG_NET_JOIN] = { "NET_JOIN", s_spawn_net, 0 },
	[HEC_MSG_NET_FRAME] = { "NET_FRAME", NULL, 0 },
	[HEC_MSG_TIME_REQ] = { "TIME_REQ", s_time_req, HEC_SIDE_CTL },
	[HEC_MSG_TIME_RESP] = { "TIME_RESP", s_time_resp, HEC_SIDE_AGENT },
	[HEC_MSG_EPOCH] = { "EPOCH", s_epoch, HEC_SIDE_AGENT },
	[HEC_MSG_STATS_REQ] = { "STATS_REQ", s_stats_req, HEC_SIDE_AGENT },
	[HEC_MSG_STATS] = { "STATS", s_stats, HEC_SIDE_CTL },
	[HEC_MSG_STORE_HELLO] = { "STORE_HELLO", s_store_hello, HEC_SIDE_STORE },
	[HEC_MSG_STORE_WELCOME] = { "STORE_WELCOME", s_store_welcome, 0 },
	[HEC_MSG_STORE_REQ] = { "STORE_REQ", s_store_req, HEC_SIDE_STORE },
	[HEC_MSG_STORE_REP] = { "STORE_REP", s_store_rep, 0 },
	[HEC_MSG_STORE_REGISTER] = { "STORE_REGISTER", s_store_register, HEC_SIDE_CTL },
	[HEC_MSG_STORE_STATUS] = { "STORE_STATUS", s_store_status, HEC_SIDE_CTL },
	[HEC_MSG_CKPT_PREPARE] = { "CKPT_PREPARE", s_ckpt_prepare, HEC_SIDE_AGENT },
	[HEC_MSG_CKPT_CAPTURED] = { "CKPT_CAPTURED", s_ckpt_captured, HEC_SIDE_CTL },
	[HEC_MSG_CKPT_STORED] = { "CKPT_STORED", s_ckpt_stored, HEC_SIDE_CTL },
	[HEC_MSG_CKPT_PROGRESS] = { "CKPT_PROGRESS", s_ckpt_progress, HEC_SIDE_CTL },
	[HEC_MSG_CKPT_REOPEN] = { "CKPT_REOPEN", s_ckpt_job_epoch, HEC_SIDE_AGENT },
	[HEC_MSG_CKPT_ABORT] = { "CKPT_ABORT", s_ckpt_job_epoch, HEC_SIDE_AGENT },
	[HEC_MSG_RESUME] = { "RESUME", s_resume, HEC_SIDE_AGENT },
	[HEC_MSG_CKPT_ASK] = { "CKPT_ASK", s_job_only, HEC_SIDE_CTL },
	[HEC_MSG_CKPT_REFUSED] = { "CKPT_REFUSED", s_ckpt_refused, HEC_SIDE_AGENT },
	[HEC_MSG_CKPT_LOADED] = { "CKPT_LOADED", s_ckpt_loaded, HEC_SIDE_CTL },
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* The types whose schema is completed by the one of their "op". */
static const struct {
	unsigned type;
	const struct op_schema *ops;
	size_t nops;
} by_op[] = {
	{ HEC_MSG_REQUEST, req_ops, sizeof(req_ops) / sizeof(req_ops[0]) },
	{ HEC_MSG_STORE_REQ, store_ops, sizeof(store_ops) / sizeof(store_ops[0]) },
};

/* The op schemas of @type (their number in *@n), or NULL if "op" does not
 * choose its schema. */
static const struct op_schema *ops_of(unsigned type, size_t *n)
{
	for (size_t i = 0; i < sizeof(by_op) / sizeof(by_op[0]); i++)
		if (by_op[i].type == type) {
			*n = by_op[i].nops;
			return by_op[i].ops;
		}
	*n = 0;
	return NULL;
}

static int type_known(unsigned type)
{
	return type < NTYPES && types[type].name != NULL;
}

/* The op schema of @op for a type whose schema is chosen by "op", or NULL. */
static const struct op_schema *op_find(unsigned type, const char *op)
{
	if (!type_known(type) || !op)
		return NULL;
	size_t n;
	const struct op_schema *ops = ops_of(type, &n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(op, ops[i].op))
			return &ops[i];
	return NULL;
}

int hec_msg_is_data(unsigned type)
{
	return type == HEC_MSG_STDOUT || type == HEC_MSG_STDERR || type == HEC_MSG_NET_FRAME;
}

const char *hec_msg_type_name(unsigned type)
{
	return type_known(type) ? types[type].name : "?";
}

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int check_fields(const json_t *obj, const struct field *schema, const char *where,
			char *err, size_t errlen, int depth);

static int check_value(const json_t *v, const struct field *f, const char *where,
		       char *err, size_t errlen, int depth)
{
	size_t i;
	json_t *e;

	switch (f->kind) {
	case F_INT:
		if (!json_is_integer(v))
			return fail(err, errlen, "%s: field '%s' must be an integer", where, f->name);
		if (json_integer_value(v) < f->min || json_integer_value(v) > f->max)
			return fail(err, errlen, "%s: field '%s' is out of range", where, f->name);
		return 0;
	case F_STR:
		if (!json_is_string(v))
			return fail(err, errlen, "%s: field '%s' must be a string", where, f->name);
		if ((long long)json_string_length(v) > f->max)
			return fail(err, errlen, "%s: field '%s' is too long", where, f->name);
		if ((long long)json_string_length(v) < f->min)
			return fail(err, errlen, "%s: field '%s' is too short", where, f->name);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return fail(err, errlen, "%s: field '%s' contains a NUL byte", where, f->name);
		return 0;
	case F_BOOL:
		if (!json_is_boolean(v))
			return fail(err, errlen, "%s: field '%s' must be true or false", where, f->name);
		return 0;
	case F_STRS:
	case F_INTS:
	case F_OBJS:
		if (!json_is_array(v))
			return fail(err, errlen, "%s: field '%s' must be an array", where, f->name);
		if (json_array_size(v) > ARGS_MAX)
			return fail(err, errlen, "%s: field '%s' has too many elements", where, f->name);
		json_array_foreach(v, i, e) {
			if (f->kind == F_STRS) {
				if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e))
					return fail(err, errlen, "%s: field '%s' must hold strings without NUL bytes", where, f->name);
			} else if (f->kind == F_INTS) {
				if (!json_is_integer(e) || json_integer_value(e) < f->min ||
				    json_integer_value(e) > f->max)
					return fail(err, errlen, "%s: field '%s' must hold integers in range", where, f->name);
			} else {
				int rc = check_fields(e, f->sub, where, err, errlen, depth + 1);
				if (rc)
					return rc;
			}
		}
		return 0;
	case F_OBJ:
		return check_fields(v, f->sub, where, err, errlen, depth + 1);
	}
	return fail(err, errlen, "%s: field '%s' has an unknown kind", where, f->name);
}

static int check_fields(const json_t *obj, const struct field *schema, const char *where,
			char *err, size_t errlen, int depth)
{
	const struct field *f;

	if (depth > 4)
		return fail(err, errlen, "%s: nested too deeply", where);
	if (!json_is_object(obj))
		return fail(err, errlen, "%s: payload must be a JSON object", where);
	for (f = schema; f->name; f++) {
		json_t *v = json_object_get(obj, f->name);
		int rc;

		if (!v || json_is_null(v)) {
			if (f->required)
				return fail(err, errlen, "%s: missing field '%s'", where, f->name);
			continue;
		}
		rc = check_value(v, f, where, err, errlen, depth);
		if (rc)
			return rc;
	}
	return 0;
}

int hec_msg_validate(unsigned type, const json_t *body, char *err, size_t errlen)
{
	const struct field *schema;
	const char *where = hec_msg_type_name(type);
	size_t nops;
	int rc;

	if (!type_known(type) || hec_msg_is_data(type))
		return fail(err, errlen, "%s: not a JSON message type", where);
	schema = types[type].schema;
	rc = check_fields(body, schema, where, err, errlen, 0);
	if (rc || !ops_of(type, &nops))
		return rc;

	/* The remaining fields depend on the operation. */
	{
		const char *op = json_string_value(json_object_get(body, "op"));
		const struct op_schema *os = op_find(type, op);

		if (!os)
			return fail(err, errlen, "%s: unknown op '%s'", where, op);
		rc = check_fields(body, os->schema, where, err, errlen, 0);
		if (rc)
			return rc;
		if (os->schema == s_req_submit) { /* exactly one of argv and script */
			int has_argv = json_object_get(body, "argv") != NULL;
			int has_script = json_object_get(body, "script") != NULL;

			if (has_argv == has_script)
				return fail(err, errlen, "REQUEST: submit needs exactly one of 'argv' and 'script'");
			if (has_argv && json_array_size(json_object_get(body, "argv")) == 0)
				return fail(err, errlen, "REQUEST: submit: 'argv' is empty");
		}
	}
	return 0;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

long long hec_msg_peek_len(const uint8_t hdr[HEC_MSG_HDR_LEN])
{
	return hdr[0] == 'H' && hdr[1] == 'C' ? (long long)get_be32(hdr + 4) : -1;
}

int hec_msg_decode(const uint8_t *buf, size_t avail, struct hec_msg *out,
		   size_t *consumed, char *err, size_t errlen)
{
	uint32_t len;
	json_error_t jerr;
	json_t *body;
	int rc;

	memset(out, 0, sizeof(*out));
	if (avail < HEC_MSG_HDR_LEN) {
		/* Refuse a wrong magic early so a stray client is told at once. */
		if ((avail >= 1 && buf[0] != 'H') || (avail >= 2 && buf[1] != 'C'))
			goto bad_magic;
		return -EAGAIN;
	}
	if (buf[0] != 'H' || buf[1] != 'C')
		goto bad_magic;
	if (buf[2] != HEC_PROTO_VERSION) {
		if (err && errlen)
			snprintf(err, errlen, "protocol version %u not supported (this is version %u)",
				 buf[2], HEC_PROTO_VERSION);
		return -EPROTO;
	}
	if (!type_known(buf[3])) {
		if (err && errlen)
			snprintf(err, errlen, "unknown message type %u", buf[3]);
		return -EPROTO;
	}
	len = get_be32(buf + 4);
	if (len > HEC_MSG_MAX) {
		if (err && errlen)
			snprintf(err, errlen, "%s: payload of %u bytes exceeds the %u-byte limit",
				 hec_msg_type_name(buf[3]), len, HEC_MSG_MAX);
		return -EPROTO;
	}
	if (avail - HEC_MSG_HDR_LEN < len)
		return -EAGAIN;

	*consumed = HEC_MSG_HDR_LEN + len;
	out->version = buf[2];
	out->type = buf[3];
	out->len = len;
	if (hec_msg_is_data(out->type)) {
		out->data = buf + HEC_MSG_HDR_LEN;
		return 0;
	}
	body = json_loadb((const char *)buf + HEC_MSG_HDR_LEN, len,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!body) {
		if (err && errlen)
			snprintf(err, errlen, "%s: invalid JSON: %s", hec_msg_type_name(out->type), jerr.text);
		return -EBADMSG;
	}
	rc = hec_msg_validate(out->type, body, err, errlen);
	if (rc) {
		json_decref(body);
		return rc;
	}
	out->body = body;
	return 0;

bad_magic:
	if (err && errlen)
		snprintf(err, errlen, "not a hec frame (bad magic)");
	return -EPROTO;
}

void hec_msg_clear(struct hec_msg *m)
{
	json_decref(m->body);
	memset(m, 0, sizeof(*m));
}

int hec_msg_header(uint8_t hdr[HEC_MSG_HDR_LEN], unsigned type, size_t len)
{
	if (len > HEC_MSG_MAX)
		return -EMSGSIZE;
	hdr[0] = 'H';
	hdr[1] = 'C';
	hdr[2] = HEC_PROTO_VERSION;
	hdr[3] = (uint8_t)type;
	hdr[4] = (uint8_t)(len >> 24);
	hdr[5] = (uint8_t)(len >> 16);
	hdr[6] = (uint8_t)(len >> 8);
	hdr[7] = (uint8_t)len;
	return 0;
}

static int frame(unsigned type, const void *payload, size_t len, uint8_t **out, size_t *outlen)
{
	uint8_t *b;

	if (len > HEC_MSG_MAX)
		return -EMSGSIZE;
	b = malloc(HEC_MSG_HDR_LEN + len);
	if (!b)
		return -ENOMEM;
	hec_msg_header(b, type, len);
	if (len)
		memcpy(b + HEC_MSG_HDR_LEN, payload, len);
	*out = b;
	*outlen = HEC_MSG_HDR_LEN + len;
	return 0;
}

int hec_msg_encode(unsigned type, const json_t *body, uint8_t **out, size_t *outlen)
{
	char *text;
	int rc;

	if (!type_known(type) || hec_msg_is_data(type) || !body)
		return -EINVAL;
	if (hec_msg_validate(type, body, NULL, 0))
		return -EINVAL;
	text = json_dumps(body, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	rc = frame(type, text, strlen(text), out, outlen);
	free(text);
	return rc;
}

int hec_msg_encode_data(unsigned type, const void *data, size_t len,
			uint8_t **out, size_t *outlen)
{
	if (!hec_msg_is_data(type))
		return -EINVAL;
	return frame(type, data, len, out, outlen);
}

/* ---- handler tables ---- */

int hec_msg_received_by(unsigned type, enum hec_msg_side side)
{
	return type_known(type) && (types[type].to & side) != 0;
}

const struct hec_msg_handler *hec_msg_handler_find(const struct hec_msg_handler *table,
						   size_t n, const struct hec_msg *m)
{
	const char *op = NULL;
	size_t nops;
	int chosen = type_known(m->type) && ops_of(m->type, &nops);

	if (chosen)
		op = json_string_value(json_object_get(m->body, "op"));
	for (size_t i = 0; i < n; i++)
		if (table[i].type == m->type &&
		    (!chosen || (op && table[i].op && !strcmp(op, table[i].op))))
			return &table[i];
	return NULL;
}

static int requires_int(const struct field *schema, const char *name)
{
	for (const struct field *f = schema; f->name; f++)
		if (!strcmp(f->name, name))
			return f->kind == F_INT && f->required;
	return 0;
}

static int rule_of_side(enum hec_msg_rule rule, enum hec_msg_side side)
{
	if (side == HEC_SIDE_CTL_CLI)
		return rule == HEC_RULE_USER || rule == HEC_RULE_OWNER || rule == HEC_RULE_ROOT;
	if (side == HEC_SIDE_CTL)
		return rule == HEC_RULE_PEER || rule == HEC_RULE_REGISTERED ||
		       rule == HEC_RULE_STORE;
	return rule == HEC_RULE_PEER || rule == HEC_RULE_REGISTERED;
}

/* Rows of @table for @type (and @op for REQUEST). */
static size_t rows_for(const struct hec_msg_handler *table, size_t n, unsigned type, const char *op)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++)
		if (table[i].type == type && (!op || (table[i].op && !strcmp(table[i].op, op))))
			count++;
	return count;
}

static int check_table(const struct hec_msg_handler *table, size_t n, enum hec_msg_side side,
		       char *err, size_t errlen)
{
	size_t count, nops;

	for (size_t i = 0; i < n; i++) {
		const struct hec_msg_handler *h = &table[i];
		const char *what = h->op ? h->op : hec_msg_type_name(h->type);
		const struct field *schema = h->type < NTYPES ? types[h->type].schema : NULL;

		if (!hec_msg_received_by(h->type, side))
			return fail(err, errlen, "row %zu: %s is not received on this side", i, what);
		if (h->type < NTYPES && ops_of(h->type, &nops)) {
			const struct op_schema *os = op_find(h->type, h->op);

			if (!os)
				return fail(err, errlen, "row %zu: %s op '%s' is unknown", i,
					    hec_msg_type_name(h->type), what);
			schema = os->schema;
		} else if (h->op) {
			return fail(err, errlen, "row %zu: %s has an op", i, what);
		}
		if (!h->fn)
			return fail(err, errlen, "row %zu: %s has no handler", i, what);
		if (!rule_of_side(h->rule, side))
			return fail(err, errlen, "row %zu: %s: rule %d is not one of this side", i, what,
				    (int)h->rule);
		if ((h->rule == HEC_RULE_OWNER || h->rule == HEC_RULE_ROOT) && !h->what)
			return fail(err, errlen, "row %zu: %s: an owner or root rule needs its what", i,
				    what);
		if (h->rule == HEC_RULE_OWNER && !requires_int(schema, "job"))
			return fail(err, errlen, "row %zu: %s: owner rule without a required 'job'", i,
				    what);
	}
	for (unsigned t = 0; t < NTYPES; t++) {
		if (!hec_msg_received_by(t, side))
			continue;
		const struct op_schema *ops = ops_of(t, &nops);

		if (!ops) {
			count = rows_for(table, n, t, NULL);
			if (count != 1)
				return fail(err, errlen, "%s has %zu rows (expected 1)",
					    hec_msg_type_name(t), count);
			continue;
		}
		for (size_t k = 0; k < nops; k++) {
			count = rows_for(table, n, t, ops[k].op);
			if (count != 1)
				return fail(err, errlen, "%s op '%s' has %zu rows (expected 1)",
					    hec_msg_type_name(t), ops[k].op, count);
		}
	}
	return 0;
}

int hec_msg_handlers_check(const struct hec_msg_handler *table, size_t n,
			   enum hec_msg_side side, char *err, size_t errlen)
{
	return check_table(table, n, side, err, errlen) ? -EINVAL : 0;
}
