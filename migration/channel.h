/*
 * channel.h: the transports an incoming migration arrives on, by URI:
 * tcp:HOST:PORT, unix:PATH, exec:COMMAND, file:PATH[,offset=N].
 *
 * migration_channel_open() runs on the thread that takes the request (so
 * that a bad URI or a busy port is reported at once); the blocking accept
 * runs on the migration thread.
 */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include "qemu/osdep.h"

#include "crypto/tls-session.h"

typedef enum {
    CHANNEL_TCP,
    CHANNEL_UNIX,
    CHANNEL_EXEC,
    CHANNEL_FILE,
} ChannelKind;

typedef struct IncomingChannel {
    ChannelKind kind;
    char *uri;
    int listen_fd;          /* tcp/unix: listening socket, -1 after accept */
    int fd;                 /* the stream; -1 until connected */
    bool is_socket;         /* @fd is a socket: replies can go back on it */
    GPid child;             /* exec: the command, 0 if none */
    char *unix_path;        /* unix: the socket file we created */
    char *host;             /* tcp: as bound */
    int port;               /* tcp: as bound (the real one if 0 asked) */
    bool ipv6;
    char *tls_creds;        /* TLS server: migrate-set-parameters' */
    char *tls_authz;
    TlsPump *tls;           /* after the handshake; @fd is its plaintext */
} IncomingChannel;

/* Parses @uri and makes it ready: listening, the file opened, or the
 * command started. */
IncomingChannel *migration_channel_open(const char *uri, GError **errp);
/* The sending side: connects to a tcp:HOST:PORT or unix:PATH peer and
 * returns the socket (or -1, error set naming the peer). */
int migration_channel_connect(const char *uri, GError **errp);
/* The source must speak TLS with the tls-creds-x509 object @creds (an
 * endpoint=server one), and be let in by the authz object @authz if not
 * NULL or "".  Sockets only. */
bool migration_channel_set_tls(IncomingChannel *ch, const char *creds,
                               const char *authz, GError **errp);
/* Waits for the source to connect (sockets), then runs the TLS handshake
 * if set; no-op otherwise. */
bool migration_channel_accept(IncomingChannel *ch, GError **errp);
/* Wakes a thread blocked in accept() or read(). */
/* The one way to wake the incoming migration thread, whatever it waits
 * for: accept (the listening socket), the stream (the connection, shut
 * down both ways) or an exec: child (terminated).  colo_peer_shutdown()
 * is the primary side's. */
void migration_channel_shutdown(IncomingChannel *ch);
void migration_channel_free(IncomingChannel *ch);

#endif /* MIGRATION_CHANNEL_H */
