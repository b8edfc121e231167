/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A job's private L2 network inside hecd: a learning Ethernet switch with
 * one port per attached link (the node's QEMU guest, and on the job's first
 * node one port per other node's agent).  Pure logic, no I/O: each port
 * sends through its callback.  See doc/design.md, "vm partitions".
 */
#ifndef HEC_PARTITION_VM_VNET_H
#define HEC_PARTITION_VM_VNET_H

#include <stddef.h>
#include <stdint.h>

#define VNET_MAX_PORTS 4097
#define VNET_MAC_TABLE 1024
#define VNET_FRAME_MIN 14      /* destination, source, EtherType */
#define VNET_FRAME_MAX 65550   /* 64 KiB (QEMU's GSO frames) + header */

struct vnet;

/** Send @len bytes of frame on the port; \return 0, or -errno (the frame is
 *  dropped, as a switch drops on a full queue). */
typedef int (*vnet_send_fn)(void *arg, const uint8_t *frame, size_t len);

struct vnet_stats {
	unsigned long long in, forwarded, flooded, dropped, bad;
	unsigned long long held;       /* dropped at a held port (vnet_port_hold) */
};

struct vnet *vnet_new(void);
void vnet_free(struct vnet *n);
/** \return a port id > 0, or -ENOSPC / -ENOMEM. */
int vnet_port_add(struct vnet *n, vnet_send_fn send, void *arg);
/** Forget port @id and every address learnt on it (idempotent). */
void vnet_port_del(struct vnet *n, int id);
/**
 * Hold (1) or release (0) port @id: while held, every frame arriving on it
 * and every frame the switch would send to it is dropped and counted, as a
 * switch under load drops (a checkpoint's consistent cut, doc/design.md).
 * Holding a held port or releasing a free one changes nothing.  \return the
 * frames dropped at the port since its hold began (on release: the whole
 * hold's), or -ENOENT if there is no such port.
 */
long long vnet_port_hold(struct vnet *n, int id, int hold);
/**
 * A frame arrived on port @from: learn its source address there, then send
 * it to the port that owns its destination, or to every other port when
 * the destination is unknown, broadcast or multicast.  Runts and frames
 * too long are counted as bad and dropped; so are frames from or to a held
 * port, as held.  \return ports it was sent to.
 */
int vnet_input(struct vnet *n, int from, const uint8_t *frame, size_t len);
void vnet_get_stats(const struct vnet *n, struct vnet_stats *st);

#endif
