/* CUnit: the guest channel codec (common/guest.c). */
#include "config.h"

#include <errno.h>
#include "hec/guest.h"
#include "tests/unit/cunit_main.h"

static void test_placeholder(void)
{
	CU_ASSERT_EQUAL(hec_guest_decode((const uint8_t *)"X", 1, NULL), -EPROTO);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "placeholder", test_placeholder },
		{ NULL, NULL },
	};

	return hec_cunit_run("guest", tests);
}
