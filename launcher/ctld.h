/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hecctld internals: the controller's records, its catalog (db.c) and the
 * handlers shared by its source files.  Nothing here is part of a public
 * contract; the wire protocol is doc/protocol.md, the behaviour
 * doc/design.md.
 *
 * One thread, one libevent loop.  Every state change of a job is written to
 * the catalog before the controller tells anybody about it, so a restart
 * (even after kill -9) resumes from what peers were told.
 */
#ifndef HEC_CTLD_H
#define HEC_CTLD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include <event2/event.h>

#include "hec/auth.h"
#include "hec/net.h"

/* ---- configuration (doc/config.md) ---- */

struct ctl_conf {
	char cluster_name[64];
	char state_dir[1024];
	char socket[108];          /* sun_path limit */
	char listen[300];
	char cli_listen[300];      /* "": no CLI over TCP */
	char munge_socket[108];    /* "": libmunge's default */
	char key_file[1024];
	char spool_dir[1024];
	long heartbeat_interval;   /* ms */
	long node_timeout;         /* ms */
	long launch_timeout;       /* ms */
	long vm_launch_timeout;    /* ms, vm partitions */
	long ckpt_timeout;         /* ms: a checkpoint not stored by every node by then aborts */
	long ckpt_lead;            /* ms: a vm checkpoint's T at least this long after its request */
	long app_ckpt_timeout;     /* ms: a proc job's program that has not written its file by then */
	long preempt_ckpt_grace;   /* ms a preemptor waits for its victim's checkpoint, 0: never */
	char log_level[16];
	long gang_slot;            /* ms: length of one time slot */
	long max_share;            /* rows of the gang matrix (multiprogramming level) */
	char timeslice[32];        /* "gang" or "none" */
};

/* ---- records ---- */

enum job_state {
	JOB_PENDING, JOB_RUNNING, JOB_SUSPENDED,
	/* final states from here on */
	JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED, JOB_TIMEOUT, JOB_NODE_FAIL,
	JOB_NSTATES
};

static inline int job_state_final(enum job_state s)
{
	return s >= JOB_COMPLETED;
}

/*
 * Where a started job is.  Its public state stays RUNNING through all three
 * phases: ENDING means the outcome (final_state, reason) is decided and the
 * controller waits for every node's JOB_GONE before the job becomes final
 * and frees its nodes.
 */
enum job_phase {
	PH_NONE,        /* PENDING, or final */
	PH_LAUNCHING,   /* LAUNCH sent, waiting for every LAUNCHED */
	PH_RUNNING,     /* START sent to the batch node */
	PH_ENDING,      /* outcome decided, KILL_JOB sent, waiting for JOB_GONE */
};

enum node_state { NODE_UNKNOWN, NODE_IDLE, NODE_ALLOCATED, NODE_DOWN };

struct node;
struct peer;
struct ckpt_op;
struct restart_op;
struct ckpt_state;

/* The start of a restarts row's reason when a user asked for it (hec
 * restart): those do not count against --max-restarts. */
#define RESTART_BY_USER "requested by "

/* One allocated node of a job. */
struct job_node {
	char name[65];
	struct node *node;     /* NULL if the catalog names a node we do not know */
	int ranks;
	int launched;          /* LAUNCHED without error received */
	int gone;              /* JOB_GONE received, or the node is DOWN */
	unsigned kill_gen;     /* node->gen when KILL_JOB was last sent */
	int64_t kill_sent;     /* mono ns of that KILL_JOB */
	/* gang_stats: CPU usage at the previous call (else: since the start) */
	int stats_set;
	int64_t stats_usec;
	int64_t stats_ns;      /* CLOCK_REALTIME ns of that report */
};

struct ctl_job {
	long id;
	char name[129];
	uid_t uid;
	gid_t gid;
	char user[64];
	enum job_state state;
	enum job_state final_state;  /* valid in PH_ENDING */
	char reason[512];
	int nnodes;
	int ntasks;
	long time_limit;             /* seconds, 0 = none */
	int priority;
	int share;                   /* --share: one row of the gang matrix, else exclusive */
	long mem_mb;                 /* per node, 0 = not counted */
	int slot;                    /* row of the gang matrix while running a share job, else -1 */
	int vm;                      /* --partition vm: a QEMU guest per node */
	int vcpus;                   /* vm: vCPUs per guest, 0: the node's ranks */
	json_t *vm_files;            /* vm: [absolute paths] for the guest image, or NULL */
	int64_t submit_time, start_time, end_time; /* Unix seconds, 0 = not yet */
	char *cwd;
	json_t *env;                 /* [str]; NULL once final (not needed any more) */
	json_t *argv;                /* [str] or NULL */
	char *script;                /* or NULL */
	char *output;
	char *error;                 /* NULL: stderr goes to output */
	char *command;               /* for display */
	int exit_code, sig, exited;  /* exited: the batch step's status is known */
	int started;                 /* START sent (persisted) */

	/* allocation, once started */
	struct job_node *alloc;
	int nalloc;
	enum job_phase phase;
	char key[65];                /* per-job secret for the launch bridge */
	char guest_key[65];          /* vm: the guests' remote shell secret (it is on
				      * QEMU's command line, so unlike key, not secret
				      * on the host: it only opens the job's network) */
	int64_t launch_deadline;     /* mono ns */
	int64_t start_ns;            /* CLOCK_REALTIME ns of the start, for the time limit */
	int64_t susp_ns;             /* time spent SUSPENDED (ended spells): its clock stops */
	int64_t susp_since_ns;       /* CLOCK_REALTIME ns the current spell began, 0: none */

	/* checkpoints and restarts (ckpt/; persisted in jobs, ckpts, restarts) */
	long ckpt_interval;          /* s between automatic checkpoints, 0 = none */
	int ckpt_keep;               /* committed checkpoints kept (retention), >= 1 */
	int restart_auto;            /* --restart auto */
	int max_restarts;            /* automatic restarts allowed */
	int nrestarts;               /* automatic restarts so far (restarts rows whose
				      * reason is not RESTART_BY_USER...) */
	int64_t restore_epoch;       /* > 0: the next launch restarts from this checkpoint
				      * (kept after that start: RESUME may be due again) */
	json_t *restart_nodes;       /* hec restart --nodes: [names] the restart may use, or NULL */
	struct ckpt_op *ckpt;        /* the checkpoint under way (ckpt/ctl_ckpt.c), or NULL */
	struct restart_op *restart;  /* the restart under way (ckpt/ctl_restart.c), or NULL */
	int64_t ckpt_next;           /* --ckpt-interval: mono ns of the next one, 0: not armed */
	int64_t ckpt_err_epoch;      /* the last checkpoint that failed (saved with the
				      * job's row: at once once it has ended) */
	int64_t ckpt_err_time;       /* Unix s of its failure */
	char ckpt_err[512];          /* why */
	int app_loaded;              /* proc job restarted: its program said it restored (memory only) */
	int ckpt_asked;              /* its program asked (CKPT_ASK) while one was under way */
	int resume_sent;             /* this controller sent RESUME since the restored start */

	/* a preemption waits for the job's checkpoint (ctl_gang.c; memory only) */
	int pk_guard;                /* guarded in the gang matrix */
	int pk_lift;                 /* guard lifted until suspended or not wanted */
	int pk_again;                /* suspended after a lift: say so when guarded again */
	long pk_by;                  /* the job that waits for its checkpoint, 0: none */
	int64_t pk_epoch;            /* that checkpoint, 0: none under way */
	int64_t pk_deadline;         /* mono ns: preempt_ckpt_grace ends */

	struct ctl_job *next;            /* ctl->jobs, ascending id */
};

struct node {
	char name[65];
	char hostname[257];
	char addr[301];
	char *cpus;
	long cores, pus, numa_nodes, memory_mb;
	enum node_state state;       /* UNKNOWN / DOWN, or "up" (IDLE / ALLOCATED by ->njobs) */
	struct peer *peer;           /* live registered connection, or NULL */
	int64_t last_heard;          /* mono ns of the last message (or controller start) */
	int64_t last_seen;           /* Unix seconds of the last message */
	int njobs;                   /* jobs holding this node (started, not final) */
	unsigned gen;                /* counts registrations: one per connection */
	int stale;                   /* KILL_JOBs of partitions it should not hold without
				      * their JOB_GONE yet: nothing starts here meanwhile */
	int64_t rtt_ns, offset_ns;   /* clock estimate from its last REGISTER, HEARTBEAT
				      * (rtt) or STATS (0: none yet) */
	int save_due;                /* registered; its row waits for ctl_nodes_save() */
	int epoch_due;               /* registered since the last publication: the
				      * epoch in force goes to it alone (ctl_gang.c) */
	struct node *next;           /* ctl->nodes, natural name order */
};

/*
 * A storage server (hecstored, doc/storage.md) as the controller knows it:
 * from its STORE_REGISTER on the agent port until the controller exits
 * (state in memory only: servers register again after a restart).  A lost
 * one stays listed, down, until it registers again.
 */
struct store {
	char name[65];
	char addr[301];              /* where clients reach it (host:port) */
	char provider[17];           /* libfabric provider: "verbs", "tcp" */
	char dir[4097];
	long pid;
	char from[320];              /* the connection's peer address */
	struct peer *peer;           /* live registered connection, or NULL: down */
	int64_t last_heard;          /* mono ns of its STORE_REGISTER or last STORE_STATUS */
	json_t *status;              /* the last STORE_STATUS body, or NULL */
	char down_why[200];          /* down: why */
	struct store *next;          /* ctl->stores, natural name order */
};

enum peer_kind { PEER_CLI, PEER_AGENT };

struct ctl;

struct peer {
	struct ctl *ctl;
	struct hec_conn *conn;
	enum peer_kind kind;
	uid_t uid;                   /* CLI: peer credentials, or the MUNGE credential's */
	gid_t gid;
	pid_t pid;
	struct node *node;           /* agent: set by REGISTER */
	struct store *store;         /* agent port: set by STORE_REGISTER */
	int64_t accepted;            /* mono ns */
	int asked;                   /* CLI: a REQUEST came (an idle one is closed) */
	int remote;                  /* CLI over TCP: a stranger until its AUTH */
	int authed;                  /* remote: AUTH checked, uid and gid are its */
	char nonce[HEC_AUTH_NONCE_LEN + 1]; /* remote: what its credential must carry */
	struct peer *prev, *next;
};

struct db;
struct gang_matrix;
struct fanout_set;

/* The schedule epoch last published (doc/design.md, "Schedule epochs"). */
struct epoch {
	int64_t id;                  /* 0: none yet */
	int64_t start;               /* CLOCK_REALTIME ns */
	int64_t slot_ns;
	int nslots;
};

struct ctl {
	struct ctl_conf conf;
	struct event_base *base;
	struct db *db;
	struct event *tick_ev, *sigterm_ev, *sigint_ev, *sighup_ev;
	struct event *cli_ev, *agent_ev, *cli_tcp_ev;
	int cli_fd, agent_fd, cli_tcp_fd; /* cli_tcp_fd: cli_listen, -1 if off */
	int munged_down;             /* the last decode could not reach munged (auth.h) */
	char cluster_key[257];       /* "" = no check */
	struct node *nodes;
	int nnodes;
	struct store *stores;        /* storage servers (ctl_store.c) */
	struct store_repair *repair; /* their repair (ctl_store.c); NULL until first used */
	struct ctl_job *jobs, *jobs_tail; /* pending, running, ended a moment ago */
	struct ctl_job *ended;       /* job_get's ended job read back, or NULL */
	struct peer *peers;
	int64_t start_mono, start_real;
	int shutting_down;
	int64_t shutdown_deadline;   /* mono ns */
	int sched_needed;
	struct fanout_set *fanout;   /* requests to many nodes waiting for answers (fanout.h) */

	/* gang scheduling (ctl_gang.c); settings start from conf, gang_set changes them */
	struct gang_matrix *gang;
	int64_t slot_ns;
	int max_share;
	int timeslice_none;          /* co-locate share jobs but never switch them */
	struct epoch epoch;
	unsigned long gang_published; /* gm_version() of the last epoch */
	int epoch_needed;            /* publish even if the matrix did not change */
	int epochs_due;              /* nodes with epoch_due set */
	int nodes_unsaved;           /* some node's save_due is set */
	struct event *sched_ev;      /* ctl_schedule_soon() */
	int64_t stats_seq;           /* the last gang_stats request id */

	/* checkpoints (ckpt/ctl_ckpt.c) */
	int64_t ckpt_seq;            /* the last checkpoint epoch given */
	struct ckpt_state *ckpts;    /* pending rows to clean up, CLI answers waiting */
};

/* ---- ctl_rec.c: record helpers, no I/O ---- */

const char *job_state_name(enum job_state s);
/** \return the state, or -EINVAL for an unknown name. */
int job_state_parse(const char *name);
const char *node_state_name(enum node_state s);
void job_free(struct ctl_job *j);
/** A new id from real time in microseconds, greater than *@last (then
 *  set to it): never behind one an earlier controller on this host gave. */
int64_t ctl_fresh_id(int64_t *last);
/** Drop what only a starting job needs (env, argv, script). */
void job_drop_payload(struct ctl_job *j);
/** Display string of a job's command; malloc'ed, NULL on ENOMEM. */
char *job_command(const json_t *argv, const char *script, const char *name);
/**
 * Expand %j (id), %x (name), %u (user) and %% in an output path template;
 * relative paths are taken from @cwd.  \return 0 or -ENAMETOOLONG.
 */
int job_expand_path(const char *tmpl, long id, const char *name, const char *user,
		    const char *cwd, char *out, size_t len);
/** Time limit for reasons: "0:02", "1:30:00", "2-00:00:00". */
void format_limit(long secs, char *buf, size_t len);
/** "node1: cgroup: Permission denied": @text prefixed with @node unless it
 *  already starts with "node:". */
void reason_for_node(char *buf, size_t len, const char *node, const char *text);
/** Build the job_node array from names; ranks block-distributed. \return 0 or -ENOMEM. */
int job_set_alloc(struct ctl_job *j, const char *const *names, int n);
/**
 * Retention: which of the committed checkpoints @epochs (ascending, @n of
 * them) go once a new one is committed: the oldest beyond @keep, never
 * @protect (the one a restart under way uses; 0: none).  They are written
 * to @del oldest first.  \return how many.
 */
int ckpt_retention(const int64_t *epochs, int n, int keep, int64_t protect, int64_t *del);

/* ---- db.c: the SQLite catalog ---- */

/* The largest frame a TCP peer may send before its REGISTER: a node's
 * REGISTER with its partitions and unacknowledged exits fits. */
#define CTL_STRANGER_FRAME (256u << 10)
/* CLI connections a user (not root) may hold open at once, and how long
 * one may stay open without sending its request. */
#define CTL_CLI_PER_UID 64
#define CTL_CLI_IDLE_NS (10 * 1000000000LL)

#define DB_SCHEMA_VERSION 6 /* 2: jobs.share, jobs.mem_mb, jobs.slot; 3: jobs.partition, vcpus, vm_files;
			     * 4: checkpoints (jobs.ckpt_*, restart, max_restarts, guest_key; ckpts, restarts);
			     * 5: settings (key, value): what `hec gang set` changed;
			     *    jobs.susp_ms, jobs.susp_since_ms: suspended time;
			     * 6: jobs.ckpt_err, ckpt_err_epoch, ckpt_err_time */

/**
 * Open (creating if needed) the catalog at @path: WAL journal,
 * synchronous=FULL, schema checked through PRAGMA user_version.
 * \return 0, or -errno / -EPROTO (schema from a newer hecctld); @err says why.
 */
int db_open(const char *path, struct db **out, char *err, size_t errlen);
void db_close(struct db *db);
/** Last SQLite error text, for log lines. */
const char *db_errmsg(struct db *db);
/** A setting the controller keeps across restarts (`hec gang set`'s), as
 *  text: stored durably, replacing the old value (@value NULL: removed).
 *  \return 0 or -EIO. */
int db_setting_put(struct db *db, const char *key, const char *value);
/** The setting @key into @buf. \return 0, -ENOENT, -ENOSPC (too long) or -EIO. */
int db_setting_get(struct db *db, const char *key, char *buf, size_t len);
/** Current journal mode ("wal") into @buf. \return 0 or -EIO. */
int db_journal_mode(struct db *db, char *buf, size_t len);

/**
 * Insert a new job in one transaction: assigns @j->id, then calls @fixup (if
 * any) so values that depend on the id are stored in the same transaction.
 * \return 0 once COMMIT succeeded (the job is durable), or -errno (-EIO for
 * SQLite errors, or @fixup's error); nothing is stored on error.
 */
int db_job_insert(struct db *db, struct ctl_job *j,
		  int (*fixup)(struct ctl_job *j, void *arg), void *arg);
/** Why the last db_job_insert() failed on an SQLite error: SQLite's
 *  sentence for the first step that failed ("database or disk is full"),
 *  not the rollback's after it; "" if it did not. */
const char *db_job_insert_error(const struct db *db);
/** Store the mutable fields (state, reason, times, nodelist, exit status, slot). */
int db_job_update(struct db *db, const struct ctl_job *j);
/**
 * Read @j's payload (environment, argv, script) back from the catalog into
 * @j, which holds none (job_drop_payload ran when it ended).
 * \return 0, -ENOENT (no such job), -EIO (SQLite error or a bad row).
 */
int db_job_payload(struct db *db, struct ctl_job *j);
/**
 * Call @cb for every job not ended (not job_state_final) in ascending id
 * with a freshly allocated record (alloc holds names only; node pointers
 * NULL).  @cb owns the record.  Ended jobs stay in the catalog.
 * \return 0, -EIO, or the first non-zero @cb result.
 */
int db_jobs_load(struct db *db, int (*cb)(struct ctl_job *j, void *arg), void *arg);
/** Job @id's record as db_jobs_load makes it, without its payload (env,
 *  argv, script: db_job_payload).  \return 0, -ENOENT, -EIO, -ENOMEM. */
int db_job_load(struct db *db, long id, struct ctl_job **out);
/** Like db_jobs_load for ended jobs with an id below @before (0: any),
 *  newest first, at most @limit of them; records without payload (a
 *  `hec queue --all` page). */
int db_jobs_ended(struct db *db, long before, int limit,
		  int (*cb)(struct ctl_job *j, void *arg), void *arg);
/** Insert or replace a node's registration data. */
int db_node_save(struct db *db, const struct node *n);
/** Every node of @list (by next) with save_due, in one transaction (one
 *  sync for all that registered at once); save_due is cleared.
 *  \return 0, or -EIO (none saved). */
int db_nodes_save(struct db *db, struct node *list);
/** Like db_jobs_load for nodes (state UNKNOWN, no peer). */
int db_nodes_load(struct db *db, int (*cb)(struct node *n, void *arg), void *arg);

/* Checkpoints (table ckpts): 'pending' from before CKPT_PREPARE until the
 * manifest is committed, then 'committed'.  Restarts (table restarts): a
 * job's history, rows numbered 1, 2, ... per job. */
/** A pending row for (@job, @epoch), cut at @t_ns (CLOCK_REALTIME), made at
 *  @created (Unix s).  \return 0, -EIO (also: the row exists). */
int db_ckpt_pending(struct db *db, long job, int64_t epoch, int64_t t_ns, int64_t created);
/** The pending row becomes committed with its figures (@nodes [names],
 *  @parts [{part, node, bytes, pause_us, image, hash}]).  \return 0,
 *  -ENOENT (no such pending row), -EIO, -ENOMEM. */
int db_ckpt_commit(struct db *db, long job, int64_t epoch, int64_t bytes, int64_t duration_ms,
		   const json_t *nodes, const json_t *parts);
/** \return 0, -ENOENT (no such row), -EIO. */
int db_ckpt_delete(struct db *db, long job, int64_t epoch);
/** A restart loaded it: its "restored" count goes up.  \return 0, -ENOENT, -EIO. */
int db_ckpt_restored(struct db *db, long job, int64_t epoch);
/** The newest committed epoch of @job below @before (0: any).
 *  \return 0, -ENOENT (none), -EIO. */
int db_ckpt_newest(struct db *db, long job, int64_t before, int64_t *epoch);
/** Rows of @job (0: every job) in @state (NULL: any) into *@out: [{job,
 *  epoch, state, t_ns, created, bytes, duration_ms, nodes, parts,
 *  restored}] by job and epoch.  \return 0, -EIO, -ENOMEM. */
int db_ckpts_list(struct db *db, long job, const char *state, json_t **out);
/** A new restarts row of @job (its number in *@n). \return 0, -EIO. */
int db_restart_add(struct db *db, long job, int64_t time, int64_t epoch, const char *reason,
		   int *n);
/** Row @n of @job: its epoch now @epoch; @nodes (NULL: unchanged) and
 *  @error (NULL: unchanged) replace theirs.  \return 0, -ENOENT, -EIO, -ENOMEM. */
int db_restart_update(struct db *db, long job, int n, int64_t epoch, const json_t *nodes,
		      const char *error);
/** [{n, time, epoch, reason, nodes, error?}] of @job by n.  \return 0, -EIO, -ENOMEM. */
int db_restarts_list(struct db *db, long job, json_t **out);

/* ---- ctl_job.c: job lifecycle ---- */

/** The job @id in memory (pending, running, or ended a moment ago), or NULL. */
struct ctl_job *job_find(struct ctl *ctl, long id);
/**
 * The job @id in memory, else an ended one read back from the catalog
 * into ctl->ended (one record; the next job_get of another ended job
 * replaces it, so do not keep the pointer past the request), or NULL
 * (no such job, or the catalog failed: logged).
 */
struct ctl_job *job_get(struct ctl *ctl, long id);
/** Ended @j (from job_get) is to live in memory again (a restart):
 *  into ctl->jobs in id order.  A no-op for a job there already. */
void job_adopt(struct ctl *ctl, struct ctl_job *j);
/** Every tick: ended jobs that nothing waits for any more (every node
 *  released, no checkpoint committing) leave memory; their catalog row
 *  holds everything `hec show`, `queue --all`, `restart` read. */
void ctl_jobs_retire(struct ctl *ctl);
/** Jobs in memory (`hec cluster status`: jobs_in_memory). */
int ctl_jobs_in_memory(const struct ctl *ctl);
struct job_node *job_node_of(struct ctl_job *j, const struct node *n);
void job_save(struct ctl *ctl, struct ctl_job *j);
/** Decide @j's outcome and tear it down (no-op if one is already decided).
 *  A job that never started becomes final at once. */
void job_end(struct ctl *ctl, struct ctl_job *j, enum job_state outcome, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/** Put running @j back in the queue, its batch step never having run (its
 *  START lost): ENDING into PENDING, KILL_JOB to every node, then PENDING
 *  with its id (restart_requeue); the reason says why.  A no-op unless
 *  @j is launching or running. */
void job_requeue(struct ctl *ctl, struct ctl_job *j, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/** Become final if every node is gone. */
void job_check_gone(struct ctl *ctl, struct ctl_job *j);
/** Send LAUNCH for @j to one of its nodes. \return 0 or -errno. */
int job_send_launch(struct ctl *ctl, struct ctl_job *j, struct job_node *jn);
/** vCPUs per guest of a vm job (--vcpus, else the most ranks on one node). */
int job_vcpus(const struct ctl_job *j);
/** ms a job's nodes have to answer LAUNCH (vm partitions boot guests). */
long job_launch_timeout(const struct ctl *ctl, const struct ctl_job *j);
/** Every node LAUNCHED: send START to the batch node. */
void job_send_start(struct ctl *ctl, struct ctl_job *j);
/** Send KILL_JOB to every node not gone yet. */
void job_kill_nodes(struct ctl *ctl, struct ctl_job *j);
/** JOB_EXIT from @n (also from REGISTER's exits); always acknowledged. */
void job_exit_report(struct ctl *ctl, struct node *n, const json_t *body);
/** Hand @j the nodes the matrix chose (in column order) and send LAUNCH. */
void job_start(struct ctl *ctl, struct ctl_job *j, struct node **nodes, int n);
/** Time limits and launch timeouts. */
void ctl_job_timers(struct ctl *ctl);
json_t *job_to_json(const struct ctl_job *j);
/** Reload jobs from the catalog after a start (nodes first). */
int ctl_jobs_restore(struct ctl *ctl);
/** Cluster shutdown: active jobs end as CANCELLED (agents kill partitions). */
void ctl_jobs_shutdown(struct ctl *ctl, uid_t uid);

/* ---- ctl_agent.c: nodes and agents ---- */

struct node *node_find(struct ctl *ctl, const char *name);
/** The rows of the nodes that registered since the last call (save_due),
 *  in one transaction; before any job is placed on them (ctl_schedule). */
void ctl_nodes_save(struct ctl *ctl);
/** Public state: UNKNOWN / DOWN / ALLOCATED / IDLE. */
enum node_state node_public_state(const struct node *n);
void node_down(struct ctl *ctl, struct node *n, const char *why);
/** @n's agent connection is gone (closed, or the node is DOWN): the node has
 *  no peer from now on and its pending fan-out answers count as lost with
 *  @why.  The one place that unlinks a node from its connection. */
void node_detach_peer(struct ctl *ctl, struct node *n, const char *why);
void node_check_liveness(struct ctl *ctl);
json_t *node_to_json(struct ctl *ctl, const struct node *n);
int ctl_nodes_restore(struct ctl *ctl);
/** Up and connected: jobs may be placed on it and it follows epochs. */
int node_up(const struct node *n);
/** Send one message to a node's agent; @body is consumed. \return 0 or -errno. */
int node_send(struct node *n, unsigned type, json_t *body);
/** The same with a frame made once for many nodes (@type: for the log). */
int node_send_frame(struct node *n, unsigned type, struct hec_frame *f);
void agent_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg);
/** Check the table of agent messages (at start). \return 0, or -EINVAL and why in @err. */
int agent_handlers_check(char *err, size_t errlen);

/* ---- ctl_child.c: helper programs the controller runs ---- */

struct ctl_child;
/* How a helper ended; everything borrowed for the done call. */
struct ctl_child_result {
	int status;                  /* waitpid status (exit 127: it could not run) */
	int killed;                  /* killed (its process group) past the time limit */
	long limit_ms;
	const char *out, *err;       /* the tail of its stdout and of its stderr */
};
typedef void (*ctl_child_done_fn)(void *arg, const struct ctl_child_result *r);
/**
 * Run @argv (argv[0] a path) as a child in its own session, stdin
 * /dev/null, its output read by events on @base, reaped by a timer and
 * killed past @limit_ms; @done is called once, from the loop (never from
 * within this call), and the child is forgotten after it returns.
 * \return 0 with *@out, or -errno: nothing runs and @done is never called.
 */
int ctl_child_start(struct event_base *base, char *const *argv, long limit_ms,
		    ctl_child_done_fn done, void *arg, struct ctl_child **out);
/** Kill the child's process group and reap it now; @done is not called.
 *  NULL is a no-op. */
void ctl_child_kill(struct ctl_child *c);
pid_t ctl_child_pid(const struct ctl_child *c);
/** One line for @r: "done", "no result within N s: killed", "killed by
 *  signal N", the last line of its stderr, or "exit status N". */
void ctl_child_describe(const struct ctl_child_result *r, char *buf, size_t len);

/* ---- ctl_store.c: storage servers ---- */

/**
 * May the agent-port connection @p send a message of @rule?  REGISTERED
 * rows are for the node registered on it, STORE rows for the storage server
 * registered on it, never the other way round.
 * \return 1, or 0 with the refusal (one line) in @why.
 */
int agent_rule_allows(enum hec_msg_rule rule, const struct peer *p, const char *type,
		      char *why, size_t len);
/**
 * STORE_REGISTER on @p (peer address @from): check the cluster key and the
 * name, then (re)make the server's record, up, linked with @p.
 * \return 0, or -EPERM (wrong key), -EINVAL (bad name, or @p registered
 * already), -EEXIST (a live server holds the name), -ESHUTDOWN, -ENOMEM;
 * then @why holds what to answer.  Sends nothing.
 */
int store_register(struct ctl *ctl, struct peer *p, const char *from, const json_t *body,
		   char *why, size_t len);
/** STORE_STATUS from @s: keep the figures, note that it was heard. */
void store_status(struct ctl *ctl, struct store *s, const json_t *body);
/** @s's connection is gone (closed, or @s is declared down): down with @why.
 *  The one place that unlinks a server from its connection. */
void store_detach_peer(struct ctl *ctl, struct store *s, const char *why);
/** Servers silent for 3 heartbeat intervals are down; their connections close. */
void store_check_liveness(struct ctl *ctl);
struct store *store_find(struct ctl *ctl, const char *name);
/** [{name, addr, provider, state, dir, total, ..., seen_ms}], as the
 *  "storage" request answers; NULL on ENOMEM. */
json_t *store_list_json(struct ctl *ctl);
/** Also ends a repair under way (its process group is killed and reaped). */
void store_free_all(struct ctl *ctl);

/*
 * Storage repair: `hec-store --json repair` (found beside hecctld, else in
 * bindir and sbindir) run as a child of the controller, never waited on by
 * the event loop: its output is read by an event, it is reaped by a timer,
 * and killed (its process group) past the time limit.  One at a time: a
 * request while one runs makes one more run after it (however many came).
 */
#define STORE_REPAIR_LIMIT_MS (15 * 60 * 1000)
/** Run a repair now, or once more after the one under way; @why says what
 *  asked (logged, and shown as the outcome's "reason"). */
void store_repair_request(struct ctl *ctl, const char *why);
/** The CLI's `storage_repair`: request one and answer @p with its outcome
 *  ({"ok":true,"repair":{...}}) when it ends.  \return 0 or -ENOMEM. */
int store_repair_wait(struct ctl *ctl, struct peer *p);
/** @p's connection is going away: nobody to answer there. */
void store_repair_forget(struct ctl *ctl, struct peer *p);
/** The repair under way or the last one: {"state" ("none", "running",
 *  "done", "failed"), "reason", "started", "ended" (Unix s, 0: not yet),
 *  "copied", "lost", "removed", "lost_chunks": [{"job","epoch","chunks"}],
 *  "error" (null unless failed)}; NULL on ENOMEM. */
json_t *store_repair_json(struct ctl *ctl);
/** Tests: run @prog (argv[0]; it gets hec-store's arguments) instead of
 *  hec-store, with a time limit of @limit_ms (0: the default); checkpoints
 *  (ckpt_store_run) run it too. */
int store_repair_set_program(struct ctl *ctl, const char *prog, long limit_ms);
/** The hec-store the controller runs: the one store_repair_set_program
 *  gave, else beside hecctld, else in bindir or sbindir.
 *  \return 0 or -ENOENT, -ENOMEM. */
int store_program(struct ctl *ctl, char *buf, size_t len);

/* ---- ckpt/ctl_ckpt.c: the checkpoint coordinator and restarts ---- */

/** Requests (rule checked; @j is the job named): `ckpt` {job} -> {epoch};
 *  `ckpts` {job} -> {ckpts, current?, last_error?}; `ckpt_delete` {job,
 *  epoch}; `restart` {job, epoch?, nodes?} -> {epoch} (doc/protocol.md). */
void cli_ckpt(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body);
/** CKPT_ASK {job}: a proc job's program wants a checkpoint now: one starts
 *  (its CKPT_PREPARE answers), else CKPT_REFUSED {job, error}. */
void ckpt_on_ask(struct ctl *ctl, struct node *n, const json_t *body);
/** CKPT_LOADED {job, epoch, error?}: a restarted proc job's program restored
 *  its checkpoint, or could not (restart_app_load_failed). */
void ckpt_on_loaded(struct ctl *ctl, struct node *n, const json_t *body);
void cli_ckpts(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body);
void cli_ckpt_delete(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body);
void cli_restart(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body);
/** The newest committed checkpoint of job @job older than @before (0: any):
 *  *@epoch.  \return 0, -ENOENT (none), -EIO (catalog). */
int ckpt_newest(struct ctl *ctl, long job, int64_t before, int64_t *epoch);
/** hec-store's arguments for the storage servers the controller knows:
 *  @servers "s0=host:port,..." (every server, down ones too: placement
 *  needs the whole ring), *@replicas (2, or 1 with a single server).
 *  \return 0, -ENOENT (no storage server registered), -ENOSPC (@len). */
int ckpt_store_args(struct ctl *ctl, char *servers, size_t len, int *replicas);
/** Run hec-store (found as the repair finds it) with @argv (after the
 *  program name; the cluster key file, --servers and --json are added) as a
 *  child in its own process group, never waited on by the loop; @done gets
 *  its exit status (-1: could not start, or killed past @limit_ms) and its
 *  stdout (NUL-terminated; NULL if none).  \return 0 or -errno. */
int ckpt_store_run(struct ctl *ctl, const char *const *argv, long limit_ms,
		   void (*done)(struct ctl *ctl, void *arg, int status, const char *out,
				const char *err),
		   void *arg);
/** hec-store commit of (@job, @epoch): @meta and @entries (a JSON array,
 *  one per part, any number) written into @dir as meta.json and
 *  entries.jsonl; @c->argv is what ckpt_store_run takes.  \return 0 or
 *  -errno. */
struct ckpt_commit_cmd {
	char job[24], epoch[24], meta[PATH_MAX], entries[PATH_MAX];
	const char *argv[10];
};
int ckpt_commit_cmd(struct ckpt_commit_cmd *c, const char *dir, long job, long long epoch,
		    const json_t *meta, const json_t *entries);
/** ckpt_store_run's machinery for another of hec's programs that takes
 *  --servers and --key-file (@prog: its path; @store_flags: also --quiet
 *  --json, as hec-store wants). */
int ckpt_tool_run(struct ctl *ctl, const char *prog, int store_flags, const char *const *argv,
		  long limit_ms,
		  void (*done)(struct ctl *ctl, void *arg, int status, const char *out,
			       const char *err),
		  void *arg);
/** `ckpt_export` {job, epoch, path} and `ckpt_import` {path, job?}
 *  (ckpt/ctl_h5.c): answered when hec-ckpt-h5 is done. */
void cli_ckpt_export(struct ctl *ctl, struct peer *p, struct ctl_job *j, const json_t *body);
void cli_ckpt_import(struct ctl *ctl, struct peer *p, const json_t *body);
/** @p's connection is going: its export or import runs on, unanswered. */
void ckpt_h5_forget_peer(struct peer *p);
/** hec's program @name beside hecctld, else in bindir or sbindir. */
int ctl_find_program(const char *name, char *buf, size_t len);
/** @j is ending (any outcome) or going to restart: abort its checkpoint
 *  under way with @why.  Idempotent. */
void ckpt_job_ended(struct ctl *ctl, struct ctl_job *j, const char *why);
/** At the controller's start (catalog loaded, loop made): pending rows of
 *  checkpoints that were under way are aborted (on the servers, once they
 *  registered; a checkpoint whose manifest made it is listed committed).
 *  \return 0, -EIO, -ENOMEM. */
int ckpt_init(struct ctl *ctl);
/** Every tick: --ckpt-interval checkpoints that are due, the clean-up of
 *  aborted checkpoints' rows. */
void ckpt_tick(struct ctl *ctl);
/** @p's connection is going away: nobody to answer there. */
void ckpt_forget_peer(struct ctl *ctl, struct peer *p);
/** At exit, before the fan-outs go: children killed, records freed (the
 *  rows of checkpoints under way stay pending for the next start). */
void ckpt_free_all(struct ctl *ctl);
/** Could @j's program be checkpointed now, a checkpoint under way aside
 *  (a running proc job with a node, storage servers registered)? */
int ckpt_app_possible(struct ctl *ctl, const struct ctl_job *j);
/**
 * Job @by is about to suspend @j (ctl_gang.c): an app checkpoint of @j
 * starts at once, "before job P (priority N) preempts it", not pinned: the
 * gang guard keeps @j running; its capture or abort is reported to
 * ctl_gang_ckpt_over().  \return 0 with its epoch in *@epoch; -EALREADY:
 * the one under way (*@epoch) holds the program's data already (it is
 * being stored); else -errno and @why: none was taken.
 */
int ckpt_preempt_start(struct ctl *ctl, struct ctl_job *j, const struct ctl_job *by,
		       int64_t *epoch, char *why, size_t len);
/** Abort @j's checkpoint @epoch with @why unless its program wrote it. */
void ckpt_preempt_give_up(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const char *why);
/** CKPT_CAPTURED, CKPT_STORED, CKPT_PROGRESS from node @n. */
void ckpt_on_captured(struct ctl *ctl, struct node *n, const json_t *body);
void ckpt_on_stored(struct ctl *ctl, struct node *n, const json_t *body);
void ckpt_on_progress(struct ctl *ctl, struct node *n, const json_t *body);

/* ---- ckpt/ctl_restart.c: restarting jobs from their checkpoints ---- */

/** A job's partition failed (a guest or QEMU died, an agent or node was
 *  lost; a proc job's batch step also ended by a signal or a non-zero
 *  status, @why) and the job is about to end: \return 1 if it restarts
 *  instead (--restart auto, restarts left, a committed checkpoint, storage
 *  servers): it is ending into PENDING already; 0: end it as before. */
int restart_wanted(struct ctl *ctl, struct ctl_job *j, const char *why);
/** Restart @j (running, or final) from committed checkpoint @epoch, on
 *  @nodes ([names], NULL: any) for @reason (RESTART_BY_USER... when asked):
 *  a restarts row, then its partitions killed and it is requeued.
 *  \return 0, or -errno with @why (nothing changed). */
int restart_begin(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const json_t *nodes,
		  const char *reason, char *why, size_t len);
/** Every node of @j, ending into PENDING, is gone: PENDING ("Restart"; a
 *  job_requeue without a checkpoint keeps its reason). */
void restart_requeue(struct ctl *ctl, struct ctl_job *j);
/** LAUNCH's "restore" for the node at index @i of restarting @j, or NULL
 *  with @why (the checkpoint or the storage servers are gone). */
json_t *restart_launch_restore(struct ctl *ctl, struct ctl_job *j, int i, char *why, size_t len);
/** Every node of restarting @j has loaded its stream: START {restored} to
 *  the batch node, RESUME {t} to every node; the job runs again.  A proc
 *  job's START is the usual one (its batch step runs again, the program
 *  restores itself): restart_started() records it. */
void restart_send_start(struct ctl *ctl, struct ctl_job *j);
/** The catalog's record of a restarted job whose START went out. */
void restart_started(struct ctl *ctl, struct ctl_job *j);
/** A restarted proc job's program could not restore its checkpoint
 *  (CKPT_LOADED's @error, or its batch step failed before it said it
 *  restored): \return 1 if it falls back as restart_launch_failed. */
int restart_app_load_failed(struct ctl *ctl, struct ctl_job *j, const char *node,
			    const char *error);
/** A node's restore failed (LAUNCHED's @error, or no answer in time):
 *  \return 1 if @j was restarting (it falls back to the previous committed
 *  checkpoint, or fails with none left), 0 if it was not. */
int restart_launch_failed(struct ctl *ctl, struct ctl_job *j, const char *node,
			  const char *error);
/** Node @n registered again while @j runs there: a restored job whose
 *  RESUME this controller never sent gets it now. */
void restart_reconciled(struct ctl *ctl, struct ctl_job *j, struct node *n);
/** The gang matrix's column filter: a restarting job waits for a storage
 *  server up, and with --nodes goes only there (@arg: the ctl). */
int restart_col_ok(void *arg, long id, int col);
/** A pending restart's queue reason ("Restart", or why it waits), NULL
 *  for any other job. */
const char *restart_waits_for(const struct ctl *ctl, const struct ctl_job *j);

/* ---- ctl_cli.c: CLI requests ---- */

void cli_on_msg(struct hec_conn *c, const struct hec_msg *m, void *arg);
/** A CLI peer whose user is known (Unix socket, or after AUTH): refused,
 *  saying so, if that user holds CTL_CLI_PER_UID connections already.
 *  \return 1 if it may go on. */
int cli_peer_admit(struct ctl *ctl, struct peer *p);
void respond(struct hec_conn *c, json_t *body);
void respond_error(struct hec_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** Check the table of requests (at start). \return 0, or -EINVAL and why in @err. */
int cli_handlers_check(char *err, size_t errlen);

/* ---- ctl_gang.c: the gang matrix, epochs, clock and statistics ---- */

/** Create the matrix from the configuration. \return 0 or -ENOMEM. */
int ctl_gang_init(struct ctl *ctl);
/** Nanoseconds @j has run by @now (CLOCK_REALTIME ns): since its start,
 *  less the time it spent SUSPENDED (as SLURM's, a suspended job's clock,
 *  and its time limit, stop). */
int64_t job_run_ns(const struct ctl_job *j, int64_t now);
/** What `hec gang set` changed before a restart, back from the catalog
 *  (unless hecctld.conf's gang settings changed since: the file wins). */
void ctl_gang_restore(struct ctl *ctl);
void ctl_gang_fini(struct ctl *ctl);
/** Parse a timeslice name. \return 1 for "none", 0 for "gang", -EINVAL. */
int ctl_gang_timeslice_parse(const char *s);
/** How far ahead an instant all nodes must meet is set (an epoch's start, a
 *  checkpoint's cut, a restart's resume): 4 x the largest RTT of the nodes
 *  up, 50 ms to 1 s. */
int64_t ctl_lead_ns(const struct ctl *ctl);
/** Column of @n: its place in ctl->nodes. */
int node_col(const struct ctl *ctl, const struct node *n);
/** Add a submitted or reloaded pending job to the matrix. */
void ctl_gang_add_pending(struct ctl *ctl, struct ctl_job *j);
/** Reloaded started job: back on its nodes (after ctl_jobs_restore). */
void ctl_gang_add_restored(struct ctl *ctl, struct ctl_job *j);
/** The job starts, runs, ends: pinned while starting or ending. */
void ctl_gang_pin(struct ctl *ctl, struct ctl_job *j, int pinned);
/** The job is final: its place in the matrix is free. */
void ctl_gang_remove(struct ctl *ctl, struct ctl_job *j);
/** Scheduling pass: start, suspend and resume jobs as the matrix says,
 *  refresh pending reasons, publish an epoch if anything changed; guard
 *  running proc jobs whose program can be checkpointed, and checkpoint
 *  those a preemptor wants (preempt_ckpt_grace). */
void ctl_schedule(struct ctl *ctl);
/** The scheduling pass (and the saves of registrations) once the messages
 *  that came together are handled, before anything new is read: one pass
 *  for N agents registering at once, not N (hecctld.c). */
void ctl_schedule_soon(struct ctl *ctl);
/** @j's checkpoint @epoch is captured (@why NULL) or aborted (@why): if a
 *  preemption waited for it, the guard goes and the suspension follows. */
void ctl_gang_ckpt_over(struct ctl *ctl, struct ctl_job *j, int64_t epoch, const char *why);
/** TIME_REQ from an agent, received at @t2 (CLOCK_REALTIME ns). */
void ctl_gang_time_req(struct ctl *ctl, struct node *n, const json_t *body, int64_t t2);
void ctl_gang_on_stats(struct ctl *ctl, struct node *n, const json_t *body);
void cli_gang(struct ctl *ctl, struct peer *p);
void cli_gang_stats(struct ctl *ctl, struct peer *p);
/** `gang_set`, for root only (the dispatcher checked). */
void cli_gang_set(struct ctl *ctl, struct peer *p, const json_t *req);

/* ---- hecctld.c ---- */

/** Root asked for shutdown: end active jobs, SHUTDOWN to every agent, exit
 *  once they are gone (at most 5 s). */
void ctl_begin_shutdown(struct ctl *ctl, uid_t uid);
/** Seconds of CLOCK_REALTIME. */
int64_t ctl_now(void);

#endif
