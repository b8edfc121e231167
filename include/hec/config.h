/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Daemon configuration files: one "key = value" per line, '#' comments,
 * blank lines ignored.  Each daemon declares its keys in a table with the
 * default and a one-line description (shown by --help and in the man page);
 * unknown keys and bad values are errors that name the file and line.
 */
#ifndef HEC_CONFIG_H
#define HEC_CONFIG_H

#include <stddef.h>

/* STR fields are char[size]; INT and MS fields are long. */
enum hec_conf_kind { HEC_CONF_STR, HEC_CONF_INT, HEC_CONF_MS };

struct hec_conf_key {
	const char *key;
	enum hec_conf_kind kind;
	const char *def;       /* default, as text; NULL = no default */
	long min, max;         /* for INT and MS (milliseconds) */
	const char *help;
	size_t offset;         /* offsetof() the field in the caller's struct */
	size_t size;           /* STR: buffer size of that char[] field */
};

/** Store @def of every key into @conf. \return 0 or -EINVAL (bad default). */
int hec_conf_defaults(const struct hec_conf_key *keys, void *conf);

/**
 * Set one key from text.  MS values accept "250ms", "2s", "1m" or a bare
 * number of milliseconds.
 * \return 0, -ENOENT unknown key, -EINVAL malformed, -ERANGE out of range,
 *         -ENAMETOOLONG too long; @err gets a one-line reason.
 */
int hec_conf_set(const struct hec_conf_key *keys, void *conf, const char *key,
		 const char *value, char *err, size_t errlen);

/** Parse a whole file (or text); @err names "path:line: reason". */
int hec_conf_load_file(const struct hec_conf_key *keys, void *conf, const char *path,
		       char *err, size_t errlen);
int hec_conf_load_text(const struct hec_conf_key *keys, void *conf, const char *name,
		       const char *text, char *err, size_t errlen);

/** Print "key = default  # help" lines for --help. */
void hec_conf_print_help(const struct hec_conf_key *keys);

#endif
