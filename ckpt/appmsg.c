/* SPDX-License-Identifier: BSD-3-Clause */
/* The program -> agent line decoder (ckpt/appmsg.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "ckpt/appmsg.h"

#define NS_MAX 9223372036854775807LL

static const char *const op_names[] = {
	[HEC_APP_HELLO] = "hello", [HEC_APP_BEGIN] = "begin", [HEC_APP_WRITTEN] = "written",
	[HEC_APP_FAILED] = "failed", [HEC_APP_RESTORED] = "restored",
	[HEC_APP_RESTORE_FAILED] = "restore_failed",
};

const char *hec_app_op_name(enum hec_app_op op)
{
	return (unsigned)op < sizeof(op_names) / sizeof(op_names[0]) && op_names[op] ?
	       op_names[op] : "?";
}

__attribute__((format(printf, 3, 4)))
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int get_int(const json_t *o, const char *name, long long min, long long max,
		   long long *out, const char *op, char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, name);

	if (!v)
		return bad(err, errlen, "%s: no '%s'", op, name);
	if (!json_is_integer(v))
		return bad(err, errlen, "%s: '%s' must be an integer", op, name);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return bad(err, errlen, "%s: '%s' %lld is out of range (%lld..%lld)", op, name,
			   (long long)json_integer_value(v), min, max);
	*out = json_integer_value(v);
	return 0;
}

/* A string of 1..@size-1 bytes without NUL; control characters (they would
 * reach logs and the controller) are refused in paths, blanked in errors. */
static int get_str(const json_t *o, const char *name, char *out, size_t size, int blank,
		   const char *op, char *err, size_t errlen)
{
	const json_t *v = json_object_get(o, name);
	size_t n;

	if (!v)
		return bad(err, errlen, "%s: no '%s'", op, name);
	if (!json_is_string(v))
		return bad(err, errlen, "%s: '%s' must be a string", op, name);
	n = json_string_length(v);
	if (!n || n >= size)
		return bad(err, errlen, "%s: '%s' must hold 1 to %zu bytes", op, name, size - 1);
	memcpy(out, json_string_value(v), n + 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c >= 0x20 && c != 0x7f)
			continue;
		if (!blank)
			return bad(err, errlen, "%s: '%s' holds a control character", op, name);
		out[i] = ' ';
	}
	return 0;
}

int hec_app_msg_decode(const char *line, size_t len, struct hec_app_msg *m, char *err,
		       size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	const char *op;
	long long v = 0;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	if (len > HEC_APP_LINE_MAX)
		return bad(err, errlen, "a line of %zu bytes: at most %d", len, HEC_APP_LINE_MAX);
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return bad(err, errlen, "not JSON: %s", jerr.text);
	if (!json_is_object(o)) {
		rc = bad(err, errlen, "not a JSON object");
		goto out;
	}
	op = json_string_value(json_object_get(o, "op"));
	if (!op) {
		rc = bad(err, errlen, "no 'op' string");
		goto out;
	}
	for (unsigned i = 1; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(op, op_names[i]))
			m->op = (enum hec_app_op)i;
	switch (m->op) {
	case HEC_APP_HELLO:
		rc = get_int(o, "job", 1, 2147483647LL, &m->job, op, err, errlen);
		if (!rc)
			rc = get_int(o, "ranks", 1, 1 << 20, &v, op, err, errlen);
		m->ranks = (int)v;
		break;
	case HEC_APP_BEGIN:
		rc = get_int(o, "epoch", 0, NS_MAX, &m->epoch, op, err, errlen);
		break;
	case HEC_APP_WRITTEN:
		rc = get_int(o, "epoch", 1, NS_MAX, &m->epoch, op, err, errlen);
		if (!rc)
			rc = get_str(o, "path", m->path, sizeof(m->path), 0, op, err, errlen);
		if (!rc)
			rc = get_int(o, "bytes", 0, NS_MAX, &m->bytes, op, err, errlen);
		break;
	case HEC_APP_FAILED:
	case HEC_APP_RESTORE_FAILED:
		rc = get_int(o, "epoch", m->op == HEC_APP_FAILED ? 0 : 1, NS_MAX, &m->epoch, op, err,
			     errlen);
		if (!rc)
			rc = get_str(o, "error", m->error, sizeof(m->error), 1, op, err, errlen);
		break;
	case HEC_APP_RESTORED:
		rc = get_int(o, "epoch", 1, NS_MAX, &m->epoch, op, err, errlen);
		break;
	default:
		rc = bad(err, errlen, "unknown op '%.32s'", op);
		for (char *p = err; p && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
out:
	json_decref(o);
	return rc;
}
