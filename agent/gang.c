/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Gang scheduling on the node (doc/design.md, "Gang scheduling"):
 *
 * - clock: bursts of TIME_REQ probes to the controller, the minimum-RTT
 *   probe of the latest burst giving the offset from our CLOCK_MONOTONIC to
 *   controller time (gang/clock.h);
 * - EPOCH: the controller's slot table for this node, turned into a
 *   struct ds_table with an open gate per partition it names here
 *   (gang/dispatch.h), handed to the dispatcher to take effect at its start;
 * - the dispatcher: its own thread, at SCHED_FIFO where permitted, that
 *   sleeps to each slot boundary, freezes what leaves and thaws what
 *   enters, recording each switch in a ring;
 * - STATS: the clock estimate, the ring and the partitions' CPU time.
 *
 * Which partitions the dispatcher touches: those an epoch names that exist
 * here (a LAUNCH after its EPOCH joins then).  Others are left alone, with
 * two exceptions that keep the gang whole across epochs: a partition the
 * next epoch names and the current one does not is frozen at once (a job
 * just launched into a slot must not run beside the gang until the epoch
 * starts), and one the current epoch froze and the next no longer names is
 * thawed when that starts (nothing stays frozen with no epoch to thaw it).
 * KILL_JOB takes a partition out of every table first.
 *
 * Threads: everything here runs on hecd's event loop except the dispatcher.
 * They share the tables, the clock offset and flags under g->lock (a
 * priority-inheriting mutex: the loop thread holds it only briefly, and the
 * dispatcher holds it through a switch, so that a KILL_JOB never closes a
 * gate under its feet), the ring under g->ring_lock, and a copy of the
 * epoch's rows under g->sched_lock.  A switch under g->lock is bounded by
 * its freeze budget: no gate_set waits (a QMP gate whose command before is
 * unanswered says -EAGAIN at once, and is asked again every GATE_RETRY_NS
 * within its slot, the lock let go in between), so the loop never waits
 * long for the lock, whatever a guest does.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "agent/agent.h"
#include "gang/clock.h"
#include "gang/dispatch.h"

#define CLOCK_PROBES 8
#define CLOCK_PROBE_TIMEOUT_MS 200
#define CLOCK_BURST_EVERY_MS 5000
#define FREEZE_TIMEOUT_NS (50LL * 1000000)
/* A QMP gate whose switch before is still unanswered (-EAGAIN) is asked
 * again this often within the same slot, until its slot ends. */
#define GATE_RETRY_NS (1000LL * 1000)
/* How far ahead of the controller's clock an EPOCH may start. */
#define EPOCH_AHEAD_MAX_NS (3600LL * 1000000000)
#define DISPATCH_PRIO 10
#define RING_SIZE 4096
/*
 * Waking for a boundary.  At SCHED_FIFO the kernel gives the thread no
 * timer slack, and a sleep to the boundary itself wakes 14-23 us late (p50,
 * this VM), the same on every node (skew p99 5-7 us).  A spin before it
 * would land within a microsecond, but on a CPU that runs ranks it takes
 * their time: a 150 us spin cost 15% at 1 ms slots.  So the dispatcher
 * spins only on a housekeeping CPU of its own (gang_cpu), SPIN_NS there.
 */
#define SPIN_NS 50000LL
/*
 * A freeze not seen reached (cgroup.events) over this long, in a row of
 * slots, marks its partition stuck: its next freezes are waited for before
 * the entering job thaws.  Longer than a scheduler tick plus a time slice:
 * a task kicked by the freeze but preempted in the kernel by the entering
 * job finishes entering the freezer only at the next tick (4 ms at HZ=250),
 * and it runs no user code meanwhile.
 */
#define FREEZE_GRACE_NS (20LL * 1000000)

struct gang_switch {
	int64_t epoch, boundary, planned, actual, freeze_ns, thaw_ns;
	int waited;                 /* freezes were waited for before the thaw */
};

struct agent_gang {
	struct agent *ag;

	/* The dispatcher thread; the fields up to the ring are under lock. */
	pthread_t thread;
	int thread_up;
	pthread_mutex_t lock;
	pthread_cond_t wake;        /* on CLOCK_MONOTONIC */
	int stop;
	int clock_valid;
	int64_t offset;             /* controller time = mono + offset */
	struct ds_table *active;    /* the epoch in force */
	struct ds_table *pending;   /* the next one, from its first boundary on */
	int pending_joined;         /* pending_k computed */
	int64_t pending_k;          /* boundary of pending where it takes over */
	int64_t next_k;             /* next boundary of active */
	int kick;                   /* a gate was added to active: apply the row now */
	int64_t retry_at;           /* mono: ask -EAGAIN gates of this slot again (0: none) */
	unsigned long freeze_timeouts;
	int spin;                   /* on a housekeeping CPU: spin SPIN_NS to boundaries */

	pthread_mutex_t ring_lock;
	struct gang_switch *ring;
	unsigned ring_next, ring_count;

	/* The rows and times of the epoch in force, for agent_gang_own_ns on
	 * the loop (no entries: e and scratch NULL; nslots 0 before the
	 * first), under sched_lock, which nobody holds across a switch: the
	 * loop must not wait on g->lock for a dispatcher stuck in a gate. */
	pthread_mutex_t sched_lock;
	struct ds_table sched;

	/* Event loop only: clock probes, epochs. */
	struct event *burst_timer, *probe_timer;
	int probing, probes_sent;
	int64_t probe_t1;
	struct clock_burst burst;
	int have_estimate;          /* a burst completed (or the first is under way) */
	int estimate_final;         /* a burst completed */
	int burst_failed_warned, bad_resp_warned;
	int64_t est_offset, est_rtt;
	int64_t last_epoch;
	int no_gates_warned;
};

/* ---- the dispatcher thread ---- */

static void ring_push(struct agent_gang *g, const struct gang_switch *s)
{
	pthread_mutex_lock(&g->ring_lock);
	g->ring[g->ring_next] = *s;
	g->ring_next = (g->ring_next + 1) % RING_SIZE;
	if (g->ring_count < RING_SIZE)
		g->ring_count++;
	pthread_mutex_unlock(&g->ring_lock);
}

/* After a failed gate call the entry is left alone: the partition is most
 * likely gone behind our back, and KILL_JOB will follow. */
static void gate_broken(struct agent_gang *g, struct ds_entry *e, const char *what, int rc)
{
	e->broken = 1;
	hec_job_warn(g->ag->conf.name, e->job,
		     "gang dispatcher: %s failed: %s; leaving the partition alone", what,
		     strerror(-rc));
}

/*
 * Before a partition thaws: was its last freeze reached?  (A read of
 * cgroup.events, ~3 us, before the boundary's writes: the only time it
 * says something, and on a rank's CPU part of the switch's dead time; on
 * gang_cpu none.)  Not seen reached over FREEZE_GRACE_NS of its slots in a
 * row, it is stuck: a task in the kernel (a system call that does not
 * return, D state), which the freeze stops only when it returns.
 */
static void freeze_check(struct ds_entry *e, int64_t now)
{
	int rc;

	if (!e->gate->immediate || e->state != DS_FROZEN || !e->frozen_at)
		return;
	rc = hec_gate_wait(e->gate, 1, 0);
	if (rc == 0) {
		e->unconfirmed_ns = 0;
		e->stuck = 0;
	} else if (rc == -ETIMEDOUT) {
		e->unconfirmed_ns += now - e->frozen_at;
		if (e->unconfirmed_ns >= FREEZE_GRACE_NS)
			e->stuck = 1;
	}
	e->frozen_at = 0;
}

/*
 * Put the partitions in the state boundary @k of @t asks for: freeze what
 * leaves, then thaw what enters.
 *
 * An immediate gate's freeze (a cgroup) is not waited for: from the write
 * on, the leaving tasks run no more user code (they stop within the few
 * microseconds the kernel's kick takes, measured never later than the
 * write's return), so the entering job thaws at once.  Waiting for
 * cgroup.events to say "frozen" would cost far more than the switch: the
 * kernel may say it only at its next tick, once a leaving task preempted
 * in the kernel by the entering one gets the CPU back to finish entering
 * the freezer.  Whether the freeze was reached is looked at lazily
 * (freeze_check()).
 *
 * A freeze is waited for when its gate is not immediate (QMP stop), or
 * its partition is stuck.  We wait up to FREEZE_TIMEOUT_NS, but not past
 * the next boundary: if that comes first, the entering partition is not
 * thawed (its slot is over anyway) and the next boundary is planned at
 * once, waiting again for whatever is still not frozen.  Only when a slot
 * is longer than FREEZE_TIMEOUT_NS and the freeze still lags do we thaw
 * the entering one anyway: a task stuck in the kernel does not use the
 * CPU, and must not stall the gang for good.  Nor is a guest whose QMP gate
 * has not answered its switch before (-EAGAIN) waited for; the entering
 * partition thaws.
 */
static void apply(struct agent_gang *g, struct ds_table *t, int64_t k, int record, int64_t off)
{
	struct gang_switch s = { .epoch = t->epoch, .boundary = k };
	int64_t t0, deadline, next;
	struct ds_plan p;
	int timeouts = 0, thaw = 1, again = 0, waits = 0;
	long late_job = 0;

	g->retry_at = 0;
	ds_plan(t, ds_row(t, k), &p);
	if (p.nfreeze == 0 && p.thaw < 0)
		return;
	t0 = hec_now_mono_ns();
	/* Before the writes, which a leaving job waits on: what to wait for
	 * besides this boundary's freezes is a stuck partition frozen earlier. */
	if (p.thaw >= 0)
		freeze_check(&t->e[p.thaw], t0);
	for (int i = 0; i < t->n; i++) {
		struct ds_entry *e = &t->e[i];

		e->wait = i != p.thaw && e->gate && !e->broken && e->state == DS_FROZEN && e->stuck;
		waits += e->wait;
	}
	for (int i = 0; i < p.nfreeze; i++) {
		struct ds_entry *e = &t->e[p.freeze[i]];
		int rc = hec_gate_set(e->gate, 1);

		if (rc == -EAGAIN) {
			/* Its switch before is unanswered (a QEMU whose main
			 * loop stands still, or a command of the loop's in its
			 * monitor): asked again within the slot (retry_at), not
			 * waited for, which would hold the gang (and its lock)
			 * on a guest that answers nothing. */
			e->state = DS_UNKNOWN;
			again = 1;
		} else if (rc) {
			gate_broken(g, e, "freeze", rc);
		} else {
			e->state = DS_FROZEN;
			e->frozen_at = t0;
			e->wait = !e->gate->immediate || e->stuck;
			waits += e->wait;
		}
	}
	s.freeze_ns = hec_now_mono_ns() - t0;
	deadline = t0 + FREEZE_TIMEOUT_NS;
	next = ds_boundary_time(t, k + 1) - off;
	if (next < deadline)
		deadline = next;
	for (int i = 0; waits && i < t->n; i++) {
		struct ds_entry *e = &t->e[i];
		int64_t left = deadline - hec_now_mono_ns();
		int rc;

		if (!e->wait)
			continue;
		e->wait = 0;
		rc = hec_gate_wait(e->gate, 1, left > 0 ? (long)(left / 1000) : 0);
		if (rc == -ETIMEDOUT) {
			/* Asked, not reached: the next plan waits for it again. */
			e->state = DS_UNKNOWN;
			timeouts++;
			late_job = e->job;
		} else if (rc) {
			gate_broken(g, e, "freeze wait", rc);
		} else {
			e->stuck = 0;
			e->unconfirmed_ns = 0;
		}
	}
	if (waits) {
		s.waited = 1;
		s.freeze_ns = hec_now_mono_ns() - t0;
	}
	if (timeouts && deadline == next)
		thaw = 0;
	if (p.thaw >= 0 && thaw) {
		struct ds_entry *e = &t->e[p.thaw];
		int64_t t2 = hec_now_mono_ns();
		int rc = hec_gate_set(e->gate, 0);

		s.thaw_ns = hec_now_mono_ns() - t2;
		if (rc == -EAGAIN) {
			e->state = DS_UNKNOWN; /* asked again within the slot */
			again = 1;
		} else if (rc)
			gate_broken(g, e, "thaw", rc);
		else
			e->state = DS_RUNNING;
	}
	if (again && hec_now_mono_ns() + GATE_RETRY_NS < next)
		g->retry_at = hec_now_mono_ns() + GATE_RETRY_NS;
	if (record) {
		s.planned = ds_boundary_time(t, k);
		s.actual = t0 + off;
		ring_push(g, &s);
	}
	if (timeouts) {
		g->freeze_timeouts += (unsigned long)timeouts;
		/* The first, then every 100th: an overloaded node must not flood the log. */
		if (g->freeze_timeouts == (unsigned long)timeouts ||
		    g->freeze_timeouts % 100 < (unsigned long)timeouts)
			hec_job_warn(
			    g->ag->conf.name, late_job,
			    "not frozen %.1f ms after slot boundary %lld (node overloaded?); %s (%lu such so far)",
			    (double)s.freeze_ns / 1e6, (long long)k,
			    thaw ? "thawed the next job anyway" : "the next job waits for its turn",
			    g->freeze_timeouts);
	}
}

static void close_gates(struct ds_table *t)
{
	for (int i = 0; t && i < t->n; i++)
		if (t->e[i].gate) {
			hec_gate_close(t->e[i].gate);
			t->e[i].gate = NULL;
		}
}

/*
 * The pending epoch takes over at its boundary pending_k.  Jobs keep the
 * state the old epoch left them in (no needless writes); jobs the old epoch
 * froze and the new one no longer schedules here are thawed, so that
 * nothing stays frozen with no epoch to thaw it (a job that ended is
 * removed by KILL_JOB before, and never touched).
 */
static void activate(struct agent_gang *g, int64_t off)
{
	struct ds_table *old = g->active, *t = g->pending;
	int64_t k = g->pending_k;

	g->pending = NULL;
	g->pending_joined = 0;
	for (int i = 0; old && i < t->n; i++) {
		int o = ds_find(old, t->e[i].job);

		if (t->e[i].gate && o >= 0 && old->e[o].gate && !old->e[o].broken) {
			if (old->e[o].state != DS_UNKNOWN)
				t->e[i].state = old->e[o].state;
			t->e[i].frozen_at = old->e[o].frozen_at;
			t->e[i].unconfirmed_ns = old->e[o].unconfirmed_ns;
			t->e[i].stuck = old->e[o].stuck;
		}
	}
	g->active = t;
	pthread_mutex_lock(&g->sched_lock);
	g->sched = *t;
	g->sched.n = 0;
	g->sched.e = NULL;
	g->sched.scratch = NULL;
	pthread_mutex_unlock(&g->sched_lock);
	apply(g, t, k, 1, off);
	g->next_k = k + 1;
	for (int o = 0; old && o < old->n; o++) {
		struct ds_entry *e = &old->e[o];
		int i = ds_find(t, e->job);

		if (e->gate && !e->broken && e->state == DS_FROZEN &&
		    (i < 0 || !t->e[i].gate || t->e[i].broken)) {
			int rc = hec_gate_set(e->gate, 0);

			if (rc)
				gate_broken(g, e, "thaw (left the schedule)", rc);
		}
	}
	close_gates(old);
	ds_table_free(old);
}

/* Sleep to @mono (woken early by a new epoch), on a housekeeping CPU
 * waking SPIN_NS early and spinning the rest. */
static void sleep_until(struct agent_gang *g, int64_t mono)
{
	int64_t early = g->spin ? mono - SPIN_NS : mono;
	struct timespec ts = { early / 1000000000, early % 1000000000 };

	if (hec_now_mono_ns() < early) {
		pthread_cond_timedwait(&g->wake, &g->lock, &ts);
		return; /* the caller plans again, then comes back to spin */
	}
	while (hec_now_mono_ns() < mono)
		;
}

/*
 * Where the dispatcher runs: on gang_cpu if the node has one (a CPU no
 * rank uses: the dispatcher may spin there), else on the node's own CPUs,
 * where it wakes just at the boundaries.  Never on another node's CPUs,
 * which it would take from that node's ranks at every boundary.
 */
static void place(struct agent_gang *g)
{
	struct agent *ag = g->ag;
	struct hec_cpuset set;
	cpu_set_t cs;
	int rc;

	if (ag->gang_cpu >= 0) {
		CPU_ZERO(&cs);
		CPU_SET(ag->gang_cpu, &cs);
	} else if (ag->penv.cpus && hec_cpuset_parse(ag->penv.cpus, &set) > 0) {
		hec_cpuset_to_cpu_set(&set, &cs);
	} else {
		return;
	}
	rc = pthread_setaffinity_np(pthread_self(), sizeof(cs), &cs);
	if (rc)
		hec_warn("%s: gang dispatcher: cannot run on CPUs %s (%s); left where it is",
			 ag->conf.name, ag->gang_cpu >= 0 ? ag->conf.gang_cpu : ag->penv.cpus,
			 strerror(rc));
	else
		g->spin = ag->gang_cpu >= 0;
}

static void set_realtime(struct agent_gang *g)
{
	struct sched_param sp = { .sched_priority = DISPATCH_PRIO };
	int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);

	pthread_setname_np(pthread_self(), "hec-gang");
	place(g);
	if (rc) {
		/* The least timer slack a normal thread can have (default:
		 * 50 us late on top of the wake-up). */
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
		hec_warn("%s: gang dispatcher: SCHED_FIFO priority %d not permitted (%s); running at normal priority, slot switches may be late under load",
			 g->ag->conf.name, DISPATCH_PRIO, strerror(rc));
	} else {
		hec_debug("%s: gang dispatcher runs at SCHED_FIFO priority %d%s", g->ag->conf.name,
			  DISPATCH_PRIO, g->spin ? " on its own CPU" : "");
	}
}

static void *dispatcher_main(void *arg)
{
	struct agent_gang *g = arg;

	set_realtime(g);
	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		int64_t off, now, t_act = INT64_MAX, t_pend = INT64_MAX;

		if (!g->clock_valid || (!g->active && !g->pending)) {
			pthread_cond_wait(&g->wake, &g->lock);
			continue;
		}
		off = g->offset;
		now = hec_now_mono_ns() + off;
		if (g->kick) {
			g->kick = 0;
			if (g->active)
				apply(g, g->active, ds_boundary_current(g->active, now), 0, off);
		}
		if (g->pending) {
			/* Join at the next boundary if the start is already past. */
			if (!g->pending_joined) {
				g->pending_k = ds_boundary_next(g->pending, now);
				g->pending_joined = 1;
			}
			t_pend = ds_boundary_time(g->pending, g->pending_k);
		}
		if (g->active)
			t_act = ds_boundary_time(g->active, g->next_k);
		if (g->active && g->retry_at && g->retry_at + off < t_act && g->retry_at + off < t_pend) {
			/* A gate said -EAGAIN this slot: ask it again (the row of
			 * the boundary just applied; what is done is not redone). */
			if (g->retry_at > now - off)
				sleep_until(g, g->retry_at);
			else
				apply(g, g->active, g->next_k - 1, 0, off);
			continue;
		}
		if (t_pend <= t_act) {
			if (t_pend > now)
				sleep_until(g, t_pend - off);
			else
				activate(g, off);
		} else if (t_act > now) {
			sleep_until(g, t_act - off);
		} else {
			/* Woken late past several boundaries: the latest one counts. */
			int64_t k = ds_boundary_current(g->active, now);

			if (k < g->next_k)
				k = g->next_k;
			apply(g, g->active, k, 1, off);
			g->next_k = k + 1;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static int start_thread(struct agent_gang *g)
{
	sigset_t all, old;
	int rc;

	if (g->thread_up)
		return 0;
	/* Signals stay with the event loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&g->thread, NULL, dispatcher_main, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return -rc;
	g->thread_up = 1;
	return 0;
}

/* ---- clock probes (event loop) ---- */

static void publish_clock(struct agent_gang *g, int64_t offset)
{
	pthread_mutex_lock(&g->lock);
	g->offset = offset;
	g->clock_valid = 1;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
}

static void probe_send(struct agent_gang *g)
{
	struct timeval tv = { 0, CLOCK_PROBE_TIMEOUT_MS * 1000 };

	g->probe_t1 = hec_now_mono_ns();
	g->probes_sent++;
	agent_ctl_send(g->ag, HEC_MSG_TIME_REQ, json_pack("{s:I}", "t1", (json_int_t)g->probe_t1));
	evtimer_add(g->probe_timer, &tv);
}

static void burst_done(struct agent_gang *g)
{
	struct agent *ag = g->ag;

	g->probing = 0;
	g->probe_t1 = 0;
	if (g->burst.nsamples == 0) {
		if (!g->burst_failed_warned++)
			hec_warn("%s: no TIME_RESP from controller %s to %d probes of %d ms; keeping the %s clock estimate",
				 ag->conf.name, ag->conf.controller, CLOCK_PROBES,
				 CLOCK_PROBE_TIMEOUT_MS, g->have_estimate ? "old" : "missing (no gang switching until one)");
		return;
	}
	g->burst_failed_warned = 0;
	if (!g->estimate_final)
		hec_info("%s: clock offset to controller %lld ns, rtt %lld ns (best of %d probes)",
			 ag->conf.name, (long long)g->burst.offset, (long long)g->burst.rtt,
			 g->burst.nsamples);
	else if (g->est_offset != g->burst.offset)
		hec_debug("%s: clock offset to controller %lld ns, rtt %lld ns (%d of %d probes)",
			  ag->conf.name, (long long)g->burst.offset, (long long)g->burst.rtt,
			  g->burst.nsamples, CLOCK_PROBES);
	g->have_estimate = 1;
	g->estimate_final = 1;
	g->est_offset = g->burst.offset;
	g->est_rtt = g->burst.rtt;
	publish_clock(g, g->est_offset);
}

static void burst_next(struct agent_gang *g)
{
	evtimer_del(g->probe_timer);
	if (g->probes_sent < CLOCK_PROBES && g->ag->ctl)
		probe_send(g);
	else
		burst_done(g);
}

static void burst_start(struct agent_gang *g)
{
	if (g->probing || !g->ag->registered)
		return;
	g->probing = 1;
	g->probes_sent = 0;
	clock_burst_reset(&g->burst);
	probe_send(g);
}

static void probe_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct agent_gang *g = arg;

	(void)fd;
	(void)what;
	hec_debug("%s: TIME_REQ %d unanswered after %d ms", g->ag->conf.name, g->probes_sent,
		  CLOCK_PROBE_TIMEOUT_MS);
	g->probe_t1 = 0; /* a late answer is not a probe any more */
	burst_next(g);
}

static void burst_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	burst_start(arg);
}

void agent_gang_on_time_resp(struct agent *ag, const json_t *b)
{
	struct agent_gang *g = ag->gang;
	struct clock_sample s = {
		.t4 = hec_now_mono_ns(),
		.t1 = json_integer_value(json_object_get(b, "t1")),
		.t2 = json_integer_value(json_object_get(b, "t2")),
		.t3 = json_integer_value(json_object_get(b, "t3")),
	};

	if (!g->probing || s.t1 != g->probe_t1) {
		hec_debug("%s: TIME_RESP for t1 %lld is not the probe outstanding; ignored",
			  ag->conf.name, (long long)s.t1);
		return;
	}
	if (clock_burst_add(&g->burst, &s)) {
		if (!g->bad_resp_warned++)
			hec_warn("%s: TIME_RESP from controller %s with impossible instants (t1 %lld t2 %lld t3 %lld t4 %lld); probe ignored",
				 ag->conf.name, ag->conf.controller, (long long)s.t1, (long long)s.t2,
				 (long long)s.t3, (long long)s.t4);
	} else if (!g->estimate_final && (!g->have_estimate || g->burst.rtt < g->est_rtt)) {
		/* Before the first burst completes, each better probe is used at
		 * once, so that an epoch that came early can start. */
		if (!g->have_estimate)
			hec_info("%s: clock offset to controller %lld ns (rtt %lld ns, first probe)",
				 ag->conf.name, (long long)g->burst.offset, (long long)g->burst.rtt);
		g->have_estimate = 1;
		g->est_offset = g->burst.offset;
		g->est_rtt = g->burst.rtt;
		publish_clock(g, g->est_offset);
	}
	burst_next(g);
}

void agent_gang_on_registered(struct agent *ag)
{
	struct agent_gang *g = ag->gang;
	struct timeval tv = { CLOCK_BURST_EVERY_MS / 1000, (CLOCK_BURST_EVERY_MS % 1000) * 1000 };

	/* A restarted controller may number its epochs afresh. */
	g->last_epoch = 0;
	evtimer_del(g->burst_timer);
	event_add(g->burst_timer, &tv);
	g->probing = 0;
	burst_start(g);
}

void agent_gang_on_disconnect(struct agent *ag)
{
	struct agent_gang *g = ag->gang;

	/* The dispatcher keeps the schedule with the estimate it has. */
	evtimer_del(g->burst_timer);
	evtimer_del(g->probe_timer);
	g->probing = 0;
	g->probe_t1 = 0;
}

/* ---- epochs (event loop) ---- */

/* Frozen, running, or (midway, or unreadable) unknown. */
static enum ds_state probe_state(struct hec_gate *gate)
{
	if (hec_gate_wait(gate, 1, 0) == 0)
		return DS_FROZEN;
	if (hec_gate_wait(gate, 0, 0) == 0)
		return DS_RUNNING;
	return DS_UNKNOWN;
}

static struct agent_job *job_here(struct agent *ag, long id)
{
	struct agent_job *j = agent_job_find(ag, id);

	return j && !j->killing ? j : NULL;
}

static int open_gate(struct agent_gang *g, struct agent_job *j, struct hec_gate **gate, enum ds_state *st)
{
	char why[PATH_MAX + 64] = "";
	int rc = hec_partition_gate_open(j->part, gate, why, sizeof(why));

	if (rc == -EBUSY) {
		/* its driver switches it for a while, and gives it back (gang_release) */
		hec_job_debug(g->ag->conf.name, j->id, "not switched for now: %s", why);
		return rc;
	}
	if (rc) {
		hec_job_err(
		    g->ag->conf.name, j->id,
		    "cannot open its freeze controls: %s: %s; the gang dispatcher leaves it alone",
		    why, strerror(-rc));
		return rc;
	}
	*st = probe_state(*gate);
	return 0;
}

static void add_entry(struct ds_table *t, long job, int hold)
{
	int i = ds_find(t, job);

	if (i < 0) {
		i = t->n++;
		t->e[i].job = job;
	}
	if (hold)
		t->e[i].hold = 1;
}

/*
 * Under g->lock, for the pending table @t: freeze at once what @t names and
 * the epoch in force does not schedule.  Such a partition is new to the
 * gang (typically a job just launched into a slot) and would otherwise run
 * beside the scheduled one until @t starts.  Jobs no epoch names are left
 * alone.
 */
static void hold_newcomers(struct agent_gang *g, struct ds_table *t)
{
	for (int i = 0; i < t->n; i++) {
		struct ds_entry *e = &t->e[i];
		int a = g->active ? ds_find(g->active, e->job) : -1;
		int rc;

		if (!e->gate || e->broken || e->state == DS_FROZEN || (a >= 0 && g->active->e[a].gate))
			continue;
		rc = hec_gate_set(e->gate, 1);
		if (rc == -EAGAIN)
			continue; /* unanswered still: the dispatcher asks again */
		if (rc) {
			gate_broken(g, e, "freeze", rc);
			continue;
		}
		e->state = DS_FROZEN;
		hec_job_debug(g->ag->conf.name, e->job, "frozen until epoch %lld starts",
			      (long long)t->epoch);
	}
}

/* Replace the pending table (the loop thread owns no table once handed over). */
static void hand_over(struct agent_gang *g, struct ds_table *t)
{
	struct ds_table *old;

	pthread_mutex_lock(&g->lock);
	if (g->clock_valid) /* else the epoch cannot start: hold nothing */
		hold_newcomers(g, t);
	old = g->pending;
	g->pending = t;
	g->pending_joined = 0;
	pthread_cond_signal(&g->wake);
	pthread_mutex_unlock(&g->lock);
	close_gates(old);
	ds_table_free(old);
}

void agent_gang_on_epoch(struct agent *ag, const json_t *b)
{
	struct agent_gang *g = ag->gang;
	json_int_t epoch = json_integer_value(json_object_get(b, "epoch"));
	json_int_t start = json_integer_value(json_object_get(b, "start"));
	json_int_t slot_ns = json_integer_value(json_object_get(b, "slot_ns"));
	json_int_t nslots = json_integer_value(json_object_get(b, "nslots"));
	json_t *slots = json_object_get(b, "slots"), *frozen = json_object_get(b, "frozen"), *v;
	char rows[256] = "", held[256] = "", when[64] = "";
	struct ds_table *t;
	size_t i, njobs = 0;
	int rc, e;

	if ((json_int_t)json_array_size(slots) != nslots) {
		hec_warn("%s: EPOCH %lld has %zu slot entries for nslots %lld; ignored, the schedule stays as it was",
			 ag->conf.name, (long long)epoch, json_array_size(slots), (long long)nslots);
		return;
	}
	if (epoch <= g->last_epoch) {
		hec_warn("%s: EPOCH %lld is not newer than epoch %lld; ignored", ag->conf.name,
			 (long long)epoch, (long long)g->last_epoch);
		return;
	}
	/* A schedule starts a slot or two ahead (or began before: a node that
	 * joins late takes it at its next boundary); one that would start more
	 * than EPOCH_AHEAD_MAX_NS ahead of the controller's clock would keep
	 * the jobs here on the old one all that while. */
	if (g->have_estimate && start - (hec_now_mono_ns() + g->est_offset) > EPOCH_AHEAD_MAX_NS) {
		hec_warn("%s: EPOCH %lld starts %.0f s ahead of the controller's clock (at most %lld s); ignored, the schedule stays as it was",
			 ag->conf.name, (long long)epoch,
			 (double)(start - (hec_now_mono_ns() + g->est_offset)) / 1e9,
			 EPOCH_AHEAD_MAX_NS / 1000000000LL);
		return;
	}
	if (!ag->ops->gate_open || !ag->ops->gate_set || !ag->ops->gate_wait || !ag->ops->gate_close) {
		if (!g->no_gates_warned++)
			hec_err("%s: the %s partition driver has no freeze gates; EPOCHs are ignored and jobs are not time-shared here",
				ag->conf.name, ag->ops->name);
		return;
	}
	for (struct agent_job *j = ag->jobs; j; j = j->next)
		njobs++;
	/* Every job of a row (a partition may still come: LAUNCH after EPOCH),
	 * and the held jobs that have a partition here (nothing else can be
	 * held: a held job ran before): room for nslots + min(jobs, held). */
	t = ds_table_new((int)nslots, (int)nslots + (int)(njobs < json_array_size(frozen) ? njobs : json_array_size(frozen)));
	if (!t) {
		hec_err("%s: EPOCH %lld: out of memory; ignored", ag->conf.name, (long long)epoch);
		return;
	}
	t->n = 0;
	t->epoch = epoch;
	t->start = start;
	t->slot_ns = slot_ns;
	json_array_foreach(slots, i, v) {
		t->slots[i] = (long)json_integer_value(v);
		if (t->slots[i])
			add_entry(t, t->slots[i], 0);
		snprintf(rows + strlen(rows), sizeof(rows) - strlen(rows), "%s%ld", i ? "," : "",
			 t->slots[i]);
	}
	json_array_foreach(frozen, i, v) {
		long id = (long)json_integer_value(v);

		if (!job_here(ag, id)) {
			hec_debug("%s: EPOCH %lld: held job %ld has no partition here", ag->conf.name,
				  (long long)epoch, id);
			continue;
		}
		if ((e = ds_find(t, id)) >= 0 && t->e[e].hold)
			continue; /* listed twice */
		add_entry(t, id, 1);
		snprintf(held + strlen(held), sizeof(held) - strlen(held), "%s%ld", *held ? "," : "", id);
	}
	for (e = 0; e < t->n; e++) {
		struct agent_job *j = job_here(ag, t->e[e].job);

		if (!j) {
			hec_debug("%s: EPOCH %lld: job %ld has no partition here (yet)", ag->conf.name,
				  (long long)epoch, t->e[e].job);
			continue;
		}
		if (open_gate(g, j, &t->e[e].gate, &t->e[e].state))
			t->e[e].gate = NULL;
	}
	rc = start_thread(g);
	if (rc) {
		hec_err("%s: EPOCH %lld: cannot start the gang dispatcher thread: %s; ignored",
			ag->conf.name, (long long)epoch, strerror(-rc));
		close_gates(t);
		ds_table_free(t);
		return;
	}
	g->last_epoch = epoch;
	if (g->have_estimate)
		snprintf(when, sizeof(when), " in %.3f ms",
			 (double)(start - (hec_now_mono_ns() + g->est_offset)) / 1e6);
	else
		snprintf(when, sizeof(when), " (no clock estimate yet)");
	hec_info("%s: epoch %lld: %lld slots of %.3f ms, rows [%s], held [%s], starts%s",
		 ag->conf.name, (long long)epoch, (long long)nslots, (double)slot_ns / 1e6, rows,
		 held, when);
	hand_over(g, t);
}

/* A partition named by the epoch in force (or the next) now exists. */
/* @t names job @id and has no gate for it yet. */
static int wants_gate(const struct ds_table *t, long id)
{
	int i = t ? ds_find(t, id) : -1;

	return i >= 0 && !t->e[i].gate;
}

/* Give @id's entry in @t the gate *@gate if it has none yet (then *@gate is
 * taken: NULL).  \return 1 if installed. */
static int install_gate(struct ds_table *t, long id, struct hec_gate **gate, enum ds_state state)
{
	int i;

	if (!*gate || !wants_gate(t, id))
		return 0;
	i = ds_find(t, id);
	t->e[i].gate = *gate;
	t->e[i].state = state;
	*gate = NULL;
	return 1;
}

void agent_gang_job_ready(struct agent *ag, struct agent_job *j)
{
	struct agent_gang *g = ag->gang;
	struct hec_gate *ga = NULL, *gp = NULL;
	enum ds_state sa = DS_UNKNOWN, sp = DS_UNKNOWN;
	int wa, wp, kick;

	if (!g || j->killing)
		return;
	pthread_mutex_lock(&g->lock);
	wa = wants_gate(g->active, j->id);
	wp = wants_gate(g->pending, j->id);
	pthread_mutex_unlock(&g->lock);
	if (!wa && !wp)
		return;
	if ((wa && open_gate(g, j, &ga, &sa)) || (wp && open_gate(g, j, &gp, &sp))) {
		if (ga)
			hec_gate_close(ga);
		return;
	}
	pthread_mutex_lock(&g->lock);
	kick = install_gate(g->active, j->id, &ga, sa);
	if (install_gate(g->pending, j->id, &gp, sp) && g->clock_valid)
		hold_newcomers(g, g->pending);
	/* The pending epoch may have become the active one while unlocked. */
	kick |= install_gate(g->active, j->id, &gp, sp);
	if (kick) {
		g->kick = 1;
		pthread_cond_signal(&g->wake);
	}
	pthread_mutex_unlock(&g->lock);
	if (ga)
		hec_gate_close(ga);
	if (gp)
		hec_gate_close(gp);
	hec_job_debug(ag->conf.name, j->id, "partition joins the gang schedule");
}

int agent_gang_ctl_to_mono(struct agent *ag, int64_t ctl_ns, int64_t *mono_ns)
{
	struct agent_gang *g = ag->gang;

	if (!g || !g->have_estimate)
		return -EAGAIN;
	*mono_ns = ctl_ns - g->est_offset;
	return 0;
}

int64_t agent_gang_rtt_ns(const struct agent *ag)
{
	const struct agent_gang *g = ag->gang;

	return g && g->have_estimate ? g->est_rtt : 0;
}

/* (a capture's hold spans a few slots at most: more is counted whole) */
#define OWN_MAX_SLOTS 100000

int64_t agent_gang_own_ns(struct agent *ag, long id, int64_t from, int64_t to)
{
	struct agent_gang *g = ag->gang;
	struct ds_table t;
	int64_t own = 0, a, b, k, k1;
	int rows = 0;

	if (to <= from)
		return 0;
	/* (the clock estimate is the loop's own: what the dispatcher was given) */
	if (!g || !g->have_estimate)
		return to - from;
	pthread_mutex_lock(&g->sched_lock);
	t = g->sched;
	pthread_mutex_unlock(&g->sched_lock);
	for (int r = 0; r < t.nslots; r++)
		rows += t.slots[r] == id;
	if (t.slot_ns <= 0 || rows == 0 || rows == t.nslots)
		return to - from;
	a = from + g->est_offset;
	b = to + g->est_offset;
	k = ds_boundary_current(&t, a);
	k1 = ds_boundary_current(&t, b);
	if (a < t.start || k1 - k > OWN_MAX_SLOTS)
		/* (before this schedule began: its slots say nothing of then) */
		return to - from;
	for (; k <= k1; k++) {
		int64_t s = ds_boundary_time(&t, k), e = ds_boundary_time(&t, k + 1);

		if (t.slots[ds_row(&t, k)] != id)
			continue;
		s = s > a ? s : a;
		e = e < b ? e : b;
		if (e > s)
			own += e - s;
	}
	return own;
}

/* Before a partition is killed: the dispatcher must never touch it again. */
void agent_gang_job_forget(struct agent *ag, long id)
{
	struct agent_gang *g = ag->gang;
	struct ds_table *ts[2];

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	ts[0] = g->active;
	ts[1] = g->pending;
	for (int k = 0; k < 2; k++) {
		int i = ts[k] ? ds_find(ts[k], id) : -1;

		if (i >= 0 && ts[k]->e[i].gate) {
			hec_gate_close(ts[k]->e[i].gate);
			ts[k]->e[i].gate = NULL;
		}
	}
	pthread_mutex_unlock(&g->lock);
}

/* ---- STATS ---- */

/* "vm": what each partition with a machine says of it (how a guest is
 * switched, and the costs measured when it booted). */
static json_t *machine_stats(struct agent *ag)
{
	json_t *a = json_array();

	for (struct agent_job *j = ag->jobs; a && j; j = j->next) {
		json_t *o = hec_partition_stats(j->part);

		if (o)
			json_array_append_new(a, o);
	}
	return a;
}

void agent_gang_on_stats_req(struct agent *ag, const json_t *b)
{
	struct agent_gang *g = ag->gang;
	json_int_t req = json_integer_value(json_object_get(b, "req"));
	json_t *sw = json_array(), *usage = json_array(), *body;
	struct gang_switch *copy;
	unsigned n, first;
	int64_t now;

	copy = malloc(RING_SIZE * sizeof(*copy));
	if (!copy || !sw || !usage) {
		free(copy);
		json_decref(sw);
		json_decref(usage);
		hec_err("%s: STATS %lld: out of memory", ag->conf.name, (long long)req);
		return;
	}
	pthread_mutex_lock(&g->ring_lock);
	n = g->ring_count;
	first = (g->ring_next + RING_SIZE - n) % RING_SIZE;
	for (unsigned i = 0; i < n; i++)
		copy[i] = g->ring[(first + i) % RING_SIZE];
	pthread_mutex_unlock(&g->ring_lock);
	for (unsigned i = 0; i < n; i++)
		json_array_append_new(sw, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:i}",
			"epoch", (json_int_t)copy[i].epoch, "boundary", (json_int_t)copy[i].boundary,
			"planned", (json_int_t)copy[i].planned, "actual", (json_int_t)copy[i].actual,
			"freeze_ns", (json_int_t)copy[i].freeze_ns, "thaw_ns", (json_int_t)copy[i].thaw_ns,
			"waited", copy[i].waited));
	free(copy);
	for (struct agent_job *j = ag->jobs; j; j = j->next) {
		unsigned long long usec;

		if (j->part && hec_partition_cpu_usage(j->part, &usec, NULL, 0) == 0)
			json_array_append_new(usage, json_pack("{s:I, s:I}", "job", (json_int_t)j->id,
							      "usec", (json_int_t)usec));
	}
	now = hec_now_mono_ns() + (g->have_estimate ? g->est_offset : 0);
	body = json_pack("{s:I, s:I, s:I, s:I, s:o, s:o}", "req", req,
			 "offset_ns", (json_int_t)(g->have_estimate ? g->est_offset : 0),
			 "rtt_ns", (json_int_t)(g->have_estimate ? g->est_rtt : 0),
			 "now", (json_int_t)(now > 0 ? now : 0), "switches", sw, "usage", usage);
	if (body)
		json_object_set_new(body, "vm", machine_stats(ag));
	agent_ctl_send(ag, HEC_MSG_STATS, body);
}

/* ---- life cycle ---- */

int agent_gang_new(struct agent *ag)
{
	struct agent_gang *g = calloc(1, sizeof(*g));
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;

	if (!g)
		return -ENOMEM;
	g->ag = ag;
	g->ring = calloc(RING_SIZE, sizeof(*g->ring));
	g->burst_timer = event_new(ag->base, -1, EV_PERSIST, burst_timer_cb, g);
	g->probe_timer = evtimer_new(ag->base, probe_timeout_cb, g);
	if (!g->ring || !g->burst_timer || !g->probe_timer)
		goto err_free;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&g->lock, &ma);
	pthread_mutex_init(&g->ring_lock, &ma);
	pthread_mutex_init(&g->sched_lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &ca);
	pthread_condattr_destroy(&ca);
	ag->gang = g;
	return 0;

err_free:
	if (g->probe_timer)
		event_free(g->probe_timer);
	if (g->burst_timer)
		event_free(g->burst_timer);
	free(g->ring);
	free(g);
	return -ENOMEM;
}

void agent_gang_free(struct agent *ag)
{
	struct agent_gang *g = ag->gang;

	if (!g)
		return;
	if (g->thread_up) {
		pthread_mutex_lock(&g->lock);
		g->stop = 1;
		pthread_cond_signal(&g->wake);
		pthread_mutex_unlock(&g->lock);
		pthread_join(g->thread, NULL);
	}
	/*
	 * Jobs outlive an agent stopped by a signal (SHUTDOWN has killed them
	 * already): leave them running, not frozen in whatever slot this was,
	 * except those held (SUSPENDED) for a job of higher priority.
	 */
	struct ds_table *tables[2] = { g->active, g->pending };

	for (int k = 0; k < 2; k++)
		for (int i = 0; tables[k] && i < tables[k]->n; i++) {
			struct ds_entry *e = &tables[k]->e[i];

			if (e->gate && !e->hold && !e->broken && e->state != DS_RUNNING)
				hec_gate_set(e->gate, 0);
		}
	close_gates(g->active);
	ds_table_free(g->active);
	close_gates(g->pending);
	ds_table_free(g->pending);
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->ring_lock);
	pthread_mutex_destroy(&g->sched_lock);
	event_free(g->burst_timer);
	event_free(g->probe_timer);
	free(g->ring);
	free(g);
	ag->gang = NULL;
}
