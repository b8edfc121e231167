/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: rank distribution and node name order of hecctld (launcher/place.c).
 * Queue order and placement are the gang matrix's: tests/unit/test_matrix.c. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "launcher/place.h"
#include "tests/unit/cunit_main.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_ranks(void)
{
	static const struct { int ntasks, nnodes; int want[4]; } cases[] = {
		{ 4, 2, { 2, 2 } },
		{ 5, 2, { 3, 2 } },
		{ 7, 3, { 3, 2, 2 } },
		{ 3, 3, { 1, 1, 1 } },
		{ 10, 4, { 3, 3, 2, 2 } },
		{ 1, 1, { 1 } },
	};

	for (size_t c = 0; c < N(cases); c++) {
		int sum = 0;

		for (int i = 0; i < cases[c].nnodes; i++) {
			int r = place_ranks(cases[c].ntasks, cases[c].nnodes, i);

			CU_ASSERT_EQUAL(r, cases[c].want[i]);
			sum += r;
		}
		CU_ASSERT_EQUAL(sum, cases[c].ntasks);
	}
	CU_ASSERT_EQUAL(place_ranks(4, 2, 2), 0);
	CU_ASSERT_EQUAL(place_ranks(4, 0, 0), 0);
	CU_ASSERT_EQUAL(place_ranks(0, 2, 0), 0);
	CU_ASSERT_EQUAL(place_ranks(4, 2, -1), 0);
}

static void test_name_order(void)
{
	CU_ASSERT(place_name_cmp("node2", "node10") < 0);
	CU_ASSERT(place_name_cmp("node10", "node9") > 0);
	CU_ASSERT(place_name_cmp("node1", "node1") == 0);
	CU_ASSERT(place_name_cmp("a", "b") < 0);
	CU_ASSERT(place_name_cmp("node", "node0") < 0);
	CU_ASSERT(place_name_cmp("rack2-n3", "rack10-n1") < 0);
	CU_ASSERT(place_name_cmp("node01", "node1") != 0); /* total order */
	CU_ASSERT(place_name_cmp("node01", "node2") < 0);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "block rank distribution", test_ranks },
		{ "natural node name order", test_name_order },
		{ NULL, NULL },
	};

	return hec_cunit_run("sched", tests);
}
