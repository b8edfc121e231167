/*
 * CLI requests on the Unix socket (doc/protocol.md, "CLI <-> controller").
 * Each REQUEST gets exactly one RESPONSE; the user is who the kernel says
 * the peer is (SO_PEERCRED), never what the request claims.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static int expand_paths(struct job *j, void *arg)
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
	long biggest = 0;
	char deflt[PATH_MAX];
	struct node *n;
	struct job *j;
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
	j->slot = -1;
	j->submit_time = ctl_now();
	j->cwd = strdup(cwd);
	j->env = json_incref(env);
	j->argv = json_incref(argv);
	j->script = script ? strdup(script) : NULL;
	snprintf(deflt, sizeof(deflt), "%s/job-%%j.out", ctl->conf.spool_dir);
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
		hec_err("submit by uid %u: catalog insert failed: %s", (unsigned)p->uid,
			db_errmsg(ctl->db));
		respond_error(p->conn, "cannot record the job in the catalog: %s", db_errmsg(ctl->db));
		job_free(j);
		return;
	}
	if (ctl->jobs_tail)
		ctl->jobs_tail->next = j;
	else
		ctl->jobs = j;
	ctl->jobs_tail = j;
	gang_add_pending(ctl, j);
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

static void cli_queue(struct ctl *ctl, struct peer *p, const json_t *req)
{
	int all = json_is_true(json_object_get(req, "all"));
	json_t *jobs = json_array();
	struct job *j;

	for (j = ctl->jobs; jobs && j; j = j->next)
		if (all || !job_state_final(j->state))
			json_array_append_new(jobs, job_to_json(j));
	respond(p->conn, json_pack("{s:b,s:o}", "ok", 1, "jobs", jobs));
}

static void cli_show(struct ctl *ctl, struct peer *p, long id)
{
	struct job *j = job_find(ctl, id);

	if (!j) {
		respond_error(p->conn, "no such job %ld", id);
		return;
	}
	respond(p->conn, json_pack("{s:b,s:o}", "ok", 1, "job", job_to_json(j)));
}

struct job *cli_owned_job(struct ctl *ctl, struct peer *p, long id, const char *verb)
{
	struct job *j = job_find(ctl, id);

	if (!j) {
		respond_error(p->conn, "no such job %ld", id);
		return NULL;
	}
	if (p->uid != 0 && p->uid != j->uid) {
		hec_info("job %ld: %s by uid %u refused (owner uid %u)", id, verb, (unsigned)p->uid,
			 (unsigned)j->uid);
		respond_error(p->conn, "job %ld belongs to uid %u; only its owner or root may %s it",
			      id, (unsigned)j->uid, verb);
		return NULL;
	}
	return j;
}

static void cli_cancel(struct ctl *ctl, struct peer *p, long id)
{
	struct job *j = cli_owned_job(ctl, p, id, "cancel");

	if (!j)
		return;
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
	struct job *j;

	for (n = ctl->nodes; n; n = n->next)
		if (n->state == NODE_IDLE || n->state == NODE_ALLOCATED)
			up++;
	for (j = ctl->jobs; j; j = j->next) {
		if (j->state == JOB_PENDING)
			pending++;
		else if (!job_state_final(j->state))
			running++;
	}
	respond(p->conn, json_pack("{s:b,s:{s:s,s:i,s:i,s:i,s:i,s:I,s:I}}", "ok", 1, "cluster",
				   "name", ctl->conf.cluster_name, "nodes_total", ctl->nnodes,
				   "nodes_up", up, "jobs_pending", pending, "jobs_running", running,
				   "pid", (json_int_t)getpid(),
				   "uptime", (json_int_t)(ctl_now() - ctl->start_real)));
}

static void cli_shutdown(struct ctl *ctl, struct peer *p)
{
	if (p->uid != 0) {
		hec_info("shutdown by uid %u refused", (unsigned)p->uid);
		respond_error(p->conn, "only root may shut the cluster down (you are uid %u)",
			      (unsigned)p->uid);
		return;
	}
	respond(p->conn, json_pack("{s:b}", "ok", 1));
	ctl_begin_shutdown(ctl, p->uid);
}

void cli_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct peer *p = arg;
	struct ctl *ctl = p->ctl;
	const char *op;
	long id;

	if (m->type != HEC_MSG_REQUEST) {
		hec_warn("%s: %s on the CLI socket; closing", hec_conn_peer(c),
			 hec_msg_type_name(m->type));
		hec_conn_send_error_and_close(c, "expected REQUEST, got %s", hec_msg_type_name(m->type));
		return;
	}
	op = json_string_value(json_object_get(m->body, "op"));
	id = (long)json_integer_value(json_object_get(m->body, "job"));
	hec_debug("%s: request %s", hec_conn_peer(c), op);
	if (!strcmp(op, "submit"))
		cli_submit(ctl, p, m->body);
	else if (!strcmp(op, "queue"))
		cli_queue(ctl, p, m->body);
	else if (!strcmp(op, "show"))
		cli_show(ctl, p, id);
	else if (!strcmp(op, "cancel"))
		cli_cancel(ctl, p, id);
	else if (!strcmp(op, "snapshot"))
		cli_snapshot(ctl, p, id, json_is_true(json_object_get(m->body, "revert")));
	else if (!strcmp(op, "nodes"))
		cli_nodes(ctl, p);
	else if (!strcmp(op, "status"))
		cli_status(ctl, p);
	else if (!strcmp(op, "shutdown"))
		cli_shutdown(ctl, p);
	else if (!strcmp(op, "gang"))
		cli_gang(ctl, p);
	else if (!strcmp(op, "gang_stats"))
		cli_gang_stats(ctl, p);
	else if (!strcmp(op, "gang_set"))
		cli_gang_set(ctl, p, m->body);
	else /* msg.c knows every op; a new one without a handler lands here */
		respond_error(c, "op '%s' is not implemented by this controller", op);
	if (ctl->sched_needed || ctl->epoch_needed)
		ctl_schedule(ctl);
}
