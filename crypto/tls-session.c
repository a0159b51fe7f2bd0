/*
 * tls-session.c: the handshake, the peer checks and the plaintext pump
 * (see crypto/tls-session.h).
 */
#include "qemu/osdep.h"

#include <poll.h>
#include <sys/socket.h>

#include <gnutls/x509.h>

#include "crypto/tls-creds.h"
#include "crypto/tls-session.h"

#define PUMP_DRAIN_MS 2000
#define PUMP_CHUNK (64 * 1024)

struct TlsPump {
    gnutls_session_t session;
    int net_fd;                 /* the TCP connection */
    int app_fd;                 /* our end of the socketpair */
    GThread *thread;
    GMutex lock;
    GCond done_cond;
    bool done;
    gint64 deadline_us;         /* of the handshake; 0 after it */
    bool timed_out;             /* a read of the handshake hit it */
};

/*
 * GnuTLS reads the network through this: during the handshake every read
 * waits only until the handshake's deadline, so a peer that trickles a
 * byte at a time gains nothing (GnuTLS's own handshake timeout is not
 * kept by its default blocking reads).
 */
static int deadline_wait(TlsPump *p, int ms)
{
    struct pollfd fd = { .fd = p->net_fd, .events = POLLIN };
    int rc;

    if (p->deadline_us) {
        gint64 left = (p->deadline_us - g_get_monotonic_time()) / 1000;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return 0;
        }
        ms = ms < 0 ? (int)left : MIN(ms, (int)left);
    }
    do {
        rc = poll(&fd, 1, ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        errno = ETIMEDOUT;
    }
    return rc;
}

static ssize_t deadline_pull(gnutls_transport_ptr_t ptr, void *buf,
                             size_t len)
{
    TlsPump *p = ptr;
    ssize_t n;

    if (p->deadline_us && deadline_wait(p, -1) <= 0) {
        p->timed_out = errno == ETIMEDOUT;
        gnutls_transport_set_errno(p->session, ETIMEDOUT);
        return -1;
    }
    do {
        n = recv(p->net_fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        gnutls_transport_set_errno(p->session, errno);
    }
    return n;
}

static int deadline_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    return deadline_wait(ptr, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1
                                                              : (int)ms);
}

static ssize_t plain_push(gnutls_transport_ptr_t ptr, const void *buf,
                          size_t len)
{
    TlsPump *p = ptr;
    ssize_t n;

    do {
        n = send(p->net_fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        gnutls_transport_set_errno(p->session, errno);
    }
    return n;
}

static void set_timeouts(int fd, int seconds)
{
    struct timeval tv = { .tv_sec = seconds };

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static bool send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return false;
        }
        p += k;
        n -= k;
    }
    return true;
}

static bool tls_send_all(gnutls_session_t s, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = gnutls_record_send(s, p, n);

        if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
            continue;
        }
        if (k <= 0) {
            return false;
        }
        p += k;
        n -= k;
    }
    return true;
}

static gpointer pump_thread(gpointer opaque)
{
    TlsPump *p = opaque;
    uint8_t *buf = g_malloc(PUMP_CHUNK);
    bool net_open = true;

    for (;;) {
        struct pollfd fds[2] = {
            { .fd = p->app_fd, .events = POLLIN },
            { .fd = net_open ? p->net_fd : -1, .events = POLLIN },
        };
        bool net_ready = net_open &&
                         gnutls_record_check_pending(p->session) > 0;

        if (!net_ready && poll(fds, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (net_ready || fds[1].revents) {
            ssize_t k = gnutls_record_recv(p->session, buf, PUMP_CHUNK);

            if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
                continue;
            }
            if (k <= 0) {
                /* the peer ended the session (or broke it): our reader
                 * sees the end of its stream */
                net_open = false;
                shutdown(p->app_fd, SHUT_WR);
            } else if (!send_all(p->app_fd, buf, k)) {
                break;
            }
            continue;
        }
        if (fds[0].revents) {
            ssize_t k = recv(p->app_fd, buf, PUMP_CHUNK, 0);

            if (k < 0 && errno == EINTR) {
                continue;
            }
            if (k <= 0) {
                /* our side is done: end the session properly */
                gnutls_bye(p->session, GNUTLS_SHUT_WR);
                break;
            }
            if (!tls_send_all(p->session, buf, k)) {
                break;
            }
        }
    }
    g_free(buf);
    shutdown(p->app_fd, SHUT_RDWR);
    g_mutex_lock(&p->lock);
    p->done = true;
    g_cond_broadcast(&p->done_cond);
    g_mutex_unlock(&p->lock);
    return NULL;
}

/* The peer's first certificate, or NULL with @errp set. */
static gnutls_x509_crt_t peer_certificate(gnutls_session_t s,
                                          const char *peer, GError **errp)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    gnutls_x509_crt_t crt;

    if (!certs || !n) {
        g_set_error(errp, COLO_ERROR, EACCES, "TLS: %s sent no certificate",
                    peer);
        return NULL;
    }
    if (gnutls_x509_crt_init(&crt) < 0) {
        g_set_error(errp, COLO_ERROR, ENOMEM, "TLS: out of memory");
        return NULL;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(crt);
        g_set_error(errp, COLO_ERROR, EACCES, "TLS: %s's certificate cannot "
                    "be read", peer);
        return NULL;
    }
    return crt;
}

/* The chain, the dates, then the hostname (client) or the authz
 * (server). */
static bool check_peer(gnutls_session_t s, const TlsCreds *c,
                       const TlsParams *params, const char *peer,
                       GError **errp)
{
    unsigned status = 0;
    gnutls_x509_crt_t crt;
    bool ok = true;
    int rc;

    if (!c->verify_peer) {
        return true;
    }
    rc = gnutls_certificate_verify_peers2(s, &status);
    if (rc < 0) {
        g_set_error(errp, COLO_ERROR, EACCES, "TLS: cannot verify %s's "
                    "certificate: %s", peer, gnutls_strerror(rc));
        return false;
    }
    if (status) {
        gnutls_datum_t why = { 0 };

        gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                     &why, 0);
        g_set_error(errp, COLO_ERROR, EACCES, "TLS: %s's certificate is "
                    "refused: %s", peer, why.data ? (char *)why.data : "?");
        gnutls_free(why.data);
        return false;
    }
    crt = peer_certificate(s, peer, errp);
    if (!crt) {
        return false;
    }
    if (!c->server && params->hostname && params->hostname[0] &&
        !gnutls_x509_crt_check_hostname(crt, params->hostname)) {
        g_set_error(errp, COLO_ERROR, EACCES, "TLS: %s's certificate is not "
                    "for host name '%s'", peer, params->hostname);
        ok = false;
    }
    if (ok && c->server && params->authz && params->authz[0]) {
        size_t size = 0;
        g_autofree char *dn = NULL;

        gnutls_x509_crt_get_dn(crt, NULL, &size);
        dn = g_malloc0(size + 1);
        if (gnutls_x509_crt_get_dn(crt, dn, &size) < 0) {
            g_set_error(errp, COLO_ERROR, EACCES, "TLS: %s's certificate has "
                        "no readable distinguished name", peer);
            ok = false;
        } else {
            ok = authz_is_allowed(params->authz, dn, errp);
        }
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

int tls_session_start(int fd, const TlsParams *params, const char *peer,
                      TlsPump **pump, GError **errp)
{
    const TlsCreds *c = tls_creds_find(params->creds, errp);
    TlsPump *p;
    int pair[2];
    int rc, handshake_ms;

    *pump = NULL;
    if (!c) {
        close(fd);
        return -1;
    }
    p = g_new0(TlsPump, 1);
    p->net_fd = fd;
    p->app_fd = -1;
    g_mutex_init(&p->lock);
    g_cond_init(&p->done_cond);
    rc = gnutls_init(&p->session, (c->server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                     GNUTLS_NO_SIGNAL);
    if (rc >= 0) {
        rc = gnutls_set_default_priority(p->session);
    }
    if (rc >= 0) {
        rc = gnutls_credentials_set(p->session, GNUTLS_CRD_CERTIFICATE,
                                    c->x509);
    }
    if (rc < 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "TLS: cannot set up a session: "
                    "%s", gnutls_strerror(rc));
        goto fail;
    }
    if (c->server && c->verify_peer) {
        gnutls_certificate_server_set_request(p->session, GNUTLS_CERT_REQUIRE);
    }
    gnutls_transport_set_ptr(p->session, p);
    gnutls_transport_set_pull_function(p->session, deadline_pull);
    gnutls_transport_set_pull_timeout_function(p->session,
                                               deadline_pull_timeout);
    gnutls_transport_set_push_function(p->session, plain_push);
    /* One deadline for the whole handshake (GnuTLS keeps it across its
     * reads), so a peer that trickles bytes gains nothing; the socket
     * timeouts catch a single read or write that hangs. */
    /* a client may first wait in the server's queue for a while */
    handshake_ms = params->handshake_ms > 0 ? params->handshake_ms :
                   c->server ? TLS_HANDSHAKE_TIMEOUT_S * 1000 :
                   TLS_CLIENT_HANDSHAKE_TIMEOUT_S * 1000;
    p->deadline_us = g_get_monotonic_time() + handshake_ms * 1000ll;
    set_timeouts(fd, (handshake_ms + 999) / 1000);
    do {
        rc = gnutls_handshake(p->session);
    } while (rc < 0 && !gnutls_error_is_fatal(rc) && rc != GNUTLS_E_AGAIN);
    if (rc < 0) {
        g_set_error(errp, COLO_ERROR, EPROTO, "TLS handshake with %s failed: "
                    "%s%s", peer,
                    rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_TIMEDOUT ||
                    p->timed_out ?
                    "not finished within the deadline" :
                    gnutls_strerror(rc),
                    rc == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
                    rc == GNUTLS_E_UNEXPECTED_PACKET ||
                    rc == GNUTLS_E_UNSUPPORTED_VERSION_PACKET ?
                    " (is the peer using TLS?)" :
                    rc == GNUTLS_E_CERTIFICATE_REQUIRED ||
                    rc == GNUTLS_E_NO_CERTIFICATE_FOUND ?
                    " (the peer sent no certificate that this server's CAs "
                    "accept)" : "");
        goto fail;
    }
    set_timeouts(fd, 0);
    p->deadline_us = 0;
    if (!check_peer(p->session, c, params, peer, errp)) {
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "socketpair: %s",
                    g_strerror(errno));
        goto fail;
    }
    p->app_fd = pair[0];
    p->thread = g_thread_new("colo-tls", pump_thread, p);
    *pump = p;
    return pair[1];

fail:
    if (p->session) {
        gnutls_deinit(p->session);
    }
    close(fd);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->done_cond);
    g_free(p);
    return -1;
}

void tls_pump_shutdown(TlsPump *p)
{
    if (p) {
        shutdown(p->net_fd, SHUT_RDWR);
        shutdown(p->app_fd, SHUT_RDWR);
    }
}

void tls_pump_free(TlsPump *p)
{
    int64_t deadline;

    if (!p) {
        return;
    }
    deadline = g_get_monotonic_time() + PUMP_DRAIN_MS * 1000;
    g_mutex_lock(&p->lock);
    while (!p->done &&
           g_cond_wait_until(&p->done_cond, &p->lock, deadline)) {
        /* until it is done or the moment has passed */
    }
    g_mutex_unlock(&p->lock);
    tls_pump_shutdown(p);
    g_thread_join(p->thread);
    gnutls_deinit(p->session);
    close(p->app_fd);
    close(p->net_fd);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->done_cond);
    g_free(p);
}
