/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storage servers (hecstored, doc/storage.md) as the controller sees them.
 *
 * A server connects to the agents' port and sends STORE_REGISTER with the
 * cluster key, then STORE_STATUS every heartbeat interval.  The list lives
 * in memory only: a restarted controller learns it again as the servers
 * register (they retry every few seconds).  A server whose connection
 * closes, or that is silent for node_timeout (as long as a node may be),
 * stays listed as down, so `hec storage` shows a lost server, until it
 * registers again.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"
#include "ctld.h"
#include "place.h"

/* STATUS intervals a server may miss before it counts as down */

int agent_rule_allows(enum hec_msg_rule rule, const struct peer *p, const char *type,
		      char *why, size_t len)
{
	switch (rule) {
	case HEC_RULE_PEER:
		return 1;
	case HEC_RULE_REGISTERED:
		if (p->node)
			return 1;
		if (p->store)
			snprintf(why, len, "storage server %s may not send %s (node agents only)",
				 p->store->name, type);
		else
			snprintf(why, len, "send REGISTER first");
		return 0;
	case HEC_RULE_STORE:
		if (p->store)
			return 1;
		if (p->node)
			snprintf(why, len, "node %s may not send %s (storage servers only)",
				 p->node->name, type);
		else
			snprintf(why, len, "send STORE_REGISTER first");
		return 0;
	default: /* not a rule of this side: hec_msg_handlers_check refuses the table */
		snprintf(why, len, "%s: no rule says who may send it", type);
		return 0;
	}
}

struct store *store_find(struct ctl *ctl, const char *name)
{
	for (struct store *s = ctl->stores; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

/* The ring order of doc/storage.md sorts by name; the list shows it so. */
static void store_link(struct ctl *ctl, struct store *s)
{
	struct store **pp = &ctl->stores;

	while (*pp && place_name_cmp((*pp)->name, s->name) < 0)
		pp = &(*pp)->next;
	s->next = *pp;
	*pp = s;
}

int store_register(struct ctl *ctl, struct peer *p, const char *from, const json_t *body,
		   char *why, size_t len)
{
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *key = json_string_value(json_object_get(body, "key"));
	struct store *s;
	int was_known;

	if (p->node || p->store) {
		snprintf(why, len, "already registered as %s %s", p->node ? "node" : "storage server",
			 p->node ? p->node->name : p->store->name);
		hec_warn("%s: STORE_REGISTER (as %s) on a connection that is %s; closing", from, name,
			 why);
		return -EINVAL;
	}
	if (ctl->shutting_down) {
		snprintf(why, len, "the controller is shutting down");
		return -ESHUTDOWN;
	}
	if (ctl->cluster_key[0] && !hec_key_equal(key, ctl->cluster_key)) {
		snprintf(why, len, "storage server %s: wrong cluster key", name);
		hec_warn("%s: storage server %s presented a wrong cluster key; refused", from, name);
		return -EPERM;
	}
	if (!hec_name_ok(name)) {
		snprintf(why, len, "storage server name '%s' is not valid (letters, digits, '-', '_', '.')",
			 name);
		hec_warn("%s: %s; refused", from, why);
		return -EINVAL;
	}
	s = store_find(ctl, name);
	was_known = s != NULL;
	if (s && s->peer) {
		snprintf(why, len, "storage server %s is already registered from %s", name, s->from);
		hec_warn("%s: %s; refused", from, why);
		return -EEXIST;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			snprintf(why, len, "controller out of memory");
			hec_err("%s: storage server %s: out of memory", from, name);
			return -ENOMEM;
		}
		snprintf(s->name, sizeof(s->name), "%s", name);
		store_link(ctl, s);
	}
	snprintf(s->addr, sizeof(s->addr), "%s", json_string_value(json_object_get(body, "addr")));
	snprintf(s->provider, sizeof(s->provider), "%s",
		 json_string_value(json_object_get(body, "provider")));
	snprintf(s->dir, sizeof(s->dir), "%s", json_string_value(json_object_get(body, "dir")));
	snprintf(s->from, sizeof(s->from), "%s", from);
	s->pid = (long)json_integer_value(json_object_get(body, "pid"));
	/* Figures of an earlier life would pass for today's until the first STATUS. */
	json_decref(s->status);
	s->status = NULL;
	s->down_why[0] = 0;
	s->peer = p;
	s->last_heard = hec_now_mono_ns();
	p->store = s;
	hec_conn_set_max_frame(p->conn, HEC_MSG_MAX);
	hec_info("storage server %s: registered from %s (serves %s over %s, dir %s, pid %ld)", s->name,
		 from, s->addr, s->provider, s->dir, s->pid);
	if (was_known) {
		char reason[128];

		/* It was down: what was written meanwhile is degraded, and what it
		 * holds may be stale (deleted meanwhile).  Repair both. */
		snprintf(reason, sizeof(reason), "storage server %s registered again", s->name);
		store_repair_request(ctl, reason);
	}
	return 0;
}

void store_status(struct ctl *ctl, struct store *s, const json_t *body)
{
	const char *health = json_string_value(json_object_get(body, "health"));
	const char *was = s->status ? json_string_value(json_object_get(s->status, "health")) : NULL;

	(void)ctl;
	/* Log a change of health once, not every interval. */
	if (health && *health && strcmp(health, "ok") && (!was || strcmp(was, health)))
		hec_warn("storage server %s: %s", s->name, health);
	else if (was && *was && strcmp(was, "ok") && (!health || !*health || !strcmp(health, "ok")))
		hec_info("storage server %s: healthy again", s->name);
	json_decref(s->status);
	s->status = json_deep_copy(body);
	s->last_heard = hec_now_mono_ns();
}

void store_detach_peer(struct ctl *ctl, struct store *s, const char *why)
{
	(void)ctl;
	if (!s->peer)
		return;
	s->peer->store = NULL;
	s->peer = NULL;
	snprintf(s->down_why, sizeof(s->down_why), "%s", why);
	hec_warn("storage server %s: down: %s", s->name, why);
}

void store_check_liveness(struct ctl *ctl)
{
	int64_t now = hec_now_mono_ns();
	/* The silence that makes a node DOWN: a loaded host delays a server's
	 * STATUS as much as a node's HEARTBEAT, and each return costs a repair. */
	int64_t limit = ctl->conf.node_timeout * 1000000LL;

	for (struct store *s = ctl->stores; s; s = s->next) {
		struct peer *p = s->peer;
		char why[160];

		if (!p || now - s->last_heard <= limit)
			continue;
		snprintf(why, sizeof(why), "no STORE_STATUS for %.1fs", (now - s->last_heard) / 1e9);
		store_detach_peer(ctl, s, why);
		/* A live server that is only slow registers again. */
		if (p->conn)
			hec_conn_send_error_and_close(p->conn,
				"storage server %s declared down (%s); register again", s->name, why);
	}
}

static json_int_t figure(const struct store *s, const char *key)
{
	return s->status ? json_integer_value(json_object_get(s->status, key)) : 0;
}

/* One server of the "storage" answer; NULL on ENOMEM. */
static json_t *store_json(const struct store *s, int64_t now)
{
	static const char *const figures[] = {
		"total", "free", "used", "chunks", "manifests", "corrupt", "repaired", "clients",
	};
	const char *health = s->status ? json_string_value(json_object_get(s->status, "health"))
				       : NULL;
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "name", s->name,
			      "addr", s->addr, "provider", s->provider,
			      "state", s->peer ? "up" : "down", "dir", s->dir,
			      "health", health ? health : "",
			      "seen_ms", (json_int_t)((now - s->last_heard) / 1000000),
			      "pid", (json_int_t)s->pid);

	for (size_t i = 0; o && i < HEC_ARRAY_SIZE(figures); i++)
		if (json_object_set_new(o, figures[i], json_integer(figure(s, figures[i])))) {
			json_decref(o);
			return NULL;
		}
	if (o && !s->peer && json_object_set_new(o, "reason", json_string(s->down_why))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *store_list_json(struct ctl *ctl)
{
	int64_t now = hec_now_mono_ns();
	json_t *list = json_array(), *o;

	for (struct store *s = ctl->stores; list && s; s = s->next) {
		o = store_json(s, now);
		if (!o || json_array_append_new(list, o)) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* ---- repair ---- */

struct repair_waiter {
	struct peer *p;
	unsigned long gen;          /* answered when run gen has ended */
};

struct store_repair {
	struct ctl *ctl;
	char prog[PATH_MAX];        /* "" until found */
	long limit_ms;
	struct ctl_child *child;    /* the run under way, or NULL */
	unsigned long gen;          /* runs started */
	int pending;                /* one more run after this one */
	char pending_why[160];
	struct repair_waiter *waiters;
	size_t nwaiters;
	/* the run under way, or the last one */
	json_t *state;
};

static struct store_repair *repair_get(struct ctl *ctl)
{
	struct store_repair *r = ctl->repair;

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ctl = ctl;
	r->limit_ms = STORE_REPAIR_LIMIT_MS;
	r->state = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:[],s:n}", "state", "none", "reason", "",
			     "started", (json_int_t)0, "ended", (json_int_t)0, "copied", (json_int_t)0,
			     "lost", (json_int_t)0, "removed", (json_int_t)0, "lost_chunks", "error");
	if (!r->state) {
		free(r);
		return NULL;
	}
	ctl->repair = r;
	return r;
}

int store_repair_set_program(struct ctl *ctl, const char *prog, long limit_ms)
{
	struct store_repair *r = repair_get(ctl);

	if (!r)
		return -ENOMEM;
	snprintf(r->prog, sizeof(r->prog), "%s", prog);
	r->limit_ms = limit_ms > 0 ? limit_ms : STORE_REPAIR_LIMIT_MS;
	return 0;
}

/* A program as the CLI finds the daemons: beside us (the build tree holds
 * every program in one directory), else where it is installed. */
int ctl_find_program(const char *name, char *buf, size_t len)
{
	const char *dirs[3] = { NULL, HEC_BINDIR, HEC_SBINDIR };
	char self[PATH_MAX];

	if (hec_self_dir(self, sizeof(self)) == 0)
		dirs[0] = self;
	for (size_t i = 0; i < HEC_ARRAY_SIZE(dirs); i++) {
		if (!dirs[i] || hec_fmt(buf, len, "%s/%s", dirs[i], name))
			continue;
		if (access(buf, X_OK) == 0)
			return 0;
	}
	return -ENOENT;
}

int store_program(struct ctl *ctl, char *buf, size_t len)
{
	struct store_repair *r = repair_get(ctl);

	if (!r)
		return -ENOMEM;
	if (!r->prog[0] && ctl_find_program("hec-store", r->prog, sizeof(r->prog))) {
		r->prog[0] = 0;
		return -ENOENT;
	}
	return hec_fmt(buf, len, "%s", r->prog) ? -ENAMETOOLONG : 0;
}

static int64_t real_s(void)
{
	return hec_now_real_ns() / 1000000000LL;
}

static void repair_set(struct store_repair *r, const char *key, json_t *v)
{
	json_object_set_new(r->state, key, v);
}

/* Answer the waiters whose run has ended. */
static void repair_answer(struct store_repair *r)
{
	size_t k = 0;

	for (size_t i = 0; i < r->nwaiters; i++) {
		struct repair_waiter *w = &r->waiters[i];

		if (w->gen > r->gen || r->child) {
			r->waiters[k++] = *w;
			continue;
		}
		{
			json_t *body = json_pack("{s:b,s:O}", "ok", 1, "repair", r->state);

			if (body)
				hec_conn_send(w->p->conn, HEC_MSG_RESPONSE, body);
			else
				hec_conn_send_error_and_close(w->p->conn, "controller out of memory");
			json_decref(body);
		}
	}
	r->nwaiters = k;
}

static void repair_start(struct store_repair *r, const char *why);

/* The child is reaped and its output read: record the outcome. */
static void repair_done(void *arg, const struct ctl_child_result *cr)
{
	struct store_repair *r = arg;
	char *out = strdup(cr->out), *line, *save = NULL, err[600] = "";
	json_t *res = NULL;
	int ok;

	r->child = NULL;
	/* hec-store --json repair: one JSON line on stdout; errors on stderr */
	for (line = out ? strtok_r(out, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save))
		if (*line == '{') {
			json_decref(res);
			res = json_loads(line, 0, NULL);
		}
	free(out);
	ok = !cr->killed && WIFEXITED(cr->status) && WEXITSTATUS(cr->status) == 0;
	if (!cr->killed && json_is_string(json_object_get(res, "error")))
		snprintf(err, sizeof(err), "%s", json_string_value(json_object_get(res, "error")));
	else if (!ok)
		ctl_child_describe(cr, err, sizeof(err));
	else if (!res)
		snprintf(err, sizeof(err), "no result on its output");
	ok = ok && res;
	repair_set(r, "state", json_string(ok ? "done" : "failed"));
	repair_set(r, "ended", json_integer((json_int_t)real_s()));
	repair_set(r, "copied", json_integer(json_integer_value(json_object_get(res, "copied"))));
	repair_set(r, "lost", json_integer(json_integer_value(json_object_get(res, "lost"))));
	repair_set(r, "removed", json_integer(json_integer_value(json_object_get(res, "removed"))));
	repair_set(r, "lost_chunks", json_is_array(json_object_get(res, "lost_chunks"))
					     ? json_incref(json_object_get(res, "lost_chunks"))
					     : json_array());
	repair_set(r, "error", err[0] ? json_string(err) : json_null());
	if (ok)
		hec_info("storage repair (%s): %" JSON_INTEGER_FORMAT " copies made, %" JSON_INTEGER_FORMAT " chunks lost, %" JSON_INTEGER_FORMAT " deleted copies removed",
			 json_string_value(json_object_get(r->state, "reason")),
			 json_integer_value(json_object_get(r->state, "copied")),
			 json_integer_value(json_object_get(r->state, "lost")),
			 json_integer_value(json_object_get(r->state, "removed")));
	else
		hec_warn("storage repair (%s) failed: %s",
			 json_string_value(json_object_get(r->state, "reason")), err);
	{
		const json_t *lc = json_object_get(r->state, "lost_chunks"), *e;
		size_t i;

		json_array_foreach(lc, i, e)
			hec_err("storage repair: lost %" JSON_INTEGER_FORMAT " chunks of job %" JSON_INTEGER_FORMAT " epoch %" JSON_INTEGER_FORMAT " (no good copy left)",
				json_integer_value(json_object_get(e, "chunks")),
				json_integer_value(json_object_get(e, "job")),
				json_integer_value(json_object_get(e, "epoch")));
	}
	json_decref(res);
	repair_answer(r);
	if (r->pending && !r->ctl->shutting_down) {
		char why[sizeof(r->pending_why)];

		r->pending = 0;
		snprintf(why, sizeof(why), "%s", r->pending_why);
		repair_start(r, why);
	}
}

static void repair_fail_now(struct store_repair *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void repair_fail_now(struct store_repair *r, const char *fmt, ...)
{
	char err[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, sizeof(err), fmt, ap);
	va_end(ap);
	hec_err("storage repair: %s", err);
	repair_set(r, "state", json_string("failed"));
	repair_set(r, "ended", json_integer((json_int_t)real_s()));
	repair_set(r, "error", json_string(err));
	repair_answer(r);
}

static void repair_start(struct store_repair *r, const char *why)
{
	struct ctl *ctl = r->ctl;
	char dir[sizeof(ctl->conf.socket)], servers[8192] = "", prog[PATH_MAX], *argv[12];
	const char *base;
	int n = 0, rc;
	size_t used = 0;

	r->gen++;
	json_object_clear(r->state);
	json_object_update_new(r->state,
			       json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:[],s:n}", "state", "running",
					 "reason", why, "started", (json_int_t)real_s(), "ended",
					 (json_int_t)0, "copied", (json_int_t)0, "lost", (json_int_t)0,
					 "removed", (json_int_t)0, "lost_chunks", "error"));
	if (store_program(ctl, prog, sizeof(prog))) {
		repair_fail_now(r, "cannot find hec-store (looked beside hecctld, in %s and %s)",
				HEC_BINDIR, HEC_SBINDIR);
		return;
	}
	argv[n++] = prog;
	/* hec-store asks us for the servers (their state included) through the
	 * CLI socket of the cluster directory it is in */
	snprintf(dir, sizeof(dir), "%s", ctl->conf.socket);
	base = strrchr(dir, '/');
	if (base && !strcmp(base + 1, "hecctld.sock") && base != dir) {
		dir[base - dir] = 0;
		argv[n++] = "--dir";
		argv[n++] = dir;
	} else {
		/* a socket of another name: the servers up, from our list */
		for (struct store *s = ctl->stores; s; s = s->next)
			if (s->peer && used + strlen(s->name) + strlen(s->addr) + 3 < sizeof(servers))
				used += (size_t)snprintf(servers + used, sizeof(servers) - used, "%s%s=%s",
							 used ? "," : "", s->name, s->addr);
		if (!used) {
			repair_fail_now(r, "no storage server is up");
			return;
		}
		argv[n++] = "--servers";
		argv[n++] = servers;
	}
	if (ctl->conf.key_file[0]) {
		argv[n++] = "--key-file";
		argv[n++] = ctl->conf.key_file;
	}
	argv[n++] = "--quiet";
	argv[n++] = "--json";
	argv[n++] = "repair";
	argv[n] = NULL;
	rc = ctl_child_start(ctl->base, argv, r->limit_ms, repair_done, r, &r->child);
	if (rc) {
		r->child = NULL;
		repair_fail_now(r, "cannot start %s: %s", prog, strerror(-rc));
		return;
	}
	hec_info("storage repair: started %s (pid %ld): %s", prog, (long)ctl_child_pid(r->child),
		 why);
}

void store_repair_request(struct ctl *ctl, const char *why)
{
	struct store_repair *r;

	if (ctl->shutting_down || !ctl->base)
		return;
	r = repair_get(ctl);
	if (!r) {
		hec_err("storage repair (%s): out of memory", why);
		return;
	}
	if (r->child) {
		if (!r->pending)
			hec_info("storage repair: one is under way; another runs after it (%s)", why);
		r->pending = 1;
		snprintf(r->pending_why, sizeof(r->pending_why), "%s", why);
		return;
	}
	repair_start(r, why);
}

int store_repair_wait(struct ctl *ctl, struct peer *p)
{
	struct store_repair *r = repair_get(ctl);
	struct repair_waiter *w;
	char why[128];

	if (!r)
		return -ENOMEM;
	w = realloc(r->waiters, (r->nwaiters + 1) * sizeof(*w));
	if (!w)
		return -ENOMEM;
	r->waiters = w;
	/* the run that starts now, or the one after the run under way */
	w[r->nwaiters].p = p;
	w[r->nwaiters].gen = r->gen + 1;
	r->nwaiters++;
	snprintf(why, sizeof(why), "asked by uid %ld", (long)p->uid);
	store_repair_request(ctl, why);
	return 0;
}

void store_repair_forget(struct ctl *ctl, struct peer *p)
{
	struct store_repair *r = ctl->repair;
	size_t k = 0;

	for (size_t i = 0; r && i < r->nwaiters; i++)
		if (r->waiters[i].p != p)
			r->waiters[k++] = r->waiters[i];
	if (r)
		r->nwaiters = k;
}

json_t *store_repair_json(struct ctl *ctl)
{
	struct store_repair *r = repair_get(ctl);

	return r ? json_deep_copy(r->state) : NULL;
}

static void repair_free(struct ctl *ctl)
{
	struct store_repair *r = ctl->repair;

	if (!r)
		return;
	ctl_child_kill(r->child);
	json_decref(r->state);
	free(r->waiters);
	free(r);
	ctl->repair = NULL;
}

void store_free_all(struct ctl *ctl)
{
	struct store *s, *next;

	repair_free(ctl);

	for (s = ctl->stores; s; s = next) {
		next = s->next;
		if (s->peer)
			s->peer->store = NULL;
		json_decref(s->status);
		free(s);
	}
	ctl->stores = NULL;
}
