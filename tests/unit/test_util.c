/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: time limits, CPU lists, integers, config files (common/). */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/config.h"
#include "hec/fault.h"
#include "tests/unit/cunit_main.h"

static void test_time_limit(void)
{
	static const struct { const char *in; long secs; int rc; } cases[] = {
		{ "10", 600, 0 }, { "0:02", 2, 0 }, { "1:30", 90, 0 }, { "1:00:00", 3600, 0 },
		{ "2-3", 2 * 86400 + 3 * 3600, 0 }, { "1-0:30", 86400 + 1800, 0 },
		{ "1-2:3:4", 86400 + 7200 + 180 + 4, 0 }, { "UNLIMITED", 0, 0 }, { "0", 0, 0 },
		{ "", 0, -EINVAL }, { "abc", 0, -EINVAL }, { "-5", 0, -EINVAL }, { "1:60", 0, -EINVAL },
		{ "1:2:3:4", 0, -EINVAL }, { "5x", 0, -EINVAL }, { "0:00", 0, -EINVAL },
		{ "999999", 0, -ERANGE }, { "1:", 0, -EINVAL }, { "-1", 0, -EINVAL },
		{ "99999999999999999999", 0, -EINVAL },
	};

	for (size_t i = 0; i < HEC_ARRAY_SIZE(cases); i++) {
		long secs = -1;
		int rc = hec_parse_time_limit(cases[i].in, &secs);

		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != cases[i].rc)
			fprintf(stderr, "time limit '%s': rc %d\n", cases[i].in, rc);
		if (!rc)
			CU_ASSERT_EQUAL(secs, cases[i].secs);
	}
}

static void test_format_duration(void)
{
	char buf[32];

	hec_format_duration(0, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "UNLIMITED");
	hec_format_duration(61, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "00:01:01");
	hec_format_duration(86400 + 3661, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1-01:01:01");
}

static void test_parse_long(void)
{
	long v;

	CU_ASSERT_EQUAL(hec_parse_long("42", 1, 100, &v), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(hec_parse_long("0", 1, 100, &v), -ERANGE);
	CU_ASSERT_EQUAL(hec_parse_long("101", 1, 100, &v), -ERANGE);
	CU_ASSERT_EQUAL(hec_parse_long("4x", 1, 100, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_parse_long("", 1, 100, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_parse_long(" 4", 1, 100, &v), -EINVAL);
	CU_ASSERT_EQUAL(hec_parse_long("99999999999999999999999", 1, 100, &v), -ERANGE);
}

static void test_mem(void)
{
	long mb = -1;

	CU_ASSERT_EQUAL(hec_parse_mem_mb("512", &mb), 0);
	CU_ASSERT_EQUAL(mb, 512);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("2G", &mb), 0);
	CU_ASSERT_EQUAL(mb, 2048);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("2gb", &mb), 0);
	CU_ASSERT_EQUAL(mb, 2048);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("1500K", &mb), 0);
	CU_ASSERT_EQUAL(mb, 2); /* rounded up */
	CU_ASSERT_EQUAL(hec_parse_mem_mb("1T", &mb), 0);
	CU_ASSERT_EQUAL(mb, 1024 * 1024);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("0", &mb), -ERANGE);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("2000T", &mb), -ERANGE);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("-5M", &mb), -EINVAL);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("5X", &mb), -EINVAL);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("5GiB", &mb), -EINVAL);
	CU_ASSERT_EQUAL(hec_parse_mem_mb("", &mb), -EINVAL);
}

static void test_cpuset(void)
{
	struct hec_cpuset a, b;
	char buf[64];

	CU_ASSERT_EQUAL(hec_cpuset_parse("0-3,8,10-11", &a), 7);
	CU_ASSERT_EQUAL(hec_cpuset_format(&a, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "0-3,8,10-11");
	CU_ASSERT_EQUAL(hec_cpuset_parse("4-7", &b), 4);
	CU_ASSERT_FALSE(hec_cpuset_intersects(&a, &b));
	CU_ASSERT_EQUAL(hec_cpuset_parse("3", &b), 1);
	CU_ASSERT_TRUE(hec_cpuset_intersects(&a, &b));
	{
		cpu_set_t cs;

		CU_ASSERT_TRUE(hec_cpuset_has(&a, 8));
		CU_ASSERT_FALSE(hec_cpuset_has(&a, 9));
		CU_ASSERT_FALSE(hec_cpuset_has(&a, -1));
		CU_ASSERT_FALSE(hec_cpuset_has(&a, HEC_MAX_CPUS));
		hec_cpuset_to_cpu_set(&a, &cs);
		CU_ASSERT_EQUAL(CPU_COUNT(&cs), 7);
		CU_ASSERT_TRUE(CPU_ISSET(11, &cs));
		CU_ASSERT_FALSE(CPU_ISSET(4, &cs));
	}
	CU_ASSERT_EQUAL(hec_cpuset_parse("", &b), 0);
	CU_ASSERT_EQUAL(hec_cpuset_parse("3-1", &b), -EINVAL);
	CU_ASSERT_EQUAL(hec_cpuset_parse("1,", &b), -EINVAL);
	CU_ASSERT_EQUAL(hec_cpuset_parse("a", &b), -EINVAL);
	CU_ASSERT_EQUAL(hec_cpuset_parse("1024", &b), -EINVAL);
	CU_ASSERT_EQUAL(hec_cpuset_format(&a, buf, 4), -ENOSPC);
}

struct conf {
	char name[16];
	long count;
	long timeout_ms;
};

static const struct hec_conf_key keys[] = {
	{ "name", HEC_CONF_STR, "node0", 0, 0, "node name", offsetof(struct conf, name), 16 },
	{ "count", HEC_CONF_INT, "3", 1, 10, "a count", offsetof(struct conf, count), 0 },
	{ "timeout", HEC_CONF_MS, "2s", 1, 60000, "a timeout", offsetof(struct conf, timeout_ms), 0 },
	{ NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

static void test_config(void)
{
	struct conf c;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(hec_conf_defaults(keys, &c), 0);
	CU_ASSERT_STRING_EQUAL(c.name, "node0");
	CU_ASSERT_EQUAL(c.count, 3);
	CU_ASSERT_EQUAL(c.timeout_ms, 2000);

	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf",
		"# comment\n\nname = n1  # trailing\ncount=7\ntimeout = 250ms\n", err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.name, "n1");
	CU_ASSERT_EQUAL(c.count, 7);
	CU_ASSERT_EQUAL(c.timeout_ms, 250);

	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf", "\n\ncolour = red\n", err, sizeof(err)), -ENOENT);
	CU_ASSERT_STRING_EQUAL(err, "t.conf:3: unknown key 'colour'");
	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf", "count = 11\n", err, sizeof(err)), -ERANGE);
	CU_ASSERT_STRING_EQUAL(err, "t.conf:1: count: '11' out of range (1 to 10)");
	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf", "timeout = soon\n", err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a duration"));
	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf", "timeout = 2h\n", err, sizeof(err)), -ERANGE);
	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf", "name\n", err, sizeof(err)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err, "t.conf:1: expected 'key = value'");
	CU_ASSERT_EQUAL(hec_conf_load_text(keys, &c, "t.conf", "name = a-very-long-node-name\n", err, sizeof(err)),
			-ENAMETOOLONG);
	CU_ASSERT_EQUAL(hec_conf_load_file(keys, &c, "/nonexistent/x.conf", err, sizeof(err)), -ENOENT);
	CU_ASSERT_STRING_EQUAL(err, "/nonexistent/x.conf: No such file or directory");
}

/* A pid and its start time name one process: gone (or a zombie) is 0. */
static void test_proc_start(void)
{
	unsigned long long me = hec_proc_start(getpid());
	pid_t pid = fork();
	int st;

	CU_ASSERT(me > 0);
	CU_ASSERT_EQUAL(hec_proc_start(getpid()), me);
	if (pid == 0)
		_exit(0);
	CU_ASSERT_FATAL(pid > 0);
	/* exited, not reaped yet: a zombie is no process to watch */
	for (int i = 0; i < 1000 && hec_proc_start(pid); i++)
		usleep(1000);
	CU_ASSERT_EQUAL(hec_proc_start(pid), 0);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_EQUAL(hec_proc_start(pid), 0);
	CU_ASSERT_EQUAL(hec_proc_start(-1), 0);
}

static void test_files(void)
{
	char dir[] = "/tmp/hec-test-XXXXXX", path[128], buf[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	CU_ASSERT_EQUAL(hec_mkdir_p(path, 0755), 0);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	CU_ASSERT_EQUAL(hec_write_file(path, "x\n"), -ENOENT); /* hec_write_file never creates */
	FILE *f = fopen(path, "w");
	fclose(f);
	CU_ASSERT_EQUAL(hec_write_file(path, "hello\n"), 0);
	CU_ASSERT_EQUAL(hec_read_file(path, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "hello");
	CU_ASSERT_EQUAL(hec_random_hex(buf, 16), 0);
	CU_ASSERT_EQUAL(strlen(buf), 32);
	CU_ASSERT_EQUAL(strspn(buf, "0123456789abcdef"), 32);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(path), 0);
}

/* key_put: @path holds @len bytes of @data. */
static void key_put(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* The cluster key file, as every daemon and tool reads it. */
static void test_read_key(void)
{
	char dir[] = "/tmp/hec-test-XXXXXX", path[128], key[257], why[128], big[400];

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key", dir);
	key_put(path, " \tab12-cd_ef \r\n\n", 16);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(key, "ab12-cd_ef");
	key_put(path, "inner space ok\n", 15);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(key, "inner space ok");
	/* a binary file given by mistake: a NUL, a control byte, a high byte */
	key_put(path, "ab\0cd", 5);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(why, "not text");
	CU_ASSERT_STRING_EQUAL(key, "");
	key_put(path, "ab\001cd", 5);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "printable ASCII"));
	key_put(path, "ab\xc3\xa9", 4);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL);
	key_put(path, " \n", 2);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(why, "the file is empty");
	memset(big, 'k', sizeof(big));
	key_put(path, big, 256);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(strlen(key), 256);
	key_put(path, big, 257);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(why, "key longer than 256 characters");
	{
		char huge[1500];

		memset(huge, 'k', sizeof(huge));
		key_put(path, huge, sizeof(huge));
		CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL);
		CU_ASSERT_STRING_EQUAL(why, "larger than a key");
	}
	snprintf(path, sizeof(path), "%s/none", dir);
	CU_ASSERT_EQUAL(hec_read_key(path, key, sizeof(key), why, sizeof(why)), -ENOENT);
	CU_ASSERT_STRING_EQUAL(why, strerror(ENOENT));
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(path), 0);
}

/* The checks the daemons share: names, secrets, log levels. */
static void test_names_keys_levels(void)
{
	enum hec_log_level lvl = HEC_LOG_ERR;

	CU_ASSERT_TRUE(hec_name_ok("node0"));
	CU_ASSERT_TRUE(hec_name_ok("s-1_a.b"));
	CU_ASSERT_FALSE(hec_name_ok(""));
	CU_ASSERT_FALSE(hec_name_ok(".hidden"));
	CU_ASSERT_FALSE(hec_name_ok("-o"));
	CU_ASSERT_FALSE(hec_name_ok("a/b"));
	CU_ASSERT_FALSE(hec_name_ok("a b"));
	CU_ASSERT_TRUE(hec_key_equal("secret", "secret"));
	CU_ASSERT_FALSE(hec_key_equal("secret", "secreT"));
	CU_ASSERT_FALSE(hec_key_equal("secret", "secret2"));
	CU_ASSERT_FALSE(hec_key_equal("", "x"));
	CU_ASSERT_EQUAL(hec_log_level_parse("debug", &lvl), 0);
	CU_ASSERT_EQUAL(lvl, HEC_LOG_DEBUG);
	CU_ASSERT_EQUAL(hec_log_level_parse("warn", &lvl), 0);
	CU_ASSERT_EQUAL(lvl, HEC_LOG_WARN);
	CU_ASSERT_EQUAL(hec_log_level_parse("loud", &lvl), -EINVAL);
	CU_ASSERT_EQUAL(lvl, HEC_LOG_WARN);
}

static void test_ratelimit(void)
{
	struct hec_ratelimit rl = { 0 };
	const int64_t s = 1000000000LL;
	long held = -1;
	int ok = 0;

	for (int i = 0; i < 25; i++)
		ok += hec_ratelimit_ok(&rl, 20, 10 * s, 5 * s + i, &held);
	CU_ASSERT_EQUAL(ok, 20);
	CU_ASSERT_EQUAL(held, 0);
	CU_ASSERT_EQUAL(rl.suppressed, 5);
	/* the window over: the next line says what was held back */
	CU_ASSERT_EQUAL(hec_ratelimit_ok(&rl, 20, 10 * s, 15 * s, &held), 1);
	CU_ASSERT_EQUAL(held, 5);
	CU_ASSERT_EQUAL(hec_ratelimit_ok(&rl, 20, 10 * s, 15 * s + 1, &held), 1);
	CU_ASSERT_EQUAL(held, 0);
}

/* HEC_FAULT names whole points only: a prefix or a longer name is another */
static void test_fault_named(void)
{
	CU_ASSERT_EQUAL(hec_fault_named(NULL, "ctl.start.after_db"), 0);
	CU_ASSERT_EQUAL(hec_fault_named("", "ctl.start.after_db"), 0);
	CU_ASSERT_EQUAL(hec_fault_named("ctl.start.after_db", "ctl.start.after_db"), 1);
	CU_ASSERT_EQUAL(hec_fault_named("a,ctl.start.after_db", "ctl.start.after_db"), 1);
	CU_ASSERT_EQUAL(hec_fault_named("ctl.start.after_db,b", "ctl.start.after_db"), 1);
	CU_ASSERT_EQUAL(hec_fault_named("a,,b,", "b"), 1);
	CU_ASSERT_EQUAL(hec_fault_named("ctl.start", "ctl.start.after_db"), 0);
	CU_ASSERT_EQUAL(hec_fault_named("ctl.start.after_db2", "ctl.start.after_db"), 0);
	CU_ASSERT_EQUAL(hec_fault_named("x,ctl.start.after", "ctl.start.after_db"), 0);
	/* inert without the variable: the test process goes on */
	unsetenv("HEC_FAULT");
	hec_fault("ctl.start.after_db");
	CU_PASS("hec_fault returned");
}

static const struct hec_cunit_test tests[] = {
	{ "log rate limits", test_ratelimit },
	{ "fault points", test_fault_named },
	{ "time limits", test_time_limit },

	{ "duration format", test_format_duration },
	{ "integers", test_parse_long },
	{ "memory sizes", test_mem },
	{ "cpu lists", test_cpuset },
	{ "config files", test_config },
	{ "files", test_files },
	{ "the cluster key file", test_read_key },
	{ "process start times", test_proc_start },
	{ "names, keys, log levels", test_names_keys_levels },
	{ NULL, NULL },
};

int main(void)
{
	return hec_cunit_run("util", tests);
}
