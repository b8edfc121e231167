/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ckpt/hecckpt_int.h: libhecckpt's internals shared by its files:
 * hecckpt.c (the API, MPI and HDF5) and hecckpt_agent.c (rank 0's side of
 * the agent protocol, doc: APP-CKPT "Library <-> agent").
 */
#ifndef HEC_CKPT_HECCKPT_INT_H
#define HEC_CKPT_HECCKPT_INT_H

#include <stdarg.h>
#include <stddef.h>

#define HECCKPT_ERRLEN 1024 /* longest sentence in hecckpt_last_error() */

/** Set the sentence of this process's last failure; \return @rc. */
int hecckpt_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** The current sentence (the buffer itself: collective calls copy it across). */
char *hecckpt_errbuf(void);

/*
 * Rank 0's connection to the agent.  Every call returns 0 or a negative
 * errno with the sentence set.  A timeout, a closed socket or a message
 * that breaks the protocol breaks the connection for good: it is closed and
 * every later call returns -EPIPE naming the first cause.  An "error"
 * answer of the agent is -EIO and leaves the connection usable.
 */
struct hecckpt_agent;

/** Connect to @path, say hello (@job, @ranks) and wait for the agent's. */
int hecckpt_agent_open(const char *path, long long job, int ranks, int timeout_s,
		       struct hecckpt_agent **out);
void hecckpt_agent_close(struct hecckpt_agent *a);
/** Read what has arrived without waiting; *@epoch: the pending request (0: none). */
int hecckpt_agent_poll(struct hecckpt_agent *a, long long *epoch);
/** Begin checkpoint @epoch (the pending one, or 0: the agent chooses one);
 *  *@out gets the epoch to write.  Clears the pending request it serves. */
int hecckpt_agent_begin(struct hecckpt_agent *a, long long epoch, long long *out);
/** The file of @epoch is written (@path, @bytes): wait until the agent took it.
 *  \return -ECANCELED if the agent refused it after cancelling @epoch. */
int hecckpt_agent_written(struct hecckpt_agent *a, long long epoch, const char *path,
			  long long bytes);
/** Writing @epoch failed (@why); nothing is awaited. */
int hecckpt_agent_failed(struct hecckpt_agent *a, long long epoch, const char *why);
/** Tell the outcome of a restore of @epoch (@why NULL: restored). */
int hecckpt_agent_restored(struct hecckpt_agent *a, long long epoch, const char *why);

#endif
