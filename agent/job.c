/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Jobs on this node: LAUNCH makes the partition and the job's files, START
 * runs the batch step (batch node only), KILL_JOB empties and removes the
 * partition.  The batch step's end is reported as JOB_EXIT and kept until the
 * controller acknowledges it, across reconnects and agent restarts
 * (state_dir/job.<id>/job.json).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/fault.h"
#include "hec/msg.h"
#include "agent/agent.h"

#define KILL_POLL_MS 20
#define KILL_WARN_NS (10LL * 1000000000)
#define SHUTDOWN_GIVE_UP_NS (30LL * 1000000000)
#define MAX_ADOPT 4096

/* The reasons sent to the controller start with our name; logs add it themselves. */
static const char *unprefixed(struct agent *ag, const char *why)
{
	size_t n = strlen(ag->conf.name);

	return !strncmp(why, ag->conf.name, n) && !strncmp(why + n, ": ", 2) ? why + n + 2 : why;
}

/* ---- jobs ---- */

struct agent_job *agent_job_find(struct agent *ag, long id)
{
	for (struct agent_job *j = ag->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

/* A job of this node, with its partition (made or re-attached by the
 * caller) and the partition's link back to it (host callbacks). */
static struct agent_job *agent_job_new(struct agent *ag, long id, struct hec_partition *part)
{
	struct agent_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->id = id;
	j->ag = ag;
	j->part = part;
	part->host = &ag->phost;
	part->host_arg = j;
	j->next = ag->jobs;
	ag->jobs = j;
	return j;
}

static void restore_free(struct agent_job *j);

static void agent_job_free(struct agent *ag, struct agent_job *j)
{
	struct agent_job **pp;

	for (pp = &ag->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	restore_free(j);
	j->part->ops->release(j->part);
	if (j->kill_timer)
		event_free(j->kill_timer);
	if (j->watch)
		event_free(j->watch);
	json_decref(j->nodes);
	free(j);
}

void agent_jobs_free(struct agent *ag)
{
	while (ag->jobs)
		agent_job_free(ag, ag->jobs);
	while (ag->exits) {
		struct exit_rec *e = ag->exits;

		ag->exits = e->next;
		free(e->error);
		free(e->note);
		free(e);
	}
}

int agent_job_dir(struct agent *ag, long id, char *buf, size_t len)
{
	return hec_fmt(buf, len, "%s/job.%ld", ag->conf.state_dir, id);
}

/* Only our own files live there, one level deep. */
static void remove_job_dir(struct agent *ag, long id)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (agent_job_dir(ag, id, dir, sizeof(dir)))
		return;
	d = opendir(dir);
	if (!d) {
		if (errno != ENOENT)
			hec_job_warn(ag->conf.name, id, "cannot remove %s: %s", dir,
				     strerror(errno));
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (rmdir(dir))
		hec_job_warn(ag->conf.name, id, "cannot remove %s: %s", dir, strerror(errno));
}

/* Create or replace @path with @len bytes, mode @mode, owned by the job's user. */
static int write_job_file(const struct agent_job *j, const char *path, const char *text, size_t len,
			  mode_t mode, int give_to_user)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode))
		rc = -errno;
	if (!rc && give_to_user && agent_is_root() && fchown(fd, j->uid, j->gid))
		rc = -errno;
	if (!rc)
		rc = hec_write_all(fd, text, len);
	if (close(fd) && !rc)
		rc = -errno;
	return rc;
}

static struct exit_rec *exit_find(struct agent *ag, long id)
{
	for (struct exit_rec *e = ag->exits; e; e = e->next)
		if (e->job == id)
			return e;
	return NULL;
}

/* job.json: what a restarted agent needs to keep serving the job. */
static void save_meta(struct agent *ag, struct agent_job *j)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
	struct exit_rec *e = exit_find(ag, j->id);
	json_t *o;
	char *text;
	int rc = -ENOMEM;

	if (!j->launched || agent_job_dir(ag, j->id, dir, sizeof(dir)))
		return;
	if (hec_fmt(path, sizeof(path), "%s/job.json", dir) || hec_fmt(tmp, sizeof(tmp), "%s.tmp", path))
		return;
	/* batch_pid -1: a step runs whose pid is not known (orphan_unknown) */
	o = json_pack("{s:I, s:s, s:I, s:I, s:O, s:I, s:I}", "job", (json_int_t)j->id,
		      "key", j->key, "uid", (json_int_t)j->uid, "gid", (json_int_t)j->gid,
		      "nodes", j->nodes, "batch_pid",
		      (json_int_t)(j->batch_pid ? j->batch_pid : j->orphan_pid ? j->orphan_pid :
				   j->orphan_unknown ? -1 : 0),
		      "batch_start", (json_int_t)j->batch_start);
	if (o && j->start_seen)
		json_object_set_new(o, "started", json_true());
	/* a guest's batch step: its driver and files, to re-attach to it */
	if (o && j->part->ops->reattach)
		json_object_set_new(o, "guest", json_pack("{s:s, s:s, s:s}", "partition",
							  j->part->ops->name, "output", j->out_path,
							  "error", j->err_path));
	if (o && e) {
		json_t *x = json_pack("{s:i, s:i, s:I}", "exit", e->exit, "signal", e->sig, "time",
				      (json_int_t)e->time);

		if (x && e->error)
			json_object_set_new(x, "error", json_string(e->error));
		json_object_set_new(o, "exit", x);
	}
	text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text) {
		rc = write_job_file(j, tmp, text, strlen(text), 0600, 0);
		if (!rc && rename(tmp, path))
			rc = -errno;
		free(text);
	}
	if (rc)
		hec_job_warn(ag->conf.name, j->id, "cannot save %s: %s", path, strerror(-rc));
}

/* ---- exits ---- */

static void send_exit(struct agent *ag, const struct exit_rec *e)
{
	json_t *b = json_pack("{s:I, s:i, s:i, s:I}", "job", (json_int_t)e->job, "exit", e->exit,
			      "signal", e->sig, "time", (json_int_t)e->time);

	if (b && e->error)
		json_object_set_new(b, "error", json_string(e->error));
	if (b && e->note)
		json_object_set_new(b, "note", json_string(e->note));
	agent_ctl_send(ag, HEC_MSG_JOB_EXIT, b);
}

static void add_exit(struct agent *ag, long id, int code, int sig, const char *error)
{
	struct exit_rec *e = exit_find(ag, id);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			hec_job_err(ag->conf.name, id, "out of memory recording its exit");
			return;
		}
		e->job = id;
		e->next = ag->exits;
		ag->exits = e;
	}
	free(e->error);
	e->error = error ? strdup(error) : NULL;
	e->exit = code;
	e->sig = sig;
	e->time = (long long)time(NULL);
}

/* A failed batch step's likely cause that its exit status cannot say:
 * the file system of its output is full (ENOSPC killed its writes). */
static char *failure_note(const struct agent_job *j, int code, int sig)
{
	struct statvfs sv;
	char note[PATH_MAX + 64];

	if ((!code && !sig) || !j || !j->out_path[0] || statvfs(j->out_path, &sv))
		return NULL;
	if ((unsigned long long)sv.f_bavail * sv.f_frsize >= 64 * 1024)
		return NULL;
	hec_fmt(note, sizeof(note), "the file system of its output %s is full", j->out_path);
	return strdup(note);
}

/* The batch step is over (or could not start): tell the controller, durably.
 * @when: when it ended (s since 1970), 0 now. */
static void batch_ended_at(struct agent *ag, long id, int code, int sig, const char *error,
			   long long when)
{
	struct agent_job *j = agent_job_find(ag, id);
	struct exit_rec *e;

	add_exit(ag, id, code, sig, error);
	if ((e = exit_find(ag, id))) {
		if (when > 0)
			e->time = when;
		free(e->note);
		e->note = error ? NULL : failure_note(j, code, sig);
		if (e->note)
			hec_job_warn(ag->conf.name, id, "the batch step failed and %s", e->note);
	}
	hec_fault("agent.exit.before_save"); /* the step's end known, not kept */
	if (j)
		save_meta(ag, j);
	hec_fault("agent.exit.after_save"); /* kept, JOB_EXIT not out */
	if (ag->registered)
		send_exit(ag, exit_find(ag, id));
}

static void batch_ended(struct agent *ag, long id, int code, int sig, const char *error)
{
	batch_ended_at(ag, id, code, sig, error, 0);
}

void exits_resend(struct agent *ag)
{
	for (struct exit_rec *e = ag->exits; e; e = e->next)
		send_exit(ag, e);
}

json_t *exits_json(struct agent *ag)
{
	json_t *a = json_array();

	for (struct exit_rec *e = ag->exits; a && e; e = e->next) {
		json_t *x = json_pack("{s:I, s:i, s:i, s:I}", "job", (json_int_t)e->job, "exit", e->exit,
				      "signal", e->sig, "time", (json_int_t)e->time);

		if (x && e->error)
			json_object_set_new(x, "error", json_string(e->error));
		if (x && e->note)
			json_object_set_new(x, "note", json_string(e->note));
		json_array_append_new(a, x);
	}
	return a;
}

void agent_job_on_exit_ack(struct agent *ag, long id)
{
	struct exit_rec **pp, *e;
	struct agent_job *j;

	for (pp = &ag->exits; (e = *pp); pp = &e->next)
		if (e->job == id) {
			*pp = e->next;
			free(e->error);
			free(e->note);
			free(e);
			break;
		}
	hec_fault("agent.exit.acked"); /* EXIT_ACK had, job.json still has the exit */
	j = agent_job_find(ag, id);
	if (j)
		save_meta(ag, j);
}

/* ---- nodes of a job ---- */

static char *join_nodes(const struct agent_job *j, int with_addr)
{
	size_t len = 1, i;
	json_t *n;
	char *s;

	json_array_foreach(j->nodes, i, n)
		len += strlen(json_string_value(json_object_get(n, "name"))) + 2 +
		       (with_addr ? strlen(json_string_value(json_object_get(n, "addr"))) : 0);
	s = calloc(1, len);
	if (!s)
		return NULL;
	json_array_foreach(j->nodes, i, n) {
		if (i)
			strcat(s, ",");
		strcat(s, json_string_value(json_object_get(n, "name")));
		if (with_addr) {
			strcat(s, "=");
			strcat(s, json_string_value(json_object_get(n, "addr")));
		}
	}
	return s;
}

char *agent_job_agent_map(const struct agent_job *j)
{
	return join_nodes(j, 1);
}

char *agent_job_nodelist(const struct agent_job *j)
{
	return join_nodes(j, 0);
}

/* nodes must be well-formed for join_nodes() even when read back from disk. */
static int nodes_valid(const json_t *nodes)
{
	size_t i;
	json_t *n;

	if (!json_is_array(nodes))
		return 0;
	json_array_foreach(nodes, i, n)
		if (!json_is_string(json_object_get(n, "name")) ||
		    !json_is_string(json_object_get(n, "addr")) ||
		    !json_is_integer(json_object_get(n, "ranks")))
			return 0;
	return 1;
}

/* ---- LAUNCH ---- */

/* Hydra's host file: "host:nprocs" per line (malloc'ed, or NULL). */
static char *host_file(const struct agent_job *j, size_t *len)
{
	char *text = NULL;
	size_t i;
	json_t *n;
	FILE *mem = open_memstream(&text, len);

	if (!mem)
		return NULL;
	json_array_foreach(j->nodes, i, n)
		fprintf(mem, "%s:%lld\n", json_string_value(json_object_get(n, "name")),
			(long long)json_integer_value(json_object_get(n, "ranks")));
	return fclose(mem) ? (free(text), NULL) : text;
}

static int write_hosts(struct agent *ag, struct agent_job *j, char *why, size_t whylen)
{
	char dir[PATH_MAX], path[PATH_MAX], *text;
	size_t len = 0;
	int rc;

	rc = agent_job_dir(ag, j->id, dir, sizeof(dir));
	if (!rc)
		rc = hec_mkdir_p(ag->conf.state_dir, 0755);
	if (rc) {
		hec_fmt(why, whylen, "%s: state_dir %s: %s", ag->conf.name, ag->conf.state_dir,
		    strerror(-rc));
		return rc;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		rc = -errno;
		hec_fmt(why, whylen, "%s: mkdir %s: %s", ag->conf.name, dir, strerror(-rc));
		return rc;
	}
	text = host_file(j, &len);
	if (!text)
		return -ENOMEM;
	rc = hec_fmt(path, sizeof(path), "%s/hosts", dir);
	if (!rc)
		rc = write_job_file(j, path, text, len, 0644, 1);
	free(text);
	if (rc)
		hec_fmt(why, whylen, "%s: host file %s: %s", ag->conf.name, path, strerror(-rc));
	return rc;
}

static void reply_launched(struct agent *ag, long id, const char *error)
{
	json_t *b = json_pack("{s:I}", "job", (json_int_t)id);

	if (b && error)
		json_object_set_new(b, "error", json_string(error));
	agent_ctl_send(ag, HEC_MSG_LAUNCHED, b);
}

/*
 * MPICH's proxies connect back to mpiexec by the batch node's host name.
 * If that name does not resolve, Hydra waits for them forever: refuse the
 * job at once with the fix in the reason instead.
 */
static int batch_host_resolves(const struct agent *ag, const json_t *nodes, char *why, size_t len)
{
	const char *first = json_string_value(json_object_get(json_array_get(nodes, 0), "name"));
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int rc;

	if (!first || strcmp(first, ag->conf.name))
		return 1; /* not the batch node */
	rc = getaddrinfo(ag->hostname, NULL, &hints, &res);
	if (rc == 0) {
		freeaddrinfo(res);
		return 1;
	}
	hec_fmt(why, len, "%s: host name '%s' does not resolve (%s), so MPICH's proxies cannot reach mpiexec: add it to /etc/hosts",
	    ag->conf.name, ag->hostname, gai_strerror(rc));
	return 0;
}

/* This node runs the job's batch step (the first of LAUNCH's nodes). */
static int first_node(const struct agent *ag, const json_t *nodes)
{
	const char *first = json_string_value(json_object_get(json_array_get(nodes, 0), "name"));

	return first && !strcmp(first, ag->conf.name);
}

/* ---- restart from a checkpoint: the stream (LAUNCH's restore) ---- */

/* After QEMU failed to load, how long hec-store may take to say why (a
 * chunk or stream that failed its hash is the better reason). */
#define STORE_REASON_WAIT_MS 3000

struct job_restore {
	pid_t store_pid;           /* hec-store get, its own process group; 0 once reaped */
	int store_status;
	int err_fd;                /* its stderr, until EOF */
	struct event *err_ev;
	char err[4096];            /* the tail of its stderr */
	size_t err_len;
	int load_done, load_rc;    /* the driver's done() */
	char load_why[1024];
	int store_wait;            /* QEMU failed: 1 waiting for hec-store's word, 2 no more */
	int answered;              /* LAUNCHED sent */
	int loaded;                /* ... without an error: paused, waiting for RESUME */
	int resumed;
	struct event *timer;       /* hec-store's reason; then RESUME's instant */
	int64_t t0;
	long long epoch;
};

static void restore_free(struct agent_job *j)
{
	struct job_restore *r = j->rst;

	if (!r)
		return;
	/* A hec-store still feeding a guest that is going has nothing left to do. */
	if (r->store_pid > 0)
		kill(-r->store_pid, SIGKILL);
	if (r->err_ev)
		event_free(r->err_ev);
	if (r->err_fd >= 0)
		close(r->err_fd);
	if (r->timer)
		event_free(r->timer);
	free(r);
	j->rst = NULL;
}

/* hec-store's last line on stderr (a failure is one line), or "". */
static void store_last_line(struct job_restore *r, char *out, size_t len)
{
	size_t end = r->err_len, start;

	while (end > 0 && (r->err[end - 1] == '\n' || r->err[end - 1] == ' '))
		end--;
	for (start = end; start > 0 && r->err[start - 1] != '\n'; start--)
		;
	hec_fmt(out, len, "%.*s", (int)(end - start), r->err + start);
}

/* Read what hec-store says; \return 1 at EOF. */
static int store_err_drain(struct job_restore *r)
{
	for (;;) {
		ssize_t n;

		if (r->err_fd < 0)
			return 1;
		/* keep the tail: the last line is what counts */
		if (r->err_len > sizeof(r->err) / 2) {
			memmove(r->err, r->err + r->err_len - sizeof(r->err) / 4, sizeof(r->err) / 4);
			r->err_len = sizeof(r->err) / 4;
		}
		n = read(r->err_fd, r->err + r->err_len, sizeof(r->err) - 1 - r->err_len);
		if (n > 0) {
			r->err_len += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (r->err_ev)
			event_del(r->err_ev);
		close(r->err_fd);
		r->err_fd = -1;
		return 1;
	}
}

/*
 * The load's outcome, once both sides have spoken: QEMU loaded the state
 * (the driver's done) and hec-store exited 0 (every chunk's hash and the
 * stream's checked), or either failed.  hec-store's reason comes first:
 * its failure (a hash mismatch, a server lost) cuts the stream, and
 * QEMU's complaint about a short stream says less.  A failure leaves the
 * partition to KILL_JOB, as any failed launch.
 */
static void restore_decide(struct agent_job *j)
{
	struct agent *ag = j->ag;
	struct job_restore *r = j->rst;
	char line[1024], why[1200];
	int store_done = r->store_pid == 0 && r->err_fd < 0;
	int store_ok = store_done && WIFEXITED(r->store_status) && WEXITSTATUS(r->store_status) == 0;

	if (r->answered || j->killing)
		return;
	store_last_line(r, line, sizeof(line));
	if (store_done && !store_ok) {
		if (!line[0])
			hec_fmt(line, sizeof(line), "hec-store get %s %d",
				WIFSIGNALED(r->store_status) ? "was killed by signal" : "exited with status",
				WIFSIGNALED(r->store_status) ? WTERMSIG(r->store_status) :
							       WEXITSTATUS(r->store_status));
		hec_fmt(why, sizeof(why), "%s: the checkpoint's stream: %s", ag->conf.name, line);
	} else if (r->load_done && r->load_rc) {
		if (!store_done && r->store_wait < 2) {
			struct timeval tv = { STORE_REASON_WAIT_MS / 1000,
					      (STORE_REASON_WAIT_MS % 1000) * 1000 };

			if (!r->store_wait++)
				evtimer_add(r->timer, &tv);
			return; /* hec-store may yet say why */
		}
		hec_fmt(why, sizeof(why), "%s: %s", ag->conf.name, r->load_why);
	} else if (r->load_done && store_ok && !job_is_vm(j)) {
		r->answered = r->loaded = 1;
		evtimer_del(r->timer);
		agent_app_restore_ready(ag, j->id, r->epoch);
		hec_job_info(ag->conf.name, j->id,
			     "partition ready: checkpoint %lld fetched for the program in %lld ms (%s)",
			     r->epoch, (long long)((hec_now_mono_ns() - r->t0) / 1000000), line);
		agent_gang_job_ready(ag, j);
		reply_launched(ag, j->id, NULL);
		return;
	} else if (r->load_done && store_ok) {
		r->answered = r->loaded = 1;
		evtimer_del(r->timer);
		hec_job_info(ag->conf.name, j->id,
			     "partition ready: its guest is loaded from the checkpoint in %lld ms and waits for RESUME (%s)",
			     (long long)((hec_now_mono_ns() - r->t0) / 1000000), line);
		agent_gang_job_ready(ag, j);
		reply_launched(ag, j->id, NULL);
		return;
	} else {
		return; /* the other side has not spoken yet */
	}
	r->answered = 1;
	evtimer_del(r->timer);
	if (r->store_pid > 0)
		kill(-r->store_pid, SIGKILL);
	/* Nothing of a state that did not load may run: QEMU goes now, the
	 * partition with KILL_JOB. */
	j->part->ops->kill(j->part, NULL, 0);
	hec_job_err(ag->conf.name, j->id, "LAUNCH failed: %s", unprefixed(ag, why));
	reply_launched(ag, j->id, why);
}

static void store_err_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_job *j = arg;

	(void)fd;
	(void)what;
	if (store_err_drain(j->rst))
		restore_decide(j);
}

static void resume_now(struct agent_job *j);

static void restore_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_job *j = arg;

	(void)fd;
	(void)what;
	if (j->rst->loaded) {
		resume_now(j);
		return;
	}
	j->rst->store_wait = 2; /* hec-store said nothing in time: QEMU's reason */
	restore_decide(j);
}

/* hec-store as the agent finds its tools: beside hecd (the build tree
 * holds every program in one directory), else where it is installed. */
static int find_store(char *buf, size_t len)
{
	char self[PATH_MAX];

	if (hec_self_dir(self, sizeof(self)) == 0 && hec_fmt(buf, len, "%s/hec-store", self) == 0 &&
	    access(buf, X_OK) == 0)
		return 0;
	if (hec_fmt(buf, len, "%s/hec-store", HEC_BINDIR) == 0 && access(buf, X_OK) == 0)
		return 0;
	return -ENOENT;
}

/*
 * Start `hec-store get JOB EPOCH PART` for LAUNCH's @restore, its stdout
 * into a pipe whose read end is *@in_fd (for the guest), or into @to_fd
 * (>= 0: a proc job's checkpoint file), its stderr ours.
 * It checks every chunk's hash before writing its bytes, and the stream's
 * at the end (exit 1 and one line on a mismatch).
 */
static int restore_spawn(struct agent *ag, struct agent_job *j, const json_t *restore, int to_fd,
			 int *in_fd, char *why, size_t len)
{
	struct job_restore *r;
	char prog[PATH_MAX], job[32], epoch[32], replicas[16];
	const char *argv[20];
	int argc = 0, out[2] = { -1, -1 }, err[2] = { -1, -1 }, nullfd = -1, rc;
	const char *provider = json_string_value(json_object_get(restore, "provider"));
	sigset_t all, old;
	pid_t pid;

	if (find_store(prog, sizeof(prog))) {
		hec_fmt(why, len, "%s: hec-store is neither beside hecd nor in %s", ag->conf.name,
			HEC_BINDIR);
		return -ENOENT;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		hec_fmt(why, len, "%s: out of memory", ag->conf.name);
		return -ENOMEM;
	}
	r->err_fd = -1;
	r->t0 = hec_now_mono_ns();
	r->epoch = (long long)json_integer_value(json_object_get(restore, "epoch"));
	j->rst = r;
	hec_fmt(job, sizeof(job), "%ld", j->id);
	hec_fmt(epoch, sizeof(epoch), "%lld", (long long)json_integer_value(json_object_get(restore, "epoch")));
	hec_fmt(replicas, sizeof(replicas), "%lld",
		(long long)json_integer_value(json_object_get(restore, "replicas")));
	argv[argc++] = prog;
	argv[argc++] = "--servers";
	argv[argc++] = json_string_value(json_object_get(restore, "servers"));
	if (*ag->conf.key_file) {
		argv[argc++] = "--key-file";
		argv[argc++] = ag->conf.key_file;
	}
	argv[argc++] = "--replicas";
	argv[argc++] = replicas;
	if (provider) {
		argv[argc++] = "--provider";
		argv[argc++] = provider;
	}
	argv[argc++] = "get";
	argv[argc++] = job;
	argv[argc++] = epoch;
	argv[argc++] = json_string_value(json_object_get(restore, "part"));
	argv[argc] = NULL;

	if ((to_fd < 0 && pipe2(out, O_CLOEXEC)) || pipe2(err, O_CLOEXEC) ||
	    (nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		hec_fmt(why, len, "%s: pipe: %s", ag->conf.name, strerror(-rc));
		goto fail;
	}
	/* fewer wakeups for QEMU and hec-store on a stream of hundreds of MB */
	if (to_fd < 0)
		fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
	r->timer = evtimer_new(ag->base, restore_timer_cb, j);
	r->err_ev = event_new(ag->base, err[0], EV_READ | EV_PERSIST, store_err_cb, j);
	if (!r->timer || !r->err_ev) {
		rc = -ENOMEM;
		hec_fmt(why, len, "%s: out of memory", ag->conf.name);
		goto fail;
	}
	/* Blocked in the child too: our libevent handlers must not run there. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		hec_child_signals_default();
		/* its own group: KILL_JOB and a failed load end it whole */
		setpgid(0, 0);
		dup2(nullfd, 0);
		dup2(to_fd >= 0 ? to_fd : out[1], 1);
		dup2(err[1], 2);
		execv(prog, (char *const *)argv);
		dprintf(2, "cannot run %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	rc = pid < 0 ? -errno : 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		hec_fmt(why, len, "%s: fork: %s", ag->conf.name, strerror(-rc));
		goto fail;
	}
	setpgid(pid, pid); /* no race with a kill of its group */
	r->store_pid = pid;
	r->err_fd = err[0];
	err[0] = -1;
	evutil_make_socket_nonblocking(r->err_fd);
	event_add(r->err_ev, NULL);
	*in_fd = out[0];
	out[0] = -1;
	if (to_fd >= 0) /* nothing to feed: the fetch is the load */
		r->load_done = 1;
	hec_job_info(ag->conf.name, j->id, "restarting from checkpoint %s, stream %s: hec-store pid %d",
		     epoch, argv[argc - 1], (int)pid);
	rc = 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (nullfd >= 0)
		close(nullfd);
	if (rc)
		restore_free(j);
	return rc;
}

/* A child reaped: hec-store of a restart?  \return 1 if so. */
static int restore_reaped(struct agent *ag, pid_t pid, int status)
{
	for (struct agent_job *j = ag->jobs; j; j = j->next) {
		struct job_restore *r = j->rst;

		if (!r || r->store_pid != pid)
			continue;
		r->store_pid = 0;
		r->store_status = status;
		store_err_drain(r);
		if (r->err_fd >= 0) {
			/* a child of its own kept the pipe: its word is what we have */
			event_del(r->err_ev);
			close(r->err_fd);
			r->err_fd = -1;
		}
		restore_decide(j);
		return 1;
	}
	return 0;
}

static void agent_job_started(void *arg, int rc, const char *error);

void agent_job_on_launch(struct agent *ag, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	json_int_t uid = json_integer_value(json_object_get(body, "uid"));
	json_int_t gid = json_integer_value(json_object_get(body, "gid"));
	const char *key = json_string_value(json_object_get(body, "key"));
	json_t *nodes = json_object_get(body, "nodes");
	const char *kind = json_string_value(json_object_get(body, "partition"));
	const struct hec_partition_ops *ops = kind ? hec_part_driver(&ag->drivers, kind) : ag->ops;
	const json_t *restore = json_object_get(body, "restore");
	struct hec_partition *part = NULL;
	struct agent_job *j = agent_job_find(ag, id);
	char why[1024], vwhy[900] = "";
	char dir[PATH_MAX];
	int rc, made = 0, in_fd = -1;

	if (ag->shutting_down) {
		hec_fmt(why, sizeof(why), "%s: shutting down", ag->conf.name);
		goto refuse;
	}
	if (!agent_is_root() && uid != (json_int_t)getuid()) {
		hec_fmt(why, sizeof(why), "%s: hecd runs as uid %d, not root, and cannot run jobs of uid %lld",
		    ag->conf.name, (int)getuid(), (long long)uid);
		goto refuse;
	}
	if (!nodes_valid(nodes) || json_array_size(nodes) == 0) {
		hec_fmt(why, sizeof(why), "%s: LAUNCH without nodes", ag->conf.name);
		goto refuse;
	}
	if (!batch_host_resolves(ag, nodes, why, sizeof(why)))
		goto refuse;
	if (!ops) {
		hec_fmt(why, sizeof(why), "%s: partition kind '%s' is unknown here", ag->conf.name, kind);
		goto refuse;
	}
	if (j && j->killing) {
		hec_fmt(why, sizeof(why), "%s: job %ld is still being killed here", ag->conf.name, id);
		goto refuse;
	}
	if (restore && !(ops->start && ops->resume) &&
	    (!first_node(ag, nodes) ||
	     strcmp(json_string_value(json_object_get(restore, "part")), "app"))) {
		hec_fmt(why, sizeof(why), "%s: a %s partition starts from a checkpoint only on its first node, from part app",
		    ag->conf.name, ops->name);
		goto refuse;
	}
	if (j && ops->start) {
		/* A guest cannot be re-attached: a second LAUNCH is a new guest. */
		hec_fmt(why, sizeof(why), "%s: job %ld already has a partition here", ag->conf.name, id);
		goto refuse;
	}
	if (!j) {
		rc = ops->create(&ag->penv, id, &part, vwhy, sizeof(vwhy));
		if (rc == -EEXIST) /* left by a previous life of ours: reuse it */
			rc = ops->open(&ag->penv, id, &part, vwhy, sizeof(vwhy));
		if (rc) {
			hec_fmt(why, sizeof(why), "%s: %s: %s", ag->conf.name, vwhy, strerror(-rc));
			goto refuse;
		}
		j = agent_job_new(ag, id, part);
		if (!j) {
			ops->destroy(part, NULL, 0);
			ops->release(part);
			hec_fmt(why, sizeof(why), "%s: out of memory", ag->conf.name);
			goto refuse;
		}
		made = 1;
	}
	j->launched = 1;
	hec_fmt(j->key, sizeof(j->key), "%s", key);
	j->uid = (uid_t)uid;
	j->gid = (gid_t)gid;
	if (hec_user_groups(j->uid, j->gid, &j->groups) == -ENOENT && j->uid != 0)
		hec_job_warn(ag->conf.name, id, "uid %u has no passwd entry here: its processes run with group %u alone",
			     (unsigned)j->uid, (unsigned)j->gid);
	json_decref(j->nodes);
	j->nodes = json_deep_copy(nodes);
	if (!j->nodes) {
		hec_fmt(why, sizeof(why), "%s: out of memory", ag->conf.name);
		rc = -ENOMEM;
	} else {
		rc = write_hosts(ag, j, why, sizeof(why));
	}
	/* a proc job's program checkpoints through its first node's agent */
	if (!rc && !j->part->ops->start && first_node(ag, nodes))
		rc = agent_app_setup(ag, j, why, sizeof(why));
	if (!rc && restore && !j->part->ops->start) {
		int to_fd = -1;

		rc = agent_app_restore_open(ag, id, (long long)json_integer_value(json_object_get(restore, "epoch")),
					    &to_fd, why, sizeof(why));
		if (!rc)
			rc = restore_spawn(ag, j, restore, to_fd, &in_fd, why, sizeof(why));
		if (to_fd >= 0)
			close(to_fd);
	} else if (!rc && restore) {
		rc = restore_spawn(ag, j, restore, -1, &in_fd, why, sizeof(why));
	}
	if (!rc && j->part->ops->start) {
		struct hec_start_req req = {.dir = dir,
					    .uid = j->uid,
					    .gid = j->gid,
					    .groups = &j->groups,
					    .key = j->key,
					    .launch = (const struct json_t *)body,
					    .done = agent_job_started,
					    .arg = j,
					    .restore = restore != NULL,
					    .incoming_fd = in_fd};

		vwhy[0] = 0;
		if (agent_job_dir(ag, id, dir, sizeof(dir))) {
			hec_fmt(vwhy, sizeof(vwhy), "job directory: path too long");
			rc = -ENAMETOOLONG;
		} else {
			rc = hec_partition_start(j->part, &req, vwhy, sizeof(vwhy));
		}
		if (rc)
			hec_fmt(why, sizeof(why), "%s: %s", ag->conf.name, vwhy[0] ? vwhy : strerror(-rc));
	}
	/* the guest's QEMU holds the stream now (or nobody will) */
	if (in_fd >= 0)
		close(in_fd);
	if (rc) {
		restore_free(j);
		agent_app_job_gone(ag, id);
		if (made) {
			j->part->ops->destroy(j->part, NULL, 0);
			remove_job_dir(ag, id);
			agent_job_free(ag, j);
		}
		goto refuse;
	}
	hec_fault("agent.launch.made"); /* partition made, no job.json */
	save_meta(ag, j);
	if (j->part->ops->start) {
		hec_job_info(ag->conf.name, id,
			     "partition made; its %s machine is on its way (%zu nodes)",
			     j->part->ops->name, json_array_size(nodes));
		return; /* agent_job_started() replies */
	}
	if (j->rst)
		return; /* restore_decide() replies once the checkpoint is fetched */
	hec_job_info(ag->conf.name, id, "partition ready (uid %lld, %zu nodes)", (long long)uid,
		     json_array_size(nodes));
	agent_gang_job_ready(ag, j);
	hec_fault("agent.launch.after_save"); /* job.json kept, LAUNCHED not out */
	reply_launched(ag, id, NULL);
	return;

refuse:
	hec_job_err(ag->conf.name, id, "LAUNCH failed: %s", unprefixed(ag, why));
	reply_launched(ag, id, why);
}

/* The partition's machine is up, or could not come up (start's done). */
static void agent_job_started(void *arg, int rc, const char *error)
{
	struct agent_job *j = arg;
	struct agent *ag = j->ag;
	char why[1100];

	if (rc == -ECANCELED || j->killing)
		return; /* the partition is going: no LAUNCHED for it */
	if (j->rst) {
		/* loaded (paused) or not: LAUNCHED waits for hec-store's end too */
		j->rst->load_done = 1;
		j->rst->load_rc = rc;
		hec_fmt(j->rst->load_why, sizeof(j->rst->load_why), "%s", rc ? error : "");
		restore_decide(j);
		return;
	}
	if (rc) {
		/* The partition stays: the controller fails the job and KILL_JOB
		 * empties and removes it the usual way. */
		hec_fmt(why, sizeof(why), "%s: %s", ag->conf.name, error);
		hec_job_err(ag->conf.name, j->id, "LAUNCH failed: %s", error);
		reply_launched(ag, j->id, why);
		return;
	}
	hec_job_info(ag->conf.name, j->id,
		     "partition ready: its %s machine is up (uid %lld, %zu nodes)", j->part->ops->name,
		     (long long)j->uid, json_array_size(j->nodes));
	agent_gang_job_ready(ag, j);
	reply_launched(ag, j->id, NULL);
}

/* host->exited: the batch step in the guest ended, or the guest failed
 * (@error).  The batch step's end on the first node; on another node only
 * a guest failure comes here, and the controller fails the job for it. */
static void part_exited(void *arg, int code, int sig, const char *error)
{
	struct agent_job *j = arg;

	if (j->killing)
		return;
	if (j->rst && !j->rst->loaded) {
		/* before LAUNCHED: the launch fails (if it has not already) */
		if (!j->rst->answered) {
			j->rst->load_done = 1;
			j->rst->load_rc = -EIO;
			hec_fmt(j->rst->load_why, sizeof(j->rst->load_why), "%s",
				error ? error : "the guest ended while it was loaded");
			restore_decide(j);
		}
		return;
	}
	j->vm_running = 0;
	batch_ended(j->ag, j->id, code, sig, error);
}

/* host->gang_hold / gang_release: the driver switches the machine itself
 * for a while (a QMP-switched guest's capture), then gives it back. */
static void part_gang_hold(void *arg)
{
	struct agent_job *j = arg;

	hec_job_debug(j->ag->conf.name, j->id, "partition leaves the gang schedule for a while");
	agent_gang_job_forget(j->ag, j->id);
}

static void part_gang_release(void *arg)
{
	struct agent_job *j = arg;

	agent_gang_job_ready(j->ag, j);
}

void agent_jobs_host_init(struct agent *ag)
{
	ag->phost = (struct hec_part_host){
		.base = ag->base, .node = ag->conf.name, .qemu = ag->conf.qemu,
		.vm_kernel = ag->conf.vm_kernel, .image_cache = ag->conf.image_cache,
		.mkimage = ag->mkimage, .guest_bin = ag->guest_bin, .mpifix = ag->mpifix,
		.vm_switch = ag->vm_switch, .vm_hugepages = ag->vm_hugepages,
		.exited = part_exited, .gang_hold = part_gang_hold, .gang_release = part_gang_release,
	};
}

int agent_jobs_part_reaped(struct agent *ag, pid_t pid, int status)
{
	for (struct agent_job *j = ag->jobs; j; j = j->next)
		if (j->part && hec_partition_reaped(j->part, pid, status))
			return 1;
	return 0;
}

/* ---- START ---- */

/*
 * Open the batch step's output files as the job's user, in its directory,
 * so that the user's permissions apply: a forked helper drops privileges,
 * opens, and passes the descriptors back; @append: a restarted job's step
 * writes on after what it wrote before.  @why gets the reason on failure.
 */
struct open_result {
	int err;
	int stage; /* 0 chdir, 1 output, 2 error file */
};

/*
 * Runs as the job's user.  The default output directory is shared (mode
 * 1777), so a name there may have been prepared by someone else: never
 * follow a symbolic link, and refuse a regular file that another user owns
 * (it would hand them the job's output).
 */
static int open_output(const char *path, int append)
{
	/* (the job's output is its user's alone, as its catalog row is) */
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC |
				    (append ? O_APPEND : 0), 0600);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || (S_ISREG(st.st_mode) && st.st_uid != geteuid())) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	/* O_NONBLOCK only so that a FIFO without reader cannot hang us. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (S_ISREG(st.st_mode) && !append && ftruncate(fd, 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void __attribute__((noreturn))
open_child(int sock, const struct agent_job *j, const char *cwd, const char *out, const char *err,
	   int append)
{
	struct open_result r = { 0, 0 };
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { &r, sizeof(r) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[2] = { -1, -1 }, nfds = 0;

	if (agent_is_root() && (j->uid != getuid() || j->gid != getgid())) {
		if (hec_become_user(j->uid, j->gid, &j->groups)) {
			r.err = errno;
			goto send;
		}
	}
	if (chdir(cwd)) {
		r.err = errno;
		goto send;
	}
	r.stage = 1;
	fds[nfds] = open_output(out, append);
	if (fds[nfds] < 0) {
		r.err = errno;
		goto send;
	}
	nfds++;
	if (err && strcmp(err, out)) {
		r.stage = 2;
		fds[nfds] = open_output(err, append);
		if (fds[nfds] < 0) {
			r.err = errno;
			goto send;
		}
		nfds++;
	}
send:
	if (!r.err && nfds) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	_exit(sendmsg(sock, &mh, 0) < 0 ? 1 : 0);
}

static int open_as_user(struct agent *ag, const struct agent_job *j, const char *cwd, const char *out,
			const char *err, int append, int *out_fd, int *err_fd, char *why, size_t whylen)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct open_result r = { EIO, 0 };
	struct iovec iov = { &r, sizeof(r) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	sigset_t all, old;
	int sv[2], fds[2] = { -1, -1 }, nfds = 0;
	ssize_t n;
	pid_t pid;

	*out_fd = *err_fd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		hec_fmt(why, whylen, "%s: socketpair: %s", ag->conf.name, strerror(errno));
		return -errno;
	}
	/* Blocked in the child too: our libevent handlers must not run there. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		open_child(sv[1], j, cwd, out, err, append);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		hec_fmt(why, whylen, "%s: fork: %s", ag->conf.name, strerror(e));
		return -e;
	}
	do
		n = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	close(sv[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(r)) {
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				if (nfds > 2)
					nfds = 2;
				memcpy(fds, CMSG_DATA(cm), (size_t)nfds * sizeof(int));
			}
	} else {
		r.err = EIO;
	}
	if (!r.err && nfds >= 1) {
		*out_fd = fds[0];
		*err_fd = nfds == 2 ? fds[1] : -1;
		return 0;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (!r.err)
		r.err = EIO;
	if (r.stage == 0)
		hec_fmt(why, whylen, "%s: cannot enter directory %s: %s", ag->conf.name, cwd,
		    strerror(r.err));
	else
		hec_fmt(why, whylen, "%s: cannot open %s %s: %s", ag->conf.name,
		    r.stage == 1 ? "output" : "error file", r.stage == 1 ? out : err,
		    strerror(r.err));
	return -r.err;
}

static int build_env(struct agent *ag, struct agent_job *j, const json_t *env, long ntasks,
		     const char *hosts, struct envv *e)
{
	char num[32], *map = agent_job_agent_map(j), *list = agent_job_nodelist(j);
	size_t i;
	json_t *v;
	int rc = map && list ? 0 : -ENOMEM;

	json_array_foreach(env, i, v) {
		const char *kv = json_string_value(v);

		if (rc)
			break;
		if (strchr(kv, '=') && *kv != '=')
			rc = envv_add(e, kv);
	}
	hec_fmt(num, sizeof(num), "%ld", j->id);
	if (!rc)
		rc = envv_set(e, "HEC_JOB_ID", num);
	hec_fmt(num, sizeof(num), "%ld", ntasks);
	if (!rc)
		rc = envv_set(e, "HEC_NTASKS", num);
	if (!rc)
		rc = envv_set(e, "HEC_NODE", ag->conf.name);
	if (!rc)
		rc = envv_set(e, "HEC_JOB_NODELIST", list);
	if (!rc)
		rc = envv_set(e, "HEC_JOB_KEY", j->key);
	if (!rc)
		rc = envv_set(e, "HEC_AGENT_MAP", map);
	if (!rc)
		rc = envv_set(e, "HYDRA_HOST_FILE", hosts);
	if (!rc)
		rc = envv_set(e, "HYDRA_LAUNCHER", "rsh");
	if (!rc)
		rc = envv_set(e, "HYDRA_LAUNCHER_EXEC", ag->helper);
	if (!rc && ag->mpich_bin[0])
		rc = envv_path_first(e, ag->mpich_bin);
	free(map);
	free(list);
	return rc;
}

/*
 * vm partitions: the batch step runs inside the first guest, so mpiexec
 * and its proxies all live in the job's guests.  Hydra gets a host file
 * written in the guest and hec-guest's remote shell as its launcher.
 */
#define GUEST_HOSTFILE "/tmp/hec-hostfile"

static int start_in_guest(struct agent *ag, struct agent_job *j, const json_t *uargv, const char *script,
			  long ntasks, struct envv *env, const char *cwd, int out_fd, int err_fd,
			  char *why, size_t whylen)
{
	char *hosts = NULL, *prelude = NULL, *cmd = NULL, num[32], vwhy[900];
	size_t hlen, i;
	const char **argv = NULL;
	json_t *v;
	int argc = 0, rc = -ENOMEM;

	/* the same host file as the agent's, written in the guest */
	hosts = host_file(j, &hlen);
	if (!hosts || asprintf(&prelude, "cat >" GUEST_HOSTFILE " <<'HEC_HOSTS' || exit 1\n%sHEC_HOSTS\n",
			       hosts) < 0)
		prelude = NULL;
	argv = calloc(json_array_size(uargv) + 8, sizeof(*argv));
	if (!argv || !prelude)
		goto out;
	argv[argc++] = "/bin/sh";
	argv[argc++] = "-c";
	if (json_array_size(uargv) > 0) {
		hec_fmt(num, sizeof(num), "%ld", ntasks);
		if (asprintf(&cmd, "%sexec mpiexec -n %s \"$@\"", prelude, num) < 0)
			cmd = NULL;
		argv[argc++] = cmd;
		argv[argc++] = "hec-job";
		json_array_foreach(uargv, i, v)
			argv[argc++] = json_string_value(v);
	} else {
		if (asprintf(&cmd, "%s%s", prelude, script) < 0)
			cmd = NULL;
		argv[argc++] = cmd;
	}
	if (!cmd)
		goto out;
	rc = envv_set(env, "HYDRA_HOST_FILE", GUEST_HOSTFILE);
	if (!rc)
		rc = envv_set(env, "HYDRA_LAUNCHER_EXEC", "/bin/hec-rsh");
	if (rc)
		goto out;
	{
		struct hec_run_req req = { .argv = argv, .envp = (const char *const *)env->v,
					   .cwd = cwd, .uid = j->uid, .gid = j->gid,
					   .groups = &j->groups, .out_fd = out_fd, .err_fd = err_fd };

		rc = hec_partition_run(j->part, &req, vwhy, sizeof(vwhy));
	}
	if (rc)
		hec_fmt(why, whylen, "%s: %s", ag->conf.name, vwhy);
out:
	if (rc == -ENOMEM)
		hec_fmt(why, whylen, "%s: out of memory", ag->conf.name);
	free(hosts);
	free(prelude);
	free(cmd);
	free(argv);
	return rc;
}

/* START {restored}: the batch step runs on in the guest restarted from the
 * checkpoint; its output goes on at the end of the job's files. */
static void start_restored(struct agent *ag, struct agent_job *j, const char *cwd, const char *out,
			   const char *errf)
{
	struct hec_run_req req = { .cwd = cwd, .uid = j->uid, .gid = j->gid, .groups = &j->groups,
				   .attach = 1 };
	char why[PATH_MAX + 256], vwhy[900] = "";
	int out_fd = -1, err_fd = -1, rc;

	if (!job_is_vm(j) || !j->rst || !j->rst->loaded) {
		hec_fmt(why, sizeof(why), "%s: START of a restored batch step, but job %ld was not restarted from a checkpoint here",
		    ag->conf.name, j->id);
		goto fail;
	}
	rc = open_as_user(ag, j, cwd, out, errf, 1, &out_fd, &err_fd, why, sizeof(why));
	if (rc)
		goto fail;
	req.out_fd = out_fd;
	req.err_fd = err_fd;
	rc = hec_partition_run(j->part, &req, vwhy, sizeof(vwhy));
	close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	if (rc) {
		hec_fmt(why, sizeof(why), "%s: %s", ag->conf.name, vwhy[0] ? vwhy : strerror(-rc));
		goto fail;
	}
	j->vm_running = 1;
	save_meta(ag, j);
	hec_job_info(ag->conf.name, j->id,
		     "batch step of the checkpoint attached: its output goes on at the end of %s", out);
	return;

fail:
	hec_job_err(ag->conf.name, j->id, "restored batch step not attached: %s", unprefixed(ag, why));
	batch_ended(ag, j->id, 1, 0, why);
}

void agent_job_on_start(struct agent *ag, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	long ntasks = (long)json_integer_value(json_object_get(body, "ntasks"));
	const char *cwd = json_string_value(json_object_get(body, "cwd"));
	const char *out = json_string_value(json_object_get(body, "output"));
	const char *errf = json_string_value(json_object_get(body, "error"));
	const char *script = json_string_value(json_object_get(body, "script"));
	json_t *uargv = json_object_get(body, "argv"), *v;
	struct agent_job *j = agent_job_find(ag, id);
	char dir[PATH_MAX] = "", hosts[PATH_MAX], spath[PATH_MAX], num[32], why[PATH_MAX + 256];
	char st[PATH_MAX]; /* the keeper's status file */
	const char **argv = NULL;
	struct envv env = { 0 };
	int out_fd = -1, err_fd = -1, in_fd = -1, rc, code = 1;
	size_t i, argc = 0, kept = 0; /* kept: 2 with hec-keeper before the step's argv */
	pid_t pid;

	if (!j || !j->launched) {
		hec_fmt(why, sizeof(why), "%s: START for job %ld, which was not launched here",
		    ag->conf.name, id);
		goto fail;
	}
	if (j->killing) {
		hec_job_warn(ag->conf.name, id, "START while being killed, ignored");
		return;
	}
	/* kept by save_meta below (or batch_ended's, on a failure) */
	j->start_seen = 1;
	/* (the controller made it absolute; a relative one is not ours to judge) */
	hec_fmt(j->out_path, sizeof(j->out_path), "%s", out && *out == '/' ? out : "");
	hec_fmt(j->err_path, sizeof(j->err_path), "%s", errf && *errf == '/' ? errf : "");
	if (j->batch_pid || j->orphan_pid || j->orphan_unknown || j->vm_running ||
	    exit_find(ag, id)) {
		hec_job_warn(ag->conf.name, id, "START again, ignored: the batch step already ran");
		return;
	}
	if (json_is_true(json_object_get(body, "restored"))) {
		start_restored(ag, j, cwd, out, errf);
		return;
	}
	agent_job_dir(ag, id, dir, sizeof(dir));
	hec_fmt(hosts, sizeof(hosts), "%s/hosts", dir);

	argv = calloc(json_array_size(uargv) + 7, sizeof(*argv));
	if (!argv) {
		hec_fmt(why, sizeof(why), "%s: out of memory", ag->conf.name);
		goto fail;
	}
	if (json_array_size(uargv) > 0) {
		hec_fmt(num, sizeof(num), "%ld", ntasks);
		argv[argc++] = ag->conf.mpiexec;
		argv[argc++] = "-n";
		argv[argc++] = num;
		json_array_foreach(uargv, i, v)
			argv[argc++] = json_string_value(v);
	} else if (script) {
		hec_fmt(spath, sizeof(spath), "%s/script", dir);
		rc = write_job_file(j, spath, script, strlen(script), 0700, 1);
		if (rc) {
			hec_fmt(why, sizeof(why), "%s: cannot write batch script %s: %s",
			    ag->conf.name, spath, strerror(-rc));
			goto fail;
		}
		if (strncmp(script, "#!", 2))
			argv[argc++] = "/bin/sh";
		argv[argc++] = spath;
	} else {
		hec_fmt(why, sizeof(why), "%s: START without argv or script", ag->conf.name);
		goto fail;
	}

	rc = build_env(ag, j, json_object_get(body, "env"), ntasks, hosts, &env);
	if (!rc)
		rc = agent_app_env(ag, id, &env);
	if (rc) {
		hec_fmt(why, sizeof(why), "%s: out of memory", ag->conf.name);
		goto fail;
	}
	rc = open_as_user(ag, j, cwd, out, errf, agent_app_restarting(ag, id), &out_fd, &err_fd,
			  why, sizeof(why));
	if (rc)
		goto fail;
	if (job_is_vm(j)) {
		rc = start_in_guest(ag, j, uargv, script, ntasks, &env, cwd, out_fd, err_fd, why,
				    sizeof(why));
		if (rc)
			goto fail;
		j->vm_running = 1;
		save_meta(ag, j);
		hec_job_info(ag->conf.name, id, "batch step started in the guest");
		goto out;
	}
	if (ag->keeper[0]) {
		/* its parent is the keeper, whose word on its end outlives us */
		rc = hec_fmt(st, sizeof(st), "%s/step.status", dir);
		if (!rc)
			rc = write_job_file(j, st, "", 0, 0600, 1);
		if (rc) {
			hec_fmt(why, sizeof(why), "%s: cannot make %s: %s", ag->conf.name, st,
				strerror(-rc));
			goto fail;
		}
		memmove(argv + 2, argv, argc * sizeof(*argv));
		argv[0] = ag->keeper;
		argv[1] = st;
		argc += 2;
		kept = 2;
	}
	in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	{
		struct hec_spawn_req req = {
			.argv = argv, .envp = (const char *const *)env.v, .cwd = cwd,
			.uid = j->uid, .gid = j->gid, .groups = &j->groups, .stdin_fd = in_fd,
			.stdout_fd = out_fd,
			.stderr_fd = err_fd >= 0 ? err_fd : out_fd,
		};

		hec_fault("agent.start.before_spawn"); /* START had, not kept; no step */
		rc = j->part->ops->spawn(j->part, &req, &pid, NULL, 0);
	}
	if (rc) {
		/* Like a shell: 127 not found, 126 not runnable. */
		code = rc == -ENOENT ? 127 : rc == -EACCES || rc == -ENOEXEC ? 126 : 1;
		hec_fmt(why, sizeof(why), "%s: cannot start %s in %s: %s", ag->conf.name, argv[0],
		    cwd, strerror(-rc));
		goto fail;
	}
	j->batch_pid = pid;
	j->batch_start = hec_proc_start(pid);
	hec_fault("agent.start.after_spawn"); /* the step runs, job.json does not say */
	save_meta(ag, j);
	hec_job_info(ag->conf.name, id, "batch step started, pid %d%s: %s%s%s", (int)pid,
		     kept ? " (its keeper)" : "", argv[kept], argc > kept + 1 ? " " : "",
		     argc > kept + 1 ? argv[argc - 1] : "");
	goto out;

fail:
	hec_job_err(ag->conf.name, id, "batch step failed to start: %s", unprefixed(ag, why));
	batch_ended(ag, id, code, 0, why);
out:
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
	envv_free(&env);
	free(argv);
}

int agent_job_reaped(struct agent *ag, pid_t pid, int status)
{
	int code, sig;

	if (restore_reaped(ag, pid, status))
		return 1;
	for (struct agent_job *j = ag->jobs; j; j = j->next) {
		if (j->batch_pid != pid)
			continue;
		j->batch_pid = 0;
		j->batch_start = 0;
		agent_wait_status(status, &code, &sig);
		if (j->killing) {
			/* The controller already decided the outcome. */
			hec_job_debug(ag->conf.name, j->id, "batch step ended while being killed");
			return 1;
		}
		if (sig)
			hec_job_info(ag->conf.name, j->id, "batch step killed by signal %d", sig);
		else
			hec_job_info(ag->conf.name, j->id, "batch step exited with %d", code);
		batch_ended(ag, j->id, code, sig, NULL);
		return 1;
	}
	return 0;
}

/* ---- KILL_JOB ---- */

static void agent_job_gone(struct agent *ag, struct agent_job *j)
{
	long id = j->id;

	remove_job_dir(ag, id);
	agent_job_free(ag, j);
	hec_fault("agent.kill.before_gone"); /* partition and files gone, JOB_GONE not out */
	agent_ctl_send(ag, HEC_MSG_JOB_GONE, json_pack("{s:I}", "job", (json_int_t)id));
	if (ag->shutting_down && !ag->jobs)
		agent_finish(ag);
}

/* Poll until the partition is empty, then remove it (non-blocking for the loop). */
static void kill_tick(evutil_socket_t fd, short what, void *arg)
{
	struct agent_job *j = arg;
	struct agent *ag = j->ag;
	int64_t elapsed = hec_now_mono_ns() - j->kill_start_ns;
	char why[PATH_MAX + 64] = "";
	int n, rc;

	(void)fd;
	(void)what;
	n = j->part->ops->nprocs(j->part, why, sizeof(why));
	if (n != 0 && n != -ENOENT) {
		if (n < 0 && !j->kill_warned) {
			hec_job_err(ag->conf.name, j->id, "cannot count processes: %s: %s", why,
				    strerror(-n));
			j->kill_warned = 1;
		}
		if (++j->kill_ticks % 10 == 0)
			j->part->ops->kill(j->part, NULL, 0);
		if (elapsed > KILL_WARN_NS && !j->kill_warned) {
			hec_job_err(ag->conf.name, j->id,
				    "%d processes survive SIGKILL after %lld s; still trying", n,
				    (long long)(KILL_WARN_NS / 1000000000));
			j->kill_warned = 1;
		}
		if (!(ag->shutting_down && hec_now_mono_ns() - ag->shutdown_start_ns > SHUTDOWN_GIVE_UP_NS))
			return;
		hec_job_err(ag->conf.name, j->id, "giving up on its partition for shutdown");
	} else {
		rc = j->part->ops->destroy(j->part, why, sizeof(why));
		if (rc == -EBUSY && elapsed < KILL_WARN_NS)
			return; /* a process was still on its way out */
		if (rc)
			hec_job_err(ag->conf.name, j->id, "cannot remove partition: %s: %s", why,
				    strerror(-rc));
		else
			hec_job_info(ag->conf.name, j->id, "partition removed");
	}
	agent_job_gone(ag, j);
}

static void start_kill(struct agent *ag, struct agent_job *j)
{
	struct timeval tv = { 0, KILL_POLL_MS * 1000 };
	char why[PATH_MAX + 64] = "";
	int rc;

	if (j->killing)
		return;
	/* First, so that the slot dispatcher never touches a dying partition
	 * (no thaw needed: SIGKILL and cgroup.kill work on frozen groups). */
	agent_gang_job_forget(ag, j->id);
	agent_ckpt_job_gone(ag, j->id);
	agent_app_job_gone(ag, j->id);
	hec_partition_forget(j->part);
	bridges_close_net(ag, j->id);
	restore_free(j);
	j->killing = 1;
	j->kill_start_ns = hec_now_mono_ns();
	if (j->watch)
		event_del(j->watch);
	rc = j->part->ops->kill(j->part, why, sizeof(why));
	if (rc)
		hec_job_err(ag->conf.name, j->id, "kill: %s: %s", why, strerror(-rc));
	j->kill_timer = event_new(ag->base, -1, EV_PERSIST, kill_tick, j);
	if (!j->kill_timer || event_add(j->kill_timer, &tv)) {
		hec_job_err(ag->conf.name, j->id, "cannot poll its partition: out of memory");
		agent_job_gone(ag, j);
	}
}

/* A partition on disk we hold no handle for (previous life, half-made). */
static struct agent_job *open_unknown(struct agent *ag, long id, char *why, size_t len)
{
	struct hec_partition *part;
	struct agent_job *j;

	if (ag->ops->open(&ag->penv, id, &part, why, len))
		return NULL;
	j = agent_job_new(ag, id, part);
	if (!j) {
		ag->ops->release(part);
		hec_fmt(why, len, "out of memory");
	}
	return j;
}

void agent_job_on_kill(struct agent *ag, long id)
{
	struct agent_job *j = agent_job_find(ag, id);

	if (!j)
		j = open_unknown(ag, id, NULL, 0);
	if (!j) {
		/* Nothing here (never launched, or already gone): idempotent. */
		remove_job_dir(ag, id);
		agent_ctl_send(ag, HEC_MSG_JOB_GONE, json_pack("{s:I}", "job", (json_int_t)id));
		return;
	}
	if (j->killing)
		return; /* JOB_GONE follows when done */
	hec_job_info(ag->conf.name, id, "killing");
	start_kill(ag, j);
}

void agent_jobs_shutdown(struct agent *ag)
{
	long ids[MAX_ADOPT];
	int n;

	if (ag->shutting_down)
		return;
	ag->shutting_down = 1;
	ag->shutdown_start_ns = hec_now_mono_ns();
	/* Also whatever appeared on disk behind our back. */
	n = ag->ops->list(&ag->penv, ids, MAX_ADOPT, NULL, 0);
	for (int i = 0; i < n; i++)
		if (!agent_job_find(ag, ids[i]))
			open_unknown(ag, ids[i], NULL, 0);
	if (!ag->jobs) {
		agent_finish(ag);
		return;
	}
	for (struct agent_job *j = ag->jobs, *next; j; j = next) {
		next = j->next;
		start_kill(ag, j);
	}
}

/* ---- adoption after an agent restart ---- */

/*
 * The line hec-keeper wrote when the step ended: "exit CODE SIGNAL TIME_MS".
 * The file is the job's user's, so it says no more than the step's own exit
 * status could: checked for form and range, nothing else.
 * \return 0 with *@code, *@sig and *@when (ms, 0 unknown), or -errno.
 */
static int kept_status(struct agent *ag, const struct agent_job *j, int *code, int *sig,
		       long long *when)
{
	char dir[PATH_MAX], path[PATH_MAX], line[128], end;
	ssize_t n;
	int fd, c, s;
	long long t;

	if (agent_job_dir(ag, j->id, dir, sizeof(dir)) ||
	    hec_fmt(path, sizeof(path), "%s/step.status", dir))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return -ENODATA;
	line[n] = 0;
	if (sscanf(line, "exit %d %d %lld%c", &c, &s, &t, &end) != 4 || end != '\n' ||
	    c < 0 || c > 255 || s < 0 || s > 128 || (c && s) || t < 0)
		return -EBADMSG;
	*code = c;
	*sig = s;
	*when = t;
	return 0;
}

/* The batch step of a previous hecd still runs. */
static int orphan_runs(struct agent *ag, struct agent_job *j)
{
	unsigned long long start;
	int code, sig;
	long long when;

	if (j->orphan_pid) {
		start = hec_proc_start(j->orphan_pid);
		return start && (!j->batch_start || start == j->batch_start);
	}
	/* (its pid unknown: its keeper writes its end, then ends itself) */
	return kept_status(ag, j, &code, &sig, &when) &&
	       j->part->ops->nprocs(j->part, NULL, 0) > 0;
}

static void orphan_poll(evutil_socket_t fd, short what, void *arg)
{
	struct agent_job *j = arg;
	struct agent *ag = j->ag;
	pid_t pid = j->orphan_pid;
	int code, sig;
	long long when;

	(void)fd;
	(void)what;
	if (!j->orphan_pid && !j->orphan_unknown)
		return;
	if (orphan_runs(ag, j))
		return;
	j->orphan_pid = 0;
	j->orphan_unknown = 0;
	j->batch_start = 0;
	if (j->watch)
		event_del(j->watch);
	/* Not our child: its status went to whoever reaped it, and its
	 * keeper's line says what it was. */
	if (kept_status(ag, j, &code, &sig, &when) == 0) {
		if (sig)
			hec_job_info(ag->conf.name, j->id, "batch step of the previous hecd killed by signal %d (its keeper's word)", sig);
		else
			hec_job_info(ag->conf.name, j->id, "batch step of the previous hecd exited with %d (its keeper's word)", code);
		/* (when it ended, not when we noticed) */
		batch_ended_at(ag, j->id, code, sig, NULL, when / 1000);
		return;
	}
	hec_job_warn(ag->conf.name, j->id,
		     "batch step (pid %d) of the previous hecd ended; its exit status is unknown",
		     (int)pid); /* (0: its pid was not kept) */
	batch_ended(ag, j->id, 1, 0, "batch step ended while hecd was restarting; exit status unknown");
}

/*
 * A job whose machine outlived the previous hecd (a vm guest): its
 * partition, opened as the default driver's, is opened again with its own,
 * which connects to the machine and to the batch step running in it (its
 * output files reopened as the job's user).  A machine that is gone ends
 * the job's step now, with the reason: sent at REGISTER, it fails the job
 * (or restarts it from its checkpoint) rather than leave it RUNNING.
 */
static void reattach_guest(struct agent *ag, struct agent_job *j, const json_t *g)
{
	const char *kind = json_string_value(json_object_get(g, "partition"));
	const char *out = json_string_value(json_object_get(g, "output"));
	const char *errf = json_string_value(json_object_get(g, "error"));
	const struct hec_partition_ops *ops = kind ? hec_part_driver(&ag->drivers, kind) : NULL;
	struct hec_reattach_req req = { .key = j->key, .out_fd = -1, .err_fd = -1 };
	struct hec_partition *part;
	char dir[PATH_MAX], why[1024], vwhy[900] = "";
	int rc;

	if (!ops || ops == j->part->ops || !ops->reattach || agent_job_dir(ag, j->id, dir, sizeof(dir)))
		return;
	rc = ops->open(&ag->penv, j->id, &part, vwhy, sizeof(vwhy));
	if (rc) {
		hec_job_err(ag->conf.name, j->id, "cannot open its %s partition: %s: %s", kind, vwhy,
			    strerror(-rc));
		return; /* the default driver's handle can still kill it */
	}
	j->part->ops->release(j->part);
	j->part = part;
	part->host = &ag->phost;
	part->host_arg = j;
	if (exit_find(ag, j->id))
		return; /* over already: only its kill is to come */
	req.dir = dir;
	req.step = j->start_seen;
	if (req.step && (!out || *out != '/' ||
			 open_as_user(ag, j, "/", out, errf && *errf == '/' ? errf : NULL, 1, &req.out_fd,
				      &req.err_fd, why, sizeof(why))))
		hec_job_warn(ag->conf.name, j->id, "the output of its batch step is lost from now on: %s",
			     out && *out == '/' ? unprefixed(ag, why) : "its output file is not known");
	rc = hec_partition_reattach(part, &req, vwhy, sizeof(vwhy));
	hec_fmt(why, sizeof(why), "%s: %s", ag->conf.name, vwhy[0] ? vwhy : strerror(-rc));
	if (req.out_fd >= 0)
		close(req.out_fd);
	if (req.err_fd >= 0)
		close(req.err_fd);
	if (!rc) {
		j->vm_running = req.step;
		return;
	}
	hec_job_err(ag->conf.name, j->id, "its guest is lost: %s", unprefixed(ag, why));
	batch_ended(ag, j->id, 1, 0, why);
}

/* \return 0, -ENOENT without job.json, or -EBADMSG (the job can only be killed). */
static int load_meta(struct agent *ag, struct agent_job *j)
{
	char dir[PATH_MAX], path[PATH_MAX];
	json_error_t jerr;
	json_t *o, *x;
	const char *key;

	if (agent_job_dir(ag, j->id, dir, sizeof(dir)))
		return -ENAMETOOLONG;
	hec_fmt(path, sizeof(path), "%s/job.json", dir);
	o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		if (access(path, F_OK))
			return -ENOENT;
		hec_job_warn(ag->conf.name, j->id, "%s: %s; the job can only be killed",
			     path, jerr.text);
		return -EBADMSG;
	}
	key = json_string_value(json_object_get(o, "key"));
	if (!key || strlen(key) >= sizeof(j->key) || !nodes_valid(json_object_get(o, "nodes")) ||
	    !json_is_integer(json_object_get(o, "uid")) || !json_is_integer(json_object_get(o, "gid"))) {
		hec_job_warn(ag->conf.name, j->id, "%s is malformed; the job can only be killed",
			     path);
		json_decref(o);
		return -EBADMSG;
	}
	j->launched = 1;
	strcpy(j->key, key);
	j->uid = (uid_t)json_integer_value(json_object_get(o, "uid"));
	j->gid = (gid_t)json_integer_value(json_object_get(o, "gid"));
	(void)hec_user_groups(j->uid, j->gid, &j->groups);
	j->nodes = json_incref(json_object_get(o, "nodes"));
	j->start_seen = json_is_true(json_object_get(o, "started"));
	x = json_object_get(o, "exit");
	if (json_is_object(x)) {
		const char *e = json_string_value(json_object_get(x, "error"));
		int code = (int)json_integer_value(json_object_get(x, "exit"));
		int sig = (int)json_integer_value(json_object_get(x, "signal"));

		struct exit_rec *r;

		add_exit(ag, j->id, code < 0 || code > 255 ? 1 : code, sig < 0 || sig > 128 ? 0 : sig, e);
		/* (when it ended, not when this agent life read it) */
		if ((r = exit_find(ag, j->id)) && json_integer_value(json_object_get(x, "time")) > 0)
			r->time = (long long)json_integer_value(json_object_get(x, "time"));
	} else if (json_integer_value(json_object_get(o, "batch_pid")) > 0) {
		j->orphan_pid = (pid_t)json_integer_value(json_object_get(o, "batch_pid"));
		j->batch_start = (unsigned long long)json_integer_value(json_object_get(o, "batch_start"));
	} else if (json_integer_value(json_object_get(o, "batch_pid")) == -1) {
		j->orphan_unknown = 1;
	}
	reattach_guest(ag, j, json_object_get(o, "guest"));
	json_decref(o);
	return 0;
}

/*
 * A partition without job.json is a LAUNCH cut short by our death: LAUNCHED
 * goes out only once job.json is written, so START never came and nothing
 * of the user's ran there.  Reported, it would pass for launched (and START
 * find no job here); removed, the controller launches the job again.
 * \return 1 if removed.
 */
static int drop_unlaunched(struct agent *ag, struct agent_job *j)
{
	char why[PATH_MAX + 64] = "";
	int rc;

	j->part->ops->kill(j->part, NULL, 0);
	rc = j->part->ops->destroy(j->part, why, sizeof(why));
	if (rc) {
		hec_job_err(ag->conf.name, j->id, "partition of a LAUNCH cut short: cannot remove it: %s: %s; killing it",
			    why, strerror(-rc));
		start_kill(ag, j);
		return 0;
	}
	hec_job_info(ag->conf.name, j->id, "partition of a LAUNCH cut short by hecd's death removed");
	remove_job_dir(ag, j->id);
	agent_job_free(ag, j);
	return 1;
}

/*
 * A step spawned just before the previous hecd died, which job.json does
 * not name (START not kept): step.status, made just before the spawn, says
 * whether it ran.  Its keeper's line: it ended; processes in the partition:
 * it runs (watched as an orphan, its pid unknown); neither: it never
 * started, and the controller requeues the job.
 */
static void adopt_unkept_step(struct agent *ag, struct agent_job *j)
{
	int code, sig, rc;
	long long when;

	if (j->start_seen || j->orphan_pid || j->orphan_unknown || exit_find(ag, j->id))
		return;
	rc = kept_status(ag, j, &code, &sig, &when);
	if (rc == -ENOENT)
		return; /* no step was spawned here */
	if (rc != -ENODATA || j->part->ops->nprocs(j->part, NULL, 0) > 0) {
		hec_job_info(ag->conf.name, j->id, "batch step of the previous hecd found (its pid was not kept)");
		j->start_seen = 1;
		j->orphan_unknown = 1;
		save_meta(ag, j);
		return;
	}
	hec_job_info(ag->conf.name, j->id, "the previous hecd died before the batch step's spawn");
}

void agent_jobs_adopt(struct agent *ag)
{
	long ids[MAX_ADOPT];
	char why[PATH_MAX + 64] = "";
	int n = ag->ops->list(&ag->penv, ids, MAX_ADOPT, why, sizeof(why));

	if (n < 0) {
		hec_err("%s: cannot list partitions: %s: %s", ag->conf.name, why, strerror(-n));
		return;
	}
	for (int i = 0; i < n; i++) {
		struct agent_job *j;
		struct timeval tv = { 1, 0 };
		int rc;

		why[0] = 0;
		j = open_unknown(ag, ids[i], why, sizeof(why));
		if (!j) {
			hec_job_err(ag->conf.name, ids[i], "cannot open its partition: %s", why);
			continue;
		}
		rc = load_meta(ag, j);
		if (rc == -ENOENT && drop_unlaunched(ag, j))
			continue;
		hec_job_info(ag->conf.name, j->id,
			     "partition found from a previous run (%d processes)",
			     ag->ops->nprocs(j->part, NULL, 0));
		if (!rc)
			adopt_unkept_step(ag, j);
		if (!rc && first_node(ag, j->nodes))
			agent_app_adopt(ag, j);
		if (!j->orphan_pid && !j->orphan_unknown)
			continue;
		j->watch = event_new(ag->base, -1, EV_PERSIST, orphan_poll, j);
		if (j->watch)
			event_add(j->watch, &tv);
		orphan_poll(-1, 0, j); /* it may be gone already */
	}
}

/* ---- RESUME: a restarted job's guests run ---- */

static void resume_now(struct agent_job *j)
{
	struct agent *ag = j->ag;
	char why[1024], vwhy[900] = "";
	int rc;

	if (j->killing || j->rst->resumed)
		return;
	j->rst->resumed = 1;
	rc = hec_partition_resume(j->part, vwhy, sizeof(vwhy));
	if (!rc) {
		hec_job_info(ag->conf.name, j->id, "restored guest resumes");
		return;
	}
	/* a guest that cannot run fails the job, as a guest failure does */
	hec_fmt(why, sizeof(why), "%s: resume: %s", ag->conf.name, vwhy[0] ? vwhy : strerror(-rc));
	hec_job_err(ag->conf.name, j->id, "%s", unprefixed(ag, why));
	j->vm_running = 0;
	batch_ended(ag, j->id, 1, 0, why);
}

void agent_job_on_resume(struct agent *ag, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	int64_t t = (int64_t)json_integer_value(json_object_get(body, "t")), at, wait;
	struct agent_job *j = agent_job_find(ag, id);
	struct timeval tv;

	if (!j || j->killing || !j->rst || !j->rst->loaded) {
		hec_job_warn(ag->conf.name, id, "RESUME ignored: %s",
			     !j || j->killing ? "no partition here" :
			     !j->rst ? "the partition was not restarted from a checkpoint" :
				       "its guest is not loaded");
		return;
	}
	if (j->rst->resumed || evtimer_pending(j->rst->timer, NULL))
		return; /* the controller said it before */
	if (agent_gang_ctl_to_mono(ag, t, &at)) {
		hec_job_warn(ag->conf.name, id, "RESUME: no clock estimate of the controller yet; resuming now");
		at = hec_now_mono_ns();
	}
	wait = at - hec_now_mono_ns();
	if (wait <= 0) {
		if (wait < -1000000)
			hec_job_warn(ag->conf.name, id, "RESUME came %.1f ms after its instant",
				     (double)-wait / 1e6);
		resume_now(j);
		return;
	}
	tv = (struct timeval){ (time_t)(wait / 1000000000), (suseconds_t)(wait % 1000000000 / 1000) };
	evtimer_add(j->rst->timer, &tv);
	hec_job_debug(ag->conf.name, id, "restored guest resumes in %.3f ms", (double)wait / 1e6);
}
