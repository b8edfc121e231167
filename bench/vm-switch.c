/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vm-switch: what one gang switch of a QEMU guest costs, both ways hec can
 * do it, measured in one run on the same guest:
 *   cgroup  freeze the QEMU process's cgroup (cgroup.freeze), wait until
 *           cgroup.events says frozen; thaw likewise (the proc driver's gate)
 *   qmp     QMP "stop" until its reply (vCPUs paused), "cont" likewise
 * for an idle guest and for a guest whose every vCPU spins, at 1 and 2
 * vCPUs.  Prints medians and p90s, writes every sample as CSV and the
 * medians as a PNG (gnuplot).  hecd measures the same at each guest's boot
 * (idle) and switches the guest by the cheaper way; this shows whether that
 * choice holds under load.
 *
 *   bench/vm-switch [--build DIR] [--out DIR] [--rounds N] [--vcpus "1 2"]
 *
 * Run as root after scripts/build; needs qemu-system-x86_64 and a kernel.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/guest.h"
#include "hec/net.h"
#include "hec/partition.h"
#include "hec/qmp.h" /* the QMP monitor the vm driver switches guests with */

#define MAX_ROUNDS 2000
#define WAIT_US 2000000L

struct series {
	double v[MAX_ROUNDS];
	int n;
};

static const char *build = "build", *outdir = "build/bench-results";
static int rounds = 200;
static char work[64];

static void die(const char *what, int err)
{
	fprintf(stderr, "vm-switch: %s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
	exit(1);
}

static double now_us(void)
{
	return (double)hec_now_mono_ns() / 1e3;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(struct series *s, int p)
{
	double tmp[MAX_ROUNDS];

	if (!s->n)
		return 0;
	memcpy(tmp, s->v, (size_t)s->n * sizeof(double));
	qsort(tmp, (size_t)s->n, sizeof(double), cmp_dbl);
	return tmp[(s->n - 1) * p / 100];
}

/* hec-mkimage's kernel= and initrd= lines. */
static void make_image(char *kernel, char *initrd, size_t len)
{
	char cmd[PATH_MAX * 2], line[PATH_MAX];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s/hec-mkimage --guest %s/hec-guest", build, build);
	p = popen(cmd, "r");
	if (!p)
		die("hec-mkimage", errno);
	kernel[0] = initrd[0] = 0;
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "kernel=", 7))
			snprintf(kernel, len, "%s", line + 7);
		else if (!strncmp(line, "initrd=", 7))
			snprintf(initrd, len, "%s", line + 7);
	}
	if (pclose(p) || !kernel[0] || !initrd[0])
		die("hec-mkimage failed (run scripts/build; see its message above)", 0);
}

static int accept_one(int lfd, int timeout_ms)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Read guest frames until one of @type arrives (HELLO, STARTED). */
static void wait_frame(int fd, unsigned type, int timeout_s)
{
	static uint8_t buf[1 << 21];
	static size_t have;
	double deadline = now_us() + timeout_s * 1e6;

	for (;;) {
		struct hec_guest_frame f;
		long n = hec_guest_decode(buf, have, &f);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (n < 0)
			die("guest channel: bad frame", (int)-n);
		if (n > 0) {
			memmove(buf, buf + n, have - (size_t)n);
			have -= (size_t)n;
			if (f.type == type)
				return;
			continue;
		}
		if (now_us() > deadline)
			die("the guest did not answer in time", ETIMEDOUT);
		if (poll(&pfd, 1, 1000) != 1)
			continue;
		r = read(fd, buf + have, sizeof(buf) - have);
		if (r <= 0)
			die("guest channel closed", r ? errno : 0);
		have += (size_t)r;
	}
}

static void send_run(int fd, const char *script)
{
	struct hec_guest_kvbuf kv = { 0 };
	uint8_t hdr[HEC_GUEST_HDR];

	if (hec_guest_kv_add(&kv, "id", "1") || hec_guest_kv_add(&kv, "uid", "0") ||
	    hec_guest_kv_add(&kv, "gid", "0") || hec_guest_kv_add(&kv, "cwd", "/") ||
	    hec_guest_kv_add(&kv, "arg", "/bin/sh") || hec_guest_kv_add(&kv, "arg", "-c") ||
	    hec_guest_kv_add(&kv, "arg", script) || hec_guest_kv_add(&kv, "env", "PATH=/bin:/usr/bin"))
		die("out of memory", ENOMEM);
	hec_guest_header(hdr, HEC_G_RUN, kv.len);
	if (hec_write_all(fd, hdr, sizeof(hdr)) || hec_write_all(fd, kv.p, kv.len))
		die("sending RUN", errno);
	hec_guest_kv_free(&kv);
}

struct guest {
	struct hec_partition *part;
	pid_t qemu;
	int chan;
	struct qmp_mon *mon;
};

static void boot(struct guest *g, const struct hec_partition_env *env, int vcpus,
		 const char *kernel, const char *initrd, long id)
{
	char qmp_path[PATH_MAX], chan_path[PATH_MAX], chr1[PATH_MAX + 40], chr2[PATH_MAX + 40];
	char smp[16], logp[PATH_MAX];
	const char *argv[40];
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	int a = 0, lq, lc, fd, rc, logfd, nullfd;
	struct hec_spawn_req req;
	char why[PATH_MAX + 64] = "";

	rc = hec_partition_proc_ops.create(env, id, &g->part, why, sizeof(why));
	if (rc)
		die(why, -rc);
	snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.%ld", work, id);
	snprintf(chan_path, sizeof(chan_path), "%s/chan.%ld", work, id);
	lq = hec_listen_unix(qmp_path, 0600);
	lc = hec_listen_unix(chan_path, 0600);
	if (lq < 0 || lc < 0)
		die("listen", lq < 0 ? -lq : -lc);
	snprintf(chr1, sizeof(chr1), "socket,id=qmp,path=%s", qmp_path);
	snprintf(chr2, sizeof(chr2), "socket,id=hecg,path=%s", chan_path);
	snprintf(smp, sizeof(smp), "%d", vcpus);
	argv[a++] = "qemu-system-x86_64";
	argv[a++] = "-machine";
	argv[a++] = "q35,accel=tcg";
	argv[a++] = "-cpu";
	argv[a++] = "max";
	argv[a++] = "-smp";
	argv[a++] = smp;
	argv[a++] = "-m";
	argv[a++] = "256M";
	argv[a++] = "-nodefaults";
	argv[a++] = "-display";
	argv[a++] = "none";
	argv[a++] = "-no-reboot";
	argv[a++] = "-kernel";
	argv[a++] = kernel;
	argv[a++] = "-initrd";
	argv[a++] = initrd;
	argv[a++] = "-append";
	argv[a++] = "console=ttyS0 quiet panic=-1 hec.node=bench";
	argv[a++] = "-device";
	argv[a++] = "virtio-serial-pci";
	argv[a++] = "-chardev";
	argv[a++] = chr2;
	argv[a++] = "-device";
	argv[a++] = "virtserialport,chardev=hecg,name=" HEC_GUEST_PORT;
	argv[a++] = "-chardev";
	argv[a++] = chr1;
	argv[a++] = "-mon";
	argv[a++] = "chardev=qmp,mode=control";
	argv[a] = NULL;
	snprintf(logp, sizeof(logp), "%s/qemu.%ld.log", work, id);
	logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	req = (struct hec_spawn_req){ .argv = argv, .envp = envp, .cwd = work, .uid = 0, .gid = 0,
				      .stdin_fd = nullfd, .stdout_fd = logfd, .stderr_fd = logfd };
	rc = hec_partition_proc_ops.spawn(g->part, &req, &g->qemu, why, sizeof(why));
	if (rc)
		die("starting QEMU", -rc);
	close(logfd);
	close(nullfd);
	fd = accept_one(lq, 20000);
	if (fd < 0)
		die("QEMU did not connect its monitor (see qemu.*.log)", -fd);
	rc = qmp_mon_open(fd, 5000, &g->mon);
	if (rc)
		die("QMP handshake", -rc);
	g->chan = accept_one(lc, 20000);
	if (g->chan < 0)
		die("QEMU did not connect the guest channel", -g->chan);
	close(lq);
	close(lc);
	wait_frame(g->chan, HEC_G_HELLO, 180);
}

static void shutdown_guest(struct guest *g)
{
	hec_partition_proc_ops.kill(g->part, NULL, 0);
	while (waitpid(g->qemu, NULL, 0) < 0 && errno == EINTR)
		;
	qmp_mon_put(g->mon);
	close(g->chan);
	for (int i = 0; i < 100 && hec_partition_proc_ops.destroy(g->part, NULL, 0) == -EBUSY; i++)
		usleep(20000);
	hec_partition_proc_ops.release(g->part);
}

static void measure(struct guest *g, struct series *out /* [4]: cg fr, cg th, qmp stop, qmp cont */)
{
	struct hec_gate *gate;
	int rc = hec_partition_proc_ops.gate_open(g->part, &gate, NULL, 0);

	if (rc)
		die("gate", -rc);
	for (int i = 0; i < rounds; i++) {
		double t0 = now_us(), t1, t2;

		if (hec_gate_set(gate, 1) || hec_gate_wait(gate, 1, WAIT_US))
			die("cgroup freeze", 0);
		t1 = now_us();
		if (hec_gate_set(gate, 0) || hec_gate_wait(gate, 0, WAIT_US))
			die("cgroup thaw", 0);
		t2 = now_us();
		out[0].v[out[0].n++] = t1 - t0;
		out[1].v[out[1].n++] = t2 - t1;
		usleep(2000); /* let the guest run between switches, as slots do */
		t0 = now_us();
		if (qmp_mon_set(g->mon, 1) || qmp_mon_wait(g->mon, 1, WAIT_US))
			die("QMP stop", 0);
		t1 = now_us();
		if (qmp_mon_set(g->mon, 0) || qmp_mon_wait(g->mon, 0, WAIT_US))
			die("QMP cont", 0);
		t2 = now_us();
		out[2].v[out[2].n++] = t1 - t0;
		out[3].v[out[3].n++] = t2 - t1;
		usleep(2000);
	}
	hec_gate_close(gate);
}

int main(int argc, char **argv)
{
	static const char *const names[4] = { "cgroup_freeze", "cgroup_thaw", "qmp_stop", "qmp_cont" };
	const char *vcpu_list = "1 2";
	char kernel[PATH_MAX], initrd[PATH_MAX], path[PATH_MAX], base[128], cmd[PATH_MAX * 3];
	struct hec_partition_env env = { .node = "vmbench", .cgroup_base = base, .cpus = "" };
	char why[PATH_MAX + 64] = "";
	int rc;
	static struct series s[2][4];
	FILE *csv, *dat;
	long id = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--build") && i + 1 < argc)
			build = argv[++i];
		else if (!strcmp(argv[i], "--out") && i + 1 < argc)
			outdir = argv[++i];
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--vcpus") && i + 1 < argc)
			vcpu_list = argv[++i];
		else {
			fprintf(stderr, "usage: vm-switch [--build DIR] [--out DIR] [--rounds N] [--vcpus \"1 2\"]\n");
			return 2;
		}
	}
	if (rounds < 5 || rounds > MAX_ROUNDS)
		die("--rounds must be 5..2000", 0);
	if (geteuid())
		die("run as root (the guest runs in a cgroup partition)", 0);
	snprintf(work, sizeof(work), "/tmp/hec-vmswitch.XXXXXX");
	if (!mkdtemp(work))
		die("mkdtemp", errno);
	snprintf(base, sizeof(base), "hec/vmbench%d/vmbench", (int)getpid());
	rc = hec_partition_proc_ops.node_init(&env, why, sizeof(why));
	if (rc)
		die(why, -rc);
	make_image(kernel, initrd, sizeof(kernel));
	hec_mkdir_p(outdir, 0755);
	snprintf(path, sizeof(path), "%s/vm-switch.csv", outdir);
	csv = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/vm-switch.dat", outdir);
	dat = fopen(path, "w");
	if (!csv || !dat)
		die(path, errno);
	fprintf(csv, "vcpus,load,op,round,us\n");
	fprintf(dat, "# case cgroup_freeze+thaw_p50_us qmp_stop+cont_p50_us\n");
	printf("vm-switch: %d rounds per case, TCG guests, 256 MB\n", rounds);
	printf("%-5s %-5s %-14s %10s %10s\n", "vcpus", "load", "op", "p50_us", "p90_us");
	for (const char *p = vcpu_list; *p;) {
		int vcpus = (int)strtol(p, (char **)&p, 10);
		struct guest g = { 0 };

		if (vcpus < 1 || vcpus > 16)
			die("--vcpus: 1..16 each", 0);
		while (*p == ' ')
			p++;
		boot(&g, &env, vcpus, kernel, initrd, id++);
		memset(s, 0, sizeof(s));
		measure(&g, s[0]);
		snprintf(cmd, sizeof(cmd), "i=0; while [ $i -lt %d ]; do (while :; do :; done) & i=$((i+1)); done; wait",
			 vcpus);
		send_run(g.chan, cmd);
		wait_frame(g.chan, HEC_G_STARTED, 30);
		sleep(2);
		measure(&g, s[1]);
		shutdown_guest(&g);
		for (int l = 0; l < 2; l++) {
			for (int k = 0; k < 4; k++) {
				printf("%-5d %-5s %-14s %10.1f %10.1f\n", vcpus, l ? "busy" : "idle", names[k],
				       pct(&s[l][k], 50), pct(&s[l][k], 90));
				for (int r = 0; r < s[l][k].n; r++)
					fprintf(csv, "%d,%s,%s,%d,%.2f\n", vcpus, l ? "busy" : "idle", names[k],
						r, s[l][k].v[r]);
			}
			printf("  -> %d vCPU %s: QMP stop+cont / cgroup freeze+thaw = %.1f\n", vcpus,
			       l ? "busy" : "idle",
			       (pct(&s[l][2], 50) + pct(&s[l][3], 50)) /
				       (pct(&s[l][0], 50) + pct(&s[l][1], 50)));
			fprintf(dat, "\"%dvCPU %s\" %.1f %.1f\n", vcpus, l ? "busy" : "idle",
				pct(&s[l][0], 50) + pct(&s[l][1], 50), pct(&s[l][2], 50) + pct(&s[l][3], 50));
		}
	}
	fclose(csv);
	fclose(dat);
	hec_partition_node_fini(&hec_partition_proc_ops, &env, NULL, 0);
	snprintf(cmd, sizeof(cmd),
		 "command -v gnuplot >/dev/null && gnuplot -e \"set terminal png size 800,450; set output '%s/vm-switch.png';"
		 " set style data histogram; set style histogram cluster gap 1; set style fill solid;"
		 " set logscale y; set ylabel 'one switch out and in, median (us)';"
		 " set title 'Gang switch of a QEMU/TCG guest: cgroup freeze vs QMP stop/cont';"
		 " plot '%s/vm-switch.dat' using 2:xtic(1) title 'cgroup freeze+thaw', '' using 3 title 'QMP stop+cont'\"",
		 outdir, outdir);
	if (system(cmd))
		fprintf(stderr, "vm-switch: no PNG (gnuplot missing or failed)\n");
	printf("vm-switch: wrote %s/vm-switch.csv, %s/vm-switch.png\n", outdir, outdir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	return system(cmd) ? 1 : 0;
}
