/* SPDX-License-Identifier: BSD-3-Clause */
/* CUnit: hecctld's SQLite catalog (launcher/db.c) in a temporary directory. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "launcher/ctld.h"
#include "tests/unit/cunit_main.h"

static char dir[64];
static char path[PATH_MAX];

static void remove_db(void)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char p[PATH_MAX + 8];

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

static struct db *open_db(void)
{
	struct db *db = NULL;
	char err[256] = "";
	int rc = db_open(path, &db, err, sizeof(err));

	if (rc)
		fprintf(stderr, "db_open: %s\n", err);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return db;
}

static struct ctl_job *new_job(const char *name)
{
	struct ctl_job *j = calloc(1, sizeof(*j));

	snprintf(j->name, sizeof(j->name), "%s", name);
	j->uid = 1000;
	j->gid = 1001;
	snprintf(j->user, sizeof(j->user), "alice");
	j->state = JOB_PENDING;
	j->final_state = JOB_NSTATES;
	snprintf(j->reason, sizeof(j->reason), "Priority");
	j->nnodes = 2;
	j->ntasks = 5;
	j->time_limit = 120;
	j->priority = 3;
	j->submit_time = 1700000000;
	j->cwd = strdup("/home/alice");
	j->env = json_pack("[s,s]", "PATH=/usr/bin:/bin", "X=a b");
	j->argv = json_pack("[s,s]", "./pi", "10 00");
	j->output = strdup("out-%j.txt");
	j->error = NULL;
	j->command = job_command(j->argv, NULL, j->name);
	return j;
}

static int fixup(struct ctl_job *j, void *arg)
{
	char buf[PATH_MAX];
	int rc = job_expand_path(j->output, j->id, j->name, j->user, j->cwd, buf, sizeof(buf));

	(void)arg;
	if (rc)
		return rc;
	free(j->output);
	j->output = strdup(buf);
	return 0;
}

static int fail_fixup(struct ctl_job *j, void *arg)
{
	(void)j;
	(void)arg;
	return -ENAMETOOLONG;
}

struct loaded {
	struct ctl_job *jobs[8];
	int n;
};

static int collect(struct ctl_job *j, void *arg)
{
	struct loaded *l = arg;

	if (l->n >= 8) {
		job_free(j);
		return -E2BIG;
	}
	l->jobs[l->n++] = j;
	return 0;
}

static void free_loaded(struct loaded *l)
{
	for (int i = 0; i < l->n; i++)
		job_free(l->jobs[i]);
	l->n = 0;
}

/* Read a PRAGMA through a separate connection: what is on disk. */
static void pragma_text(const char *pragma, char *buf, size_t len)
{
	sqlite3 *h;
	sqlite3_stmt *st;

	buf[0] = 0;
	CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_prepare_v2(h, pragma, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
}

/*
 * A VFS over the default one that counts xSync calls on WAL files.  What
 * synchronous=FULL promises in WAL mode is visible there: every commit syncs
 * the WAL before it returns (NORMAL syncs it only at checkpoints), whatever
 * the catalog's private connection was told.
 */
static sqlite3_vfs *real_vfs;
static int wal_syncs;

struct count_file {
	sqlite3_file base;
	int wal;
	sqlite3_file *real;   /* follows this struct, szOsFile of the real VFS */
};

#define REAL(f) (((struct count_file *)(f))->real)

static int c_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int c_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}

static int c_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}

static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int c_sync(sqlite3_file *f, int flags)
{
	if (((struct count_file *)f)->wal)
		wal_syncs++;
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int c_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int c_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int c_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int c_check_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int c_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int c_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int c_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int c_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int c_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void c_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int c_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods count_io = {
	.iVersion = 2, /* no memory-mapped I/O: every page goes through xRead/xWrite */
	.xClose = c_close, .xRead = c_read, .xWrite = c_write, .xTruncate = c_truncate,
	.xSync = c_sync, .xFileSize = c_size, .xLock = c_lock, .xUnlock = c_unlock,
	.xCheckReservedLock = c_check_lock, .xFileControl = c_fcntl,
	.xSectorSize = c_sector, .xDeviceCharacteristics = c_devchar,
	.xShmMap = c_shm_map, .xShmLock = c_shm_lock, .xShmBarrier = c_shm_barrier,
	.xShmUnmap = c_shm_unmap,
};

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
	struct count_file *cf = (struct count_file *)f;
	int rc;

	(void)vfs;
	cf->real = (sqlite3_file *)(cf + 1);
	cf->wal = (flags & SQLITE_OPEN_WAL) != 0;
	rc = real_vfs->xOpen(real_vfs, name, cf->real, flags, out);
	cf->base.pMethods = cf->real->pMethods ? &count_io : NULL;
	return rc;
}

static int v_delete(sqlite3_vfs *v, const char *n, int sync)
{
	(void)v;
	return real_vfs->xDelete(real_vfs, n, sync);
}

static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
	(void)v;
	return real_vfs->xAccess(real_vfs, n, flags, out);
}

static int v_full(sqlite3_vfs *v, const char *n, int len, char *out)
{
	(void)v;
	return real_vfs->xFullPathname(real_vfs, n, len, out);
}

static int v_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, us);
}

static int v_time(sqlite3_vfs *v, double *out)
{
	(void)v;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int v_error(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static sqlite3_vfs count_vfs = {
	.iVersion = 1, .zName = "hec-count-syncs", .xOpen = c_open, .xDelete = v_delete,
	.xAccess = v_access, .xFullPathname = v_full, .xRandomness = v_random,
	.xSleep = v_sleep, .xCurrentTime = v_time, .xGetLastError = v_error,
};

/* The catalog opens its file with the default VFS: make ours the default. */
static int count_syncs_install(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs)
		return -1;
	count_vfs.szOsFile = (int)sizeof(struct count_file) + real_vfs->szOsFile;
	count_vfs.mxPathname = real_vfs->mxPathname;
	return sqlite3_vfs_register(&count_vfs, 1) == SQLITE_OK ? 0 : -1;
}

static void test_commit_is_synced(void)
{
	struct ctl_job *a = new_job("first"), *b = new_job("second");
	struct db *db;
	int before;

	remove_db();
	CU_ASSERT_EQUAL_FATAL(count_syncs_install(), 0);
	db = open_db();
	/* The first frames after open also sync the new WAL header (any mode). */
	CU_ASSERT_EQUAL(db_job_insert(db, a, NULL, NULL), 0);
	before = wal_syncs;
	CU_ASSERT_EQUAL(db_job_insert(db, b, NULL, NULL), 0);
	CU_ASSERT(wal_syncs > before); /* acknowledged = on disk */
	before = wal_syncs;
	a->state = JOB_RUNNING;
	CU_ASSERT_EQUAL(db_job_update(db, a), 0);
	CU_ASSERT(wal_syncs > before);
	db_close(db);
	sqlite3_vfs_unregister(&count_vfs);
	job_free(a);
	job_free(b);
}

static void test_wal_and_schema(void)
{
	struct db *db;
	char buf[32];

	remove_db();
	db = open_db();
	CU_ASSERT_EQUAL(db_journal_mode(db, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "wal");
	db_close(db);
	pragma_text("PRAGMA journal_mode", buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "wal"); /* WAL is persistent in the file */
	pragma_text("PRAGMA user_version", buf, sizeof(buf));
	CU_ASSERT_EQUAL(atoi(buf), DB_SCHEMA_VERSION);
	/* Reopening an existing catalog keeps it. */
	db = open_db();
	db_close(db);
}

static void test_submit_survives_reopen(void)
{
	struct loaded l = { .n = 0 };
	struct ctl_job *a, *b;
	struct db *db;
	char want[64];

	remove_db();
	db = open_db();
	a = new_job("pi");
	b = new_job("second");
	b->script = strdup("#!/bin/sh\necho hi\n");
	json_decref(b->argv);
	b->argv = NULL;
	b->error = strdup("/tmp/err");
	CU_ASSERT_EQUAL(db_job_insert(db, a, fixup, NULL), 0);
	CU_ASSERT_EQUAL(db_job_insert(db, b, NULL, NULL), 0);
	CU_ASSERT(a->id >= 1);
	CU_ASSERT_EQUAL(b->id, a->id + 1);
	snprintf(want, sizeof(want), "/home/alice/out-%ld.txt", a->id);
	CU_ASSERT_STRING_EQUAL(a->output, want);
	db_close(db);

	db = open_db();
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 2);
	CU_ASSERT_EQUAL(l.jobs[0]->id, a->id);
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->name, "pi");
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->user, "alice");
	CU_ASSERT_EQUAL(l.jobs[0]->uid, 1000);
	CU_ASSERT_EQUAL(l.jobs[0]->gid, 1001);
	CU_ASSERT_EQUAL(l.jobs[0]->state, JOB_PENDING);
	CU_ASSERT_EQUAL(l.jobs[0]->final_state, JOB_NSTATES);
	CU_ASSERT_EQUAL(l.jobs[0]->nnodes, 2);
	CU_ASSERT_EQUAL(l.jobs[0]->ntasks, 5);
	CU_ASSERT_EQUAL(l.jobs[0]->time_limit, 120);
	CU_ASSERT_EQUAL(l.jobs[0]->priority, 3);
	CU_ASSERT_EQUAL(l.jobs[0]->submit_time, 1700000000);
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->cwd, "/home/alice");
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->output, want);
	CU_ASSERT_PTR_NULL(l.jobs[0]->error);
	CU_ASSERT_PTR_NULL(l.jobs[0]->script);
	CU_ASSERT(json_equal(l.jobs[0]->env, a->env));
	CU_ASSERT(json_equal(l.jobs[0]->argv, a->argv));
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->command, "./pi '10 00'");
	CU_ASSERT_EQUAL(l.jobs[0]->nalloc, 0);
	CU_ASSERT_PTR_NULL(l.jobs[1]->argv);
	CU_ASSERT_STRING_EQUAL(l.jobs[1]->script, "#!/bin/sh\necho hi\n");
	CU_ASSERT_STRING_EQUAL(l.jobs[1]->error, "/tmp/err");
	free_loaded(&l);
	db_close(db);
	job_free(a);
	job_free(b);
}

static void test_failed_insert_leaves_nothing(void)
{
	struct loaded l = { .n = 0 };
	struct ctl_job *a = new_job("x");
	struct db *db;

	remove_db();
	db = open_db();
	CU_ASSERT_EQUAL(db_job_insert(db, a, fail_fixup, NULL), -ENAMETOOLONG);
	CU_ASSERT_EQUAL(a->id, 0);
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL(l.n, 0);
	/* The catalog is still usable after the rollback. */
	CU_ASSERT_EQUAL(db_job_insert(db, a, NULL, NULL), 0);
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL(l.n, 1);
	free_loaded(&l);
	db_close(db);
	job_free(a);
}

static void test_transitions_persist(void)
{
	const char *names[] = { "node0", "node1" };
	struct loaded l = { .n = 0 };
	struct ctl_job *a = new_job("t");
	struct db *db;

	remove_db();
	db = open_db();
	CU_ASSERT_EQUAL_FATAL(db_job_insert(db, a, NULL, NULL), 0);

	/* PENDING -> RUNNING on two nodes, START sent */
	CU_ASSERT_EQUAL(job_set_alloc(a, names, 2), 0);
	CU_ASSERT_EQUAL(a->alloc[0].ranks, 3);
	CU_ASSERT_EQUAL(a->alloc[1].ranks, 2);
	a->state = JOB_RUNNING;
	a->phase = PH_RUNNING;
	a->started = 1;
	a->start_time = 1700000100;
	snprintf(a->reason, sizeof(a->reason), "None");
	CU_ASSERT_EQUAL(db_job_update(db, a), 0);
	db_close(db);
	db = open_db();
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 1);
	CU_ASSERT_EQUAL(l.jobs[0]->state, JOB_RUNNING);
	CU_ASSERT_EQUAL(l.jobs[0]->final_state, JOB_NSTATES);
	CU_ASSERT_EQUAL(l.jobs[0]->started, 1);
	CU_ASSERT_EQUAL(l.jobs[0]->start_time, 1700000100);
	CU_ASSERT_EQUAL_FATAL(l.jobs[0]->nalloc, 2);
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->alloc[0].name, "node0");
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->alloc[1].name, "node1");
	CU_ASSERT_EQUAL(l.jobs[0]->alloc[0].ranks, 3);
	free_loaded(&l);

	/* outcome decided, teardown under way: still RUNNING with final_state */
	a->phase = PH_ENDING;
	a->final_state = JOB_FAILED;
	a->exit_code = 3;
	a->exited = 1;
	a->end_time = 1700000200;
	snprintf(a->reason, sizeof(a->reason), "exit code 3");
	CU_ASSERT_EQUAL(db_job_update(db, a), 0);
	db_close(db);
	db = open_db();
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 1);
	CU_ASSERT_EQUAL(l.jobs[0]->state, JOB_RUNNING);
	CU_ASSERT_EQUAL(l.jobs[0]->final_state, JOB_FAILED);
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->reason, "exit code 3");
	CU_ASSERT_EQUAL(l.jobs[0]->exit_code, 3);
	CU_ASSERT_EQUAL(l.jobs[0]->exited, 1);
	free_loaded(&l);

	/* final: it stays in the catalog, read back alone (no payload) */
	a->phase = PH_NONE;
	a->state = JOB_FAILED;
	CU_ASSERT_EQUAL(db_job_update(db, a), 0);
	db_close(db);
	db = open_db();
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL(l.n, 0);
	free_loaded(&l);
	{
		struct ctl_job *f = NULL;

		CU_ASSERT_EQUAL_FATAL(db_job_load(db, a->id, &f), 0);
		CU_ASSERT_EQUAL(f->state, JOB_FAILED);
		CU_ASSERT_EQUAL(f->final_state, JOB_NSTATES);
		CU_ASSERT_EQUAL(f->end_time, 1700000200);
		CU_ASSERT_EQUAL(f->exit_code, 3);
		CU_ASSERT_EQUAL(f->nalloc, 2);
		CU_ASSERT_PTR_NULL(f->env);
		CU_ASSERT_PTR_NULL(f->argv);
		CU_ASSERT_STRING_EQUAL(f->command, "./pi '10 00'");
		/* the payload comes back for a restart */
		CU_ASSERT_EQUAL(db_job_payload(db, f), 0);
		CU_ASSERT(json_equal(f->env, a->env));
		job_free(f);
		CU_ASSERT_EQUAL(db_job_load(db, a->id + 1, &f), -ENOENT);
		CU_ASSERT_PTR_NULL(f);
	}
	db_close(db);
	job_free(a);
}

static int collect_ended(struct ctl_job *j, void *arg)
{
	json_array_append_new(arg, json_integer(j->id));
	CU_ASSERT(job_state_final(j->state));
	CU_ASSERT_PTR_NOT_NULL(j->command);
	job_free(j);
	return 0;
}

/* db_jobs_ended: ended jobs only, newest first, a page at a time. */
static void test_ended_pages(void)
{
	struct ctl_job *j[6];
	json_t *ids = json_array();
	struct db *db;

	remove_db();
	db = open_db();
	for (int i = 0; i < 6; i++) {
		j[i] = new_job("e");
		CU_ASSERT_EQUAL_FATAL(db_job_insert(db, j[i], NULL, NULL), 0);
		/* the third stays pending, the others end */
		j[i]->state = i == 2 ? JOB_PENDING : i == 4 ? JOB_CANCELLED : JOB_COMPLETED;
		CU_ASSERT_EQUAL(db_job_update(db, j[i]), 0);
	}
	CU_ASSERT_EQUAL(db_jobs_ended(db, 0, 2, collect_ended, ids), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_size(ids), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, 0)), j[5]->id);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, 1)), j[4]->id);
	json_array_clear(ids);
	CU_ASSERT_EQUAL(db_jobs_ended(db, j[4]->id, 2, collect_ended, ids), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_size(ids), 2);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, 0)), j[3]->id);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, 1)), j[1]->id);
	json_array_clear(ids);
	CU_ASSERT_EQUAL(db_jobs_ended(db, j[1]->id, 2, collect_ended, ids), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_size(ids), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_array_get(ids, 0)), j[0]->id);
	json_decref(ids);
	for (int i = 0; i < 6; i++)
		job_free(j[i]);
	db_close(db);
}

static int collect_node(struct node *n, void *arg)
{
	struct node **out = arg;

	if (*out) {
		free(n->cpus);
		free(n);
		return -E2BIG;
	}
	*out = n;
	return 0;
}

static void test_nodes_persist(void)
{
	struct node n = { .name = "node0", .hostname = "h1", .addr = "127.0.0.1:4001",
			  .cores = 2, .pus = 4, .numa_nodes = 1, .memory_mb = 24000,
			  .last_seen = 1700000300, .state = NODE_IDLE };
	struct node *got = NULL;
	struct db *db;

	remove_db();
	db = open_db();
	n.cpus = "0-1";
	CU_ASSERT_EQUAL(db_node_save(db, &n), 0);
	n.cpus = "0";
	CU_ASSERT_EQUAL(db_node_save(db, &n), 0); /* re-register replaces */
	db_close(db);
	db = open_db();
	CU_ASSERT_EQUAL(db_nodes_load(db, collect_node, &got), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	CU_ASSERT_STRING_EQUAL(got->name, "node0");
	CU_ASSERT_STRING_EQUAL(got->hostname, "h1");
	CU_ASSERT_STRING_EQUAL(got->addr, "127.0.0.1:4001");
	CU_ASSERT_STRING_EQUAL(got->cpus, "0");
	CU_ASSERT_EQUAL(got->pus, 4);
	CU_ASSERT_EQUAL(got->memory_mb, 24000);
	CU_ASSERT_EQUAL(got->last_seen, 1700000300);
	CU_ASSERT_EQUAL(got->state, NODE_UNKNOWN); /* until it registers again */
	free(got->cpus);
	free(got);
	db_close(db);
}

static int count_node(struct node *n, void *arg)
{
	(*(int *)arg)++;
	free(n->cpus);
	free(n);
	return 0;
}

/* db_nodes_save: the nodes marked save_due, all of them in one
 * transaction, and only those; the marks are cleared. */
static void test_nodes_save_batch(void)
{
	struct node n[3] = {
		{ .name = "n1", .cpus = "", .save_due = 1, .last_seen = 1 },
		{ .name = "n2", .cpus = "", .save_due = 0, .last_seen = 2 },
		{ .name = "n3", .cpus = "0", .save_due = 1, .last_seen = 3 },
	};
	struct db *db;
	int count = 0;

	n[0].next = &n[1];
	n[1].next = &n[2];
	remove_db();
	db = open_db();
	CU_ASSERT_EQUAL(db_nodes_save(db, n), 0);
	CU_ASSERT_EQUAL(n[0].save_due + n[1].save_due + n[2].save_due, 0);
	db_close(db);
	db = open_db();
	CU_ASSERT_EQUAL(db_nodes_load(db, count_node, &count), 0);
	CU_ASSERT_EQUAL(count, 2); /* n2 was not due */
	db_close(db);
}

/* A vm job's checkpoint and restart settings, its guest key and a restart
 * under way survive close and reopen; automatic restarts are counted. */
static void test_ckpt_job_fields(void)
{
	struct loaded l = { .n = 0 };
	struct ctl_job *a = new_job("vm");
	struct db *db;
	int n = 0;

	remove_db();
	db = open_db();
	a->vm = 1;
	a->ckpt_interval = 300;
	a->ckpt_keep = 5;
	a->restart_auto = 1;
	a->max_restarts = 4;
	CU_ASSERT_EQUAL_FATAL(db_job_insert(db, a, NULL, NULL), 0);
	snprintf(a->guest_key, sizeof(a->guest_key), "0123456789abcdef");
	a->restore_epoch = 1765000000000001LL;
	a->restart_nodes = json_pack("[s,s]", "node2", "node3");
	a->ckpt_err_epoch = 1765000000000000LL;
	a->ckpt_err_time = 1700000250;
	snprintf(a->ckpt_err, sizeof(a->ckpt_err), "node1: disk full");
	CU_ASSERT_EQUAL(db_job_update(db, a), 0);
	/* two automatic restarts and one a user asked for */
	CU_ASSERT_EQUAL(db_restart_add(db, a->id, 1700000300, 11, "node1 not responding", &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(db_restart_add(db, a->id, 1700000400, 12, RESTART_BY_USER "uid 0", &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(db_restart_add(db, a->id, 1700000500, 13, "partition lost on node0", &n), 0);
	CU_ASSERT_EQUAL(n, 3);
	db_close(db);
	db = open_db();
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 1);
	CU_ASSERT_EQUAL(l.jobs[0]->ckpt_interval, 300);
	CU_ASSERT_EQUAL(l.jobs[0]->ckpt_keep, 5);
	CU_ASSERT_EQUAL(l.jobs[0]->restart_auto, 1);
	CU_ASSERT_EQUAL(l.jobs[0]->max_restarts, 4);
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->guest_key, "0123456789abcdef");
	CU_ASSERT_EQUAL(l.jobs[0]->restore_epoch, 1765000000000001LL);
	CU_ASSERT_EQUAL(json_array_size(l.jobs[0]->restart_nodes), 2);
	CU_ASSERT_EQUAL(l.jobs[0]->nrestarts, 2);
	CU_ASSERT_EQUAL(l.jobs[0]->ckpt_err_epoch, 1765000000000000LL);
	CU_ASSERT_EQUAL(l.jobs[0]->ckpt_err_time, 1700000250);
	CU_ASSERT_STRING_EQUAL(l.jobs[0]->ckpt_err, "node1: disk full");
	free_loaded(&l);
	/* a job submitted without the options gets the defaults */
	job_free(a);
	a = new_job("plain");
	a->ckpt_keep = 0;
	CU_ASSERT_EQUAL_FATAL(db_job_insert(db, a, NULL, NULL), 0);
	CU_ASSERT_EQUAL(db_jobs_load(db, collect, &l), 0);
	CU_ASSERT_EQUAL_FATAL(l.n, 2);
	CU_ASSERT_EQUAL(l.jobs[1]->ckpt_keep, 2);
	CU_ASSERT_EQUAL(l.jobs[1]->restart_auto, 0);
	CU_ASSERT_EQUAL(l.jobs[1]->restore_epoch, 0);
	CU_ASSERT_PTR_NULL(l.jobs[1]->restart_nodes);
	CU_ASSERT_EQUAL(l.jobs[1]->nrestarts, 0);
	CU_ASSERT_STRING_EQUAL(l.jobs[1]->ckpt_err, "");
	free_loaded(&l);
	db_close(db);
	job_free(a);
}

/* ckpts: pending before PREPARE, committed with its figures, listed by job
 * and state (the start's clean-up asks for every job's pending ones), the
 * newest committed below an epoch, deleted; restarts rows and updates. */
static void test_ckpt_rows(void)
{
	struct db *db;
	json_t *list = NULL, *nodes = json_pack("[s,s]", "node0", "node1");
	json_t *parts = json_pack("[{s:s,s:s,s:i,s:i}]", "part", "p0", "node", "node0", "bytes", 9,
				  "pause_us", 4000);
	int64_t e = 0;
	int n = 0;

	remove_db();
	db = open_db();
	CU_ASSERT_EQUAL(db_ckpt_newest(db, 7, 0, &e), -ENOENT);
	CU_ASSERT_EQUAL(db_ckpt_pending(db, 7, 100, 5, 1700000000), 0);
	CU_ASSERT_EQUAL(db_ckpt_pending(db, 7, 100, 5, 1700000000), -EIO); /* no twice */
	CU_ASSERT_EQUAL(db_ckpt_pending(db, 7, 200, 6, 1700000001), 0);
	CU_ASSERT_EQUAL(db_ckpt_pending(db, 8, 150, 7, 1700000002), 0);
	/* pending ones are no checkpoints yet */
	CU_ASSERT_EQUAL(db_ckpt_newest(db, 7, 0, &e), -ENOENT);
	CU_ASSERT_EQUAL(db_ckpt_commit(db, 7, 100, 9, 1500, nodes, parts), 0);
	CU_ASSERT_EQUAL(db_ckpt_commit(db, 7, 100, 9, 1500, nodes, parts), -ENOENT); /* once */
	CU_ASSERT_EQUAL(db_ckpt_commit(db, 7, 999, 9, 1500, nodes, parts), -ENOENT);
	CU_ASSERT_EQUAL(db_ckpt_commit(db, 7, 200, 10, 1600, nodes, parts), 0);
	CU_ASSERT_EQUAL(db_ckpt_newest(db, 7, 0, &e), 0);
	CU_ASSERT_EQUAL(e, 200);
	CU_ASSERT_EQUAL(db_ckpt_newest(db, 7, 200, &e), 0);
	CU_ASSERT_EQUAL(e, 100);
	CU_ASSERT_EQUAL(db_ckpt_newest(db, 7, 100, &e), -ENOENT);
	CU_ASSERT_EQUAL(db_ckpt_restored(db, 7, 100), 0);
	CU_ASSERT_EQUAL(db_ckpt_restored(db, 7, 555), -ENOENT);

	CU_ASSERT_EQUAL(db_ckpts_list(db, 0, "pending", &list), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_size(list), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(list, 0), "job")), 8);
	json_decref(list);
	CU_ASSERT_EQUAL(db_ckpts_list(db, 7, "committed", &list), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_size(list), 2);
	{
		const json_t *r = json_array_get(list, 0);

		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "epoch")), 100);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "bytes")), 9);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "duration_ms")), 1500);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "restored")), 1);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "t_ns")), 5);
		CU_ASSERT_EQUAL(json_array_size(json_object_get(r, "nodes")), 2);
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(
			json_object_get(r, "parts"), 0), "pause_us")), 4000);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "state")), "committed");
	}
	json_decref(list);
	CU_ASSERT_EQUAL(db_ckpts_list(db, 0, NULL, &list), 0);
	CU_ASSERT_EQUAL(json_array_size(list), 3);
	json_decref(list);
	CU_ASSERT_EQUAL(db_ckpt_delete(db, 7, 100), 0);
	CU_ASSERT_EQUAL(db_ckpt_delete(db, 7, 100), -ENOENT);
	CU_ASSERT_EQUAL(db_ckpt_newest(db, 7, 200, &e), -ENOENT);

	/* restarts: numbered per job; an update keeps what it is not given */
	CU_ASSERT_EQUAL(db_restart_add(db, 7, 1700000100, 200, "node1 not responding", &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(db_restart_add(db, 9, 1700000100, 1, "x", &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(db_restart_update(db, 7, 1, 200, nodes, NULL), 0);
	CU_ASSERT_EQUAL(db_restart_update(db, 7, 1, 100, NULL, "checkpoint 200 did not load"), 0);
	CU_ASSERT_EQUAL(db_restart_update(db, 7, 2, 100, NULL, NULL), -ENOENT);
	CU_ASSERT_EQUAL(db_restarts_list(db, 7, &list), 0);
	CU_ASSERT_EQUAL_FATAL(json_array_size(list), 1);
	{
		const json_t *r = json_array_get(list, 0);

		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "epoch")), 100);
		CU_ASSERT_EQUAL(json_array_size(json_object_get(r, "nodes")), 2);
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "error")),
				       "checkpoint 200 did not load");
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r, "reason")),
				       "node1 not responding");
		CU_ASSERT_EQUAL(json_integer_value(json_object_get(r, "time")), 1700000100);
	}
	json_decref(list);
	db_close(db);
	json_decref(nodes);
	json_decref(parts);
}

/* Retention: the oldest beyond --ckpt-keep, never the one a restart uses. */
static void test_retention(void)
{
	const int64_t e[] = { 10, 20, 30, 40 };
	int64_t del[4];

	CU_ASSERT_EQUAL(ckpt_retention(e, 4, 2, 0, del), 2);
	CU_ASSERT_EQUAL(del[0], 10);
	CU_ASSERT_EQUAL(del[1], 20);
	CU_ASSERT_EQUAL(ckpt_retention(e, 4, 4, 0, del), 0);
	CU_ASSERT_EQUAL(ckpt_retention(e, 4, 9, 0, del), 0);
	CU_ASSERT_EQUAL(ckpt_retention(e, 4, 1, 0, del), 3);
	CU_ASSERT_EQUAL(del[2], 30);
	/* a restart loads 10: it stays, the next oldest goes instead */
	CU_ASSERT_EQUAL(ckpt_retention(e, 4, 2, 10, del), 2);
	CU_ASSERT_EQUAL(del[0], 20);
	CU_ASSERT_EQUAL(del[1], 30);
	CU_ASSERT_EQUAL(ckpt_retention(e, 4, 3, 40, del), 1);
	CU_ASSERT_EQUAL(del[0], 10);
	CU_ASSERT_EQUAL(ckpt_retention(e, 0, 2, 0, del), 0);
}

/* The catalog (every job's environment and script) is its owner's alone:
 * created 0600, and an older one left 0644 is made so when opened; a link
 * planted where it goes is not followed. */
static void test_catalog_mode(void)
{
	struct db *db, *d = NULL;
	char err[256] = "";
	struct stat sb;

	remove_db();
	db = open_db();
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0600);
	db_close(db);
	CU_ASSERT_EQUAL(chmod(path, 0644), 0);
	db = open_db();
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 07777, 0600);
	db_close(db);
	remove_db();
	CU_ASSERT_EQUAL_FATAL(symlink("/dev/null", path), 0);
	CU_ASSERT_NOT_EQUAL(db_open(path, &d, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NULL(d);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
	unlink(path);
}

static void test_newer_schema_refused(void)
{
	struct db *db = NULL;
	char err[256] = "";
	sqlite3 *h;

	remove_db();
	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &h), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(h, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	CU_ASSERT_EQUAL(db_open(path, &db, err, sizeof(err)), -EPROTO);
	CU_ASSERT_PTR_NULL(db);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "schema version 99"));
}

static void test_helpers(void)
{
	char buf[64];

	CU_ASSERT_EQUAL(job_expand_path("o-%j-%x-%u-%%-%q", 12, "pi", "bob", "/w", buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/w/o-12-pi-bob-%-%q");
	CU_ASSERT_EQUAL(job_expand_path("/abs/%j.out", 7, "n", "u", "/w", buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "/abs/7.out");
	CU_ASSERT_EQUAL(job_expand_path("/abs/%j.out", 7, "n", "u", "/w", buf, 5), -ENAMETOOLONG);
	format_limit(2, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "0:02");
	format_limit(5400, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1:30:00");
	format_limit(86400 * 2 + 61, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2-00:01:01");
	reason_for_node(buf, sizeof(buf), "node1", "cgroup: Permission denied");
	CU_ASSERT_STRING_EQUAL(buf, "node1: cgroup: Permission denied");
	reason_for_node(buf, sizeof(buf), "node1", "node1: cgroup: Permission denied");
	CU_ASSERT_STRING_EQUAL(buf, "node1: cgroup: Permission denied");
	CU_ASSERT_EQUAL(job_state_parse("NODE_FAIL"), JOB_NODE_FAIL);
	CU_ASSERT_EQUAL(job_state_parse("BOGUS"), -EINVAL);
	CU_ASSERT_STRING_EQUAL(job_state_name(JOB_TIMEOUT), "TIMEOUT");
}

int main(void)
{
	static const struct hec_cunit_test tests[] = {
		{ "WAL mode and schema version", test_wal_and_schema },
		{ "every commit syncs the WAL (synchronous=FULL)", test_commit_is_synced },
		{ "a submitted job survives close and reopen", test_submit_survives_reopen },
		{ "a failed insert stores nothing", test_failed_insert_leaves_nothing },
		{ "state transitions persist", test_transitions_persist },
		{ "ended jobs listed a page at a time", test_ended_pages },
		{ "nodes persist and reload UNKNOWN", test_nodes_persist },
		{ "node registrations saved together", test_nodes_save_batch },
		{ "checkpoint and restart fields of a job persist", test_ckpt_job_fields },
		{ "checkpoint and restart rows", test_ckpt_rows },
		{ "retention chooses the oldest, never a restart's", test_retention },
		{ "a newer schema is refused", test_newer_schema_refused },
		{ "the catalog is its owner's alone", test_catalog_mode },
		{ "path, limit and reason helpers", test_helpers },
		{ NULL, NULL },
	};
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/hec-test-db-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 99;
	}
	snprintf(path, sizeof(path), "%s/hec.db", dir);
	rc = hec_cunit_run("db", tests);
	remove_db();
	rmdir(dir);
	return rc;
}
