/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Clock offset estimation against the controller, NTP style (doc/design.md,
 * "Clock").  Pure arithmetic: hecd's gang code sends the probes.
 *
 * A probe is four instants: t1 the agent sends (its CLOCK_MONOTONIC), t2 the
 * controller receives and t3 it answers (its CLOCK_REALTIME), t4 the agent
 * receives.  With d the network delay each way,
 *   rtt    = (t4 - t1) - (t3 - t2)
 *   offset = ((t2 - t1) + (t3 - t4)) / 2,   controller time = mono + offset
 * and the offset's error is at most rtt / 2 (all of the asymmetry), so of a
 * burst of probes the one with the smallest rtt is kept.
 */
#ifndef HEC_AGENT_CLOCK_H
#define HEC_AGENT_CLOCK_H

#include <stdint.h>

struct clock_sample {
	int64_t t1, t2, t3, t4;
};

/* Larger offsets are refused: mono + offset must stay far from overflow. */
#define CLOCK_OFFSET_MAX (1LL << 62)

/** Offset and round-trip time of one probe.  \return 0, or -EINVAL for
 *  instants that cannot be (t4 < t1, t3 < t2, a negative rtt, or an offset
 *  beyond CLOCK_OFFSET_MAX). */
int clock_sample_eval(const struct clock_sample *s, int64_t *offset, int64_t *rtt);

/** The best probe of one burst so far. */
struct clock_burst {
	int nsamples;          /* valid probes added */
	int64_t offset, rtt;   /* of the minimum-rtt probe, when nsamples > 0 */
};

void clock_burst_reset(struct clock_burst *b);
/** Add a probe; \return 0, or -EINVAL (the probe is ignored). */
int clock_burst_add(struct clock_burst *b, const struct clock_sample *s);

#endif
