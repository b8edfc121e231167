/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hecd: the node agent.  Keeps one TCP link to the controller (REGISTER,
 * HEARTBEAT, then whatever the controller asks: LAUNCH, START, KILL_JOB,
 * SHUTDOWN), and listens for launch bridges (SPAWN).  Jobs survive the
 * agent: SIGTERM leaves them running and a restarted agent reports the
 * partitions it finds (doc/design.md, doc/protocol.md).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/config.h"
#include "hec/msg.h"
#include "hec/net.h"
#include "hec/partition.h"
#include "agent/agent.h"

#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define FLUSH_LIMIT_NS (2LL * 1000000000)

#define STR_KEY(k, d, h, f) { .key = k, .kind = HEC_CONF_STR, .def = d, .help = h, \
	.offset = offsetof(struct agent_conf, f), .size = sizeof(((struct agent_conf *)0)->f) }

static const struct hec_conf_key conf_keys[] = {
	STR_KEY("name", "", "node name, unique in the cluster (default: the host name)", name),
	STR_KEY("cluster_name", "hec", "must match the controller's", cluster_name),
	STR_KEY("controller", NULL, "host:port of hecctld's listen (required)", controller),
	STR_KEY("listen", "0.0.0.0:6818", "TCP address for launch bridges (SPAWN); port 0 picks one", listen),
	STR_KEY("advertise", "", "host part the bridges connect to (default: listen host, or host name if 0.0.0.0)", advertise),
	STR_KEY("key_file", "/etc/hec/cluster.key", "cluster secret presented in REGISTER; empty: none", key_file),
	STR_KEY("cpus", "", "CPU list this node owns, e.g. 0-3 (default: all online)", cpus),
	STR_KEY("gang_cpu", "", "a housekeeping CPU outside cpus for the gang dispatcher, which spins there to each slot boundary (default: none; it sleeps to the boundaries on the node's own CPUs)", gang_cpu),
	STR_KEY("state_dir", "/var/lib/hecd", "per-job files (host file, batch script)", state_dir),
	STR_KEY("launch_helper", "", "the Hydra launcher bridge (default: hec-launch beside hecd, else " HEC_LIBEXECDIR ")", launch_helper),
	STR_KEY("ckpt_dir", "", "proc jobs' checkpoint files (HEC_CKPT_DIR: DIR/job.<id>/ckpt), on a file system every node of a job sees; empty: state_dir", ckpt_dir),
	STR_KEY("mpiexec", HEC_MPIEXEC, "MPICH Hydra mpiexec", mpiexec),
	STR_KEY("log_level", "info", "err, warn, info, debug", log_level),
	STR_KEY("qemu", "/usr/bin/qemu-system-x86_64", "vm partitions: the QEMU binary (KVM where /dev/kvm is usable, else TCG)", qemu),
	STR_KEY("vm_kernel", "", "vm partitions: guest kernel (default: the newest /boot/vmlinuz-*)", vm_kernel),
	STR_KEY("image_cache", "/var/cache/hec/images", "vm partitions: where built guest images are kept, by content", image_cache),
	STR_KEY("vm_switch", "auto", "vm partitions: gang switch of a guest by cgroup freeze, QMP stop/cont, or auto: the cheaper as measured at boot", vm_switch),
	STR_KEY("job_pids_max", "auto", "tasks (processes and threads) one job's partition may hold on this node: a number, auto (512 per CPU of the node, at least 4096) or none", job_pids_max),
	STR_KEY("vm_hugepages", "off", "vm partitions: guest RAM anonymous (off), in 2 MiB huge pages (on: the guest fails without enough free), or auto: huge pages where enough are free", vm_hugepages),
	{ .key = NULL },
};

int agent_is_root(void)
{
	return geteuid() == 0;
}

/* ---- controller link ---- */

static void ctl_connect(struct agent *ag);

static void ctl_schedule_retry(struct agent *ag)
{
	struct timeval tv = { ag->backoff_ms / 1000, (ag->backoff_ms % 1000) * 1000 };

	if (ag->shutting_down)
		return;
	evtimer_add(ag->retry_timer, &tv);
	ag->backoff_ms = ag->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ag->backoff_ms * 2;
}

static void ctl_connect_failed(struct agent *ag, int err)
{
	/* Say it once per outage, not once per retry. */
	if (ag->connect_failures++ == 0)
		hec_warn("%s: cannot reach controller %s: %s; retrying", ag->conf.name,
			 ag->conf.controller, strerror(err));
	else
		hec_debug("%s: controller %s: %s", ag->conf.name, ag->conf.controller, strerror(err));
	ctl_schedule_retry(ag);
}

void agent_ctl_send(struct agent *ag, unsigned type, json_t *body)
{
	if (!body) {
		hec_err("%s: out of memory building %s", ag->conf.name, hec_msg_type_name(type));
		return;
	}
	if (ag->ctl)
		hec_conn_send(ag->ctl, type, body);
	else
		hec_debug("%s: controller link down, %s not sent", ag->conf.name,
			  hec_msg_type_name(type));
	json_decref(body);
}

static void send_register(struct agent *ag)
{
	json_t *parts = json_array(), *started = json_array(), *body;

	for (struct agent_job *j = ag->jobs; j; j = j->next) {
		json_array_append_new(parts, json_integer(j->id));
		/* (a step from before "started" was kept shows by its pid) */
		if (j->start_seen || j->batch_pid || j->orphan_pid || j->orphan_unknown || j->vm_running)
			json_array_append_new(started, json_integer(j->id));
	}
	body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:I}, s:o, s:o, s:o, s:I, s:I}",
			 "node", ag->conf.name, "key", ag->key, "hostname", ag->hostname,
			 "addr", ag->addr, "cpus", ag->penv.cpus,
			 "topology", "cores", ag->topo.cores, "pus", ag->topo.pus,
			 "numa_nodes", ag->topo.numa_nodes, "memory_mb", (json_int_t)ag->topo.memory_mb,
			 "partitions", parts, "started", started, "exits", exits_json(ag),
			 "pid", (json_int_t)getpid(),
			 /* an estimate kept across a reconnect: the first epoch after it
			  * starts far enough ahead too */
			 "rtt_ns", (json_int_t)agent_gang_rtt_ns(ag));
	agent_ctl_send(ag, HEC_MSG_REGISTER, body);
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;

	(void)fd;
	(void)what;
	/* with the round trip of our clock estimate: the controller starts an
	 * epoch far enough ahead for it to reach the slowest node in time */
	if (ag->registered)
		agent_ctl_send(ag, HEC_MSG_HEARTBEAT,
			       json_pack("{s:I}", "rtt_ns", (json_int_t)agent_gang_rtt_ns(ag)));
}

/* ---- messages from the controller: one row each (hec_msg_handlers_check) ---- */

static void on_registered(void *arg, const struct hec_msg *m)
{
	struct agent *ag = arg;
	const json_t *b = m->body;
	struct timeval tv;

	ag->heartbeat_ms = (long)json_integer_value(json_object_get(b, "heartbeat_ms"));
	tv.tv_sec = ag->heartbeat_ms / 1000;
	tv.tv_usec = (ag->heartbeat_ms % 1000) * 1000;
	ag->registered = 1;
	ag->backoff_ms = BACKOFF_MIN_MS;
	ag->connect_failures = 0;
	evtimer_del(ag->hb_timer);
	event_add(ag->hb_timer, &tv);
	hec_info("%s: registered with controller %s (heartbeat %ld ms)", ag->conf.name,
		 ag->conf.controller, ag->heartbeat_ms);
	exits_resend(ag);
	agent_gang_on_registered(ag);
}

static void on_time_resp(void *ag, const struct hec_msg *m)
{
	agent_gang_on_time_resp(ag, m->body);
}

static void on_epoch(void *ag, const struct hec_msg *m)
{
	agent_gang_on_epoch(ag, m->body);
}

static void on_stats_req(void *ag, const struct hec_msg *m)
{
	agent_gang_on_stats_req(ag, m->body);
}

static void on_ckpt_prepare(void *ag, const struct hec_msg *m)
{
	agent_ckpt_on_prepare(ag, m->body);
}

static void on_ckpt_reopen(void *ag, const struct hec_msg *m)
{
	agent_ckpt_on_reopen(ag, m->body);
}

static void on_ckpt_abort(void *ag, const struct hec_msg *m)
{
	agent_ckpt_on_abort(ag, m->body);
}

static void on_ckpt_refused(void *ag, const struct hec_msg *m)
{
	agent_app_on_refused(ag, m->body);
}

static void on_resume(void *ag, const struct hec_msg *m)
{
	agent_job_on_resume(ag, m->body);
}

static void on_launch(void *ag, const struct hec_msg *m)
{
	agent_job_on_launch(ag, m->body);
}

static void on_start(void *ag, const struct hec_msg *m)
{
	agent_job_on_start(ag, m->body);
}

static void on_kill_job(void *ag, const struct hec_msg *m)
{
	agent_job_on_kill(ag, (long)json_integer_value(json_object_get(m->body, "job")));
}

static void on_exit_ack(void *ag, const struct hec_msg *m)
{
	agent_job_on_exit_ack(ag, (long)json_integer_value(json_object_get(m->body, "job")));
}

static void on_shutdown(void *arg, const struct hec_msg *m)
{
	struct agent *ag = arg;

	(void)m;
	hec_info("%s: controller asks to shut down: killing every partition", ag->conf.name);
	agent_jobs_shutdown(ag);
}

static void on_error(void *arg, const struct hec_msg *m)
{
	struct agent *ag = arg;
	const json_t *b = m->body;

	if (ag->connect_failures == 0)
		hec_err("%s: controller %s refused us: %s", ag->conf.name,
			ag->conf.controller, json_string_value(json_object_get(b, "error")));
}

/* The link is the controller's by construction (we dialled it); what it may
 * ask before REGISTERED is only REGISTERED itself, or to go away. */
static const struct hec_msg_handler ctl_handlers[] = {
	{ .type = HEC_MSG_REGISTERED, .rule = HEC_RULE_PEER, .fn = on_registered },
	{ .type = HEC_MSG_ERROR, .rule = HEC_RULE_PEER, .fn = on_error },
	{ .type = HEC_MSG_TIME_RESP, .rule = HEC_RULE_REGISTERED, .fn = on_time_resp },
	{ .type = HEC_MSG_EPOCH, .rule = HEC_RULE_REGISTERED, .fn = on_epoch },
	{ .type = HEC_MSG_STATS_REQ, .rule = HEC_RULE_REGISTERED, .fn = on_stats_req },
	{ .type = HEC_MSG_CKPT_PREPARE, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_prepare },
	{ .type = HEC_MSG_CKPT_REOPEN, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_reopen },
	{ .type = HEC_MSG_CKPT_ABORT, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_abort },
	{ .type = HEC_MSG_CKPT_REFUSED, .rule = HEC_RULE_REGISTERED, .fn = on_ckpt_refused },
	{ .type = HEC_MSG_RESUME, .rule = HEC_RULE_REGISTERED, .fn = on_resume },
	{ .type = HEC_MSG_LAUNCH, .rule = HEC_RULE_REGISTERED, .fn = on_launch },
	{ .type = HEC_MSG_START, .rule = HEC_RULE_REGISTERED, .fn = on_start },
	{ .type = HEC_MSG_KILL_JOB, .rule = HEC_RULE_REGISTERED, .fn = on_kill_job },
	{ .type = HEC_MSG_EXIT_ACK, .rule = HEC_RULE_REGISTERED, .fn = on_exit_ack },
	{ .type = HEC_MSG_SHUTDOWN, .rule = HEC_RULE_REGISTERED, .fn = on_shutdown },
};

static void ctl_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct agent *ag = arg;
	const struct hec_msg_handler *h =
		hec_msg_handler_find(ctl_handlers, HEC_ARRAY_SIZE(ctl_handlers), m);

	(void)c;
	if (!h) {
		hec_warn("%s: unexpected %s from controller %s, ignored", ag->conf.name,
			 hec_msg_type_name(m->type), ag->conf.controller);
		return;
	}
	if (h->rule == HEC_RULE_REGISTERED && !ag->registered) {
		hec_warn("%s: %s from controller %s before REGISTERED, ignored", ag->conf.name,
			 hec_msg_type_name(m->type), ag->conf.controller);
		return;
	}
	h->fn(ag, m);
}

static void ctl_on_close(struct hec_conn *c, const char *reason, void *arg)
{
	struct agent *ag = arg;
	int was_registered = ag->registered;

	hec_conn_free(c);
	ag->ctl = NULL;
	ag->registered = 0;
	evtimer_del(ag->hb_timer);
	agent_gang_on_disconnect(ag);
	agent_ckpt_ctl_lost(ag);
	if (ag->shutting_down)
		return;
	if (was_registered) {
		hec_warn("%s: lost controller %s: %s; reconnecting", ag->conf.name,
			 ag->conf.controller, reason ? reason : "connection closed");
		ctl_schedule_retry(ag);
	} else {
		/* Refused (or dropped) before REGISTERED: back off like a failed connect. */
		ctl_connect_failed(ag, reason ? ECONNRESET : ECONNREFUSED);
	}
}

static void ctl_connected(struct agent *ag, int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ag->ctl = hec_conn_new(ag->base, fd, ag->conf.controller, ctl_on_msg, ctl_on_close, ag);
	if (!ag->ctl) {
		ctl_connect_failed(ag, ENOMEM);
		return;
	}
	hec_debug("%s: connected to controller %s", ag->conf.name, ag->conf.controller);
	send_register(ag);
}

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	event_free(ag->connect_ev);
	ag->connect_ev = NULL;
	ag->connect_fd = -1;
	if (what & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	if (err) {
		close(fd);
		ctl_connect_failed(ag, err);
		return;
	}
	ctl_connected(ag, fd);
}

/* Non-blocking connect: bridges keep being served while the controller is away. */
static void ctl_connect(struct agent *ag)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, 0 };
	char host[256], port[16];
	int p, fd, rc;

	if (hec_split_hostport(ag->conf.controller, host, sizeof(host), &p)) {
		ctl_connect_failed(ag, EINVAL);
		return;
	}
	snprintf(port, sizeof(port), "%d", p);
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		if (ag->connect_failures++ == 0)
			hec_warn("%s: controller %s: %s; retrying", ag->conf.name,
				 ag->conf.controller, gai_strerror(rc));
		ctl_schedule_retry(ag);
		return;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		ctl_connect_failed(ag, errno);
		return;
	}
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc == 0) {
		ctl_connected(ag, fd);
		return;
	}
	if (errno != EINPROGRESS) {
		int err = errno;

		close(fd);
		ctl_connect_failed(ag, err);
		return;
	}
	ag->connect_ev = event_new(ag->base, fd, EV_WRITE, on_connect, ag);
	if (!ag->connect_ev || event_add(ag->connect_ev, &tv)) {
		if (ag->connect_ev)
			event_free(ag->connect_ev);
		ag->connect_ev = NULL;
		close(fd);
		ctl_connect_failed(ag, ENOMEM);
		return;
	}
	ag->connect_fd = fd;
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ctl_connect(arg);
}

/* ---- exit ---- */

static void exit_poll(evutil_socket_t fd, short what, void *arg)
{
	struct agent *ag = arg;

	(void)fd;
	(void)what;
	/* Let the last JOB_GONEs reach the controller before we go. */
	if (!ag->ctl || hec_conn_pending(ag->ctl) == 0 ||
	    hec_now_mono_ns() - ag->shutdown_start_ns > FLUSH_LIMIT_NS)
		event_base_loopbreak(ag->base);
}

void agent_finish(struct agent *ag)
{
	struct timeval tv = { 0, 10000 };

	ag->shutdown_start_ns = hec_now_mono_ns();
	ag->exit_code = 0;
	if (!ag->exit_timer)
		ag->exit_timer = event_new(ag->base, -1, EV_PERSIST, exit_poll, ag);
	if (ag->exit_timer)
		event_add(ag->exit_timer, &tv);
	else
		event_base_loopbreak(ag->base);
}

/* ---- signals ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct agent *ag = arg;
	int status;
	pid_t pid;

	(void)what;
	switch (sig) {
	case SIGCHLD:
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (!agent_job_reaped(ag, pid, status) &&
			    !agent_jobs_part_reaped(ag, pid, status) &&
			    !agent_ckpt_reaped(ag, pid, status))
				bridge_reaped(ag, pid, status);
		break;
	case SIGTERM:
	case SIGINT:
		hec_info("%s: %s: exiting; jobs keep running", ag->conf.name, strsignal((int)sig));
		ag->exit_code = 0;
		event_base_loopbreak(ag->base);
		break;
	default:
		hec_info("%s: %s ignored", ag->conf.name, strsignal((int)sig));
	}
}

/* ---- configuration ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: hecd [-f FILE] [-o key=value]... [--help]\n"
		"Node agent of hec: runs jobs' partitions on this node.\n"
		"Configuration keys (file lines 'key = value', or -o key=value):\n");
}

/* @s's index in @names[@n], or -EINVAL. */
static int name_index(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -EINVAL;
}

static int parse_vm_switch(const char *s, enum hec_vm_switch *out)
{
	static const char *const names[] = { [HEC_VM_SWITCH_AUTO] = "auto",
					     [HEC_VM_SWITCH_CGROUP] = "cgroup",
					     [HEC_VM_SWITCH_QMP] = "qmp" };
	int i = name_index(s, names, HEC_ARRAY_SIZE(names));

	if (i < 0)
		return i;
	*out = (enum hec_vm_switch)i;
	return 0;
}

static int parse_vm_hugepages(const char *s, enum hec_vm_hugepages *out)
{
	static const char *const names[] = { [HEC_VM_HUGE_OFF] = "off", [HEC_VM_HUGE_AUTO] = "auto",
					     [HEC_VM_HUGE_ON] = "on" };
	int i = name_index(s, names, HEC_ARRAY_SIZE(names));

	if (i < 0)
		return i;
	*out = (enum hec_vm_hugepages)i;
	return 0;
}

/* \return 0, or an exit code after printing the one-line reason. */
static int load_config(struct agent *ag, int argc, char **argv, enum hec_log_level *lvl)
{
	struct agent_conf *c = &ag->conf;
	char err[1024], host[256];
	int rc, p;

	if (hec_conf_defaults(conf_keys, c)) {
		fprintf(stderr, "hecd: internal error: bad default in the key table\n");
		return 2;
	}
	if (hec_msg_handlers_check(ctl_handlers, HEC_ARRAY_SIZE(ctl_handlers), HEC_SIDE_AGENT,
				   err, sizeof(err))) {
		fprintf(stderr, "hecd: internal error: message table: %s\n", err);
		return 2;
	}
	rc = hec_conf_from_args(conf_keys, c, "hecd", argc, argv, NULL, usage, NULL);
	if (rc)
		return rc;

	if (!*c->name) {
		if (gethostname(host, sizeof(host)))
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = 0;
		snprintf(c->name, sizeof(c->name), "%.*s", AGENT_NAME_MAX, host);
	}
	if (!hec_name_ok(c->name)) {
		fprintf(stderr, "hecd: name '%s': use 1-%d letters, digits, '.', '_' or '-'\n",
			c->name, AGENT_NAME_MAX);
		return 2;
	}
	if (!hec_name_ok(c->cluster_name)) {
		fprintf(stderr, "hecd: cluster_name '%s': use 1-%d letters, digits, '.', '_' or '-'\n",
			c->cluster_name, AGENT_NAME_MAX);
		return 2;
	}
	if (!*c->controller) {
		fprintf(stderr, "hecd: no controller given (set 'controller = host:port' in the file or -o controller=host:port)\n");
		return 2;
	}
	if (hec_split_hostport(c->controller, host, sizeof(host), &p) || p == 0) {
		fprintf(stderr, "hecd: controller '%s': expected host:port\n", c->controller);
		return 2;
	}
	if (hec_split_hostport(c->listen, host, sizeof(host), &p)) {
		fprintf(stderr, "hecd: listen '%s': expected host:port\n", c->listen);
		return 2;
	}
	if (hec_log_level_parse(c->log_level, lvl)) {
		fprintf(stderr, "hecd: log_level '%s': expected err, warn, info or debug\n",
			c->log_level);
		return 2;
	}
	if (parse_vm_switch(c->vm_switch, &ag->vm_switch)) {
		fprintf(stderr, "hecd: vm_switch '%s': expected auto, cgroup or qmp\n", c->vm_switch);
		return 2;
	}
	if (parse_vm_hugepages(c->vm_hugepages, &ag->vm_hugepages)) {
		fprintf(stderr, "hecd: vm_hugepages '%s': expected off, auto or on\n", c->vm_hugepages);
		return 2;
	}
	if (!*c->state_dir || *c->state_dir != '/') {
		fprintf(stderr, "hecd: state_dir '%s': must be an absolute path\n", c->state_dir);
		return 2;
	}
	if (strcmp(c->job_pids_max, "auto") && strcmp(c->job_pids_max, "none") &&
	    hec_parse_long(c->job_pids_max, 16, 4194304L, &ag->pids_max)) {
		fprintf(stderr, "hecd: job_pids_max '%s': expected auto, none or a number of tasks from 16 to 4194304\n",
			c->job_pids_max);
		return 2;
	}
	return 0;
}

/* job_pids_max's auto: 512 tasks per CPU of the node (the controller
 * allows 64 ranks per CPU; a rank of MPICH has a few threads, its proxy and
 * the batch step some more), at least 4096. */
static long auto_pids_max(const struct agent_topo *t)
{
	long n = 512L * (t->pus > 0 ? t->pus : 1);

	return n < 4096 ? 4096 : n;
}

/* The cluster key: the file's content without surrounding white space. */
static int read_key(struct agent *ag)
{
	char why[128];
	int rc;

	ag->key[0] = 0;
	if (!*ag->conf.key_file)
		return 0;
	rc = hec_read_key(ag->conf.key_file, ag->key, sizeof(ag->key), why, sizeof(why));
	if (rc)
		fprintf(stderr, "hecd: key_file %s: %s\n", ag->conf.key_file, why);
	return rc;
}

/* @name beside hecd if it is there (the build tree), else in $(libexecdir)/hec. */
static void find_beside(const char *name, char *buf, size_t len)
{
	char dir[PATH_MAX];

	if (hec_self_dir(dir, sizeof(dir)) == 0 && hec_fmt(buf, len, "%s/%s", dir, name) == 0 &&
	    access(buf, F_OK) == 0)
		return;
	hec_fmt(buf, len, "%s/%s", HEC_LIBEXECDIR, name);
}

static void find_helper(struct agent *ag)
{
	if (*ag->conf.launch_helper)
		snprintf(ag->helper, sizeof(ag->helper), "%s", ag->conf.launch_helper);
	else
		find_beside("hec-launch", ag->helper, sizeof(ag->helper));
	if (access(ag->helper, X_OK))
		hec_warn("%s: launch helper %s: %s; multi-node jobs will fail", ag->conf.name,
			 ag->helper, strerror(errno));
	/* vm partitions: the image tool, the guests' init, the preloaded MPI fix
	 * (checked at each vm LAUNCH, which fails with the missing one's name) */
	find_beside("hec-mkimage", ag->mkimage, sizeof(ag->mkimage));
	find_beside("hec-guest", ag->guest_bin, sizeof(ag->guest_bin));
	find_beside("libhec-mpifix.so", ag->mpifix, sizeof(ag->mpifix));
}

/*
 * <state_dir>/mpich-bin: mpiexec and mpirun (the configured mpiexec, MPICH's
 * Hydra) and mpicc, mpicxx, mpifort.. (MPICH's, beside it as NAME.mpich)
 * under their plain names, with Hydra's own helpers (it runs
 * hydra_pmi_proxy from the directory it was started from), first in every
 * job's PATH: where Debian's
 * alternatives make the plain names Open MPI's (installed with scalapack
 * or hpcc), a batch script's `mpiexec` would otherwise bypass hec.
 */
static void make_mpich_bin(struct agent *ag)
{
	/* the link's name and its target: "" the configured mpiexec, else
	 * the target's name beside it */
	static const struct { const char *name, *target; } links[] = {
		{ "mpiexec", "" }, { "mpirun", "" },
		{ "mpicc", "mpicc.mpich" }, { "mpicxx", "mpicxx.mpich" }, { "mpic++", "mpic++.mpich" },
		{ "mpifort", "mpifort.mpich" }, { "mpif77", "mpif77.mpich" }, { "mpif90", "mpif90.mpich" },
		{ "hydra_pmi_proxy", "hydra_pmi_proxy" }, { "hydra_nameserver", "hydra_nameserver" },
		{ "hydra_persist", "hydra_persist" },
	};
	char dir[PATH_MAX], mdir[PATH_MAX], link[PATH_MAX + 16], target[PATH_MAX + 16], *slash;
	int rc;

	ag->mpich_bin[0] = 0;
	if (hec_fmt(dir, sizeof(dir), "%s/mpich-bin", ag->conf.state_dir) ||
	    hec_fmt(mdir, sizeof(mdir), "%s", ag->conf.mpiexec) || !(slash = strrchr(mdir, '/')))
		return;
	*slash = 0;
	rc = hec_mkdir_p(dir, 0755);
	if (rc) {
		hec_warn("%s: %s: %s; jobs' plain mpiexec is whatever their PATH finds", ag->conf.name,
			 dir, strerror(-rc));
		return;
	}
	for (size_t i = 0; i < HEC_ARRAY_SIZE(links); i++) {
		snprintf(link, sizeof(link), "%s/%s", dir, links[i].name);
		if (!*links[i].target)
			snprintf(target, sizeof(target), "%s", ag->conf.mpiexec);
		else
			snprintf(target, sizeof(target), "%s/%s", mdir, links[i].target);
		unlink(link);
		if (access(target, X_OK))
			continue;
		if (symlink(target, link)) {
			hec_warn("%s: symlink %s: %s", ag->conf.name, link, strerror(errno));
			return;
		}
	}
	snprintf(ag->mpich_bin, sizeof(ag->mpich_bin), "%s", dir);
}

/*
 * <state_dir>/NAME: a copy of a program hecd starts in jobs' partitions as
 * their users, where every job's user reaches it (the build tree or
 * libexec may not be theirs to enter): hec-keeper, the batch steps' parent,
 * and hec-relay, the MPI proxies' end of a spawn bridge.  Without them a
 * step or proxy runs as hecd's own child, and an agent restart loses the
 * step's exit status or kills the proxy (@lost says so).  @dst: "" if none.
 */
static void install_copy(struct agent *ag, const char *name, char *copy, size_t copylen,
			 const char *lost)
{
	char src[PATH_MAX], dst[PATH_MAX], tmp[PATH_MAX + 8], buf[65536];
	int in = -1, out = -1, rc = 0;
	ssize_t n;

	copy[0] = 0;
	find_beside(name, src, sizeof(src));
	if (hec_fmt(dst, sizeof(dst), "%s/%s", ag->conf.state_dir, name) ||
	    hec_fmt(tmp, sizeof(tmp), "%s.tmp", dst))
		return;
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		rc = -errno;
		goto out;
	}
	if (hec_mkdir_p(ag->conf.state_dir, 0755) == 0)
		out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0755);
	if (out < 0) {
		rc = -errno;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if ((rc = hec_write_all(out, buf, (size_t)n)))
			goto out;
	if (n < 0)
		rc = -errno;
	if (!rc && fchmod(out, 0755))
		rc = -errno;
	if (close(out) && !rc)
		rc = -errno;
	out = -1;
	if (!rc && rename(tmp, dst))
		rc = -errno;
	if (!rc)
		snprintf(copy, copylen, "%s", dst);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (rc) {
		unlink(tmp);
		hec_warn("%s: %s -> %s: %s; %s if hecd restarts", ag->conf.name, src, dst,
			 strerror(-rc), lost);
	}
}

static int setup_addr(struct agent *ag, int port)
{
	char host[256];
	int p;

	if (*ag->conf.advertise) {
		snprintf(host, sizeof(host), "%s", ag->conf.advertise);
	} else {
		hec_split_hostport(ag->conf.listen, host, sizeof(host), &p);
		if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") ||
		    !strcmp(host, "[::]"))
			snprintf(host, sizeof(host), "%s", ag->hostname);
	}
	snprintf(ag->addr, sizeof(ag->addr), "%s:%d", host, port);
	return 0;
}

/*
 * Jobs run as their users and read the host file and batch script under
 * state_dir: warn now if some directory on the way shuts them out, rather
 * than fail every job of another user later.
 */
static void check_state_dir(struct agent *ag)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	rc = hec_mkdir_p(ag->conf.state_dir, 0755);
	if (rc) {
		hec_warn("%s: state_dir %s: %s; jobs will fail here", ag->conf.name,
			 ag->conf.state_dir, strerror(-rc));
		return;
	}
	if (!agent_is_root())
		return;
	snprintf(path, sizeof(path), "%s", ag->conf.state_dir);
	for (;;) {
		char *slash;

		if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH)) {
			hec_warn("%s: state_dir %s: %s has mode %04o, so jobs of users other than root cannot read their host file or script",
				 ag->conf.name, ag->conf.state_dir, path, (unsigned)(st.st_mode & 07777));
			return;
		}
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			return;
		*slash = 0;
	}
}

static int add_signal(struct agent *ag, int idx, int sig)
{
	ag->sigs[idx] = evsignal_new(ag->base, sig, on_signal, ag);
	return ag->sigs[idx] && event_add(ag->sigs[idx], NULL) == 0 ? 0 : -ENOMEM;
}

static void agent_free(struct agent *ag)
{
	agent_gang_free(ag);
	bridges_free(ag);
	agent_jobs_free(ag);
	agent_ckpt_free(ag);
	agent_app_free(ag);
	if (ag->ctl)
		hec_conn_free(ag->ctl);
	if (ag->connect_ev)
		event_free(ag->connect_ev);
	if (ag->connect_fd >= 0)
		close(ag->connect_fd);
	if (ag->listen_ev)
		event_free(ag->listen_ev);
	if (ag->listen_fd >= 0)
		close(ag->listen_fd);
	for (size_t i = 0; i < HEC_ARRAY_SIZE(ag->sigs); i++)
		if (ag->sigs[i])
			event_free(ag->sigs[i]);
	if (ag->retry_timer)
		event_free(ag->retry_timer);
	if (ag->hb_timer)
		event_free(ag->hb_timer);
	if (ag->exit_timer)
		event_free(ag->exit_timer);
	if (ag->base)
		event_base_free(ag->base);
	free(ag);
}

/* gang_cpu: one CPU this process may use, not one of the node's @cpus. */
static int gang_cpu_parse(struct agent *ag, const char *cpus, char *err, size_t len)
{
	const char *v = ag->conf.gang_cpu;
	struct hec_cpuset node;
	cpu_set_t allowed;
	long c;

	ag->gang_cpu = -1;
	if (!*v)
		return 0;
	if (hec_parse_long(v, 0, (HEC_MAX_CPUS < CPU_SETSIZE ? HEC_MAX_CPUS : CPU_SETSIZE) - 1, &c)) {
		snprintf(err, len, "gang_cpu '%s': not a CPU number", v);
		return -1;
	}
	if (sched_getaffinity(0, sizeof(allowed), &allowed) || !CPU_ISSET(c, &allowed)) {
		snprintf(err, len, "gang_cpu %ld: not a CPU this hecd may run on", c);
		return -1;
	}
	if (hec_cpuset_parse(cpus, &node) > 0 && hec_cpuset_has(&node, (int)c)) {
		snprintf(err, len, "gang_cpu %ld is one of the node's cpus (%.64s): the dispatcher would spin on its ranks' CPU", c, cpus);
		return -1;
	}
	ag->gang_cpu = (int)c;
	return 0;
}

int main(int argc, char **argv)
{
	struct agent *ag = calloc(1, sizeof(*ag));
	static char cpus[4096];
	enum hec_log_level lvl = HEC_LOG_INFO;
	char err[512];
	int rc, port = 0;

	if (!ag) {
		fprintf(stderr, "hecd: out of memory\n");
		return 1;
	}
	ag->connect_fd = -1;
	ag->listen_fd = -1;
	ag->backoff_ms = BACKOFF_MIN_MS;
	ag->exit_code = 1;
	rc = load_config(ag, argc, argv, &lvl);
	if (rc) {
		free(ag);
		return rc < 0 ? 0 : rc;
	}
	hec_log_init("hecd", lvl);
	if (read_key(ag)) {
		free(ag);
		return 1;
	}
	if (gethostname(ag->hostname, sizeof(ag->hostname)))
		strcpy(ag->hostname, "localhost");
	ag->hostname[sizeof(ag->hostname) - 1] = 0;
	if (agent_topology(ag->conf.cpus, cpus, sizeof(cpus), &ag->topo, err, sizeof(err))) {
		fprintf(stderr, "hecd: %s\n", err);
		free(ag);
		return 2;
	}
	if (gang_cpu_parse(ag, cpus, err, sizeof(err))) {
		fprintf(stderr, "hecd: %s\n", err);
		free(ag);
		return 2;
	}
	snprintf(ag->cgroup_base, sizeof(ag->cgroup_base), "hec/%s/%s", ag->conf.cluster_name,
		 ag->conf.name);
	ag->penv.node = ag->conf.name;
	ag->penv.cgroup_base = ag->cgroup_base;
	ag->penv.cpus = cpus;
	if (!strcmp(ag->conf.job_pids_max, "auto"))
		ag->pids_max = auto_pids_max(&ag->topo);
	ag->penv.pids_max = ag->pids_max; /* ("none": 0) */
	if (hec_part_register(&ag->drivers, &hec_partition_proc_ops) ||
	    hec_part_register(&ag->drivers, &hec_partition_vm_ops)) {
		fprintf(stderr, "hecd: a partition driver's ops table is incomplete\n");
		free(ag);
		return 2;
	}
	ag->ops = hec_part_driver(&ag->drivers, "proc");
	find_helper(ag);
	if (access(ag->conf.mpiexec, X_OK))
		hec_warn("%s: mpiexec %s: %s; jobs will fail", ag->conf.name, ag->conf.mpiexec,
			 strerror(errno));
	make_mpich_bin(ag);
	install_copy(ag, "hec-keeper", ag->keeper, sizeof(ag->keeper),
		     "batch steps running then lose their exit status");
	install_copy(ag, "hec-relay", ag->relay, sizeof(ag->relay),
		     "MPI proxies running then are killed");

	/* Orphans of job processes come to us, so their zombies do not pile up
	 * under an init that may not reap (containers). */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);

	/* Not fatal: the node still registers, and each LAUNCH then fails with
	 * this reason, which users see in their job's record. */
	rc = ag->ops->node_init(&ag->penv, err, sizeof(err));
	if (rc)
		hec_err("%s: cannot set up partitions (%s driver): %s: %s; jobs will fail here",
			ag->conf.name, ag->ops->name, err, strerror(-rc));
	ag->base = event_base_new();
	if (!ag->base) {
		hec_err("%s: cannot create the event loop", ag->conf.name);
		goto out;
	}
	agent_jobs_host_init(ag);
	rc = bridges_listen(ag, &port);
	if (rc) {
		hec_err("%s: cannot listen on %s: %s", ag->conf.name, ag->conf.listen, strerror(-rc));
		goto out;
	}
	setup_addr(ag, port);
	ag->retry_timer = evtimer_new(ag->base, retry_cb, ag);
	ag->hb_timer = event_new(ag->base, -1, EV_PERSIST, hb_cb, ag);
	if (!ag->retry_timer || !ag->hb_timer || agent_gang_new(ag) || add_signal(ag, 0, SIGCHLD) ||
	    add_signal(ag, 1, SIGTERM) || add_signal(ag, 2, SIGINT) || add_signal(ag, 3, SIGHUP)) {
		hec_err("%s: cannot set up events: out of memory", ag->conf.name);
		goto out;
	}
	check_state_dir(ag);
	agent_jobs_adopt(ag);
	hec_info("%s: hecd %s up: cpus %s (%d cores, %d PUs, %d NUMA, %ld MB), bridges at %s, controller %s",
		 ag->conf.name, PACKAGE_VERSION, cpus, ag->topo.cores, ag->topo.pus,
		 ag->topo.numa_nodes, ag->topo.memory_mb, ag->addr, ag->conf.controller);
	ctl_connect(ag);
	event_base_dispatch(ag->base);

out:
	rc = ag->exit_code;
	if (ag->ops)
		hec_partition_node_fini(ag->ops, &ag->penv, NULL, 0);
	agent_free(ag);
	libevent_global_shutdown();
	return rc;
}
