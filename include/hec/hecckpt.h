/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * hec/hecckpt.h: application-assisted checkpoints for MPI programs
 * (libhecckpt; build with `mpicc app.c $(pkg-config --cflags --libs hecckpt)`).
 *
 * A program names the arrays that make up its state (hecckpt_protect), asks
 * at a convenient point of its loop whether hec wants a checkpoint
 * (hecckpt_need) and, if so, takes one (hecckpt_checkpoint): every
 * protected array of every rank goes into one HDF5 file.  When hec restarts
 * the job from a checkpoint, hecckpt_restore puts the arrays back and tells
 * the program which checkpoint it resumed from.
 *
 *	hecckpt_init(MPI_COMM_WORLD);
 *	hecckpt_protect("iter", &iter, 1, MPI_LONG_LONG);
 *	hecckpt_protect("u", u, n, MPI_DOUBLE);
 *	if (hecckpt_restore(&restarted, &epoch) < 0) {
 *		fprintf(stderr, "%s\n", hecckpt_last_error());
 *		MPI_Abort(MPI_COMM_WORLD, 1);
 *	}
 *	for (; iter < iters; iter++) {
 *		step(u, n);
 *		if (hecckpt_need(&need) == 0 && need)
 *			hecckpt_checkpoint(NULL);
 *	}
 *	hecckpt_finalize();
 *
 * Every function returns 0 or a negative errno.  On failure
 * hecckpt_last_error() holds a sentence naming the thing and the cause (the
 * same sentence on every rank for the collective calls); calls that succeed
 * leave it as it was.  The library keeps one state per process and is not
 * thread-safe: call it from one thread (MPI_THREAD_FUNNELED is enough).
 * It never prints and never aborts.
 *
 * The environment (hec sets it; hecckpt_init reads rank 0's):
 *   HEC_CKPT_DIR      where checkpoint files are written; every rank must
 *                     see it.  Without it checkpoints return -ENOTSUP and
 *                     hecckpt_need always answers 0: the program runs
 *                     unchanged outside hec.
 *   HEC_CKPT_SOCK     the hec agent's socket (rank 0 talks to it).  Without
 *                     it, but with HEC_CKPT_DIR ("standalone"), checkpoints
 *                     are numbered 1, 2, ... by the library, written as
 *                     $HEC_CKPT_DIR/ckpt-<epoch>.h5 and kept; hecckpt_need
 *                     answers 0.
 *   HEC_CKPT_RESTORE  a checkpoint file that hecckpt_restore reads (with or
 *                     without the two above); HEC_CKPT_EPOCH, if set, must
 *                     be its epoch.
 *   HEC_CKPT_TIMEOUT  seconds to wait for each answer of the agent
 *                     (default 60); one that does not come fails the call
 *                     with -ETIMEDOUT.
 *   HEC_JOB_ID        recorded in the file (0 when unset).
 *
 * The file: `h5ls -r` and `h5dump` read it.  Root attributes job (int64),
 * epoch (int64), ranks (int32), format ("hecckpt 1"); one 1-D dataset
 * /<name> per protected array holding the ranks' parts side by side in rank
 * order, of the native type of the array's MPI type, with attributes counts
 * (int64[ranks]: each rank's element count), xxh3 (uint64[ranks]: XXH3-64
 * of each rank's bytes) and mpi_type (e.g. "MPI_DOUBLE").
 */
#ifndef HEC_HECCKPT_H
#define HEC_HECCKPT_H

#include <stddef.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HECCKPT_NAME_MAX 63 /* longest array name */

/** Collective over @comm (duplicated inside; the library's messages never
 *  mix with the program's).  Reads the environment above; under hec, rank 0
 *  connects to the agent.  \return -EALREADY if already initialised,
 *  -EINVAL if MPI is not initialised or HEC_CKPT_SOCK is set without
 *  HEC_CKPT_DIR, -ENAMETOOLONG for a path that does not fit, an errno of
 *  connecting (-ECONNREFUSED, -ENOENT...), -ETIMEDOUT / -EPROTO / -EPIPE if
 *  the agent does not greet correctly.  A failed init leaves the library
 *  uninitialised (init may be called again). */
int hecckpt_init(MPI_Comm comm);

/** Local.  Protect @count elements of @type at @ptr under @name (1 to
 *  HECCKPT_NAME_MAX characters of [A-Za-z0-9_.-]).  Every rank protects the
 *  same names with the same types in the same order (checked by
 *  hecckpt_checkpoint and hecckpt_restore); counts may differ between
 *  ranks, and 0 is allowed.  Protecting a name again replaces its entry in
 *  place (re-protect after a resize).  The library keeps @ptr, not a copy:
 *  the array must stay valid while protected.  Types: MPI_CHAR, MPI_BYTE,
 *  MPI_INT, MPI_UNSIGNED, MPI_LONG, MPI_LONG_LONG, MPI_UNSIGNED_LONG_LONG,
 *  MPI_FLOAT, MPI_DOUBLE.  \return -EINVAL for a bad name or a NULL @ptr
 *  with a non-zero count, -ENOTSUP for another type, -EOVERFLOW if the
 *  array's size in bytes does not fit, -ENOMEM. */
int hecckpt_protect(const char *name, void *ptr, size_t count, MPI_Datatype type);

/** Local.  Forget @name.  \return -ENOENT if it is not protected. */
int hecckpt_unprotect(const char *name);

/** Collective; call after protecting.  If HEC_CKPT_RESTORE names a
 *  checkpoint, read it into the protected arrays and set *@restarted = 1
 *  and *@epoch (either may be NULL) to its epoch; otherwise set
 *  *@restarted = 0 and return 0.  Every rank reads its part into scratch
 *  memory first; the arrays are written only once every part of every
 *  array on every rank was read and its XXH3-64 matched, so on failure
 *  they are untouched.  \return -ENOENT (no such file), -EIO (not a
 *  readable hecckpt file: truncated, damaged, a checksum mismatch naming
 *  the array and the rank), -EINVAL (written by another number of ranks:
 *  "checkpoint E was written by 4 ranks, this run has 2: restarts need the
 *  same number of ranks"; a protected name missing from the file or one in
 *  the file not protected; another type; names differing between ranks;
 *  HEC_CKPT_EPOCH not the file's epoch), -EMSGSIZE (a rank protects
 *  another count than the file holds for it), -ENOMEM.  Under hec the
 *  agent is told the outcome (restored / restore_failed); a program whose
 *  restore failed should exit non-zero. */
int hecckpt_restore(int *restarted, long long *epoch);

/** Collective and cheap: set *@need to 1 if hec asked for a checkpoint
 *  (`hec ckpt`, --ckpt-interval, or before suspending the job), else 0.
 *  Outside hec it is always 0 and nothing is communicated; under hec rank 0
 *  polls the agent's socket without waiting and broadcasts one int.
 *  \return -EPIPE (with *@need = 0) once the agent has gone or broke the
 *  protocol (then every later call under hec fails the same way), -EINVAL
 *  if not initialised. */
int hecckpt_need(int *need);

/** Collective: write every protected array to one HDF5 file (rank 0 makes
 *  the file and its datasets with HDF5, every rank writes its part of each
 *  by MPI-IO), hand it to the agent and return; *@epoch (may
 *  be NULL) gets the checkpoint's epoch.  Under hec the requested epoch is
 *  taken, or, with no request pending, the agent is asked for one (a
 *  checkpoint of the program's own); hec stores the file while the program
 *  runs on.  Standalone the file stays in HEC_CKPT_DIR.  \return -ENOTSUP
 *  without HEC_CKPT_DIR, -EINVAL (not initialised; names or types differing
 *  between ranks), -EIO (writing the file failed, or the agent refused),
 *  -ECANCELED (hec cancelled this checkpoint meanwhile), -ETIMEDOUT /
 *  -EPIPE / -EPROTO (the agent did not answer, went away or broke the
 *  protocol), -ENOMEM.  A failed checkpoint leaves no file behind and the
 *  program may go on. */
int hecckpt_checkpoint(long long *epoch);

/** Collective: release everything (the protected arrays are not touched)
 *  and close the agent's socket.  Waits for nothing.  \return -EINVAL if
 *  not initialised. */
int hecckpt_finalize(void);

/** A short, static description of @rc (a negative errno) for this library. */
const char *hecckpt_strerror(int rc);

/** The sentence of the last call of this process that failed ("" if none). */
const char *hecckpt_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
