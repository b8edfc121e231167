/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Command-line words and values.  A small parser of our own instead of
 * getopt_long(): the same code reads #HEC directive lines (no global state,
 * messages we can prefix with "job.sh:3:"), and commands choose whether
 * options may follow operands ("hec show 5 --json") or not ("hec submit
 * -N 2 -- prog -N 3").
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "cli/cli.h"

void cli_args_init(struct cli_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	a->argc = argc;
	a->argv = argv;
}

static const struct cli_opt *find_long(const struct cli_opt *opts, const char *name, size_t len)
{
	for (; opts->name; opts++)
		if (strlen(opts->name) == len && !strncmp(opts->name, name, len))
			return opts;
	return NULL;
}

static const struct cli_opt *find_short(const struct cli_opt *opts, int c)
{
	for (; opts->name; opts++)
		if (opts->key == c && c < CLI_LONG_ONLY && c > CLI_OPERAND)
			return opts;
	return NULL;
}

/* One short option at @w[@off]; "-fq" leaves "q" pending in a->bundle. */
static int short_opt(struct cli_args *a, const struct cli_opt *opts, const char *w, size_t off)
{
	const struct cli_opt *o = find_short(opts, (unsigned char)w[off]);

	if (!o) {
		snprintf(a->err, sizeof(a->err), "unknown option -%c", w[off]);
		return -1;
	}
	a->opt = o;
	a->arg = NULL;
	if (o->has_arg) {
		if (w[off + 1]) {
			a->arg = w + off + 1;
		} else if (a->i < a->argc) {
			a->arg = a->argv[a->i++];
		} else {
			snprintf(a->err, sizeof(a->err), "option -%c (--%s) needs a value", o->key, o->name);
			return -1;
		}
		return o->key;
	}
	if (w[off + 1]) { /* more flags in the same word: come back to it */
		a->i--;
		a->bundle = off + 1;
	}
	return o->key;
}

int cli_getopt(struct cli_args *a, const struct cli_opt *opts)
{
	const char *w;

	a->arg = NULL;
	a->opt = NULL;
	if (a->bundle) {
		size_t off = a->bundle;

		a->bundle = 0;
		return short_opt(a, opts, a->argv[a->i++], off);
	}
	if (a->dashdash || a->i >= a->argc)
		return 0;
	w = a->argv[a->i];
	if (w[0] != '-' || w[1] == 0) {
		a->i++;
		a->arg = w;
		return CLI_OPERAND;
	}
	a->i++;
	if (w[1] == '-') {
		const char *name = w + 2, *eq;
		const struct cli_opt *o;

		if (!*name) {
			a->dashdash = 1;
			return 0;
		}
		eq = strchr(name, '=');
		o = find_long(opts, name, eq ? (size_t)(eq - name) : strlen(name));
		if (!o) {
			snprintf(a->err, sizeof(a->err), "unknown option --%.*s",
				 (int)(eq ? eq - name : (long)strlen(name)), name);
			return -1;
		}
		a->opt = o;
		if (!o->has_arg) {
			if (eq) {
				snprintf(a->err, sizeof(a->err), "option --%s takes no value", o->name);
				return -1;
			}
			return o->key;
		}
		if (eq) {
			a->arg = eq + 1;
		} else if (a->i < a->argc) {
			a->arg = a->argv[a->i++];
		} else {
			snprintf(a->err, sizeof(a->err), "option --%s needs a value", o->name);
			return -1;
		}
		return o->key;
	}
	return short_opt(a, opts, w, 1);
}

int cli_parse_num(const char *what, const char *s, long min, long max, long *out,
		  char *err, size_t errlen)
{
	int rc = hec_parse_long(s, min, max, out);
	const char *p = s;

	if (rc == 0)
		return 0;
	if (*p == '-' || *p == '+')
		p++;
	/* A well-formed number that is too big is out of range, not garbage. */
	if (rc == -ERANGE || (*p && strspn(p, "0123456789") == strlen(p)))
		snprintf(err, errlen, "%s: must be between %ld and %ld", what, min, max);
	else
		snprintf(err, errlen, "%s: '%s' is not a number", what, s);
	return -EINVAL;
}

int cli_parse_mem(const char *what, const char *s, long *mb, char *err, size_t errlen)
{
	int rc = hec_parse_mem_mb(s, mb);

	if (rc == -ERANGE)
		snprintf(err, errlen, "%s: '%s' must be more than 0 and at most 1 PiB", what, s);
	else if (rc)
		snprintf(err, errlen, "%s: '%s' is not a size (e.g. 512M, 2G)", what, s);
	return rc ? -EINVAL : 0;
}

int cli_parse_time(const char *what, const char *s, long *secs, char *err, size_t errlen)
{
	int rc = hec_parse_time_limit(s, secs);

	if (rc == 0)
		return 0;
	if (rc == -ERANGE)
		snprintf(err, errlen, "%s: '%s' is longer than the 365-day maximum", what, s);
	else
		snprintf(err, errlen,
			 "%s: '%s' is not a time limit (MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN, D-H:MIN:SEC or UNLIMITED)",
			 what, s);
	return -EINVAL;
}

int cli_parse_duration_ms(const char *what, const char *s, long max_ms, long *ms,
			  char *err, size_t errlen)
{
	static const struct { const char *suffix; long mult; } units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	size_t digits = strspn(s, "0123456789");
	long v;

	if (digits == 0 || digits > 9)
		goto bad;
	for (size_t i = 0; i < HEC_ARRAY_SIZE(units); i++) {
		if (strcmp(s + digits, units[i].suffix))
			continue;
		v = strtol(s, NULL, 10);
		if (v <= 0 || v > max_ms / units[i].mult) {
			snprintf(err, errlen, "%s: '%s' must be more than 0 and at most %ld s",
				 what, s, max_ms / 1000);
			return -EINVAL;
		}
		*ms = v * units[i].mult;
		return 0;
	}
bad:
	snprintf(err, errlen, "%s: '%s' is not a duration (e.g. 30, 30s, 500ms, 5m, 1h)", what, s);
	return -EINVAL;
}

int cli_parse_slot_ms(const char *what, const char *s, long *ms, char *err, size_t errlen)
{
	size_t digits = strspn(s, "0123456789");
	long v, mult;

	if (digits == 0 || digits > 9)
		goto bad;
	if (!strcmp(s + digits, "") || !strcmp(s + digits, "ms"))
		mult = 1;
	else if (!strcmp(s + digits, "s"))
		mult = 1000;
	else
		goto bad;
	v = strtol(s, NULL, 10) * mult;
	if (v < 1 || v > 60000) {
		snprintf(err, errlen, "%s: '%s' must be between 1 ms and 60 s", what, s);
		return -EINVAL;
	}
	*ms = v;
	return 0;
bad:
	snprintf(err, errlen, "%s: '%s' is not a slot length in milliseconds (e.g. 10, 10ms, 1s)",
		 what, s);
	return -EINVAL;
}

int cli_parse_timeslice(const char *what, const char *s, char *err, size_t errlen)
{
	if (!strcmp(s, "gang") || !strcmp(s, "none"))
		return 0;
	snprintf(err, errlen, "%s: '%s' must be gang or none", what, s);
	return -EINVAL;
}

int cli_parse_job_id(const char *s, long *id, char *err, size_t errlen)
{
	return cli_parse_num("job ID", s, 1, INT32_MAX, id, err, errlen);
}

int cli_parse_epoch(const char *s, long long *epoch, char *err, size_t errlen)
{
	long v;

	if (cli_parse_num("EPOCH", s, 1, LONG_MAX, &v, err, errlen))
		return -EINVAL;
	*epoch = v;
	return 0;
}

static int add_name(char (*names)[65], int max, int *n, const char *name, size_t len,
		    char *err, size_t errlen)
{
	if (len == 0 || len > 64) {
		snprintf(err, errlen, "'%.*s' is not a node name", (int)(len > 64 ? 64 : len), name);
		return -EINVAL;
	}
	if (*n >= max) {
		snprintf(err, errlen, "more than %d node names", max);
		return -EINVAL;
	}
	memcpy(names[*n], name, len);
	names[*n][len] = 0;
	(*n)++;
	return 0;
}

/* "a[0-2,5]" at @p (up to @end): the names it stands for. */
static int expand_range(const char *p, const char *end, char (*names)[65], int max, int *n,
			char *err, size_t errlen)
{
	const char *open = memchr(p, '[', (size_t)(end - p)), *q;
	size_t plen;

	if (!open)
		return add_name(names, max, n, p, (size_t)(end - p), err, errlen);
	plen = (size_t)(open - p);
	if (end[-1] != ']' || plen == 0 || plen > 54)
		goto bad;
	for (q = open + 1; q < end - 1;) {
		char *next, buf[80];
		long lo, hi;

		if (*q < '0' || *q > '9')
			goto bad;
		lo = strtol(q, &next, 10);
		hi = lo;
		if (*next == '-') {
			if (next[1] < '0' || next[1] > '9')
				goto bad;
			hi = strtol(next + 1, &next, 10);
		}
		if (hi < lo || hi - lo > 4096 || (next != end - 1 && *next != ','))
			goto bad;
		for (long v = lo; v <= hi; v++) {
			int k = snprintf(buf, sizeof(buf), "%.*s%ld", (int)plen, p, v);

			if (add_name(names, max, n, buf, (size_t)k, err, errlen))
				return -EINVAL;
		}
		q = next + (*next == ',');
	}
	return 0;
bad:
	snprintf(err, errlen, "'%.*s' is not a node list (e.g. node0,node2 or node[0-2])",
		 (int)(end - p), p);
	return -EINVAL;
}

int cli_hostlist_expand(const char *list, char (*names)[65], int max, char *err, size_t errlen)
{
	const char *p = list;
	int n = 0;

	if (!*list) {
		snprintf(err, errlen, "empty node list");
		return -EINVAL;
	}
	while (*p) {
		const char *end = p;
		int depth = 0;

		/* a comma inside brackets belongs to the range */
		for (; *end && (*end != ',' || depth); end++)
			depth += *end == '[' ? 1 : *end == ']' ? -1 : 0;
		if (expand_range(p, end, names, max, &n, err, errlen))
			return -EINVAL;
		p = *end ? end + 1 : end;
		if (*end && !*p) {
			snprintf(err, errlen, "'%s' ends with a comma", list);
			return -EINVAL;
		}
	}
	return n;
}

int cli_abspath(const char *cwd, const char *path, char *out, size_t len)
{
	int n;

	if (path[0] == '/')
		n = snprintf(out, len, "%s", path);
	else
		n = snprintf(out, len, "%s%s%s", cwd,
			     cwd[0] && cwd[strlen(cwd) - 1] == '/' ? "" : "/", path);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Split "node12" into prefix length 4 and number 12; no digits: -1. */
static long name_number(const char *name, size_t *prefix_len)
{
	size_t len = strlen(name), p = len;

	while (p > 0 && isdigit((unsigned char)name[p - 1]))
		p--;
	*prefix_len = p;
	/* "node007" keeps its zeros: compressing it would lose them */
	if (p == len || len - p > 9 || (name[p] == '0' && len - p > 1))
		return -1;
	return strtol(name + p, NULL, 10);
}

static int append(char *buf, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *used)
		return -ENOSPC;
	*used += (size_t)n;
	return 0;
}

int cli_hostlist(const char *const *names, size_t n, char *buf, size_t len)
{
	size_t used = 0, i = 0;

	if (!len)
		return -ENOSPC;
	buf[0] = 0;
	while (i < n) {
		size_t plen, j, k, qlen;
		long num = name_number(names[i], &plen);

		if (used && append(buf, len, &used, ","))
			return -ENOSPC;
		/* a run of names with the same prefix and plain numbers */
		for (j = i + 1; num >= 0 && j < n; j++)
			if (name_number(names[j], &qlen) < 0 || qlen != plen ||
			    strncmp(names[i], names[j], plen))
				break;
		if (num < 0 || j == i + 1) {
			if (append(buf, len, &used, "%s", names[i]))
				return -ENOSPC;
			i++;
			continue;
		}
		if (append(buf, len, &used, "%.*s[", (int)plen, names[i]))
			return -ENOSPC;
		for (k = i; k < j;) {
			long lo = name_number(names[k], &qlen), hi = lo;
			size_t m = k + 1;

			while (m < j && name_number(names[m], &qlen) == hi + 1) {
				hi++;
				m++;
			}
			if (append(buf, len, &used, k > i ? ",%ld" : "%ld", lo))
				return -ENOSPC;
			if (hi > lo && append(buf, len, &used, "-%ld", hi))
				return -ENOSPC;
			k = m;
		}
		if (append(buf, len, &used, "]"))
			return -ENOSPC;
		i = j;
	}
	return 0;
}

void cli_format_elapsed(long secs, char *buf, size_t len)
{
	/* hec_format_duration() says UNLIMITED for 0: right for limits only */
	if (secs <= 0)
		snprintf(buf, len, "00:00:00");
	else
		hec_format_duration(secs, buf, len);
}

void cli_cluster_name(const char *realdir, char *buf, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a: stable across runs and machines */

	for (const unsigned char *p = (const unsigned char *)realdir; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	snprintf(buf, len, "c%08x", h);
}

int cli_node_cpus(int k, int n, const int *cpus, int ncpus, char *buf, size_t len)
{
	struct hec_cpuset set;
	int first, count;

	if (n <= 0 || k < 0 || k >= n || ncpus <= 0)
		return -EINVAL;
	memset(&set, 0, sizeof(set));
	if (n <= ncpus) {
		/* disjoint contiguous blocks; the last node takes the remainder */
		count = ncpus / n;
		first = k * count;
		if (k == n - 1)
			count = ncpus - first;
	} else {
		first = k % ncpus;
		count = 1;
	}
	for (int i = first; i < first + count; i++) {
		if (cpus[i] < 0 || cpus[i] >= HEC_MAX_CPUS)
			return -EINVAL;
		set.bits[cpus[i] / 64] |= 1ULL << (cpus[i] % 64);
	}
	return hec_cpuset_format(&set, buf, len);
}
