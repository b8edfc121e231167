/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A checkpoint's capture of a guest (vm.h): a chain of QMP commands on the
 * event monitor, one in flight at a time: query-status ->
 * background-snapshot on (or stop, where the kernel refuses it) -> getfd +
 * migrate fd: -> poll query-migrate.  The QMP events STOP and RESUME that
 * QEMU's background snapshot sends around its pause tell the instant the
 * state is fixed and how long the vCPUs stopped.  What it writes, start()
 * with restore loads (qemu.c, incoming_begin).
 *
 * The guest is out of the gang from the start until its state is fixed
 * (cap_hold, op_rejoin): a slot boundary in the middle of QEMU's pause
 * would stretch it to the guest's next slot.  A guest switched out when
 * the capture begins (an off-slot capture: the controller puts T there for
 * a time-sharing job) is captured without running in its slots: stopped by
 * QMP already, or stopped by QMP and then thawed if its cgroup was frozen,
 * so that QEMU answers while its vCPUs stay stopped.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"

/* ---- the capture ---- */

#define OP_POLL_MS 50
#define OP_TIMEOUT_S 600
#define SNAP_FDNAME "hecsnap"
/* QEMU throttles migration to 32 MiB/s by default: a capture goes as
 * fast as the file takes it. */
#define SNAP_BANDWIDTH (64LL << 30)
#define CAP_PROGRESS_NS 1000000000LL

/* No capture's callbacks, no listening to STOP and RESUME. */
static void vm_capture_clear(struct vm *v)
{
	memset(&v->cap, 0, sizeof(v->cap));
	v->on_runstate = NULL;
	v->cap_fixed = v->cap_whole = v->cap_bg = v->cap_cancelled = v->cap_switched_out = 0;
	v->cap_stop_us = v->cap_resume_us = v->cap_stopped_ns = 0;
}

/* A QMP event's timestamp (QEMU's wall clock, us) on CLOCK_MONOTONIC, by
 * @wall_minus_mono (one reading for every timestamp of a pause, so that
 * their differences stay exact). */
static int64_t wall_us_to_mono(int64_t us, int64_t wall_minus_mono)
{
	return us * 1000 - wall_minus_mono;
}

static void cap_fix(struct vm *v, long long pause_ns, int64_t from_ns, int64_t to_ns)
{
	struct hec_capture_fix fix = { .pause_ns = pause_ns, .held_from_ns = from_ns,
				       .held_to_ns = to_ns, .switched_out = v->cap_switched_out };

	v->cap_fixed = 1;
	v->cap.captured(v->cap.arg, &fix);
}


/* The op's outcome: op_decide(), which resumes a guest stopped for it. */
static void op_end(struct vm *v, int rc, const char *fmt_, ...) __attribute__((format(printf, 3, 4)));
static void op_end(struct vm *v, int rc, const char *fmt_, ...)
{
	char why[sizeof(v->op_why)] = "";
	va_list ap;

	if (v->op == OP_NONE || v->op_ending)
		return;
	if (fmt_) {
		va_start(ap, fmt_);
		vsnprintf(why, sizeof(why), fmt_, ap);
		va_end(ap);
	}
	/* A background snapshot that failed or was cancelled between QEMU's
	 * own stop and its resume may leave the guest stopped: op_decide
	 * sends cont (a no-op on a running guest). */
	if (v->cap.captured && v->cap_stop_us && !v->cap_resume_us)
		v->op_stopped = 1;
	op_decide(v, rc, why);
}

/* The op's commands whose answer only needs checking. */
static int op_live(struct vm *v)
{
	return v->op != OP_NONE && !v->op_ending;
}

static void op_check(struct vm *v, json_t *reply, const char *error)
{
	if (!op_live(v))
		return;
	if (!reply)
		op_end(v, -ECONNRESET, "QEMU's monitor went away");
	else if (error)
		op_end(v, -EIO, "QEMU: %s", error);
}

static void op_poll(struct vm *v, json_t *reply, const char *error)
{
	op_check(v, reply, error);
	if (op_live(v))
		op_after(v, OP_POLL_MS);
}

static void pass_fd(struct vm *v)
{
	int fd = fcntl(v->op_fd, F_DUPFD_CLOEXEC, 3);

	if (fd < 0) {
		op_end(v, -errno, "dup: %s", strerror(errno));
		return;
	}
	qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "getfd", "arguments", "fdname", SNAP_FDNAME),
		 fd, op_check);
}

static void snap_migrate(struct vm *v)
{
	pass_fd(v);
	if (op_live(v))
		qmp_call(v, json_pack("{s:s,s:{s:s}}", "execute", "migrate", "arguments", "uri",
				      "fd:" SNAP_FDNAME), -1, op_poll);
}

static void snap_stopped(struct vm *v, json_t *reply, const char *error)
{
	op_check(v, reply, error);
	if (!op_live(v))
		return;
	v->op_stopped = 1;
	if (v->cap.captured && !v->cap_fixed) {
		/* the state is the one of now; the whole pause is known at the end */
		v->cap_whole = 1;
		v->cap_stopped_ns = hec_now_mono_ns();
		cap_fix(v, 0, 0, 0);
		if (!op_live(v))
			return;
	}
	qmp_call(v, json_pack("{s:s,s:{s:[{s:s,s:b}]}}", "execute", "migrate-set-capabilities",
			      "arguments", "capabilities", "capability", "background-snapshot",
			      "state", 0), -1, op_check);
	snap_migrate(v);
}

/*
 * QEMU's background snapshot (migration.c, bg_migration_thread, QEMU 7.2):
 * it stops the VM (vm_stop_force_state: the STOP event once the vCPUs are
 * paused), saves the vCPUs and devices into a buffer, starts write
 * tracking of the RAM, and resumes the VM from a bottom half
 * (bg_migration_vm_start_bh, vm_start: the RESUME event just before the
 * vCPUs run).  The RAM is then written as of the stop: a page the guest
 * writes is copied out first.  So the state is fixed at STOP, the guest
 * runs on from RESUME, and the events' timestamps give the pause.  A guest
 * that was stopped already sends no STOP (QEMU only sets the run state)
 * but a RESUME all the same: 7.2's bottom half starts the VM whatever it
 * was (later QEMUs restore the earlier run state).  Either way the guest
 * goes back to the gang at RESUME, which stops a switched-out one again.
 */
static void cap_runstate(struct vm *v, int running, int64_t ts_us)
{
	int64_t to, off = hec_now_real_ns() - hec_now_mono_ns();

	if (!op_live(v) || !v->cap.captured)
		return;
	if (!running) {
		if (!v->cap_stop_us && !v->cap_switched_out)
			v->cap_stop_us = ts_us;
		return;
	}
	if ((!v->cap_stop_us && !v->cap_switched_out) || v->cap_resume_us)
		return; /* not the capture's pause (a cont of ours) */
	v->cap_resume_us = ts_us;
	v->op_stopped = 0; /* running again: nothing for op_decide to resume */
	op_rejoin(v);
	if (v->cap_fixed || v->cap_whole || v->cap_cancelled)
		return;
	to = wall_us_to_mono(ts_us, off);
	if (v->cap_switched_out)
		cap_fix(v, 0, v->cap_hold_ns, to);
	else
		cap_fix(v, (ts_us > v->cap_stop_us ? ts_us - v->cap_stop_us : 0) * 1000,
			wall_us_to_mono(v->cap_stop_us, off), to);
}

/* Background snapshot: the guest runs on while its memory is written as
 * of this instant (pages it writes meanwhile are copied first).  It needs
 * userfaultfd write protection, which a kernel may refuse to QEMU (an
 * unprivileged user when vm.unprivileged_userfaultfd is 0): then the
 * guest stops while its state is written. */
static void snap_caps(struct vm *v, json_t *reply, const char *error)
{
	if (!op_live(v))
		return;
	if (reply && error) {
		hec_job_info(
		    v->host->node, v->job,
		    "no background snapshot (%s): the guest stops while its state is written",
		    error);
		qmp_call(v, json_pack("{s:s}", "execute", "stop"), -1, snap_stopped);
		return;
	}
	op_check(v, reply, error);
	if (!op_live(v))
		return;
	v->cap_bg = 1;
	snap_migrate(v);
}

static void snap_status(struct vm *v, json_t *reply, const char *error)
{
	int running;

	op_check(v, reply, error);
	if (!op_live(v))
		return;
	running = json_is_true(json_object_get(json_object_get(reply, "return"), "running"));
	/* switched out by the gang (QMP stop, or cap_hold's stop for a frozen
	 * cgroup): its state is the one of its last slot's end */
	v->cap_switched_out = !running;
	if (v->cap.captured)
		/* The gang left the guest alone since op_begin, and QEMU sent
		 * any event of its switches before this answer: a STOP or
		 * RESUME from here on is the capture's. */
		v->on_runstate = cap_runstate;
	qmp_call(v, json_pack("{s:s,s:{s:I}}", "execute", "migrate-set-parameters", "arguments",
			      "max-bandwidth", (json_int_t)SNAP_BANDWIDTH), -1, op_check);
	/* Background even for a stopped guest: written as it is, it would stay
	 * stopped (out of its slots) until the last byte. */
	qmp_call(v, json_pack("{s:s,s:{s:[{s:s,s:b}]}}", "execute", "migrate-set-capabilities",
			      "arguments", "capabilities", "capability", "background-snapshot",
			      "state", 1), -1, snap_caps);
}

/* Why no capture of @v can begin now. */
static int op_refused(struct vm *v, char *why, size_t len)
{
	if (!v) {
		hec_fmt(why, len, "the partition has no guest");
		return -ENODEV;
	}
	if (v->state != VM_UP || !v->q.qmp) {
		hec_fmt(why, len, "the guest is not up%s%s", v->why[0] ? ": " : "", v->why);
		return -ENOTCONN;
	}
	hec_fmt(why, len, "a capture of the guest is under way");
	return -EBUSY;
}

/*
 * The guest leaves the gang for the capture (until op_rejoin): no boundary
 * stops or freezes it under the capture's commands.  One whose cgroup the
 * gang froze (switched out: its freeze asked, whether or not the kernel
 * reports it reached) is stopped by QMP, then thawed: QEMU must
 * answer the capture while its vCPUs stay stopped, and the stop goes out
 * before the thaw, so that they hardly run.  The stop is the event
 * monitor's first command of the op, not waited for: the capture's
 * commands follow it, and query-status finds the guest stopped.
 */
static int cap_hold(struct vm *v, char *why, size_t len)
{
	struct hec_gate *g = NULL;
	int rc = 0;

	vm_gang_hold(v);
	v->cap_held = 1;
	v->cap_rejoining = 0; /* the last capture's rejoin, unanswered: this one keeps it */
	v->cap_hold_ns = hec_now_mono_ns();
	if (v->use_qmp || hec_partition_proc_ops.gate_open(v->cg, &g, NULL, 0))
		return 0; /* (QMP-switched, or no gate: a guest left frozen would
			   * answer nothing, and the capture ends at its timeout) */
	/* Asked, not reached: the dispatcher does not wait for a freeze, and
	 * a guest whose freeze the kernel has not reported yet stays frozen
	 * all the same (no slot of its own thaws it while held). */
	if (hec_gate_asked(g) == 1) {
		qmp_call(v, json_pack("{s:s}", "execute", "stop"), -1, op_check);
		v->op_stopped = 1; /* op_decide resumes it if the capture fails */
		rc = hec_gate_set(g, 0);
		if (rc)
			hec_fmt(why, len, "thawing the switched-out guest for its capture: %s",
				strerror(-rc));
	}
	hec_gate_close(g);
	return rc;
}

/* Start a capture of @v with its first command. */
static int op_begin(struct vm *v, const struct hec_capture_cbs *cbs, int fd,
		    hec_part_done_fn done, void *arg, char *why, size_t len, json_t *first,
		    qmp_cb cb)
{
	int rc;

	if (!v || v->state != VM_UP || !v->q.qmp || v->op != OP_NONE) {
		json_decref(first);
		return op_refused(v, why, len);
	}
	v->op_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (v->op_fd < 0) {
		hec_fmt(why, len, "dup: %s", strerror(errno));
		json_decref(first);
		return -errno;
	}
	v->op = OP_CAPTURE;
	v->op_gen++;
	vm_capture_clear(v);
	v->cap = *cbs;
	v->cap_progress_ns = hec_now_mono_ns();
	v->op_done = done;
	v->op_arg = arg;
	v->op_stopped = 0;
	v->op_deadline_ns = hec_now_mono_ns() + (int64_t)OP_TIMEOUT_S * 1000000000;
	hec_job_info(v->host->node, v->job, "capture of the guest begins");
	rc = cap_hold(v, why, len);
	if (rc) {
		op_rejoin(v);
		close(v->op_fd);
		v->op_fd = -1;
		v->op = OP_NONE;
		vm_capture_clear(v);
		json_decref(first);
		return rc;
	}
	/* The watchdog, until polling takes the timer over: an answer that
	 * never comes (a QEMU frozen or wedged) ends the op at the deadline. */
	op_after(v, OP_TIMEOUT_S * 1000 + 10);
	qmp_call(v, first, -1, cb);
	return 0;
}

int vm_capture(struct hec_partition *p, int fd, const struct hec_capture_cbs *cbs,
	       hec_part_done_fn done, void *arg, char *why, size_t len)
{
	if (!cbs || !cbs->captured) {
		hec_fmt(why, len, "a capture without its captured() callback");
		return -EINVAL;
	}
	return op_begin(p->priv, cbs, fd, done, arg, why, len,
			json_pack("{s:s}", "execute", "query-status"), snap_status);
}

/*
 * QEMU 7.2 (Debian 12's) stops the write tracking of a background snapshot
 * only when it completes (bg_migration_completion): cancelled or failed,
 * the guest's RAM stays write-protected with nobody to resolve the faults,
 * and the guest hangs at its next write to a page not yet written out
 * (fixed upstream in 2023, after 7.2: "migration: stop tracking ram writes
 * when cancelling background migration").  So a background capture is
 * never cancelled in QEMU: it runs to its end into the fd, whose reader
 * must drain it, and ends as cancelled.  A guest stopped while written
 * (no background snapshot) is cancelled at once and resumes.
 */
int vm_cancel(struct hec_partition *p)
{
	struct vm *v = p->priv;

	if (!v || v->op != OP_CAPTURE || v->op_ending)
		return -ENOENT;
	if (v->cap_bg) {
		if (!v->cap_cancelled)
			hec_job_info(v->host->node, v->job,
				     "capture of the guest cancelled: QEMU writes it to its end, the guest runs on");
		v->cap_cancelled = 1;
		return 0;
	}
	hec_job_info(v->host->node, v->job, "capture of the guest cancelled; the guest runs on");
	op_end(v, -ECANCELED, "the capture was cancelled");
	/* after op_end: what the op queued and did not send is dropped there */
	qmp_call(v, json_pack("{s:s}", "execute", "migrate_cancel"), -1, NULL);
	return 0;
}

/* The capture's end, just before its done(): the whole pause of a guest
 * that stayed stopped while written; the callbacks are forgotten. */
static void cap_end(struct vm *v)
{
	struct hec_capture_cbs cbs = v->cap;
	long long pause_us;

	if (cbs.captured && v->cap_whole && v->op_rc == 0 && cbs.paused) {
		if (v->cap_stop_us && v->cap_resume_us > v->cap_stop_us)
			pause_us = v->cap_resume_us - v->cap_stop_us;
		else
			pause_us = (hec_now_mono_ns() - v->cap_stopped_ns) / 1000;
		cbs.paused(cbs.arg, pause_us * 1000);
	}
	vm_capture_clear(v);
}

/* A capture's bytes so far, about once a second. */
static void cap_progress(struct vm *v, const json_t *r)
{
	const json_t *ram = json_object_get(r, "ram");
	int64_t now = hec_now_mono_ns();

	if (!v->cap.captured || !v->cap.progress || !ram || now - v->cap_progress_ns < CAP_PROGRESS_NS)
		return;
	v->cap_progress_ns = now;
	v->cap.progress(v->cap.arg,
			(unsigned long long)json_integer_value(json_object_get(ram, "transferred")));
}

static void op_status(struct vm *v, json_t *reply, const char *error)
{
	json_t *r = json_object_get(reply, "return");
	const char *st = json_string_value(json_object_get(r, "status"));
	const char *desc = json_string_value(json_object_get(r, "error-desc"));
	char msg[400];

	op_check(v, reply, error);
	if (!op_live(v))
		return;
	if (v->cap_cancelled && st &&
	    (!strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
		op_end(v, -ECANCELED, "the capture was cancelled");
		return;
	}
	if (st && !strcmp(st, "completed")) {
		hec_job_info(
		    v->host->node, v->job,
		    "capture of the guest written (%lld bytes of RAM; vCPUs stopped %lld ms%s)",
		    (long long)json_integer_value(
			json_object_get(json_object_get(r, "ram"), "transferred")),
		    (long long)json_integer_value(json_object_get(r, "downtime")),
		    v->op_stopped ? ": no background snapshot" : "");
		if (v->cap.captured && !v->cap_fixed) {
			/* no RESUME event seen: QEMU's own downtime (ms) says it */
			cap_fix(v, v->cap_switched_out ? 0 :
				(long long)json_integer_value(json_object_get(r, "downtime")) * 1000000,
				0, 0);
			if (!op_live(v))
				return;
		}
		op_end(v, 0, NULL);
	} else if (st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"))) {
		hec_fmt(msg, sizeof(msg), "QEMU: the migration %s%s%s", st, desc ? ": " : "",
		    desc ? desc : "");
		op_end(v, -EIO, "%s", msg);
	} else {
		cap_progress(v, r);
		if (op_live(v))
			op_after(v, OP_POLL_MS);
	}
}

void op_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;

	(void)fd;
	(void)what;
	if (v->op == OP_NONE)
		return;
	if (v->op_ending) {
		cap_end(v);
		op_deliver(v, v->op_rc, v->op_why, 1);
		return;
	}
	if (hec_now_mono_ns() > v->op_deadline_ns) {
		op_end(v, -ETIMEDOUT, "the capture did not end within %d s", OP_TIMEOUT_S);
		qmp_call(v, json_pack("{s:s}", "execute", "migrate_cancel"), -1, NULL);
		return;
	}
	qmp_call(v, json_pack("{s:s}", "execute", "query-migrate"), -1, op_status);
}
