/*
 * channel.c: opening incoming migration transports.
 *
 * Owner: created by whoever starts the incoming migration, then handed to
 * the migration thread, which alone reads from it.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "migration/channel.h"
#include "crypto/tls-creds.h"
#include "migration/wire.h"
#include "qemu/sockets.h"

/*
 * COLO is a conversation of small messages (a 4-byte request, a reply,
 * then the checkpoint): with Nagle's algorithm on, a small write that
 * follows an unacknowledged one waits for the peer's delayed ACK, up to
 * 40 ms per checkpoint.  Harmless on non-TCP sockets (it fails there).
 */
static void socket_set_nodelay(int fd)
{
    int one = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        /* a UNIX socket: nothing to do */
    }
}

static IncomingChannel *channel_new(ChannelKind kind, const char *uri)
{
    IncomingChannel *ch = g_new0(IncomingChannel, 1);

    ch->kind = kind;
    ch->uri = g_strdup(uri);
    ch->listen_fd = -1;
    ch->fd = -1;
    g_mutex_init(&ch->refusal_lock);
    return ch;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT". */
static bool split_host_port(const char *s, char **host, char **port,
                            GError **errp)
{
    const char *colon;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');

        if (!close || close[1] != ':') {
            goto bad;
        }
        *host = g_strndup(s + 1, close - s - 1);
        *port = g_strdup(close + 2);
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            goto bad;
        }
        *host = g_strndup(s, colon - s);
        *port = g_strdup(colon + 1);
    }
    /* Options such as ",to=..." are not supported; cut them off. */
    if (strchr(*port, ',')) {
        *strchr(*port, ',') = '\0';
    }
    if (!(*port)[0]) {
        g_free(*host);
        g_free(*port);
        goto bad;
    }
    return true;

bad:
    g_set_error(errp, COLO_ERROR, EINVAL, "'%s' is not HOST:PORT", s);
    return false;
}

static bool channel_listen_tcp(IncomingChannel *ch, const char *addr,
                               GError **errp)
{
    g_autofree char *host = NULL;
    g_autofree char *port = NULL;
    struct addrinfo hints = { 0 }, *res = NULL;
    struct sockaddr_storage ss = { 0 };
    socklen_t sl = sizeof(ss);
    char hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
    int fd = -1, one = 1, rc;

    if (!split_host_port(addr, &host, &port, errp)) {
        return false;
    }
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "cannot resolve '%s': %s",
                    addr, gai_strerror(rc));
        return false;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, MIG_MAX_CANDIDATES) == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot listen on tcp:%s: %s",
                    addr, g_strerror(errno));
        return false;
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf,
                sizeof(pbuf), NI_NUMERICHOST | NI_NUMERICSERV);
    ch->listen_fd = fd;
    ch->host = g_strdup(hbuf);
    ch->port = atoi(pbuf);
    ch->ipv6 = ss.ss_family == AF_INET6;
    return true;
}

static bool channel_listen_unix(IncomingChannel *ch, const char *path,
                                GError **errp)
{
    int fd = unix_listen(path, errp);

    if (fd < 0) {
        return false;
    }
    ch->listen_fd = fd;
    ch->unix_path = g_strdup(path);
    return true;
}

static bool channel_open_exec(IncomingChannel *ch, const char *cmd,
                              GError **errp)
{
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int out = -1;

    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                  &ch->child, NULL, &out, NULL, errp)) {
        g_prefix_error(errp, "exec:%s: ", cmd);
        return false;
    }
    fcntl(out, F_SETFD, FD_CLOEXEC);
    ch->fd = out;
    return true;
}

static bool channel_open_file(IncomingChannel *ch, const char *spec,
                              GError **errp)
{
    g_autofree char *path = g_strdup(spec);
    char *opt = strstr(path, ",offset=");
    uint64_t offset = 0;

    if (opt) {
        if (!g_ascii_string_to_unsigned(opt + 8, 0, 0, INT64_MAX, &offset,
                                        errp)) {
            g_prefix_error(errp, "file: offset: ");
            return false;
        }
        *opt = '\0';
    }
    ch->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ch->fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot open %s: %s", path,
                    g_strerror(errno));
        return false;
    }
    if (offset && lseek(ch->fd, offset, SEEK_SET) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot seek %s: %s", path,
                    g_strerror(errno));
        return false;
    }
    return true;
}

IncomingChannel *migration_channel_open(const char *uri, GError **errp)
{
    IncomingChannel *ch = NULL;
    bool ok = false;

    if (g_str_has_prefix(uri, "tcp:")) {
        ch = channel_new(CHANNEL_TCP, uri);
        ok = channel_listen_tcp(ch, uri + 4, errp);
    } else if (g_str_has_prefix(uri, "unix:")) {
        ch = channel_new(CHANNEL_UNIX, uri);
        ok = channel_listen_unix(ch, uri + 5, errp);
    } else if (g_str_has_prefix(uri, "exec:")) {
        ch = channel_new(CHANNEL_EXEC, uri);
        ok = channel_open_exec(ch, uri + 5, errp);
    } else if (g_str_has_prefix(uri, "file:")) {
        ch = channel_new(CHANNEL_FILE, uri);
        ok = channel_open_file(ch, uri + 5, errp);
    } else {
        g_set_error(errp, COLO_ERROR, EINVAL, "unknown migration protocol: "
                    "%s", uri);
        return NULL;
    }
    if (!ok) {
        migration_channel_free(ch);
        return NULL;
    }
    return ch;
}

int migration_channel_connect(const char *uri, GError **errp)
{
    g_autofree char *host = NULL;
    g_autofree char *port = NULL;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    int fd = -1, err = ECONNREFUSED, rc;

    if (g_str_has_prefix(uri, "unix:")) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(uri + 5) >= sizeof(sa.sun_path)) {
            g_set_error(errp, COLO_ERROR, ENAMETOOLONG, "%s: path too long",
                        uri);
            return -1;
        }
        strcpy(sa.sun_path, uri + 5);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    } else if (g_str_has_prefix(uri, "tcp:") &&
               split_host_port(uri + 4, &host, &port, errp)) {
        rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
        if (rc != 0) {
            g_set_error(errp, COLO_ERROR, EINVAL, "cannot resolve '%s': %s",
                        uri, gai_strerror(rc));
            return -1;
        }
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                err = errno;
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
    } else {
        if (errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EINVAL, "%s: expected tcp:HOST:PORT "
                        "or unix:PATH", uri);
        }
        return -1;
    }
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, err, "secondary %s unreachable: %s",
                    uri, g_strerror(err));
    } else {
        socket_set_nodelay(fd);
    }
    return fd;
}

bool migration_channel_set_tls(IncomingChannel *ch, const char *creds,
                               const char *authz, GError **errp)
{
    const TlsCreds *c = tls_creds_find(creds, errp);

    if (!c) {
        return false;
    }
    if (!c->server) {
        g_set_error(errp, COLO_ERROR, EINVAL, "TLS credentials '%s' are for "
                    "a client endpoint; an incoming migration needs "
                    "endpoint=server", creds);
        return false;
    }
    if (ch->kind != CHANNEL_TCP && ch->kind != CHANNEL_UNIX) {
        g_set_error(errp, COLO_ERROR, EINVAL, "TLS needs a socket transport "
                    "(tcp: or unix:), not %s", ch->uri);
        return false;
    }
    g_free(ch->tls_creds);
    g_free(ch->tls_authz);
    ch->tls_creds = g_strdup(creds);
    ch->tls_authz = authz && authz[0] ? g_strdup(authz) : NULL;
    return true;
}

void migration_channel_report(IncomingChannel *ch, const GError *err)
{
    g_autofree char *text = NULL;
    uint8_t msg[10 + COLO_STANDBY_ERROR_MAX];
    uint32_t word = GUINT32_TO_BE(COLO_MESSAGE_X_STANDBY_ERROR);
    uint32_t code;
    uint16_t len;
    size_t n;

    if (!ch || !ch->is_socket || ch->fd < 0) {
        return;
    }
    text = g_utf8_make_valid(err ? err->message : "(no reason)", -1);
    n = strlen(text);
    if (n > COLO_STANDBY_ERROR_MAX) {
        /* cut at a character's first byte */
        n = g_utf8_find_prev_char(text, text + COLO_STANDBY_ERROR_MAX + 1) -
            text;
    }
    code = GUINT32_TO_BE(err && err->domain == COLO_ERROR && err->code > 0 &&
                         err->code < 4096 ? (uint32_t)err->code : 0);
    len = GUINT16_TO_BE((uint16_t)n);
    memcpy(msg, &word, 4);
    memcpy(msg + 4, &code, 4);
    memcpy(msg + 8, &len, 2);
    memcpy(msg + 10, text, n);
    if (send(ch->fd, msg, 10 + n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* the source is gone or reads nothing: it learns by the end */
    }
    shutdown(ch->fd, SHUT_WR);
}

void migration_channel_shutdown(IncomingChannel *ch)
{
    if (ch->listen_fd >= 0) {
        shutdown(ch->listen_fd, SHUT_RDWR);
    }
    if (ch->fd >= 0) {
        shutdown(ch->fd, SHUT_RDWR);   /* fails harmlessly on non-sockets */
    }
    tls_pump_shutdown(ch->tls);
    if (ch->child > 0) {
        kill(ch->child, SIGTERM);
    }
}

void migration_channel_free(IncomingChannel *ch)
{
    if (!ch) {
        return;
    }
    if (ch->listen_fd >= 0) {
        close(ch->listen_fd);
    }
    if (ch->fd >= 0) {
        close(ch->fd);
    }
    tls_pump_free(ch->tls);
    g_free(ch->tls_creds);
    g_free(ch->tls_authz);
    if (ch->child > 0) {
        int status;

        waitpid(ch->child, &status, 0);
        g_spawn_close_pid(ch->child);
    }
    if (ch->unix_path) {
        g_unlink(ch->unix_path);
    }
    g_free(ch->unix_path);
    g_free(ch->host);
    g_free(ch->uri);
    g_free(ch->last_refusal);
    g_mutex_clear(&ch->refusal_lock);
    g_free(ch);
}
