/*
 * vm-control.c: stop, cont and device-state captures (see vm-control.h).
 */
#include "qemu/osdep.h"

#include <poll.h>
#include <sys/socket.h>

#include <glib/gstdio.h>

#include "qemu/sockets.h"
#include "tools/colo-primary/vm-control.h"

struct VmControl {
    QmpClient *qmp;
    bool stopped_by_us;
    bool unchanged;             /* not run since the last capture */
    GBytes *last_capture;
    char *sock_path;
    int listen_fd;
    bool shared;                /* vm_control_new_shared */
    bool ignore_shared_on;      /* shared: set for a capture, not yet off */
};

static const char ignore_shared_on[] =
    "{\"capabilities\": [{\"capability\": \"x-ignore-shared\", "
    "\"state\": true}]}";
static const char ignore_shared_off[] =
    "{\"capabilities\": [{\"capability\": \"x-ignore-shared\", "
    "\"state\": false}]}";

static bool qmp_do(VmControl *vc, const char *cmd, const char *args,
                   GError **errp)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(vc->qmp, cmd, args, errp);

    if (!r) {
        g_prefix_error(errp, "QEMU's QMP, %s: ", cmd);
        return false;
    }
    return true;
}

/* x-ignore-shared off again, whatever happened (best effort: QEMU
 * refuses while a migration runs). */
static void ignore_shared_reset(VmControl *vc)
{
    if (vc->ignore_shared_on &&
        qmp_client_try(vc->qmp, "migrate-set-capabilities",
                       ignore_shared_off)) {
        vc->ignore_shared_on = false;
    }
}

/* x-ignore-shared off, waiting out (at most 1 s) and cancelling a
 * migration that refuses it: not ours, it runs with x-ignore-shared on
 * and would carry no RAM.  True if one was cancelled. */
static bool ignore_shared_off_cancelling(VmControl *vc)
{
    bool cancelled = false;

    for (int i = 0; i < 100 && vc->ignore_shared_on; i++) {
        ignore_shared_reset(vc);
        if (vc->ignore_shared_on) {
            if (!cancelled) {
                qmp_client_try(vc->qmp, "migrate_cancel", NULL);
                cancelled = true;
            }
            g_usleep(10 * 1000);
        }
    }
    return cancelled;
}

VmControl *vm_control_new(const char *qmp_path, const char *work_dir,
                          GError **errp)
{
    VmControl *vc = g_new0(VmControl, 1);

    vc->listen_fd = -1;
    vc->qmp = qmp_client_connect(qmp_path, 10000, errp);
    if (!vc->qmp) {
        g_prefix_error(errp, "QEMU's QMP socket %s: ", qmp_path);
        goto fail;
    }
    if (!qmp_do(vc, "migrate-set-capabilities", ignore_shared_on, errp)) {
        goto fail;
    }
    vc->sock_path = g_build_filename(work_dir, "devices.sock", NULL);
    vc->listen_fd = unix_listen(vc->sock_path, errp);
    if (vc->listen_fd < 0) {
        goto fail;
    }
    return vc;

fail:
    vm_control_free(vc);
    return NULL;
}

VmControl *vm_control_new_shared(QmpClient *qmp, GError **errp)
{
    VmControl *vc = g_new0(VmControl, 1);

    vc->listen_fd = -1;
    vc->qmp = qmp;
    vc->shared = true;
    /* left on by a colo-primary that was killed in a capture */
    if (!qmp_do(vc, "migrate-set-capabilities", ignore_shared_off, errp)) {
        vm_control_free(vc);
        return NULL;
    }
    return vc;
}

void vm_control_free(VmControl *vc)
{
    if (!vc) {
        return;
    }
    if (vc->qmp) {
        ignore_shared_reset(vc);
    }
    if (vc->listen_fd >= 0) {
        close(vc->listen_fd);
        g_unlink(vc->sock_path);
    }
    qmp_client_free(vc->qmp);
    if (vc->last_capture) {
        g_bytes_unref(vc->last_capture);
    }
    g_free(vc->sock_path);
    g_free(vc);
}

QmpClient *vm_control_qmp(VmControl *vc)
{
    return vc->qmp;
}

bool vm_control_stop(VmControl *vc, int64_t *t_stop, GError **errp)
{
    g_autofree char *state = vm_control_run_state(vc, errp);

    if (!state) {
        g_prefix_error(errp, "QEMU's QMP, query-status: ");
        return false;
    }
    *t_stop = g_get_monotonic_time();
    /* "postmigrate" is only reached by our capture of a VM we did not
     * stop, and only left by cont: the VM has not run since. */
    vc->unchanged = strcmp(state, "postmigrate") == 0 && vc->last_capture;
    if (strcmp(state, "running") != 0) {
        /* paused by someone else (a guest error, another monitor): it
         * is checkpointed as it is and left as it was */
        return true;
    }
    if (!qmp_do(vc, "stop", NULL, errp)) {
        return false;
    }
    vc->stopped_by_us = true;
    return true;
}

bool vm_control_cont(VmControl *vc, GError **errp)
{
    bool ok = true;

    if (vc->stopped_by_us) {
        vc->stopped_by_us = false;
        ok = qmp_do(vc, "cont", NULL, errp);
    }
    if (ok && vc->ignore_shared_on) {
        /* the VM runs again: what libvirt migrates or saves now must
         * carry the RAM */
        vc->ignore_shared_on = false;
        ok = qmp_do(vc, "migrate-set-capabilities", ignore_shared_off, errp);
    }
    return ok;
}

bool vm_control_stopped_by_us(const VmControl *vc)
{
    return vc->stopped_by_us;
}

char *vm_control_run_state(VmControl *vc, GError **errp)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(vc->qmp, "query-status", NULL,
                                           errp);
    JsonObject *o;

    if (!r) {
        return NULL;
    }
    o = JSON_NODE_HOLDS_OBJECT(r) ? json_node_get_object(r) : NULL;
    if (!o || !json_object_has_member(o, "status")) {
        g_set_error(errp, COLO_ERROR, EPROTO, "query-status: no status");
        return NULL;
    }
    return g_strdup(json_object_get_string_member(o, "status"));
}

char *vm_control_capture_failure(VmControl *vc)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(vc->qmp, "query-migrate", NULL,
                                           NULL);
    JsonObject *o = r && JSON_NODE_HOLDS_OBJECT(r) ?
                    json_node_get_object(r) : NULL;
    const char *st = o && json_object_has_member(o, "status") ?
                     json_object_get_string_member(o, "status") : NULL;

    if (!st || !strcmp(st, "completed")) {
        return NULL;
    }
    return g_strdup_printf("QEMU's device-state migration %s%s%s", st,
                           json_object_has_member(o, "error-desc") ? ": " :
                           "", json_object_has_member(o, "error-desc") ?
                           json_object_get_string_member(o, "error-desc") :
                           "");
}

/*
 * The capture of a QEMU someone else (libvirt) also migrates: the far end
 * of a socket pair goes to QEMU first, then x-ignore-shared is switched
 * on, then ours starts, each its own command.
 *
 * A migration of theirs that runs already makes QEMU refuse the switch:
 * it carries the RAM, and protection ends.  One that starts between the
 * switch and ours would carry none (libvirt's save would destroy the
 * domain after writing an image that cannot be restored), and makes ours
 * fail: it is cancelled at once (ECANCELED; libvirt reports its job
 * cancelled), and our capture is tried again.
 */
static int vm_control_capture_start_shared(VmControl *vc, GError **errp)
{
    g_autoptr(GError) err = NULL;
    JsonNode *r;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "socketpair: %s",
                    g_strerror(errno));
        return -1;
    }
    r = qmp_client_cmd_fds(vc->qmp, "getfd",
                           "{\"fdname\": \"colo-capture\"}", &sv[1], 1,
                           errp);
    close(sv[1]);
    if (!r) {
        close(sv[0]);
        return -1;
    }
    json_node_unref(r);
    if (!qmp_do(vc, "migrate-set-capabilities", ignore_shared_on, &err)) {
        close(sv[0]);
        qmp_client_try(vc->qmp, "closefd", "{\"fdname\": \"colo-capture\"}");
        g_propagate_prefixed_error(errp, g_steal_pointer(&err),
                                   "a migration of the VM that is not ours "
                                   "runs (libvirt migrates or saves the "
                                   "domain?): ");
        return -1;
    }
    vc->ignore_shared_on = true;
    if (!qmp_do(vc, "migrate", "{\"uri\": \"fd:colo-capture\"}", &err)) {
        close(sv[0]);
        /* theirs, without the RAM, or none at all: it must not finish */
        qmp_client_try(vc->qmp, "migrate_cancel", NULL);
        ignore_shared_off_cancelling(vc);
        g_clear_error(&err);
        g_set_error(errp, COLO_ERROR, ECANCELED, "a migration of the VM "
                    "that is not ours started within our capture, and was "
                    "cancelled: it would have carried no RAM");
        return -1;
    }
    return sv[0];
}

/* The migration's connection: accepted on our socket, or the near end
 * of a socket pair whose far end QEMU got with getfd. */
static int vm_control_capture_start(VmControl *vc, int timeout_ms,
                                    GError **errp)
{
    g_autofree char *args = NULL;
    struct pollfd pfd = { .fd = vc->listen_fd, .events = POLLIN };
    int conn;

    if (vc->shared) {
        return vm_control_capture_start_shared(vc, errp);
    }
    args = g_strdup_printf("{\"uri\": \"unix:%s\"}", vc->sock_path);
    if (!qmp_do(vc, "migrate", args, errp)) {
        return -1;
    }
    if (poll(&pfd, 1, timeout_ms) != 1) {
        g_set_error(errp, COLO_ERROR, ETIMEDOUT, "QEMU did not connect its "
                    "device-state migration to %s", vc->sock_path);
        return -1;
    }
    conn = accept4(vc->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
        g_set_error(errp, COLO_ERROR, errno, "accepting QEMU's device-state "
                    "migration: %s", g_strerror(errno));
    }
    return conn;
}

static GBytes *vm_control_capture_now(VmControl *vc, int timeout_ms,
                                      GError **errp)
{
    int64_t deadline = g_get_monotonic_time() + timeout_ms * 1000LL;
    g_autoptr(GByteArray) buf = g_byte_array_sized_new(512 * 1024);
    g_autoptr(GError) err = NULL;
    int conn = vm_control_capture_start(vc, timeout_ms, &err);

    if (conn < 0 && g_error_matches(err, COLO_ERROR, ECANCELED)) {
        /* theirs is gone, x-ignore-shared is off: ours, once more */
        fprintf(stderr, "colo-primary: %s; capturing again\n",
                err->message);
        g_clear_error(&err);
        conn = vm_control_capture_start(vc, timeout_ms, &err);
    }
    if (conn < 0) {
        ignore_shared_reset(vc);
        g_propagate_error(errp, g_steal_pointer(&err));
        return NULL;
    }
    for (;;) {
        struct pollfd cp = { .fd = conn, .events = POLLIN };
        int left = (int)MAX((deadline - g_get_monotonic_time()) / 1000, 0);
        guint old = buf->len;
        ssize_t n;

        if (old > (256u << 20)) {
            g_set_error(errp, COLO_ERROR, EFBIG, "QEMU's device state is "
                        "larger than 256 MiB: is the main RAM shared?");
            close(conn);
            return NULL;
        }
        if (poll(&cp, 1, left) != 1) {
            g_set_error(errp, COLO_ERROR, ETIMEDOUT, "QEMU's device-state "
                        "migration stalled after %u bytes", old);
            close(conn);
            return NULL;
        }
        g_byte_array_set_size(buf, old + 65536);
        n = read(conn, buf->data + old, 65536);
        g_byte_array_set_size(buf, old + MAX(n, 0));
        if (n == 0) {
            break;
        }
        if (n < 0 && errno != EINTR) {
            g_set_error(errp, COLO_ERROR, errno, "reading QEMU's device "
                        "state: %s", g_strerror(errno));
            close(conn);
            return NULL;
        }
    }
    close(conn);
    /* ours is over: x-ignore-shared goes off at once, not when the VM is
     * continued, so that a migration libvirt starts meanwhile (its save
     * or live migration) carries the RAM; one that started in the round
     * trip before carries none, and is cancelled */
    if (vc->shared && ignore_shared_off_cancelling(vc)) {
        fprintf(stderr, "colo-primary: a migration of the VM that is not "
                "ours started as our capture ended, and was cancelled: it "
                "would have carried no RAM\n");
    }
    return g_byte_array_free_to_bytes(g_steal_pointer(&buf));
}

GBytes *vm_control_capture(VmControl *vc, int timeout_ms, GError **errp)
{
    GBytes *b;

    if (vc->unchanged) {
        /* QEMU refuses to migrate it again, and it would be the same */
        return g_bytes_ref(vc->last_capture);
    }
    b = vm_control_capture_now(vc, timeout_ms, errp);
    if (b) {
        if (vc->last_capture) {
            g_bytes_unref(vc->last_capture);
        }
        vc->last_capture = g_bytes_ref(b);
    }
    return b;
}
