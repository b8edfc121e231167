/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vm partition driver's ops table and the life of an instance (vm.h).
 * A vm partition is a proc partition (the job's cgroups, where QEMU runs)
 * with a guest: the cgroup ops go to the proc partition under it, the
 * machine ops are the guest's.  The table is the only symbol of
 * partition/vm/ the rest of the program uses.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"
#include "hec/qmp.h"
#include "partition/vm/vnet.h"

static struct vm *V(struct hec_partition *p)
{
	return p->priv;
}

/* ---- the instance: a proc partition with a guest ---- */

static int vm_wrap(struct hec_partition *cg, struct hec_partition **out, char *why, size_t len)
{
	struct hec_partition *p = calloc(1, sizeof(*p));
	struct vm *v = calloc(1, sizeof(*v));

	if (!p || !v) {
		free(p);
		free(v);
		hec_partition_proc_ops.release(cg);
		hec_fmt(why, len, "out of memory");
		return -ENOMEM;
	}
	p->ops = &hec_partition_vm_ops;
	p->priv = v;
	p->job = cg->job;
	v->self = p;
	v->cg = cg;
	v->job = cg->job;
	v->mk_fd = v->out_fd = v->err_fd = v->op_fd = v->in_fd = -1;
	for (int i = 0; i < NLISTEN; i++)
		v->lfd[i] = -1;
	*out = p;
	return 0;
}

static int vm_node_init(const struct hec_partition_env *env, char *why, size_t len)
{
	return hec_partition_proc_ops.node_init(env, why, len);
}

static int vm_node_fini(const struct hec_partition_env *env, char *why, size_t len)
{
	return hec_partition_proc_ops.node_fini(env, why, len);
}

static int vm_create(const struct hec_partition_env *env, long job, struct hec_partition **out,
		     char *why, size_t len)
{
	struct hec_partition *cg;
	int rc = hec_partition_proc_ops.create(env, job, &cg, why, len);

	return rc ? rc : vm_wrap(cg, out, why, len);
}

static int vm_open(const struct hec_partition_env *env, long job, struct hec_partition **out,
		   char *why, size_t len)
{
	struct hec_partition *cg;
	int rc = hec_partition_proc_ops.open(env, job, &cg, why, len);

	return rc ? rc : vm_wrap(cg, out, why, len);
}

static int vm_list(const struct hec_partition_env *env, long *jobs, int max, char *why, size_t len)
{
	return hec_partition_proc_ops.list(env, jobs, max, why, len);
}

static int vm_spawn(struct hec_partition *p, const struct hec_spawn_req *req, pid_t *pid,
		    char *why, size_t len)
{
	return hec_partition_proc_ops.spawn(V(p)->cg, req, pid, why, len);
}

static int vm_nprocs(struct hec_partition *p, char *why, size_t len)
{
	return hec_partition_proc_ops.nprocs(V(p)->cg, why, len);
}

/* Stop / resume the guest's vCPUs (its devices and QEMU keep running). */
static int vm_freeze_thaw(struct hec_partition *p, int frozen, char *why, size_t len)
{
	struct vm *v = V(p);
	int rc;

	/* A guest loaded from a checkpoint stays paused until resume(): QMP's
	 * cont would run it. */
	if (!v->q.mon || v->paused)
		return frozen ? hec_partition_proc_ops.freeze(v->cg, why, len) :
				hec_partition_proc_ops.thaw(v->cg, why, len);
	rc = qmp_mon_set(v->q.mon, frozen);
	if (!rc)
		rc = qmp_mon_wait(v->q.mon, frozen, GATE_QMP_TIMEOUT_MS * 1000L);
	if (rc)
		hec_fmt(why, len, "QMP %s", frozen ? "stop" : "cont");
	return rc;
}

static int vm_freeze(struct hec_partition *p, char *why, size_t len)
{
	return vm_freeze_thaw(p, 1, why, len);
}

static int vm_thaw(struct hec_partition *p, char *why, size_t len)
{
	return vm_freeze_thaw(p, 0, why, len);
}

static int vm_kill(struct hec_partition *p, char *why, size_t len)
{
	return hec_partition_proc_ops.kill(V(p)->cg, why, len);
}

static int vm_destroy(struct hec_partition *p, char *why, size_t len)
{
	return hec_partition_proc_ops.destroy(V(p)->cg, why, len);
}

static const char *vm_path(struct hec_partition *p, int i)
{
	return hec_partition_proc_ops.path(V(p)->cg, i);
}

static int vm_cpu_usage(struct hec_partition *p, unsigned long long *usec, char *why, size_t len)
{
	return hec_partition_proc_ops.cpu_usage(V(p)->cg, usec, why, len);
}

/*
 * Drop everything of the guest on our side, for good (forget, release, a
 * start that failed): whoever waits on it hears that it is gone.  The
 * running QEMU goes with the job's cgroup (kill): only the connections
 * close here, and its exit, like the image tool's, is reaped by the host
 * as nobody's.  Idempotent.
 */
static void vm_drop(struct vm *v)
{
	start_finish(v, -ECANCELED, "the partition is going away");
	if (v->op != OP_NONE)
		op_deliver(v, -ECANCELED, "the partition is going away", 0);
	v->state = VM_DEAD;
	close_listeners(v);
	if (v->mk_ev) {
		event_free(v->mk_ev);
		v->mk_ev = NULL;
	}
	if (v->mk_fd >= 0) {
		close(v->mk_fd);
		v->mk_fd = -1;
	}
	if (v->mk_pid > 0 && !v->mk_reaped)
		kill(v->mk_pid, SIGKILL);
	v->mk_pid = 0;
	v->q.pid = 0;
	qemu_drop(&v->q);
	qmp_flush(v, 0);
	if (v->op_timer) {
		event_free(v->op_timer);
		v->op_timer = NULL;
	}
	if (v->uplink) {
		hec_conn_free(v->uplink);
		v->uplink = NULL;
	}
	if (v->timer) {
		event_free(v->timer);
		v->timer = NULL;
	}
	if (v->watch) {
		event_free(v->watch);
		v->watch = NULL;
	}
	if (v->in_timer) {
		event_free(v->in_timer);
		v->in_timer = NULL;
	}
	if (v->in_fd >= 0) {
		close(v->in_fd);
		v->in_fd = -1;
	}
	vnet_free(v->net);
	v->net = NULL;
	run_ended(v);
}

static void vm_forget(struct hec_partition *p)
{
	vm_drop(V(p));
}

static void vm_release(struct hec_partition *p)
{
	struct vm *v = V(p);

	vm_drop(v);
	hec_partition_proc_ops.release(v->cg);
	free(v);
	free(p);
}

/* ---- gates: the proc driver's, or QMP stop/cont (gate.c) ---- */

static int vm_gate_open(struct hec_partition *p, struct hec_gate **out, char *why, size_t len)
{
	struct vm *v = V(p);

	if (v->cap_held) {
		/* out of the gang until its capture gives it back (op_rejoin) */
		hec_fmt(why, len, "a capture of the guest holds it");
		return -EBUSY;
	}
	/* Switched by cgroup freeze: the proc gate itself, so the slot switch
	 * goes through no layer of ours. */
	if (!vm_gate_is_qmp(v))
		return hec_partition_proc_ops.gate_open(v->cg, out, why, len);
	*out = qmp_gate_new(v->q.mon);
	if (!*out)
		hec_fmt(why, len, "QMP gate");
	return *out ? 0 : -ENOMEM;
}

/* ---- the guest's life: QEMU's exit ---- */

/* The last lines QEMU's console got, for a failure's reason: the kernel's
 * panic message if there is one. */
static void console_reason(struct vm *v, char *out, size_t len)
{
	char path[PATH_MAX], buf[16384], *p, *best = NULL;
	ssize_t n;
	int fd;

	out[0] = 0;
	if (hec_fmt(path, sizeof(path), "%s/console.log", v->dir))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, n > (ssize_t)sizeof(buf) - 1 ? n - (ssize_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (p = buf; (p = strstr(p, "Kernel panic")); p++)
		best = p;
	if (best) {
		size_t l = strcspn(best, "\r\n");

		hec_fmt(out, len, "guest kernel panic: %.*s", (int)(l > 300 ? 300 : l), best);
	}
}


/* QEMU exited: the guest failed. */
static void qemu_ended(struct vm *v, int status)
{
	char reason[512], tail[600];
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;

	v->q.pid = 0;
	if (v->state == VM_DEAD)
		return;
	if (v->from_stream && v->state == VM_BOOTING) {
		/* e.g. a stream QEMU could not load, or cut short */
		qemu_log_tail(v, tail, sizeof(tail));
		vm_fail(v, "the checkpoint's state did not load: QEMU %s %d%s%.400s",
			sig ? "was killed by signal" : "exited with status", sig ? sig : code,
			tail[0] ? ": " : "", tail);
		return;
	}
	console_reason(v, reason, sizeof(reason));
	if (reason[0]) {
		vm_fail(v, "%s", reason);
	} else if (v->panicked) {
		vm_fail(v, "guest kernel panic (QEMU reported GUEST_PANICKED)");
	} else if (sig) {
		vm_fail(v, "QEMU was killed by signal %d (%s)", sig, strsignal(sig));
	} else if (v->shutdown_reason[0]) {
		vm_fail(v, "the guest shut down (%s) while the job ran", v->shutdown_reason);
	} else {
		qemu_log_tail(v, tail, sizeof(tail));
		vm_fail(v, "QEMU exited with status %d%s%s", code, tail[0] ? ": " : "", tail);
	}
}


static int vm_reaped(struct hec_partition *p, pid_t pid, int status)
{
	struct vm *v = V(p);

	if (pid <= 0)
		return 0;
	if (v->mk_pid == pid && !v->mk_reaped) {
		v->mk_reaped = 1;
		v->mk_status = status;
		if (v->mk_eof)
			mk_done(v);
		return 1;
	}
	if (v->q.pid == pid) {
		qemu_ended(v, status);
		return 1;
	}
	return 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vm *v = arg;
	struct timeval tv = { 1, 0 };

	(void)fd;
	(void)what;
	if (v->state != VM_UP && hec_now_mono_ns() > v->deadline_ns) {
		if (v->from_stream)
			vm_fail(v, "the checkpoint's state did not load within %d s", VM_BOOT_TIMEOUT_S);
		else
			vm_fail(v, "the guest did not come up within %d s (console: %s/console.log)",
				VM_BOOT_TIMEOUT_S, v->dir);
		return;
	}
	if (v->state == VM_DEAD)
		return;
	if (v->index != 0 && !v->port_uplink)
		uplink_connect(v);
	if (v->index != 0 && !v->port_uplink)
		tv = (struct timeval){ 0, UPLINK_RETRY_MS * 1000 };
	else if (v->state == VM_UP)
		return; /* nothing to watch until the uplink drops */
	evtimer_add(v->timer, &tv);
}

/* What a guest has on the host's loop: its switch and its timers. */
static int guest_loop_new(struct vm *v, char *why, size_t len)
{
	v->net = vnet_new();
	v->timer = evtimer_new(v->host->base, timer_cb, v);
	v->op_timer = evtimer_new(v->host->base, op_timer_cb, v);
	if (v->net && v->timer && v->op_timer)
		return 0;
	hec_fmt(why, len, "out of memory");
	return -ENOMEM;
}

/* The newest Debian kernel in /boot, for a clear error before building. */
static int kernel_present(const struct hec_part_host *h, char *why, size_t len)
{
	struct dirent *de;
	DIR *d;
	int found = 0;

	if (h->vm_kernel && h->vm_kernel[0]) {
		if (access(h->vm_kernel, R_OK) == 0)
			return 0;
		hec_fmt(why, len, "guest kernel %s: %s (vm_kernel in the node's config)",
		    h->vm_kernel, strerror(errno));
		return -ENOENT;
	}
	d = opendir("/boot");
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "vmlinuz-", 8))
			found = 1;
	if (d)
		closedir(d);
	if (found)
		return 0;
	hec_fmt(why, len, "no guest kernel: /boot has no vmlinuz-*: install the Debian package linux-image-amd64");
	return -ENOENT;
}

/* The host's tools and files a guest is made of. */
static int host_ready(const struct hec_part_host *h, char *why, size_t len)
{
	if (!h || !h->base || !h->node || !h->qemu || !h->mkimage || !h->guest_bin || !h->mpifix ||
	    !h->image_cache) {
		hec_fmt(why, len, "the vm partition has no host to run a guest in");
		return -EINVAL;
	}
	if (access(h->qemu, X_OK)) {
		hec_fmt(why, len, "%s: %s: install the Debian package qemu-system-x86", h->qemu,
		    strerror(errno));
		return -ENOENT;
	}
	if (access(h->mkimage, X_OK)) {
		hec_fmt(why, len, "the image tool %s: %s", h->mkimage, strerror(errno));
		return -ENOENT;
	}
	if (access(h->guest_bin, R_OK)) {
		hec_fmt(why, len, "hec-guest %s: %s", h->guest_bin, strerror(errno));
		return -ENOENT;
	}
	if (access(h->mpifix, R_OK)) {
		hec_fmt(why, len, "%s: %s", h->mpifix, strerror(errno));
		return -ENOENT;
	}
	return kernel_present(h, why, len);
}

static int vm_start(struct hec_partition *p, const struct hec_start_req *req, char *why, size_t len)
{
	struct vm *v = V(p);
	const json_t *launch = (const json_t *)req->launch;
	const json_t *nodes = json_object_get(launch, "nodes"), *n;
	const json_t *files = json_object_get(launch, "vm_files");
	const char *gkey = json_string_value(json_object_get(launch, "guest_key"));
	struct timeval tv = { 1, 0 };
	size_t i;
	int rc;

	if (v->state != VM_NONE) {
		hec_fmt(why, len, "job %ld already has a guest here", v->job);
		return -EEXIST;
	}
	rc = host_ready(p->host, why, len);
	if (rc)
		return rc;
	v->host = p->host;
	v->uid = req->uid;
	v->gid = req->gid;
	if (req->groups)
		v->groups = *req->groups;
	else
		v->groups = (struct hec_groups){ .n = 1, .g = { req->gid } };
	v->vcpus = (int)json_integer_value(json_object_get(launch, "vcpus"));
	v->mem_mb = (long)json_integer_value(json_object_get(launch, "mem_mb"));
	if (v->vcpus < 1)
		v->vcpus = 1;
	hec_fmt(v->key, sizeof(v->key), "%s", req->key ? req->key : "");
	/* QEMU's command line is anyone's to read (ps): never the job key there. */
	if (!gkey || strlen(gkey) < 32 || strlen(gkey) >= sizeof(v->gkey) ||
	    strspn(gkey, "0123456789abcdef") != strlen(gkey)) {
		hec_fmt(why, len, "LAUNCH without a usable guest_key");
		rc = -EINVAL;
		goto err;
	}
	hec_fmt(v->gkey, sizeof(v->gkey), "%s", gkey);
	if (req->restore) {
		/* the checkpoint's image identity, compared once ours is known */
		const char *img = json_string_value(
		    json_object_get(json_object_get(launch, "restore"), "image"));

		v->from_stream = 1;
		/* the channel may begin inside a frame hec-guest was sending */
		v->resync = 1;
		hec_fmt(v->want_image, sizeof(v->want_image), "%s", img ? img : "");
		v->in_fd = fcntl(req->incoming_fd, F_DUPFD_CLOEXEC, 3);
		if (v->in_fd < 0) {
			rc = -errno;
			hec_fmt(why, len, "the checkpoint's stream: %s", strerror(errno));
			goto err;
		}
	}
	v->index = -1;
	v->nnodes = (int)json_array_size(nodes);
	json_array_foreach(nodes, i, n)
		if (!strcmp(json_string_value(json_object_get(n, "name")), v->host->node))
			v->index = (int)i;
	hec_fmt(v->hub_addr, sizeof(v->hub_addr), "%s",
	    json_string_value(json_object_get(json_array_get(nodes, 0), "addr")));
	v->state = VM_IMAGE;
	if (v->index < 0) {
		hec_fmt(why, len, "this node is not among the job's nodes");
		rc = -EINVAL;
		goto err;
	}
	if (v->mem_mb < HEC_VM_MEM_MIN_MB) {
		hec_fmt(why, len, "guest memory %ld MB is too small", v->mem_mb);
		rc = -EINVAL;
		goto err;
	}
	if (!req->dir || hec_fmt(v->dir, sizeof(v->dir), "%s", req->dir) || build_cmdline(v, nodes)) {
		hec_fmt(why, len, "job directory or kernel command line too long");
		rc = -ENAMETOOLONG;
		goto err;
	}
	rc = user_may_read(v, files, why, len);
	if (rc)
		goto err;
	rc = guest_loop_new(v, why, len);
	if (rc)
		goto err;
	rc = start_mkimage(v, files, why, len);
	if (rc)
		goto err;
	v->deadline_ns = hec_now_mono_ns() + (int64_t)VM_BOOT_TIMEOUT_S * 1000000000;
	evtimer_add(v->timer, &tv);
	v->start_done = req->done;
	v->start_arg = req->arg;
	return 0;

err:
	vm_drop(v);
	return rc;
}

/* The guest of the agent before a restart: its QEMU runs on. */
static int vm_reattach_op(struct hec_partition *p, const struct hec_reattach_req *req, char *why,
			  size_t len)
{
	struct vm *v = V(p);
	struct timeval now = { 0, 0 };
	int rc;

	if (v->state != VM_NONE) {
		hec_fmt(why, len, "job %ld already has a guest here", v->job);
		return -EEXIST;
	}
	v->host = p->host;
	rc = guest_loop_new(v, why, len);
	if (rc)
		goto err;
	rc = vm_reattach(v, req, why, len);
	if (rc)
		goto err;
	evtimer_add(v->timer, &now); /* the uplink of a node other than the first */
	return 0;

err:
	vm_drop(v);
	return rc;
}

static json_t *vm_stats(struct hec_partition *p)
{
	struct vm *v = V(p);
	char image[PATH_MAX];

	if (v->state != VM_UP)
		return NULL;
	if (vm_image_id(v, image, sizeof(image)))
		image[0] = 0;
	/* The way vm_gate_open switches it. */
	return json_pack("{s:I,s:s,s:I,s:I,s:s}", "job", (json_int_t)v->job, "method",
			 v->use_qmp && v->q.mon ? "qmp" : "cgroup", "cgroup_ns", (json_int_t)v->cg_ns, "qmp_ns",
			 (json_int_t)v->qmp_ns, "image", image);
}

const struct hec_partition_ops hec_partition_vm_ops = {
	.name = "vm",
	.node_init = vm_node_init,
	.create = vm_create,
	.open = vm_open,
	.list = vm_list,
	.spawn = vm_spawn,
	.nprocs = vm_nprocs,
	.kill = vm_kill,
	.destroy = vm_destroy,
	.release = vm_release,
	.node_fini = vm_node_fini,
	.freeze = vm_freeze,
	.thaw = vm_thaw,
	.path = vm_path,
	.cpu_usage = vm_cpu_usage,
	.start = vm_start,
	.reattach = vm_reattach_op,
	.capture = vm_capture,
	.cancel = vm_cancel,
	.resume = vm_resume,
	.net_hold = vm_net_hold,
	.run = vm_run,
	.reaped = vm_reaped,
	.forget = vm_forget,
	.stats = vm_stats,
	.net_join = vm_net_join,
	.net_frame = vm_net_frame,
	.net_gone = vm_net_gone,
	.gate_open = vm_gate_open,
	/* Only QMP gates reach these (proc gates carry the proc ops), and they
	 * carry qmp_gate_ops: for the registry's all-or-none check. */
	.gate_set = qmp_gate_set,
	.gate_wait = qmp_gate_wait,
	.gate_close = qmp_gate_close,
};
