/* SPDX-License-Identifier: BSD-3-Clause */
/* Rank distribution and node name order (see sched.h). */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "place.h"

int place_ranks(int ntasks, int nnodes, int i)
{
	if (ntasks < 1 || nnodes < 1 || i < 0 || i >= nnodes)
		return 0;
	return ntasks / nnodes + (i < ntasks % nnodes ? 1 : 0);
}

int place_name_cmp(const char *a, const char *b)
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
