/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec submit's job options, on the command line and as #HEC directives in
 * batch scripts, the way sbatch reads #SBATCH: only the header counts (up to
 * the first line that is neither blank nor a comment), each directive line
 * holds options in command-line syntax, and the command line wins.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "cli/cli.h"

#define JOB_OPTIONS \
	{ "nodes", SK_NODES, 1 }, \
	{ "ntasks", SK_NTASKS, 1 }, \
	{ "time", SK_TIME, 1 }, \
	{ "job-name", SK_NAME, 1 }, \
	{ "output", SK_OUTPUT, 1 }, \
	{ "error", SK_ERROR, 1 }, \
	{ "priority", SK_PRIORITY, 1 }, \
	{ "share", SK_SHARE, 0 }, \
	{ "mem", SK_MEM, 1 }, \
	{ "partition", SK_PARTITION, 1 }, \
	{ "vcpus", SK_VCPUS, 1 }, \
	{ "vm-file", SK_VM_FILE, 1 }, \
	{ "ckpt-interval", SK_CKPT_INTERVAL, 1 }, \
	{ "ckpt-keep", SK_CKPT_KEEP, 1 }, \
	{ "restart", SK_RESTART, 1 }, \
	{ "max-restarts", SK_MAX_RESTARTS, 1 }

const struct cli_opt cli_submit_options[] = {
	JOB_OPTIONS,
	{ "json", SK_JSON, 0 },
	{ "dir", SK_DIR, 1 },
	{ "help", SK_HELP, 0 },
	{ NULL, 0, 0 },
};

const struct cli_opt cli_directive_options[] = {
	JOB_OPTIONS,
	{ NULL, 0, 0 },
};

static int set_str(char **field, const char *val)
{
	char *copy = strdup(val);

	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

static int check_text(const char *what, const char *val, size_t max, char *err, size_t errlen)
{
	size_t len = strlen(val);

	if (len == 0) {
		snprintf(err, errlen, "%s: must not be empty", what);
		return -EINVAL;
	}
	if (len > max) {
		snprintf(err, errlen, "%s: longer than %zu bytes", what, max);
		return -EINVAL;
	}
	for (const char *p = val; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "%s: must not contain control characters", what);
			return -EINVAL;
		}
	return 0;
}

static int add_vm_file(struct submit_opts *o, const char *val, char *err, size_t errlen)
{
	char **grown;
	int rc = check_text("--vm-file", val, PATH_MAX - 1, err, errlen);

	if (rc)
		return rc;
	if (o->nvm_files >= HEC_VM_FILES_MAX) {
		snprintf(err, errlen, "--vm-file: more than %d files", HEC_VM_FILES_MAX);
		return -EINVAL;
	}
	grown = realloc(o->vm_files, (size_t)(o->nvm_files + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	o->vm_files = grown;
	o->vm_files[o->nvm_files] = strdup(val);
	if (!o->vm_files[o->nvm_files])
		return -ENOMEM;
	o->nvm_files++;
	o->set |= SK_SET_VM_FILES;
	return 0;
}

int submit_opt_apply(struct submit_opts *o, int key, const char *val, char *err, size_t errlen)
{
	int rc;

	switch (key) {
	case SK_NODES:
		rc = cli_parse_num("--nodes", val, 1, CLI_NODES_MAX, &o->nodes, err, errlen);
		if (!rc)
			o->set |= SK_SET_NODES;
		return rc;
	case SK_NTASKS:
		rc = cli_parse_num("--ntasks", val, 1, CLI_NTASKS_MAX, &o->ntasks, err, errlen);
		if (!rc)
			o->set |= SK_SET_NTASKS;
		return rc;
	case SK_TIME:
		rc = cli_parse_time("--time", val, &o->time_limit, err, errlen);
		if (!rc)
			o->set |= SK_SET_TIME;
		return rc;
	case SK_PRIORITY:
		rc = cli_parse_num("--priority", val, -CLI_PRIORITY_MAX, CLI_PRIORITY_MAX,
				   &o->priority, err, errlen);
		if (!rc)
			o->set |= SK_SET_PRIORITY;
		return rc;
	case SK_SHARE:
		o->share = 1;
		o->set |= SK_SET_SHARE;
		return 0;
	case SK_MEM:
		rc = cli_parse_mem("--mem", val, &o->mem_mb, err, errlen);
		if (!rc)
			o->set |= SK_SET_MEM;
		return rc;
	case SK_PARTITION:
		if (strcmp(val, "proc") && strcmp(val, "vm")) {
			snprintf(err, errlen, "--partition: '%s' is not a partition kind (proc, vm)", val);
			return -EINVAL;
		}
		o->vm = !strcmp(val, "vm");
		o->set |= SK_SET_PARTITION;
		return 0;
	case SK_VCPUS:
		rc = cli_parse_num("--vcpus", val, 1, HEC_VM_VCPUS_MAX, &o->vcpus, err, errlen);
		if (!rc)
			o->set |= SK_SET_VCPUS;
		return rc;
	case SK_VM_FILE:
		return add_vm_file(o, val, err, errlen);
	case SK_CKPT_INTERVAL: {
		long ms;

		rc = cli_parse_duration_ms("--ckpt-interval", val, 365L * 86400 * 1000, &ms, err,
					   errlen);
		if (!rc && ms % 1000) {
			snprintf(err, errlen, "--ckpt-interval: '%s' is not a whole number of seconds",
				 val);
			rc = -EINVAL;
		}
		if (!rc) {
			o->ckpt_interval = ms / 1000;
			o->set |= SK_SET_CKPT_INTERVAL;
		}
		return rc;
	}
	case SK_CKPT_KEEP:
		rc = cli_parse_num("--ckpt-keep", val, 1, 1000, &o->ckpt_keep, err, errlen);
		if (!rc)
			o->set |= SK_SET_CKPT_KEEP;
		return rc;
	case SK_RESTART:
		if (strcmp(val, "auto") && strcmp(val, "none")) {
			snprintf(err, errlen, "--restart: '%s' is not auto or none", val);
			return -EINVAL;
		}
		o->restart_auto = !strcmp(val, "auto");
		o->set |= SK_SET_RESTART;
		return 0;
	case SK_MAX_RESTARTS:
		rc = cli_parse_num("--max-restarts", val, 0, 1000, &o->max_restarts, err, errlen);
		if (!rc)
			o->set |= SK_SET_MAX_RESTARTS;
		return rc;
	case SK_NAME:
		rc = check_text("--job-name", val, CLI_NAME_MAX, err, errlen);
		if (!rc)
			rc = set_str(&o->name, val);
		if (!rc)
			o->set |= SK_SET_NAME;
		return rc;
	case SK_OUTPUT:
	case SK_ERROR:
		rc = check_text(key == SK_OUTPUT ? "--output" : "--error", val, PATH_MAX - 1,
				err, errlen);
		if (!rc)
			rc = set_str(key == SK_OUTPUT ? &o->output : &o->error, val);
		if (!rc)
			o->set |= key == SK_OUTPUT ? SK_SET_OUTPUT : SK_SET_ERROR;
		return rc;
	}
	snprintf(err, errlen, "option %d is not a job option", key);
	return -EINVAL;
}

int submit_opts_merge(struct submit_opts *dst, const struct submit_opts *src)
{
	unsigned take = src->set & ~dst->set;

	if (take & SK_SET_NODES)
		dst->nodes = src->nodes;
	if (take & SK_SET_NTASKS)
		dst->ntasks = src->ntasks;
	if (take & SK_SET_TIME)
		dst->time_limit = src->time_limit;
	if (take & SK_SET_PRIORITY)
		dst->priority = src->priority;
	if (take & SK_SET_SHARE)
		dst->share = src->share;
	if (take & SK_SET_MEM)
		dst->mem_mb = src->mem_mb;
	if (take & SK_SET_PARTITION)
		dst->vm = src->vm;
	if (take & SK_SET_VCPUS)
		dst->vcpus = src->vcpus;
	if (take & SK_SET_CKPT_INTERVAL)
		dst->ckpt_interval = src->ckpt_interval;
	if (take & SK_SET_CKPT_KEEP)
		dst->ckpt_keep = src->ckpt_keep;
	if (take & SK_SET_RESTART)
		dst->restart_auto = src->restart_auto;
	if (take & SK_SET_MAX_RESTARTS)
		dst->max_restarts = src->max_restarts;
	/* Files add up: the script's and the command line's. */
	for (int i = 0; i < src->nvm_files; i++)
		if (add_vm_file(dst, src->vm_files[i], NULL, 0))
			return -ENOMEM;
	if ((take & SK_SET_NAME) && set_str(&dst->name, src->name))
		return -ENOMEM;
	if ((take & SK_SET_OUTPUT) && set_str(&dst->output, src->output))
		return -ENOMEM;
	if ((take & SK_SET_ERROR) && set_str(&dst->error, src->error))
		return -ENOMEM;
	dst->set |= take;
	return 0;
}

int submit_opts_finish(struct submit_opts *o, const char *default_name, char *err, size_t errlen)
{
	if (!(o->set & SK_SET_NODES))
		o->nodes = 1;
	if (!(o->set & SK_SET_NTASKS))
		o->ntasks = o->nodes;
	if (!(o->set & SK_SET_TIME))
		o->time_limit = 0;
	if (!(o->set & SK_SET_PRIORITY))
		o->priority = 0;
	if (!(o->set & SK_SET_SHARE))
		o->share = 0;
	if (!(o->set & SK_SET_MEM))
		o->mem_mb = 0;
	if (!(o->set & SK_SET_PARTITION))
		o->vm = 0;
	if (!(o->set & SK_SET_CKPT_INTERVAL))
		o->ckpt_interval = 0;
	if (!(o->set & SK_SET_CKPT_KEEP))
		o->ckpt_keep = CLI_CKPT_KEEP_DEFAULT;
	if (!(o->set & SK_SET_RESTART))
		o->restart_auto = 0;
	if (!(o->set & SK_SET_MAX_RESTARTS))
		o->max_restarts = CLI_MAX_RESTARTS_DEFAULT;
	if (!o->vm && (o->set & (SK_SET_VCPUS | SK_SET_VM_FILES))) {
		snprintf(err, errlen, "%s: only for --partition vm",
			 o->set & SK_SET_VCPUS ? "--vcpus" : "--vm-file");
		return -EINVAL;
	}
	if (o->vm && !(o->set & SK_SET_MEM))
		o->mem_mb = CLI_VM_MEM_DEFAULT;
	if (o->vm && o->mem_mb < HEC_VM_MEM_MIN_MB) {
		snprintf(err, errlen, "--mem: %ld MB is too little for a vm partition (at least %d MB: the guest kernel and its initramfs live in it)",
			 o->mem_mb, HEC_VM_MEM_MIN_MB);
		return -EINVAL;
	}
	if (o->ntasks < o->nodes) {
		snprintf(err, errlen, "--ntasks: %ld task%s cannot fill %ld nodes (at least one task per node)",
			 o->ntasks, o->ntasks == 1 ? "" : "s", o->nodes);
		return -EINVAL;
	}
	if (!o->name) {
		const char *base = strrchr(default_name, '/');
		size_t len;

		base = base ? base + 1 : default_name;
		if (!*base)
			base = "job";
		len = strlen(base);
		if (len > CLI_NAME_MAX) {
			len = CLI_NAME_MAX;
			/* do not cut a UTF-8 sequence in two */
			while (len > 0 && ((unsigned char)base[len] & 0xc0) == 0x80)
				len--;
		}
		o->name = strndup(base, len);
		if (!o->name)
			return -ENOMEM;
		/* a program name with odd bytes still makes a printable job name */
		for (char *p = o->name; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	return 0;
}

void submit_opts_free(struct submit_opts *o)
{
	free(o->name);
	free(o->output);
	free(o->error);
	for (int i = 0; i < o->nvm_files; i++)
		free(o->vm_files[i]);
	free(o->vm_files);
	memset(o, 0, sizeof(*o));
}

/* Length of a valid UTF-8 sequence at @p (at most @left bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	size_t n, i;
	unsigned long cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* overlong forms, surrogates and values past Unicode are not text */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

int script_check(const char *text, size_t len, char *err, size_t errlen)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0;

	if (len > (size_t)CLI_SCRIPT_MAX) {
		snprintf(err, errlen, "%zu bytes is more than a batch script may hold (1 MiB)", len);
		return -EFBIG;
	}
	while (i < len) {
		size_t n = p[i] ? utf8_seq(p + i, len - i) : 0;

		if (!n) {
			snprintf(err, errlen, "binary data at byte %zu: a batch script must be text", i);
			return -EINVAL;
		}
		i += n;
	}
	if (len < 2 || text[0] != '#' || text[1] != '!') {
		snprintf(err, errlen, "the first line must name an interpreter, e.g. #!/bin/sh");
		return -ENOEXEC;
	}
	return 0;
}

/*
 * Split a directive into words: blanks separate, '...' is literal, "..."
 * honours \" and \\, a backslash outside quotes escapes the next byte, and
 * an unquoted word starting with '#' begins a trailing comment.
 */
static int split_words(const char *s, char ***wordsp, int *np, char *err, size_t errlen)
{
	char **words = NULL, *w = NULL;
	size_t wl = 0;
	int n = 0, rc = -ENOMEM;

	for (;;) {
		char q = 0;

		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			break;
		w = malloc(strlen(s) + 1);
		if (!w)
			goto err_free_words;
		wl = 0;
		while (*s && (q || (*s != ' ' && *s != '\t'))) {
			if (q) {
				if (*s == q) {
					q = 0;
				} else if (q == '"' && *s == '\\' && (s[1] == '"' || s[1] == '\\')) {
					w[wl++] = *++s;
				} else {
					w[wl++] = *s;
				}
			} else if (*s == '\'' || *s == '"') {
				q = *s;
			} else if (*s == '\\' && s[1]) {
				w[wl++] = *++s;
			} else {
				w[wl++] = *s;
			}
			s++;
		}
		if (q) {
			snprintf(err, errlen, "unterminated %s quote", q == '"' ? "double" : "single");
			rc = -EINVAL;
			goto err_free_word;
		}
		w[wl] = 0;
		{
			char **grown = realloc(words, (size_t)(n + 2) * sizeof(*words));

			if (!grown)
				goto err_free_word;
			words = grown;
		}
		words[n++] = w;
		words[n] = NULL;
		w = NULL;
	}
	*wordsp = words;
	*np = n;
	return 0;

err_free_word:
	free(w);
err_free_words:
	for (int i = 0; i < n; i++)
		free(words[i]);
	free(words);
	return rc;
}

static void free_words(char **words, int n)
{
	for (int i = 0; i < n; i++)
		free(words[i]);
	free(words);
}

/* Is this line (without its newline) a #HEC directive?  \return the text after "#HEC". */
static const char *directive(const char *line)
{
	if (strncmp(line, "#HEC", 4))
		return NULL;
	if (line[4] && line[4] != ' ' && line[4] != '\t')
		return NULL; /* "#HECTOR" is a comment */
	return line + 4;
}

/* Blank or a comment: still in the script's header. */
static int header_line(const char *line)
{
	line += strspn(line, " \t");
	return *line == 0 || *line == '#';
}

static int apply_directive(const char *name, int lineno, const char *text,
			   struct submit_opts *o, char *err, size_t errlen)
{
	char msg[CLI_ERRLEN], **words = NULL;
	struct cli_args a;
	int n = 0, key, rc;

	rc = split_words(text, &words, &n, msg, sizeof(msg));
	if (rc)
		goto err_msg;
	cli_args_init(&a, n, words);
	while ((key = cli_getopt(&a, cli_directive_options)) != 0) {
		if (key < 0) {
			snprintf(msg, sizeof(msg), "%s", a.err);
			rc = -EINVAL;
			goto err_msg;
		}
		if (key == CLI_OPERAND) {
			snprintf(msg, sizeof(msg), "unexpected word '%s' (a #HEC line holds options only)",
				 a.arg);
			rc = -EINVAL;
			goto err_msg;
		}
		rc = submit_opt_apply(o, key, a.arg, msg, sizeof(msg));
		if (rc)
			goto err_msg;
	}
	if (a.dashdash) {
		snprintf(msg, sizeof(msg), "'--' cannot be used in a #HEC line");
		rc = -EINVAL;
		goto err_msg;
	}
	free_words(words, n);
	return 0;

err_msg:
	if (rc == -ENOMEM)
		snprintf(msg, sizeof(msg), "out of memory");
	snprintf(err, errlen, "%s:%d: %s", name, lineno, msg);
	free_words(words, n);
	return rc;
}

int script_parse_directives(const char *name, const char *text, size_t len,
			    struct submit_opts *o, int *ignored_line, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	int lineno = 0, in_header = 1, rc = 0;
	char *line = NULL;

	if (ignored_line)
		*ignored_line = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (nl ? nl : end) - p;
		const char *d;

		lineno++;
		line = strndup(p, ll);
		if (!line)
			return -ENOMEM;
		if (ll && line[ll - 1] == '\r')
			line[ll - 1] = 0;
		d = directive(line);
		if (in_header && d) {
			rc = apply_directive(name, lineno, d, o, err, errlen);
			if (rc)
				break;
		} else if (in_header && !header_line(line)) {
			in_header = 0;
			if (!ignored_line)
				break;
		} else if (!in_header && d && ignored_line && !*ignored_line) {
			*ignored_line = lineno;
			break;
		}
		free(line);
		line = NULL;
		p = nl ? nl + 1 : end;
	}
	free(line);
	return rc;
}

/* The interpreter's base name from "#!/bin/bash -e" or "#!/usr/bin/env bash". */
static int sh_family(const char *text, size_t len)
{
	static const char *const shells[] = { "sh", "bash", "dash", "ksh", "zsh", "mksh", "ash" };
	char first[256], *word, *save = NULL, *base;
	const char *nl = memchr(text, '\n', len);
	size_t fl = nl ? (size_t)(nl - text) : len;

	if (fl < 2 || fl >= sizeof(first))
		return 0;
	memcpy(first, text + 2, fl - 2);
	first[fl - 2] = 0;
	word = strtok_r(first, " \t\r", &save);
	if (!word)
		return 0;
	base = strrchr(word, '/');
	base = base ? base + 1 : word;
	if (!strcmp(base, "env")) {
		while ((word = strtok_r(NULL, " \t\r", &save)) && word[0] == '-')
			;
		if (!word)
			return 0;
		base = strrchr(word, '/');
		base = base ? base + 1 : word;
	}
	for (size_t i = 0; i < HEC_ARRAY_SIZE(shells); i++)
		if (!strcmp(base, shells[i]))
			return 1;
	return 0;
}

int script_set_args(const char *text, size_t len, char *const *args, int nargs,
		    char **out, char *err, size_t errlen)
{
	size_t need = 16, at = len, used = 0;
	const char *p = text, *end = text + len;
	char *buf;

	if (!sh_family(text, len)) {
		snprintf(err, errlen, "arguments after a script need a sh-family interpreter (#!/bin/sh, bash, ...): pass them inside the script");
		return -ENOEXEC;
	}
	/* where the first command line starts: the header ends there */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = (nl ? nl : end) - p;
		char *line = strndup(p, ll);
		int header;

		if (!line)
			return -ENOMEM;
		header = header_line(line);
		free(line);
		if (!header) {
			at = (size_t)(p - text);
			break;
		}
		p = nl ? nl + 1 : end;
	}
	for (int i = 0; i < nargs; i++)
		need += 4 * strlen(args[i]) + 3;
	buf = malloc(len + need + 2);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, text, at);
	used = at;
	if (at == len && len && text[len - 1] != '\n')
		buf[used++] = '\n';
	used += (size_t)sprintf(buf + used, "set --");
	for (int i = 0; i < nargs; i++) {
		buf[used++] = ' ';
		buf[used++] = '\'';
		for (const char *c = args[i]; *c; c++) {
			if (*c == '\'') {
				memcpy(buf + used, "'\\''", 4);
				used += 4;
			} else {
				buf[used++] = *c;
			}
		}
		buf[used++] = '\'';
	}
	if (at == len) {
		buf[used++] = '\n';
	} else {
		memcpy(buf + used, "; ", 2);
		used += 2;
	}
	memcpy(buf + used, text + at, len - at);
	used += len - at;
	buf[used] = 0;
	*out = buf;
	return 0;
}
