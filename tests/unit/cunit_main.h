/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared CUnit runner: one suite per test program, automake exit codes. */
#ifndef HEC_CUNIT_MAIN_H
#define HEC_CUNIT_MAIN_H

#include <stdio.h>
#include <CUnit/Basic.h>

struct hec_cunit_test {
	const char *name;
	void (*fn)(void);
};

/* Runs the tests; \return 0 if all passed, 1 if any failed, 99 on a CUnit error. */
static inline int hec_cunit_run(const char *suite_name, const struct hec_cunit_test *tests)
{
	CU_pSuite suite;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	suite = CU_add_suite(suite_name, NULL, NULL);
	if (!suite)
		goto err;
	for (; tests->name; tests++)
		if (!CU_add_test(suite, tests->name, tests->fn))
			goto err;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
err:
	fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
	CU_cleanup_registry();
	return 99;
}

#endif
