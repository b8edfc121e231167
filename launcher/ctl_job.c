/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Job lifecycle in the controller (doc/design.md, "Jobs"):
 *
 *   PENDING --schedule--> LAUNCHING --all LAUNCHED--> RUNNING (START sent)
 *      |                      |                          |
 *      | cancel               +------ outcome decided ---+--> ENDING
 *      v                                                      (KILL_JOB to every node)
 *   CANCELLED                                                    |
 *                                      every node JOB_GONE or DOWN
 *                                                                v
 *                                    COMPLETED / FAILED / CANCELLED / TIMEOUT / NODE_FAIL
 *
 * The public state is RUNNING from LAUNCHING through ENDING, or SUSPENDED
 * while the gang matrix has evicted it (ctl_gang.c; the phase is unchanged,
 * so time limits, cancel and node failure treat it like a running job).
 * Nodes are freed only when the job is final, so a new job never meets the
 * remains of an old one in a partition.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "hec/fault.h"
#include "ctld.h"
#include "place.h"

struct ctl_job *job_find(struct ctl *ctl, long id)
{
	struct ctl_job *j;

	for (j = ctl->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

struct ctl_job *job_get(struct ctl *ctl, long id)
{
	struct ctl_job *j = job_find(ctl, id);
	int rc;

	if (j || (ctl->ended && ctl->ended->id == id))
		return j ? j : ctl->ended;
	rc = db_job_load(ctl->db, id, &j);
	if (rc == -ENOENT)
		return NULL;
	if (rc) {
		hec_err("job %ld: cannot read it back from the catalog: %s", id,
			rc == -EIO ? db_errmsg(ctl->db) : strerror(-rc));
		return NULL;
	}
	if (!job_state_final(j->state)) {
		/* every job not ended is in memory: a row that says otherwise
		 * was written by another process */
		hec_warn("job %ld: the catalog says %s, but it is not in memory; ignored", id,
			 job_state_name(j->state));
		job_free(j);
		return NULL;
	}
	job_free(ctl->ended);
	ctl->ended = j;
	return j;
}

void job_adopt(struct ctl *ctl, struct ctl_job *j)
{
	struct ctl_job **pp = &ctl->jobs;

	if (j != ctl->ended)
		return;
	ctl->ended = NULL;
	while (*pp && (*pp)->id < j->id)
		pp = &(*pp)->next;
	j->next = *pp;
	*pp = j;
	if (!j->next)
		ctl->jobs_tail = j;
}

/* May @j leave memory?  Ended, its nodes released (job_finish ran: every
 * JOB_GONE is in), no checkpoint of it still committing (ckpt_op finds its
 * job by id while it stores the manifest) and no restart under way. */
static int job_retirable(const struct ctl_job *j)
{
	return job_state_final(j->state) && j->phase == PH_NONE && !j->ckpt && !j->restart;
}

void ctl_jobs_retire(struct ctl *ctl)
{
	struct ctl_job **pp = &ctl->jobs, *prev = NULL, *j;

	while ((j = *pp)) {
		if (!job_retirable(j)) {
			prev = j;
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		if (ctl->jobs_tail == j)
			ctl->jobs_tail = prev;
		hec_debug("job %ld: %s; its record leaves memory (the catalog keeps it)", j->id,
			  job_state_name(j->state));
		job_free(j);
	}
}

int ctl_jobs_in_memory(const struct ctl *ctl)
{
	int n = 0;

	for (const struct ctl_job *j = ctl->jobs; j; j = j->next)
		n++;
	return n;
}

struct job_node *job_node_of(struct ctl_job *j, const struct node *n)
{
	for (int i = 0; i < j->nalloc; i++)
		if (j->alloc[i].node == n)
			return &j->alloc[i];
	return NULL;
}

void job_save(struct ctl *ctl, struct ctl_job *j)
{
	if (db_job_update(ctl->db, j))
		hec_err("job %ld: catalog update to %s failed: %s", j->id,
			job_state_name(j->state), db_errmsg(ctl->db));
}

/* The job is final: free its nodes and let the queue move. */
static void job_finish(struct ctl *ctl, struct ctl_job *j, enum job_state s)
{
	j->state = s;
	j->phase = PH_NONE;
	if (!j->end_time)
		j->end_time = ctl_now();
	for (int i = 0; i < j->nalloc; i++) {
		struct node *n = j->alloc[i].node;

		if (n && n->njobs > 0)
			n->njobs--;
	}
	ctl_gang_remove(ctl, j);
	j->slot = -1;
	job_save(ctl, j);
	ckpt_job_ended(ctl, j, j->reason);
	job_drop_payload(j);
	memset(j->key, 0, sizeof(j->key));
	ctl->sched_needed = 1;
	hec_info("job %ld: %s (%s)", j->id, job_state_name(s), j->reason);
}

void job_check_gone(struct ctl *ctl, struct ctl_job *j)
{
	if (j->phase != PH_ENDING)
		return;
	for (int i = 0; i < j->nalloc; i++)
		if (!j->alloc[i].gone)
			return;
	if (j->final_state == JOB_PENDING) /* ending to restart (ckpt/ctl_restart.c) */
		restart_requeue(ctl, j);
	else
		job_finish(ctl, j, j->final_state);
}

void job_kill_nodes(struct ctl *ctl, struct ctl_job *j)
{
	for (int i = 0; i < j->nalloc; i++) {
		struct job_node *jn = &j->alloc[i];

		if (jn->gone)
			continue;
		/* A dead or unknown node counts as cleaned up (design.md). */
		if (!jn->node || jn->node->state == NODE_DOWN) {
			jn->gone = 1;
			continue;
		}
		/* Not connected now: KILL_JOB goes out when it registers again. */
		if (jn->node->peer) {
			node_send(jn->node, HEC_MSG_KILL_JOB, json_pack("{s:I}", "job", (json_int_t)j->id));
			jn->kill_gen = jn->node->gen;
			jn->kill_sent = hec_now_mono_ns();
		}
	}
	job_check_gone(ctl, j);
}

void job_end(struct ctl *ctl, struct ctl_job *j, enum job_state outcome, const char *fmt, ...)
{
	va_list ap;

	if (job_state_final(j->state) || j->phase == PH_ENDING)
		return; /* the first outcome stands */
	va_start(ap, fmt);
	vsnprintf(j->reason, sizeof(j->reason), fmt, ap);
	va_end(ap);
	if (j->phase == PH_NONE) { /* never started: nothing to tear down */
		j->end_time = ctl_now();
		job_finish(ctl, j, outcome);
		return;
	}
	j->final_state = outcome;
	j->phase = PH_ENDING;
	j->end_time = ctl_now();
	ctl_gang_pin(ctl, j, 1); /* it keeps its place until every node is clean */
	job_save(ctl, j);
	hec_fault("ctl.end.after_db"); /* ENDING recorded, no KILL_JOB out */
	hec_info("job %ld: ending as %s (%s); cleaning up its nodes", j->id,
		 job_state_name(outcome), j->reason);
	ckpt_job_ended(ctl, j, j->reason);
	job_kill_nodes(ctl, j);
}

void job_requeue(struct ctl *ctl, struct ctl_job *j, const char *fmt, ...)
{
	va_list ap;

	if (job_state_final(j->state) || j->phase == PH_ENDING || j->phase == PH_NONE)
		return;
	va_start(ap, fmt);
	vsnprintf(j->reason, sizeof(j->reason), fmt, ap);
	va_end(ap);
	j->final_state = JOB_PENDING; /* job_check_gone: restart_requeue */
	j->phase = PH_ENDING;
	ctl_gang_pin(ctl, j, 1);
	job_save(ctl, j);
	hec_fault("ctl.requeue.after_db"); /* requeue recorded, no KILL_JOB out */
	hec_info("job %ld: requeued (%s); cleaning up its nodes", j->id, j->reason);
	ckpt_job_ended(ctl, j, j->reason);
	job_kill_nodes(ctl, j);
}

/* LAUNCH's nodes: every node of @j, [{name, addr, ranks}]. */
static json_t *launch_nodes(const struct ctl_job *j)
{
	json_t *nodes = json_array();

	for (int i = 0; nodes && i < j->nalloc; i++) {
		const struct job_node *o = &j->alloc[i];

		if (json_array_append_new(nodes, json_pack("{s:s,s:s,s:i}", "name", o->name,
							   "addr", o->node ? o->node->addr : "",
							   "ranks", o->ranks))) {
			json_decref(nodes);
			return NULL;
		}
	}
	return nodes;
}

/* LAUNCH for @jn without its restore part; @nodes is shared, not stolen. */
static json_t *launch_body(struct ctl_job *j, struct job_node *jn, json_t *nodes)
{
	json_t *body = json_pack("{s:I,s:s,s:I,s:I,s:O,s:s,s:I}", "job", (json_int_t)j->id,
				 "key", j->key, "uid", (json_int_t)j->uid, "gid", (json_int_t)j->gid,
				 "nodes", nodes, "partition", j->vm ? "vm" : "proc", "mem_mb",
				 (json_int_t)j->mem_mb);

	if (body && j->vm) {
		json_object_set_new(body, "vcpus", json_integer(j->vcpus ? j->vcpus : jn->ranks));
		json_object_set_new(body, "guest_key", json_string(j->guest_key));
		if (j->vm_files)
			json_object_set(body, "vm_files", j->vm_files);
	}
	return body;
}

int job_send_launch(struct ctl *ctl, struct ctl_job *j, struct job_node *jn)
{
	json_t *nodes = launch_nodes(j), *body = nodes ? launch_body(j, jn, nodes) : NULL;
	int rc;

	json_decref(nodes);
	/* a proc job's checkpoint is its program's file, fetched on its first node */
	if (body && j->restore_epoch && (j->vm || jn == j->alloc)) {
		char why[300];
		json_t *r = restart_launch_restore(ctl, j, (int)(jn - j->alloc), why, sizeof(why));

		if (!r) {
			json_decref(body);
			hec_warn("job %ld: %s: cannot restart there: %s", j->id, jn->name, why);
			return -ENOENT;
		}
		json_object_set_new(body, "restore", r);
	}
	rc = node_send(jn->node, HEC_MSG_LAUNCH, body);
	return rc;
}

/*
 * LAUNCH to every node of @j.  Each names all N nodes: encoded anew for
 * each node that was N^2 work (bench/scale), so the bodies that are alike
 * (no restore part; a vm guest's vCPUs the same) are encoded once, and
 * queued without a copy each.
 * \return 0, or -errno with the node that was not sent to in *@failed.
 */
static int launch_all(struct ctl *ctl, struct ctl_job *j, const char **failed)
{
	json_t *nodes = j->restore_epoch ? NULL : launch_nodes(j);
	struct hec_frame *frame = NULL;
	int vcpus = -1, rc = 0;

	for (int i = 0; !rc && i < j->nalloc; i++) {
		struct job_node *jn = &j->alloc[i];
		int v = j->vm ? (j->vcpus ? j->vcpus : jn->ranks) : 0;

		if (j->restore_epoch) {
			rc = job_send_launch(ctl, j, jn);
		} else if (!nodes) {
			rc = -ENOMEM;
		} else {
			if (!frame || v != vcpus) {
				json_t *body = launch_body(j, jn, nodes);

				hec_frame_put(frame);
				frame = NULL;
				rc = body ? hec_frame_new(HEC_MSG_LAUNCH, body, &frame) : -ENOMEM;
				json_decref(body);
				vcpus = v;
			}
			if (!rc)
				rc = node_send_frame(jn->node, HEC_MSG_LAUNCH, frame);
		}
		if (rc)
			*failed = jn->name;
	}
	hec_frame_put(frame);
	json_decref(nodes);
	return rc;
}

long job_launch_timeout(const struct ctl *ctl, const struct ctl_job *j)
{
	return j->vm ? ctl->conf.vm_launch_timeout : ctl->conf.launch_timeout;
}

int job_vcpus(const struct ctl_job *j)
{
	return j->vcpus ? j->vcpus : (j->ntasks + j->nnodes - 1) / j->nnodes;
}

void job_start(struct ctl *ctl, struct ctl_job *j, struct node **nodes, int n)
{
	const char *names[n > 0 ? n : 1], *failed = "?";
	int rc;

	for (int i = 0; i < n; i++)
		names[i] = nodes[i]->name;
	rc = job_set_alloc(j, names, n);
	if (!rc)
		rc = hec_random_hex(j->key, 32);
	/* a restored guest keeps the key its state holds */
	if (!rc && !(j->restore_epoch && j->guest_key[0]))
		rc = hec_random_hex(j->guest_key, 32);
	if (rc) {
		job_end(ctl, j, JOB_FAILED, "cannot start: %s", strerror(-rc));
		return;
	}
	for (int i = 0; i < n; i++) {
		j->alloc[i].node = nodes[i];
		nodes[i]->njobs++;
	}
	j->state = JOB_RUNNING;
	j->phase = PH_LAUNCHING;
	/* Not evicted half-launched: suspension starts once START is out. */
	ctl_gang_pin(ctl, j, 1);
	j->start_ns = hec_now_real_ns();
	j->start_time = j->start_ns / 1000000000LL;
	j->susp_ns = j->susp_since_ns = 0;
	j->launch_deadline = hec_now_mono_ns() + job_launch_timeout(ctl, j) * 1000000LL;
	snprintf(j->reason, sizeof(j->reason), "None");
	job_save(ctl, j);
	hec_fault("ctl.launch.after_db"); /* RUNNING recorded, no LAUNCH out */
	if (j->slot >= 0)
		hec_info("job %ld: starting on %d node%s (%s%s) in slot %d, %d task%s", j->id, n,
			 n == 1 ? "" : "s", names[0], n > 1 ? ",..." : "", j->slot, j->ntasks,
			 j->ntasks == 1 ? "" : "s");
	else
		hec_info("job %ld: starting on %d node%s (%s%s), %d task%s", j->id, n,
			 n == 1 ? "" : "s", names[0], n > 1 ? ",..." : "", j->ntasks,
			 j->ntasks == 1 ? "" : "s");
	if (j->restore_epoch) {
		char why[300];
		json_t *r = restart_launch_restore(ctl, j, 0, why, sizeof(why));

		if (!r) {
			job_end(ctl, j, JOB_FAILED, "cannot restart from checkpoint %lld: %s",
				(long long)j->restore_epoch, why);
			return;
		}
		json_decref(r);
	}
	rc = launch_all(ctl, j, &failed);
	if (rc)
		job_end(ctl, j, JOB_FAILED, "%s: LAUNCH not sent: %s", failed, strerror(-rc));
}

void job_send_start(struct ctl *ctl, struct ctl_job *j)
{
	struct job_node *batch = &j->alloc[0];
	json_t *body;
	int rc;

	if (j->restore_epoch && j->vm) { /* the batch step runs in the restored guest */
		restart_send_start(ctl, j);
		return;
	}
	if (!j->env) { /* cannot happen for a job that is launching; be safe */
		job_end(ctl, j, JOB_FAILED, "controller lost the job's environment");
		return;
	}
	body = json_pack("{s:I,s:i,s:s,s:O,s:s}", "job", (json_int_t)j->id, "ntasks", j->ntasks,
			 "cwd", j->cwd, "env", j->env, "output", j->output);
	if (body && j->argv)
		json_object_set(body, "argv", j->argv);
	if (body && j->script)
		json_object_set_new(body, "script", json_string(j->script));
	if (body && j->error)
		json_object_set_new(body, "error", json_string(j->error));
	/* START must be recorded first: after a controller restart a job with
	 * START unrecorded is requeued as never started, never started twice;
	 * one with START recorded that its batch node says it never had is
	 * requeued when that node registers (reconcile in ctl_agent.c). */
	j->phase = PH_RUNNING;
	j->started = 1;
	ctl_gang_pin(ctl, j, 0);
	job_save(ctl, j);
	hec_fault("ctl.start.after_db"); /* START recorded, not out (issue #14) */
	rc = node_send(batch->node, HEC_MSG_START, body);
	if (rc) {
		job_end(ctl, j, JOB_FAILED, "%s: START not sent: %s", batch->name, strerror(-rc));
		return;
	}
	if (j->restore_epoch) {
		restart_started(ctl, j);
		job_save(ctl, j);
		return;
	}
	hec_info("job %ld: all %d node%s launched; batch step started on %s", j->id, j->nalloc,
		 j->nalloc == 1 ? "" : "s", batch->name);
}

/* JOB_EXIT of a job not in memory: an ended one (a resent JOB_EXIT, its
 * ack lost) has its batch step's status recorded once, as in memory. */
static void late_exit(struct ctl *ctl, struct node *n, long id, int code, int sig)
{
	struct ctl_job *j = job_get(ctl, id);

	if (!j) {
		hec_warn("%s: JOB_EXIT for unknown job %ld; acknowledged and ignored", n->name, id);
		return;
	}
	if (!j->exited && j->nalloc && !strcmp(j->alloc[0].name, n->name)) {
		j->exit_code = code;
		j->sig = sig;
		j->exited = 1;
		job_save(ctl, j);
	}
	hec_debug("%s: JOB_EXIT for job %ld, already %s; acknowledged", n->name, id,
		  job_state_name(j->state));
}

void job_exit_report(struct ctl *ctl, struct node *n, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	int code = (int)json_integer_value(json_object_get(body, "exit"));
	int sig = (int)json_integer_value(json_object_get(body, "signal"));
	const char *error = json_string_value(json_object_get(body, "error"));
	const char *note = json_string_value(json_object_get(body, "note"));
	long long when = (long long)json_integer_value(json_object_get(body, "time"));
	struct ctl_job *j = job_find(ctl, id);
	char why[600];

	if (!j) {
		late_exit(ctl, n, id, code, sig);
	} else if (!j->nalloc || (j->alloc[0].node != n && !(error && *error && job_node_of(j, n)))) {
		/* Another node of the job may report only a failure of its
		 * partition (a vm guest that died): that ends the job too. */
		hec_warn("%s: JOB_EXIT for job %ld, which does not run its batch step there; acknowledged and ignored",
			 n->name, id);
	} else if (job_state_final(j->state) || j->phase == PH_ENDING) {
		/* Already decided (cancel, time limit, or a resent JOB_EXIT):
		 * keep the outcome, but remember the step's status once. */
		if (!j->exited) {
			j->exit_code = code;
			j->sig = sig;
			j->exited = 1;
			job_save(ctl, j);
		}
		hec_debug("%s: JOB_EXIT for job %ld, already %s; acknowledged", n->name, id,
			  j->phase == PH_ENDING ? "ending" : job_state_name(j->state));
	} else {
		j->exit_code = code;
		j->sig = sig;
		j->exited = 1;
		if (sig)
			snprintf(why, sizeof(why), "signal %d", sig);
		else
			snprintf(why, sizeof(why), "exit code %d", code);
		/* what the status cannot say (its output's disk was full) */
		if ((sig || code) && note && *note)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), "; %s: %s", n->name, note);
		if (error && *error) {
			reason_for_node(why, sizeof(why), n->name, error);
			if (!restart_wanted(ctl, j, why))
				job_end(ctl, j, JOB_FAILED, "%s", why);
		} else if ((sig || code) && !j->vm && j->restore_epoch && !j->app_loaded) {
			/* a restarted program that failed before it said it restored:
			 * its checkpoint did not load (it said why on its stderr) */
			char ended[700];

			snprintf(ended, sizeof(ended), "the batch step ended (%s) before the program restored it",
				 why);
			if (!restart_app_load_failed(ctl, j, n->name, ended) &&
			    !restart_wanted(ctl, j, why))
				job_end(ctl, j, JOB_FAILED, "%s", why);
		} else if ((sig || code) && !j->vm) {
			/* a proc job's program that died: from its newest checkpoint */
			if (!restart_wanted(ctl, j, why))
				job_end(ctl, j, JOB_FAILED, "%s", why);
		} else if (sig || code) {
			job_end(ctl, j, JOB_FAILED, "%s", why);
		} else {
			job_end(ctl, j, JOB_COMPLETED, "None");
		}
		/* ended by this exit: when the agent saw it end (it may tell only
		 * now, after the controller or the link was down), if plausible */
		if (j->phase == PH_ENDING && when >= j->start_time && when <= j->end_time &&
		    when != j->end_time) {
			j->end_time = when;
			job_save(ctl, j);
		}
	}
	/* Acknowledge after the outcome is committed (job_end saved it). */
	node_send(n, HEC_MSG_EXIT_ACK, json_pack("{s:I}", "job", (json_int_t)id));
}

/* A node that neither confirms cleanup nor goes silent: ask again now and
 * then (KILL_JOB is idempotent) and say so in the log. */
static void resend_kills(struct ctl *ctl, struct ctl_job *j, int64_t mono)
{
	int64_t every = ctl->conf.node_timeout * 1000000LL;

	for (int i = 0; i < j->nalloc; i++) {
		struct job_node *jn = &j->alloc[i];

		if (jn->gone || !jn->node || !jn->node->peer || !jn->kill_sent ||
		    mono - jn->kill_sent < every)
			continue;
		hec_warn("job %ld: %s has not confirmed cleanup for %.1fs; sending KILL_JOB again",
			 j->id, jn->name, (mono - jn->kill_sent) / 1e9);
		node_send(jn->node, HEC_MSG_KILL_JOB, json_pack("{s:I}", "job", (json_int_t)j->id));
		jn->kill_sent = mono;
	}
}

void ctl_job_timers(struct ctl *ctl)
{
	int64_t mono = hec_now_mono_ns(), now = hec_now_real_ns();
	struct ctl_job *j;

	for (j = ctl->jobs; j; j = j->next) {
		if (j->phase == PH_ENDING) {
			resend_kills(ctl, j, mono);
			continue;
		}
		if (j->phase == PH_LAUNCHING && mono > j->launch_deadline) {
			const char *late = "?";

			char why[128];

			for (int i = 0; i < j->nalloc; i++)
				if (!j->alloc[i].launched) {
					late = j->alloc[i].name;
					break;
				}
			snprintf(why, sizeof(why), "did not answer LAUNCH within %lds",
				 job_launch_timeout(ctl, j) / 1000);
			if (!restart_launch_failed(ctl, j, late, why))
				job_end(ctl, j, JOB_FAILED, "launch timed out: %s %s", late, why);
			continue;
		}
		if ((j->phase == PH_LAUNCHING || j->phase == PH_RUNNING) && j->time_limit > 0 &&
		    job_run_ns(j, now) >= j->time_limit * 1000000000LL) {
			char lim[32];

			format_limit(j->time_limit, lim, sizeof(lim));
			job_end(ctl, j, JOB_TIMEOUT, "time limit %s reached", lim);
		}
	}
}

int64_t job_run_ns(const struct ctl_job *j, int64_t now)
{
	int64_t susp = j->susp_ns;

	if (j->susp_since_ns && now > j->susp_since_ns)
		susp += now - j->susp_since_ns;
	return now - j->start_ns - susp;
}

json_t *job_to_json(const struct ctl_job *j)
{
	json_t *nl = json_array(), *o;
	const char *state = job_state_name(j->state);

	for (int i = 0; nl && i < j->nalloc; i++)
		json_array_append_new(nl, json_string(j->alloc[i].name));
	o = json_pack("{s:I,s:s,s:s,s:I,s:s,s:s,s:i,s:i,s:I,s:i,s:I,s:I,s:I,s:o,s:i,s:i,s:s,s:s,s:s,"
		      "s:b,s:I,s:i}",
		      "id", (json_int_t)j->id, "name", j->name, "user", j->user,
		      "uid", (json_int_t)j->uid, "state", state, "reason", j->reason,
		      "nodes", j->nnodes, "ntasks", j->ntasks,
		      "time_limit", (json_int_t)j->time_limit, "priority", j->priority,
		      "submit_time", (json_int_t)j->submit_time,
		      "start_time", (json_int_t)j->start_time,
		      "end_time", (json_int_t)(job_state_final(j->state) ? j->end_time : 0),
		      "nodelist", nl, "exit_code", j->exit_code, "signal", j->sig,
		      "output", j->output ? j->output : "", "error", j->error ? j->error : "",
		      "command", j->command ? j->command : "",
		      "share", j->share, "mem_mb", (json_int_t)j->mem_mb, "slot", j->slot);
	if (o) {
		json_object_set_new(o, "partition", json_string(j->vm ? "vm" : "proc"));
		if (j->vm)
			json_object_set_new(o, "vcpus", json_integer(job_vcpus(j)));
		json_object_update_new(o, json_pack("{s:I,s:i,s:s,s:i,s:i,s:I}", "ckpt_interval",
						    (json_int_t)j->ckpt_interval, "ckpt_keep",
						    j->ckpt_keep, "restart",
						    j->restart_auto ? "auto" : "none", "max_restarts",
						    j->max_restarts, "nrestarts", j->nrestarts,
						    "restore_epoch", (json_int_t)j->restore_epoch));
		/* seconds suspended (its clock stopped), up to now */
		json_object_set_new(o, "suspended_s",
				    json_integer((json_int_t)((j->susp_ns + (j->susp_since_ns ?
						hec_now_real_ns() - j->susp_since_ns : 0)) / 1000000000LL)));
	}
	return o;
}

/* db_jobs_load() callback: append in id order; classified afterwards, so
 * that no catalog write happens while the SELECT is still stepping. */
static int restore_one(struct ctl_job *j, void *arg)
{
	struct ctl *ctl = arg;

	if (j->state == JOB_NSTATES) {
		hec_err("job %ld: catalog row unreadable; skipped", j->id);
		job_free(j);
		return 0;
	}
	if (ctl->jobs_tail)
		ctl->jobs_tail->next = j;
	else
		ctl->jobs = j;
	ctl->jobs_tail = j;
	return 0;
}

/* Rebuild a reloaded job's place in the controller. */
static void restore_classify(struct ctl *ctl, struct ctl_job *j)
{
	if (job_state_final(j->state)) { /* (db_jobs_load leaves them in the catalog) */
		job_drop_payload(j);
		return;
	}
	if (j->state == JOB_PENDING) {
		snprintf(j->reason, sizeof(j->reason), "Priority");
		return;
	}
	/* RUNNING (or SUSPENDED): re-attach to its nodes. */
	j->start_ns = j->start_time * 1000000000LL;
	if (!j->nalloc) {
		j->phase = PH_RUNNING;
		job_end(ctl, j, JOB_FAILED, "catalog lists no nodes for a running job");
		return;
	}
	for (int i = 0; i < j->nalloc; i++) {
		struct job_node *jn = &j->alloc[i];

		jn->node = node_find(ctl, jn->name);
		if (jn->node)
			jn->node->njobs++;
		else
			jn->gone = 1;
		jn->launched = j->started;
	}
	/* (the nodes of an ending job are told once it is back in the gang
	 * matrix: ctl_jobs_restore) */
	if (j->final_state != JOB_NSTATES) {
		j->phase = PH_ENDING;
		hec_info("job %ld: was ending as %s; cleaning up its nodes as they return", j->id,
			 job_state_name(j->final_state));
	} else if (!j->started) {
		/* Recorded as launching, START not recorded (it is before it goes
		 * out): the batch step never ran, whatever LAUNCH did, and the
		 * job key died with the old process.  Requeued, as SLURM
		 * requeues a batch job whose launch did not happen: its
		 * partitions are killed where they were made, then it is placed
		 * again (a restart's launch: from its checkpoint again). */
		j->final_state = JOB_PENDING;
		j->phase = PH_ENDING;
		snprintf(j->reason, sizeof(j->reason), "%s", j->restore_epoch ?
			 "controller restarted during the restart's launch; restarting again" :
			 "controller restarted during the launch; requeued");
		job_save(ctl, j);
		hec_info("job %ld: %s; cleaning up its nodes as they return", j->id, j->reason);
	} else {
		j->phase = PH_RUNNING;
		for (int i = 0; i < j->nalloc; i++)
			if (!j->alloc[i].node) {
				job_end(ctl, j, JOB_NODE_FAIL, "%s is not known any more",
					j->alloc[i].name);
				break;
			}
		if (j->phase == PH_RUNNING)
			hec_info("job %ld: %s on %d node%s; waiting for them to register", j->id,
				 job_state_name(j->state), j->nalloc, j->nalloc == 1 ? "" : "s");
	}
}

int ctl_jobs_restore(struct ctl *ctl)
{
	struct ctl_job *j;
	int rc = db_jobs_load(ctl->db, restore_one, ctl);

	if (rc)
		return rc;
	hec_info("catalog: %d job%s not ended reloaded (ended ones are read when asked for)",
		 ctl_jobs_in_memory(ctl), ctl_jobs_in_memory(ctl) == 1 ? "" : "s");
	for (j = ctl->jobs; j; j = j->next) {
		restore_classify(ctl, j);
		if (job_state_final(j->state))
			continue;
		if (j->phase == PH_NONE)
			ctl_gang_add_pending(ctl, j);
		else
			ctl_gang_add_restored(ctl, j);
		/* KILL_JOB goes as nodes register; the gone ones count now (a
		 * requeue puts the job back in the matrix: after its restore) */
		if (j->phase == PH_ENDING)
			job_kill_nodes(ctl, j);
	}
	return 0;
}

void ctl_jobs_shutdown(struct ctl *ctl, uid_t uid)
{
	struct ctl_job *j;

	for (j = ctl->jobs; j; j = j->next) {
		if (j->phase == PH_NONE)
			continue; /* pending jobs wait for the next start of the cluster */
		if (j->phase != PH_ENDING) {
			snprintf(j->reason, sizeof(j->reason), "cluster shut down by uid %u",
				 (unsigned)uid);
			j->end_time = ctl_now();
			j->final_state = JOB_CANCELLED;
		}
		/* The agents kill every partition on SHUTDOWN. */
		job_finish(ctl, j, j->final_state);
	}
}
