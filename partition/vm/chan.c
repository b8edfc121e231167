/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest channel (vm.h): hec-guest, PID 1 in the guest, speaks the
 * framed protocol of include/hec/guest.h over a virtio-serial port.  Its
 * HELLO ends a boot (once the gang switch is measured, gate.c), and the
 * batch step runs through it (RUN, OUT, EXIT).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "hec/common.h"
#include "partition/vm/vm.h"

int guest_send(struct vm *v, unsigned type, const void *payload, uint32_t len)
{
	uint8_t hdr[HEC_GUEST_HDR];
	struct evbuffer *out;

	if (!v->q.guest)
		return -ENOTCONN;
	out = bufferevent_get_output(v->q.guest);
	hec_guest_header(hdr, type, len);
	if (evbuffer_add(out, hdr, sizeof(hdr)) || (len && evbuffer_add(out, payload, len)))
		return -ENOMEM;
	return 0;
}

static void on_hello(struct vm *v, const struct hec_guest_frame *f)
{
	const char *kernel = hec_guest_kv_get(f->payload, f->len, "kernel");

	if (v->state != VM_BOOTING)
		return;
	v->state = VM_UP;
	evtimer_del(v->timer);
	hec_job_info(v->host->node, v->job, "guest up (kernel %s, %d vCPUs, %ld MB)",
		     kernel ? kernel : "?", v->vcpus, v->mem_mb);
	calibrate(v);
	guest_save(v);
	start_finish(v, 0, NULL);
}

static void on_out(struct vm *v, const struct hec_guest_frame *f)
{
	int fd, rc;

	if (f->len < 1 || !v->running)
		return;
	fd = f->payload[0] == 2 && v->err_fd >= 0 ? v->err_fd : v->out_fd;
	/* The output file is a regular file: a short blocking write is fine. */
	rc = fd >= 0 ? hec_write_all(fd, f->payload + 1, f->len - 1) : 0;
	if (rc)
		hec_job_warn(v->host->node, v->job, "output lost: %s", strerror(-rc));
}

static void on_exit_frame(struct vm *v, const struct hec_guest_frame *f)
{
	long long code = 1, sig = 0, id = -1;
	const char *error = hec_guest_kv_get(f->payload, f->len, "error");
	char why[1100];

	if (hec_guest_kv_int(f->payload, f->len, "id", 0, 1LL << 40, &id) || !v->running)
		return;
	/* attached to a restored guest's step before its PONG named it */
	if (v->attach_unknown) {
		v->attach_unknown = 0;
		v->run_id = (long)id;
	}
	if (id != v->run_id)
		return;
	hec_guest_kv_int(f->payload, f->len, "exit", 0, 255, &code);
	hec_guest_kv_int(f->payload, f->len, "signal", 0, 128, &sig);
	run_ended(v);
	guest_save(v);
	if (error)
		hec_fmt(why, sizeof(why), "in the guest: %s", error);
	hec_job_info(v->host->node, v->job,
		     "batch step in the guest ended: exit %lld, signal %lld%s%s", code, sig,
		     error ? ": " : "", error ? error : "");
	vm_exited(v, (int)code, (int)sig, error ? why : NULL);
}


/*
 * A restored guest's channel may begin inside a frame: hec-guest had sent
 * its head to the QEMU captured (whose connection is gone with it) when
 * the checkpoint was taken, and sends the rest now.  Skip to the first
 * header of a frame a guest sends.  \return 1 once in step.
 */
static int guest_resync(struct vm *v, struct evbuffer *in)
{
	size_t avail = evbuffer_get_length(in), k;
	int found;

	k = hec_guest_sync(evbuffer_pullup(in, -1), avail, &found);
	evbuffer_drain(in, k);
	v->resync_skipped += k;
	if (!found)
		return 0;
	if (v->resync_skipped)
		hec_job_warn(v->host->node, v->job,
			     "restored guest: %zu bytes of a frame cut by the checkpoint skipped",
			     v->resync_skipped);
	v->resync = 0;
	return 1;
}

void guest_read(struct bufferevent *bev, void *arg)
{
	struct vm *v = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (v->resync && !guest_resync(v, in))
		return;

	while (v->q.guest && evbuffer_get_length(in) >= HEC_GUEST_HDR) {
		/* Draining frames off the front keeps the rest contiguous, so
		 * this copies at most once per read. */
		size_t avail = evbuffer_get_length(in);
		struct hec_guest_frame f;
		long n = hec_guest_decode(evbuffer_pullup(in, -1), avail, &f);

		if (n == 0)
			return; /* the rest of the frame is on its way */
		if (n < 0) {
			vm_fail(v, "the guest channel broke: %s", strerror((int)-n));
			return;
		}
		if (f.type != HEC_G_OUT && hec_guest_kv_check(f.payload, f.len)) {
			vm_fail(v, "the guest sent a malformed frame (type %u)", f.type);
			return;
		}
		switch (f.type) {
		case HEC_G_HELLO:
			on_hello(v, &f);
			break;
		case HEC_G_OUT:
			on_out(v, &f);
			break;
		case HEC_G_EXIT:
			on_exit_frame(v, &f);
			break;
		case HEC_G_LOG: {
			const char *msg = hec_guest_kv_get(f.payload, f.len, "msg");

			hec_job_info(v->host->node, v->job, "guest: %s", msg ? msg : "?");
			break;
		}
		case HEC_G_PONG:
			if (v->on_pong)
				v->on_pong(v, &f);
			break;
		default:
			break; /* STARTED: nothing to do */
		}
		if (v->state == VM_DEAD || !v->q.guest)
			return;
		evbuffer_drain(in, (size_t)n);
	}
}


void run_attach(struct vm *v, int out_fd, int err_fd)
{
	v->out_fd = out_fd >= 0 ? dup(out_fd) : -1;
	v->err_fd = err_fd >= 0 ? dup(err_fd) : v->out_fd;
	v->running = 1;
	guest_save(v);
}

int vm_run(struct hec_partition *p, const struct hec_run_req *req, char *why, size_t len)
{
	struct vm *v = p->priv;
	struct hec_guest_kvbuf kv = { 0 };
	int rc = 0;

	if (v->state != VM_UP || !v->q.guest) {
		hec_fmt(why, len, "the job's guest is not up%s%s", v->why[0] ? ": " : "", v->why);
		return -ENOTCONN;
	}
	if (v->running) {
		hec_fmt(why, len, "a batch step already runs in the guest");
		return -EBUSY;
	}
	if (req->attach) {
		if (!v->from_stream) {
			hec_fmt(why, len, "the guest was not restarted from a checkpoint: no batch step to attach to");
			return -EINVAL;
		}
		if (v->ponged && !v->guest_run) {
			hec_fmt(why, len, "no batch step runs in the guest restored from the checkpoint");
			return -ENOENT;
		}
		/* Before the resume's PONG, the step's id is the guest's to say
		 * (its PONG, or its EXIT if that comes first). */
		v->run_id = v->guest_run;
		v->attach_unknown = !v->ponged;
		run_attach(v, req->out_fd, req->err_fd);
		return 0;
	}
	v->run_id++;
	rc = hec_guest_kv_addf(&kv, "id", "%ld", v->run_id);
	if (!rc)
		rc = hec_guest_kv_addf(&kv, "uid", "%u", (unsigned)req->uid);
	if (!rc)
		rc = hec_guest_kv_addf(&kv, "gid", "%u", (unsigned)req->gid);
	if (!rc)
		rc = hec_guest_kv_add(&kv, "cwd", req->cwd);
	for (int i = 0; !rc && req->argv[i]; i++)
		rc = hec_guest_kv_add(&kv, "arg", req->argv[i]);
	for (int i = 0; !rc && req->envp[i]; i++)
		rc = hec_guest_kv_add(&kv, "env", req->envp[i]);
	if (!rc)
		rc = guest_send(v, HEC_G_RUN, kv.p, kv.len);
	hec_guest_kv_free(&kv);
	if (rc) {
		hec_fmt(why, len, "cannot send the batch step to the guest: %s", strerror(-rc));
		return rc;
	}
	run_attach(v, req->out_fd, req->err_fd);
	return 0;
}

