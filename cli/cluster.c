/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec cluster up|down|status: an embedded cluster of one hecctld, N hecd
 * and M hecstored on this machine, all files under one directory
 * (doc/design.md, "Embedded cluster"; doc/storage.md).  The daemons are started detached (own session, log files) so
 * they outlive this command; their pid files let `cluster down` find them
 * again even when the controller is already dead.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/net.h"
#include "hec/partition.h"
#include "cli/cli.h"

#define UP_NODES_MAX 64
#define UP_STORAGE_MAX 16
/* Waits; a daemon under valgrind (HEC_DAEMON_WRAPPER) is far slower. */
#define UP_WAIT_MS 30000
#define DOWN_WAIT_MS 10000
#define WRAPPED_WAIT_MS 120000
#define KILL_WAIT_MS 5000
#define DEFAULT_NODE_TIMEOUT_MS 10000
#define DEFAULT_HEARTBEAT_MS 1000
#define TAIL_LINES 12

enum { K_NODES = 'N', K_DIR = 'D', K_HELP = 'h', K_NODE_TIMEOUT = CLI_LONG_ONLY + 200,
       K_HEARTBEAT, K_JSON, K_SLOT, K_MAX_SHARE, K_TIMESLICE, K_VM_KERNEL,
       K_VM_SWITCH, K_STORAGE, K_VM_HUGEPAGES, K_CLI_LISTEN, K_MUNGE_SOCKET };

struct daemon {
	char name[32];          /* "hecctld", "node3", "s1" */
	pid_t pid;
	char log[PATH_MAX];
	char pidfile[PATH_MAX];
	int reaped;
};

static int64_t ms_now(void)
{
	return hec_now_mono_ns() / 1000000;
}

static int wrapped(void)
{
	const char *w = getenv("HEC_DAEMON_WRAPPER");

	return w && *w;
}

static int path_join(char *buf, size_t len, const char *dir, const char *leaf)
{
	int n = snprintf(buf, len, "%s/%s", dir, leaf);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Value of @key in a "key = value" file we wrote.  \return 0 or -errno. */
static int conf_value(const char *path, const char *key, char *buf, size_t len)
{
	char line[PATH_MAX + 128];
	size_t kl = strlen(key);
	FILE *f = fopen(path, "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t"), *end;

		if (strncmp(p, key, kl))
			continue;
		p += kl;
		p += strspn(p, " \t");
		if (*p != '=')
			continue;
		p++;
		p += strspn(p, " \t");
		end = p + strlen(p);
		while (end > p && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		snprintf(buf, len, "%s", p);
		rc = 0;
		break;
	}
	fclose(f);
	return rc;
}

/* Print the last lines of a daemon's log after a failure. */
static void print_log_tail(const char *path)
{
	char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC), lines = 0;
	off_t size;
	ssize_t n;
	char *p;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof(buf) - 1)
		lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	if (buf[n - 1] == '\n')
		buf[--n] = 0;
	for (p = buf + n; p > buf; p--)
		if (p[-1] == '\n' && ++lines == TAIL_LINES)
			break;
	fprintf(stderr, "hec: last lines of %s:\n", path);
	while (*p) {
		char *nl = strchr(p, '\n');

		fprintf(stderr, "  %.*s\n", (int)(nl ? nl - p : (long)strlen(p)), p);
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* ---- finding and starting daemons ---- */

static int find_program(const char *name, char *buf, size_t len)
{
	const char *dirs[3] = { NULL, HEC_SBINDIR, HEC_BINDIR };
	char self[PATH_MAX];

	/* Beside hec first: in the build tree every program is in one directory. */
	if (hec_self_dir(self, sizeof(self)) == 0)
		dirs[0] = self;
	for (size_t i = 0; i < HEC_ARRAY_SIZE(dirs); i++) {
		if (!dirs[i] || path_join(buf, len, dirs[i], name))
			continue;
		if (access(buf, X_OK) == 0)
			return 0;
	}
	cli_err("cluster up: cannot find %s (looked beside hec in %s, then in %s and %s)", name,
		dirs[0] ? dirs[0] : "?", HEC_SBINDIR, HEC_BINDIR);
	return -ENOENT;
}

/* HEC_DAEMON_WRAPPER words, then PROG -f CONF. \return a malloc'ed argv. */
static char **daemon_argv(const char *prog, const char *conf, char **copy)
{
	const char *w = getenv("HEC_DAEMON_WRAPPER");
	size_t words = 0;
	char **argv, *save = NULL, *tok;

	*copy = strdup(w ? w : "");
	if (!*copy)
		return NULL;
	for (const char *p = *copy; *p; p++)
		words += *p != ' ' && (p == *copy || p[-1] == ' ');
	argv = calloc(words + 4, sizeof(*argv));
	if (!argv) {
		free(*copy);
		return NULL;
	}
	words = 0;
	for (tok = strtok_r(*copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		argv[words++] = tok;
	argv[words++] = (char *)prog;
	argv[words++] = (char *)"-f";
	argv[words++] = (char *)conf;
	argv[words] = NULL;
	return argv;
}

static int start_daemon(struct daemon *d, const char *prog, const char *conf)
{
	char *copy, **argv = daemon_argv(prog, conf, &copy);
	char pid[32];
	int logfd, rc;

	if (!argv)
		return -ENOMEM;
	/* (a daemon's log quotes jobs' commands: root's alone, as log/ is) */
	logfd = open(d->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (logfd >= 0 && fchmod(logfd, 0600)) {
		close(logfd);
		logfd = -1;
	}
	if (logfd < 0) {
		rc = -errno;
		cli_err("cluster up: %s: %s", d->log, strerror(-rc));
		goto err_free;
	}
	d->pid = fork();
	if (d->pid < 0) {
		rc = -errno;
		cli_err("cluster up: starting %s: fork: %s", d->name, strerror(-rc));
		goto err_close;
	}
	if (d->pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		sigset_t none;

		/* a session of its own: no terminal signals, outlives us */
		setsid();
		if (null < 0 || dup2(null, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execvp(argv[0], argv);
		fprintf(stderr, "hec: cluster up: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(logfd);
	snprintf(pid, sizeof(pid), "%d\n", (int)d->pid);
	rc = hec_create_file(d->pidfile, pid, strlen(pid), 0644);
	if (rc)
		cli_err("cluster up: %s: %s", d->pidfile, strerror(-rc));
	free(argv);
	free(copy);
	return rc;

err_close:
	close(logfd);
err_free:
	free(argv);
	free(copy);
	return rc;
}

/* Has the daemon exited?  Says how, once. */
static int daemon_exited(struct daemon *d, int report)
{
	int st;

	if (d->reaped)
		return 1;
	if (d->pid <= 0 || waitpid(d->pid, &st, WNOHANG) != d->pid)
		return 0;
	d->reaped = 1;
	if (!report)
		return 1;
	if (WIFEXITED(st))
		cli_err("cluster up: %s exited with status %d", d->name, WEXITSTATUS(st));
	else
		cli_err("cluster up: %s was killed by signal %d", d->name, WTERMSIG(st));
	return 1;
}

/* Undo a failed `cluster up`: TERM, then KILL what we started. */
static void stop_daemons(struct daemon *ds, int n)
{
	int64_t deadline = ms_now() + (wrapped() ? WRAPPED_WAIT_MS : KILL_WAIT_MS);
	int alive;

	for (int i = n - 1; i >= 0; i--)
		if (ds[i].pid > 0 && !daemon_exited(&ds[i], 0))
			kill(ds[i].pid, SIGTERM);
	do {
		alive = 0;
		for (int i = 0; i < n; i++)
			alive += ds[i].pid > 0 && !daemon_exited(&ds[i], 0);
		if (alive)
			cli_sleep_ms(50);
	} while (alive && ms_now() < deadline);
	for (int i = 0; i < n; i++) {
		if (ds[i].pid > 0 && !daemon_exited(&ds[i], 0)) {
			kill(ds[i].pid, SIGKILL);
			waitpid(ds[i].pid, NULL, 0);
		}
		if (ds[i].pid > 0)
			unlink(ds[i].pidfile);
	}
}

/* ---- live processes of a cluster ---- */

/* Is @pid a live process started for the cluster in @rdir (its command
 * line names a file there)?  Zombies and recycled pids are not. */
static int ours(pid_t pid, const char *rdir)
{
	char path[64], buf[8192], needle[PATH_MAX + 2], state = 0;
	ssize_t n;
	int fd;
	FILE *f;

	if (pid <= 0 || (kill(pid, 0) && errno != EPERM))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
			state = 0;
		fclose(f);
	}
	if (state == 'Z' || state == 'X')
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
	snprintf(needle, sizeof(needle), "%s/", rdir);
	return strstr(buf, needle) != NULL;
}

struct pidfile {
	char path[PATH_MAX];
	char name[64];
	pid_t pid;
	int alive;
};

/* Pid files under rdir/run.  \return how many (up to @max), or -errno. */
static int read_pidfiles(const char *rdir, struct pidfile *pf, int max)
{
	char run[PATH_MAX], text[32];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (path_join(run, sizeof(run), rdir, "run"))
		return -ENAMETOOLONG;
	d = opendir(run);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) && n < max) {
		size_t len = strlen(de->d_name);
		long pid;

		if (len < 5 || strcmp(de->d_name + len - 4, ".pid"))
			continue;
		if (path_join(pf[n].path, sizeof(pf[n].path), run, de->d_name))
			continue;
		snprintf(pf[n].name, sizeof(pf[n].name), "%.*s", (int)(len - 4), de->d_name);
		pf[n].pid = 0;
		if (hec_read_file(pf[n].path, text, sizeof(text)) == 0 &&
		    hec_parse_long(text, 1, 1L << 30, &pid) == 0)
			pf[n].pid = (pid_t)pid;
		pf[n].alive = ours(pf[n].pid, rdir);
		n++;
	}
	closedir(d);
	return n;
}

/* ---- cluster up ---- */

static const char *cwd_or_root(void)
{
	static char cwd[PATH_MAX];

	return getcwd(cwd, sizeof(cwd)) ? cwd : "/";
}

static const struct cli_opt up_options[] = {
	{ "nodes", K_NODES, 1 }, { "dir", K_DIR, 1 }, { "node-timeout", K_NODE_TIMEOUT, 1 },
	{ "heartbeat", K_HEARTBEAT, 1 }, { "slot", K_SLOT, 1 }, { "max-share", K_MAX_SHARE, 1 },
	{ "timeslice", K_TIMESLICE, 1 }, { "vm-kernel", K_VM_KERNEL, 1 }, { "vm-switch", K_VM_SWITCH, 1 },
	{ "vm-hugepages", K_VM_HUGEPAGES, 1 }, { "storage", K_STORAGE, 1 },
	{ "cli-listen", K_CLI_LISTEN, 1 }, { "munge-socket", K_MUNGE_SOCKET, 1 }, { "help", K_HELP, 0 },
	{ NULL, 0, 0 },
};

static const char up_help[] =
	"usage: hec cluster up --nodes N [--storage M] [--dir DIR] [--node-timeout DUR]\n"
	"                      [--heartbeat DUR]\n"
	"Start an embedded cluster on this machine: hecctld, N hecd (node0 ...) and\n"
	"M checkpoint storage servers (hecstored s0 ...; each stores in DIR/store/sK),\n"
	"files, logs and pid files in DIR; CPUs are split between the nodes.\n"
	"  -N, --nodes=N           nodes to start (1..64)\n"
	"      --storage=M         storage servers to start (0..16, default 0)\n"
	"  -D, --dir=DIR           cluster directory (default: $HEC_DIR, the last one\n"
	"                          started, or ~/.hec/cluster)\n"
	"      --node-timeout=DUR  silence after which a node is DOWN (default 10s)\n"
	"      --heartbeat=DUR     agent heartbeat interval (default 1s)\n"
	"      --slot=MS           gang time slot, 1..60000 ms (default 50ms)\n"
	"      --max-share=K       at most K --share jobs time-share a node (default 4)\n"
	"      --timeslice=MODE    gang (default), or none: --share jobs share nodes\n"
	"                          under plain Linux scheduling (for comparisons)\n"
	"      --vm-kernel=FILE    guest kernel of vm partitions (default: the newest\n"
	"                          /boot/vmlinuz-*)\n"
	"      --vm-switch=HOW     how guests are gang-switched: auto (default: the\n"
	"                          cheaper as measured at boot), cgroup or qmp\n"
	"      --vm-hugepages=HOW  guest RAM in 2 MiB huge pages: off (default), auto\n"
	"                          (where enough are free) or on (else the guest fails)\n"
	"      --cli-listen=H:P    also take the CLI of other hosts over TCP there, users\n"
	"                          by MUNGE credentials (port 0 picks one: DIR/state/cli.addr)\n"
	"      --munge-socket=PATH munged's socket for those (default: libmunge's)\n"
	"DUR: 30 (seconds), 30s, 500ms, 5m, 1h.  HEC_DAEMON_WRAPPER=\"valgrind ...\" runs\n"
	"the daemons under that command.\n";

struct up {
	struct cli_ctx *ctx;
	char rdir[PATH_MAX];
	char name[16];
	char key_file[PATH_MAX];
	char ctl_addr[300];
	long nodes, node_timeout_ms, heartbeat_ms;
	long storage;                 /* hecstored to start */
	long slot_ms, max_share;      /* 0: the controller's default */
	const char *timeslice;        /* NULL: the controller's default */
	char vm_kernel[PATH_MAX];     /* "": the agents' default */
	const char *vm_switch;        /* NULL: the agents' default */
	const char *vm_hugepages;     /* NULL: the agents' default */
	const char *cli_listen;       /* NULL: no CLI over TCP */
	const char *munge_socket;     /* NULL: libmunge's default */
	/* [0] hecctld, [1 + k] node k, [1 + nodes + k] storage server k */
	struct daemon d[UP_NODES_MAX + UP_STORAGE_MAX + 1];
	int nd;
	int64_t wait_ms;
};

static int make_dirs(struct up *u)
{
	static const struct { const char *leaf; mode_t mode; } dirs[] = {
		/* state/ holds the catalog and the jobs' own directories (their
		 * users pass through, never list it); logs are the owner's; the
		 * spool is hecctld's, a directory per user within (it makes them) */
		{ "log", 0700 }, { "run", 0755 }, { "state", 0711 }, { "spool", 0755 },
	};
	char path[PATH_MAX];
	int rc;

	rc = hec_mkdir_p(u->ctx->dir, 0755);
	if (rc) {
		cli_err("cluster up: %s: %s", u->ctx->dir, strerror(-rc));
		return rc;
	}
	if (!realpath(u->ctx->dir, u->rdir)) {
		rc = -errno;
		cli_err("cluster up: %s: %s", u->ctx->dir, strerror(-rc));
		return rc;
	}
	if (strpbrk(u->rdir, "#\n\r")) {
		cli_err("cluster up: %s: a cluster directory path must not contain '#' or line breaks",
			u->rdir);
		return -EINVAL;
	}
	for (size_t i = 0; i < HEC_ARRAY_SIZE(dirs); i++) {
		if (path_join(path, sizeof(path), u->rdir, dirs[i].leaf))
			return -ENAMETOOLONG;
		if (mkdir(path, dirs[i].mode) && errno != EEXIST) {
			rc = -errno;
			cli_err("cluster up: %s: %s", path, strerror(-rc));
			return rc;
		}
		/* mkdir() obeys the umask; an older cluster's 1777 spool is closed */
		if (chmod(path, dirs[i].mode)) {
			rc = -errno;
			cli_err("cluster up: %s: %s", path, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int write_key(struct up *u)
{
	char key[80];
	int rc;

	if (path_join(u->key_file, sizeof(u->key_file), u->rdir, "cluster.key"))
		return -ENAMETOOLONG;
	rc = hec_random_hex(key, 32);
	if (!rc) {
		strcat(key, "\n");
		rc = hec_create_file(u->key_file, key, strlen(key), 0600);
	}
	if (rc)
		cli_err("cluster up: %s: %s", u->key_file, strerror(-rc));
	return rc;
}

static int write_conf(const char *path, const char *text)
{
	int rc = hec_create_file(path, text, strlen(text), 0644);

	if (rc)
		cli_err("cluster up: %s: %s", path, strerror(-rc));
	return rc;
}

static int start_controller(struct up *u, const char *prog)
{
	char conf[PATH_MAX], text[4 * PATH_MAX + 512], addr_file[PATH_MAX];
	struct daemon *d = &u->d[0];
	int64_t deadline;
	int rc;

	if (path_join(conf, sizeof(conf), u->rdir, "hecctld.conf") ||
	    path_join(addr_file, sizeof(addr_file), u->rdir, "state/ctl.addr"))
		return -ENAMETOOLONG;
	snprintf(text, sizeof(text),
		 "# written by hec cluster up\n"
		 "cluster_name = %s\n"
		 "state_dir = %s/state\n"
		 "socket = %s\n"
		 "listen = 127.0.0.1:0\n"
		 "key_file = %s\n"
		 "spool_dir = %s/spool\n"
		 "node_timeout = %ldms\n"
		 "heartbeat_interval = %ldms\n",
		 u->name, u->rdir, u->ctx->sock, u->key_file, u->rdir, u->node_timeout_ms,
		 u->heartbeat_ms);
	if (u->slot_ms)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "gang_slot = %ldms\n",
			 u->slot_ms);
	if (u->max_share)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "max_share = %ld\n",
			 u->max_share);
	if (u->timeslice)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "timeslice = %s\n",
			 u->timeslice);
	if (u->cli_listen)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "cli_listen = %s\n",
			 u->cli_listen);
	if (u->munge_socket)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "munge_socket = %s\n",
			 u->munge_socket);
	rc = write_conf(conf, text);
	if (rc)
		return rc;
	/* stale files of an earlier run would look like a started controller */
	unlink(addr_file);
	unlink(u->ctx->sock);

	snprintf(d->name, sizeof(d->name), "hecctld");
	if (path_join(d->log, sizeof(d->log), u->rdir, "log/hecctld.log") ||
	    path_join(d->pidfile, sizeof(d->pidfile), u->rdir, "run/hecctld.pid"))
		return -ENAMETOOLONG;
	rc = start_daemon(d, prog, conf);
	u->nd = 1;
	if (rc)
		return rc;

	deadline = ms_now() + u->wait_ms;
	for (;;) {
		if (daemon_exited(d, 1))
			goto err_log;
		if (hec_read_file(addr_file, u->ctl_addr, sizeof(u->ctl_addr)) == 0 &&
		    strchr(u->ctl_addr, ':')) {
			int fd = hec_connect_unix(u->ctx->sock);

			if (fd >= 0) {
				close(fd);
				/* read again: the first read may have raced the writer */
				hec_read_file(addr_file, u->ctl_addr, sizeof(u->ctl_addr));
				return 0;
			}
		}
		if (ms_now() >= deadline) {
			cli_err("cluster up: hecctld did not come up within %ld s (no %s or socket)",
				(long)(u->wait_ms / 1000), addr_file);
			goto err_log;
		}
		cli_sleep_ms(50);
	}

err_log:
	print_log_tail(d->log);
	return -ETIMEDOUT;
}

static int online_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

static int start_nodes(struct up *u, const char *prog)
{
	int cpus[HEC_MAX_CPUS], ncpus, rc;

	ncpus = online_cpus(cpus, HEC_MAX_CPUS);
	if (ncpus <= 0) {
		cli_err("cluster up: sched_getaffinity: %s", strerror(ncpus ? -ncpus : ENOENT));
		return ncpus ? ncpus : -ENOENT;
	}
	for (int k = 0; k < u->nodes; k++) {
		char conf[PATH_MAX], state[PATH_MAX], list[4096], text[4 * PATH_MAX + 8192];
		struct daemon *d = &u->d[1 + k];

		rc = cli_node_cpus(k, (int)u->nodes, cpus, ncpus, list, sizeof(list));
		if (rc) {
			cli_err("cluster up: node%d: cannot make its CPU list: %s", k, strerror(-rc));
			return rc;
		}
		snprintf(d->name, sizeof(d->name), "node%d", k);
		snprintf(text, sizeof(text), "%s.conf", d->name);
		if (path_join(conf, sizeof(conf), u->rdir, text))
			return -ENAMETOOLONG;
		snprintf(text, sizeof(text), "state/%s", d->name);
		if (path_join(state, sizeof(state), u->rdir, text))
			return -ENAMETOOLONG;
		rc = hec_mkdir_p(state, 0755);
		if (rc) {
			cli_err("cluster up: %s: %s", state, strerror(-rc));
			return rc;
		}
		snprintf(text, sizeof(text),
			 "# written by hec cluster up\n"
			 "name = %s\n"
			 "cluster_name = %s\n"
			 "controller = %s\n"
			 "listen = 127.0.0.1:0\n"
			 "advertise = 127.0.0.1\n"
			 "key_file = %s\n"
			 "cpus = %s\n"
			 "state_dir = %s\n"
			 "%s%s%s"
			 "%s%s%s"
			 "%s%s%s",
			 d->name, u->name, u->ctl_addr, u->key_file, list, state,
			 u->vm_kernel[0] ? "vm_kernel = " : "", u->vm_kernel, u->vm_kernel[0] ? "\n" : "",
			 u->vm_switch ? "vm_switch = " : "", u->vm_switch ? u->vm_switch : "",
			 u->vm_switch ? "\n" : "",
			 u->vm_hugepages ? "vm_hugepages = " : "", u->vm_hugepages ? u->vm_hugepages : "",
			 u->vm_hugepages ? "\n" : "");
		rc = write_conf(conf, text);
		if (rc)
			return rc;
		snprintf(text, sizeof(text), "log/%s.log", d->name);
		if (path_join(d->log, sizeof(d->log), u->rdir, text))
			return -ENAMETOOLONG;
		snprintf(text, sizeof(text), "run/%s.pid", d->name);
		if (path_join(d->pidfile, sizeof(d->pidfile), u->rdir, text))
			return -ENAMETOOLONG;
		rc = start_daemon(d, prog, conf);
		u->nd = 2 + k;
		if (rc)
			return rc;
	}
	return 0;
}

/* State of node @name in a `nodes` answer, or NULL. */
static const char *node_state(const json_t *resp, const char *name)
{
	json_t *node;
	size_t i;

	json_array_foreach(json_object_get(resp, "nodes"), i, node)
		if (!strcmp(name, json_string_value(json_object_get(node, "name")) ?: ""))
			return json_string_value(json_object_get(node, "state")) ?: "?";
	return NULL;
}

static int wait_idle(struct up *u)
{
	int64_t deadline = ms_now() + u->wait_ms;
	char err[CLI_ERRLEN] = "";

	for (;;) {
		json_t *req = json_pack("{s:s}", "op", "nodes"), *resp = NULL;
		const char *state = NULL;
		int rc, k, idle = 0;

		for (k = 0; k < u->nd; k++)
			if (daemon_exited(&u->d[k], 1)) {
				print_log_tail(u->d[k].log);
				return -ESRCH;
			}
		rc = req ? cli_call(u->ctx, req, &resp, err, sizeof(err)) : -ENOMEM;
		json_decref(req);
		if (rc == 0) {
			for (k = 0; k < u->nodes; k++) {
				state = node_state(resp, u->d[1 + k].name);
				if (!state || strcmp(state, "IDLE"))
					break;
				idle++;
			}
		}
		if (idle == u->nodes) {
			json_decref(resp);
			return 0;
		}
		if (ms_now() >= deadline) {
			if (rc)
				cli_err("cluster up: the controller does not answer: %s", err);
			else
				cli_err("cluster up: %s is %s after %ld s", u->d[1 + idle].name,
					state ? state : "not registered", (long)(u->wait_ms / 1000));
			json_decref(resp);
			print_log_tail(u->d[rc ? 0 : 1 + idle].log);
			if (!rc)
				print_log_tail(u->d[0].log);
			return -ETIMEDOUT;
		}
		json_decref(resp);
		cli_sleep_ms(100);
	}
}

/*
 * Storage server k: "sK", config DIR/store/sK/hecstored.conf, chunks and
 * manifests in DIR/store/sK/data (kept from one `cluster up` to the next,
 * as spool/ is), log and pid file beside the others'.
 */
static int start_storage(struct up *u, const char *prog)
{
	for (int k = 0; k < u->storage; k++) {
		char conf[PATH_MAX], data[PATH_MAX], text[4 * PATH_MAX + 512];
		struct daemon *d = &u->d[1 + u->nodes + k];
		int rc;

		snprintf(d->name, sizeof(d->name), "s%d", k);
		snprintf(text, sizeof(text), "store/%s/data", d->name);
		if (path_join(data, sizeof(data), u->rdir, text))
			return -ENAMETOOLONG;
		snprintf(text, sizeof(text), "store/%s/hecstored.conf", d->name);
		if (path_join(conf, sizeof(conf), u->rdir, text))
			return -ENAMETOOLONG;
		rc = hec_mkdir_p(data, 0700);
		if (rc) {
			cli_err("cluster up: %s: %s", data, strerror(-rc));
			return rc;
		}
		snprintf(text, sizeof(text),
			 "# written by hec cluster up\n"
			 "name = %s\n"
			 "dir = %s\n"
			 "listen = 127.0.0.1:0\n"
			 "controller = %s\n"
			 "key_file = %s\n",
			 d->name, data, u->ctl_addr, u->key_file);
		rc = write_conf(conf, text);
		if (rc)
			return rc;
		snprintf(text, sizeof(text), "log/%s.log", d->name);
		if (path_join(d->log, sizeof(d->log), u->rdir, text))
			return -ENAMETOOLONG;
		snprintf(text, sizeof(text), "run/%s.pid", d->name);
		if (path_join(d->pidfile, sizeof(d->pidfile), u->rdir, text))
			return -ENAMETOOLONG;
		rc = start_daemon(d, prog, conf);
		u->nd = 2 + (int)u->nodes + k;
		if (rc)
			return rc;
	}
	return 0;
}

/* State of storage server @name in a `storage` answer, or NULL. */
static const char *store_state(const json_t *resp, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(resp, "servers"), i, s)
		if (!strcmp(name, json_string_value(json_object_get(s, "name")) ?: ""))
			return json_string_value(json_object_get(s, "state")) ?: "?";
	return NULL;
}

/* Every storage server registered and up (its first registration may wait
 * for a retry: hecstored tries again every few seconds). */
static int wait_storage(struct up *u)
{
	int64_t deadline = ms_now() + u->wait_ms;
	char err[CLI_ERRLEN] = "";

	while (u->storage) {
		json_t *req = json_pack("{s:s}", "op", "storage"), *resp = NULL;
		const char *state = NULL;
		int rc, k, up = 0;
		struct daemon *d = &u->d[1 + u->nodes];

		for (k = 0; k < u->nd; k++)
			if (daemon_exited(&u->d[k], 1)) {
				print_log_tail(u->d[k].log);
				return -ESRCH;
			}
		rc = req ? cli_call(u->ctx, req, &resp, err, sizeof(err)) : -ENOMEM;
		json_decref(req);
		for (k = 0; rc == 0 && k < u->storage; k++, up++) {
			state = store_state(resp, d[k].name);
			if (!state || strcmp(state, "up"))
				break;
		}
		json_decref(resp);
		if (up == u->storage)
			return 0;
		if (ms_now() >= deadline) {
			if (rc)
				cli_err("cluster up: the controller does not answer: %s", err);
			else
				cli_err("cluster up: storage server %s is %s after %ld s", d[up].name,
					state ? state : "not registered", (long)(u->wait_ms / 1000));
			print_log_tail(rc ? u->d[0].log : d[up].log);
			return -ETIMEDOUT;
		}
		cli_sleep_ms(100);
	}
	return 0;
}

static void record_current(const char *rdir)
{
	char dir[PATH_MAX], file[PATH_MAX], text[PATH_MAX + 2];
	int rc;

	if (cli_home_path("", dir, sizeof(dir)) || cli_home_path("current", file, sizeof(file)))
		return;
	rc = hec_mkdir_p(dir, 0700);
	snprintf(text, sizeof(text), "%s\n", rdir);
	if (!rc)
		rc = hec_create_file(file, text, strlen(text), 0644);
	if (rc)
		fprintf(stderr, "hec: warning: cannot record the cluster in %s: %s\n", file,
			strerror(-rc));
}

static int refuse_running(struct up *u)
{
	struct pidfile pf[UP_NODES_MAX + UP_STORAGE_MAX + 8];
	char rdir[PATH_MAX];
	int fd = hec_connect_unix(u->ctx->sock), n;

	if (fd >= 0) {
		close(fd);
		cli_err("cluster up: a cluster is already running at %s (stop it with: hec cluster down)",
			u->ctx->dir);
		return -EEXIST;
	}
	if (!realpath(u->ctx->dir, rdir))
		return 0;
	n = read_pidfiles(rdir, pf, (int)HEC_ARRAY_SIZE(pf));
	for (int i = 0; i < n; i++)
		if (pf[i].alive) {
			cli_err("cluster up: %s of an earlier cluster at %s is still running (pid %d); "
				"stop it with: hec --dir %s cluster down", pf[i].name, u->ctx->dir,
				(int)pf[i].pid, u->ctx->dir);
			return -EEXIST;
		}
	return 0;
}

static int sweep_partitions(const char *rdir, const char *cmd);

/*
 * Nothing of an earlier cluster in this directory runs any more (checked):
 * remove partitions its killed agents may have left, its node files and its
 * catalog, so that each `cluster up` is a fresh instance (as `flux start`
 * is) and a smaller cluster does not inherit node5 from a bigger one.
 * Output files in spool/ stay.
 */
static void forget_earlier(const char *rdir)
{
	static const char *const catalog[] = { "hec.db", "hec.db-wal", "hec.db-shm", "ctl.addr" };
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	sweep_partitions(rdir, "cluster up");
	for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/state/%s", rdir, catalog[i]) < (int)sizeof(path))
			unlink(path);
	}
	d = opendir(rdir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (!strncmp(de->d_name, "node", 4) && len > 9 && !strcmp(de->d_name + len - 5, ".conf"))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static int cluster_up(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct up u = { .ctx = ctx, .node_timeout_ms = DEFAULT_NODE_TIMEOUT_MS,
			.heartbeat_ms = DEFAULT_HEARTBEAT_MS };
	char err[CLI_ERRLEN], ctld[PATH_MAX], hecd[PATH_MAX], stored[PATH_MAX];
	struct cli_args a;
	int key, given_timeout = 0;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, up_options)) != 0) {
		switch (key) {
		case -1:
			return cli_usage("cluster up", "cluster up: %s", a.err);
		case CLI_OPERAND:
			return cli_usage("cluster up", "cluster up: unexpected argument '%s'", a.arg);
		case K_HELP:
			fputs(up_help, stdout);
			return CLI_EXIT_OK;
		case K_DIR:
			dir = a.arg;
			break;
		case K_NODES:
			if (cli_parse_num("--nodes", a.arg, 1, UP_NODES_MAX, &u.nodes, err, sizeof(err)))
				goto bad_value;
			break;
		case K_STORAGE:
			if (cli_parse_num("--storage", a.arg, 0, UP_STORAGE_MAX, &u.storage, err,
					  sizeof(err)))
				goto bad_value;
			break;
		case K_NODE_TIMEOUT:
			if (cli_parse_duration_ms("--node-timeout", a.arg, 86400L * 1000,
						  &u.node_timeout_ms, err, sizeof(err)))
				goto bad_value;
			given_timeout = 1;
			break;
		case K_HEARTBEAT:
			if (cli_parse_duration_ms("--heartbeat", a.arg, 3600L * 1000, &u.heartbeat_ms,
						  err, sizeof(err)))
				goto bad_value;
			break;
		case K_SLOT:
			if (cli_parse_slot_ms("--slot", a.arg, &u.slot_ms, err, sizeof(err)))
				goto bad_value;
			break;
		case K_MAX_SHARE:
			if (cli_parse_num("--max-share", a.arg, 1, 64, &u.max_share, err, sizeof(err)))
				goto bad_value;
			break;
		case K_TIMESLICE:
			if (cli_parse_timeslice("--timeslice", a.arg, err, sizeof(err)))
				goto bad_value;
			u.timeslice = a.arg;
			break;
		case K_VM_KERNEL:
			/* Checked by the agents at each vm LAUNCH: a missing file is
			 * the job's clear error, not the cluster's. */
			if (!a.arg[0] || strchr(a.arg, '\n') ||
			    cli_abspath(cwd_or_root(), a.arg, u.vm_kernel, sizeof(u.vm_kernel))) {
				snprintf(err, sizeof(err), "--vm-kernel: '%s' is not a usable path", a.arg);
				goto bad_value;
			}
			break;
		case K_VM_SWITCH:
			if (strcmp(a.arg, "auto") && strcmp(a.arg, "cgroup") && strcmp(a.arg, "qmp")) {
				snprintf(err, sizeof(err), "--vm-switch: '%s': expected auto, cgroup or qmp",
					 a.arg);
				goto bad_value;
			}
			u.vm_switch = a.arg;
			break;
		case K_VM_HUGEPAGES:
			if (strcmp(a.arg, "off") && strcmp(a.arg, "auto") && strcmp(a.arg, "on")) {
				snprintf(err, sizeof(err), "--vm-hugepages: '%s': expected off, auto or on",
					 a.arg);
				goto bad_value;
			}
			u.vm_hugepages = a.arg;
			break;
		case K_CLI_LISTEN: {
			char host[256];
			int port;

			if (hec_split_hostport(a.arg, host, sizeof(host), &port) || strpbrk(a.arg, "\n#")) {
				snprintf(err, sizeof(err), "--cli-listen: '%s' is not HOST:PORT", a.arg);
				goto bad_value;
			}
			u.cli_listen = a.arg;
			break;
		}
		case K_MUNGE_SOCKET:
			if (a.arg[0] != '/' || strpbrk(a.arg, "\n#") || strlen(a.arg) >= 108) {
				snprintf(err, sizeof(err), "--munge-socket: '%s' is not an absolute socket path", a.arg);
				goto bad_value;
			}
			u.munge_socket = a.arg;
			break;
		}
	}
	if (a.i < a.argc)
		return cli_usage("cluster up", "cluster up: unexpected argument '%s'", a.argv[a.i]);
	if (!u.nodes)
		return cli_usage("cluster up", "cluster up: how many nodes? give --nodes N");
	if (u.heartbeat_ms >= u.node_timeout_ms) {
		cli_err("--heartbeat: %ld ms must be shorter than the node timeout (%ld ms%s)",
			u.heartbeat_ms, u.node_timeout_ms, given_timeout ? "" : ", the default");
		return CLI_EXIT_USAGE;
	}
	if (cli_ctx_init(ctx, dir))
		return CLI_EXIT_ERR;
	if (strlen(ctx->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		cli_err("cluster up: %s: too long for a Unix socket path (at most %zu bytes)", ctx->sock,
			sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return CLI_EXIT_ERR;
	}
	u.wait_ms = wrapped() ? WRAPPED_WAIT_MS : UP_WAIT_MS;
	if (refuse_running(&u) || find_program("hecctld", ctld, sizeof(ctld)) ||
	    find_program("hecd", hecd, sizeof(hecd)) ||
	    (u.storage && find_program("hecstored", stored, sizeof(stored))) || make_dirs(&u) ||
	    write_key(&u))
		return CLI_EXIT_ERR;
	/* from here on every path is the real one: the daemons may chdir */
	snprintf(ctx->dir, sizeof(ctx->dir), "%s", u.rdir);
	if (path_join(ctx->sock, sizeof(ctx->sock), u.rdir, "hecctld.sock"))
		return CLI_EXIT_ERR;
	cli_cluster_name(u.rdir, u.name, sizeof(u.name));
	forget_earlier(u.rdir);

	if (start_controller(&u, ctld) || start_nodes(&u, hecd) || start_storage(&u, stored) ||
	    wait_idle(&u) || wait_storage(&u)) {
		stop_daemons(u.d, u.nd);
		unlink(ctx->sock);
		return CLI_EXIT_ERR;
	}
	record_current(u.rdir);
	printf("cluster up: %ld node%s, ", u.nodes, u.nodes == 1 ? "" : "s");
	if (u.storage)
		printf("%ld storage server%s, ", u.storage, u.storage == 1 ? "" : "s");
	printf("controller %s, dir %s\n", u.ctl_addr, u.rdir);
	return CLI_EXIT_OK;

bad_value:
	cli_err("%s", err);
	return CLI_EXIT_USAGE;
}

/* ---- cluster down ---- */

static const struct cli_opt down_options[] = {
	{ "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};

static const char down_help[] =
	"usage: hec cluster down [--dir DIR]\n"
	"Stop the embedded cluster: ask the controller to shut down (agents kill their\n"
	"jobs), wait for every daemon (10 s, then SIGKILL), remove leftover partitions.\n"
	"Works when the controller is already dead.\n"
	"  -D, --dir=DIR  cluster directory\n";

/* Remove partitions the agents of this cluster left behind (killed agents). */
static int sweep_partitions(const char *rdir, const char *cmd)
{
	const struct hec_partition_ops *ops = &hec_partition_proc_ops;
	struct dirent *de;
	int failed = 0;
	DIR *d = opendir(rdir);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char conf[PATH_MAX], node[128], cluster[128], cpus[4096], base[512];
		char why[PATH_MAX + 64] = "";
		struct hec_partition_env env = { .node = node, .cgroup_base = base, .cpus = cpus };
		long jobs[1024];
		size_t len = strlen(de->d_name);
		int n, rc;

		if (strncmp(de->d_name, "node", 4) || len < 6 || strcmp(de->d_name + len - 5, ".conf"))
			continue;
		if (path_join(conf, sizeof(conf), rdir, de->d_name) ||
		    conf_value(conf, "name", node, sizeof(node)) ||
		    conf_value(conf, "cluster_name", cluster, sizeof(cluster)))
			continue;
		if (conf_value(conf, "cpus", cpus, sizeof(cpus)))
			cpus[0] = 0;
		snprintf(base, sizeof(base), "hec/%s/%s", cluster, node);
		rc = ops->node_init(&env, why, sizeof(why));
		if (rc == -ENODEV)
			continue;
		if (rc) {
			/* without the rights to manage cgroups the agents had none either */
			if (!((rc == -EACCES || rc == -EPERM || rc == -EROFS) && geteuid() != 0)) {
				cli_err("%s: %s: %s: %s", cmd, node, why, strerror(-rc));
				failed = 1;
			}
			continue;
		}
		n = ops->list(&env, jobs, (int)HEC_ARRAY_SIZE(jobs), why, sizeof(why));
		if (n < 0) {
			cli_err("%s: %s: %s: %s", cmd, node, why, strerror(-n));
			failed = 1;
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct hec_partition *p = NULL;
			int64_t deadline = ms_now() + KILL_WAIT_MS;

			rc = ops->open(&env, jobs[i], &p, why, sizeof(why));
			if (rc == -ENOENT)
				continue;
			if (!rc) {
				rc = ops->kill(p, why, sizeof(why));
				/* killed processes take a moment to leave the group */
				while (!rc && (rc = ops->destroy(p, why, sizeof(why))) == -EBUSY &&
				       ms_now() < deadline) {
					cli_sleep_ms(20);
					ops->kill(p, NULL, 0);
				}
				ops->release(p);
			}
			if (rc) {
				cli_err("%s: %s: job %ld: %s: %s", cmd, node, jobs[i], why, strerror(-rc));
				failed = 1;
			} else {
				fprintf(stderr, "hec: %s: %s: removed the leftover partition of job %ld\n",
					cmd, node, jobs[i]);
			}
		}
		rc = hec_partition_node_fini(ops, &env, why, sizeof(why));
		if (rc) {
			cli_err("%s: %s: %s: %s", cmd, node, why, strerror(-rc));
			failed = 1;
		}
	}
	closedir(d);
	return failed ? -EBUSY : 0;
}

static void clear_current(const char *rdir)
{
	char file[PATH_MAX], cur[PATH_MAX], real[PATH_MAX];

	if (cli_home_path("current", file, sizeof(file)) ||
	    hec_read_file(file, cur, sizeof(cur)))
		return;
	if (!strcmp(cur, rdir) || (realpath(cur, real) && !strcmp(real, rdir)))
		unlink(file);
}

/* "s0", "s12": a storage server's pid file (cluster up names them so). */
static int is_store_name(const char *name)
{
	return name[0] == 's' && name[1] && strspn(name + 1, "0123456789") == strlen(name + 1);
}

/* Wait until no pid file names a live daemon; \return how many remain. */
static int wait_gone(struct pidfile *pf, int n, const char *rdir, int64_t ms)
{
	int64_t deadline = ms_now() + ms;
	int alive;

	for (;;) {
		alive = 0;
		for (int i = 0; i < n; i++) {
			if (pf[i].alive)
				pf[i].alive = ours(pf[i].pid, rdir);
			alive += pf[i].alive;
		}
		if (!alive || ms_now() >= deadline)
			return alive;
		cli_sleep_ms(50);
	}
}

static int cluster_down(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct pidfile pf[UP_NODES_MAX + UP_STORAGE_MAX + 8];
	char rdir[PATH_MAX], path[PATH_MAX], err[CLI_ERRLEN];
	struct cli_args a;
	json_t *req, *resp = NULL;
	int key, n, rc, shut, alive, ret = CLI_EXIT_OK, have_conf;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, down_options)) != 0) {
		if (key < 0)
			return cli_usage("cluster down", "cluster down: %s", a.err);
		if (key == CLI_OPERAND)
			return cli_usage("cluster down", "cluster down: unexpected argument '%s'", a.arg);
		if (key == K_HELP) {
			fputs(down_help, stdout);
			return CLI_EXIT_OK;
		}
		dir = a.arg;
	}
	if (a.i < a.argc)
		return cli_usage("cluster down", "cluster down: unexpected argument '%s'", a.argv[a.i]);
	if (cli_ctx_init(ctx, dir))
		return CLI_EXIT_ERR;
	if (!realpath(ctx->dir, rdir)) {
		cli_no_cluster(ctx);
		return CLI_EXIT_ERR;
	}
	n = read_pidfiles(rdir, pf, (int)HEC_ARRAY_SIZE(pf));
	if (n < 0)
		n = 0;
	have_conf = path_join(path, sizeof(path), rdir, "hecctld.conf") == 0 &&
		    access(path, F_OK) == 0;

	/* The orderly way: the controller tells the agents to clean up. */
	req = json_pack("{s:s}", "op", "shutdown");
	rc = req ? cli_call(ctx, req, &resp, err, sizeof(err)) : -ENOMEM;
	json_decref(req);
	json_decref(resp);
	shut = rc == 0;
	if (!have_conf && n == 0) {
		/* not an embedded cluster: nothing of ours to wait for or sweep */
		if (shut) {
			printf("cluster down\n");
			return CLI_EXIT_OK;
		}
		if (rc == -ENOTCONN)
			cli_no_cluster(ctx);
		else
			cli_err("cluster down: %s", err);
		return CLI_EXIT_ERR;
	}
	if (rc == -EREMOTEIO)
		fprintf(stderr, "hec: cluster down: the controller refused (%s); signalling the daemons\n",
			err);
	/* Storage servers outlive a controller (they wait for the next one): stop them. */
	for (int i = 0; i < n; i++)
		if ((!shut || is_store_name(pf[i].name)) && pf[i].alive && kill(pf[i].pid, SIGTERM) &&
		    errno == EPERM) {
			cli_err("cluster down: %s (pid %d): %s", pf[i].name, (int)pf[i].pid,
				strerror(EPERM));
			return CLI_EXIT_ERR;
		}
	alive = wait_gone(pf, n, rdir, wrapped() ? WRAPPED_WAIT_MS : DOWN_WAIT_MS);
	if (alive) {
		for (int i = 0; i < n; i++)
			if (pf[i].alive) {
				fprintf(stderr, "hec: cluster down: %s (pid %d) did not stop; killing it\n",
					pf[i].name, (int)pf[i].pid);
				kill(pf[i].pid, SIGKILL);
			}
		alive = wait_gone(pf, n, rdir, KILL_WAIT_MS);
	}
	if (alive) {
		for (int i = 0; i < n; i++)
			if (pf[i].alive)
				cli_err("cluster down: %s (pid %d) survived SIGKILL", pf[i].name,
					(int)pf[i].pid);
		return CLI_EXIT_ERR;
	}
	if (sweep_partitions(rdir, "cluster down"))
		ret = CLI_EXIT_ERR;
	for (int i = 0; i < n; i++)
		unlink(pf[i].path);
	if (path_join(path, sizeof(path), rdir, "hecctld.sock") == 0)
		unlink(path);
	if (path_join(path, sizeof(path), rdir, "state/ctl.addr") == 0)
		unlink(path);
	clear_current(rdir);
	printf("cluster down\n");
	return ret;
}

/* ---- cluster status ---- */

static const struct cli_opt status_options[] = {
	{ "json", K_JSON, 0 }, { "dir", K_DIR, 1 }, { "help", K_HELP, 0 }, { NULL, 0, 0 },
};

static const char status_help[] =
	"usage: hec cluster status [--json]\n"
	"Controller, nodes, jobs and storage servers of the cluster; exit status 1 if\n"
	"it is not running.\n"
	"      --json     print the controller's answer as JSON\n"
	"  -D, --dir=DIR  cluster directory\n";

/* "storage: 2 up, 3 total" and a line per server, if any registered. */
static void print_storage(const struct cli_ctx *ctx)
{
	json_t *req = json_pack("{s:s}", "op", "storage"), *resp = NULL, *s;
	char err[CLI_ERRLEN];
	int up = 0;
	size_t i;

	if (!req || cli_call(ctx, req, &resp, err, sizeof(err))) {
		json_decref(req);
		return; /* the rest was printed; the controller went away since */
	}
	json_decref(req);
	json_array_foreach(json_object_get(resp, "servers"), i, s)
		up += !strcmp(cli_jstr(s, "state", ""), "up");
	i = json_array_size(json_object_get(resp, "servers"));
	if (i)
		printf("storage: %d up, %zu total\n", up, i);
	json_array_foreach(json_object_get(resp, "servers"), i, s) {
		const char *state = cli_jstr(s, "state", "?");

		printf("  %s %s %s %s", cli_jstr(s, "name", "?"), state, cli_jstr(s, "addr", ""),
		       cli_jstr(s, "provider", ""));
		if (strcmp(state, "up"))
			printf(" (%s)", cli_jstr(s, "reason", ""));
		printf(" %s\n", cli_jstr(s, "dir", ""));
	}
	json_decref(resp);
}

static int cluster_status(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	struct cli_args a;
	json_t *resp, *nodes = NULL, *cl, *node;
	char addr[300] = "", path[PATH_MAX];
	int key, json = 0, up = 0, total = 0;
	size_t i;

	cli_args_init(&a, argc - 1, argv + 1);
	while ((key = cli_getopt(&a, status_options)) != 0) {
		if (key < 0)
			return cli_usage("cluster status", "cluster status: %s", a.err);
		if (key == CLI_OPERAND)
			return cli_usage("cluster status", "cluster status: unexpected argument '%s'",
					 a.arg);
		if (key == K_HELP) {
			fputs(status_help, stdout);
			return CLI_EXIT_OK;
		}
		if (key == K_JSON)
			json = 1;
		else
			dir = a.arg;
	}
	if (cli_ctx_init(ctx, dir))
		return CLI_EXIT_ERR;
	if (cli_request(ctx, "cluster status", json_pack("{s:s}", "op", "status"), &resp))
		return CLI_EXIT_ERR;
	if (json) {
		cli_print_json(resp);
		json_decref(resp);
		return CLI_EXIT_OK;
	}
	cl = json_object_get(resp, "cluster");
	/* ALLOCATED nodes are up too: count from the node list */
	if (cli_request(ctx, "cluster status", json_pack("{s:s}", "op", "nodes"), &nodes) == 0) {
		json_array_foreach(json_object_get(nodes, "nodes"), i, node) {
			const char *st = json_string_value(json_object_get(node, "state")) ?: "";

			total++;
			up += !strcmp(st, "IDLE") || !strcmp(st, "ALLOCATED");
		}
		json_decref(nodes);
	} else {
		up = (int)json_integer_value(json_object_get(cl, "nodes_up"));
		total = (int)json_integer_value(json_object_get(cl, "nodes_total"));
	}
	if (path_join(path, sizeof(path), ctx->dir, "state/ctl.addr") == 0)
		hec_read_file(path, addr, sizeof(addr));
	printf("cluster %s at %s\n", json_string_value(json_object_get(cl, "name")) ?: "?", ctx->dir);
	printf("controller: pid %lld%s%s, up %lld s\n",
	       (long long)json_integer_value(json_object_get(cl, "pid")),
	       addr[0] ? ", agents connect to " : "", addr,
	       (long long)json_integer_value(json_object_get(cl, "uptime")));
	printf("nodes: %d up, %d total\n", up, total);
	printf("jobs: %lld pending, %lld running\n",
	       (long long)json_integer_value(json_object_get(cl, "jobs_pending")),
	       (long long)json_integer_value(json_object_get(cl, "jobs_running")));
	json_decref(resp);
	print_storage(ctx);
	return CLI_EXIT_OK;
}

static const char cluster_help[] =
	"usage: hec cluster up --nodes N [--storage M] [--dir DIR] [--node-timeout DUR]\n"
	"                      [--heartbeat DUR]\n"
	"       hec cluster down [--dir DIR]\n"
	"       hec cluster status [--json]\n"
	"Start, stop or describe an embedded cluster on this machine\n"
	"(hec cluster SUBCOMMAND --help for each).\n";

int cmd_cluster(struct cli_ctx *ctx, const char *dir, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("cluster", "cluster: which? up, down or status");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(cluster_help, stdout);
		return CLI_EXIT_OK;
	}
	if (!strcmp(argv[1], "up"))
		return cluster_up(ctx, dir, argc - 1, argv + 1);
	if (!strcmp(argv[1], "down"))
		return cluster_down(ctx, dir, argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cluster_status(ctx, dir, argc - 1, argv + 1);
	return cli_usage("cluster", "cluster: unknown subcommand '%s' (up, down or status)", argv[1]);
}
