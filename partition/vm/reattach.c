/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guest of an agent that was restarted (vm.h): QEMU is not the
 * agent's child, so its death takes no guest with it.  guest.json (state.c)
 * says which QEMU it is; we listen on its sockets again, and QEMU, whose
 * client chardevs reconnect every second, comes back to the QMP monitors
 * and the guest channel.  hec-guest holds the batch step's output and exit
 * while no host listens, and answers our PING with the step it runs, so
 * nothing the step said is lost (but what was in flight when the agent
 * died).  Not our child, QEMU is watched by polling its /proc entry.
 *
 * The job network: QEMU 7.2's stream netdev has no reconnect, so the
 * guest's NIC is on a hub (qemu.c) and a new stream is plugged into it
 * once the event monitor is back (net_replug).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"

#define REATTACH_TIMEOUT_S 120 /* QEMU reconnects at once; hec-guest polls its port */

static int load_int(const json_t *o, const char *name, long long min, long long max,
		    long long *out)
{
	const json_t *x = json_object_get(o, name);

	if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max)
		return -EBADMSG;
	*out = json_integer_value(x);
	return 0;
}

/* guest.json, as guest_save() wrote it. */
static int guest_load(struct vm *v, char *why, size_t len)
{
	char path[PATH_MAX];
	const char *hub, *kernel, *initrd;
	long long pid, start, index, nodes, vcpus, mem, uid, gid, run, gen;
	const struct {
		const char *name;
		long long min, max, *out;
	} ints[] = {
		{ "qemu_pid", 1, INT32_MAX, &pid }, { "qemu_start", 1, INT64_MAX, &start },
		{ "index", 0, INT32_MAX, &index }, { "nodes", 1, INT32_MAX, &nodes },
		{ "vcpus", 1, INT32_MAX, &vcpus }, { "mem_mb", 1, INT32_MAX, &mem },
		{ "uid", 0, UINT32_MAX, &uid }, { "gid", 0, UINT32_MAX, &gid },
		{ "run_id", 0, 1LL << 40, &run }, { "net_gen", 0, 1 << 20, &gen },
	};
	json_error_t jerr;
	json_t *o;
	int rc = 0;

	if (hec_fmt(path, sizeof(path), "%s/guest.json", v->dir)) {
		hec_fmt(why, len, "%s/guest.json: path too long", v->dir);
		return -ENAMETOOLONG;
	}
	o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		rc = access(path, F_OK) ? -ENOENT : -EBADMSG;
		hec_fmt(why, len, rc == -ENOENT ? "the guest was not up when the previous hecd ended (no %s)" : "%s: %s",
			path, jerr.text);
		return rc;
	}
	hub = json_string_value(json_object_get(o, "hub_addr"));
	kernel = json_string_value(json_object_get(o, "kernel"));
	initrd = json_string_value(json_object_get(o, "initrd"));
	for (size_t i = 0; !rc && i < sizeof(ints) / sizeof(ints[0]); i++)
		rc = load_int(o, ints[i].name, ints[i].min, ints[i].max, ints[i].out);
	if (!rc && nodes <= index)
		rc = -EBADMSG;
	if (!rc && (!hub || !kernel || !initrd ||
		    hec_fmt(v->hub_addr, sizeof(v->hub_addr), "%s", hub) ||
		    hec_fmt(v->kernel, sizeof(v->kernel), "%s", kernel) ||
		    hec_fmt(v->initrd, sizeof(v->initrd), "%s", initrd)))
		rc = -EBADMSG;
	if (rc) {
		hec_fmt(why, len, "%s is malformed", path);
	} else {
		v->q.pid = (pid_t)pid;
		v->q_start = (unsigned long long)start;
		v->index = (int)index;
		v->nnodes = (int)nodes;
		v->vcpus = (int)vcpus;
		v->mem_mb = (long)mem;
		v->uid = (uid_t)uid;
		v->gid = (gid_t)gid;
		v->run_id = (long)run;
		v->net_gen = (int)gen;
		v->running = json_is_true(json_object_get(o, "running"));
	}
	json_decref(o);
	return rc;
}

static int qemu_alive(const struct vm *v)
{
	return v->q.pid > 0 && hec_proc_start(v->q.pid) == v->q_start;
}

/* PONG: hec-guest hears us again, and says which batch step it runs. */
static void reattach_ponged(struct vm *v, const struct hec_guest_frame *f)
{
	long long run = 0;

	hec_guest_kv_int(f->payload, f->len, "run", 0, 1LL << 40, &run);
	v->on_pong = NULL;
	v->reattach_deadline_ns = 0;
	hec_job_info(v->host->node, v->job, "guest of the previous hecd re-attached (%s)",
		     run ? "its batch step runs" : "no batch step runs");
	if (v->running && run != v->run_id) {
		/* its EXIT went to the agent that died */
		run_ended(v);
		guest_save(v);
		vm_exited(v, 1, 0, "the batch step in the guest ended as hecd was restarting; its exit status is lost");
		return;
	}
	/* the gang's way of switching it, measured afresh, and the
	 * dispatcher's gates reopened that way */
	calibrate(v);
}

static void net_plugged(struct vm *v, json_t *reply, const char *error)
{
	if (v->state != VM_UP || (reply && !error))
		return;
	/* its frames would go nowhere, and its job's ranks hang: a clear end */
	if (v->nnodes > 1)
		vm_fail(v, "the guest's link to the job network: QEMU: %s",
			reply ? error : "its monitor went away");
}

static void net_unplugged(struct vm *v, json_t *reply, const char *error)
{
	(void)v;
	(void)reply;
	(void)error; /* gone already is as good */
}

static void netdev_del(struct vm *v, const char *prefix, int gen)
{
	char id[32];

	hec_fmt(id, sizeof(id), "%s%d", prefix, gen);
	qmp_call(v, json_pack("{s:s, s:{s:s}}", "execute", "netdev_del", "arguments", "id", id), -1,
		 net_unplugged);
}

/*
 * The event monitor is back: the guest's stream netdev, cut with the
 * previous agent and never to reconnect, is unplugged from the NIC's hub
 * and a new one, connecting to our net.sock, plugged in.  The generation
 * is saved first: a restart in between finds the old one's ids gone.
 */
static void net_replug(struct vm *v)
{
	char path[PATH_MAX + 16], id[32], port[32];

	v->on_greeted = NULL;
	netdev_del(v, "hpn", v->net_gen);
	netdev_del(v, "n", v->net_gen);
	v->net_gen++;
	guest_save(v);
	hec_fmt(path, sizeof(path), "%s/net.sock", v->dir);
	hec_fmt(id, sizeof(id), "n%d", v->net_gen);
	hec_fmt(port, sizeof(port), "hpn%d", v->net_gen);
	qmp_call(v, json_pack("{s:s, s:{s:s, s:s, s:b, s:{s:s, s:s}}}", "execute", "netdev_add",
			      "arguments", "type", "stream", "id", id, "server", 0, "addr", "type",
			      "unix", "path", path), -1, net_plugged);
	qmp_call(v, json_pack("{s:s, s:{s:s, s:s, s:i, s:s}}", "execute", "netdev_add", "arguments",
			      "type", "hubport", "id", port, "hubid", 0, "netdev", id), -1, net_plugged);
}

/* Every second: QEMU still there?  Until hec-guest answers, PING it. */
static void watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;
	struct hec_guest_kvbuf kv = { 0 };

	(void)fd;
	(void)what;
	if (v->state != VM_UP)
		return;
	if (!qemu_alive(v)) {
		pid_t pid = v->q.pid;

		v->q.pid = 0; /* not ours to reap, nor to kill once its number is reused */
		vm_fail(v, "QEMU (pid %d) ended after hecd's restart; not hecd's child, its exit status is unknown (console: %s/console.log)",
			(int)pid, v->dir);
		return;
	}
	if (!v->reattach_deadline_ns)
		return;
	if (hec_now_mono_ns() > v->reattach_deadline_ns) {
		vm_fail(v, "the guest of the previous hecd does not answer on its channel within %d s of hecd's restart",
			REATTACH_TIMEOUT_S);
		return;
	}
	if (!v->q.guest)
		return; /* QEMU has not reconnected yet */
	/* Any PONG will do: one sent a tick ago may come after this one. */
	if (!hec_guest_kv_addf(&kv, "seq", "%ld", ++v->ping_seq) &&
	    !guest_send(v, HEC_G_PING, kv.p, kv.len))
		v->on_pong = reattach_ponged;
	hec_guest_kv_free(&kv);
}

int vm_reattach(struct vm *v, const struct hec_reattach_req *req, char *why, size_t len)
{
	struct timeval tv = { 1, 0 };
	int rc;

	if (!req->dir || hec_fmt(v->dir, sizeof(v->dir), "%s", req->dir) ||
	    hec_fmt(v->key, sizeof(v->key), "%s", req->key ? req->key : "")) {
		hec_fmt(why, len, "job directory or key too long");
		return -ENAMETOOLONG;
	}
	rc = guest_load(v, why, len);
	if (rc)
		return rc;
	if (!qemu_alive(v)) {
		hec_fmt(why, len, "the guest's QEMU (pid %d) ended while hecd was down", (int)v->q.pid);
		v->q.pid = 0;
		return -ESRCH;
	}
	if (req->step && !v->running) {
		hec_fmt(why, len, "the batch step in the guest ended as hecd stopped; its exit status is lost");
		return -ENOENT;
	}
	v->watch = event_new(v->host->base, -1, EV_PERSIST, watch_cb, v);
	if (!v->watch || event_add(v->watch, &tv)) {
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	rc = make_listeners(v, why, len);
	if (rc)
		return rc;
	v->state = VM_UP;
	v->reattached = 1;
	v->on_greeted = net_replug;
	v->reattach_deadline_ns = hec_now_mono_ns() + (int64_t)REATTACH_TIMEOUT_S * 1000000000;
	if (req->step)
		run_attach(v, req->out_fd, req->err_fd);
	else
		v->running = 0;
	hec_job_info(v->host->node, v->job, "re-attaching to the guest of the previous hecd (QEMU pid %d%s)",
		     (int)v->q.pid, v->running ? ", its batch step" : "");
	return 0;
}
