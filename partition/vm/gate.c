/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Gang switching of a guest (vm.h): by the proc driver's cgroup gate, or
 * by QMP stop/cont on the gate's own monitor (qmp_mon.c), whichever
 * measured cheaper on this guest when it booted.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"
#include "hec/qmp.h"

int qmp_gate_set(struct hec_gate *gate, int frozen);
int qmp_gate_wait(struct hec_gate *gate, int frozen, long timeout_us);
void qmp_gate_close(struct hec_gate *gate);

/* What a QMP gate carries: the hec_gate_*() wrappers need only these. */
static const struct hec_partition_ops qmp_gate_ops = {
	.name = "vm",
	.gate_set = qmp_gate_set,
	.gate_wait = qmp_gate_wait,
	.gate_close = qmp_gate_close,
};

struct hec_gate *qmp_gate_new(struct qmp_mon *m)
{
	struct qmp_gate *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->base.ops = &qmp_gate_ops;
	qmp_mon_get(m);
	g->mon = m;
	return &g->base;
}

/* Never waits (the dispatcher holds the gang's lock): -EAGAIN while the
 * switch before is unanswered. */
int qmp_gate_set(struct hec_gate *gate, int frozen)
{
	return qmp_mon_try_set(((struct qmp_gate *)gate)->mon, frozen);
}

int qmp_gate_wait(struct hec_gate *gate, int frozen, long timeout_us)
{
	return qmp_mon_wait(((struct qmp_gate *)gate)->mon, frozen, timeout_us);
}

void qmp_gate_close(struct hec_gate *gate)
{
	struct qmp_gate *g = (struct qmp_gate *)gate;

	if (!g)
		return;
	qmp_mon_put(g->mon);
	free(g);
}

static long long median(long long *x, int n)
{
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && x[k - 1] > x[k]; k--) {
			long long t = x[k];

			x[k] = x[k - 1];
			x[k - 1] = t;
		}
	return x[n / 2];
}

/* A switch out and in through @g, CALIBRATE_ROUNDS times with the guest
 * running in between: the median in ns, or -1 if a round failed.  What
 * the dispatcher pays (agent/gang.c): an immediate gate's two writes (it
 * does not wait for them), a QMP gate's stop and cont each until answered.
 * Closes @g, and leaves the guest running. */
static long long switch_cost(struct hec_gate *g)
{
	long long t[CALIBRATE_ROUNDS];
	long wait_us = g->immediate ? 0 : 500000;
	int n;

	for (n = 0; n < CALIBRATE_ROUNDS; n++) {
		int64_t t0 = hec_now_mono_ns();

		if (hec_gate_set(g, 1) || (wait_us && hec_gate_wait(g, 1, wait_us)) ||
		    hec_gate_set(g, 0) || (wait_us && hec_gate_wait(g, 0, wait_us)))
			break;
		t[n] = hec_now_mono_ns() - t0;
		usleep(CALIBRATE_GAP_US);
	}
	if (n < CALIBRATE_ROUNDS) {
		/* a switch still unanswered is waited for first (bounded) */
		int rc = hec_gate_set(g, 0);

		if (rc == -EAGAIN) {
			hec_gate_wait(g, 1, 500000);
			rc = hec_gate_set(g, 0);
		}
		if (!rc)
			hec_gate_wait(g, 0, 500000);
	}
	hec_gate_close(g);
	return n == CALIBRATE_ROUNDS ? median(t, n) : -1;
}

/*
 * What a gang switch of this guest costs each way, measured on the guest
 * as it is now: cgroup freeze + thaw of the QEMU process against QMP
 * stop + cont.  The one the host's vm_switch names switches it from now
 * on, or with auto the cheaper.  The guest is out of the gang meanwhile
 * (the dispatcher switched it by cgroup freeze while it booted, and would
 * thaw and freeze it under the measurement); it rejoins with the gate of
 * the chosen way, thawed and running, so that no gate of the other way is
 * left with the dispatcher.
 */
void calibrate(struct vm *v)
{
	struct hec_gate *g;
	const char *how = "the cheaper";

	vm_gang_hold(v);
	v->cg_ns = hec_partition_proc_ops.gate_open(v->cg, &g, NULL, 0) ? -1 : switch_cost(g);
	g = v->q.mon ? qmp_gate_new(v->q.mon) : NULL;
	v->qmp_ns = g ? switch_cost(g) : -1;
	switch (v->host->vm_switch) {
	case HEC_VM_SWITCH_CGROUP:
		v->use_qmp = 0;
		how = "vm_switch = cgroup";
		break;
	case HEC_VM_SWITCH_QMP:
		/* Even if a round was too slow under load: QMP was asked for. */
		v->use_qmp = v->q.mon != NULL;
		how = v->use_qmp ? "vm_switch = qmp" : "vm_switch = qmp, but QEMU has no gate monitor";
		break;
	default:
		v->use_qmp = v->qmp_ns >= 0 && (v->cg_ns < 0 || v->qmp_ns < v->cg_ns);
	}
	hec_job_info(
	    v->host->node, v->job,
	    "gang switch of the guest: cgroup freeze+thaw %lld us, QMP stop+cont %lld us: using %s (%s)",
	    v->cg_ns / 1000, v->qmp_ns / 1000, v->use_qmp ? "QMP" : "cgroup", how);
	vm_gang_release(v);
}

