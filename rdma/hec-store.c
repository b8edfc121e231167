/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-store: the checkpoint storage client as a command (doc/storage.md,
 * "Commands and formats the pieces share"), for agents, tests and
 * benchmarks.  Exit 0; 1 with one line on stderr; 2 for usage.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/store.h"
#include "cli/cli.h"

#define PROG "hec-store"
#define SERVERS_MAX 64

static const char usage_text[] =
	"usage: hec-store [OPTIONS] CMD ARGS\n"
	"  put JOB EPOCH PART  < stream   write a stream; prints its manifest entry (JSON)\n"
	"  commit JOB EPOCH [ENTRY...]    commit the checkpoint: entries as files, or JSON\n"
	"                                 lines on stdin or in --entries FILE; --meta FILE:\n"
	"                                 the job's meta (JSON)\n"
	"  get JOB EPOCH PART  > stream   read a committed stream back\n"
	"  latest JOB                     the newest committed epoch (--json: its manifest)\n"
	"  delete JOB EPOCH | abort JOB EPOCH | repair | status [--json]\n"
	"options:\n"
	"  --servers N=HOST:PORT,...  the storage servers (else ask the cluster's controller)\n"
	"  -D, --dir DIR              cluster directory (default $HEC_DIR, ~/.hec/current)\n"
	"  --key-file F               cluster key (default DIR/cluster.key, /etc/hec/cluster.key)\n"
	"  --replicas R               copies of each chunk (default 2)\n"
	"  --chunk-size BYTES         chunk size, K/M/G (default 4M)\n"
	"  --provider auto|verbs|tcp  fabric provider (default auto)\n"
	"  --timeout MS               per operation (default 30000)\n"
	"  --json                     JSON output (latest, status, repair)\n"
	"  --meta FILE                commit: the manifest's \"meta\" (doc/storage.md)\n"
	"  --entries FILE             commit: the entries, one JSON object per line\n"
	"  --quiet                    no figures on stderr\n";

/* "hec-store: " + the message + @tail, on stderr */
static void vline(const char *tail, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void vline(const char *tail, const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

static void err_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline("\n", fmt, ap);
	va_end(ap);
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vline(" (see: hec-store --help)\n", fmt, ap);
	va_end(ap);
	return 2;
}

struct args {
	const char *servers, *dir, *key_file, *provider, *meta, *entries;
	unsigned long replicas;
	uint64_t chunk_size;
	long timeout_ms;
	int json, quiet;
	struct hec_store_server sv[SERVERS_MAX];
	size_t nsv;
	char *sv_text;          /* --servers, split in place */
	json_t *ctl;            /* the controller's answer the names point into */
	char key[300];
};

/* "N=HOST:PORT,..." into a->sv. */
static int parse_servers(struct args *a)
{
	char *save = NULL, *tok;

	a->sv_text = strdup(a->servers);
	if (!a->sv_text)
		return -ENOMEM;
	for (tok = strtok_r(a->sv_text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq || eq == tok || !eq[1] || !strchr(eq + 1, ':'))
			return usage("--servers: '%s' is not NAME=HOST:PORT", tok);
		if (a->nsv == SERVERS_MAX)
			return usage("--servers: more than %d servers", SERVERS_MAX);
		*eq = 0;
		a->sv[a->nsv].name = tok;
		a->sv[a->nsv].addr = eq + 1;
		a->nsv++;
	}
	if (!a->nsv)
		return usage("--servers: no server in '%s'", a->servers);
	return 0;
}

/* The cluster's storage servers, from its controller. */
static int ask_controller(struct args *a, const struct cli_ctx *ctx)
{
	json_t *req = json_pack("{ss}", "op", "storage"), *list;
	char err[CLI_ERRLEN];
	int rc;

	if (!req)
		return -ENOMEM;
	rc = cli_call(ctx, req, &a->ctl, err, sizeof(err));
	json_decref(req);
	if (rc) {
		err_line("no --servers, and asking the controller for them: %s", err);
		return rc;
	}
	list = json_object_get(a->ctl, "servers");
	for (size_t i = 0; i < json_array_size(list) && a->nsv < SERVERS_MAX; i++) {
		const json_t *o = json_array_get(list, i);
		const char *name = json_string_value(json_object_get(o, "name"));
		const char *addr = json_string_value(json_object_get(o, "addr"));
		const char *state = json_string_value(json_object_get(o, "state"));

		if (!name || !addr)
			continue;
		a->sv[a->nsv].name = name;
		a->sv[a->nsv].addr = addr;
		a->sv[a->nsv].down = state && strcmp(state, "up") != 0;
		a->nsv++;
	}
	if (!a->nsv) {
		err_line("the cluster at %s has no storage servers (hec cluster up --storage M)",
			 ctx->dir);
		return -ENOENT;
	}
	return 0;
}

static int read_key(struct args *a, const struct cli_ctx *ctx, int have_ctx)
{
	char path[PATH_MAX + 16], why[128];
	const char *f = a->key_file;
	int rc;

	if (!f && have_ctx) {
		snprintf(path, sizeof(path), "%s/cluster.key", ctx->dir);
		if (access(path, R_OK) == 0)
			f = path;
	}
	/* one this user cannot read: no key, as before (a server with a key
	 * refuses, saying so) */
	if (!f && access("/etc/hec/cluster.key", R_OK) == 0)
		f = "/etc/hec/cluster.key";
	if (!f) {
		a->key[0] = 0; /* servers without a key accept an empty one */
		return 0;
	}
	rc = hec_read_key(f, a->key, HEC_KEY_SIZE, why, sizeof(why));
	if (rc)
		err_line("%s: %s", f, why);
	return rc;
}

/* JOB: 1..2^31-1 as job ids go; EPOCH: any positive 64-bit integer (the
 * controller's epochs are microseconds of real time). */
static int parse_u64(const char *what, const char *s, uint64_t *out)
{
	long v;

	if (hec_parse_long(s, 1, strcmp(what, "EPOCH") ? 2147483647L : LONG_MAX, &v)) {
		fprintf(stderr, PROG ": bad %s '%s': a positive integer (see: hec-store --help)\n",
			what, s);
		return -EINVAL;
	}
	*out = (uint64_t)v;
	return 0;
}

static double mbps(uint64_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / secs / 1e6 : 0;
}

static int cmd_put(struct hec_store *s, struct args *a, char **argv)
{
	struct hec_store_stat st;
	uint64_t job, epoch;
	json_t *entry = NULL;
	char *text;
	int rc;

	if (parse_u64("JOB", argv[0], &job) || parse_u64("EPOCH", argv[1], &epoch))
		return 2;
	rc = hec_store_put_fd(s, job, epoch, argv[2], 0, &entry, &st);
	if (rc) {
		err_line("%s", hec_store_why(s));
		return 1;
	}
	text = json_dumps(entry, JSON_COMPACT);
	json_decref(entry);
	if (!text || printf("%s\n", text) < 0 || fflush(stdout)) {
		free(text);
		err_line("writing the entry: %s", strerror(errno ? errno : ENOMEM));
		return 1;
	}
	free(text);
	if (!a->quiet) {
		fprintf(stderr, PROG ": put %" PRIu64 "/%" PRIu64 "/%s: %" PRIu64 " bytes in %.2f s (%.0f MB/s), %" PRIu64 " chunks x %u copies",
			job, epoch, argv[2], st.bytes, st.seconds, mbps(st.bytes, st.seconds), st.chunks,
			hec_store_replicas(s));
		if (st.degraded)
			fprintf(stderr, " (%" PRIu64 " degraded)", st.degraded);
		fprintf(stderr, ", %zu servers, %s\n", hec_store_servers_up(s), hec_store_provider(s));
	}
	return 0;
}

static int cmd_get(struct hec_store *s, struct args *a, char **argv)
{
	struct hec_store_stat st;
	uint64_t job, epoch;
	int rc;

	if (parse_u64("JOB", argv[0], &job) || parse_u64("EPOCH", argv[1], &epoch))
		return 2;
	rc = hec_store_get_fd(s, job, epoch, argv[2], 1, &st);
	if (rc) {
		err_line("%s", hec_store_why(s));
		return 1;
	}
	if (!a->quiet) {
		fprintf(stderr, PROG ": get %" PRIu64 "/%" PRIu64 "/%s: %" PRIu64 " bytes in %.2f s (%.0f MB/s), %" PRIu64 " chunks",
			job, epoch, argv[2], st.bytes, st.seconds, mbps(st.bytes, st.seconds), st.chunks);
		if (st.corrupt || st.repaired)
			fprintf(stderr, ", %" PRIu64 " corrupt copies, %" PRIu64 " repaired", st.corrupt,
				st.repaired);
		fprintf(stderr, ", %zu servers, %s\n", hec_store_servers_up(s), hec_store_provider(s));
	}
	return 0;
}

/* One entry per line of @f (@name in errors); blank lines skipped. */
static int read_entry_lines(FILE *f, const char *name, json_t *entries)
{
	json_error_t jerr;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	json_t *e;

	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (strspn(line, " \t\r\n") == (size_t)n)
			continue;
		e = json_loads(line, 0, &jerr);
		if (!e) {
			err_line("%s line %d: %s", name, lineno, jerr.text);
			free(line);
			return -EINVAL;
		}
		json_array_append_new(entries, e);
	}
	free(line);
	return 0;
}

/* Entries from files, from JSON lines in @list, or on stdin. */
static int read_entries(const char *list, int argc, char **argv, json_t *entries)
{
	json_error_t jerr;
	json_t *e;
	FILE *f;
	int rc;

	if (list) {
		if (argc) {
			err_line("commit: entries in --entries %s and as arguments", list);
			return -EINVAL;
		}
		f = fopen(list, "re");
		if (!f) {
			err_line("%s: %s", list, strerror(errno));
			return -errno;
		}
		rc = read_entry_lines(f, list, entries);
		fclose(f);
		return rc;
	}
	if (argc == 0)
		return read_entry_lines(stdin, "stdin", entries);
	for (int i = 0; i < argc; i++) {
		e = json_load_file(argv[i], 0, &jerr);
		if (!e) {
			err_line("%s: %s", argv[i], jerr.text);
			return -EINVAL;
		}
		json_array_append_new(entries, e);
	}
	return 0;
}

static int cmd_commit(struct hec_store *s, struct args *a, int argc, char **argv)
{
	json_t *entries = json_array(), *meta = NULL;
	json_error_t jerr;
	uint64_t job, epoch;
	int rc;

	if (parse_u64("JOB", argv[0], &job) || parse_u64("EPOCH", argv[1], &epoch)) {
		json_decref(entries);
		return 2;
	}
	if (!entries || read_entries(a->entries, argc - 2, argv + 2, entries)) {
		json_decref(entries);
		return 1;
	}
	if (a->meta && !(meta = json_load_file(a->meta, 0, &jerr))) {
		err_line("%s: %s", a->meta, jerr.text);
		json_decref(entries);
		return 1;
	}
	rc = hec_store_commit_meta(s, job, epoch, entries, meta);
	json_decref(meta);
	if (rc) {
		err_line("%s", hec_store_why(s));
		json_decref(entries);
		return 1;
	}
	if (!a->quiet)
		fprintf(stderr, PROG ": commit %" PRIu64 "/%" PRIu64 ": %zu streams, %zu servers%s%s\n",
			job, epoch, json_array_size(entries), hec_store_servers_up(s),
			strcmp(hec_store_why(s), "no error") ? "; " : "",
			strcmp(hec_store_why(s), "no error") ? hec_store_why(s) : "");
	json_decref(entries);
	return 0;
}

static int cmd_latest(struct hec_store *s, struct args *a, char **argv)
{
	json_t *m = NULL;
	uint64_t job, epoch;
	int rc;

	if (parse_u64("JOB", argv[0], &job))
		return 2;
	rc = hec_store_latest(s, job, &epoch, a->json ? &m : NULL);
	if (rc) {
		err_line("%s", hec_store_why(s));
		return 1;
	}
	if (a->json) {
		json_dumpf(m, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(m);
	} else {
		printf("%" PRIu64 "\n", epoch);
	}
	return 0;
}

static int cmd_epoch(struct hec_store *s, const char *cmd, char **argv)
{
	uint64_t job, epoch;
	int rc;

	if (parse_u64("JOB", argv[0], &job) || parse_u64("EPOCH", argv[1], &epoch))
		return 2;
	rc = !strcmp(cmd, "delete") ? hec_store_delete(s, job, epoch)
				    : hec_store_abort(s, job, epoch);
	if (rc) {
		err_line("%s", hec_store_why(s));
		return 1;
	}
	return 0;
}

static int cmd_repair(struct hec_store *s, struct args *a)
{
	json_t *r = NULL;
	int rc = hec_store_repair_report(s, &r);

	/* --json: one line on stdout whatever happened (the controller reads it) */
	if (a->json && r) {
		if (rc)
			json_object_set_new(r, "error", json_string(hec_store_why(s)));
		json_dumpf(r, stdout, JSON_COMPACT);
		fputc('\n', stdout);
	}
	if (rc) {
		err_line("%s", hec_store_why(s));
		json_decref(r);
		return 1;
	}
	if (!a->quiet)
		fprintf(stderr, PROG ": repair: %" JSON_INTEGER_FORMAT " copies made, %" JSON_INTEGER_FORMAT " chunks lost, %" JSON_INTEGER_FORMAT " deleted copies removed, %zu servers\n",
			json_integer_value(json_object_get(r, "copied")),
			json_integer_value(json_object_get(r, "lost")),
			json_integer_value(json_object_get(r, "removed")), hec_store_servers_up(s));
	json_decref(r);
	return 0;
}

static const char *num(const json_t *o, const char *k, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		return "-";
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

static int cmd_status(struct hec_store *s, struct args *a)
{
	json_t *all = NULL;
	int rc = hec_store_status(s, &all);

	if (rc) {
		err_line("%s", hec_store_why(s));
		return 1;
	}
	if (a->json) {
		json_dumpf(all, stdout, JSON_COMPACT);
		fputc('\n', stdout);
	} else {
		printf("%-12s %-22s %-6s %14s %14s %8s %9s %7s\n", "NAME", "ADDR", "STATE", "FREE",
		       "USED", "CHUNKS", "MANIFESTS", "CORRUPT");
		for (size_t i = 0; i < json_array_size(all); i++) {
			const json_t *o = json_array_get(all, i);
			char b1[32], b2[32], b3[32], b4[32], b5[32];

			printf("%-12s %-22s %-6s %14s %14s %8s %9s %7s\n",
			       json_string_value(json_object_get(o, "name")),
			       json_string_value(json_object_get(o, "addr")),
			       json_string_value(json_object_get(o, "state")),
			       num(o, "free", b1, sizeof(b1)), num(o, "used", b2, sizeof(b2)),
			       num(o, "chunks", b3, sizeof(b3)), num(o, "manifests", b4, sizeof(b4)),
			       num(o, "corrupt", b5, sizeof(b5)));
		}
	}
	json_decref(all);
	return 0;
}

/* Is server @n named in @list ("s1 (ADDR): why; s2 (ADDR): why")? */
static int named_in(const char *list, const char *n)
{
	size_t len = strlen(n);

	for (const char *p = strstr(list, n); p; p = strstr(p + 1, n))
		if ((p == list || p[-1] == ' ') && !strncmp(p + len, " (", 2))
			return 1;
	return 0;
}

static const char *str_or(const json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : dflt;
}

/* A command that succeeded though servers went down under it names them:
 * its data is on the others (degraded chunks, if any, are in its figures). */
static void warn_lost(struct hec_store *s, const char *cmd, const char *left_out)
{
	json_t *all = NULL;

	if (hec_store_status(s, &all))
		return;
	for (size_t i = 0; i < json_array_size(all); i++) {
		const json_t *o = json_array_get(all, i);
		const char *n = str_or(o, "name", "?");

		if (strcmp(str_or(o, "state", ""), "down") || named_in(left_out, n))
			continue;
		err_line("warning: lost during %s: %s (%s): %s", cmd, n, str_or(o, "addr", "?"),
			 str_or(o, "error", "down"));
	}
	json_decref(all);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "servers", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'D' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "replicas", required_argument, NULL, 'r' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "provider", required_argument, NULL, 'p' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "meta", required_argument, NULL, 'm' },
		{ "entries", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct { const char *cmd; int nargs; int more; } cmds[] = {
		{ "put", 3, 0 }, { "commit", 2, 1 }, { "get", 3, 0 }, { "latest", 1, 0 },
		{ "delete", 2, 0 }, { "abort", 2, 0 }, { "repair", 0, 0 }, { "status", 0, 0 },
	};
	struct args a = { .replicas = 0 };
	struct hec_store_opts o = { 0 };
	struct hec_store *s = NULL;
	struct cli_ctx ctx;
	char client[128], host[64] = "", left_out[1024] = "";
	const char *cmd;
	int c, rc, have_ctx = 0;
	size_t ci, up0;
	long v;

	opterr = 0; /* one line per mistake: ours, naming the option */
	while ((c = getopt_long(argc, argv, "D:hq", longopts, NULL)) != -1) {
		switch (c) {
		case 's': a.servers = optarg; break;
		case 'D': a.dir = optarg; break;
		case 'k': a.key_file = optarg; break;
		case 'p':
			if (strcmp(optarg, "auto") && strcmp(optarg, "verbs") && strcmp(optarg, "tcp"))
				return usage("--provider: '%s' is not auto, verbs or tcp", optarg);
			a.provider = optarg;
			break;
		case 'r':
			if (hec_parse_long(optarg, 1, 64, &v))
				return usage("--replicas: '%s' is not 1 to 64", optarg);
			a.replicas = (unsigned long)v;
			break;
		case 'c':
			if (hec_store_parse_size(optarg, &a.chunk_size) || a.chunk_size < 4096 ||
			    a.chunk_size > (1u << 30))
				return usage("--chunk-size: '%s' is not 4K to 1G", optarg);
			break;
		case 't':
			if (hec_parse_long(optarg, 1, 3600000, &v))
				return usage("--timeout: '%s' is not 1 to 3600000 ms", optarg);
			a.timeout_ms = v;
			break;
		case 'j': a.json = 1; break;
		case 'q': a.quiet = 1; break;
		case 'm': a.meta = optarg; break;
		case 'e': a.entries = optarg; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: return usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage("no command");
	cmd = argv[optind++];
	for (ci = 0; ci < HEC_ARRAY_SIZE(cmds); ci++)
		if (!strcmp(cmds[ci].cmd, cmd))
			break;
	if (ci == HEC_ARRAY_SIZE(cmds))
		return usage("unknown command '%s'", cmd);
	if (argc - optind < cmds[ci].nargs || (!cmds[ci].more && argc - optind > cmds[ci].nargs))
		return usage("%s: wrong number of arguments", cmd);
	if (a.meta && strcmp(cmd, "commit"))
		return usage("--meta: only for commit");
	if (a.entries && strcmp(cmd, "commit"))
		return usage("--entries: only for commit");
	signal(SIGPIPE, SIG_IGN);

	if (!a.servers || !a.key_file) {
		/* the cluster's directory: its controller and its key */
		if (cli_ctx_init(&ctx, a.dir) == 0)
			have_ctx = 1;
		else if (!a.servers)
			return 1;
	}
	rc = a.servers ? parse_servers(&a) : ask_controller(&a, &ctx);
	if (rc) {
		rc = rc == 2 ? 2 : 1;
		goto out;
	}
	if (read_key(&a, &ctx, have_ctx)) {
		rc = 1;
		goto out;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(client, sizeof(client), "hec-store@%s:%d", host, (int)getpid());
	o.servers = a.sv;
	o.nservers = a.nsv;
	o.key = a.key;
	o.client = client;
	o.provider = a.provider;
	o.replicas = (unsigned)a.replicas;
	o.chunk_size = (size_t)a.chunk_size;
	o.timeout_ms = (int)a.timeout_ms;
	rc = hec_store_open(&o, &s);
	if (rc) {
		err_line("%s", s ? hec_store_why(s) : strerror(-rc));
		rc = 1;
		goto out;
	}
	/* said after the command, and only if it succeeds: a failure is one line */
	if (strcmp(hec_store_why(s), "no error"))
		snprintf(left_out, sizeof(left_out), "%s", hec_store_why(s));
	up0 = hec_store_servers_up(s);
	if (!strcmp(cmd, "put"))
		rc = cmd_put(s, &a, argv + optind);
	else if (!strcmp(cmd, "get"))
		rc = cmd_get(s, &a, argv + optind);
	else if (!strcmp(cmd, "commit"))
		rc = cmd_commit(s, &a, argc - optind, argv + optind);
	else if (!strcmp(cmd, "latest"))
		rc = cmd_latest(s, &a, argv + optind);
	else if (!strcmp(cmd, "repair"))
		rc = cmd_repair(s, &a);
	else if (!strcmp(cmd, "status"))
		rc = cmd_status(s, &a);
	else
		rc = cmd_epoch(s, cmd, argv + optind);
	if (rc == 0 && !a.quiet && left_out[0])
		err_line("warning: left out: %s", left_out);
	if (rc == 0 && !a.quiet && hec_store_servers_up(s) < up0)
		warn_lost(s, cmd, left_out);
out:
	hec_store_close(s);
	free(a.sv_text);
	json_decref(a.ctl);
	return rc;
}
