/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libhecckpt's test program (tests/integration/hecckpt_lib.sh runs it under
 * mpiexec).  It protects nine arrays, one of each supported type, whose
 * counts differ between ranks (rank 1 has none of "blob"), and whose values
 * depend on (rank, index, seed) only.
 *
 * Usage: hecckpt_prog MODE [ARGS]
 *   write N           take N checkpoints, the k-th of the values of seed k;
 *                     expects epochs 1..N (HEC_CKPT_DIR set, standalone)
 *   read E            restore (HEC_CKPT_RESTORE) into arrays full of junk;
 *                     expects epoch E and every value of seed E; then, if
 *                     HEC_CKPT_DIR is set, one more checkpoint: epoch E+1
 *   fail ERR VARIANT  restore must fail with -ERR (EIO, EINVAL, EMSGSIZE,
 *                     ENOENT) on every rank with the same sentence, leaving
 *                     the arrays untouched.  VARIANT: same (the arrays as
 *                     written), count (rank 1 has one more "temp"), extra
 *                     (one more array), missing (no "f"), type ("f" as
 *                     MPI_DOUBLE)
 *   names VARIANT     checkpoint must fail with -EINVAL, the same sentence
 *                     on every rank: renamed (rank 1 calls "ids" "idz"),
 *                     order (rank 1 protects "ids" last), fewer (rank 1
 *                     lacks "f"), type (rank 1 protects "f" as MPI_INT)
 *   wfail ERR         checkpoint must fail with -ERR, the same sentence on
 *                     every rank (HEC_CKPT_DIR cannot be written)
 *   api               the local contracts: names, types, replace,
 *                     unprotect, init twice, calls before init; need is 0;
 *                     without HEC_CKPT_DIR checkpoint is -ENOTSUP
 *   agent EXPECT      under a (fake) agent: wait until need says 1 (at most
 *                     20 s), then checkpoint; EXPECT: the epoch it must
 *                     return (after which need says 0), or an errno name
 *                     init, need or checkpoint must fail with; +EPOCH:
 *                     checkpoint at once (need must say 0), EPOCH expected
 * Output: "ok: ..." lines from rank 0; "FAIL: ..." from any rank on a
 * mismatch.  Exit 0 when everything matched, 1 otherwise.
 */
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hec/hecckpt.h>

#define NARR 9

static int rank, size, failed;

struct arr {
	const char *name;
	MPI_Datatype type;
	size_t elsize;
	size_t count;
	void *p;
};

static struct arr arrs[NARR];

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "FAIL: rank %d: ", rank);          \
			fprintf(stderr, __VA_ARGS__);                      \
			fprintf(stderr, " (line %d)\n", __LINE__);         \
			failed = 1;                                        \
		}                                                          \
	} while (0)

static void ok(const char *what)
{
	if (rank == 0) {
		printf("ok: %s\n", what);
		fflush(stdout);
	}
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 29;
	return x;
}

/* The arrays of this rank: names, types and counts. */
static void layout(void)
{
	static const struct { const char *name; size_t elsize; } a[NARR] = {
		{ "iter", sizeof(long long) }, { "temp", sizeof(double) }, { "ids", sizeof(int) },
		{ "mask", sizeof(unsigned) }, { "label", 1 }, { "blob", 1 },
		{ "l", sizeof(long) }, { "big", sizeof(unsigned long long) }, { "f", sizeof(float) },
	};
	MPI_Datatype t[NARR] = { MPI_LONG_LONG, MPI_DOUBLE, MPI_INT, MPI_UNSIGNED, MPI_CHAR,
				 MPI_BYTE, MPI_LONG, MPI_UNSIGNED_LONG_LONG, MPI_FLOAT };
	size_t n[NARR] = { 1, 1000 + 37 * (size_t)rank, 50 * (size_t)(rank + 1), 33,
			   (size_t)rank + 3, rank == 1 ? 0 : 300, 20, 10, 17 + (size_t)rank };

	for (int i = 0; i < NARR; i++) {
		arrs[i].name = a[i].name;
		arrs[i].elsize = a[i].elsize;
		arrs[i].type = t[i];
		arrs[i].count = n[i];
		arrs[i].p = calloc(n[i] + 2, a[i].elsize); /* room for the "count" variant */
		if (!arrs[i].p)
			MPI_Abort(MPI_COMM_WORLD, 2);
	}
}

/* Element @k of array @i for @seed, as the array's type, into @out. */
static void value(int i, size_t k, long long seed, void *out)
{
	uint64_t m = mix(((uint64_t)rank << 48) ^ ((uint64_t)i << 40) ^ ((uint64_t)seed << 24) ^ k);

	switch (i) {
	case 0: *(long long *)out = seed; break;
	case 1: *(double *)out = (double)seed * 1000.0 + rank + (double)k * 0.5; break;
	case 2: *(int *)out = (int)(k * 7) + rank - (int)seed; break;
	case 3: *(unsigned *)out = 0xdeadbeefu ^ (unsigned)m; break;
	case 4: *(char *)out = (char)('a' + (m % 26)); break;
	case 5: *(unsigned char *)out = (unsigned char)m; break;
	case 6: *(long *)out = -(long)(m >> 2); break;
	case 7: *(unsigned long long *)out = m; break;
	default: *(float *)out = (float)k / 3.0f + (float)seed + (float)rank; break;
	}
}

static void fill(long long seed)
{
	for (int i = 0; i < NARR; i++)
		for (size_t k = 0; k < arrs[i].count; k++)
			value(i, k, seed, (char *)arrs[i].p + k * arrs[i].elsize);
}

static void fill_junk(void)
{
	for (int i = 0; i < NARR; i++)
		memset(arrs[i].p, 0x5a, (arrs[i].count + 1) * arrs[i].elsize);
}

/* Every value of seed @seed is there: bit for bit. */
static int matches(long long seed)
{
	char want[16];

	for (int i = 0; i < NARR; i++)
		for (size_t k = 0; k < arrs[i].count; k++) {
			value(i, k, seed, want);
			if (memcmp(want, (char *)arrs[i].p + k * arrs[i].elsize, arrs[i].elsize)) {
				fprintf(stderr, "FAIL: rank %d: array %s element %zu differs from seed %lld\n",
					rank, arrs[i].name, k, seed);
				return 0;
			}
		}
	return 1;
}

static int untouched(void)
{
	for (int i = 0; i < NARR; i++)
		for (size_t k = 0; k < (arrs[i].count + 1) * arrs[i].elsize; k++)
			if (((unsigned char *)arrs[i].p)[k] != 0x5a)
				return 0;
	return 1;
}

static int protect_all(void)
{
	int rc = 0;

	for (int i = 0; i < NARR && !rc; i++)
		rc = hecckpt_protect(arrs[i].name, arrs[i].p, arrs[i].count, arrs[i].type);
	CHECK(rc == 0, "protect: %d %s", rc, hecckpt_last_error());
	return rc;
}

static int errnum(const char *name)
{
	static const struct { const char *n; int e; } t[] = {
		{ "EIO", EIO }, { "EINVAL", EINVAL }, { "EMSGSIZE", EMSGSIZE }, { "ENOENT", ENOENT },
		{ "ENOTSUP", ENOTSUP }, { "EPIPE", EPIPE }, { "ETIMEDOUT", ETIMEDOUT },
		{ "EPROTO", EPROTO }, { "ECANCELED", ECANCELED },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].n, name))
			return t[i].e;
	fprintf(stderr, "hecckpt_prog: unknown errno name %s\n", name);
	MPI_Abort(MPI_COMM_WORLD, 2);
	return 0;
}

/* Every rank got @rc (== -@want) and the same sentence, which rank 0 prints. */
static void same_failure(const char *call, int rc, int want)
{
	char mine[1024], first[1024];
	int same, all;

	CHECK(rc == -want, "%s returned %d (%s), expected %d", call, rc, hecckpt_last_error(), -want);
	snprintf(mine, sizeof(mine), "%s", hecckpt_last_error());
	memcpy(first, mine, sizeof(first));
	MPI_Bcast(first, sizeof(first), MPI_CHAR, 0, MPI_COMM_WORLD);
	same = !strcmp(first, mine) && mine[0];
	MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	CHECK(all, "%s: the ranks' sentences differ or are empty (mine: %s)", call, mine);
	if (rank == 0)
		printf("%s failed as expected: %s\n", call, mine);
}

static void mode_write(long long n)
{
	int restarted = -1, need = -1, rc;
	long long e = 0;

	protect_all();
	rc = hecckpt_restore(&restarted, &e);
	CHECK(rc == 0 && restarted == 0, "restore without HEC_CKPT_RESTORE: %d %d", rc, restarted);
	rc = hecckpt_need(&need);
	CHECK(rc == 0 && need == 0, "need: %d %d", rc, need);
	for (long long k = 1; k <= n; k++) {
		fill(k);
		rc = hecckpt_checkpoint(&e);
		CHECK(rc == 0, "checkpoint %lld: %d %s", k, rc, hecckpt_last_error());
		CHECK(e == k, "checkpoint %lld got epoch %lld", k, e);
	}
	if (!failed)
		ok("all checkpoints written");
}

static void mode_read(long long want)
{
	int restarted = -1, rc;
	long long e = 0;

	fill_junk();
	protect_all();
	rc = hecckpt_restore(&restarted, &e);
	CHECK(rc == 0, "restore: %d %s", rc, hecckpt_last_error());
	CHECK(restarted == 1 && e == want, "restore: restarted %d epoch %lld", restarted, e);
	if (rc == 0)
		CHECK(matches(want), "restored values");
	if (!failed)
		ok("all restored values match");
	if (getenv("HEC_CKPT_DIR")) {
		rc = hecckpt_checkpoint(&e);
		CHECK(rc == 0 && e == want + 1, "checkpoint after restore: %d epoch %lld", rc, e);
		if (!failed)
			ok("the next checkpoint after a restore numbers on");
	}
}

static void mode_fail(const char *err, const char *variant)
{
	int restarted = -1, rc;
	long long e = -1;
	double extra[4];

	if (!strcmp(variant, "count") && rank == 1)
		arrs[1].count++;
	fill_junk();
	protect_all();
	if (!strcmp(variant, "extra"))
		hecckpt_protect("more", extra, 4, MPI_DOUBLE);
	if (!strcmp(variant, "missing"))
		hecckpt_unprotect("f");
	if (!strcmp(variant, "type"))
		hecckpt_protect("f", arrs[8].p, arrs[8].count / 2, MPI_DOUBLE); /* fits its buffer */
	rc = hecckpt_restore(&restarted, &e);
	same_failure("restore", rc, errnum(err));
	CHECK(restarted == 0, "restarted is %d after a failed restore", restarted);
	CHECK(untouched(), "a failed restore changed the arrays");
	if (!failed)
		ok("the arrays are untouched");
}

static void mode_names(const char *variant)
{
	long long e;
	int rc;

	fill(1);
	if (rank == 1 && !strcmp(variant, "renamed"))
		arrs[2].name = "idz";
	if (rank == 1 && !strcmp(variant, "type"))
		arrs[8].type = MPI_INT;
	protect_all();
	if (rank == 1 && !strcmp(variant, "order")) {
		hecckpt_unprotect("ids");
		hecckpt_protect("ids", arrs[2].p, arrs[2].count, MPI_INT);
	}
	if (rank == 1 && !strcmp(variant, "fewer"))
		hecckpt_unprotect("f");
	rc = hecckpt_checkpoint(&e);
	same_failure("checkpoint", rc, EINVAL);
}

static void mode_wfail(const char *err)
{
	long long e;

	fill(1);
	protect_all();
	same_failure("checkpoint", hecckpt_checkpoint(&e), errnum(err));
}

static void mode_api(void)
{
	char name64[66], name63[64];
	int x[4] = { 0 }, need = -1, rc;
	short s[2];
	long long e;

	memset(name64, 'a', 64);
	name64[64] = 0;
	memset(name63, 'b', 63);
	name63[63] = 0;
	CHECK(hecckpt_protect("", x, 4, MPI_INT) == -EINVAL, "empty name");
	CHECK(hecckpt_protect(NULL, x, 4, MPI_INT) == -EINVAL, "NULL name");
	CHECK(hecckpt_protect(name64, x, 4, MPI_INT) == -EINVAL, "64 characters");
	CHECK(hecckpt_protect("a/b", x, 4, MPI_INT) == -EINVAL, "a slash");
	CHECK(hecckpt_protect(".", x, 4, MPI_INT) == -EINVAL, "a dot");
	CHECK(hecckpt_protect("-x", x, 4, MPI_INT) == -EINVAL, "a dash first");
	CHECK(hecckpt_protect("x", NULL, 4, MPI_INT) == -EINVAL, "NULL pointer");
	rc = hecckpt_protect("s", s, 2, MPI_SHORT);
	CHECK(rc == -ENOTSUP, "MPI_SHORT: %d", rc);
	CHECK(strstr(hecckpt_last_error(), "'s'") && strstr(hecckpt_last_error(), "unsupported MPI type"),
	      "MPI_SHORT's sentence: %s", hecckpt_last_error());
	CHECK(hecckpt_protect(name63, x, 4, MPI_INT) == 0, "63 characters: %s", hecckpt_last_error());
	CHECK(hecckpt_protect("Aa0_.-", x, 0, MPI_INT) == 0, "every character kind: %s",
	      hecckpt_last_error());
	CHECK(hecckpt_protect("nothing", NULL, 0, MPI_DOUBLE) == 0, "NULL with count 0");
	CHECK(hecckpt_unprotect("nope") == -ENOENT, "unprotect an unknown name");
	CHECK(hecckpt_unprotect(name63) == 0 && hecckpt_unprotect(name63) == -ENOENT, "unprotect twice");
	CHECK(hecckpt_need(&need) == -EINVAL && need == 0, "need before init");
	CHECK(hecckpt_checkpoint(&e) == -EINVAL, "checkpoint before init");
	CHECK(hecckpt_finalize() == -EINVAL, "finalize before init");
	CHECK(hecckpt_init(MPI_COMM_WORLD) == 0, "init: %s", hecckpt_last_error());
	CHECK(hecckpt_init(MPI_COMM_WORLD) == -EALREADY, "init twice");
	need = -1;
	CHECK(hecckpt_need(&need) == 0 && need == 0, "need standalone or outside hec: %d", need);
	if (!getenv("HEC_CKPT_DIR")) {
		rc = hecckpt_checkpoint(&e);
		CHECK(rc == -ENOTSUP, "checkpoint without HEC_CKPT_DIR: %d", rc);
		CHECK(strstr(hecckpt_last_error(), "HEC_CKPT_DIR"), "its sentence: %s", hecckpt_last_error());
	}
	CHECK(strcmp(hecckpt_strerror(-ENOTSUP), hecckpt_strerror(-EINVAL)), "strerror");
	CHECK(hecckpt_finalize() == 0 && hecckpt_init(MPI_COMM_WORLD) == 0, "finalize and init again");
	if (!failed)
		ok("the local contracts hold");
}

static void mode_agent(const char *expect)
{
	int need = 0, restarted, rc = 0;
	long long e = 0;
	int polls = 2000; /* 20 s: a count, so that every rank calls need as often */

	fill(3);
	protect_all();
	rc = hecckpt_restore(&restarted, &e);
	CHECK(rc == 0, "restore: %d %s", rc, hecckpt_last_error());
	if (expect[0] == '+') {
		rc = hecckpt_need(&need);
		CHECK(rc == 0 && need == 0, "need without a request: %d %d", rc, need);
		need = 1;
		expect++;
	}
	while (!need && polls-- > 0) {
		rc = hecckpt_need(&need);
		if (rc < 0)
			break;
		if (!need) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	if (rc == 0) {
		CHECK(need == 1, "need never said 1 within 20 s");
		rc = hecckpt_checkpoint(&e);
	}
	if (expect[0] >= '0' && expect[0] <= '9') {
		CHECK(rc == 0 && e == atoll(expect), "checkpoint: %d (%s) epoch %lld, expected %s", rc,
		      hecckpt_last_error(), e, expect);
		rc = hecckpt_need(&need);
		CHECK(rc == 0 && need == 0, "need after the checkpoint: %d %d", rc, need);
		if (!failed && rank == 0)
			printf("ok: checkpoint %lld taken by the agent\n", e);
	} else {
		same_failure("need or checkpoint", rc, errnum(expect));
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int rc, all;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	layout();
	if (!strcmp(mode, "api")) {
		mode_api();
	} else {
		rc = hecckpt_init(MPI_COMM_WORLD);
		if (rc < 0 && !strcmp(mode, "agent") && argc == 3 && argv[2][0] == 'E') {
			same_failure("init", rc, errnum(argv[2]));
			goto out;
		}
		if (rc < 0) {
			fprintf(stderr, "FAIL: rank %d: init: %s\n", rank, hecckpt_last_error());
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
		if (!strcmp(mode, "write") && argc == 3)
			mode_write(atoll(argv[2]));
		else if (!strcmp(mode, "read") && argc == 3)
			mode_read(atoll(argv[2]));
		else if (!strcmp(mode, "fail") && argc == 4)
			mode_fail(argv[2], argv[3]);
		else if (!strcmp(mode, "names") && argc == 3)
			mode_names(argv[2]);
		else if (!strcmp(mode, "wfail") && argc == 3)
			mode_wfail(argv[2]);
		else if (!strcmp(mode, "agent") && argc == 3)
			mode_agent(argv[2]);
		else {
			if (rank == 0)
				fprintf(stderr, "usage: hecckpt_prog write N | read E | fail ERR VARIANT | names VARIANT | wfail ERR | api | agent EXPECT\n");
			failed = 1;
		}
	}
	CHECK(hecckpt_finalize() == 0, "finalize: %s", hecckpt_last_error());
out:
	MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
	for (int i = 0; i < NARR; i++)
		free(arrs[i].p);
	MPI_Finalize();
	return all ? 1 : 0;
}
