/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hecstored: a checkpoint storage server (doc/storage.md).  One libevent
 * loop serves every client over the fabric layer (rdma/hecfab.h): each
 * client says STORE_HELLO with the cluster key, gets a registered region of
 * slots, and sends STORE_REQs that move chunks between its slots and the
 * chunk store (rdma/chunkstore.h).  Optionally registers with the
 * controller (STORE_REGISTER, then STORE_STATUS every heartbeat) over TCP;
 * clients are served whether or not the controller is there.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/aio_abi.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/config.h"
#include "hec/msg.h"
#include "hec/net.h"
#include "rdma/chunkstore.h"
#include "rdma/hecfab.h"

#define NAME_MAX_LEN 64
#define RETRY_MS 3000          /* controller away: try again this often */
#define CONNECT_TIMEOUT_MS 5000
#define POLL_BATCH 16
#define DRAIN_ROUNDS 64        /* fabric batches per wake-up before yielding */
#define LOW_SPACE_PCT 5
#define HUGE_ALIGN (2u << 20)  /* a huge page */
#define AIO_DEPTH 256          /* chunk transfers in flight between slots and disk */
/* direct reads in flight per server: the disk always has the next one, and
 * deeper queues of 4 MiB reads were slower on the virtio disk measured.  A
 * read that starts while none is in flight (a stream's first chunk) goes
 * alone until it completes: the client waiting for it gets it after one
 * chunk's disk time, not two, and starts moving bytes that much earlier. */
#define READ_DEPTH 2
/* A peer must say STORE_HELLO (with the cluster key) this soon, and at most
 * max_strangers may be connected without having said it: a stranger holds
 * receive buffers and a place in the client list, and must not be able to
 * hold them for good or by the thousand. */
#define HELLO_TIMEOUT_MS 10000

struct srv_conf {
	char name[NAME_MAX_LEN + 1];
	char dir[PATH_MAX];
	char listen[300];
	char controller[300];
	char key_file[PATH_MAX];
	char provider[16];
	long slots;
	long keep_regions;
	long max_strangers;
	char slot_size[32];
	long gc_grace;
	long gc_interval;
	char log_file[PATH_MAX];
	char log_level[16];
};

#define KEY(k, kd, d, h, f) { .key = k, .kind = kd, .def = d, .help = h, \
	.offset = offsetof(struct srv_conf, f), .size = sizeof(((struct srv_conf *)0)->f) }
#define STR_KEY(k, d, h, f) KEY(k, HEC_CONF_STR, d, h, f)
#define INT_KEY(k, d, lo, hi, h, f) { .key = k, .kind = HEC_CONF_INT, .def = d, .min = lo, \
	.max = hi, .help = h, .offset = offsetof(struct srv_conf, f) }

static const struct hec_conf_key conf_keys[] = {
	STR_KEY("name", "", "server name, unique in the cluster (default: the host name)", name),
	STR_KEY("dir", NULL, "directory of the chunks and manifests (required)", dir),
	STR_KEY("listen", "0.0.0.0:7100", "fabric address clients connect to; port 0 picks one", listen),
	STR_KEY("controller", "", "host:port of hecctld's agent port; empty: standalone", controller),
	STR_KEY("key_file", "", "cluster secret clients and the controller must match; empty: none", key_file),
	STR_KEY("provider", "auto", "auto, verbs or tcp", provider),
	INT_KEY("slots", "8", 1, 64, "registered slots per client (chunks in flight)", slots),
	STR_KEY("slot_size", "4M", "bytes per slot (K/M/G): the largest chunk a client may send", slot_size),
	INT_KEY("keep_regions", "4", 0, 64, "clients' slot regions kept, zeroed, for the next clients after they leave (memory touched already)", keep_regions),
	INT_KEY("max_strangers", "64", 1, 65536, "connections at once that have not said STORE_HELLO (the rest refused)", max_strangers),
	INT_KEY("gc_grace", "600", 1, 30L * 86400, "seconds an uncommitted epoch nobody writes to is kept", gc_grace),
	INT_KEY("gc_interval", "60", 1, 86400, "seconds between garbage collections", gc_interval),
	STR_KEY("log_file", "", "append logs here instead of stderr", log_file),
	STR_KEY("log_level", "info", "err, warn, info, debug", log_level),
	{ .key = NULL },
};

struct epoch_ref {
	uint64_t job, epoch;
};

struct client {
	struct client *next;
	struct srv *s;
	struct hec_fab_ep *ep;
	char name[NAME_MAX_LEN + 1];
	int hello;
	int64_t since;          /* connected (mono ns): the hello is due within HELLO_TIMEOUT_MS */
	int closing;            /* an ERROR is on its way; free the endpoint after it */
	uint8_t *mem;           /* slots x slot_size, registered as mr */
	struct hec_fab_mr *mr;
	struct epoch_ref *writes; /* epochs it put chunks into: GC leaves them alone */
	size_t nwrites, capwrites;
	struct pending *queue;  /* replies the fabric had no room for yet */
	unsigned ndio;          /* disk transfers in flight into or out of its slots */
	int gone;               /* disconnected: freed when ndio reaches 0 */
	/* the stream it reads, and the next chunk not yet prefetched */
	uint64_t pf_job, pf_epoch, pf_next;
	char pf_part[HEC_NAME_MAX + 1];
};

struct pending {
	struct pending *next;
	size_t len;
	uint8_t buf[];
};

struct srv {
	struct srv_conf conf;
	size_t slot_size;
	char key[HEC_KEY_SIZE];
	char dir_abs[PATH_MAX];
	struct event_base *base;
	struct hec_cs *cs;
	struct hec_fab *fab;
	struct event *fab_ev[2];
	struct event *fab_retry;
	struct event *gc_timer;
	struct event *hello_timer; /* closes strangers past HELLO_TIMEOUT_MS */
	struct hec_ratelimit refuse_rl;
	struct event *sigs[2];
	struct client *clients;
	unsigned nclients;
	/* clients' slot memory kept after they left, zeroed, for the next ones:
	 * memory a process touches for the first time costs a page fault per
	 * page (on a virtual machine whose host takes back free memory, 50-80 ms
	 * per 32 MiB of huge pages here).  Registrations are not kept: each
	 * client gets a key of its own, which a client that left cannot use. */
	uint8_t *spare[64];     /* keep_regions of them at most (<= 64) */
	unsigned nspare;
	/* the controller link */
	struct hec_conn *ctl;
	struct event *connect_ev;
	int connect_fd;
	struct event *retry_timer;
	struct event *status_timer;
	int registered;
	unsigned ctl_failures;
	int exit_code;
	/* disk transfers (Linux AIO on O_DIRECT files; 0: synchronous) */
	aio_context_t aio;
	int aio_fd;             /* eventfd the kernel signals completions on */
	struct event *aio_ev;
	struct dio *dios;       /* submitted, not completed */
	unsigned ndio;          /* started, not completed (submitted or not) */
	struct dio *readq, *readq_tail; /* reads waiting for their turn */
	unsigned nreads, read_depth;    /* reads submitted; at most this many */
	int read_alone;         /* the read in flight started from idle: no other yet */
	int gc_wanted;          /* GC waits for ndio to reach 0 */
};

/* A chunk moving between a client's slot and the disk (put or get). */
struct dio {
	struct dio *next;
	struct client *c;
	json_int_t req;
	int get;
	uint64_t job, epoch, idx;
	char part[HEC_NAME_MAX + 1];
	struct hec_cs_io io;
	struct iocb cb;
};

/* ---- replies ---- */

static int send_frame(struct client *c, unsigned type, json_t *body, void *ctx)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if (!body)
		return -ENOMEM;
	rc = hec_msg_encode(type, body, &buf, &len);
	json_decref(body);
	if (rc) {
		hec_err("%s: client %s: cannot encode %s: %s", c->s->conf.name, c->name,
			hec_msg_type_name(type), strerror(-rc));
		return rc;
	}
	rc = c->queue ? -EAGAIN : hec_fab_send(c->ep, buf, len, ctx);
	if (rc == -EAGAIN && !ctx) {
		/* Keep the order: behind whatever waits already. */
		struct pending *p = malloc(sizeof(*p) + len), **tail = &c->queue;

		rc = -ENOMEM;
		if (p) {
			p->next = NULL;
			p->len = len;
			memcpy(p->buf, buf, len);
			while (*tail)
				tail = &(*tail)->next;
			*tail = p;
			rc = 0;
		}
	}
	free(buf);
	if (rc)
		hec_warn("%s: client %s: cannot send %s: %s", c->s->conf.name, c->name,
			 hec_msg_type_name(type), strerror(-rc));
	return rc;
}

static void flush_queue(struct client *c)
{
	while (c->queue) {
		struct pending *p = c->queue;

		if (hec_fab_send(c->ep, p->buf, p->len, NULL))
			return;
		c->queue = p->next;
		free(p);
	}
}

/* An ERROR frame, then the endpoint goes once the frame is sent. */
static void client_close(struct client *c, const char *why)
{
	c->closing = 1;
	if (send_frame(c, HEC_MSG_ERROR, json_pack("{s:s}", "error", why), &c->closing))
		c->closing = 2; /* not sent: free at once */
}

static void client_refuse(struct client *c, const char *why)
{
	hec_warn("%s: client %s (%s): %s; closing", c->s->conf.name, c->name,
		 hec_fab_ep_peer(c->ep), why);
	client_close(c, why);
}

static void reply_error(struct client *c, json_int_t req, const char *error)
{
	send_frame(c, HEC_MSG_STORE_REP, json_pack("{s:I, s:s}", "req", req, "error", error), NULL);
}

static void reply(struct client *c, json_t *body)
{
	send_frame(c, HEC_MSG_STORE_REP, body, NULL);
}

/* ---- clients ---- */

/* A region's memory goes back to the kernel (mapped apart from the heap: no
 * later allocation of this process finds what a client left in it). */
static void region_unmap(struct srv *s, uint8_t *mem)
{
	if (mem)
		munmap(mem, (size_t)s->conf.slots * s->slot_size);
}

/* The slot memory of a client that left, its disk transfers done (@mr, its
 * registration, NULL or dropped here): kept for the next client, zeroed
 * first (a client may read any of its slots, and must not find what another
 * left there: ~3 ms for 32 MiB), or given back past keep_regions. */
static void region_put(struct srv *s, uint8_t *mem, struct hec_fab_mr *mr)
{
	hec_fab_mr_free(mr);
	if (!mem || s->nspare >= (unsigned long)s->conf.keep_regions) {
		region_unmap(s, mem);
		return;
	}
	memset(mem, 0, (size_t)s->conf.slots * s->slot_size);
	s->spare[s->nspare++] = mem;
}

/* Slot memory for a client: a kept region (*@kept = 1) or a new one, NULL
 * when out of memory. */
static uint8_t *region_get(struct srv *s, int *kept)
{
	size_t len = (size_t)s->conf.slots * s->slot_size;
	void *p;

	*kept = s->nspare > 0;
	if (*kept)
		return s->spare[--s->nspare];
	/* its own mapping, zeroed by the kernel (not heap memory another
	 * client's region may have been), aligned to a huge page and in huge
	 * pages where the kernel has them: a direct transfer of a slot is then
	 * a few large segments, not one per 4 KiB page (on a virtio disk that
	 * took reads from 1.3 to over 2 GB/s here) */
	p = mmap(NULL, len + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	{
		uintptr_t a = (uintptr_t)p, al = (a + HUGE_ALIGN - 1) & ~((uintptr_t)HUGE_ALIGN - 1);

		if (al > a)
			munmap(p, al - a);
		munmap((void *)(al + len), a + len + HUGE_ALIGN - al - len);
		p = (void *)al;
	}
	(void)madvise(p, len, MADV_HUGEPAGE); /* a hint: refused changes nothing */
	return p;
}

static void client_free(struct client *c)
{
	struct srv *s = c->s;

	for (struct client **pp = &s->clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			s->nclients--;
			break;
		}
	while (c->queue) {
		struct pending *p = c->queue;

		c->queue = p->next;
		free(p);
	}
	free(c->writes);
	c->writes = NULL;
	c->nwrites = 0;
	if (c->ep)
		hec_fab_ep_free(c->ep);
	c->ep = NULL;
	if (c->ndio) {
		/* the disk still reads or writes its slots */
		c->gone = 1;
		return;
	}
	region_put(s, c->mem, c->mr);
	free(c);
}

static int busy_epoch(void *arg, uint64_t job, uint64_t epoch)
{
	struct srv *s = arg;

	for (struct client *c = s->clients; c; c = c->next)
		for (size_t i = 0; i < c->nwrites; i++)
			if (c->writes[i].job == job && c->writes[i].epoch == epoch)
				return 1;
	return 0;
}

static void note_write(struct client *c, uint64_t job, uint64_t epoch)
{
	for (size_t i = 0; i < c->nwrites; i++)
		if (c->writes[i].job == job && c->writes[i].epoch == epoch)
			return;
	if (c->nwrites == c->capwrites) {
		size_t cap = c->capwrites ? c->capwrites * 2 : 4;
		struct epoch_ref *w = realloc(c->writes, cap * sizeof(*w));

		if (!w)
			return; /* at worst GC may take it after gc_grace of silence */
		c->writes = w;
		c->capwrites = cap;
	}
	c->writes[c->nwrites++] = (struct epoch_ref){ job, epoch };
}

static void forget_writes(struct srv *s, uint64_t job, uint64_t epoch)
{
	for (struct client *c = s->clients; c; c = c->next)
		for (size_t i = 0; i < c->nwrites; i++)
			if (c->writes[i].job == job && c->writes[i].epoch == epoch)
				c->writes[i--] = c->writes[--c->nwrites];
}

/* ---- requests: one row each (hec_msg_handlers_check) ---- */

static uint64_t body_u64(const struct hec_msg *m, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(m->body, key));
}

static json_int_t req_of(const struct hec_msg *m)
{
	return json_integer_value(json_object_get(m->body, "req"));
}

/* The slot a request names, or NULL after answering the error. */
static uint8_t *slot_of(struct client *c, const struct hec_msg *m)
{
	uint64_t slot = body_u64(m, "slot");

	if (slot >= (uint64_t)c->s->conf.slots) {
		reply_error(c, req_of(m), "no such slot");
		return NULL;
	}
	return c->mem + slot * c->s->slot_size;
}

/* The slot of a request that brings data (put, commit) and its "len", or
 * NULL after answering why not: @what names the data ("chunk"). */
static uint8_t *slot_data(struct client *c, const struct hec_msg *m, const char *what,
			  uint64_t *len)
{
	uint8_t *slot = slot_of(c, m);
	char why[64];

	*len = body_u64(m, "len");
	if (!slot)
		return NULL;
	if (*len > c->s->slot_size) {
		reply_error(c, req_of(m), "larger than the slot");
		return NULL;
	}
	/* a stream's chunks and a manifest hold 1 byte or more */
	if (*len == 0) {
		snprintf(why, sizeof(why), "empty %s", what);
		reply_error(c, req_of(m), why);
		return NULL;
	}
	return slot;
}

static void on_hello(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct srv *s = c->s;
	char why[HEC_FAB_WHY] = "", base[24], rkey[24];
	int kept;

	if (c->hello) {
		client_refuse(c, "STORE_HELLO twice");
		return;
	}
	snprintf(c->name, sizeof(c->name), "%s",
		 json_string_value(json_object_get(m->body, "client")));
	if (!hec_key_equal(json_string_value(json_object_get(m->body, "key")), s->key)) {
		client_refuse(c, "wrong cluster key");
		return;
	}
	c->mem = region_get(s, &kept);
	if (!c->mem) {
		client_refuse(c, "server out of memory for the client's slots");
		return;
	}
	if (hec_fab_mr_reg(s->fab, c->mem, (size_t)s->conf.slots * s->slot_size, &c->mr, why,
			   sizeof(why))) {
		hec_err("%s: client %s: cannot register its slots: %s", s->conf.name, c->name, why);
		client_refuse(c, "server cannot register memory for the client's slots");
		return;
	}
	c->hello = 1;
	snprintf(base, sizeof(base), "%" PRIx64, hec_fab_mr_base(c->mr));
	snprintf(rkey, sizeof(rkey), "%" PRIx64, hec_fab_mr_key(c->mr));
	hec_info("%s: client %s (%s) connected: %ld slots of %zu bytes%s", s->conf.name, c->name,
		 hec_fab_ep_peer(c->ep), s->conf.slots, s->slot_size, kept ? " (kept, zeroed)" : "");
	send_frame(c, HEC_MSG_STORE_WELCOME,
		   json_pack("{s:s, s:I, s:I, s:s, s:s}", "server", s->conf.name,
			     "slots", (json_int_t)s->conf.slots, "slot_size", (json_int_t)s->slot_size,
			     "base", base, "rkey", rkey), NULL);
}

/* The answer for the errors a client must tell apart (doc/config.md). */
static const char *err_text(int rc, const char *enoent)
{
	switch (rc) {
	case -EBADMSG:
		return "checksum mismatch";
	case -EUCLEAN:
		return "corrupt";
	case -ENOENT:
	case -ELOOP:
	case -ENOTDIR:
		return enoent;
	case -EEXIST:
		return "committed";
	case -ESTALE:
		return "deleted";
	case -EMSGSIZE:
		return "larger than the slot";
	case -EINVAL:
		return "bad part name";
	default:
		return strerror(-rc);
	}
}

/* ---- disk transfers ---- */

static void fab_drain(struct srv *s);
static void run_gc(struct srv *s);

static void put_done(struct client *c, const struct dio *d, int rc)
{
	struct srv *s = c->s;

	if (rc) {
		if (rc != -EBADMSG && rc != -EINVAL)
			hec_err("%s: put %" PRIu64 "/%" PRIu64 "/%s.%" PRIu64 " from %s: %s",
				s->conf.name, d->job, d->epoch, d->part, d->idx, c->name, strerror(-rc));
		else
			hec_warn("%s: put %" PRIu64 "/%" PRIu64 "/%s.%" PRIu64 " from %s: %s",
				 s->conf.name, d->job, d->epoch, d->part, d->idx, c->name,
				 err_text(rc, ""));
		reply_error(c, d->req, err_text(rc, "no such directory"));
		return;
	}
	reply(c, json_pack("{s:I}", "req", d->req));
}

static void reply_data(struct client *c, json_int_t req, const uint8_t *slot, size_t len,
		       const uint64_t *hash, uint64_t epoch);
static void prefetch(struct client *c, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t idx);

static void get_done(struct client *c, const struct dio *d, int rc, size_t len, uint64_t hash)
{
	struct srv *s = c->s;

	if (rc == -EUCLEAN)
		hec_err("%s: chunk %" PRIu64 "/%" PRIu64 "/%s.%" PRIu64 " is corrupt (asked by %s)",
			s->conf.name, d->job, d->epoch, d->part, d->idx, c->name);
	if (rc) {
		reply_error(c, d->req, err_text(rc, "no such chunk"));
		return;
	}
	reply_data(c, d->req, d->io.buf, len, &hash, 0);
}

/* @d's transfer moved @res bytes (or failed with -errno): finish it, answer
 * the client (if still there) and free @d. */
static void dio_complete(struct srv *s, struct dio *d, ssize_t res)
{
	struct client *c = d->c;
	uint64_t hash = 0;
	size_t len = 0;
	int rc;

	if (!d->get && res >= 0 && (size_t)res < d->io.bytes)
		res = hec_cs_io_run(&d->io, (size_t)res); /* the rest, and its errno */
	if (c->gone) {
		hec_cs_io_cancel(&d->io);
	} else if (d->get) {
		int direct = d->io.direct;

		rc = hec_cs_get_finish(s->cs, &d->io, res, &len, &hash);
		get_done(c, d, rc, len, hash);
		if (!rc && !direct)
			prefetch(c, d->job, d->epoch, d->part, d->idx);
	} else {
		put_done(c, d, hec_cs_put_finish(s->cs, &d->io, res));
	}
	c->ndio--;
	s->ndio--;
	if (c->gone && !c->ndio) {
		region_put(s, c->mem, c->mr);
		free(c);
	}
	free(d);
	if (!s->ndio && s->gc_wanted) {
		s->gc_wanted = 0;
		run_gc(s);
	}
}

static void dio_go(struct srv *s, struct dio *d);

/* May another direct read be submitted now? */
static int read_room(const struct srv *s)
{
	return s->nreads < s->read_depth && !(s->read_alone && s->nreads);
}

/* Move @d's data: by AIO where the file is O_DIRECT (the loop goes on; the
 * eventfd reports the end), else here and now. */
static void dio_submit(struct srv *s, struct dio *d)
{
	int queued_read = d->get && s->aio && d->io.direct;

	d->c->ndio++;
	s->ndio++;
	if (queued_read && !read_room(s)) {
		d->next = NULL;
		if (s->readq_tail)
			s->readq_tail->next = d;
		else
			s->readq = d;
		s->readq_tail = d;
		return;
	}
	if (queued_read && !s->nreads)
		s->read_alone = 1;
	dio_go(s, d);
}

/* A read finished: the waiting ones go, as far as there is room. */
static void read_next(struct srv *s)
{
	struct dio *d;

	while ((d = s->readq) && read_room(s)) {
		s->readq = d->next;
		if (!s->readq)
			s->readq_tail = NULL;
		dio_go(s, d);
	}
}

static void dio_go(struct srv *s, struct dio *d)
{
	struct iocb *cbp = &d->cb;

	if (s->aio && d->io.direct && d->io.iovcnt) {
		memset(&d->cb, 0, sizeof(d->cb));
		d->cb.aio_data = (uint64_t)(uintptr_t)d;
		d->cb.aio_lio_opcode = d->get ? IOCB_CMD_PREADV : IOCB_CMD_PWRITEV;
		d->cb.aio_fildes = (uint32_t)d->io.fd;
		d->cb.aio_buf = (uint64_t)(uintptr_t)d->io.iov;
		d->cb.aio_nbytes = (uint64_t)d->io.iovcnt;
		d->cb.aio_offset = 0;
		d->cb.aio_flags = IOCB_FLAG_RESFD;
		d->cb.aio_resfd = (uint32_t)s->aio_fd;
		if (syscall(SYS_io_submit, s->aio, 1L, &cbp) == 1) {
			d->next = s->dios;
			s->dios = d;
			s->nreads += d->get;
			return;
		}
		/* a full queue or no AIO for this file: synchronously then */
	}
	dio_complete(s, d, hec_cs_io_run(&d->io, 0));
}

/* Reap completed transfers; @wait: block until all are done (exiting). */
static void aio_reap(struct srv *s, int wait)
{
	struct io_event ev[64];
	struct timespec zero = { 0, 0 };

	while (s->dios) {
		long n = syscall(SYS_io_getevents, s->aio, wait ? 1L : 0L, 64L, ev, wait ? NULL : &zero);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (long i = 0; i < n; i++) {
			struct dio *d = (struct dio *)(uintptr_t)ev[i].data;

			for (struct dio **pp = &s->dios; *pp; pp = &(*pp)->next)
				if (*pp == d) {
					*pp = d->next;
					break;
				}
			s->nreads -= d->get;
			if (d->get)
				s->read_alone = 0;
			read_next(s); /* the disk goes on while this one is checked */
			dio_complete(s, d, (ssize_t)ev[i].res);
		}
	}
}

static void aio_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		hec_warn("%s: AIO eventfd: %s", s->conf.name, strerror(errno));
	aio_reap(s, 0);
	fab_drain(s); /* the answers out, and whatever came meanwhile */
}

/* Finish what is in flight (exiting), then close AIO. */
static void aio_stop(struct srv *s)
{
	s->read_depth = UINT_MAX; /* what waits goes now */
	s->read_alone = 0;
	read_next(s);
	if (s->aio) {
		aio_reap(s, 1);
		syscall(SYS_io_destroy, s->aio);
		s->aio = 0;
	}
	if (s->aio_ev)
		event_free(s->aio_ev);
	s->aio_ev = NULL;
	if (s->aio_fd >= 0)
		close(s->aio_fd);
	s->aio_fd = -1;
}

/* Linux AIO where the kernel has it; else every transfer is synchronous.
 * HECSTORED_DIRECT=0 in the environment turns direct I/O off (tests,
 * comparisons). */
static void aio_start(struct srv *s)
{
	const char *e = getenv("HECSTORED_DIRECT");

	if (e && !strcmp(e, "0"))
		return;
	s->read_depth = READ_DEPTH;
	if (syscall(SYS_io_setup, (long)AIO_DEPTH, &s->aio)) {
		hec_info("%s: no Linux AIO (%s): disk transfers are synchronous", s->conf.name,
			 strerror(errno));
		s->aio = 0;
		return;
	}
	s->aio_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->aio_fd >= 0)
		s->aio_ev = event_new(s->base, s->aio_fd, EV_READ | EV_PERSIST, aio_cb, s);
	if (!s->aio_ev || event_add(s->aio_ev, NULL)) {
		hec_warn("%s: AIO eventfd: %s: disk transfers are synchronous", s->conf.name,
			 strerror(s->aio_fd < 0 ? errno : ENOMEM));
		aio_stop(s);
	}
}

static struct dio *dio_new(struct client *c, const struct hec_msg *m, int get)
{
	const char *part = json_string_value(json_object_get(m->body, "part"));
	struct dio *d = calloc(1, sizeof(*d));

	if (!d) {
		reply_error(c, req_of(m), strerror(ENOMEM));
		return NULL;
	}
	d->c = c;
	d->req = req_of(m);
	d->get = get;
	d->job = body_u64(m, "job");
	d->epoch = body_u64(m, "epoch");
	d->idx = body_u64(m, "idx");
	snprintf(d->part, sizeof(d->part), "%s", part ? part : "");
	d->io.fd = -1;
	return d;
}

static void on_put(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct srv *s = c->s;
	const char *part = json_string_value(json_object_get(m->body, "part"));
	uint8_t *slot;
	uint64_t len, hash;
	struct dio *d;
	int rc;

	slot = slot_data(c, m, "chunk", &len);
	if (!slot)
		return;
	if (hec_hash_parse(json_string_value(json_object_get(m->body, "hash")), &hash)) {
		reply_error(c, req_of(m), "bad hash");
		return;
	}
	d = dio_new(c, m, 0);
	if (!d)
		return;
	note_write(c, d->job, d->epoch);
	rc = hec_cs_put_start(s->cs, d->job, d->epoch, part, d->idx, slot, len, hash, s->aio != 0,
			      &d->io);
	if (rc) {
		put_done(c, d, rc);
		free(d);
		return;
	}
	dio_submit(s, d);
}

/* The answer to a request whose data is now in its slot; @hash: the data's,
 * when the caller has it already (NULL: hash the slot). */
static void reply_data(struct client *c, json_int_t req, const uint8_t *slot, size_t len,
		       const uint64_t *hash, uint64_t epoch)
{
	char hex[HEC_HASH_HEX];
	json_t *b;

	hec_hash_hex(hash ? *hash : hec_cs_hash(slot, len), hex);
	b = json_pack("{s:I, s:I, s:s}", "req", req, "len", (json_int_t)len, "hash", hex);
	if (b && epoch)
		json_object_set_new(b, "epoch", json_integer((json_int_t)epoch));
	reply(c, b);
}

/*
 * A reader asks for a stream's chunks in order, a few at a time, and this
 * loop reads each from disk when asked: with a cold cache it would wait for
 * the disk chunk by chunk.  So after each get, ask the kernel to start
 * reading the stream's next chunks held here (each file once per stream).
 */
#define PREFETCH_CHUNKS 16

static void prefetch(struct client *c, uint64_t job, uint64_t epoch, const char *part,
		     uint64_t idx)
{
	uint64_t from = idx + 1, to = idx + PREFETCH_CHUNKS;

	if (c->pf_job == job && c->pf_epoch == epoch && !strcmp(c->pf_part, part) &&
	    c->pf_next > from)
		from = c->pf_next;
	if (from > to)
		return;
	hec_cs_prefetch(c->s->cs, job, epoch, part, from, to);
	c->pf_job = job;
	c->pf_epoch = epoch;
	snprintf(c->pf_part, sizeof(c->pf_part), "%s", part);
	c->pf_next = to + 1;
}

static void on_get(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct srv *s = c->s;
	const char *part = json_string_value(json_object_get(m->body, "part"));
	uint8_t *slot = slot_of(c, m);
	struct dio *d;
	size_t len = 0;
	int rc;

	if (!slot)
		return;
	d = dio_new(c, m, 1);
	if (!d)
		return;
	rc = hec_cs_get_start(s->cs, d->job, d->epoch, part, d->idx, slot, s->slot_size,
			      s->aio != 0, &d->io, &len);
	if (rc) {
		get_done(c, d, rc, 0, 0);
		free(d);
		return;
	}
	dio_submit(s, d);
}

static void on_commit(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct srv *s = c->s;
	uint64_t job = body_u64(m, "job"), epoch = body_u64(m, "epoch"), len;
	uint8_t *slot = slot_data(c, m, "manifest", &len);
	json_error_t jerr;
	uint64_t hash;
	json_t *j;
	int rc;

	if (!slot)
		return;
	if (hec_hash_parse(json_string_value(json_object_get(m->body, "hash")), &hash) ||
	    hec_cs_hash(slot, len) != hash) {
		reply_error(c, req_of(m), "checksum mismatch");
		return;
	}
	j = json_loadb((const char *)slot, len, 0, &jerr);
	if (!j) {
		reply_error(c, req_of(m), "manifest is not JSON");
		return;
	}
	json_decref(j);
	rc = hec_cs_commit(s->cs, job, epoch, slot, len);
	if (rc) {
		hec_err("%s: commit %" PRIu64 "/%" PRIu64 " from %s: %s", s->conf.name, job, epoch,
			c->name, rc == -ESTALE ? "the epoch was deleted" : strerror(-rc));
		reply_error(c, req_of(m), rc == -ESTALE ? "deleted" : strerror(-rc));
		return;
	}
	forget_writes(s, job, epoch);
	hec_info("%s: committed %" PRIu64 "/%" PRIu64 " (%" PRIu64 "-byte manifest, from %s)",
		 s->conf.name, job, epoch, len, c->name);
	reply(c, json_pack("{s:I}", "req", req_of(m)));
}

static void on_manifest(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct srv *s = c->s;
	uint64_t epoch = body_u64(m, "epoch"), job = body_u64(m, "job");
	uint8_t *slot = slot_of(c, m);
	size_t len = 0;
	int rc;

	if (!slot)
		return;
	rc = hec_cs_manifest_before(s->cs, job, body_u64(m, "before"), &epoch, slot, s->slot_size,
				    &len);
	if (rc) {
		reply_error(c, req_of(m), err_text(rc, "no committed checkpoint"));
		return;
	}
	reply_data(c, req_of(m), slot, len, NULL, epoch);
}

static void on_list(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct srv *s = c->s;
	uint8_t *slot = slot_of(c, m);
	json_t *inv = NULL;
	char *text;
	size_t len;
	int rc;

	if (!slot)
		return;
	rc = hec_cs_list(s->cs, body_u64(m, "job"), &inv);
	if (rc) {
		reply_error(c, req_of(m), strerror(-rc));
		return;
	}
	text = json_dumps(inv, JSON_COMPACT);
	json_decref(inv);
	if (!text) {
		reply_error(c, req_of(m), strerror(ENOMEM));
		return;
	}
	len = strlen(text);
	if (len > s->slot_size) {
		reply_error(c, req_of(m), "larger than the slot");
	} else {
		memcpy(slot, text, len);
		reply_data(c, req_of(m), slot, len, NULL, 0);
	}
	free(text);
}

static void remove_epoch(struct client *c, const struct hec_msg *m, int abort)
{
	struct srv *s = c->s;
	uint64_t job = body_u64(m, "job"), epoch = body_u64(m, "epoch");
	int rc = abort ? hec_cs_abort(s->cs, job, epoch) : hec_cs_delete(s->cs, job, epoch);

	/* Chunks spread over servers: this one holding none of the epoch is
	 * normal, and removing nothing succeeds. */
	if (rc == -ENOENT)
		rc = 0;
	if (rc) {
		if (rc != -EEXIST)
			hec_err("%s: %s %" PRIu64 "/%" PRIu64 ": %s", s->conf.name,
				abort ? "abort" : "delete", job, epoch, strerror(-rc));
		reply_error(c, req_of(m), err_text(rc, strerror(-rc)));
		return;
	}
	forget_writes(s, job, epoch);
	hec_info("%s: %s %" PRIu64 "/%" PRIu64 " (asked by %s)", s->conf.name,
		 abort ? "aborted" : "deleted", job, epoch, c->name);
	reply(c, json_pack("{s:I}", "req", req_of(m)));
}

static void on_delete(void *ctx, const struct hec_msg *m)
{
	remove_epoch(ctx, m, 0);
}

static void on_abort(void *ctx, const struct hec_msg *m)
{
	remove_epoch(ctx, m, 1);
}

static void on_status(void *ctx, const struct hec_msg *m)
{
	struct client *c = ctx;
	struct hec_cs_status st;
	int rc = hec_cs_status(c->s->cs, &st);

	if (rc) {
		reply_error(c, req_of(m), strerror(-rc));
		return;
	}
	reply(c, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "req", req_of(m),
			   "total", (json_int_t)st.total, "free", (json_int_t)st.free,
			   "used", (json_int_t)st.used, "chunks", (json_int_t)st.chunks,
			   "manifests", (json_int_t)st.manifests, "corrupt", (json_int_t)st.corrupt));
}

static const struct hec_msg_handler store_handlers[] = {
	{ .type = HEC_MSG_STORE_HELLO, .rule = HEC_RULE_PEER, .fn = on_hello },
	{ .type = HEC_MSG_STORE_REQ, .op = "put", .rule = HEC_RULE_REGISTERED, .fn = on_put },
	{ .type = HEC_MSG_STORE_REQ, .op = "get", .rule = HEC_RULE_REGISTERED, .fn = on_get },
	{ .type = HEC_MSG_STORE_REQ, .op = "commit", .rule = HEC_RULE_REGISTERED, .fn = on_commit },
	{ .type = HEC_MSG_STORE_REQ, .op = "manifest", .rule = HEC_RULE_REGISTERED, .fn = on_manifest },
	{ .type = HEC_MSG_STORE_REQ, .op = "list", .rule = HEC_RULE_REGISTERED, .fn = on_list },
	{ .type = HEC_MSG_STORE_REQ, .op = "delete", .rule = HEC_RULE_REGISTERED, .fn = on_delete },
	{ .type = HEC_MSG_STORE_REQ, .op = "abort", .rule = HEC_RULE_REGISTERED, .fn = on_abort },
	{ .type = HEC_MSG_STORE_REQ, .op = "status", .rule = HEC_RULE_REGISTERED, .fn = on_status },
};

/* A STORE_REQ that broke its schema still names its "req" if it has one:
 * then only that request fails.  \return the req, or 0. */
static json_int_t salvage_req(const void *data, size_t len)
{
	json_t *j, *r;
	json_int_t req = 0;

	if (len < HEC_MSG_HDR_LEN || ((const uint8_t *)data)[3] != HEC_MSG_STORE_REQ)
		return 0;
	j = json_loadb((const char *)data + HEC_MSG_HDR_LEN, len - HEC_MSG_HDR_LEN, 0, NULL);
	r = json_object_get(j, "req");
	if (json_is_integer(r) && json_integer_value(r) > 0)
		req = json_integer_value(r);
	json_decref(j);
	return req;
}

static void client_recv(struct client *c, const void *data, size_t len)
{
	const struct hec_msg_handler *h;
	struct hec_msg m = { 0 };
	size_t used = 0;
	char err[256];
	int rc;

	if (c->closing)
		return;
	rc = hec_msg_decode(data, len, &m, &used, err, sizeof(err));
	if (rc == 0 && used != len) {
		hec_msg_clear(&m);
		rc = -EPROTO;
		snprintf(err, sizeof(err), "%zu stray bytes after the frame", len - used);
	} else if (rc == -EAGAIN) {
		rc = -EPROTO;
		snprintf(err, sizeof(err), "truncated frame (%zu bytes)", len);
	}
	if (rc) {
		json_int_t req = c->hello ? salvage_req(data, len) : 0;

		if (req) {
			hec_warn("%s: client %s: bad request %lld: %s", c->s->conf.name, c->name,
				 (long long)req, err);
			reply_error(c, req, err);
		} else {
			client_refuse(c, err);
		}
		return;
	}
	h = hec_msg_handler_find(store_handlers, HEC_ARRAY_SIZE(store_handlers), &m);
	if (!h) {
		json_int_t req = m.type == HEC_MSG_STORE_REQ ? req_of(&m) : 0;

		if (req && c->hello) {
			reply_error(c, req, "unknown operation");
		} else {
			snprintf(err, sizeof(err), "unexpected %s", hec_msg_type_name(m.type));
			client_refuse(c, err);
		}
	} else if (h->rule == HEC_RULE_REGISTERED && !c->hello) {
		snprintf(err, sizeof(err), "%s before STORE_HELLO", hec_msg_type_name(m.type));
		client_refuse(c, err);
	} else {
		h->fn(c, &m);
	}
	hec_msg_clear(&m);
}

/* ---- the fabric ---- */

/* Peers connected that have not said hello (and are not being closed). */
static unsigned strangers(const struct srv *s)
{
	unsigned n = 0;

	for (const struct client *c = s->clients; c; c = c->next)
		n += !c->hello && !c->closing && !c->gone;
	return n;
}

/* client_refuse for strangers: logged at most 5 times in 10 s (a flood of
 * them must not flood the log). */
static void stranger_refuse(struct client *c, const char *why)
{
	struct srv *s = c->s;
	long held = 0;

	if (hec_ratelimit_ok(&s->refuse_rl, 5, 10000000000LL, hec_now_mono_ns(), &held))
		hec_warn("%s: connection from %s: %s; closing (%ld such not logged before)",
			 s->conf.name, hec_fab_ep_peer(c->ep), why, held);
	client_close(c, why);
}

static void hello_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	int64_t now = hec_now_mono_ns();

	(void)fd;
	(void)what;
	for (struct client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (c->hello || c->closing || c->gone ||
		    now - c->since < (int64_t)HELLO_TIMEOUT_MS * 1000000)
			continue;
		stranger_refuse(c, "no hello within 10 s");
		if (c->closing == 2)
			client_free(c);
	}
}

/* \return the endpoint it freed (later events of the batch about it are
 * stale), or NULL. */
static struct hec_fab_ep *handle_event(struct srv *s, struct hec_fab_ev *ev)
{
	struct hec_fab_ep *gone = ev->ep;
	struct client *c = ev->ep ? hec_fab_ep_get_arg(ev->ep) : NULL;

	switch (ev->type) {
	case HEC_FAB_EV_ACCEPTED:
		c = calloc(1, sizeof(*c));
		if (!c) {
			hec_err("%s: out of memory for a client from %s", s->conf.name,
				hec_fab_ep_peer(ev->ep));
			hec_fab_ep_free(ev->ep);
			return gone;
		}
		c->s = s;
		c->ep = ev->ep;
		c->since = hec_now_mono_ns();
		snprintf(c->name, sizeof(c->name), "?");
		hec_fab_ep_set_arg(ev->ep, c);
		c->next = s->clients;
		s->clients = c;
		s->nclients++;
		if (strangers(s) > (unsigned)s->conf.max_strangers) {
			stranger_refuse(c, "too many connections that have not said hello; try again later");
			if (c->closing == 2) {
				client_free(c);
				return gone;
			}
			return NULL;
		}
		hec_debug("%s: connection from %s", s->conf.name, hec_fab_ep_peer(ev->ep));
		return NULL;
	case HEC_FAB_EV_RECV:
		if (c)
			client_recv(c, ev->data, ev->len);
		break;
	case HEC_FAB_EV_DONE:
		if (!c || ev->ctx != &c->closing)
			return NULL;
		c->closing = 2;
		break;
	case HEC_FAB_EV_CLOSED:
		if (!c) {
			hec_fab_ep_free(ev->ep);
			return gone;
		}
		if (c->hello)
			hec_info("%s: client %s (%s) gone%s%s%s", s->conf.name, c->name,
				 hec_fab_ep_peer(c->ep), ev->err ? " (" : "",
				 ev->err ? ev->why : "", ev->err ? ")" : "");
		client_free(c);
		return gone;
	}
	if (c && c->closing == 2) {
		client_free(c);
		return gone;
	}
	return NULL;
}

static void fab_drain(struct srv *s)
{
	struct hec_fab_ev ev[POLL_BATCH];

	for (int round = 0; round < DRAIN_ROUNDS; round++) {
		int n = hec_fab_poll(s->fab, ev, POLL_BATCH);

		if (n < 0) {
			hec_err("%s: fabric poll: %s", s->conf.name, strerror(-n));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct hec_fab_ep *gone = ev[i].type ? handle_event(s, &ev[i]) : NULL;

			for (int j = i + 1; gone && j < n; j++)
				if (ev[j].ep == gone)
					ev[j].type = 0;
		}
		for (struct client *c = s->clients; c; c = c->next)
			flush_queue(c);
		if (n == 0 && hec_fab_trywait(s->fab) == 0)
			return;
	}
	/* Still busy: let timers and signals run, then come back. */
	event_active(s->fab_retry, EV_TIMEOUT, 0);
}

static void fab_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fab_drain(arg);
}

/* "HOST:PORT PROVIDER\n", atomically, once listening. */
static int write_addr_file(struct srv *s)
{
	char path[PATH_MAX + 32], tmp[PATH_MAX + 32], line[400];
	int rc;

	hec_fmt(line, sizeof(line), "%s %s\n", hec_fab_address(s->fab), hec_fab_provider(s->fab));
	if (hec_fmt(path, sizeof(path), "%s/hecstored.addr", s->conf.dir) ||
	    hec_fmt(tmp, sizeof(tmp), "%s/.hecstored.addr.tmp", s->conf.dir))
		return -ENAMETOOLONG;
	rc = hec_create_file(tmp, line, strlen(line), 0644);
	if (!rc && rename(tmp, path))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int fab_start(struct srv *s)
{
	struct hec_fab_opts o = { .provider = s->conf.provider };
	char why[HEC_FAB_WHY] = "";
	int fds[2], n, rc;

	rc = hec_fab_listen(&o, s->conf.listen, &s->fab, why, sizeof(why));
	if (rc) {
		hec_err("%s: cannot listen on %s: %s", s->conf.name, s->conf.listen, why);
		return rc;
	}
	n = hec_fab_wait_fds(s->fab, fds);
	if (n < 0) {
		hec_err("%s: fabric wait fds: %s", s->conf.name, strerror(-n));
		return n;
	}
	for (int i = 0; i < n && i < 2; i++) {
		s->fab_ev[i] = event_new(s->base, fds[i], EV_READ | EV_PERSIST, fab_cb, s);
		if (!s->fab_ev[i] || event_add(s->fab_ev[i], NULL))
			return -ENOMEM;
	}
	s->fab_retry = event_new(s->base, -1, 0, fab_cb, s);
	if (!s->fab_retry)
		return -ENOMEM;
	rc = write_addr_file(s);
	if (rc) {
		hec_err("%s: %s/hecstored.addr: %s", s->conf.name, s->conf.dir, strerror(-rc));
		return rc;
	}
	/* the first client's slots ready before it comes (touched by the
	 * zeroing): a checkpoint's writer does not wait for their page faults */
	if (s->conf.keep_regions > 0) {
		int kept;

		region_put(s, region_get(s, &kept), NULL);
	}
	fab_drain(s);
	return 0;
}

/* ---- the controller link ---- */

static void ctl_connect(struct srv *s);

static void ctl_retry_later(struct srv *s)
{
	struct timeval tv = { RETRY_MS / 1000, (RETRY_MS % 1000) * 1000 };

	evtimer_add(s->retry_timer, &tv);
}

static void ctl_failed(struct srv *s, const char *why)
{
	/* Once per outage at warning level, then quietly. */
	if (s->ctl_failures++ == 0)
		hec_warn("%s: controller %s: %s; retrying every %d s", s->conf.name,
			 s->conf.controller, why, RETRY_MS / 1000);
	else
		hec_debug("%s: controller %s: %s", s->conf.name, s->conf.controller, why);
	ctl_retry_later(s);
}

static void send_status(struct srv *s)
{
	struct hec_cs_status st;
	char health[128] = "ok";
	json_t *b;

	if (!s->ctl || !s->registered || hec_cs_status(s->cs, &st))
		return;
	if (st.total && st.free * 100 / st.total < LOW_SPACE_PCT)
		snprintf(health, sizeof(health), "low space: %" PRIu64 "%% free",
			 st.free * 100 / st.total);
	else if (st.corrupt)
		snprintf(health, sizeof(health), "%" PRIu64 " corrupt copies found", st.corrupt);
	b = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
		      "total", (json_int_t)st.total, "free", (json_int_t)st.free,
		      "used", (json_int_t)st.used, "chunks", (json_int_t)st.chunks,
		      "manifests", (json_int_t)st.manifests, "corrupt", (json_int_t)st.corrupt,
		      "repaired", (json_int_t)st.repaired, "clients", (json_int_t)s->nclients,
		      "health", health);
	if (b)
		hec_conn_send(s->ctl, HEC_MSG_STORE_STATUS, b);
	json_decref(b);
}

static void status_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_status(arg);
}

static void ctl_on_msg(struct hec_conn *conn, const struct hec_msg *m, void *arg)
{
	struct srv *s = arg;
	long ms;
	struct timeval tv;

	(void)conn;
	switch (m->type) {
	case HEC_MSG_REGISTERED:
		ms = (long)json_integer_value(json_object_get(m->body, "heartbeat_ms"));
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		s->registered = 1;
		s->ctl_failures = 0;
		evtimer_del(s->status_timer);
		event_add(s->status_timer, &tv);
		hec_info("%s: registered with controller %s (status every %ld ms)", s->conf.name,
			 s->conf.controller, ms);
		send_status(s);
		break;
	case HEC_MSG_ERROR:
		/* The controller closes after it; the close retries. */
		if (s->ctl_failures++ == 0)
			hec_err("%s: controller %s refused us: %s", s->conf.name, s->conf.controller,
				json_string_value(json_object_get(m->body, "error")));
		break;
	default:
		hec_warn("%s: unexpected %s from controller %s, ignored", s->conf.name,
			 hec_msg_type_name(m->type), s->conf.controller);
	}
}

static void ctl_on_close(struct hec_conn *conn, const char *reason, void *arg)
{
	struct srv *s = arg;

	hec_conn_free(conn);
	s->ctl = NULL;
	evtimer_del(s->status_timer);
	if (s->registered)
		hec_warn("%s: lost controller %s: %s; reconnecting", s->conf.name,
			 s->conf.controller, reason ? reason : "connection closed");
	else
		hec_debug("%s: controller %s closed before REGISTERED: %s", s->conf.name,
			  s->conf.controller, reason ? reason : "connection closed");
	s->registered = 0;
	ctl_retry_later(s);
}

static void ctl_send_register(struct srv *s, int fd)
{
	json_t *b;

	s->ctl = hec_conn_new(s->base, fd, s->conf.controller, ctl_on_msg, ctl_on_close, s);
	if (!s->ctl) {
		close(fd);
		ctl_failed(s, strerror(ENOMEM));
		return;
	}
	b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "name", s->conf.name, "key", s->key,
		      "addr", hec_fab_address(s->fab), "provider", hec_fab_provider(s->fab),
		      "dir", s->dir_abs, "pid", (json_int_t)getpid());
	if (b)
		hec_conn_send(s->ctl, HEC_MSG_STORE_REGISTER, b);
	json_decref(b);
}

static void ctl_connected_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srv *s = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	event_free(s->connect_ev);
	s->connect_ev = NULL;
	s->connect_fd = -1;
	if (what & EV_TIMEOUT)
		err = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	if (err) {
		close(fd);
		ctl_failed(s, strerror(err));
		return;
	}
	ctl_send_register(s, fd);
}

/* Non-blocking, so clients never wait for a controller that is away. */
static void ctl_connect(struct srv *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, 0 };
	char host[256], port[16];
	int p, fd, rc;

	if (hec_split_hostport(s->conf.controller, host, sizeof(host), &p)) {
		ctl_failed(s, "expected host:port");
		return;
	}
	snprintf(port, sizeof(port), "%d", p);
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		ctl_failed(s, gai_strerror(rc));
		return;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	rc = fd < 0 ? -errno : connect(fd, ai->ai_addr, ai->ai_addrlen) ? -errno : 0;
	freeaddrinfo(ai);
	if (rc == 0) {
		ctl_send_register(s, fd);
		return;
	}
	if (rc == -EINPROGRESS) {
		s->connect_ev = event_new(s->base, fd, EV_WRITE, ctl_connected_cb, s);
		if (s->connect_ev && event_add(s->connect_ev, &tv) == 0) {
			s->connect_fd = fd;
			return;
		}
		if (s->connect_ev)
			event_free(s->connect_ev);
		s->connect_ev = NULL;
		rc = -ENOMEM;
	}
	if (fd >= 0)
		close(fd);
	ctl_failed(s, strerror(-rc));
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ctl_connect(arg);
}

/* ---- GC, signals ---- */

static void run_gc(struct srv *s)
{
	struct hec_cs_gc_stats st = { 0 };
	int rc;

	if (s->ndio) {
		/* it removes temporary files: not under a transfer */
		s->gc_wanted = 1;
		return;
	}
	rc = hec_cs_gc(s->cs, s->conf.gc_grace, busy_epoch, s, &st);

	if (rc)
		hec_err("%s: garbage collection in %s: %s", s->conf.name, s->conf.dir,
			strerror(-rc));
	if (st.temps || st.epochs)
		hec_info("%s: garbage collection: %" PRIu64 " temporary files and %" PRIu64
			 " abandoned uncommitted epochs removed", s->conf.name, st.temps, st.epochs);
}

static void gc_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_gc(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct srv *s = arg;

	(void)what;
	hec_info("%s: %s: exiting", s->conf.name, strsignal((int)sig));
	s->exit_code = 0;
	event_base_loopbreak(s->base);
}

/* ---- configuration ---- */

static void usage(FILE *f)
{
	fprintf(f, "usage: hecstored [-f FILE] [-o key=value]... [--help]\n"
		"       hecstored --dir DIR [--listen HOST:PORT] [--name N] [--key-file F]\n"
		"                 [--controller HOST:PORT] [--provider auto|verbs|tcp] [--slots K]\n"
		"                 [--slot-size BYTES] [--gc-grace SECS] [--gc-interval SECS]\n"
		"                 [--log-file F] [-o key=value]...\n"
		"Checkpoint storage server of hec (doc/storage.md).\n"
		"Configuration keys (file lines 'key = value', -o key=value, or --key-name):\n");
}

static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	default: break;
	}
	if (*end)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

/* \return 0, -1 (help printed), or an exit code after printing why. */
static int load_config(struct srv *s, int argc, char **argv, enum hec_log_level *lvl)
{
	static const struct hec_conf_opt key_opts[] = {
		{ "name", "name" }, { "dir", "dir" }, { "listen", "listen" },
		{ "controller", "controller" }, { "key-file", "key_file" },
		{ "provider", "provider" }, { "slots", "slots" }, { "slot-size", "slot_size" },
		{ "gc-grace", "gc_grace" }, { "gc-interval", "gc_interval" },
		{ "log-file", "log_file" }, { NULL, NULL },
	};
	struct srv_conf *c = &s->conf;
	char err[1024], host[256];
	int rc, p;

	if (hec_conf_defaults(conf_keys, c) ||
	    hec_msg_handlers_check(store_handlers, HEC_ARRAY_SIZE(store_handlers), HEC_SIDE_STORE,
				   err, sizeof(err))) {
		fprintf(stderr, "hecstored: internal error: key or message table\n");
		return 2;
	}
	rc = hec_conf_from_args(conf_keys, c, "hecstored", argc, argv, key_opts, usage, NULL);
	if (rc)
		return rc;

	if (!*c->name) {
		if (gethostname(host, sizeof(host)))
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = 0;
		snprintf(c->name, sizeof(c->name), "%.*s", NAME_MAX_LEN, host);
	}
	if (!hec_name_ok(c->name)) {
		fprintf(stderr, "hecstored: name '%s': use 1-%d letters, digits, '.', '_' or '-'\n",
			c->name, NAME_MAX_LEN);
		return 2;
	}
	if (!*c->dir) {
		fprintf(stderr, "hecstored: no dir given (--dir DIR, or 'dir = DIR' in the file)\n");
		return 2;
	}
	if (hec_split_hostport(c->listen, host, sizeof(host), &p)) {
		fprintf(stderr, "hecstored: listen '%s': expected host:port\n", c->listen);
		return 2;
	}
	if (*c->controller &&
	    (hec_split_hostport(c->controller, host, sizeof(host), &p) || p == 0)) {
		fprintf(stderr, "hecstored: controller '%s': expected host:port\n", c->controller);
		return 2;
	}
	if (strcmp(c->provider, "auto") && strcmp(c->provider, "verbs") &&
	    strcmp(c->provider, "tcp")) {
		fprintf(stderr, "hecstored: provider '%s': expected auto, verbs or tcp\n",
			c->provider);
		return 2;
	}
	if (parse_size(c->slot_size, &s->slot_size) || s->slot_size < 4096 ||
	    s->slot_size > (1u << 30)) {
		fprintf(stderr, "hecstored: slot_size '%s': expected 4K to 1G (a number with K, M or G)\n",
			c->slot_size);
		return 2;
	}
	if (hec_log_level_parse(c->log_level, lvl)) {
		fprintf(stderr, "hecstored: log_level '%s': expected err, warn, info or debug\n",
			c->log_level);
		return 2;
	}
	return 0;
}

/* The cluster key: the file's content without surrounding white space. */
static int read_key(struct srv *s)
{
	char why[128];
	int rc;

	if (!*s->conf.key_file)
		return 0;
	rc = hec_read_key(s->conf.key_file, s->key, sizeof(s->key), why, sizeof(why));
	if (rc)
		fprintf(stderr, "hecstored: key_file %s: %s\n", s->conf.key_file, why);
	return rc;
}

static int open_log(const char *path)
{
	int fd;

	if (!*path)
		return 0;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		fprintf(stderr, "hecstored: log_file %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void srv_free(struct srv *s)
{
	char path[PATH_MAX + 32];

	aio_stop(s);
	while (s->clients)
		client_free(s->clients);
	while (s->nspare)
		region_unmap(s, s->spare[--s->nspare]);
	if (s->ctl)
		hec_conn_free(s->ctl);
	if (s->connect_ev)
		event_free(s->connect_ev);
	if (s->connect_fd >= 0)
		close(s->connect_fd);
	for (size_t i = 0; i < HEC_ARRAY_SIZE(s->fab_ev); i++)
		if (s->fab_ev[i])
			event_free(s->fab_ev[i]);
	if (s->fab_retry)
		event_free(s->fab_retry);
	if (s->fab) {
		/* Clients must not dial an address nobody serves. */
		if (hec_fmt(path, sizeof(path), "%s/hecstored.addr", s->conf.dir) == 0)
			unlink(path);
		hec_fab_close(s->fab);
	}
	for (size_t i = 0; i < HEC_ARRAY_SIZE(s->sigs); i++)
		if (s->sigs[i])
			event_free(s->sigs[i]);
	if (s->gc_timer)
		event_free(s->gc_timer);
	if (s->hello_timer)
		event_free(s->hello_timer);
	if (s->retry_timer)
		event_free(s->retry_timer);
	if (s->status_timer)
		event_free(s->status_timer);
	if (s->base)
		event_base_free(s->base);
	hec_cs_close(s->cs);
	free(s);
}

int main(int argc, char **argv)
{
	struct srv *s = calloc(1, sizeof(*s));
	enum hec_log_level lvl = HEC_LOG_INFO;
	struct timeval gc_tv, hello_tv = { 1, 0 };
	char why[512] = "";
	int rc;

	if (!s) {
		fprintf(stderr, "hecstored: out of memory\n");
		return 1;
	}
	s->connect_fd = -1;
	s->aio_fd = -1;
	s->exit_code = 1;
	rc = load_config(s, argc, argv, &lvl);
	if (rc) {
		free(s);
		return rc < 0 ? 0 : rc;
	}
	if (read_key(s) || open_log(s->conf.log_file)) {
		free(s);
		return 1;
	}
	hec_log_init("hecstored", lvl);
	signal(SIGPIPE, SIG_IGN);

	rc = hec_cs_open(s->conf.dir, &s->cs, why, sizeof(why));
	if (rc) {
		hec_err("%s: %s", s->conf.name, why);
		goto out;
	}
	if (!realpath(s->conf.dir, s->dir_abs))
		snprintf(s->dir_abs, sizeof(s->dir_abs), "%s", s->conf.dir);
	{
		/* A stale address from a previous run would send clients nowhere. */
		char path[PATH_MAX + 32];

		if (hec_fmt(path, sizeof(path), "%s/hecstored.addr", s->conf.dir) == 0)
			unlink(path);
	}
	s->base = event_base_new();
	if (!s->base) {
		hec_err("%s: cannot create the event loop", s->conf.name);
		goto out;
	}
	s->gc_timer = event_new(s->base, -1, EV_PERSIST, gc_cb, s);
	s->hello_timer = event_new(s->base, -1, EV_PERSIST, hello_cb, s);
	s->retry_timer = evtimer_new(s->base, retry_cb, s);
	s->status_timer = event_new(s->base, -1, EV_PERSIST, status_cb, s);
	s->sigs[0] = evsignal_new(s->base, SIGTERM, on_signal, s);
	s->sigs[1] = evsignal_new(s->base, SIGINT, on_signal, s);
	gc_tv.tv_sec = s->conf.gc_interval;
	gc_tv.tv_usec = 0;
	if (!s->gc_timer || !s->hello_timer || !s->retry_timer || !s->status_timer || !s->sigs[0] ||
	    !s->sigs[1] || event_add(s->sigs[0], NULL) || event_add(s->sigs[1], NULL) ||
	    event_add(s->gc_timer, &gc_tv) || event_add(s->hello_timer, &hello_tv)) {
		hec_err("%s: cannot set up events: out of memory", s->conf.name);
		goto out;
	}
	aio_start(s);
	run_gc(s);
	if (fab_start(s))
		goto out;
	hec_info("%s: hecstored %s up: %s (%s), dir %s, %ld slots of %zu bytes per client, controller %s",
		 s->conf.name, PACKAGE_VERSION, hec_fab_address(s->fab), hec_fab_provider(s->fab),
		 s->dir_abs, s->conf.slots, s->slot_size,
		 *s->conf.controller ? s->conf.controller : "none (standalone)");
	if (*s->conf.controller)
		ctl_connect(s);
	event_base_dispatch(s->base);
out:
	rc = s->exit_code;
	srv_free(s);
	libevent_global_shutdown();
	return rc;
}
