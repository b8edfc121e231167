/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault injection for tests (doc/design.md, "Crash windows").
 *
 * A daemon calls hec_fault("ctl.start.after_db") at a point where dying
 * matters: between a catalog write and the message it stands for.  Inert
 * unless the environment variable HEC_FAULT names that point (a
 * comma-separated list may name several); then the process logs the point
 * and kills itself with SIGKILL, as `kill -9` would: no buffered message
 * goes out, no exit handler runs.  Tests set HEC_FAULT on one daemon they
 * start by hand (tests/integration/ctl_crash_windows.sh).
 */
#ifndef HEC_FAULT_H
#define HEC_FAULT_H

/** 1 if HEC_FAULT names @point (@list: the variable's value, may be NULL). */
int hec_fault_named(const char *list, const char *point);
/** Die by SIGKILL here if HEC_FAULT names @point; else return at once. */
void hec_fault(const char *point);

#endif
