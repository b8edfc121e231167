/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The learning switch of a job's private network (vnet.h).  A handful of
 * ports per job, so ports are an array and the address table is a small
 * open-addressed hash; a port that goes away takes its addresses along.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "partition/vm/vnet.h"

struct port {
	int id;                 /* 0: free slot */
	vnet_send_fn send;
	void *arg;
	int held;
	unsigned long long held_drops; /* since the hold began */
};

struct mac_ent {
	uint8_t mac[6];
	int port;               /* 0: empty */
};

struct vnet {
	struct port *ports;
	int nports, cap, next_id;
	struct mac_ent table[VNET_MAC_TABLE];
	struct vnet_stats st;
};

struct vnet *vnet_new(void)
{
	struct vnet *n = calloc(1, sizeof(*n));

	if (n)
		n->next_id = 1;
	return n;
}

void vnet_free(struct vnet *n)
{
	if (!n)
		return;
	free(n->ports);
	free(n);
}

int vnet_port_add(struct vnet *n, vnet_send_fn send, void *arg)
{
	struct port *p = NULL;

	for (int i = 0; i < n->nports; i++)
		if (!n->ports[i].id) {
			p = &n->ports[i];
			break;
		}
	if (!p) {
		if (n->nports >= VNET_MAX_PORTS)
			return -ENOSPC;
		if (n->nports == n->cap) {
			int cap = n->cap ? n->cap * 2 : 4;
			struct port *grown = realloc(n->ports, (size_t)cap * sizeof(*grown));

			if (!grown)
				return -ENOMEM;
			n->ports = grown;
			n->cap = cap;
		}
		p = &n->ports[n->nports++];
	}
	p->id = n->next_id++;
	if (n->next_id <= 0) /* wrapped after 2^31 attachments: ids stay positive */
		n->next_id = 1;
	p->send = send;
	p->arg = arg;
	p->held = 0;
	p->held_drops = 0;
	return p->id;
}

static struct port *port_get(struct vnet *n, int id)
{
	for (int i = 0; i < n->nports; i++)
		if (n->ports[i].id == id)
			return &n->ports[i];
	return NULL;
}

static unsigned mac_hash(const uint8_t *mac)
{
	unsigned h = 2166136261u;

	for (int i = 0; i < 6; i++)
		h = (h ^ mac[i]) * 16777619u;
	return h % VNET_MAC_TABLE;
}

/* Linear probing; removing a port clears its entries and rehashes the rest
 * of the table, which is rare (a link went away) and small. */
static struct mac_ent *mac_find(struct vnet *n, const uint8_t *mac)
{
	unsigned h = mac_hash(mac);

	for (unsigned k = 0; k < VNET_MAC_TABLE; k++) {
		struct mac_ent *e = &n->table[(h + k) % VNET_MAC_TABLE];

		if (!e->port || !memcmp(e->mac, mac, 6))
			return e;
	}
	return NULL; /* full and not there */
}

static void mac_learn(struct vnet *n, const uint8_t *mac, int port)
{
	struct mac_ent *e;

	if (mac[0] & 1)
		return; /* a multicast source is bogus: never learn it */
	e = mac_find(n, mac);
	if (!e)
		return; /* table full: such frames are flooded, still delivered */
	memcpy(e->mac, mac, 6);
	e->port = port;
}

void vnet_port_del(struct vnet *n, int id)
{
	struct mac_ent old[VNET_MAC_TABLE];
	struct port *p = port_get(n, id);

	if (!p)
		return;
	p->id = 0;
	memcpy(old, n->table, sizeof(old));
	memset(n->table, 0, sizeof(n->table));
	for (int i = 0; i < VNET_MAC_TABLE; i++)
		if (old[i].port && old[i].port != id)
			mac_learn(n, old[i].mac, old[i].port);
}

long long vnet_port_hold(struct vnet *n, int id, int hold)
{
	struct port *p = port_get(n, id);

	if (!p)
		return -ENOENT;
	if (hold && !p->held)
		p->held_drops = 0;
	p->held = !!hold;
	return (long long)p->held_drops;
}

/* Send on @p unless it is held. */
static int port_send(struct vnet *n, struct port *p, const uint8_t *frame, size_t len)
{
	if (p->held) {
		p->held_drops++;
		n->st.held++;
		return -EAGAIN;
	}
	if (p->send(p->arg, frame, len) == 0)
		return 0;
	n->st.dropped++;
	return -ENOBUFS;
}

int vnet_input(struct vnet *n, int from, const uint8_t *frame, size_t len)
{
	struct port *in;
	const uint8_t *dst = frame, *src = frame + 6;
	struct mac_ent *e;
	int sent = 0;

	n->st.in++;
	if (len < VNET_FRAME_MIN || len > VNET_FRAME_MAX || !(in = port_get(n, from))) {
		n->st.bad++;
		return 0;
	}
	if (in->held) {
		/* not learnt either: the frame never entered the switch */
		in->held_drops++;
		n->st.held++;
		return 0;
	}
	mac_learn(n, src, from);
	e = (dst[0] & 1) ? NULL : mac_find(n, dst);
	if (e && e->port) {
		struct port *p = port_get(n, e->port);

		if (e->port == from)
			return 0; /* both ends on one port: not ours to deliver */
		if (!p) {
			n->st.dropped++;
			return 0;
		}
		if (port_send(n, p, frame, len))
			return 0;
		n->st.forwarded++;
		return 1;
	}
	for (int i = 0; i < n->nports; i++) {
		struct port *p = &n->ports[i];

		if (!p->id || p->id == from)
			continue;
		if (port_send(n, p, frame, len) == 0)
			sent++;
	}
	n->st.flooded++;
	return sent;
}

void vnet_get_stats(const struct vnet *n, struct vnet_stats *st)
{
	*st = n->st;
}
