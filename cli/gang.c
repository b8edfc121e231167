/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec gang: the gang scheduler's matrix, its measured behaviour, and its
 * settings.
 *   hec gang [--json]                      the matrix (rows = time slots)
 *   hec gang stats [--json]                switch skew, lateness, costs, CPU shares
 *   hec gang set [--slot MS] [--max-share K] [--timeslice gang|none]   (root)
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hec/common.h"
#include "cli/cli.h"

enum { K_HELP = 'h', K_DIR = 'D', K_JSON = CLI_LONG_ONLY + 300, K_SLOT, K_MAX_SHARE, K_TIMESLICE };

static const struct cli_opt show_options[] = {
	{ "json", K_JSON, 0 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};
static const struct cli_opt set_options[] = {
	{ "slot", K_SLOT, 1 }, { "max-share", K_MAX_SHARE, 1 }, { "timeslice", K_TIMESLICE, 1 },
	{ "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};

static const char gang_help[] =
	"usage: hec gang [--json]\n"
	"       hec gang stats [--json]\n"
	"       hec gang set [--slot MS] [--max-share K] [--timeslice gang|none]\n"
	"Show the gang matrix (rows are time slots, columns nodes; each cell the job\n"
	"that runs there in that slot), the measured switching behaviour of the nodes,\n"
	"or change the scheduler's settings (root; takes effect at a new epoch).\n"
	"  stats: per slot boundary, the spread of the nodes' actual switch instants\n"
	"         (skew) p50/p99/max, lateness against the plan, freeze/thaw cost, and\n"
	"         each job's CPU share since the previous 'hec gang stats'.\n"
	"      --slot=MS        slot length, 1..60000 ms (10, 10ms, 1s)\n"
	"      --max-share=K    at most K --share jobs time-share a node (1..64)\n"
	"      --timeslice=MODE gang, or none (plain Linux scheduling of --share jobs)\n"
	"      --json           print the controller's answer as JSON\n"
	"  -D, --dir=DIR        cluster directory\n";

static double jnum(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static int print_matrix(const json_t *g)
{
	const json_t *nodes = json_object_get(g, "nodes"), *row, *v;
	struct cli_table t = { 0 };
	size_t i, j, ncol = json_array_size(nodes);
	char when[64] = "-";
	int rc = 0;

	{
		time_t start = (time_t)(cli_jint(g, "start", 0) / 1000000000L);
		struct tm tm;

		if (start > 0 && localtime_r(&start, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	}
	printf("timeslice %s, slot %.3g ms, %ld slot%s (max %ld), epoch %ld from %s\n",
	       cli_jstr(g, "timeslice", "?"), (double)cli_jint(g, "slot_ns", 0) / 1e6,
	       cli_jint(g, "nslots", 0), cli_jint(g, "nslots", 0) == 1 ? "" : "s",
	       cli_jint(g, "max_share", 0), cli_jint(g, "epoch", 0), when);
	/* Wide clusters print in chunks of columns (one header-only chunk if none). */
	for (size_t first = 0; !rc && (first == 0 || first < ncol); first += CLI_TABLE_COLS - 1) {
		size_t n = ncol - first < CLI_TABLE_COLS - 1 ? ncol - first : CLI_TABLE_COLS - 1;
		const char *cells[CLI_TABLE_COLS];
		char ids[CLI_TABLE_COLS][24];

		t.ncols = (int)n + 1;
		cells[0] = "SLOT";
		for (j = 0; j < n; j++)
			cells[j + 1] = json_string_value(json_array_get(nodes, first + j));
		rc = cli_table_add(&t, cells);
		json_array_foreach(json_object_get(g, "rows"), i, row) {
			const json_t *map = json_object_get(row, "nodes");

			snprintf(ids[0], sizeof(ids[0]), "%ld", cli_jint(row, "slot", (long)i));
			cells[0] = ids[0];
			for (j = 0; j < n; j++) {
				long job = cli_jint(map, json_string_value(json_array_get(nodes, first + j)), 0);

				if (job > 0)
					snprintf(ids[j + 1], sizeof(ids[j + 1]), "%ld", job);
				else
					strcpy(ids[j + 1], "-");
				cells[j + 1] = ids[j + 1];
			}
			rc = rc ? rc : cli_table_add(&t, cells);
		}
		if (!rc)
			cli_table_print(&t);
		cli_table_free(&t);
	}
	if (json_array_size(json_object_get(g, "suspended"))) {
		printf("suspended:");
		json_array_foreach(json_object_get(g, "suspended"), i, v)
			printf(" %lld", (long long)json_integer_value(v));
		printf("\n");
	}
	if (rc)
		cli_err("gang: out of memory");
	return rc ? CLI_EXIT_ERR : CLI_EXIT_OK;
}

static void print_dist(const char *what, const json_t *d, const char *a, const char *b,
		       const char *c)
{
	printf("%-9s", what);
	printf(" %s %.1f us", a, jnum(d, a));
	printf("  %s %.1f us", b, jnum(d, b));
	if (c)
		printf("  %s %.1f us", c, jnum(d, c));
	printf("\n");
}

static int print_stats(const json_t *s)
{
	const json_t *v;
	size_t i;

	printf("boundaries %ld (switched on 2 or more nodes), switch records %ld, %ld of them waited for a freeze\n",
	       cli_jint(s, "boundaries", 0), cli_jint(s, "switches", 0), cli_jint(s, "waited", 0));
	print_dist("skew", json_object_get(s, "skew_us"), "p50", "p99", "max");
	print_dist("lateness", json_object_get(s, "lateness_us"), "p50", "p99", "max");
	print_dist("freeze", json_object_get(s, "freeze_us"), "mean", "p99", NULL);
	print_dist("thaw", json_object_get(s, "thaw_us"), "mean", "p99", NULL);
	printf("%-6s %s\n", "JOB", "CPU_SHARE");
	json_array_foreach(json_object_get(s, "jobs"), i, v)
		printf("%-6ld %.3f\n", cli_jint(v, "job", 0), jnum(v, "cpu_share"));
	printf("%-8s %10s %8s %9s\n", "NODE", "OFFSET_US", "RTT_US", "SWITCHES");
	json_array_foreach(json_object_get(s, "nodes"), i, v)
		printf("%-8s %10.1f %8.1f %9ld\n", cli_jstr(v, "name", "?"), jnum(v, "offset_us"),
		       jnum(v, "rtt_us"), cli_jint(v, "switches", 0));
	if (json_array_size(json_object_get(s, "vm_switch"))) {
		/* measured on each guest when it booted; the cheaper one switches it */
		printf("%-8s %-6s %15s %15s %s\n", "NODE", "VM_JOB", "CGROUP_FRZ+THW", "QMP_STOP+CONT",
		       "SWITCHED_BY");
		json_array_foreach(json_object_get(s, "vm_switch"), i, v)
			printf("%-8s %-6ld %12.1f us %12.1f us %s\n", cli_jstr(v, "node", "?"),
			       cli_jint(v, "job", 0), jnum(v, "cgroup_us"), jnum(v, "qmp_us"),
			       cli_jstr(v, "method", "?"));
	}
	if (json_array_size(json_object_get(s, "missing"))) {
		printf("no answer from:");
		json_array_foreach(json_object_get(s, "missing"), i, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
	return CLI_EXIT_OK;
}

static int gang_show(struct cli_ctx *ctx, const char *dir, int argc, char **argv, int stats)
{
	const char *cmd = stats ? "gang stats" : "gang";
	struct cli_args a;
	json_t *resp;
	int key, json = 0, rc = 0;

	cli_args_init(&a, argc, argv);
	while ((key = cli_getopt(&a, show_options)) != 0) {
		if (key < 0)
			return cli_usage("gang", "%s: %s", cmd, a.err);
		if (key == CLI_OPERAND)
			return cli_usage("gang", "%s: unexpected argument '%s'", cmd, a.arg);
		if (key == K_HELP) {
			fputs(gang_help, stdout);
			return CLI_EXIT_OK;
		}
		if (key == K_DIR)
			dir = a.arg;
		else
			json = 1;
	}
	if (cli_ctx_init(ctx, dir))
		return CLI_EXIT_ERR;
	if (cli_request(ctx, cmd, json_pack("{s:s}", "op", stats ? "gang_stats" : "gang"), &resp))
		return CLI_EXIT_ERR;
	if (json)
		cli_print_json(resp);
	else if (stats)
		rc = print_stats(json_object_get(resp, "stats"));
	else
		rc = print_matrix(json_object_get(resp, "gang"));
	json_decref(resp);
	return json ? CLI_EXIT_OK : rc;
}

static int gang_set(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	json_t *req = json_pack("{s:s}", "op", "gang_set"), *resp;
	char err[CLI_ERRLEN];
	struct cli_args a;
	long v;
	int key, any = 0;

	if (!req)
		return CLI_EXIT_ERR;
	cli_args_init(&a, argc, argv);
	while ((key = cli_getopt(&a, set_options)) != 0) {
		switch (key) {
		case -1:
			json_decref(req);
			return cli_usage("gang", "gang set: %s", a.err);
		case CLI_OPERAND:
			json_decref(req);
			return cli_usage("gang", "gang set: unexpected argument '%s'", a.arg);
		case K_HELP:
			json_decref(req);
			fputs(gang_help, stdout);
			return CLI_EXIT_OK;
		case K_DIR:
			dir = a.arg;
			continue;
		case K_SLOT:
			if (cli_parse_slot_ms("--slot", a.arg, &v, err, sizeof(err)))
				goto bad;
			json_object_set_new(req, "slot_us", json_integer((json_int_t)v * 1000));
			break;
		case K_MAX_SHARE:
			if (cli_parse_num("--max-share", a.arg, 1, 64, &v, err, sizeof(err)))
				goto bad;
			json_object_set_new(req, "max_share", json_integer(v));
			break;
		case K_TIMESLICE:
			if (cli_parse_timeslice("--timeslice", a.arg, err, sizeof(err)))
				goto bad;
			json_object_set_new(req, "timeslice", json_string(a.arg));
			break;
		}
		any = 1;
	}
	if (!any) {
		json_decref(req);
		return cli_usage("gang", "gang set: nothing to set (--slot, --max-share, --timeslice)");
	}
	if (cli_ctx_init(ctx, dir)) {
		json_decref(req);
		return CLI_EXIT_ERR;
	}
	if (cli_request(ctx, "gang set", req, &resp))
		return CLI_EXIT_ERR;
	json_decref(resp);
	return CLI_EXIT_OK;
bad:
	json_decref(req);
	cli_err("%s", err);
	return CLI_EXIT_USAGE;
}

int cmd_gang(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "stats"))
		return gang_show(ctx, dir, argc - 2, argv + 2, 1);
	if (argc > 1 && !strcmp(argv[1], "set"))
		return gang_set(ctx, dir, argc - 2, argv + 2);
	return gang_show(ctx, dir, argc - 1, argv + 1, 0);
}
