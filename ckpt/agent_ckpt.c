/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The agent's side of a coordinated checkpoint (doc/design.md, "Checkpoint
 * and restart"; doc/protocol.md, "checkpoints"), all on hecd's event loop.
 *
 * CKPT_PREPARE {t}: the job's guest here must be up.  The stream's writer,
 * `hec-store put JOB EPOCH PART`, starts at once (its own process group,
 * reading a pipe), so that it has reached the storage servers by the
 * instant T, which a timer waits for on our clock (the gang clock's
 * offset).  At T: the job network is held at the guest (net_hold, first:
 * the consistent cut needs the hold before the capture), then the
 * capture writes the guest into the pipe.  The driver's captured() gives
 * CKPT_CAPTURED, its progress CKPT_PROGRESS; once the capture is done and
 * the writer has exited 0 with the stream's manifest entry on its output,
 * CKPT_STORED.  The hold lasts until CKPT_REOPEN (every guest of the job
 * is captured), CKPT_ABORT, a failure here or timeout_ms.
 *
 * Any failure answers once, with one line (CKPT_CAPTURED {error} before the
 * capture, CKPT_STORED {error} after), kills the writer's process group,
 * cancels the capture and releases the hold; the controller removes what
 * the writer stored.  A checkpoint's record stays until the capture's
 * done() and the writer's exit have come (both always do), so no callback
 * ever finds it freed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>

#include "hec/common.h"
#include "hec/fault.h"
#include "hec/msg.h"
#include "agent/agent.h"

#define OUT_MAX (64u << 20)       /* the entry: about 40 bytes per chunk of the stream */
#define ERR_TAIL 4096
#define PIPE_SIZE (1 << 20)       /* the stream's pipe: fewer wakeups at GB/s */
#define REAP_GRACE_MS 2000        /* output still open after the exit: enough */
/* The longest the job network is held without CKPT_REOPEN: the controller
 * waits 60 s for every CAPTURED; past that the checkpoint is lost anyway,
 * and a job must not stay cut off for the stream's whole timeout. */
#define HOLD_MAX_MS 65000

extern char **environ;

struct agent_ckpt {
	struct agent_ckpt *next;
	struct agent *ag;
	long job;
	long long epoch;
	char part[65];
	char image[65];
	int app;                      /* kind "app": a proc job's program writes the file (agent_app.c) */
	json_t *prep;                 /* app: CKPT_PREPARE, for the writer started at `written` */
	int64_t off;                  /* controller time - our CLOCK_MONOTONIC */
	int64_t t_local;              /* T on our CLOCK_MONOTONIC */
	long timeout_ms;
	struct event *at_ev;          /* T */
	struct event *limit_ev;       /* timeout_ms after PREPARE */
	struct event *hold_ev;        /* HOLD_MAX_MS after the hold began */

	int held;                     /* the job network is held at the guest */
	int reopened;                 /* CKPT_REOPEN came */
	int ended;                    /* answered (failure, STORED) or aborted: nothing more is said */
	int gone;                     /* the job's partition is going: its capture ends with it */

	/* the stream's writer: hec-store put */
	pid_t pid;
	int reaped, status;
	int stream_w;                 /* the pipe's write end, until the capture has it */
	int stream_r;                 /* its read end: drained once the writer is gone */
	struct event *drain_ev;
	int out_fd, err_fd;
	struct event *out_ev, *err_ev, *grace_ev;
	char *out;
	size_t outlen, outcap;
	char err[ERR_TAIL];
	size_t errlen;

	/* the capture */
	int capturing;                /* capture() began and its done() has not come */
	int cap_done, cap_rc;
	char cap_why[512];
	int captured;
	long long pause_ns, whole_pause_ns; /* whole: -1 unless the guest stayed stopped */
	long long whole_slot_ns;      /* the part of the whole pause in the job's slots */
	int64_t cap_start_ns;
};

static struct agent_ckpt *ck_find(struct agent *ag, long job, long long epoch)
{
	for (struct agent_ckpt *c = ag->ckpts; c; c = c->next)
		if (c->job == job && (epoch < 0 || c->epoch == epoch))
			return c;
	return NULL;
}

/* A checkpoint of @job that still runs here, or still holds the network
 * or the guest's capture (an ended one whose capture writes to its end). */
static struct agent_ckpt *ck_busy(struct agent *ag, long job)
{
	for (struct agent_ckpt *c = ag->ckpts; c; c = c->next)
		if (c->job == job && (!c->ended || c->held || c->capturing))
			return c;
	return NULL;
}

/* The job's partition, unless it is going. */
static struct hec_partition *ck_part(struct agent_ckpt *c)
{
	struct agent_job *j = agent_job_find(c->ag, c->job);

	return j && j->launched && !j->killing ? j->part : NULL;
}

static void ev_drop(struct event **ev);

static void hold_release(struct agent_ckpt *c)
{
	struct hec_partition *p;

	ev_drop(&c->hold_ev);
	if (!c->held)
		return;
	c->held = 0;
	p = ck_part(c);
	if (p)
		hec_partition_net_hold(p, 0, NULL, 0);
}

static int writer_finished(const struct agent_ckpt *c)
{
	return !c->pid || (c->reaped && c->out_fd < 0 && c->err_fd < 0);
}

static void ev_drop(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

static void fd_drop(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void ck_free(struct agent_ckpt *c)
{
	ev_drop(&c->at_ev);
	ev_drop(&c->limit_ev);
	ev_drop(&c->hold_ev);
	ev_drop(&c->out_ev);
	ev_drop(&c->err_ev);
	ev_drop(&c->grace_ev);
	ev_drop(&c->drain_ev);
	fd_drop(&c->stream_w);
	fd_drop(&c->stream_r);
	fd_drop(&c->out_fd);
	fd_drop(&c->err_fd);
	json_decref(c->prep);
	free(c->out);
	free(c);
}

/* Gone once it has said all, holds nothing, and nothing of it runs. */
static void ck_maybe_free(struct agent_ckpt *c)
{
	struct agent_ckpt **pp;

	if (!c->ended || c->held || c->capturing || !writer_finished(c))
		return;
	for (pp = &c->ag->ckpts; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ck_free(c);
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;
	char buf[65536];
	ssize_t n;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		;
	if (n < 0 && errno == EAGAIN)
		return;
	ev_drop(&c->drain_ev);
	fd_drop(&c->stream_r);
}

/*
 * The stream goes nowhere from now on.  A capture under way still writes
 * to its end (a failed or cancelled background snapshot would leave the
 * guest hanging in QEMU 7.2: partition/vm/capture.c, vm_cancel), so the
 * pipe is drained here until the capture is done; it never breaks under
 * QEMU.
 */
static void stream_drop(struct agent_ckpt *c)
{
	fd_drop(&c->stream_w);
	if (c->stream_r < 0 || c->drain_ev)
		return;
	if (!c->capturing) {
		fd_drop(&c->stream_r);
		return;
	}
	/* the writer is gone or killed: the file description is ours alone */
	evutil_make_socket_nonblocking(c->stream_r);
	c->drain_ev = event_new(c->ag->base, c->stream_r, EV_READ | EV_PERSIST, on_drain, c);
	if (!c->drain_ev || event_add(c->drain_ev, NULL))
		hec_job_err(c->ag->conf.name, c->job,
			    "checkpoint %lld: cannot drain the capture's stream: out of memory", c->epoch);
}

/* Kill the writer, cancel the capture, release the hold. */
static void ck_stop(struct agent_ckpt *c)
{
	struct hec_partition *p;

	ev_drop(&c->at_ev);
	/* The writer first: once QEMU's end of the pipe closes, a live writer
	 * would read a cut stream as a whole one. */
	if (c->pid > 0 && !c->reaped)
		kill(-c->pid, SIGKILL);
	stream_drop(c);
	if (c->capturing && !c->gone && (p = ck_part(c)))
		hec_partition_cancel(p);
	hold_release(c);
	if (c->app)
		agent_app_end(c->ag, c->job, c->epoch, 0);
}

static void send_error(struct agent_ckpt *c, const char *why)
{
	struct agent *ag = c->ag;

	if (!c->captured)
		agent_ctl_send(ag, HEC_MSG_CKPT_CAPTURED,
			       json_pack("{s:I,s:I,s:s}", "job", (json_int_t)c->job, "epoch",
					 (json_int_t)c->epoch, "error", why));
	else
		agent_ctl_send(ag, HEC_MSG_CKPT_STORED,
			       json_pack("{s:I,s:I,s:s,s:s}", "job", (json_int_t)c->job, "epoch",
					 (json_int_t)c->epoch, "part", c->part, "error", why));
}

/* The checkpoint failed here: said once, then everything of it stops. */
static void ck_fail(struct agent_ckpt *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ck_fail(struct agent_ckpt *c, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	if (c->ended)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	c->ended = 1;
	hec_job_warn(c->ag->conf.name, c->job, "checkpoint %lld failed %s: %s", c->epoch,
		     c->captured ? "after the capture" : "before the capture", why);
	send_error(c, why);
	ck_stop(c);
	ck_maybe_free(c);
}

/* The writer's last line on stderr (its error, or its figures). */
static const char *err_last_line(struct agent_ckpt *c)
{
	char *e;

	c->err[c->errlen < sizeof(c->err) ? c->errlen : sizeof(c->err) - 1] = 0;
	while (c->errlen && (c->err[c->errlen - 1] == '\n' || c->err[c->errlen - 1] == '\r'))
		c->err[--c->errlen] = 0;
	e = strrchr(c->err, '\n');
	return e ? e + 1 : c->err;
}

/* The capture is done and the writer has exited 0: the stream is stored. */
static void ck_stored(struct agent_ckpt *c)
{
	json_t *entry = NULL, *body;
	char *line, *save = NULL;
	long long bytes, ms;
	double secs;

	c->out[c->outlen] = 0;
	for (line = strtok_r(c->out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (*line == '{') {
			json_decref(entry);
			entry = json_loads(line, 0, NULL);
		}
	if (!json_is_object(entry) || !json_is_integer(json_object_get(entry, "size"))) {
		json_decref(entry);
		ck_fail(c, "hec-store put printed no manifest entry");
		return;
	}
	bytes = (long long)json_integer_value(json_object_get(entry, "size"));
	ms = (hec_now_mono_ns() - c->cap_start_ns) / 1000000;
	secs = ms > 0 ? (double)ms / 1000 : 0.001;
	body = json_pack("{s:I,s:I,s:s,s:I,s:I,s:o,s:s}", "job", (json_int_t)c->job, "epoch",
			 (json_int_t)c->epoch, "part", c->part, "bytes", (json_int_t)bytes, "ms",
			 (json_int_t)ms, "entry", entry, "image", c->image);
	if (body && c->whole_pause_ns >= 0) {
		json_object_set_new(body, "pause_us", json_integer(c->whole_pause_ns / 1000));
		json_object_set_new(body, "slot_pause_us", json_integer(c->whole_slot_ns / 1000));
	}
	c->ended = 1;
	hec_job_info(c->ag->conf.name, c->job,
		     "checkpoint %lld: stored %s: %lld bytes in %.2f s (%.0f MB/s)%s", c->epoch,
		     c->part, bytes, secs, (double)bytes / secs / 1e6,
		     c->whole_pause_ns >= 0 ? ", the guest stopped throughout" : "");
	hec_fault("agent.ckpt.stored"); /* the stream stored, CKPT_STORED not out */
	if (body)
		agent_ctl_send(c->ag, HEC_MSG_CKPT_STORED, body);
	else
		send_error(c, "out of memory");
	if (c->app) /* stored: the program's file has done its work */
		agent_app_end(c->ag, c->job, c->epoch, 1);
	ck_maybe_free(c);
}

/* Either the capture's end or the writer's may come first. */
static void ck_progress_end(struct agent_ckpt *c)
{
	int code, sig;

	if (c->ended) {
		ck_maybe_free(c);
		return;
	}
	if (writer_finished(c) && c->pid) {
		agent_wait_status(c->status, &code, &sig);
		if (sig || code) {
			const char *last = err_last_line(c);

			if (*last)
				ck_fail(c, "%s", last);
			else if (sig)
				ck_fail(c, "hec-store was killed by signal %d", sig);
			else
				ck_fail(c, "hec-store exited with status %d", code);
			return;
		}
		if (!c->capturing && !c->cap_done) {
			ck_fail(c, "hec-store ended before the capture began: %s", err_last_line(c));
			return;
		}
	}
	if (c->ended || !c->cap_done || !writer_finished(c))
		return;
	ck_stored(c);
}

/* ---- the capture's callbacks (from the driver, on the loop) ---- */

/*
 * What the capture took of the job's own slots: the part of the time it
 * kept the vCPUs stopped that falls in them (all of it for a job that does
 * not time-share here).  An off-slot capture takes nothing: the gang had
 * the guest stopped anyway.
 */
static void on_captured(void *arg, const struct hec_capture_fix *fix)
{
	struct agent_ckpt *c = arg;
	int64_t now = hec_now_mono_ns(), fixed, slot_ns;

	if (c->ended || c->captured)
		return;
	c->captured = 1;
	c->pause_ns = fix->pause_ns;
	fixed = fix->held_from_ns ? fix->held_from_ns : now - fix->pause_ns;
	slot_ns = fix->held_to_ns > fix->held_from_ns && fix->held_from_ns ?
		  agent_gang_own_ns(c->ag, c->job, fix->held_from_ns, fix->held_to_ns) :
		  fix->pause_ns;
	hec_job_info(c->ag->conf.name, c->job,
		     "checkpoint %lld: captured %.1f ms after T%s, the guest's vCPUs paused %.3f ms, %.3f ms of it in the job's slots",
		     c->epoch, (double)(fixed - c->t_local) / 1e6,
		     fix->switched_out ? " while switched out" : "", (double)fix->pause_ns / 1e6,
		     (double)slot_ns / 1e6);
	agent_ctl_send(c->ag, HEC_MSG_CKPT_CAPTURED,
		       json_pack("{s:I,s:I,s:I,s:I,s:b,s:I}", "job", (json_int_t)c->job, "epoch",
				 (json_int_t)c->epoch, "pause_us", (json_int_t)(fix->pause_ns / 1000),
				 "slot_pause_us", (json_int_t)(slot_ns / 1000), "switched_out",
				 fix->switched_out, "at", (json_int_t)(fixed + c->off)));
}

static void on_cap_progress(void *arg, unsigned long long bytes)
{
	struct agent_ckpt *c = arg;

	if (!c->ended)
		agent_ctl_send(c->ag, HEC_MSG_CKPT_PROGRESS,
			       json_pack("{s:I,s:I,s:I}", "job", (json_int_t)c->job, "epoch",
					 (json_int_t)c->epoch, "bytes", (json_int_t)bytes));
}

static void on_paused(void *arg, long long pause_ns)
{
	struct agent_ckpt *c = arg;
	int64_t now = hec_now_mono_ns();

	c->whole_pause_ns = pause_ns;
	c->whole_slot_ns = agent_gang_own_ns(c->ag, c->job, now - pause_ns, now);
}

static void on_cap_done(void *arg, int rc, const char *why)
{
	struct agent_ckpt *c = arg;

	c->capturing = 0;
	c->cap_done = 1;
	c->cap_rc = rc;
	/* nothing writes to the pipe any more */
	ev_drop(&c->drain_ev);
	fd_drop(&c->stream_r);
	hec_fmt(c->cap_why, sizeof(c->cap_why), "%s", why ? why : rc ? strerror(-rc) : "");
	if (rc && !c->ended) {
		ck_fail(c, "the capture: %s", c->cap_why);
		return;
	}
	ck_progress_end(c);
}

/* ---- the writer: hec-store put ---- */

static void writer_read(struct agent_ckpt *c, int *fd, struct event **ev, int is_err)
{
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = read(*fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		if (is_err) {
			/* the tail: its last line is what failed */
			if ((size_t)n >= sizeof(c->err) - 1) {
				memcpy(c->err, buf + n - (sizeof(c->err) - 1), sizeof(c->err) - 1);
				c->errlen = sizeof(c->err) - 1;
			} else {
				if (c->errlen + (size_t)n > sizeof(c->err) - 1) {
					size_t drop = c->errlen + (size_t)n - (sizeof(c->err) - 1);

					memmove(c->err, c->err + drop, c->errlen - drop);
					c->errlen -= drop;
				}
				memcpy(c->err + c->errlen, buf, (size_t)n);
				c->errlen += (size_t)n;
			}
		} else if (c->outlen + (size_t)n < OUT_MAX) {
			if (c->outlen + (size_t)n + 1 > c->outcap) {
				size_t cap = c->outcap * 2;
				char *grown;

				while (cap < c->outlen + (size_t)n + 1)
					cap *= 2;
				grown = realloc(c->out, cap);
				if (!grown)
					continue; /* the entry will be found missing */
				c->out = grown;
				c->outcap = cap;
			}
			memcpy(c->out + c->outlen, buf, (size_t)n);
			c->outlen += (size_t)n;
		}
	}
	ev_drop(ev);
	fd_drop(fd);
	if (c->reaped)
		ck_progress_end(c);
}

static void on_out(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;

	(void)fd;
	(void)what;
	writer_read(c, &c->out_fd, &c->out_ev, 0);
}

static void on_err(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;

	(void)fd;
	(void)what;
	writer_read(c, &c->err_fd, &c->err_ev, 1);
}

/* The writer exited a while ago and something still holds its output
 * open (a child forked by the agent meanwhile): what came is enough. */
static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;

	(void)fd;
	(void)what;
	ev_drop(&c->out_ev);
	ev_drop(&c->err_ev);
	fd_drop(&c->out_fd);
	fd_drop(&c->err_fd);
	ck_progress_end(c);
}

int agent_ckpt_reaped(struct agent *ag, pid_t pid, int status)
{
	struct timeval tv = { REAP_GRACE_MS / 1000, (REAP_GRACE_MS % 1000) * 1000 };

	for (struct agent_ckpt *c = ag->ckpts; c; c = c->next) {
		if (c->pid != pid || c->reaped)
			continue;
		c->reaped = 1;
		c->status = status;
		if (!writer_finished(c)) {
			c->grace_ev = evtimer_new(ag->base, on_grace, c);
			if (c->grace_ev)
				evtimer_add(c->grace_ev, &tv);
		}
		ck_progress_end(c);
		return 1;
	}
	return 0;
}

/* hec-store beside hecd (the build tree holds every program in one
 * directory), else where it is installed. */
static int find_hec_store(char *buf, size_t len)
{
	char dir[PATH_MAX];

	if (hec_self_dir(dir, sizeof(dir)) == 0 && hec_fmt(buf, len, "%s/hec-store", dir) == 0 &&
	    access(buf, X_OK) == 0)
		return 0;
	if (hec_fmt(buf, len, "%s/hec-store", HEC_BINDIR) == 0 && access(buf, X_OK) == 0)
		return 0;
	return -ENOENT;
}

/*
 * Start `hec-store put JOB EPOCH PART` in its own process group: stdin the
 * read end of the stream's pipe (the write end stays here until the capture
 * takes it), or @in_fd (>= 0: an app checkpoint's file), stdout (the entry)
 * and stderr (figures, or the error) to us.
 * posix_spawn: the agent has a second thread (the gang dispatcher).
 */
static int writer_start(struct agent_ckpt *c, const json_t *body, int in_fd, char *why, size_t len)
{
	struct agent *ag = c->ag;
	const char *provider = json_string_value(json_object_get(body, "provider"));
	char prog[PATH_MAX], job[32], epoch[32], replicas[16];
	const char *argv[16];
	int stream[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, n = 0, rc;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;

	if (find_hec_store(prog, sizeof(prog))) {
		hec_fmt(why, len, "cannot find hec-store (looked beside hecd and in %s)", HEC_BINDIR);
		return -ENOENT;
	}
	hec_fmt(job, sizeof(job), "%ld", c->job);
	hec_fmt(epoch, sizeof(epoch), "%lld", c->epoch);
	hec_fmt(replicas, sizeof(replicas), "%lld",
		(long long)json_integer_value(json_object_get(body, "replicas")));
	argv[n++] = prog;
	argv[n++] = "--servers";
	argv[n++] = json_string_value(json_object_get(body, "servers"));
	if (ag->conf.key_file[0]) {
		argv[n++] = "--key-file";
		argv[n++] = ag->conf.key_file;
	}
	argv[n++] = "--replicas";
	argv[n++] = replicas;
	if (provider) {
		argv[n++] = "--provider";
		argv[n++] = provider;
	}
	argv[n++] = "put";
	argv[n++] = job;
	argv[n++] = epoch;
	argv[n++] = c->part;
	argv[n] = NULL;

	if ((in_fd < 0 && pipe2(stream, O_CLOEXEC)) || pipe2(out, O_CLOEXEC) ||
	    pipe2(err, O_CLOEXEC)) {
		rc = -errno;
		hec_fmt(why, len, "pipe: %s", strerror(errno));
		goto err_pipes;
	}
	if (in_fd < 0)
		(void)fcntl(stream[1], F_SETPIPE_SZ, PIPE_SIZE); /* a smaller pipe only costs wakeups */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in_fd >= 0 ? in_fd : stream[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE); /* hecd ignores it; hec-store decides for itself */
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
						POSIX_SPAWN_SETSIGDEF);
	rc = -posix_spawn(&c->pid, prog, &fa, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		c->pid = 0;
		hec_fmt(why, len, "cannot run %s: %s", prog, strerror(-rc));
		goto err_pipes;
	}
	close(out[1]);
	close(err[1]);
	/* The read end stays here too: the pipe never breaks under QEMU */
	c->stream_r = stream[0];
	c->stream_w = stream[1];
	c->out_fd = out[0];
	c->err_fd = err[0];
	evutil_make_socket_nonblocking(c->out_fd);
	evutil_make_socket_nonblocking(c->err_fd);
	c->out_ev = event_new(ag->base, c->out_fd, EV_READ | EV_PERSIST, on_out, c);
	c->err_ev = event_new(ag->base, c->err_fd, EV_READ | EV_PERSIST, on_err, c);
	if (!c->out_ev || !c->err_ev || event_add(c->out_ev, NULL) || event_add(c->err_ev, NULL)) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM; /* the caller kills it; it is reaped as ours */
	}
	hec_job_debug(ag->conf.name, c->job, "checkpoint %lld: hec-store put (pid %d) waits for the stream",
		      c->epoch, (int)c->pid);
	return 0;

err_pipes:
	fd_drop(&stream[0]);
	fd_drop(&stream[1]);
	fd_drop(&out[0]);
	fd_drop(&out[1]);
	fd_drop(&err[0]);
	fd_drop(&err[1]);
	return rc;
}

/* ---- T: hold, then capture ---- */

/* No CKPT_REOPEN long after the hold began: the coordinator is gone or
 * stuck.  Without the release the checkpoint cannot be committed, so it
 * fails here (its stream is never stored) and the job talks again. */
static void on_hold_max(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;

	(void)fd;
	(void)what;
	if (!c->held)
		return;
	if (!c->ended) {
		ck_fail(c, "no CKPT_REOPEN within %d s of the capture: the job network runs again",
			HOLD_MAX_MS / 1000);
		return;
	}
	hec_job_warn(c->ag->conf.name, c->job,
		     "checkpoint %lld: no CKPT_REOPEN within %d s: the job network runs again",
		     c->epoch, HOLD_MAX_MS / 1000);
	hold_release(c);
	ck_maybe_free(c);
}

static void on_at(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;
	const struct hec_capture_cbs cbs = {
		.captured = on_captured, .progress = on_cap_progress, .paused = on_paused, .arg = c,
	};
	struct hec_partition *p = ck_part(c);
	char why[1024] = "";
	int rc;

	(void)fd;
	(void)what;
	if (c->ended)
		return;
	if (!p) {
		ck_fail(c, "job %ld has no partition here any more", c->job);
		return;
	}
	rc = hec_partition_net_hold(p, 1, why, sizeof(why));
	if (rc) {
		ck_fail(c, "holding the job network: %s", why[0] ? why : strerror(-rc));
		return;
	}
	c->held = 1;
	{
		struct timeval tv = { HOLD_MAX_MS / 1000, (HOLD_MAX_MS % 1000) * 1000 };

		c->hold_ev = evtimer_new(c->ag->base, on_hold_max, c);
		if (c->hold_ev)
			evtimer_add(c->hold_ev, &tv);
	}
	c->cap_start_ns = hec_now_mono_ns();
	rc = hec_partition_capture(p, c->stream_w, &cbs, on_cap_done, c, why, sizeof(why));
	if (rc) {
		ck_fail(c, "%s", why[0] ? why : strerror(-rc));
		return;
	}
	c->capturing = 1;
	/* QEMU has its own copy now: its end is the stream's only writer */
	fd_drop(&c->stream_w);
	hec_job_debug(c->ag->conf.name, c->job, "checkpoint %lld: capture begins %.3f ms after T",
		      c->epoch, (double)(c->cap_start_ns - c->t_local) / 1e6);
}

static void on_limit(evutil_socket_t fd, short what, void *arg)
{
	struct agent_ckpt *c = arg;

	(void)fd;
	(void)what;
	if (!c->ended) {
		ck_fail(c, "gave up after %ld ms: %s", c->timeout_ms,
			c->reopened ? "the stream was not stored in time" :
				      "no CKPT_REOPEN or CKPT_ABORT from the controller");
		return;
	}
	if (c->held) {
		hec_job_warn(c->ag->conf.name, c->job,
			     "checkpoint %lld: no CKPT_REOPEN within %ld ms: the job network runs again",
			     c->epoch, c->timeout_ms);
		hold_release(c);
	}
	ck_maybe_free(c);
}

/* ---- the controller's messages ---- */

static void refuse(struct agent *ag, const json_t *body, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct agent *ag, const json_t *body, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	hec_job_warn(ag->conf.name, (long)json_integer_value(json_object_get(body, "job")),
		     "checkpoint %lld refused: %s",
		     (long long)json_integer_value(json_object_get(body, "epoch")), why);
	agent_ctl_send(ag, HEC_MSG_CKPT_CAPTURED,
		       json_pack("{s:O,s:O,s:s}", "job", json_object_get(body, "job"), "epoch",
				 json_object_get(body, "epoch"), "error", why));
}

/* ---- application-assisted checkpoints (kind "app", proc jobs) ---- */

/*
 * CKPT_PREPARE {kind: app}: the program is asked (agent_app.c); its
 * `written` gives CKPT_CAPTURED and starts the writer on its file.  No
 * instant T and no hold: the cut is the program's own (its checkpoint call
 * is collective).  The controller's app_ckpt_timeout bounds the wait.
 */
static void app_prepare(struct agent *ag, struct agent_job *j, const json_t *body)
{
	struct agent_ckpt *c, *busy;
	struct timeval tv;
	int rc;

	if (job_is_vm(j)) {
		refuse(ag, body, "job %ld runs in a %s partition: its checkpoints are not the program's",
		       j->id, j->part->ops->name);
		return;
	}
	if ((busy = ck_busy(ag, j->id))) {
		refuse(ag, body, "checkpoint %lld of job %ld is under way here", busy->epoch, j->id);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		refuse(ag, body, "out of memory");
		return;
	}
	c->ag = ag;
	c->job = j->id;
	c->app = 1;
	c->epoch = (long long)json_integer_value(json_object_get(body, "epoch"));
	c->stream_w = c->stream_r = c->out_fd = c->err_fd = -1;
	c->whole_pause_ns = -1;
	c->timeout_ms = (long)json_integer_value(json_object_get(body, "timeout_ms"));
	hec_fmt(c->part, sizeof(c->part), "%s", json_string_value(json_object_get(body, "part")));
	c->prep = json_deep_copy(body);
	c->outcap = 4096;
	c->out = malloc(c->outcap);
	c->limit_ev = evtimer_new(ag->base, on_limit, c);
	c->next = ag->ckpts;
	ag->ckpts = c;
	if (!c->prep || !c->out || !c->limit_ev) {
		c->ended = 1;
		refuse(ag, body, "out of memory");
		ck_maybe_free(c);
		return;
	}
	rc = agent_app_request(ag, j->id, c->epoch);
	if (rc) {
		c->ended = 1;
		if (rc == -ENOTCONN)
			refuse(ag, body, "job %ld: its program's link to the agent went with a restart of hecd", j->id);
		else
			refuse(ag, body, "job %ld has no checkpoint socket here (its first node has)", j->id);
		ck_maybe_free(c);
		return;
	}
	tv = (struct timeval){ c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000 };
	evtimer_add(c->limit_ev, &tv);
	hec_job_info(ag->conf.name, j->id, "checkpoint %lld: the program is asked for it", c->epoch);
}

int agent_ckpt_app_written(struct agent *ag, long job, long long epoch, int fd, long long bytes,
			   int ranks, char *why, size_t len)
{
	struct agent_ckpt *c = ck_find(ag, job, epoch);
	json_t *b;
	int rc;

	if (!c || !c->app || c->ended || c->captured) {
		hec_fmt(why, len, "checkpoint %lld is not waiting for the program's file here", epoch);
		return -ENOENT;
	}
	rc = writer_start(c, c->prep, fd, why, len);
	if (rc)
		return rc;
	c->captured = 1;
	c->cap_done = 1; /* nothing is captured here: the file is whole */
	c->cap_start_ns = hec_now_mono_ns();
	hec_job_info(ag->conf.name, job, "checkpoint %lld: the program wrote %lld bytes (%d ranks); storing them",
		     epoch, bytes, ranks);
	b = json_pack("{s:I,s:I,s:I}", "job", (json_int_t)job, "epoch", (json_int_t)epoch, "pause_us",
		      (json_int_t)0);
	if (b && ranks > 0)
		json_object_set_new(b, "ranks", json_integer(ranks));
	hec_fault("agent.ckpt.written"); /* the file taken, its stream begun, CKPT_CAPTURED not out */
	agent_ctl_send(ag, HEC_MSG_CKPT_CAPTURED, b);
	return 0;
}

void agent_ckpt_app_failed(struct agent *ag, long job, long long epoch, const char *why)
{
	struct agent_ckpt *c = ck_find(ag, job, epoch);

	if (c && c->app && !c->ended)
		ck_fail(c, "the program: %s", why);
}

void agent_ckpt_on_prepare(struct agent *ag, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	struct agent_job *j = agent_job_find(ag, id);
	struct agent_ckpt *c, *busy;
	json_t *stats;
	int64_t now = hec_now_mono_ns(), wait_ns, t;
	struct timeval tv;
	char why[1024];
	const char *image, *kind = json_string_value(json_object_get(body, "kind"));

	if (!j || !j->launched || j->killing) {
		refuse(ag, body, "job %ld has no partition here", id);
		return;
	}
	if (kind && !strcmp(kind, "app")) {
		app_prepare(ag, j, body);
		return;
	}
	if (!j->part->ops->capture) {
		refuse(ag, body, "job %ld runs in %s partitions: only vm jobs are checkpointed", id,
		       j->part->ops->name);
		return;
	}
	if ((busy = ck_busy(ag, id))) {
		refuse(ag, body, "checkpoint %lld of job %ld %s here", busy->epoch, id,
		       !busy->ended ? "is under way" : busy->capturing ? "is still ending" :
		       "still holds the job network");
		return;
	}
	stats = hec_partition_stats(j->part);
	if (!stats) {
		refuse(ag, body, "job %ld's guest is not up", id);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(stats);
		refuse(ag, body, "out of memory");
		return;
	}
	c->ag = ag;
	c->job = id;
	c->epoch = (long long)json_integer_value(json_object_get(body, "epoch"));
	c->stream_w = c->stream_r = c->out_fd = c->err_fd = -1;
	c->whole_pause_ns = -1;
	c->timeout_ms = (long)json_integer_value(json_object_get(body, "timeout_ms"));
	hec_fmt(c->part, sizeof(c->part), "%s", json_string_value(json_object_get(body, "part")));
	image = json_string_value(json_object_get(stats, "image"));
	hec_fmt(c->image, sizeof(c->image), "%s", image ? image : "");
	json_decref(stats);
	c->outcap = 4096;
	c->out = malloc(c->outcap);
	/* Linked first: the writer is reaped as ours from here on. */
	c->next = ag->ckpts;
	ag->ckpts = c;
	t = (int64_t)json_integer_value(json_object_get(body, "t"));
	if (agent_gang_ctl_to_mono(ag, t, &c->t_local)) {
		/* No probe answered yet: the controller's clock is taken to be ours
		 * (a cluster keeps its clocks in step); a skew only lengthens the
		 * hold, the cut stays consistent. */
		c->t_local = t - (hec_now_real_ns() - hec_now_mono_ns());
		hec_job_debug(ag->conf.name, id, "checkpoint %lld: no clock estimate yet; T on our own clock",
			      c->epoch);
	}
	c->off = t - c->t_local;
	c->at_ev = evtimer_new(ag->base, on_at, c);
	c->limit_ev = evtimer_new(ag->base, on_limit, c);
	if (!c->out || !c->at_ev || !c->limit_ev) {
		c->ended = 1; /* refused below: nothing else is said */
		refuse(ag, body, "out of memory");
		ck_maybe_free(c);
		return;
	}
	if (writer_start(c, body, -1, why, sizeof(why))) {
		c->ended = 1;
		refuse(ag, body, "%s", why);
		ck_stop(c);
		ck_maybe_free(c);
		return;
	}
	wait_ns = c->t_local > now ? c->t_local - now : 0;
	tv = (struct timeval){ (time_t)(wait_ns / 1000000000), (suseconds_t)(wait_ns % 1000000000 / 1000) };
	evtimer_add(c->at_ev, &tv);
	tv = (struct timeval){ c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000 };
	evtimer_add(c->limit_ev, &tv);
	hec_job_debug(ag->conf.name, id, "checkpoint %lld: part %s, T in %.3f ms", c->epoch, c->part,
		      (double)(c->t_local - now) / 1e6);
}

void agent_ckpt_on_reopen(struct agent *ag, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	struct agent_ckpt *c = ck_find(ag, id, (long long)json_integer_value(json_object_get(body, "epoch")));
	struct agent_job *j = agent_job_find(ag, id);

	if (c) {
		c->reopened = 1;
		hold_release(c);
		ck_maybe_free(c);
	} else if (j && j->launched && !j->killing) {
		hec_partition_net_hold(j->part, 0, NULL, 0); /* idempotent */
	}
}

void agent_ckpt_on_abort(struct agent *ag, const json_t *body)
{
	long id = (long)json_integer_value(json_object_get(body, "job"));
	struct agent_ckpt *c = ck_find(ag, id, (long long)json_integer_value(json_object_get(body, "epoch")));
	struct agent_job *j = agent_job_find(ag, id);

	if (c && !c->ended) {
		c->ended = 1;
		hec_job_info(ag->conf.name, id, "checkpoint %lld aborted by the controller", c->epoch);
	}
	if (c) {
		ck_stop(c);
		ck_maybe_free(c);
	} else if (j && j->launched && !j->killing) {
		hec_partition_net_hold(j->part, 0, NULL, 0);
	}
}

void agent_ckpt_job_gone(struct agent *ag, long job)
{
	struct agent_ckpt *c, *next;

	for (c = ag->ckpts; c; c = next) {
		next = c->next;
		if (c->job != job)
			continue;
		if (!c->ended)
			hec_job_info(ag->conf.name, job, "checkpoint %lld ends with the job's partition",
				     c->epoch);
		c->ended = 1;
		c->gone = 1; /* a capture under way ends as its partition goes */
		ck_stop(c);
		ck_maybe_free(c);
	}
}

void agent_ckpt_ctl_lost(struct agent *ag)
{
	struct agent_ckpt *c, *next;

	for (c = ag->ckpts; c; c = next) {
		next = c->next;
		if (!c->ended) {
			ck_fail(c, "the controller went away: this checkpoint cannot be committed");
		} else if (c->held) {
			hold_release(c);
			ck_maybe_free(c);
		}
	}
}

void agent_ckpt_free(struct agent *ag)
{
	while (ag->ckpts) {
		struct agent_ckpt *c = ag->ckpts;

		ag->ckpts = c->next;
		if (c->pid > 0 && !c->reaped)
			kill(-c->pid, SIGKILL);
		ck_free(c);
	}
}
