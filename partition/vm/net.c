/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The job's network (vm.h): every node's agent runs a learning switch for
 * the job (vnet.c) with its guest on one port, QEMU's stream netdev; the
 * first node's switch is the hub, and every other node's links to it over
 * TCP (NET_JOIN, then NET_FRAME data frames, authenticated by the job key,
 * which the host checks on the hub's side).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "hec/common.h"
#include "hec/msg.h"
#include "partition/vm/vm.h"
#include "partition/vm/vnet.h"

/* QEMU's stream netdev: each frame is a 4-byte big-endian length, then it. */
int send_to_guest(void *arg, const uint8_t *frame, size_t len)
{
	struct vm *v = arg;
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			   (uint8_t)len };
	struct evbuffer *out;

	if (!v->q.netq)
		return -ENOTCONN;
	out = bufferevent_get_output(v->q.netq);
	if (evbuffer_get_length(out) > NET_QUEUE_MAX)
		return -ENOBUFS;
	if (evbuffer_add(out, hdr, 4) || evbuffer_add(out, frame, len))
		return -ENOMEM;
	return 0;
}

static int send_to_conn(void *arg, const uint8_t *frame, size_t len)
{
	struct hec_conn *c = arg;

	if (hec_conn_pending(c) > NET_QUEUE_MAX)
		return -ENOBUFS;
	return hec_conn_send_data(c, HEC_MSG_NET_FRAME, frame, len);
}

void net_read(struct bufferevent *bev, void *arg)
{
	struct vm *v = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		uint8_t *p;
		size_t len;

		if (evbuffer_get_length(in) < 4)
			return;
		p = evbuffer_pullup(in, 4);
		len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
		if (len > VNET_FRAME_MAX) {
			vm_fail(v, "QEMU sent a network frame of %zu bytes (at most %d)", len, VNET_FRAME_MAX);
			return;
		}
		if (evbuffer_get_length(in) < 4 + len)
			return;
		p = evbuffer_pullup(in, (ev_ssize_t)(4 + len));
		vnet_input(v->net, v->port_guest, p + 4, len);
		evbuffer_drain(in, 4 + len);
	}
}


static void uplink_msg(struct hec_conn *c, const struct hec_msg *m, void *arg)
{
	struct vm *v = arg;

	(void)c;
	if (m->type == HEC_MSG_NET_FRAME)
		vnet_input(v->net, v->port_uplink, m->data, m->len);
}

static void uplink_retry(struct vm *v);

static void uplink_close(struct hec_conn *c, const char *reason, void *arg)
{
	struct vm *v = arg;

	(void)c;
	vnet_port_del(v->net, v->port_uplink);
	v->port_uplink = 0;
	/* Freed from the timer, not here: we are inside the conn's callback. */
	hec_job_debug(v->host->node, v->job, "link to the job's first node closed: %s",
		      reason ? reason : "EOF");
	if (v->state != VM_DEAD)
		uplink_retry(v);
}


static void uplink_retry(struct vm *v)
{
	struct timeval tv = { 0, UPLINK_RETRY_MS * 1000 };

	evtimer_add(v->timer, &tv);
}

/* Retried until that agent knows the job: LAUNCH reaches the nodes in no
 * particular order. */
void uplink_connect(struct vm *v)
{
	json_t *join;
	int fd;

	if (v->uplink) {
		hec_conn_free(v->uplink);
		v->uplink = NULL;
	}
	fd = hec_connect_tcp(v->hub_addr, 2000);
	if (fd < 0) {
		uplink_retry(v);
		return;
	}
	v->uplink = hec_conn_new(v->host->base, fd, v->hub_addr, uplink_msg, uplink_close, v);
	if (!v->uplink) {
		close(fd);
		uplink_retry(v);
		return;
	}
	v->port_uplink = vnet_port_add(v->net, send_to_conn, v->uplink);
	join = json_pack("{s:I,s:s,s:s}", "job", (json_int_t)v->job, "key", v->key, "node",
			 v->host->node);
	if (v->port_uplink <= 0 || !join || hec_conn_send(v->uplink, HEC_MSG_NET_JOIN, join))
		hec_job_err(v->host->node, v->job, "cannot join the job's network at %s",
			    v->hub_addr);
	json_decref(join);
}

int vm_net_join(struct hec_partition *p, const char *node, struct hec_conn *c, char *why,
		size_t len)
{
	struct vm *v = p->priv;
	int port;

	if (v->state == VM_NONE || v->state == VM_DEAD || !v->net) {
		hec_fmt(why, len, "job %ld: no guest on %s (yet)", p->job,
			p->host ? p->host->node : "this node");
		return -ENOENT;
	}
	if (v->index != 0) {
		hec_fmt(why, len, "job %ld: %s is not the job's first node", v->job, v->host->node);
		return -EINVAL;
	}
	port = vnet_port_add(v->net, send_to_conn, c);
	if (port < 0) {
		hec_fmt(why, len, "job %ld: %s", v->job, strerror(-port));
		return port;
	}
	hec_job_info(v->host->node, v->job, "%s joined the job's network", node);
	return port;
}

void vm_net_frame(struct hec_partition *p, int port, const void *frame, size_t len)
{
	struct vm *v = p->priv;

	if (v->net)
		vnet_input(v->net, port, frame, len);
}

void vm_net_gone(struct hec_partition *p, int port)
{
	struct vm *v = p->priv;

	if (v->net)
		vnet_port_del(v->net, port);
}

int vm_net_hold(struct hec_partition *p, int hold)
{
	struct vm *v = p->priv;
	long long dropped;

	if (!v || !v->net || v->port_guest <= 0)
		return hold ? -ENOTCONN : 0; /* nothing to hold, so nothing held */
	dropped = vnet_port_hold(v->net, v->port_guest, hold);
	if (dropped < 0)
		return (int)dropped;
	if (hold && !v->net_held) {
		v->net_held = 1;
		v->net_held_ns = hec_now_mono_ns();
		hec_job_debug(v->host->node, v->job, "job network held at the guest");
	} else if (!hold && v->net_held) {
		v->net_held = 0;
		hec_job_info(v->host->node, v->job,
			     "job network at the guest released after %.1f ms held: %lld frames dropped",
			     (double)(hec_now_mono_ns() - v->net_held_ns) / 1e6, dropped);
	}
	return 0;
}
