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
#include <stdio.h>

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

/* A long option that sets a key: "--dir D" is "-o dir=D". */
struct hec_conf_opt {
	const char *name;      /* option name without the dashes */
	const char *key;
};

/**
 * A daemon's command line into @conf, which holds its defaults already:
 * -h/--help, -f/--file FILE (--config: the same), -o/--option key=value, and
 * the long options of @key_opts (NULL, or ended by a NULL name).  The file is
 * loaded first, then every -o and key option applies in command-line order.
 * Uses getopt_long (rescans from the start; GNU getopt permutes @argv).
 * \return 0; -1 after printing help (@usage(stdout) and the keys: exit 0); or
 *         an exit code after printing one line "@prog: reason" on stderr: 2 for
 *         a bad option, argument, file or value, 1 out of memory.
 *         @file (may be NULL) gets the -f FILE given, or NULL.
 */
int hec_conf_from_args(const struct hec_conf_key *keys, void *conf, const char *prog,
		       int argc, char **argv, const struct hec_conf_opt *key_opts,
		       void (*usage)(FILE *f), const char **file);

#endif
