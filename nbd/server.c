/*
 * server.c: colo-secondary's NBD server (see include/block/nbd.h).
 *
 *   client                                   server
 *                       <------------------  "NBDMAGIC" "IHAVEOPT" u16 flags
 *   u32 flags           ------------------>
 *   "IHAVEOPT" u32 option u32 length data ->
 *                       <------------------  reply magic, option, type,
 *                                            length, data (per option)
 *   ... NBD_OPT_GO (or EXPORT_NAME): transmission
 *   request: magic u16 flags u16 type u64 cookie u64 offset u32 length
 *            [data for WRITE]  ------------>
 *                       <------------------  magic u32 error u64 cookie
 *                                            [data for READ]
 *
 * Every field a client sends is checked before it is used: lengths of
 * options and requests, ranges against the export's size, magic numbers,
 * commands and flags.  A request that is merely wrong (out of range, not
 * allowed) gets an error reply; a stream that cannot be trusted any more
 * (bad magic, a write too large to read) closes the connection.  Either
 * way the reason goes to stderr with the client's address (log_peer:
 * escaped, a bounded number of lines per client).
 *
 * What a client can make us hold and for how long (include/block/nbd.h):
 * the whole handshake has one deadline; a WRITE's payload has one; its
 * buffer is the client's own 1 MiB or, for larger ones, a share of one
 * budget for all clients; READs go out in 1 MiB pieces.  An idle client
 * in transmission keeps its slot (an idle mirror is not a dead one); a
 * full server stops accepting until a slot is free, so a newcomer waits
 * in the listen queue at most one handshake deadline.
 *
 * One thread per connection, blocking I/O on its socket.  The listener is
 * a GSocketService on the main context.
 */
#include "qemu/osdep.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "block/nbd.h"
#include "crypto/tls-creds.h"
#include "crypto/tls-session.h"
#include "qemu/bswap.h"
#include "qemu/log.h"

typedef struct NbdExport {
    char *name;
    ColoDisk *disk;
    bool writable;
} NbdExport;

typedef struct NbdConn {
    NbdServer *server;
    GSocketConnection *sc;      /* keeps the socket open */
    int sock;                   /* its fd: shut down to stop the thread */
    int fd;                     /* what we talk over (the TLS pump's) */
    TlsPump *pump;
    char *peer;
    GThread *thread;
    bool done;                  /* the thread has finished */
    char *export;               /* the export it uses, once chosen */
    gint64 deadline_us;         /* reads fail past this; 0: none */
    LogPeer log;
} NbdConn;

struct NbdServer {
    BlockDevices *bd;
    GMutex lock;
    GSocketService *service;    /* NULL: not started */
    int port;
    char *tls_creds;
    char *tls_authz;
    GPtrArray *exports;         /* of NbdExport */
    GPtrArray *conns;           /* of NbdConn */
    guint resume_timer;         /* while full: checks for a free slot */
    size_t budget_used;         /* of NBD_SHARED_WRITE_BUDGET */
    GCond budget_cond;
};

static void nbd_export_free(gpointer p)
{
    NbdExport *e = p;

    g_free(e->name);
    g_free(e);
}

void nbd_export_info_free(gpointer p)
{
    NbdExportInfo *i = p;

    g_free(i->name);
    g_free(i->node);
    g_free(i);
}

void nbd_listen_address_clear(NbdListenAddress *a)
{
    g_free(a->host);
    g_free(a->port);
    g_free(a->path);
    memset(a, 0, sizeof(*a));
}

NbdServer *nbd_server_new(BlockDevices *bd)
{
    NbdServer *s = g_new0(NbdServer, 1);

    s->bd = bd;
    g_mutex_init(&s->lock);
    s->exports = g_ptr_array_new_with_free_func(nbd_export_free);
    s->conns = g_ptr_array_new();
    g_cond_init(&s->budget_cond);
    return s;
}

void nbd_server_free(NbdServer *s)
{
    if (!s) {
        return;
    }
    nbd_server_stop(s);
    g_ptr_array_unref(s->exports);
    g_ptr_array_unref(s->conns);
    g_cond_clear(&s->budget_cond);
    g_mutex_clear(&s->lock);
    g_free(s);
}

/* --- I/O on one connection ---------------------------------------------- */

/* Waits until @c->fd is readable or its deadline has passed. */
static bool wait_readable(NbdConn *c)
{
    while (c->deadline_us) {
        gint64 left = c->deadline_us - g_get_monotonic_time();
        struct pollfd p = { .fd = c->fd, .events = POLLIN };
        int rc;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return false;
        }
        rc = poll(&p, 1, (int)MIN(left / 1000 + 1, G_MAXINT));
        if (rc > 0) {
            return true;
        }
        if (rc < 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
}

/* False at EOF (errno 0), on an error, or past @c->deadline_us (errno
 * ETIMEDOUT). */
static bool read_full(NbdConn *c, void *buf, size_t len)
{
    while (len) {
        ssize_t n;

        if (!wait_readable(c)) {
            return false;
        }
        n = read(c->fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = 0;
            }
            return false;
        }
        buf = (char *)buf + n;
        len -= n;
    }
    return true;
}

/* Writes all of @iov (changing it) in as few calls as the socket takes:
 * a reply's header and payload leave in one segment. */
static bool write_iov(NbdConn *c, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = cnt };
        ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);

        if (n < 0 && errno == ENOTSOCK) {
            n = writev(c->fd, iov, cnt);
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return true;
}

static bool write_full(NbdConn *c, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

    return write_iov(c, &iov, 1);
}

/* Reads and drops @len bytes (the payload of a refused write). */
static bool skip_full(NbdConn *c, uint64_t len)
{
    char buf[4096];

    while (len) {
        size_t n = MIN(len, sizeof(buf));

        if (!read_full(c, buf, n)) {
            return false;
        }
        len -= n;
    }
    return true;
}

static void conn_log(NbdConn *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void conn_log(NbdConn *c, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    log_peer(&c->log, "NBD client %s: %s", c->peer, msg);
}

/* Why a read of the handshake or a payload failed, for the log. */
static const char *read_failure(void)
{
    return errno == ETIMEDOUT ? "deadline passed" :
           errno == 0 ? "connection closed" : g_strerror(errno);
}

/* --- the handshake ------------------------------------------------------ */

static bool opt_reply(NbdConn *c, uint32_t opt, uint32_t type,
                      const void *data, uint32_t len)
{
    uint8_t h[NBD_OPTION_REPLY_LEN];
    struct iovec iov[2] = {
        { .iov_base = h, .iov_len = sizeof(h) },
        { .iov_base = (void *)data, .iov_len = len },
    };

    nbd_put_option_reply(h, opt, type, len);
    return write_iov(c, iov, len ? 2 : 1);
}

/* An error reply with a message for people. */
static bool opt_error(NbdConn *c, uint32_t opt, uint32_t type,
                      const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static bool opt_error(NbdConn *c, uint32_t opt, uint32_t type,
                      const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return opt_reply(c, opt, type, msg, strlen(msg));
}

/* The export called @name ("" means the only one), under the lock. */
static NbdExport *export_find(NbdServer *s, const char *name)
{
    if (!name[0] && s->exports->len == 1) {
        return g_ptr_array_index(s->exports, 0);
    }
    for (guint i = 0; i < s->exports->len; i++) {
        NbdExport *e = g_ptr_array_index(s->exports, i);

        if (!strcmp(e->name, name)) {
            return e;
        }
    }
    return NULL;
}

static uint16_t export_flags(const NbdExport *e)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                 NBD_FLAG_CAN_MULTI_CONN;

    if (e->writable) {
        f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
             NBD_FLAG_SEND_WRITE_ZEROES;
    } else {
        f |= NBD_FLAG_READ_ONLY;
    }
    return f;
}

typedef struct ChosenExport {
    ColoDisk *disk;
    bool writable;
    uint64_t size;
    uint16_t flags;
} ChosenExport;

/* Looks @name up and copies what transmission needs; the connection
 * then belongs to the export (nbd-server-remove finds it). */
static bool export_choose(NbdConn *c, const char *name, ChosenExport *out)
{
    NbdServer *s = c->server;
    NbdExport *e;

    g_mutex_lock(&s->lock);
    e = export_find(s, name);
    if (e) {
        out->disk = e->disk;
        out->writable = e->writable;
        out->size = colo_disk_size(e->disk);
        out->flags = export_flags(e);
        g_free(c->export);
        c->export = g_strdup(e->name);
    }
    g_mutex_unlock(&s->lock);
    return e != NULL;
}

static bool opt_list(NbdConn *c, uint32_t len)
{
    NbdServer *s = c->server;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

    if (len) {
        return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                         "NBD_OPT_LIST takes no data");
    }
    g_mutex_lock(&s->lock);
    for (guint i = 0; i < s->exports->len; i++) {
        NbdExport *e = g_ptr_array_index(s->exports, i);

        g_ptr_array_add(names, g_strdup(e->name));
    }
    g_mutex_unlock(&s->lock);
    for (guint i = 0; i < names->len; i++) {
        const char *n = g_ptr_array_index(names, i);
        size_t nl = strlen(n);
        g_autofree uint8_t *d = g_malloc(4 + nl);

        stl_be_p(d, nl);
        memcpy(d + 4, n, nl);
        if (!opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER, d, 4 + nl)) {
            return false;
        }
    }
    return opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_INFO / NBD_OPT_GO; *@go set when transmission begins. */
static bool opt_info_go(NbdConn *c, uint32_t opt, const uint8_t *data,
                        uint32_t len, ChosenExport *ce, bool *go)
{
    uint8_t info[NBD_INFO_BLOCK_SIZE_LEN];
    uint32_t nl;
    g_autofree char *name = NULL;

    if (!nbd_get_info_request(data, len, &nl)) {
        conn_log(c, "malformed %s request of %u bytes",
                 opt == NBD_OPT_GO ? "NBD_OPT_GO" : "NBD_OPT_INFO", len);
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed %s request",
                         opt == NBD_OPT_GO ? "NBD_OPT_GO" : "NBD_OPT_INFO");
    }
    name = g_strndup((const char *)data + 4, nl);
    if (strlen(name) != nl) {
        conn_log(c, "export name with a NUL byte");
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "export name with a "
                         "NUL byte");
    }
    if (!export_choose(c, name, ce)) {
        g_autofree char *shown = qemu_escape(name, nl, 256);

        conn_log(c, "asked for unknown export '%s'", shown);
        return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "export '%s' not "
                         "present", shown);
    }
    nbd_put_info_export(info, ce->size, ce->flags);
    if (!opt_reply(c, opt, NBD_REP_INFO, info, NBD_INFO_EXPORT_LEN)) {
        return false;
    }
    /* Any alignment is fine; 4 KiB is what the cache works in. */
    nbd_put_info_block_size(info, 1, COLO_DISK_PAGE, NBD_MAX_REQUEST);
    if (!opt_reply(c, opt, NBD_REP_INFO, info, NBD_INFO_BLOCK_SIZE_LEN) ||
        !opt_reply(c, opt, NBD_REP_ACK, NULL, 0)) {
        return false;
    }
    *go = opt == NBD_OPT_GO;
    return true;
}

static bool opt_starttls(NbdConn *c, uint32_t len)
{
    NbdServer *s = c->server;
    TlsParams tls = { 0 };
    g_autoptr(GError) err = NULL;
    g_autofree char *creds = NULL, *authz = NULL;
    int fd;

    g_mutex_lock(&s->lock);
    creds = g_strdup(s->tls_creds);
    authz = g_strdup(s->tls_authz);
    g_mutex_unlock(&s->lock);
    if (!creds) {
        return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_POLICY, "TLS is "
                         "not configured on this server");
    }
    if (c->pump) {
        return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID, "TLS is "
                         "already on");
    }
    if (len) {
        return opt_error(c, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID,
                         "NBD_OPT_STARTTLS takes no data");
    }
    if (!opt_reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0)) {
        return false;
    }
    tls.creds = creds;
    tls.authz = authz;
    /* what is left of the handshake's deadline */
    tls.handshake_ms = (int)MAX(1, (c->deadline_us - g_get_monotonic_time())
                                   / 1000);
    fd = dup(c->sock);
    if (fd < 0) {
        conn_log(c, "TLS: %s", g_strerror(errno));
        return false;
    }
    fd = tls_session_start(fd, &tls, c->peer, &c->pump, &err);
    if (fd < 0) {
        conn_log(c, "TLS handshake failed: %s", err->message);
        return false;
    }
    c->fd = fd;
    return true;
}

/* The option haggling; true with *@ce set when transmission begins. */
static bool nbd_handshake(NbdConn *c, ChosenExport *ce)
{
    uint8_t hello[NBD_HELLO_LEN], h[NBD_OPTION_LEN];
    uint32_t cflags;
    bool tls_required;

    g_mutex_lock(&c->server->lock);
    tls_required = c->server->tls_creds != NULL;
    g_mutex_unlock(&c->server->lock);

    nbd_put_hello(hello);
    if (!write_full(c, hello, sizeof(hello)) || !read_full(c, h, 4)) {
        conn_log(c, "handshake ended before the client's flags: %s",
                 read_failure());
        return false;
    }
    cflags = ldl_be_p(h);
    if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        conn_log(c, "unknown client flags %#x", cflags);
        return false;
    }
    for (int n = 0; n < NBD_MAX_OPTIONS; n++) {
        g_autofree uint8_t *data = NULL;
        NbdOption o;
        uint32_t opt, len;
        bool go = false;

        if (!read_full(c, h, sizeof(h))) {
            if (errno != 0) {   /* a client may just go after LIST, say */
                conn_log(c, "handshake not finished: %s", read_failure());
            }
            return false;
        }
        if (!nbd_get_option(h, &o)) {
            conn_log(c, "bad option magic %#" PRIx64, o.magic);
            return false;
        }
        opt = o.opt;
        len = o.len;
        if (len > NBD_MAX_OPTION) {
            conn_log(c, "option %u with %u bytes of data (limit %u)", opt,
                     len, NBD_MAX_OPTION);
            if (len > 16 * NBD_MAX_OPTION || !skip_full(c, len)) {
                return false;
            }
            if (!opt_error(c, opt, NBD_REP_ERR_TOO_BIG, "option data too "
                           "large")) {
                return false;
            }
            continue;
        }
        data = g_malloc(len + 1);
        if (!read_full(c, data, len)) {
            conn_log(c, "option %u: %u bytes of data not received: %s", opt,
                     len, read_failure());
            return false;
        }
        data[len] = 0;
        if (tls_required && !c->pump && opt != NBD_OPT_STARTTLS &&
            opt != NBD_OPT_ABORT) {
            if (opt == NBD_OPT_EXPORT_NAME) {
                conn_log(c, "refused: TLS is required");
                return false;
            }
            if (!opt_error(c, opt, NBD_REP_ERR_TLS_REQD, "TLS is required "
                           "on this server")) {
                return false;
            }
            continue;
        }
        switch (opt) {
        case NBD_OPT_EXPORT_NAME: {
            uint8_t r[NBD_EXPORT_NAME_REPLY_LEN];

            if (strlen((char *)data) != len ||
                !export_choose(c, (char *)data, ce)) {
                g_autofree char *shown = qemu_escape((char *)data, len, 256);

                conn_log(c, "asked for unknown export '%s': closing", shown);
                return false;
            }
            nbd_put_export_name_reply(r, ce->size, ce->flags);
            return write_full(c, r, cflags & NBD_FLAG_C_NO_ZEROES ? 10
                                                                  : sizeof(r));
        }
        case NBD_OPT_ABORT:
            opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
            return false;
        case NBD_OPT_LIST:
            if (!opt_list(c, len)) {
                return false;
            }
            break;
        case NBD_OPT_STARTTLS:
            if (!opt_starttls(c, len)) {
                return false;
            }
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            if (!opt_info_go(c, opt, data, len, ce, &go)) {
                return false;
            }
            if (go) {
                return true;
            }
            break;
        default:
            if (!opt_error(c, opt, NBD_REP_ERR_UNSUP, "option %u is not "
                           "supported", opt)) {
                return false;
            }
        }
    }
    conn_log(c, "more than %d options", NBD_MAX_OPTIONS);
    return false;
}

/* --- transmission ------------------------------------------------------- */

static bool simple_reply(NbdConn *c, uint32_t error, uint64_t cookie,
                         const void *data, uint32_t len)
{
    uint8_t r[NBD_SIMPLE_REPLY_LEN];
    struct iovec iov[2] = {
        { .iov_base = r, .iov_len = sizeof(r) },
        { .iov_base = (void *)data, .iov_len = len },
    };

    nbd_put_simple_reply(r, error, cookie);
    return write_iov(c, iov, len ? 2 : 1);
}

/*
 * A READ, in pieces of the client's buffer: the first piece is read
 * before the reply's header goes out, so an error can still be replied;
 * one later closes the connection (the header promised the data).
 */
static bool reply_read(NbdConn *c, ColoDisk *disk, uint8_t *buf,
                       uint64_t cookie, uint64_t off, uint32_t len)
{
    uint32_t done = 0;

    do {
        g_autoptr(GError) err = NULL;
        uint32_t n = MIN(len - done, NBD_CLIENT_BUFFER);

        if (!colo_disk_read(disk, buf, off + done, n, &err)) {
            conn_log(c, "%s%s", err->message, done ? ": closing" : "");
            return !done && simple_reply(c, nbd_errno_to_wire(err->code), cookie,
                                         NULL, 0);
        }
        if (done == 0 ? !simple_reply(c, 0, cookie, buf, n)
                      : !write_full(c, buf, n)) {
            return false;
        }
        done += n;
    } while (done < len);
    return true;
}

/* Takes @len bytes of the shared WRITE budget, waiting for them until
 * @deadline_us; false if they did not come free in time. */
static bool budget_take(NbdServer *s, size_t len, gint64 deadline_us)
{
    bool ok;

    g_mutex_lock(&s->lock);
    while (s->budget_used + len > NBD_SHARED_WRITE_BUDGET &&
           g_cond_wait_until(&s->budget_cond, &s->lock, deadline_us)) {
    }
    ok = s->budget_used + len <= NBD_SHARED_WRITE_BUDGET;
    if (ok) {
        s->budget_used += len;
    }
    g_mutex_unlock(&s->lock);
    return ok;
}

static void budget_give(NbdServer *s, size_t len)
{
    g_mutex_lock(&s->lock);
    s->budget_used -= len;
    g_cond_broadcast(&s->budget_cond);
    g_mutex_unlock(&s->lock);
}

/*
 * Reads a WRITE's payload of @len bytes within NBD_PAYLOAD_TIMEOUT_S: into
 * @own if it fits, else into *@borrowed, taken from the shared budget (the
 * caller gives it back).  NULL: the connection must close (logged).
 */
static uint8_t *read_payload(NbdConn *c, uint8_t *own, uint32_t len,
                             uint8_t **borrowed)
{
    gint64 deadline = g_get_monotonic_time() +
                      NBD_PAYLOAD_TIMEOUT_S * G_USEC_PER_SEC;
    uint8_t *buf = own;

    *borrowed = NULL;
    if (len > NBD_CLIENT_BUFFER) {
        if (!budget_take(c->server, len, deadline)) {
            conn_log(c, "WRITE of %u bytes: no room in the shared %u MiB "
                     "within %d s: closing", len,
                     NBD_SHARED_WRITE_BUDGET >> 20, NBD_PAYLOAD_TIMEOUT_S);
            return NULL;
        }
        buf = *borrowed = g_try_malloc(len);
        if (!buf) {
            budget_give(c->server, len);
            conn_log(c, "WRITE of %u bytes: out of memory: closing", len);
            return NULL;
        }
    }
    c->deadline_us = deadline;
    if (!read_full(c, buf, len)) {
        if (errno == 0) {
            conn_log(c, "gone in the middle of a WRITE of %u bytes: nothing "
                     "written", len);
        } else {
            conn_log(c, "WRITE of %u bytes: payload not received within %d s "
                     "(%s): closing", len, NBD_PAYLOAD_TIMEOUT_S,
                     read_failure());
        }
        buf = NULL;
    }
    c->deadline_us = 0;
    if (!buf && *borrowed) {
        g_clear_pointer(borrowed, g_free);
        budget_give(c->server, len);
    }
    return buf;
}

/* One request that passed the checks; false: close the connection. */
static bool serve_request(NbdConn *c, const ChosenExport *ce, uint8_t *own,
                          uint16_t type, uint16_t flags, uint64_t cookie,
                          uint64_t off, uint32_t len, const uint8_t *payload)
{
    g_autoptr(GError) err = NULL;
    uint32_t error = 0;

    switch (type) {
    case NBD_CMD_READ:
        return reply_read(c, ce->disk, own, cookie, off, len);
    case NBD_CMD_WRITE:
    case NBD_CMD_TRIM:
    case NBD_CMD_WRITE_ZEROES:
        if (type == NBD_CMD_WRITE
            ? !colo_disk_write(ce->disk, payload, off, len, &err)
            : !colo_disk_write_zeroes(ce->disk, off, len, &err)) {
            conn_log(c, "%s", err->message);
            error = nbd_errno_to_wire(err->code);
        } else if ((flags & NBD_CMD_FLAG_FUA) &&
                   !colo_disk_flush(ce->disk, &err)) {
            conn_log(c, "%s", err->message);
            error = nbd_errno_to_wire(err->code);
        }
        return simple_reply(c, error, cookie, NULL, 0);
    case NBD_CMD_FLUSH:
        if (!colo_disk_flush(ce->disk, &err)) {
            conn_log(c, "%s", err->message);
            error = nbd_errno_to_wire(err->code);
        }
        return simple_reply(c, error, cookie, NULL, 0);
    default:
        conn_log(c, "unknown command %u", type);
        return simple_reply(c, NBD_EINVAL, cookie, NULL, 0);
    }
}

static void nbd_transmission(NbdConn *c, const ChosenExport *ce)
{
    g_autofree uint8_t *own = g_malloc(NBD_CLIENT_BUFFER);

    for (;;) {
        g_autofree uint8_t *borrowed = NULL;
        const uint8_t *payload = NULL;
        uint8_t h[NBD_REQUEST_LEN];
        NbdRequest r;
        uint16_t flags, type;
        uint64_t cookie, off;
        uint32_t len, error = 0;
        bool in_range, ok;

        if (!read_full(c, h, sizeof(h))) {
            if (errno != 0) {
                conn_log(c, "%s", read_failure());
            }
            return;
        }
        if (!nbd_get_request(h, &r)) {
            conn_log(c, "bad request magic %#x: closing", r.magic);
            return;
        }
        flags = r.flags;
        type = r.type;
        cookie = r.cookie;
        off = r.offset;
        len = r.len;
        in_range = off <= ce->size && len <= ce->size - off;
        if (type == NBD_CMD_DISC) {
            return;
        }
        if (type == NBD_CMD_WRITE) {
            if (len > NBD_MAX_REQUEST) {
                conn_log(c, "WRITE of %u bytes (limit %u): closing", len,
                         NBD_MAX_REQUEST);
                simple_reply(c, NBD_EOVERFLOW, cookie, NULL, 0);
                return;
            }
            payload = read_payload(c, own, len, &borrowed);
            if (!payload) {
                return;
            }
        }
        if (type == NBD_CMD_READ && len > NBD_MAX_REQUEST) {
            conn_log(c, "READ of %u bytes (limit %u)", len, NBD_MAX_REQUEST);
            error = NBD_EOVERFLOW;
        } else if (flags & ~(NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE)) {
            conn_log(c, "%s with unknown flags %#x", nbd_cmd_name(type),
                     flags);
            error = NBD_EINVAL;
        } else if (nbd_request_has_range(type) && !in_range) {
            conn_log(c, "%s of %u bytes at %" PRIu64 " is beyond the end of "
                     "the export (%" PRIu64 " bytes)", nbd_cmd_name(type), len,
                     off, ce->size);
            error = type == NBD_CMD_READ ? NBD_EINVAL : NBD_ENOSPC;
        } else if (type != NBD_CMD_READ && type != NBD_CMD_FLUSH &&
                   !ce->writable) {
            error = NBD_EPERM;
        }
        ok = error ? simple_reply(c, error, cookie, NULL, 0)
                   : serve_request(c, ce, own, type, flags, cookie, off, len,
                                   payload);
        if (borrowed) {
            g_clear_pointer(&borrowed, g_free);
            budget_give(c->server, len);
        }
        if (!ok) {
            return;
        }
    }
}

static void nbd_conn_run(NbdConn *c)
{
    ChosenExport ce = { 0 };
    struct timeval tv = { .tv_sec = NBD_HANDSHAKE_TIMEOUT_S };
    struct timeval none = { 0 };
    int one = 1;

    /* small replies go out at once, not after the peer's delayed ACK */
    setsockopt(c->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* a client that does not read our handshake replies holds nothing */
    setsockopt(c->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c->deadline_us = g_get_monotonic_time() +
                     NBD_HANDSHAKE_TIMEOUT_S * G_USEC_PER_SEC;
    if (nbd_handshake(c, &ce)) {
        /* an idle mirror is not a dead one: no deadline from here on */
        c->deadline_us = 0;
        setsockopt(c->sock, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
        nbd_transmission(c, &ce);
    }
    if (c->pump) {
        close(c->fd);
        tls_pump_free(c->pump);
        c->pump = NULL;
    }
    c->fd = -1;
    shutdown(c->sock, SHUT_RDWR);
}

static gpointer nbd_conn_thread(gpointer opaque)
{
    NbdConn *c = opaque;

    nbd_conn_run(c);
    g_mutex_lock(&c->server->lock);
    c->done = true;
    g_mutex_unlock(&c->server->lock);
    return NULL;
}

void nbd_server_serve_fd(NbdServer *s, int fd)
{
    NbdConn c = { .server = s, .sock = fd, .fd = fd };

    c.peer = g_strdup("fd");
    nbd_conn_run(&c);
    g_free(c.peer);
    g_free(c.export);
}

/* --- the listener ------------------------------------------------------- */

static void nbd_conn_free(NbdConn *c)
{
    g_thread_join(c->thread);
    g_object_unref(c->sc);
    g_free(c->peer);
    g_free(c->export);
    g_free(c);
}

/* Joins finished connection threads; under the lock. */
static GPtrArray *conns_take_done(NbdServer *s)
{
    GPtrArray *done = g_ptr_array_new();

    for (guint i = 0; i < s->conns->len;) {
        NbdConn *c = g_ptr_array_index(s->conns, i);

        if (c->done) {
            g_ptr_array_add(done, c);
            g_ptr_array_remove_index_fast(s->conns, i);
        } else {
            i++;
        }
    }
    return done;
}

static void conns_free(GPtrArray *a)
{
    for (guint i = 0; i < a->len; i++) {
        nbd_conn_free(g_ptr_array_index(a, i));
    }
    g_ptr_array_unref(a);
}

static char *peer_name(GSocketConnection *sc)
{
    g_autoptr(GSocketAddress) a = g_socket_connection_get_remote_address(sc,
                                                                         NULL);

    if (a && G_IS_INET_SOCKET_ADDRESS(a)) {
        g_autofree char *ip = g_inet_address_to_string(
            g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(a)));

        return g_strdup_printf("%s:%u", ip, g_inet_socket_address_get_port(
                                   G_INET_SOCKET_ADDRESS(a)));
    }
    return g_strdup("unix socket");
}

/* Frees finished connections; the number still running. */
static guint conns_reap(NbdServer *s)
{
    GPtrArray *done;
    guint n;

    g_mutex_lock(&s->lock);
    done = conns_take_done(s);
    n = s->conns->len;
    g_mutex_unlock(&s->lock);
    conns_free(done);
    return n;
}

#define NBD_RESUME_CHECK_MS 100

/* While the server is full: accepts again once a slot is free. */
static gboolean nbd_resume_check(gpointer opaque)
{
    NbdServer *s = opaque;

    if (conns_reap(s) >= NBD_MAX_CLIENTS) {
        return G_SOURCE_CONTINUE;
    }
    s->resume_timer = 0;
    g_socket_service_start(s->service);
    return G_SOURCE_REMOVE;
}

static gboolean nbd_incoming(GSocketService *service, GSocketConnection *sc,
                             GObject *source, gpointer opaque)
{
    NbdServer *s = opaque;
    NbdConn *c;
    guint n = conns_reap(s);

    if (n >= NBD_MAX_CLIENTS) {
        /* accepted while the service was stopping: not served */
        g_autofree char *peer = peer_name(sc);

        log_peer(NULL, "NBD client %s refused: %d clients already", peer,
                 NBD_MAX_CLIENTS);
        return TRUE;        /* closes it */
    }
    c = g_new0(NbdConn, 1);
    c->server = s;
    c->sc = g_object_ref(sc);
    c->sock = g_socket_get_fd(g_socket_connection_get_socket(sc));
    c->fd = c->sock;
    c->peer = peer_name(sc);
    /* blocking I/O in the thread (GSocket keeps its fd non-blocking) */
    g_unix_set_fd_nonblocking(c->sock, FALSE, NULL);
    g_mutex_lock(&s->lock);
    g_ptr_array_add(s->conns, c);
    g_mutex_unlock(&s->lock);
    c->thread = g_thread_new("nbd/conn", nbd_conn_thread, c);
    if (n + 1 >= NBD_MAX_CLIENTS && !s->resume_timer) {
        /* full: newcomers wait in the listen queue, not refused */
        g_socket_service_stop(s->service);
        s->resume_timer = g_timeout_add(NBD_RESUME_CHECK_MS, nbd_resume_check,
                                        s);
    }
    return TRUE;
}

bool nbd_server_start(NbdServer *s, const NbdListenAddress *addr,
                      const char *tls_creds, const char *tls_authz,
                      GError **errp)
{
    g_autoptr(GSocketService) svc = NULL;
    g_autoptr(GSocketAddress) effective = NULL;

    if (s->service) {
        g_set_error(errp, COLO_ERROR, EBUSY, "NBD server already running");
        return false;
    }
    if (tls_creds) {
        const TlsCreds *c = tls_creds_find(tls_creds, errp);

        if (!c) {
            return false;
        }
        if (!c->server) {
            g_set_error(errp, COLO_ERROR, EINVAL, "TLS credentials '%s' are "
                        "for a client endpoint; an NBD server needs "
                        "endpoint=server", tls_creds);
            return false;
        }
    }
    svc = g_socket_service_new();
    if (addr->is_unix) {
        g_autoptr(GSocketAddress) ua = NULL;

        if (!addr->path || !addr->path[0] || strlen(addr->path) >= 108) {
            g_set_error(errp, COLO_ERROR, EINVAL, "NBD server: bad UNIX "
                        "socket path");
            return false;
        }
        g_unlink(addr->path);
        ua = g_unix_socket_address_new(addr->path);
        if (!g_socket_listener_add_address(G_SOCKET_LISTENER(svc), ua,
                                           G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_DEFAULT, NULL,
                                           NULL, errp)) {
            g_prefix_error(errp, "NBD server on %s: ", addr->path);
            return false;
        }
    } else {
        g_autoptr(GInetAddress) ip = NULL;
        g_autoptr(GSocketAddress) ia = NULL;
        guint64 port;

        if (!addr->port || !g_ascii_string_to_unsigned(addr->port, 10, 0,
                                                       65535, &port, NULL)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "NBD server: port '%s' is "
                        "not a number from 0 to 65535",
                        addr->port ? addr->port : "");
            return false;
        }
        if (addr->host && addr->host[0]) {
            ip = g_inet_address_new_from_string(addr->host);
            if (!ip) {
                g_autoptr(GResolver) r = g_resolver_get_default();
                GList *l = g_resolver_lookup_by_name(r, addr->host, NULL,
                                                     errp);

                if (!l) {
                    g_prefix_error(errp, "NBD server: ");
                    return false;
                }
                ip = g_object_ref(l->data);
                g_resolver_free_addresses(l);
            }
        } else {
            ip = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
        }
        ia = g_inet_socket_address_new(ip, port);
        if (!g_socket_listener_add_address(G_SOCKET_LISTENER(svc), ia,
                                           G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_TCP, NULL,
                                           &effective, errp)) {
            g_prefix_error(errp, "NBD server on %s:%s: ",
                           addr->host ? addr->host : "", addr->port);
            return false;
        }
        s->port = g_inet_socket_address_get_port(
            G_INET_SOCKET_ADDRESS(effective));
    }
    g_signal_connect(svc, "incoming", G_CALLBACK(nbd_incoming), s);
    g_socket_service_start(svc);
    g_mutex_lock(&s->lock);
    s->service = g_steal_pointer(&svc);
    s->tls_creds = g_strdup(tls_creds);
    s->tls_authz = g_strdup(tls_authz);
    g_mutex_unlock(&s->lock);
    return true;
}

bool nbd_server_running(NbdServer *s)
{
    return s->service != NULL;
}

int nbd_server_port(NbdServer *s)
{
    return s->port;
}

bool nbd_server_add(NbdServer *s, const char *node, const char *name,
                    bool writable, GError **errp)
{
    ColoDisk *d;
    NbdExport *e;

    if (!s->service) {
        g_set_error(errp, COLO_ERROR, EINVAL, "NBD server not running");
        return false;
    }
    d = block_devices_find(s->bd, node);
    if (!d) {
        g_set_error(errp, COLO_ERROR, ENOENT, "Cannot find device=%s nor "
                    "node-name=%s", node, node);
        return false;
    }
    if (!name) {
        name = node;
    }
    if (strlen(name) > 4096) {
        g_set_error(errp, COLO_ERROR, EINVAL, "export name too long");
        return false;
    }
    if (writable && colo_disk_read_only(d)) {
        g_set_error(errp, COLO_ERROR, EPERM, "node '%s' is read-only", node);
        return false;
    }
    g_mutex_lock(&s->lock);
    if (export_find(s, name) && name[0]) {
        g_mutex_unlock(&s->lock);
        g_set_error(errp, COLO_ERROR, EEXIST, "NBD server already has export "
                    "named '%s'", name);
        return false;
    }
    e = g_new0(NbdExport, 1);
    e->name = g_strdup(name);
    e->disk = d;
    e->writable = writable;
    g_ptr_array_add(s->exports, e);
    g_mutex_unlock(&s->lock);
    return true;
}

bool nbd_server_remove(NbdServer *s, const char *name, bool hard,
                       GError **errp)
{
    NbdExport *e = NULL;
    guint users = 0;

    g_mutex_lock(&s->lock);
    for (guint i = 0; i < s->exports->len; i++) {
        NbdExport *x = g_ptr_array_index(s->exports, i);

        if (!strcmp(x->name, name)) {
            e = x;
        }
    }
    for (guint i = 0; e && i < s->conns->len; i++) {
        NbdConn *c = g_ptr_array_index(s->conns, i);

        if (!c->done && c->export && !strcmp(c->export, name)) {
            users++;
            if (hard) {
                shutdown(c->sock, SHUT_RDWR);
            }
        }
    }
    if (e && (hard || !users)) {
        g_ptr_array_remove(s->exports, e);
    }
    g_mutex_unlock(&s->lock);
    if (!e) {
        g_set_error(errp, COLO_ERROR, ENOENT, "Export '%s' is not found",
                    name);
        return false;
    }
    if (users && !hard) {
        g_set_error(errp, COLO_ERROR, EBUSY, "export '%s' still in use "
                    "(%u clients); use mode 'hard' to drop them", name,
                    users);
        return false;
    }
    return true;
}

void nbd_server_stop(NbdServer *s)
{
    GPtrArray *all;

    if (s->resume_timer) {
        g_source_remove(s->resume_timer);
        s->resume_timer = 0;
    }
    if (s->service) {
        g_socket_service_stop(s->service);
        g_socket_listener_close(G_SOCKET_LISTENER(s->service));
        g_signal_handlers_disconnect_by_data(s->service, s);
        g_clear_object(&s->service);
    }
    g_mutex_lock(&s->lock);
    for (guint i = 0; i < s->conns->len; i++) {
        NbdConn *c = g_ptr_array_index(s->conns, i);

        shutdown(c->sock, SHUT_RDWR);
    }
    all = g_ptr_array_copy(s->conns, NULL, NULL);
    g_ptr_array_set_size(s->conns, 0);
    g_ptr_array_set_size(s->exports, 0);
    g_clear_pointer(&s->tls_creds, g_free);
    g_clear_pointer(&s->tls_authz, g_free);
    s->port = 0;
    g_mutex_unlock(&s->lock);
    conns_free(all);
}

GPtrArray *nbd_server_exports(NbdServer *s)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(nbd_export_info_free);

    g_mutex_lock(&s->lock);
    for (guint i = 0; i < s->exports->len; i++) {
        NbdExport *e = g_ptr_array_index(s->exports, i);
        NbdExportInfo *info = g_new0(NbdExportInfo, 1);

        info->name = g_strdup(e->name);
        info->node = g_strdup(colo_disk_node(e->disk));
        info->writable = e->writable;
        for (guint k = 0; k < s->conns->len; k++) {
            NbdConn *c = g_ptr_array_index(s->conns, k);

            info->clients += !c->done && c->export &&
                             !strcmp(c->export, e->name);
        }
        g_ptr_array_add(a, info);
    }
    g_mutex_unlock(&s->lock);
    return a;
}
