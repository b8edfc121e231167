/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The controller's catalog: one SQLite file in WAL mode with
 * synchronous=FULL, so a transaction that returned from COMMIT survives a
 * kill -9 or a power cut.  The schema version lives in PRAGMA user_version;
 * a catalog written by a newer hecctld is refused rather than misread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ctld.h"

struct db {
	sqlite3 *h;
	sqlite3_stmt *ins_job, *upd_job, *set_paths, *save_node;
	char insert_why[256]; /* db_job_insert_error() */
};

static const char schema_v1[] =
	"CREATE TABLE jobs ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, user TEXT NOT NULL,"
	" state TEXT NOT NULL, final_state TEXT, reason TEXT NOT NULL DEFAULT '',"
	" nodes INTEGER NOT NULL, ntasks INTEGER NOT NULL, time_limit INTEGER NOT NULL,"
	" priority INTEGER NOT NULL, submit_time INTEGER NOT NULL,"
	" start_time INTEGER NOT NULL DEFAULT 0, end_time INTEGER NOT NULL DEFAULT 0,"
	" cwd TEXT NOT NULL, env TEXT NOT NULL, argv TEXT, script TEXT,"
	" output TEXT NOT NULL, error TEXT, nodelist TEXT NOT NULL DEFAULT '[]',"
	" exit_code INTEGER NOT NULL DEFAULT 0, signal INTEGER NOT NULL DEFAULT 0,"
	" exited INTEGER NOT NULL DEFAULT 0, started INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE nodes ("
	" name TEXT PRIMARY KEY, hostname TEXT NOT NULL, addr TEXT NOT NULL, cpus TEXT NOT NULL,"
	" cores INTEGER NOT NULL, pus INTEGER NOT NULL, numa_nodes INTEGER NOT NULL,"
	" memory_mb INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
	"PRAGMA user_version = 1;";

/* Version 2: gang scheduling.  A new catalog is made as version 1 and then
 * migrated, so there is one path to every version. */
static const char migrate_v2[] =
	"ALTER TABLE jobs ADD COLUMN share INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN mem_mb INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN slot INTEGER NOT NULL DEFAULT -1;"
	"PRAGMA user_version = 2;";

/* Version 3: partition kinds (vm: QEMU guests). */
static const char migrate_v3[] =
	"ALTER TABLE jobs ADD COLUMN partition TEXT NOT NULL DEFAULT 'proc';"
	"ALTER TABLE jobs ADD COLUMN vcpus INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN vm_files TEXT;"
	"PRAGMA user_version = 3;";

/* Version 4: coordinated checkpoints and restarts (doc/design.md,
 * "Checkpoint and restart").  A checkpoint row is 'pending' from PREPARE
 * until its manifest is committed on the storage servers ('committed');
 * the restarts of a job are its history for `hec show`. */
static const char migrate_v4[] =
	"ALTER TABLE jobs ADD COLUMN ckpt_interval INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN ckpt_keep INTEGER NOT NULL DEFAULT 2;"
	"ALTER TABLE jobs ADD COLUMN restart TEXT NOT NULL DEFAULT 'none';"
	"ALTER TABLE jobs ADD COLUMN max_restarts INTEGER NOT NULL DEFAULT 3;"
	"ALTER TABLE jobs ADD COLUMN guest_key TEXT;"
	"ALTER TABLE jobs ADD COLUMN restore_epoch INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN restart_nodes TEXT;"
	"CREATE TABLE ckpts ("
	" job INTEGER NOT NULL, epoch INTEGER NOT NULL, state TEXT NOT NULL,"
	" t_ns INTEGER NOT NULL, created INTEGER NOT NULL, bytes INTEGER NOT NULL DEFAULT 0,"
	" duration_ms INTEGER NOT NULL DEFAULT 0, nodes TEXT NOT NULL DEFAULT '[]',"
	" parts TEXT NOT NULL DEFAULT '[]', restored INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (job, epoch));"
	"CREATE TABLE restarts ("
	" job INTEGER NOT NULL, n INTEGER NOT NULL, time INTEGER NOT NULL,"
	" epoch INTEGER NOT NULL, reason TEXT NOT NULL, nodes TEXT NOT NULL DEFAULT '[]',"
	" error TEXT, PRIMARY KEY (job, n));"
	"PRAGMA user_version = 4;";

static const char migrate_v5[] =
	"CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"ALTER TABLE jobs ADD COLUMN susp_ms INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN susp_since_ms INTEGER NOT NULL DEFAULT 0;"
	"PRAGMA user_version = 5;";

/* Version 6: ended jobs leave the controller's memory, so a job's last
 * checkpoint failure (`hec ckpts`: last_error) is kept with its row. */
static const char migrate_v6[] =
	"ALTER TABLE jobs ADD COLUMN ckpt_err TEXT;"
	"ALTER TABLE jobs ADD COLUMN ckpt_err_epoch INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN ckpt_err_time INTEGER NOT NULL DEFAULT 0;"
	"PRAGMA user_version = 6;";

static const char sql_ins_job[] =
	"INSERT INTO jobs (name, uid, gid, user, state, reason, nodes, ntasks, time_limit,"
	" priority, submit_time, cwd, env, argv, script, output, error, share, mem_mb,"
	" partition, vcpus, vm_files, ckpt_interval, ckpt_keep, restart, max_restarts)"
	" VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
static const char sql_upd_job[] =
	"UPDATE jobs SET state=?, final_state=?, reason=?, start_time=?, end_time=?,"
	" nodelist=?, exit_code=?, signal=?, exited=?, started=?, slot=?, guest_key=?,"
	" restore_epoch=?, restart_nodes=?, susp_ms=?, susp_since_ms=?, ckpt_err=?,"
	" ckpt_err_epoch=?, ckpt_err_time=? WHERE id=?";
static const char sql_set_paths[] = "UPDATE jobs SET output=?, error=? WHERE id=?";
static const char sql_save_node[] =
	"INSERT OR REPLACE INTO nodes (name, hostname, addr, cpus, cores, pus, numa_nodes,"
	" memory_mb, last_seen) VALUES (?,?,?,?,?,?,?,?,?)";

const char *db_errmsg(struct db *db)
{
	return db && db->h ? sqlite3_errmsg(db->h) : "no catalog";
}

static int exec(struct db *db, const char *sql)
{
	return sqlite3_exec(db->h, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int pragma_int(struct db *db, const char *sql, long *out)
{
	sqlite3_stmt *st;
	int rc = -EIO;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*out = (long)sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int db_journal_mode(struct db *db, char *buf, size_t len)
{
	sqlite3_stmt *st;
	int rc = -EIO;

	if (sqlite3_prepare_v2(db->h, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static int set_up(struct db *db, char *err, size_t errlen)
{
	char mode[16] = "";
	long version;

	/* A second process on the same catalog (hec tools reading it) must not
	 * make the controller fail: wait a little for locks. */
	sqlite3_busy_timeout(db->h, 5000);
	if (db_journal_mode(db, mode, sizeof(mode)) || exec(db, "PRAGMA journal_mode=WAL") ||
	    exec(db, "PRAGMA synchronous=FULL") || exec(db, "PRAGMA foreign_keys=ON")) {
		snprintf(err, errlen, "cannot set WAL mode: %s", sqlite3_errmsg(db->h));
		return -EIO;
	}
	if (db_journal_mode(db, mode, sizeof(mode)) || strcmp(mode, "wal")) {
		snprintf(err, errlen, "journal mode is '%s', not 'wal' (is the file system local?)",
			 mode);
		return -EIO;
	}
	if (pragma_int(db, "PRAGMA user_version", &version)) {
		snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db->h));
		return -EIO;
	}
	if (version > DB_SCHEMA_VERSION) {
		snprintf(err, errlen, "schema version %ld is newer than this hecctld's (%d)",
			 version, DB_SCHEMA_VERSION);
		return -EPROTO;
	}
	if (version < DB_SCHEMA_VERSION) {
		/* All steps in one transaction: a crash leaves the old version. */
		if (exec(db, "BEGIN IMMEDIATE"))
			goto sql_error;
		if ((version < 1 && exec(db, schema_v1)) || (version < 2 && exec(db, migrate_v2)) ||
		    (version < 3 && exec(db, migrate_v3)) || (version < 4 && exec(db, migrate_v4)) ||
		    (version < 5 && exec(db, migrate_v5)) || exec(db, migrate_v6)) {
			snprintf(err, errlen, "cannot %s the schema: %s",
				 version ? "upgrade" : "create", sqlite3_errmsg(db->h));
			exec(db, "ROLLBACK");
			return -EIO;
		}
		if (exec(db, "COMMIT"))
			goto sql_error;
	}
	if (sqlite3_prepare_v2(db->h, sql_ins_job, -1, &db->ins_job, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h, sql_upd_job, -1, &db->upd_job, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h, sql_set_paths, -1, &db->set_paths, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h, sql_save_node, -1, &db->save_node, NULL) != SQLITE_OK)
		goto sql_error;
	return 0;

sql_error:
	snprintf(err, errlen, "%s", sqlite3_errmsg(db->h));
	return -EIO;
}

int db_open(const char *path, struct db **out, char *err, size_t errlen)
{
	struct db *db = calloc(1, sizeof(*db));
	int rc;

	if (!db) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	/* The catalog holds every job's environment and script: its owner's
	 * alone, from its first byte (SQLite gives its -wal and -shm files
	 * the database's mode), and so is an older one opened again. */
	{
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0 || fchmod(fd, 0600)) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			rc = -errno;
			free(db);
			return rc;
		}
		close(fd);
	}
	rc = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s", db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		rc = -EIO;
		goto err_close;
	}
	rc = set_up(db, err, errlen);
	if (rc)
		goto err_close;
	*out = db;
	return 0;

err_close:
	db_close(db);
	return rc;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	sqlite3_finalize(db->ins_job);
	sqlite3_finalize(db->upd_job);
	sqlite3_finalize(db->set_paths);
	sqlite3_finalize(db->save_node);
	sqlite3_close(db->h);
	free(db);
}

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Bind a JSON value as compact text (NULL stays NULL). */
static int bind_json(sqlite3_stmt *st, int i, const json_t *v)
{
	char *text;
	int rc;

	if (!v)
		return sqlite3_bind_null(st, i);
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return SQLITE_NOMEM;
	rc = sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
	free(text);
	return rc;
}

/* Run a prepared statement that returns no rows, then reset it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int db_job_insert(struct db *db, struct ctl_job *j,
		  int (*fixup)(struct ctl_job *j, void *arg), void *arg)
{
	sqlite3_stmt *st = db->ins_job;
	int rc;

	db->insert_why[0] = 0;
	if (exec(db, "BEGIN IMMEDIATE")) {
		snprintf(db->insert_why, sizeof(db->insert_why), "%s", sqlite3_errmsg(db->h));
		return -EIO;
	}
	bind_text(st, 1, j->name);
	sqlite3_bind_int64(st, 2, j->uid);
	sqlite3_bind_int64(st, 3, j->gid);
	bind_text(st, 4, j->user);
	bind_text(st, 5, job_state_name(j->state));
	bind_text(st, 6, j->reason);
	sqlite3_bind_int(st, 7, j->nnodes);
	sqlite3_bind_int(st, 8, j->ntasks);
	sqlite3_bind_int64(st, 9, j->time_limit);
	sqlite3_bind_int(st, 10, j->priority);
	sqlite3_bind_int64(st, 11, j->submit_time);
	bind_text(st, 12, j->cwd);
	if (!j->env)
		bind_text(st, 13, "[]");
	else if (bind_json(st, 13, j->env) != SQLITE_OK) {
		rc = -ENOMEM;
		goto err_rollback;
	}
	if (bind_json(st, 14, j->argv) != SQLITE_OK) {
		rc = -ENOMEM;
		goto err_rollback;
	}
	bind_text(st, 15, j->script);
	bind_text(st, 16, j->output ? j->output : "");
	bind_text(st, 17, j->error);
	sqlite3_bind_int(st, 18, j->share ? 1 : 0);
	sqlite3_bind_int64(st, 19, j->mem_mb);
	bind_text(st, 20, j->vm ? "vm" : "proc");
	sqlite3_bind_int(st, 21, j->vcpus);
	if (bind_json(st, 22, j->vm_files) != SQLITE_OK) {
		rc = -ENOMEM;
		goto err_rollback;
	}
	sqlite3_bind_int64(st, 23, j->ckpt_interval);
	sqlite3_bind_int(st, 24, j->ckpt_keep > 0 ? j->ckpt_keep : 2);
	bind_text(st, 25, j->restart_auto ? "auto" : "none");
	sqlite3_bind_int(st, 26, j->max_restarts);
	rc = step_done(st);
	if (rc)
		goto err_rollback;
	j->id = (long)sqlite3_last_insert_rowid(db->h);
	if (fixup) {
		rc = fixup(j, arg);
		if (rc)
			goto err_rollback;
		st = db->set_paths;
		bind_text(st, 1, j->output ? j->output : "");
		bind_text(st, 2, j->error);
		sqlite3_bind_int64(st, 3, j->id);
		rc = step_done(st);
		if (rc)
			goto err_rollback;
	}
	if (exec(db, "COMMIT")) {
		rc = -EIO;
		goto err_rollback;
	}
	return 0;

err_rollback:
	/* the first failure is the news: the rollback's own result would
	 * replace SQLite's sentence (and a full disk has already rolled the
	 * transaction back: "cannot rollback - no transaction is active") */
	if (rc == -EIO)
		snprintf(db->insert_why, sizeof(db->insert_why), "%s", sqlite3_errmsg(db->h));
	sqlite3_reset(db->ins_job);
	sqlite3_clear_bindings(db->ins_job);
	if (!sqlite3_get_autocommit(db->h))
		exec(db, "ROLLBACK");
	j->id = 0;
	return rc;
}

int db_setting_put(struct db *db, const char *key, const char *value)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db->h, value ? "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)" :
				      "DELETE FROM settings WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	if (value)
		sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

int db_setting_get(struct db *db, const char *key, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;
	int rc;

	if (sqlite3_prepare_v2(db->h, "SELECT value FROM settings WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		v = sqlite3_column_text(st, 0);
		rc = snprintf(buf, len, "%s", v ? (const char *)v : "") >= (int)len ? -ENOSPC : 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

const char *db_job_insert_error(const struct db *db)
{
	return db->insert_why;
}

static json_t *nodelist_json(const struct ctl_job *j)
{
	json_t *a = json_array();

	for (int i = 0; a && i < j->nalloc; i++)
		json_array_append_new(a, json_string(j->alloc[i].name));
	return a;
}

int db_job_update(struct db *db, const struct ctl_job *j)
{
	sqlite3_stmt *st = db->upd_job;
	json_t *nl = nodelist_json(j);
	int rc;

	bind_text(st, 1, job_state_name(j->state));
	bind_text(st, 2, j->phase == PH_ENDING ? job_state_name(j->final_state) : NULL);
	bind_text(st, 3, j->reason);
	sqlite3_bind_int64(st, 4, j->start_time);
	sqlite3_bind_int64(st, 5, j->end_time);
	rc = bind_json(st, 6, nl);
	json_decref(nl);
	if (rc != SQLITE_OK) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return -ENOMEM;
	}
	sqlite3_bind_int(st, 7, j->exit_code);
	sqlite3_bind_int(st, 8, j->sig);
	sqlite3_bind_int(st, 9, j->exited);
	sqlite3_bind_int(st, 10, j->started);
	sqlite3_bind_int(st, 11, j->slot);
	bind_text(st, 12, j->guest_key[0] ? j->guest_key : NULL);
	sqlite3_bind_int64(st, 13, j->restore_epoch);
	if (bind_json(st, 14, j->restart_nodes) != SQLITE_OK) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return -ENOMEM;
	}
	sqlite3_bind_int64(st, 15, j->susp_ns / 1000000);
	sqlite3_bind_int64(st, 16, j->susp_since_ns / 1000000);
	bind_text(st, 17, j->ckpt_err[0] ? j->ckpt_err : NULL);
	sqlite3_bind_int64(st, 18, j->ckpt_err_epoch);
	sqlite3_bind_int64(st, 19, j->ckpt_err_time);
	sqlite3_bind_int64(st, 20, j->id);
	return step_done(st);
}

static char *col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(buf, len, "%s", t ? (const char *)t : "");
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? json_loads((const char *)t, JSON_DECODE_ANY, NULL) : NULL;
}

int db_job_payload(struct db *db, struct ctl_job *j)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db->h, "SELECT env, argv, script FROM jobs WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, j->id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		json_t *env = col_json(st, 0), *argv = col_json(st, 1);
		char *script = col_strdup(st, 2);

		if (json_is_array(env) && (!argv || json_is_array(argv))) {
			job_drop_payload(j);
			j->env = env;
			j->argv = argv;
			j->script = script;
			rc = 0;
		} else {
			json_decref(env);
			json_decref(argv);
			free(script);
			rc = -EIO;
		}
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Build a job from a row of the SELECT in db_jobs_load(). */
static struct ctl_job *job_from_row(sqlite3_stmt *st)
{
	struct ctl_job *j = calloc(1, sizeof(*j));
	json_t *nl = NULL;
	int s;

	if (!j)
		return NULL;
	j->id = (long)sqlite3_column_int64(st, 0);
	col_copy(st, 1, j->name, sizeof(j->name));
	j->uid = (uid_t)sqlite3_column_int64(st, 2);
	j->gid = (gid_t)sqlite3_column_int64(st, 3);
	col_copy(st, 4, j->user, sizeof(j->user));
	s = job_state_parse((const char *)sqlite3_column_text(st, 5));
	j->state = s < 0 ? JOB_FAILED : (enum job_state)s;
	j->final_state = JOB_NSTATES;
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		s = job_state_parse((const char *)sqlite3_column_text(st, 6));
		j->final_state = s < 0 ? JOB_FAILED : (enum job_state)s;
	}
	col_copy(st, 7, j->reason, sizeof(j->reason));
	j->nnodes = sqlite3_column_int(st, 8);
	j->ntasks = sqlite3_column_int(st, 9);
	j->time_limit = (long)sqlite3_column_int64(st, 10);
	j->priority = sqlite3_column_int(st, 11);
	j->submit_time = sqlite3_column_int64(st, 12);
	j->start_time = sqlite3_column_int64(st, 13);
	j->end_time = sqlite3_column_int64(st, 14);
	j->cwd = col_strdup(st, 15);
	j->env = col_json(st, 16);
	j->argv = col_json(st, 17);
	j->script = col_strdup(st, 18);
	j->output = col_strdup(st, 19);
	j->error = col_strdup(st, 20);
	nl = col_json(st, 21);
	j->exit_code = sqlite3_column_int(st, 22);
	j->sig = sqlite3_column_int(st, 23);
	j->exited = sqlite3_column_int(st, 24);
	j->started = sqlite3_column_int(st, 25);
	j->share = sqlite3_column_int(st, 26) != 0;
	j->mem_mb = (long)sqlite3_column_int64(st, 27);
	j->slot = sqlite3_column_int(st, 28);
	j->vm = sqlite3_column_text(st, 29) && !strcmp((const char *)sqlite3_column_text(st, 29), "vm");
	j->vcpus = sqlite3_column_int(st, 30);
	j->vm_files = col_json(st, 31);
	j->ckpt_interval = (long)sqlite3_column_int64(st, 32);
	j->ckpt_keep = sqlite3_column_int(st, 33);
	j->restart_auto = sqlite3_column_text(st, 34) &&
			  !strcmp((const char *)sqlite3_column_text(st, 34), "auto");
	j->max_restarts = sqlite3_column_int(st, 35);
	col_copy(st, 36, j->guest_key, sizeof(j->guest_key));
	j->restore_epoch = sqlite3_column_int64(st, 37);
	j->restart_nodes = col_json(st, 38);
	j->nrestarts = sqlite3_column_int(st, 39);
	j->susp_ns = sqlite3_column_int64(st, 40) * 1000000;
	j->susp_since_ns = sqlite3_column_int64(st, 41) * 1000000;
	col_copy(st, 42, j->ckpt_err, sizeof(j->ckpt_err));
	j->ckpt_err_epoch = sqlite3_column_int64(st, 43);
	j->ckpt_err_time = sqlite3_column_int64(st, 44);
	if (j->susp_ns < 0 || j->susp_since_ns < 0)
		goto err_free;
	if (j->ckpt_keep < 1)
		j->ckpt_keep = 1;
	if (j->ckpt_interval < 0 || j->max_restarts < 0 || j->restore_epoch < 0)
		goto err_free;
	if (j->restart_nodes && !json_is_array(j->restart_nodes))
		goto err_free;
	if (j->vcpus < 0 || j->vcpus > 64)
		j->vcpus = 0;
	if (j->vm_files && !json_is_array(j->vm_files))
		goto err_free;
	if (j->mem_mb < 0)
		j->mem_mb = 0;
	if (!j->cwd || !j->output || !j->env || !json_is_array(j->env) ||
	    (j->argv && !json_is_array(j->argv)))
		goto err_free;
	if (json_is_array(nl) && json_array_size(nl) > 0) {
		size_t n = json_array_size(nl), i;
		const char **names = calloc(n, sizeof(*names));

		if (!names)
			goto err_free;
		for (i = 0; i < n; i++) {
			names[i] = json_string_value(json_array_get(nl, i));
			if (!names[i])
				names[i] = "?";
		}
		s = job_set_alloc(j, names, (int)n);
		free(names);
		if (s)
			goto err_free;
	}
	json_decref(nl);
	j->command = job_command(j->argv, j->script, j->name);
	if (!j->command)
		goto err_free_job;
	return j;

err_free:
	json_decref(nl);
err_free_job:
	job_free(j);
	return NULL;
}

/* The columns job_from_row() reads; @env and @script: those columns, or
 * stand-ins where the payload is not wanted (a listing). */
#define JOB_COLS(env, script) \
	"SELECT id, name, uid, gid, user, state, final_state, reason, nodes, ntasks," \
	" time_limit, priority, submit_time, start_time, end_time, cwd, " env ", argv, " script "," \
	" output, error, nodelist, exit_code, signal, exited, started, share, mem_mb, slot," \
	" partition, vcpus, vm_files, ckpt_interval, ckpt_keep, restart, max_restarts," \
	" guest_key, restore_epoch, restart_nodes," \
	" (SELECT COUNT(*) FROM restarts r WHERE r.job = jobs.id AND r.reason NOT LIKE '" \
	RESTART_BY_USER "%'), susp_ms, susp_since_ms, ckpt_err, ckpt_err_epoch, ckpt_err_time" \
	" FROM jobs "
/* The final states (job_state_final): a job in one lives in the catalog only */
#define JOBS_ENDED "state IN ('COMPLETED','FAILED','CANCELLED','TIMEOUT','NODE_FAIL')"

/* Step @st (bound), calling @cb with each row's job.  \return as db_jobs_load. */
static int jobs_select(sqlite3_stmt *st, int (*cb)(struct ctl_job *j, void *arg), void *arg)
{
	int rc = 0, step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct ctl_job *j = job_from_row(st);

		if (!j) {
			/* One unreadable row must not keep the controller down:
			 * the caller logs the id it could not read. */
			j = calloc(1, sizeof(*j));
			if (!j) {
				rc = -ENOMEM;
				break;
			}
			j->id = (long)sqlite3_column_int64(st, 0);
			j->state = JOB_NSTATES; /* marks "unreadable" to @cb */
		}
		rc = cb(j, arg);
		if (rc)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

int db_jobs_load(struct db *db, int (*cb)(struct ctl_job *j, void *arg), void *arg)
{
	static const char sql[] = JOB_COLS("env", "script") "WHERE NOT " JOBS_ENDED " ORDER BY id";
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	return jobs_select(st, cb, arg);
}

static int take_one(struct ctl_job *j, void *arg)
{
	job_drop_payload(j); /* the stand-ins: db_job_payload reads the real ones */
	*(struct ctl_job **)arg = j;
	return 0;
}

int db_job_load(struct db *db, long id, struct ctl_job **out)
{
	static const char sql[] = JOB_COLS("'[]'", "NULL") "WHERE id = ?";
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	rc = jobs_select(st, take_one, out);
	if (!rc && !*out)
		return -ENOENT;
	if (!rc && (*out)->state == JOB_NSTATES) {
		job_free(*out);
		*out = NULL;
		return -EIO;
	}
	return rc;
}

int db_jobs_ended(struct db *db, long before, int limit,
		  int (*cb)(struct ctl_job *j, void *arg), void *arg)
{
	static const char sql[] = JOB_COLS("'[]'", "NULL")
		"WHERE " JOBS_ENDED " AND (?1 <= 0 OR id < ?1) ORDER BY id DESC LIMIT ?2";
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int(st, 2, limit);
	return jobs_select(st, cb, arg);
}

int db_node_save(struct db *db, const struct node *n)
{
	sqlite3_stmt *st = db->save_node;

	bind_text(st, 1, n->name);
	bind_text(st, 2, n->hostname);
	bind_text(st, 3, n->addr);
	bind_text(st, 4, n->cpus ? n->cpus : "");
	sqlite3_bind_int64(st, 5, n->cores);
	sqlite3_bind_int64(st, 6, n->pus);
	sqlite3_bind_int64(st, 7, n->numa_nodes);
	sqlite3_bind_int64(st, 8, n->memory_mb);
	sqlite3_bind_int64(st, 9, n->last_seen);
	return step_done(st);
}

int db_nodes_save(struct db *db, struct node *list)
{
	struct node *n;
	int rc = 0;

	if (exec(db, "BEGIN IMMEDIATE"))
		return -EIO;
	for (n = list; !rc && n; n = n->next)
		if (n->save_due)
			rc = db_node_save(db, n);
	if (rc || exec(db, "COMMIT")) {
		exec(db, "ROLLBACK");
		return -EIO;
	}
	for (n = list; n; n = n->next)
		n->save_due = 0;
	return 0;
}

int db_nodes_load(struct db *db, int (*cb)(struct node *n, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT name, hostname, addr, cpus, cores, pus, numa_nodes, memory_mb, last_seen"
		" FROM nodes ORDER BY name";
	sqlite3_stmt *st;
	int rc = 0, step;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct node *n = calloc(1, sizeof(*n));

		if (!n) {
			rc = -ENOMEM;
			break;
		}
		col_copy(st, 0, n->name, sizeof(n->name));
		col_copy(st, 1, n->hostname, sizeof(n->hostname));
		col_copy(st, 2, n->addr, sizeof(n->addr));
		n->cpus = col_strdup(st, 3);
		n->cores = (long)sqlite3_column_int64(st, 4);
		n->pus = (long)sqlite3_column_int64(st, 5);
		n->numa_nodes = (long)sqlite3_column_int64(st, 6);
		n->memory_mb = (long)sqlite3_column_int64(st, 7);
		n->last_seen = sqlite3_column_int64(st, 8);
		n->state = NODE_UNKNOWN;
		if (!n->cpus) {
			free(n);
			rc = -ENOMEM;
			break;
		}
		rc = cb(n, arg);
		if (rc)
			break;
	}
	if (!rc && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	return rc;
}

/* ---- checkpoints and restarts (ckpt/) ---- */

/* Prepare @sql, bind the (int64) values, step once: 0 on DONE (or a ROW:
 * *@row gets column 0 if @row), -ENOENT when @need_change and no row
 * changed, -EIO. */
static int run_i64(struct db *db, const char *sql, const int64_t *v, int n, int need_change,
		   int64_t *row)
{
	sqlite3_stmt *st;
	int rc = -EIO, step;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	for (int i = 0; i < n; i++)
		sqlite3_bind_int64(st, i + 1, v[i]);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW && row) {
		*row = sqlite3_column_int64(st, 0);
		rc = sqlite3_column_type(st, 0) == SQLITE_NULL ? -ENOENT : 0;
	} else if (step == SQLITE_ROW) {
		rc = 0;
	} else if (step == SQLITE_DONE) {
		rc = row ? -ENOENT : need_change && !sqlite3_changes(db->h) ? -ENOENT : 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int db_ckpt_pending(struct db *db, long job, int64_t epoch, int64_t t_ns, int64_t created)
{
	const int64_t v[] = { job, epoch, t_ns, created };

	return run_i64(db, "INSERT INTO ckpts (job, epoch, state, t_ns, created)"
			   " VALUES (?1, ?2, 'pending', ?3, ?4)", v, 4, 0, NULL);
}

int db_ckpt_commit(struct db *db, long job, int64_t epoch, int64_t bytes, int64_t duration_ms,
		   const json_t *nodes, const json_t *parts)
{
	static const char sql[] =
		"UPDATE ckpts SET state='committed', bytes=?, duration_ms=?, nodes=?, parts=?"
		" WHERE job=? AND epoch=? AND state='pending'";
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, bytes);
	sqlite3_bind_int64(st, 2, duration_ms);
	if (bind_json(st, 3, nodes) != SQLITE_OK || bind_json(st, 4, parts) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -ENOMEM;
	}
	sqlite3_bind_int64(st, 5, job);
	sqlite3_bind_int64(st, 6, epoch);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	if (!rc && !sqlite3_changes(db->h))
		rc = -ENOENT;
	sqlite3_finalize(st);
	return rc;
}

int db_ckpt_delete(struct db *db, long job, int64_t epoch)
{
	const int64_t v[] = { job, epoch };

	return run_i64(db, "DELETE FROM ckpts WHERE job=?1 AND epoch=?2", v, 2, 1, NULL);
}

int db_ckpt_restored(struct db *db, long job, int64_t epoch)
{
	const int64_t v[] = { job, epoch };

	return run_i64(db, "UPDATE ckpts SET restored = restored + 1 WHERE job=?1 AND epoch=?2",
		       v, 2, 1, NULL);
}

int db_ckpt_newest(struct db *db, long job, int64_t before, int64_t *epoch)
{
	const int64_t v[] = { job, before > 0 ? before : INT64_MAX };

	return run_i64(db, "SELECT MAX(epoch) FROM ckpts WHERE job=?1 AND epoch<?2"
			   " AND state='committed'", v, 2, 0, epoch);
}

/* The end of a SELECT that built @list row by row: *@out gets it if every
 * row was read (@step is SQLITE_DONE) and @rc is 0.  \return that rc. */
static int list_finish(sqlite3_stmt *st, int step, int rc, json_t *list, json_t **out)
{
	if (!rc && step != SQLITE_DONE)
		rc = -EIO;
	sqlite3_finalize(st);
	if (rc) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}

int db_ckpts_list(struct db *db, long job, const char *state, json_t **out)
{
	static const char sql[] =
		"SELECT job, epoch, state, t_ns, created, bytes, duration_ms, nodes, parts, restored"
		" FROM ckpts WHERE (?1 = 0 OR job = ?1) AND (?2 IS NULL OR state = ?2)"
		" ORDER BY job, epoch";
	json_t *list = json_array();
	sqlite3_stmt *st;
	int step, rc = 0;

	if (!list)
		return -ENOMEM;
	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
		json_decref(list);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, job);
	bind_text(st, 2, state);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *nodes = col_json(st, 7), *parts = col_json(st, 8);
		json_t *o = json_pack("{s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:o,s:o,s:i}",
				      "job", (json_int_t)sqlite3_column_int64(st, 0),
				      "epoch", (json_int_t)sqlite3_column_int64(st, 1),
				      "state", (const char *)sqlite3_column_text(st, 2),
				      "t_ns", (json_int_t)sqlite3_column_int64(st, 3),
				      "created", (json_int_t)sqlite3_column_int64(st, 4),
				      "bytes", (json_int_t)sqlite3_column_int64(st, 5),
				      "duration_ms", (json_int_t)sqlite3_column_int64(st, 6),
				      "nodes", json_is_array(nodes) ? nodes : json_array(),
				      "parts", json_is_array(parts) ? parts : json_array(),
				      "restored", sqlite3_column_int(st, 9));

		if (!json_is_array(nodes))
			json_decref(nodes);
		if (!json_is_array(parts))
			json_decref(parts);
		if (!o || json_array_append_new(list, o)) {
			rc = -ENOMEM;
			break;
		}
	}
	return list_finish(st, step, rc, list, out);
}

int db_restart_add(struct db *db, long job, int64_t time, int64_t epoch, const char *reason,
		   int *n)
{
	static const char sql[] =
		"INSERT INTO restarts (job, n, time, epoch, reason)"
		" SELECT ?1, COALESCE(MAX(n), 0) + 1, ?2, ?3, ?4 FROM restarts WHERE job = ?1";
	const int64_t v[] = { job };
	int64_t last = 0;
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, time);
	sqlite3_bind_int64(st, 3, epoch);
	bind_text(st, 4, reason);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	if (!rc)
		rc = run_i64(db, "SELECT MAX(n) FROM restarts WHERE job=?1", v, 1, 0, &last);
	if (!rc)
		*n = (int)last;
	return rc;
}

int db_restart_update(struct db *db, long job, int n, int64_t epoch, const json_t *nodes,
		      const char *error)
{
	static const char sql[] =
		"UPDATE restarts SET epoch = ?, nodes = COALESCE(?, nodes), error = COALESCE(?, error)"
		" WHERE job = ? AND n = ?";
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, epoch);
	if (bind_json(st, 2, nodes) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -ENOMEM;
	}
	bind_text(st, 3, error);
	sqlite3_bind_int64(st, 4, job);
	sqlite3_bind_int(st, 5, n);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
	if (!rc && !sqlite3_changes(db->h))
		rc = -ENOENT;
	sqlite3_finalize(st);
	return rc;
}

int db_restarts_list(struct db *db, long job, json_t **out)
{
	static const char sql[] =
		"SELECT n, time, epoch, reason, nodes, error FROM restarts WHERE job = ? ORDER BY n";
	json_t *list = json_array();
	sqlite3_stmt *st;
	int step, rc = 0;

	if (!list)
		return -ENOMEM;
	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) {
		json_decref(list);
		return -EIO;
	}
	sqlite3_bind_int64(st, 1, job);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *nodes = col_json(st, 4);
		json_t *o = json_pack("{s:i,s:I,s:I,s:s,s:o}", "n", sqlite3_column_int(st, 0),
				      "time", (json_int_t)sqlite3_column_int64(st, 1),
				      "epoch", (json_int_t)sqlite3_column_int64(st, 2),
				      "reason", (const char *)sqlite3_column_text(st, 3),
				      "nodes", json_is_array(nodes) ? nodes : json_array());

		if (!json_is_array(nodes))
			json_decref(nodes);
		if (o && sqlite3_column_type(st, 5) != SQLITE_NULL)
			json_object_set_new(o, "error",
					    json_string((const char *)sqlite3_column_text(st, 5)));
		if (!o || json_array_append_new(list, o)) {
			rc = -ENOMEM;
			break;
		}
	}
	return list_finish(st, step, rc, list, out);
}
