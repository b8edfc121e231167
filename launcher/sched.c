/* Queue order and whole-node placement (see sched.h). */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

int sched_job_cmp(const struct sched_job *a, const struct sched_job *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority ? -1 : 1;
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	return 0;
}

static int job_qsort_cmp(const void *a, const void *b)
{
	return sched_job_cmp(a, b);
}

void sched_sort(struct sched_job *jobs, size_t njobs)
{
	/* Ids are unique, so the order is total and qsort's instability is moot. */
	if (njobs > 1)
		qsort(jobs, njobs, sizeof(*jobs), job_qsort_cmp);
}

size_t sched_plan(struct sched_node *nodes, size_t nnodes,
		  const struct sched_job *jobs, size_t njobs, size_t *alloc)
{
	size_t started = 0, used = 0, idle = 0, i;

	for (i = 0; i < nnodes; i++)
		idle += nodes[i].idle ? 1 : 0;
	for (started = 0; started < njobs; started++) {
		const struct sched_job *j = &jobs[started];
		size_t want, got = 0;

		if (j->nodes < 1 || (size_t)j->nodes > idle)
			break; /* head of line blocks everything behind it */
		want = (size_t)j->nodes;
		for (i = 0; i < nnodes && got < want; i++) {
			if (!nodes[i].idle)
				continue;
			nodes[i].idle = 0;
			alloc[used++] = i;
			got++;
		}
		idle -= want;
	}
	return started;
}

const char *sched_pending_reason(size_t pos, size_t nstarted)
{
	return pos == nstarted ? "Resources" : "Priority";
}

int sched_ranks(int ntasks, int nnodes, int i)
{
	if (ntasks < 1 || nnodes < 1 || i < 0 || i >= nnodes)
		return 0;
	return ntasks / nnodes + (i < ntasks % nnodes ? 1 : 0);
}

int sched_name_cmp(const char *a, const char *b)
{
	const char *a0 = a, *b0 = b;

	while (*a && *b) {
		if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
			const char *sa, *sb;
			size_t la, lb;
			int c;

			/* Compare digit runs as numbers: skip leading zeros, then
			 * the longer run is bigger, else compare digit by digit. */
			while (*a == '0' && isdigit((unsigned char)a[1]))
				a++;
			while (*b == '0' && isdigit((unsigned char)b[1]))
				b++;
			for (sa = a; isdigit((unsigned char)*a); a++)
				;
			for (sb = b; isdigit((unsigned char)*b); b++)
				;
			la = (size_t)(a - sa);
			lb = (size_t)(b - sb);
			if (la != lb)
				return la < lb ? -1 : 1;
			c = memcmp(sa, sb, la);
			if (c)
				return c < 0 ? -1 : 1;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	if (*a || *b)
		return *a ? 1 : -1;
	/* "node01" and "node1" are equal as numbers: keep the order total. */
	return strcmp(a0, b0) < 0 ? -1 : strcmp(a0, b0) > 0;
}
