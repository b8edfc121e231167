/* SPDX-License-Identifier: BSD-3-Clause */
/* hecctld record helpers: names, formatting, freeing (no I/O). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "ctld.h"
#include "place.h"

static const char *const job_state_names[JOB_NSTATES] = {
	[JOB_PENDING] = "PENDING", [JOB_RUNNING] = "RUNNING", [JOB_SUSPENDED] = "SUSPENDED",
	[JOB_COMPLETED] = "COMPLETED", [JOB_FAILED] = "FAILED", [JOB_CANCELLED] = "CANCELLED",
	[JOB_TIMEOUT] = "TIMEOUT", [JOB_NODE_FAIL] = "NODE_FAIL",
};

int64_t ctl_fresh_id(int64_t *last)
{
	int64_t id = hec_now_real_ns() / 1000;

	if (id <= *last)
		id = *last + 1;
	return *last = id;
}

const char *job_state_name(enum job_state s)
{
	return (unsigned)s < JOB_NSTATES ? job_state_names[s] : "?";
}

int job_state_parse(const char *name)
{
	for (int i = 0; i < JOB_NSTATES; i++)
		if (name && !strcmp(name, job_state_names[i]))
			return i;
	return -EINVAL;
}

const char *node_state_name(enum node_state s)
{
	switch (s) {
	case NODE_IDLE:
		return "IDLE";
	case NODE_ALLOCATED:
		return "ALLOCATED";
	case NODE_DOWN:
		return "DOWN";
	case NODE_UNKNOWN:
		break;
	}
	return "UNKNOWN";
}

void job_drop_payload(struct ctl_job *j)
{
	json_decref(j->env);
	json_decref(j->argv);
	free(j->script);
	j->env = NULL;
	j->argv = NULL;
	j->script = NULL;
}

void job_free(struct ctl_job *j)
{
	if (!j)
		return;
	job_drop_payload(j);
	free(j->cwd);
	free(j->output);
	free(j->error);
	free(j->command);
	free(j->alloc);
	json_decref(j->vm_files);
	json_decref(j->restart_nodes);
	free(j->restart); /* a restart_op holds nothing of its own */
	free(j);
}

int ckpt_retention(const int64_t *epochs, int n, int keep, int64_t protect, int64_t *del)
{
	int excess = n - (keep > 0 ? keep : 1), k = 0;

	for (int i = 0; i < n && excess > 0; i++) {
		if (protect && epochs[i] == protect)
			continue;
		del[k++] = epochs[i];
		excess--;
	}
	return k;
}

/* Quote an argument for display the way a shell user would type it. */
static size_t quote_arg(const char *a, char *out)
{
	size_t n = 0;
	int plain = *a != 0;

	for (const char *p = a; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			    "_-+=./:,@%", *p))
			plain = 0;
	if (plain) {
		n = strlen(a);
		if (out)
			memcpy(out, a, n);
		return n;
	}
	if (out)
		out[n] = '\'';
	n++;
	for (const char *p = a; *p; p++) {
		if (*p == '\'') {
			if (out)
				memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			if (out)
				out[n] = *p;
			n++;
		}
	}
	if (out)
		out[n] = '\'';
	return n + 1;
}

char *job_command(const json_t *argv, const char *script, const char *name)
{
	size_t i, len = 0;
	json_t *a;
	char *s;

	if (!argv) {
		const char *fmt = "(batch script) %s";
		size_t n = strlen(fmt) + strlen(name ? name : "") + 1;

		(void)script;
		s = malloc(n);
		if (s)
			snprintf(s, n, "(batch script) %s", name ? name : "");
		return s;
	}
	json_array_foreach(argv, i, a)
		len += quote_arg(json_string_value(a) ? json_string_value(a) : "", NULL) + 1;
	s = malloc(len + 1);
	if (!s)
		return NULL;
	len = 0;
	json_array_foreach(argv, i, a) {
		if (i)
			s[len++] = ' ';
		len += quote_arg(json_string_value(a) ? json_string_value(a) : "", s + len);
	}
	s[len] = 0;
	return s;
}

int job_expand_path(const char *tmpl, long id, const char *name, const char *user,
		    const char *cwd, char *out, size_t len)
{
	size_t n = 0;
	int w;

#define PUT(...) do { \
		w = snprintf(out + n, len - n, __VA_ARGS__); \
		if (w < 0 || (size_t)w >= len - n) \
			return -ENAMETOOLONG; \
		n += (size_t)w; \
	} while (0)

	if (!len)
		return -ENAMETOOLONG;
	out[0] = 0;
	if (tmpl[0] != '/' && cwd)
		PUT("%s%s", cwd, cwd[0] && cwd[strlen(cwd) - 1] == '/' ? "" : "/");
	for (const char *p = tmpl; *p; p++) {
		if (*p != '%' || !p[1]) {
			PUT("%c", *p);
			continue;
		}
		switch (*++p) {
		case 'j':
			PUT("%ld", id);
			break;
		case 'x':
			PUT("%s", name);
			break;
		case 'u':
			PUT("%s", user);
			break;
		case '%':
			PUT("%%");
			break;
		default: /* not ours: keep it as written */
			PUT("%%%c", *p);
			break;
		}
	}
#undef PUT
	return 0;
}

void format_limit(long secs, char *buf, size_t len)
{
	if (secs >= 86400)
		snprintf(buf, len, "%ld-%02ld:%02ld:%02ld", secs / 86400, secs % 86400 / 3600,
			 secs % 3600 / 60, secs % 60);
	else if (secs >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", secs / 3600, secs % 3600 / 60, secs % 60);
	else
		snprintf(buf, len, "%ld:%02ld", secs / 60, secs % 60);
}

int job_set_alloc(struct ctl_job *j, const char *const *names, int n)
{
	struct job_node *a = calloc((size_t)(n > 0 ? n : 1), sizeof(*a));

	if (!a)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		snprintf(a[i].name, sizeof(a[i].name), "%s", names[i]);
		a[i].ranks = place_ranks(j->ntasks, n, i);
	}
	free(j->alloc);
	j->alloc = a;
	j->nalloc = n;
	return 0;
}

void reason_for_node(char *buf, size_t len, const char *node, const char *text)
{
	size_t nl = strlen(node);

	if (!strncmp(text, node, nl) && text[nl] == ':')
		snprintf(buf, len, "%s", text);
	else
		snprintf(buf, len, "%s: %s", node, text);
}
