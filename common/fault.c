/* SPDX-License-Identifier: BSD-3-Clause */
/* Fault injection points for tests (include/hec/fault.h). */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/fault.h"

int hec_fault_named(const char *list, const char *point)
{
	size_t len = strlen(point);

	for (const char *p = list; p && *p;) {
		size_t n = strcspn(p, ",");

		if (n == len && !strncmp(p, point, len))
			return 1;
		p += n + (p[n] == ',');
	}
	return 0;
}

void hec_fault(const char *point)
{
	if (!hec_fault_named(getenv("HEC_FAULT"), point))
		return;
	hec_warn("fault injection: dying at %s (HEC_FAULT)", point);
	kill(getpid(), SIGKILL);
	_exit(137); /* not reached */
}
