/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * CUnit: the synchronous QMP monitor's calls that must never wait
 * (common/qmp.c, hec/qmp.h): qmp_mon_try_set() on a QEMU that does not
 * answer, and qmp_mon_assume().  QEMU is played by the test on the other
 * end of a socket pair.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/qmp.h"
#include "tests/unit/cunit_main.h"

/* What "at once" means here, against the 2 s a waiting call may take. */
#define AT_ONCE_NS 500000000LL

static struct qmp_mon *mon;
static int qemu = -1; /* our end: QEMU's side of the monitor */

static void say(const char *line)
{
	CU_ASSERT_EQUAL(hec_write_all(qemu, line, strlen(line)), 0);
}

/* The next command the monitor sent, or "" if none is there now. */
static void heard(char *out, size_t len)
{
	struct pollfd pfd = { .fd = qemu, .events = POLLIN };
	ssize_t n = 0;

	out[0] = 0;
	if (poll(&pfd, 1, 0) == 1) {
		n = read(qemu, out, len - 1);
		out[n > 0 ? n : 0] = 0;
	}
}

static void open_mon(void)
{
	char buf[256];
	int sv[2];

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	qemu = sv[1];
	/* the greeting, and the answer to qmp_capabilities ahead of time */
	say("{\"QMP\":{\"version\":{}}}\n{\"return\":{}}\n");
	CU_ASSERT_FATAL(qmp_mon_open(sv[0], 1000, &mon) == 0);
	heard(buf, sizeof(buf));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "qmp_capabilities"));
}

static void close_mon(void)
{
	qmp_mon_put(mon);
	mon = NULL;
	close(qemu);
	qemu = -1;
}

static void test_try_set_unanswered(void)
{
	char buf[256];
	int64_t t0;

	open_mon();
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 1), 0);
	heard(buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "{\"execute\":\"stop\"}\n");
	/* QEMU answers nothing: nothing more is sent, and nobody waits */
	t0 = hec_now_mono_ns();
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 0), -EAGAIN);
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 1), -EAGAIN);
	CU_ASSERT(hec_now_mono_ns() - t0 < AT_ONCE_NS);
	heard(buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 1, 0), -ETIMEDOUT);
	/* an event, then the answer: the stop is settled, the cont goes out */
	say("{\"event\":\"STOP\",\"timestamp\":{\"seconds\":1,\"microseconds\":2}}\n{\"return\":{}}\n");
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 0), 0);
	heard(buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "{\"execute\":\"cont\"}\n");
	say("{\"return\":{}}\n");
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 0, 1000000), 0);
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 1, 0), -ETIMEDOUT);
	close_mon();
}

static void test_assume(void)
{
	char buf[256];

	open_mon();
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 1), 0);
	heard(buf, sizeof(buf));
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 1, 0), -ETIMEDOUT);
	say("{\"return\":{}}\n");
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 1, 1000000), 0);
	/* resumed through another monitor */
	qmp_mon_assume(mon, 0);
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 0, 0), 0);
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 1, 0), -ETIMEDOUT);
	/* a stop of ours in flight, overruled by a cont elsewhere */
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 1), 0);
	heard(buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "{\"execute\":\"stop\"}\n");
	qmp_mon_assume(mon, 0);
	say("{\"return\":{}}\n");
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 0, 1000000), 0);
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 1, 0), -ETIMEDOUT);
	close_mon();
}

static void *waiter(void *arg)
{
	(void)arg;
	/* waits for an answer that comes only when the test says so */
	return (void *)(intptr_t)qmp_mon_wait(mon, 1, 5000000);
}

static void test_busy_elsewhere(void)
{
	pthread_t th;
	void *rc;
	int64_t t0;

	open_mon();
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 1), 0);
	CU_ASSERT_FATAL(pthread_create(&th, NULL, waiter, NULL) == 0);
	usleep(100000); /* (whether it holds the lock yet or not, nothing is answered) */
	t0 = hec_now_mono_ns();
	CU_ASSERT_EQUAL(qmp_mon_try_set(mon, 0), -EAGAIN);
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 0, 0), -ETIMEDOUT);
	CU_ASSERT_EQUAL(qmp_mon_wait(mon, 0, 10000), -ETIMEDOUT);
	CU_ASSERT(hec_now_mono_ns() - t0 < AT_ONCE_NS);
	say("{\"return\":{}}\n");
	pthread_join(th, &rc);
	CU_ASSERT_EQUAL((intptr_t)rc, 0);
	close_mon();
}

static const struct hec_cunit_test tests[] = {
	{ "try_set on a QEMU that does not answer", test_try_set_unanswered },
	{ "assume: resumed through another monitor", test_assume },
	{ "try_set and wait while another thread waits", test_busy_elsewhere },
	{ NULL, NULL },
};

int main(void)
{
	return hec_cunit_run("qmp_mon", tests);
}
