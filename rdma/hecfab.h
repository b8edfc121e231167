/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rdma/hecfab.h: hec's thin layer over libfabric for checkpoint storage.
 *
 * One shape on every network: connected FI_EP_MSG endpoints with
 *   - small control messages (one hec frame each, see include/hec/msg.h),
 *     received into buffers the layer keeps posted, and
 *   - one-sided RMA writes and reads into memory the peer registered.
 * The provider is the verbs provider (librdmacm + libibverbs) where a device
 * serves the address, else tcp; "auto" picks, the caller may force one.
 *
 * No threads: every struct hec_fab has wait fds (its EQ's and its CQ's, from
 * libfabric's FI_WAIT_FD) that a caller's event loop watches; when one is
 * readable the caller drains events with hec_fab_poll().  Before blocking on
 * the fds again, hec_fab_trywait() must return 0 (libfabric's fi_trywait
 * rule: some providers progress only when polled).
 *
 * All functions return 0 (or a count) or a negative errno, and fill @why
 * (when given) with one line naming the thing and the cause.
 *
 * Ordering: a message sent after a write on the same endpoint is delivered
 * after the write's data.  Where the provider offers FI_ORDER_SAW (tcp and
 * verbs do) the transport keeps that order; elsewhere the layer holds the
 * message until the writes before it completed.  Writes ask for
 * FI_DELIVERY_COMPLETE where offered, so a write the peer refuses (a wrong
 * key) fails its own DONE.  HEC_FAB_ORDER=hold in the environment forces the
 * holding path (tests).
 *
 * Memory: the provider's mr_mode is followed: FI_MR_LOCAL (the layer
 * registers its message buffers; RMA's local side is a hec_fab_mr),
 * FI_MR_VIRT_ADDR (hec_fab_mr_base() is the address, else 0),
 * FI_MR_PROV_KEY (the provider's key, else a random 64-bit one).
 *
 * Not thread-safe: one thread drives a struct hec_fab and its endpoints.
 */
#ifndef HEC_RDMA_HECFAB_H
#define HEC_RDMA_HECFAB_H

#include <stddef.h>
#include <stdint.h>

#define HEC_FAB_MSG_MAX (64u << 10) /* largest control message */
#define HEC_FAB_WHY 256

struct hec_fab;     /* fabric, domain, one EQ and one CQ shared by its endpoints */
struct hec_fab_ep;  /* a connected endpoint */
struct hec_fab_mr;  /* registered memory */

struct hec_fab_opts {
	const char *provider;  /* "auto" (NULL too), "verbs" or "tcp" */
	unsigned msg_depth;    /* receive buffers kept posted per endpoint; 0: 16 */
};

/** Open a fabric that listens on @hostport ("addr:port" or "[v6]:port";
 *  port 0: any) for hec_fab_connect()s.  "auto" tries verbs, then tcp (also
 *  when verbs fails after fi_getinfo); verbs needs the address of an RDMA
 *  device's interface.  A listener accepts as many endpoints as its CQ
 *  holds (8192 entries, 2 x msg_depth + 64 per endpoint: 85 at depth 16)
 *  and refuses further requests.  \return 0, -EINVAL (bad provider name or
 *  address), -ENODEV (the provider does not serve the address; @why names
 *  it: "fi_getinfo verbs 10.0.0.1:7100: No data available"), or another
 *  -errno. */
int hec_fab_listen(const struct hec_fab_opts *o, const char *hostport,
		   struct hec_fab **out, char *why, size_t whylen);
/** Open a fabric able to reach @hostport (a listener's address) and connect
 *  one endpoint to it, waiting at most @timeout_ms.  The connection request
 *  carries nothing secret; the peers authenticate with messages after it. */
int hec_fab_connect(const struct hec_fab_opts *o, const char *hostport, int timeout_ms,
		    struct hec_fab **out, struct hec_fab_ep **ep, char *why, size_t whylen);

/* One connection of hec_fab_connect_all(). */
struct hec_fab_dial {
	const char *hostport;    /* in: the listener's address */
	struct hec_fab *fab;     /* out: its own fabric (NULL on failure) */
	struct hec_fab_ep *ep;   /* out: the endpoint, connected */
	int err;                 /* out: 0, or what hec_fab_connect() would return */
	char why[HEC_FAB_WHY];   /* out: the cause, when err < 0 */
};
/** hec_fab_connect() to each of @n listeners, all at once: the fabrics are
 *  opened and the requests sent one after another, then every answer is
 *  awaited together, within @timeout_ms in all (-1: forever), so that @n
 *  listeners cost about one round trip, not @n.  Each dial ends as
 *  hec_fab_connect() would have (its providers tried in the same order). */
void hec_fab_connect_all(const struct hec_fab_opts *o, struct hec_fab_dial *d, size_t n,
			 int timeout_ms);
/** Close every endpoint, registration and the fabric.  NULL is a no-op. */
void hec_fab_close(struct hec_fab *f);

/** The provider in use: "verbs" or "tcp" (for logs and `hec storage`). */
const char *hec_fab_provider(const struct hec_fab *f);
/** A listener's address as clients should dial it ("10.0.0.1:40123"), with
 *  the port really bound.  Bound to 0.0.0.0 (or ::): the first up,
 *  non-loopback address of the host (of that family), else 127.0.0.1 (::1);
 *  a host with several networks should listen on the one clients use. */
const char *hec_fab_address(const struct hec_fab *f);

/** The fds to watch for readability (1 or 2 of them); \return how many. */
int hec_fab_wait_fds(struct hec_fab *f, int fds[2]);
/** 0: nothing pending, the caller may block on the wait fds;
 *  -EAGAIN: call hec_fab_poll() first (also while a RECV buffer awaits its
 *  repost, i.e. after a poll that returned RECV events). */
int hec_fab_trywait(struct hec_fab *f);

enum hec_fab_ev_type {
	HEC_FAB_EV_ACCEPTED = 1, /* listener: a new endpoint is connected (@ep) */
	HEC_FAB_EV_CLOSED,       /* @ep's peer went away or the link broke; the
				  * caller hec_fab_ep_free()s @ep; its pending
				  * operations complete first with @err set */
	HEC_FAB_EV_RECV,         /* a message (@data, @len) arrived on @ep; valid
				  * until the next hec_fab_poll() on this fabric */
	HEC_FAB_EV_DONE,         /* an operation posted with @ctx finished (@err 0)
				  * or failed (@err < 0, @why says why); a failure
				  * is reported even for a NULL @ctx */
};

struct hec_fab_ev {
	enum hec_fab_ev_type type;
	struct hec_fab_ep *ep;
	void *ctx;          /* DONE: the operation's context */
	const void *data;   /* RECV */
	size_t len;         /* RECV */
	int err;            /* DONE, CLOSED: 0 or -errno */
	char why[HEC_FAB_WHY];
};

/** Non-blocking: fill up to @max events.  \return how many (0: none yet).
 *  Reposts the receive buffers of the RECV events it returned last time. */
int hec_fab_poll(struct hec_fab *f, struct hec_fab_ev *ev, int max);
/** Block up to @timeout_ms (-1: forever) until hec_fab_poll() may return
 *  something, for callers without an event loop.  \return 0 (poll now; it
 *  may still find nothing) or -ETIMEDOUT. */
int hec_fab_wait(struct hec_fab *f, int timeout_ms);

/** Send one message (copied; 1 to HEC_FAB_MSG_MAX bytes, else -EINVAL or
 *  -EMSGSIZE).  A message sent after hec_fab_write() on the same endpoint is
 *  delivered only after that write's data is in the peer's memory (and not
 *  at all, DONE with -ECANCELED, if a write it waits for fails).
 *  Completion: DONE with @ctx (may be NULL: then no event unless it fails).
 *  -EAGAIN: msg_depth sends in flight, poll and retry.  -ENOTCONN: the
 *  endpoint was reported CLOSED. */
int hec_fab_send(struct hec_fab_ep *ep, const void *buf, size_t len, void *ctx);

/** Register @len bytes at @buf for local use and remote access (read and
 *  write) by any endpoint of @f.  \return 0; the peer needs
 *  hec_fab_mr_base() and hec_fab_mr_key().  hec_fab_close() frees the
 *  registrations left. */
int hec_fab_mr_reg(struct hec_fab *f, void *buf, size_t len, struct hec_fab_mr **out,
		   char *why, size_t whylen);
void hec_fab_mr_free(struct hec_fab_mr *mr);
/** What a peer puts in its RMA for the first byte of the region (the virtual
 *  address or 0, as the provider's mode wants), and the region's key (random
 *  where the layer chooses it: a peer cannot guess it). */
uint64_t hec_fab_mr_base(const struct hec_fab_mr *mr);
uint64_t hec_fab_mr_key(const struct hec_fab_mr *mr);

/** RMA write @len bytes from @local (registered, at offset @off) into the
 *  peer's region at @raddr (base + offset) with @rkey.  DONE with @ctx.
 *  -EINVAL: @off/@len outside @local; -EMSGSIZE: over the provider's
 *  largest; -EAGAIN: 64 RMA operations (fewer on small queues) in flight
 *  on @ep, poll and retry; -ENOTCONN: @ep was reported CLOSED.  A wrong
 *  @rkey or range fails the DONE (on tcp and verbs the connection breaks
 *  too: CLOSED follows). */
int hec_fab_write(struct hec_fab_ep *ep, struct hec_fab_mr *local, size_t off, size_t len,
		  uint64_t raddr, uint64_t rkey, void *ctx);
/** RMA read @len bytes from the peer's @raddr/@rkey into @local at @off. */
int hec_fab_read(struct hec_fab_ep *ep, struct hec_fab_mr *local, size_t off, size_t len,
		 uint64_t raddr, uint64_t rkey, void *ctx);

/** Shut the endpoint down (the peer sees CLOSED) and free it.  Events not
 *  yet returned for it, DONEs of its pending operations included, are
 *  dropped: the caller forgets those contexts itself, and skips any later
 *  event naming @ep in the batch hec_fab_poll() already returned. */
void hec_fab_ep_free(struct hec_fab_ep *ep);
/** The peer's address, for logs. */
const char *hec_fab_ep_peer(const struct hec_fab_ep *ep);
void hec_fab_ep_set_arg(struct hec_fab_ep *ep, void *arg);
void *hec_fab_ep_get_arg(const struct hec_fab_ep *ep);

#endif
