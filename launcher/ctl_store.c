/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storage servers (hecstored, doc/storage.md) as the controller sees them.
 *
 * A server connects to the agents' port and sends STORE_REGISTER with the
 * cluster key, then STORE_STATUS every heartbeat interval.  The list lives
 * in memory only: a restarted controller learns it again as the servers
 * register (they retry every few seconds).  A server whose connection
 * closes, or that is silent for STORE_MISSED intervals, stays listed as
 * down, so `hec storage` shows a lost server, until it registers again.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hec/common.h"
#include "ctld.h"
#include "place.h"

/* STATUS intervals a server may miss before it counts as down */
#define STORE_MISSED 3

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
	if (ctl->cluster_key[0] && !ctl_key_equal(key, ctl->cluster_key)) {
		snprintf(why, len, "storage server %s: wrong cluster key", name);
		hec_warn("%s: storage server %s presented a wrong cluster key; refused", from, name);
		return -EPERM;
	}
	if (!ctl_name_ok(name)) {
		snprintf(why, len, "storage server name '%s' is not valid (letters, digits, '-', '_', '.')",
			 name);
		hec_warn("%s: %s; refused", from, why);
		return -EINVAL;
	}
	s = store_find(ctl, name);
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
	hec_info("storage server %s: registered from %s (serves %s over %s, dir %s, pid %ld)", s->name,
		 from, s->addr, s->provider, s->dir, s->pid);
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
	int64_t limit = STORE_MISSED * ctl->conf.heartbeat_interval * 1000000LL;

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

void store_free_all(struct ctl *ctl)
{
	struct store *s, *next;

	for (s = ctl->stores; s; s = next) {
		next = s->next;
		if (s->peer)
			s->peer->store = NULL;
		json_decref(s->status);
		free(s);
	}
	ctl->stores = NULL;
}
