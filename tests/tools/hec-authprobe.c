/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test tool: one TCP connection to a controller's cli_listen, answering its
 * AUTH_NONCE as an honest or a hostile client would, then printing every
 * frame that comes back ("TYPE {json}") until the controller closes.
 *
 * Usage: hec-authprobe HOST:PORT MODE [CRED]   ($HEC_MUNGE_SOCKET: munged)
 *   good      a credential of the nonce; prints "CRED <cred>" first, then
 *             sends a status REQUEST after AUTH_OK
 *   replay    CRED (from an earlier connection) instead of a fresh one
 *   garbage   a string that is no credential
 *   wrong     a valid credential whose payload is not the nonce
 *   expired   a credential of the nonce with a 1 s time to live, sent 3 s late
 *   none      a REQUEST without any AUTH
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <munge.h>

#include "hec/auth.h"
#include "hec/msg.h"
#include "hec/net.h"

#define WAIT_MS 10000

/* A credential of @payload living @ttl s, or NULL (said on stderr). */
static char *encode(const char *payload, int ttl)
{
	const char *sock = getenv("HEC_MUNGE_SOCKET");
	munge_ctx_t ctx = munge_ctx_create();
	char *cred = NULL;

	if (!ctx)
		return NULL;
	if ((sock && *sock && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, sock) != EMUNGE_SUCCESS) ||
	    munge_ctx_set(ctx, MUNGE_OPT_TTL, ttl) != EMUNGE_SUCCESS ||
	    munge_encode(&cred, ctx, payload, (int)strlen(payload)) != EMUNGE_SUCCESS) {
		fprintf(stderr, "hec-authprobe: munge: %s\n", munge_ctx_strerror(ctx));
		free(cred);
		cred = NULL;
	}
	munge_ctx_destroy(ctx);
	return cred;
}

static int send_json(int fd, unsigned type, json_t *body)
{
	int rc = body ? hec_frame_write(fd, type, body) : -ENOMEM;

	json_decref(body);
	if (rc)
		fprintf(stderr, "hec-authprobe: send %s: %s\n", hec_msg_type_name(type), strerror(-rc));
	return rc;
}

/* Print frames until the peer closes; after AUTH_OK, one status REQUEST. */
static int print_replies(int fd, int ask)
{
	for (;;) {
		struct hec_msg m = { 0 };
		char err[256] = "", *text;
		void *buf = NULL;
		int rc = hec_frame_read(fd, &m, &buf, WAIT_MS, err, sizeof(err));

		if (rc == -ECONNRESET) {
			printf("CLOSED\n");
			return 0;
		}
		if (rc) {
			printf("READ-ERROR %s\n", err[0] ? err : strerror(-rc));
			return 1;
		}
		text = json_dumps(m.body, JSON_COMPACT);
		printf("%s %s\n", hec_msg_type_name(m.type), text ? text : "?");
		fflush(stdout);
		free(text);
		if (m.type == HEC_MSG_AUTH_OK && ask)
			send_json(fd, HEC_MSG_REQUEST, json_pack("{s:s}", "op", "status"));
		if (m.type == HEC_MSG_RESPONSE) {
			hec_msg_clear(&m);
			free(buf);
			return 0;
		}
		hec_msg_clear(&m);
		free(buf);
	}
}

int main(int argc, char **argv)
{
	struct hec_msg m = { 0 };
	const char *mode, *nonce;
	char err[256] = "", *cred = NULL;
	void *buf = NULL;
	int fd, rc;

	if (argc < 3 || (!strcmp(argv[2], "replay") && argc < 4)) {
		fprintf(stderr, "usage: hec-authprobe HOST:PORT good|replay CRED|garbage|wrong|expired|none\n");
		return 2;
	}
	mode = argv[2];
	fd = hec_connect_tcp(argv[1], WAIT_MS);
	if (fd < 0) {
		fprintf(stderr, "hec-authprobe: connect %s: %s\n", argv[1], strerror(-fd));
		return 1;
	}
	rc = hec_frame_read(fd, &m, &buf, WAIT_MS, err, sizeof(err));
	if (rc || m.type != HEC_MSG_AUTH_NONCE) {
		fprintf(stderr, "hec-authprobe: expected AUTH_NONCE: %s\n",
			rc ? (err[0] ? err : strerror(-rc)) : hec_msg_type_name(m.type));
		return 1;
	}
	nonce = json_string_value(json_object_get(m.body, "nonce"));
	if (!strcmp(mode, "none")) {
		hec_msg_clear(&m);
		free(buf);
		rc = send_json(fd, HEC_MSG_REQUEST, json_pack("{s:s}", "op", "status")) ? 1 :
		     print_replies(fd, 0);
		close(fd);
		return rc;
	}
	if (!strcmp(mode, "good")) {
		cred = encode(nonce, HEC_AUTH_TTL);
		if (cred)
			printf("CRED %s\n", cred);
	} else if (!strcmp(mode, "replay") || !strcmp(mode, "garbage")) {
		cred = strdup(!strcmp(mode, "replay") ? argv[3] : "MUNGE:this-is-no-credential:");
	} else if (!strcmp(mode, "wrong")) {
		cred = encode("a payload that is not the nonce", HEC_AUTH_TTL);
	} else if (!strcmp(mode, "expired")) {
		cred = encode(nonce, 1);
		sleep(3);
	} else {
		fprintf(stderr, "hec-authprobe: unknown mode '%s'\n", mode);
		return 2;
	}
	hec_msg_clear(&m);
	free(buf);
	if (!cred)
		return 1;
	rc = send_json(fd, HEC_MSG_AUTH, json_pack("{s:s}", "cred", cred));
	free(cred);
	if (rc)
		return 1;
	rc = print_replies(fd, !strcmp(mode, "good"));
	close(fd);
	return rc;
}
