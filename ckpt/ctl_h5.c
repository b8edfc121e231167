/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * `hec ckpt export JOB EPOCH FILE.h5` and `hec ckpt import FILE.h5 [JOB]`
 * at the controller: it checks who may, and runs hec-ckpt-h5 (ckpt/h5.c)
 * as a child with the cluster key and the storage servers, telling it to
 * open the file as the user who asked (--as), so that a file is only ever
 * written or read with that user's rights.
 *
 * An import goes: inspect the file (as the user) -> the job it goes to
 * must be the user's (or root asks), a vm job of as many nodes -> a pending
 * catalog row for a new epoch (so a crash leaves a row the start-up
 * clean-up aborts) -> the streams put to storage and checked against the
 * file's XXH3 -> `hec-store commit --meta` -> the row committed.  The
 * checkpoint is then the job's newest; `hec restart JOB` uses it.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "hec/common.h"
#include "launcher/ctld.h"

#define H5_PROG "hec-ckpt-h5"
#define H5_LIMIT_MS (60L * 60 * 1000)

struct h5_req {
	struct ctl *ctl;
	struct peer *p;              /* the CLI; NULL once it has gone */
	uid_t uid;
	gid_t gid;
	long job;
	int64_t epoch;               /* export: the one exported; import: the new one */
	char path[4097];
	char as[32];
	char dir[4097];              /* import: the commit's files */
	json_t *imported;            /* import: hec-ckpt-h5's answer */
	struct h5_req *next;
};

static struct h5_req *reqs; /* under way: a CLI going away is forgotten here */
static int64_t import_seq;

static void req_free(struct h5_req *r)
{
	for (struct h5_req **pp = &reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->dir[0]) {
		char f[4200];

		snprintf(f, sizeof(f), "%s/meta.json", r->dir);
		unlink(f);
		for (int i = 0; i < 64; i++) {
			snprintf(f, sizeof(f), "%s/%d.json", r->dir, i);
			unlink(f);
		}
		rmdir(r->dir);
	}
	json_decref(r->imported);
	free(r);
}

/* Answer the CLI if it is still there, and end the request. */
static void finish(struct h5_req *r, json_t *answer)
{
	if (r->p)
		respond(r->p->conn, answer);
	else
		json_decref(answer);
	req_free(r);
}

static void fail(struct h5_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct h5_req *r, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	hec_warn("job %ld: checkpoint %s %s: %s", r->job, r->imported || r->epoch ? "of" : "file",
		 r->path, why);
	finish(r, json_pack("{s:b,s:s}", "ok", 0, "error", why));
}

/* hec-ckpt-h5's last line on stderr, without its name. */
static const char *tool_why(const char *err)
{
	const char *nl, *line = err && *err ? err : "failed";
	static char buf[1024];
	size_t n;

	while ((nl = strchr(line, '\n')) && nl[1])
		line = nl + 1;
	n = strcspn(line, "\n");
	if (!strncmp(line, H5_PROG ": ", strlen(H5_PROG) + 2)) {
		line += strlen(H5_PROG) + 2;
		n -= strlen(H5_PROG) + 2;
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)n, line);
	return buf;
}

static int run(struct h5_req *r, const char *const *argv,
	       void (*done)(struct ctl *, void *, int, const char *, const char *))
{
	char prog[4097];
	int rc = ctl_find_program(H5_PROG, prog, sizeof(prog));

	return rc ? rc : ckpt_tool_run(r->ctl, prog, 0, argv, H5_LIMIT_MS, done, r);
}

static struct h5_req *req_new(struct ctl *ctl, struct peer *p, const char *path)
{
	struct h5_req *r;

	if (!path || path[0] != '/' || strlen(path) >= sizeof(r->path)) {
		respond_error(p->conn, "the file must be given as an absolute path");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		respond_error(p->conn, "controller out of memory");
		return NULL;
	}
	*r = (struct h5_req){ .ctl = ctl, .p = p, .uid = p->uid, .gid = p->gid };
	snprintf(r->path, sizeof(r->path), "%s", path);
	snprintf(r->as, sizeof(r->as), "%u:%u", (unsigned)p->uid, (unsigned)p->gid);
	r->next = reqs;
	reqs = r;
	return r;
}

/* ---- export ---- */

static void export_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct h5_req *r = arg;
	struct stat st;

	(void)ctl;
	(void)out;
	if (status != 0) {
		fail(r, "%s", tool_why(err));
		return;
	}
	hec_info("job %ld: checkpoint %lld exported to %s for uid %u", r->job, (long long)r->epoch,
		 r->path, (unsigned)r->uid);
	finish(r, json_pack("{s:b,s:s,s:I}", "ok", 1, "path", r->path, "bytes",
			    (json_int_t)(stat(r->path, &st) == 0 ? st.st_size : 0)));
}

/* Is (job, epoch) a committed row of the catalog? */
static int committed(struct ctl *ctl, long job, int64_t epoch)
{
	json_t *rows = NULL, *row;
	size_t i;
	int found = 0;

	if (db_ckpts_list(ctl->db, job, "committed", &rows))
		return 0;
	json_array_foreach(rows, i, row)
		if (json_integer_value(json_object_get(row, "epoch")) == epoch)
			found = 1;
	json_decref(rows);
	return found;
}

void cli_ckpt_export(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	int64_t epoch = json_integer_value(json_object_get(body, "epoch"));
	struct h5_req *r;
	char jobs[24], epochs[24];
	const char *argv[8];
	int rc;

	if (!committed(ctl, j->id, epoch)) {
		respond_error(p->conn, "job %ld has no committed checkpoint %lld (hec ckpts %ld)", j->id,
			      (long long)epoch, j->id);
		return;
	}
	r = req_new(ctl, p, json_string_value(json_object_get(body, "path")));
	if (!r)
		return;
	r->job = j->id;
	r->epoch = epoch;
	snprintf(jobs, sizeof(jobs), "%ld", j->id);
	snprintf(epochs, sizeof(epochs), "%lld", (long long)epoch);
	argv[0] = "--as";
	argv[1] = r->as;
	argv[2] = "export";
	argv[3] = jobs;
	argv[4] = epochs;
	argv[5] = r->path;
	argv[6] = NULL;
	rc = run(r, argv, export_done);
	if (rc)
		fail(r, "%s", rc == -ENOENT ? "no storage server has registered (or " H5_PROG
		     " is not installed)" : strerror(-rc));
}

/* ---- import ---- */

static void abort_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	(void)ctl;
	(void)arg;
	(void)out;
	if (status != 0)
		hec_warn("an import's partial checkpoint: hec-store abort: %s (the servers collect it later)",
			 err && *err ? err : "failed");
}

static void import_abort(struct h5_req *r)
{
	char jobs[24], epochs[24];
	const char *argv[] = { "abort", jobs, epochs, NULL };

	db_ckpt_delete(r->ctl->db, r->job, r->epoch);
	snprintf(jobs, sizeof(jobs), "%ld", r->job);
	snprintf(epochs, sizeof(epochs), "%lld", (long long)r->epoch);
	/* best effort: the servers collect uncommitted chunks anyway */
	ckpt_store_run(r->ctl, argv, 60000, abort_done, NULL);
}

static void commit_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct h5_req *r = arg;
	const json_t *meta = json_object_get(r->imported, "meta");
	const json_t *entries = json_object_get(r->imported, "entries"), *e, *mp;
	json_t *parts = json_array(), *nodes = json_deep_copy(json_object_get(meta, "nodes"));
	int64_t bytes = 0;
	size_t i, k;
	int rc;

	(void)out;
	if (status != 0) {
		import_abort(r);
		json_decref(parts);
		json_decref(nodes);
		fail(r, "hec-store commit: %s", err && *err ? err : "failed");
		return;
	}
	json_array_foreach(entries, i, e) {
		const char *part = json_string_value(json_object_get(e, "part"));
		const json_t *pm = NULL;

		json_array_foreach(json_object_get(meta, "parts"), k, mp)
			if (part && !strcmp(part, json_string_value(json_object_get(mp, "part")) ?: ""))
				pm = mp;
		bytes += json_integer_value(json_object_get(e, "size"));
		json_array_append_new(parts, json_pack("{s:s,s:s,s:I,s:I,s:s,s:O}", "part", part ?: "",
			"node", json_string_value(json_object_get(pm, "node")) ?: "",
			"bytes", json_integer_value(json_object_get(e, "size")),
			"pause_us", json_integer_value(json_object_get(pm, "pause_us")),
			"image", json_string_value(json_object_get(pm, "image")) ?: "",
			"hash", json_object_get(e, "hash") ?: json_null()));
	}
	if (!nodes)
		nodes = json_array(); /* the row gets an empty list; freed below */
	rc = db_ckpt_commit(ctl->db, r->job, r->epoch, bytes, 0, nodes, parts);
	json_decref(parts);
	json_decref(nodes);
	if (rc) {
		fail(r, "catalog update failed: %s", rc == -EIO ? db_errmsg(ctl->db) : strerror(-rc));
		return;
	}
	hec_info("job %ld: checkpoint %lld imported from %s (uid %u): %.1f MB", r->job,
		 (long long)r->epoch, r->path, (unsigned)r->uid, bytes / 1048576.0);
	finish(r, json_pack("{s:b,s:I,s:I,s:O}", "ok", 1, "job", (json_int_t)r->job, "epoch",
			    (json_int_t)r->epoch, "from", json_object_get(r->imported, "from")));
}

static void import_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct h5_req *r = arg;
	const json_t *entries;
	json_t *meta, *none = NULL;
	struct ckpt_commit_cmd cmd;
	char base[PATH_MAX];
	json_error_t jerr;
	int rc;

	if (status != 0 || !out) {
		import_abort(r);
		fail(r, "%s", tool_why(err));
		return;
	}
	r->imported = json_loads(out, 0, &jerr);
	entries = json_object_get(r->imported, "entries");
	if (!json_is_array(entries)) {
		import_abort(r);
		fail(r, "%s answered no usable entries", H5_PROG);
		return;
	}
	if (hec_fmt(base, sizeof(base), "%s/ckpt", ctl->conf.state_dir) ||
	    (mkdir(base, 0700) && errno != EEXIST) ||
	    hec_fmt(r->dir, sizeof(r->dir), "%s/import.%ld.XXXXXX", base, r->job) || !mkdtemp(r->dir)) {
		r->dir[0] = 0;
		import_abort(r);
		fail(r, "%s: cannot make the commit's files: %s", base, strerror(errno));
		return;
	}
	meta = json_object_get(r->imported, "meta");
	if (!meta)
		meta = none = json_object();
	rc = meta ? ckpt_commit_cmd(&cmd, r->dir, r->job, (long long)r->epoch, meta, entries) :
		    -ENOMEM;
	json_decref(none);
	if (!rc)
		rc = ckpt_store_run(ctl, cmd.argv, 10 * 60 * 1000, commit_done, r);
	if (rc) {
		import_abort(r);
		fail(r, "commit not started: %s", strerror(-rc));
	}
}

static void inspect_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct h5_req *r = arg;
	json_t *info = NULL;
	json_error_t jerr;
	struct ctl_job *j;
	long nparts, want;
	char jobs[24], epochs[24];
	const char *argv[8];
	int rc;

	if (status != 0 || !out || !(info = json_loads(out, 0, &jerr))) {
		fail(r, "%s", status != 0 ? tool_why(err) : "hec-ckpt-h5 inspect answered no JSON");
		return;
	}
	if (!r->job)
		r->job = (long)json_integer_value(json_object_get(info, "job"));
	nparts = (long)json_array_size(json_object_get(info, "parts"));
	want = (long)json_integer_value(json_object_get(json_object_get(json_object_get(info, "meta"),
									"job"), "nnodes"));
	json_decref(info);
	j = job_get(ctl, r->job);
	if (!j) {
		fail(r, "job %ld (the file's) is not a job of this cluster: name one with --job", r->job);
		return;
	}
	if (r->uid != 0 && j->uid != r->uid) {
		fail(r, "job %ld is owned by uid %u: only its owner or root may import checkpoints for it",
		     j->id, (unsigned)j->uid);
		return;
	}
	if (!j->vm || nparts != j->nnodes || (want && want != j->nnodes)) {
		fail(r, "job %ld runs %s on %d node%s; the file holds %ld guest%s", j->id,
		     j->vm ? "vm partitions" : "proc partitions", j->nnodes, j->nnodes == 1 ? "" : "s",
		     nparts, nparts == 1 ? "" : "s");
		return;
	}
	r->epoch = ctl_fresh_id(&import_seq);
	rc = db_ckpt_pending(ctl->db, r->job, r->epoch, hec_now_real_ns(), hec_now_real_ns() / 1000000000);
	if (rc) {
		fail(r, "catalog: %s", rc == -EIO ? db_errmsg(ctl->db) : strerror(-rc));
		return;
	}
	snprintf(jobs, sizeof(jobs), "%ld", r->job);
	snprintf(epochs, sizeof(epochs), "%lld", (long long)r->epoch);
	argv[0] = "--as";
	argv[1] = r->as;
	argv[2] = "import";
	argv[3] = r->path;
	argv[4] = jobs;
	argv[5] = epochs;
	argv[6] = NULL;
	rc = run(r, argv, import_done);
	if (rc) {
		import_abort(r);
		fail(r, "%s", strerror(-rc));
	}
}

void cli_ckpt_import(struct ctl *ctl, struct peer *p, const json_t *body)
{
	const char *argv[] = { "--as", NULL, "inspect", NULL, NULL };
	struct h5_req *r = req_new(ctl, p, json_string_value(json_object_get(body, "path")));
	int rc;

	if (!r)
		return;
	r->job = (long)json_integer_value(json_object_get(body, "job"));
	argv[1] = r->as;
	argv[3] = r->path;
	rc = run(r, argv, inspect_done);
	if (rc)
		fail(r, "%s", rc == -ENOENT ? "no storage server has registered (or " H5_PROG
		     " is not installed)" : strerror(-rc));
}

void ckpt_h5_forget_peer(struct peer *p)
{
	for (struct h5_req *r = reqs; r; r = r->next)
		if (r->p == p)
			r->p = NULL;
}
