/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The lines a proc job's program (libhecckpt, rank 0) sends its first
 * node's agent over HEC_CKPT_SOCK: one JSON object per line (APP-CKPT.md,
 * doc/protocol.md "Program <-> agent").  The decoder is the agent's guard
 * against a hostile program: every field it returns is present, typed and
 * in range; strings hold no NUL and no control characters.  It is fuzzed
 * (tests/fuzz/fuzz_msg.c).
 */
#ifndef HEC_CKPT_APPMSG_H
#define HEC_CKPT_APPMSG_H

#include <stddef.h>

/* A longer line is refused (the connection is then closed: no resync). */
#define HEC_APP_LINE_MAX 8192
#define HEC_APP_PATH_MAX 4096
#define HEC_APP_ERROR_MAX 1024

enum hec_app_op {
	HEC_APP_HELLO = 1,        /* {job >= 1, ranks >= 1} */
	HEC_APP_BEGIN,            /* {epoch >= 0}: 0 = the program asks for one */
	HEC_APP_WRITTEN,          /* {epoch >= 1, path, bytes >= 0} */
	HEC_APP_FAILED,           /* {epoch >= 0, error} */
	HEC_APP_RESTORED,         /* {epoch >= 1} */
	HEC_APP_RESTORE_FAILED,   /* {epoch >= 1, error} */
};

struct hec_app_msg {
	enum hec_app_op op;
	long long job, epoch, bytes;
	int ranks;
	char path[HEC_APP_PATH_MAX];
	char error[HEC_APP_ERROR_MAX];
};

/** Name of @op as it is spelled on the wire ("written"), "?" if unknown. */
const char *hec_app_op_name(enum hec_app_op op);

/**
 * Decode one line (@len bytes, without its '\n'; may hold anything).
 * Unknown fields are ignored; known ones must have their type and range.
 * \return 0 with @m filled, or -EBADMSG with a one-line reason in @err.
 */
int hec_app_msg_decode(const char *line, size_t len, struct hec_app_msg *m, char *err,
		       size_t errlen);

#endif
