/*
 * tls-session.h: TLS on a migration connection, the way QEMU's migration
 * does it (the whole stream inside one TLS session from the first byte),
 * with GnuTLS (crypto/tls-session.c).
 *
 * The code that reads and writes the stream keeps working on a plain
 * file descriptor: after the handshake a pump thread moves the plaintext
 * between the TLS session and one end of a socketpair, and the caller
 * gets the other end.  Closing (or shutting down) that end ends the
 * session.
 */
#ifndef CRYPTO_TLS_SESSION_H
#define CRYPTO_TLS_SESSION_H

#include "qemu/osdep.h"

typedef struct TlsPump TlsPump;

typedef struct TlsParams {
    const char *creds;          /* tls-creds-x509 id; NULL: no TLS */
    const char *hostname;       /* client: the name the server's
                                   certificate must carry */
    const char *authz;          /* server: who may connect, or NULL */
    int handshake_ms;           /* the whole handshake's deadline; 0:
                                   TLS_HANDSHAKE_TIMEOUT_S */
} TlsParams;

/* How long a peer may take for the whole TLS handshake, by default; a
 * client waits longer (the server may first make it queue). */
#define TLS_HANDSHAKE_TIMEOUT_S 10
#define TLS_CLIENT_HANDSHAKE_TIMEOUT_S 30

/* Runs the TLS handshake on the connected socket @fd as @params->creds'
 * endpoint, checks the peer (certificate chain, dates, hostname or
 * authz), then starts the pump.  @peer names the other end in errors.
 * @fd belongs to the pump from now on (closed on failure too).  Returns
 * the plaintext fd (the caller's to close) and *@pump, or -1. */
int tls_session_start(int fd, const TlsParams *params, const char *peer,
                      TlsPump **pump, GError **errp);
/* Shuts the network side down: wakes whoever waits on the session. */
void tls_pump_shutdown(TlsPump *p);
/* After the caller closed its fd: lets the pump send what it still has
 * (a moment at most), ends the session and frees it. */
void tls_pump_free(TlsPump *p);

#endif /* CRYPTO_TLS_SESSION_H */
