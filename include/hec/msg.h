/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec wire protocol: versioned, length-prefixed frames.
 *
 * Every frame is an 8-byte header followed by a payload:
 *
 *   offset 0  'H' 'C'          magic
 *   offset 2  version          HEC_PROTO_VERSION; a peer speaking another
 *                              version is refused with a clear error
 *   offset 3  type             enum hec_msg_type
 *   offset 4  length           payload bytes, big-endian uint32,
 *                              at most HEC_MSG_MAX
 *
 * The payload of a data frame (HEC_MSG_STDOUT, HEC_MSG_STDERR) is raw bytes;
 * every other payload is one JSON object whose fields are checked against
 * the type's schema (msg.c) before any handler sees it.  doc/protocol.md
 * lists every message and field.
 */
#ifndef HEC_MSG_H
#define HEC_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define HEC_PROTO_VERSION 1
#define HEC_MSG_HDR_LEN 8
#define HEC_MSG_MAX (4u << 20) /* 4 MiB: a job's environment fits */

/* vm partitions, as the CLI, the controller and the schemas check them */
#define HEC_VM_VCPUS_MAX 64
#define HEC_VM_FILES_MAX 256    /* files put into a guest image */
#define HEC_VM_MEM_MIN_MB 128   /* below this the guest kernel and initramfs do not fit */

enum hec_msg_type {
	HEC_MSG_ERROR = 1,      /* any -> any: {"error"} then the sender closes */
	/* CLI <-> controller (Unix socket, or TCP after AUTH) */
	HEC_MSG_REQUEST = 2,    /* {"op", ...}: schema chosen by "op" */
	HEC_MSG_RESPONSE = 3,   /* {"ok", "error"?, ...} */
	/* CLI over TCP: MUNGE authentication first (include/hec/auth.h) */
	HEC_MSG_AUTH_NONCE = 4, /* ctl -> CLI: {"nonce"}, on accept */
	HEC_MSG_AUTH = 5,       /* CLI -> ctl: {"cred"}: a MUNGE credential of the nonce */
	HEC_MSG_AUTH_OK = 6,    /* ctl -> CLI: {"uid","gid"}: requests may follow */
	/* agent <-> controller (TCP) */
	HEC_MSG_REGISTER = 10,  /* agent -> ctl */
	HEC_MSG_REGISTERED = 11,/* ctl -> agent */
	HEC_MSG_HEARTBEAT = 12, /* agent -> ctl */
	HEC_MSG_LAUNCH = 13,    /* ctl -> agent: create the job's partition */
	HEC_MSG_LAUNCHED = 14,  /* agent -> ctl: partition ready, or error */
	HEC_MSG_START = 15,     /* ctl -> batch agent: run the batch step */
	HEC_MSG_JOB_EXIT = 16,  /* batch agent -> ctl: batch step ended */
	HEC_MSG_EXIT_ACK = 17,  /* ctl -> agent: JOB_EXIT is recorded */
	HEC_MSG_KILL_JOB = 18,  /* ctl -> agent: kill processes, remove partition */
	HEC_MSG_JOB_GONE = 19,  /* agent -> ctl: partition removed */
	HEC_MSG_SHUTDOWN = 20,  /* ctl -> agent: clean up everything and exit */
	/* launch bridge (hec-launch) <-> agent (TCP) */
	HEC_MSG_SPAWN = 30,     /* bridge -> agent: run a command in a partition */
	HEC_MSG_SPAWNED = 31,   /* agent -> bridge: {"pid"} */
	HEC_MSG_STDOUT = 32,    /* agent -> bridge: raw bytes */
	HEC_MSG_STDERR = 33,    /* agent -> bridge: raw bytes */
	HEC_MSG_EXITED = 34,    /* agent -> bridge: {"exit", "signal"} */
	/* vm partitions: a job's private network between agents (TCP) */
	HEC_MSG_NET_JOIN = 35,  /* agent -> first node's agent: {"job","key","node"} */
	HEC_MSG_NET_FRAME = 36, /* both ways after NET_JOIN: one Ethernet frame, raw */
	/* gang scheduling: agent <-> controller (TCP) */
	HEC_MSG_TIME_REQ = 40,  /* agent -> ctl: {"t1"} clock probe */
	HEC_MSG_TIME_RESP = 41, /* ctl -> agent: {"t1","t2","t3"} */
	HEC_MSG_EPOCH = 42,     /* ctl -> agent: this node's slot table from an instant on */
	HEC_MSG_STATS_REQ = 43, /* ctl -> agent: {"req"} */
	HEC_MSG_STATS = 44,     /* agent -> ctl: switch records and CPU usage */
	/* 45, 46: retired (a per-node save of a running job's guests, replaced
	 * by checkpoints, 60..); not to be reused */
	/* checkpoint storage (doc/storage.md): client <-> hecstored, as libfabric messages
	 * on a connected endpoint; bulk data moves by RMA into the server's slots */
	HEC_MSG_STORE_HELLO = 50,   /* client -> server: {"key","client"}, first */
	HEC_MSG_STORE_WELCOME = 51, /* server -> client: {"server","slots","slot_size","base","rkey"} */
	HEC_MSG_STORE_REQ = 52,     /* client -> server: {"op","req",...}: schema chosen by "op" */
	HEC_MSG_STORE_REP = 53,     /* server -> client: {"req","error"?,...} */
	/* hecstored <-> controller (TCP, the agents' port) */
	HEC_MSG_STORE_REGISTER = 54, /* server -> ctl: {"name","key","addr","provider","dir","pid"} */
	HEC_MSG_STORE_STATUS = 55,   /* server -> ctl, periodic: space, chunks, health */
	/* coordinated checkpoints of vm jobs (doc/design.md "Checkpoint and restart") */
	HEC_MSG_CKPT_PREPARE = 60,  /* ctl -> agent: capture the job's partition at instant t */
	HEC_MSG_CKPT_CAPTURED = 61, /* agent -> ctl: the state is fixed (pause_us), or error */
	HEC_MSG_CKPT_STORED = 62,   /* agent -> ctl: the stream is durable (entry), or error */
	HEC_MSG_CKPT_PROGRESS = 63, /* agent -> ctl: bytes streamed so far */
	HEC_MSG_CKPT_REOPEN = 64,   /* ctl -> agent: every partition is captured: network on */
	HEC_MSG_CKPT_ABORT = 65,    /* ctl -> agent: stop this checkpoint here, network on */
	HEC_MSG_RESUME = 66,        /* ctl -> agent: a restarted job's guests run from instant t */
	/* application-assisted checkpoints of proc jobs (the program's library asks) */
	HEC_MSG_CKPT_ASK = 67,      /* agent -> ctl: {job}: the program wants a checkpoint now */
	HEC_MSG_CKPT_REFUSED = 68,  /* ctl -> agent: {job, error}: CKPT_ASK refused */
	HEC_MSG_CKPT_LOADED = 69,   /* agent -> ctl: {job, epoch, error?}: the program restored it, or not */
};

struct hec_msg {
	uint8_t version;
	uint8_t type;
	json_t *body;          /* owned; NULL for data frames */
	const uint8_t *data;   /* data frames: points into the decode buffer */
	size_t len;            /* payload length */
};

/** Name of a message type for logs ("LAUNCH"), or "?" if unknown. */
const char *hec_msg_type_name(unsigned type);

/**
 * Decode one frame from @buf (@avail bytes).
 * \return 0 and fills @out and *@consumed when a whole, valid frame is there;
 *         -EAGAIN when more bytes are needed (nothing consumed);
 *         -EPROTO for a bad magic, version, type or length, and -EBADMSG for
 *         a payload that is not valid JSON or breaks the type's schema; @err
 *         then holds a one-line reason.  After -EPROTO the stream cannot be
 *         resynchronised and the connection must be closed.
 * On success the caller frees with hec_msg_clear().
 */
int hec_msg_decode(const uint8_t *buf, size_t avail, struct hec_msg *out,
		   size_t *consumed, char *err, size_t errlen);

/** Check a JSON body against the schema of @type (and of "op" for requests).
 * \return 0, or -EBADMSG with a one-line reason in @err. */
int hec_msg_validate(unsigned type, const json_t *body, char *err, size_t errlen);

void hec_msg_clear(struct hec_msg *m);

/**
 * Encode a frame into a malloc'ed buffer.  @body (JSON types) is not stolen.
 * \return 0 with *@out / *@outlen set, -EINVAL for a body that is missing or
 *         breaks the schema (a bug in the sender), -EMSGSIZE when too big.
 */
int hec_msg_encode(unsigned type, const json_t *body, uint8_t **out, size_t *outlen);
int hec_msg_encode_data(unsigned type, const void *data, size_t len,
			uint8_t **out, size_t *outlen);
/** 1 for the data frame types (raw payload, no JSON body). */
int hec_msg_is_data(unsigned type);
/** The 8-byte header of a frame of @type with @len payload bytes (for
 *  senders that queue header and payload separately, without a copy).
 *  \return 0, or -EMSGSIZE past HEC_MSG_MAX. */
int hec_msg_header(uint8_t hdr[HEC_MSG_HDR_LEN], unsigned type, size_t len);
/** The payload length a frame's header at @hdr announces, or -1 if the
 *  header's magic is not ours (hec_msg_decode() then says why). */
long long hec_msg_peek_len(const uint8_t hdr[HEC_MSG_HDR_LEN]);

/*
 * Dispatch by handler tables.  Each receiving side keeps one const table of
 * struct hec_msg_handler, one row per message it accepts (per operation for
 * REQUEST); its dispatcher finds the row, checks the row's rule once, and
 * only then calls the handler.  A new message is one row on its receiving
 * side; hec_msg_handlers_check() (run when a daemon starts) refuses a table
 * that misses a message the side receives or has a row it should not.
 */

/* The sides that dispatch by a table, as the schema table in msg.c records
 * who receives each type (bits: a type may go to more than one). */
enum hec_msg_side {
	HEC_SIDE_AGENT = 1 << 0,   /* hecd, on its link to the controller */
	HEC_SIDE_CTL = 1 << 1,     /* hecctld, on an agent's connection */
	HEC_SIDE_CTL_CLI = 1 << 2, /* hecctld, on the CLI socket (REQUEST) */
	HEC_SIDE_STORE = 1 << 3,   /* hecstored, on a client's fabric endpoint */
};

/* Who may send a row's message; the dispatcher refuses anyone else. */
enum hec_msg_rule {
	HEC_RULE_NONE = 0,   /* invalid: catches a row left without a rule */
	/* agent links (HEC_SIDE_AGENT, HEC_SIDE_CTL) */
	HEC_RULE_PEER,       /* whoever is on the connection: the controller the agent
			      * dialled, or an agent not registered yet (REGISTER checks
			      * the cluster key itself) */
	HEC_RULE_REGISTERED, /* only after registration on this connection: at the agent,
			      * once REGISTERED came; at the controller, from the node
			      * that registered on it (never a storage server's) */
	/* the CLI socket (HEC_SIDE_CTL_CLI): users by the kernel's peer credentials */
	HEC_RULE_USER,       /* any local user */
	HEC_RULE_OWNER,      /* the owner of the job the request names ("job"), or root */
	HEC_RULE_ROOT,       /* root only */
	/* the controller's agent port: the storage server that registered on this
	 * connection (STORE_REGISTER, a PEER row, checks the cluster key); a node's
	 * connection may not send these */
	HEC_RULE_STORE,
	/* hecstored (HEC_SIDE_STORE) uses PEER (STORE_HELLO checks the cluster key itself)
	 * and REGISTERED (after a STORE_HELLO with the right key on this endpoint) */
};

struct hec_msg_handler {
	uint8_t type;           /* enum hec_msg_type */
	const char *op;         /* REQUEST, STORE_REQ: the operation; NULL for other types */
	enum hec_msg_rule rule;
	/* HEC_RULE_OWNER / HEC_RULE_ROOT: what the refused may not do, completing
	 * "only root may ..." ("shut the cluster down", "cancel it") */
	const char *what;
	/* the handler answers at once: the dispatcher runs nothing after it
	 * (a clock probe's answer is not held back by a scheduling pass) */
	int quick;
	/* @ctx is the side's own context; the rule has been checked */
	void (*fn)(void *ctx, const struct hec_msg *m);
};

/** The row of @table (@n rows) for @m: by type, and for REQUEST by "op".
 *  \return NULL if the table has none. */
const struct hec_msg_handler *hec_msg_handler_find(const struct hec_msg_handler *table,
						   size_t n, const struct hec_msg *m);

/** 1 if the schema table says @side receives @type. */
int hec_msg_received_by(unsigned type, enum hec_msg_side side);

/**
 * Check the table of @side against the schema table: every type @side
 * receives (every operation, for REQUEST) has exactly one row, no row is
 * for anything else, and every row has a handler and a rule of its side
 * (OWNER only for operations naming a job; OWNER and ROOT with their what).
 * \return 0, or -EINVAL with a one-line reason in @err.
 */
int hec_msg_handlers_check(const struct hec_msg_handler *table, size_t n,
			   enum hec_msg_side side, char *err, size_t errlen);

#endif
