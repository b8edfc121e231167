/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Finding the cluster and talking to its controller over the Unix socket,
 * or over TCP with a MUNGE credential (--controller, $HEC_CONTROLLER): one
 * connection per request, as the controller answers each REQUEST with
 * exactly one RESPONSE.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hec/auth.h"
#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"
#include "cli/cli.h"

/* Long enough for a controller busy committing to disk, short enough that a
 * wedged one does not hang a script forever. */
#define CLI_REPLY_TIMEOUT_MS 60000
#define CLI_CONNECT_TIMEOUT_MS 10000

void cli_err(const char *fmt, ...)
{
	char line[2 * CLI_ERRLEN], safe[8 * CLI_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* (the controller's sentences may echo what a user typed) */
	fprintf(stderr, "hec: %s\n", cli_printable(line, safe, sizeof(safe)));
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char line[2 * CLI_ERRLEN], safe[8 * CLI_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hec: %s (see: hec %s%s--help)\n", cli_printable(line, safe, sizeof(safe)),
		cmd ? cmd : "", cmd ? " " : "");
	return CLI_EXIT_USAGE;
}

int cli_home_path(const char *leaf, char *buf, size_t len)
{
	const char *home = getenv("HOME");
	int n;

	if (!home || !*home) {
		struct passwd *pw = getpwuid(geteuid());

		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return -ENOENT;
	n = snprintf(buf, len, "%s/.hec%s%s", home, *leaf ? "/" : "", leaf);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

const char *cli_opt_controller;

/* The remote controller and munged, if asked for.  \return 0 or -EINVAL (printed). */
static int ctx_remote(struct cli_ctx *ctx)
{
	const char *ctl = cli_opt_controller, *from = "--controller";
	const char *msock = getenv("HEC_MUNGE_SOCKET");
	char host[256];
	int port;

	if (!ctl || !*ctl) {
		ctl = getenv("HEC_CONTROLLER");
		from = "HEC_CONTROLLER";
	}
	if (!ctl || !*ctl)
		return 0;
	if (hec_split_hostport(ctl, host, sizeof(host), &port) || port <= 0 ||
	    snprintf(ctx->controller, sizeof(ctx->controller), "%s", ctl) >= (int)sizeof(ctx->controller)) {
		cli_err("%s: '%s' is not HOST:PORT", from, ctl);
		return -EINVAL;
	}
	if (msock && snprintf(ctx->munge_socket, sizeof(ctx->munge_socket), "%s", msock) >=
		     (int)sizeof(ctx->munge_socket)) {
		cli_err("HEC_MUNGE_SOCKET: path is too long");
		return -ENAMETOOLONG;
	}
	return 0;
}

int cli_ctx_init(struct cli_ctx *ctx, const char *opt_dir)
{
	const char *env = getenv("HEC_DIR");
	char cur[PATH_MAX];
	int n, rc;

	memset(ctx, 0, sizeof(*ctx));
	rc = ctx_remote(ctx);
	if (rc)
		return rc;
	if (opt_dir && *opt_dir) {
		n = snprintf(ctx->dir, sizeof(ctx->dir), "%s", opt_dir);
		ctx->dir_from = "--dir";
	} else if (env && *env) {
		n = snprintf(ctx->dir, sizeof(ctx->dir), "%s", env);
		ctx->dir_from = "HEC_DIR";
	} else {
		rc = cli_home_path("current", cur, sizeof(cur));
		if (rc == 0 && hec_read_file(cur, ctx->dir, sizeof(ctx->dir)) == 0 && ctx->dir[0]) {
			ctx->dir_from = "~/.hec/current";
			n = (int)strlen(ctx->dir);
		} else {
			rc = cli_home_path("cluster", ctx->dir, sizeof(ctx->dir));
			if (rc) {
				cli_err("cannot find a cluster directory: no --dir, HEC_DIR or home directory");
				return rc;
			}
			ctx->dir_from = "default";
			n = (int)strlen(ctx->dir);
		}
	}
	if (n < 0 || (size_t)n >= sizeof(ctx->dir))
		goto too_long;
	/* "dir/" and "dir" are the same cluster */
	while (n > 1 && ctx->dir[n - 1] == '/')
		ctx->dir[--n] = 0;
	n = snprintf(ctx->sock, sizeof(ctx->sock), "%s/hecctld.sock", ctx->dir);
	if (n < 0 || (size_t)n >= sizeof(ctx->sock))
		goto too_long;
	return 0;

too_long:
	cli_err("%s: cluster directory path is too long", ctx->dir_from);
	return -ENAMETOOLONG;
}

void cli_no_cluster(const struct cli_ctx *ctx)
{
	if (ctx->controller[0]) {
		cli_err("no controller at %s (its cli_listen)", ctx->controller);
		return;
	}
	cli_err("no cluster at %s (start one with: hec cluster up --nodes N)", ctx->dir);
}

/* A TCP connection to ctx->controller whose user is ours by MUNGE.
 * \return fd, or -errno with a sentence in @err. */
static int cli_connect_remote(const struct cli_ctx *ctx, int timeout_ms, char *err, size_t errlen)
{
	char why[CLI_ERRLEN];
	int fd, rc;

	fd = hec_connect_tcp(ctx->controller, CLI_CONNECT_TIMEOUT_MS);
	if (fd < 0) {
		snprintf(err, errlen, "cannot reach the controller at %s: %s", ctx->controller,
			 strerror(-fd));
		return fd == -ECONNREFUSED ? -ENOTCONN : fd;
	}
	rc = hec_auth_client(fd, ctx->munge_socket, timeout_ms, why, sizeof(why));
	if (rc) {
		/* the controller's refusals name the controller; ours, munged */
		if (rc == -EREMOTEIO)
			snprintf(err, errlen, "controller %s: %s", ctx->controller, why);
		else
			snprintf(err, errlen, "%s", why);
		close(fd);
		return rc;
	}
	return fd;
}

int cli_call_wait(const struct cli_ctx *ctx, json_t *req, int timeout_ms, json_t **resp,
		  char *err, size_t errlen)
{
	struct hec_msg m = { 0 };
	void *buf = NULL;
	char why[CLI_ERRLEN] = "";
	int fd, rc;

	*resp = NULL;
	if (ctx->controller[0]) {
		fd = cli_connect_remote(ctx, timeout_ms, err, errlen);
		if (fd < 0)
			return fd;
		goto connected;
	}
	fd = hec_connect_unix(ctx->sock);
	if (fd < 0) {
		if (fd == -ENOENT || fd == -ECONNREFUSED || fd == -ENOTDIR || fd == -ENOTSOCK) {
			snprintf(err, errlen, "no cluster at %s", ctx->dir);
			return -ENOTCONN;
		}
		snprintf(err, errlen, "%s: %s", ctx->sock, strerror(-fd));
		return fd;
	}
connected:
	rc = hec_frame_write(fd, HEC_MSG_REQUEST, req);
	if (rc) {
		snprintf(err, errlen, "sending to the controller: %s",
			 rc == -EINVAL ? "request breaks the protocol schema" : strerror(-rc));
		goto err_close;
	}
	rc = hec_frame_read(fd, &m, &buf, timeout_ms, why, sizeof(why));
	if (rc == -ETIMEDOUT) {
		snprintf(err, errlen, "the controller at %s did not answer within %d s",
			 ctx->controller[0] ? ctx->controller : ctx->dir, timeout_ms / 1000);
		goto err_close;
	}
	if (rc == -ECONNRESET) {
		/* it accepted and closed: it died, or is shutting down */
		snprintf(err, errlen, "the controller at %s closed the connection",
			 ctx->controller[0] ? ctx->controller : ctx->dir);
		rc = -ENOTCONN;
		goto err_close;
	}
	if (rc) {
		snprintf(err, errlen, "bad answer from the controller: %s",
			 why[0] ? why : strerror(-rc));
		goto err_close;
	}
	if (m.type == HEC_MSG_ERROR) {
		snprintf(err, errlen, "%s", json_string_value(json_object_get(m.body, "error")));
		rc = -EREMOTEIO;
		goto err_clear;
	}
	if (m.type != HEC_MSG_RESPONSE) {
		snprintf(err, errlen, "unexpected %s message from the controller",
			 hec_msg_type_name(m.type));
		rc = -EPROTO;
		goto err_clear;
	}
	if (!json_is_true(json_object_get(m.body, "ok"))) {
		const char *e = json_string_value(json_object_get(m.body, "error"));

		snprintf(err, errlen, "%s", e ? e : "refused without a reason");
		*resp = json_incref(m.body);
		rc = -EREMOTEIO;
		goto err_clear;
	}
	*resp = json_incref(m.body);
	hec_msg_clear(&m);
	free(buf);
	close(fd);
	return 0;

err_clear:
	hec_msg_clear(&m);
	free(buf);
err_close:
	close(fd);
	return rc;
}

int cli_call(const struct cli_ctx *ctx, json_t *req, json_t **resp, char *err, size_t errlen)
{
	int rc = cli_call_wait(ctx, req, CLI_REPLY_TIMEOUT_MS, resp, err, errlen);

	if (rc) {
		json_decref(*resp);
		*resp = NULL;
	}
	return rc;
}

int cli_request(const struct cli_ctx *ctx, const char *what, json_t *req, json_t **resp)
{
	char err[CLI_ERRLEN];
	int rc;

	if (!req) {
		cli_err("%s: out of memory", what);
		return -ENOMEM;
	}
	rc = cli_call(ctx, req, resp, err, sizeof(err));
	json_decref(req);
	if (rc == -ENOTCONN && !strncmp(err, "no cluster", 10))
		cli_no_cluster(ctx);
	else if (rc)
		cli_err("%s: %s", what, err);
	return rc;
}

void cli_print_json(const json_t *resp)
{
	json_t *copy = json_copy((json_t *)resp);

	if (!copy)
		return;
	json_object_del(copy, "ok");
	json_dumpf(copy, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(copy);
}

int cli_state_final(const char *state)
{
	static const char *const finals[] = {
		"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
	};

	for (size_t i = 0; state && i < HEC_ARRAY_SIZE(finals); i++)
		if (!strcmp(state, finals[i]))
			return 1;
	return 0;
}

void cli_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}
