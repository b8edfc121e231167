/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: hec's option words, value checks, #HEC directives (cli/opts.c, cli/script.c). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <CUnit/Basic.h>

#include "cli/cli.h"
#include "tests/unit/cunit_main.h"

enum { T_FLAG = 'f', T_QUIET = 'q', T_VAL = 'v', T_LONG = CLI_LONG_ONLY };

static const struct cli_opt topts[] = {
	{ "flag", T_FLAG, 0 }, { "quiet", T_QUIET, 0 }, { "value", T_VAL, 1 },
	{ "long-only", T_LONG, 1 }, { NULL, 0, 0 },
};

static void test_getopt_forms(void)
{
	char *argv[] = { "--value=1", "--value", "2", "-v", "3", "-v4", "-fq", "--long-only=-5",
			 "--long-only", "-6", "word", "--flag", "--", "-v", "x", NULL };
	struct cli_args a;

	cli_args_init(&a, 15, argv);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_VAL);
	CU_ASSERT_STRING_EQUAL(a.arg, "1");
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_VAL);
	CU_ASSERT_STRING_EQUAL(a.arg, "2");
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_VAL);
	CU_ASSERT_STRING_EQUAL(a.arg, "3");
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_VAL);
	CU_ASSERT_STRING_EQUAL(a.arg, "4");
	/* bundled flags */
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_FLAG);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_QUIET);
	/* values may start with '-' */
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_LONG);
	CU_ASSERT_STRING_EQUAL(a.arg, "-5");
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_LONG);
	CU_ASSERT_STRING_EQUAL(a.arg, "-6");
	/* an operand is reported; options may follow it */
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), CLI_OPERAND);
	CU_ASSERT_STRING_EQUAL(a.arg, "word");
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_FLAG);
	/* "--" ends the options; what follows is left alone */
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), 0);
	CU_ASSERT_EQUAL(a.dashdash, 1);
	CU_ASSERT_EQUAL(a.i, 13);
	CU_ASSERT_STRING_EQUAL(a.argv[a.i], "-v");
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), 0);
}

static void test_getopt_errors(void)
{
	char *unknown_long[] = { "--nope=3" }, *unknown_short[] = { "-x" };
	char *missing[] = { "--value" }, *missing_short[] = { "-v" };
	char *flag_value[] = { "--flag=1" }, *bad_bundle[] = { "-fz" }, *dash[] = { "-" };
	struct cli_args a;

	cli_args_init(&a, 1, unknown_long);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), -1);
	CU_ASSERT_STRING_EQUAL(a.err, "unknown option --nope");
	cli_args_init(&a, 1, unknown_short);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), -1);
	CU_ASSERT_STRING_EQUAL(a.err, "unknown option -x");
	cli_args_init(&a, 1, missing);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), -1);
	CU_ASSERT_STRING_EQUAL(a.err, "option --value needs a value");
	cli_args_init(&a, 1, missing_short);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(a.err, "needs a value"));
	cli_args_init(&a, 1, flag_value);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), -1);
	CU_ASSERT_STRING_EQUAL(a.err, "option --flag takes no value");
	cli_args_init(&a, 1, bad_bundle);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), T_FLAG);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), -1);
	CU_ASSERT_STRING_EQUAL(a.err, "unknown option -z");
	/* "-" alone is an operand (stdin, by convention) */
	cli_args_init(&a, 1, dash);
	CU_ASSERT_EQUAL(cli_getopt(&a, topts), CLI_OPERAND);
	CU_ASSERT_STRING_EQUAL(a.arg, "-");
}

static void test_values(void)
{
	char err[CLI_ERRLEN];
	long v, ms;

	CU_ASSERT_EQUAL(cli_parse_num("--nodes", "4", 1, 4096, &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, 4);
	CU_ASSERT_EQUAL(cli_parse_num("--nodes", "0", 1, 4096, &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: must be between 1 and 4096");
	CU_ASSERT_EQUAL(cli_parse_num("--nodes", "abc", 1, 4096, &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: 'abc' is not a number");
	CU_ASSERT_EQUAL(cli_parse_num("--nodes", "", 1, 4096, &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: '' is not a number");
	CU_ASSERT_EQUAL(cli_parse_num("--nodes", "2x", 1, 4096, &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: '2x' is not a number");
	CU_ASSERT_EQUAL(cli_parse_num("--nodes", "99999999999999999999", 1, 4096, &v, err,
				      sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: must be between 1 and 4096");
	CU_ASSERT_EQUAL(cli_parse_num("--priority", "-5", -1000000, 1000000, &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, -5);

	CU_ASSERT_EQUAL(cli_parse_time("--time", "10", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, 600);
	CU_ASSERT_EQUAL(cli_parse_time("--time", "1-02:03:04", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, 86400 + 2 * 3600 + 3 * 60 + 4);
	CU_ASSERT_EQUAL(cli_parse_time("--time", "UNLIMITED", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, 0);
	CU_ASSERT_EQUAL(cli_parse_time("--time", "1:2:3:4", &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--time: '1:2:3:4' is not a time limit"));
	CU_ASSERT_EQUAL(cli_parse_time("--time", "400-0", &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "365-day"));

	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "30", 3600000, &ms, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(ms, 30000);
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "250ms", 3600000, &ms, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(ms, 250);
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "5m", 3600000, &ms, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(ms, 300000);
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "1h", 3600000, &ms, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(ms, 3600000);
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "2h", 3600000, &ms, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "0", 3600000, &ms, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "5x", 3600000, &ms, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "'5x' is not a duration"));
	CU_ASSERT_EQUAL(cli_parse_duration_ms("--timeout", "-5", 3600000, &ms, err, sizeof(err)), -EINVAL);

	CU_ASSERT_EQUAL(cli_parse_job_id("12", &v, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(v, 12);
	CU_ASSERT_EQUAL(cli_parse_job_id("0", &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "job ID: must be between 1 and 2147483647");
	CU_ASSERT_EQUAL(cli_parse_job_id("-3", &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_parse_job_id("7.0", &v, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "job ID: '7.0' is not a number");
}

static void test_submit_options(void)
{
	struct submit_opts o = { 0 };
	char err[CLI_ERRLEN];
	char name[200];

	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NODES, "0", err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: must be between 1 and 4096");
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NODES, "abc", err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--nodes: 'abc' is not a number");
	CU_ASSERT_EQUAL(o.set, 0u);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NTASKS, "1048577", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_PRIORITY, "1000001", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NAME, "", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NAME, "a\nb", err, sizeof(err)), -EINVAL);
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NAME, name, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_TIME, "forever", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(o.set, 0u);

	/* defaults: one node, one task per node, name from the program */
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "/usr/bin/hostname", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.nodes, 1);
	CU_ASSERT_EQUAL(o.ntasks, 1);
	CU_ASSERT_EQUAL(o.time_limit, 0);
	CU_ASSERT_STRING_EQUAL(o.name, "hostname");
	submit_opts_free(&o);

	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NODES, "3", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "x", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.ntasks, 3);
	submit_opts_free(&o);

	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NODES, "4", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_NTASKS, "2", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "x", err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "--ntasks: 2 tasks cannot fill 4 nodes"));
	submit_opts_free(&o);
}

/* --ckpt-interval, --ckpt-keep, --restart, --max-restarts: values, defaults,
 * vm only, and as #HEC directives under the command line. */
static void test_ckpt_options(void)
{
	static const char script[] = "#!/bin/sh\n#HEC --partition vm --ckpt-interval 5m\n"
				     "#HEC --restart auto --max-restarts 7 --ckpt-keep 4\nrun\n";
	struct submit_opts o = { 0 }, d = { 0 };
	char err[CLI_ERRLEN];

	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_CKPT_INTERVAL, "0", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_CKPT_INTERVAL, "1500ms", err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--ckpt-interval: '1500ms' is not a whole number of seconds");
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_CKPT_INTERVAL, "soon", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_CKPT_KEEP, "0", err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--ckpt-keep: must be between 1 and 1000");
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_RESTART, "always", err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "--restart: 'always' is not auto or none");
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_MAX_RESTARTS, "1001", err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(o.set, 0u);

	/* defaults: no interval, keep 2, no restart, 3 restarts at most */
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "x", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.ckpt_interval, 0);
	CU_ASSERT_EQUAL(o.ckpt_keep, 2);
	CU_ASSERT_EQUAL(o.restart_auto, 0);
	CU_ASSERT_EQUAL(o.max_restarts, 3);
	submit_opts_free(&o);

	/* a proc job too: its program takes the checkpoints (libhecckpt) */
	memset(&o, 0, sizeof(o));
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_CKPT_INTERVAL, "30", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.ckpt_interval, 30);
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "x", err, sizeof(err)), 0);
	submit_opts_free(&o);
	memset(&o, 0, sizeof(o));
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_RESTART, "auto", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "x", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.restart_auto, 1);
	submit_opts_free(&o);

	/* directives, and the command line over them */
	memset(&o, 0, sizeof(o));
	CU_ASSERT_EQUAL(submit_opt_apply(&o, SK_MAX_RESTARTS, "0", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(script_parse_directives("j.sh", script, strlen(script), &d, NULL, err,
						      sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opts_merge(&o, &d), 0);
	CU_ASSERT_EQUAL(submit_opts_finish(&o, "j.sh", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.vm, 1);
	CU_ASSERT_EQUAL(o.ckpt_interval, 300);
	CU_ASSERT_EQUAL(o.ckpt_keep, 4);
	CU_ASSERT_EQUAL(o.restart_auto, 1);
	CU_ASSERT_EQUAL(o.max_restarts, 0);
	submit_opts_free(&o);
	submit_opts_free(&d);
}

/* hec restart --nodes: lists and ranges back into names; EPOCH operands. */
static void test_hostlist_expand(void)
{
	char names[8][65], err[CLI_ERRLEN];
	long long e;

	CU_ASSERT_EQUAL(cli_hostlist_expand("node0,node2", names, 8, err, sizeof(err)), 2);
	CU_ASSERT_STRING_EQUAL(names[1], "node2");
	CU_ASSERT_EQUAL(cli_hostlist_expand("node[0-2,5],gpu1", names, 8, err, sizeof(err)), 5);
	CU_ASSERT_STRING_EQUAL(names[0], "node0");
	CU_ASSERT_STRING_EQUAL(names[2], "node2");
	CU_ASSERT_STRING_EQUAL(names[3], "node5");
	CU_ASSERT_STRING_EQUAL(names[4], "gpu1");
	CU_ASSERT_EQUAL(cli_hostlist_expand("n[1-9]", names, 8, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "more than 8 node names");
	CU_ASSERT_EQUAL(cli_hostlist_expand("node[2-1]", names, 8, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "is not a node list"));
	CU_ASSERT_EQUAL(cli_hostlist_expand("node[0-x]", names, 8, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_hostlist_expand("node0,", names, 8, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_hostlist_expand("", names, 8, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_hostlist_expand("a,,b", names, 8, err, sizeof(err)), -EINVAL);

	CU_ASSERT_EQUAL(cli_parse_epoch("1765000000123456", &e, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(e, 1765000000123456LL);
	CU_ASSERT_EQUAL(cli_parse_epoch("0", &e, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(cli_parse_epoch("12x", &e, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "EPOCH: '12x' is not a number");
}

/* hec ckpts: the pauses column and the progress line of the one under way. */
static void test_ckpt_lines(void)
{
	json_t *parts = json_loads("[{\"part\":\"p0\",\"node\":\"node0\",\"pause_us\":4100},"
				   "{\"part\":\"p1\",\"node\":\"node1\",\"pause_us\":39}]", 0, NULL);
	json_t *cur = json_pack("{s:I,s:s,s:I,s:I}", "epoch", (json_int_t)77, "phase", "stream",
				"bytes", (json_int_t)(100LL << 20), "started", (json_int_t)1000000);
	char buf[256];

	cli_ckpt_pauses(parts, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "node0 4.1 ms, node1 0.0 ms");
	/* a time-sharing job's: what fell in its slots, and off-slot captures */
	json_object_set_new(json_array_get(parts, 0), "slot_pause_us", json_integer(2000));
	json_object_set_new(json_array_get(parts, 1), "slot_pause_us", json_integer(40));
	json_object_set_new(json_array_get(parts, 1), "switched_out", json_true());
	cli_ckpt_pauses(parts, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "node0 4.1 ms (2.0 in its slots), node1 0.0 ms off-slot");
	cli_ckpt_pauses(NULL, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "-");
	cli_ckpt_progress(cur, 1004000, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "checkpoint 77: stream, 100.0 MB in 4.0 s (25.0 MB/s)");
	json_object_set_new(cur, "bytes", json_integer(0));
	cli_ckpt_progress(cur, 1000000, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "checkpoint 77: stream, 0 B in 0.0 s");
	json_object_set_new(cur, "phase", json_string("program"));
	cli_ckpt_progress(cur, 1002500, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "checkpoint 77: waiting for the program (its next hecckpt_need), 2.5 s");
	json_decref(parts);
	json_decref(cur);
}

static const char job_sh[] =
	"#!/bin/bash\n"                       /* 1 */
	"# a comment\n"                       /* 2 */
	"#HEC -N 2\n"                         /* 3 */
	"\n"                                  /* 4 */
	"#HEC --ntasks=4 --time 10\n"         /* 5 */
	"#HEC -J \"my job\"  # why: a name\n" /* 6 */
	"   # indented comment\n"             /* 7 */
	"#HECTOR is a comment\n"              /* 8 */
	"#HEC --priority=-3 -o out.txt\n"     /* 9 */
	"echo start\n"                        /* 10 */
	"#HEC -N 7\n";                        /* 11: after the first command */

static void test_directives(void)
{
	struct submit_opts o = { 0 };
	char err[CLI_ERRLEN] = "";
	int ignored = -1;

	CU_ASSERT_EQUAL_FATAL(script_parse_directives("job.sh", job_sh, strlen(job_sh), &o, &ignored,
						      err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.nodes, 2);
	CU_ASSERT_EQUAL(o.ntasks, 4);
	CU_ASSERT_EQUAL(o.time_limit, 600);
	CU_ASSERT_EQUAL(o.priority, -3);
	CU_ASSERT_STRING_EQUAL(o.name, "my job");
	CU_ASSERT_STRING_EQUAL(o.output, "out.txt");
	CU_ASSERT_PTR_NULL(o.error);
	/* reading stopped at line 10; line 11 is reported, not applied */
	CU_ASSERT_EQUAL(ignored, 11);
	submit_opts_free(&o);

	/* without the ignored-line report the parse is the same */
	CU_ASSERT_EQUAL(script_parse_directives("job.sh", job_sh, strlen(job_sh), &o, NULL,
						err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(o.nodes, 2);
	submit_opts_free(&o);
}

static void test_directive_precedence(void)
{
	struct submit_opts cmd = { 0 }, script = { 0 };
	char err[CLI_ERRLEN];

	/* command line: -N 3 -J cli; script: -N 2 -n 4 -J "my job" -o out.txt */
	CU_ASSERT_EQUAL(submit_opt_apply(&cmd, SK_NODES, "3", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opt_apply(&cmd, SK_NAME, "cli", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(script_parse_directives("job.sh", job_sh, strlen(job_sh), &script,
						      NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(submit_opts_merge(&cmd, &script), 0);
	CU_ASSERT_EQUAL(cmd.nodes, 3);
	CU_ASSERT_STRING_EQUAL(cmd.name, "cli");
	CU_ASSERT_EQUAL(cmd.ntasks, 4);
	CU_ASSERT_EQUAL(cmd.time_limit, 600);
	CU_ASSERT_STRING_EQUAL(cmd.output, "out.txt");
	CU_ASSERT_EQUAL(submit_opts_finish(&cmd, "job.sh", err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(cmd.name, "cli");
	submit_opts_free(&cmd);
	submit_opts_free(&script);

	/* a later directive replaces an earlier one */
	{
		const char *s = "#!/bin/sh\n#HEC -N 2\n#HEC --nodes=5\ntrue\n";

		CU_ASSERT_EQUAL(script_parse_directives("s", s, strlen(s), &script, NULL, err,
							sizeof(err)), 0);
		CU_ASSERT_EQUAL(script.nodes, 5);
		submit_opts_free(&script);
	}
}

static void expect_directive_error(const char *text, const char *msg)
{
	struct submit_opts o = { 0 };
	char err[CLI_ERRLEN] = "";

	CU_ASSERT_EQUAL(script_parse_directives("job.sh", text, strlen(text), &o, NULL, err,
						sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, msg);
	submit_opts_free(&o);
}

static void test_directive_errors(void)
{
	expect_directive_error("#!/bin/sh\n#HEC -N 2\n#HEC --foo\n", "job.sh:3: unknown option --foo");
	expect_directive_error("#!/bin/sh\n\n\n#HEC -x 1\n", "job.sh:4: unknown option -x");
	expect_directive_error("#!/bin/sh\n#HEC -N abc\n", "job.sh:2: --nodes: 'abc' is not a number");
	expect_directive_error("#!/bin/sh\n#HEC -N 0\n", "job.sh:2: --nodes: must be between 1 and 4096");
	expect_directive_error("#!/bin/sh\n#HEC --nodes\n", "job.sh:2: option --nodes needs a value");
	expect_directive_error("#!/bin/sh\n#HEC -J 'open\n", "job.sh:2: unterminated single quote");
	expect_directive_error("#!/bin/sh\n#HEC -N 2 extra\n",
			       "job.sh:2: unexpected word 'extra' (a #HEC line holds options only)");
	/* command-line-only options are not job options */
	expect_directive_error("#!/bin/sh\n#HEC --json\n", "job.sh:2: unknown option --json");
	expect_directive_error("#!/bin/sh\r\n#HEC --time=nope\r\n",
			       "job.sh:2: --time: 'nope' is not a time limit (MIN, MIN:SEC, H:MIN:SEC, D-H, D-H:MIN, D-H:MIN:SEC or UNLIMITED)");

	/* errors after the first command line are not seen at all */
	{
		const char *s = "#!/bin/sh\nhostname\n#HEC --foo\n";
		struct submit_opts o = { 0 };
		char err[CLI_ERRLEN];
		int ignored = 0;

		CU_ASSERT_EQUAL(script_parse_directives("job.sh", s, strlen(s), &o, &ignored, err,
							sizeof(err)), 0);
		CU_ASSERT_EQUAL(o.set, 0u);
		CU_ASSERT_EQUAL(ignored, 3);
		submit_opts_free(&o);
	}
}

static void test_script_check(void)
{
	static const char nul[] = "#!/bin/sh\necho \0x\n";
	char err[CLI_ERRLEN], *big;

	CU_ASSERT_EQUAL(script_check("#!/bin/sh\necho héllo\n", 22, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(script_check(nul, sizeof(nul) - 1, err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "binary data at byte 15: a batch script must be text");
	CU_ASSERT_EQUAL(script_check("#!/bin/sh\n\xff\xfe", 12, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(script_check("#!/bin/sh\n\xc0\xaf", 12, err, sizeof(err)), -EINVAL);
	CU_ASSERT_EQUAL(script_check("echo hi\n", 8, err, sizeof(err)), -ENOEXEC);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "#!"));
	big = malloc((size_t)CLI_SCRIPT_MAX + 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'a', (size_t)CLI_SCRIPT_MAX + 1);
	memcpy(big, "#!/bin/sh\n", 10);
	CU_ASSERT_EQUAL(script_check(big, (size_t)CLI_SCRIPT_MAX, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(script_check(big, (size_t)CLI_SCRIPT_MAX + 1, err, sizeof(err)), -EFBIG);
	free(big);
}

static void test_script_args(void)
{
	const char *s = "#!/bin/bash\n#HEC -N 2\n\necho \"$@\"\nexit 0\n";
	char *args[] = { "a b", "it's", NULL }, *out = NULL, err[CLI_ERRLEN];

	CU_ASSERT_EQUAL_FATAL(script_set_args(s, strlen(s), args, 2, &out, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(out, "#!/bin/bash\n#HEC -N 2\n\nset -- 'a b' 'it'\\''s'; echo \"$@\"\nexit 0\n");
	free(out);
	/* a script of comments only gets the line at its end */
	s = "#!/usr/bin/env bash\n# nothing";
	CU_ASSERT_EQUAL_FATAL(script_set_args(s, strlen(s), args, 1, &out, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(out, "#!/usr/bin/env bash\n# nothing\nset -- 'a b'\n");
	free(out);
	s = "#!/usr/bin/python3\nprint(1)\n";
	CU_ASSERT_EQUAL(script_set_args(s, strlen(s), args, 1, &out, err, sizeof(err)), -ENOEXEC);
}

static void test_hostlist(void)
{
	const char *a[] = { "node0", "node1", "node2", "node3", "node5" };
	const char *b[] = { "node0", "gpu1", "gpu2", "login" };
	const char *c[] = { "node007", "node008" };
	const char *d[] = { "node4" };
	char buf[128];

	CU_ASSERT_EQUAL(cli_hostlist(a, 5, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "node[0-3,5]");
	CU_ASSERT_EQUAL(cli_hostlist(b, 4, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "node0,gpu[1-2],login");
	CU_ASSERT_EQUAL(cli_hostlist(c, 2, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "node007,node008");
	CU_ASSERT_EQUAL(cli_hostlist(d, 1, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "node4");
	CU_ASSERT_EQUAL(cli_hostlist(a, 0, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(cli_hostlist(a, 5, buf, 6), -ENOSPC);
}

static void test_paths_and_names(void)
{
	char buf[64], name[16], name2[16];

	CU_ASSERT_EQUAL(cli_abspath("/home/u", "out.txt", buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/home/u/out.txt");
	CU_ASSERT_EQUAL(cli_abspath("/", "out.txt", buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/out.txt");
	CU_ASSERT_EQUAL(cli_abspath("/home/u", "/tmp/o", buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/tmp/o");
	CU_ASSERT_EQUAL(cli_abspath("/home/u", "out.txt", buf, 8), -ENAMETOOLONG);

	cli_cluster_name("/tmp/c1", name, sizeof(name));
	cli_cluster_name("/tmp/c2", name2, sizeof(name2));
	CU_ASSERT_EQUAL(strlen(name), 9);
	CU_ASSERT_EQUAL(name[0], 'c');
	CU_ASSERT_EQUAL(strspn(name + 1, "0123456789abcdef"), 8);
	CU_ASSERT_STRING_NOT_EQUAL(name, name2);
	cli_cluster_name("/tmp/c1", name2, sizeof(name2));
	CU_ASSERT_STRING_EQUAL(name, name2);

	cli_format_elapsed(0, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "00:00:00");
	cli_format_elapsed(3661, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "01:01:01");
}

static void test_node_cpus(void)
{
	const int two[] = { 0, 1 }, odd[] = { 2, 3, 5, 8, 9 };
	char buf[64];

	CU_ASSERT_EQUAL(cli_node_cpus(0, 1, two, 2, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "0-1");
	CU_ASSERT_EQUAL(cli_node_cpus(0, 2, two, 2, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "0");
	CU_ASSERT_EQUAL(cli_node_cpus(1, 2, two, 2, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "1");
	/* more nodes than CPUs: they share round-robin */
	CU_ASSERT_EQUAL(cli_node_cpus(2, 3, two, 2, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "0");
	CU_ASSERT_EQUAL(cli_node_cpus(3, 4, two, 2, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "1");
	/* blocks of the allowed CPUs; the last node takes the rest */
	CU_ASSERT_EQUAL(cli_node_cpus(0, 2, odd, 5, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "2-3");
	CU_ASSERT_EQUAL(cli_node_cpus(1, 2, odd, 5, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "5,8-9");
	CU_ASSERT_EQUAL(cli_node_cpus(2, 2, odd, 5, buf, sizeof(buf)), -EINVAL);
}

static void test_format_bytes(void)
{
	char buf[64];

	cli_format_bytes(0, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "0 B");
	cli_format_bytes(1023, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1023 B");
	cli_format_bytes(1536, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1.5 kB");
	cli_format_bytes(512LL << 20, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "512.0 MB");
	cli_format_bytes(2LL << 30, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2.0 GB");
	cli_format_bytes(3LL << 60, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "3072.0 PB");
}

/* What a user's string shows on a terminal: escapes, never raw controls. */
static void test_printable(void)
{
	char buf[64], tiny[6];

	cli_printable("/tmp/evil\x1b]0;PWNED\x07 x", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "/tmp/evil\\x1b]0;PWNED\\x07 x");
	cli_printable("a\tb\nc\x7f", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "a\\x09b\\x0ac\\x7f");
	/* UTF-8 text stays; C1 controls (U+009B, the 8-bit CSI), lone and
	 * overlong bytes and surrogates are escaped byte by byte */
	cli_printable("caf\xc3\xa9 \xe2\x82\xac", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "caf\xc3\xa9 \xe2\x82\xac");
	cli_printable("\xc2\x9b" "2J", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "\\xc2\\x9b2J");
	cli_printable("\x9b\xff\xc0\xaf\xed\xa0\x80", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "\\x9b\\xff\\xc0\\xaf\\xed\\xa0\\x80");
	cli_printable("\xe2\x82", buf, sizeof(buf)); /* cut short */
	CU_ASSERT_STRING_EQUAL(buf, "\\xe2\\x82");
	/* cut to the buffer, never inside an escape or a character */
	cli_printable("ab\x1b", tiny, sizeof(tiny));
	CU_ASSERT_STRING_EQUAL(tiny, "ab");
	cli_printable("abcd\xc3\xa9", tiny, sizeof(tiny));
	CU_ASSERT_STRING_EQUAL(tiny, "abcd");
	cli_printable(NULL, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "");
}

static void test_storage_rows(void)
{
	json_t *up = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:i,s:i,s:i,s:s}", "name", "s0",
			       "state", "up", "addr", "10.0.0.5:7100", "provider", "verbs",
			       "used", (json_int_t)(3LL << 30), "free", (json_int_t)(512LL << 20),
			       "chunks", 768, "manifests", 4, "corrupt", 1, "health", "ok");
	json_t *down = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", "s1", "state", "down",
				 "addr", "10.0.0.6:7100", "provider", "tcp", "health", "ok",
				 "reason", "connection closed: end of stream");
	json_t *bare = json_pack("{s:s,s:s}", "name", "s2", "state", "up");
	struct cli_storage_row r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(up);
	CU_ASSERT_PTR_NOT_NULL_FATAL(down);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bare);
	CU_ASSERT_STRING_EQUAL(cli_storage_header[0], "NAME");
	CU_ASSERT_STRING_EQUAL(cli_storage_header[CLI_STORAGE_COLS - 1], "HEALTH");
	cli_storage_row(up, &r);
	CU_ASSERT_STRING_EQUAL(r.cell[0], "s0");
	CU_ASSERT_STRING_EQUAL(r.cell[1], "up");
	CU_ASSERT_STRING_EQUAL(r.cell[2], "10.0.0.5:7100");
	CU_ASSERT_STRING_EQUAL(r.cell[3], "verbs");
	CU_ASSERT_STRING_EQUAL(r.cell[4], "3.0 GB");
	CU_ASSERT_STRING_EQUAL(r.cell[5], "512.0 MB");
	CU_ASSERT_STRING_EQUAL(r.cell[6], "768");
	CU_ASSERT_STRING_EQUAL(r.cell[7], "4");
	CU_ASSERT_STRING_EQUAL(r.cell[8], "1");
	CU_ASSERT_STRING_EQUAL(r.cell[9], "ok");
	/* down: why, not the health it last reported */
	cli_storage_row(down, &r);
	CU_ASSERT_STRING_EQUAL(r.cell[1], "down");
	CU_ASSERT_STRING_EQUAL(r.cell[9], "connection closed: end of stream");
	/* nothing reported yet */
	cli_storage_row(bare, &r);
	CU_ASSERT_STRING_EQUAL(r.cell[2], "");
	CU_ASSERT_STRING_EQUAL(r.cell[4], "0 B");
	CU_ASSERT_STRING_EQUAL(r.cell[6], "0");
	CU_ASSERT_STRING_EQUAL(r.cell[9], "-");
	json_decref(up);
	json_decref(down);
	json_decref(bare);
}

static void test_repair_lines(void)
{
	char buf[1024];
	json_t *r;

	setenv("TZ", "UTC", 1);
	tzset();
	CU_ASSERT_EQUAL(cli_repair_lines(NULL, buf, sizeof(buf)), -1);
	r = json_pack("{s:s}", "state", "none");
	CU_ASSERT_EQUAL(cli_repair_lines(r, buf, sizeof(buf)), -1);
	json_decref(r);
	r = json_pack("{s:s,s:s,s:I}", "state", "running", "reason", "storage server s1 registered again",
		      "started", (json_int_t)1796000000);
	CU_ASSERT_EQUAL(cli_repair_lines(r, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "repair: running since 2026-11-30 00:53:20 (storage server s1 registered again)");
	json_decref(r);
	r = json_pack("{s:s,s:s,s:I,s:I,s:i,s:i,s:i,s:[],s:n}", "state", "done", "reason", "asked by uid 0",
		      "started", (json_int_t)1796000000, "ended", (json_int_t)1796000003,
		      "copied", 12, "lost", 0, "removed", 1, "lost_chunks", "error");
	CU_ASSERT_EQUAL(cli_repair_lines(r, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "repair: done 2026-11-30 00:53:23 in 3 s (asked by uid 0): 12 copies made, 0 chunks lost, 1 deleted copies removed");
	json_decref(r);
	/* lost chunks: a line per epoch, and it counts as bad */
	r = json_pack("{s:s,s:s,s:I,s:I,s:i,s:i,s:i,s:[{s:i,s:i,s:i},{s:i,s:i,s:i}]}", "state", "done",
		      "reason", "", "started", (json_int_t)1796000000, "ended", (json_int_t)1796000001,
		      "copied", 0, "lost", 4, "removed", 0, "lost_chunks", "job", 7, "epoch", 2,
		      "chunks", 3, "job", 9, "epoch", 1, "chunks", 1);
	CU_ASSERT_EQUAL(cli_repair_lines(r, buf, sizeof(buf)), 1);
	CU_ASSERT_STRING_EQUAL(buf, "repair: done 2026-11-30 00:53:21 in 1 s: 0 copies made, 4 chunks lost, 0 deleted copies removed\n"
			       "repair: lost 3 chunks of job 7 epoch 2\nrepair: lost 1 chunks of job 9 epoch 1");
	json_decref(r);
	r = json_pack("{s:s,s:s,s:I,s:I,s:s}", "state", "failed", "reason", "storage server s2 registered again",
		      "started", (json_int_t)1796000000, "ended", (json_int_t)1796000900,
		      "error", "no result within 900 s: killed");
	CU_ASSERT_EQUAL(cli_repair_lines(r, buf, sizeof(buf)), 1);
	CU_ASSERT_STRING_EQUAL(buf, "repair: failed 2026-11-30 01:08:20 in 900 s (storage server s2 registered again): no result within 900 s: killed");
	json_decref(r);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "option words", test_getopt_forms },
		{ "option word errors", test_getopt_errors },
		{ "value checks", test_values },
		{ "submit options", test_submit_options },
		{ "checkpoint and restart options", test_ckpt_options },
		{ "node lists and epochs", test_hostlist_expand },
		{ "checkpoint lines", test_ckpt_lines },
		{ "#HEC directives", test_directives },
		{ "command line beats directives", test_directive_precedence },
		{ "directive errors name the line", test_directive_errors },
		{ "script text checks", test_script_check },
		{ "script arguments", test_script_args },
		{ "host lists", test_hostlist },
		{ "paths and names", test_paths_and_names },
		{ "node CPU shares", test_node_cpus },
		{ "byte sizes", test_format_bytes },
		{ "printable strings", test_printable },
		{ "storage repair lines", test_repair_lines },
		{ "storage table rows", test_storage_rows },
		{ NULL, NULL },
	};

	return hec_cunit_run("cli", tests);
}
