/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vm driver's side of a restart from a checkpoint that needs no QEMU
 * (partition/vm/: image.c, chan.c, qemu.c): the image identity a restart
 * compares; run() with attach refused where nothing can be attached;
 * an attached step's output and end reaching the caller's file and the
 * host, through a channel that begins inside a frame, with the step's id
 * taken from the guest (its EXIT before any PONG) or fixed by the PONG;
 * resume() refused unless the guest is loaded and paused.  The guest
 * channel is a socket pair driven on a real event loop.  Pure code.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hec/common.h"
#include "partition/vm/vm.h"
#include "tests/unit/cunit_main.h"

static int exits, exit_code;
static char exit_error[256];

static void on_exited(void *arg, int code, int sig, const char *error)
{
	(void)arg;
	(void)sig;
	exits++;
	exit_code = code;
	hec_fmt(exit_error, sizeof(exit_error), "%s", error ? error : "");
}

struct fix {
	struct event_base *base;
	struct hec_part_host host;
	struct hec_partition p;
	struct vm v;
	int peer;     /* the guest's end of the channel */
	int out;      /* the step's output file */
	char path[64];
};

static void fix_up(struct fix *f)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	exits = 0;
	exit_error[0] = 0;
	f->base = event_base_new();
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->base);
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	evutil_make_socket_nonblocking(sv[0]);
	f->peer = sv[1];
	f->host = (struct hec_part_host){ .base = f->base, .node = "node0", .exited = on_exited };
	f->p = (struct hec_partition){ .ops = &hec_partition_vm_ops, .priv = &f->v, .job = 7,
				       .host = &f->host, .host_arg = f };
	f->v.self = &f->p;
	f->v.host = &f->host;
	f->v.job = 7;
	f->v.state = VM_UP;
	f->v.from_stream = 1;
	f->v.resync = 1;
	f->v.paused = 1;
	f->v.out_fd = f->v.err_fd = f->v.in_fd = f->v.op_fd = -1;
	f->v.q.guest = bufferevent_socket_new(f->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f->v.q.guest);
	bufferevent_setcb(f->v.q.guest, guest_read, NULL, NULL, &f->v);
	bufferevent_enable(f->v.q.guest, EV_READ | EV_WRITE);
	strcpy(f->path, "/tmp/hec-test-vmrst.XXXXXX");
	f->out = mkstemp(f->path);
	CU_ASSERT_FATAL(f->out >= 0);
}

static void fix_down(struct fix *f)
{
	run_ended(&f->v);
	bufferevent_free(f->v.q.guest);
	close(f->peer);
	close(f->out);
	unlink(f->path);
	event_base_free(f->base);
}

/* What the guest sends: a frame of @type, @len payload bytes. */
static void guest_frame(struct fix *f, unsigned type, const void *payload, size_t len)
{
	uint8_t hdr[HEC_GUEST_HDR];

	hec_guest_header(hdr, type, (uint32_t)len);
	CU_ASSERT_EQUAL(write(f->peer, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	if (len)
		CU_ASSERT_EQUAL(write(f->peer, payload, len), (ssize_t)len);
}

/* Run the loop until @n exits were reported or 2 s pass. */
static void spin_until_exits(struct fix *f, int n)
{
	for (int i = 0; i < 2000 && exits < n; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void spin(struct fix *f)
{
	for (int i = 0; i < 50; i++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void file_is(struct fix *f, const char *want)
{
	char got[256] = "";
	ssize_t n = pread(f->out, got, sizeof(got) - 1, 0);

	CU_ASSERT(n >= 0);
	CU_ASSERT_STRING_EQUAL(got, want);
}

static int attach(struct fix *f, char *why, size_t len)
{
	struct hec_run_req req = { .cwd = "/", .out_fd = f->out, .err_fd = -1, .attach = 1 };

	return vm_run(&f->p, &req, why, len);
}

static void test_image_id(void)
{
	struct vm v;
	char id[64];

	memset(&v, 0, sizeof(v));
	strcpy(v.initrd, "/var/cache/hec/images/0/01817539b6371114cb0dbabf0e050aa8/initrd.img");
	CU_ASSERT_EQUAL(vm_image_id(&v, id, sizeof(id)), 0);
	CU_ASSERT_STRING_EQUAL(id, "01817539b6371114cb0dbabf0e050aa8");
	strcpy(v.initrd, "/k/initrd.img");
	CU_ASSERT_EQUAL(vm_image_id(&v, id, sizeof(id)), 0);
	CU_ASSERT_STRING_EQUAL(id, "k");
	/* no image yet, or no directory to name it */
	v.initrd[0] = 0;
	CU_ASSERT_EQUAL(vm_image_id(&v, id, sizeof(id)), -ENOENT);
	strcpy(v.initrd, "initrd.img");
	CU_ASSERT_EQUAL(vm_image_id(&v, id, sizeof(id)), -ENOENT);
	strcpy(v.initrd, "/initrd.img");
	CU_ASSERT_EQUAL(vm_image_id(&v, id, sizeof(id)), -ENOENT);
}

static void test_attach_refused(void)
{
	struct fix f;
	char why[256] = "";

	fix_up(&f);
	f.v.from_stream = 0;
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "not restarted from a checkpoint"));
	CU_ASSERT_EQUAL(f.v.running, 0);
	f.v.from_stream = 1;
	/* resumed, and hec-guest said no step runs */
	f.v.ponged = 1;
	f.v.guest_run = 0;
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "no batch step runs"));
	CU_ASSERT_EQUAL(f.v.running, 0);
	f.v.state = VM_BOOTING;
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), -ENOTCONN);
	f.v.state = VM_UP;
	f.v.guest_run = 4;
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), -EBUSY);
	fix_down(&f);
}

/* Attached before the PONG: the channel begins with the tail of a frame
 * cut by the checkpoint; the step's output then reaches the file, and its
 * EXIT (whose id nobody knew yet) ends it. */
static void test_attach_before_pong(void)
{
	static const char tail[] = "ick 4\n\0\0X"; /* no frame header in there */
	static const char out[] = "\001tick 5\n";
	static const char ex[] = "id=3\0exit=0\0signal=0";
	struct fix f;
	char why[256] = "";

	fix_up(&f);
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(f.v.attach_unknown, 1);
	CU_ASSERT_EQUAL(write(f.peer, tail, sizeof(tail) - 1), (ssize_t)sizeof(tail) - 1);
	guest_frame(&f, HEC_G_OUT, out, sizeof(out) - 1);
	guest_frame(&f, HEC_G_EXIT, ex, sizeof(ex));
	spin_until_exits(&f, 1);
	CU_ASSERT_EQUAL(exits, 1);
	CU_ASSERT_EQUAL(exit_code, 0);
	CU_ASSERT_STRING_EQUAL(exit_error, "");
	CU_ASSERT_EQUAL(f.v.run_id, 3);
	CU_ASSERT_EQUAL(f.v.running, 0);
	CU_ASSERT_EQUAL(f.v.resync, 0);
	CU_ASSERT_EQUAL(f.v.resync_skipped, sizeof(tail) - 1);
	CU_ASSERT(f.v.state == VM_UP);
	file_is(&f, "tick 5\n");
	fix_down(&f);
}

/* Attached after the PONG named step 4: another step's EXIT is not ours;
 * output goes on after what the file held. */
static void test_attach_after_pong(void)
{
	static const char out[] = "\001tick 9\n";
	static const char other[] = "id=9\0exit=1\0signal=0";
	static const char ours[] = "id=4\0exit=2\0signal=0";
	struct fix f;
	char why[256] = "";

	fix_up(&f);
	f.v.resync = 0;
	f.v.ponged = 1;
	f.v.guest_run = 4;
	CU_ASSERT_EQUAL(write(f.out, "tick 8\n", 7), 7);
	CU_ASSERT_EQUAL(attach(&f, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(f.v.attach_unknown, 0);
	CU_ASSERT_EQUAL(f.v.run_id, 4);
	guest_frame(&f, HEC_G_OUT, out, sizeof(out) - 1);
	guest_frame(&f, HEC_G_EXIT, other, sizeof(other));
	spin(&f);
	CU_ASSERT_EQUAL(exits, 0);
	CU_ASSERT_EQUAL(f.v.running, 1);
	guest_frame(&f, HEC_G_EXIT, ours, sizeof(ours));
	spin_until_exits(&f, 1);
	CU_ASSERT_EQUAL(exits, 1);
	CU_ASSERT_EQUAL(exit_code, 2);
	file_is(&f, "tick 8\ntick 9\n");
	fix_down(&f);
}

static void test_resume_refused(void)
{
	struct fix f;
	char why[256] = "";

	fix_up(&f);
	f.v.paused = 0;
	CU_ASSERT_EQUAL(vm_resume(&f.p, why, sizeof(why)), -EALREADY);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "not restarted from a checkpoint, or runs already"));
	f.v.paused = 1;
	f.v.state = VM_BOOTING;
	CU_ASSERT_EQUAL(hec_partition_resume(&f.p, why, sizeof(why)), -ENOTCONN);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "not loaded"));
	CU_ASSERT_EQUAL(f.v.paused, 1);
	fix_down(&f);
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "the image identity", test_image_id },
		{ "attach refused", test_attach_refused },
		{ "attach before the PONG: a cut frame skipped, output, EXIT", test_attach_before_pong },
		{ "attach after the PONG: only its step's EXIT, output after the file's", test_attach_after_pong },
		{ "resume refused", test_resume_refused },
		{ NULL, NULL },
	};

	return hec_cunit_run("vm_restore", tests);
}
