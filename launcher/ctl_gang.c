/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Gang scheduling in the controller (doc/design.md, "Gang scheduling").
 *
 * The matrix (gang/matrix.c) decides who runs in which slot on which node;
 * this file feeds it the jobs and node facts, turns its decisions into job
 * state changes (start, SUSPENDED, resumed), publishes a schedule epoch to
 * every node after each change, answers the agents' clock probes and
 * gathers their switch records for `gang_stats`.
 *
 * Epochs are the only messages the schedule needs: a node switches at
 * start + k x slot_ns on its own clock estimate, so the controller stays out
 * of the per-slot path entirely.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "hec/fault.h"
#include "hec/gang.h"
#include "ctld.h"
#include "fanout.h"

/* An epoch starts this far ahead so that every node has it in time:
 * 4 x the largest RTT, at least 50 ms (a LAUNCH ahead of it takes ~30 ms
 * to make cgroups), and never more than 1 s (a node
 * reporting an absurd RTT must not stall everybody's schedule). */
#define EPOCH_LEAD_MIN_NS 50000000LL
#define EPOCH_LEAD_MAX_NS 1000000000LL
#define STATS_TIMEOUT_MS 2000

int ctl_gang_timeslice_parse(const char *s)
{
	if (!strcmp(s, "gang"))
		return 0;
	if (!strcmp(s, "none"))
		return 1;
	return -EINVAL;
}

int ctl_gang_init(struct ctl *ctl)
{
	int rc;

	ctl->slot_ns = ctl->conf.gang_slot * 1000000LL;
	ctl->max_share = (int)ctl->conf.max_share;
	ctl->timeslice_none = ctl_gang_timeslice_parse(ctl->conf.timeslice) == 1;
	rc = gm_new(ctl->max_share, &ctl->gang);
	if (rc)
		return rc;
	gm_set_preempt(ctl->gang, !ctl->timeslice_none);
	gm_set_col_filter(ctl->gang, restart_col_ok, ctl); /* hec restart --nodes */
	return 0;
}

/*
 * `hec gang set` outlives a restart: the catalog keeps the settings with
 * the file's at the time ("gang" setting, JSON).  If hecctld.conf's gang
 * settings have changed since, the operator's edit is the newer word and
 * the kept ones are dropped.
 */
#define GANG_SETTING "gang"

static json_t *conf_gang(const struct ctl *ctl)
{
	return json_pack("{s:I,s:I,s:s}", "gang_slot", (json_int_t)ctl->conf.gang_slot, "max_share",
			 (json_int_t)ctl->conf.max_share, "timeslice", ctl->conf.timeslice);
}

static void gang_save(struct ctl *ctl)
{
	json_t *v = json_pack("{s:I,s:i,s:b,s:o*}", "slot_ns", (json_int_t)ctl->slot_ns, "max_share",
			      ctl->max_share, "timeslice_none", ctl->timeslice_none, "conf",
			      conf_gang(ctl));
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;

	if (!text || db_setting_put(ctl->db, GANG_SETTING, text))
		hec_err("cannot keep the gang settings in the catalog (they hold until the controller restarts): %s",
			text ? db_errmsg(ctl->db) : strerror(ENOMEM));
	free(text);
	json_decref(v);
}

void ctl_gang_restore(struct ctl *ctl)
{
	char text[1024];
	json_t *v, *conf;
	json_int_t slot, share;
	int rc = db_setting_get(ctl->db, GANG_SETTING, text, sizeof(text));

	if (rc == -ENOENT)
		return;
	v = rc ? NULL : json_loads(text, 0, NULL);
	conf = conf_gang(ctl);
	slot = json_integer_value(json_object_get(v, "slot_ns"));
	share = json_integer_value(json_object_get(v, "max_share"));
	if (!v || !conf || slot < 1000000 || slot > 60000000000LL || share < 1 ||
	    share > GANG_MAX_ROWS || !json_is_boolean(json_object_get(v, "timeslice_none"))) {
		hec_warn("the gang settings kept in the catalog are unreadable; hecctld.conf's hold");
		db_setting_put(ctl->db, GANG_SETTING, NULL);
	} else if (!json_equal(json_object_get(v, "conf"), conf)) {
		hec_info("hecctld.conf's gang settings changed since `hec gang set`: the file's hold");
		db_setting_put(ctl->db, GANG_SETTING, NULL);
	} else {
		ctl->slot_ns = slot;
		ctl->max_share = (int)share;
		ctl->timeslice_none = json_is_true(json_object_get(v, "timeslice_none"));
		gm_set_max_share(ctl->gang, ctl->max_share);
		gm_set_preempt(ctl->gang, !ctl->timeslice_none);
		hec_info("gang settings of `hec gang set`, kept in the catalog: slot %.3g ms, max_share %d, timeslice %s",
			 ctl->slot_ns / 1e6, ctl->max_share, ctl->timeslice_none ? "none" : "gang");
	}
	json_decref(conf);
	json_decref(v);
}

void ctl_gang_fini(struct ctl *ctl)
{
	gm_free(ctl->gang);
	ctl->gang = NULL;
}

int node_col(const struct ctl *ctl, const struct node *n)
{
	int c = 0;

	for (const struct node *o = ctl->nodes; o; o = o->next, c++)
		if (o == n)
			return c;
	return -1;
}

/* Nodes by column. \return a malloc'ed array of ctl->nnodes, or NULL. */
static struct node **col_nodes(const struct ctl *ctl)
{
	struct node **a = calloc((size_t)ctl->nnodes + 1, sizeof(*a));
	int c = 0;

	for (struct node *n = ctl->nodes; a && n; n = n->next)
		a[c++] = n;
	return a;
}

static struct gang_job_spec job_spec(const struct ctl_job *j, int nodes)
{
	return (struct gang_job_spec){ .id = j->id, .priority = j->priority, .nodes = nodes,
				       .share = j->share, .mem_mb = j->mem_mb };
}

void ctl_gang_add_pending(struct ctl *ctl, struct ctl_job *j)
{
	struct gang_job_spec spec = job_spec(j, j->nnodes);
	int rc = gm_job_add(ctl->gang, &spec);

	if (rc) {
		hec_err("job %ld: cannot enter the gang matrix: %s", j->id, strerror(-rc));
		job_end(ctl, j, JOB_FAILED, "controller could not queue it: %s", strerror(-rc));
	}
}

void ctl_gang_add_restored(struct ctl *ctl, struct ctl_job *j)
{
	int cols[j->nalloc > 0 ? j->nalloc : 1];
	struct gang_job_spec spec;
	int n = 0, rc;

	/* Nodes the catalog names but nobody knows are gone (the job ends). */
	for (int i = 0; i < j->nalloc; i++)
		if (j->alloc[i].node)
			cols[n++] = node_col(ctl, j->alloc[i].node);
	if (!n)
		return;
	spec = job_spec(j, n);
	rc = gm_job_restore(ctl->gang, &spec, cols, n, j->share && j->state == JOB_SUSPENDED,
			      j->slot);
	if (rc) {
		hec_err("job %ld: cannot be put back on its nodes in the gang matrix: %s", j->id,
			strerror(-rc));
		job_end(ctl, j, JOB_FAILED, "controller restart: its nodes are held by another job");
		return;
	}
	if (j->phase == PH_ENDING || j->phase == PH_LAUNCHING)
		gm_job_pin(ctl->gang, j->id, 1);
}

void ctl_gang_pin(struct ctl *ctl, struct ctl_job *j, int pinned)
{
	gm_job_pin(ctl->gang, j->id, pinned); /* -ENOENT: not in the matrix yet */
}

void ctl_gang_remove(struct ctl *ctl, struct ctl_job *j)
{
	gm_job_remove(ctl->gang, j->id);
}

/* ---- scheduling ---- */

static void sync_cols(struct ctl *ctl)
{
	int c = 0;

	for (struct node *n = ctl->nodes; n; n = n->next, c++)
		gm_col_set(ctl->gang, c, n->memory_mb > 0 ? n->memory_mb : 0,
			     !ctl->shutting_down && node_up(n) && !n->stale);
}

/* Make @j what the matrix says it is. */
static void apply(struct ctl *ctl, struct ctl_job *j, const struct gang_job_info *gi,
		  struct node **cols)
{
	if (j->state == JOB_PENDING) {
		if (gi->state == GANG_PENDING) {
			const char *restart = restart_waits_for(ctl, j);

			if (!restart && gi->wait == GANG_WAIT_CKPT)
				snprintf(j->reason, sizeof(j->reason),
					 "waiting for job %ld to checkpoint before preempting it",
					 gi->ckpt_of);
			else
				snprintf(j->reason, sizeof(j->reason), "%s", restart ? restart :
					 gi->wait == GANG_WAIT_PRIORITY ? "Priority" : "Resources");
		} else if (gi->state == GANG_RUNNING) {
			struct node *picked[gi->ncols > 0 ? gi->ncols : 1];

			for (int k = 0; k < gi->ncols; k++)
				picked[k] = cols[gi->cols[k]];
			j->slot = gi->row;
			job_start(ctl, j, picked, gi->ncols);
		}
		return;
	}
	if (j->phase == PH_ENDING || j->phase == PH_NONE) {
		j->slot = gi->row;
		return;
	}
	if (gi->state == GANG_SUSPENDED && j->state != JOB_SUSPENDED) {
		j->state = JOB_SUSPENDED;
		j->slot = -1;
		j->susp_since_ns = hec_now_real_ns();
		if (gi->preempted_by)
			snprintf(j->reason, sizeof(j->reason), "preempted by job %ld", gi->preempted_by);
		else
			snprintf(j->reason, sizeof(j->reason), "no slot free within max_share %d",
				 ctl->max_share);
		job_save(ctl, j);
		hec_fault("ctl.suspend.after_db"); /* SUSPENDED recorded, no EPOCH out */
		hec_info("job %ld: SUSPENDED (%s)", j->id, j->reason);
	} else if (gi->state == GANG_RUNNING && j->state == JOB_SUSPENDED) {
		int64_t now = hec_now_real_ns();

		j->state = JOB_RUNNING;
		j->slot = gi->row;
		if (j->susp_since_ns && now > j->susp_since_ns)
			j->susp_ns += now - j->susp_since_ns;
		j->susp_since_ns = 0;
		snprintf(j->reason, sizeof(j->reason), "None");
		job_save(ctl, j);
		hec_fault("ctl.resume.after_db"); /* RUNNING again recorded, no EPOCH out */
		hec_info("job %ld: resumed in slot %d", j->id, j->slot);
	} else {
		/* Rows move down as others empty out; the catalog's copy is only
		 * a hint for the next start, so it is not written for this. */
		j->slot = gi->row;
	}
}

/* A job id as node @n should see it: 0 unless the job still has a
 * partition there (a node that already cleaned up is not told about it). */
static long visible(struct ctl *ctl, long id, const struct node *n)
{
	struct ctl_job *j = id ? job_find(ctl, id) : NULL;
	struct job_node *jn;

	if (!j || job_state_final(j->state))
		return 0;
	jn = job_node_of(j, n);
	return jn && !jn->gone ? id : 0;
}

static int epoch_nslots(const struct ctl *ctl)
{
	int rows = gm_nrows(ctl->gang);

	return ctl->timeslice_none || rows < 1 ? 1 : rows;
}

static json_t *node_epoch(struct ctl *ctl, const struct node *n, int col)
{
	json_t *slots = json_array(), *frozen = json_array();
	long *ids = NULL;
	int nsusp;

	for (int r = 0; slots && r < ctl->epoch.nslots; r++)
		json_array_append_new(slots, json_integer(ctl->timeslice_none ? 0 :
					visible(ctl, gm_cell(ctl->gang, r, col), n)));
	nsusp = gm_col_suspended(ctl->gang, col, NULL, 0);
	if (nsusp > 0 && (ids = calloc((size_t)nsusp, sizeof(*ids))))
		nsusp = gm_col_suspended(ctl->gang, col, ids, nsusp);
	for (int i = 0; ids && frozen && i < nsusp; i++)
		if (visible(ctl, ids[i], n))
			json_array_append_new(frozen, json_integer(ids[i]));
	free(ids);
	if (!slots || !frozen || (nsusp > 0 && !ids)) {
		json_decref(slots);
		json_decref(frozen);
		return NULL;
	}
	return json_pack("{s:I,s:I,s:I,s:i,s:o,s:o}", "epoch", (json_int_t)ctl->epoch.id,
			 "start", (json_int_t)ctl->epoch.start, "slot_ns", (json_int_t)ctl->epoch.slot_ns,
			 "nslots", ctl->epoch.nslots, "slots", slots, "frozen", frozen);
}

int64_t ctl_lead_ns(const struct ctl *ctl)
{
	int64_t rtt = 0, lead;

	for (const struct node *n = ctl->nodes; n; n = n->next)
		if (node_up(n) && n->rtt_ns > rtt)
			rtt = n->rtt_ns;
	lead = rtt > EPOCH_LEAD_MAX_NS / 4 ? EPOCH_LEAD_MAX_NS : 4 * rtt;
	return lead < EPOCH_LEAD_MIN_NS ? EPOCH_LEAD_MIN_NS : lead;
}

/* A new epoch to every connected node (also those without jobs). */
static void publish(struct ctl *ctl)
{
	int64_t now = hec_now_real_ns(), lead, id;
	int c = 0, sent = 0;
	struct node *n;

	ctl->epoch_needed = 0;
	ctl->gang_published = gm_version(ctl->gang);
	lead = ctl_lead_ns(ctl);
	id = ctl_fresh_id(&ctl->epoch.id);
	ctl->epoch = (struct epoch){ .id = id, .start = now + lead, .slot_ns = ctl->slot_ns,
				     .nslots = epoch_nslots(ctl) };
	ctl->epochs_due = 0;
	for (n = ctl->nodes; n; n = n->next, c++) {
		json_t *body;

		n->epoch_due = 0;
		if (!node_up(n))
			continue;
		body = node_epoch(ctl, n, c);
		if (!body) {
			hec_err("%s: epoch %lld not sent: out of memory", n->name, (long long)id);
			ctl->epoch_needed = 1; /* try again on the next tick */
			continue;
		}
		if (!node_send(n, HEC_MSG_EPOCH, body))
			sent++;
	}
	hec_log(sent ? HEC_LOG_INFO : HEC_LOG_DEBUG,
		"epoch %lld: %d slot%s of %.3g ms (%s) starting in %.1f ms, sent to %d node%s",
		 (long long)id, ctl->epoch.nslots, ctl->epoch.nslots == 1 ? "" : "s",
		 ctl->slot_ns / 1e6, ctl->timeslice_none ? "timeslice none" : "gang",
		 lead / 1e6, sent, sent == 1 ? "" : "s");
}

/* The epoch in force to the nodes that registered since it went out. */
static void publish_due(struct ctl *ctl)
{
	int c = 0, sent = 0;

	ctl->epochs_due = 0;
	for (struct node *n = ctl->nodes; n; n = n->next, c++) {
		if (!n->epoch_due)
			continue;
		n->epoch_due = 0;
		if (node_up(n) && !node_send(n, HEC_MSG_EPOCH, node_epoch(ctl, n, c)))
			sent++;
	}
	hec_debug("epoch %lld: sent to %d node%s that registered since", (long long)ctl->epoch.id,
		  sent, sent == 1 ? "" : "s");
}

/* ---- a preemption waits for its victim's checkpoint ---- */

/*
 * Like SLURM's preemption GraceTime: a running proc job whose program can
 * be checkpointed is guarded in the matrix, so a job of higher priority
 * that would suspend it waits (GANG_WAIT_CKPT) while the program is asked
 * for a checkpoint (its hecckpt_need says 1 at its next call).  The guard
 * goes, and the suspension happens, once the program wrote it
 * (the store runs on while the job is frozen: hec-store is the agent's
 * child, outside the job's cgroup), once it aborted, or after
 * preempt_ckpt_grace, whichever comes first.
 */
static int guard_wanted(struct ctl *ctl, const struct ctl_job *j)
{
	return ctl->conf.preempt_ckpt_grace > 0 && j->share && !j->pk_lift &&
	       ckpt_app_possible(ctl, j);
}

static void guards_sync(struct ctl *ctl)
{
	for (struct ctl_job *j = ctl->jobs; j; j = j->next) {
		int on = !job_state_final(j->state) && guard_wanted(ctl, j);

		/* set every pass: a restarted job is a new entry of the matrix */
		if (gm_job_guard(ctl->gang, j->id, on))
			on = 0;
		if (on && !j->pk_guard)
			hec_log(j->pk_again ? HEC_LOG_INFO : HEC_LOG_DEBUG,
				"job %ld: %sguarded: a job of higher priority waits up to %.3g s for its checkpoint before suspending it",
				j->id, j->pk_again ? "running again, " : "",
				ctl->conf.preempt_ckpt_grace / 1e3);
		if (on)
			j->pk_again = 0;
		j->pk_guard = on;
	}
}

/* The guard goes until the job is suspended or nobody wants it (a
 * preemptor may still wait for another victim's checkpoint). */
static void guard_lift(struct ctl *ctl, struct ctl_job *j)
{
	j->pk_lift = 1;
	j->pk_by = 0;
	j->pk_epoch = 0;
	j->pk_deadline = 0;
	ctl->sched_needed = 1;
}

void ctl_gang_ckpt_over(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const char *why)
{
	if (!j->pk_epoch || j->pk_epoch != epoch)
		return;
	if (why)
		hec_info("job %ld: checkpoint %lld failed (%s); job %ld preempts it without one",
			 j->id, (long long)epoch, why, j->pk_by);
	else
		hec_info("job %ld: checkpoint %lld captured; job %ld need not wait for it any more", j->id,
			 (long long)epoch, j->pk_by);
	guard_lift(ctl, j);
}

/* After a pass: checkpoint a guarded job a preemptor wants, give up after
 * the grace; a lifted guard comes back once the job is suspended (after
 * its resumption) or no longer wanted. */
static void preempt_step(struct ctl *ctl, struct ctl_job *j, const struct gang_job_info *gi)
{
	struct ctl_job *by = gi->ckpt_wanted_by ? job_find(ctl, gi->ckpt_wanted_by) : NULL;
	int64_t now = hec_now_mono_ns(), epoch = 0;
	char why[600];
	int rc;

	if (j->pk_lift) {
		if (j->state == JOB_RUNNING && by)
			return;
		j->pk_lift = 0;
		j->pk_again = j->state == JOB_SUSPENDED;
		return;
	}
	if (!by || !j->pk_guard)
		return;
	if (j->pk_by) {
		if (now < j->pk_deadline)
			return;
		snprintf(why, sizeof(why),
			 "job %ld did not wait longer: preempt_ckpt_grace %.3g s passed before the program wrote it",
			 j->pk_by, ctl->conf.preempt_ckpt_grace / 1e3);
		hec_info("job %ld: no checkpoint within preempt_ckpt_grace %.3g s; job %ld preempts it without one",
			 j->id, ctl->conf.preempt_ckpt_grace / 1e3, j->pk_by);
		epoch = j->pk_epoch;
		j->pk_epoch = 0; /* its abort is no news here */
		ckpt_preempt_give_up(ctl, j, epoch, why);
		guard_lift(ctl, j);
		return;
	}
	rc = ckpt_preempt_start(ctl, j, by, &epoch, why, sizeof(why));
	if (rc) {
		hec_info("job %ld: no new checkpoint before job %ld preempts it: %s", j->id, by->id, why);
		guard_lift(ctl, j);
		return;
	}
	j->pk_by = by->id;
	j->pk_epoch = epoch;
	j->pk_deadline = now + ctl->conf.preempt_ckpt_grace * 1000000LL;
	hec_info("job %ld: job %ld (priority %d) waits up to %.3g s for its checkpoint %lld before suspending it",
		 j->id, by->id, by->priority, ctl->conf.preempt_ckpt_grace / 1e3, (long long)epoch);
}

/*
 * A job that starts or resumes in this pass runs first in the epoch the
 * pass publishes: its row becomes row 0, the others keep their cyclic
 * order.  An epoch begins with row 0, so a newcomer left in the last row
 * would wait for every other row's slot first (two whole slots for the
 * third job: 10 s at 5 s slots, bench/gang-vs-slurm), as no user of a
 * time-sharing scheduler expects.  The first such job in the job list
 * (oldest first) wins; the others follow in the cycle.
 */
static void newcomer_first(struct ctl *ctl)
{
	struct ctl_job *j;

	for (j = ctl->jobs; j; j = j->next) {
		struct gang_job_info gi;

		if ((j->state != JOB_PENDING && j->state != JOB_SUSPENDED) ||
		    gm_job_info(ctl->gang, j->id, &gi) || gi.state != GANG_RUNNING || gi.row < 0)
			continue;
		if (gi.row == 0 || gm_rows_rotate(ctl->gang, gi.row))
			return;
		hec_debug("job %ld: its row %d runs first in the next epoch", j->id, gi.row);
		break;
	}
	if (!j)
		return;
	/* Every running job's row moved: the catalog's hints follow, so that a
	 * restarted controller rebuilds this matrix (gm_repack puts each job
	 * back at its hint), not the one before the turn. */
	for (j = ctl->jobs; j; j = j->next) {
		struct gang_job_info gi;

		if (j->state != JOB_RUNNING || gm_job_info(ctl->gang, j->id, &gi) ||
		    gi.state != GANG_RUNNING || gi.row < 0 || gi.row == j->slot)
			continue;
		j->slot = gi.row;
		job_save(ctl, j);
	}
}

void ctl_schedule(struct ctl *ctl)
{
	struct node **cols;
	struct ctl_job *j;

	ctl->sched_needed = 0;
	ctl_nodes_save(ctl); /* durable before a job is placed on them */
	if (ctl->shutting_down)
		return;
	sync_cols(ctl);
	guards_sync(ctl);
	gm_schedule(ctl->gang);
	newcomer_first(ctl);
	cols = col_nodes(ctl);
	if (!cols) {
		hec_err("scheduler: out of memory; will retry");
		ctl->sched_needed = 1;
		return;
	}
	for (j = ctl->jobs; j; j = j->next) {
		struct gang_job_info gi;

		if (job_state_final(j->state) || gm_job_info(ctl->gang, j->id, &gi))
			continue;
		apply(ctl, j, &gi, cols);
		preempt_step(ctl, j, &gi);
	}
	free(cols);
	if (ctl->epoch_needed || gm_version(ctl->gang) != ctl->gang_published)
		publish(ctl);
	else if (ctl->epochs_due)
		publish_due(ctl);
}

/* ---- clock probes ---- */

void ctl_gang_time_req(struct ctl *ctl, struct node *n, const json_t *body, int64_t t2)
{
	json_t *resp = json_pack("{s:I,s:I}", "t1", json_integer_value(json_object_get(body, "t1")),
				 "t2", (json_int_t)t2);

	(void)ctl;
	if (resp)
		json_object_set_new(resp, "t3", json_integer(hec_now_real_ns()));
	node_send(n, HEC_MSG_TIME_RESP, resp);
}

/* ---- the `gang` request ---- */

static json_t *ctl_gang_json(struct ctl *ctl)
{
	json_t *rows = json_array(), *names = json_array(), *susp = json_array();
	int nrows = gm_nrows(ctl->gang) > 0 ? gm_nrows(ctl->gang) : 1;
	struct node *n;
	int c;

	for (n = ctl->nodes; names && n; n = n->next)
		if (node_up(n))
			json_array_append_new(names, json_string(n->name));
	for (int r = 0; rows && r < nrows; r++) {
		json_t *cells = json_object();

		for (n = ctl->nodes, c = 0; cells && n; n = n->next, c++)
			if (node_up(n))
				json_object_set_new(cells, n->name,
						    json_integer(gm_cell(ctl->gang, r, c)));
		json_array_append_new(rows, json_pack("{s:i,s:o*}", "slot", r, "nodes", cells));
	}
	for (struct ctl_job *j = ctl->jobs; susp && j; j = j->next)
		if (j->state == JOB_SUSPENDED)
			json_array_append_new(susp, json_integer(j->id));
	return json_pack("{s:s,s:I,s:i,s:i,s:I,s:I,s:o*,s:o*,s:o*}",
			 "timeslice", ctl->timeslice_none ? "none" : "gang",
			 "slot_ns", (json_int_t)ctl->slot_ns, "nslots", epoch_nslots(ctl),
			 "max_share", ctl->max_share, "epoch", (json_int_t)ctl->epoch.id,
			 "start", (json_int_t)ctl->epoch.start, "rows", rows, "suspended", susp,
			 "nodes", names);
}

void cli_gang(struct ctl *ctl, struct peer *p)
{
	respond(p->conn, json_pack("{s:b,s:o*}", "ok", 1, "gang", ctl_gang_json(ctl)));
}

/* ---- gang_set ---- */

void cli_gang_set(struct ctl *ctl, struct peer *p, const json_t *req)
{
	const json_t *slot = json_object_get(req, "slot_us");
	const json_t *share = json_object_get(req, "max_share");
	const char *ts = json_string_value(json_object_get(req, "timeslice"));
	int none = ctl->timeslice_none, suspended;

	/* The schema bounds these too; the sentences here are for people. */
	if (slot && json_integer_value(slot) < 1000) {
		respond_error(p->conn, "slot %lld us is below the 1 ms minimum",
			      (long long)json_integer_value(slot));
		return;
	}
	if (slot && json_integer_value(slot) > 60000000) {
		respond_error(p->conn, "slot %lld us is above the 60 s maximum",
			      (long long)json_integer_value(slot));
		return;
	}
	if (share && (json_integer_value(share) < 1 || json_integer_value(share) > GANG_MAX_ROWS)) {
		respond_error(p->conn, "max_share %lld is out of range 1..%d",
			      (long long)json_integer_value(share), GANG_MAX_ROWS);
		return;
	}
	if (ts && (none = ctl_gang_timeslice_parse(ts)) < 0) {
		respond_error(p->conn, "timeslice '%s' is not one of gang, none", ts);
		return;
	}
	if (!slot && !share && !ts) {
		respond_error(p->conn, "nothing to change: give slot_us, max_share or timeslice");
		return;
	}
	if (slot)
		ctl->slot_ns = json_integer_value(slot) * 1000LL;
	if (share) {
		ctl->max_share = (int)json_integer_value(share);
		gm_set_max_share(ctl->gang, ctl->max_share);
	}
	ctl->timeslice_none = none;
	gm_set_preempt(ctl->gang, !none);
	suspended = gm_repack(ctl->gang);
	gang_save(ctl);
	hec_info("gang settings changed by uid %u (kept across restarts): slot %.3g ms, max_share %d, timeslice %s; %d running job%s found no slot in the repacked matrix",
		 (unsigned)p->uid, ctl->slot_ns / 1e6, ctl->max_share, none ? "none" : "gang",
		 suspended > 0 ? suspended : 0, suspended == 1 ? "" : "s");
	ctl->epoch_needed = 1;
	ctl_schedule(ctl);
	respond(p->conn, json_pack("{s:b,s:o*}", "ok", 1, "gang", ctl_gang_json(ctl)));
}

/* ---- gang_stats ---- */

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile @p (1..100) of sorted @v (0 for none). */
static double pct(const double *v, size_t n, unsigned p)
{
	size_t k = (p * n + 99) / 100;

	if (!n)
		return 0;
	return v[k ? k - 1 : 0];
}

static double mean(const double *v, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += v[i];
	return n ? s / (double)n : 0;
}

struct sw {
	int64_t epoch, boundary, actual;
};

static int sw_cmp(const void *a, const void *b)
{
	const struct sw *x = a, *y = b;

	if (x->epoch != y->epoch)
		return x->epoch < y->epoch ? -1 : 1;
	if (x->boundary != y->boundary)
		return x->boundary < y->boundary ? -1 : 1;
	return 0;
}

static int node_ncpus(const struct node *n)
{
	struct hec_cpuset set;
	int c = n->cpus && *n->cpus ? hec_cpuset_parse(n->cpus, &set) : -EINVAL;

	if (c > 0)
		return c;
	return n->pus > 0 ? (int)n->pus : 1;
}

struct share_acc {
	long job;
	double usec, cap_us;         /* CPU time used, and CPU time available */
};

static int acc_cmp(const void *a, const void *b)
{
	const struct share_acc *x = a, *y = b;

	return x->job < y->job ? -1 : x->job > y->job;
}

/* Node @i's STATS, or NULL if it has none. */
static const json_t *answer_of(const struct fanout_done *d, int i)
{
	return d->nodes[i].state == FANOUT_ANSWERED ? d->nodes[i].body : NULL;
}

/* Each job's CPU share since the previous gang_stats (or its start), from
 * the usage its nodes report; remembers the new baseline. */
static json_t *job_shares(struct ctl *ctl, const struct fanout_done *d)
{
	struct share_acc *acc;
	size_t cap = 0, nacc = 0;
	json_t *out;

	for (int i = 0; i < d->nnodes; i++)
		cap += json_array_size(json_object_get(answer_of(d, i), "usage"));
	acc = calloc(cap + 1, sizeof(*acc));
	if (!acc)
		return NULL;
	for (int i = 0; i < d->nnodes; i++) {
		const struct fanout_result *res = &d->nodes[i];
		struct node *n = answer_of(d, i) ? node_find(ctl, res->node) : NULL;
		json_t *u;
		size_t k;

		if (!n)
			continue;
		json_array_foreach(json_object_get(res->body, "usage"), k, u) {
			long id = (long)json_integer_value(json_object_get(u, "job"));
			int64_t usec = json_integer_value(json_object_get(u, "usec"));
			struct ctl_job *j = job_find(ctl, id);
			struct job_node *jn = j && !job_state_final(j->state) ? job_node_of(j, n) : NULL;
			int64_t base_usec, base_ns;
			size_t a;

			if (!jn) {
				hec_info("%s: STATS reports usage of job %ld, which %s; ignored",
					 n->name, id, !j ? "is unknown" : "does not run there");
				continue;
			}
			base_usec = jn->stats_set ? jn->stats_usec : 0;
			base_ns = jn->stats_set ? jn->stats_ns : j->start_ns;
			if (usec < base_usec) /* the counter started again */
				base_usec = 0;
			for (a = 0; a < nacc && acc[a].job != id; a++)
				;
			if (a == nacc)
				acc[nacc++].job = id;
			if (res->recv_ns > base_ns) {
				acc[a].usec += (double)(usec - base_usec);
				acc[a].cap_us += (double)(res->recv_ns - base_ns) / 1e3 * node_ncpus(n);
			}
			jn->stats_set = 1;
			jn->stats_usec = usec;
			jn->stats_ns = res->recv_ns;
		}
	}
	qsort(acc, nacc, sizeof(*acc), acc_cmp);
	out = json_array();
	for (size_t a = 0; out && a < nacc; a++)
		if (acc[a].cap_us > 0)
			json_array_append_new(out, json_pack("{s:I,s:f}", "job", (json_int_t)acc[a].job,
							     "cpu_share", acc[a].usec / acc[a].cap_us));
	free(acc);
	return out;
}

static json_t *build_stats(struct ctl *ctl, const struct fanout_done *d)
{
	size_t total = 0, n = 0, nb = 0, waited = 0;
	struct sw *sw = NULL;
	double *fr = NULL, *th = NULL, *late = NULL, *skew = NULL;
	json_t *nodes = json_array(), *missing = json_array(), *vmsw = json_array(), *jobs, *out = NULL;

	for (int i = 0; i < d->nnodes; i++)
		total += json_array_size(json_object_get(answer_of(d, i), "switches"));
	sw = calloc(total + 1, sizeof(*sw));
	fr = calloc(total + 1, sizeof(*fr));
	th = calloc(total + 1, sizeof(*th));
	late = calloc(total + 1, sizeof(*late));
	skew = calloc(total + 1, sizeof(*skew));
	if (!sw || !fr || !th || !late || !skew || !nodes || !missing || !vmsw)
		goto out_free;
	for (int i = 0; i < d->nnodes; i++) {
		const char *name = d->nodes[i].node;
		const json_t *stats = answer_of(d, i);
		json_t *switches, *s;
		size_t k;

		if (!stats) {
			json_array_append_new(missing, json_string(name));
			continue;
		}
		switches = json_object_get(stats, "switches");
		json_array_foreach(switches, k, s) {
			int64_t planned = json_integer_value(json_object_get(s, "planned"));

			sw[n].epoch = json_integer_value(json_object_get(s, "epoch"));
			sw[n].boundary = json_integer_value(json_object_get(s, "boundary"));
			sw[n].actual = json_integer_value(json_object_get(s, "actual"));
			fr[n] = json_integer_value(json_object_get(s, "freeze_ns")) / 1e3;
			th[n] = json_integer_value(json_object_get(s, "thaw_ns")) / 1e3;
			waited += json_integer_value(json_object_get(s, "waited")) != 0;
			late[n] = (double)(sw[n].actual - planned) / 1e3;
			n++;
		}
		json_array_append_new(nodes, json_pack("{s:s,s:f,s:f,s:I}", "name", name,
			"offset_us", json_integer_value(json_object_get(stats, "offset_ns")) / 1e3,
			"rtt_us", json_integer_value(json_object_get(stats, "rtt_ns")) / 1e3,
			"switches", (json_int_t)json_array_size(switches)));
		/* vm partitions: how each guest is switched, and what both ways cost */
		json_array_foreach(json_object_get(stats, "vm"), k, s)
			json_array_append_new(vmsw, json_pack("{s:s,s:O,s:O,s:f,s:f}", "node", name,
				"job", json_object_get(s, "job"), "method", json_object_get(s, "method"),
				"cgroup_us", json_integer_value(json_object_get(s, "cgroup_ns")) / 1e3,
				"qmp_us", json_integer_value(json_object_get(s, "qmp_ns")) / 1e3));
	}
	/* Skew of one boundary: how far apart the nodes switched. */
	qsort(sw, n, sizeof(*sw), sw_cmp);
	for (size_t i = 0, e; i < n; i = e) {
		int64_t lo = sw[i].actual, hi = sw[i].actual;

		for (e = i + 1; e < n && !sw_cmp(&sw[e], &sw[i]); e++) {
			lo = sw[e].actual < lo ? sw[e].actual : lo;
			hi = sw[e].actual > hi ? sw[e].actual : hi;
		}
		if (e - i >= 2)
			skew[nb++] = (double)(hi - lo) / 1e3;
	}
	qsort(skew, nb, sizeof(*skew), dbl_cmp);
	qsort(fr, n, sizeof(*fr), dbl_cmp);
	qsort(th, n, sizeof(*th), dbl_cmp);
	qsort(late, n, sizeof(*late), dbl_cmp);
	jobs = job_shares(ctl, d);
	out = json_pack("{s:I,s:{s:f,s:f,s:f},s:I,s:{s:f,s:f},s:{s:f,s:f},s:{s:f,s:f,s:f},"
			"s:o*,s:O,s:O}",
			"boundaries", (json_int_t)nb,
			"skew_us", "p50", pct(skew, nb, 50), "p99", pct(skew, nb, 99),
			"max", nb ? skew[nb - 1] : 0.0,
			"switches", (json_int_t)n,
			"freeze_us", "mean", mean(fr, n), "p99", pct(fr, n, 99),
			"thaw_us", "mean", mean(th, n), "p99", pct(th, n, 99),
			"lateness_us", "p50", pct(late, n, 50), "p99", pct(late, n, 99),
			"max", n ? late[n - 1] : 0.0,
			"jobs", jobs, "nodes", nodes, "missing", missing);
	if (out) {
		json_object_set(out, "vm_switch", vmsw);
		/* switches that waited for a freeze before the thaw (QMP, stuck) */
		json_object_set_new(out, "waited", json_integer((json_int_t)waited));
	}
out_free:
	json_decref(vmsw);
	json_decref(nodes);
	json_decref(missing);
	free(sw);
	free(fr);
	free(th);
	free(late);
	free(skew);
	return out;
}

/* The gang_stats answer once every node answered, or not in time. */
static void stats_done(void *arg, const struct fanout_done *d)
{
	struct ctl *ctl = arg;
	struct peer *cli = d->owner;
	json_t *stats;

	if (!cli) {
		hec_debug("gang_stats request %lld: the CLI has gone; answer dropped", (long long)d->id);
		return;
	}
	stats = build_stats(ctl, d);
	if (!stats)
		hec_err("gang_stats request %lld: out of memory building the answer", (long long)d->id);
	hec_debug("gang_stats request %lld: %d of %d nodes answered", (long long)d->id, d->answered,
		  d->nnodes);
	respond(cli->conn, stats ? json_pack("{s:b,s:o}", "ok", 1, "stats", stats) : NULL);
}

static int stats_send(void *arg, const char *node, int64_t id)
{
	return node_send(node_find(arg, node), HEC_MSG_STATS_REQ,
			 json_pack("{s:I}", "req", (json_int_t)id));
}

void cli_gang_stats(struct ctl *ctl, struct peer *p)
{
	const char **names = calloc((size_t)ctl->nnodes + 1, sizeof(*names));
	struct fanout_req req = {
		.kind = HEC_MSG_STATS, .id = ++ctl->stats_seq, .what = "STATS_REQ", .nodes = names,
		.timeout_ms = STATS_TIMEOUT_MS, .owner = p, .send = stats_send,
		.done = stats_done, .arg = ctl,
	};
	int rc = -ENOMEM;

	for (struct node *n = ctl->nodes; names && n; n = n->next)
		if (node_up(n))
			names[req.nnodes++] = n->name;
	if (names)
		rc = fanout_start(ctl->fanout, &req);
	free(names);
	if (rc == -ENOMEM)
		respond_error(p->conn, "controller out of memory");
	else if (rc)
		respond_error(p->conn, "gang_stats not sent: %s", strerror(-rc));
}

void ctl_gang_on_stats(struct ctl *ctl, struct node *n, const json_t *body)
{
	int64_t id = json_integer_value(json_object_get(body, "req"));

	n->rtt_ns = json_integer_value(json_object_get(body, "rtt_ns"));
	n->offset_ns = json_integer_value(json_object_get(body, "offset_ns"));
	if (fanout_answer(ctl->fanout, HEC_MSG_STATS, id, n->name, body) == -ENOENT)
		hec_info("%s: STATS for request %lld, which is not waiting (late or unknown); ignored",
			 n->name, (long long)id);
}
