/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: a daemon's command line into its configuration (hec_conf_from_args). */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/config.h"
#include "tests/unit/cunit_main.h"

struct conf {
	char name[16];
	char key_file[32];
	long slots;
};

static const struct hec_conf_key keys[] = {
	{ "name", HEC_CONF_STR, "node0", 0, 0, "node name", offsetof(struct conf, name), 16 },
	{ "key_file", HEC_CONF_STR, "", 0, 0, "a path", offsetof(struct conf, key_file), 32 },
	{ "slots", HEC_CONF_INT, "4", 1, 64, "a count", offsetof(struct conf, slots), 0 },
	{ .key = NULL },
};

static const struct hec_conf_opt key_opts[] = {
	{ "key-file", "key_file" }, { "slots", "slots" }, { NULL, NULL },
};

static int usage_calls;

static void usage(FILE *f)
{
	usage_calls++;
	fprintf(f, "usage: prog [-f FILE] [-o key=value]...\n");
}

static char conf_path[64];

/* What one run printed on stdout and stderr, and what it returned. */
struct run {
	int rc;
	const char *file;
	char out[4096];
	char err[1024];
};

static void slurp(FILE *f, char *buf, size_t len)
{
	size_t n;

	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
}

/* Runs hec_conf_from_args on the NULL-terminated @args with fds 1 and 2 captured. */
static void run(struct run *r, struct conf *c, const struct hec_conf_opt *opts, char **args)
{
	FILE *out = tmpfile(), *err = tmpfile();
	int argc = 0, saved_out, saved_err;

	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	while (args[argc])
		argc++;
	CU_ASSERT_EQUAL_FATAL(hec_conf_defaults(keys, c), 0);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	CU_ASSERT_FATAL(saved_out >= 0 && saved_err >= 0);
	dup2(fileno(out), 1);
	dup2(fileno(err), 2);
	r->file = "(unset)";
	r->rc = hec_conf_from_args(keys, c, "prog", argc, args, opts, usage, &r->file);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
}

static void write_conf(const char *text)
{
	FILE *f = fopen(conf_path, "w");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_file_then_options(void)
{
	struct conf c;
	struct run r;

	write_conf("name = fromfile\nslots = 8\nkey_file = /etc/k\n");
	/* -o before -f still wins over the file. */
	run(&r, &c, NULL, (char *[]){ "prog", "-o", "slots=16", "-f", conf_path, NULL });
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(r.err, "");
	CU_ASSERT_STRING_EQUAL(r.file, conf_path);
	CU_ASSERT_STRING_EQUAL(c.name, "fromfile");
	CU_ASSERT_EQUAL(c.slots, 16);
	CU_ASSERT_STRING_EQUAL(c.key_file, "/etc/k");

	/* And after it; the last of two -o of one key wins. */
	run(&r, &c, NULL, (char *[]){ "prog", "--file", conf_path, "--option", "name=a",
				      "-o", "name=b", NULL });
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(c.name, "b");
	CU_ASSERT_EQUAL(c.slots, 8);

	/* No file: the defaults stay, @file is NULL. */
	run(&r, &c, NULL, (char *[]){ "prog", NULL });
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_PTR_NULL(r.file);
	CU_ASSERT_STRING_EQUAL(c.name, "node0");
	CU_ASSERT_EQUAL(c.slots, 4);
}

static void test_key_options(void)
{
	struct conf c;
	struct run r;

	write_conf("slots = 8\n");
	run(&r, &c, key_opts, (char *[]){ "prog", "--key-file", "/k", "--slots=2", "-f", conf_path,
					  NULL });
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_STRING_EQUAL(r.err, "");
	CU_ASSERT_STRING_EQUAL(c.key_file, "/k");
	CU_ASSERT_EQUAL(c.slots, 2);

	/* Key options and -o of one key: command-line order. */
	run(&r, &c, key_opts, (char *[]){ "prog", "--slots", "3", "-o", "slots=5", NULL });
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(c.slots, 5);
	run(&r, &c, key_opts, (char *[]){ "prog", "-o", "slots=5", "--slots", "3", NULL });
	CU_ASSERT_EQUAL(r.rc, 0);
	CU_ASSERT_EQUAL(c.slots, 3);

	run(&r, &c, key_opts, (char *[]){ "prog", "--slots", "99", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: --slots 99: slots: '99' out of range (1 to 64)\n");

	/* Without the table they are unknown. */
	run(&r, &c, NULL, (char *[]){ "prog", "--slots", "3", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: unknown option '--slots' (try --help)\n");
}

static void test_errors(void)
{
	struct conf c;
	struct run r;

	run(&r, &c, key_opts, (char *[]){ "prog", "--bogus", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: unknown option '--bogus' (try --help)\n");
	run(&r, &c, NULL, (char *[]){ "prog", "-x", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: unknown option '-x' (try --help)\n");

	run(&r, &c, NULL, (char *[]){ "prog", "-o", "slots", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: -o slots: expected key=value\n");
	run(&r, &c, NULL, (char *[]){ "prog", "-o", "colour=red", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: -o colour=red: unknown key 'colour'\n");

	run(&r, &c, NULL, (char *[]){ "prog", "-o", "slots=2", "stray", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: unexpected argument 'stray' (try --help)\n");
	/* A usage error is reported before any -o applies. */
	CU_ASSERT_EQUAL(c.slots, 4);

	write_conf("colour = red\n");
	run(&r, &c, NULL, (char *[]){ "prog", "-f", conf_path, NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.err, ":1: unknown key 'colour'\n"));
	CU_ASSERT_EQUAL(strncmp(r.err, "prog: ", 6), 0);
	run(&r, &c, NULL, (char *[]){ "prog", "-f", "/nonexistent/x.conf", NULL });
	CU_ASSERT_EQUAL(r.rc, 2);
	CU_ASSERT_STRING_EQUAL(r.err, "prog: /nonexistent/x.conf: No such file or directory\n");
}

static void test_help(void)
{
	struct conf c;
	struct run r;

	usage_calls = 0;
	/* Help wins over what else is wrong, and sets nothing. */
	run(&r, &c, key_opts, (char *[]){ "prog", "-o", "slots=9", "--help", "-o", "nokey", NULL });
	CU_ASSERT_EQUAL(r.rc, -1);
	CU_ASSERT_EQUAL(usage_calls, 1);
	CU_ASSERT_STRING_EQUAL(r.err, "");
	CU_ASSERT_EQUAL(strncmp(r.out, "usage: prog", 11), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.out, "key_file"));
	CU_ASSERT_EQUAL(c.slots, 4);
	run(&r, &c, NULL, (char *[]){ "prog", "-h", NULL });
	CU_ASSERT_EQUAL(r.rc, -1);
	CU_ASSERT_EQUAL(usage_calls, 2);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "-f then -o and key options, in command-line order", test_file_then_options },
		{ "long options that name keys", test_key_options },
		{ "usage and value errors", test_errors },
		{ "help", test_help },
		{ NULL, NULL },
	};
	int fd, rc;

	snprintf(conf_path, sizeof(conf_path), "/tmp/hec-test-config.XXXXXX");
	fd = mkstemp(conf_path);
	if (fd < 0) {
		perror("mkstemp");
		return 99;
	}
	close(fd);
	rc = hec_cunit_run("config command line", tests);
	unlink(conf_path);
	return rc;
}
