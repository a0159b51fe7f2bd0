/*
 * colo-send.c: the primary's side of the COLO protocol (see colo-send.h).
 */
#include "qemu/osdep.h"

#include <poll.h>
#include <sys/socket.h>

#include "crypto/tls-creds.h"
#include "migration/channel.h"
#include "migration/colo-send.h"
#include "migration/savevm.h"
#include "migration/savevm-put.h"
#include "qemu/log.h"

/* The HOST of tcp:HOST:PORT (without IPv6 brackets), else "". */
static char *uri_host(const char *uri)
{
    const char *h, *colon;

    if (!g_str_has_prefix(uri, "tcp:")) {
        return g_strdup("");
    }
    h = uri + 4;
    colon = strrchr(h, ':');
    if (!colon) {
        return g_strdup("");
    }
    if (h[0] == '[' && colon > h && colon[-1] == ']') {
        return g_strndup(h + 1, colon - h - 2);
    }
    return g_strndup(h, colon - h);
}

ColoPeer *colo_peer_connect(const char *uri, const TlsParams *tls,
                            GError **errp)
{
    int fd;
    ColoPeer *p;
    TlsPump *pump = NULL;

    if (tls && tls->creds && tls->creds[0]) {
        const TlsCreds *c = tls_creds_find(tls->creds, errp);

        if (!c) {
            return NULL;
        }
        if (c->server) {
            g_set_error(errp, COLO_ERROR, EINVAL, "TLS credentials '%s' are "
                        "for a server endpoint; a primary needs "
                        "endpoint=client", tls->creds);
            return NULL;
        }
    }
    fd = migration_channel_connect(uri, errp);
    if (fd < 0) {
        return NULL;
    }
    if (tls && tls->creds && tls->creds[0]) {
        g_autofree char *host = uri_host(uri);
        g_autofree char *peer = g_strdup_printf("the secondary %s", uri);
        TlsParams t = *tls;

        if (!t.hostname || !t.hostname[0]) {
            t.hostname = host;
        }
        fd = tls_session_start(fd, &t, peer, &pump, errp);
        if (fd < 0) {
            return NULL;
        }
    }
    p = g_new0(ColoPeer, 1);
    p->uri = g_strdup(uri);
    p->fd = fd;
    p->tls = pump;
    p->in = qemu_file_new_input_fd(dup(fd), true);
    return p;
}

void colo_peer_free(ColoPeer *p)
{
    if (!p) {
        return;
    }
    qemu_fclose(p->in);
    if (p->fd >= 0) {
        close(p->fd);
    }
    tls_pump_free(p->tls);
    g_free(p->uri);
    g_free(p);
}

void colo_peer_set_stall_limit(ColoPeer *p, int ms)
{
    p->stall_limit_ms = ms;
    /* a reply must bring a byte within the limit once it is due */
    qemu_file_set_progress_floor(p->in, ms > 0 ? 1 : 0, ms);
    qemu_file_set_idle(p->in, true);
}

/* Waits until @p's socket takes more; false (error set) if the link
 * made no progress for the stall limit, or if the secondary spoke while
 * it was due to read: it says that only when it gives up. */
static bool colo_peer_wait_writable(ColoPeer *p, GError **errp)
{
    struct pollfd pfd = { .fd = p->fd, .events = POLLOUT | POLLIN };
    int rc;

    do {
        rc = poll(&pfd, 1, p->stall_limit_ms > 0 ? p->stall_limit_ms : -1);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        g_set_error(errp, COLO_ERROR, ETIMEDOUT, "the link to the secondary "
                    "%s stalled: nothing could be sent for %d ms "
                    "(x-link-stall-limit)", p->uri, p->stall_limit_ms);
        return false;
    }
    if (rc > 0 && !(pfd.revents & POLLOUT) && (pfd.revents & POLLIN)) {
        g_set_error(errp, COLO_ERROR, EPROTO, "the secondary %s stopped "
                    "reading and sent something", p->uri);
        colo_peer_explain(p, errp);
        return false;
    }
    return true;
}

/* The rest of an X_STANDBY_ERROR report; always false, with the report
 * (or what was wrong with it) in *@errp. */
static bool colo_peer_read_report(ColoPeer *p, GError **errp)
{
    uint32_t code = qemu_get_be32(p->in);
    uint16_t len = qemu_get_be16(p->in);
    char text[COLO_STANDBY_ERROR_MAX];
    g_autofree char *clean = NULL;

    if (!qemu_file_propagate_error(p->in, errp)) {
        g_prefix_error(errp, "the secondary %s gave up, and its reason was "
                       "cut off: ", p->uri);
        return false;
    }
    if (len > COLO_STANDBY_ERROR_MAX) {
        g_set_error(errp, COLO_ERROR, EPROTO, "the secondary %s gave up, "
                    "with a reason of %u bytes (at most %u)", p->uri, len,
                    COLO_STANDBY_ERROR_MAX);
        return false;
    }
    if (!qemu_get_buffer(p->in, text, len)) {
        qemu_file_propagate_error(p->in, errp);
        g_prefix_error(errp, "the secondary %s gave up, and its reason was "
                       "cut off: ", p->uri);
        return false;
    }
    /* the peer's text, shown to people and logs: escaped as all of it */
    clean = qemu_escape(text, len, COLO_STANDBY_ERROR_MAX);
    g_set_error(errp, COLO_ERROR, code > 0 && code < 4096 ? (int)code :
                ECONNABORTED, "the secondary %s gave up: %s", p->uri, clean);
    return false;
}

bool colo_peer_explain(ColoPeer *p, GError **errp)
{
    struct pollfd pfd;
    GError *report = NULL;
    uint32_t word;

    if (!p || qemu_file_get_error(p->in)) {
        return false;
    }
    pfd = (struct pollfd) { .fd = p->fd, .events = POLLIN };
    if (!qemu_file_buffered(p->in) &&
        poll(&pfd, 1, COLO_PEER_REPORT_WAIT_MS) <= 0) {
        return false;
    }
    /* a report comes in one piece: a peer that stops half way is not
     * waited for */
    qemu_file_set_progress_floor(p->in, 1, COLO_PEER_REPORT_WAIT_MS);
    qemu_file_set_idle(p->in, false);
    word = qemu_get_be32(p->in);
    if (qemu_file_get_error(p->in) || word != COLO_MESSAGE_X_STANDBY_ERROR) {
        return false;
    }
    colo_peer_read_report(p, &report);
    g_clear_error(errp);
    g_propagate_error(errp, report);
    return true;
}

void colo_peer_shutdown(ColoPeer *p)
{
    shutdown(p->fd, SHUT_RDWR);
    tls_pump_shutdown(p->tls);
}

bool colo_peer_send(ColoPeer *p, const void *data, size_t len, GError **errp)
{
    const uint8_t *b = data;

    while (len > 0) {
        ssize_t n = send(p->fd, b, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!colo_peer_wait_writable(p, errp)) {
                return false;
            }
            continue;
        }
        if (n <= 0) {
            int e = n < 0 ? errno : EPIPE;

            g_set_error(errp, COLO_ERROR, e, "sending to the secondary %s: "
                        "%s", p->uri, g_strerror(e));
            return false;
        }
        b += n;
        len -= n;
    }
    return true;
}

bool colo_peer_send_bytes(ColoPeer *p, GBytes *bytes, GError **errp)
{
    gsize len;
    const void *data = g_bytes_get_data(bytes, &len);

    return colo_peer_send(p, data, len, errp);
}

bool colo_peer_send_message(ColoPeer *p, COLOMessage msg, GError **errp)
{
    uint32_t be = GUINT32_TO_BE((uint32_t)msg);

    return colo_peer_send(p, &be, sizeof(be), errp);
}

bool colo_peer_send_vmstate_size(ColoPeer *p, uint64_t size, GError **errp)
{
    uint8_t m[12];
    uint32_t w = GUINT32_TO_BE((uint32_t)COLO_MESSAGE_VMSTATE_SIZE);
    uint64_t s = GUINT64_TO_BE(size);

    memcpy(m, &w, 4);
    memcpy(m + 4, &s, 8);
    return colo_peer_send(p, m, sizeof(m), errp);
}

bool colo_peer_expect(ColoPeer *p, COLOMessage msg, GError **errp)
{
    uint32_t got;

    /* due now: the stall limit counts from here (and not while idle) */
    qemu_file_set_idle(p->in, false);
    got = qemu_get_be32(p->in);
    qemu_file_set_idle(p->in, true);

    if (!qemu_file_propagate_error(p->in, errp)) {
        g_prefix_error(errp, "the secondary %s, waiting for %s: ", p->uri,
                       colo_message_name(msg));
        return false;
    }
    if (got == COLO_MESSAGE_X_STANDBY_ERROR) {
        return colo_peer_read_report(p, errp);
    }
    if (got != msg) {
        g_set_error(errp, COLO_ERROR, EPROTO, "the secondary %s sent %s "
                    "(%u) where %s was due", p->uri, colo_message_name(got),
                    got, colo_message_name(msg));
        return false;
    }
    return true;
}

bool colo_peer_send_checkpoint(ColoPeer *p, GBytes *live, GBytes *devices,
                               ColoSendTimes *times, GError **errp)
{
    ColoSendTimes t;

    if (!colo_peer_send_bytes(p, live, errp) ||
        !colo_peer_send_vmstate_size(p, g_bytes_get_size(devices), errp) ||
        !colo_peer_send_bytes(p, devices, errp)) {
        return false;
    }
    t.sent_us = g_get_monotonic_time();
    if (!colo_peer_expect(p, COLO_MESSAGE_VMSTATE_RECEIVED, errp)) {
        return false;
    }
    t.received_us = g_get_monotonic_time();
    if (!colo_peer_expect(p, COLO_MESSAGE_VMSTATE_LOADED, errp)) {
        return false;
    }
    t.loaded_us = g_get_monotonic_time();
    if (times) {
        *times = t;
    }
    return true;
}

bool colo_machine_sends_switchover(const char *machine)
{
    int major = 0, minor = 0;

    return machine_type_version(machine, &major, &minor) &&
           (major > 9 || (major == 9 && minor > 2));
}

void colo_put_stream_head(QEMUFile *f, const char *machine)
{
    qemu_savevm_put_header(f, machine);
    qemu_savevm_put_command(f, MIG_CMD_ENABLE_COLO);
}

void colo_put_checkpoint_head(QEMUFile *f, uint32_t section_id,
                              bool switchover)
{
    qemu_put_be32(f, COLO_MESSAGE_VMSTATE_SEND);
    if (switchover) {
        qemu_savevm_put_command(f, MIG_CMD_SWITCHOVER_START);
    }
    qemu_savevm_put_section_header(f, QEMU_VM_SECTION_END, section_id);
}

void colo_put_checkpoint_tail(RAMSaveState *rs, uint32_t section_id)
{
    ram_save_section_end(rs, section_id);
    qemu_put_byte(rs->f, QEMU_VM_EOF);
}
