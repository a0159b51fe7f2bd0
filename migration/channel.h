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
    GMutex refusal_lock;    /* for the two below */
    uint64_t refused;       /* connections that did not earn the port */
    char *last_refusal;     /* why the last one did not */
} IncomingChannel;

/* A connection to the incoming port has this long to finish its TLS
 * handshake (if any) and send the stream header; this many try at once
 * (channel-accept.c). */
#define MIG_PREAMBLE_TIMEOUT_S  10
#define MIG_MAX_CANDIDATES      16
/* After that, in the middle of the stream (not between COLO checkpoints),
 * a source must send this much in every window or the stream ends. */
#define MIG_PROGRESS_FLOOR_BYTES (64 * 1024)
#define MIG_PROGRESS_WINDOW_S    60

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
/* Sockets: waits for a connection that completes the TLS handshake (if
 * set) and sends a QEMU stream header in time; refused ones are logged
 * and counted, and the port stays open (channel-accept.c).  Other
 * transports: no-op. */
bool migration_channel_accept(IncomingChannel *ch, GError **errp);
/* How many connections were refused so far, and why the last one was
 * (NULL if none; the caller frees it). */
void migration_channel_refusals(IncomingChannel *ch, uint64_t *count,
                                char **last);
/* Sockets: tells the source why this side gives up (@err, as an
 * X_STANDBY_ERROR report, include/migration/wire.h) and shuts the sending
 * side down, so that the source learns at once instead of when its writes
 * stall.  Best effort: never blocks, and a connection that takes nothing
 * more gets no report. */
void migration_channel_report(IncomingChannel *ch, const GError *err);
/* The one way to wake the incoming migration thread, whatever it waits
 * for: accept (the listening socket), the stream (the connection, shut
 * down both ways) or an exec: child (terminated).  colo_peer_shutdown()
 * is the primary side's. */
void migration_channel_shutdown(IncomingChannel *ch);
void migration_channel_free(IncomingChannel *ch);

#endif /* MIGRATION_CHANNEL_H */
