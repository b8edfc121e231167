/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Shared helpers: logging, time, strings, parsing of user-facing values.
 * Library calls return 0 or a negative errno; only front ends (CLI, daemon
 * mains) turn errors into sentences.
 */
#ifndef HEC_COMMON_H
#define HEC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sched.h>
#include <sys/types.h>

#define HEC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum hec_log_level { HEC_LOG_ERR, HEC_LOG_WARN, HEC_LOG_INFO, HEC_LOG_DEBUG };

/** Set the program name and threshold for hec_log(); logs go to stderr. */
void hec_log_init(const char *prog, enum hec_log_level level);
/** A level by name ("err", "warn", "info", "debug"). \return 0 or -EINVAL. */
int hec_log_level_parse(const char *name, enum hec_log_level *level);
/** One line per call, "2026-11-24T01:02:03.456 prog[pid] level: text". */
void hec_log(enum hec_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define hec_err(...) hec_log(HEC_LOG_ERR, __VA_ARGS__)
#define hec_warn(...) hec_log(HEC_LOG_WARN, __VA_ARGS__)
#define hec_info(...) hec_log(HEC_LOG_INFO, __VA_ARGS__)
#define hec_debug(...) hec_log(HEC_LOG_DEBUG, __VA_ARGS__)
/** A record about job @job on node @node: "node0: job 7: text", the one
 *  prefix every agent and driver message about a job carries (grep for it). */
void hec_log_job(enum hec_log_level level, const char *node, long job, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define hec_job_err(...) hec_log_job(HEC_LOG_ERR, __VA_ARGS__)
#define hec_job_warn(...) hec_log_job(HEC_LOG_WARN, __VA_ARGS__)
#define hec_job_info(...) hec_log_job(HEC_LOG_INFO, __VA_ARGS__)
#define hec_job_debug(...) hec_log_job(HEC_LOG_DEBUG, __VA_ARGS__)

/** A rate limit for log lines a peer can provoke (bad frames): at most
 *  @burst lines per @window_ns, the rest counted, not logged. */
struct hec_ratelimit {
	int64_t window_start;
	int n;
	long suppressed;
};
/** 1 if a line may be logged at @now (mono ns), with *@suppressed the lines
 *  held back since the last one logged (to say so in it); 0 if not (it is
 *  counted). */
int hec_ratelimit_ok(struct hec_ratelimit *rl, int burst, int64_t window_ns, int64_t now,
		     long *suppressed);

/** Nanoseconds of CLOCK_MONOTONIC / CLOCK_REALTIME. */
int64_t hec_now_mono_ns(void);
int64_t hec_now_real_ns(void);

/**
 * Parse a SLURM-style time limit: "MIN", "MIN:SEC", "H:MIN:SEC", "D-H",
 * "D-H:MIN", "D-H:MIN:SEC", or "0"/"UNLIMITED"/"infinite" for none.
 * \return 0 with *@secs (0 = unlimited), -EINVAL if malformed, -ERANGE if
 *         longer than a year.
 */
int hec_parse_time_limit(const char *s, long *secs);

/**
 * Parse a memory size as SLURM's --mem does: a number with an optional unit
 * K, M (the default), G or T (powers of 1024); KiB round up to whole MiB.
 * \return 0 with *@mb, -EINVAL if malformed, -ERANGE if 0 or above 1 PiB.
 */
int hec_parse_mem_mb(const char *s, long *mb);

/** Format seconds as "D-HH:MM:SS" / "HH:MM:SS" / "UNLIMITED" into @buf. */
void hec_format_duration(long secs, char *buf, size_t len);

/** Parse a decimal integer in [min, max]; \return 0, -EINVAL or -ERANGE. */
int hec_parse_long(const char *s, long min, long max, long *out);

/**
 * Parse a CPU list ("0-3,8,10-11") into a bitmask of up to 1024 CPUs.
 * \return the number of CPUs set, or -EINVAL.
 */
#define HEC_MAX_CPUS 1024
struct hec_cpuset { uint64_t bits[HEC_MAX_CPUS / 64]; };
int hec_cpuset_parse(const char *s, struct hec_cpuset *set);
/** Format as a compact list; \return 0 or -ENOSPC. */
int hec_cpuset_format(const struct hec_cpuset *set, char *buf, size_t len);
int hec_cpuset_count(const struct hec_cpuset *set);
int hec_cpuset_intersects(const struct hec_cpuset *a, const struct hec_cpuset *b);
/** 1 if CPU @c (0 to HEC_MAX_CPUS - 1) is in @set. */
int hec_cpuset_has(const struct hec_cpuset *set, int c);
/** The same CPUs as a cpu_set_t for sched_setaffinity() (those below CPU_SETSIZE). */
void hec_cpuset_to_cpu_set(const struct hec_cpuset *set, cpu_set_t *out);

/** snprintf that reports truncation (paths built from config and wire data).
 *  \return 0, or -ENAMETOOLONG when @buf was too small (it holds a prefix). */
int hec_fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));

/** write() all @len bytes, retrying on EINTR. \return 0 or -errno. */
int hec_write_all(int fd, const void *buf, size_t len);
/** Write a whole small file that must exist (cgroup and sysfs files).
 *  \return 0 or -errno. */
int hec_write_file(const char *path, const char *text);
/** Create or replace @path (not following a symlink) with exactly @mode,
 *  whatever the umask. \return 0 or -errno. */
int hec_create_file(const char *path, const void *data, size_t len, mode_t mode);
/** Reads up to @len-1 bytes, NUL-terminates, strips one trailing newline. */
int hec_read_file(const char *path, char *buf, size_t len);
/** "starttime" of /proc/@pid/stat (field 22): with the pid, names one
 *  process across pid reuse.  0 if it is gone or a zombie. */
unsigned long long hec_proc_start(pid_t pid);
/** mkdir -p with @mode for created components. \return 0 or -errno. */
int hec_mkdir_p(const char *path, mode_t mode);

/** A user's groups, as a job runs with them (SLURM's initgroups). */
#define HEC_GROUPS_MAX 256
struct hec_groups {
	int n;
	gid_t g[HEC_GROUPS_MAX];
};
/** The groups of @uid (its passwd entry's name) with @gid among them, from
 *  the group database; a uid with no passwd entry gets @gid alone, and a
 *  user in more than HEC_GROUPS_MAX groups the first ones.  Not for a
 *  forked child (NSS).  \return 0, or -ENOENT for an unknown uid (@out
 *  still filled). */
int hec_user_groups(uid_t uid, gid_t gid, struct hec_groups *out);
/** In a child about to run as the job's user: its groups (@gr, NULL: none
 *  but @gid), then @gid, then @uid.  Async-signal-safe (system calls
 *  only).  \return 0, or -1 with errno. */
int hec_become_user(uid_t uid, gid_t gid, const struct hec_groups *gr);

/** Random hex token of 2*@nbytes chars from getrandom(). \return 0 or -errno. */
int hec_random_hex(char *buf, size_t nbytes);

/* Names that become file names and ring or host-file entries (nodes,
 * storage servers, a stream's part), and hashes as text (doc/storage.md). */
#define HEC_NAME_MAX 64
#define HEC_HASH_HEX 17       /* 16 lowercase hex digits + NUL */
/** 1 if @name is 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
int hec_name_ok(const char *name);
/** Bytes of a cluster key with its NUL: the protocol's 256 characters. */
#define HEC_KEY_SIZE 257
/** The cluster key in file @path, white space around it trimmed, into @key
 *  (@len bytes, HEC_KEY_SIZE).  A key is 1 or more
 *  printable ASCII characters: a file empty, too long, or holding anything
 *  else (a binary file given by mistake) is refused.
 *  \return 0, or -errno (-EINVAL: @why says what is wrong with the file). */
int hec_read_key(const char *path, char *key, size_t len, char *why, size_t whylen);
/** 1 if secrets @a and @b are equal, compared in time independent of where
 *  they differ (a peer must not learn a key byte by byte). */
int hec_key_equal(const char *a, const char *b);
/** A 64-bit hash as exactly 16 lowercase hex digits, and back: parse
 *  \return 0, or -EINVAL for anything but exactly that form. */
void hec_hash_hex(uint64_t h, char out[HEC_HASH_HEX]);
int hec_hash_parse(const char *hex, uint64_t *h);

/** Directory holding the running executable (from /proc/self/exe). */
/** In a child just forked from an event-loop daemon that blocked every
 *  signal around the fork: every handler back to default, then nothing
 *  blocked (the parent's libevent handlers must never run in the child). */
void hec_child_signals_default(void);
int hec_self_dir(char *buf, size_t len);

#endif
