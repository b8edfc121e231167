/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A proc job's checkpoint socket on its first node (doc/design.md,
 * "Application-assisted checkpoints (proc jobs)"; APP-CKPT.md).
 *
 * At LAUNCH the agent makes HEC_CKPT_DIR (<ckpt_dir or state_dir>/job.<id>/
 * ckpt, the job's user, 0700) and listens on HEC_CKPT_SOCK (state_dir/
 * job.<id>/ckpt.sock, the job's user, 0600).  The program's rank 0
 * (libhecckpt) connects and speaks one JSON line per message: the agent
 * tells it a checkpoint is wanted (`request`), the program writes
 * ckpt-<epoch>.h5 and says `written`, and agent_ckpt.c streams the file to
 * the storage servers and says CKPT_CAPTURED / CKPT_STORED.
 *
 * The program is outside input and may be hostile: every line goes through
 * hec_app_msg_decode (bounded, typed); one connection at a time, from the
 * job's user or root; the file must be exactly the expected name in the
 * directory, a regular file of the job's user with one link, and is opened
 * with O_NOFOLLOW under the job's user's file system identity (setfsuid:
 * per thread, so the gang dispatcher thread keeps ours).  A bad line gets
 * {"op":"error"} and the connection stays; an over-long line, or a program
 * that never reads our lines, loses the connection.  Nothing it sends stops
 * the agent.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <jansson.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "agent/agent.h"
#include "ckpt/appmsg.h"

#define OUT_MAX (64u << 10)          /* our lines the program has not read: it is stuck */
#define ASK_WAIT_S 30                /* CKPT_ASK without CKPT_PREPARE or CKPT_REFUSED */
#define RM_DEPTH 8                   /* what a program leaves in its directory */

struct agent_app {
	struct agent_app *next;
	struct agent *ag;
	long job;
	uid_t uid;
	gid_t gid;
	char dir[PATH_MAX];          /* HEC_CKPT_DIR */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int dfd;                     /* the directory, O_PATH-free: for openat/unlinkat */
	int lfd;
	struct event *lev;
	struct bufferevent *conn;    /* the program's rank 0, or NULL */
	int hello, ranks;
	long long requested;         /* the controller's checkpoint this program owes, 0: none */
	long long taken;             /* the one whose file we stream */
	int asking;                  /* CKPT_ASK sent for the program's own checkpoint */
	struct event *ask_ev;
	long long restore_epoch;     /* a fetched checkpoint for START, 0: none */
};

static struct agent_app *app_find(struct agent *ag, long job)
{
	for (struct agent_app *a = ag->apps; a; a = a->next)
		if (a->job == job)
			return a;
	return NULL;
}

/* ---- to the program ---- */

static void conn_close(struct agent_app *a)
{
	if (a->conn)
		bufferevent_free(a->conn);
	a->conn = NULL;
	a->hello = 0;
}

static void say(struct agent_app *a, json_t *msg_stolen)
{
	char *text;

	if (!msg_stolen)
		return;
	text = a->conn ? json_dumps(msg_stolen, JSON_COMPACT) : NULL;
	json_decref(msg_stolen);
	if (!text)
		return;
	if (evbuffer_get_length(bufferevent_get_output(a->conn)) > OUT_MAX) {
		hec_job_warn(a->ag->conf.name, a->job,
			     "checkpoint socket: the program reads nothing of what we say; disconnected");
		conn_close(a);
	} else {
		bufferevent_write(a->conn, text, strlen(text));
		bufferevent_write(a->conn, "\n", 1);
	}
	free(text);
}

static void say_epoch(struct agent_app *a, const char *op, long long epoch)
{
	say(a, json_pack("{s:s,s:I}", "op", op, "epoch", (json_int_t)epoch));
}

static void say_error(struct agent_app *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say_error(struct agent_app *a, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	hec_job_warn(a->ag->conf.name, a->job, "checkpoint socket: %s", why);
	say(a, json_pack("{s:s,s:s}", "op", "error", "error", why));
}

static void not_asked(struct agent_app *a, const char *op, long long epoch)
{
	if (a->requested)
		say_error(a, "%s: checkpoint %lld was not asked for (the one under way is %lld)", op,
			  epoch, a->requested);
	else
		say_error(a, "%s: checkpoint %lld was not asked for (none is under way)", op, epoch);
}

/* ---- the program's file ---- */

/*
 * Open @name in the job's directory as the job's user, no symbolic link
 * followed, and check it is the user's own regular file of @bytes bytes
 * with one link (not another user's file linked in).  \return the fd or
 * -errno with @why.
 */
static int open_file(struct agent_app *a, const char *name, long long bytes, char *why, size_t len)
{
	struct stat st;
	int fd, e = 0;

	setfsgid(a->gid);
	setfsuid(a->uid);
	fd = openat(a->dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		e = errno;
	setfsuid(geteuid());
	setfsgid(getegid());
	if (fd < 0) {
		hec_fmt(why, len, "%s/%s: %s", a->dir, name,
			e == ELOOP ? "a symbolic link (refused)" : strerror(e));
		return -e;
	}
	if (fstat(fd, &st)) {
		e = errno;
		hec_fmt(why, len, "%s/%s: %s", a->dir, name, strerror(e));
	} else if (!S_ISREG(st.st_mode)) {
		e = EINVAL;
		hec_fmt(why, len, "%s/%s is not a regular file", a->dir, name);
	} else if (st.st_uid != a->uid) {
		e = EPERM;
		hec_fmt(why, len, "%s/%s belongs to uid %u, not to the job's user (uid %u)", a->dir,
			name, (unsigned)st.st_uid, (unsigned)a->uid);
	} else if (st.st_nlink != 1) {
		e = EPERM;
		hec_fmt(why, len, "%s/%s has %lu links (a file linked from elsewhere is refused)",
			a->dir, name, (unsigned long)st.st_nlink);
	} else if ((long long)st.st_size != bytes) {
		e = EMSGSIZE;
		hec_fmt(why, len, "%s/%s holds %lld bytes, the program said %lld", a->dir, name,
			(long long)st.st_size, bytes);
	}
	if (e) {
		close(fd);
		return -e;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

static void file_name(long long epoch, char *buf, size_t len)
{
	hec_fmt(buf, len, "ckpt-%lld.h5", epoch);
}

static void file_remove(struct agent_app *a, long long epoch)
{
	char name[64];

	file_name(epoch, name, sizeof(name));
	if (unlinkat(a->dfd, name, 0) && errno != ENOENT)
		hec_job_warn(a->ag->conf.name, a->job, "cannot remove %s/%s: %s", a->dir, name,
			     strerror(errno));
}

/* ---- the program's lines ---- */

static void on_written(struct agent_app *a, const struct hec_app_msg *m)
{
	char want[PATH_MAX], name[64], why[PATH_MAX + 256];
	int fd, rc;

	if (!a->requested || m->epoch != a->requested) {
		not_asked(a, "written", m->epoch);
		return;
	}
	file_name(m->epoch, name, sizeof(name));
	if (hec_fmt(want, sizeof(want), "%s/%s", a->dir, name) || strcmp(m->path, want)) {
		hec_fmt(why, sizeof(why), "the file must be %s, not %.*s", want, 1024, m->path);
		goto fail;
	}
	fd = open_file(a, name, m->bytes, why, sizeof(why));
	if (fd < 0)
		goto fail;
	rc = agent_ckpt_app_written(a->ag, a->job, m->epoch, fd, m->bytes, a->ranks, why,
				    sizeof(why));
	close(fd);
	if (rc)
		goto fail;
	a->taken = m->epoch;
	a->requested = 0;
	say_epoch(a, "taken", m->epoch);
	return;
fail:
	/* the checkpoint fails: CKPT_CAPTURED {error}, CKPT_ABORT comes back */
	say_error(a, "written: checkpoint %lld: %s", m->epoch, why);
	agent_ckpt_app_failed(a->ag, a->job, m->epoch, why);
}

static void on_begin(struct agent_app *a, const struct hec_app_msg *m)
{
	struct timeval tv = { ASK_WAIT_S, 0 };

	if (m->epoch) {
		/* no answer to a named epoch (the library waits for none): its
		 * `written` hears the error, once */
		if (m->epoch != a->requested)
			hec_job_warn(a->ag->conf.name, a->job,
				     "checkpoint socket: begin: checkpoint %lld was not asked for", m->epoch);
		return;
	}
	if (a->requested) { /* one was asked for already: that one it is */
		say_epoch(a, "epoch", a->requested);
		return;
	}
	if (a->asking)
		return; /* the controller's answer comes once */
	if (!a->ag->registered) {
		say_error(a, "begin: the agent has no controller now");
		return;
	}
	a->asking = 1;
	evtimer_add(a->ask_ev, &tv);
	hec_job_info(a->ag->conf.name, a->job, "the program asks for a checkpoint");
	agent_ctl_send(a->ag, HEC_MSG_CKPT_ASK, json_pack("{s:I}", "job", (json_int_t)a->job));
}

static void on_line(struct agent_app *a, const char *line, size_t len)
{
	struct hec_app_msg *m = malloc(sizeof(*m));
	char err[512];

	if (!m) {
		say_error(a, "agent out of memory");
		return;
	}
	if (hec_app_msg_decode(line, len, m, err, sizeof(err))) {
		say_error(a, "refused: %s", err);
		goto out;
	}
	if (!a->hello && m->op != HEC_APP_HELLO) {
		say_error(a, "%s before hello", hec_app_op_name(m->op));
		goto out;
	}
	switch (m->op) {
	case HEC_APP_HELLO:
		if (m->job != a->job) {
			say_error(a, "hello: this socket is job %ld's, not job %lld's", a->job, m->job);
			break;
		}
		a->hello = 1;
		a->ranks = m->ranks;
		say(a, json_pack("{s:s,s:b}", "op", "hello", "ok", 1));
		hec_job_debug(a->ag->conf.name, a->job, "checkpoint socket: the program (%d ranks) said hello",
			      a->ranks);
		if (a->requested)
			say_epoch(a, "request", a->requested);
		break;
	case HEC_APP_BEGIN:
		on_begin(a, m);
		break;
	case HEC_APP_WRITTEN:
		on_written(a, m);
		break;
	case HEC_APP_FAILED:
		if (!a->requested || (m->epoch && m->epoch != a->requested)) {
			not_asked(a, "failed", m->epoch);
			break;
		}
		agent_ckpt_app_failed(a->ag, a->job, a->requested, m->error);
		break;
	case HEC_APP_RESTORED:
	case HEC_APP_RESTORE_FAILED:
		if (m->epoch != a->restore_epoch) {
			say_error(a, "%s: the job was not started from checkpoint %lld",
				  hec_app_op_name(m->op), m->epoch);
			break;
		}
		hec_job_info(a->ag->conf.name, a->job, "the program %s checkpoint %lld%s%s",
			     m->op == HEC_APP_RESTORED ? "restored" : "did not restore", m->epoch,
			     m->op == HEC_APP_RESTORED ? "" : ": ", m->error);
		agent_ctl_send(a->ag, HEC_MSG_CKPT_LOADED,
			       m->op == HEC_APP_RESTORED ?
			       json_pack("{s:I,s:I}", "job", (json_int_t)a->job, "epoch",
					 (json_int_t)m->epoch) :
			       json_pack("{s:I,s:I,s:s}", "job", (json_int_t)a->job, "epoch",
					 (json_int_t)m->epoch, "error", m->error));
		break;
	}
out:
	free(m);
}

static void on_event(struct bufferevent *bev, short what, void *arg);

static void on_drained(struct bufferevent *bev, void *arg)
{
	struct agent_app *a = arg;

	if (a->conn == bev && !evbuffer_get_length(bufferevent_get_output(bev)))
		conn_close(a);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct agent_app *a = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (a->conn == bev && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF))) {
		on_line(a, line, n);
		free(line);
	}
	if (a->conn == bev && evbuffer_get_length(in) > HEC_APP_LINE_MAX) {
		/* no resynchronising: the error goes out, then the connection */
		say_error(a, "a line longer than %d bytes: disconnected", HEC_APP_LINE_MAX);
		if (a->conn == bev) {
			bufferevent_disable(bev, EV_READ);
			bufferevent_setcb(bev, NULL, on_drained, on_event, a);
			a->hello = 0;
		}
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct agent_app *a = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		hec_job_debug(a->ag->conf.name, a->job, "checkpoint socket: the program disconnected");
		conn_close(a);
	}
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct agent_app *a = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	(void)what;
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) ||
	    (cred.uid != a->uid && cred.uid != 0)) {
		hec_job_warn(a->ag->conf.name, a->job, "checkpoint socket: uid %d is not the job's user; refused",
			     (int)cred.uid);
		close(fd);
		return;
	}
	if (a->conn) {
		static const char busy[] = "{\"op\":\"error\",\"error\":\"another process of the job is connected\"}\n";

		(void)!write(fd, busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	a->conn = bufferevent_socket_new(a->ag->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!a->conn) {
		close(fd);
		return;
	}
	bufferevent_setcb(a->conn, on_read, NULL, on_event, a);
	bufferevent_enable(a->conn, EV_READ | EV_WRITE);
}

static void on_ask_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct agent_app *a = arg;

	(void)fd;
	(void)what;
	if (!a->asking)
		return;
	a->asking = 0;
	say_error(a, "begin: the controller did not answer within %d s", ASK_WAIT_S);
}

/* ---- the job's directory ---- */

/* Remove what is in @fd's directory (it may hold anything the program
 * made), bounded in depth; never follows a link. */
static void rm_tree_at(int fd, int depth)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;

	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		int sub;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!unlinkat(dirfd(d), de->d_name, 0) || errno != EISDIR)
			continue;
		if (depth < RM_DEPTH &&
		    (sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
			rm_tree_at(sub, depth + 1);
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static void app_free(struct agent_app *a, int remove)
{
	conn_close(a);
	if (a->lev)
		event_free(a->lev);
	if (a->ask_ev)
		event_free(a->ask_ev);
	if (a->lfd >= 0)
		close(a->lfd);
	if (remove && a->sock[0])
		unlink(a->sock);
	if (a->dfd >= 0) {
		if (remove) {
			rm_tree_at(a->dfd, 0);
			if (rmdir(a->dir) && errno != ENOENT)
				hec_job_warn(a->ag->conf.name, a->job, "cannot remove %s: %s", a->dir,
					     strerror(errno));
			if (a->ag->conf.ckpt_dir[0]) {
				char parent[PATH_MAX];

				if (!hec_fmt(parent, sizeof(parent), "%s/job.%ld", a->ag->conf.ckpt_dir, a->job))
					rmdir(parent);
			}
		} else {
			close(a->dfd);
		}
	}
	free(a);
}

/* The directory, ours then the user's: a name that is there already
 * (a previous life) is taken only as a directory, never a link. */
static int make_dir(struct agent_app *a, char *why, size_t len)
{
	struct agent *ag = a->ag;
	char parent[PATH_MAX];
	int rc;

	if (ag->conf.ckpt_dir[0])
		rc = hec_fmt(parent, sizeof(parent), "%s/job.%ld", ag->conf.ckpt_dir, a->job);
	else
		rc = agent_job_dir(ag, a->job, parent, sizeof(parent));
	if (!rc)
		rc = hec_fmt(a->dir, sizeof(a->dir), "%s/ckpt", parent);
	if (rc) {
		hec_fmt(why, len, "%s: the checkpoint directory's path is too long", ag->conf.name);
		return rc;
	}
	rc = hec_mkdir_p(parent, 0755);
	if (rc) {
		hec_fmt(why, len, "%s: %s: %s", ag->conf.name, parent, strerror(-rc));
		return rc;
	}
	if (mkdir(a->dir, 0700) && errno != EEXIST)
		goto fail;
	a->dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (a->dfd < 0 || fchown(a->dfd, a->uid, a->gid) || fchmod(a->dfd, 0700))
		goto fail;
	return 0;
fail:
	rc = -errno;
	hec_fmt(why, len, "%s: checkpoint directory %s: %s", ag->conf.name, a->dir, strerror(-rc));
	return rc;
}

static int make_socket(struct agent_app *a, char *why, size_t len)
{
	struct agent *ag = a->ag;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[PATH_MAX];
	int rc;

	if (agent_job_dir(ag, a->job, dir, sizeof(dir)) ||
	    hec_fmt(a->sock, sizeof(a->sock), "%s/ckpt.sock", dir)) {
		a->sock[0] = 0;
		hec_fmt(why, len, "%s: checkpoint socket: %s/ckpt.sock is longer than %zu bytes (a shorter state_dir)",
			ag->conf.name, dir, sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, a->sock, strlen(a->sock) + 1);
	unlink(a->sock);
	a->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->lfd < 0 || bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    chmod(a->sock, 0600) || (agent_is_root() && chown(a->sock, a->uid, a->gid)) ||
	    listen(a->lfd, 4)) {
		rc = -errno;
		hec_fmt(why, len, "%s: checkpoint socket %s: %s", ag->conf.name, a->sock, strerror(-rc));
		return rc;
	}
	a->lev = event_new(ag->base, a->lfd, EV_READ | EV_PERSIST, on_accept, a);
	a->ask_ev = evtimer_new(ag->base, on_ask_timeout, a);
	if (!a->lev || !a->ask_ev || event_add(a->lev, NULL)) {
		hec_fmt(why, len, "%s: out of memory", ag->conf.name);
		return -ENOMEM;
	}
	return 0;
}

/* The job's directory, and with @listen its socket. */
static int app_new(struct agent *ag, struct agent_job *j, int listen, char *why, size_t len)
{
	struct agent_app *a = app_find(ag, j->id);
	int rc;

	if (a)
		return 0; /* LAUNCH again of the same job */
	a = calloc(1, sizeof(*a));
	if (!a) {
		hec_fmt(why, len, "%s: out of memory", ag->conf.name);
		return -ENOMEM;
	}
	*a = (struct agent_app){ .ag = ag, .job = j->id, .uid = j->uid, .gid = j->gid, .dfd = -1,
				 .lfd = -1 };
	rc = make_dir(a, why, len);
	if (!rc && listen)
		rc = make_socket(a, why, len);
	if (rc) {
		app_free(a, listen);
		return rc;
	}
	a->next = ag->apps;
	ag->apps = a;
	hec_job_debug(ag->conf.name, j->id, "checkpoint directory %s, socket %s", a->dir,
		      listen ? a->sock : "none");
	return 0;
}

int agent_app_setup(struct agent *ag, struct agent_job *j, char *why, size_t len)
{
	return app_new(ag, j, 1, why, len);
}

void agent_app_adopt(struct agent *ag, struct agent_job *j)
{
	char why[PATH_MAX + 64];

	if (app_new(ag, j, 0, why, sizeof(why)))
		hec_job_warn(ag->conf.name, j->id, "checkpoint directory not taken back: %s", why);
}

int agent_app_env(struct agent *ag, long job, struct envv *e)
{
	struct agent_app *a = app_find(ag, job);
	char path[PATH_MAX], num[32], name[64];
	int rc;

	if (!a)
		return 0;
	rc = envv_set(e, "HEC_CKPT_DIR", a->dir);
	if (!rc)
		rc = envv_set(e, "HEC_CKPT_SOCK", a->sock);
	if (!rc && a->restore_epoch) {
		file_name(a->restore_epoch, name, sizeof(name));
		hec_fmt(path, sizeof(path), "%s/%s", a->dir, name);
		hec_fmt(num, sizeof(num), "%lld", a->restore_epoch);
		rc = envv_set(e, "HEC_CKPT_RESTORE", path);
		if (!rc)
			rc = envv_set(e, "HEC_CKPT_EPOCH", num);
	}
	return rc;
}

int agent_app_restore_open(struct agent *ag, long job, long long epoch, int *fd, char *why,
			   size_t len)
{
	struct agent_app *a = app_find(ag, job);
	char name[64];
	int e = 0;

	if (!a) {
		hec_fmt(why, len, "%s: job %ld has no checkpoint directory here", ag->conf.name, job);
		return -ENOENT;
	}
	file_name(epoch, name, sizeof(name));
	unlinkat(a->dfd, name, 0);
	setfsgid(a->gid);
	setfsuid(a->uid);
	*fd = openat(a->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		e = errno;
	setfsuid(geteuid());
	setfsgid(getegid());
	if (e) {
		hec_fmt(why, len, "%s: %s/%s: %s", ag->conf.name, a->dir, name, strerror(e));
		return -e;
	}
	return 0;
}

void agent_app_restore_ready(struct agent *ag, long job, long long epoch)
{
	struct agent_app *a = app_find(ag, job);

	if (a)
		a->restore_epoch = epoch;
}

int agent_app_restarting(struct agent *ag, long job)
{
	struct agent_app *a = app_find(ag, job);

	return a && a->restore_epoch;
}

int agent_app_request(struct agent *ag, long job, long long epoch)
{
	struct agent_app *a = app_find(ag, job);

	if (!a)
		return -ENOENT;
	if (a->lfd < 0)
		return -ENOTCONN;
	a->requested = epoch;
	if (a->asking) {
		a->asking = 0;
		evtimer_del(a->ask_ev);
		say_epoch(a, "epoch", epoch);
	} else if (a->hello) {
		say_epoch(a, "request", epoch);
	}
	return 0;
}

void agent_app_end(struct agent *ag, long job, long long epoch, int stored)
{
	struct agent_app *a = app_find(ag, job);

	if (!a)
		return;
	if (a->requested == epoch) {
		/* the program may still be on its way to it: not any more */
		a->requested = 0;
		if (a->hello)
			say_epoch(a, "cancel", epoch);
	}
	if (a->taken == epoch)
		a->taken = 0;
	(void)stored;
	file_remove(a, epoch);
}

void agent_app_on_refused(struct agent *ag, const json_t *body)
{
	struct agent_app *a = app_find(ag, (long)json_integer_value(json_object_get(body, "job")));

	if (!a || !a->asking)
		return;
	a->asking = 0;
	evtimer_del(a->ask_ev);
	say_error(a, "begin: %s", json_string_value(json_object_get(body, "error")));
}

void agent_app_job_gone(struct agent *ag, long job)
{
	for (struct agent_app **pp = &ag->apps; *pp; pp = &(*pp)->next)
		if ((*pp)->job == job) {
			struct agent_app *a = *pp;

			*pp = a->next;
			app_free(a, 1);
			return;
		}
}

void agent_app_free(struct agent *ag)
{
	while (ag->apps) {
		struct agent_app *a = ag->apps;

		ag->apps = a->next;
		app_free(a, 0);
	}
}
