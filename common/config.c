/* SPDX-License-Identifier: BSD-3-Clause */
/* "key = value" configuration files, checked against each daemon's key table. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "hec/config.h"

#define CONF_MAX_FILE (1 << 20)

static const struct hec_conf_key *find_key(const struct hec_conf_key *keys, const char *key)
{
	for (; keys->key; keys++)
		if (!strcmp(keys->key, key))
			return keys;
	return NULL;
}

/* "250ms", "2s", "1m", "1h" or bare milliseconds. */
static int parse_ms(const char *v, long *out)
{
	static const struct { const char *suffix; long mult; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "", 1 },
	};
	char *end;
	long n;

	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno)
		return -ERANGE;
	for (size_t i = 0; i < HEC_ARRAY_SIZE(units); i++) {
		if (strcmp(end, units[i].suffix))
			continue;
		if (n > 100L * 86400 * 1000 / units[i].mult)
			return -ERANGE;
		*out = n * units[i].mult;
		return 0;
	}
	return -EINVAL;
}

int hec_conf_set(const struct hec_conf_key *keys, void *conf, const char *key,
		 const char *value, char *err, size_t errlen)
{
	const struct hec_conf_key *k = find_key(keys, key);
	char *field;
	long v;
	int rc;

	if (!k) {
		snprintf(err, errlen, "unknown key '%s'", key);
		return -ENOENT;
	}
	field = (char *)conf + k->offset;
	switch (k->kind) {
	case HEC_CONF_STR:
		if (strlen(value) >= k->size) {
			snprintf(err, errlen, "%s: value longer than %zu characters", key, k->size - 1);
			return -ENAMETOOLONG;
		}
		strcpy(field, value);
		return 0;
	case HEC_CONF_INT:
		rc = hec_parse_long(value, k->min, k->max, &v);
		break;
	case HEC_CONF_MS:
		rc = parse_ms(value, &v);
		if (!rc && (v < k->min || v > k->max))
			rc = -ERANGE;
		break;
	default:
		rc = -EINVAL;
	}
	if (rc == -ERANGE) {
		snprintf(err, errlen, "%s: '%s' out of range (%ld to %ld%s)", key, value,
			 k->min, k->max, k->kind == HEC_CONF_MS ? " ms" : "");
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "%s: '%s' is not a %s", key, value,
			 k->kind == HEC_CONF_MS ? "duration (e.g. 500ms, 2s, 1m)" : "number");
		return rc;
	}
	memcpy(field, &v, sizeof(v));
	return 0;
}

int hec_conf_defaults(const struct hec_conf_key *keys, void *conf)
{
	char err[256];

	for (; keys->key; keys++) {
		if (!keys->def)
			continue;
		if (hec_conf_set(keys, conf, keys->key, keys->def, err, sizeof(err)))
			return -EINVAL;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

int hec_conf_load_text(const struct hec_conf_key *keys, void *conf, const char *name,
		       const char *text, char *err, size_t errlen)
{
	char *copy = strdup(text), *line, *save = NULL;
	int lineno = 0, rc = 0;

	if (!copy)
		return -ENOMEM;
	/* strtok_r would skip empty lines and so miscount; walk by hand. */
	for (line = copy; line; line = save) {
		char why[512], *eq, *key, *value, *hash;

		save = strchr(line, '\n');
		if (save)
			*save++ = 0;
		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		line = trim(line);
		if (!*line)
			continue;
		eq = strchr(line, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected 'key = value'", name, lineno);
			rc = -EINVAL;
			break;
		}
		*eq = 0;
		key = trim(line);
		value = trim(eq + 1);
		rc = hec_conf_set(keys, conf, key, value, why, sizeof(why));
		if (rc) {
			snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
			break;
		}
	}
	free(copy);
	return rc;
}

int hec_conf_load_file(const struct hec_conf_key *keys, void *conf, const char *path,
		       char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t n;
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	text = malloc(CONF_MAX_FILE + 1);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(text, 1, CONF_MAX_FILE + 1, f);
	fclose(f);
	if (n > CONF_MAX_FILE) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, CONF_MAX_FILE);
		free(text);
		return -EFBIG;
	}
	text[n] = 0;
	if (strlen(text) != n) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		free(text);
		return -EINVAL;
	}
	rc = hec_conf_load_text(keys, conf, path, text, err, errlen);
	free(text);
	return rc;
}

void hec_conf_print_help(const struct hec_conf_key *keys)
{
	for (; keys->key; keys++)
		printf("  %-20s default %-24s %s\n", keys->key,
		       keys->def ? (*keys->def ? keys->def : "(empty)") : "(none)", keys->help);
}

/* getopt_long's value for key option i: above every character. */
#define KEY_OPT_BASE 256

/* One "-o key=value". \return 0 or an exit code after printing why. */
static int set_option(const struct hec_conf_key *keys, void *conf, const char *prog,
		      const char *arg)
{
	char err[1024], *kv = strdup(arg), *eq;
	int rc = 0;

	if (!kv) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	eq = strchr(kv, '=');
	if (!eq) {
		fprintf(stderr, "%s: -o %s: expected key=value\n", prog, arg);
		rc = 2;
		goto free_kv;
	}
	*eq = 0;
	if (hec_conf_set(keys, conf, kv, eq + 1, err, sizeof(err))) {
		fprintf(stderr, "%s: -o %s: %s\n", prog, arg, err);
		rc = 2;
	}
free_kv:
	free(kv);
	return rc;
}

int hec_conf_from_args(const struct hec_conf_key *keys, void *conf, const char *prog,
		       int argc, char **argv, const struct hec_conf_opt *key_opts,
		       void (*usage)(FILE *f), const char **file)
{
	static const struct option fixed[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "file", required_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'f' },
		{ "option", required_argument, NULL, 'o' },
	};
	const size_t nfixed = HEC_ARRAY_SIZE(fixed);
	struct option *longopts;
	const char *path = NULL;
	char err[1024];
	size_t nkey = 0;
	int opt, rc = 0;

	while (key_opts && key_opts[nkey].name)
		nkey++;
	longopts = calloc(nfixed + nkey + 1, sizeof(*longopts));
	if (!longopts) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	memcpy(longopts, fixed, sizeof(fixed));
	for (size_t i = 0; i < nkey; i++)
		longopts[nfixed + i] = (struct option){ key_opts[i].name, required_argument, NULL,
							KEY_OPT_BASE + (int)i };

	/* optind 0, not 1: glibc then also forgets a half-scanned "-ab" of a
	 * previous scan. */
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "hf:o:", longopts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			hec_conf_print_help(keys);
			rc = -1;
			goto free_longopts;
		}
		if (opt == 'f') {
			path = optarg;
		} else if (opt == '?' || opt == ':') {
			fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, argv[optind - 1]);
			rc = 2;
			goto free_longopts;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s' (try --help)\n", prog, argv[optind]);
		rc = 2;
		goto free_longopts;
	}
	if (path) {
		rc = hec_conf_load_file(keys, conf, path, err, sizeof(err));
		if (rc == -ENOMEM) {
			fprintf(stderr, "%s: out of memory\n", prog);
			rc = 1;
			goto free_longopts;
		}
		if (rc) {
			fprintf(stderr, "%s: %s\n", prog, err);
			rc = 2;
			goto free_longopts;
		}
	}
	/* Options override the file whatever the order on the command line. */
	optind = 0;
	while (!rc && (opt = getopt_long(argc, argv, "hf:o:", longopts, NULL)) != -1) {
		const struct hec_conf_opt *ko;

		if (opt == 'o') {
			rc = set_option(keys, conf, prog, optarg);
		} else if (opt >= KEY_OPT_BASE) {
			ko = &key_opts[opt - KEY_OPT_BASE];
			if (hec_conf_set(keys, conf, ko->key, optarg, err, sizeof(err))) {
				fprintf(stderr, "%s: --%s %s: %s\n", prog, ko->name, optarg, err);
				rc = 2;
			}
		}
	}
free_longopts:
	free(longopts);
	if (file)
		*file = path;
	return rc;
}
