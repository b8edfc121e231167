/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CUnit: the controller's storage servers (launcher/ctl_store.c): the agent
 * port's rule check (a storage connection cannot send node messages, nor a
 * node's connection storage ones), registration (key, name, a name another
 * live server holds), status figures, and liveness on a real connection.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "hec/common.h"
#include "hec/net.h"
#include "launcher/ctld.h"
#include "tests/unit/cunit_main.h"

static json_t *reg_body(const char *name, const char *key)
{
	json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "name", name, "key", key,
			      "addr", "127.0.0.1:7100", "provider", "tcp", "dir", "/srv/s", "pid", 42);

	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(hec_msg_validate(HEC_MSG_STORE_REGISTER, b, NULL, 0), 0);
	return b;
}

static void init_ctl(struct ctl *ctl)
{
	memset(ctl, 0, sizeof(*ctl));
	snprintf(ctl->cluster_key, sizeof(ctl->cluster_key), "sekrit");
	ctl->conf.heartbeat_interval = 20;
}

static void test_rules(void)
{
	struct node n = { .name = "node3" };
	struct store s = { .name = "s1" };
	struct peer none = { 0 }, nodep = { .node = &n }, storep = { .store = &s };
	char why[200];

	/* anybody: REGISTER, STORE_REGISTER */
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_PEER, &none, "REGISTER", why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_PEER, &storep, "STORE_REGISTER", why, sizeof(why)), 1);

	/* node messages: the node's connection only */
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_REGISTERED, &nodep, "HEARTBEAT", why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_REGISTERED, &storep, "HEARTBEAT", why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(why, "storage server s1 may not send HEARTBEAT (node agents only)");
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_REGISTERED, &none, "LAUNCHED", why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(why, "send REGISTER first");

	/* storage messages: the storage server's connection only */
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_STORE, &storep, "STORE_STATUS", why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_STORE, &nodep, "STORE_STATUS", why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(why, "node node3 may not send STORE_STATUS (storage servers only)");
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_STORE, &none, "STORE_STATUS", why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(why, "send STORE_REGISTER first");

	/* rules of the CLI socket mean nothing here */
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_USER, &nodep, "HEARTBEAT", why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(agent_rule_allows(HEC_RULE_NONE, &storep, "STORE_STATUS", why, sizeof(why)), 0);
}

static void test_register(void)
{
	struct ctl ctl;
	struct node n = { .name = "node0" };
	struct peer p1 = { 0 }, p2 = { 0 }, p3 = { 0 }, pn = { .node = &n };
	json_t *b;
	char why[400];
	struct store *s;

	init_ctl(&ctl);
	/* wrong key */
	b = reg_body("s0", "wrong");
	CU_ASSERT_EQUAL(store_register(&ctl, &p1, "h:1", b, why, sizeof(why)), -EPERM);
	CU_ASSERT_STRING_EQUAL(why, "storage server s0: wrong cluster key");
	CU_ASSERT_PTR_NULL(ctl.stores);
	CU_ASSERT_PTR_NULL(p1.store);
	json_decref(b);

	/* a name that cannot be a name */
	b = reg_body("../x", "sekrit");
	CU_ASSERT_EQUAL(store_register(&ctl, &p1, "h:1", b, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "'../x' is not valid"));
	json_decref(b);

	/* two servers, listed in name order whatever the order they came in */
	b = reg_body("s10", "sekrit");
	CU_ASSERT_EQUAL(store_register(&ctl, &p1, "h:1", b, why, sizeof(why)), 0);
	json_decref(b);
	b = reg_body("s2", "sekrit");
	CU_ASSERT_EQUAL(store_register(&ctl, &p2, "h:2", b, why, sizeof(why)), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctl.stores);
	CU_ASSERT_STRING_EQUAL(ctl.stores->name, "s2");
	CU_ASSERT_STRING_EQUAL(ctl.stores->next->name, "s10");
	CU_ASSERT_PTR_EQUAL(p2.store, ctl.stores);
	CU_ASSERT_PTR_EQUAL(ctl.stores->peer, &p2);

	/* the same name from another connection while the first lives */
	CU_ASSERT_EQUAL(store_register(&ctl, &p3, "h:3", b, why, sizeof(why)), -EEXIST);
	CU_ASSERT_STRING_EQUAL(why, "storage server s2 is already registered from h:2");
	CU_ASSERT_PTR_NULL(p3.store);
	/* a second registration on a connection, or one on a node's */
	CU_ASSERT_EQUAL(store_register(&ctl, &p2, "h:2", b, why, sizeof(why)), -EINVAL);
	CU_ASSERT_EQUAL(store_register(&ctl, &pn, "h:4", b, why, sizeof(why)), -EINVAL);
	CU_ASSERT_STRING_EQUAL(why, "already registered as node node0");

	/* lost: kept, down, until it registers again (then on the new connection) */
	s = store_find(&ctl, "s2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	store_detach_peer(&ctl, s, "connection closed: end of stream");
	CU_ASSERT_PTR_NULL(s->peer);
	CU_ASSERT_PTR_NULL(p2.store);
	CU_ASSERT_EQUAL(store_register(&ctl, &p3, "h:3", b, why, sizeof(why)), 0);
	CU_ASSERT_PTR_EQUAL(store_find(&ctl, "s2"), s);
	CU_ASSERT_PTR_EQUAL(s->peer, &p3);
	CU_ASSERT_STRING_EQUAL(s->from, "h:3");
	json_decref(b);

	/* no key configured: any key */
	ctl.cluster_key[0] = 0;
	b = reg_body("s3", "anything");
	CU_ASSERT_EQUAL(store_register(&ctl, &p2, "h:2", b, why, sizeof(why)), 0);
	json_decref(b);
	/* shutting down: nobody */
	ctl.shutting_down = 1;
	b = reg_body("s4", "anything");
	CU_ASSERT_EQUAL(store_register(&ctl, &pn, "h:5", b, why, sizeof(why)), -EINVAL);
	pn.node = NULL;
	CU_ASSERT_EQUAL(store_register(&ctl, &pn, "h:5", b, why, sizeof(why)), -ESHUTDOWN);
	json_decref(b);
	store_free_all(&ctl);
	CU_ASSERT_PTR_NULL(ctl.stores);
	CU_ASSERT_PTR_NULL(p3.store);
}

static json_t *find_server(json_t *list, const char *name)
{
	size_t i;
	json_t *o;

	json_array_foreach(list, i, o)
		if (!strcmp(json_string_value(json_object_get(o, "name")), name))
			return o;
	return NULL;
}

static long long field(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	CU_ASSERT(json_is_integer(v));
	return json_integer_value(v);
}

static void test_status_list(void)
{
	struct ctl ctl;
	struct peer p1 = { 0 }, p2 = { 0 };
	json_t *b, *st, *list, *o;
	char why[400];

	init_ctl(&ctl);
	b = reg_body("s0", "sekrit");
	CU_ASSERT_EQUAL(store_register(&ctl, &p1, "h:1", b, why, sizeof(why)), 0);
	json_decref(b);
	b = reg_body("s1", "sekrit");
	CU_ASSERT_EQUAL(store_register(&ctl, &p2, "h:2", b, why, sizeof(why)), 0);
	json_decref(b);
	st = json_pack("{s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:s}", "total", (json_int_t)1000000,
		       "free", (json_int_t)600000, "used", (json_int_t)400000, "chunks", 7,
		       "manifests", 2, "corrupt", 1, "repaired", 3, "clients", 4, "health", "ok");
	CU_ASSERT_EQUAL(hec_msg_validate(HEC_MSG_STORE_STATUS, st, NULL, 0), 0);
	store_status(&ctl, p1.store, st);
	json_decref(st); /* the store keeps its own copy */
	store_detach_peer(&ctl, p2.store, "no STORE_STATUS for 3.0s");

	list = store_list_json(&ctl);
	CU_ASSERT_PTR_NOT_NULL_FATAL(list);
	CU_ASSERT_EQUAL(json_array_size(list), 2);
	o = find_server(list, "s0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "state")), "up");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "addr")), "127.0.0.1:7100");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "provider")), "tcp");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "dir")), "/srv/s");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "health")), "ok");
	CU_ASSERT_EQUAL(field(o, "total"), 1000000);
	CU_ASSERT_EQUAL(field(o, "free"), 600000);
	CU_ASSERT_EQUAL(field(o, "used"), 400000);
	CU_ASSERT_EQUAL(field(o, "chunks"), 7);
	CU_ASSERT_EQUAL(field(o, "manifests"), 2);
	CU_ASSERT_EQUAL(field(o, "corrupt"), 1);
	CU_ASSERT_EQUAL(field(o, "repaired"), 3);
	CU_ASSERT_EQUAL(field(o, "clients"), 4);
	CU_ASSERT(field(o, "seen_ms") >= 0 && field(o, "seen_ms") < 60000);
	CU_ASSERT_PTR_NULL(json_object_get(o, "reason"));
	o = find_server(list, "s1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "state")), "down");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "reason")),
			       "no STORE_STATUS for 3.0s");
	/* no STATUS yet: figures are 0, health empty */
	CU_ASSERT_EQUAL(field(o, "free"), 0);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "health")), "");
	json_decref(list);
	store_free_all(&ctl);
}

static int closed;
static void on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	(void)c;
	(void)m;
	(void)arg;
}

static void on_close(struct hec_conn *c, const char *reason, void *arg)
{
	(void)c;
	(void)reason;
	(void)arg;
	closed++;
}

/* Silent for 3 heartbeat intervals: down, and told so on its connection. */
static void test_liveness(void)
{
	struct event_base *base = event_base_new();
	struct ctl ctl;
	struct peer p = { 0 };
	struct hec_msg m;
	json_t *b;
	void *buf = NULL;
	char why[400], err[256];
	int sv[2];

	CU_ASSERT_PTR_NOT_NULL_FATAL(base);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	p.conn = hec_conn_new(base, sv[0], "h:1", on_msg, on_close, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p.conn);
	init_ctl(&ctl);
	ctl.base = base;
	b = reg_body("s0", "sekrit");
	CU_ASSERT_EQUAL(store_register(&ctl, &p, "h:1", b, why, sizeof(why)), 0);
	json_decref(b);

	/* heard within the limit: still up */
	store_check_liveness(&ctl);
	CU_ASSERT_PTR_EQUAL(ctl.stores->peer, &p);
	usleep(70 * 1000); /* > 3 x 20 ms */
	store_check_liveness(&ctl);
	CU_ASSERT_PTR_NULL(ctl.stores->peer);
	CU_ASSERT_PTR_NULL(p.store);
	CU_ASSERT_PTR_NOT_NULL(strstr(ctl.stores->down_why, "no STORE_STATUS for"));
	for (int i = 0; i < 50 && !closed; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(closed, 1);
	CU_ASSERT_EQUAL(hec_frame_read(sv[1], &m, &buf, 1000, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m.type, HEC_MSG_ERROR);
	if (m.body)
		CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_object_get(m.body, "error")),
					      "storage server s0 declared down"));
	hec_msg_clear(&m);
	free(buf);
	/* a second check does nothing more */
	store_check_liveness(&ctl);
	CU_ASSERT_EQUAL(closed, 1);
	hec_conn_free(p.conn);
	close(sv[1]);
	store_free_all(&ctl);
	event_base_free(base);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "agent port rules: nodes and storage servers apart", test_rules },
		{ "registration: key, name, a live holder", test_register },
		{ "status figures and the list", test_status_list },
		{ "silent server declared down", test_liveness },
		{ NULL, NULL },
	};

	hec_log_init("test_ctl_store", HEC_LOG_ERR);
	return hec_cunit_run("ctl_store", tests);
}
