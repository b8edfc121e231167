/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec-simnodes: N node agents in one process, for bench/scale.
 *
 *   hec-simnodes --controller HOST:PORT --nodes N [--key-file F] [--prefix P]
 *                [--store NAME] [--memory-mb MB] [--cores C]
 *
 * Each simulated node has its own TCP connection to a real hecctld and
 * speaks the agent's side of the protocol (doc/protocol.md) with the real
 * codec, as hecd would answer but without partitions: REGISTER (key, name,
 * cpus, topology, no partitions, no exits), HEARTBEAT at the interval
 * REGISTERED gives, LAUNCH -> LAUNCHED at once, START -> nothing runs until
 * the command "exit", KILL_JOB -> JOB_GONE, EPOCH accepted, STATS_REQ ->
 * STATS with no switches, CKPT_PREPARE -> CKPT_CAPTURED at the cut T (as a
 * guest is captured at T), then CKPT_STORED with an empty stream entry.
 * With --store one more connection registers as a storage server
 * (STORE_REGISTER, STORE_STATUS) so that the controller accepts
 * checkpoint requests; nothing serves its address, so a commit fails.
 *
 * The driver script speaks to it by lines on stdin, answered on stdout:
 *   register            mark, then REGISTER on every connection -> "ok T"
 *   mark                reset the counts of received messages -> "ok T"
 *   wait TYPE COUNT MS  until COUNT messages of TYPE (e.g. EPOCH) arrived
 *                       since the mark -> "ok|timeout TYPE COUNT FIRST LAST"
 *   quiet MS TIMEOUT    until no message arrived for MS ms (the controller
 *                       has sent all it had to) -> "ok|timeout LASTANY"
 *   exit JOB CODE       the node running JOB's batch step reports its end
 *                       (JOB_EXIT) -> "ok T" or "error ..."
 *   quit
 * Times are CLOCK_REALTIME ns (the mark's too), so that a round's wall
 * time is LAST - T of the mark.  Exit 0, 1 on a setup failure, 2 on bad
 * arguments.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "hec/net.h"

#define NTYPES 256
#define MAX_JOBS 16 /* partitions one simulated node holds at once */

struct sim;

struct simnode {
	struct sim *sim;
	int idx;
	char name[32];
	struct hec_conn *c;
	int registered;
	int store;                 /* the storage server's connection */
	struct event *hb;
	long jobs[MAX_JOBS];       /* partitions held */
	int njobs;
	long batch[MAX_JOBS];      /* batch steps started here (START) */
	int nbatch;
};

/* A CKPT_PREPARE waiting for its cut T. */
struct capture {
	struct simnode *n;
	long job;
	int64_t epoch;
	char part[65];
	struct event *ev;
};

struct sim {
	struct event_base *base;
	struct simnode *nodes;
	int n;
	char key[257];
	char controller[300];
	int64_t mark;
	long count[NTYPES];
	int64_t first[NTYPES], last[NTYPES];
	int64_t last_any;          /* the latest message of any type */
	/* an outstanding "wait" or "quiet" */
	int waiting, quiet;
	int64_t quiet_ns, quiet_until;
	struct event *quiet_ev;
	unsigned wait_type;
	long wait_count;
	struct event *wait_ev, *stdin_ev;
	char line[512];
	size_t linelen;
	long memory_mb, cores;
	int lost;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void send_msg(struct simnode *n, unsigned type, json_t *body)
{
	if (!body || !n->c || hec_conn_send(n->c, type, body))
		fprintf(stderr, "hec-simnodes: %s: %s not sent\n", n->name, hec_msg_type_name(type));
	json_decref(body);
}

static void wait_answer(struct sim *s, const char *how)
{
	unsigned t = s->wait_type;

	s->waiting = 0;
	evtimer_del(s->wait_ev);
	say("%s %s %ld %lld %lld", how, hec_msg_type_name(t), s->count[t], (long long)s->first[t],
	    (long long)s->last[t]);
}

static void note(struct sim *s, unsigned type)
{
	int64_t now = hec_now_real_ns();

	s->last_any = now;
	if (type >= NTYPES)
		return;
	if (!s->count[type]++)
		s->first[type] = now;
	s->last[type] = now;
	if (s->waiting && type == s->wait_type && s->count[type] >= s->wait_count)
		wait_answer(s, "ok");
}

static int has(const long *a, int n, long id)
{
	for (int i = 0; i < n; i++)
		if (a[i] == id)
			return 1;
	return 0;
}

static void drop(long *a, int *n, long id)
{
	for (int i = 0; i < *n; i++)
		if (a[i] == id) {
			a[i] = a[--*n];
			return;
		}
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
	struct simnode *n = arg;

	(void)fd;
	(void)what;
	if (n->store)
		send_msg(n, HEC_MSG_STORE_STATUS,
			 json_pack("{s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i}", "total", (json_int_t)1 << 40,
				   "free", (json_int_t)1 << 40, "used", (json_int_t)0, "chunks", 0,
				   "manifests", 0, "corrupt", 0, "repaired", 0, "clients", 0));
	else
		send_msg(n, HEC_MSG_HEARTBEAT, json_object());
}

static void on_registered(struct simnode *n, const json_t *b)
{
	long ms = (long)json_integer_value(json_object_get(b, "heartbeat_ms"));
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	n->registered = 1;
	if (!n->hb)
		n->hb = event_new(n->sim->base, -1, EV_PERSIST, hb_cb, n);
	if (n->hb)
		event_add(n->hb, &tv);
}

static void capture_cb(evutil_socket_t fd, short what, void *arg)
{
	struct capture *cp = arg;
	json_t *entry = json_pack("{s:I,s:s}", "size", (json_int_t)0, "part", cp->part);

	(void)fd;
	(void)what;
	send_msg(cp->n, HEC_MSG_CKPT_CAPTURED,
		 json_pack("{s:I,s:I,s:I}", "job", (json_int_t)cp->job, "epoch", (json_int_t)cp->epoch,
			   "pause_us", (json_int_t)0));
	/* nothing to stream: stored at once */
	send_msg(cp->n, HEC_MSG_CKPT_STORED,
		 json_pack("{s:I,s:I,s:s,s:I,s:I,s:o}", "job", (json_int_t)cp->job, "epoch",
			   (json_int_t)cp->epoch, "part", cp->part, "bytes", (json_int_t)0, "ms",
			   (json_int_t)0, "entry", entry));
	event_free(cp->ev);
	free(cp);
}

static void on_prepare(struct simnode *n, const json_t *b)
{
	struct capture *cp = calloc(1, sizeof(*cp));
	int64_t t = json_integer_value(json_object_get(b, "t")), wait = t - hec_now_real_ns();
	struct timeval tv = { 0, 0 };

	if (!cp)
		return;
	cp->n = n;
	cp->job = (long)json_integer_value(json_object_get(b, "job"));
	cp->epoch = json_integer_value(json_object_get(b, "epoch"));
	snprintf(cp->part, sizeof(cp->part), "%s", json_string_value(json_object_get(b, "part")));
	if (wait > 0) {
		tv.tv_sec = wait / 1000000000;
		tv.tv_usec = wait % 1000000000 / 1000;
	}
	cp->ev = evtimer_new(n->sim->base, capture_cb, cp);
	if (!cp->ev || evtimer_add(cp->ev, &tv)) {
		free(cp);
		return;
	}
}

static void node_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct simnode *n = arg;
	const json_t *b = m->body;
	long job = (long)json_integer_value(json_object_get(b, "job"));

	(void)c;
	if (!n->store) /* its arrival, before anything is answered */
		note(n->sim, m->type);
	switch (m->type) {
	case HEC_MSG_REGISTERED:
		on_registered(n, b);
		break;
	case HEC_MSG_LAUNCH:
		if (!has(n->jobs, n->njobs, job) && n->njobs < MAX_JOBS)
			n->jobs[n->njobs++] = job;
		send_msg(n, HEC_MSG_LAUNCHED, json_pack("{s:I}", "job", (json_int_t)job));
		break;
	case HEC_MSG_START:
		if (!has(n->batch, n->nbatch, job) && n->nbatch < MAX_JOBS)
			n->batch[n->nbatch++] = job;
		break;
	case HEC_MSG_KILL_JOB:
		drop(n->jobs, &n->njobs, job);
		drop(n->batch, &n->nbatch, job);
		send_msg(n, HEC_MSG_JOB_GONE, json_pack("{s:I}", "job", (json_int_t)job));
		break;
	case HEC_MSG_STATS_REQ:
		send_msg(n, HEC_MSG_STATS,
			 json_pack("{s:O,s:I,s:I,s:I,s:[],s:[]}", "req", json_object_get(b, "req"),
				   "offset_ns", (json_int_t)0, "rtt_ns", (json_int_t)100000, "now",
				   (json_int_t)hec_now_real_ns(), "switches", "usage"));
		break;
	case HEC_MSG_CKPT_PREPARE:
		on_prepare(n, b);
		break;
	case HEC_MSG_SHUTDOWN:
		hec_conn_free(n->c);
		n->c = NULL;
		break;
	case HEC_MSG_ERROR:
		fprintf(stderr, "hec-simnodes: %s: controller says: %s\n", n->name,
			json_string_value(json_object_get(b, "error")));
		break;
	default: /* EPOCH, EXIT_ACK, CKPT_REOPEN, CKPT_ABORT, TIME_RESP: accepted */
		break;
	}
}

static void node_close(struct hec_conn *c, const char *reason, void *arg)
{
	struct simnode *n = arg;

	if (!n->sim->lost++)
		fprintf(stderr, "hec-simnodes: %s: connection lost: %s\n", n->name,
			reason ? reason : "closed by the controller");
	hec_conn_free(c);
	n->c = NULL;
	n->registered = 0;
	if (n->hb)
		event_del(n->hb);
}

static int node_connect(struct sim *s, struct simnode *n)
{
	int fd = hec_connect_tcp(s->controller, 10000);

	if (fd < 0)
		return fd;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
		close(fd);
		return -errno;
	}
	n->c = hec_conn_new(s->base, fd, s->controller, node_msg, node_close, n);
	return n->c ? 0 : -ENOMEM;
}

static void send_register(struct sim *s, struct simnode *n)
{
	char addr[64], cpus[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", 20000 + n->idx);
	snprintf(cpus, sizeof(cpus), "0-%ld", s->cores - 1);
	send_msg(n, HEC_MSG_REGISTER,
		 json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:I,s:I,s:i,s:I},s:[],s:[],s:I}", "node",
			   n->name, "key", s->key, "hostname", n->name, "addr", addr, "cpus", cpus,
			   "topology", "cores", (json_int_t)s->cores, "pus", (json_int_t)s->cores,
			   "numa_nodes", 1, "memory_mb", (json_int_t)s->memory_mb, "partitions",
			   "exits", "pid", (json_int_t)getpid()));
}

static void do_mark(struct sim *s)
{
	memset(s->count, 0, sizeof(s->count));
	s->mark = hec_now_real_ns();
}

static void wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	wait_answer(arg, "timeout");
}

static void quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim *s = arg;
	int64_t now = hec_now_real_ns(), left = s->last_any + s->quiet_ns - now;
	struct timeval tv;

	(void)fd;
	(void)what;
	if (left <= 0 || now >= s->quiet_until) {
		s->quiet = 0;
		say("%s %lld", left <= 0 ? "ok" : "timeout", (long long)s->last_any);
		return;
	}
	tv.tv_sec = left / 1000000000;
	tv.tv_usec = left % 1000000000 / 1000;
	evtimer_add(s->quiet_ev, &tv);
}

static unsigned type_by_name(const char *name)
{
	for (unsigned t = 1; t < NTYPES; t++)
		if (!strcmp(hec_msg_type_name(t), name))
			return t;
	return 0;
}

static void command(struct sim *s, char *line)
{
	char what[32] = "", arg[64] = "";
	long a = 0, b = 0;
	int k = sscanf(line, "%31s %63s %ld %ld", what, arg, &a, &b);

	if (k < 1)
		return;
	if (!strcmp(what, "register")) {
		do_mark(s);
		for (int i = 0; i < s->n; i++)
			if (s->nodes[i].c && !s->nodes[i].registered)
				send_register(s, &s->nodes[i]);
		say("ok %lld", (long long)s->mark);
	} else if (!strcmp(what, "mark")) {
		do_mark(s);
		say("ok %lld", (long long)s->mark);
	} else if (!strcmp(what, "wait") && k == 4) {
		struct timeval tv = { b / 1000, (b % 1000) * 1000 };
		unsigned t = type_by_name(arg);

		if (!t || s->waiting || s->quiet) {
			say("error %s", t ? "a wait is outstanding" : "unknown message type");
			return;
		}
		s->waiting = 1;
		s->wait_type = t;
		s->wait_count = a;
		if (s->count[t] >= a)
			wait_answer(s, "ok");
		else
			evtimer_add(s->wait_ev, &tv);
	} else if (!strcmp(what, "quiet") && k == 3) {
		if (s->quiet || s->waiting) {
			say("error a wait is outstanding");
			return;
		}
		s->quiet = 1;
		s->quiet_ns = atol(arg) * 1000000LL;
		s->quiet_until = hec_now_real_ns() + a * 1000000LL;
		quiet_cb(-1, 0, s);
	} else if (!strcmp(what, "exit") && k >= 3) {
		long job = atol(arg);

		for (int i = 0; i < s->n; i++) {
			struct simnode *n = &s->nodes[i];

			if (!has(n->batch, n->nbatch, job))
				continue;
			drop(n->batch, &n->nbatch, job);
			send_msg(n, HEC_MSG_JOB_EXIT,
				 json_pack("{s:I,s:i,s:i,s:I}", "job", (json_int_t)job, "exit",
					   (int)a, "signal", 0, "time", (json_int_t)hec_now_real_ns() / 1000000000));
			say("ok %lld", (long long)hec_now_real_ns());
			return;
		}
		say("error job %ld runs no batch step here", job);
	} else if (!strcmp(what, "quit")) {
		event_base_loopbreak(s->base);
	} else {
		say("error unknown command '%s'", what);
	}
}

static void stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sim *s = arg;
	ssize_t r = read(fd, s->line + s->linelen, sizeof(s->line) - 1 - s->linelen);
	char *nl;

	(void)what;
	if (r <= 0) {
		event_base_loopbreak(s->base);
		return;
	}
	s->linelen += (size_t)r;
	s->line[s->linelen] = 0;
	while ((nl = strchr(s->line, '\n'))) {
		*nl = 0;
		command(s, s->line);
		s->linelen -= (size_t)(nl + 1 - s->line);
		memmove(s->line, nl + 1, s->linelen + 1);
	}
	if (s->linelen == sizeof(s->line) - 1)
		s->linelen = 0; /* a line too long: dropped */
}

static int read_key(const char *path, char *key, size_t len)
{
	char buf[1024];
	size_t n;
	int rc = hec_read_file(path, buf, sizeof(buf));

	if (rc)
		return rc;
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	if (n >= len)
		return -EINVAL;
	memcpy(key, buf, n + 1);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hec-simnodes --controller HOST:PORT --nodes N [--key-file F] [--prefix P]\n"
		   "                    [--store NAME] [--memory-mb MB] [--cores C]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "controller", required_argument, NULL, 'c' }, { "nodes", required_argument, NULL, 'n' },
		{ "key-file", required_argument, NULL, 'k' }, { "prefix", required_argument, NULL, 'p' },
		{ "store", required_argument, NULL, 's' }, { "memory-mb", required_argument, NULL, 'm' },
		{ "cores", required_argument, NULL, 'C' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sim s = { .memory_mb = 65536, .cores = 4 };
	const char *prefix = "sim", *store = NULL, *key_file = NULL;
	struct rlimit rl;
	int o, rc;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': snprintf(s.controller, sizeof(s.controller), "%s", optarg); break;
		case 'n': s.n = atoi(optarg); break;
		case 'k': key_file = optarg; break;
		case 'p': prefix = optarg; break;
		case 's': store = optarg; break;
		case 'm': s.memory_mb = atol(optarg); break;
		case 'C': s.cores = atol(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!s.controller[0] || s.n < 1 || s.n > 100000 || s.cores < 1 || s.memory_mb < 0 ||
	    optind != argc) {
		usage(stderr);
		return 2;
	}
	if (key_file && (rc = read_key(key_file, s.key, sizeof(s.key)))) {
		fprintf(stderr, "hec-simnodes: %s: %s\n", key_file, strerror(-rc));
		return 1;
	}
	/* one descriptor per node, and a few */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)s.n + 64) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)s.n + 64 ? rl.rlim_max : (rlim_t)s.n + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	s.base = event_base_new();
	s.nodes = calloc((size_t)s.n + 1, sizeof(*s.nodes));
	s.wait_ev = s.base ? evtimer_new(s.base, wait_timeout, &s) : NULL;
	s.quiet_ev = s.base ? evtimer_new(s.base, quiet_cb, &s) : NULL;
	s.stdin_ev = s.base ? event_new(s.base, 0, EV_READ | EV_PERSIST, stdin_cb, &s) : NULL;
	if (!s.base || !s.nodes || !s.wait_ev || !s.quiet_ev || !s.stdin_ev || event_add(s.stdin_ev, NULL)) {
		fprintf(stderr, "hec-simnodes: out of memory\n");
		return 1;
	}
	/* Connections first (the controller's backlog is short: one at a
	 * time), registrations on the "register" command. */
	for (int i = 0; i < s.n; i++) {
		struct simnode *n = &s.nodes[i];

		n->sim = &s;
		n->idx = i;
		snprintf(n->name, sizeof(n->name), "%s%05d", prefix, i);
		rc = node_connect(&s, n);
		if (rc) {
			fprintf(stderr, "hec-simnodes: %s: connect to %s: %s\n", n->name, s.controller,
				strerror(-rc));
			return 1;
		}
	}
	if (store) {
		struct simnode *n = &s.nodes[s.n];

		n->sim = &s;
		n->idx = s.n;
		n->store = 1;
		snprintf(n->name, sizeof(n->name), "%s", store);
		rc = node_connect(&s, n);
		if (rc) {
			fprintf(stderr, "hec-simnodes: storage server %s: connect: %s\n", store,
				strerror(-rc));
			return 1;
		}
		send_msg(n, HEC_MSG_STORE_REGISTER,
			 json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "name", store, "key", s.key, "addr",
				   "127.0.0.1:9", "provider", "tcp", "dir", "/nonexistent", "pid",
				   (json_int_t)getpid()));
	}
	say("connected %d", s.n);
	event_base_dispatch(s.base);
	for (int i = 0; i <= s.n; i++) {
		if (s.nodes[i].c)
			hec_conn_free(s.nodes[i].c);
		if (s.nodes[i].hb)
			event_free(s.nodes[i].hb);
	}
	event_free(s.wait_ev);
	event_free(s.quiet_ev);
	event_free(s.stdin_ev);
	event_base_free(s.base);
	free(s.nodes);
	return 0;
}
