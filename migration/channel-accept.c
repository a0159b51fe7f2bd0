/*
 * channel-accept.c: who gets the incoming migration port.
 *
 * QEMU takes the first connection to its incoming port and fails the
 * migration if that one is bad: one stray or hostile connection, or one
 * that trickles bytes, and the standby can never be reached.  Here a
 * connection must first earn the port: within MIG_PREAMBLE_TIMEOUT_S of
 * being accepted it must finish the TLS handshake (when tls-creds is set)
 * and send the stream's first eight bytes, QEMU's magic and version.  Up
 * to MIG_MAX_CANDIDATES connections try at once, each in a thread of its
 * own; further ones wait in the listen queue.  The first to get there is
 * the stream and the port closes, as in QEMU; the others are closed.  A
 * connection that fails is counted, its reason logged (log_peer) and kept
 * for query-migrate, and the port stays open for the real source.
 *
 *   acceptor (migration thread)            candidate threads
 *   poll(listen fd, wake fd)
 *     accept -> candidate ----------------> [TLS handshake]
 *                                           peek 8 bytes: "QEVM" 0 0 0 3
 *     <--------------- result queue + wake -
 *   first good one wins; the rest are shut down and joined
 *
 * Owner: the incoming migration thread; the refusal figures are also
 * read by query-migrate under the channel's lock.
 */
#include "qemu/osdep.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include "migration/channel.h"
#include "migration/wire.h"
#include "qemu/bswap.h"
#include "qemu/log.h"

typedef struct Candidate {
    IncomingChannel *ch;
    int sock;               /* the accepted socket; ours to shut down */
    int fd;                 /* what the stream is read from (TLS: plain) */
    TlsPump *pump;
    char *peer;             /* its address, for the log */
    gint64 deadline_us;
    GThread *thread;
    char *why;              /* NULL: it sent a stream header in time */
    gint cancelled;         /* another one won: not a refusal (atomic) */
    bool lost;              /* failed because it was cancelled */
    GAsyncQueue *results;
    int wake_fd;
} Candidate;

static void candidate_free(Candidate *c)
{
    if (c->pump) {
        if (c->fd >= 0) {
            close(c->fd);
        }
        tls_pump_free(c->pump);
    }
    if (c->sock >= 0) {
        close(c->sock);
    }
    g_free(c->peer);
    g_free(c->why);
    g_free(c);
}

static char *sockaddr_name(const struct sockaddr_storage *ss, socklen_t len)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];

    if (ss->ss_family == AF_UNIX) {
        return g_strdup("a UNIX socket client");
    }
    if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
                    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
        return g_strdup("an unknown address");
    }
    return g_strdup_printf(ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
                           host, port);
}

/* Waits for the stream's first eight bytes without taking them. */
static bool candidate_peek_header(Candidate *c)
{
    uint8_t head[8];

    for (;;) {
        gint64 left = c->deadline_us - g_get_monotonic_time();
        struct pollfd p = { .fd = c->fd, .events = POLLIN | POLLRDHUP };
        ssize_t n;

        if (left <= 0) {
            c->why = g_strdup_printf("no QEMU stream header within %d s",
                                     MIG_PREAMBLE_TIMEOUT_S);
            return false;
        }
        if (poll(&p, 1, (int)(left / 1000 + 1)) < 0 && errno != EINTR) {
            c->why = g_strdup_printf("poll: %s", g_strerror(errno));
            return false;
        }
        n = recv(c->fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof(head)) {
            break;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
            (n > 0 && (p.revents & (POLLRDHUP | POLLHUP)))) {
            c->why = g_strdup_printf("closed after %zd bytes, before the "
                                     "QEMU stream header", n < 0 ? 0 : n);
            return false;
        }
        if (n > 0 && n < (ssize_t)sizeof(head)) {
            /* part of it: wait for the rest without spinning */
            g_usleep(10000);
        }
    }
    if (ldl_be_p(head) != QEMU_VM_FILE_MAGIC ||
        ldl_be_p(head + 4) != QEMU_VM_FILE_VERSION) {
        g_autofree char *shown = qemu_escape((const char *)head, 8, 8);

        c->why = g_strdup_printf("not a QEMU migration stream (it begins "
                                 "with \"%s\")", shown);
        return false;
    }
    return true;
}

static gpointer candidate_thread(gpointer opaque)
{
    Candidate *c = opaque;
    IncomingChannel *ch = c->ch;
    uint64_t one = 1;

    if (ch->tls_creds) {
        TlsParams tls = { .creds = ch->tls_creds, .authz = ch->tls_authz };
        g_autoptr(GError) err = NULL;
        g_autofree char *peer = ch->kind == CHANNEL_TCP ?
            g_strdup_printf("the source on tcp:%s%s%s:%d", ch->ipv6 ? "[" : "",
                            ch->host, ch->ipv6 ? "]" : "", ch->port) :
            g_strdup_printf("the source on %s", ch->uri);
        int dupfd = dup(c->sock);

        tls.handshake_ms = MIG_PREAMBLE_TIMEOUT_S * 1000;
        c->fd = dupfd < 0 ? -1 : tls_session_start(dupfd, &tls, peer,
                                                   &c->pump, &err);
        if (c->fd < 0) {
            c->why = err ? g_strdup(err->message)
                         : g_strdup_printf("dup: %s", g_strerror(errno));
        }
    } else {
        c->fd = c->sock;
    }
    if (!c->why) {
        candidate_peek_header(c);
    }
    if (c->why && g_atomic_int_get(&c->cancelled)) {
        g_clear_pointer(&c->why, g_free);
        c->why = g_strdup("another connection was first");
        c->lost = true;
    }
    g_async_queue_push(c->results, c);
    if (write(c->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is full: the acceptor is awake anyway */
    }
    return NULL;
}

static void channel_note_refusal(IncomingChannel *ch, const Candidate *c)
{
    log_peer(NULL, "incoming migration from %s refused: %s", c->peer,
             c->why);
    g_mutex_lock(&ch->refusal_lock);
    ch->refused++;
    g_free(ch->last_refusal);
    ch->last_refusal = g_utf8_make_valid(c->why, -1);
    g_mutex_unlock(&ch->refusal_lock);
}

/* Wakes every candidate still trying (their threads then finish). */
static void candidates_shut_down(GPtrArray *running)
{
    for (guint i = 0; i < running->len; i++) {
        Candidate *c = g_ptr_array_index(running, i);

        /* the TLS pump, if any, shares this socket: it wakes too */
        g_atomic_int_set(&c->cancelled, 1);
        shutdown(c->sock, SHUT_RDWR);
    }
}

/* Takes the results that are in: the winner, if one is among them. */
static Candidate *candidates_collect(IncomingChannel *ch, GPtrArray *running,
                                     GAsyncQueue *results, bool have_winner)
{
    Candidate *winner = NULL, *c;

    while ((c = g_async_queue_try_pop(results))) {
        g_thread_join(c->thread);
        g_ptr_array_remove_fast(running, c);
        if (!c->why && !have_winner && !winner) {
            winner = c;
            continue;
        }
        if (c->why && !c->lost) {
            channel_note_refusal(ch, c);
        }
        candidate_free(c);
    }
    return winner;
}

static void candidate_start(IncomingChannel *ch, int sock,
                            const struct sockaddr_storage *ss, socklen_t len,
                            GPtrArray *running, GAsyncQueue *results,
                            int wake_fd)
{
    Candidate *c = g_new0(Candidate, 1);
    int one = 1;

    /* COLO's small messages must not wait for delayed ACKs */
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->ch = ch;
    c->sock = sock;
    c->fd = -1;
    c->peer = sockaddr_name(ss, len);
    c->deadline_us = g_get_monotonic_time() +
                     MIG_PREAMBLE_TIMEOUT_S * G_USEC_PER_SEC;
    c->results = results;
    c->wake_fd = wake_fd;
    g_ptr_array_add(running, c);
    c->thread = g_thread_new("mig/candidate", candidate_thread, c);
}

bool migration_channel_accept(IncomingChannel *ch, GError **errp)
{
    g_autoptr(GPtrArray) running = g_ptr_array_new();
    g_autoptr(GAsyncQueue) results = g_async_queue_new();
    Candidate *winner = NULL;
    int wake_fd, accept_err = 0;

    if (ch->listen_fd < 0) {
        return ch->fd >= 0;
    }
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "eventfd: %s",
                    g_strerror(errno));
        return false;
    }
    while (!winner && !accept_err) {
        struct pollfd p[2] = {
            { .fd = wake_fd, .events = POLLIN },
            { .fd = ch->listen_fd, .events = POLLIN },
        };
        bool room = running->len < MIG_MAX_CANDIDATES;
        uint64_t v;

        /* full: the listener is watched only for a shutdown (no POLLIN,
         * or waiting connections would wake us without end) */
        p[1].events = room ? POLLIN : 0;
        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            accept_err = errno;
            break;
        }
        if (read(wake_fd, &v, sizeof(v)) > 0) {
            winner = candidates_collect(ch, running, results, false);
        }
        if (!winner && !room &&
            (p[1].revents & (POLLERR | POLLHUP | POLLNVAL))) {
            accept_err = ECANCELED;     /* the listener was shut down */
            break;
        }
        if (!winner && room && (p[1].revents & (POLLIN | POLLERR |
                                                POLLHUP | POLLNVAL))) {
            struct sockaddr_storage ss = { 0 };
            socklen_t len = sizeof(ss);
            int fd = accept4(ch->listen_fd, (struct sockaddr *)&ss, &len,
                             SOCK_CLOEXEC);

            if (fd >= 0) {
                candidate_start(ch, fd, &ss, len, running, results, wake_fd);
            } else if (errno != EINTR && errno != EAGAIN &&
                       errno != ECONNABORTED && errno != EMFILE &&
                       errno != ENFILE) {
                accept_err = errno;     /* shut down: the migration ends */
            }
        }
    }
    /* the others lose: wake them and wait for their threads */
    candidates_shut_down(running);
    while (running->len) {
        uint64_t v;
        struct pollfd p = { .fd = wake_fd, .events = POLLIN };

        if (poll(&p, 1, -1) > 0 && read(wake_fd, &v, sizeof(v)) > 0) {
            candidates_collect(ch, running, results, true);
        }
    }
    close(wake_fd);
    if (!winner) {
        g_set_error(errp, COLO_ERROR, accept_err, "accept on %s: %s",
                    ch->uri, g_strerror(accept_err));
        return false;
    }
    close(ch->listen_fd);
    ch->listen_fd = -1;
    ch->is_socket = true;
    ch->fd = winner->fd;
    ch->tls = winner->pump;
    if (winner->pump) {
        close(winner->sock);    /* the pump has its own */
    }
    winner->sock = -1;
    winner->fd = -1;
    winner->pump = NULL;
    candidate_free(winner);
    return true;
}

void migration_channel_refusals(IncomingChannel *ch, uint64_t *count,
                                char **last)
{
    g_mutex_lock(&ch->refusal_lock);
    *count = ch->refused;
    *last = g_strdup(ch->last_refusal);
    g_mutex_unlock(&ch->refusal_lock);
}
