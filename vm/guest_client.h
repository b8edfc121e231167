/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client end of the guest channel, shared by hec-rsh (inside the guest,
 * over TCP to another guest's remote-shell service) and hec-guestctl (on the
 * host, over QEMU's virtio-serial socket): read frames, send a RUN, relay
 * stdin/stdout/stderr until the EXIT.  libc only (hec-guest is static).
 */
#ifndef HEC_VM_GUEST_CLIENT_H
#define HEC_VM_GUEST_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "hec/guest.h"

/* Incoming bytes; frames decoded from it stay valid until the next gc_fill. */
struct gc_reader {
	uint8_t *buf;
	size_t len, off, cap;
};

/** Write one whole frame (blocking). \return 0 or a negative errno. */
int gc_send(int fd, unsigned type, const void *payload, uint32_t len);

/** Read once from @fd into @r. \return bytes read, 0 at EOF, or a negative errno. */
long gc_fill(int fd, struct gc_reader *r);

/** Next complete frame in @r: \return 1 with *@f, 0 if more bytes are needed, or < 0
 *  (the decoder's errno: the stream is broken). */
int gc_next(struct gc_reader *r, struct hec_guest_frame *f);

/**
 * Wait up to @timeout_ms for a frame from @fd, reading as needed.
 * \return 1 with *@f, -ETIMEDOUT, -ECONNRESET (EOF) or another negative errno.
 */
int gc_wait_frame(int fd, struct gc_reader *r, struct hec_guest_frame *f, int timeout_ms);

/**
 * After a RUN was sent on @fd: relay our stdin as IN frames (EOF: an empty
 * IN), OUT frames to our stdout/stderr, SIGINT/SIGTERM/SIGHUP as SIGNAL
 * frames, until the EXIT.  @who names the peer in messages ("vm1").
 * \return the exit status to exit with: the command's, 128+signal if it was
 * killed, 127 if it could not start (EXIT with error=, printed), 255 if the
 * connection broke.
 */
int gc_relay(int fd, struct gc_reader *r, const char *prog, const char *who, long long id);

void gc_reader_free(struct gc_reader *r);

#endif
