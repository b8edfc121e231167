/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libhecckpt: application-assisted checkpoints of MPI programs
 * (include/hec/hecckpt.h; the agent protocol is in hecckpt_agent.c).
 *
 * Every collective call ends with the ranks agreeing on one outcome: a
 * failure of any rank becomes the failure of all, with the sentence of the
 * lowest failing rank (agree()).  HDF5 calls that parallel HDF5 wants
 * collective are made by every rank in the same order whatever happened
 * locally; only the checks that differ between ranks (counts, checksums)
 * are kept aside until the next agreement.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

#include "hec/common.h" /* hec_name_ok */
#include "hec/hecckpt.h"
#include "ckpt/hecckpt_int.h"
#include "rdma/xxh3.h"

#define FORMAT "hecckpt 1"
#define DEFAULT_TIMEOUT_S 60

enum mode { MODE_NONE, MODE_STANDALONE, MODE_AGENT };

struct kind {
	MPI_Datatype mpi;
	const char *name;
	size_t size;
};

/* The supported MPI types; h5type() gives the HDF5 type of each. */
static const struct kind kinds[] = {
	{ MPI_CHAR, "MPI_CHAR", sizeof(char) },
	{ MPI_BYTE, "MPI_BYTE", 1 },
	{ MPI_INT, "MPI_INT", sizeof(int) },
	{ MPI_UNSIGNED, "MPI_UNSIGNED", sizeof(unsigned) },
	{ MPI_LONG, "MPI_LONG", sizeof(long) },
	{ MPI_LONG_LONG, "MPI_LONG_LONG", sizeof(long long) },
	{ MPI_UNSIGNED_LONG_LONG, "MPI_UNSIGNED_LONG_LONG", sizeof(unsigned long long) },
	{ MPI_FLOAT, "MPI_FLOAT", sizeof(float) },
	{ MPI_DOUBLE, "MPI_DOUBLE", sizeof(double) },
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static hid_t h5type(const struct kind *k)
{
	switch (k - kinds) {
	case 0: return H5T_NATIVE_CHAR;
	case 1: return H5T_NATIVE_UCHAR;
	case 2: return H5T_NATIVE_INT;
	case 3: return H5T_NATIVE_UINT;
	case 4: return H5T_NATIVE_LONG;
	case 5: return H5T_NATIVE_LLONG;
	case 6: return H5T_NATIVE_ULLONG;
	case 7: return H5T_NATIVE_FLOAT;
	default: return H5T_NATIVE_DOUBLE;
	}
}

struct entry {
	char name[HECCKPT_NAME_MAX + 1];
	void *ptr;
	size_t count;
	const struct kind *kind;
};

/* What rank 0 read from the environment, broadcast by hecckpt_init. */
struct setup {
	int rc;
	int mode;
	int timeout_s;
	long long job;
	long long restore_epoch; /* HEC_CKPT_EPOCH, 0: unset */
	char dir[PATH_MAX];
	char restore[PATH_MAX];  /* "": no restore */
	char why[HECCKPT_ERRLEN];
};

static struct {
	int init;
	MPI_Comm comm;
	int rank, size;
	struct setup env;
	long long last_epoch;    /* standalone numbering */
	struct hecckpt_agent *agent; /* rank 0 under hec */
	struct entry *e;
	size_t n, cap;
} st;

static char errbuf[HECCKPT_ERRLEN];

char *hecckpt_errbuf(void)
{
	return errbuf;
}

int hecckpt_fail(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	/* one line, whatever MPI or HDF5 put in their messages */
	for (char *c = errbuf; *c; c++)
		if ((unsigned char)*c < ' ')
			*c = ' ';
	return rc;
}

const char *hecckpt_last_error(void)
{
	return errbuf;
}

const char *hecckpt_strerror(int rc)
{
	switch (rc) {
	case 0: return "success";
	case -ENOTSUP: return "checkpoints are not available (not running under hec, or an unsupported type)";
	case -EINVAL: return "invalid argument, or the ranks or the checkpoint file disagree";
	case -EMSGSIZE: return "an array's count differs from the checkpoint's";
	case -EIO: return "the checkpoint could not be written or read, or the agent refused it";
	case -ENOENT: return "no such checkpoint file or protected array";
	case -EPIPE: return "the connection to the hec agent is gone";
	case -ETIMEDOUT: return "the hec agent did not answer in time";
	case -EPROTO: return "the hec agent broke the checkpoint protocol";
	case -ECANCELED: return "hec cancelled the checkpoint";
	case -EALREADY: return "already initialised";
	default: return rc < 0 ? strerror(-rc) : "not an error code";
	}
}

/* Every rank gets the failure @rc of rank @first, with its sentence. */
static int tell_from(int first, int rc)
{
	MPI_Bcast(&rc, 1, MPI_INT, first, st.comm);
	MPI_Bcast(errbuf, sizeof(errbuf), MPI_CHAR, first, st.comm);
	return rc;
}

/* The outcome of a collective step: every rank gets the failure of the
 * lowest failing rank, with its sentence. */
static int agree(int rc)
{
	int me = rc < 0 ? st.rank : st.size, first;

	MPI_Allreduce(&me, &first, 1, MPI_INT, MPI_MIN, st.comm);
	return first == st.size ? 0 : tell_from(first, rc);
}

/* Rank 0 decided @rc: tell every rank, with the sentence on failure. */
static int from_root(int rc)
{
	MPI_Bcast(&rc, 1, MPI_INT, 0, st.comm);
	if (rc < 0)
		MPI_Bcast(errbuf, sizeof(errbuf), MPI_CHAR, 0, st.comm);
	return rc;
}

/* HDF5's own account of its last failure: the innermost error's
 * function and description. */
static herr_t h5_walk(unsigned n, const H5E_error2_t *e, void *data)
{
	if (n == 0 && e->desc)
		snprintf(data, 256, "%s: %s", e->func_name, e->desc);
	return 0;
}

static const char *h5_why(char buf[256])
{
	buf[0] = 0;
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk, buf);
	if (!buf[0])
		snprintf(buf, 256, "HDF5 gave no reason");
	return buf;
}

/* HDF5 prints its error stack unless told not to; the program's own
 * setting comes back when the call ends. */
struct h5quiet {
	H5E_auto2_t func;
	void *data;
};

static void h5_quiet(struct h5quiet *q)
{
	H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
	H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void h5_loud(struct h5quiet *q)
{
	H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}


static int not_init(const char *call)
{
	return hecckpt_fail(-EINVAL, "%s: hecckpt_init was not called", call);
}

/* ---- environment and init ---- */

static int env_int(const char *var, long long lo, long long hi, long long *out)
{
	const char *s = getenv(var);
	char *end;
	long long v;

	if (!s)
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		return hecckpt_fail(-EINVAL, "%s '%s' is not a number from %lld to %lld", var, s, lo, hi);
	*out = v;
	return 0;
}

static int env_path(const char *var, char *out, size_t len)
{
	const char *s = getenv(var);

	out[0] = 0;
	if (!s || !*s)
		return 0;
	if (strlen(s) >= len)
		return hecckpt_fail(-ENAMETOOLONG, "%s %s: too long a path", var, s);
	memcpy(out, s, strlen(s) + 1);
	return 1;
}

/* Rank 0: read the environment and, under hec, greet the agent. */
static int setup_root(struct setup *env)
{
	char sock[PATH_MAX];
	long long t = DEFAULT_TIMEOUT_S;
	int rc, have_dir, have_sock;

	if ((rc = env_int("HEC_JOB_ID", 0, LLONG_MAX, &env->job)) < 0 ||
	    (rc = env_int("HEC_CKPT_EPOCH", 1, LLONG_MAX, &env->restore_epoch)) < 0 ||
	    (rc = env_int("HEC_CKPT_TIMEOUT", 1, 86400, &t)) < 0)
		return rc;
	env->timeout_s = (int)t;
	if ((have_dir = env_path("HEC_CKPT_DIR", env->dir, sizeof(env->dir))) < 0 ||
	    (have_sock = env_path("HEC_CKPT_SOCK", sock, sizeof(sock))) < 0 ||
	    (rc = env_path("HEC_CKPT_RESTORE", env->restore, sizeof(env->restore))) < 0)
		return have_dir < 0 ? have_dir : have_sock < 0 ? have_sock : rc;
	/* room for "/ckpt-<epoch>.h5.tmp" */
	if (strlen(env->dir) + 40 >= sizeof(env->dir))
		return hecckpt_fail(-ENAMETOOLONG, "HEC_CKPT_DIR %s: too long a path", env->dir);
	if (have_sock && !have_dir)
		return hecckpt_fail(-EINVAL, "HEC_CKPT_SOCK is set but HEC_CKPT_DIR is not");
	env->mode = have_sock ? MODE_AGENT : have_dir ? MODE_STANDALONE : MODE_NONE;
	if (env->mode == MODE_AGENT)
		return hecckpt_agent_open(sock, env->job, st.size, env->timeout_s, &st.agent);
	return 0;
}

int hecckpt_init(MPI_Comm comm)
{
	int flag = 0, rc;

	MPI_Initialized(&flag);
	if (!flag)
		return hecckpt_fail(-EINVAL, "hecckpt_init: MPI is not initialised (call MPI_Init first)");
	if (st.init)
		return hecckpt_fail(-EALREADY, "hecckpt_init: already initialised");
	if (MPI_Comm_dup(comm, &st.comm) != MPI_SUCCESS)
		return hecckpt_fail(-EINVAL, "hecckpt_init: MPI_Comm_dup failed");
	MPI_Comm_rank(st.comm, &st.rank);
	MPI_Comm_size(st.comm, &st.size);
	memset(&st.env, 0, sizeof(st.env));
	if (st.rank == 0) {
		st.env.rc = setup_root(&st.env);
		if (st.env.rc < 0)
			snprintf(st.env.why, sizeof(st.env.why), "%s", errbuf);
	}
	MPI_Bcast(&st.env, sizeof(st.env), MPI_BYTE, 0, st.comm);
	rc = st.env.rc;
	if (rc < 0) {
		hecckpt_fail(rc, "%s", st.env.why);
		MPI_Comm_free(&st.comm);
		return rc;
	}
	st.last_epoch = 0;
	st.init = 1;
	return 0;
}

int hecckpt_finalize(void)
{
	if (!st.init)
		return not_init("hecckpt_finalize");
	hecckpt_agent_close(st.agent);
	st.agent = NULL;
	MPI_Comm_free(&st.comm);
	free(st.e);
	st.e = NULL;
	st.n = st.cap = 0;
	st.init = 0;
	return 0;
}

/* ---- protected arrays ---- */

/* hec's rule for names (parts, nodes...), and a byte less for C strings of 64 */
static int name_ok(const char *name)
{
	return hec_name_ok(name) && strlen(name) <= HECCKPT_NAME_MAX;
}

static struct entry *find(const char *name)
{
	for (size_t i = 0; i < st.n; i++)
		if (!strcmp(st.e[i].name, name))
			return &st.e[i];
	return NULL;
}

int hecckpt_protect(const char *name, void *ptr, size_t count, MPI_Datatype type)
{
	const struct kind *k = NULL;
	struct entry *e;

	if (!name_ok(name))
		return hecckpt_fail(-EINVAL, "hecckpt_protect: '%.80s' is not an array name (1 to %d characters of A-Z a-z 0-9 _ . -, not starting with . or -)",
				    name ? name : "(null)", HECCKPT_NAME_MAX);
	for (size_t i = 0; i < NKINDS; i++)
		if (kinds[i].mpi == type)
			k = &kinds[i];
	if (!k)
		return hecckpt_fail(-ENOTSUP, "hecckpt_protect: array '%s': unsupported MPI type (use MPI_CHAR, MPI_BYTE, MPI_INT, MPI_UNSIGNED, MPI_LONG, MPI_LONG_LONG, MPI_UNSIGNED_LONG_LONG, MPI_FLOAT or MPI_DOUBLE)",
				    name);
	if (!ptr && count)
		return hecckpt_fail(-EINVAL, "hecckpt_protect: array '%s': NULL pointer for %zu elements",
				    name, count);
	if (count > (size_t)INT64_MAX / k->size)
		return hecckpt_fail(-EOVERFLOW, "hecckpt_protect: array '%s': %zu elements of %s are too many bytes",
				    name, count, k->name);
	e = find(name);
	if (!e) {
		if (st.n == st.cap) {
			size_t cap = st.cap ? 2 * st.cap : 16;
			struct entry *ne = realloc(st.e, cap * sizeof(*ne));

			if (!ne)
				return hecckpt_fail(-ENOMEM, "hecckpt_protect: out of memory");
			st.e = ne;
			st.cap = cap;
		}
		e = &st.e[st.n++];
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	e->ptr = ptr;
	e->count = count;
	e->kind = k;
	return 0;
}

int hecckpt_unprotect(const char *name)
{
	struct entry *e = name ? find(name) : NULL;

	if (!e)
		return hecckpt_fail(-ENOENT, "hecckpt_unprotect: '%.80s' is not protected", name ? name : "(null)");
	memmove(e, e + 1, (size_t)(st.e + st.n - (e + 1)) * sizeof(*e));
	st.n--;
	return 0;
}

/* Collective: every rank protects rank 0's names and types, in its order. */
static int same_arrays(void)
{
	size_t len = 0, off = 0;
	char *list;
	int n = (int)st.n, rc = 0, blen;

	for (size_t i = 0; i < st.n; i++)
		len += strlen(st.e[i].name) + 2; /* name, NUL, kind */
	blen = (int)len;
	MPI_Bcast(&n, 1, MPI_INT, 0, st.comm);
	MPI_Bcast(&blen, 1, MPI_INT, 0, st.comm);
	list = malloc((size_t)blen + 1);
	if (!list)
		rc = hecckpt_fail(-ENOMEM, "out of memory for the list of protected arrays");
	if ((rc = agree(rc)) < 0) {
		free(list);
		return rc;
	}
	if (st.rank == 0)
		for (size_t i = 0; i < st.n; i++) {
			off += (size_t)sprintf(list + off, "%s", st.e[i].name) + 1;
			list[off++] = (char)(st.e[i].kind - kinds);
		}
	MPI_Bcast(list, blen, MPI_CHAR, 0, st.comm);
	off = 0;
	for (size_t i = 0; i < st.n && i < (size_t)n && !rc; i++) {
		const char *name0 = list + off;
		const struct kind *k0 = &kinds[(unsigned char)list[off + strlen(name0) + 1] % NKINDS];

		off += strlen(name0) + 2;
		if (strcmp(name0, st.e[i].name) || k0 != st.e[i].kind)
			rc = hecckpt_fail(-EINVAL, "array %zu: rank %d protects '%s' (%s), rank 0 '%s' (%s): every rank must protect the same names with the same types in the same order",
					  i + 1, st.rank, st.e[i].name, st.e[i].kind->name, name0, k0->name);
	}
	if (!rc && (size_t)n != st.n)
		rc = hecckpt_fail(-EINVAL, "rank %d protects %zu arrays, rank 0 %d: every rank must protect the same names with the same types in the same order",
				  st.rank, st.n, n);
	free(list);
	return agree(rc);
}

/* ---- writing a checkpoint ---- */

/* The file access (MPI-IO on the library's communicator) and collective
 * transfer property lists of one file. */
static int plists_open(hid_t *fapl, hid_t *dxpl)
{
	char why[256];

	*fapl = H5Pcreate(H5P_FILE_ACCESS);
	*dxpl = H5Pcreate(H5P_DATASET_XFER);
	if (*fapl < 0 || *dxpl < 0 || H5Pset_fapl_mpio(*fapl, st.comm, MPI_INFO_NULL) < 0 ||
	    H5Pset_dxpl_mpio(*dxpl, H5FD_MPIO_COLLECTIVE) < 0)
		return hecckpt_fail(-EIO, "HDF5: property lists: %s", h5_why(why));
	return 0;
}

static void plists_close(hid_t fapl, hid_t dxpl)
{
	if (dxpl >= 0)
		H5Pclose(dxpl);
	if (fapl >= 0)
		H5Pclose(fapl);
}

/* One attribute of @n values of @type (n 0: a scalar), or a string. */
static int put_attr(hid_t loc, const char *name, hid_t type, hsize_t n, const void *val)
{
	hid_t space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
	hid_t t = type, attr = -1;
	herr_t ok = -1;

	if (space < 0)
		return -1;
	if (type == H5T_C_S1) {
		t = H5Tcopy(H5T_C_S1);
		if (t < 0 || H5Tset_size(t, strlen(val) + 1) < 0)
			goto close_space;
	}
	attr = H5Acreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
	if (attr >= 0) {
		ok = H5Awrite(attr, t, val);
		if (H5Aclose(attr) < 0)
			ok = -1;
	}
close_space:
	if (t != type && t >= 0)
		H5Tclose(t);
	H5Sclose(space);
	return ok < 0 ? -1 : 0;
}

/* This rank's part of array @i: the file selection at @off (and the memory
 * space), or nothing if it has no elements. */
static int select_part(hid_t fspace, hsize_t off, hsize_t cnt, hid_t *mspace)
{
	hsize_t one = 1;

	if (!cnt) {
		*mspace = H5Screate_simple(1, &one, NULL);
		if (*mspace < 0 || H5Sselect_none(*mspace) < 0)
			return -1;
		return H5Sselect_none(fspace) < 0 ? -1 : 0;
	}
	*mspace = H5Screate_simple(1, &cnt, NULL);
	if (*mspace < 0)
		return -1;
	return H5Sselect_hyperslab(fspace, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ? -1 : 0;
}

/*
 * What every rank brings to a checkpoint: one record of int64s per rank,
 * gathered by every rank in one step.  Rank r's record is
 * tab[r * rec ...]: its count of every array, then their XXH3-64s (as
 * int64), then (rank 0's only) its outcome with the agent and the epoch.
 */
struct table {
	int64_t *tab;
	size_t rec;
	int64_t *col; /* one column of it (an attribute's values) */
	int64_t *where; /* where each array's dataset begins in the file, then rank 0's outcome */
};

static int64_t count_of(const struct table *t, int r, size_t i)
{
	return t->tab[(size_t)r * t->rec + i];
}

static uint64_t hash_of(const struct table *t, int r, size_t i)
{
	return (uint64_t)t->tab[(size_t)r * t->rec + st.n + i];
}

/* A digest of the names and types this rank protects, in order: the same
 * on every rank that protects the same list. */
static uint64_t arrays_digest(void)
{
	uint64_t d = st.n;

	for (size_t i = 0; i < st.n; i++)
		d = (d ^ hec_xxh3(st.e[i].name, strlen(st.e[i].name))) * 0x9e3779b97f4a7c15ull +
		    (uint64_t)(st.e[i].kind - kinds) + 1;
	return d;
}

/* Collective, a checkpoint's first step: the lowest failing rank's @rc,
 * or same_arrays()'s sentence if the ranks protect different lists.  One
 * reduction when all is well: every collective step costs a scheduling
 * round when ranks share cores, so the checks ride together. */
static int check_ranks(int rc)
{
	uint64_t d = arrays_digest();
	int64_t hi = (int64_t)(d >> 32), lo = (int64_t)(d & 0xffffffffu);
	int64_t v[5] = { rc < 0 ? st.rank : st.size, hi, -hi, lo, -lo }, m[5];

	MPI_Allreduce(v, m, 5, MPI_INT64_T, MPI_MIN, st.comm);
	if (m[0] < st.size)
		return tell_from((int)m[0], rc);
	if (m[1] == -m[2] && m[3] == -m[4]) /* min == max: one list */
		return 0;
	rc = same_arrays();
	return rc < 0 ? rc : hecckpt_fail(-EINVAL, "the ranks protect different lists of arrays");
}

/*
 * Rank 0 alone: the file at @path with HDF5's own (sec2) driver -- the root
 * attributes, then every array's dataset, contiguous, its room allocated
 * at once and never filled, with its attributes -- and where each
 * dataset's bytes begin in it (@where[i], -1 for an empty one).  Every
 * rank then writes its part there (write_parts).
 */
static int make_file(const char *path, long long epoch, const struct table *t, int64_t *where)
{
	int64_t job = st.env.job, ep = epoch;
	int32_t ranks = st.size;
	hsize_t nr = (hsize_t)st.size, total;
	hid_t f, dcpl, space, d;
	char why[256];
	int rc = 0;

	dcpl = H5Pcreate(H5P_DATASET_CREATE);
	if (dcpl < 0 || H5Pset_layout(dcpl, H5D_CONTIGUOUS) < 0 ||
	    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 ||
	    H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0) {
		rc = hecckpt_fail(-EIO, "HDF5: dataset properties: %s", h5_why(why));
		goto close_dcpl;
	}
	f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
	if (f < 0) {
		rc = hecckpt_fail(-EIO, "%s: cannot create: %s", path, h5_why(why));
		goto close_dcpl;
	}
	if (put_attr(f, "job", H5T_NATIVE_INT64, 0, &job) < 0 ||
	    put_attr(f, "epoch", H5T_NATIVE_INT64, 0, &ep) < 0 ||
	    put_attr(f, "ranks", H5T_NATIVE_INT32, 0, &ranks) < 0 ||
	    put_attr(f, "format", H5T_C_S1, 0, FORMAT) < 0) {
		rc = hecckpt_fail(-EIO, "%s: root attributes: %s", path, h5_why(why));
		goto close_file;
	}
	for (size_t i = 0; i < st.n && !rc; i++) {
		struct entry *e = &st.e[i];

		total = 0;
		for (int r = 0; r < st.size; r++)
			total += (hsize_t)count_of(t, r, i);
		space = H5Screate_simple(1, &total, NULL);
		d = space < 0 ? -1 :
		    H5Dcreate2(f, e->name, h5type(e->kind), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
		if (d < 0) {
			rc = -EIO;
		} else {
			haddr_t at = total ? H5Dget_offset(d) : HADDR_UNDEF;

			where[i] = at == HADDR_UNDEF ? -1 : (int64_t)at;
			if (total && at == HADDR_UNDEF)
				rc = -EIO;
			for (int r = 0; r < st.size && !rc; r++)
				t->col[r] = count_of(t, r, i);
			if (!rc && put_attr(d, "counts", H5T_NATIVE_INT64, nr, t->col) < 0)
				rc = -EIO;
			for (int r = 0; r < st.size && !rc; r++)
				t->col[r] = (int64_t)hash_of(t, r, i);
			if (!rc && (put_attr(d, "xxh3", H5T_NATIVE_UINT64, nr, t->col) < 0 ||
				    put_attr(d, "mpi_type", H5T_C_S1, 0, e->kind->name) < 0))
				rc = -EIO;
			if (H5Dclose(d) < 0)
				rc = -EIO;
		}
		if (space >= 0)
			H5Sclose(space);
		if (rc)
			hecckpt_fail(rc, "%s: array '%s': %s", path, e->name, h5_why(why));
	}
close_file:
	if (H5Fclose(f) < 0 && !rc)
		rc = hecckpt_fail(-EIO, "%s: closing: %s", path, h5_why(why));
close_dcpl:
	if (dcpl >= 0)
		H5Pclose(dcpl);
	return rc;
}

/* MPI-IO's account of @err. */
static const char *mpi_why(int err, char buf[MPI_MAX_ERROR_STRING])
{
	int len = 0;

	if (MPI_Error_string(err, buf, &len) != MPI_SUCCESS)
		snprintf(buf, MPI_MAX_ERROR_STRING, "MPI error %d", err);
	return buf;
}

/* Collective: this rank's part of every array, at its place in the
 * datasets that begin at @where (the ranks' parts side by side, as a
 * hyperslab each), by collective MPI-IO in pieces MPI's int counts can
 * carry: every rank makes as many calls as the rank with the largest part,
 * empty ones past its own end or after a failure of its own. */
static int write_parts(const char *path, const struct table *t, const int64_t *where)
{
	const size_t piece = (size_t)1 << 30;
	char why[MPI_MAX_ERROR_STRING];
	MPI_File fh;
	int err, rc = 0;

	err = MPI_File_open(st.comm, path, MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
	if (err != MPI_SUCCESS)
		return hecckpt_fail(-EIO, "%s: MPI_File_open: %s", path, mpi_why(err, why));
	for (size_t i = 0; i < st.n; i++) {
		struct entry *e = &st.e[i];
		size_t bytes = e->count * e->kind->size, most = 0;
		MPI_Offset at = (MPI_Offset)where[i];

		for (int r = 0; r < st.size; r++) {
			size_t b = (size_t)count_of(t, r, i) * e->kind->size;

			if (r < st.rank)
				at += (MPI_Offset)b;
			if (b > most)
				most = b;
		}
		for (size_t done = 0; done < most; done += piece) {
			size_t len = rc || done >= bytes ? 0 : bytes - done < piece ? bytes - done : piece;

			err = MPI_File_write_at_all(fh, at + (MPI_Offset)(len ? done : 0),
						    len ? (const char *)e->ptr + done : NULL, (int)len,
						    MPI_BYTE, MPI_STATUS_IGNORE);
			if (err != MPI_SUCCESS && !rc)
				rc = hecckpt_fail(-EIO, "%s: array '%s': MPI_File_write_at_all: %s", path,
						  e->name, mpi_why(err, why));
		}
	}
	err = MPI_File_close(&fh);
	if (err != MPI_SUCCESS && !rc)
		rc = hecckpt_fail(-EIO, "%s: MPI_File_close: %s", path, mpi_why(err, why));
	return rc;
}

/*
 * Collective: the whole file at @path.  Rank 0 makes it alone and says
 * where the arrays go (one broadcast), then every rank writes its parts
 * by collective MPI-IO and the ranks agree once.  Parallel HDF5 wrote the same file
 * with a dozen collective steps more in H5Fcreate and H5Fclose: where
 * ranks share cores each costs a scheduling round (90 ms of a 0.3 s
 * checkpoint of 4 x 64 MiB here, bench/app-ckpt).
 */
static int write_file(const char *path, long long epoch, const struct table *t)
{
	int64_t *where = t->where;

	if (st.rank == 0)
		where[st.n] = make_file(path, epoch, t, where);
	MPI_Bcast(where, (int)st.n + 1, MPI_INT64_T, 0, st.comm);
	if (where[st.n] < 0) {
		MPI_Bcast(errbuf, sizeof(errbuf), MPI_CHAR, 0, st.comm);
		return (int)where[st.n];
	}
	return agree(write_parts(path, t, where));
}

/* Rank 0: the written file becomes ckpt-<epoch>.h5 (standalone: durably). */
static int publish(const char *tmp, const char *path, long long *bytes)
{
	struct stat sb;
	int fd;

	if (st.env.mode == MODE_STANDALONE) {
		fd = open(tmp, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd) < 0) {
			int err = errno;

			if (fd >= 0)
				close(fd);
			return hecckpt_fail(-err, "%s: fsync: %s", tmp, strerror(err));
		}
		close(fd);
	}
	if (stat(tmp, &sb) < 0)
		return hecckpt_fail(-errno, "%s: %s", tmp, strerror(errno));
	if (rename(tmp, path) < 0)
		return hecckpt_fail(-errno, "%s: rename to %s: %s", tmp, path, strerror(errno));
	if (st.env.mode == MODE_STANDALONE) {
		fd = open(st.env.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	*bytes = (long long)sb.st_size;
	return 0;
}

int hecckpt_checkpoint(long long *epoch)
{
	char tmp[PATH_MAX + 64], path[PATH_MAX + 64]; /* the dir leaves room (setup_root) */
	struct h5quiet q;
	struct table t = { .rec = 2 * st.n + 2 };
	int64_t *mine;
	long long e = 0, bytes = 0;
	int rc = 0;

	if (!st.init)
		return not_init("hecckpt_checkpoint");
	if (st.env.mode == MODE_NONE)
		return hecckpt_fail(-ENOTSUP, "checkpoints are not available: HEC_CKPT_DIR is not set (the program does not run under hec)");
	mine = malloc(t.rec * sizeof(*mine));
	t.tab = malloc(t.rec * (size_t)st.size * sizeof(*t.tab));
	t.col = malloc((size_t)st.size * sizeof(*t.col));
	t.where = malloc((st.n + 1) * sizeof(*t.where));
	if (!mine || !t.tab || !t.col || !t.where)
		rc = hecckpt_fail(-ENOMEM, "out of memory for the arrays' counts and checksums");
	if ((rc = check_ranks(rc)) < 0)
		goto free_bufs;

	/* rank 0 talks to the agent while the others hash */
	if (st.rank == 0) {
		if (st.env.mode == MODE_AGENT) {
			long long want;

			rc = hecckpt_agent_poll(st.agent, &want);
			if (rc == 0)
				rc = hecckpt_agent_begin(st.agent, want, &e);
		} else {
			e = st.last_epoch + 1;
		}
	}
	for (size_t i = 0; i < st.n; i++) {
		mine[i] = (int64_t)st.e[i].count;
		mine[st.n + i] = (int64_t)hec_xxh3(st.e[i].ptr, st.e[i].count * st.e[i].kind->size);
	}
	mine[2 * st.n] = rc;
	mine[2 * st.n + 1] = e;
	MPI_Allgather(mine, (int)t.rec, MPI_INT64_T, t.tab, (int)t.rec, MPI_INT64_T, st.comm);
	rc = (int)t.tab[2 * st.n];
	e = t.tab[2 * st.n + 1];
	if (rc < 0) {
		tell_from(0, rc);
		goto free_bufs;
	}
	snprintf(tmp, sizeof(tmp), "%s/ckpt-%lld.h5.tmp", st.env.dir, e);
	snprintf(path, sizeof(path), "%s/ckpt-%lld.h5", st.env.dir, e);

	h5_quiet(&q);
	rc = write_file(tmp, e, &t);
	h5_loud(&q);
	if (st.rank == 0) {
		if (rc == 0)
			rc = publish(tmp, path, &bytes);
		if (rc < 0) {
			unlink(tmp);
			if (st.env.mode == MODE_AGENT) {
				char why[HECCKPT_ERRLEN];

				snprintf(why, sizeof(why), "%s", errbuf);
				hecckpt_agent_failed(st.agent, e, why);
				hecckpt_fail(rc, "%s", why); /* the write's failure is the news */
			}
		} else if (st.env.mode == MODE_AGENT) {
			rc = hecckpt_agent_written(st.agent, e, path, bytes);
			if (rc < 0) /* not the agent's: nobody else removes it */
				unlink(path);
		}
	}
	if ((rc = from_root(rc)) < 0)
		goto free_bufs;
	st.last_epoch = e;
	if (epoch)
		*epoch = e;
free_bufs:
	free(t.where);
	free(t.col);
	free(t.tab);
	free(mine);
	return rc;
}

int hecckpt_need(int *need)
{
	long long want = 0;
	int v;

	*need = 0;
	if (!st.init)
		return not_init("hecckpt_need");
	if (st.env.mode != MODE_AGENT)
		return 0;
	if (st.rank == 0) {
		v = hecckpt_agent_poll(st.agent, &want);
		if (v == 0)
			v = want != 0;
	}
	MPI_Bcast(&v, 1, MPI_INT, 0, st.comm);
	if (v < 0)
		return from_root(v);
	*need = v;
	return 0;
}

/* ---- restoring ---- */

/* A string attribute (up to @len - 1 bytes) or "" if it is not one. */
static void get_str_attr(hid_t loc, const char *name, char *out, size_t len)
{
	hid_t a = H5Aopen(loc, name, H5P_DEFAULT), t = -1, mt = -1;

	out[0] = 0;
	if (a < 0)
		return;
	t = H5Aget_type(a);
	if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && H5Tget_size(t) < len) {
		mt = H5Tcopy(t);
		if (mt >= 0 && H5Tset_size(mt, len) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
		    H5Aread(a, mt, out) < 0)
			out[0] = 0;
	}
	out[len - 1] = 0;
	if (mt >= 0)
		H5Tclose(mt);
	if (t >= 0)
		H5Tclose(t);
	H5Aclose(a);
}

/* Read @n values of attribute @name (a scalar if @n is 0) as @type. */
static int get_attr(hid_t loc, const char *name, hid_t type, hsize_t n, void *out)
{
	hid_t a = H5Aopen(loc, name, H5P_DEFAULT), space = -1;
	hssize_t have;
	int rc = -1;

	if (a < 0)
		return -1;
	space = H5Aget_space(a);
	have = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
	if (have == (hssize_t)(n ? n : 1) && H5Aread(a, type, out) >= 0)
		rc = 0;
	if (space >= 0)
		H5Sclose(space);
	H5Aclose(a);
	return rc;
}

struct found {
	size_t n;          /* links in the root group that are protected arrays */
	char extra[HECCKPT_NAME_MAX + 1 + 64]; /* the first one that is not */
};

static herr_t count_links(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
	struct found *fd = data;

	(void)g;
	(void)info;
	if (find(name))
		fd->n++;
	else if (!fd->extra[0])
		snprintf(fd->extra, sizeof(fd->extra), "%s", name);
	return 0;
}

/* The file's description of array @i: its type, this rank's count, offset
 * and hash.  Failures other than the count are the same on every rank. */
static int check_array(hid_t f, size_t i, const char *path, long long epoch, hsize_t *off,
		       uint64_t *hash, int *count_rc)
{
	struct entry *e = &st.e[i];
	hid_t d, space;
	int64_t *cnt = malloc((size_t)st.size * sizeof(*cnt));
	uint64_t *h = malloc((size_t)st.size * sizeof(*h));
	char type[64];
	hsize_t total = 0, dims = 0, nr = (hsize_t)st.size;
	int rc = 0;

	if (!cnt || !h) {
		rc = hecckpt_fail(-ENOMEM, "out of memory");
		goto free_bufs;
	}
	d = H5Dopen2(f, e->name, H5P_DEFAULT);
	if (d < 0) {
		rc = hecckpt_fail(-EIO, "checkpoint file %s: array '%s' cannot be opened", path, e->name);
		goto free_bufs;
	}
	get_str_attr(d, "mpi_type", type, sizeof(type));
	if (strcmp(type, e->kind->name)) {
		rc = hecckpt_fail(-EINVAL, "array '%s' is %s in checkpoint %lld, this run protects it as %s",
				  e->name, type[0] ? type : "of no known type", epoch, e->kind->name);
		goto close_d;
	}
	if (get_attr(d, "counts", H5T_NATIVE_INT64, nr, cnt) < 0 ||
	    get_attr(d, "xxh3", H5T_NATIVE_UINT64, nr, h) < 0) {
		rc = hecckpt_fail(-EIO, "checkpoint file %s: array '%s': counts or xxh3 missing or not %d long",
				  path, e->name, st.size);
		goto close_d;
	}
	space = H5Dget_space(d);
	if (space < 0 || H5Sget_simple_extent_ndims(space) != 1 ||
	    H5Sget_simple_extent_dims(space, &dims, NULL) < 0)
		dims = (hsize_t)-1;
	if (space >= 0)
		H5Sclose(space);
	*off = 0;
	for (int r = 0; r < st.size; r++) {
		if (cnt[r] < 0)
			total = (hsize_t)-1;
		if (total != (hsize_t)-1)
			total += (hsize_t)cnt[r];
		if (r < st.rank)
			*off += (hsize_t)cnt[r];
	}
	if (total != dims) {
		rc = hecckpt_fail(-EIO, "checkpoint file %s: array '%s': its counts do not add up to its size",
				  path, e->name);
		goto close_d;
	}
	*hash = h[st.rank];
	if ((uint64_t)cnt[st.rank] != (uint64_t)e->count && !*count_rc)
		*count_rc = hecckpt_fail(-EMSGSIZE, "array '%s': rank %d protects %zu elements, checkpoint %lld holds %lld for it",
					 e->name, st.rank, e->count, epoch, (long long)cnt[st.rank]);
close_d:
	H5Dclose(d);
free_bufs:
	free(cnt);
	free(h);
	return rc;
}

/* Collective: read @path into scratch buffers, check, then into the arrays. */
static int restore_file(const char *path, long long *epoch)
{
	hsize_t *off = calloc(st.n ? st.n : 1, sizeof(*off));
	uint64_t *hash = calloc(st.n ? st.n : 1, sizeof(*hash));
	void **scratch = calloc(st.n ? st.n : 1, sizeof(*scratch));
	struct found found = { 0 };
	char why[256], format[32];
	hid_t fapl = -1, dxpl = -1, f = -1;
	int64_t ep = 0;
	int32_t ranks = 0;
	int rc = 0, count_rc = 0;

	if (!off || !hash || !scratch)
		rc = hecckpt_fail(-ENOMEM, "out of memory");
	else if (access(path, R_OK) < 0)
		rc = hecckpt_fail(-errno, "checkpoint file %s: %s", path, strerror(errno));
	if ((rc = agree(rc)) < 0)
		goto free_bufs;
	if ((rc = agree(plists_open(&fapl, &dxpl))) < 0)
		goto close_plists;
	f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
	if (f < 0)
		rc = hecckpt_fail(-EIO, "checkpoint file %s is not a readable HDF5 file (truncated or damaged?): %s",
				  path, h5_why(why));
	if ((rc = agree(rc)) < 0)
		goto close_plists;

	get_str_attr(f, "format", format, sizeof(format));
	if (strcmp(format, FORMAT) || get_attr(f, "epoch", H5T_NATIVE_INT64, 0, &ep) < 0 ||
	    get_attr(f, "ranks", H5T_NATIVE_INT32, 0, &ranks) < 0)
		rc = hecckpt_fail(-EIO, "checkpoint file %s is not a hecckpt checkpoint (no format \"%s\", epoch and ranks)",
				  path, FORMAT);
	else if (ranks != st.size)
		rc = hecckpt_fail(-EINVAL, "checkpoint %lld was written by %d ranks, this run has %d: restarts need the same number of ranks",
				  (long long)ep, (int)ranks, st.size);
	else if (st.env.restore_epoch && st.env.restore_epoch != ep)
		rc = hecckpt_fail(-EINVAL, "checkpoint file %s holds epoch %lld, HEC_CKPT_EPOCH says %lld",
				  path, (long long)ep, st.env.restore_epoch);
	else if (H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, count_links, &found) < 0)
		rc = hecckpt_fail(-EIO, "checkpoint file %s: cannot list its arrays: %s", path, h5_why(why));
	else if (found.extra[0])
		rc = hecckpt_fail(-EINVAL, "checkpoint %lld holds array '%s', which this run does not protect",
				  (long long)ep, found.extra);
	for (size_t i = 0; i < st.n && !rc; i++)
		if (H5Lexists(f, st.e[i].name, H5P_DEFAULT) <= 0)
			rc = hecckpt_fail(-EINVAL, "checkpoint %lld has no array '%s' (this run protects it)",
					  (long long)ep, st.e[i].name);
	for (size_t i = 0; i < st.n && !rc; i++)
		rc = check_array(f, i, path, (long long)ep, &off[i], &hash[i], &count_rc);
	if (!rc)
		rc = count_rc;
	for (size_t i = 0; i < st.n && !rc; i++)
		if (st.e[i].count && !(scratch[i] = malloc(st.e[i].count * st.e[i].kind->size)))
			rc = hecckpt_fail(-ENOMEM, "out of memory for array '%s' (%zu elements)",
					  st.e[i].name, st.e[i].count);
	if ((rc = agree(rc)) < 0)
		goto close_file;

	for (size_t i = 0; i < st.n; i++) {
		struct entry *e = &st.e[i];
		static char dummy[16];
		hid_t d = H5Dopen2(f, e->name, H5P_DEFAULT);
		hid_t fspace = d >= 0 ? H5Dget_space(d) : -1, mspace = -1;
		hsize_t dims = 0;

		if (fspace < 0 || H5Sget_simple_extent_dims(fspace, &dims, NULL) < 0 ||
		    select_part(fspace, off[i], e->count, &mspace) < 0 ||
		    (dims && H5Dread(d, h5type(e->kind), mspace, fspace, dxpl,
				     e->count ? scratch[i] : dummy) < 0))
			if (!rc)
				rc = hecckpt_fail(-EIO, "checkpoint file %s: array '%s': %s", path, e->name,
						  h5_why(why));
		if (mspace >= 0)
			H5Sclose(mspace);
		if (fspace >= 0)
			H5Sclose(fspace);
		if (d >= 0)
			H5Dclose(d);
	}
	for (size_t i = 0; i < st.n && !rc; i++)
		if (hec_xxh3(scratch[i], st.e[i].count * st.e[i].kind->size) != hash[i])
			rc = hecckpt_fail(-EIO, "checkpoint %lld: array '%s' of rank %d: checksum mismatch (the file %s is damaged)",
					  (long long)ep, st.e[i].name, st.rank, path);
	if ((rc = agree(rc)) < 0)
		goto close_file;
	for (size_t i = 0; i < st.n; i++)
		if (st.e[i].count)
			memcpy(st.e[i].ptr, scratch[i], st.e[i].count * st.e[i].kind->size);
	*epoch = (long long)ep;
close_file:
	H5Fclose(f);
close_plists:
	plists_close(fapl, dxpl);
free_bufs:
	for (size_t i = 0; scratch && i < st.n; i++)
		free(scratch[i]);
	free(scratch);
	free(hash);
	free(off);
	return rc;
}

int hecckpt_restore(int *restarted, long long *epoch)
{
	struct h5quiet q;
	long long e = st.env.restore_epoch;
	int rc;

	if (restarted)
		*restarted = 0;
	if (!st.init)
		return not_init("hecckpt_restore");
	if (!st.env.restore[0])
		return 0;
	if ((rc = same_arrays()) == 0) {
		h5_quiet(&q);
		rc = restore_file(st.env.restore, &e);
		h5_loud(&q);
	}
	if (st.rank == 0 && st.env.mode == MODE_AGENT) {
		/* the restore's outcome is the news; the agent learns of it if it can */
		char why[HECCKPT_ERRLEN];

		snprintf(why, sizeof(why), "%s", errbuf);
		hecckpt_agent_restored(st.agent, e, rc < 0 ? why : NULL);
		snprintf(errbuf, sizeof(errbuf), "%s", why);
	}
	if (rc < 0)
		return rc;
	st.last_epoch = e;
	if (restarted)
		*restarted = 1;
	if (epoch)
		*epoch = e;
	return 0;
}
