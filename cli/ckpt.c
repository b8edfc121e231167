/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Checkpoints and restarts of vm jobs: hec ckpt, hec ckpts, hec restart
 * (doc/design.md, "Checkpoint and restart"; doc/protocol.md).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "cli/cli.h"

#define CKPT_POLL_MS 500
/* the controller may be restarting: keep asking this long */
#define CKPT_RECONNECT_MS 60000
/* a checkpoint neither under way, committed nor failed (a controller that
 * restarted cleans it up once the storage servers are back) */
#define CKPT_VANISHED_MS 60000

enum { C_HELP = 'h', C_DIR = 'D', C_WAIT = 'w', C_JSON = CLI_LONG_ONLY + 200, C_DELETE,
       C_EPOCH, C_NODES, C_WHEN };

static const struct cli_opt ckpt_options[] = {
	{ "wait", C_WAIT, 0 }, { "delete", C_DELETE, 0 }, { "json", C_JSON, 0 },
	{ "when", C_WHEN, 1 },
	{ "dir", C_DIR, 1 }, { "help", C_HELP, 0 }, { NULL, 0, 0 },
};

static const struct cli_opt ckpts_options[] = {
	{ "json", C_JSON, 0 }, { "dir", C_DIR, 1 }, { "help", C_HELP, 0 }, { NULL, 0, 0 },
};

static const struct cli_opt restart_options[] = {
	{ "epoch", C_EPOCH, 1 }, { "nodes", C_NODES, 1 }, { "json", C_JSON, 0 },
	{ "dir", C_DIR, 1 }, { "help", C_HELP, 0 }, { NULL, 0, 0 },
};

static const char ckpt_help[] =
	"usage: hec ckpt [--wait] [--when off-slot|in-slot|now] JOBID\n"
	"       hec ckpt --delete JOBID EPOCH\n"
	"       hec ckpt export JOBID EPOCH FILE.h5\n"
	"       hec ckpt import FILE.h5 [--job JOBID]\n"
	"Checkpoint a running job: a vm job's guests saved at one instant, a proc job's\n"
	"program asked to write its protected data (libhecckpt, at its next\n"
	"hecckpt_need); streamed to the storage servers, listed by hec ckpts once\n"
	"committed.  Prints the checkpoint's epoch.\n"
	"  -w, --wait    wait until it is committed (progress on stderr); exit status 1\n"
	"                with the reason if it failed\n"
	"      --when    for a job that time-shares its nodes (--share): capture its\n"
	"                guests while the gang has them switched out (off-slot, the\n"
	"                default: its own slots lose nothing), just after its slot\n"
	"                begins (in-slot), or as soon as possible (now)\n"
	"      --delete  delete committed checkpoint EPOCH of the job\n"
	"  export        write committed checkpoint EPOCH as a self-describing HDF5 file\n"
	"                (a group of datasets, one per guest; h5ls and h5dump read it)\n"
	"  import        put a checkpoint from such a file back on the storage servers\n"
	"                as the newest of the file's job (or of --job JOBID, yours); hec\n"
	"                restart then runs the job from it.  Prints its new epoch\n"
	"      --json    print the controller's answer as JSON\n"
	"  -D, --dir=DIR cluster directory\n";

static const char ckpts_help[] =
	"usage: hec ckpts JOBID [--json]\n"
	"List a job's committed checkpoints (epoch, time, size, duration, each guest's\n"
	"pause), the one under way and the last that failed.\n"
	"      --json    print the controller's answer as JSON\n"
	"  -D, --dir=DIR cluster directory\n";

static const char restart_help[] =
	"usage: hec restart JOBID [--epoch EPOCH] [--nodes LIST]\n"
	"Restart a job from a committed checkpoint: a running job's partitions are\n"
	"killed first; the job keeps its id and output, waits in the queue (reason\n"
	"Restart) and runs on from the saved state.\n"
	"      --epoch=EPOCH  the checkpoint (default: the newest committed one)\n"
	"      --nodes=LIST   run it on these nodes only: node0,node1 or node[0-1]\n"
	"      --json         print the controller's answer as JSON\n"
	"  -D, --dir=DIR      cluster directory\n";

struct ckpt_args {
	long job;
	long long epoch;
	int have_job, have_epoch;
	int wait, del, json;
	const char *nodes;
	const char *when;
	const char *dir;
};

/*
 * Options and operands (JOBID, then EPOCH where @epoch_operand) in any
 * order.  \return -1 to go on, else the exit status (after --help or a
 * usage error).
 */
static int parse(const char *cmd, const char *help, const struct cli_opt *opts, int argc,
		 char **argv, struct ckpt_args *ca, int epoch_operand)
{
	char err[CLI_ERRLEN];
	struct cli_args a;
	int key;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, opts)) != 0) {
		switch (key) {
		case CLI_OPERAND:
			if (!ca->have_job) {
				if (cli_parse_job_id(a.arg, &ca->job, err, sizeof(err)))
					return cli_usage(cmd, "%s: %s", cmd, err);
				ca->have_job = 1;
			} else if (epoch_operand && !ca->have_epoch) {
				if (cli_parse_epoch(a.arg, &ca->epoch, err, sizeof(err)))
					return cli_usage(cmd, "%s: %s", cmd, err);
				ca->have_epoch = 1;
			} else {
				return cli_usage(cmd, "%s: unexpected argument '%s'", cmd, a.arg);
			}
			break;
		case C_HELP:
			fputs(help, stdout);
			return CLI_EXIT_OK;
		case C_WHEN:
			if (strcmp(a.arg, "off-slot") && strcmp(a.arg, "in-slot") && strcmp(a.arg, "now"))
				return cli_usage(cmd, "%s: --when: '%s' is not off-slot, in-slot or now",
						 cmd, a.arg);
			ca->when = a.arg;
			break;
		case C_DIR:
			ca->dir = a.arg;
			break;
		case C_WAIT:
			ca->wait = 1;
			break;
		case C_DELETE:
			ca->del = 1;
			break;
		case C_JSON:
			ca->json = 1;
			break;
		case C_EPOCH:
			if (cli_parse_epoch(a.arg, &ca->epoch, err, sizeof(err)))
				return cli_usage(cmd, "%s: --epoch: %s", cmd, err);
			ca->have_epoch = 1;
			break;
		case C_NODES:
			ca->nodes = a.arg;
			break;
		default:
			return cli_usage(cmd, "%s: %s", cmd, a.err);
		}
	}
	if (a.dashdash && a.i < a.argc)
		return cli_usage(cmd, "%s: unexpected argument '%s'", cmd, a.argv[a.i]);
	if (!ca->have_job)
		return cli_usage(cmd, "%s: which job? give a job ID", cmd);
	return -1;
}

static json_t *ckpts_req(long job)
{
	return json_pack("{s:s,s:I}", "op", "ckpts", "job", (json_int_t)job);
}

/* The epoch's fate in a `ckpts` answer: 1 committed, -1 failed (@why), 0
 * under way (@line: its progress), 2 none of these. */
static int fate(const json_t *resp, long long epoch, long long now_ms, char *line, size_t len)
{
	const json_t *c, *cur = json_object_get(resp, "current");
	const json_t *err = json_object_get(resp, "last_error");
	size_t i;

	json_array_foreach(json_object_get(resp, "ckpts"), i, c)
		if (json_integer_value(json_object_get(c, "epoch")) == epoch)
			return 1;
	if (err && json_integer_value(json_object_get(err, "epoch")) == epoch) {
		snprintf(line, len, "%s", cli_jstr(err, "error", "failed"));
		return -1;
	}
	if (cur && json_integer_value(json_object_get(cur, "epoch")) == epoch) {
		cli_ckpt_progress(cur, now_ms, line, len);
		return 0;
	}
	return 2;
}

static long long now_ms(void)
{
	return hec_now_real_ns() / 1000000;
}

/* Poll `ckpts` until @epoch is committed or has failed. */
static int wait_commit(struct cli_ctx *ctx, long job, long long epoch)
{
	int64_t lost_since = 0, gone_since = 0, last_line = 0;
	int tty = isatty(2), shown = 0;
	char err[CLI_ERRLEN], line[CLI_ERRLEN];

	for (;;) {
		json_t *req = ckpts_req(job), *resp = NULL;
		int64_t mono = hec_now_mono_ns();
		int rc, f;

		if (!req) {
			cli_err("ckpt %ld: out of memory", job);
			return CLI_EXIT_ERR;
		}
		rc = cli_call(ctx, req, &resp, err, sizeof(err));
		json_decref(req);
		if (rc == -EREMOTEIO) {
			if (shown && tty)
				fputs("\n", stderr);
			cli_err("ckpt %ld: %s", job, err);
			return CLI_EXIT_ERR;
		}
		if (rc) {
			if (!lost_since)
				lost_since = mono;
			if (mono - lost_since > (int64_t)CKPT_RECONNECT_MS * 1000000) {
				cli_err("ckpt %ld: lost the controller for %d s: %s", job,
					CKPT_RECONNECT_MS / 1000, err);
				return CLI_EXIT_ERR;
			}
			cli_sleep_ms(CKPT_POLL_MS);
			continue;
		}
		lost_since = 0;
		f = fate(resp, epoch, now_ms(), line, sizeof(line));
		json_decref(resp);
		if (f == 1 || f == -1) {
			if (shown && tty)
				fputs("\r\033[K", stderr);
			if (f == 1) {
				printf("%lld\n", epoch);
				return CLI_EXIT_OK;
			}
			cli_err("ckpt %ld: checkpoint %lld failed: %s", job, epoch, line);
			return CLI_EXIT_ERR;
		}
		if (f == 0) {
			gone_since = 0;
			if (tty) {
				fprintf(stderr, "\r%s\033[K", line);
				shown = 1;
			} else if (mono - last_line >= 1000000000LL) {
				fprintf(stderr, "%s\n", line);
				last_line = mono;
			}
			fflush(stderr);
		} else {
			if (!gone_since)
				gone_since = mono;
			if (mono - gone_since > (int64_t)CKPT_VANISHED_MS * 1000000) {
				if (shown && tty)
					fputs("\n", stderr);
				cli_err("ckpt %ld: checkpoint %lld is neither under way nor committed (the controller restarted?)",
					job, epoch);
				return CLI_EXIT_ERR;
			}
		}
		cli_sleep_ms(CKPT_POLL_MS);
	}
}

/* FILE as an absolute path, from the current directory (the controller's
 * child opens it as the user, but not from the user's directory). */
static int abs_path(const char *file, char *buf, size_t len)
{
	char cwd[PATH_MAX];

	if (file[0] == '/')
		return hec_fmt(buf, len, "%s", file) ? -ENAMETOOLONG : 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	return hec_fmt(buf, len, "%s/%s", cwd, file) ? -ENAMETOOLONG : 0;
}

/* `hec ckpt export JOBID EPOCH FILE` and `hec ckpt import FILE [--job JOBID]`
 * (argv[0] is "export" or "import"). */
static int ckpt_h5(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	int exp = !strcmp(argv[0], "export");
	const char *cmd = exp ? "ckpt export" : "ckpt import";
	const char *operands[3] = { NULL, NULL, NULL }, *jobarg = NULL;
	char err[CLI_ERRLEN], path[PATH_MAX], what[64];
	long job = 0;
	long long epoch = 0;
	int nop = 0, rc;
	json_t *req, *resp = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(ckpt_help, stdout);
			return CLI_EXIT_OK;
		} else if ((!strcmp(argv[i], "-D") || !strcmp(argv[i], "--dir")) && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strncmp(argv[i], "--dir=", 6)) {
			dir = argv[i] + 6;
		} else if (!exp && !strcmp(argv[i], "--job") && i + 1 < argc) {
			jobarg = argv[++i];
		} else if (!exp && !strncmp(argv[i], "--job=", 6)) {
			jobarg = argv[i] + 6;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return cli_usage("ckpt", "%s: unknown option %s", cmd, argv[i]);
		} else if (nop < (exp ? 3 : 1)) {
			operands[nop++] = argv[i];
		} else {
			return cli_usage("ckpt", "%s: unexpected argument '%s'", cmd, argv[i]);
		}
	}
	if (nop != (exp ? 3 : 1))
		return cli_usage("ckpt", exp ? "%s: give JOBID EPOCH FILE.h5" : "%s: give FILE.h5", cmd);
	if ((exp && (cli_parse_job_id(operands[0], &job, err, sizeof(err)) ||
		     cli_parse_epoch(operands[1], &epoch, err, sizeof(err)))) ||
	    (jobarg && cli_parse_job_id(jobarg, &job, err, sizeof(err))))
		return cli_usage("ckpt", "%s: %s", cmd, err);
	rc = abs_path(operands[exp ? 2 : 0], path, sizeof(path));
	if (rc) {
		cli_err("%s: %s: %s", cmd, operands[exp ? 2 : 0], strerror(-rc));
		return CLI_EXIT_ERR;
	}
	if (cli_ctx_init(ctx, dir))
		return CLI_EXIT_ERR;
	req = exp ? json_pack("{s:s,s:I,s:I,s:s}", "op", "ckpt_export", "job", (json_int_t)job,
			      "epoch", (json_int_t)epoch, "path", path) :
		    json_pack("{s:s,s:s}", "op", "ckpt_import", "path", path);
	if (req && !exp && job)
		json_object_set_new(req, "job", json_integer(job));
	if (!req) {
		cli_err("%s: out of memory", cmd);
		return CLI_EXIT_ERR;
	}
	snprintf(what, sizeof(what), "%s", cmd);
	/* a checkpoint of GBs moves at disk speed: as long as the controller takes */
	rc = cli_call_wait(ctx, req, -1, &resp, err, sizeof(err));
	json_decref(req);
	if (rc) {
		cli_err("%s: %s", what, err);
		json_decref(resp);
		return CLI_EXIT_ERR;
	}
	if (exp)
		printf("%s\n", json_string_value(json_object_get(resp, "path")));
	else
		printf("%lld\n", (long long)json_integer_value(json_object_get(resp, "epoch")));
	json_decref(resp);
	return CLI_EXIT_OK;
}

int cmd_ckpt(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct ckpt_args ca = { .dir = dir };
	char what[64];
	json_t *req, *resp;
	int rc;

	if (argc > 1 && (!strcmp(argv[1], "export") || !strcmp(argv[1], "import")))
		return ckpt_h5(ctx, dir, argc - 1, argv + 1);
	rc = parse("ckpt", ckpt_help, ckpt_options, argc, argv, &ca, 1);
	if (rc >= 0)
		return rc;
	if (ca.del && !ca.have_epoch)
		return cli_usage("ckpt", "ckpt: --delete JOBID EPOCH: which checkpoint?");
	if (!ca.del && ca.have_epoch)
		return cli_usage("ckpt", "ckpt: an EPOCH is only for --delete");
	if (ca.del && (ca.wait || ca.when))
		return cli_usage("ckpt", "ckpt: --%s is not for --delete", ca.wait ? "wait" : "when");
	if (cli_ctx_init(ctx, ca.dir))
		return CLI_EXIT_ERR;
	if (ca.del) {
		snprintf(what, sizeof(what), "ckpt --delete %ld %lld", ca.job, ca.epoch);
		req = json_pack("{s:s,s:I,s:I}", "op", "ckpt_delete", "job", (json_int_t)ca.job,
				"epoch", (json_int_t)ca.epoch);
	} else {
		snprintf(what, sizeof(what), "ckpt %ld", ca.job);
		req = json_pack("{s:s,s:I}", "op", "ckpt", "job", (json_int_t)ca.job);
		if (req && ca.when)
			json_object_set_new(req, "when", json_string(ca.when));
	}
	if (!req) {
		cli_err("%s: out of memory", what);
		return CLI_EXIT_ERR;
	}
	if (cli_request(ctx, what, req, &resp))
		return CLI_EXIT_ERR;
	if (ca.json)
		cli_print_json(resp);
	else if (!ca.del && !ca.wait)
		printf("%lld\n", (long long)json_integer_value(json_object_get(resp, "epoch")));
	if (!ca.del && ca.wait) {
		long long epoch = (long long)json_integer_value(json_object_get(resp, "epoch"));

		json_decref(resp);
		return wait_commit(ctx, ca.job, epoch);
	}
	json_decref(resp);
	return CLI_EXIT_OK;
}

static void local_time(long long t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(buf, len, "-");
}

int cmd_ckpts(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	static const char *const header[] = {
		"EPOCH", "TIME", "SIZE", "STATE", "DURATION", "RESTORED", "PAUSE",
	};
	struct ckpt_args ca = { .dir = dir };
	struct cli_table t = { .ncols = 7 };
	const json_t *c, *cur, *err;
	char what[48], line[CLI_ERRLEN];
	json_t *resp;
	size_t i;
	int rc = parse("ckpts", ckpts_help, ckpts_options, argc, argv, &ca, 0);

	if (rc >= 0)
		return rc;
	if (cli_ctx_init(ctx, ca.dir))
		return CLI_EXIT_ERR;
	snprintf(what, sizeof(what), "ckpts %ld", ca.job);
	if (cli_request(ctx, what, ckpts_req(ca.job), &resp))
		return CLI_EXIT_ERR;
	if (ca.json) {
		cli_print_json(resp);
		json_decref(resp);
		return CLI_EXIT_OK;
	}
	rc = cli_table_add(&t, header);
	json_array_foreach(json_object_get(resp, "ckpts"), i, c) {
		char epoch[24], when[32], size[32], dur[32], restored[16], pause[1024];
		const char *row[7];

		snprintf(epoch, sizeof(epoch), "%lld",
			 (long long)json_integer_value(json_object_get(c, "epoch")));
		local_time(cli_jint(c, "time", 0), when, sizeof(when));
		cli_format_bytes(cli_jint(c, "bytes", 0), size, sizeof(size));
		snprintf(dur, sizeof(dur), "%.2f s", (double)cli_jint(c, "duration_ms", 0) / 1000.0);
		snprintf(restored, sizeof(restored), "%ld", cli_jint(c, "restored", 0));
		cli_ckpt_pauses(json_object_get(c, "parts"), pause, sizeof(pause));
		row[0] = epoch;
		row[1] = when;
		row[2] = size;
		row[3] = "committed";
		row[4] = dur;
		row[5] = restored;
		row[6] = pause;
		rc = rc ? rc : cli_table_add(&t, row);
	}
	if (rc) {
		cli_err("ckpts: out of memory");
	} else if (json_array_size(json_object_get(resp, "ckpts"))) {
		cli_table_print(&t);
	} else {
		printf("job %ld has no committed checkpoint\n", ca.job);
	}
	cur = json_object_get(resp, "current");
	if (cur) {
		cli_ckpt_progress(cur, now_ms(), line, sizeof(line));
		printf("in progress: %s\n", line);
	}
	err = json_object_get(resp, "last_error");
	if (err) {
		char when[32];

		local_time(cli_jint(err, "time", 0), when, sizeof(when));
		if (json_integer_value(json_object_get(err, "epoch")))
			printf("last failure: %s checkpoint %lld: %s\n", when,
			       (long long)json_integer_value(json_object_get(err, "epoch")),
			       cli_jstr(err, "error", "?"));
		else
			printf("last failure: %s: %s\n", when, cli_jstr(err, "error", "?"));
	}
	cli_table_free(&t);
	json_decref(resp);
	return rc ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

int cmd_restart(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct ckpt_args ca = { .dir = dir };
	char what[48], err[CLI_ERRLEN], names[CLI_NODES_MAX][65];
	json_t *req, *resp;
	int rc = parse("restart", restart_help, restart_options, argc, argv, &ca, 0), n = 0;

	if (rc >= 0)
		return rc;
	if (ca.nodes) {
		n = cli_hostlist_expand(ca.nodes, names, CLI_NODES_MAX, err, sizeof(err));
		if (n < 0)
			return cli_usage("restart", "restart: --nodes: %s", err);
	}
	if (cli_ctx_init(ctx, ca.dir))
		return CLI_EXIT_ERR;
	snprintf(what, sizeof(what), "restart %ld", ca.job);
	req = json_pack("{s:s,s:I}", "op", "restart", "job", (json_int_t)ca.job);
	if (req && ca.have_epoch)
		json_object_set_new(req, "epoch", json_integer(ca.epoch));
	if (req && ca.nodes) {
		json_t *list = json_array();

		for (int i = 0; list && i < n; i++)
			json_array_append_new(list, json_string(names[i]));
		json_object_set_new(req, "nodes", list);
	}
	if (!req) {
		cli_err("%s: out of memory", what);
		return CLI_EXIT_ERR;
	}
	if (cli_request(ctx, what, req, &resp))
		return CLI_EXIT_ERR;
	if (ca.json)
		cli_print_json(resp);
	else
		printf("Restarting job %ld from checkpoint %lld\n", ca.job,
		       (long long)json_integer_value(json_object_get(resp, "epoch")));
	json_decref(resp);
	return CLI_EXIT_OK;
}
