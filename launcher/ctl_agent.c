/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Nodes and their agents: registration, liveness, and the agent side of the
 * job lifecycle (LAUNCHED, JOB_EXIT, JOB_GONE).
 *
 * A node record outlives its connection: it is created by the first
 * REGISTER, kept in the catalog, and only its state says whether an agent
 * speaks for it now.  On every REGISTER the controller reconciles what the
 * agent holds (its partitions) with what the catalog expects there.
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
#include "place.h"

struct node *node_find(struct ctl *ctl, const char *name)
{
	struct node *n;

	for (n = ctl->nodes; n; n = n->next)
		if (!strcmp(n->name, name))
			return n;
	return NULL;
}

/*
 * Keep ctl->nodes in natural name order: it is the column order of the gang
 * matrix, and placement takes the lowest columns first.
 * \return 0 or -ENOMEM (the node is not linked).
 */
static int node_link(struct ctl *ctl, struct node *n)
{
	struct node **pp = &ctl->nodes;
	int pos = 0, rc;

	while (*pp && place_name_cmp((*pp)->name, n->name) < 0) {
		pp = &(*pp)->next;
		pos++;
	}
	rc = gm_col_insert(ctl->gang, pos, n->memory_mb > 0 ? n->memory_mb : 0, 0);
	if (rc)
		return rc;
	n->next = *pp;
	*pp = n;
	ctl->nnodes++;
	return 0;
}

enum node_state node_public_state(const struct node *n)
{
	if (n->state == NODE_DOWN || n->state == NODE_UNKNOWN)
		return n->state;
	return n->njobs ? NODE_ALLOCATED : NODE_IDLE;
}

int node_up(const struct node *n)
{
	return n->state == NODE_IDLE && n->peer;
}

int node_send(struct node *n, unsigned type, json_t *body)
{
	int rc = -ENOTCONN;

	if (!body)
		rc = -ENOMEM;
	else if (n && n->peer)
		rc = hec_conn_send(n->peer->conn, type, body);
	if (rc && n)
		hec_warn("%s: %s not sent: %s", n->name, hec_msg_type_name(type), strerror(-rc));
	json_decref(body);
	return rc;
}

void ctl_nodes_save(struct ctl *ctl)
{
	if (!ctl->nodes_unsaved)
		return;
	ctl->nodes_unsaved = 0;
	if (db_nodes_save(ctl->db, ctl->nodes))
		hec_err("catalog update of the nodes that registered failed: %s", db_errmsg(ctl->db));
}

int node_send_frame(struct node *n, unsigned type, struct hec_frame *f)
{
	int rc = n && n->peer ? hec_conn_send_frame(n->peer->conn, f) : -ENOTCONN;

	if (rc && n)
		hec_warn("%s: %s not sent: %s", n->name, hec_msg_type_name(type), strerror(-rc));
	return rc;
}

void node_detach_peer(struct ctl *ctl, struct node *n, const char *why)
{
	if (!n->peer)
		return;
	n->peer->node = NULL;
	n->peer = NULL;
	fanout_node_lost(ctl->fanout, n->name, why);
}

void node_down(struct ctl *ctl, struct node *n, const char *why)
{
	struct ctl_job *j;

	if (n->state == NODE_DOWN)
		return;
	hec_warn("%s: DOWN: %s", n->name, why);
	n->state = NODE_DOWN;
	if (n->peer) {
		struct peer *p = n->peer;
		char gone[200];

		/* Drop the silent connection; a live agent registers again. */
		snprintf(gone, sizeof(gone), "DOWN: %s", why);
		node_detach_peer(ctl, n, gone);
		hec_conn_send_error_and_close(p->conn, "node %s declared DOWN (%s); register again",
					      n->name, why);
	}
	for (j = ctl->jobs; j; j = j->next) {
		struct job_node *jn = j->phase != PH_NONE ? job_node_of(j, n) : NULL;

		if (!jn || jn->gone)
			continue;
		jn->gone = 1;
		if (j->phase == PH_ENDING) {
			job_check_gone(ctl, j);
		} else {
			char lost[160];

			snprintf(lost, sizeof(lost), "%s not responding", n->name);
			if (!restart_wanted(ctl, j, lost))
				job_end(ctl, j, JOB_NODE_FAIL, "%s", lost);
		}
	}
	ctl->sched_needed = 1;
	ctl->epoch_needed = 1; /* the others' schedule no longer names it */
}

void node_check_liveness(struct ctl *ctl)
{
	int64_t now = hec_now_mono_ns(), limit = ctl->conf.node_timeout * 1000000LL;
	struct node *n;

	for (n = ctl->nodes; n; n = n->next) {
		int64_t silent = now - n->last_heard;
		char why[160];

		if (n->state == NODE_DOWN || silent <= limit)
			continue;
		if (n->state == NODE_UNKNOWN)
			snprintf(why, sizeof(why), "did not register within %.1fs of the controller's start",
				 ctl->conf.node_timeout / 1000.0);
		else if (n->peer)
			snprintf(why, sizeof(why), "no heartbeat for %.1fs", silent / 1e9);
		else
			snprintf(why, sizeof(why), "connection lost %.1fs ago and not re-established",
				 silent / 1e9);
		node_down(ctl, n, why);
	}
}

/* Empty CPU list: the node owns all CPUs of its host. */
static void node_cpuset(const struct node *n, struct hec_cpuset *set)
{
	if (!n->cpus || !*n->cpus || hec_cpuset_parse(n->cpus, set) < 0)
		memset(set->bits, 0xff, sizeof(set->bits));
}

json_t *node_to_json(struct ctl *ctl, const struct node *n)
{
	json_t *shares = json_array(), *jobs = json_array();
	struct hec_cpuset mine, other;
	const struct node *o;
	int64_t ago = n->last_seen ? ctl_now() - n->last_seen : -1;

	node_cpuset(n, &mine);
	for (o = ctl->nodes; shares && o; o = o->next) {
		if (o == n || strcmp(o->hostname, n->hostname))
			continue;
		node_cpuset(o, &other);
		if (hec_cpuset_intersects(&mine, &other))
			json_array_append_new(shares, json_string(o->name));
	}
	for (const struct ctl_job *j = ctl->jobs; jobs && n->njobs && j; j = j->next)
		if (j->phase != PH_NONE && job_node_of((struct ctl_job *)j, n))
			json_array_append_new(jobs, json_integer(j->id));
	return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:o,s:o,s:I}",
			 "name", n->name, "state", node_state_name(node_public_state(n)),
			 "hostname", n->hostname, "cpus", n->cpus ? n->cpus : "",
			 "cores", (json_int_t)n->cores, "pus", (json_int_t)n->pus,
			 "numa_nodes", (json_int_t)n->numa_nodes,
			 "memory_mb", (json_int_t)n->memory_mb,
			 "shares_cpus_with", shares, "jobs", jobs,
			 "last_seen", (json_int_t)(ago < 0 ? 0 : ago));
}

static int restore_node(struct node *n, void *arg)
{
	struct ctl *ctl = arg;

	n->last_heard = ctl->start_mono; /* node_timeout counts from our start */
	if (node_link(ctl, n)) {
		free(n->cpus);
		free(n);
		return -ENOMEM;
	}
	return 0;
}

int ctl_nodes_restore(struct ctl *ctl)
{
	return db_nodes_load(ctl->db, restore_node, ctl);
}

static int has_partition(const json_t *parts, long id)
{
	size_t i;
	json_t *v;

	json_array_foreach(parts, i, v)
		if (json_integer_value(v) == id)
			return 1;
	return 0;
}

static int all_launched(const struct ctl_job *j)
{
	for (int i = 0; i < j->nalloc; i++)
		if (!j->alloc[i].launched)
			return 0;
	return 1;
}

static void send_kill(struct node *n, long id)
{
	node_send(n, HEC_MSG_KILL_JOB, json_pack("{s:I}", "job", (json_int_t)id));
}

/*
 * After REGISTER: make what the agent holds agree with the catalog.
 * A partition the controller does not expect there is killed; a job that
 * should have one there and does not has lost it; jobs being torn down get
 * their KILL_JOB again (the last one may have died with the connection).
 * @started (NULL from an agent that does not say): the jobs whose START the
 * node has had.  A running job whose batch node holds its partition but
 * never had START never ran its batch step (START is recorded before it
 * goes out, and the controller died or the link broke in between): it is
 * requeued, as SLURM requeues a batch job missing from its batch node.
 */
static void reconcile(struct ctl *ctl, struct node *n, const json_t *parts,
		      const json_t *started)
{
	struct ctl_job *j;
	size_t i;
	json_t *v;

	n->stale = 0; /* the old connection's JOB_GONEs will not come */
	json_array_foreach(parts, i, v) {
		long id = (long)json_integer_value(v);
		struct ctl_job *pj = job_find(ctl, id);
		struct job_node *jn = pj && pj->phase != PH_NONE ? job_node_of(pj, n) : NULL;

		if (jn && !jn->gone)
			continue; /* expected (ENDING ones get KILL_JOB below) */
		hec_info("%s: holds a partition of job %ld, which is %s there; killing it",
			 n->name, id, !pj ? "unknown" : "not running");
		/* a restart of that job placed here now would find it still
		 * being killed and fail its launch */
		n->stale++;
		send_kill(n, id);
	}
	for (j = ctl->jobs; j; j = j->next) {
		struct job_node *jn = j->phase != PH_NONE ? job_node_of(j, n) : NULL;
		int has;

		if (!jn || jn->gone)
			continue;
		has = has_partition(parts, j->id);
		switch (j->phase) {
		case PH_ENDING:
			if (jn->kill_gen != n->gen) { /* not yet on this connection */
				send_kill(n, j->id);
				jn->kill_gen = n->gen;
				jn->kill_sent = hec_now_mono_ns();
			}
			break;
		case PH_LAUNCHING:
			if (has) {
				/* LAUNCHED may have been lost with the old
				 * connection; the partition says it worked. */
				jn->launched = 1;
				if (all_launched(j))
					job_send_start(ctl, j);
			} else if (jn->launched) {
				char lost[160];

				snprintf(lost, sizeof(lost), "partition lost on %s", n->name);
				if (!restart_launch_failed(ctl, j, n->name, "partition lost") &&
				    !restart_wanted(ctl, j, lost))
					job_end(ctl, j, JOB_FAILED, "%s", lost);
			} else if (job_send_launch(ctl, j, jn)) {
				job_end(ctl, j, JOB_FAILED, "%s: LAUNCH not sent", n->name);
			}
			break;
		case PH_RUNNING:
			if (has && jn == j->alloc && started && !has_partition(started, j->id)) {
				hec_warn("job %ld: recorded as started, but %s never had its START",
					 j->id, n->name);
				job_requeue(ctl, j, "START never reached %s; requeued", n->name);
			} else if (has) {
				hec_info("%s: job %ld continues", n->name, j->id);
				restart_reconciled(ctl, j, n);
			} else {
				char lost[160];

				snprintf(lost, sizeof(lost), "partition lost on %s", n->name);
				if (!restart_wanted(ctl, j, lost))
					job_end(ctl, j, JOB_FAILED, "%s", lost);
			}
			break;
		case PH_NONE:
			break;
		}
	}
}

static void agent_register(struct ctl *ctl, struct peer *p, const json_t *body)
{
	const char *name = json_string_value(json_object_get(body, "node"));
	const char *key = json_string_value(json_object_get(body, "key"));
	const char *cpus = json_string_value(json_object_get(body, "cpus"));
	const json_t *topo = json_object_get(body, "topology");
	const json_t *parts = json_object_get(body, "partitions");
	const json_t *exits = json_object_get(body, "exits");
	const char *peer = hec_conn_peer(p->conn);
	struct hec_cpuset set;
	struct node *n;
	size_t i;
	json_t *e;
	int was;

	if (p->node) {
		hec_warn("%s: second REGISTER (as %s) on the connection of node %s; closing", peer,
			 name, p->node->name);
		hec_conn_send_error_and_close(p->conn, "already registered as %s", p->node->name);
		return;
	}
	if (p->store) {
		hec_warn("%s: REGISTER (as %s) on the connection of storage server %s; closing", peer,
			 name, p->store->name);
		hec_conn_send_error_and_close(p->conn, "already registered as storage server %s",
					      p->store->name);
		return;
	}
	if (ctl->shutting_down) {
		hec_conn_send_error_and_close(p->conn, "the controller is shutting down");
		return;
	}
	if (ctl->cluster_key[0] && !hec_key_equal(key, ctl->cluster_key)) {
		hec_warn("%s: node %s presented a wrong cluster key; refused", peer, name);
		hec_conn_send_error_and_close(p->conn, "node %s: wrong cluster key", name);
		return;
	}
	if (!hec_name_ok(name)) {
		hec_warn("%s: node name '%s' is not valid; refused", peer, name);
		hec_conn_send_error_and_close(p->conn,
			"node name '%s' is not valid (letters, digits, '-', '_', '.')", name);
		return;
	}
	if (*cpus && hec_cpuset_parse(cpus, &set) < 0) {
		hec_warn("%s: node %s: cpus '%s' is not a CPU list; refused", peer, name, cpus);
		hec_conn_send_error_and_close(p->conn, "cpus '%s' is not a CPU list", cpus);
		return;
	}
	n = node_find(ctl, name);
	if (n && n->peer) {
		hec_warn("%s: node %s is already registered from %s; refused", peer, name,
			 hec_conn_peer(n->peer->conn));
		hec_conn_send_error_and_close(p->conn, "node %s is already registered from %s",
					      name, hec_conn_peer(n->peer->conn));
		return;
	}
	if (!n) {
		/* a new column holds nothing: no node's slots change with it */
		int published = gm_version(ctl->gang) == ctl->gang_published;

		n = calloc(1, sizeof(*n));
		if (!n || !(n->cpus = strdup(cpus))) {
			free(n);
			hec_err("%s: node %s: out of memory", peer, name);
			hec_conn_send_error_and_close(p->conn, "controller out of memory");
			return;
		}
		snprintf(n->name, sizeof(n->name), "%s", name);
		n->state = NODE_UNKNOWN;
		if (node_link(ctl, n)) {
			free(n->cpus);
			free(n);
			hec_err("%s: node %s: out of memory", peer, name);
			hec_conn_send_error_and_close(p->conn, "controller out of memory");
			return;
		}
		if (published)
			ctl->gang_published = gm_version(ctl->gang);
	} else if (strcmp(n->cpus, cpus)) {
		char *c = strdup(cpus);

		if (!c) {
			hec_conn_send_error_and_close(p->conn, "controller out of memory");
			return;
		}
		free(n->cpus);
		n->cpus = c;
	}
	snprintf(n->hostname, sizeof(n->hostname), "%s",
		 json_string_value(json_object_get(body, "hostname")));
	snprintf(n->addr, sizeof(n->addr), "%s", json_string_value(json_object_get(body, "addr")));
	n->cores = (long)json_integer_value(json_object_get(topo, "cores"));
	n->pus = (long)json_integer_value(json_object_get(topo, "pus"));
	n->numa_nodes = (long)json_integer_value(json_object_get(topo, "numa_nodes"));
	n->memory_mb = (long)json_integer_value(json_object_get(topo, "memory_mb"));
	was = n->state;
	n->state = NODE_IDLE;
	n->peer = p;
	n->gen++;
	/* the round trip of its clock estimate (kept across a reconnect), 0 if it
	 * has none yet: its HEARTBEATs and STATS tell it from then on */
	n->rtt_ns = json_integer_value(json_object_get(body, "rtt_ns"));
	p->node = n;
	hec_conn_set_max_frame(p->conn, HEC_MSG_MAX);
	n->last_heard = hec_now_mono_ns();
	n->last_seen = ctl_now();
	/* with the others registering at once: one sync for all (ctl_nodes_save) */
	n->save_due = 1;
	ctl->nodes_unsaved = 1;
	hec_info("%s: registered from %s (host %s, cpus %s, spawn address %s; %zu partitions, %zu unacknowledged exits)%s",
		 n->name, peer, n->hostname, *n->cpus ? n->cpus : "all", n->addr,
		 json_array_size(parts), json_array_size(exits),
		 was == NODE_DOWN ? "; back from DOWN" : "");
	node_send(n, HEC_MSG_REGISTERED,
		  json_pack("{s:I}", "heartbeat_ms", (json_int_t)ctl->conf.heartbeat_interval));
	/* Exits first: a job whose step ended is no longer expected to hold
	 * partitions, so reconcile() does not call them lost. */
	json_array_foreach(exits, i, e)
		job_exit_report(ctl, n, e);
	reconcile(ctl, n, parts, json_object_get(body, "started"));
	ctl->sched_needed = 1;
	/* It gets the epoch in force (a fresh one only if none went out yet);
	 * the others' slots do not change by its coming.  A fresh epoch to
	 * every node at each REGISTER made N agents registering at once cost
	 * N^2 / 2 EPOCHs (bench/scale). */
	if (!ctl->epoch.id)
		ctl->epoch_needed = 1;
	else if (!n->epoch_due) {
		n->epoch_due = 1;
		ctl->epochs_due++;
	}
}

static void agent_launched(struct ctl *ctl, struct node *n, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	const char *error = json_string_value(json_object_get(body, "error"));
	struct ctl_job *j = job_find(ctl, id);
	struct job_node *jn = j && j->phase != PH_NONE ? job_node_of(j, n) : NULL;
	char why[600];

	if (!jn) {
		hec_warn("%s: LAUNCHED for job %ld, which is not allocated there; ignored%s", n->name,
			 id, error ? "" : " (partition killed)");
		if (!error)
			send_kill(n, id);
		return;
	}
	if (j->phase != PH_LAUNCHING) {
		hec_debug("%s: LAUNCHED for job %ld, which is past launching; ignored", n->name, id);
		return;
	}
	if (error) {
		reason_for_node(why, sizeof(why), n->name, error);
		hec_warn("job %ld: %s could not make its partition: %s", id, n->name, error);
		if (!restart_launch_failed(ctl, j, n->name, error))
			job_end(ctl, j, JOB_FAILED, "%s", why);
		return;
	}
	jn->launched = 1;
	hec_debug("job %ld: %s launched", id, n->name);
	if (all_launched(j))
		job_send_start(ctl, j);
	else
		hec_fault("ctl.launch.some_launched"); /* a partition made, START not recorded */
}

static void agent_gone(struct ctl *ctl, struct node *n, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	struct ctl_job *j = job_find(ctl, id);
	struct job_node *jn = j && j->phase == PH_ENDING ? job_node_of(j, n) : NULL;

	if ((!jn || jn->gone) && n->stale > 0) {
		n->stale--;
		ctl->sched_needed = 1;
	}
	if (!j) { /* (a late answer to a KILL_JOB sent again: it may have ended) */
		hec_debug("%s: JOB_GONE for job %ld, which is not active; ignored", n->name, id);
		return;
	}
	if (!jn || jn->gone) {
		hec_debug("%s: JOB_GONE for job %ld, nothing was waiting for it", n->name, id);
		return;
	}
	jn->gone = 1;
	hec_debug("job %ld: %s cleaned up", id, n->name);
	job_check_gone(ctl, j);
}

/* ---- messages from agents: one row each (hec_msg_handlers_check) ---- */

/* What a handler gets: the connection's peer, and its node once registered. */
struct agent_call {
	struct ctl *ctl;
	struct peer *p;
	struct node *n;
	int64_t t2;    /* receipt instant (CLOCK_REALTIME ns), for clock probes */
};

static void on_register(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	agent_register(a->ctl, a->p, m->body);
}

static void on_time_req(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ctl_gang_time_req(a->ctl, a->n, m->body, a->t2);
}

/* The dispatcher noted that the node was heard from.  Its clock estimate's
 * round trip (checked: 0 or more ns), if it sends one, sets how far ahead
 * the next epoch starts (ctl_lead_ns()). */
static void on_heartbeat(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;
	const json_t *rtt = json_object_get(m->body, "rtt_ns");

	if (rtt)
		a->n->rtt_ns = json_integer_value(rtt);
}

static void on_stats(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ctl_gang_on_stats(a->ctl, a->n, m->body);
}

static void on_ckpt_captured(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ckpt_on_captured(a->ctl, a->n, m->body);
}

static void on_ckpt_stored(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ckpt_on_stored(a->ctl, a->n, m->body);
}

static void on_ckpt_progress(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ckpt_on_progress(a->ctl, a->n, m->body);
}

static void on_ckpt_ask(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ckpt_on_ask(a->ctl, a->n, m->body);
}

static void on_ckpt_loaded(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	ckpt_on_loaded(a->ctl, a->n, m->body);
}

static void on_launched(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	agent_launched(a->ctl, a->n, m->body);
}

static void on_job_exit(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	job_exit_report(a->ctl, a->n, m->body);
}

static void on_job_gone(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	agent_gone(a->ctl, a->n, m->body);
}

static void on_error(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	hec_warn("%s: agent reports: %s", a->n->name,
		 json_string_value(json_object_get(m->body, "error")));
}

static void on_store_register(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;
	char why[400];
	json_t *ok;

	if (store_register(a->ctl, a->p, hec_conn_peer(a->p->conn), m->body, why, sizeof(why))) {
		hec_conn_send_error_and_close(a->p->conn, "%s", why);
		return;
	}
	/* the server sends STORE_STATUS at the agents' heartbeat interval */
	ok = json_pack("{s:I}", "heartbeat_ms", (json_int_t)a->ctl->conf.heartbeat_interval);
	if (!ok || hec_conn_send(a->p->conn, HEC_MSG_REGISTERED, ok))
		hec_warn("storage server %s: REGISTERED not sent", a->p->store->name);
	json_decref(ok);
}

static void on_store_status(void *arg, const struct hec_msg *m)
{
	struct agent_call *a = arg;

	store_status(a->ctl, a->p->store, m->body);
}

/* REGISTER and STORE_REGISTER are the only messages before registration
 * (they check the cluster key); every other one is from the node, or the
 * storage server, that registered on the connection. */
static const struct hec_msg_handler agent_handlers[] = {
	{ .type = HEC_MSG_REGISTER, .rule = HEC_RULE_PEER, .fn = on_register },
	{ .type = HEC_MSG_STORE_REGISTER, .rule = HEC_RULE_PEER, .quick = 1,
	  .fn = on_store_register },
	{ .type = HEC_MSG_STORE_STATUS, .rule = HEC_RULE_STORE, .quick = 1, .fn = on_store_status },
	/* nothing for the scheduler; answer without delay */
	{ .type = HEC_MSG_TIME_REQ, .rule = HEC_RULE_REGISTERED, .quick = 1, .fn = on_time_req },
	{ .type = HEC_MSG_HEARTBEAT, .rule = HEC_RULE_REGISTERED, .fn = on_heartbeat },
	{ .type = HEC_MSG_STATS, .rule = HEC_RULE_REGISTERED, .fn = on_stats },
	{ .type = HEC_MSG_CKPT_CAPTURED, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_captured },
	{ .type = HEC_MSG_CKPT_STORED, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_stored },
	{ .type = HEC_MSG_CKPT_PROGRESS, .rule = HEC_RULE_REGISTERED, .quick = 1,
	  .fn = on_ckpt_progress },
	{ .type = HEC_MSG_CKPT_ASK, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_ask },
	{ .type = HEC_MSG_CKPT_LOADED, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_loaded },
	{ .type = HEC_MSG_LAUNCHED, .rule = HEC_RULE_REGISTERED, .fn = on_launched },
	{ .type = HEC_MSG_JOB_EXIT, .rule = HEC_RULE_REGISTERED, .fn = on_job_exit },
	{ .type = HEC_MSG_JOB_GONE, .rule = HEC_RULE_REGISTERED, .fn = on_job_gone },
	{ .type = HEC_MSG_ERROR, .rule = HEC_RULE_REGISTERED, .fn = on_error },
};

int agent_handlers_check(char *err, size_t errlen)
{
	return hec_msg_handlers_check(agent_handlers, HEC_ARRAY_SIZE(agent_handlers), HEC_SIDE_CTL,
				      err, errlen);
}

void agent_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	/* Clock probes: the receipt instant first, before anything else runs. */
	struct agent_call a = { .t2 = hec_now_real_ns() };
	const struct hec_msg_handler *h =
		hec_msg_handler_find(agent_handlers, HEC_ARRAY_SIZE(agent_handlers), m);
	char why[200];

	a.p = arg;
	a.ctl = a.p->ctl;
	a.n = a.p->node;
	if (!agent_rule_allows(h ? h->rule : HEC_RULE_REGISTERED, a.p, hec_msg_type_name(m->type),
			       why, sizeof(why))) {
		hec_warn("%s: %s refused (%s); closing", hec_conn_peer(c), hec_msg_type_name(m->type),
			 why);
		if (a.p->store) {
			char gone[300];

			snprintf(gone, sizeof(gone), "refused: %s", why);
			store_detach_peer(a.ctl, a.p->store, gone);
		}
		hec_conn_send_error_and_close(c, "%s", why);
		return;
	}
	if (a.n && (!h || h->rule == HEC_RULE_REGISTERED)) {
		a.n->last_heard = hec_now_mono_ns();
		a.n->last_seen = ctl_now();
	}
	if (h)
		h->fn(&a, m);
	else
		hec_warn("%s: unexpected %s from an agent; ignored", a.n->name,
			 hec_msg_type_name(m->type));
	if (h && h->quick)
		return;
	if (a.ctl->sched_needed || a.ctl->epoch_needed || a.ctl->nodes_unsaved)
		ctl_schedule_soon(a.ctl);
}
