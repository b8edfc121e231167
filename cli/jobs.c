/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Job and node commands: submit, queue, show, cancel, wait, logs, nodes.
 * Each parses its words, asks the controller, and prints what a SLURM user
 * expects to see (sbatch, squeue, scontrol show job, scancel, sinfo).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "cli/cli.h"

extern char **environ;

/* After losing the controller while waiting, keep trying this long: it may
 * be restarting (its state survives a kill -9). */
#define CLI_RECONNECT_MS 60000
#define CLI_POLL_MS 100

enum { K_HELP = 'h', K_DIR = 'D', K_JSON = CLI_LONG_ONLY + 100, K_ALL, K_TIMEOUT,
       K_LIMIT, K_BEFORE, K_FOLLOW = 'f' };

/* Node names of a job as a SLURM host list ("node[0-3]"). */
static void job_nodelist(const json_t *job, char *buf, size_t len)
{
	json_t *list = json_object_get(job, "nodelist"), *v;
	const char *names[CLI_NODES_MAX];
	size_t i, n = 0;

	buf[0] = 0;
	json_array_foreach(list, i, v)
		if (json_is_string(v) && n < HEC_ARRAY_SIZE(names))
			names[n++] = json_string_value(v);
	if (cli_hostlist(names, n, buf, len))
		snprintf(buf, len, "%s,...", n ? names[0] : "");
}

/* Seconds the job has run: until now, or until it ended, less the time it
 * was suspended (as SLURM's TIME). */
static long job_elapsed(const json_t *job)
{
	long start = cli_jint(job, "start_time", 0), end = cli_jint(job, "end_time", 0);
	long susp = cli_jint(job, "suspended_s", 0);

	if (start <= 0)
		return 0;
	if (end <= 0)
		end = (long)time(NULL);
	return end - start > susp ? end - start - susp : 0;
}

/* The common prologue: words into options, then the cluster directory. */
static int finish_ctx(struct cli_ctx *ctx, const char *dir)
{
	return cli_ctx_init(ctx, dir) ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

/* ---- submit ---- */

static const char submit_help[] =
	"usage: hec submit [options] SCRIPT [ARGS...]\n"
	"       hec submit [options] -- PROGRAM [ARGS...]\n"
	"Queue a batch job.  A SCRIPT (#! first line) may hold options in #HEC lines at\n"
	"its top; the command line wins over them.  With -- the job runs\n"
	"'mpiexec -n NTASKS PROGRAM ARGS...' on its nodes.\n"
	"  -N, --nodes=N        nodes to allocate (1..4096, default 1)\n"
	"  -n, --ntasks=N       MPI ranks (default: one per node)\n"
	"  -t, --time=LIMIT     time limit: MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN,\n"
	"                       D-H:MIN:SEC or UNLIMITED (default)\n"
	"  -J, --job-name=NAME  job name (default: the script's or program's name)\n"
	"      --priority=P     -1000000..1000000, higher runs first (default 0)\n"
	"      --share          gang time-share nodes with other --share jobs\n"
	"                       (default: the job's nodes are its own)\n"
	"      --mem=SIZE       memory per node, e.g. 512M, 2G (default: not counted);\n"
	"                       jobs sharing a node must fit its memory together\n"
"      --partition=KIND proc: processes in a cgroup (default); vm: a QEMU guest per\n"
	"                       node, the whole MPI job inside the guests\n"
	"      --vcpus=K        vm: vCPUs per guest (default: the node's ranks)\n"
	"      --vm-file=FILE   vm: put FILE (and the libraries it needs) into the guest\n"
	"                       image; the program of -- PROGRAM is put in by itself\n"
	"                       (--mem is the guest's RAM: default 512M, at least 128M)\n"
	"      --ckpt-interval=T checkpoint the job every T (30, 30s, 5m, 1h); a proc\n"
	"                       job's program takes it with libhecckpt\n"
	"      --ckpt-keep=K    committed checkpoints kept (1..1000, default 2)\n"
	"      --restart=auto   when a guest, its QEMU, an agent or a node is lost (proc:\n"
	"                       also the batch step failing), restart from the newest\n"
	"                       checkpoint (default: none)\n"
	"      --max-restarts=N automatic restarts at most (0..1000, default 3)\n"
	"  -o, --output=FILE    stdout of the job (default: SPOOL/UID/job-ID.out, SPOOL being hecctld's spool_dir)\n"
	"  -e, --error=FILE     stderr of the job (default: with stdout)\n"
	"      --json           print {\"job\": ID}\n"
	"  -D, --dir=DIR        cluster directory\n";

static int read_script(const char *path, char **textp, size_t *lenp)
{
	size_t cap = 65536, len = 0;
	char *text = NULL;
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		cli_err("%s: %s%s", path, strerror(-rc),
			rc == -ENOENT && !strchr(path, '/') ?
			" (to run a program rather than a script: hec submit -- PROGRAM)" : "");
		return rc;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		cli_err("%s: is a directory, not a batch script", path);
		rc = -EISDIR;
		goto err_close;
	}
	for (;;) {
		ssize_t n;

		if (len == cap || !text) {
			char *grown;

			if (text)
				cap *= 2;
			grown = realloc(text, cap + 1);
			if (!grown) {
				cli_err("%s: out of memory", path);
				rc = -ENOMEM;
				goto err_free;
			}
			text = grown;
		}
		n = read(fd, text + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			cli_err("%s: %s", path, strerror(-rc));
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)CLI_SCRIPT_MAX) {
			cli_err("%s: larger than 1 MiB: a batch script must be a small text file", path);
			rc = -EFBIG;
			goto err_free;
		}
	}
	text[len] = 0;
	close(fd);
	*textp = text;
	*lenp = len;
	return 0;

err_free:
	free(text);
err_close:
	close(fd);
	return rc;
}

static json_t *string_array(char *const *words, int n, const char *what)
{
	json_t *arr = json_array();

	for (int i = 0; arr && i < n; i++) {
		json_t *s = json_string(words[i]);

		if (!s) {
			cli_err("%s: '%s' is not valid UTF-8 text", what, words[i]);
			json_decref(arr);
			return NULL;
		}
		json_array_append_new(arr, s);
	}
	return arr;
}

static json_t *environment(void)
{
	json_t *arr = json_array();

	for (char **e = environ; arr && e && *e; e++) {
		json_t *s = json_string(*e);

		/* the controller stores text; a variable that is not is left out */
		if (!s) {
			const char *eq = strchr(*e, '=');

			fprintf(stderr, "hec: warning: not passing %.*s to the job: its value is not UTF-8\n",
				(int)(eq ? eq - *e : (long)strlen(*e)), *e);
			continue;
		}
		json_array_append_new(arr, s);
	}
	return arr;
}

static int abs_field(json_t *req, const char *key, const char *cwd, const char *path,
		     const char *opt)
{
	char abs[PATH_MAX];

	if (!path)
		return 0;
	if (cli_abspath(cwd, path, abs, sizeof(abs))) {
		cli_err("%s: path too long", opt);
		return -ENAMETOOLONG;
	}
	if (json_object_set_new(req, key, json_string(abs))) {
		cli_err("%s: '%s' is not valid UTF-8 text", opt, abs);
		return -EINVAL;
	}
	return 0;
}

/* The program of `hec submit -- PROG` as execvp() would find it: for a vm
 * partition the file itself goes into the guest image. */
static int find_program(const char *cwd, const char *prog, char *abs, size_t len)
{
	const char *path = getenv("PATH"), *p, *colon;

	if (strchr(prog, '/')) {
		if (cli_abspath(cwd, prog, abs, len))
			return -ENAMETOOLONG;
		return access(abs, X_OK) ? -errno : 0;
	}
	for (p = path ? path : "/usr/bin:/bin"; *p; p = *colon ? colon + 1 : colon) {
		char dir[PATH_MAX];
		int n;

		colon = strchrnul(p, ':');
		n = snprintf(dir, sizeof(dir), "%.*s", (int)(colon - p), p);
		if (n <= 0 || (size_t)n >= sizeof(dir))
			continue;
		if (cli_abspath(cwd, dir, abs, len))
			continue;
		if (strlen(abs) + 1 + strlen(prog) >= len)
			continue;
		strcat(abs, "/");
		strcat(abs, prog);
		if (access(abs, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

/* --partition vm: "partition", "vcpus" and the absolute paths of the files
 * the guest image needs ("vm_files"). */
static int vm_fields(json_t *req, const struct submit_opts *o, const char *cwd, char **rest,
		     int dashdash)
{
	char abs[PATH_MAX];
	json_t *files = json_array();
	int rc;

	if (!files || json_object_set_new(req, "partition", json_string("vm")))
		goto err_nomem;
	if (o->vcpus && json_object_set_new(req, "vcpus", json_integer(o->vcpus)))
		goto err_nomem;
	if (dashdash) {
		rc = find_program(cwd, rest[0], abs, sizeof(abs));
		if (rc) {
			cli_err("%s: %s (a vm partition copies the program into its guest)", rest[0],
				rc == -ENOENT ? "command not found" : strerror(-rc));
			goto err;
		}
		json_array_append_new(files, json_string(abs));
	}
	for (int i = 0; i < o->nvm_files; i++) {
		struct stat st;

		if (cli_abspath(cwd, o->vm_files[i], abs, sizeof(abs))) {
			cli_err("--vm-file: path too long");
			goto err;
		}
		if (stat(abs, &st)) {
			cli_err("--vm-file: %s: %s", abs, strerror(errno));
			goto err;
		}
		if (!S_ISREG(st.st_mode)) {
			cli_err("--vm-file: %s: not a regular file", abs);
			goto err;
		}
		if (json_array_append_new(files, json_string(abs))) {
			cli_err("--vm-file: '%s' is not valid UTF-8 text", abs);
			goto err;
		}
	}
	return json_object_set_new(req, "vm_files", files) ? -ENOMEM : 0;

err_nomem:
	cli_err("submit: out of memory");
err:
	json_decref(files);
	return -EINVAL;
}

int cmd_submit(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct submit_opts o = { 0 }, from_script = { 0 };
	char err[CLI_ERRLEN], cwd[PATH_MAX], *text = NULL, *with_args = NULL;
	char **rest;
	size_t len = 0;
	json_t *req = NULL, *resp = NULL;
	struct cli_args a;
	int key, json = 0, nrest, ret = CLI_EXIT_USAGE, ignored = 0;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, cli_submit_options)) != 0) {
		if (key < 0) {
			cli_usage("submit", "submit: %s", a.err);
			goto out;
		}
		if (key == CLI_OPERAND) {
			a.i--; /* the script: it and what follows are not ours */
			break;
		}
		if (key == SK_HELP) {
			fputs(submit_help, stdout);
			ret = CLI_EXIT_OK;
			goto out;
		}
		if (key == SK_JSON) {
			json = 1;
		} else if (key == SK_DIR) {
			dir = a.arg;
		} else if (submit_opt_apply(&o, key, a.arg, err, sizeof(err))) {
			cli_err("%s", err);
			goto out;
		}
	}
	rest = a.argv + a.i;
	nrest = a.argc - a.i;
	if (nrest == 0) {
		cli_usage("submit", a.dashdash ? "submit: no program after --" :
			  "submit: no batch script given (or -- PROGRAM ARGS...)");
		goto out;
	}
	ret = CLI_EXIT_ERR;
	if (!getcwd(cwd, sizeof(cwd))) {
		cli_err("submit: current directory: %s", strerror(errno));
		goto out;
	}
	if (!a.dashdash) {
		int rc;

		if (read_script(rest[0], &text, &len))
			goto out;
		if (script_check(text, len, err, sizeof(err))) {
			cli_err("%s: %s", rest[0], err);
			goto out;
		}
		rc = script_parse_directives(rest[0], text, len, &from_script, &ignored,
					     err, sizeof(err));
		if (rc) {
			cli_err("%s", rc == -ENOMEM ? "submit: out of memory" : err);
			ret = rc == -ENOMEM ? CLI_EXIT_ERR : CLI_EXIT_USAGE;
			goto out;
		}
		if (ignored)
			fprintf(stderr, "hec: warning: %s:%d: #HEC after the first command is ignored\n",
				rest[0], ignored);
		if (submit_opts_merge(&o, &from_script)) {
			cli_err("submit: out of memory");
			goto out;
		}
		if (nrest > 1) {
			if (script_set_args(text, len, rest + 1, nrest - 1, &with_args, err, sizeof(err))) {
				cli_err("%s: %s", rest[0], err);
				goto out;
			}
			free(text);
			text = with_args;
			len = strlen(text);
			with_args = NULL;
		}
	}
	if (submit_opts_finish(&o, rest[0], err, sizeof(err))) {
		cli_err("%s", err);
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	if (finish_ctx(ctx, dir))
		goto out;

	req = json_pack("{s:s,s:I,s:I,s:I,s:s,s:I,s:s}", "op", "submit",
			"nodes", (json_int_t)o.nodes, "ntasks", (json_int_t)o.ntasks,
			"time_limit", (json_int_t)o.time_limit, "name", o.name,
			"priority", (json_int_t)o.priority, "cwd", cwd);
	if (!req) {
		cli_err("submit: job name or directory is not valid UTF-8 text");
		goto out;
	}
	if (json_object_set_new(req, "env", environment()))
		goto out_nomem;
	if (o.share && json_object_set_new(req, "share", json_true()))
		goto out_nomem;
	if (o.mem_mb && json_object_set_new(req, "mem_mb", json_integer(o.mem_mb)))
		goto out_nomem;
	if (a.dashdash) {
		json_t *args = string_array(rest, nrest, "submit");

		if (!args)
			goto out;
		json_object_set_new(req, "argv", args);
	} else if (json_object_set_new(req, "script", json_stringn(text, len))) {
		goto out_nomem;
	}
	if (o.vm && vm_fields(req, &o, cwd, rest, a.dashdash))
		goto out;
	if ((o.ckpt_interval && json_object_set_new(req, "ckpt_interval",
						    json_integer(o.ckpt_interval))) ||
	    json_object_set_new(req, "ckpt_keep", json_integer(o.ckpt_keep)) ||
	    json_object_set_new(req, "restart", json_string(o.restart_auto ? "auto" : "none")) ||
	    json_object_set_new(req, "max_restarts", json_integer(o.max_restarts)))
		goto out_nomem;
	if (abs_field(req, "output", cwd, o.output, "--output") ||
	    abs_field(req, "error", cwd, o.error, "--error"))
		goto out;
	if (cli_request(ctx, "submit", req, &resp))
		goto out_sent;
	if (json)
		cli_print_json(resp);
	else
		printf("Submitted job %ld\n", cli_jint(resp, "job", 0));
	ret = CLI_EXIT_OK;
	json_decref(resp);
	goto out_sent;

out_nomem:
	cli_err("submit: out of memory");
out:
	json_decref(req);
out_sent:
	free(text);
	submit_opts_free(&o);
	submit_opts_free(&from_script);
	return ret;
}

/* ---- queue ---- */

static const struct cli_opt queue_options[] = {
	{ "all", K_ALL, 0 }, { "limit", K_LIMIT, 1 }, { "before", K_BEFORE, 1 },
	{ "json", K_JSON, 0 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};

static const char queue_help[] =
	"usage: hec queue [--all [--limit=N] [--before=JOBID]] [--json]\n"
	"List pending and running jobs (with --all, ended ones too), in job id order.\n"
	"      --all     include COMPLETED, FAILED, CANCELLED, TIMEOUT and NODE_FAIL jobs:\n"
	"                the newest N ended ones (a page); the others with --before\n"
	"      --limit=N ended jobs per page (default 1000, at most 100000; implies --all)\n"
	"      --before=JOBID\n"
	"                the page of ended jobs older than JOBID, without the pending and\n"
	"                running ones (stderr names it after a page; implies --all)\n"
	"      --json    print the controller's answer as JSON (\"more\": true and\n"
	"                \"next_before\" when older ended jobs remain)\n"
	"  -D, --dir=DIR cluster directory\n";

struct queue_args {
	const char *dir;
	int json, all;
	long limit, before;          /* 0: not given */
};

static int queue_parse(int argc, char **argv, struct queue_args *q)
{
	struct cli_args a;
	char err[200];
	int key;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, queue_options)) != 0) {
		if (key < 0)
			return cli_usage("queue", "queue: %s", a.err);
		if (key == CLI_OPERAND)
			return cli_usage("queue", "queue: unexpected argument '%s'", a.arg);
		switch (key) {
		case K_HELP:
			fputs(queue_help, stdout);
			return -1;
		case K_DIR:
			q->dir = a.arg;
			break;
		case K_JSON:
			q->json = 1;
			break;
		case K_ALL:
			q->all = 1;
			break;
		case K_LIMIT:
			if (cli_parse_num("--limit", a.arg, 1, 100000, &q->limit, err, sizeof(err)))
				return cli_usage("queue", "queue: %s", err);
			q->all = 1;
			break;
		case K_BEFORE:
			if (cli_parse_job_id(a.arg, &q->before, err, sizeof(err)))
				return cli_usage("queue", "queue: --before: %s", err);
			q->all = 1;
			break;
		}
	}
	if (a.i < a.argc)
		return cli_usage("queue", "queue: unexpected argument '%s'", a.argv[a.i]);
	return 0;
}

/* Parse a command that takes only flags and no operands. */
static int flags_only(const char *cmd, const char *help, const struct cli_opt *opts,
		      int argc, char **argv, const char **dir, int *flags)
{
	struct cli_args a;
	int key;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, opts)) != 0) {
		if (key < 0)
			return cli_usage(cmd, "%s: %s", cmd, a.err);
		if (key == CLI_OPERAND)
			return cli_usage(cmd, "%s: unexpected argument '%s'", cmd, a.arg);
		if (key == K_HELP) {
			fputs(help, stdout);
			return -1;
		}
		if (key == K_DIR)
			*dir = a.arg;
		else if (key == K_JSON)
			*flags |= 1;
	}
	if (a.i < a.argc)
		return cli_usage(cmd, "%s: unexpected argument '%s'", cmd, a.argv[a.i]);
	return 0;
}

int cmd_queue(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	static const char *const header[] = {
		"JOBID", "NAME", "USER", "STATE", "TIME", "NODES", "NODELIST(REASON)",
	};
	struct cli_table t = { .ncols = 7 };
	struct queue_args q = { .dir = dir };
	json_t *resp, *job, *req;
	int rc;
	size_t i;

	rc = queue_parse(argc, argv, &q);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (finish_ctx(ctx, q.dir))
		return CLI_EXIT_ERR;
	req = json_pack("{s:s,s:b}", "op", "queue", "all", q.all);
	if (req && q.limit)
		json_object_set_new(req, "limit", json_integer(q.limit));
	if (req && q.before)
		json_object_set_new(req, "before", json_integer(q.before));
	if (cli_request(ctx, "queue", req, &resp))
		return CLI_EXIT_ERR;
	if (q.json) {
		cli_print_json(resp);
		json_decref(resp);
		return CLI_EXIT_OK;
	}
	rc = cli_table_add(&t, header);
	json_array_foreach(json_object_get(resp, "jobs"), i, job) {
		char id[24], elapsed[32], nodes[24], where[4096];
		const char *state = cli_jstr(job, "state", "?");
		const char *row[7];

		snprintf(id, sizeof(id), "%ld", cli_jint(job, "id", 0));
		cli_format_elapsed(job_elapsed(job), elapsed, sizeof(elapsed));
		snprintf(nodes, sizeof(nodes), "%ld", cli_jint(job, "nodes", 0));
		job_nodelist(job, where, sizeof(where));
		if (!strcmp(state, "PENDING") || !where[0]) {
			const char *reason = cli_jstr(job, "reason", "");

			snprintf(where, sizeof(where), "(%s)", *reason ? reason : "None");
		}
		row[0] = id;
		row[1] = cli_jstr(job, "name", "");
		row[2] = cli_jstr(job, "user", "?");
		row[3] = state;
		row[4] = elapsed;
		row[5] = nodes;
		row[6] = where;
		rc = rc ? rc : cli_table_add(&t, row);
	}
	if (rc)
		cli_err("queue: out of memory");
	else
		cli_table_print(&t);
	/* on stderr: the table stays one line per job for scripts */
	if (!rc && json_is_true(json_object_get(resp, "more")))
		fprintf(stderr, "older ended jobs: hec queue --all --before=%ld\n",
			cli_jint(resp, "next_before", 0));
	cli_table_free(&t);
	json_decref(resp);
	return rc ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

/* ---- commands that take job ids ---- */

struct id_args {
	long ids[256];
	int n;
	int json;
	int follow;
	long timeout_ms;
	const char *dir;
};

static const struct cli_opt show_options[] = {
	{ "json", K_JSON, 0 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};
static const struct cli_opt cancel_options[] = {
	{ "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};
static const struct cli_opt wait_options[] = {
	{ "timeout", K_TIMEOUT, 1 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};
static const struct cli_opt logs_options[] = {
	{ "follow", K_FOLLOW, 0 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};

/*
 * Options and job ids in any order.  \return 0, -1 after --help,
 * or CLI_EXIT_USAGE (printed).  @one: exactly one id.
 */
static int parse_ids(const char *cmd, const char *help, const struct cli_opt *opts, int one,
		     int argc, char **argv, struct id_args *ia)
{
	char err[CLI_ERRLEN];
	struct cli_args a;
	int key;

	cli_args_init(&a, argc - 1, argv + 1);
	for (;;) {
		const char *word;

		key = cli_getopt(&a, opts);
		if (key == 0 && a.dashdash && a.i < a.argc) {
			word = a.argv[a.i++];
			key = CLI_OPERAND;
		} else if (key == CLI_OPERAND) {
			word = a.arg;
		} else {
			word = NULL;
		}
		if (key == 0)
			break;
		if (key < 0)
			return cli_usage(cmd, "%s: %s", cmd, a.err);
		switch (key) {
		case CLI_OPERAND:
			if (cli_parse_job_id(word, &ia->ids[ia->n], err, sizeof(err))) {
				cli_err("%s: %s", cmd, err);
				return CLI_EXIT_USAGE;
			}
			if (ia->n == (int)HEC_ARRAY_SIZE(ia->ids) - 1 || (one && ia->n == 1))
				return cli_usage(cmd, "%s: too many job IDs", cmd);
			ia->n++;
			break;
		case K_HELP:
			fputs(help, stdout);
			return -1;
		case K_DIR:
			ia->dir = a.arg;
			break;
		case K_JSON:
			ia->json = 1;
			break;
		case K_FOLLOW:
			ia->follow = 1;
			break;
		case K_TIMEOUT:
			if (cli_parse_duration_ms("--timeout", a.arg, 365L * 86400 * 1000,
						  &ia->timeout_ms, err, sizeof(err))) {
				cli_err("%s: %s", cmd, err);
				return CLI_EXIT_USAGE;
			}
			break;
		}
	}
	if (ia->n == 0)
		return cli_usage(cmd, "%s: which job? give a job ID", cmd);
	return 0;
}

/* parse_ids(), then the cluster directory.  \return -1 to go on, else the
 * exit status (after --help, a usage error, or without a cluster directory). */
static int id_prologue(struct cli_ctx *ctx, const char *cmd, const char *help,
		       const struct cli_opt *opts, int one, int argc, char **argv,
		       struct id_args *ia)
{
	int rc = parse_ids(cmd, help, opts, one, argc, argv, ia);

	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	return finish_ctx(ctx, ia->dir) ? CLI_EXIT_ERR : -1;
}

static json_t *job_req(const char *op, long id)
{
	return json_pack("{s:s,s:I}", "op", op, "job", (json_int_t)id);
}

/* ---- show ---- */

static const char show_help[] =
	"usage: hec show JOBID [--json]\n"
	"Print one job's record as KEY=VALUE lines, like scontrol show job.\n"
	"      --json    print the controller's answer as JSON\n"
	"  -D, --dir=DIR cluster directory\n";

static void iso_time(long t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(buf, len, "Unknown");
}

/* The strings esc() made for one command's output, freed together. */
struct esc_keep {
	char *s[16];
	int n;
};

/* @s made printable (cli_printable) for the terminal, kept in @k until
 * esc_free(); "?" if there is no memory (or no room in @k) for it. */
static const char *esc(const char *s, struct esc_keep *k)
{
	size_t len = 4 * strlen(s) + 1;
	char *b;

	if (k->n == (int)(sizeof(k->s) / sizeof(k->s[0])) || !(b = malloc(len)))
		return "?";
	k->s[k->n++] = b;
	return cli_printable(s, b, len);
}

static void esc_free(struct esc_keep *k)
{
	while (k->n > 0)
		free(k->s[--k->n]);
}

int cmd_show(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct id_args ia = { .dir = dir };
	char limit[32], sub[32], start[32], end[32], nodes[4096];
	struct esc_keep k = { 0 };
	const char *reason, *err;
	json_t *resp, *job;
	int rc;

	rc = id_prologue(ctx, "show", show_help, show_options, 1, argc, argv, &ia);
	if (rc >= 0)
		return rc;
	{
		char what[48];

		snprintf(what, sizeof(what), "show %ld", ia.ids[0]);
		if (cli_request(ctx, what, job_req("show", ia.ids[0]), &resp))
			return CLI_EXIT_ERR;
	}
	if (ia.json) {
		cli_print_json(resp);
		json_decref(resp);
		return CLI_EXIT_OK;
	}
	job = json_object_get(resp, "job");
	hec_format_duration(cli_jint(job, "time_limit", 0), limit, sizeof(limit));
	iso_time(cli_jint(job, "submit_time", 0), sub, sizeof(sub));
	iso_time(cli_jint(job, "start_time", 0), start, sizeof(start));
	iso_time(cli_jint(job, "end_time", 0), end, sizeof(end));
	job_nodelist(job, nodes, sizeof(nodes));
	reason = cli_jstr(job, "reason", "");
	err = cli_jstr(job, "error", "");
	printf("JobId=%ld JobName=%s\n", cli_jint(job, "id", 0), esc(cli_jstr(job, "name", ""), &k));
	printf("   UserId=%s(%ld) Priority=%ld\n", esc(cli_jstr(job, "user", "?"), &k),
	       cli_jint(job, "uid", -1), cli_jint(job, "priority", 0));
	printf("   JobState=%s Reason=%s ExitCode=%ld:%ld\n", cli_jstr(job, "state", "?"),
	       *reason ? esc(reason, &k) : "None", cli_jint(job, "exit_code", 0),
	       cli_jint(job, "signal", 0));
	printf("   NumNodes=%ld NumTasks=%ld TimeLimit=%s\n", cli_jint(job, "nodes", 0),
	       cli_jint(job, "ntasks", 0), limit);
	printf("   Share=%s MemPerNode=%ldM GangSlot=%ld\n",
	       json_is_true(json_object_get(job, "share")) ? "yes" : "no", cli_jint(job, "mem_mb", 0),
	       cli_jint(job, "slot", -1));
	if (!strcmp(cli_jstr(job, "partition", "proc"), "vm"))
		printf("   Partition=vm VCPUsPerNode=%ld\n", cli_jint(job, "vcpus", 0));
	else
		printf("   Partition=proc\n");
	{ /* vm jobs and programs that use libhecckpt alike */
		json_t *r;
		size_t i;

		printf("   CkptInterval=%lds CkptKeep=%ld NewestCkpt=%lld Restart=%s MaxRestarts=%ld AutoRestarts=%ld\n",
		       cli_jint(job, "ckpt_interval", 0), cli_jint(job, "ckpt_keep", 0),
		       (long long)json_integer_value(json_object_get(job, "ckpt_epoch")),
		       cli_jstr(job, "restart", "none"), cli_jint(job, "max_restarts", 0),
		       cli_jint(job, "nrestarts", 0));
		json_array_foreach(json_object_get(job, "restarts"), i, r) {
			json_t *on = json_pack("{s:O?}", "nodelist", json_object_get(r, "nodes"));
			struct esc_keep rk = { 0 };
			char when[32], nl[1024];

			iso_time(cli_jint(r, "time", 0), when, sizeof(when));
			job_nodelist(on, nl, sizeof(nl));
			json_decref(on);
			printf("   Restart%ld=%s FromCkpt=%lld NodeList=%s Reason=%s%s%s\n",
			       cli_jint(r, "n", 0), when,
			       (long long)json_integer_value(json_object_get(r, "epoch")),
			       nl[0] ? nl : "(null)", esc(cli_jstr(r, "reason", ""), &rk),
			       json_object_get(r, "error") ? " Error=" : "",
			       esc(cli_jstr(r, "error", ""), &rk));
			esc_free(&rk);
		}
	}
	printf("   SubmitTime=%s StartTime=%s EndTime=%s\n", sub, start, end);
	printf("   NodeList=%s\n", nodes[0] ? nodes : "(null)");
	printf("   Command=%s\n", esc(cli_jstr(job, "command", ""), &k));
	printf("   StdOut=%s\n", esc(cli_jstr(job, "output", ""), &k));
	printf("   StdErr=%s\n", esc(*err ? err : cli_jstr(job, "output", ""), &k));
	esc_free(&k);
	json_decref(resp);
	return CLI_EXIT_OK;
}

/* ---- cancel ---- */

static const char cancel_help[] =
	"usage: hec cancel JOBID...\n"
	"Cancel jobs: pending ones leave the queue, running ones are killed (CANCELLED).\n"
	"Exit status 1 if any could not be cancelled.\n"
	"  -D, --dir=DIR cluster directory\n";

int cmd_cancel(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct id_args ia = { .dir = dir };
	int rc, failed = 0;

	rc = id_prologue(ctx, "cancel", cancel_help, cancel_options, 0, argc, argv, &ia);
	if (rc >= 0)
		return rc;
	for (int i = 0; i < ia.n; i++) {
		char what[48];
		json_t *resp;

		snprintf(what, sizeof(what), "cancel %ld", ia.ids[i]);
		rc = cli_request(ctx, what, job_req("cancel", ia.ids[i]), &resp);
		if (rc == -ENOTCONN)
			return CLI_EXIT_ERR; /* the rest would fail the same way */
		if (rc)
			failed = 1;
		else
			json_decref(resp);
	}
	return failed ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

/* ---- polling a job ---- */

struct poller {
	struct cli_ctx *ctx;
	long id;
	int64_t lost_since; /* ns; 0 while the controller answers */
	int answered;       /* it answered at least once */
};

/*
 * Fetch the job.  \return 0 with *@job (a response: json_decref it),
 * -EAGAIN when the controller is unreachable for now (restarting?),
 * -1 after printing why we give up.
 */
static int poll_job(struct poller *p, const char *cmd, json_t **resp)
{
	char err[CLI_ERRLEN];
	json_t *req = job_req("show", p->id);
	int rc;

	if (!req) {
		cli_err("%s: out of memory", cmd);
		return -1;
	}
	rc = cli_call(p->ctx, req, resp, err, sizeof(err));
	json_decref(req);
	if (rc == 0) {
		p->lost_since = 0;
		p->answered = 1;
		return 0;
	}
	if (rc == -EREMOTEIO || !p->answered) {
		if (rc == -ENOTCONN && !strncmp(err, "no cluster", 10))
			cli_no_cluster(p->ctx);
		else
			cli_err("%s %ld: %s", cmd, p->id, err);
		return -1;
	}
	if (!p->lost_since)
		p->lost_since = hec_now_mono_ns();
	if (hec_now_mono_ns() - p->lost_since > (int64_t)CLI_RECONNECT_MS * 1000000) {
		cli_err("%s %ld: lost the controller for %d s: %s", cmd, p->id,
			CLI_RECONNECT_MS / 1000, err);
		return -1;
	}
	return -EAGAIN;
}

/* ---- wait ---- */

static const char wait_help[] =
	"usage: hec wait JOBID [--timeout DURATION]\n"
	"Wait until the job has ended; the exit status tells how:\n"
	"  0 COMPLETED; the job's exit code if FAILED (128+N if killed by signal N);\n"
	"  124 TIMEOUT; 125 NODE_FAIL; 130 CANCELLED; 3 if --timeout ran out first;\n"
	"  1 on errors, 2 on usage errors.\n"
	"      --timeout=DURATION  give up after DURATION: 30 (seconds), 30s, 500ms, 5m, 1h\n"
	"  -D, --dir=DIR           cluster directory\n";

static int final_status(const json_t *job, long id)
{
	const char *state = cli_jstr(job, "state", "?"), *reason = cli_jstr(job, "reason", "");
	long code = cli_jint(job, "exit_code", 0), sig = cli_jint(job, "signal", 0);
	char why[256];
	int status;

	if (!strcmp(state, "COMPLETED"))
		return CLI_EXIT_OK;
	if (!strcmp(state, "TIMEOUT"))
		status = 124;
	else if (!strcmp(state, "NODE_FAIL"))
		status = 125;
	else if (!strcmp(state, "CANCELLED"))
		status = 130;
	else if (sig > 0)
		status = (int)(128 + sig > 255 ? 255 : 128 + sig);
	else
		status = code > 0 && code <= 255 ? (int)code : 1;
	if (*reason)
		snprintf(why, sizeof(why), " (%s)", reason);
	else if (sig > 0)
		snprintf(why, sizeof(why), " (signal %ld)", sig);
	else if (!strcmp(state, "FAILED"))
		snprintf(why, sizeof(why), " (exit code %ld)", code);
	else
		why[0] = 0;
	fprintf(stderr, "job %ld %s%s\n", id, state, why);
	return status;
}

int cmd_wait(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct id_args ia = { .dir = dir };
	struct poller p = { .ctx = ctx };
	int64_t deadline;
	char state[32] = "UNKNOWN";
	int rc;

	rc = id_prologue(ctx, "wait", wait_help, wait_options, 1, argc, argv, &ia);
	if (rc >= 0)
		return rc;
	p.id = ia.ids[0];
	deadline = ia.timeout_ms ? hec_now_mono_ns() + (int64_t)ia.timeout_ms * 1000000 : 0;
	for (;;) {
		json_t *resp;

		rc = poll_job(&p, "wait", &resp);
		if (rc == -1)
			return CLI_EXIT_ERR;
		if (rc == 0) {
			json_t *job = json_object_get(resp, "job");

			snprintf(state, sizeof(state), "%s", cli_jstr(job, "state", "?"));
			if (cli_state_final(state)) {
				rc = final_status(job, p.id);
				json_decref(resp);
				return rc;
			}
			json_decref(resp);
		}
		if (deadline && hec_now_mono_ns() >= deadline) {
			if (ia.timeout_ms % 1000)
				cli_err("wait: job %ld is still %s after %ld ms (--timeout)", p.id,
					state, ia.timeout_ms);
			else
				cli_err("wait: job %ld is still %s after %ld s (--timeout)", p.id,
					state, ia.timeout_ms / 1000);
			return CLI_EXIT_WAIT_TIMEOUT;
		}
		cli_sleep_ms(CLI_POLL_MS);
	}
}

/* ---- logs ---- */

static const char logs_help[] =
	"usage: hec logs JOBID [-f]\n"
	"Print the job's output file; a separate error file goes to stderr.\n"
	"  -f, --follow  keep printing new output until the job has ended\n"
	"  -D, --dir=DIR cluster directory\n";

struct tail {
	char path[PATH_MAX];
	FILE *to;
	off_t off;
	int seen;           /* the file existed at some point */
};

/* Copy what was appended since last time.  \return 0, -ENOENT, -errno. */
static int tail_drain(struct tail *t)
{
	char buf[65536];
	int fd = open(t->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	t->seen = 1;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), t->off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		fwrite(buf, 1, (size_t)n, t->to);
		t->off += n;
	}
	fflush(t->to);
	close(fd);
	return 0;
}

static int set_paths(const struct cli_ctx *ctx, const json_t *job, long id,
		     struct tail *out, struct tail *err)
{
	const char *o = cli_jstr(job, "output", ""), *e = cli_jstr(job, "error", "");

	int n;

	if (*o) /* else the documented default, should an old controller not say */
		n = snprintf(out->path, sizeof(out->path), "%s", o);
	else
		n = snprintf(out->path, sizeof(out->path), "%s/spool/job-%ld.out", ctx->dir, id);
	if (n < 0 || (size_t)n >= sizeof(out->path))
		return -ENAMETOOLONG;
	err->path[0] = 0;
	if (*e && strcmp(e, out->path) &&
	    (size_t)snprintf(err->path, sizeof(err->path), "%s", e) >= sizeof(err->path))
		return -ENAMETOOLONG;
	return 0;
}

int cmd_logs(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct id_args ia = { .dir = dir };
	struct tail out = { .to = stdout }, err = { .to = stderr };
	struct poller p = { .ctx = ctx };
	char state[32] = "?";
	long started = 0;
	int rc, final = 0;

	rc = id_prologue(ctx, "logs", logs_help, logs_options, 1, argc, argv, &ia);
	if (rc >= 0)
		return rc;
	p.id = ia.ids[0];
	for (;;) {
		json_t *resp;

		rc = poll_job(&p, "logs", &resp);
		if (rc == -1)
			return CLI_EXIT_ERR;
		if (rc == 0) {
			json_t *job = json_object_get(resp, "job");

			if (getuid() != 0 && cli_jint(job, "uid", -1) != (long)getuid()) {
				cli_err("logs: job %ld is %s's: its output is theirs and root's alone",
					p.id, cli_jstr(job, "user", "another user"));
				json_decref(resp);
				return CLI_EXIT_ERR;
			}
			snprintf(state, sizeof(state), "%s", cli_jstr(job, "state", "?"));
			started = cli_jint(job, "start_time", 0);
			final = cli_state_final(state);
			rc = set_paths(ctx, job, p.id, &out, &err);
			json_decref(resp);
			if (rc) {
				cli_err("logs: job %ld: output path too long", p.id);
				return CLI_EXIT_ERR;
			}
			/* the state is read before the files: once final, the
			 * job's processes are gone and the files are complete */
			rc = tail_drain(&out);
			if (rc && rc != -ENOENT) {
				cli_err("logs: %s: %s", out.path, strerror(-rc));
				return CLI_EXIT_ERR;
			}
			if (err.path[0]) {
				rc = tail_drain(&err);
				if (rc && rc != -ENOENT) {
					cli_err("logs: %s: %s", err.path, strerror(-rc));
					return CLI_EXIT_ERR;
				}
			}
		}
		if (!ia.follow || final)
			break;
		cli_sleep_ms(200);
	}
	if (!out.seen && !err.seen) {
		if (!strcmp(state, "PENDING"))
			cli_err("logs: job %ld has not started", p.id);
		else if (final && started <= 0)
			cli_err("logs: job %ld never started (%s)", p.id, state);
		else
			cli_err("logs: job %ld: %s: %s", p.id, out.path, strerror(ENOENT));
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* ---- nodes ---- */

static const struct cli_opt nodes_options[] = {
	{ "json", K_JSON, 0 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};

static const char nodes_help[] =
	"usage: hec nodes [--json]\n"
	"List the cluster's nodes: state, CPUs, topology, memory and jobs.\n"
	"      --json    print the controller's answer as JSON\n"
	"  -D, --dir=DIR cluster directory\n";

/* Join the elements of a JSON array (strings or integers) with commas. */
static void join(const json_t *arr, char *buf, size_t len)
{
	size_t used = 0, i;
	json_t *v;

	buf[0] = 0;
	json_array_foreach(arr, i, v) {
		int n;

		if (json_is_integer(v))
			n = snprintf(buf + used, len - used, "%s%lld", used ? "," : "",
				     (long long)json_integer_value(v));
		else
			n = snprintf(buf + used, len - used, "%s%s", used ? "," : "",
				     json_is_string(v) ? json_string_value(v) : "?");
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = 0;
			return;
		}
		used += (size_t)n;
	}
}

int cmd_nodes(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	static const char *const header[] = {
		"NODE", "STATE", "CPUS", "CORES", "PUS", "NUMA", "MEM(MB)", "JOBS", "NOTE",
	};
	struct cli_table t = { .ncols = 9 };
	json_t *resp, *node;
	int flags = 0, rc, notes = 0;
	size_t i;

	rc = flags_only("nodes", nodes_help, nodes_options, argc, argv, &dir, &flags);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (finish_ctx(ctx, dir))
		return CLI_EXIT_ERR;
	if (cli_request(ctx, "nodes", json_pack("{s:s}", "op", "nodes"), &resp))
		return CLI_EXIT_ERR;
	if (flags & 1) {
		cli_print_json(resp);
		json_decref(resp);
		return CLI_EXIT_OK;
	}
	json_array_foreach(json_object_get(resp, "nodes"), i, node)
		notes |= json_array_size(json_object_get(node, "shares_cpus_with")) > 0;
	t.ncols = notes ? 9 : 8;
	rc = cli_table_add(&t, header);
	json_array_foreach(json_object_get(resp, "nodes"), i, node) {
		char cores[24], pus[24], numa[24], mem[24], jobs[1024], with[1024], note[1100];
		const char *row[9];

		snprintf(cores, sizeof(cores), "%ld", cli_jint(node, "cores", 0));
		snprintf(pus, sizeof(pus), "%ld", cli_jint(node, "pus", 0));
		snprintf(numa, sizeof(numa), "%ld", cli_jint(node, "numa_nodes", 0));
		snprintf(mem, sizeof(mem), "%ld", cli_jint(node, "memory_mb", 0));
		join(json_object_get(node, "jobs"), jobs, sizeof(jobs));
		join(json_object_get(node, "shares_cpus_with"), with, sizeof(with));
		if (with[0])
			snprintf(note, sizeof(note), "shares CPUs with %s", with);
		else
			note[0] = 0;
		row[0] = cli_jstr(node, "name", "?");
		row[1] = cli_jstr(node, "state", "?");
		row[2] = cli_jstr(node, "cpus", "");
		row[3] = cores;
		row[4] = pus;
		row[5] = numa;
		row[6] = mem;
		row[7] = jobs[0] ? jobs : "-";
		row[8] = note;
		rc = rc ? rc : cli_table_add(&t, row);
	}
	if (rc)
		cli_err("nodes: out of memory");
	else
		cli_table_print(&t);
	cli_table_free(&t);
	json_decref(resp);
	return rc ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

static const char storage_help[] =
	"usage: hec storage [--json]\n"
	"       hec storage repair [--json]\n"
	"List the checkpoint storage servers registered with the controller: state,\n"
	"address and transport, space used and free, objects held, corrupt copies\n"
	"found, health (for a server that is down: why); under them the last repair\n"
	"(the controller runs one when a server registers again after being down).\n"
	"`repair` (root): run a repair now and wait for it; exit status 1 if it\n"
	"failed or chunks were lost (no good copy left).\n"
	"      --json    print the controller's answer as JSON\n"
	"  -D, --dir=DIR cluster directory\n";

/* The controller answers when the repair ends, within its time limit. */
#define STORAGE_REPAIR_WAIT_MS (20 * 60 * 1000)

static int cmd_storage_repair(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	char err[CLI_ERRLEN], lines[4096];
	json_t *req, *resp = NULL;
	int flags = 0, rc;

	rc = flags_only("storage", storage_help, nodes_options, argc, argv, &dir, &flags);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (finish_ctx(ctx, dir))
		return CLI_EXIT_ERR;
	req = json_pack("{s:s}", "op", "storage_repair");
	if (!req) {
		cli_err("storage repair: out of memory");
		return CLI_EXIT_ERR;
	}
	rc = cli_call_wait(ctx, req, STORAGE_REPAIR_WAIT_MS, &resp, err, sizeof(err));
	json_decref(req);
	if (rc) {
		json_decref(resp);
		cli_err("storage repair: %s", err);
		return CLI_EXIT_ERR;
	}
	rc = cli_repair_lines(json_object_get(resp, "repair"), lines, sizeof(lines));
	if (flags & 1)
		cli_print_json(resp);
	else if (rc >= 0)
		printf("%s\n", lines);
	json_decref(resp);
	return rc > 0 ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

int cmd_storage(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct cli_table t = { .ncols = CLI_STORAGE_COLS };
	json_t *resp, *server;
	int flags = 0, rc;
	size_t i;

	if (argc > 1 && !strcmp(argv[1], "repair"))
		return cmd_storage_repair(ctx, dir, argc - 1, argv + 1);
	rc = flags_only("storage", storage_help, nodes_options, argc, argv, &dir, &flags);
	if (rc)
		return rc < 0 ? CLI_EXIT_OK : rc;
	if (finish_ctx(ctx, dir))
		return CLI_EXIT_ERR;
	if (cli_request(ctx, "storage", json_pack("{s:s}", "op", "storage"), &resp))
		return CLI_EXIT_ERR;
	if (flags & 1) {
		cli_print_json(resp);
		json_decref(resp);
		return CLI_EXIT_OK;
	}
	rc = cli_table_add(&t, cli_storage_header);
	json_array_foreach(json_object_get(resp, "servers"), i, server) {
		struct cli_storage_row r;

		cli_storage_row(server, &r);
		rc = rc ? rc : cli_table_add(&t, r.cell);
	}
	if (rc)
		cli_err("storage: out of memory");
	else if (!json_array_size(json_object_get(resp, "servers")))
		printf("no storage servers have registered\n");
	else
		cli_table_print(&t);
	if (!rc) {
		char lines[4096];

		if (cli_repair_lines(json_object_get(resp, "repair"), lines, sizeof(lines)) >= 0)
			printf("%s\n", lines);
	}
	cli_table_free(&t);
	json_decref(resp);
	return rc ? CLI_EXIT_ERR : CLI_EXIT_OK;
}
