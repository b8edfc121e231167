/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What backs a vm guest's RAM (partition/vm/qemu.c, hecd's vm_hugepages):
 * the choice between 2 MiB hugetlb pages and anonymous memory for each
 * mode and pool, and a start refused, naming the cause, when on cannot be
 * met, before anything is made.  Pure code.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"
#include "tests/unit/cunit_main.h"

static void test_choose_auto(void)
{
	char why[256];

	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_AUTO, 1024, 512, why, sizeof(why)), 1);
	CU_ASSERT_STRING_EQUAL(why, "");
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_AUTO, 1024, 511, why, sizeof(why)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "1024 MB of RAM need 512 free 2 MiB huge pages, 511 are"));
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_AUTO, 256, 0, why, sizeof(why)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "need 128 free"));
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_AUTO, 257, 1000, why, sizeof(why)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "257 MB of RAM are not a whole number of 2 MiB huge pages"));
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_AUTO, 256, -1, why, sizeof(why)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "no 2 MiB huge pages"));
}

static void test_choose_on(void)
{
	char why[256];

	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_ON, 256, 128, why, sizeof(why)), 1);
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_ON, 256, 127, why, sizeof(why)), -ENOMEM);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "256 MB of RAM need 128 free 2 MiB huge pages, 127 are"));
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_ON, 255, 1000, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "255 MB"));
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_ON, 256, -1, why, sizeof(why)), -EOPNOTSUPP);
}

static void test_choose_off(void)
{
	char why[256] = "x";

	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_OFF, 256, 100000, why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(why, "");
	CU_ASSERT_EQUAL(ram_huge_choose(HEC_VM_HUGE_OFF, 255, -1, why, sizeof(why)), 0);
}

/* on, for RAM no number of huge pages holds: refused before QEMU or any
 * socket, with the setting and the cause in the reason. */
static void test_start_refused(void)
{
	struct hec_part_host host = { .node = "node0", .vm_hugepages = HEC_VM_HUGE_ON };
	struct vm v;
	char why[512] = "";
	int has2m = access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK) == 0;

	memset(&v, 0, sizeof(v));
	v.host = &host;
	v.mem_mb = 255;
	v.job = 3;
	for (int i = 0; i < NLISTEN; i++)
		v.lfd[i] = -1;
	hec_fmt(v.dir, sizeof(v.dir), "/nonexistent/hec-test-vm-ram");
	CU_ASSERT_EQUAL(start_qemu(&v, why, sizeof(why)), has2m ? -EINVAL : -EOPNOTSUPP);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "vm_hugepages = on: "));
	if (has2m)
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "255 MB of RAM are not a whole number"));
	CU_ASSERT_EQUAL(v.q.pid, 0);
	for (int i = 0; i < NLISTEN; i++)
		CU_ASSERT_EQUAL(v.lfd[i], -1);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "auto: huge pages where enough are free, else anonymous", test_choose_auto },
		{ "on: huge pages or the reason", test_choose_on },
		{ "off: anonymous", test_choose_off },
		{ "on refused before anything starts", test_start_refused },
		{ NULL, NULL },
	};

	return hec_cunit_run("vm_ram", tests);
}
