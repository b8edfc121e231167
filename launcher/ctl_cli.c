/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CLI requests on the Unix socket and, from other hosts, on cli_listen
 * (doc/protocol.md, "CLI <-> controller").  Each REQUEST gets exactly one
 * RESPONSE; the user is who the kernel says the peer is (SO_PEERCRED) or,
 * over TCP, whom the MUNGE credential of its AUTH names, never what the
 * request claims.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hec/common.h"
#include "ctld.h"

void respond(struct hec_conn *c, json_t *body)
{
	if (!body) {
		hec_err("%s: out of memory building a response", hec_conn_peer(c));
		hec_conn_send_error_and_close(c, "controller out of memory");
		return;
	}
	hec_conn_send(c, HEC_MSG_RESPONSE, body);
	json_decref(body);
}

void respond_error(struct hec_conn *c, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	respond(c, json_pack("{s:b,s:s}", "ok", 0, "error", text));
}

static void respond_auth_ok(struct peer *p)
{
	json_t *body = json_pack("{s:I,s:I}", "uid", (json_int_t)p->uid, "gid", (json_int_t)p->gid);

	if (!body) {
		hec_conn_send_error_and_close(p->conn, "controller out of memory");
		return;
	}
	hec_conn_send(p->conn, HEC_MSG_AUTH_OK, body);
	json_decref(body);
}

static void user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", pw.pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
}

/* db_job_insert() fixup: output paths name the job id, known only now. */
static int expand_paths(struct ctl_job *j, void *arg)
{
	char path[PATH_MAX];
	char *s;
	int rc;

	(void)arg;
	rc = job_expand_path(j->output, j->id, j->name, j->user, j->cwd, path, sizeof(path));
	if (rc)
		return rc;
	s = strdup(path);
	if (!s)
		return -ENOMEM;
	free(j->output);
	j->output = s;
	if (!j->error)
		return 0;
	rc = job_expand_path(j->error, j->id, j->name, j->user, j->cwd, path, sizeof(path));
	if (rc)
		return rc;
	s = strdup(path);
	if (!s)
		return -ENOMEM;
	free(j->error);
	j->error = s;
	return 0;
}

#define TASKS_PER_CPU 64

static int by_long_desc(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x < y) - (x > y);
}

/*
 * The default output's directory: <spool_dir>/<uid>, the user's own (0700).
 * The spool itself is root's (0755): nobody but hecctld makes a name in
 * it, so nobody can prepare another user's output file (a symbolic link, a
 * file of their own) or directory.  \return 0, or -errno.
 */
static int user_spool(const struct ctl *ctl, uid_t uid, gid_t gid, char *dir, size_t len)
{
	struct stat st;
	int fd, rc = 0;

	if (hec_fmt(dir, len, "%s/%u", ctl->conf.spool_dir, (unsigned)uid) < 0)
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st))
		rc = -errno;
	else if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid))
		rc = -errno;
	else if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700))
		rc = -errno;
	close(fd);
	return rc;
}

static void cli_submit(struct ctl *ctl, struct peer *p, const json_t *req)
{
	long nodes = (long)json_integer_value(json_object_get(req, "nodes"));
	long ntasks = (long)json_integer_value(json_object_get(req, "ntasks"));
	const char *name = json_string_value(json_object_get(req, "name"));
	const char *cwd = json_string_value(json_object_get(req, "cwd"));
	const char *script = json_string_value(json_object_get(req, "script"));
	const char *output = json_string_value(json_object_get(req, "output"));
	const char *error = json_string_value(json_object_get(req, "error"));
	json_t *env = json_object_get(req, "env");
	json_t *argv = json_object_get(req, "argv");
	int share = json_is_true(json_object_get(req, "share"));
	long mem_mb = (long)json_integer_value(json_object_get(req, "mem_mb"));
	const char *partition = json_string_value(json_object_get(req, "partition"));
	int vm = partition && !strcmp(partition, "vm");
	long vcpus = (long)json_integer_value(json_object_get(req, "vcpus"));
	json_t *vm_files = json_object_get(req, "vm_files");
	const json_t *keep = json_object_get(req, "ckpt_keep");
	const json_t *maxr = json_object_get(req, "max_restarts");
	long interval = (long)json_integer_value(json_object_get(req, "ckpt_interval"));
	const char *restart = json_string_value(json_object_get(req, "restart"));
	long biggest = 0;
	char deflt[PATH_MAX];
	struct node *n;
	struct ctl_job *j;
	size_t i;
	json_t *e;
	int rc;

	if (ctl->shutting_down) {
		respond_error(p->conn, "the controller is shutting down");
		return;
	}
	if (ntasks < nodes) {
		respond_error(p->conn, "job asks for %ld task%s on %ld nodes; every node needs at least one task",
			      ntasks, ntasks == 1 ? "" : "s", nodes);
		return;
	}
	if (nodes > ctl->nnodes) {
		respond_error(p->conn, "job asks for %ld node%s; the cluster has %d", nodes,
			      nodes == 1 ? "" : "s", ctl->nnodes);
		return;
	}
	{
		/* At most TASKS_PER_CPU ranks per CPU of the job's nodes (its
		 * largest ones): oversubscription beyond that only thrashes, and
		 * every rank is a process of the node. */
		long pus[4096], most = 0;
		int k = 0;

		for (n = ctl->nodes; n && k < 4096; n = n->next)
			pus[k++] = n->pus > 0 ? n->pus : 1;
		qsort(pus, (size_t)k, sizeof(pus[0]), by_long_desc);
		for (int q = 0; q < k && q < nodes; q++)
			most += pus[q];
		if (ntasks > most * TASKS_PER_CPU) {
			respond_error(p->conn, "job asks for %ld tasks on %ld node%s; at most %d per CPU of its nodes: %ld here",
				      ntasks, nodes, nodes == 1 ? "" : "s", TASKS_PER_CPU,
				      most * TASKS_PER_CPU);
			return;
		}
	}
	for (n = ctl->nodes; n; n = n->next)
		if (n->memory_mb > biggest)
			biggest = n->memory_mb;
	/* Nodes that report no memory size do not count it (design.md). */
	if (mem_mb > 0 && biggest > 0 && mem_mb > biggest) {
		respond_error(p->conn, "job asks for %ld MB per node; the largest node has %ld MB",
			      mem_mb, biggest);
		return;
	}
	if (cwd[0] != '/') {
		respond_error(p->conn, "working directory '%s' is not an absolute path", cwd);
		return;
	}
	if (partition && strcmp(partition, "proc") && strcmp(partition, "vm")) {
		respond_error(p->conn, "partition kind '%s' is unknown (proc, vm)", partition);
		return;
	}
	if (!vm && (vcpus || vm_files)) {
		respond_error(p->conn, "vcpus and vm_files are for vm partitions only");
		return;
	}
	if (vm && mem_mb < HEC_VM_MEM_MIN_MB) {
		respond_error(p->conn, "a vm partition needs at least %d MB of memory per node (asked: %ld MB)",
			      HEC_VM_MEM_MIN_MB, mem_mb);
		return;
	}
	if (restart && strcmp(restart, "none") && strcmp(restart, "auto")) {
		respond_error(p->conn, "restart '%s' is not none or auto", restart);
		return;
	}
	if (json_array_size(vm_files) > HEC_VM_FILES_MAX) {
		respond_error(p->conn, "more than %d vm_files", HEC_VM_FILES_MAX);
		return;
	}
	json_array_foreach(vm_files, i, e)
		if (json_string_value(e)[0] != '/') {
			respond_error(p->conn, "vm file '%s' is not an absolute path", json_string_value(e));
			return;
		}
	json_array_foreach(env, i, e)
		if (!strchr(json_string_value(e), '=')) {
			respond_error(p->conn, "environment entry %zu ('%.40s') has no '='", i,
				      json_string_value(e));
			return;
		}
	if (argv && !*json_string_value(json_array_get(argv, 0))) {
		respond_error(p->conn, "the command is an empty string");
		return;
	}

	j = calloc(1, sizeof(*j));
	if (!j)
		goto err_nomem;
	if (*name) {
		snprintf(j->name, sizeof(j->name), "%s", name);
	} else if (argv) {
		const char *a0 = json_string_value(json_array_get(argv, 0)), *slash = strrchr(a0, '/');

		snprintf(j->name, sizeof(j->name), "%s", slash && slash[1] ? slash + 1 : a0);
	} else {
		snprintf(j->name, sizeof(j->name), "script");
	}
	j->uid = p->uid;
	j->gid = p->gid;
	user_name(p->uid, j->user, sizeof(j->user));
	j->state = JOB_PENDING;
	j->final_state = JOB_NSTATES;
	snprintf(j->reason, sizeof(j->reason), "Priority");
	j->nnodes = (int)nodes;
	j->ntasks = (int)ntasks;
	j->time_limit = (long)json_integer_value(json_object_get(req, "time_limit"));
	j->priority = (int)json_integer_value(json_object_get(req, "priority"));
	j->share = share;
	j->mem_mb = mem_mb;
	j->vm = vm;
	j->vcpus = (int)vcpus;
	j->vm_files = json_incref(vm_files);
	j->ckpt_interval = interval;
	j->ckpt_keep = keep ? (int)json_integer_value(keep) : 2;
	j->restart_auto = restart && !strcmp(restart, "auto");
	j->max_restarts = maxr ? (int)json_integer_value(maxr) : 3;
	j->slot = -1;
	j->submit_time = ctl_now();
	j->cwd = strdup(cwd);
	j->env = json_incref(env);
	j->argv = json_incref(argv);
	j->script = script ? strdup(script) : NULL;
	if (!output || !*output) {
		char dir[PATH_MAX];
		int src = user_spool(ctl, p->uid, p->gid, dir, sizeof(dir));

		if (src) {
			hec_err("submit by uid %u: output directory %s: %s", (unsigned)p->uid, dir,
				strerror(-src));
			respond_error(p->conn, "cannot make your output directory %s: %s (give --output)",
				      dir, strerror(-src));
			job_free(j);
			return;
		}
		hec_fmt(deflt, sizeof(deflt), "%s/job-%%j.out", dir);
	}
	j->output = strdup(output && *output ? output : deflt);
	j->error = error && *error ? strdup(error) : NULL;
	j->command = job_command(j->argv, j->script, j->name);
	if (!j->cwd || !j->output || !j->command || (script && !j->script) ||
	    (error && *error && !j->error))
		goto err_free;

	rc = db_job_insert(ctl->db, j, expand_paths, ctl);
	if (rc == -ENAMETOOLONG) {
		respond_error(p->conn, "output or error path is longer than %d characters", PATH_MAX - 1);
		job_free(j);
		return;
	}
	if (rc) {
		const char *why = rc == -EIO ? db_job_insert_error(ctl->db) : strerror(-rc);

		hec_err("submit by uid %u: catalog insert failed: %s", (unsigned)p->uid, why);
		respond_error(p->conn, "cannot record the job in the catalog: %s", why);
		job_free(j);
		return;
	}
	if (ctl->jobs_tail)
		ctl->jobs_tail->next = j;
	else
		ctl->jobs = j;
	ctl->jobs_tail = j;
	ctl_gang_add_pending(ctl, j);
	hec_info("job %ld: submitted by %s (uid %u): %d node%s, %d task%s, priority %d, %s, %ld MB per node: %s",
		 j->id, j->user, (unsigned)j->uid, j->nnodes, j->nnodes == 1 ? "" : "s", j->ntasks,
		 j->ntasks == 1 ? "" : "s", j->priority, j->share ? "share" : "exclusive",
		 j->mem_mb, j->command);
	/* The job is committed: only now may the user hear its id. */
	respond(p->conn, json_pack("{s:b,s:I}", "ok", 1, "job", (json_int_t)j->id));
	ctl->sched_needed = 1;
	return;

err_free:
	job_free(j);
err_nomem:
	hec_err("submit by uid %u: out of memory", (unsigned)p->uid);
	respond_error(p->conn, "controller out of memory");
}

/* `queue --all` pages through the ended jobs of the catalog, newest first
 * (msg.c bounds limit and before). */
#define QUEUE_LIMIT 1000

struct queue_page {
	json_t *ended;               /* newest first */
	int limit;
	int more;                    /* a row past the limit came */
	long last;                   /* the page's oldest job: the next page's cursor */
};

/* db_jobs_ended() callback: one row of the page, or the one that says more. */
static int queue_row(struct ctl_job *j, void *arg)
{
	struct queue_page *pg = arg;

	if (j->state == JOB_NSTATES) {
		hec_err("job %ld: catalog row unreadable; not listed", j->id);
	} else if ((int)json_array_size(pg->ended) == pg->limit) {
		pg->more = 1;
		job_free(j);
		return 1; /* stop: the page is full */
	} else if (json_array_append_new(pg->ended, job_to_json(j))) {
		job_free(j);
		return -ENOMEM;
	} else {
		pg->last = j->id;
	}
	job_free(j);
	return 0;
}

/* The jobs in memory that have not ended and the page of ended ones from
 * the catalog, in ascending id.  \return 0 or -ENOMEM. */
static int queue_merge(struct ctl *ctl, json_t *jobs, const json_t *ended, int active)
{
	size_t k = json_array_size(ended);
	struct ctl_job *j = active ? ctl->jobs : NULL;

	for (;;) {
		json_t *e = k ? json_array_get(ended, k - 1) : NULL;
		long eid = e ? (long)json_integer_value(json_object_get(e, "id")) : 0;

		while (j && job_state_final(j->state))
			j = j->next;
		if (!j && !e)
			return 0;
		if (j && (!e || j->id < eid)) {
			if (json_array_append_new(jobs, job_to_json(j)))
				return -ENOMEM;
			j = j->next;
		} else {
			if (json_array_append(jobs, e))
				return -ENOMEM;
			k--;
		}
	}
}

static void cli_queue(struct ctl *ctl, struct peer *p, const json_t *req)
{
	int all = json_is_true(json_object_get(req, "all"));
	json_int_t limit = json_integer_value(json_object_get(req, "limit"));
	json_int_t before = json_integer_value(json_object_get(req, "before"));
	struct queue_page pg = { .ended = json_array() };
	json_t *jobs = json_array(), *resp;
	int rc = 0;

	pg.limit = limit ? (int)limit : QUEUE_LIMIT;
	if (!jobs || !pg.ended) {
		rc = -ENOMEM;
	} else if (all) {
		rc = db_jobs_ended(ctl->db, (long)before, pg.limit + 1, queue_row, &pg);
		if (rc == 1)
			rc = 0;
	}
	if (rc == -EIO) {
		respond_error(p->conn, "cannot read the catalog: %s", db_errmsg(ctl->db));
		goto out;
	}
	/* the jobs in memory on the first page only: no page repeats one */
	if (!rc)
		rc = queue_merge(ctl, jobs, pg.ended, !before);
	resp = rc ? NULL : json_pack("{s:b,s:O,s:b}", "ok", 1, "jobs", jobs, "more", pg.more);
	if (resp && pg.more)
		json_object_set_new(resp, "next_before", json_integer((json_int_t)pg.last));
	respond(p->conn, resp);
out:
	json_decref(jobs);
	json_decref(pg.ended);
}

static void cli_show(struct ctl *ctl, struct peer *p, long id)
{
	struct ctl_job *j = job_get(ctl, id);

	json_t *o, *restarts = NULL;
	int64_t epoch = 0;

	if (!j) {
		respond_error(p->conn, "no such job %ld", id);
		return;
	}
	o = job_to_json(j);
	if (o && db_restarts_list(ctl->db, j->id, &restarts))
		hec_warn("job %ld: cannot read its restarts: %s", j->id, db_errmsg(ctl->db));
	if (o && ckpt_newest(ctl, j->id, 0, &epoch) == -EIO)
		hec_warn("job %ld: cannot read its checkpoints: %s", j->id, db_errmsg(ctl->db));
	if (o) {
		json_object_set_new(o, "restarts", restarts ? restarts : json_array());
		json_object_set_new(o, "ckpt_epoch", json_integer(epoch));
	}
	respond(p->conn, json_pack("{s:b,s:o}", "ok", 1, "job", o));
}

static void cli_cancel(struct ctl *ctl, struct peer *p, struct ctl_job *j)
{
	long id = j->id;

	if (job_state_final(j->state)) {
		respond_error(p->conn, "job %ld has already ended (%s)", id, job_state_name(j->state));
		return;
	}
	if (j->phase == PH_ENDING) {
		respond_error(p->conn, "job %ld is already ending (%s)", id,
			      job_state_name(j->final_state));
		return;
	}
	hec_info("job %ld: cancelled by uid %u", id, (unsigned)p->uid);
	job_end(ctl, j, JOB_CANCELLED, "cancelled by uid %u", (unsigned)p->uid);
	respond(p->conn, json_pack("{s:b}", "ok", 1));
}

static void cli_nodes(struct ctl *ctl, struct peer *p)
{
	json_t *nodes = json_array();
	struct node *n;

	for (n = ctl->nodes; nodes && n; n = n->next)
		json_array_append_new(nodes, node_to_json(ctl, n));
	respond(p->conn, json_pack("{s:b,s:o}", "ok", 1, "nodes", nodes));
}

static void cli_status(struct ctl *ctl, struct peer *p)
{
	int up = 0, pending = 0, running = 0;
	struct node *n;
	struct ctl_job *j;

	for (n = ctl->nodes; n; n = n->next)
		if (n->state == NODE_IDLE || n->state == NODE_ALLOCATED)
			up++;
	for (j = ctl->jobs; j; j = j->next) {
		if (j->state == JOB_PENDING)
			pending++;
		else if (!job_state_final(j->state))
			running++;
	}
	respond(p->conn, json_pack("{s:b,s:{s:s,s:i,s:i,s:i,s:i,s:i,s:I,s:I}}", "ok", 1, "cluster",
				   "name", ctl->conf.cluster_name, "nodes_total", ctl->nnodes,
				   "nodes_up", up, "jobs_pending", pending, "jobs_running", running,
				   "jobs_in_memory", ctl_jobs_in_memory(ctl),
				   "pid", (json_int_t)getpid(),
				   "uptime", (json_int_t)(ctl_now() - ctl->start_real)));
}

static void cli_storage(struct ctl *ctl, struct peer *p)
{
	respond(p->conn, json_pack("{s:b,s:o,s:o}", "ok", 1, "servers", store_list_json(ctl),
				   "repair", store_repair_json(ctl)));
}

static void cli_shutdown(struct ctl *ctl, struct peer *p)
{
	respond(p->conn, json_pack("{s:b}", "ok", 1));
	ctl_begin_shutdown(ctl, p->uid);
}

/* ---- requests: one row per op (hec_msg_handlers_check) ---- */

/* What a handler gets: the requesting peer, and for HEC_RULE_OWNER its job. */
struct cli_call {
	struct ctl *ctl;
	struct peer *p;
	struct ctl_job *job;
};

static void req_submit(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_submit(r->ctl, r->p, m->body);
}

static void req_queue(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_queue(r->ctl, r->p, m->body);
}

static void req_show(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_show(r->ctl, r->p, (long)json_integer_value(json_object_get(m->body, "job")));
}

static void req_cancel(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_cancel(r->ctl, r->p, r->job);
}

static void req_ckpt(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_ckpt(r->ctl, r->p, r->job, m->body);
}

static void req_ckpts(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;
	long id = (long)json_integer_value(json_object_get(m->body, "job"));
	struct ctl_job *j = job_get(r->ctl, id);

	/* any user may list them (as `show`): no owner check looked it up */
	if (!j)
		respond_error(r->p->conn, "no such job %ld", id);
	else
		cli_ckpts(r->ctl, r->p, j, m->body);
}

static void req_ckpt_delete(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_ckpt_delete(r->ctl, r->p, r->job, m->body);
}

static void req_ckpt_export(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_ckpt_export(r->ctl, r->p, r->job, m->body);
}

static void req_ckpt_import(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_ckpt_import(r->ctl, r->p, m->body);
}

static void req_restart(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_restart(r->ctl, r->p, r->job, m->body);
}

static void req_nodes(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_nodes(r->ctl, r->p);
}

static void req_status(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_status(r->ctl, r->p);
}

static void req_shutdown(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_shutdown(r->ctl, r->p);
}

static void req_gang(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_gang(r->ctl, r->p);
}

static void req_gang_stats(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_gang_stats(r->ctl, r->p);
}

static void req_storage(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	cli_storage(r->ctl, r->p);
}

static void req_storage_repair(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	(void)m;
	if (r->ctl->shutting_down)
		respond_error(r->p->conn, "the controller is shutting down");
	else if (store_repair_wait(r->ctl, r->p))
		respond_error(r->p->conn, "controller out of memory");
}

static void req_gang_set(void *arg, const struct hec_msg *m)
{
	struct cli_call *r = arg;

	cli_gang_set(r->ctl, r->p, m->body);
}

/* Who may do what: users are who the kernel says (SO_PEERCRED). */
static const struct hec_msg_handler cli_handlers[] = {
	{ .type = HEC_MSG_REQUEST, .op = "submit", .rule = HEC_RULE_USER, .fn = req_submit },
	{ .type = HEC_MSG_REQUEST, .op = "queue", .rule = HEC_RULE_USER, .fn = req_queue },
	{ .type = HEC_MSG_REQUEST, .op = "show", .rule = HEC_RULE_USER, .fn = req_show },
	{ .type = HEC_MSG_REQUEST, .op = "cancel", .rule = HEC_RULE_OWNER,
	  .what = "cancel it", .fn = req_cancel },
	{ .type = HEC_MSG_REQUEST, .op = "ckpt", .rule = HEC_RULE_OWNER,
	  .what = "checkpoint it", .fn = req_ckpt },
	{ .type = HEC_MSG_REQUEST, .op = "ckpts", .rule = HEC_RULE_USER, .fn = req_ckpts },
	{ .type = HEC_MSG_REQUEST, .op = "ckpt_delete", .rule = HEC_RULE_OWNER,
	  .what = "delete its checkpoints", .fn = req_ckpt_delete },
	{ .type = HEC_MSG_REQUEST, .op = "ckpt_export", .rule = HEC_RULE_OWNER,
	  .what = "export its checkpoints", .fn = req_ckpt_export },
	{ .type = HEC_MSG_REQUEST, .op = "ckpt_import", .rule = HEC_RULE_USER, .fn = req_ckpt_import },
	{ .type = HEC_MSG_REQUEST, .op = "restart", .rule = HEC_RULE_OWNER,
	  .what = "restart it", .fn = req_restart },
	{ .type = HEC_MSG_REQUEST, .op = "nodes", .rule = HEC_RULE_USER, .fn = req_nodes },
	{ .type = HEC_MSG_REQUEST, .op = "status", .rule = HEC_RULE_USER, .fn = req_status },
	{ .type = HEC_MSG_REQUEST, .op = "shutdown", .rule = HEC_RULE_ROOT,
	  .what = "shut the cluster down", .fn = req_shutdown },
	{ .type = HEC_MSG_REQUEST, .op = "gang", .rule = HEC_RULE_USER, .fn = req_gang },
	{ .type = HEC_MSG_REQUEST, .op = "gang_stats", .rule = HEC_RULE_USER, .fn = req_gang_stats },
	{ .type = HEC_MSG_REQUEST, .op = "gang_set", .rule = HEC_RULE_ROOT,
	  .what = "change the gang settings", .fn = req_gang_set },
	{ .type = HEC_MSG_REQUEST, .op = "storage", .rule = HEC_RULE_USER, .fn = req_storage },
	{ .type = HEC_MSG_REQUEST, .op = "storage_repair", .rule = HEC_RULE_ROOT,
	  .what = "repair the checkpoint storage", .fn = req_storage_repair },
};

int cli_handlers_check(char *err, size_t errlen)
{
	return hec_msg_handlers_check(cli_handlers, HEC_ARRAY_SIZE(cli_handlers), HEC_SIDE_CTL_CLI,
				      err, errlen);
}

/* The row's rule; a refusal is answered here.  \return 1 if @r may go on. */
static int allowed(const struct hec_msg_handler *h, struct cli_call *r, const json_t *req)
{
	struct peer *p = r->p;
	long id;

	switch (h->rule) {
	case HEC_RULE_USER:
		return 1;
	case HEC_RULE_ROOT:
		if (p->uid == 0)
			return 1;
		hec_info("%s by uid %u refused", h->op, (unsigned)p->uid);
		respond_error(p->conn, "only root may %s (you are uid %u)", h->what, (unsigned)p->uid);
		return 0;
	case HEC_RULE_OWNER:
		id = (long)json_integer_value(json_object_get(req, "job"));
		r->job = job_get(r->ctl, id);
		if (!r->job) {
			respond_error(p->conn, "no such job %ld", id);
			return 0;
		}
		if (p->uid == 0 || p->uid == r->job->uid)
			return 1;
		hec_info("job %ld: %s by uid %u refused (owner uid %u)", id, h->op, (unsigned)p->uid,
			 (unsigned)r->job->uid);
		respond_error(p->conn, "job %ld belongs to uid %u; only its owner or root may %s", id,
			      (unsigned)r->job->uid, h->what);
		return 0;
	default: /* not a rule of this side: hec_msg_handlers_check refuses the table */
		respond_error(p->conn, "%s: no rule says who may ask it", h->op);
		return 0;
	}
}

int cli_peer_admit(struct ctl *ctl, struct peer *p)
{
	int n = 0;

	/* one user cannot hold the controller's descriptors (root is never
	 * counted: it can always get in) */
	if (p->uid == 0)
		return 1;
	for (struct peer *q = ctl->peers; q; q = q->next)
		n += q->kind == PEER_CLI && q->uid == p->uid && !hec_conn_closing(q->conn);
	if (n <= CTL_CLI_PER_UID)
		return 1;
	{
		static struct hec_ratelimit rl;
		long held;

		if (hec_ratelimit_ok(&rl, 5, 10000000000LL, hec_now_mono_ns(), &held))
			hec_warn("%s: uid %u has %d connections open, more than %d; refused (%ld such refusals not logged before)",
				 hec_conn_peer(p->conn), (unsigned)p->uid, n - 1, CTL_CLI_PER_UID, held);
	}
	hec_conn_send_error_and_close(p->conn, "uid %u has %d connections open to the controller, the most a user may; close some",
				      (unsigned)p->uid, CTL_CLI_PER_UID);
	return 0;
}

/*
 * A remote CLI's first message: the MUNGE credential of the nonce sent on
 * accept.  Decoding blocks the loop for a round trip to the local munged
 * (with munged gone, only the first refusal waits: auth.h).  Any refusal
 * closes the connection saying why.
 */
static void cli_auth(struct ctl *ctl, struct peer *p, const struct hec_msg *m)
{
	const char *cred = json_string_value(json_object_get(m->body, "cred"));
	char err[512];
	uid_t uid;
	gid_t gid;
	int rc;

	if (m->type != HEC_MSG_AUTH) {
		hec_warn("%s: %s before AUTH; closing", hec_conn_peer(p->conn),
			 hec_msg_type_name(m->type));
		hec_conn_send_error_and_close(p->conn, "authentication required: expected AUTH (a MUNGE credential), got %s",
					      hec_msg_type_name(m->type));
		return;
	}
	rc = hec_auth_decode(ctl->conf.munge_socket, cred, p->nonce, &uid, &gid, &ctl->munged_down,
			     err, sizeof(err));
	if (rc) {
		static struct hec_ratelimit rl;
		long held;

		if (hec_ratelimit_ok(&rl, 20, 10000000000LL, hec_now_mono_ns(), &held))
			hec_warn("%s: authentication refused: %s (%ld such refusals not logged before)",
				 hec_conn_peer(p->conn), err, held);
		hec_conn_send_error_and_close(p->conn, "authentication refused: %s", err);
		return;
	}
	p->uid = uid;
	p->gid = gid;
	p->authed = 1;
	hec_conn_set_max_frame(p->conn, HEC_MSG_MAX);
	hec_debug("%s: authenticated as uid %u gid %u", hec_conn_peer(p->conn), (unsigned)uid,
		  (unsigned)gid);
	if (!cli_peer_admit(ctl, p))
		return;
	respond_auth_ok(p);
}

void cli_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct cli_call r = { .p = arg };
	const struct hec_msg_handler *h;

	r.ctl = r.p->ctl;
	if (r.p->remote && !r.p->authed) {
		cli_auth(r.ctl, r.p, m);
		return;
	}
	r.p->asked = 1;
	if (m->type != HEC_MSG_REQUEST) {
		hec_warn("%s: %s on the CLI socket; closing", hec_conn_peer(c),
			 hec_msg_type_name(m->type));
		hec_conn_send_error_and_close(c, "expected REQUEST, got %s", hec_msg_type_name(m->type));
		return;
	}
	hec_debug("%s: request %s", hec_conn_peer(c),
		  json_string_value(json_object_get(m->body, "op")));
	h = hec_msg_handler_find(cli_handlers, HEC_ARRAY_SIZE(cli_handlers), m);
	if (!h) /* msg.c knows every op; a new one without a row lands here */
		respond_error(c, "op '%s' is not implemented by this controller",
			      json_string_value(json_object_get(m->body, "op")));
	else if (allowed(h, &r, m->body))
		h->fn(&r, m);
	if (r.ctl->sched_needed || r.ctl->epoch_needed)
		ctl_schedule(r.ctl);
}
