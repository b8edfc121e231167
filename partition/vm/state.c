/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest's state (vm.h), at the bottom of the driver: how a guest
 * fails, and how start() and a capture deliver their outcome.
 * Every other file of the driver reports here; nothing here calls them.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"
#include "hec/qmp.h"

void start_finish(struct vm *v, int rc, const char *why)
{
	hec_part_done_fn done = v->start_done;

	v->start_done = NULL;
	if (done)
		done(v->start_arg, rc, why);
}

void vm_fail(struct vm *v, const char *fmt_, ...)
{
	enum vm_state was = v->state;
	va_list ap;

	if (was == VM_DEAD)
		return;
	va_start(ap, fmt_);
	vsnprintf(v->why, sizeof(v->why), fmt_, ap);
	va_end(ap);
	v->state = VM_DEAD;
	if (v->q.pid > 0)
		kill(v->q.pid, SIGKILL);
	if (v->timer)
		evtimer_del(v->timer);
	hec_job_err(v->host->node, v->job, "guest failed: %s", v->why);
	if (v->op != OP_NONE) {
		v->op_stopped = 0;
		op_decide(v, -EIO, v->why);
	}
	if (was != VM_UP)
		start_finish(v, -EIO, v->why);
	else
		vm_exited(v, 1, 0, v->why);
}

void run_ended(struct vm *v)
{
	v->running = 0;
	if (v->out_fd >= 0)
		close(v->out_fd);
	if (v->err_fd >= 0 && v->err_fd != v->out_fd)
		close(v->err_fd);
	v->out_fd = v->err_fd = -1;
}

void guest_save(struct vm *v)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	json_t *o;
	char *text = NULL;
	int rc = -ENOMEM;

	if (v->q.pid <= 0 || !v->q_start || /* (gone at once: nothing to re-attach to) */
	    hec_fmt(path, sizeof(path), "%s/guest.json", v->dir) ||
	    hec_fmt(tmp, sizeof(tmp), "%s.tmp", path))
		return;
	/* (the image: a checkpoint of the guest names it) */
	o = json_pack("{s:I, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:s, s:b, s:I, s:s, s:s, s:i}",
		      "qemu_pid", (json_int_t)v->q.pid, "qemu_start", (json_int_t)v->q_start,
		      "index", v->index, "nodes", v->nnodes, "vcpus", v->vcpus,
		      "mem_mb", (json_int_t)v->mem_mb, "uid", (json_int_t)v->uid,
		      "gid", (json_int_t)v->gid, "hub_addr", v->hub_addr, "running", v->running,
		      "run_id", (json_int_t)v->run_id, "kernel", v->kernel, "initrd", v->initrd,
		      "net_gen", v->net_gen);
	if (o)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text) {
		rc = hec_create_file(tmp, text, strlen(text), 0600);
		if (!rc && rename(tmp, path))
			rc = -errno;
		free(text);
	}
	if (rc)
		hec_job_warn(v->host->node, v->job, "%s: %s; a restarted hecd cannot re-attach the guest",
			     path, strerror(-rc));
}

void op_after(struct vm *v, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(v->op_timer, &tv);
}

/* From op_timer, or with -ECANCELED when the guest is dropped. */
void op_deliver(struct vm *v, int rc, const char *why, int rejoin)
{
	hec_part_done_fn done = v->op_done;
	void *arg = v->op_arg;
	char copy[sizeof(v->op_why)];
	int was_qmp = vm_gate_is_qmp(v);

	hec_fmt(copy, sizeof(copy), "%s", why ? why : "");
	if (v->op_fd >= 0)
		close(v->op_fd);
	v->op_fd = -1;
	v->op = OP_NONE;
	v->op_ending = 0;
	v->op_done = NULL;
	if (v->op_timer)
		evtimer_del(v->op_timer);
	/* Out of the gang for it, or switched by QMP while it streamed though
	 * the cgroup switches it otherwise: the dispatcher takes it back with
	 * the gate of its usual way. */
	if (rejoin && !v->cap_held && was_qmp && !vm_gate_is_qmp(v) && v->state == VM_UP) {
		vm_gang_hold(v);
		v->cap_held = 1;
	}
	if (rejoin)
		op_rejoin(v);
	else
		v->cap_held = v->cap_rejoining = 0;
	if (done)
		done(arg, rc, rc ? copy : NULL);
}

/* op_rejoin's cont is answered: the guest runs, and goes back. */
static void rejoin_conted(struct vm *v, json_t *reply, const char *error)
{
	if (!v->cap_rejoining)
		return; /* a capture begun since holds it again */
	v->cap_rejoining = 0;
	v->cap_held = 0;
	if (v->state != VM_UP)
		return;
	if (reply && !error) {
		if (v->q.mon)
			qmp_mon_assume(v->q.mon, 0);
	} else {
		hec_job_warn(v->host->node, v->job,
			     "the guest did not resume as it rejoins the gang: %s",
			     error ? error : "QEMU's monitor went away");
	}
	vm_gang_release(v);
}

void op_rejoin(struct vm *v)
{
	if (!v->cap_held || v->cap_rejoining)
		return;
	if (v->state != VM_UP) {
		v->cap_held = 0;
		return;
	}
	/* Its vCPUs run when it goes back (the dispatcher stops or freezes it
	 * at once if the slot is not its own), and a QMP gate's monitor, whose
	 * idea of the state is what its own commands left, is told so: a
	 * cont, a no-op on a running guest, makes both true.  Sent on the
	 * event monitor and not waited for: a QEMU whose main loop stands
	 * still (a stalled stream writer, in huge pages at once) answers
	 * nothing, and must hold up neither the loop nor, back in the gang,
	 * the dispatcher. */
	if (!v->q.qmp) {
		v->cap_held = 0;
		if (v->q.mon)
			qmp_mon_try_set(v->q.mon, 0);
		vm_gang_release(v);
		return;
	}
	v->cap_rejoining = 1;
	qmp_call_always(v, json_pack("{s:s}", "execute", "cont"), rejoin_conted);
}

static void op_resumed(struct vm *v, json_t *reply, const char *error)
{
	if (!reply || error)
		hec_job_warn(v->host->node, v->job,
			     "the guest did not resume after its capture: %s",
			     error ? error : "QEMU's monitor went away");
	op_after(v, 0);
}

/*
 * The op's outcome is decided (the first decision counts): a guest we
 * stopped for its capture resumes first; the caller hears of it from the
 * loop, never from inside one of our own calls.
 */
void op_decide(struct vm *v, int rc, const char *why)
{
	struct qmp_call **pp;

	if (v->op == OP_NONE || v->op_ending)
		return;
	v->op_ending = 1;
	v->op_rc = rc;
	hec_fmt(v->op_why, sizeof(v->op_why), "%s", why);
	/* What the op queued and did not send yet is not sent. */
	for (pp = &v->qq; *pp;) {
		struct qmp_call *c = *pp;

		if (c->gen == v->op_gen && !(c == v->qq && v->qq_sent)) {
			*pp = c->next;
			qmp_call_free(c);
		} else {
			pp = &c->next;
		}
	}
	evtimer_del(v->op_timer);
	if (v->op_stopped) {
		v->op_stopped = 0;
		qmp_call(v, json_pack("{s:s}", "execute", "cont"), -1, op_resumed);
		op_after(v, GATE_QMP_TIMEOUT_MS); /* delivered anyway if QEMU does not answer */
	} else {
		op_after(v, 0);
	}
}

