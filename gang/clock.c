/* SPDX-License-Identifier: BSD-3-Clause */
/* Clock offset estimation: see gang/clock.h. */
#include "config.h"

#include <errno.h>

#include "gang/clock.h"

int clock_sample_eval(const struct clock_sample *s, int64_t *offset, int64_t *rtt)
{
	int64_t r, off;

	if (s->t4 < s->t1 || s->t3 < s->t2)
		return -EINVAL;
	r = (s->t4 - s->t1) - (s->t3 - s->t2);
	if (r < 0)
		return -EINVAL;
	/* Halve each term first: the sum of two epoch-sized differences could
	 * approach the int64 range; the remainders keep the exact result. */
	off = (s->t2 - s->t1) / 2 + (s->t3 - s->t4) / 2 +
	      ((s->t2 - s->t1) % 2 + (s->t3 - s->t4) % 2) / 2;
	if (off > CLOCK_OFFSET_MAX || off < -CLOCK_OFFSET_MAX)
		return -EINVAL;
	*offset = off;
	*rtt = r;
	return 0;
}

void clock_burst_reset(struct clock_burst *b)
{
	b->nsamples = 0;
	b->offset = 0;
	b->rtt = 0;
}

int clock_burst_add(struct clock_burst *b, const struct clock_sample *s)
{
	int64_t off, rtt;
	int rc = clock_sample_eval(s, &off, &rtt);

	if (rc)
		return rc;
	if (b->nsamples == 0 || rtt < b->rtt) {
		b->offset = off;
		b->rtt = rtt;
	}
	b->nsamples++;
	return 0;
}
