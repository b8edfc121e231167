/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Snapshots of running vm jobs (doc/protocol.md, "vm partitions: snapshots").
 *
 * `hec snapshot JOB` sends SNAPSHOT to the agent of every node of the job
 * through the controller's fan-out (fanout.h) and answers once each node has
 * answered SNAPSHOT_DONE, failed (its agent went away) or let
 * snapshot_timeout run out; the job ending meanwhile cancels the request.
 * As with gang_stats (ctl_gang.c), a request whose CLI has gone keeps
 * collecting and only drops its answer: the agents are still saving, and a
 * second snapshot of the job must not overlap theirs.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "ctld.h"
#include "fanout.h"

/* One snapshot or revert under way: the fan-out's argument, and the job's
 * j->snap until it is done. */
struct snap_op {
	struct ctl *ctl;
	int64_t id;
	long job;
	int revert;
};

static const char *what(const struct snap_op *op)
{
	return op->revert ? "revert" : "snapshot";
}

/* [{"node", "bytes"?, "ms"?, "error"?}]: bytes and ms where the node answered. */
static json_t *nodes_json(const struct fanout_done *d)
{
	json_t *a = json_array();

	for (int i = 0; a && i < d->nnodes; i++) {
		const struct fanout_result *res = &d->nodes[i];
		json_t *o = json_pack("{s:s}", "node", res->node);

		if (o && res->body) {
			json_object_set_new(o, "bytes", json_integer(json_integer_value(
						json_object_get(res->body, "bytes"))));
			json_object_set_new(o, "ms", json_integer(json_integer_value(
						json_object_get(res->body, "ms"))));
		}
		if (o && res->why)
			json_object_set_new(o, "error", json_string(res->why));
		if (!o || json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Every node settled: log, answer the CLI if it is still there, and let
 * the job take another snapshot. */
static void snap_done(void *arg, const struct fanout_done *d)
{
	struct snap_op *op = arg;
	struct ctl *ctl = op->ctl;
	struct ctl_job *j = job_find(ctl, op->job);
	struct peer *cli = d->owner;
	double secs = (double)d->elapsed_ns / 1e9;
	const struct fanout_result *first = NULL;
	int failed = d->nnodes - d->answered;
	int64_t bytes = 0;
	char line[1024] = "";

	if (j && j->snap == op)
		j->snap = NULL;
	for (int i = 0; i < d->nnodes; i++) {
		if (d->nodes[i].state == FANOUT_ANSWERED)
			bytes += json_integer_value(json_object_get(d->nodes[i].body, "bytes"));
		else if (!first)
			first = &d->nodes[i];
	}
	if (d->cancelled)
		snprintf(line, sizeof(line), "%s", d->cancelled);
	else if (first)
		snprintf(line, sizeof(line), "%s of job %ld failed on %d of %d node%s: %s: %s",
			 what(op), op->job, failed, d->nnodes, d->nnodes == 1 ? "" : "s", first->node,
			 first->why);
	if (failed)
		hec_info("job %ld: %s %lld failed after %.2f s: %s", op->job, what(op),
			 (long long)op->id, secs, line);
	else
		hec_info("job %ld: %s %lld done: %s %d node%s (%.1f MB) in %.2f s", op->job, what(op),
			 (long long)op->id, op->revert ? "reverted" : "saved", d->nnodes,
			 d->nnodes == 1 ? "" : "s", (double)bytes / 1048576.0, secs);
	if (!cli) {
		hec_debug("job %ld: %s %lld: the CLI has gone; answer dropped", op->job, what(op),
			  (long long)op->id);
	} else {
		json_t *nodes = nodes_json(d);

		respond(cli->conn, failed ?
			json_pack("{s:b,s:s,s:o}", "ok", 0, "error", line, "nodes", nodes) :
			json_pack("{s:b,s:o}", "ok", 1, "nodes", nodes));
	}
	free(op);
}

static int snap_send(void *arg, const char *node, int64_t id)
{
	struct snap_op *op = arg;
	struct node *n = node_find(op->ctl, node);

	if (!n || !n->peer)
		return -ENOTCONN;
	return node_send(n, HEC_MSG_SNAPSHOT, json_pack("{s:I,s:I,s:b}", "job", (json_int_t)op->job,
							 "req", (json_int_t)id, "revert", op->revert));
}

/* SNAPSHOT_DONE from a node the request waits for. */
static int snap_answer(void *arg, const char *node, const json_t *body, char *why, size_t len)
{
	struct snap_op *op = arg;
	const char *error = json_string_value(json_object_get(body, "error"));

	if (json_integer_value(json_object_get(body, "job")) != op->job)
		return -ENOENT; /* the id is another job's: as unknown as any */
	if (error) {
		hec_warn("job %ld: %s %lld: %s failed: %s", op->job, what(op), (long long)op->id, node,
			 error);
		snprintf(why, len, "%s", error);
		return FANOUT_FAILED;
	}
	hec_debug("job %ld: %s %lld: %s done, %lld bytes in %lld ms", op->job, what(op),
		  (long long)op->id, node, (long long)json_integer_value(json_object_get(body, "bytes")),
		  (long long)json_integer_value(json_object_get(body, "ms")));
	return FANOUT_ANSWERED;
}

/* Why @j is not a running job, for "job 7 is not running (...)". */
static void not_running(const struct ctl_job *j, char *buf, size_t len)
{
	if (j->phase == PH_LAUNCHING)
		snprintf(buf, len, "launching");
	else if (j->phase == PH_ENDING)
		snprintf(buf, len, "ending as %s", job_state_name(j->final_state));
	else
		snprintf(buf, len, "%s", job_state_name(j->state));
}

void cli_snapshot(struct ctl *ctl, struct peer *p, struct ctl_job *j, int revert)
{
	struct fanout_req req = { .kind = HEC_MSG_SNAPSHOT_DONE, .what = "SNAPSHOT",
				  .timeout_ms = ctl->conf.snapshot_timeout, .owner = p,
				  .send = snap_send, .answer = snap_answer, .done = snap_done };
	long id = j->id;
	const char **names;
	struct snap_op *op;
	char why[64];
	int rc;

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
	if (j->snap) {
		respond_error(p->conn, "a %s of job %ld is already under way", what(j->snap), id);
		return;
	}
	op = calloc(1, sizeof(*op));
	names = calloc((size_t)j->nalloc + 1, sizeof(*names));
	if (!op || !names) {
		free(op);
		free(names);
		hec_err("job %ld: snapshot: out of memory", id);
		respond_error(p->conn, "controller out of memory");
		return;
	}
	*op = (struct snap_op){ .ctl = ctl, .job = id, .revert = revert,
				/* an earlier controller's answer never matches */
				.id = ctl_fresh_id(&ctl->snap_seq) };
	for (int i = 0; i < j->nalloc; i++)
		names[i] = j->alloc[i].name;
	req.id = op->id;
	req.nodes = names;
	req.nnodes = j->nalloc;
	req.arg = op;
	hec_info("job %ld: %s %lld requested by uid %u: %s on %d node%s", id, what(op),
		 (long long)op->id, (unsigned)p->uid,
		 revert ? "going back to the saved state" : "saving the state", j->nalloc,
		 j->nalloc == 1 ? "" : "s");
	j->snap = op; /* before the start: done may come at once and clear it */
	rc = fanout_start(ctl->fanout, &req);
	free(names);
	if (rc) {
		j->snap = NULL;
		hec_err("job %ld: %s not started: %s", id, what(op), strerror(-rc));
		if (rc == -ENOMEM)
			respond_error(p->conn, "controller out of memory");
		else
			respond_error(p->conn, "%s not started: %s", what(op), strerror(-rc));
		free(op);
	}
}

void snap_on_done(struct ctl *ctl, struct node *n, const json_t *body)
{
	int64_t id = json_integer_value(json_object_get(body, "req"));
	long job = (long)json_integer_value(json_object_get(body, "job"));
	int rc = fanout_answer(ctl->fanout, HEC_MSG_SNAPSHOT_DONE, id, n->name, body);

	if (rc)
		hec_debug("%s: SNAPSHOT_DONE for job %ld request %lld: %s; ignored", n->name, job,
			  (long long)id, rc == -ENOENT ? "no such request is waiting (late or unknown)" :
			  rc == -ESRCH ? "the job does not run there" :
			  "that node's answer is already counted");
}

void snap_job_ended(struct ctl *ctl, struct ctl_job *j)
{
	enum job_state s = job_state_final(j->state) ? j->state : j->final_state;
	int plain = !j->reason[0] || !strcmp(j->reason, "None");
	char ended[600];

	if (!j->snap)
		return;
	snprintf(ended, sizeof(ended), "job %ld ended (%s%s%s)", j->id, job_state_name(s),
		 plain ? "" : ": ", plain ? "" : j->reason);
	fanout_cancel(ctl->fanout, HEC_MSG_SNAPSHOT_DONE, j->snap->id, ended);
}
