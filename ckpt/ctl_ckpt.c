/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The controller's side of coordinated checkpoints (doc/design.md,
 * "Checkpoint and restart"; doc/protocol.md, "checkpoints and restarts").
 *
 * One checkpoint per job at a time (j->ckpt).  Its life:
 *
 *   pending row in ckpts --> CKPT_PREPARE {t} to every node ----------+
 *     capture fan-out (CKPT_CAPTURED from all, by T + 60 s)           | any error,
 *       --> CKPT_REOPEN to all                                         | timeout, node
 *     stream fan-out (CKPT_STORED from all, by ckpt_timeout)           | lost, the job
 *       --> hec-store commit --meta (a child; never waited on)         | ending:
 *       --> row committed, retention (hec-store delete, row gone)      | abort
 *                                                                      v
 *   abort: CKPT_ABORT to every node, the error kept for `hec ckpts`, and
 *   the row handed to the clean-up (hec-store abort, then the row goes;
 *   "committed" from the servers: the row is recorded committed).
 *
 * The two fan-outs (launcher/fanout.h) start together, so a CKPT_STORED
 * that overtakes another node's CKPT_CAPTURED always has a request to
 * answer; each settles every node exactly once (lost, timed out, failed).
 * A checkpoint's record lives until its fan-outs and children are done
 * (refs); the job forgets it as soon as it has ended, so the next one may
 * start at once.  The pending rows a controller finds at its start, and
 * the rows of aborted checkpoints, go through the same clean-up, retried
 * every few seconds until the storage servers answer.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "hec/common.h"
#include "hec/fault.h"
#include "launcher/ctld.h"
#include "launcher/fanout.h"

#define CKPT_CAPTURE_MS 60000          /* from T to every CKPT_CAPTURED */
#define CKPT_COMMIT_LIMIT_MS 120000    /* hec-store commit */
#define CKPT_STORE_LIMIT_MS 120000     /* hec-store abort, delete, latest */
#define CKPT_RETRY_NS 10000000000LL    /* a clean-up that failed runs again */

enum ckpt_phase { CK_CAPTURE, CK_STREAM, CK_COMMIT, CK_DONE };

static const char *const phase_names[] = {
	[CK_CAPTURE] = "capture", [CK_STREAM] = "stream", [CK_COMMIT] = "commit",
	[CK_DONE] = "done",
};

struct ckpt_part {
	char node[65];
	char part[24];               /* "p<i>": the node's index in the job */
	int64_t pause_us;
	int64_t slot_pause_us;       /* of it, in the job's own slots */
	int switched_out;            /* captured while switched out (off-slot) */
	int64_t stream_ms;           /* capture's start to stream stored (the agent's) */
	int64_t bytes;               /* CKPT_PROGRESS, then CKPT_STORED's */
	json_t *entry;               /* CKPT_STORED's manifest entry */
	char image[65];
};

struct ckpt_op {
	struct ctl *ctl;
	long job;
	int64_t epoch;
	int64_t t_ns;                /* T, CLOCK_REALTIME */
	int64_t started_ns;          /* CLOCK_REALTIME ns of the request */
	int64_t started_mono;
	enum ckpt_phase phase;
	int captured, stored;        /* the two fan-outs succeeded */
	int pinned;                  /* in the gang matrix until captured */
	int app;                     /* a proc job's: one part "app", the program writes it */
	int ranks;                   /* app: the program's rank count (CKPT_CAPTURED) */
	long capture_ms;             /* app: app_ckpt_timeout */
	int refs;                    /* j->ckpt, each fan-out waiting, each child */
	int n;
	struct ckpt_part *parts;
	int *by_name;                /* indices of parts in node name order (lookups) */
	char dir[PATH_MAX];          /* the commit's files, "" if none */
};

/* A pending row to clean up: hec-store abort, then the row goes. */
struct ckpt_orphan {
	long job;
	int64_t epoch;
	int64_t due;                 /* mono ns */
	int from_start;              /* found at the controller's start */
	int warned;
};

/* A hec-store child, and who waits for its end. */
struct store_call {
	struct ctl *ctl;
	struct ctl_child *child;
	void (*done)(struct ctl *ctl, void *arg, int status, const char *out, const char *err);
	void *arg;
	struct store_call *next;
};

/* `ckpt_delete`: the CLI waits for hec-store delete. */
struct delete_req {
	struct peer *p;              /* NULL once its connection went away */
	long job;
	int64_t epoch;
	struct delete_req *next;
};

struct ckpt_state {
	struct ckpt_orphan *orphans;
	size_t norphans;
	int orphan_busy;
	struct store_call *calls;
	struct delete_req *deletes;
	int exiting;
};

static struct ckpt_state *state_get(struct ctl *ctl)
{
	if (!ctl->ckpts)
		ctl->ckpts = calloc(1, sizeof(*ctl->ckpts));
	return ctl->ckpts;
}

/* ---- running hec-store ---- */

int ckpt_store_args(struct ctl *ctl, char *servers, size_t len, int *replicas)
{
	size_t used = 0;
	int n = 0;

	if (!ctl->stores)
		return -ENOENT;
	if (len)
		servers[0] = 0;
	for (struct store *s = ctl->stores; s; s = s->next, n++) {
		int k = snprintf(servers + used, len - used, "%s%s=%s", used ? "," : "", s->name,
				 s->addr);

		if (k < 0 || (size_t)k >= len - used)
			return -ENOSPC;
		used += (size_t)k;
	}
	*replicas = n > 1 ? 2 : 1;
	return 0;
}

static void store_call_done(void *arg, const struct ctl_child_result *r)
{
	struct store_call *c = arg;
	struct ckpt_state *st = c->ctl->ckpts;
	int status = -1;
	char err[600];

	for (struct store_call **pp = &st->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (!r->killed && WIFEXITED(r->status))
		status = WEXITSTATUS(r->status);
	if (status == 127)
		status = -1; /* it could not run */
	ctl_child_describe(r, err, sizeof(err));
	c->done(c->ctl, c->arg, status, r->out, status == 0 ? r->err : err);
	free(c);
}

int ckpt_tool_run(struct ctl *ctl, const char *prog, int store_flags, const char *const *argv,
		  long limit_ms,
		  void (*done)(struct ctl *ctl, void *arg, int status, const char *out,
			       const char *err),
		  void *arg)
{
	struct ckpt_state *st = state_get(ctl);
	char servers[8192];
	const char *full[48];
	struct store_call *c;
	int n = 0, replicas, rc;

	if (!st)
		return -ENOMEM;
	if (st->exiting || !ctl->base)
		return -ESHUTDOWN;
	rc = ckpt_store_args(ctl, servers, sizeof(servers), &replicas);
	if (rc)
		return rc;
	full[n++] = prog;
	full[n++] = "--servers";
	full[n++] = servers;
	if (ctl->conf.key_file[0]) {
		full[n++] = "--key-file";
		full[n++] = ctl->conf.key_file;
	}
	if (store_flags) {
		full[n++] = "--quiet";
		full[n++] = "--json";
	}
	for (int i = 0; argv[i]; i++) {
		if (n >= (int)HEC_ARRAY_SIZE(full) - 1)
			return -E2BIG;
		full[n++] = argv[i];
	}
	full[n] = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct store_call){ .ctl = ctl, .done = done, .arg = arg };
	rc = ctl_child_start(ctl->base, (char *const *)full, limit_ms, store_call_done, c,
			     &c->child);
	if (rc) {
		free(c);
		return rc;
	}
	c->next = st->calls;
	st->calls = c;
	return 0;
}

int ckpt_store_run(struct ctl *ctl, const char *const *argv, long limit_ms,
		   void (*done)(struct ctl *ctl, void *arg, int status, const char *out,
				const char *err),
		   void *arg)
{
	char prog[PATH_MAX];
	int rc = store_program(ctl, prog, sizeof(prog));

	return rc ? rc : ckpt_tool_run(ctl, prog, 1, argv, limit_ms, done, arg);
}

/* ---- the record of one checkpoint ---- */

static void op_free(struct ckpt_op *op)
{
	for (int i = 0; i < op->n; i++)
		json_decref(op->parts[i].entry);
	free(op->parts);
	free(op->by_name);
	free(op);
}

static void op_put(struct ckpt_op *op)
{
	if (--op->refs == 0)
		op_free(op);
}

static int part_cmp(const void *a, const void *b, void *arg)
{
	const struct ckpt_part *parts = arg;

	return strcmp(parts[*(const int *)a].node, parts[*(const int *)b].node);
}

/* Every answer finds its part by node name: by bisection (1024 nodes:
 * a list walk each was N^2 / 2 comparisons per phase). */
static struct ckpt_part *op_part(struct ckpt_op *op, const char *node)
{
	int lo = 0, hi = op->n - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2, c = strcmp(op->parts[op->by_name[mid]].node, node);

		if (!c)
			return &op->parts[op->by_name[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* The node of @p: its job's own record (the parts are in the order of its
 * nodes), else by name. */
static struct node *part_node(struct ckpt_op *op, const struct ckpt_part *p)
{
	struct ctl_job *j = job_find(op->ctl, op->job);
	int i = (int)(p - op->parts);

	if (j && i < j->nalloc && j->alloc[i].node && !strcmp(j->alloc[i].name, p->node))
		return j->alloc[i].node;
	return node_find(op->ctl, p->node);
}

/* The job's checkpoint with that epoch, if it is the one under way. */
static struct ckpt_op *op_of(struct ctl *ctl, long job, int64_t epoch)
{
	struct ctl_job *j = job_find(ctl, job);

	return j && j->ckpt && j->ckpt->epoch == epoch ? j->ckpt : NULL;
}

static void send_all(struct ckpt_op *op, unsigned type)
{
	for (int i = 0; i < op->n; i++) {
		struct node *n = part_node(op, &op->parts[i]);

		if (n && n->peer)
			node_send(n, type, json_pack("{s:I,s:I}", "job", (json_int_t)op->job, "epoch",
						     (json_int_t)op->epoch));
	}
}

static void unpin(struct ckpt_op *op)
{
	struct ctl_job *j = job_find(op->ctl, op->job);

	/* a job that started ending meanwhile stays pinned (job_end did it) */
	if (op->pinned && j && j->phase == PH_RUNNING)
		ctl_gang_pin(op->ctl, j, 0);
	op->pinned = 0;
}

/* The job may checkpoint again; the next automatic one is due later. */
static void op_detach(struct ckpt_op *op)
{
	struct ctl_job *j = job_find(op->ctl, op->job);

	unpin(op);
	if (j && j->ckpt == op) {
		j->ckpt = NULL;
		if (j->ckpt_interval > 0 && j->phase == PH_RUNNING)
			j->ckpt_next = hec_now_mono_ns() + j->ckpt_interval * 1000000000LL;
		op_put(op);
	}
}

static void orphan_add(struct ctl *ctl, long job, int64_t epoch, int from_start);

/* @j's last checkpoint failure (`hec ckpts`: last_error); an ended job's
 * row is written at once (a running one's with its next change). */
static void note_error(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const char *why)
{
	j->ckpt_err_epoch = epoch;
	j->ckpt_err_time = ctl_now();
	snprintf(j->ckpt_err, sizeof(j->ckpt_err), "%s", why);
	if (job_state_final(j->state))
		job_save(ctl, j);
}

static void op_abort(struct ckpt_op *op, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void op_abort(struct ckpt_op *op, const char *fmt, ...)
{
	struct ctl *ctl = op->ctl;
	struct ctl_job *j = job_find(ctl, op->job);
	char why[512];
	va_list ap;

	if (op->phase == CK_DONE)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	op->refs++; /* the cancels below may drop the others */
	hec_warn("job %ld: checkpoint %lld aborted in its %s phase after %.2f s: %s", op->job,
		 (long long)op->epoch, phase_names[op->phase],
		 (hec_now_mono_ns() - op->started_mono) / 1e9, why);
	op->phase = CK_DONE;
	if (j)
		note_error(ctl, j, op->epoch, why);
	send_all(op, HEC_MSG_CKPT_ABORT);
	fanout_cancel(ctl->fanout, HEC_MSG_CKPT_CAPTURED, op->epoch, why);
	fanout_cancel(ctl->fanout, HEC_MSG_CKPT_STORED, op->epoch, why);
	op_detach(op);
	if (j && !op->captured)
		ctl_gang_ckpt_over(ctl, j, op->epoch, why);
	/* its partial data and its row: the clean-up's (also after a restart) */
	orphan_add(ctl, op->job, op->epoch, 0);
	op_put(op);
}

/* ---- commit ---- */

static int write_json(const char *dir, const char *name, const json_t *v, char *path, size_t len)
{
	if (hec_fmt(path, len, "%s/%s", dir, name))
		return -ENAMETOOLONG;
	return json_dump_file(v, path, JSON_COMPACT) ? -EIO : 0;
}

static void remove_dir(const char *dir)
{
	DIR *d;
	struct dirent *e;
	char path[PATH_MAX];

	if (!dir[0] || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && !hec_fmt(path, sizeof(path), "%s/%s", dir, e->d_name))
			unlink(path);
	closedir(d);
	rmdir(dir);
}

static json_t *meta_json(const struct ckpt_op *op, const struct ctl_job *j)
{
	json_t *nodes = json_array(), *parts = json_array();

	for (int i = 0; i < j->nalloc; i++)
		json_array_append_new(nodes, json_string(j->alloc[i].name));
	for (int i = 0; i < op->n; i++)
		json_array_append_new(parts, json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}", "part",
						       op->parts[i].part, "node", op->parts[i].node,
						       "image", op->parts[i].image, "pause_us",
						       (json_int_t)op->parts[i].pause_us, "slot_pause_us",
						       (json_int_t)op->parts[i].slot_pause_us,
						       "switched_out", op->parts[i].switched_out));
	json_t *m = json_pack("{s:{s:s,s:s,s:I,s:i,s:i,s:i,s:I,s:o,s:s},s:o,s:o,s:s}", "job",
			      "name", j->name, "user", j->user, "uid", (json_int_t)j->uid,
			      "nnodes", j->nnodes, "ntasks", j->ntasks, "vcpus", job_vcpus(j),
			      "mem_mb", (json_int_t)j->mem_mb,
			      "vm_files", j->vm_files ? json_incref(j->vm_files) : json_array(),
			      "command", j->command ? j->command : "", "nodes", nodes, "parts", parts,
			      "kind", op->app ? "app" : "vm");

	if (m && op->app && op->ranks > 0)
		json_object_set_new(m, "ranks", json_integer(op->ranks));
	return m;
}

static void retention(struct ctl *ctl, struct ctl_job *j);

static void commit_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct ckpt_op *op = arg;
	struct ctl_job *j = job_find(ctl, op->job);
	json_t *nodes = json_array(), *parts = json_array();
	int64_t bytes = 0, pause = 0, ms;
	int rc;

	(void)out;
	remove_dir(op->dir);
	op->dir[0] = 0;
	if (op->phase != CK_COMMIT)
		goto out;
	if (status != 0) {
		op_abort(op, "hec-store commit: %s", err && *err ? err : "failed");
		goto out;
	}
	for (int i = 0; i < op->n; i++) {
		const struct ckpt_part *p = &op->parts[i];

		bytes += p->bytes;
		pause = p->pause_us > pause ? p->pause_us : pause;
		json_array_append_new(nodes, json_string(p->node));
		json_array_append_new(parts, json_pack("{s:s,s:s,s:I,s:I,s:I,s:b,s:I,s:s,s:O}", "part",
						       p->part, "node", p->node, "bytes",
						       (json_int_t)p->bytes, "pause_us",
						       (json_int_t)p->pause_us, "slot_pause_us",
						       (json_int_t)p->slot_pause_us, "switched_out",
						       p->switched_out, "stream_ms", (json_int_t)p->stream_ms,
						       "image", p->image, "hash",
						       json_object_get(p->entry, "hash") ?
						       json_object_get(p->entry, "hash") : json_null()));
	}
	ms = (hec_now_mono_ns() - op->started_mono) / 1000000;
	rc = db_ckpt_commit(ctl->db, op->job, op->epoch, bytes, ms, nodes, parts);
	if (rc) {
		/* The manifest is on the servers: the clean-up finds it committed. */
		hec_err("job %ld: checkpoint %lld: catalog update to committed failed: %s", op->job,
			(long long)op->epoch, rc == -EIO ? db_errmsg(ctl->db) : strerror(-rc));
		op_abort(op, "catalog update failed");
		goto out;
	}
	op->phase = CK_DONE;
	hec_info("job %ld: checkpoint %lld committed: %d part%s, %.1f MB in %.2f s, pause at most %.3f ms",
		 op->job, (long long)op->epoch, op->n, op->n == 1 ? "" : "s", bytes / 1048576.0,
		 ms / 1000.0, pause / 1000.0);
	op_detach(op);
	if (j && j->restore_epoch && j->started && j->phase == PH_RUNNING) {
		/* the restored job has run on past its restart */
		j->restore_epoch = 0;
		job_save(ctl, j);
	}
	if (j)
		retention(ctl, j);
out:
	json_decref(nodes);
	json_decref(parts);
	op_put(op);
}

int ckpt_commit_cmd(struct ckpt_commit_cmd *c, const char *dir, long job, long long epoch,
		    const json_t *meta, const json_t *entries)
{
	size_t i, n = 0;
	FILE *f;
	int rc;

	rc = write_json(dir, "meta.json", meta, c->meta, sizeof(c->meta));
	if (rc)
		return rc;
	if (hec_fmt(c->entries, sizeof(c->entries), "%s/entries.jsonl", dir))
		return -ENAMETOOLONG;
	f = fopen(c->entries, "we");
	if (!f)
		return -errno;
	for (i = 0; i < json_array_size(entries); i++)
		if (json_dumpf(json_array_get(entries, i), f, JSON_COMPACT) || fputc('\n', f) == EOF)
			break;
	rc = i < json_array_size(entries) || ferror(f) ? -EIO : 0;
	if (fclose(f) && !rc)
		rc = -errno;
	if (rc)
		return rc;
	snprintf(c->job, sizeof(c->job), "%ld", job);
	snprintf(c->epoch, sizeof(c->epoch), "%lld", epoch);
	c->argv[n++] = "commit";
	c->argv[n++] = "--meta";
	c->argv[n++] = c->meta;
	c->argv[n++] = "--entries";
	c->argv[n++] = c->entries;
	c->argv[n++] = c->job;
	c->argv[n++] = c->epoch;
	c->argv[n] = NULL;
	return 0;
}

static void commit(struct ckpt_op *op)
{
	struct ctl *ctl = op->ctl;
	struct ctl_job *j = job_find(ctl, op->job);
	struct ckpt_commit_cmd cmd;
	char base[PATH_MAX];
	json_t *m = NULL, *entries = NULL;
	int rc = -ENOMEM;

	op->phase = CK_COMMIT;
	if (!j) {
		op_abort(op, "job %ld is not known any more", op->job);
		return;
	}
	if (hec_fmt(base, sizeof(base), "%s/ckpt", ctl->conf.state_dir) ||
	    (mkdir(base, 0700) && errno != EEXIST) ||
	    hec_fmt(op->dir, sizeof(op->dir), "%s/%ld.%lld.XXXXXX", base, op->job,
		    (long long)op->epoch) || !mkdtemp(op->dir)) {
		op->dir[0] = 0;
		op_abort(op, "%s: cannot make the commit's files: %s", base, strerror(errno));
		return;
	}
	if ((m = meta_json(op, j)) && (entries = json_array())) {
		rc = 0;
		for (int i = 0; !rc && i < op->n; i++)
			rc = json_array_append(entries, op->parts[i].entry) ? -EINVAL : 0;
		if (!rc)
			rc = ckpt_commit_cmd(&cmd, op->dir, op->job, (long long)op->epoch, m, entries);
	}
	json_decref(m);
	json_decref(entries);
	if (rc) {
		op_abort(op, "%s: cannot write the commit's files: %s", op->dir, strerror(-rc));
		return;
	}
	op->refs++;
	rc = ckpt_store_run(ctl, cmd.argv, CKPT_COMMIT_LIMIT_MS, commit_done, op);
	if (rc) {
		op->refs--;
		op_abort(op, "hec-store commit not started: %s",
			 rc == -ENOENT ? "no storage server or no hec-store" : strerror(-rc));
		return;
	}
	hec_debug("job %ld: checkpoint %lld: every part stored; committing", op->job,
		  (long long)op->epoch);
}

/* ---- the phases' fan-outs ---- */

static int prepare_send(void *arg, const char *node, int64_t id)
{
	struct ckpt_op *op = arg;
	struct ctl *ctl = op->ctl;
	struct ckpt_part *p = op_part(op, node);
	struct node *n = p ? part_node(op, p) : NULL;
	char servers[8192];
	int replicas, rc;

	if (!p || !n || !n->peer)
		return -ENOTCONN;
	rc = ckpt_store_args(ctl, servers, sizeof(servers), &replicas);
	if (rc)
		return rc;
	return node_send(n, HEC_MSG_CKPT_PREPARE,
			 json_pack("{s:I,s:I,s:I,s:s,s:s,s:i,s:I,s:s}", "job", (json_int_t)op->job,
				   "epoch", (json_int_t)id, "t", (json_int_t)op->t_ns, "part", p->part,
				   "servers", servers, "replicas", replicas, "timeout_ms",
				   (json_int_t)ctl->conf.ckpt_timeout, "kind",
				   op->app ? "app" : "vm"));
}

/* CKPT_STORED needs no request of its own: PREPARE asked for it. */
static int stream_send(void *arg, const char *node, int64_t id)
{
	(void)arg;
	(void)node;
	(void)id;
	return 0;
}

static int judge(struct ckpt_op *op, const char *node, const json_t *body, char *why, size_t len)
{
	const char *error = json_string_value(json_object_get(body, "error"));

	if (json_integer_value(json_object_get(body, "job")) != op->job)
		return -ENOENT; /* another job's epoch: as unknown as any */
	if (error) {
		snprintf(why, len, "%s", error);
		return FANOUT_FAILED;
	}
	(void)node;
	return FANOUT_ANSWERED;
}

static int captured_answer(void *arg, const char *node, const json_t *body, char *why, size_t len)
{
	return judge(arg, node, body, why, len);
}

static int stored_answer(void *arg, const char *node, const json_t *body, char *why, size_t len)
{
	struct ckpt_op *op = arg;
	struct ckpt_part *p = op_part(op, node);
	const char *part = json_string_value(json_object_get(body, "part"));
	int rc = judge(op, node, body, why, len);

	if (rc != FANOUT_ANSWERED)
		return rc;
	if (!p || !part || strcmp(part, p->part)) {
		snprintf(why, len, "stored part %s where %s was asked", part ? part : "?",
			 p ? p->part : "?");
		return FANOUT_FAILED;
	}
	if (!json_is_object(json_object_get(body, "entry"))) {
		snprintf(why, len, "CKPT_STORED without the stream's manifest entry");
		return FANOUT_FAILED;
	}
	return FANOUT_ANSWERED;
}

/* The first node that failed, as "node1: why". */
static void first_failure(const struct fanout_done *d, char *buf, size_t len)
{
	if (d->cancelled) {
		snprintf(buf, len, "%s", d->cancelled);
		return;
	}
	for (int i = 0; i < d->nnodes; i++)
		if (d->nodes[i].state != FANOUT_ANSWERED) {
			snprintf(buf, len, "%s: %s", d->nodes[i].node,
				 d->nodes[i].why ? d->nodes[i].why : "failed");
			return;
		}
	snprintf(buf, len, "failed");
}

static void captured_done(void *arg, const struct fanout_done *d)
{
	struct ckpt_op *op = arg;
	int64_t pause = 0;
	char why[600];

	if (op->phase == CK_DONE)
		goto out;
	if (op->app && !d->cancelled && d->nnodes == 1 && d->nodes[0].state == FANOUT_TIMEOUT) {
		op_abort(op, "job %ld did not take checkpoint %lld within %ld s (does it call hecckpt_need?)",
			 op->job, (long long)op->epoch, op->capture_ms / 1000);
		goto out;
	}
	if (d->answered < d->nnodes) {
		first_failure(d, why, sizeof(why));
		op_abort(op, "capture: %s", why);
		goto out;
	}
	for (int i = 0; i < d->nnodes; i++) {
		struct ckpt_part *p = op_part(op, d->nodes[i].node);

		const json_t *b = d->nodes[i].body;

		if (op->app && json_is_integer(json_object_get(b, "ranks")))
			op->ranks = (int)json_integer_value(json_object_get(b, "ranks"));
		if (p && json_is_integer(json_object_get(b, "pause_us")) && !p->pause_us)
			p->pause_us = json_integer_value(json_object_get(b, "pause_us"));
		if (p && json_is_integer(json_object_get(b, "slot_pause_us")) && !p->slot_pause_us)
			p->slot_pause_us = json_integer_value(json_object_get(b, "slot_pause_us"));
		if (p)
			p->switched_out = json_is_true(json_object_get(b, "switched_out"));
		if (p && p->pause_us > pause)
			pause = p->pause_us;
	}
	op->captured = 1;
	/* the cut is complete: the job's network may forward again */
	send_all(op, HEC_MSG_CKPT_REOPEN);
	unpin(op);
	if (op->app) {
		struct ctl_job *j = job_find(op->ctl, op->job);

		hec_info("job %ld: checkpoint %lld: the program wrote it %.2f s after the request; streaming",
			 op->job, (long long)op->epoch, (hec_now_mono_ns() - op->started_mono) / 1e9);
		if (j) /* a preemption waiting for it goes on: the store runs on meanwhile */
			ctl_gang_ckpt_over(op->ctl, j, op->epoch, NULL);
	} else
		hec_info("job %ld: checkpoint %lld: every guest captured %.2f s after the request, pause at most %.3f ms; streaming",
			 op->job, (long long)op->epoch, (hec_now_mono_ns() - op->started_mono) / 1e9,
			 pause / 1000.0);
	if (op->phase == CK_CAPTURE)
		op->phase = CK_STREAM;
	if (op->stored)
		commit(op);
out:
	op_put(op);
}

static void stored_done(void *arg, const struct fanout_done *d)
{
	struct ckpt_op *op = arg;
	char why[600];

	if (op->phase == CK_DONE)
		goto out;
	if (d->answered < d->nnodes) {
		first_failure(d, why, sizeof(why));
		op_abort(op, "stream: %s", why);
		goto out;
	}
	for (int i = 0; i < d->nnodes; i++) {
		const json_t *b = d->nodes[i].body;
		struct ckpt_part *p = op_part(op, d->nodes[i].node);

		if (!p)
			continue;
		json_decref(p->entry);
		p->entry = json_deep_copy(json_object_get(b, "entry"));
		if (json_is_integer(json_object_get(b, "bytes")))
			p->bytes = json_integer_value(json_object_get(b, "bytes"));
		else
			p->bytes = json_integer_value(json_object_get(p->entry, "size"));
		/* a guest that stayed stopped while it was written: its whole pause */
		if (json_is_integer(json_object_get(b, "pause_us")))
			p->pause_us = json_integer_value(json_object_get(b, "pause_us"));
		if (json_is_integer(json_object_get(b, "slot_pause_us")))
			p->slot_pause_us = json_integer_value(json_object_get(b, "slot_pause_us"));
		p->stream_ms = json_integer_value(json_object_get(b, "ms"));
		snprintf(p->image, sizeof(p->image), "%s",
			 json_string_value(json_object_get(b, "image")) ?
			 json_string_value(json_object_get(b, "image")) : "");
		if (!p->entry) {
			op_abort(op, "out of memory");
			goto out;
		}
	}
	op->stored = 1;
	if (op->captured)
		commit(op);
out:
	op_put(op);
}

/* An agent's answer to the fan-out waiting for it (by epoch and node). */
static void answer(struct ctl *ctl, struct node *n, const json_t *body, unsigned type)
{
	int64_t epoch = json_integer_value(json_object_get(body, "epoch"));
	long job = (long)json_integer_value(json_object_get(body, "job"));
	int rc = fanout_answer(ctl->fanout, type, epoch, n->name, body);

	if (rc)
		hec_debug("%s: %s for job %ld checkpoint %lld: %s; ignored", n->name,
			  hec_msg_type_name(type), job, (long long)epoch,
			  rc == -ENOENT ? "not waiting for it (late or unknown)" :
			  rc == -ESRCH ? "the job does not run there" : "already counted");
}

void ckpt_on_captured(struct ctl *ctl, struct node *n, const json_t *body)
{
	answer(ctl, n, body, HEC_MSG_CKPT_CAPTURED);
}

void ckpt_on_stored(struct ctl *ctl, struct node *n, const json_t *body)
{
	answer(ctl, n, body, HEC_MSG_CKPT_STORED);
}

void ckpt_on_progress(struct ctl *ctl, struct node *n, const json_t *body)
{
	struct ckpt_op *op = op_of(ctl, (long)json_integer_value(json_object_get(body, "job")),
				   json_integer_value(json_object_get(body, "epoch")));
	struct ckpt_part *p = op ? op_part(op, n->name) : NULL;

	if (p && op->phase != CK_COMMIT)
		p->bytes = json_integer_value(json_object_get(body, "bytes"));
}

/* ---- starting one ---- */

/* Why @j cannot be checkpointed now, or "" if it can (@busy_ok: a
 * checkpoint under way is no reason). */
static void not_ready(struct ctl *ctl, const struct ctl_job *j, int busy_ok, char *why, size_t len)
{
	why[0] = 0;
	if (ctl->shutting_down)
		snprintf(why, len, "the controller is shutting down");
	else if (!ctl->stores)
		snprintf(why, len, "no storage server has registered: checkpoints need storage (hec cluster up --storage M, or hecstored)");
	else if (job_state_final(j->state))
		snprintf(why, len, "job %ld has ended (%s)", j->id, job_state_name(j->state));
	else if (j->state == JOB_PENDING)
		snprintf(why, len, "job %ld is not running (PENDING: %s)", j->id, j->reason);
	else if (j->phase == PH_LAUNCHING)
		snprintf(why, len, "job %ld is not running yet (launching)", j->id);
	else if (j->phase == PH_ENDING)
		snprintf(why, len, "job %ld is ending (%s)", j->id,
			 j->final_state == JOB_PENDING ? "to restart" : job_state_name(j->final_state));
	else if (j->phase != PH_RUNNING || !j->started)
		snprintf(why, len, "job %ld is not running", j->id);
	else if (j->state == JOB_SUSPENDED)
		/* its guests (its processes) are frozen: nothing would capture them */
		snprintf(why, len, "job %ld is SUSPENDED (%s): checkpoints are taken while it runs",
			 j->id, j->reason);
	else if (!j->vm && j->nalloc < 1)
		snprintf(why, len, "job %ld has no nodes", j->id);
	else if (j->ckpt && !busy_ok)
		snprintf(why, len, "checkpoint %lld of job %ld is under way (%s phase)",
			 (long long)j->ckpt->epoch, j->id, phase_names[j->ckpt->phase]);
}

/* Where T goes in a time-sharing job's slot cycle (`hec ckpt --when`). */
enum ckpt_when { WHEN_OFF_SLOT, WHEN_IN_SLOT, WHEN_NOW };

static int when_parse(const char *s, enum ckpt_when *w)
{
	if (!s || !strcmp(s, "off-slot"))
		*w = WHEN_OFF_SLOT;
	else if (!strcmp(s, "in-slot"))
		*w = WHEN_IN_SLOT;
	else if (!strcmp(s, "now"))
		*w = WHEN_NOW;
	else
		return -EINVAL;
	return 0;
}

/*
 * T for a checkpoint of @j, not before @earliest.  A job that time-shares
 * (the epoch in force has more than one slot) is captured off-slot by
 * default: T just after the boundary that switches it out, so that every
 * guest is stopped by the gang when captured and its own slots lose
 * nothing (doc/design.md, "Off-slot checkpoints"); with WHEN_IN_SLOT just
 * after the one that switches it in (to measure the difference).  The
 * margin lets each node's switch finish first.  Whatever T, the cut is
 * consistent: the network hold from T makes it so.
 */
static int64_t ckpt_place(const struct ctl *ctl, const struct ctl_job *j, int64_t earliest,
			  enum ckpt_when when)
{
	const struct epoch *e = &ctl->epoch;
	int64_t margin, k;
	int row;

	if (when == WHEN_NOW || ctl->timeslice_none || !e->id || e->nslots < 2 || e->slot_ns <= 0 ||
	    j->slot < 0 || j->slot >= e->nslots)
		return earliest;
	margin = e->slot_ns / 5;
	margin = margin > 5000000 ? 5000000 : margin;
	row = when == WHEN_IN_SLOT ? j->slot : (j->slot + 1) % e->nslots;
	k = earliest <= e->start ? 0 : (earliest - e->start + e->slot_ns - 1) / e->slot_ns;
	while (k % e->nslots != row)
		k++;
	return e->start + k * e->slot_ns + margin;
}

/*
 * Start a checkpoint of @j (@who: "requested by uid N", "every N s").
 * \return 0 with the epoch in *@epoch; -EIO: it started and was aborted at
 * once (@why, also in the job's last error); else -errno: nothing of it
 * exists (-EBUSY: the job cannot be checkpointed now; @why says why).
 */
static int ckpt_start(struct ctl *ctl, struct ctl_job *j, const char *who, enum ckpt_when when,
		      int64_t *epoch, char *why, size_t len)
{
	struct fanout_req cap = { .kind = HEC_MSG_CKPT_CAPTURED, .what = "CKPT_PREPARE",
				  .send = prepare_send, .answer = captured_answer,
				  .done = captured_done };
	struct fanout_req str = { .kind = HEC_MSG_CKPT_STORED, .what = "CKPT_STORED",
				  .send = stream_send, .answer = stored_answer,
				  .done = stored_done };
	const char *names[j->nalloc > 0 ? j->nalloc : 1];
	struct ckpt_op *op;
	/* T far enough for EPOCH-like delivery to every node, and for each
	 * node's writer to start and reach the servers before it (hec-store's
	 * start alone is ~0.2 s here: libfabric's PSM providers calibrate a
	 * clock when loaded); a writer late to T delays the whole stream */
	int64_t lead = ctl_lead_ns(ctl);
	int rc;

	if (lead < ctl->conf.ckpt_lead * 1000000LL)
		lead = ctl->conf.ckpt_lead * 1000000LL;
	not_ready(ctl, j, 0, why, len);
	if (why[0])
		return -EBUSY;
	op = calloc(1, sizeof(*op));
	if (op) {
		op->parts = calloc((size_t)j->nalloc, sizeof(*op->parts));
		op->by_name = calloc((size_t)j->nalloc + 1, sizeof(*op->by_name));
	}
	if (op && !j->vm) {
		/* a proc job's program writes one file: part "app", on its first node,
		 * whenever it calls hecckpt_need next (T is now) */
		op->app = 1;
		op->capture_ms = ctl->conf.app_ckpt_timeout;
		lead = 0;
	}
	if (!op || !op->parts || !op->by_name) {
		if (op) {
			free(op->parts);
			free(op->by_name);
			free(op);
		}
		snprintf(why, len, "controller out of memory");
		return -ENOMEM;
	}
	op->ctl = ctl;
	op->job = j->id;
	op->n = op->app ? 1 : j->nalloc;
	/* an earlier controller's epochs are never given again */
	op->epoch = ctl_fresh_id(&ctl->ckpt_seq);
	op->started_ns = hec_now_real_ns();
	op->started_mono = hec_now_mono_ns();
	/* (a program's checkpoint is taken at its next need: T is now) */
	op->t_ns = op->app ? op->started_ns : ckpt_place(ctl, j, op->started_ns + lead, when);
	for (int i = 0; i < op->n; i++) {
		snprintf(op->parts[i].node, sizeof(op->parts[i].node), "%s", j->alloc[i].name);
		snprintf(op->parts[i].part, sizeof(op->parts[i].part), op->app ? "app" : "p%d", i);
		names[i] = j->alloc[i].name;
		op->by_name[i] = i;
	}
	qsort_r(op->by_name, (size_t)op->n, sizeof(*op->by_name), part_cmp, op->parts);
	/* the row first: a controller that dies from here on finds it */
	rc = db_ckpt_pending(ctl->db, j->id, op->epoch, op->t_ns, ctl_now());
	if (rc) {
		snprintf(why, len, "cannot record the checkpoint in the catalog: %s",
			 db_errmsg(ctl->db));
		hec_err("job %ld: %s", j->id, why);
		op_free(op);
		return -EAGAIN;
	}
	hec_fault("ctl.ckpt.after_db"); /* pending row, no CKPT_PREPARE out */
	*epoch = op->epoch;
	op->refs = 4; /* j->ckpt, the two fan-outs, and this call */
	j->ckpt = op;
	j->ckpt_next = 0;
	ctl_gang_pin(ctl, j, 1); /* not switched out between T and its capture */
	op->pinned = 1;
	if (op->app)
		hec_info("job %ld: checkpoint %lld %s: the program is asked on %s", j->id,
			 (long long)op->epoch, who, op->parts[0].node);
	else
		hec_info("job %ld: checkpoint %lld %s: cut in %.1f ms%s on %d node%s", j->id,
			 (long long)op->epoch, who, (op->t_ns - op->started_ns) / 1e6,
			 op->t_ns == op->started_ns + lead ? "" :
			 when == WHEN_IN_SLOT ? " (in its slot)" : " (off its slot)",
			 op->n, op->n == 1 ? "" : "s");
	str.id = cap.id = op->epoch;
	str.nodes = cap.nodes = names;
	str.nnodes = cap.nnodes = op->n;
	str.arg = cap.arg = op;
	str.timeout_ms = ctl->conf.ckpt_timeout;
	cap.timeout_ms = op->app ? op->capture_ms :
			 (op->t_ns - op->started_ns) / 1000000 + CKPT_CAPTURE_MS;
	/* the stream's first: a CKPT_STORED may overtake another node's CAPTURED */
	rc = fanout_start(ctl->fanout, &str);
	if (rc) {
		op->refs -= 2;
		op_abort(op, "fan-out not started: %s", strerror(-rc));
	} else if ((rc = fanout_start(ctl->fanout, &cap))) {
		op->refs--;
		op_abort(op, "fan-out not started: %s", strerror(-rc));
	}
	rc = 0;
	if (op->phase == CK_DONE) { /* nodes unreachable: over already */
		snprintf(why, len, "%s", j->ckpt_err);
		rc = -EIO;
	}
	op_put(op);
	return rc;
}

void cli_ckpt(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	char who[64], why[600];
	int64_t epoch = 0;
	enum ckpt_when when;

	if (when_parse(json_string_value(json_object_get(body, "when")), &when)) {
		respond_error(p->conn, "when: '%s' is not off-slot, in-slot or now",
			      json_string_value(json_object_get(body, "when")));
		return;
	}
	snprintf(who, sizeof(who), "requested by uid %u", (unsigned)p->uid);
	if (ckpt_start(ctl, j, who, when, &epoch, why, sizeof(why))) {
		respond_error(p->conn, "%s", why);
		return;
	}
	respond(p->conn, json_pack("{s:b,s:I}", "ok", 1, "epoch", (json_int_t)epoch));
}

int ckpt_app_possible(struct ctl *ctl, const struct ctl_job *j)
{
	char why[600];

	/* Only a job that says it checkpoints (--ckpt-interval, --restart auto)
	 * holds a preemptor back: the controller cannot see whether a program
	 * links libhecckpt, and one that does not would cost every preemption
	 * the whole grace. */
	if (j->vm || (j->ckpt_interval <= 0 && !j->restart_auto))
		return 0;
	not_ready(ctl, j, 1, why, sizeof(why));
	return !why[0];
}

int ckpt_preempt_start(struct ctl *ctl, struct ctl_job *j, const struct ctl_job *by,
		       int64_t *epoch, char *why, size_t len)
{
	char who[96];
	int rc;

	if (j->ckpt && j->ckpt->app && j->ckpt->captured) {
		*epoch = j->ckpt->epoch;
		snprintf(why, len, "checkpoint %lld is being stored", (long long)j->ckpt->epoch);
		return -EALREADY;
	}
	snprintf(who, sizeof(who), "before job %ld (priority %d) preempts it", by->id, by->priority);
	rc = ckpt_start(ctl, j, who, WHEN_NOW, epoch, why, len);
	/* the guard keeps it running until captured, and the grace bounds it */
	if (!rc)
		unpin(j->ckpt);
	return rc;
}

void ckpt_preempt_give_up(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const char *why)
{
	(void)ctl;
	if (j->ckpt && j->ckpt->epoch == epoch && !j->ckpt->captured)
		op_abort(j->ckpt, "%s", why);
}

void ckpt_job_ended(struct ctl *ctl, struct ctl_job *j, const char *why)
{
	struct ckpt_op *op = j->ckpt;
	enum job_state s = job_state_final(j->state) ? j->state : j->final_state;
	int plain = !strcmp(why, "None") || !*why;
	char ended[700];

	(void)ctl;
	j->ckpt_next = 0;
	if (!op)
		return;
	if (job_state_final(j->state) || (j->phase == PH_ENDING && s != JOB_PENDING))
		snprintf(ended, sizeof(ended), "job %ld ended (%s%s%s)", j->id, job_state_name(s),
			 plain ? "" : ": ", plain ? "" : why);
	else
		snprintf(ended, sizeof(ended), "%s", why);
	if (op->phase == CK_COMMIT) {
		/* every stream is stored: the checkpoint outlives the job */
		hec_info("job %ld: %s; checkpoint %lld is committing and completes", j->id, ended,
			 (long long)op->epoch);
		return;
	}
	op_abort(op, "%s", ended);
}

void ckpt_on_ask(struct ctl *ctl, struct node *n, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	struct ctl_job *j = job_find(ctl, id);
	char why[600] = "";
	int64_t epoch;

	if (!j || j->vm || !j->nalloc || j->alloc[0].node != n)
		snprintf(why, sizeof(why), "job %ld does not run its batch step on %s as a proc job",
			 id, n->name);
	else if (j->ckpt && j->ckpt->app && !j->ckpt->captured)
		return; /* its CKPT_PREPARE is on its way: that answers the program */
	else if (j->ckpt) {
		/* the previous one is still being stored: this one next (ckpt_tick) */
		j->ckpt_asked = 1;
		return;
	}
	else if (ckpt_start(ctl, j, "asked by the program", WHEN_NOW, &epoch, why, sizeof(why)) == 0)
		return;
	hec_info("job %ld: the program's checkpoint refused: %s", id, why);
	node_send(n, HEC_MSG_CKPT_REFUSED, json_pack("{s:I,s:s}", "job", (json_int_t)id, "error", why));
}

void ckpt_on_loaded(struct ctl *ctl, struct node *n, const json_t *body)
{
	struct ctl_job *j = job_find(ctl, (long)json_integer_value(json_object_get(body, "job")));
	int64_t epoch = json_integer_value(json_object_get(body, "epoch"));
	const char *error = json_string_value(json_object_get(body, "error"));

	if (!j || j->vm || !j->nalloc || j->alloc[0].node != n || j->restore_epoch != epoch) {
		hec_debug("%s: CKPT_LOADED of checkpoint %lld that no restart there loads; ignored",
			  n->name, (long long)epoch);
		return;
	}
	if (!error) {
		j->app_loaded = 1;
		hec_info("job %ld: the program restored checkpoint %lld", j->id, (long long)epoch);
		return;
	}
	restart_app_load_failed(ctl, j, n->name, error);
}

/* ---- listing and deleting ---- */

void cli_ckpts(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	json_t *rows = NULL, *list = json_array(), *row, *resp;
	size_t i;
	int rc;

	(void)body;
	rc = db_ckpts_list(ctl->db, j->id, "committed", &rows);
	if (rc) {
		json_decref(list);
		respond_error(p->conn, "cannot read the catalog: %s",
			      rc == -EIO ? db_errmsg(ctl->db) : strerror(-rc));
		return;
	}
	json_array_foreach(rows, i, row)
		json_array_append_new(list, json_pack("{s:O,s:I,s:O,s:O,s:O,s:O,s:O}",
			"epoch", json_object_get(row, "epoch"),
			"time", (json_int_t)(json_integer_value(json_object_get(row, "t_ns")) /
					     1000000000LL),
			"bytes", json_object_get(row, "bytes"),
			"duration_ms", json_object_get(row, "duration_ms"),
			"nodes", json_object_get(row, "nodes"),
			"parts", json_object_get(row, "parts"),
			"restored", json_object_get(row, "restored")));
	json_decref(rows);
	resp = json_pack("{s:b,s:o}", "ok", 1, "ckpts", list);
	if (resp && j->ckpt) {
		const struct ckpt_op *op = j->ckpt;
		int64_t bytes = 0;

		for (int k = 0; k < op->n; k++)
			bytes += op->parts[k].bytes;
		json_object_set_new(resp, "current",
				    json_pack("{s:I,s:s,s:I,s:I}", "epoch", (json_int_t)op->epoch,
					      "phase", op->captured || op->phase != CK_CAPTURE ?
					      phase_names[op->phase] :
					      op->app ? "program" : /* its next hecckpt_need */
					      hec_now_real_ns() < op->t_ns ? "prepare" : "capture",
					      "bytes", (json_int_t)bytes,
					      "started", (json_int_t)(op->started_ns / 1000000)));
	}
	if (resp && j->ckpt_err[0])
		json_object_set_new(resp, "last_error",
				    json_pack("{s:I,s:I,s:s}", "epoch", (json_int_t)j->ckpt_err_epoch,
					      "time", (json_int_t)j->ckpt_err_time, "error",
					      j->ckpt_err));
	respond(p->conn, resp);
}

/* One hec-store delete: @d (may be NULL) is answered when it ends. */
static int store_delete(struct ctl *ctl, long job, int64_t epoch, struct delete_req *d);

static void delete_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct delete_req *d = arg;
	struct ckpt_state *st = ctl->ckpts;
	int rc = 0;

	(void)out;
	if (status == 0) {
		rc = db_ckpt_delete(ctl->db, d->job, d->epoch);
		hec_info("job %ld: checkpoint %lld deleted", d->job, (long long)d->epoch);
		if (rc && rc != -ENOENT)
			hec_err("job %ld: checkpoint %lld: catalog delete failed: %s", d->job,
				(long long)d->epoch, db_errmsg(ctl->db));
	} else {
		hec_warn("job %ld: checkpoint %lld not deleted: %s", d->job, (long long)d->epoch, err);
	}
	if (d->p) {
		if (status == 0 && (!rc || rc == -ENOENT))
			respond(d->p->conn, json_pack("{s:b}", "ok", 1));
		else if (status == 0)
			respond_error(d->p->conn, "checkpoint %lld is deleted from storage but not from the catalog: %s",
				      (long long)d->epoch, db_errmsg(ctl->db));
		else
			respond_error(d->p->conn, "checkpoint %lld of job %ld not deleted: %s",
				      (long long)d->epoch, d->job, err);
	}
	for (struct delete_req **pp = &st->deletes; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	free(d);
}

static int store_delete(struct ctl *ctl, long job, int64_t epoch, struct delete_req *d)
{
	struct ckpt_state *st = state_get(ctl);
	char jobs[24], epochs[24];
	const char *argv[] = { "delete", jobs, epochs, NULL };
	int rc;

	if (!st)
		return -ENOMEM;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
	}
	d->job = job;
	d->epoch = epoch;
	snprintf(jobs, sizeof(jobs), "%ld", job);
	snprintf(epochs, sizeof(epochs), "%lld", (long long)epoch);
	rc = ckpt_store_run(ctl, argv, CKPT_STORE_LIMIT_MS, delete_done, d);
	if (rc) {
		free(d);
		return rc;
	}
	d->next = st->deletes;
	st->deletes = d;
	return 0;
}

/* Committed checkpoints beyond --ckpt-keep go, oldest first. */
static void retention(struct ctl *ctl, struct ctl_job *j)
{
	json_t *rows = NULL, *row;
	int64_t *epochs, *del;
	int n = 0, k, protect;
	size_t i;

	if (db_ckpts_list(ctl->db, j->id, "committed", &rows))
		return;
	epochs = calloc(json_array_size(rows) + 1, sizeof(*epochs));
	del = calloc(json_array_size(rows) + 1, sizeof(*del));
	if (epochs && del) {
		json_array_foreach(rows, i, row)
			epochs[n++] = json_integer_value(json_object_get(row, "epoch"));
		/* the checkpoint a restart loads stays until that restart has run */
		protect = j->restore_epoch && (!j->started || j->phase != PH_RUNNING);
		k = ckpt_retention(epochs, n, j->ckpt_keep, protect ? j->restore_epoch : 0, del);
		for (int d = 0; d < k; d++) {
			int rc = store_delete(ctl, j->id, del[d], NULL);

			if (rc)
				hec_warn("job %ld: checkpoint %lld beyond --ckpt-keep %d not deleted: %s",
					 j->id, (long long)del[d], j->ckpt_keep, strerror(-rc));
			else
				hec_info("job %ld: deleting checkpoint %lld (--ckpt-keep %d)", j->id,
					 (long long)del[d], j->ckpt_keep);
		}
	}
	free(epochs);
	free(del);
	json_decref(rows);
}

void cli_ckpt_delete(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	int64_t epoch = json_integer_value(json_object_get(body, "epoch"));
	struct delete_req *d;
	json_t *rows = NULL, *row;
	int found = 0, rc;
	size_t i;

	if (j->ckpt && j->ckpt->epoch == epoch) {
		respond_error(p->conn, "checkpoint %lld of job %ld is under way (%s phase)",
			      (long long)epoch, j->id, phase_names[j->ckpt->phase]);
		return;
	}
	rc = db_ckpts_list(ctl->db, j->id, "committed", &rows);
	if (rc) {
		respond_error(p->conn, "cannot read the catalog: %s", db_errmsg(ctl->db));
		return;
	}
	json_array_foreach(rows, i, row)
		found |= json_integer_value(json_object_get(row, "epoch")) == epoch;
	json_decref(rows);
	if (!found) {
		respond_error(p->conn, "job %ld has no checkpoint %lld", j->id, (long long)epoch);
		return;
	}
	if (j->restore_epoch == epoch && (!j->started || j->phase != PH_RUNNING) &&
	    !job_state_final(j->state)) {
		respond_error(p->conn, "job %ld is restarting from checkpoint %lld", j->id,
			      (long long)epoch);
		return;
	}
	if (!ctl->stores) {
		respond_error(p->conn, "no storage server has registered: the checkpoint cannot be deleted now");
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		respond_error(p->conn, "controller out of memory");
		return;
	}
	d->p = p;
	hec_info("job %ld: checkpoint %lld: delete requested by uid %u", j->id, (long long)epoch,
		 (unsigned)p->uid);
	rc = store_delete(ctl, j->id, epoch, d);
	if (rc)
		respond_error(p->conn, "hec-store delete not started: %s", strerror(-rc));
}

int ckpt_newest(struct ctl *ctl, long job, int64_t before, int64_t *epoch)
{
	return db_ckpt_newest(ctl->db, job, before, epoch);
}

/* ---- pending rows: abort on the servers, then the row goes ---- */

static void orphan_add(struct ctl *ctl, long job, int64_t epoch, int from_start)
{
	struct ckpt_state *st = state_get(ctl);
	struct ckpt_orphan *o;

	if (!st)
		goto nomem;
	o = realloc(st->orphans, (st->norphans + 1) * sizeof(*o));
	if (!o)
		goto nomem;
	st->orphans = o;
	o[st->norphans++] = (struct ckpt_orphan){ .job = job, .epoch = epoch,
						  .from_start = from_start };
	return;
nomem:
	/* the row stays pending: the next controller start cleans it up */
	hec_err("job %ld: checkpoint %lld: out of memory; its clean-up waits for the next start",
		job, (long long)epoch);
}

static void orphan_drop(struct ckpt_state *st, const struct ckpt_orphan *o)
{
	size_t i = (size_t)(o - st->orphans);

	memmove(&st->orphans[i], &st->orphans[i + 1], (st->norphans - i - 1) * sizeof(*o));
	st->norphans--;
}

static struct ckpt_orphan *orphan_find(struct ckpt_state *st, long job, int64_t epoch)
{
	for (size_t i = 0; i < st->norphans; i++)
		if (st->orphans[i].job == job && st->orphans[i].epoch == epoch)
			return &st->orphans[i];
	return NULL;
}

struct orphan_call {
	long job;
	int64_t epoch;
};

/* Figures of a committed manifest (hec-store --json latest) for its row. */
static void commit_from_manifest(struct ctl *ctl, long job, int64_t epoch, const char *out)
{
	json_t *m = json_loads(out ? out : "", JSON_DISABLE_EOF_CHECK, NULL);
	json_t *meta = json_object_get(m, "meta"), *parts = json_array(), *none = json_array(), *e;
	const json_t *nodes = json_object_get(meta, "nodes");
	int64_t bytes = 0;
	size_t i;

	if (json_integer_value(json_object_get(m, "epoch")) != epoch)
		meta = NULL; /* a newer one: this one's figures are unknown */
	json_array_foreach(json_object_get(m, "streams"), i, e) {
		const char *part = json_string_value(json_object_get(e, "part"));
		const json_t *mp = NULL, *x;
		size_t k;

		if (!meta)
			break;
		json_array_foreach(json_object_get(meta, "parts"), k, x)
			if (part && !strcmp(part, json_string_value(json_object_get(x, "part")) ?
					    json_string_value(json_object_get(x, "part")) : ""))
				mp = x;
		bytes += json_integer_value(json_object_get(e, "size"));
		json_array_append_new(parts, json_pack("{s:s?,s:O?,s:O,s:O?,s:O?,s:O?}",
			"part", part, "node", json_object_get(mp, "node"),
			"bytes", json_object_get(e, "size"), "pause_us", json_object_get(mp, "pause_us"),
			"image", json_object_get(mp, "image"), "hash", json_object_get(e, "hash")));
	}
	if (db_ckpt_commit(ctl->db, job, epoch, bytes, 0,
			   meta && json_is_array(nodes) ? nodes : none, parts))
		hec_err("job %ld: checkpoint %lld: catalog update to committed failed: %s", job,
			(long long)epoch, db_errmsg(ctl->db));
	else
		hec_info("job %ld: checkpoint %lld was committed on the storage servers; listed as committed",
			 job, (long long)epoch);
	json_decref(parts);
	json_decref(none);
	json_decref(m);
}

static void latest_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct orphan_call *c = arg;
	struct ckpt_state *st = ctl->ckpts;
	struct ckpt_orphan *o = orphan_find(st, c->job, c->epoch);

	(void)err;
	st->orphan_busy = 0;
	commit_from_manifest(ctl, c->job, c->epoch, status == 0 ? out : NULL);
	if (o)
		orphan_drop(st, o);
	free(c);
}

static void abort_done(struct ctl *ctl, void *arg, int status, const char *out, const char *err)
{
	struct orphan_call *c = arg;
	struct ckpt_state *st = ctl->ckpts;
	struct ckpt_orphan *o = orphan_find(st, c->job, c->epoch);
	struct ctl_job *j;
	char jobs[24];
	const char *argv[] = { "latest", jobs, NULL };
	int rc;

	(void)out;
	st->orphan_busy = 0;
	if (!o) {
		free(c);
		return;
	}
	if (status == 0) {
		rc = db_ckpt_delete(ctl->db, c->job, c->epoch);
		if (rc && rc != -ENOENT)
			hec_err("job %ld: checkpoint %lld: catalog delete failed: %s", c->job,
				(long long)c->epoch, db_errmsg(ctl->db));
		else
			hec_debug("job %ld: checkpoint %lld: partial data removed", c->job,
				  (long long)c->epoch);
		/* unless the job failed one since this controller started (an
		 * ended job read back: its last failure is kept in its row) */
		j = o->from_start ? job_get(ctl, c->job) : NULL;
		if (j && (!j->ckpt_err[0] || j->ckpt_err_time < ctl->start_real))
			note_error(ctl, j, c->epoch, "the controller restarted during the checkpoint");
		orphan_drop(st, o);
		free(c);
		return;
	}
	if (status > 0 && err && strstr(err, ": committed")) {
		/* its manifest made it: it is a checkpoint after all */
		snprintf(jobs, sizeof(jobs), "%ld", c->job);
		if (!ckpt_store_run(ctl, argv, CKPT_STORE_LIMIT_MS, latest_done, c)) {
			st->orphan_busy = 1;
			return;
		}
		commit_from_manifest(ctl, c->job, c->epoch, NULL);
		orphan_drop(st, o);
		free(c);
		return;
	}
	if (!o->warned)
		hec_warn("job %ld: checkpoint %lld: hec-store abort failed (%s); trying again every %llds",
			 c->job, (long long)c->epoch, err, (long long)(CKPT_RETRY_NS / 1000000000LL));
	o->warned = 1;
	o->due = hec_now_mono_ns() + CKPT_RETRY_NS;
	free(c);
}

static void orphans_tick(struct ctl *ctl, struct ckpt_state *st)
{
	int64_t now = hec_now_mono_ns();
	char jobs[24], epochs[24];
	const char *argv[] = { "abort", jobs, epochs, NULL };

	if (st->orphan_busy || !ctl->stores)
		return;
	for (size_t i = 0; i < st->norphans; i++) {
		struct ckpt_orphan *o = &st->orphans[i];
		struct orphan_call *c;
		struct ctl_job *j;
		int rc;

		if (o->due > now)
			continue;
		c = calloc(1, sizeof(*c));
		if (!c)
			return;
		c->job = o->job;
		c->epoch = o->epoch;
		j = job_find(ctl, o->job);
		if (o->from_start && j && !job_state_final(j->state)) {
			/* agents may still work on it for the controller that died */
			for (int k = 0; k < j->nalloc; k++)
				if (j->alloc[k].node && j->alloc[k].node->peer)
					node_send(j->alloc[k].node, HEC_MSG_CKPT_ABORT,
						  json_pack("{s:I,s:I}", "job", (json_int_t)o->job,
							    "epoch", (json_int_t)o->epoch));
		}
		snprintf(jobs, sizeof(jobs), "%ld", o->job);
		snprintf(epochs, sizeof(epochs), "%lld", (long long)o->epoch);
		rc = ckpt_store_run(ctl, argv, CKPT_STORE_LIMIT_MS, abort_done, c);
		if (rc) {
			free(c);
			o->due = now + CKPT_RETRY_NS;
			continue;
		}
		st->orphan_busy = 1;
		return;
	}
}

/* ---- the controller's life ---- */

int ckpt_init(struct ctl *ctl)
{
	json_t *rows = NULL, *row;
	size_t i;
	int rc = db_ckpts_list(ctl->db, 0, "pending", &rows);

	if (rc)
		return rc;
	json_array_foreach(rows, i, row) {
		long job = (long)json_integer_value(json_object_get(row, "job"));
		int64_t epoch = json_integer_value(json_object_get(row, "epoch"));

		hec_info("job %ld: checkpoint %lld was under way when the controller stopped; aborting it",
			 job, (long long)epoch);
		orphan_add(ctl, job, epoch, 1);
		if (epoch > ctl->ckpt_seq)
			ctl->ckpt_seq = epoch;
	}
	json_decref(rows);
	return 0;
}

void ckpt_tick(struct ctl *ctl)
{
	struct ckpt_state *st = state_get(ctl);
	int64_t now = hec_now_mono_ns();

	if (!st || ctl->shutting_down)
		return;
	orphans_tick(ctl, st);
	for (struct ctl_job *j = ctl->jobs; j; j = j->next) {
		char who[64], why[sizeof(j->ckpt_err)];
		int64_t epoch;
		int rc;

		if (j->ckpt_asked && !j->ckpt) {
			/* the program asked while the previous one was stored */
			j->ckpt_asked = 0;
			if (j->phase == PH_RUNNING && j->nalloc && j->alloc[0].node &&
			    ckpt_start(ctl, j, "asked by the program", WHEN_NOW, &epoch, why, sizeof(why)) &&
			    j->alloc[0].node->peer)
				node_send(j->alloc[0].node, HEC_MSG_CKPT_REFUSED,
					  json_pack("{s:I,s:s}", "job", (json_int_t)j->id, "error", why));
			continue;
		}
		if (j->ckpt_interval <= 0 || j->phase != PH_RUNNING || !j->started || j->ckpt)
			continue;
		if (!j->ckpt_next) {
			j->ckpt_next = now + j->ckpt_interval * 1000000000LL;
			continue;
		}
		if (now < j->ckpt_next || j->state != JOB_RUNNING)
			continue; /* a suspended job is checkpointed once it runs */
		snprintf(who, sizeof(who), "every %ld s (--ckpt-interval)", j->ckpt_interval);
		rc = ckpt_start(ctl, j, who, WHEN_OFF_SLOT, &epoch, why, sizeof(why));
		if (rc && rc != -EIO) {
			/* refused before it began (no storage, say): no epoch to name */
			if (strcmp(why, j->ckpt_err))
				hec_warn("job %ld: automatic checkpoint not taken: %s", j->id, why);
			note_error(ctl, j, 0, why);
			j->ckpt_next = now + j->ckpt_interval * 1000000000LL;
		}
	}
}

void ckpt_forget_peer(struct ctl *ctl, struct peer *p)
{
	ckpt_h5_forget_peer(p);
	for (struct delete_req *d = ctl->ckpts ? ctl->ckpts->deletes : NULL; d; d = d->next)
		if (d->p == p)
			d->p = NULL;
}

void ckpt_free_all(struct ctl *ctl)
{
	struct ckpt_state *st = ctl->ckpts;

	if (!st)
		return;
	st->exiting = 1;
	/* the rows of checkpoints under way stay pending: the next start aborts them */
	for (struct ctl_job *j = ctl->jobs; j; j = j->next) {
		struct ckpt_op *op = j->ckpt;

		if (!op)
			continue;
		op->phase = CK_DONE;
		remove_dir(op->dir);
		op->dir[0] = 0;
		j->ckpt = NULL;
		op_put(op);
	}
	while (st->calls) {
		struct store_call *c = st->calls;

		st->calls = c->next;
		ctl_child_kill(c->child);
		/* its argument (a checkpoint, a delete, a clean-up) ends with it */
		if (c->done == commit_done)
			op_put(c->arg);
		else
			free(c->arg);
		free(c);
	}
	free(st->orphans);
	free(st);
	ctl->ckpts = NULL;
}
