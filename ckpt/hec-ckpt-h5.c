/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-ckpt-h5: committed checkpoints to and from self-describing HDF5 files
 * (ckpt/h5.c).  The controller runs it for `hec ckpt export` and `hec ckpt
 * import`, as root with the cluster key, and tells it whose file it is:
 * with --as, it connects to the storage servers first and then becomes that
 * user before it opens FILE, so a file is written or read with the user's
 * rights only, never root's.
 *
 *   hec-ckpt-h5 OPTIONS export JOB EPOCH FILE
 *   hec-ckpt-h5 OPTIONS import FILE JOB EPOCH   prints {"entries", "meta"?,
 *                                              "from": {"job", "epoch"}}:
 *                                              the caller commits them
 *   hec-ckpt-h5 [--as UID:GID] inspect FILE     prints {"job", "epoch",
 *                                              "meta"?, "parts": [...]}
 * OPTIONS: --servers N=HOST:PORT,... --key-file F [--replicas R]
 *          [--provider P] [--timeout MS] [--as UID:GID]
 * Exit 0; 1 on failure (one line on stderr); 2 on bad arguments.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "hec/common.h"
#include "hec/store.h"
#include "ckpt/h5.h"

#define PROG "hec-ckpt-h5"
#define SERVERS_MAX 64

static int usage(void)
{
	fprintf(stderr, "usage: " PROG " --servers N=HOST:PORT,... --key-file F [--replicas R] "
		"[--provider P] [--timeout MS] [--as UID:GID] export JOB EPOCH FILE | import FILE "
		"JOB EPOCH\n       " PROG " [--as UID:GID] inspect FILE\n");
	return 2;
}

static int parse_u64(const char *what, const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (!*s || *end || errno || *out == 0 || *s == '-') {
		fprintf(stderr, PROG ": %s '%s' is not a number > 0\n", what, s);
		return -1;
	}
	return 0;
}

/* Become uid:gid for good (no way back to root). */
static int become(const char *as)
{
	unsigned long uid, gid;
	char *end;

	errno = 0;
	uid = strtoul(as, &end, 10);
	if (errno || end == as || *end != ':' || uid > 4294967294UL)
		goto bad;
	as = end + 1;
	gid = strtoul(as, &end, 10);
	if (errno || end == as || *end || gid > 4294967294UL)
		goto bad;
	errno = 0;
	if ((getuid() == 0 && setgroups(0, NULL)) || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) ||
	    setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid)) {
		fprintf(stderr, PROG ": cannot become uid %lu gid %lu: %s\n", uid, gid,
			strerror(errno ? errno : EPERM));
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, PROG ": --as wants UID:GID\n");
	return -1;
}

/* "s0=host:port,..." into @sv (pointing into @buf). \return the count or -1. */
static int parse_servers(char *buf, struct hec_store_server *sv)
{
	int n = 0;

	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');

		if (!eq || eq == t || !eq[1] || n == SERVERS_MAX)
			return -1;
		*eq = 0;
		sv[n++] = (struct hec_store_server){ .name = t, .addr = eq + 1 };
	}
	return n ? n : -1;
}

static int inspect(const char *path)
{
	uint64_t job, epoch;
	json_t *m = NULL, *parts, *out;
	char why[512];
	int rc = hec_ckpt_h5_read(path, &job, &epoch, &m, why, sizeof(why));

	if (rc) {
		fprintf(stderr, PROG ": %s\n", why);
		return 1;
	}
	parts = json_array();
	for (size_t i = 0; i < json_array_size(json_object_get(m, "streams")); i++) {
		const json_t *e = json_array_get(json_object_get(m, "streams"), i);

		json_array_append_new(parts, json_pack("{s:O,s:O,s:O}", "part", json_object_get(e, "part"),
						       "bytes", json_object_get(e, "size"), "xxh3",
						       json_object_get(e, "hash")));
	}
	out = json_pack("{s:I,s:I,s:o}", "job", (json_int_t)job, "epoch", (json_int_t)epoch, "parts",
			parts);
	if (out && json_object_get(m, "meta"))
		json_object_set(out, "meta", json_object_get(m, "meta"));
	if (!out || json_dumpf(out, stdout, JSON_COMPACT) || puts("") == EOF) {
		json_decref(out);
		json_decref(m);
		return 1;
	}
	json_decref(out);
	json_decref(m);
	return 0;
}

int main(int argc, char **argv)
{
	struct hec_store_server sv[SERVERS_MAX];
	struct hec_store_opts o = { 0 };
	struct hec_store *s = NULL;
	char *servers = NULL, key[512] = "", why[1024];
	const char *key_file = NULL, *as = NULL, *cmd;
	uint64_t job, epoch;
	int i, n, rc = 1;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i += 2) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return usage();
		if (!strcmp(argv[i], "--servers"))
			servers = argv[i + 1]; /* parse_servers() cuts it in place */
		else if (!strcmp(argv[i], "--key-file"))
			key_file = v;
		else if (!strcmp(argv[i], "--provider"))
			o.provider = v;
		else if (!strcmp(argv[i], "--as"))
			as = v;
		else if (!strcmp(argv[i], "--replicas") || !strcmp(argv[i], "--timeout")) {
			uint64_t x;

			if (parse_u64(argv[i] + 2, v, &x) || x > 86400000)
				return 2;
			if (argv[i][2] == 'r')
				o.replicas = (unsigned)x;
			else
				o.timeout_ms = (int)x;
		} else {
			fprintf(stderr, PROG ": unknown option %s\n", argv[i]);
			return usage();
		}
	}
	if (i >= argc)
		return usage();
	cmd = argv[i++];
	if (!strcmp(cmd, "inspect")) {
		if (i + 1 != argc || (as && become(as)))
			return as ? 1 : usage();
		return inspect(argv[i]);
	}
	if ((strcmp(cmd, "export") && strcmp(cmd, "import")) || i + 3 != argc || !servers || !key_file)
		return usage();
	if (!strcmp(cmd, "export") ? parse_u64("JOB", argv[i], &job) || parse_u64("EPOCH", argv[i + 1], &epoch)
				   : parse_u64("JOB", argv[i + 1], &job) || parse_u64("EPOCH", argv[i + 2], &epoch))
		return 2;
	n = parse_servers(servers, sv);
	if (n < 0) {
		fprintf(stderr, PROG ": --servers wants NAME=HOST:PORT,...\n");
		return 2;
	}
	if (hec_read_key(key_file, key, HEC_KEY_SIZE, why, sizeof(why))) {
		fprintf(stderr, PROG ": key file %s: %s\n", key_file, why);
		return 1;
	}
	o.servers = sv;
	o.nservers = (size_t)n;
	o.key = key;
	o.client = PROG;
	if (hec_store_open(&o, &s)) {
		fprintf(stderr, PROG ": %s\n", hec_store_why(s));
		goto out;
	}
	/* connected as root (the key); the file is the user's business */
	memset(key, 0, sizeof(key));
	if (as && become(as))
		goto out;
	if (!strcmp(cmd, "export")) {
		if (hec_ckpt_h5_export(s, job, epoch, argv[i + 2], why, sizeof(why))) {
			fprintf(stderr, PROG ": export %" PRIu64 "/%" PRIu64 ": %s\n", job, epoch, why);
			goto out;
		}
		rc = 0;
	} else {
		json_t *entries = NULL, *meta = NULL, *res;
		uint64_t fjob, fepoch;
		json_t *m = NULL;

		if (hec_ckpt_h5_read(argv[i], &fjob, &fepoch, &m, why, sizeof(why)) ||
		    hec_ckpt_h5_import(s, argv[i], job, epoch, &entries, &meta, why, sizeof(why))) {
			fprintf(stderr, PROG ": import %s: %s\n", argv[i], why);
			json_decref(m);
			goto out;
		}
		json_decref(m);
		res = json_pack("{s:o,s:{s:I,s:I}}", "entries", entries, "from", "job", (json_int_t)fjob,
				"epoch", (json_int_t)fepoch);
		if (res && meta)
			json_object_set_new(res, "meta", meta);
		else
			json_decref(meta);
		rc = !res || json_dumpf(res, stdout, JSON_COMPACT) || puts("") == EOF;
		json_decref(res);
	}
out:
	hec_store_close(s);
	return rc;
}
