/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec CLI internals.
 *
 * opts.c and script.c hold the pure parsing logic (option words, #HEC
 * directives, value checks, host lists) and never print or exit, so the
 * unit test links them without main(), with print.c (output formats).
 * Everything that talks to the controller or starts processes lives in
 * client.c, cluster.c and jobs.c; hec.c is main() and the command table.
 *
 * Convention: parsing helpers return 0 or a negative errno and leave a
 * one-line reason (without the "hec: " prefix) in a caller's buffer;
 * commands return the process exit status.
 */
#ifndef HEC_CLI_H
#define HEC_CLI_H

#include <limits.h>
#include <stddef.h>
#include <jansson.h>

#include "hec/msg.h"

/* Exit statuses shared by every command (hec.1, EXIT STATUS). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_ERR 1     /* the operation failed */
#define CLI_EXIT_USAGE 2   /* bad command line or #HEC directive */
#define CLI_EXIT_WAIT_TIMEOUT 3 /* hec wait --timeout ran out */

#define CLI_ERRLEN 512

/* ---- option words (opts.c) ---- */

/* Keys >= 256 are long-only options; CLI_OPERAND marks a non-option word. */
#define CLI_OPERAND 1
#define CLI_LONG_ONLY 256

struct cli_opt {
	const char *name;   /* long name without "--" */
	int key;            /* short letter, or CLI_LONG_ONLY + n */
	int has_arg;
};

struct cli_args {
	int argc;
	char **argv;
	int i;              /* next word to look at */
	int dashdash;       /* "--" was seen (and skipped) */
	size_t bundle;      /* >0: more short flags wait in argv[i] at this offset */
	const char *arg;    /* value of the option just returned, or the operand */
	const struct cli_opt *opt; /* the option just returned */
	char err[CLI_ERRLEN];
};

void cli_args_init(struct cli_args *a, int argc, char **argv);

/**
 * Next option from @a against the table @opts (ended by a NULL name).
 * Accepts "--name value", "--name=value", "-N value", "-Nvalue" and bundled
 * flags "-fq".  A value is taken verbatim even if it starts with '-'
 * ("--priority -5").
 * \return the option's key; CLI_OPERAND with a->arg for a non-option word
 *         (the caller decides whether options may follow it); 0 at the end
 *         or after "--" (a->dashdash set, a->i at the word after it);
 *         -1 for an unknown option, a missing value or a value given to a
 *         flag (a->err says which).
 */
int cli_getopt(struct cli_args *a, const struct cli_opt *opts);

/**
 * Value checks.  @what names the option for the message ("--nodes").
 * \return 0, or -EINVAL with e.g. "--nodes: 'abc' is not a number" or
 *         "--nodes: must be between 1 and 4096" in @err.
 */
int cli_parse_num(const char *what, const char *s, long min, long max, long *out,
		  char *err, size_t errlen);
/** SLURM time limit (hec_parse_time_limit); 0 = unlimited. */
/** Gang slot length: whole milliseconds ("10", "10ms", "1s"), 1 ms..60 s. */
int cli_parse_slot_ms(const char *what, const char *s, long *ms, char *err, size_t errlen);
/** "gang" or "none". \return 0 or -EINVAL (@err). */
int cli_parse_timeslice(const char *what, const char *s, char *err, size_t errlen);
/** Memory size (hec_parse_mem_mb) with a one-line @err. \return 0 or -EINVAL. */
int cli_parse_mem(const char *what, const char *s, long *mb, char *err, size_t errlen);
int cli_parse_time(const char *what, const char *s, long *secs, char *err, size_t errlen);
/** Duration "N" (seconds), "Nms", "Ns", "Nm", "Nh", in (0, @max_ms]. */
int cli_parse_duration_ms(const char *what, const char *s, long max_ms, long *ms,
			  char *err, size_t errlen);
/** A job id: a number in 1..INT32_MAX. */
int cli_parse_job_id(const char *s, long *id, char *err, size_t errlen);
/** A checkpoint's epoch: a number in 1..INT64_MAX. */
int cli_parse_epoch(const char *s, long long *epoch, char *err, size_t errlen);

/**
 * Node names from "node0,node2" or the host-list form cli_hostlist()
 * writes ("node[0-2,5],other"), into @names (@max of them, each at most
 * 64 characters).  \return how many, or -EINVAL with @err (empty, a bad
 * range, more than @max names).
 */
int cli_hostlist_expand(const char *list, char (*names)[65], int max, char *err, size_t errlen);

/** @path made absolute against @cwd ("." and ".." are left to the kernel).
 *  \return 0 or -ENAMETOOLONG. */
int cli_abspath(const char *cwd, const char *path, char *out, size_t len);

/**
 * Compress node names as SLURM does: node0,node1,node2,node5 ->
 * "node[0-2,5]"; names without a numeric suffix stay as they are.
 * \return 0 or -ENOSPC.
 */
int cli_hostlist(const char *const *names, size_t n, char *buf, size_t len);

/** Elapsed time for tables: hec_format_duration(), but "00:00:00" for 0. */
void cli_format_elapsed(long secs, char *buf, size_t len);

/** "c" + 8 hex digits of a FNV-1a hash of the cluster directory's real path:
 *  a short name for cgroup paths that differs between clusters. */
void cli_cluster_name(const char *realdir, char *buf, size_t len);

/**
 * CPUs of node @k of @n in an embedded cluster, from the @ncpus CPUs in
 * @cpus (the ones hec may run on): while n <= ncpus each node gets a
 * disjoint contiguous block of ncpus/n (the last also takes the rest);
 * beyond that node k shares cpus[k mod ncpus].  Written as a CPU list.
 * \return 0, -EINVAL, -ENOSPC.
 */
int cli_node_cpus(int k, int n, const int *cpus, int ncpus, char *buf, size_t len);

/* ---- hec submit options and #HEC directives (script.c) ---- */

#define CLI_NODES_MAX 4096
#define CLI_NTASKS_MAX (1L << 20)
#define CLI_PRIORITY_MAX 1000000L
#define CLI_NAME_MAX 128
#define CLI_SCRIPT_MAX (1L << 20)

enum submit_key {
	SK_NODES = 'N',
	SK_NTASKS = 'n',
	SK_TIME = 't',
	SK_NAME = 'J',
	SK_OUTPUT = 'o',
	SK_ERROR = 'e',
	SK_DIR = 'D',
	SK_HELP = 'h',
	SK_PRIORITY = CLI_LONG_ONLY,
	SK_JSON,
	SK_SHARE,
	SK_MEM,
	SK_PARTITION,
	SK_VCPUS,
	SK_VM_FILE,
	SK_CKPT_INTERVAL,
	SK_CKPT_KEEP,
	SK_RESTART,
	SK_MAX_RESTARTS,
};

/* Fields given so far (bit per field): command line beats directives. */
enum {
	SK_SET_NODES = 1u << 0,
	SK_SET_NTASKS = 1u << 1,
	SK_SET_TIME = 1u << 2,
	SK_SET_NAME = 1u << 3,
	SK_SET_OUTPUT = 1u << 4,
	SK_SET_ERROR = 1u << 5,
	SK_SET_PRIORITY = 1u << 6,
	SK_SET_SHARE = 1u << 7,
	SK_SET_MEM = 1u << 8,
	SK_SET_PARTITION = 1u << 9,
	SK_SET_VCPUS = 1u << 10,
	SK_SET_VM_FILES = 1u << 11,
	SK_SET_CKPT_INTERVAL = 1u << 12,
	SK_SET_CKPT_KEEP = 1u << 13,
	SK_SET_RESTART = 1u << 14,
	SK_SET_MAX_RESTARTS = 1u << 15,
};

#define CLI_CKPT_KEEP_DEFAULT 2
#define CLI_MAX_RESTARTS_DEFAULT 3

#define CLI_VM_MEM_DEFAULT 512

struct submit_opts {
	long nodes, ntasks, time_limit, priority;
	long share;                    /* 1: gang time-sharing with other jobs */
	long mem_mb;                   /* per node; 0: not counted (vm: guest RAM) */
	int vm;                        /* --partition vm: each node's share runs in a QEMU guest */
	long vcpus;                    /* vm: vCPUs per guest; 0: ranks per node */
	char **vm_files;               /* vm: extra files for the guest image (owned) */
	int nvm_files;
	long ckpt_interval;            /* vm: s between automatic checkpoints, 0: none */
	long ckpt_keep;                /* committed checkpoints kept */
	int restart_auto;              /* --restart auto */
	long max_restarts;             /* automatic restarts at most */
	char *name, *output, *error;   /* owned */
	unsigned set;
};

/* Command-line options of hec submit; directives accept the job options only. */
extern const struct cli_opt cli_submit_options[];
extern const struct cli_opt cli_directive_options[];

/** Check and store one job option (-N, -n, -t, -J, -o, -e, --priority,
 *  --share, --mem, --partition, --vcpus, --vm-file, --ckpt-interval,
 *  --ckpt-keep, --restart, --max-restarts).
 *  A later value replaces an earlier one. \return 0, -EINVAL (@err), -ENOMEM. */
int submit_opt_apply(struct submit_opts *o, int key, const char *val, char *err, size_t errlen);

/** Take every field @src set that @dst did not (@dst: command line). */
int submit_opts_merge(struct submit_opts *dst, const struct submit_opts *src);

/** Fill defaults (nodes 1, ntasks = nodes, name = @default_name) and check
 *  that the combination makes sense. \return 0 or -EINVAL (@err). */
int submit_opts_finish(struct submit_opts *o, const char *default_name, char *err, size_t errlen);

void submit_opts_free(struct submit_opts *o);

/**
 * Check a batch script's text: at most CLI_SCRIPT_MAX bytes, UTF-8 text
 * without NUL bytes, first line "#!interpreter".
 * \return 0, -EFBIG, -EINVAL (binary), -ENOEXEC (no #! line); @err says why.
 */
int script_check(const char *text, size_t len, char *err, size_t errlen);

/**
 * Read the #HEC directives at the top of a script (the header: everything
 * before the first line that is neither blank nor a '#' comment) into @o.
 * @name is how messages name the script ("job.sh:3: unknown option --foo").
 * *@ignored_line, if not NULL, receives the line of the first "#HEC" found
 * after the header (0 if none): those are not read, as in sbatch.
 * \return 0, -EINVAL (@err names the line), -ENOMEM.
 */
int script_parse_directives(const char *name, const char *text, size_t len,
			    struct submit_opts *o, int *ignored_line, char *err, size_t errlen);

/**
 * Pass @args to a script by starting its first command line with
 * "set -- 'arg' ...; " (line numbers stay the same).  Only for sh-family
 * interpreters (sh, bash, dash, ksh, zsh, mksh, also through env).
 * \return 0 with a malloc'ed NUL-terminated *@out, -ENOEXEC for another
 *         interpreter (@err), -ENOMEM.
 */
int script_set_args(const char *text, size_t len, char *const *args, int nargs,
		    char **out, char *err, size_t errlen);

/* ---- output (print.c) ---- */

/** String / integer member of a JSON object, or @def when absent or of
 *  another type. */
const char *cli_jstr(const json_t *o, const char *key, const char *def);
long cli_jint(const json_t *o, const char *key, long def);

/** A size for people, in units of 1024 as --mem counts them: "512 B",
 *  "153.2 MB", "2.0 GB". */
void cli_format_bytes(long long bytes, char *buf, size_t len);
/** @s as it may reach a terminal: every byte that is not printable text --
 *  C0 controls, DEL, C1 controls (U+0080-U+009F) and bytes that are not
 *  valid UTF-8 -- as \xNN, the rest (UTF-8 text included) as it is; cut to
 *  @len - 1 bytes, never in the middle of an escape or a character.
 *  Returns @buf.  Every string a user can put in (a job's command, name,
 *  output paths, a controller's error echoing it) goes through it before a
 *  terminal sees it. */
const char *cli_printable(const char *s, char *buf, size_t len);
/** A checkpoint's pauses for `hec ckpts`: "node0 4.1 ms, node1 3.9 ms"
 *  from its "parts" ([{node, pause_us, slot_pause_us, switched_out}]):
 *  "(2.0 in its slots)" where that differs, "off-slot" for a guest captured
 *  while switched out; "-" without parts. */
void cli_ckpt_pauses(const json_t *parts, char *buf, size_t len);
/** The progress of a checkpoint under way (the "current" of `ckpts`) at
 *  @now_ms (Unix ms): "checkpoint E: stream, 153.2 MB in 3.4 s (45.1 MB/s)". */
void cli_ckpt_progress(const json_t *current, long long now_ms, char *buf, size_t len);

/** `hec storage`: the table's header, and one row's cells for an element of
 *  the "storage" answer's servers (doc/storage.md): sizes as
 *  cli_format_bytes() writes them, HEALTH the server's health ("-" when it
 *  sent none), or for a server that is down why it is. */
#define CLI_STORAGE_COLS 10
extern const char *const cli_storage_header[CLI_STORAGE_COLS];
struct cli_storage_row {
	const char *cell[CLI_STORAGE_COLS];  /* point into @s and the buffers below */
	char used[32], free[32], chunks[24], manifests[24], corrupt[24];
};
void cli_storage_row(const json_t *s, struct cli_storage_row *r);
/** The lines `hec storage` prints under its table for the answer's
 *  "repair" (doc/storage.md): "repair: done TIME in N s (REASON): C copies
 *  made, L chunks lost, D deleted copies removed", "repair: failed TIME in
 *  N s (REASON): ERROR" or "repair: running since TIME (REASON)", then one
 *  "repair: lost N chunks of job J epoch E" per epoch with lost chunks;
 *  times local.  \return -1 (nothing to say: no repair ran), 1 if it failed
 *  or lost chunks, else 0. */
int cli_repair_lines(const json_t *r, char *buf, size_t len);

/** A text table: columns padded to their widest cell. */
#define CLI_TABLE_COLS 10
struct cli_table {
	int ncols;          /* at most CLI_TABLE_COLS */
	size_t nrows, cap;
	char **cells;       /* nrows * ncols, owned */
};
/** Append a row of ncols cells (copied; NULL = ""). \return 0 or -ENOMEM. */
int cli_table_add(struct cli_table *t, const char *const *row);
void cli_table_print(const struct cli_table *t);
void cli_table_free(struct cli_table *t);

/* ---- talking to the controller (client.c) ---- */

struct cli_ctx {
	char dir[PATH_MAX];     /* the cluster directory, as chosen */
	char sock[PATH_MAX];    /* dir/hecctld.sock */
	const char *dir_from;   /* "--dir", "HEC_DIR", "~/.hec/current", default */
	/* --controller / $HEC_CONTROLLER: HOST:PORT of a controller's cli_listen,
	 * reached over TCP with a MUNGE credential instead of the socket */
	char controller[300];
	char munge_socket[PATH_MAX]; /* $HEC_MUNGE_SOCKET; "": libmunge's default */
};

/* hec --controller HOST:PORT (NULL: $HEC_CONTROLLER, else the Unix socket) */
extern const char *cli_opt_controller;

/** Choose the cluster directory: @opt_dir, else $HEC_DIR, else the path in
 *  ~/.hec/current, else ~/.hec/cluster. \return 0 or -errno (printed). */
int cli_ctx_init(struct cli_ctx *ctx, const char *opt_dir);

/** "$HOME/.hec/<leaf>" into @buf. \return 0 or -ENOENT (no home). */
int cli_home_path(const char *leaf, char *buf, size_t len);

/**
 * One request/response exchange.  \return 0 with the response body in
 * *@resp (the caller json_decref()s it), or a negative errno with a
 * one-line reason in @err: -ENOTCONN no controller answers at the socket,
 * -EREMOTEIO the controller refused (its error text), others: I/O.
 */
int cli_call(const struct cli_ctx *ctx, json_t *req, json_t **resp, char *err, size_t errlen);
/** cli_call() waiting up to @timeout_ms (< 0: for as long as the controller
 *  takes), and on -EREMOTEIO from a RESPONSE also with its body in *@resp
 *  (the caller json_decref()s it; NULL after an ERROR frame). */
int cli_call_wait(const struct cli_ctx *ctx, json_t *req, int timeout_ms, json_t **resp,
		  char *err, size_t errlen);

/** cli_call() that prints failures as "hec: @what: reason" (or the
 *  "no cluster at D" hint) and steals @req. */
int cli_request(const struct cli_ctx *ctx, const char *what, json_t *req, json_t **resp);

/** Print a response body minus "ok", indented, on stdout. */
void cli_print_json(const json_t *resp);

/** Print "hec: " + message on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** Print a usage error naming @cmd's help; \return CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The "no cluster at D" line. */
void cli_no_cluster(const struct cli_ctx *ctx);

/** Is @state final (COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL)? */
int cli_state_final(const char *state);

/** Sleep @ms milliseconds (restarting after signals). */
void cli_sleep_ms(long ms);

/* ---- commands (argv[0] is the command's name) ---- */

int cmd_cluster(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_nodes(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_submit(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_queue(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_show(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_cancel(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_ckpt(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_ckpts(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_restart(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_wait(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_logs(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_gang(struct cli_ctx *ctx, const char *dir, int argc, char **argv);
int cmd_storage(struct cli_ctx *ctx, const char *dir, int argc, char **argv);

#endif
