/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Restarting vm jobs from their committed checkpoints (doc/design.md,
 * "Checkpoint and restart").
 *
 * A restart is a requeue.  `hec restart` and --restart auto (a partition
 * failed) write a restarts row and set the job's restore epoch; a job that
 * still has partitions ends "into PENDING" (phase ENDING with final state
 * PENDING in the catalog: KILL_JOB to every node), and once every node is
 * gone it is PENDING again with reason "Restart", keeping its id, output
 * and spool.  The scheduler places it like any job (hec restart --nodes: on
 * those nodes only); its LAUNCH carries `restore`, and when every node has
 * loaded its stream, START {restored} goes to the batch node and RESUME
 * {t} to every node.  A stream that does not load: the partitions are
 * killed and the restart falls back to the previous committed checkpoint,
 * said in the restarts row; with none left the job fails.
 *
 * Everything a restart needs is in the catalog (jobs.restore_epoch,
 * restart_nodes, guest_key, final_state, the restarts rows), so a
 * controller that restarts in the middle of one carries on.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hec/common.h"
#include "hec/fault.h"
#include "launcher/ctld.h"

struct restart_op {
	int n;                       /* its restarts row */
	char errors[1024];           /* checkpoints that did not load, "; "-joined */
};

/* The restart under way of @j, made from its last restarts row after a
 * controller restart.  NULL on ENOMEM or a catalog error (logged). */
static struct restart_op *op_get(struct ctl *ctl, struct ctl_job *j)
{
	json_t *rows = NULL, *last;

	if (j->restart)
		return j->restart;
	j->restart = calloc(1, sizeof(*j->restart));
	if (!j->restart)
		return NULL;
	if (db_restarts_list(ctl->db, j->id, &rows) == 0 &&
	    (last = json_array_get(rows, json_array_size(rows) - 1))) {
		j->restart->n = (int)json_integer_value(json_object_get(last, "n"));
		snprintf(j->restart->errors, sizeof(j->restart->errors), "%s",
			 json_string_value(json_object_get(last, "error")) ?
			 json_string_value(json_object_get(last, "error")) : "");
	}
	json_decref(rows);
	return j->restart;
}

static void op_end(struct ctl_job *j)
{
	free(j->restart);
	j->restart = NULL;
	json_decref(j->restart_nodes);
	j->restart_nodes = NULL;
}

/* Kill what runs of @j, then requeue it (restart_requeue) from
 * j->restore_epoch; a job without partitions is requeued at once. */
static void kill_and_requeue(struct ctl *ctl, struct ctl_job *j, const char *why)
{
	snprintf(j->reason, sizeof(j->reason), "restarting from checkpoint %lld: %s",
		 (long long)j->restore_epoch, why);
	ckpt_job_ended(ctl, j, "the job is restarting");
	if (job_state_final(j->state) || j->phase == PH_NONE) {
		restart_requeue(ctl, j);
		return;
	}
	j->final_state = JOB_PENDING;
	j->phase = PH_ENDING;
	ctl_gang_pin(ctl, j, 1);
	job_save(ctl, j);
	hec_info("job %ld: %s; cleaning up its nodes", j->id, j->reason);
	job_kill_nodes(ctl, j);
}

int restart_begin(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const json_t *nodes,
		  const char *reason, char *why, size_t len)
{
	struct restart_op *op;
	int n, rc;

	job_adopt(ctl, j); /* an ended job read back from the catalog lives again */
	/* An ended job's environment, argv and script left memory with it; a
	 * proc job's batch step needs them again (a vm job's runs on in its
	 * guest, but they cost nothing to have back). */
	if (!j->env && (rc = db_job_payload(ctl->db, j))) {
		snprintf(why, len, "cannot read the job's environment back from the catalog: %s",
			 rc == -EIO ? db_errmsg(ctl->db) : strerror(-rc));
		hec_err("job %ld: %s", j->id, why);
		return rc;
	}
	rc = db_restart_add(ctl->db, j->id, ctl_now(), epoch, reason, &n);
	if (rc) {
		snprintf(why, len, "cannot record the restart in the catalog: %s", db_errmsg(ctl->db));
		hec_err("job %ld: %s", j->id, why);
		return rc;
	}
	op_end(j);
	op = op_get(ctl, j);
	if (!op) {
		snprintf(why, len, "controller out of memory");
		return -ENOMEM;
	}
	op->n = n;
	op->errors[0] = 0;
	if (strncmp(reason, RESTART_BY_USER, strlen(RESTART_BY_USER)))
		j->nrestarts++;
	j->restore_epoch = epoch;
	j->restart_nodes = nodes ? json_deep_copy(nodes) : NULL;
	j->resume_sent = 0;
	hec_info("job %ld: restart %d from checkpoint %lld (%s)", j->id, n, (long long)epoch, reason);
	kill_and_requeue(ctl, j, reason);
	return 0;
}

void restart_requeue(struct ctl *ctl, struct ctl_job *j)
{
	int was_final = job_state_final(j->state);

	if (!was_final) {
		for (int i = 0; i < j->nalloc; i++) {
			struct node *n = j->alloc[i].node;

			if (n && n->njobs > 0)
				n->njobs--;
		}
		ctl_gang_remove(ctl, j);
	}
	free(j->alloc);
	j->alloc = NULL;
	j->nalloc = 0;
	j->state = JOB_PENDING;
	j->phase = PH_NONE;
	j->final_state = JOB_NSTATES;
	j->started = j->exited = j->exit_code = j->sig = 0;
	j->start_time = j->end_time = 0;
	j->slot = -1;
	j->ckpt_next = 0;
	/* a requeue without a checkpoint (job_requeue) keeps its reason */
	if (j->restore_epoch)
		snprintf(j->reason, sizeof(j->reason), "Restart");
	job_save(ctl, j);
	ctl_gang_add_pending(ctl, j);
	ctl->sched_needed = 1;
	if (j->restore_epoch)
		hec_info("job %ld: PENDING (Restart from checkpoint %lld%s)", j->id,
			 (long long)j->restore_epoch, j->restart_nodes ? " on the nodes asked" : "");
	else
		hec_info("job %ld: PENDING again (%s)", j->id, j->reason);
}

int restart_wanted(struct ctl *ctl, struct ctl_job *j, const char *why)
{
	char err[600];
	int64_t epoch;
	int rc;

	if (!j->restart_auto || ctl->shutting_down || job_state_final(j->state) ||
	    j->phase == PH_ENDING || j->phase == PH_NONE)
		return 0;
	if (j->nrestarts >= j->max_restarts) {
		hec_warn("job %ld: %s; no automatic restart left (--max-restarts %d)", j->id, why,
			 j->max_restarts);
		return 0;
	}
	rc = ckpt_newest(ctl, j->id, 0, &epoch);
	if (rc) {
		hec_warn("job %ld: %s; not restarted: %s", j->id, why,
			 rc == -ENOENT ? "no committed checkpoint" : db_errmsg(ctl->db));
		return 0;
	}
	if (!ctl->stores) {
		hec_warn("job %ld: %s; not restarted: no storage server has registered", j->id, why);
		return 0;
	}
	return restart_begin(ctl, j, epoch, NULL, why, err, sizeof(err)) == 0;
}

/* ---- the launch ---- */

json_t *restart_launch_restore(struct ctl *ctl, struct ctl_job *j, int i, char *why, size_t len)
{
	char servers[8192], part[24];
	json_t *rows = NULL, *row, *pt, *found = NULL, *out = NULL;
	int replicas, rc;
	size_t k;

	snprintf(part, sizeof(part), j->vm ? "p%d" : "app", i);
	rc = ckpt_store_args(ctl, servers, sizeof(servers), &replicas);
	if (rc) {
		snprintf(why, len, "%s", rc == -ENOENT ? "no storage server has registered" :
			 strerror(-rc));
		return NULL;
	}
	if (db_ckpts_list(ctl->db, j->id, "committed", &rows)) {
		snprintf(why, len, "cannot read the catalog: %s", db_errmsg(ctl->db));
		return NULL;
	}
	json_array_foreach(rows, k, row)
		if (json_integer_value(json_object_get(row, "epoch")) == j->restore_epoch)
			found = row;
	if (!found) {
		snprintf(why, len, "checkpoint %lld is not committed any more",
			 (long long)j->restore_epoch);
		goto out;
	}
	if ((int)json_array_size(json_object_get(found, "parts")) != (j->vm ? j->nalloc : 1)) {
		snprintf(why, len, "checkpoint %lld has %zu parts for %d nodes",
			 (long long)j->restore_epoch, json_array_size(json_object_get(found, "parts")),
			 j->nalloc);
		goto out;
	}
	out = json_pack("{s:I,s:s,s:s,s:i}", "epoch", (json_int_t)j->restore_epoch, "part", part,
			"servers", servers, "replicas", replicas);
	json_array_foreach(json_object_get(found, "parts"), k, pt) {
		const char *p = json_string_value(json_object_get(pt, "part"));
		const char *image = json_string_value(json_object_get(pt, "image"));
		const char *hash = json_string_value(json_object_get(pt, "hash"));

		if (!out || !p || strcmp(p, part))
			continue;
		if (image && *image)
			json_object_set_new(out, "image", json_string(image));
		if (hash && strlen(hash) == 16)
			json_object_set_new(out, "hash", json_string(hash));
		if (json_is_integer(json_object_get(pt, "bytes")))
			json_object_set(out, "bytes", json_object_get(pt, "bytes"));
	}
	if (!out)
		snprintf(why, len, "controller out of memory");
out:
	json_decref(rows);
	return out;
}

static void send_resume(struct ctl *ctl, struct ctl_job *j, struct node *only)
{
	int64_t t = hec_now_real_ns() + ctl_lead_ns(ctl);

	for (int i = 0; i < j->nalloc; i++) {
		struct node *n = j->alloc[i].node;

		if (n && n->peer && (!only || n == only))
			node_send(n, HEC_MSG_RESUME,
				  json_pack("{s:I,s:I}", "job", (json_int_t)j->id, "t", (json_int_t)t));
	}
	j->resume_sent = 1;
}

void restart_send_start(struct ctl *ctl, struct ctl_job *j)
{
	struct job_node *batch = &j->alloc[0];
	struct restart_op *op = op_get(ctl, j);
	json_t *body, *nodes = json_array();
	int rc;

	body = json_pack("{s:I,s:i,s:s,s:[],s:s,s:b}", "job", (json_int_t)j->id, "ntasks",
			 j->ntasks, "cwd", j->cwd ? j->cwd : "/", "env", "output", j->output,
			 "restored", 1);
	if (body && j->error)
		json_object_set_new(body, "error", json_string(j->error));
	for (int i = 0; nodes && i < j->nalloc; i++)
		json_array_append_new(nodes, json_string(j->alloc[i].name));
	/* as job_send_start: START recorded before it goes out */
	j->phase = PH_RUNNING;
	j->started = 1;
	ctl_gang_pin(ctl, j, 0);
	job_save(ctl, j);
	hec_fault("ctl.start.after_db");
	if (op && db_restart_update(ctl->db, j->id, op->n, j->restore_epoch, nodes, NULL))
		hec_warn("job %ld: restart %d: catalog update failed: %s", j->id, op->n,
			 db_errmsg(ctl->db));
	if (db_ckpt_restored(ctl->db, j->id, j->restore_epoch))
		hec_warn("job %ld: checkpoint %lld: catalog update failed: %s", j->id,
			 (long long)j->restore_epoch, db_errmsg(ctl->db));
	json_decref(nodes);
	rc = node_send(batch->node, HEC_MSG_START, body);
	if (rc) {
		job_end(ctl, j, JOB_FAILED, "%s: START not sent: %s", batch->name, strerror(-rc));
		return;
	}
	send_resume(ctl, j, NULL);
	hec_info("job %ld: restored from checkpoint %lld on %d node%s; running again", j->id,
		 (long long)j->restore_epoch, j->nalloc, j->nalloc == 1 ? "" : "s");
	op_end(j);
	job_save(ctl, j);
}

void restart_started(struct ctl *ctl, struct ctl_job *j)
{
	struct restart_op *op = op_get(ctl, j);
	json_t *nodes = json_array();

	for (int i = 0; nodes && i < j->nalloc; i++)
		json_array_append_new(nodes, json_string(j->alloc[i].name));
	if (op && db_restart_update(ctl->db, j->id, op->n, j->restore_epoch, nodes, NULL))
		hec_warn("job %ld: restart %d: catalog update failed: %s", j->id, op->n,
			 db_errmsg(ctl->db));
	if (db_ckpt_restored(ctl->db, j->id, j->restore_epoch))
		hec_warn("job %ld: checkpoint %lld: catalog update failed: %s", j->id,
			 (long long)j->restore_epoch, db_errmsg(ctl->db));
	json_decref(nodes);
	j->app_loaded = 0;
	hec_info("job %ld: its batch step runs again on %d node%s; the program restores checkpoint %lld",
		 j->id, j->nalloc, j->nalloc == 1 ? "" : "s", (long long)j->restore_epoch);
	op_end(j);
}

void restart_reconciled(struct ctl *ctl, struct ctl_job *j, struct node *n)
{
	/* a restored job whose RESUME this controller never sent: it may have
	 * been lost with the one before (RESUME of a running guest is a no-op) */
	if (j->restore_epoch && j->started && !j->resume_sent && j->state == JOB_RUNNING)
		send_resume(ctl, j, n);
}

static int load_failed(struct ctl *ctl, struct ctl_job *j, const char *node, const char *error);

int restart_launch_failed(struct ctl *ctl, struct ctl_job *j, const char *node,
			  const char *error)
{
	int64_t failed = j->restore_epoch;

	if (!failed || j->phase != PH_LAUNCHING)
		return 0;
	return load_failed(ctl, j, node, error);
}

int restart_app_load_failed(struct ctl *ctl, struct ctl_job *j, const char *node,
			    const char *error)
{
	if (j->vm || !j->restore_epoch || !j->started || j->phase != PH_RUNNING || j->app_loaded)
		return 0;
	return load_failed(ctl, j, node, error);
}

/* Checkpoint j->restore_epoch did not load on @node: the previous one, or
 * the job fails. */
static int load_failed(struct ctl *ctl, struct ctl_job *j, const char *node, const char *error)
{
	struct restart_op *op;
	int64_t failed = j->restore_epoch, prev;
	char add[700], why[800], where[600];
	size_t used;

	op = op_get(ctl, j);
	reason_for_node(where, sizeof(where), node, error);
	snprintf(add, sizeof(add), "checkpoint %lld did not load: %s", (long long)failed, where);
	hec_warn("job %ld: %s", j->id, add);
	if (op) {
		used = strlen(op->errors);
		snprintf(op->errors + used, sizeof(op->errors) - used, "%s%s", used ? "; " : "", add);
	}
	if (ckpt_newest(ctl, j->id, failed, &prev)) {
		if (op && db_restart_update(ctl->db, j->id, op->n, failed, NULL, op->errors))
			hec_warn("job %ld: catalog update failed: %s", j->id, db_errmsg(ctl->db));
		j->restore_epoch = 0;
		op_end(j);
		job_end(ctl, j, JOB_FAILED, "restart failed, no earlier checkpoint: %s", add);
		return 1;
	}
	if (op && db_restart_update(ctl->db, j->id, op->n, prev, NULL, op->errors))
		hec_warn("job %ld: catalog update failed: %s", j->id, db_errmsg(ctl->db));
	j->restore_epoch = prev;
	snprintf(why, sizeof(why), "falling back: %s", add);
	kill_and_requeue(ctl, j, why);
	return 1;
}

/* Is a storage server up to read a checkpoint from?  After a controller
 * restart the nodes often register before the servers do. */
static int stores_up(const struct ctl *ctl)
{
	for (const struct store *s = ctl->stores; s; s = s->next)
		if (s->peer)
			return 1;
	return 0;
}

const char *restart_waits_for(const struct ctl *ctl, const struct ctl_job *j)
{
	if (!j->restore_epoch || j->state != JOB_PENDING)
		return NULL;
	return stores_up(ctl) ? "Restart" : "Restart (waiting for a storage server)";
}

int restart_col_ok(void *arg, long id, int col)
{
	struct ctl *ctl = arg;
	struct ctl_job *j = job_find(ctl, id);
	struct node *n = ctl->nodes;
	size_t i;
	json_t *v;

	if (!j || j->state != JOB_PENDING || !j->restore_epoch)
		return 1;
	if (!stores_up(ctl))
		return 0;
	if (!j->restart_nodes)
		return 1;
	for (int c = 0; n && c < col; c++)
		n = n->next;
	json_array_foreach(j->restart_nodes, i, v)
		if (n && !strcmp(n->name, json_string_value(v)))
			return 1;
	return 0;
}

/* ---- the request ---- */

void cli_restart(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body)
{
	const json_t *want = json_object_get(body, "epoch"), *nodes = json_object_get(body, "nodes");
	char reason[64], why[600];
	int64_t epoch = 0;
	json_t *rows = NULL, *row;
	size_t i, k;
	int rc, found = 0;

	if (ctl->shutting_down) {
		respond_error(p->conn, "the controller is shutting down");
		return;
	}
	if (j->restore_epoch && (j->state == JOB_PENDING || j->phase == PH_LAUNCHING ||
				 (j->phase == PH_ENDING && j->final_state == JOB_PENDING))) {
		respond_error(p->conn, "job %ld is already restarting (from checkpoint %lld)", j->id,
			      (long long)j->restore_epoch);
		return;
	}
	if (j->state == JOB_PENDING) {
		respond_error(p->conn, "job %ld has not started yet (PENDING: %s)", j->id, j->reason);
		return;
	}
	if (j->phase == PH_ENDING) {
		respond_error(p->conn, "job %ld is ending (%s); restart it once it has ended", j->id,
			      job_state_name(j->final_state));
		return;
	}
	if (want) {
		epoch = json_integer_value(want);
		rc = db_ckpts_list(ctl->db, j->id, "committed", &rows);
		json_array_foreach(rows, i, row)
			found |= json_integer_value(json_object_get(row, "epoch")) == epoch;
		json_decref(rows);
		if (rc) {
			respond_error(p->conn, "cannot read the catalog: %s", db_errmsg(ctl->db));
			return;
		}
		if (!found) {
			respond_error(p->conn, "job %ld has no committed checkpoint %lld (hec ckpts %ld)",
				      j->id, (long long)epoch, j->id);
			return;
		}
	} else if ((rc = ckpt_newest(ctl, j->id, 0, &epoch))) {
		respond_error(p->conn, rc == -ENOENT ? "job %ld has no committed checkpoint" :
			      "job %ld: cannot read the catalog", j->id);
		return;
	}
	json_array_foreach(nodes, i, row) {
		const char *name = json_string_value(row);

		if (!node_find(ctl, name)) {
			respond_error(p->conn, "--nodes: no node %s in the cluster", name);
			return;
		}
		for (k = 0; k < i; k++)
			if (!strcmp(name, json_string_value(json_array_get(nodes, k)))) {
				respond_error(p->conn, "--nodes: %s twice", name);
				return;
			}
	}
	if (nodes && (int)json_array_size(nodes) < j->nnodes) {
		respond_error(p->conn, "--nodes names %zu node%s; job %ld needs %d", json_array_size(nodes),
			      json_array_size(nodes) == 1 ? "" : "s", j->id, j->nnodes);
		return;
	}
	if (!ctl->stores) {
		respond_error(p->conn, "no storage server has registered: the checkpoint cannot be read");
		return;
	}
	snprintf(reason, sizeof(reason), RESTART_BY_USER "uid %u", (unsigned)p->uid);
	if (restart_begin(ctl, j, epoch, json_array_size(nodes) ? nodes : NULL, reason, why,
			  sizeof(why))) {
		respond_error(p->conn, "%s", why);
		return;
	}
	respond(p->conn, json_pack("{s:b,s:I}", "ok", 1, "epoch", (json_int_t)epoch));
}
