/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * proc partition driver: a partition is a cgroup per hierarchy.
 *
 * Freeze hierarchy (index 0): cgroup v2 where a cgroup2 file system is
 * mounted (cgroup.freeze, cgroup.kill, cgroup.events), else the v1 freezer.
 * CPU hierarchy (index 1): the v1 cpuset hierarchy where mounted, else v2's
 * cpuset controller when the v2 root offers it (then it is the same group as
 * index 0), else none, and the spawned child pins itself with
 * sched_setaffinity() instead.
 *
 * CPU accounting: cpu.stat of the v2 group; with the v1 freezer,
 * cpuacct.usage of a v1 cpuacct group (index 2, made only where cpuacct is
 * mounted apart from the freezer and cpuset hierarchies).
 *
 * Process limit (the environment's pids_max, when not 0): pids.max of the
 * v2 group where the v2 root offers the pids controller (handed down level
 * by level, as cpuset), else of a v1 pids group (index 3, where pids is
 * mounted apart from the other hierarchies), else none.
 *
 * Gates (the slot dispatcher's hot path) keep the freeze files open: a
 * switch is one pwrite() and, for the wait, pread()s of cgroup.events
 * between short poll()s for its change notification (v1: re-reads of
 * freezer.state).  Gate ops touch no shared state, so they may run in
 * another thread than the other ops.
 *
 * A child spawned into a frozen partition stops before its exec until the
 * partition is thawed; spawn() then returns without the exec's outcome.
 *
 * Groups live at <mount>/<cgroup_base>/job.<id>, <cgroup_base> being
 * "hec/<cluster>/<node>" (the node group).  A process joins its job's groups
 * in the forked child before exec, so every descendant starts inside and
 * none can escape by forking early.
 *
 * Ops log nothing; on failure the caller's @why says what was being done,
 * for its one-line message (include/hec/partition.h).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <mntent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hec/common.h"
#include "hec/partition.h"
#include "partition/proc.h"

#include <linux/close_range.h>

extern char **environ;

enum freeze_kind { FREEZE_V2, FREEZE_V1 };
enum cpu_kind { CPU_NONE, CPU_V1, CPU_V2 };
/* Where CPU time is read: the group of hierarchy [i] (ACCT_V2: cpu.stat). */
enum acct_kind { ACCT_NONE, ACCT_V2, ACCT_V1_FREEZE, ACCT_V1_CPU, ACCT_V1_OWN };
/* Where the process limit (pids.max) is kept: a v1 pids hierarchy of its
 * own (index 3), the v2 group (index 0) where the v2 root offers pids and
 * the freeze group is v2, or nowhere (no limit, said at node_init). */
enum pids_kind { PIDS_NONE, PIDS_V1, PIDS_V2 };

#define NDIRS 4

/* Where the hierarchies are mounted on this host. */
struct layout {
	enum freeze_kind freeze;
	enum cpu_kind cpu;
	enum acct_kind acct;
	enum pids_kind pids;
	char freeze_root[PATH_MAX];
	char cpu_root[PATH_MAX];   /* CPU_V1 only */
	char acct_root[PATH_MAX];  /* ACCT_V1_OWN only */
	char pids_root[PATH_MAX];  /* PIDS_V1 only */
};

/* A partition: base.priv points back here. */
struct proc_part {
	struct hec_partition base;  /* first */
	struct layout lay;
	/* [0] freeze group, [1] v1 cpuset group or "", [2] v1 cpuacct group or "",
	 * [3] v1 pids group or "" */
	char dir[NDIRS][PATH_MAX];
	char node_dir[PATH_MAX];   /* v1 cpuset: the node group, to copy cpus/mems from */
	int pin;                   /* CPU_NONE with a CPU list: sched_setaffinity */
	cpu_set_t pin_set;
};

/* The freeze controls of one partition, held open (see the header). */
struct proc_gate {
	struct hec_gate base;      /* first: handed out as a struct hec_gate */
	enum freeze_kind kind;
	int ctl_fd;                /* v2 cgroup.freeze, v1 freezer.state (read/write) */
	int ev_fd;                 /* v2 cgroup.events, v1 -1 */
};

static int force_v1;

void hec_part_proc_force_v1(int on)
{
	force_v1 = on;
}

/* Where an op's reason for failing goes: its caller's @why (may be NULL). */
struct why {
	char *buf;
	size_t len;
};

static void set_why(struct why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct why *w, const char *fmt, ...)
{
	va_list ap;

	if (!w || !w->buf || !w->len)
		return;
	va_start(ap, fmt);
	vsnprintf(w->buf, w->len, fmt, ap);
	va_end(ap);
}

static struct proc_part *P(struct hec_partition *part)
{
	return part->priv;
}

/* ---- small file helpers (cgroup files want one write() per value) ---- */

static int write_str(const char *path, const char *s)
{
	size_t len = strlen(s);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, len);
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

static int join(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Write @file of group @dir, recording the context on failure. */
static int set_file(const char *dir, const char *file, const char *value, struct why *w)
{
	char path[PATH_MAX];
	int rc = join(path, sizeof(path), dir, file);

	if (!rc)
		rc = write_str(path, value);
	if (rc)
		set_why(w, "cgroup write '%s' to %s", value, path);
	return rc;
}

static int get_file(const char *dir, const char *file, char *buf, size_t len, struct why *w)
{
	char path[PATH_MAX];
	int rc = join(path, sizeof(path), dir, file);

	if (!rc)
		rc = read_str(path, buf, len);
	if (rc)
		set_why(w, "cgroup read %s", path);
	return rc;
}

/* mkdir that treats an existing group as success unless @excl. */
static int make_group(const char *dir, int excl, struct why *w)
{
	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno == EEXIST && !excl)
		return 0;
	set_why(w, "cgroup mkdir %s", dir);
	return -errno;
}

/* ---- discovery ---- */

/* Does @dir's @file (a cgroup v2 list: cgroup.controllers,
 * cgroup.subtree_control) name controller @name? */
static int list_has(const char *dir, const char *file, const char *name)
{
	char buf[512], *tok, *save = NULL;

	if (get_file(dir, file, buf, sizeof(buf), NULL))
		return 0;
	for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (!strcmp(tok, name))
			return 1;
	return 0;
}

static int controllers_have(const char *root, const char *name)
{
	return list_has(root, "cgroup.controllers", name);
}

static int detect(struct layout *lay, struct why *w)
{
	char v2[PATH_MAX] = "", v1_freezer[PATH_MAX] = "", v1_cpuset[PATH_MAX] = "";
	char v1_acct[PATH_MAX] = "", v1_pids[PATH_MAX] = "";
	struct mntent ent;
	char line[4 * PATH_MAX];
	FILE *f;

	memset(lay, 0, sizeof(*lay));
	f = setmntent("/proc/self/mounts", "re");
	if (!f) {
		set_why(w, "reading /proc/self/mounts");
		return -errno;
	}
	while (getmntent_r(f, &ent, line, sizeof(line))) {
		if (strlen(ent.mnt_dir) >= PATH_MAX)
			continue;
		if (!strcmp(ent.mnt_type, "cgroup2") && !force_v1) {
			/* /sys/fs/cgroup itself wins over any other cgroup2 mount. */
			if (!*v2 || !strcmp(ent.mnt_dir, "/sys/fs/cgroup"))
				strcpy(v2, ent.mnt_dir);
		} else if (!strcmp(ent.mnt_type, "cgroup")) {
			if (!*v1_freezer && hasmntopt(&ent, "freezer"))
				strcpy(v1_freezer, ent.mnt_dir);
			if (!*v1_cpuset && hasmntopt(&ent, "cpuset"))
				strcpy(v1_cpuset, ent.mnt_dir);
			if (!*v1_acct && hasmntopt(&ent, "cpuacct"))
				strcpy(v1_acct, ent.mnt_dir);
			if (!*v1_pids && hasmntopt(&ent, "pids"))
				strcpy(v1_pids, ent.mnt_dir);
		}
	}
	endmntent(f);

	if (*v2) {
		lay->freeze = FREEZE_V2;
		strcpy(lay->freeze_root, v2);
	} else if (*v1_freezer) {
		lay->freeze = FREEZE_V1;
		strcpy(lay->freeze_root, v1_freezer);
	} else {
		set_why(w, "no cgroup2 mount and no cgroup v1 freezer in /proc/self/mounts");
		return -ENODEV;
	}
	if (*v1_cpuset) {
		lay->cpu = CPU_V1;
		strcpy(lay->cpu_root, v1_cpuset);
	} else if (*v2 && controllers_have(v2, "cpuset")) {
		lay->cpu = CPU_V2;
	} else {
		lay->cpu = CPU_NONE;
	}
	if (lay->freeze == FREEZE_V2) {
		lay->acct = ACCT_V2; /* cpu.stat's usage_usec needs no controller */
	} else if (!*v1_acct) {
		lay->acct = ACCT_NONE;
	} else if (!strcmp(v1_acct, v1_freezer)) {
		lay->acct = ACCT_V1_FREEZE;
	} else if (lay->cpu == CPU_V1 && !strcmp(v1_acct, v1_cpuset)) {
		lay->acct = ACCT_V1_CPU;
	} else {
		lay->acct = ACCT_V1_OWN;
		strcpy(lay->acct_root, v1_acct);
	}
	if (lay->freeze == FREEZE_V2 && controllers_have(v2, "pids")) {
		lay->pids = PIDS_V2;
	} else if (*v1_pids && strcmp(v1_pids, v1_freezer) && strcmp(v1_pids, v1_cpuset) &&
		   strcmp(v1_pids, v1_acct)) {
		lay->pids = PIDS_V1;
		strcpy(lay->pids_root, v1_pids);
	} else {
		lay->pids = PIDS_NONE; /* (a pids controller sharing a v1 mount: not handled) */
	}
	return 0;
}

static int group_path(char *out, size_t len, const char *root, const char *base, long job)
{
	int n = job > 0 ? snprintf(out, len, "%s/%s/job.%ld", root, base, job)
			: snprintf(out, len, "%s/%s", root, base);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The cgroup base must be a plain relative path: it ends up in rmdir()s. */
static int check_env(const struct hec_partition_env *env, struct why *w)
{
	const char *b = env->cgroup_base, *p;

	if (!b || !*b || *b == '/')
		goto bad;
	/* No empty, "." or ".." component: the path must stay below the mount. */
	for (p = b; *p; ) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		p += n;
		if (*p == '/' && !*++p)
			goto bad;
	}
	return 0;
bad:
	set_why(w, "bad cgroup base '%s'", b ? b : "(null)");
	return -EINVAL;
}

/* ---- node groups ---- */

/*
 * v1 cpuset groups start with empty cpus/mems and refuse tasks until both
 * are set; give each level its parent's unless it already has some.
 */
static int v1_cpuset_inherit(const char *dir, const char *parent, int force_mems, struct why *w)
{
	char cur[4096], val[4096];
	int rc;

	rc = get_file(dir, "cpuset.cpus", cur, sizeof(cur), w);
	if (rc)
		return rc;
	if (!*cur) {
		rc = get_file(parent, "cpuset.cpus", val, sizeof(val), w);
		if (!rc)
			rc = set_file(dir, "cpuset.cpus", val, w);
		if (rc)
			return rc;
	}
	rc = get_file(dir, "cpuset.mems", cur, sizeof(cur), w);
	if (rc)
		return rc;
	if (!*cur || force_mems) {
		rc = get_file(parent, "cpuset.mems", val, sizeof(val), w);
		if (!rc && strcmp(val, cur))
			rc = set_file(dir, "cpuset.mems", val, w);
	}
	return rc;
}

/*
 * Create every level of @base under @root.  @each is called with every
 * level's directory and its parent, after creation (or when it exists).
 */
static int make_levels(const char *root, const char *base,
		       int (*each)(const char *dir, const char *parent, int last, void *arg, struct why *w),
		       void *arg, struct why *w)
{
	char dir[PATH_MAX], parent[PATH_MAX];
	const char *p = base;
	int rc;

	if (strlen(root) >= sizeof(parent))
		return -ENAMETOOLONG;
	strcpy(parent, root);
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t upto = slash ? (size_t)(slash - base) : strlen(base);
		int n = snprintf(dir, sizeof(dir), "%s/%.*s", root, (int)upto, base);

		if (n < 0 || (size_t)n >= sizeof(dir))
			return -ENAMETOOLONG;
		rc = make_group(dir, 0, w);
		if (rc)
			return rc;
		if (each) {
			rc = each(dir, parent, !slash, arg, w);
			if (rc)
				return rc;
		}
		if (!slash)
			return 0;
		strcpy(parent, dir);
		p = slash + 1;
	}
}

static int v1_level(const char *dir, const char *parent, int last, void *arg, struct why *w)
{
	const char *cpus = arg;
	int rc;

	if (!last)
		return v1_cpuset_inherit(dir, parent, 0, w);
	/* The node group: its own CPU list, the parent's memory nodes. */
	if (cpus && *cpus) {
		char cur[4096];

		rc = get_file(dir, "cpuset.cpus", cur, sizeof(cur), w);
		if (!rc && strcmp(cur, cpus))
			rc = set_file(dir, "cpuset.cpus", cpus, w);
		if (rc)
			return rc;
	}
	return v1_cpuset_inherit(dir, parent, 1, w);
}

/* What the levels of the v2 freeze hierarchy need handed down. */
struct v2_need {
	const char *cpus;   /* NULL: no cpuset */
	int pids;
};

/* The parent must hand controller @ctl down before @dir has its files. */
static int v2_hand_down(const char *parent, const char *ctl, struct why *w)
{
	char add[32];

	if (list_has(parent, "cgroup.subtree_control", ctl))
		return 0;
	hec_fmt(add, sizeof(add), "+%s", ctl);
	return set_file(parent, "cgroup.subtree_control", add, w);
}

static int v2_level(const char *dir, const char *parent, int last, void *arg, struct why *w)
{
	const struct v2_need *need = arg;
	const char *cpus = need->cpus;
	char cur[4096];
	int rc;

	if (need->pids) {
		rc = v2_hand_down(parent, "pids", w);
		if (rc)
			return rc;
	}
	if (!cpus)
		return 0;
	rc = v2_hand_down(parent, "cpuset", w);
	if (rc)
		return rc;
	if (last && *cpus) {
		rc = get_file(dir, "cpuset.cpus", cur, sizeof(cur), w);
		if (!rc && strcmp(cur, cpus))
			rc = set_file(dir, "cpuset.cpus", cpus, w);
	}
	return rc;
}

static int node_setup(const struct hec_partition_env *env, const struct layout *lay, struct why *w)
{
	char *cpus = (char *)(env->cpus ? env->cpus : "");
	struct v2_need need = { lay->cpu == CPU_V2 ? cpus : NULL, lay->pids == PIDS_V2 };
	int rc;

	rc = make_levels(lay->freeze_root, env->cgroup_base,
			 need.cpus || need.pids ? v2_level : NULL, &need, w);
	if (rc)
		return rc;
	if (lay->cpu == CPU_V1)
		rc = make_levels(lay->cpu_root, env->cgroup_base, v1_level, cpus, w);
	if (!rc && lay->acct == ACCT_V1_OWN)
		rc = make_levels(lay->acct_root, env->cgroup_base, NULL, NULL, w);
	if (!rc && lay->pids == PIDS_V1)
		rc = make_levels(lay->pids_root, env->cgroup_base, NULL, NULL, w);
	return rc;
}

static int proc_node_init(const struct hec_partition_env *env, char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct layout lay;
	char dir[PATH_MAX];
	int rc;

	rc = check_env(env, w);
	if (rc)
		return rc;
	rc = detect(&lay, w);
	if (rc)
		return rc;
	if (env->cpus && *env->cpus) {
		struct hec_cpuset set;

		if (hec_cpuset_parse(env->cpus, &set) <= 0) {
			set_why(w, "CPU list '%s'", env->cpus);
			return -EINVAL;
		}
	}
	rc = node_setup(env, &lay, w);
	if (rc)
		return rc;
	if (lay.freeze == FREEZE_V2) {
		/* cgroup.freeze came with Linux 5.2; without it nothing can be frozen. */
		char file[PATH_MAX];

		rc = group_path(dir, sizeof(dir), lay.freeze_root, env->cgroup_base, 0);
		if (!rc)
			rc = join(file, sizeof(file), dir, "cgroup.freeze");
		if (!rc && access(file, F_OK)) {
			set_why(w, "cgroup v2 without %s (kernel older than 5.2?)", file);
			return -ENODEV;
		}
	}
	return rc;
}

/* ---- partitions ---- */

static int part_new(const struct hec_partition_env *env, long job, const struct layout *lay,
		    struct proc_part **out, struct why *w)
{
	struct proc_part *p;
	int rc;

	if (job <= 0) {
		set_why(w, "job id %ld", job);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->base.ops = &hec_partition_proc_ops;
	p->base.priv = p;
	p->base.job = job;
	p->lay = *lay;
	rc = group_path(p->dir[0], sizeof(p->dir[0]), lay->freeze_root, env->cgroup_base, job);
	if (!rc && lay->cpu == CPU_V1) {
		rc = group_path(p->dir[1], sizeof(p->dir[1]), lay->cpu_root, env->cgroup_base, job);
		if (!rc)
			rc = group_path(p->node_dir, sizeof(p->node_dir), lay->cpu_root,
					env->cgroup_base, 0);
	}
	if (!rc && lay->acct == ACCT_V1_OWN)
		rc = group_path(p->dir[2], sizeof(p->dir[2]), lay->acct_root, env->cgroup_base, job);
	if (!rc && lay->pids == PIDS_V1)
		rc = group_path(p->dir[3], sizeof(p->dir[3]), lay->pids_root, env->cgroup_base, job);
	if (!rc && lay->cpu == CPU_NONE && env->cpus && *env->cpus) {
		struct hec_cpuset set;

		if (hec_cpuset_parse(env->cpus, &set) <= 0) {
			set_why(w, "CPU list '%s'", env->cpus);
			rc = -EINVAL;
		} else {
			hec_cpuset_to_cpu_set(&set, &p->pin_set);
			p->pin = 1;
		}
	}
	if (rc) {
		if (rc == -ENAMETOOLONG)
			set_why(w, "cgroup path of job %ld under %s", job, env->cgroup_base);
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

/* What create and open both need: the environment checked, the hierarchies
 * found, and the handle with the partition's paths. */
static int part_prepare(const struct hec_partition_env *env, long job, struct layout *lay,
			struct proc_part **p, struct why *w)
{
	int rc = check_env(env, w);

	if (!rc)
		rc = detect(lay, w);
	if (!rc)
		rc = part_new(env, job, lay, p, w);
	return rc;
}

/* make_group(), making the node's group again first if it went away (a
 * sweep, a reboot). */
static int make_job_group(const struct hec_partition_env *env, const struct layout *lay,
			  const char *dir, int excl, struct why *w)
{
	int rc = make_group(dir, excl, w);

	if (rc == -ENOENT) {
		rc = node_setup(env, lay, w);
		if (!rc)
			rc = make_group(dir, excl, w);
	}
	return rc;
}

static int proc_create(const struct hec_partition_env *env, long job, struct hec_partition **out,
		       char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p;
	struct layout lay;
	int rc;

	rc = part_prepare(env, job, &lay, &p, w);
	if (rc)
		return rc;

	rc = make_job_group(env, &lay, p->dir[0], 1, w);
	if (rc)
		goto err_free;
	if (lay.cpu == CPU_V1) {
		rc = make_job_group(env, &lay, p->dir[1], 0, w);
		if (rc)
			goto err_rmdir_freeze;
		/* v1 needs both set explicitly before it takes any task. */
		rc = v1_cpuset_inherit(p->dir[1], p->node_dir, 1, w);
		if (rc)
			goto err_rmdir_cpu;
	}
	if (*p->dir[2]) {
		rc = make_job_group(env, &lay, p->dir[2], 0, w);
		if (rc)
			goto err_rmdir_cpu;
	}
	if (*p->dir[3]) {
		rc = make_job_group(env, &lay, p->dir[3], 0, w);
		if (rc)
			goto err_rmdir_acct;
	}
	if (env->pids_max > 0 && lay.pids != PIDS_NONE) {
		char max[32];

		hec_fmt(max, sizeof(max), "%ld", env->pids_max);
		rc = set_file(lay.pids == PIDS_V1 ? p->dir[3] : p->dir[0], "pids.max", max, w);
		if (rc)
			goto err_rmdir_pids;
	}
	*out = &p->base;
	return 0;

err_rmdir_pids:
	if (*p->dir[3])
		rmdir(p->dir[3]);
err_rmdir_acct:
	if (*p->dir[2])
		rmdir(p->dir[2]);
err_rmdir_cpu:
	if (*p->dir[1])
		rmdir(p->dir[1]);
err_rmdir_freeze:
	rmdir(p->dir[0]);
err_free:
	free(p);
	return rc;
}

static int proc_open(const struct hec_partition_env *env, long job, struct hec_partition **out,
		     char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p;
	struct layout lay;
	int rc;

	rc = part_prepare(env, job, &lay, &p, w);
	if (rc)
		return rc;
	/* Half-made partitions (only the cpuset group) count: they need removing too. */
	if (access(p->dir[0], F_OK) && (!*p->dir[1] || access(p->dir[1], F_OK)) &&
	    (!*p->dir[2] || access(p->dir[2], F_OK)) && (!*p->dir[3] || access(p->dir[3], F_OK))) {
		set_why(w, "cgroup %s", p->dir[0]);
		free(p);
		return -ENOENT;
	}
	*out = &p->base;
	return 0;
}

static int list_dir(const char *dir, long *jobs, int n, int max, struct why *w)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d) {
		if (errno == ENOENT)
			return n;
		set_why(w, "cgroup list %s", dir);
		return -errno;
	}
	while ((de = readdir(d))) {
		long id;
		int i;

		if (strncmp(de->d_name, "job.", 4) ||
		    hec_parse_long(de->d_name + 4, 1, 2147483647L, &id))
			continue;
		for (i = 0; i < n && jobs[i] != id; i++)
			;
		if (i == n && n < max)
			jobs[n++] = id;
	}
	closedir(d);
	return n;
}

static int proc_list(const struct hec_partition_env *env, long *jobs, int max, char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	char dir[PATH_MAX];
	struct layout lay;
	int rc, n;

	rc = check_env(env, w);
	if (!rc)
		rc = detect(&lay, w);
	if (!rc)
		rc = group_path(dir, sizeof(dir), lay.freeze_root, env->cgroup_base, 0);
	if (rc)
		return rc;
	n = list_dir(dir, jobs, 0, max, w);
	if (n >= 0 && lay.cpu == CPU_V1) {
		rc = group_path(dir, sizeof(dir), lay.cpu_root, env->cgroup_base, 0);
		n = rc ? rc : list_dir(dir, jobs, n, max, w);
	}
	if (n >= 0 && lay.acct == ACCT_V1_OWN) {
		rc = group_path(dir, sizeof(dir), lay.acct_root, env->cgroup_base, 0);
		n = rc ? rc : list_dir(dir, jobs, n, max, w);
	}
	if (n >= 0 && lay.pids == PIDS_V1) {
		rc = group_path(dir, sizeof(dir), lay.pids_root, env->cgroup_base, 0);
		n = rc ? rc : list_dir(dir, jobs, n, max, w);
	}
	return n;
}

/* ---- processes ---- */

/* Append the pids of @dir's cgroup.procs to @pids (deduplicated). */
static int read_pids(const char *dir, pid_t **pids, int *n, int *cap, struct why *w)
{
	char path[PATH_MAX], line[32];
	FILE *f;
	int rc = join(path, sizeof(path), dir, "cgroup.procs");

	if (rc)
		return rc;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		set_why(w, "cgroup read %s", path);
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		pid_t pid = (pid_t)atol(line);
		int i;

		if (pid <= 0)
			continue;
		for (i = 0; i < *n && (*pids)[i] != pid; i++)
			;
		if (i < *n)
			continue;
		if (*n == *cap) {
			int ncap = *cap ? *cap * 2 : 64;
			pid_t *np = realloc(*pids, (size_t)ncap * sizeof(*np));

			if (!np) {
				fclose(f);
				return -ENOMEM;
			}
			*pids = np;
			*cap = ncap;
		}
		(*pids)[(*n)++] = pid;
	}
	fclose(f);
	return 0;
}

static int all_pids(struct proc_part *p, pid_t **pids, struct why *w)
{
	int n = 0, cap = 0, rc;

	*pids = NULL;
	rc = read_pids(p->dir[0], pids, &n, &cap, w);
	if (!rc && *p->dir[1])
		rc = read_pids(p->dir[1], pids, &n, &cap, w);
	if (!rc && *p->dir[2])
		rc = read_pids(p->dir[2], pids, &n, &cap, w);
	if (!rc && *p->dir[3])
		rc = read_pids(p->dir[3], pids, &n, &cap, w);
	if (rc) {
		free(*pids);
		*pids = NULL;
		return rc;
	}
	return n;
}

static int proc_nprocs(struct hec_partition *part, char *why, size_t len)
{
	struct why ws = { why, len };
	pid_t *pids;
	int n = all_pids(P(part), &pids, &ws);

	free(pids);
	return n;
}

static int freeze(struct proc_part *p, struct why *w)
{
	if (p->lay.freeze == FREEZE_V2)
		return set_file(p->dir[0], "cgroup.freeze", "1", w);
	return set_file(p->dir[0], "freezer.state", "FROZEN", w);
}

static int thaw(struct proc_part *p, struct why *w)
{
	if (p->lay.freeze == FREEZE_V2)
		return set_file(p->dir[0], "cgroup.freeze", "0", w);
	return set_file(p->dir[0], "freezer.state", "THAWED", w);
}

static int freeze_op(struct hec_partition *part, char *why, size_t len)
{
	struct why w = { why, len };

	return freeze(P(part), &w);
}

static int thaw_op(struct hec_partition *part, char *why, size_t len)
{
	struct why w = { why, len };

	return thaw(P(part), &w);
}

static int proc_kill(struct hec_partition *part, char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p = P(part);
	char path[PATH_MAX];
	int pass, rc;

	/* cgroup.kill (5.14) kills the whole group atomically, forks included. */
	if (p->lay.freeze == FREEZE_V2 && !join(path, sizeof(path), p->dir[0], "cgroup.kill") &&
	    access(path, F_OK) == 0) {
		rc = write_str(path, "1");
		if (rc && rc != -ENOENT) {
			set_why(w, "cgroup write '1' to %s", path);
			return rc;
		}
	}
	/*
	 * Otherwise (and for stragglers in the cpuset group): freeze so nothing
	 * forks while we read the list, SIGKILL everyone, thaw so the signals
	 * are delivered; again until the list reads empty (bounded: callers
	 * poll nprocs() and call again).
	 */
	for (pass = 0; pass < 8; pass++) {
		pid_t *pids;
		int n = all_pids(p, &pids, w), i, frozen;

		if (n <= 0) {
			free(pids);
			return n;
		}
		frozen = freeze(p, NULL) == 0;
		for (i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		free(pids);
		if (frozen)
			thaw(p, NULL);
		usleep(1000);
	}
	return 0;
}

static int proc_destroy(struct hec_partition *part, char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p = P(part);
	int rc = 0;

	for (int i = NDIRS - 1; i >= 0; i--) {
		if (!*p->dir[i])
			continue;
		if (rmdir(p->dir[i]) && errno != ENOENT) {
			set_why(w, "cgroup rmdir %s", p->dir[i]);
			if (!rc)
				rc = -errno;
		}
	}
	return rc;
}

static void proc_release(struct hec_partition *part)
{
	free(P(part));
}

static const char *proc_path(struct hec_partition *part, int i)
{
	struct proc_part *p = P(part);

	if (i == 0)
		return p->dir[0];
	if (i == 1) {
		if (p->lay.cpu == CPU_V1)
			return p->dir[1];
		if (p->lay.cpu == CPU_V2)
			return p->dir[0];
	}
	return NULL;
}

/* ---- spawn ---- */

/* Only async-signal-safe calls below, up to exec: the child of a fork. */

static void __attribute__((noreturn)) child_fail(int errfd, int err)
{
	sigset_t pipe_sig;
	ssize_t n;

	/* The parent may have stopped listening (a frozen partition, see
	 * proc_spawn): exit 127 rather than die of SIGPIPE. */
	sigemptyset(&pipe_sig);
	sigaddset(&pipe_sig, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_sig, NULL);
	do
		n = write(errfd, &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

static int join_group(const char *dir, const char *pidtext)
{
	char path[PATH_MAX];
	size_t dl = strlen(dir);
	int fd;

	if (dl + sizeof("/cgroup.procs") > sizeof(path))
		return ENAMETOOLONG;
	memcpy(path, dir, dl);
	memcpy(path + dl, "/cgroup.procs", sizeof("/cgroup.procs"));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (write(fd, pidtext, strlen(pidtext)) < 0) {
		int e = errno;

		close(fd);
		return e;
	}
	close(fd);
	return 0;
}

static void fmt_pid(char *buf, pid_t pid)
{
	char tmp[16];
	int n = 0, i = 0;

	do
		tmp[n++] = (char)('0' + pid % 10);
	while ((pid /= 10) > 0);
	while (n)
		buf[i++] = tmp[--n];
	buf[i] = 0;
}

static void __attribute__((noreturn))
spawn_child(struct proc_part *p, const struct hec_spawn_req *req, int errfd)
{
	int src[3] = { req->stdin_fd, req->stdout_fd, req->stderr_fd };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	char pidtext[16];
	sigset_t none;
	int err, i;

	/* Handlers of the parent (libevent's) must not run here. */
	for (i = 1; i < NSIG; i++)
		if (i != SIGKILL && i != SIGSTOP)
			sigaction(i, &dfl, NULL);

	fmt_pid(pidtext, getpid());
	for (i = 0; i < NDIRS; i++) {
		if (!*p->dir[i])
			continue;
		err = join_group(p->dir[i], pidtext);
		if (err)
			child_fail(errfd, err);
	}
	if (p->pin && sched_setaffinity(0, sizeof(p->pin_set), &p->pin_set))
		child_fail(errfd, errno);
	if (setsid() < 0)
		child_fail(errfd, errno);

	/* Move the sources above 2 first so that no dup2() clobbers another source. */
	for (i = 0; i < 3; i++) {
		int fd = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 3)
				     : open("/dev/null", (i ? O_WRONLY : O_RDONLY) | O_CLOEXEC);

		if (fd < 0)
			child_fail(errfd, errno);
		if (src[i] < 0 && fd < 3) {
			int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);

			if (hi < 0)
				child_fail(errfd, errno);
			fd = hi;
		}
		src[i] = fd;
	}
	for (i = 0; i < 3; i++)
		if (dup2(src[i], i) < 0)
			child_fail(errfd, errno);
	/* Whatever the parent forgot to mark close-on-exec stays out of the job. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

	if (getuid() == 0 && (req->uid != getuid() || req->gid != getgid())) {
		if (hec_become_user(req->uid, req->gid, req->groups))
			child_fail(errfd, errno);
	} else if (req->uid != geteuid()) {
		child_fail(errfd, EPERM);
	}
	/* As the user: a directory it may not enter is its error, not ours. */
	if (chdir(req->cwd ? req->cwd : "/"))
		child_fail(errfd, errno);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* execvp() searches the PATH of environ: make that the job's. */
	environ = (char **)req->envp;
	execvp(req->argv[0], (char *const *)req->argv);
	child_fail(errfd, errno);
}

/* How often a spawn waiting for its child's exec checks for a freeze. */
#define SPAWN_FREEZE_CHECK_MS 5

/* Is the partition frozen or asked to be (its processes cannot run)? */
static int freeze_asked(struct proc_part *p)
{
	char buf[32];

	if (p->lay.freeze == FREEZE_V2)
		return get_file(p->dir[0], "cgroup.freeze", buf, sizeof(buf), NULL) == 0 && buf[0] == '1';
	return get_file(p->dir[0], "freezer.state", buf, sizeof(buf), NULL) == 0 &&
	       strcmp(buf, "THAWED") != 0;
}

static int proc_spawn(struct hec_partition *part, const struct hec_spawn_req *req, pid_t *out,
		      char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p = P(part);
	sigset_t all, old;
	int pipefd[2], err = 0, rc = 0;
	ssize_t n;
	pid_t pid;

	if (!req->argv || !req->argv[0] || !req->envp)
		return -EINVAL;
	if (pipe2(pipefd, O_CLOEXEC)) {
		set_why(w, "pipe for job %ld", p->base.job);
		return -errno;
	}
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		spawn_child(p, req, pipefd[1]);
	}
	if (pid < 0)
		rc = -errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pipefd[1]);
	if (rc) {
		close(pipefd[0]);
		set_why(w, "fork for job %ld", p->base.job);
		return rc;
	}
	/*
	 * EOF: exec happened (the pipe was close-on-exec); otherwise an errno.
	 * In a partition that is frozen (the gang dispatcher's off-slot, or a
	 * suspended job) the child stops where it joined the group, before
	 * the exec, until the partition is thawed: then return at once rather
	 * than stall the caller for a slot or for ever; a failure to exec shows
	 * later, as exit status 127.
	 */
	for (;;) {
		struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
		int r = poll(&pfd, 1, SPAWN_FREEZE_CHECK_MS);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			if (freeze_asked(p)) {
				close(pipefd[0]);
				*out = pid;
				return 0;
			}
			continue;
		}
		do
			n = read(pipefd[0], &err, sizeof(err));
		while (n < 0 && errno == EINTR);
		break;
	}
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(err) && err) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		set_why(w, "start %s in job %ld", req->argv[0], p->base.job);
		return -err;
	}
	*out = pid;
	return 0;
}

/* ---- node teardown ---- */

static int remove_levels(const char *root, const char *base, struct why *w)
{
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/%s", root, base);
	size_t rootlen = strlen(root);

	if (n < 0 || (size_t)n >= sizeof(dir))
		return -ENAMETOOLONG;
	while (strlen(dir) > rootlen) {
		char *slash;

		if (rmdir(dir) && errno != ENOENT) {
			if (errno == EBUSY || errno == ENOTEMPTY)
				return 0;
			set_why(w, "cgroup rmdir %s", dir);
			return -errno;
		}
		slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = 0;
	}
	return 0;
}

static int proc_node_fini(const struct hec_partition_env *env, char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct layout lay;
	int rc;

	rc = check_env(env, w);
	if (!rc)
		rc = detect(&lay, w);
	if (rc)
		return rc;
	rc = remove_levels(lay.freeze_root, env->cgroup_base, w);
	if (lay.cpu == CPU_V1) {
		int rc2 = remove_levels(lay.cpu_root, env->cgroup_base, w);

		if (!rc)
			rc = rc2;
	}
	if (lay.acct == ACCT_V1_OWN) {
		int rc2 = remove_levels(lay.acct_root, env->cgroup_base, w);

		if (!rc)
			rc = rc2;
	}
	if (lay.pids == PIDS_V1) {
		int rc2 = remove_levels(lay.pids_root, env->cgroup_base, w);

		if (!rc)
			rc = rc2;
	}
	return rc;
}

/* ---- CPU time ---- */

static int proc_cpu_usage(struct hec_partition *part, unsigned long long *usec, char *why,
			  size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p = P(part);
	char buf[1024], *v;
	int rc;

	switch (p->lay.acct) {
	case ACCT_V2:
		rc = get_file(p->dir[0], "cpu.stat", buf, sizeof(buf), w);
		if (rc)
			return rc;
		v = strstr(buf, "usage_usec ");
		if (!v || (v != buf && v[-1] != '\n')) {
			set_why(w, "cgroup %s/cpu.stat without usage_usec", p->dir[0]);
			return -EIO;
		}
		*usec = strtoull(v + strlen("usage_usec "), NULL, 10);
		return 0;
	case ACCT_V1_FREEZE:
	case ACCT_V1_CPU:
	case ACCT_V1_OWN: {
		int i = p->lay.acct == ACCT_V1_FREEZE ? 0 : p->lay.acct == ACCT_V1_CPU ? 1 : 2;

		rc = get_file(p->dir[i], "cpuacct.usage", buf, sizeof(buf), w);
		if (rc)
			return rc;
		*usec = strtoull(buf, NULL, 10) / 1000; /* ns */
		return 0;
	}
	case ACCT_NONE:
		break;
	}
	set_why(w, "no cpu accounting for job %ld (cgroup v1 without cpuacct)", p->base.job);
	return -EOPNOTSUPP;
}

/* ---- gates ---- */

static int proc_gate_open(struct hec_partition *part, struct hec_gate **out, char *why, size_t len)
{
	struct why ws = { why, len }, *w = &ws;
	struct proc_part *p = P(part);
	char path[PATH_MAX];
	struct proc_gate *g;
	int rc;

	g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->base.ops = &hec_partition_proc_ops;
	g->base.immediate = 1;
	g->kind = p->lay.freeze;
	g->ctl_fd = g->ev_fd = -1;
	rc = join(path, sizeof(path), p->dir[0],
		  g->kind == FREEZE_V2 ? "cgroup.freeze" : "freezer.state");
	if (!rc) {
		g->ctl_fd = open(path, O_RDWR | O_CLOEXEC);
		if (g->ctl_fd < 0)
			rc = -errno;
	}
	if (!rc && g->kind == FREEZE_V2) {
		rc = join(path, sizeof(path), p->dir[0], "cgroup.events");
		if (!rc) {
			g->ev_fd = open(path, O_RDONLY | O_CLOEXEC);
			if (g->ev_fd < 0)
				rc = -errno;
		}
	}
	if (rc) {
		set_why(w, "cgroup open %s", path);
		goto err_close;
	}
	*out = &g->base;
	return 0;

err_close:
	if (g->ctl_fd >= 0)
		close(g->ctl_fd);
	free(g);
	return rc;
}

static int proc_gate_set(struct hec_gate *gate, int frozen)
{
	struct proc_gate *g = (struct proc_gate *)gate;
	const char *v = g->kind == FREEZE_V2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED");
	size_t len = strlen(v);
	ssize_t n;

	do
		n = pwrite(g->ctl_fd, v, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* 1 if the group is in the state asked for, 0 if not (yet), or -errno. */
static int gate_reached(struct proc_gate *g, int frozen)
{
	char buf[128];
	const char *v;
	ssize_t n;

	do
		n = pread(g->kind == FREEZE_V2 ? g->ev_fd : g->ctl_fd, buf, sizeof(buf) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (g->kind == FREEZE_V1) /* FREEZING while on its way */
		return !strncmp(buf, frozen ? "FROZEN" : "THAWED", 6);
	v = strstr(buf, "frozen ");
	if (!v)
		return -EIO;
	return (v[7] == '1') == !!frozen;
}

/*
 * Polling steps of gate_wait(): a busy task freezes in a few hundred
 * microseconds, but cgroup.events notifies at most once per 10 ms per group
 * (the kernel rate-limits cgroup_file_notify()), and a group switched every
 * slot hits that limit all the time.  So we wait for the notification
 * only up to a short step and re-read: fine steps first, coarser later.
 */
#define GATE_STEP_NS 50000LL          /* while the wait is young */
#define GATE_STEP_FINE_FOR_NS 2000000LL
#define GATE_STEP_MAX_NS 1000000LL

static int proc_gate_wait(struct hec_gate *gate, int frozen, long timeout_us)
{
	struct proc_gate *g = (struct proc_gate *)gate;
	int64_t start = mono_ns();
	int64_t deadline = start + (int64_t)(timeout_us > 0 ? timeout_us : 0) * 1000;
	int64_t step = GATE_STEP_NS;

	for (;;) {
		int rc = gate_reached(g, frozen);
		int64_t now, left, nap;
		struct timespec ts;

		if (rc)
			return rc < 0 ? rc : 0;
		now = mono_ns();
		left = deadline - now;
		if (left <= 0)
			return -ETIMEDOUT;
		if (now - start >= GATE_STEP_FINE_FOR_NS && step < GATE_STEP_MAX_NS)
			step *= 2;
		nap = step < left ? step : left;
		ts.tv_sec = nap / 1000000000;
		ts.tv_nsec = nap % 1000000000;
		if (g->kind == FREEZE_V2) {
			/*
			 * The read above synced our view of cgroup.events, so
			 * POLLPRI means a change after it: no lost wakeup.
			 */
			struct pollfd pfd = { .fd = g->ev_fd, .events = POLLPRI };

			if (ppoll(&pfd, 1, &ts, NULL) < 0 && errno != EINTR)
				return -errno;
		} else {
			/* The v1 freezer notifies nobody: re-read. */
			nanosleep(&ts, NULL);
		}
	}
}

/* What cgroup.freeze (v2) or freezer.state (v1: FREEZING or FROZEN) says
 * was asked. */
static int proc_gate_asked(struct hec_gate *gate)
{
	struct proc_gate *g = (struct proc_gate *)gate;
	char buf[16];
	ssize_t n;

	do
		n = pread(g->ctl_fd, buf, sizeof(buf) - 1, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (g->kind == FREEZE_V2)
		return buf[0] == '1' ? 1 : buf[0] == '0' ? 0 : -EIO;
	return !strncmp(buf, "THAWED", 6) ? 0 : 1;
}

static void proc_gate_close(struct hec_gate *gate)
{
	struct proc_gate *g = (struct proc_gate *)gate;

	if (!g)
		return;
	close(g->ctl_fd);
	if (g->ev_fd >= 0)
		close(g->ev_fd);
	free(g);
}

const struct hec_partition_ops hec_partition_proc_ops = {
	.name = "proc",
	.node_init = proc_node_init,
	.create = proc_create,
	.open = proc_open,
	.list = proc_list,
	.spawn = proc_spawn,
	.nprocs = proc_nprocs,
	.node_fini = proc_node_fini,
	.freeze = freeze_op,
	.thaw = thaw_op,
	.kill = proc_kill,
	.destroy = proc_destroy,
	.release = proc_release,
	.path = proc_path,
	.cpu_usage = proc_cpu_usage,
	.gate_open = proc_gate_open,
	.gate_set = proc_gate_set,
	.gate_wait = proc_gate_wait,
	.gate_close = proc_gate_close,
	.gate_asked = proc_gate_asked,
};
