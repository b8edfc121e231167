/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * MUNGE credentials for the CLI over TCP (include/hec/auth.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <munge.h>

#include "hec/auth.h"
#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"

int hec_auth_nonce(char buf[HEC_AUTH_NONCE_LEN + 1])
{
	return hec_random_hex(buf, HEC_AUTH_NONCE_BYTES);
}

/* A context on @socket (NULL or "": libmunge's default). */
static munge_ctx_t auth_ctx(const char *socket, char *err, size_t errlen)
{
	munge_ctx_t ctx = munge_ctx_create();

	if (!ctx) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (socket && *socket && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, socket) != EMUNGE_SUCCESS) {
		snprintf(err, errlen, "munge socket %s: %s", socket, munge_ctx_strerror(ctx));
		munge_ctx_destroy(ctx);
		return NULL;
	}
	return ctx;
}

static const char *sock_name(const char *socket)
{
	return socket && *socket ? socket : "its default socket";
}

int hec_auth_encode(const char *socket, const char *nonce, char **cred, char *err, size_t errlen)
{
	munge_ctx_t ctx = auth_ctx(socket, err, errlen);
	munge_err_t e;

	*cred = NULL;
	if (!ctx)
		return -ENOMEM;
	e = munge_ctx_set(ctx, MUNGE_OPT_TTL, HEC_AUTH_TTL);
	if (e == EMUNGE_SUCCESS)
		e = munge_encode(cred, ctx, nonce, (int)strlen(nonce));
	if (e == EMUNGE_SOCKET)
		snprintf(err, errlen, "cannot reach munged at %s: %s", sock_name(socket),
			 munge_ctx_strerror(ctx));
	else if (e != EMUNGE_SUCCESS)
		snprintf(err, errlen, "munged at %s refused a credential: %s", sock_name(socket),
			 munge_ctx_strerror(ctx));
	munge_ctx_destroy(ctx);
	if (e == EMUNGE_SUCCESS)
		return 0;
	free(*cred);
	*cred = NULL;
	return e == EMUNGE_SOCKET ? -ENOTCONN : e == EMUNGE_NO_MEMORY ? -ENOMEM : -EACCES;
}

/* Does anything accept on munged's socket?  \return 0 or -errno. */
static int munged_answers(munge_ctx_t ctx)
{
	char *path = NULL;
	int fd;

	if (munge_ctx_get(ctx, MUNGE_OPT_SOCKET, &path) != EMUNGE_SUCCESS || !path)
		return 0; /* cannot tell: let libmunge try */
	fd = hec_connect_unix(path);
	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int hec_auth_decode(const char *socket, const char *cred, const char *nonce, uid_t *uid,
		    gid_t *gid, int *down, char *err, size_t errlen)
{
	munge_ctx_t ctx = auth_ctx(socket, err, errlen);
	void *payload = NULL;
	int len = 0, rc = 0;
	munge_err_t e;

	if (!ctx)
		return -ENOMEM;
	if (*down) {
		rc = munged_answers(ctx);
		if (rc) {
			snprintf(err, errlen, "the controller cannot reach munged at %s: %s",
				 sock_name(socket), strerror(-rc));
			munge_ctx_destroy(ctx);
			return -ENOTCONN;
		}
	}
	e = munge_decode(cred, ctx, &payload, &len, uid, gid);
	*down = e == EMUNGE_SOCKET;
	switch (e) {
	case EMUNGE_SUCCESS:
		/* a credential made for another connection, or for nothing */
		if (len != (int)strlen(nonce) || memcmp(payload, nonce, (size_t)len)) {
			snprintf(err, errlen, "the credential is not for this connection (its payload is not the nonce sent)");
			rc = -EACCES;
		}
		break;
	case EMUNGE_SOCKET:
		snprintf(err, errlen, "the controller cannot reach munged at %s: %s",
			 sock_name(socket), munge_ctx_strerror(ctx));
		rc = -ENOTCONN;
		break;
	case EMUNGE_NO_MEMORY:
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		break;
	case EMUNGE_CRED_EXPIRED:
		snprintf(err, errlen, "the credential has expired (older than its time to live)");
		rc = -EACCES;
		break;
	case EMUNGE_CRED_REPLAYED:
		snprintf(err, errlen, "the credential was replayed (already used once)");
		rc = -EACCES;
		break;
	default:
		snprintf(err, errlen, "the credential is invalid: %s", munge_ctx_strerror(ctx));
		rc = -EACCES;
		break;
	}
	free(payload);
	munge_ctx_destroy(ctx);
	return rc;
}

/* One frame of @want (or the controller's ERROR, said in @err). */
static int read_expect(int fd, unsigned want, struct hec_msg *m, void **buf, int timeout_ms,
		       char *err, size_t errlen)
{
	char why[256] = "";
	int rc = hec_frame_read(fd, m, buf, timeout_ms, why, sizeof(why));

	if (rc == -ETIMEDOUT) {
		snprintf(err, errlen, "the controller did not answer within %d s", timeout_ms / 1000);
		return rc;
	}
	if (rc == -ECONNRESET) {
		snprintf(err, errlen, "the controller closed the connection");
		return -ENOTCONN;
	}
	if (rc) {
		snprintf(err, errlen, "bad answer from the controller: %s", why[0] ? why : strerror(-rc));
		return rc;
	}
	if (m->type == HEC_MSG_ERROR) {
		snprintf(err, errlen, "%s", json_string_value(json_object_get(m->body, "error")));
		rc = -EREMOTEIO;
	} else if (m->type != want) {
		snprintf(err, errlen, "unexpected %s message from the controller (expected %s)",
			 hec_msg_type_name(m->type), hec_msg_type_name(want));
		rc = -EPROTO;
	}
	if (rc) {
		hec_msg_clear(m);
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int hec_auth_client(int fd, const char *socket, int timeout_ms, char *err, size_t errlen)
{
	struct hec_msg m = { 0 };
	void *buf = NULL;
	char *cred = NULL;
	json_t *body;
	int rc;

	rc = read_expect(fd, HEC_MSG_AUTH_NONCE, &m, &buf, timeout_ms, err, errlen);
	if (rc)
		return rc;
	rc = hec_auth_encode(socket, json_string_value(json_object_get(m.body, "nonce")), &cred,
			     err, errlen);
	hec_msg_clear(&m);
	free(buf);
	buf = NULL;
	if (rc)
		return rc;
	body = json_pack("{s:s}", "cred", cred);
	free(cred);
	if (!body) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = hec_frame_write(fd, HEC_MSG_AUTH, body);
	json_decref(body);
	if (rc) {
		snprintf(err, errlen, "sending the credential: %s", strerror(-rc));
		return rc;
	}
	rc = read_expect(fd, HEC_MSG_AUTH_OK, &m, &buf, timeout_ms, err, errlen);
	if (rc)
		return rc;
	hec_msg_clear(&m);
	free(buf);
	return 0;
}
