/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The job network's learning switch (partition/vm/vnet.c): flooding until an
 * address is learnt, then one port only; broadcast and multicast always
 * flood; a port that goes away takes its addresses; bad frames are
 * counted and dropped; a full queue drops without harm; a held port neither
 * sends nor receives until released, and counts what it dropped.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "partition/vm/vnet.h"
#include "tests/unit/cunit_main.h"

#define NPORTS 4

struct sink {
	int got;
	size_t len;
	uint8_t last[64];
	int fail;               /* send returns -ENOBUFS */
};

static struct sink sinks[NPORTS];

static int sink_send(void *arg, const uint8_t *frame, size_t len)
{
	struct sink *s = arg;

	if (s->fail)
		return -ENOBUFS;
	s->got++;
	s->len = len;
	memcpy(s->last, frame, len < sizeof(s->last) ? len : sizeof(s->last));
	return 0;
}

/* A 60-byte frame from MAC ..:src to MAC ..:dst (0xff: broadcast). */
static void frame(uint8_t *f, uint8_t dst, uint8_t src)
{
	memset(f, 0, 60);
	if (dst == 0xff)
		memset(f, 0xff, 6);
	else
		memcpy(f, (uint8_t[]){ 0x52, 0x54, 0, 0, 0, dst }, 6);
	memcpy(f + 6, (uint8_t[]){ 0x52, 0x54, 0, 0, 0, src }, 6);
	f[12] = 0x08; /* IPv4 */
}

static void reset(void)
{
	memset(sinks, 0, sizeof(sinks));
}

static struct vnet *make(int *ports)
{
	struct vnet *n = vnet_new();

	CU_ASSERT_PTR_NOT_NULL_FATAL(n);
	for (int i = 0; i < NPORTS; i++) {
		ports[i] = vnet_port_add(n, sink_send, &sinks[i]);
		CU_ASSERT(ports[i] > 0);
	}
	reset();
	return n;
}

static void test_learn(void)
{
	int p[NPORTS];
	struct vnet *n = make(p);
	uint8_t f[60];

	/* unknown destination: everyone but the sender */
	frame(f, 2, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), NPORTS - 1);
	CU_ASSERT_EQUAL(sinks[0].got, 0);
	CU_ASSERT_EQUAL(sinks[1].got, 1);
	CU_ASSERT_EQUAL(sinks[3].got, 1);
	CU_ASSERT_EQUAL(sinks[1].len, sizeof(f));
	CU_ASSERT(memcmp(sinks[1].last, f, sizeof(f)) == 0);
	/* the answer goes to port 0 alone: it learnt MAC 1 there */
	reset();
	frame(f, 1, 2);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[0].got, 1);
	CU_ASSERT_EQUAL(sinks[2].got + sinks[3].got + sinks[1].got, 0);
	/* and now MAC 2 is known at port 1 */
	reset();
	frame(f, 2, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[1].got, 1);
	CU_ASSERT_EQUAL(sinks[2].got, 0);
	/* broadcast floods even with everything learnt */
	reset();
	frame(f, 0xff, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), NPORTS - 1);
	vnet_free(n);
}

static void test_move_and_delete(void)
{
	int p[NPORTS];
	struct vnet *n = make(p);
	uint8_t f[60];
	struct vnet_stats st;

	frame(f, 9, 1);
	vnet_input(n, p[0], f, sizeof(f)); /* MAC 1 at port 0 */
	frame(f, 9, 1);
	vnet_input(n, p[2], f, sizeof(f)); /* MAC 1 moved to port 2 */
	reset();
	frame(f, 1, 3);
	CU_ASSERT_EQUAL(vnet_input(n, p[3], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[2].got, 1);
	CU_ASSERT_EQUAL(sinks[0].got, 0);
	/* port 2 goes: MAC 1 is unknown again, so frames to it flood the rest */
	vnet_port_del(n, p[2]);
	vnet_port_del(n, p[2]); /* idempotent */
	reset();
	CU_ASSERT_EQUAL(vnet_input(n, p[3], f, sizeof(f)), 2);
	CU_ASSERT_EQUAL(sinks[2].got, 0);
	CU_ASSERT_EQUAL(sinks[0].got + sinks[1].got, 2);
	/* a frame from a port that is gone is bad */
	vnet_get_stats(n, &st);
	CU_ASSERT_EQUAL(vnet_input(n, p[2], f, sizeof(f)), 0);
	{
		struct vnet_stats st2;

		vnet_get_stats(n, &st2);
		CU_ASSERT_EQUAL(st2.bad, st.bad + 1);
	}
	/* the freed slot is reused with a new id */
	CU_ASSERT(vnet_port_add(n, sink_send, &sinks[2]) > p[NPORTS - 1]);
	vnet_free(n);
}

static void test_bad_frames(void)
{
	int p[NPORTS];
	struct vnet *n = make(p);
	static uint8_t big[VNET_FRAME_MAX + 1];
	uint8_t f[60];
	struct vnet_stats st;

	frame(f, 2, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, VNET_FRAME_MIN - 1), 0);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], big, sizeof(big)), 0);
	CU_ASSERT_EQUAL(vnet_input(n, 12345, f, sizeof(f)), 0);
	vnet_get_stats(n, &st);
	CU_ASSERT_EQUAL(st.bad, 3);
	CU_ASSERT_EQUAL(sinks[1].got + sinks[2].got + sinks[3].got, 0);
	/*
	 * A multicast source is never learnt.  Frames to a multicast address
	 * flood anyway, so what shows it is the table: a table's worth of
	 * multicast sources must leave it empty, so that a unicast address
	 * seen afterwards is still learnt, and a reply to it goes to its port
	 * alone (were they learnt, the table would be full, and it would flood).
	 */
	for (int i = 0; i < VNET_MAC_TABLE; i++) {
		frame(f, 0xff, 1);
		memcpy(f + 6, (uint8_t[]){ 0x01, 0x54, 0, 0, (uint8_t)(i >> 8), (uint8_t)i }, 6);
		vnet_input(n, p[0], f, sizeof(f));
	}
	frame(f, 0xff, 7);
	vnet_input(n, p[2], f, sizeof(f)); /* MAC 7 at port 2 */
	reset();
	frame(f, 7, 2);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[2].got, 1);
	CU_ASSERT_EQUAL(sinks[0].got + sinks[1].got + sinks[3].got, 0);
	vnet_free(n);
}

static void test_full_queue(void)
{
	int p[NPORTS];
	struct vnet *n = make(p);
	uint8_t f[60];
	struct vnet_stats st;

	sinks[1].fail = 1;
	frame(f, 2, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), NPORTS - 2);
	vnet_get_stats(n, &st);
	CU_ASSERT_EQUAL(st.dropped, 1);
	CU_ASSERT_EQUAL(st.flooded, 1);
	vnet_free(n);
}

static void test_hold(void)
{
	int p[NPORTS];
	struct vnet *n = make(p);
	uint8_t f[60];
	struct vnet_stats st;

	/* learn MAC 1 at port 0 and MAC 2 at port 1 */
	frame(f, 0xff, 1);
	vnet_input(n, p[0], f, sizeof(f));
	frame(f, 0xff, 2);
	vnet_input(n, p[1], f, sizeof(f));
	reset();
	CU_ASSERT_EQUAL(vnet_port_hold(n, p[0], 1), 0);
	CU_ASSERT_EQUAL(vnet_port_hold(n, p[0], 1), 0); /* held already: nothing changes */
	CU_ASSERT_EQUAL(vnet_port_hold(n, 12345, 1), -ENOENT);
	/* from the held port: dropped, delivered nowhere */
	frame(f, 2, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), 0);
	frame(f, 0xff, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), 0);
	CU_ASSERT_EQUAL(sinks[1].got + sinks[2].got + sinks[3].got, 0);
	/* to the held port: dropped; the others get theirs */
	frame(f, 1, 2);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), 0);
	CU_ASSERT_EQUAL(sinks[0].got, 0);
	frame(f, 0xff, 2);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), NPORTS - 2);
	CU_ASSERT_EQUAL(sinks[0].got, 0);
	CU_ASSERT_EQUAL(sinks[2].got, 1);
	CU_ASSERT_EQUAL(sinks[3].got, 1);
	/* between other ports, as before */
	frame(f, 2, 3);
	CU_ASSERT_EQUAL(vnet_input(n, p[2], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[1].got, 1);
	vnet_get_stats(n, &st);
	CU_ASSERT_EQUAL(st.held, 4);
	CU_ASSERT_EQUAL(st.dropped, 0);
	/* a frame from the held port taught nothing: MAC 9 stays unknown */
	frame(f, 2, 9);
	vnet_input(n, p[0], f, sizeof(f));
	reset();
	frame(f, 9, 2);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), NPORTS - 2);
	/* release: the hold's drops, and traffic flows both ways again */
	CU_ASSERT_EQUAL(vnet_port_hold(n, p[0], 0), 6);
	CU_ASSERT_EQUAL(vnet_port_hold(n, p[0], 0), 6); /* idempotent */
	reset();
	frame(f, 2, 1);
	CU_ASSERT_EQUAL(vnet_input(n, p[0], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[1].got, 1);
	frame(f, 1, 2);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), 1);
	CU_ASSERT_EQUAL(sinks[0].got, 1);
	/* a new hold counts from zero */
	CU_ASSERT_EQUAL(vnet_port_hold(n, p[0], 1), 0);
	CU_ASSERT_EQUAL(vnet_input(n, p[1], f, sizeof(f)), 0);
	CU_ASSERT_EQUAL(vnet_port_hold(n, p[0], 0), 1);
	vnet_free(n);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "learning and forwarding", test_learn },
		{ "a moved address and a deleted port", test_move_and_delete },
		{ "runts, giants, unknown ports, multicast sources", test_bad_frames },
		{ "a full link drops", test_full_queue },
		{ "a held port drops what comes from it and goes to it", test_hold },
		{ NULL, NULL },
	};

	return hec_cunit_run("vnet", tests);
}
