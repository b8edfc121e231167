/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libhec-mpifix.so: preloaded into every program of a vm guest (hec-mkimage
 * puts it in the image's /etc/ld.so.preload) to keep MPICH 4.0's
 * MPI_Finalize from hanging over TCP.
 *
 * MPICH 4.0 (Debian 12) closes its UCX endpoints in flush mode, waits for
 * that, then enters a PMI barrier.  UCX's TCP transport flushes by asking
 * the peer for an acknowledgement, which the peer sends only while it calls
 * ucp_worker_progress().  A rank whose own flush finished first sits in the
 * barrier's blocking read() of its PMI socket and no longer progresses, so a
 * peer still flushing waits for it forever, and the peer never reaches the
 * barrier either (MPICH later removed that barrier: pmodels/mpich#6596).
 * Between guests only TCP connects ranks, and gang scheduling makes ranks
 * reach MPI_Finalize at different times, so it happened here in about half
 * of the runs of two gang-scheduled jobs.
 *
 * The fix: once the rank has begun disconnecting (ucp_disconnect_nb), a
 * read() of the PMI socket (PMI_FD) waits in short polls and progresses the
 * UCX worker in between, as the barrier should have.  Nothing else changes:
 * before finalize, or for any other descriptor, read() is read().  Programs
 * without UCX never call ucp_disconnect_nb, so the shim is inert there.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define POLL_MS 1

/* UCX's handles, opaque here: the shim needs no UCX headers. */
typedef void *ucp_worker_h;
typedef void *ucp_ep_h;

int ucp_worker_create(void *context, const void *params, ucp_worker_h *worker);
void ucp_worker_destroy(ucp_worker_h worker);
void *ucp_disconnect_nb(ucp_ep_h ep);
ssize_t read(int fd, void *buf, size_t count);

static ucp_worker_h workers[MAX_WORKERS];
static int nworkers;
static int finalizing;
static int pmi_fd = -2; /* -2: not looked up yet, -1: none */

static unsigned (*real_progress)(ucp_worker_h);

static void *next(const char *sym)
{
	return dlsym(RTLD_NEXT, sym);
}

/* Remember the workers MPICH makes (ucp_worker_progress itself is left
 * alone: it is MPICH's polling loop). */
int ucp_worker_create(void *context, const void *params, ucp_worker_h *worker)
{
	static int (*real)(void *, const void *, ucp_worker_h *);
	int status;

	if (!real)
		real = (int (*)(void *, const void *, ucp_worker_h *))next("ucp_worker_create");
	if (!real)
		return -1; /* UCS_ERR_NO_MESSAGE: no UCX under us */
	status = real(context, params, worker);
	if (status == 0 && nworkers < MAX_WORKERS) /* UCS_OK */
		workers[nworkers++] = *worker;
	return status;
}

/* After the barrier MPICH destroys its workers: never progress a dead one
 * (PMI_Finalize reads the PMI socket once more). */
void ucp_worker_destroy(ucp_worker_h worker)
{
	static void (*real)(ucp_worker_h);

	if (!real)
		real = (void (*)(ucp_worker_h))next("ucp_worker_destroy");
	for (int i = 0; i < nworkers; i++)
		if (workers[i] == worker)
			workers[i--] = workers[--nworkers];
	finalizing = 0;
	if (real)
		real(worker);
}

void *ucp_disconnect_nb(ucp_ep_h ep)
{
	static void *(*real)(ucp_ep_h);

	if (!real)
		real = (void *(*)(ucp_ep_h))next("ucp_disconnect_nb");
	finalizing = 1;
	return real ? real(ep) : NULL;
}

static int pmi_socket(void)
{
	if (pmi_fd == -2) {
		const char *s = getenv("PMI_FD");
		char *end;
		long v = s ? strtol(s, &end, 10) : -1;

		pmi_fd = s && *s && !*end && v >= 0 && v < 65536 ? (int)v : -1;
	}
	return pmi_fd;
}

ssize_t read(int fd, void *buf, size_t count)
{
	static ssize_t (*real)(int, void *, size_t);

	if (!real)
		real = (ssize_t (*)(int, void *, size_t))next("read");
	if (finalizing && nworkers && fd >= 0 && fd == pmi_socket() && !real_progress)
		real_progress = (unsigned (*)(ucp_worker_h))next("ucp_worker_progress");
	if (finalizing && nworkers && real_progress && fd >= 0 && fd == pmi_socket()) {
		int saved = errno;

		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int r = poll(&p, 1, POLL_MS);

			if (r > 0 || (r < 0 && errno != EINTR))
				break;
			for (int i = 0; i < nworkers; i++)
				real_progress(workers[i]);
		}
		errno = saved;
	}
	return real(fd, buf, count);
}
