/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Spawn listener: hec-launch (run by Hydra's mpiexec on the batch node, one
 * per remote proxy) connects and sends SPAWN{job,key,node,cmd}.  We run
 * `/bin/sh -c cmd` inside the job's partition as the job's user, stream its
 * stdout/stderr back as STDOUT/STDERR frames, and end with EXITED once it is
 * reaped and its pipes are drained.  A bridge that goes away early takes the
 * child's process group with it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"
#include "agent/agent.h"

#define MAX_BRIDGES 4096
#define READ_CHUNK 65536
#define PAUSE_ABOVE (4u << 20)      /* queued output that stops reading the pipes */
#define RESUME_BELOW (1u << 20)
#define FLOW_POLL_MS 20
#define LINGER_MS 2000              /* pipes held open by a grandchild after exit */
#define FLUSH_MS 10000              /* EXITED not read by the bridge */
#define HELLO_MS 5000               /* a connection must send its SPAWN by then */

struct bridge {
	struct bridge *next;
	struct agent *ag;
	struct hec_conn *conn;
	long job;
	pid_t pid;                  /* 0: nothing spawned */
	int reaped, status;
	int fd[2];                  /* stdout, stderr read ends; -1 when closed */
	struct event *ev[2];
	int paused;
	struct event *timer;        /* flow control, linger, final flush */
	int exited_sent;
	int64_t deadline_ns;
	int net_port;               /* > 0: a link of job's network (NET_JOIN), not a spawn */
};

static void bridge_free(struct bridge *b)
{
	struct agent *ag = b->ag;
	struct bridge **pp;

	for (pp = &ag->bridges; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	for (int i = 0; i < 2; i++) {
		if (b->ev[i])
			event_free(b->ev[i]);
		if (b->fd[i] >= 0)
			close(b->fd[i]);
	}
	if (b->timer)
		event_free(b->timer);
	if (b->net_port > 0) {
		struct agent_job *j = agent_job_find(ag, b->job);

		if (j)
			hec_partition_net_gone(j->part, b->net_port);
	}
	if (b->conn)
		hec_conn_free(b->conn);
	free(b);
}

void bridges_close_net(struct agent *ag, long job)
{
	for (struct bridge *b = ag->bridges, *next; b; b = next) {
		next = b->next;
		if (b->net_port > 0 && b->job == job) {
			b->net_port = 0; /* the switch is gone already */
			bridge_free(b);
		}
	}
}

void bridges_free(struct agent *ag)
{
	while (ag->bridges)
		bridge_free(ag->bridges);
}

static void close_pipe(struct bridge *b, int i)
{
	if (b->ev[i]) {
		event_free(b->ev[i]);
		b->ev[i] = NULL;
	}
	if (b->fd[i] >= 0) {
		close(b->fd[i]);
		b->fd[i] = -1;
	}
}

static void arm_timer(struct bridge *b, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(b->timer, &tv);
}

static void maybe_finish(struct bridge *b)
{
	int code, sig;
	json_t *body;

	if (!b->reaped || b->exited_sent || b->fd[0] >= 0 || b->fd[1] >= 0)
		return;
	agent_wait_status(b->status, &code, &sig);
	body = json_pack("{s:i, s:i}", "exit", code, "signal", sig);
	if (body) {
		hec_conn_send(b->conn, HEC_MSG_EXITED, body);
		json_decref(body);
	}
	b->exited_sent = 1;
	hec_job_debug(b->ag->conf.name, b->job, "bridge %s: pid %d ended (exit %d, signal %d)",
		      hec_conn_peer(b->conn), (int)b->pid, code, sig);
	/* The bridge closes once it has EXITED; don't wait for it forever. */
	b->deadline_ns = hec_now_mono_ns() + (int64_t)FLUSH_MS * 1000000;
	arm_timer(b, FLOW_POLL_MS);
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg);

static void set_reading(struct bridge *b, int on)
{
	for (int i = 0; i < 2; i++)
		if (b->ev[i]) {
			if (on)
				event_add(b->ev[i], NULL);
			else
				event_del(b->ev[i]);
		}
	b->paused = !on;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;

	(void)fd;
	(void)what;
	if (b->net_port > 0)
		return; /* a network link lives as long as the guests */
	if (!b->pid && !b->exited_sent) {
		/* Connected but never asked for anything: it only holds a slot. */
		hec_warn("%s: bridge %s sent no SPAWN within %d ms; closing", b->ag->conf.name,
			 hec_conn_peer(b->conn), HELLO_MS);
		bridge_free(b);
		return;
	}
	if (b->exited_sent) {
		if (hec_conn_pending(b->conn) == 0 || hec_now_mono_ns() > b->deadline_ns)
			bridge_free(b);
		else
			arm_timer(b, FLOW_POLL_MS);
		return;
	}
	if (b->reaped && hec_now_mono_ns() > b->deadline_ns) {
		/* The shell is gone but something it started holds the pipes. */
		close_pipe(b, 0);
		close_pipe(b, 1);
		maybe_finish(b);
		return;
	}
	if (b->paused && hec_conn_pending(b->conn) < RESUME_BELOW)
		set_reading(b, 1);
	if (b->paused || b->reaped)
		arm_timer(b, FLOW_POLL_MS);
}

static void pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bridge *b = arg;
	int i = fd == b->fd[0] ? 0 : 1;
	char buf[READ_CHUNK];
	ssize_t n;

	(void)what;
	n = read((int)fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_pipe(b, i);
		maybe_finish(b);
		return;
	}
	hec_conn_send_data(b->conn, i == 0 ? HEC_MSG_STDOUT : HEC_MSG_STDERR, buf, (size_t)n);
	if (hec_conn_pending(b->conn) > PAUSE_ABOVE && !b->paused) {
		/* A slow bridge: stop reading, so the job blocks on its pipe. */
		set_reading(b, 0);
		arm_timer(b, FLOW_POLL_MS);
	}
}

int bridge_reaped(struct agent *ag, pid_t pid, int status)
{
	for (struct bridge *b = ag->bridges; b; b = b->next) {
		if (b->pid != pid || b->reaped)
			continue;
		b->reaped = 1;
		b->status = status;
		if (b->fd[0] >= 0 || b->fd[1] >= 0) {
			b->deadline_ns = hec_now_mono_ns() + (int64_t)LINGER_MS * 1000000;
			arm_timer(b, FLOW_POLL_MS);
		}
		maybe_finish(b);
		return 1;
	}
	return 0;
}

/* What a proxy needs; Hydra hands the job's real environment to the ranks. */
static int spawn_env(struct agent *ag, struct agent_job *j, struct envv *e)
{
	struct passwd *pw = getpwuid(j->uid);
	char num[32], *list = agent_job_nodelist(j);
	int rc = list ? 0 : -ENOMEM;

	snprintf(num, sizeof(num), "%ld", j->id);
	if (!rc)
		rc = envv_set(e, "PATH", "/usr/local/bin:/usr/bin:/bin");
	if (!rc)
		rc = envv_set(e, "HOME", pw && pw->pw_dir ? pw->pw_dir : "/");
	if (!rc && pw && pw->pw_name) {
		rc = envv_set(e, "USER", pw->pw_name);
		if (!rc)
			rc = envv_set(e, "LOGNAME", pw->pw_name);
	}
	if (!rc)
		rc = envv_set(e, "HEC_JOB_ID", num);
	if (!rc)
		rc = envv_set(e, "HEC_NODE", ag->conf.name);
	if (!rc)
		rc = envv_set(e, "HEC_JOB_NODELIST", list);
	free(list);
	return rc;
}

static void do_spawn(struct bridge *b, const json_t *body)
{
	struct agent *ag = b->ag;
	long id = (long)json_integer_value(json_object_get(body, "job"));
	const char *key = json_string_value(json_object_get(body, "key"));
	const char *node = json_string_value(json_object_get(body, "node"));
	const char *cmd = json_string_value(json_object_get(body, "cmd"));
	/* with hec-relay in front when there is one (the bridge then is its) */
	const char *argv[] = { ag->relay, "/bin/sh", "-c", cmd, NULL };
	const char *const *av = ag->relay[0] ? argv : argv + 1;
	struct agent_job *j = agent_job_find(ag, id);
	struct envv env = { 0 };
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, null_fd = -1, rc;
	char why[512], ctx[PATH_MAX + 64] = "";
	json_t *reply;
	pid_t pid;

	b->job = id;
	if (!j || !j->launched) {
		snprintf(why, sizeof(why), "job %ld: no partition on %s", id, ag->conf.name);
		goto refuse;
	}
	if (!agent_key_equal(key, j->key)) {
		snprintf(why, sizeof(why), "job %ld: bad key", id);
		goto refuse;
	}
	if (strcmp(node, ag->conf.name)) {
		snprintf(why, sizeof(why), "job %ld: SPAWN for %s reached %s", id, node, ag->conf.name);
		goto refuse;
	}
	if (j->killing) {
		snprintf(why, sizeof(why), "job %ld: being killed on %s", id, ag->conf.name);
		goto refuse;
	}
	if (job_is_vm(j)) {
		snprintf(why, sizeof(why), "job %ld: runs in vm partitions: its processes start inside its guests, not through %s",
			 id, ag->conf.name);
		goto refuse;
	}
	if (spawn_env(ag, j, &env)) {
		snprintf(why, sizeof(why), "job %ld: %s: out of memory", id, ag->conf.name);
		goto refuse;
	}
	if ((!ag->relay[0] && (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))) ||
	    (null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(why, sizeof(why), "job %ld: %s: pipe: %s", id, ag->conf.name, strerror(errno));
		goto refuse;
	}
	{
		int conn = hec_conn_fd(b->conn);
		struct hec_spawn_req req = {
			.argv = av, .envp = (const char *const *)env.v, .cwd = "/",
			.uid = j->uid, .gid = j->gid, .groups = &j->groups,
			.stdin_fd = ag->relay[0] ? conn : null_fd,
			.stdout_fd = ag->relay[0] ? conn : out[1],
			.stderr_fd = ag->relay[0] ? null_fd : err[1],
		};

		rc = ag->ops->spawn(j->part, &req, &pid, ctx, sizeof(ctx));
	}
	if (rc) {
		hec_fmt(why, sizeof(why), "job %ld: %s: %s: %s", id, ag->conf.name, ctx, strerror(-rc));
		goto refuse;
	}
	if (ag->relay[0]) {
		/* The relay answers SPAWNED and relays from here on; this end
		 * closes (the relay holds its own copy of the connection), so
		 * a hecd restart leaves the proxy running. */
		hec_job_info(ag->conf.name, id, "started pid %d (hec-relay) for bridge %s", (int)pid,
			     hec_conn_peer(b->conn));
		close(null_fd);
		envv_free(&env);
		bridge_free(b);
		return;
	}
	b->pid = pid;
	close(out[1]);
	close(err[1]);
	close(null_fd);
	b->fd[0] = out[0];
	b->fd[1] = err[0];
	for (int i = 0; i < 2; i++) {
		evutil_make_socket_nonblocking(b->fd[i]);
		b->ev[i] = event_new(ag->base, b->fd[i], EV_READ | EV_PERSIST, pipe_cb, b);
		if (b->ev[i])
			event_add(b->ev[i], NULL);
		else
			close_pipe(b, i); /* out of memory: output lost, status still reported */
	}
	envv_free(&env);
	reply = json_pack("{s:i}", "pid", (int)pid);
	if (reply) {
		hec_conn_send(b->conn, HEC_MSG_SPAWNED, reply);
		json_decref(reply);
	}
	hec_job_info(ag->conf.name, id, "started pid %d for bridge %s", (int)pid,
		     hec_conn_peer(b->conn));
	return;

refuse:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (null_fd >= 0)
		close(null_fd);
	envv_free(&env);
	hec_err("%s: SPAWN from %s refused: %s", ag->conf.name, hec_conn_peer(b->conn), why);
	hec_conn_send_error_and_close(b->conn, "%s", why);
}

/* NET_JOIN from another node's agent: attach @c to the job's network here
 * (its partition's switch).  \return a port id > 0, or -errno with @why. */
static int net_join(struct agent *ag, const json_t *body, struct hec_conn *c, char *why, size_t len)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	const char *key = json_string_value(json_object_get(body, "key"));
	const char *node = json_string_value(json_object_get(body, "node"));
	struct agent_job *j = agent_job_find(ag, id);

	if (!j || !j->launched || j->killing) {
		snprintf(why, len, "job %ld: no guest on %s (yet)", id, ag->conf.name);
		return -ENOENT;
	}
	if (!key || !agent_key_equal(key, j->key)) {
		snprintf(why, len, "job %ld: wrong job key from %s", id, node ? node : "?");
		return -EACCES;
	}
	return hec_partition_net_join(j->part, node ? node : "?", c, why, len);
}

static void bridge_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct bridge *b = arg;
	char why[512];

	if (b->net_port > 0 && m->type == HEC_MSG_NET_FRAME) {
		struct agent_job *j = agent_job_find(b->ag, b->job);

		if (j)
			hec_partition_net_frame(j->part, b->net_port, m->data, m->len);
		return;
	}
	if (m->type == HEC_MSG_NET_JOIN && !b->pid && !b->net_port) {
		int port = net_join(b->ag, m->body, c, why, sizeof(why));

		if (port < 0) {
			hec_debug("%s: NET_JOIN from %s refused: %s", b->ag->conf.name, hec_conn_peer(c), why);
			hec_conn_send_error_and_close(c, "%s", why);
			return;
		}
		b->job = (long)json_integer_value(json_object_get(m->body, "job"));
		b->net_port = port;
		evtimer_del(b->timer);
		return;
	}
	if (m->type != HEC_MSG_SPAWN || b->pid || b->net_port) {
		hec_warn("%s: bridge %s: unexpected %s, closing", b->ag->conf.name,
			 hec_conn_peer(c), hec_msg_type_name(m->type));
		hec_conn_send_error_and_close(c, "unexpected %s: expected one SPAWN",
					      hec_msg_type_name(m->type));
		return;
	}
	do_spawn(b, m->body);
}

static void bridge_on_close(struct hec_conn *c, const char *reason, void *arg)
{
	struct bridge *b = arg;

	(void)c;
	if (b->pid && !b->reaped) {
		/* mpiexec gave up on this proxy: don't leave it running. */
		hec_job_info(b->ag->conf.name, b->job,
			     "bridge %s went away (%s); killing process group %d",
			     hec_conn_peer(b->conn), reason ? reason : "closed", (int)b->pid);
		kill(-b->pid, SIGKILL);
		kill(b->pid, SIGKILL);
	} else if (reason && !b->exited_sent) {
		hec_debug("%s: bridge %s: %s", b->ag->conf.name, hec_conn_peer(b->conn), reason);
	}
	bridge_free(b);
}

static int count_bridges(struct agent *ag)
{
	int n = 0;

	for (struct bridge *b = ag->bridges; b; b = b->next)
		n++;
	return n;
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct agent *ag = arg;

	(void)what;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[INET6_ADDRSTRLEN] = "?", peer[128];
		struct bridge *b;
		int fd, one = 1, port = 0;

		fd = accept4((int)lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				hec_err("%s: accept on %s: %s", ag->conf.name, ag->conf.listen,
					strerror(errno));
			return;
		}
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		snprintf(peer, sizeof(peer), "%s:%d", host, port);
		if (count_bridges(ag) >= MAX_BRIDGES) {
			hec_err("%s: bridge %s refused: %d bridges already", ag->conf.name, peer,
				MAX_BRIDGES);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		b = calloc(1, sizeof(*b));
		if (!b) {
			close(fd);
			continue;
		}
		b->ag = ag;
		b->fd[0] = b->fd[1] = -1;
		b->timer = evtimer_new(ag->base, timer_cb, b);
		b->conn = hec_conn_new(ag->base, fd, peer, bridge_on_msg, bridge_on_close, b);
		if (!b->timer || !b->conn) {
			hec_err("%s: bridge %s: out of memory", ag->conf.name, peer);
			if (b->timer)
				event_free(b->timer);
			if (b->conn)
				hec_conn_free(b->conn);
			free(b);
			continue;
		}
		/* hec-launch sends one SPAWN (a proxy's command line): a peer
		 * may not make the agent buffer megabytes */
		hec_conn_set_max_frame(b->conn, 64u << 10);
		b->next = ag->bridges;
		ag->bridges = b;
		arm_timer(b, HELLO_MS);
	}
}

int bridges_listen(struct agent *ag, int *port)
{
	int fd = hec_listen_tcp(ag->conf.listen, port);

	if (fd < 0)
		return fd;
	ag->listen_fd = fd;
	ag->listen_ev = event_new(ag->base, fd, EV_READ | EV_PERSIST, on_accept, ag);
	if (!ag->listen_ev || event_add(ag->listen_ev, NULL))
		return -ENOMEM;
	return 0;
}
