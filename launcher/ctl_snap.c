/*
 * Snapshots of running vm jobs (doc/protocol.md, "vm partitions: snapshots").
 *
 * `hec snapshot JOB` sends SNAPSHOT to the agent of every node of the job
 * and answers once each node has answered SNAPSHOT_DONE, failed (its agent
 * went away) or let snapshot_timeout run out; the job ending meanwhile
 * fails the request.  As with gang_stats (ctl_gang.c), a request whose CLI
 * has gone keeps collecting and only drops its answer: the agents are still
 * saving, and a second snapshot of the job must not overlap theirs.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "ctld.h"

struct snap_node {
	struct node *node;           /* NULL: the catalog names a node we do not know */
	char name[65];
	int answered;                /* SNAPSHOT_DONE came: bytes and ms are the node's */
	int failed;                  /* (answered or not): settled either way */
	int64_t bytes, ms;
	char *error;                 /* why it failed; NULL if out of memory for the text */
};

/* One snapshot or revert waiting for the nodes' SNAPSHOT_DONE. */
struct snap_req {
	int64_t id;
	long job;
	int revert;
	struct peer *cli;            /* NULL once the CLI connection is gone */
	int64_t started, deadline;   /* mono ns */
	struct snap_node *nodes;
	int nnodes, waiting;
	struct snap_req *next;
};

static const char *what(const struct snap_req *r)
{
	return r->revert ? "revert" : "snapshot";
}

static void snap_req_free(struct snap_req *r)
{
	for (int i = 0; i < r->nnodes; i++)
		free(r->nodes[i].error);
	free(r->nodes);
	free(r);
}

static int settled(const struct snap_node *sn)
{
	return sn->answered || sn->failed;
}

__attribute__((format(printf, 3, 4)))
static void node_fail(struct snap_req *r, struct snap_node *sn, const char *fmt, ...)
{
	va_list ap;

	if (settled(sn))
		return;
	va_start(ap, fmt);
	if (vasprintf(&sn->error, fmt, ap) < 0)
		sn->error = NULL;
	va_end(ap);
	sn->failed = 1;
	r->waiting--;
}

static const char *node_error(const struct snap_node *sn)
{
	return sn->error ? sn->error : "controller out of memory";
}

/* [{"node", "bytes"?, "ms"?, "error"?}]: bytes and ms where the node answered. */
static json_t *nodes_json(const struct snap_req *r)
{
	json_t *a = json_array();

	for (int i = 0; a && i < r->nnodes; i++) {
		const struct snap_node *sn = &r->nodes[i];
		json_t *o = json_pack("{s:s}", "node", sn->name);

		if (o && sn->answered) {
			json_object_set_new(o, "bytes", json_integer(sn->bytes));
			json_object_set_new(o, "ms", json_integer(sn->ms));
		}
		if (o && sn->failed)
			json_object_set_new(o, "error", json_string(node_error(sn)));
		if (!o || json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Answer the CLI and free @r; @ended: why every node failed at once (the
 * job ended), or NULL. */
static void snap_finish(struct ctl *ctl, struct snap_req *r, const char *ended)
{
	double secs = (double)(hec_now_mono_ns() - r->started) / 1e9;
	const struct snap_node *first = NULL;
	struct snap_req **pp;
	int64_t bytes = 0;
	int failed = 0;
	char line[1024] = "";

	for (pp = &ctl->snap_reqs; *pp && *pp != r; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = r->next;
	for (int i = 0; i < r->nnodes; i++) {
		if (!r->nodes[i].failed) {
			bytes += r->nodes[i].bytes;
			continue;
		}
		if (!failed++)
			first = &r->nodes[i];
	}
	if (ended)
		snprintf(line, sizeof(line), "%s", ended);
	else if (first)
		snprintf(line, sizeof(line), "%s of job %ld failed on %d of %d node%s: %s: %s",
			 what(r), r->job, failed, r->nnodes, r->nnodes == 1 ? "" : "s", first->name,
			 node_error(first));
	if (failed)
		hec_info("job %ld: %s %lld failed after %.2f s: %s", r->job, what(r),
			 (long long)r->id, secs, line);
	else
		hec_info("job %ld: %s %lld done: %s %d node%s (%.1f MB) in %.2f s", r->job, what(r),
			 (long long)r->id, r->revert ? "reverted" : "saved", r->nnodes,
			 r->nnodes == 1 ? "" : "s", (double)bytes / 1048576.0, secs);
	if (!r->cli) {
		hec_debug("job %ld: %s %lld: the CLI has gone; answer dropped", r->job, what(r),
			  (long long)r->id);
	} else {
		json_t *nodes = nodes_json(r);

		respond(r->cli->conn, failed ?
			json_pack("{s:b,s:s,s:o}", "ok", 0, "error", line, "nodes", nodes) :
			json_pack("{s:b,s:o}", "ok", 1, "nodes", nodes));
	}
	snap_req_free(r);
}

/* Why @j is not a running job, for "job 7 is not running (...)". */
static void not_running(const struct job *j, char *buf, size_t len)
{
	if (j->phase == PH_LAUNCHING)
		snprintf(buf, len, "launching");
	else if (j->phase == PH_ENDING)
		snprintf(buf, len, "ending as %s", job_state_name(j->final_state));
	else
		snprintf(buf, len, "%s", job_state_name(j->state));
}

void cli_snapshot(struct ctl *ctl, struct peer *p, struct job *j, int revert)
{
	long id = j->id;
	struct snap_req *r;
	char why[64];

	if (ctl->shutting_down) {
		respond_error(p->conn, "the controller is shutting down");
		return;
	}
	if (!j->vm) {
		respond_error(p->conn, "job %ld runs in proc partitions; snapshots need --partition vm", id);
		return;
	}
	if (j->phase != PH_RUNNING || !j->started) {
		not_running(j, why, sizeof(why));
		respond_error(p->conn, "job %ld is not running (%s)", id, why);
		return;
	}
	if (j->state == JOB_SUSPENDED) {
		/* Its QEMU processes are frozen: no QMP answers until it runs. */
		respond_error(p->conn, "job %ld is SUSPENDED (%s): its guests are frozen until it gets a slot",
			      id, j->reason);
		return;
	}
	for (r = ctl->snap_reqs; r; r = r->next)
		if (r->job == id) {
			respond_error(p->conn, "a %s of job %ld is already under way", what(r), id);
			return;
		}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->nodes = calloc((size_t)j->nalloc + 1, sizeof(*r->nodes)))) {
		free(r);
		hec_err("job %ld: snapshot: out of memory", id);
		respond_error(p->conn, "controller out of memory");
		return;
	}
	r->id = ctl_fresh_id(&ctl->snap_seq) /* an earlier controller's answer never matches */;
	r->job = id;
	r->revert = revert;
	r->cli = p;
	r->started = hec_now_mono_ns();
	r->deadline = r->started + ctl->conf.snapshot_timeout * 1000000LL;
	r->nnodes = r->waiting = j->nalloc;
	r->next = ctl->snap_reqs;
	ctl->snap_reqs = r;
	hec_info("job %ld: %s %lld requested by uid %u: %s on %d node%s", id, what(r),
		 (long long)r->id, (unsigned)p->uid,
		 revert ? "going back to the saved state" : "saving the state", r->nnodes,
		 r->nnodes == 1 ? "" : "s");
	for (int i = 0; i < j->nalloc; i++) {
		struct snap_node *sn = &r->nodes[i];
		int rc;

		sn->node = j->alloc[i].node;
		snprintf(sn->name, sizeof(sn->name), "%s", j->alloc[i].name);
		if (!sn->node || !sn->node->peer) {
			node_fail(r, sn, "not connected to the controller");
			continue;
		}
		rc = node_send(sn->node, HEC_MSG_SNAPSHOT,
			       json_pack("{s:I,s:I,s:b}", "job", (json_int_t)id, "req",
					 (json_int_t)r->id, "revert", revert));
		if (rc)
			node_fail(r, sn, "SNAPSHOT not sent: %s", strerror(-rc));
	}
	if (!r->waiting)
		snap_finish(ctl, r, NULL);
}

void snap_on_done(struct ctl *ctl, struct node *n, const json_t *body)
{
	int64_t id = json_integer_value(json_object_get(body, "req"));
	long job = (long)json_integer_value(json_object_get(body, "job"));
	const char *error = json_string_value(json_object_get(body, "error"));
	struct snap_node *sn = NULL;
	struct snap_req *r;

	for (r = ctl->snap_reqs; r && (r->id != id || r->job != job); r = r->next)
		;
	for (int i = 0; r && !sn && i < r->nnodes; i++)
		if (r->nodes[i].node == n)
			sn = &r->nodes[i];
	if (!sn || settled(sn)) {
		hec_debug("%s: SNAPSHOT_DONE for job %ld request %lld: %s; ignored", n->name, job,
			  (long long)id, !r ? "no such request is waiting (late or unknown)" :
			  !sn ? "the job does not run there" : "that node's answer is already counted");
		return;
	}
	sn->bytes = json_integer_value(json_object_get(body, "bytes"));
	sn->ms = json_integer_value(json_object_get(body, "ms"));
	if (error) {
		hec_warn("job %ld: %s %lld: %s failed: %s", job, what(r), (long long)id, n->name, error);
		node_fail(r, sn, "%s", error);
	} else {
		hec_debug("job %ld: %s %lld: %s done, %lld bytes in %lld ms", job, what(r),
			  (long long)id, n->name, (long long)sn->bytes, (long long)sn->ms);
		r->waiting--;
	}
	sn->answered = 1;
	if (!r->waiting)
		snap_finish(ctl, r, NULL);
}

void snap_node_gone(struct ctl *ctl, struct node *n, const char *why)
{
	struct snap_req *r, *next;

	for (r = ctl->snap_reqs; r; r = next) {
		next = r->next;
		for (int i = 0; i < r->nnodes; i++) {
			struct snap_node *sn = &r->nodes[i];

			if (sn->node != n || settled(sn))
				continue;
			hec_warn("job %ld: %s %lld: %s went away (%s)", r->job, what(r),
				 (long long)r->id, n->name, why);
			node_fail(r, sn, "went away (%s)", why);
		}
		if (!r->waiting)
			snap_finish(ctl, r, NULL);
	}
}

void snap_job_ended(struct ctl *ctl, struct job *j)
{
	enum job_state s = job_state_final(j->state) ? j->state : j->final_state;
	int plain = !j->reason[0] || !strcmp(j->reason, "None");
	struct snap_req *r;
	char ended[600];

	for (r = ctl->snap_reqs; r && r->job != j->id; r = r->next)
		;
	if (!r)
		return;
	snprintf(ended, sizeof(ended), "job %ld ended (%s%s%s)", j->id, job_state_name(s),
		 plain ? "" : ": ", plain ? "" : j->reason);
	for (int i = 0; i < r->nnodes; i++)
		node_fail(r, &r->nodes[i], "%s", ended);
	snap_finish(ctl, r, ended);
}

void snap_forget_peer(struct ctl *ctl, struct peer *p)
{
	for (struct snap_req *r = ctl->snap_reqs; r; r = r->next)
		if (r->cli == p)
			r->cli = NULL;
}

void snap_timers(struct ctl *ctl)
{
	int64_t now = hec_now_mono_ns();
	long ms = ctl->conf.snapshot_timeout;
	struct snap_req *r, *next;

	for (r = ctl->snap_reqs; r; r = next) {
		next = r->next;
		if (now < r->deadline)
			continue;
		for (int i = 0; i < r->nnodes; i++)
			node_fail(r, &r->nodes[i], "no answer within %g s", (double)ms / 1000.0);
		snap_finish(ctl, r, NULL);
	}
}

void snap_fini(struct ctl *ctl)
{
	struct snap_req *r, *next;

	for (r = ctl->snap_reqs; r; r = next) {
		next = r->next;
		snap_req_free(r);
	}
	ctl->snap_reqs = NULL;
}
