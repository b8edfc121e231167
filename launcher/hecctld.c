/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hecctld: the hec controller.  Owns the job catalog, the queue and the
 * node list; talks to the CLI over a Unix socket and to node agents over
 * TCP.  One thread, one libevent loop; a 100 ms tick handles everything
 * that happens by the clock (liveness, time limits, launch timeouts,
 * scheduling).  See doc/design.md and doc/config.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "hec/common.h"
#include "hec/config.h"
#include "hec/net.h"
#include "ctld.h"
#include "fanout.h"

#define TICK_MS 100
#define SHUTDOWN_WAIT_MS 5000

#define STR_KEY(k, def, help) \
	{ #k, HEC_CONF_STR, def, 0, 0, help, offsetof(struct ctl_conf, k), \
	  sizeof(((struct ctl_conf *)0)->k) }
#define MS_KEY(k, def, lo, hi, help) \
	{ #k, HEC_CONF_MS, def, lo, hi, help, offsetof(struct ctl_conf, k), sizeof(long) }
#define INT_KEY(k, def, lo, hi, help) \
	{ #k, HEC_CONF_INT, def, lo, hi, help, offsetof(struct ctl_conf, k), sizeof(long) }

static const struct hec_conf_key ctl_keys[] = {
	STR_KEY(cluster_name, "hec", "name of the cluster (also in cgroup paths)"),
	STR_KEY(state_dir, "/var/lib/hec", "SQLite catalog hec.db, and ctl.addr (the bound agent address)"),
	STR_KEY(socket, "/run/hec/hecctld.sock", "Unix socket for the CLI (mode 0666; peer credentials authenticate)"),
	STR_KEY(listen, "0.0.0.0:6817", "TCP address for agents; port 0 picks one (see ctl.addr)"),
	STR_KEY(cli_listen, "", "TCP address for the CLI of other hosts, users authenticated by MUNGE; port 0 picks one (see cli.addr); empty: off"),
	STR_KEY(munge_socket, "", "munged's socket for decoding the remote CLI's credentials; empty: libmunge's default"),
	STR_KEY(key_file, "/etc/hec/cluster.key", "shared secret agents must present; empty: no check"),
	STR_KEY(spool_dir, "/var/spool/hec", "default place of job output files: <spool_dir>/<uid>/job-<id>.out"),
	MS_KEY(heartbeat_interval, "1s", 10, 3600000, "how often agents send HEARTBEAT"),
	MS_KEY(node_timeout, "10s", 100, 86400000L, "silence after which a node is DOWN and its jobs NODE_FAIL"),
	MS_KEY(launch_timeout, "30s", 100, 86400000L, "LAUNCH not answered by every node by then: the job fails"),
	MS_KEY(vm_launch_timeout, "5m", 100, 86400000L, "the same for vm partitions (image build and guest boot; TCG is slow)"),
	MS_KEY(ckpt_timeout, "10m", 1000, 86400000L, "a checkpoint whose streams are not all stored by then is aborted"),
	MS_KEY(ckpt_lead, "400ms", 0, 60000, "a vm checkpoint's instant T at least this long after its request, so that every node's writer (hec-store) has started and reached the storage servers by T"),
	MS_KEY(app_ckpt_timeout, "120s", 1000, 86400000L, "a proc job's program that has not written its checkpoint by then (it calls hecckpt_need too rarely, or never): the checkpoint is aborted"),
	MS_KEY(preempt_ckpt_grace, "30s", 0, 86400000L, "a job of higher priority waits at most this long for the checkpoint of a proc job it suspends (0: it never waits)"),
	STR_KEY(log_level, "info", "err, warn, info, debug"),
	MS_KEY(gang_slot, "50ms", 1, 60000, "length of one gang time slot"),
	INT_KEY(max_share, "4", 1, 64, "time slots (jobs sharing a node) at most: the multiprogramming level"),
	STR_KEY(timeslice, "gang", "gang: switch share jobs in slots; none: co-locate them, never switch (for benchmarks)"),
	{ .key = NULL },
};

int64_t ctl_now(void)
{
	return hec_now_real_ns() / 1000000000LL;
}

/* ---- peers ---- */

static void peer_free(struct peer *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		p->ctl->peers = p->next;
	if (p->next)
		p->next->prev = p->prev;
	if (p->node && p->node->peer == p)
		p->node->peer = NULL;
	if (p->store && p->store->peer == p)
		p->store->peer = NULL;
	if (p->kind == PEER_CLI) {
		fanout_forget_owner(p->ctl->fanout, p);
		store_repair_forget(p->ctl, p);
		ckpt_forget_peer(p->ctl, p);
	}
	hec_conn_free(p->conn);
	free(p);
}

static void peer_on_close(struct hec_conn *c, const char *reason, void *arg)
{
	struct peer *p = arg;

	(void)c;
	if (p->kind == PEER_AGENT && p->node && p->ctl->shutting_down)
		hec_info("%s: agent gone (%s)", p->node->name, reason ? reason : "end of stream");
	else if (p->kind == PEER_AGENT && p->node)
		hec_warn("%s: agent connection closed (%s); DOWN unless it registers again within %.1fs",
			 p->node->name, reason ? reason : "end of stream",
			 p->ctl->conf.node_timeout / 1000.0);
	else
		hec_debug("%s: connection closed (%s)", hec_conn_peer(p->conn),
			  reason ? reason : "end of stream");
	if (p->kind == PEER_AGENT && p->node && p->node->peer == p) {
		char why[300];

		snprintf(why, sizeof(why), "agent connection closed: %s", reason ? reason : "end of stream");
		node_detach_peer(p->ctl, p->node, why);
	}
	if (p->kind == PEER_AGENT && p->store && p->store->peer == p) {
		char why[300];

		snprintf(why, sizeof(why), "connection closed: %s", reason ? reason : "end of stream");
		store_detach_peer(p->ctl, p->store, why);
	}
	peer_free(p);
}

static struct peer *peer_new(struct ctl *ctl, enum peer_kind kind, int fd, const char *name)
{
	struct peer *p = calloc(1, sizeof(*p));

	if (!p) {
		close(fd);
		return NULL;
	}
	p->ctl = ctl;
	p->kind = kind;
	p->accepted = hec_now_mono_ns();
	p->conn = hec_conn_new(ctl->base, fd, name, kind == PEER_CLI ? cli_on_msg : agent_on_msg,
			       peer_on_close, p);
	if (!p->conn) {
		free(p);
		return NULL;
	}
	/* a TCP peer is a stranger until its REGISTER proves the key */
	if (kind != PEER_CLI)
		hec_conn_set_max_frame(p->conn, CTL_STRANGER_FRAME);
	p->next = ctl->peers;
	if (ctl->peers)
		ctl->peers->prev = p;
	ctl->peers = p;
	return p;
}

/* Accepting stops while the process is out of descriptors, else libevent
 * would call us in a busy loop; the tick turns it back on. */
static int accept_paused;

static int accept_one(int lfd, const char *what)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == EMFILE || errno == ENFILE) {
		hec_err("%s: accept: %s; pausing new connections", what, strerror(errno));
		accept_paused = 1;
	} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		   errno != ECONNABORTED) {
		hec_warn("%s: accept: %s", what, strerror(errno));
	}
	return -1;
}

static void cli_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ctl *ctl = arg;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char name[64];
	int fd, rc;

	(void)what;
	while (!accept_paused && (fd = accept_one(lfd, "CLI socket")) >= 0) {
		struct peer *p;

		rc = hec_peer_cred(fd, &uid, &gid, &pid);
		if (rc) {
			hec_warn("CLI socket: peer credentials: %s; connection refused", strerror(-rc));
			close(fd);
			continue;
		}
		snprintf(name, sizeof(name), "unix:uid=%u,pid=%d", (unsigned)uid, (int)pid);
		p = peer_new(ctl, PEER_CLI, fd, name);
		if (!p) {
			hec_err("%s: out of memory; connection dropped", name);
			continue;
		}
		p->uid = uid;
		p->gid = gid;
		p->pid = pid;
		cli_peer_admit(ctl, p);
	}
	if (accept_paused)
		event_del(ctl->cli_ev);
}

/* "host:port" of the peer on @fd, for logs. */
static void tcp_peer_name(int fd, const char *prefix, char *name, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
			    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(name, len, "%s%s:%s", prefix, host, serv);
}

/* The CLI of another host: nobody until its MUNGE credential says who
 * (ctl_cli.c takes the AUTH); a stranger's frames stay small. */
static void cli_tcp_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ctl *ctl = arg;
	char name[NI_MAXHOST + NI_MAXSERV + 8];
	json_t *body;
	int fd, rc;

	(void)what;
	while (!accept_paused && (fd = accept_one(lfd, "remote CLI socket")) >= 0) {
		struct peer *p;

		tcp_peer_name(fd, "tcp:", name, sizeof(name));
		p = peer_new(ctl, PEER_CLI, fd, name);
		if (!p) {
			hec_err("%s: out of memory; connection dropped", name);
			continue;
		}
		p->remote = 1;
		p->uid = (uid_t)-1;
		p->gid = (gid_t)-1;
		hec_conn_set_max_frame(p->conn, HEC_AUTH_CRED_MAX + 256);
		rc = hec_auth_nonce(p->nonce);
		body = rc ? NULL : json_pack("{s:s}", "nonce", p->nonce);
		if (!body) {
			hec_err("%s: no nonce: %s; connection refused", name,
				rc ? strerror(-rc) : "out of memory");
			hec_conn_send_error_and_close(p->conn, "the controller cannot make a nonce");
			continue;
		}
		hec_conn_send(p->conn, HEC_MSG_AUTH_NONCE, body);
		json_decref(body);
	}
	if (accept_paused)
		event_del(ctl->cli_tcp_ev);
}

static void agent_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ctl *ctl = arg;
	int fd;

	(void)what;
	while (!accept_paused && (fd = accept_one(lfd, "agent socket")) >= 0) {
		char name[NI_MAXHOST + NI_MAXSERV + 2];

		tcp_peer_name(fd, "", name, sizeof(name));
		if (!peer_new(ctl, PEER_AGENT, fd, name))
			hec_err("%s: out of memory; connection dropped", name);
	}
	if (accept_paused)
		event_del(ctl->agent_ev);
}

/* ---- shutdown ---- */

void ctl_begin_shutdown(struct ctl *ctl, uid_t uid)
{
	struct peer *p, *next;
	int agents = 0;

	if (ctl->shutting_down)
		return;
	ctl->shutting_down = 1;
	ctl->shutdown_deadline = hec_now_mono_ns() + SHUTDOWN_WAIT_MS * 1000000LL;
	ctl_jobs_shutdown(ctl, uid);
	for (p = ctl->peers; p; p = next) {
		next = p->next;
		if (p->kind != PEER_AGENT)
			continue;
		if (p->node) {
			node_send(p->node, HEC_MSG_SHUTDOWN, json_object());
			agents++;
		} else {
			hec_conn_send_error_and_close(p->conn, "the controller is shutting down");
		}
	}
	hec_info("shutdown requested by uid %u: told %d agent%s to clean up and exit",
		 (unsigned)uid, agents, agents == 1 ? "" : "s");
}

/* Exit once every agent has gone and every CLI answer is flushed. */
static void shutdown_progress(struct ctl *ctl)
{
	int64_t now = hec_now_mono_ns();
	int agents = 0, unsent = 0;
	struct peer *p;

	for (p = ctl->peers; p; p = p->next) {
		if (p->kind == PEER_AGENT)
			agents++;
		else if (hec_conn_pending(p->conn))
			unsent++;
	}
	if (now < ctl->shutdown_deadline && (agents || unsent))
		return;
	if (agents)
		hec_warn("shutdown: %d agent connection%s still open after %ds; exiting anyway", agents,
			 agents == 1 ? "" : "s", SHUTDOWN_WAIT_MS / 1000);
	else
		hec_info("shutdown: every agent is gone; exiting");
	event_base_loopexit(ctl->base, NULL);
}

/* ---- the clock ---- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;
	int64_t now = hec_now_mono_ns();
	struct peer *p, *next;

	(void)fd;
	(void)what;
	if (accept_paused) {
		accept_paused = 0;
		event_add(ctl->cli_ev, NULL);
		event_add(ctl->agent_ev, NULL);
		if (ctl->cli_tcp_ev)
			event_add(ctl->cli_tcp_ev, NULL);
	}
	/* An agent connection that never registers holds a descriptor for nothing. */
	for (p = ctl->peers; p; p = next) {
		next = p->next;
		if (p->kind == PEER_AGENT && !p->node && !p->store &&
		    now - p->accepted > ctl->conf.node_timeout * 1000000LL) {
			hec_warn("%s: no REGISTER within %.1fs; closing", hec_conn_peer(p->conn),
				 ctl->conf.node_timeout / 1000.0);
			p->accepted = INT64_MAX / 2; /* warn once; the close completes later */
			hec_conn_send_error_and_close(p->conn, "no REGISTER within %.1fs",
						      ctl->conf.node_timeout / 1000.0);
		}
		/* nor does a CLI connection that never asks anything */
		if (p->kind == PEER_CLI && !p->asked && !hec_conn_closing(p->conn) &&
		    now - p->accepted > CTL_CLI_IDLE_NS) {
			p->asked = 1;
			hec_conn_send_error_and_close(p->conn, "no request within %lld s; closing",
						      CTL_CLI_IDLE_NS / 1000000000LL);
		}
	}
	if (ctl->shutting_down) {
		shutdown_progress(ctl);
		return;
	}
	node_check_liveness(ctl);
	store_check_liveness(ctl);
	ctl_job_timers(ctl);
	ckpt_tick(ctl);
	ctl_jobs_retire(ctl);
	ctl_schedule(ctl);
}

static void sched_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;

	(void)fd;
	(void)what;
	if (ctl->sched_needed || ctl->epoch_needed)
		ctl_schedule(ctl);
	else
		ctl_nodes_save(ctl);
}

/* Active now, it runs after the events already active in this turn of the
 * loop: the messages of every connection one wait brought are handled
 * first (activating it again meanwhile does nothing). */
void ctl_schedule_soon(struct ctl *ctl)
{
	if (ctl->sched_ev)
		event_active(ctl->sched_ev, EV_TIMEOUT, 0);
	else
		sched_cb(-1, 0, ctl);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct ctl *ctl = arg;

	(void)what;
	if (sig == SIGHUP) {
		hec_info("SIGHUP ignored (configuration is read at start only)");
		return;
	}
	hec_info("%s: exiting; agents keep their jobs and reconnect to the next controller",
		 strsignal((int)sig));
	event_base_loopexit(ctl->base, NULL);
}

/* ---- start-up ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: hecctld [-f FILE] [-o KEY=VALUE]...\n"
		"The hec controller: job queue, catalog and node liveness.\n\n"
		"  -f, --file FILE     configuration file (key = value lines)\n"
		"  -o KEY=VALUE        override a key of the file (repeatable)\n"
		"  -h, --help          this text and the list of keys\n\n"
		"Keys:\n");
}

static int check_conf(const struct ctl_conf *c, char *err, size_t len)
{
	enum hec_log_level lvl;
	char host[256];
	int port;

	if (hec_log_level_parse(c->log_level, &lvl)) {
		snprintf(err, len, "log_level: '%s' is not one of err, warn, info, debug", c->log_level);
		return -EINVAL;
	}
	if (!c->cluster_name[0] || strspn(c->cluster_name,
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
			strlen(c->cluster_name) || c->cluster_name[0] == '.') {
		snprintf(err, len, "cluster_name: '%s' may hold only letters, digits, '_', '-' and '.'",
			 c->cluster_name);
		return -EINVAL;
	}
	if (hec_split_hostport(c->listen, host, sizeof(host), &port)) {
		snprintf(err, len, "listen: '%s' is not host:port", c->listen);
		return -EINVAL;
	}
	if (c->cli_listen[0] && hec_split_hostport(c->cli_listen, host, sizeof(host), &port)) {
		snprintf(err, len, "cli_listen: '%s' is not host:port", c->cli_listen);
		return -EINVAL;
	}
	if (c->state_dir[0] != '/' || c->spool_dir[0] != '/' || c->socket[0] != '/') {
		snprintf(err, len, "%s: must be an absolute path",
			 c->state_dir[0] != '/' ? "state_dir" : c->spool_dir[0] != '/' ? "spool_dir" : "socket");
		return -EINVAL;
	}
	if (ctl_gang_timeslice_parse(c->timeslice) < 0) {
		snprintf(err, len, "timeslice: '%s' is not one of gang, none", c->timeslice);
		return -EINVAL;
	}
	if (c->node_timeout <= c->heartbeat_interval) {
		snprintf(err, len, "node_timeout (%ldms) must be longer than heartbeat_interval (%ldms)",
			 c->node_timeout, c->heartbeat_interval);
		return -EINVAL;
	}
	return 0;
}

/* Configuration: defaults, then the file, then -o overrides. \return exit code or 0. */
static int load_conf(struct ctl_conf *conf, int argc, char **argv)
{
	const char *file;
	char err[1024];
	int rc;

	if (hec_conf_defaults(ctl_keys, conf)) {
		fprintf(stderr, "hecctld: built-in defaults do not parse (a bug)\n");
		return 2;
	}
	rc = hec_conf_from_args(ctl_keys, conf, "hecctld", argc, argv, NULL, usage, &file);
	if (rc)
		return rc;
	if (check_conf(conf, err, sizeof(err))) {
		fprintf(stderr, "hecctld: %s%s%s\n", file ? file : "", file ? ": " : "", err);
		return 2;
	}
	return 0;
}

static int read_key(struct ctl *ctl)
{
	char why[128];
	int rc;

	if (!ctl->conf.key_file[0]) {
		hec_warn("key_file is empty: agents are not authenticated");
		return 0;
	}
	rc = hec_read_key(ctl->conf.key_file, ctl->cluster_key, sizeof(ctl->cluster_key), why,
			  sizeof(why));
	if (rc)
		fprintf(stderr, "hecctld: key_file %s: %s\n", ctl->conf.key_file, why);
	return rc;
}

/* mkdir -p, then the mode given if we created the last component. */
static int make_dir(const char *what, const char *path, mode_t mode)
{
	struct stat st;
	int existed = stat(path, &st) == 0, rc;

	if (existed && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "hecctld: %s %s: %s\n", what, path, strerror(ENOTDIR));
		return -ENOTDIR;
	}
	if (existed)
		return 0;
	rc = hec_mkdir_p(path, 0755);
	if (!rc && chmod(path, mode))
		rc = -errno;
	if (rc)
		fprintf(stderr, "hecctld: %s %s: %s\n", what, path, strerror(-rc));
	return rc;
}

/* A spool an older hecctld made 1777: root's alone now (each user's output
 * goes in a directory of its own below, made by the controller). */
static int spool_private(const char *path)
{
	struct stat st;

	if (stat(path, &st) || !(st.st_mode & (S_IWGRP | S_IWOTH)) || st.st_uid != geteuid())
		return 0;
	if (chmod(path, 0755)) {
		fprintf(stderr, "hecctld: spool_dir %s: chmod 0755: %s\n", path, strerror(errno));
		return -errno;
	}
	hec_warn("spool_dir %s was writable by others: now 0755 (each user's output in %s/<uid>)",
		 path, path);
	return 0;
}

/* The socket's directory, e.g. /run/hec. */
static int make_parent(const char *what, const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	return make_dir(what, dir, 0755);
}

/* state_dir/@leaf (ctl.addr, cli.addr): the address bound for @hostport, at
 * @port.  Readers never see a half-written file (write + rename). */
static int write_addr(const struct ctl *ctl, const char *hostport, const char *leaf, int port,
		      char *out, size_t outlen)
{
	char host[256], path[PATH_MAX], tmp[PATH_MAX], text[340];
	int fd, dummy, rc = 0;
	ssize_t n;

	hec_split_hostport(hostport, host, sizeof(host), &dummy);
	if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "*")) {
		if (gethostname(host, sizeof(host) - 1))
			snprintf(host, sizeof(host), "127.0.0.1");
		host[sizeof(host) - 1] = 0;
	}
	snprintf(out, outlen, "%s:%d", host, port);
	snprintf(text, sizeof(text), "%s\n", out);
	snprintf(path, sizeof(path), "%s/%s", ctl->conf.state_dir, leaf);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d", ctl->conf.state_dir, leaf, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n != (ssize_t)strlen(text))
		rc = n < 0 ? -errno : -EIO;
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/*
 * "Port 0 picks one": but agents were told the port this controller had
 * before a restart, so take the port recorded in ctl.addr again if it is
 * free, and only then any port.
 */
static int listen_agents(const struct ctl *ctl, int *port)
{
	char host[256], old[320], path[PATH_MAX], again[600];
	int want, oldport, fd;

	if (hec_split_hostport(ctl->conf.listen, host, sizeof(host), &want) == 0 && want == 0) {
		snprintf(path, sizeof(path), "%s/ctl.addr", ctl->conf.state_dir);
		if (hec_read_file(path, old, sizeof(old)) == 0 &&
		    hec_split_hostport(old, again, sizeof(again), &oldport) == 0 && oldport > 0) {
			snprintf(again, sizeof(again), "%s:%d", host, oldport);
			fd = hec_listen_tcp(again, port);
			if (fd >= 0)
				return fd;
			hec_info("previous agent port %d is taken (%s); picking another", oldport,
				 strerror(-fd));
		}
	}
	return hec_listen_tcp(ctl->conf.listen, port);
}

/* A live controller on the socket: refuse rather than steal it (checked
 * before the catalog is touched). */
static int socket_in_use(const struct ctl *ctl)
{
	int fd = hec_connect_unix(ctl->conf.socket);

	if (fd < 0)
		return 0;
	close(fd);
	fprintf(stderr, "hecctld: socket %s: another controller is running there\n",
		ctl->conf.socket);
	return -EADDRINUSE;
}

static int open_listeners(struct ctl *ctl)
{
	char addr[320];
	int port = 0, rc;

	ctl->cli_fd = hec_listen_unix(ctl->conf.socket, 0666);
	if (ctl->cli_fd < 0) {
		fprintf(stderr, "hecctld: socket %s: %s\n", ctl->conf.socket, strerror(-ctl->cli_fd));
		return ctl->cli_fd;
	}
	ctl->agent_fd = listen_agents(ctl, &port);
	if (ctl->agent_fd < 0) {
		fprintf(stderr, "hecctld: listen %s: %s\n", ctl->conf.listen, strerror(-ctl->agent_fd));
		return ctl->agent_fd;
	}
	rc = write_addr(ctl, ctl->conf.listen, "ctl.addr", port, addr, sizeof(addr));
	if (rc) {
		fprintf(stderr, "hecctld: %s/ctl.addr: %s\n", ctl->conf.state_dir, strerror(-rc));
		return rc;
	}
	hec_info("listening for agents on %s, for the CLI on %s", addr, ctl->conf.socket);
	if (!ctl->conf.cli_listen[0])
		return 0;
	ctl->cli_tcp_fd = hec_listen_tcp(ctl->conf.cli_listen, &port);
	if (ctl->cli_tcp_fd < 0) {
		fprintf(stderr, "hecctld: cli_listen %s: %s\n", ctl->conf.cli_listen,
			strerror(-ctl->cli_tcp_fd));
		return ctl->cli_tcp_fd;
	}
	rc = write_addr(ctl, ctl->conf.cli_listen, "cli.addr", port, addr, sizeof(addr));
	if (rc) {
		fprintf(stderr, "hecctld: %s/cli.addr: %s\n", ctl->conf.state_dir, strerror(-rc));
		return rc;
	}
	hec_info("listening for the CLI of other hosts on %s (users by MUNGE credentials, munged at %s)",
		 addr, ctl->conf.munge_socket[0] ? ctl->conf.munge_socket : "its default socket");
	return 0;
}

static int setup_events(struct ctl *ctl)
{
	struct timeval tick = { .tv_sec = 0, .tv_usec = TICK_MS * 1000 };

	ctl->cli_ev = event_new(ctl->base, ctl->cli_fd, EV_READ | EV_PERSIST, cli_accept_cb, ctl);
	ctl->agent_ev = event_new(ctl->base, ctl->agent_fd, EV_READ | EV_PERSIST, agent_accept_cb, ctl);
	ctl->tick_ev = event_new(ctl->base, -1, EV_PERSIST, tick_cb, ctl);
	ctl->sched_ev = event_new(ctl->base, -1, 0, sched_cb, ctl);
	ctl->sigterm_ev = evsignal_new(ctl->base, SIGTERM, signal_cb, ctl);
	ctl->sigint_ev = evsignal_new(ctl->base, SIGINT, signal_cb, ctl);
	ctl->sighup_ev = evsignal_new(ctl->base, SIGHUP, signal_cb, ctl);
	if (ctl->cli_tcp_fd >= 0) {
		ctl->cli_tcp_ev = event_new(ctl->base, ctl->cli_tcp_fd, EV_READ | EV_PERSIST,
					    cli_tcp_accept_cb, ctl);
		if (!ctl->cli_tcp_ev || event_add(ctl->cli_tcp_ev, NULL))
			return -ENOMEM;
	}
	if (!ctl->cli_ev || !ctl->agent_ev || !ctl->tick_ev || !ctl->sched_ev || !ctl->sigterm_ev ||
	    !ctl->sigint_ev || !ctl->sighup_ev)
		return -ENOMEM;
	if (event_add(ctl->cli_ev, NULL) || event_add(ctl->agent_ev, NULL) ||
	    event_add(ctl->tick_ev, &tick) || event_add(ctl->sigterm_ev, NULL) ||
	    event_add(ctl->sigint_ev, NULL) || event_add(ctl->sighup_ev, NULL))
		return -EIO;
	return 0;
}

static void ctl_free(struct ctl *ctl)
{
	struct event *evs[] = { ctl->cli_ev, ctl->agent_ev, ctl->tick_ev, ctl->sigterm_ev,
				ctl->sigint_ev, ctl->sighup_ev, ctl->sched_ev, ctl->cli_tcp_ev };
	struct node *n, *nn;
	struct ctl_job *j, *jn;

	ckpt_free_all(ctl); /* before the fan-outs: their checkpoints end quietly */
	fanout_set_free(ctl->fanout); /* before the peers and jobs: nobody is answered at exit */
	ctl->fanout = NULL;
	while (ctl->peers)
		peer_free(ctl->peers);
	ctl_gang_fini(ctl);
	for (size_t i = 0; i < HEC_ARRAY_SIZE(evs); i++)
		if (evs[i])
			event_free(evs[i]);
	if (ctl->cli_fd >= 0) {
		close(ctl->cli_fd);
		unlink(ctl->conf.socket);
	}
	if (ctl->agent_fd >= 0)
		close(ctl->agent_fd);
	if (ctl->cli_tcp_fd >= 0)
		close(ctl->cli_tcp_fd);
	/* Remember when we last heard from nodes still connected (one
	 * transaction: one sync, not one per node). */
	for (n = ctl->nodes; n; n = n->next)
		n->save_due = n->save_due || n->last_seen;
	if (ctl->db && ctl->nodes && db_nodes_save(ctl->db, ctl->nodes))
		hec_warn("catalog update of the nodes' last contact failed: %s", db_errmsg(ctl->db));
	for (n = ctl->nodes; n; n = nn) {
		nn = n->next;
		free(n->cpus);
		free(n);
	}
	for (j = ctl->jobs; j; j = jn) {
		jn = j->next;
		job_free(j);
	}
	job_free(ctl->ended);
	store_free_all(ctl);
	db_close(ctl->db);
	if (ctl->base)
		event_base_free(ctl->base);
}

int main(int argc, char **argv)
{
	struct ctl ctl = { .cli_fd = -1, .agent_fd = -1, .cli_tcp_fd = -1 };
	enum hec_log_level level = HEC_LOG_INFO;
	char path[PATH_MAX], err[512];
	int rc, status = 1;

	hec_log_init("hecctld", HEC_LOG_INFO);
	if (agent_handlers_check(err, sizeof(err)) || cli_handlers_check(err, sizeof(err))) {
		fprintf(stderr, "hecctld: internal error: message table: %s\n", err);
		return 2;
	}
	rc = load_conf(&ctl.conf, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	hec_log_level_parse(ctl.conf.log_level, &level);
	hec_log_init("hecctld", level);
	signal(SIGPIPE, SIG_IGN);
	ctl.start_mono = hec_now_mono_ns();
	ctl.start_real = ctl_now();

	if (socket_in_use(&ctl) || read_key(&ctl) || make_dir("state_dir", ctl.conf.state_dir, 0755) ||
	    make_dir("spool_dir", ctl.conf.spool_dir, 0755) || spool_private(ctl.conf.spool_dir) ||
	    make_parent("socket directory", ctl.conf.socket))
		goto out;
	if (ctl_gang_init(&ctl)) {
		fprintf(stderr, "hecctld: cannot create the gang matrix: %s\n", strerror(ENOMEM));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/hec.db", ctl.conf.state_dir);
	rc = db_open(path, &ctl.db, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "hecctld: catalog %s: %s\n", path, err);
		goto out;
	}
	ctl_gang_restore(&ctl);
	rc = ctl_nodes_restore(&ctl);
	if (!rc)
		rc = ctl_jobs_restore(&ctl);
	if (rc) {
		fprintf(stderr, "hecctld: catalog %s: cannot load: %s\n", path,
			rc == -EIO ? db_errmsg(ctl.db) : strerror(-rc));
		goto out;
	}
	ctl.base = event_base_new();
	if (!ctl.base) {
		fprintf(stderr, "hecctld: cannot create the event loop\n");
		goto out;
	}
	if (fanout_set_new(ctl.base, &ctl.fanout)) {
		fprintf(stderr, "hecctld: cannot create the fan-out set: %s\n", strerror(ENOMEM));
		goto out;
	}
	if (ckpt_init(&ctl)) {
		fprintf(stderr, "hecctld: catalog %s: cannot load the checkpoints: %s\n", path,
			db_errmsg(ctl.db));
		goto out;
	}
	if (open_listeners(&ctl))
		goto out;
	if (setup_events(&ctl)) {
		fprintf(stderr, "hecctld: cannot set up events\n");
		goto out;
	}
	{
		int njobs = 0, active = 0;

		for (struct ctl_job *j = ctl.jobs; j; j = j->next) {
			njobs++;
			active += !job_state_final(j->state);
		}
		hec_info("cluster %s: controller up (pid %d); catalog %s holds %d node%s and %d job%s (%d not ended)",
			 ctl.conf.cluster_name, (int)getpid(), path, ctl.nnodes,
			 ctl.nnodes == 1 ? "" : "s", njobs, njobs == 1 ? "" : "s", active);
	}
	event_base_dispatch(ctl.base);
	status = 0;
out:
	ctl_free(&ctl);
	libevent_global_shutdown();
	return status;
}
