/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Users of the CLI over TCP, authenticated by MUNGE (doc/protocol.md,
 * "Remote CLI").  The controller sends a fresh nonce (AUTH_NONCE); the
 * client answers with a MUNGE credential whose payload is that nonce
 * (AUTH); the controller decodes it and takes the user from it (AUTH_OK).
 * The nonce binds the credential to its connection: one captured on another
 * connection carries another payload, and munged refuses a second decode.
 */
#ifndef HEC_AUTH_H
#define HEC_AUTH_H

#include <stddef.h>
#include <sys/types.h>

#define HEC_AUTH_NONCE_BYTES 32                  /* random bytes, sent as hex */
#define HEC_AUTH_NONCE_LEN (2 * HEC_AUTH_NONCE_BYTES)
#define HEC_AUTH_CRED_MAX 4096                   /* a credential's text, at most */
#define HEC_AUTH_TTL 60                          /* s a credential lives */

/** A fresh nonce, HEC_AUTH_NONCE_LEN hex digits and a NUL, into @buf.
 *  \return 0 or -errno. */
int hec_auth_nonce(char buf[HEC_AUTH_NONCE_LEN + 1]);

/**
 * A credential of this process's user whose payload is @nonce, good for
 * HEC_AUTH_TTL seconds, from the munged at @socket (NULL or "": libmunge's
 * default).  \return 0 with *@cred malloc'ed, or -ENOTCONN (munged
 * unreachable) / -EACCES (refused) / -ENOMEM with a sentence in @err.
 */
int hec_auth_encode(const char *socket, const char *nonce, char **cred, char *err, size_t errlen);

/**
 * Check @cred against @nonce with the munged at @socket: it must decode
 * (valid, not expired, not replayed) and carry exactly @nonce.  Blocks for
 * the round trip to the local munged.  \return 0 with the credential's
 * *@uid and *@gid, or -ENOTCONN (munged unreachable), -EACCES (the
 * credential is refused) or -ENOMEM, with a sentence in @err.
 *
 * *@down is the caller's memory of munged's state (0 at first): libmunge
 * retries a refused connect for seconds, so once munged was unreachable
 * each later call first tries one connect itself and refuses at once while
 * that fails; a decode that reaches munged clears it.
 */
int hec_auth_decode(const char *socket, const char *cred, const char *nonce, uid_t *uid,
		    gid_t *gid, int *down, char *err, size_t errlen);

/**
 * The client's side on a fresh connection @fd: read AUTH_NONCE, send AUTH,
 * read AUTH_OK, each read within @timeout_ms.  \return 0, or -errno with a
 * sentence in @err (-EREMOTEIO: the controller refused and said why).
 */
int hec_auth_client(int fd, const char *socket, int timeout_ms, char *err, size_t errlen);

#endif
