/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hecd internals: the node agent's state, shared by hecd.c (main, config,
 * controller link), job.c (LAUNCH/START/KILL_JOB, batch steps), bridge.c
 * (SPAWN requests from hec-launch), gang.c (clock, epochs, slot dispatcher)
 * and topo.c (hwloc).
 *
 * One libevent loop thread does everything but the gang slot dispatcher,
 * which has its own thread (see gang.c for what they share); children are
 * reaped on SIGCHLD.
 */
#ifndef HEC_AGENT_H
#define HEC_AGENT_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>
#include <jansson.h>

#include "hec/common.h"
#include "hec/net.h"
#include "hec/partition.h"

#define AGENT_NAME_MAX 64

struct agent_conf {
	char name[AGENT_NAME_MAX + 1];
	char cluster_name[AGENT_NAME_MAX + 1];
	char controller[300];
	char listen[300];
	char advertise[256];
	char key_file[PATH_MAX];
	char cpus[4096];
	char gang_cpu[16];          /* a housekeeping CPU for the dispatcher, "": none */
	char state_dir[PATH_MAX];
	char ckpt_dir[PATH_MAX];    /* proc jobs' HEC_CKPT_DIR parent, "": state_dir */
	char launch_helper[PATH_MAX];
	char mpiexec[PATH_MAX];
	char log_level[16];
	char qemu[PATH_MAX];
	char vm_kernel[PATH_MAX];
	char image_cache[PATH_MAX];
	char vm_switch[16];
	char vm_hugepages[8];
	char job_pids_max[16];      /* auto, none or a number (penv.pids_max) */
};

struct agent_topo {
	int cores, pus, numa_nodes;
	long memory_mb;
};

/* A JOB_EXIT the controller has not acknowledged yet. */
struct exit_rec {
	struct exit_rec *next;
	long job;
	int exit, sig;
	char *error;               /* NULL or owned */
	char *note;                /* NULL or owned: the agent's remark on a failure */
	long long time;            /* CLOCK_REALTIME s the agent saw it end */
};

struct agent;
struct job_restore;

struct agent_job {
	struct agent_job *next;
	struct agent *ag;
	long id;
	int launched;              /* key/uid/nodes known (LAUNCH, or job.json) */
	char key[257];
	uid_t uid;
	gid_t gid;
	struct hec_groups groups;  /* uid's groups, as its processes run */
	char out_path[PATH_MAX];   /* the batch step's output file ("": not known) */
	char err_path[PATH_MAX];   /* its error file ("": the output file, or not known) */
	json_t *nodes;             /* LAUNCH's [{name, addr, ranks}] (owned) */
	struct hec_partition *part; /* never NULL; host: the agent's phost, host_arg: this job */
	int vm_running;            /* vm: the batch step runs in the guest now */
	/* START came (persisted): REGISTER says so, and a job the controller
	 * recorded as started without it never had its batch step run */
	int start_seen;
	struct job_restore *rst;   /* restarted from a checkpoint (LAUNCH's restore), job.c */
	pid_t batch_pid;           /* our child running the batch step, 0 if none */
	/* A batch step of a previous agent life: not our child; watched by polling. */
	pid_t orphan_pid;
	/* ... one whose pid that life did not keep (it died just after the
	 * spawn): it runs while its keeper has not written its end and the
	 * partition holds processes */
	int orphan_unknown;
	unsigned long long batch_start; /* /proc starttime of the step: pid reuse check */
	struct event *watch;       /* orphan poll */
	/* KILL_JOB in progress */
	int killing;
	int64_t kill_start_ns;
	int kill_ticks, kill_warned;
	struct event *kill_timer;
};

struct bridge;
struct agent_gang;
struct agent_ckpt;
struct agent_app;

struct agent {
	struct agent_conf conf;
	struct event_base *base;
	const struct hec_partition_ops *ops; /* the default driver (proc) */
	struct hec_part_registry drivers;    /* every driver, by name (LAUNCH's partition) */
	struct hec_partition_env penv;
	struct hec_part_host phost;          /* what the drivers get of us (job.c) */
	enum hec_vm_switch vm_switch;        /* conf.vm_switch */
	enum hec_vm_hugepages vm_hugepages;  /* conf.vm_hugepages */
	long pids_max;                       /* conf.job_pids_max; 0: none */
	int gang_cpu;                        /* conf.gang_cpu; -1: none */
	char cgroup_base[2 * AGENT_NAME_MAX + 8];
	char key[257];             /* cluster secret */
	char hostname[256];
	char addr[320];            /* advertised host:port of the spawn listener */
	char helper[PATH_MAX];     /* hec-launch */
	char mpich_bin[PATH_MAX];  /* MPICH's mpiexec, mpicc.. under their plain names ("": none) */
	char keeper[PATH_MAX];     /* <state_dir>/hec-keeper, the batch steps' parent ("": none) */
	char relay[PATH_MAX];      /* <state_dir>/hec-relay, the proxies' bridge end ("": none) */
	char mkimage[PATH_MAX];    /* hec-mkimage (vm partitions) */
	char guest_bin[PATH_MAX];  /* hec-guest, the guests' init */
	char mpifix[PATH_MAX];     /* libhec-mpifix.so, preloaded in vm jobs */
	struct agent_topo topo;

	/* controller link */
	struct hec_conn *ctl;
	int connect_fd;
	struct event *connect_ev;
	struct event *retry_timer;
	int backoff_ms;
	int registered;
	int connect_failures;
	long heartbeat_ms;
	struct event *hb_timer;

	/* spawn listener */
	int listen_fd;
	struct event *listen_ev;

	struct agent_job *jobs;
	struct exit_rec *exits;
	struct bridge *bridges;
	struct agent_gang *gang;         /* gang scheduling: clock, epochs, dispatcher */
	struct agent_ckpt *ckpts;        /* checkpoints under way here (ckpt/agent_ckpt.c) */
	struct agent_app *apps;          /* proc jobs' checkpoint sockets (ckpt/agent_app.c) */

	struct event *sigs[5];
	int shutting_down;         /* SHUTDOWN: kill everything, then exit */
	int64_t shutdown_start_ns;
	struct event *exit_timer;
	int exit_code;
};

/* hecd.c */
int agent_is_root(void);
/** Send to the controller if connected (else dropped: REGISTER resends state). */
void agent_ctl_send(struct agent *ag, unsigned type, json_t *body_stolen);
/** Exit the loop once the controller link has flushed (SHUTDOWN done). */
void agent_finish(struct agent *ag);

/* ckpt/agent_ckpt.c: the agent's side of a coordinated checkpoint */
/** CKPT_PREPARE: at instant t, hold the job network here, capture the
 *  partition's machine and stream it to storage (CKPT_CAPTURED, then
 *  CKPT_STORED; CKPT_PROGRESS meanwhile). */
void agent_ckpt_on_prepare(struct agent *ag, const json_t *body);
/** CKPT_REOPEN: every partition of the job is captured: release the hold. */
void agent_ckpt_on_reopen(struct agent *ag, const json_t *body);
/** CKPT_ABORT: stop what runs of that checkpoint here; release the hold. */
void agent_ckpt_on_abort(struct agent *ag, const json_t *body);
/** The controller link is lost: every checkpoint here fails (its stream is
 *  never stored, so it cannot be committed) and releases its hold: the
 *  jobs' networks must not wait for a coordinator that may never return. */
void agent_ckpt_ctl_lost(struct agent *ag);
/** The job's partition is going (KILL_JOB, shutdown): end its checkpoint. */
void agent_ckpt_job_gone(struct agent *ag, long job);
/** A reaped child: a checkpoint's stream writer?  \return 1 if so. */
int agent_ckpt_reaped(struct agent *ag, pid_t pid, int status);
/** The agent exits: every checkpoint's writer is killed, all freed. */
void agent_ckpt_free(struct agent *ag);

/* ckpt/agent_ckpt.c, application-assisted checkpoints of proc jobs (kind
 * "app"): the program said `written` (@fd: its file, opened as the job's
 * user; the callee dups it).  \return 0: taken (CKPT_CAPTURED sent, the
 * writer streams it), or -errno with @why. */
int agent_ckpt_app_written(struct agent *ag, long job, long long epoch, int fd, long long bytes,
			   int ranks, char *why, size_t len);
/** The program could not write checkpoint @epoch (@why): it fails. */
void agent_ckpt_app_failed(struct agent *ag, long job, long long epoch, const char *why);

/* ckpt/agent_app.c: a proc job's checkpoint socket and directory on its
 * first node (doc/design.md, "Application-assisted checkpoints") */
struct envv;
/** LAUNCH of a proc job, first node: make HEC_CKPT_DIR (the job's user,
 *  0700) and listen on HEC_CKPT_SOCK (0600).  \return 0 or -errno, @why. */
int agent_app_setup(struct agent *ag, struct agent_job *j, char *why, size_t len);
/** A proc job adopted after a hecd restart, first node: its HEC_CKPT_DIR is
 *  ours again, to remove at its end; no socket (its program's connection
 *  went with the old hecd, and libhecckpt does not reconnect). */
void agent_app_adopt(struct agent *ag, struct agent_job *j);
/** START: HEC_CKPT_DIR, HEC_CKPT_SOCK (and after a fetched restore
 *  HEC_CKPT_RESTORE, HEC_CKPT_EPOCH) into @e; nothing for other jobs. */
int agent_app_env(struct agent *ag, long job, struct envv *e);
/** Create ckpt-<epoch>.h5 in the job's HEC_CKPT_DIR as the job's user, for
 *  the restore's fetch: \return 0 with *@fd (write only), or -errno, @why. */
int agent_app_restore_open(struct agent *ag, long job, long long epoch, int *fd, char *why,
			   size_t len);
/** The fetch of @epoch succeeded: START gives the program its file. */
void agent_app_restore_ready(struct agent *ag, long job, long long epoch);
/** The job was launched here from a checkpoint (its batch step runs again:
 *  its output goes on after the earlier run's).  \return 1 or 0. */
int agent_app_restarting(struct agent *ag, long job);
/** CKPT_PREPARE kind app: ask the program (`request`, or `epoch` to a
 *  program that asked first).  \return 0, -ENOENT (no socket here), or
 *  -ENOTCONN (the socket went with a hecd restart: agent_app_adopt). */
int agent_app_request(struct agent *ag, long job, long long epoch);
/** The checkpoint ended here (stored: 0; else aborted or failed): the
 *  program hears `cancel` if it still waits, the file goes. */
void agent_app_end(struct agent *ag, long job, long long epoch, int stored);
/** CKPT_REFUSED: the program's own checkpoint was refused. */
void agent_app_on_refused(struct agent *ag, const json_t *body);
/** KILL_JOB: close the socket, remove the directory. */
void agent_app_job_gone(struct agent *ag, long job);
void agent_app_free(struct agent *ag);

/* job.c */
struct agent_job *agent_job_find(struct agent *ag, long id);
/** Adopt partitions found on disk (previous agent life). */
void agent_jobs_adopt(struct agent *ag);
void agent_job_on_launch(struct agent *ag, const json_t *body);
void agent_job_on_start(struct agent *ag, const json_t *body);
void agent_job_on_kill(struct agent *ag, long id);
void agent_job_on_exit_ack(struct agent *ag, long id);
/** RESUME {job, t}: the job's partition here, restarted from a checkpoint
 *  and loaded (LAUNCH's restore), runs from controller instant t. */
void agent_job_on_resume(struct agent *ag, const json_t *body);
void agent_jobs_shutdown(struct agent *ag);
/** Called for each reaped child; \return 1 if it was a batch step. */
int agent_job_reaped(struct agent *ag, pid_t pid, int status);
/** JOB_EXIT frames for every unacked exit (after REGISTERED). */
void exits_resend(struct agent *ag);
json_t *exits_json(struct agent *ag);
/** Free all jobs (handles released, partitions left alone) and exits. */
void agent_jobs_free(struct agent *ag);
/** Job directory state_dir/job.<id>. */
int agent_job_dir(struct agent *ag, long id, char *buf, size_t len);
/** "name=addr,..." and "name,name" from LAUNCH's nodes. */
char *agent_job_agent_map(const struct agent_job *j);
char *agent_job_nodelist(const struct agent_job *j);

/** Fill ag->phost: the event loop, the guests' tools, the callbacks. */
void agent_jobs_host_init(struct agent *ag);
/** A reaped child of a partition driver (image tool, QEMU)?  \return 1 if so. */
int agent_jobs_part_reaped(struct agent *ag, pid_t pid, int status);

/** The job's batch step runs inside its partition's machine (a vm guest). */
static inline int job_is_vm(const struct agent_job *j)
{
	return hec_partition_runs_inside(j->part->ops);
}

/* gang.c: gang scheduling (doc/design.md, "Gang scheduling") */
int agent_gang_new(struct agent *ag);
/** Stop and join the dispatcher thread, close every gate, free. */
void agent_gang_free(struct agent *ag);
/** Controller link up (clock bursts start) / down (they stop). */
void agent_gang_on_registered(struct agent *ag);
void agent_gang_on_disconnect(struct agent *ag);
void agent_gang_on_time_resp(struct agent *ag, const json_t *body);
void agent_gang_on_epoch(struct agent *ag, const json_t *body);
void agent_gang_on_stats_req(struct agent *ag, const json_t *body);
/** @j's partition exists now (LAUNCH): schedule it if an epoch names it. */
void agent_gang_job_ready(struct agent *ag, struct agent_job *j);
/** Take job @id out of every schedule before its partition is killed. */
void agent_gang_job_forget(struct agent *ag, long id);
/** Controller instant @ctl_ns (its CLOCK_REALTIME, as EPOCH, CKPT_PREPARE
 *  and RESUME carry) on our CLOCK_MONOTONIC, by the gang clock estimate.
 *  \return 0, or -EAGAIN while there is no estimate yet. */
int agent_gang_ctl_to_mono(struct agent *ag, int64_t ctl_ns, int64_t *mono_ns);
/** The round trip to the controller of the clock estimate in use (ns), 0
 *  while there is none: HEARTBEAT carries it, for the epochs' lead. */
int64_t agent_gang_rtt_ns(const struct agent *ag);
/* How much of [@from, @to] (CLOCK_MONOTONIC ns) falls in job @id's own
 * slots of the schedule in force here: all of it when the job does not
 * time-share here (no schedule names it, or it has every slot).  Never
 * waits on the dispatcher (a copy of the schedule under its own lock). */
int64_t agent_gang_own_ns(struct agent *ag, long id, int64_t from, int64_t to);

/* bridge.c */
int bridges_listen(struct agent *ag, int *port);
int bridge_reaped(struct agent *ag, pid_t pid, int status);
void bridges_free(struct agent *ag);
/** Close the network links of job @job (its guest here is gone). */
void bridges_close_net(struct agent *ag, long job);

/* topo.c */
/**
 * Topology of the CPUs @cpus ("" = every CPU this process may use) from
 * hwloc.  *@cpus_out gets the list as text.  \return 0, or -errno with a
 * one-line reason in @err.
 */
int agent_topology(const char *cpus, char *cpus_out, size_t outlen, struct agent_topo *t,
		   char *err, size_t errlen);

/* env.c: NULL-terminated "K=V" arrays. */
struct envv {
	char **v;
	size_t n, cap;
};
int envv_add(struct envv *e, const char *kv);
int envv_set(struct envv *e, const char *key, const char *value);
/** PATH=@dir:<the PATH @e has, or the default /usr/local/bin:/usr/bin:/bin>.
 *  \return 0 or -ENOMEM. */
int envv_path_first(struct envv *e, const char *dir);
void envv_free(struct envv *e);

/** Constant-time string equality (keys). */
int agent_key_equal(const char *a, const char *b);
/** Exit status for JOB_EXIT/EXITED from a wait status. */
void agent_wait_status(int status, int *exit, int *sig);

#endif
