/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A QMP monitor driven synchronously, for the paths that must not wait on
 * the event loop: the gang dispatcher's gates (QMP stop/cont), a guest
 * stopped for its capture, and the vm-switch benchmark.  One command in flight at a time, under the
 * monitor's lock, so that the dispatcher thread and the event loop may
 * share it; every wait is bounded.  Events arriving meanwhile are skipped.
 * Lines are parsed with jansson.
 */
#ifndef HEC_QMP_H
#define HEC_QMP_H

#include <stddef.h>

struct qmp_mon;

/**
 * Take over @fd, a connected QMP monitor that has just been opened: read
 * the greeting and negotiate capabilities within @timeout_ms.
 * \return 0 with *@out (one reference), or -errno (-EPROTO: not QMP); @fd
 * is closed on failure.
 */
int qmp_mon_open(int fd, int timeout_ms, struct qmp_mon **out);
void qmp_mon_get(struct qmp_mon *m);
/** Drop a reference; the last one closes the monitor.  NULL is fine. */
void qmp_mon_put(struct qmp_mon *m);

/**
 * Run one command (a JSON object, e.g. {"execute":"query-status"}) and
 * wait @timeout_ms for its answer; the "return" line is copied to @reply
 * (may be NULL).  \return 0, -EIO (QEMU answered "error": its line is in
 * @reply), -ETIMEDOUT, -ECONNRESET.
 */
int qmp_mon_command(struct qmp_mon *m, const char *cmd, char *reply, size_t len, int timeout_ms);

/**
 * Gate use: ask for the vCPUs stopped (1) or running (0) without waiting
 * for the answer; qmp_mon_wait() then waits up to @timeout_us for the state
 * asked for (0), or reports -ETIMEDOUT.  A wait with no command in flight
 * answers from the last confirmed state at once.
 */
int qmp_mon_set(struct qmp_mon *m, int stopped);
int qmp_mon_wait(struct qmp_mon *m, int stopped, long timeout_us);

/**
 * qmp_mon_set() that never waits, for the gang dispatcher and the event
 * loop: -EAGAIN at once, with nothing sent, while the command before is
 * unanswered (a QEMU whose main loop stands still answers nothing) or
 * another thread is in the monitor.  qmp_mon_wait() waits for its lock
 * within its own @timeout_us only.
 */
int qmp_mon_try_set(struct qmp_mon *m, int stopped);

/**
 * The vCPUs were stopped (1) or resumed (0) through another monitor, and
 * QEMU has answered there: the last confirmed state is that, and a
 * stop/cont of ours still in flight, sent before, is taken as overruled
 * (its answer, when it comes, confirms @stopped).
 */
void qmp_mon_assume(struct qmp_mon *m, int stopped);

#endif
