/*
 * net-buffer.c: per-epoch output buffering with QEMU's filter-mirror and
 * filter-buffer (see net-buffer.h for the picture and the limits).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "qemu/bswap.h"
#include "qemu/sockets.h"
#include "tools/colo-primary/net-buffer.h"
#include "tools/colo-primary/packet-class.h"

/* QEMU's filter-buffer wants a release interval > 0: ours is the longest
 * it takes (~71 min), a last resort should both colo-primary and its
 * guard be gone; the guard normally releases within a second. */
#define BUFFER_INTERVAL_US 4294967295u
#define MIRROR_ACCEPT_MS 5000
#define MIRROR_MAX_FRAME (1u << 20)
/* virtio-net's header is 10 or 12 bytes; anything this long is garbage */
#define MIRROR_MAX_VNET 64
#define ID_BUFFER "colo-nb-"
#define ID_MIRROR "colo-nm-"
#define ID_CHARDEV "colo-nc-"

/* One filter-buffer and what the mirror saw it catch. */
typedef struct HeldBuffer {
    char *id;
    uint64_t epoch;
    uint64_t packets, bytes;
    int64_t first_us;
    double arrival_sum_us;
} HeldBuffer;

typedef struct NetdevBuf {
    char *name, *type;
    guint index;
    char *sock_path;
    bool mirror_tried;          /* its chardev and mirror may be in QEMU */
    int fd;                     /* the mirror's connection, or -1 */
    uint8_t hdr_be[8];          /* the frame being read: its length and
                                   its vnet header's */
    guint hdr_got;
    uint32_t payload_left;
    uint32_t frame_len, vnet_len;
    uint8_t head[MIRROR_MAX_VNET + PACKET_CLASS_HEAD];  /* its first bytes */
    guint head_got;
    GQueue held;                /* HeldBuffer *, oldest first */
    bool rotate;                /* the newest is full: add one */
} NetdevBuf;

struct NetBuffer {
    QmpClient *qmp;
    GPtrArray *devs;            /* NetdevBuf * */
    NetBufferCallbacks cb;

    /* QEMU's filter list changes and our lists follow, in one order */
    GMutex add_lock;
    uint64_t seq;

    GMutex lock;                /* everything below, and each dev's held */
    GCond wake;
    uint64_t epoch;             /* catching packets now; 0: none yet */
    uint64_t epoch_packets, epoch_bytes;
    bool limit_told;
    bool output_told, ack_told; /* this epoch's output was said */
    bool quit;
    NetBufferStats st;
    double latency_sum_us;

    GThread *reader, *rotator;
    int wake_fds[2];
    GPid guard_pid;
    int guard_fd;
    bool keep_held;             /* freeing leaves the buffers in QEMU */
};

static void held_buffer_free(HeldBuffer *h)
{
    g_free(h->id);
    g_free(h);
}

static bool qmp_ok(NetBuffer *nb, const char *cmd, const char *args,
                   GError **errp)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(nb->qmp, cmd, args, errp);

    return r != NULL;
}

/* --- finding the netdevs -------------------------------------------------- */

static bool name_is_plain(const char *s)
{
    for (; *s; s++) {
        if (!g_ascii_isalnum(*s) && !strchr("-._#", *s)) {
            return false;
        }
    }
    return true;
}

/* The peers of the NICs in HMP's "info network": a NIC line, then
 * " \ NAME: index=..,type=TYPE,...". */
static bool find_netdevs(NetBuffer *nb, GError **errp)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(
        nb->qmp, "human-monitor-command",
        "{\"command-line\": \"info network\"}", errp);
    g_auto(GStrv) lines = NULL;
    bool after_nic = false;

    if (!r) {
        g_prefix_error(errp, "listing the VM's netdevs: ");
        return false;
    }
    if (!JSON_NODE_HOLDS_VALUE(r) ||
        json_node_get_value_type(r) != G_TYPE_STRING) {
        g_set_error(errp, COLO_ERROR, EPROTO, "listing the VM's netdevs: "
                    "\"info network\" did not return text");
        return false;
    }
    lines = g_strsplit(json_node_get_string(r), "\n", -1);
    for (guint i = 0; lines[i]; i++) {
        const char *l = g_strchomp(lines[i]);
        const char *colon, *type;

        if (l[0] != ' ') {
            after_nic = strstr(l, "type=nic") != NULL;
            continue;
        }
        l = g_strchug(lines[i]);
        if (!after_nic || strncmp(l, "\\ ", 2) != 0 ||
            !(colon = strchr(l, ':'))) {
            continue;
        }
        after_nic = false;
        {
            NetdevBuf *d = g_new0(NetdevBuf, 1);

            d->name = g_strndup(l + 2, colon - (l + 2));
            type = strstr(colon, "type=");
            d->type = type ? g_strndup(type + 5, strcspn(type + 5, ",")) :
                      g_strdup("?");
            d->index = nb->devs->len;
            d->fd = -1;
            g_queue_init(&d->held);
            g_ptr_array_add(nb->devs, d);
            if (!name_is_plain(d->name)) {
                g_set_error(errp, COLO_ERROR, EINVAL, "netdev \"%s\": a name "
                            "colo-primary cannot pass to QEMU", d->name);
                return false;
            }
        }
    }
    return true;
}

/* --- the mirror ------------------------------------------------------------ */

/* The mirror's chardev over a socket pair whose far end QEMU gets with
 * getfd: for a QEMU that cannot see our folder (libvirt's namespaces and
 * confinement). */
static bool mirror_connect_fd(NetBuffer *nb, NetdevBuf *d, GError **errp)
{
    g_autofree char *name = g_strdup_printf(ID_CHARDEV "%u", d->index);
    g_autofree char *getfd = g_strdup_printf("{\"fdname\": \"%s\"}", name);
    g_autofree char *args = g_strdup_printf(
        "{\"id\": \"%s\", \"backend\": {\"type\": \"socket\", "
        "\"data\": {\"addr\": {\"type\": \"fd\", \"data\": {\"str\": "
        "\"%s\"}}, \"server\": false}}}", name, name);
    JsonNode *r;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "socketpair: %s",
                    g_strerror(errno));
        return false;
    }
    r = qmp_client_cmd_fds(nb->qmp, "getfd", getfd, &sv[1], 1, errp);
    close(sv[1]);
    if (!r) {
        close(sv[0]);
        return false;
    }
    json_node_unref(r);
    if (!qmp_ok(nb, "chardev-add", args, errp)) {
        close(sv[0]);
        return false;
    }
    d->fd = sv[0];
    return true;
}

/* The mirror's chardev connecting to a socket of ours in @work. */
static bool mirror_connect_socket(NetBuffer *nb, NetdevBuf *d,
                                  const char *work, GError **errp)
{
    g_autofree char *args = NULL;
    struct pollfd pfd;
    int lfd;

    d->sock_path = g_strdup_printf("%s/net%u.sock", work, d->index);
    lfd = unix_listen(d->sock_path, errp);
    if (lfd < 0) {
        return false;
    }
    args = g_strdup_printf(
        "{\"id\": \"" ID_CHARDEV "%u\", \"backend\": {\"type\": \"socket\", "
        "\"data\": {\"addr\": {\"type\": \"unix\", \"data\": {\"path\": "
        "\"%s\"}}, \"server\": false}}}", d->index, d->sock_path);
    if (!qmp_ok(nb, "chardev-add", args, errp)) {
        close(lfd);
        return false;
    }
    pfd = (struct pollfd) { .fd = lfd, .events = POLLIN };
    if (poll(&pfd, 1, MIRROR_ACCEPT_MS) == 1) {
        d->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    }
    close(lfd);
    g_unlink(d->sock_path);
    if (d->fd < 0) {
        g_set_error(errp, COLO_ERROR, ETIMEDOUT, "QEMU's chardev did not "
                    "connect to %s", d->sock_path);
        return false;
    }
    return true;
}

static bool mirror_start(NetBuffer *nb, NetdevBuf *d, const char *work,
                         GError **errp)
{
    g_autofree char *args = NULL;

    d->mirror_tried = true;
    if (qmp_client_passes_fds(nb->qmp) ? !mirror_connect_fd(nb, d, errp) :
        !mirror_connect_socket(nb, d, work, errp)) {
        return false;
    }
    args = g_strdup_printf(
        "{\"qom-type\": \"filter-mirror\", \"id\": \"" ID_MIRROR "%u\", "
        "\"netdev\": \"%s\", \"queue\": \"rx\", \"outdev\": \"" ID_CHARDEV
        "%u\", \"position\": \"tail\", \"vnet_hdr_support\": true}",
        d->index, d->name, d->index);
    return qmp_ok(nb, "object-add", args, errp);
}

/* Counts one mirrored packet of @len bytes against @d's newest buffer;
 * @ack: a pure acknowledgement. */
static void count_packet(NetBuffer *nb, NetdevBuf *d, uint32_t len, bool ack)
{
    int64_t now = g_get_monotonic_time();
    HeldBuffer *h;
    bool tell = false, output = false;
    bool *told;
    uint64_t epoch = 0;

    g_mutex_lock(&nb->lock);
    h = g_queue_peek_tail(&d->held);
    if (h) {
        if (!h->packets) {
            h->first_us = now;
        }
        h->packets++;
        h->bytes += len;
        h->arrival_sum_us += now;
        nb->st.packets_held++;
        nb->st.bytes_held += len;
        nb->st.packets_held_peak = MAX(nb->st.packets_held_peak,
                                       nb->st.packets_held);
        nb->epoch_packets++;
        nb->epoch_bytes += len;
        if (h->packets >= NET_BUFFER_ROTATE_PACKETS && !d->rotate) {
            d->rotate = true;
            g_cond_broadcast(&nb->wake);
        }
        if (!nb->limit_told && (nb->epoch_packets >= NET_BUFFER_EPOCH_PACKETS ||
                                nb->epoch_bytes >= NET_BUFFER_EPOCH_BYTES)) {
            nb->limit_told = tell = true;
            nb->st.early_checkpoints++;
        }
        nb->st.pure_acks += ack;
        told = ack ? &nb->ack_told : &nb->output_told;
        if (!*told) {
            *told = output = true;
            epoch = nb->epoch;
        }
    }
    g_mutex_unlock(&nb->lock);
    if (output && nb->cb.output) {
        nb->cb.output(nb->cb.opaque, epoch, now, ack);
    }
    if (tell && nb->cb.limit) {
        nb->cb.limit(nb->cb.opaque);
    }
}

/* Parses the mirror's frames in @buf: be32 length, be32 length of the
 * netdev's vnet header (vnet_hdr_support=on), then the packet, which
 * starts with that header. */
static bool mirror_parse(NetBuffer *nb, NetdevBuf *d, const uint8_t *buf,
                         size_t n)
{
    while (n) {
        if (d->payload_left) {
            uint32_t head_len = MIN(d->frame_len,
                                    d->vnet_len + PACKET_CLASS_HEAD);
            size_t k = MIN(n, d->payload_left);

            if (d->head_got < head_len) {
                k = MIN(k, head_len - d->head_got);
                memcpy(d->head + d->head_got, buf, k);
                d->head_got += k;
                if (d->head_got == head_len) {
                    count_packet(nb, d, d->frame_len - d->vnet_len,
                                 packet_is_pure_ack(
                                     d->head + d->vnet_len,
                                     d->frame_len - d->vnet_len));
                }
            }
            d->payload_left -= k;
            buf += k;
            n -= k;
            continue;
        }
        d->hdr_be[d->hdr_got++] = *buf++;
        n--;
        if (d->hdr_got == 8) {
            uint32_t len = ldl_be_p(d->hdr_be);
            uint32_t vnet = ldl_be_p(d->hdr_be + 4);

            d->hdr_got = 0;
            if (len == 0 || len > MIRROR_MAX_FRAME || vnet > MIRROR_MAX_VNET ||
                vnet >= len) {
                fprintf(stderr, "colo-primary: netdev %s: the mirror sent a "
                        "packet of %u bytes with a vnet header of %u; no "
                        "longer counting\n", d->name, len, vnet);
                return false;
            }
            d->payload_left = d->frame_len = len;
            d->vnet_len = vnet;
            d->head_got = 0;
        }
    }
    return true;
}

static gpointer reader_thread(gpointer opaque)
{
    NetBuffer *nb = opaque;
    struct pollfd *pfd = g_new0(struct pollfd, nb->devs->len + 1);
    uint8_t *buf = g_malloc(65536);

    for (;;) {
        guint n = 0;

        pfd[n++] = (struct pollfd) { .fd = nb->wake_fds[0], .events = POLLIN };
        for (guint i = 0; i < nb->devs->len; i++) {
            NetdevBuf *d = g_ptr_array_index(nb->devs, i);

            pfd[n++] = (struct pollfd) { .fd = d->fd, .events = POLLIN };
        }
        if (poll(pfd, n, -1) < 0 && errno != EINTR) {
            break;
        }
        if (pfd[0].revents) {
            break;
        }
        for (guint i = 0; i < nb->devs->len; i++) {
            NetdevBuf *d = g_ptr_array_index(nb->devs, i);
            ssize_t k;

            if (d->fd < 0 || !pfd[i + 1].revents) {
                continue;
            }
            k = read(d->fd, buf, 65536);
            if (k < 0 && (errno == EINTR || errno == EAGAIN)) {
                continue;
            }
            if (k <= 0 || !mirror_parse(nb, d, buf, k)) {
                /* QEMU is gone (the session finds out over QMP), or the
                 * stream makes no sense: stop reading this one */
                close(d->fd);
                d->fd = -1;
            }
        }
    }
    g_free(pfd);
    g_free(buf);
    return NULL;
}

/* --- buffers --------------------------------------------------------------- */

/* add_lock held: a new newest buffer for @d, catching from now on. */
static bool add_buffer(NetBuffer *nb, NetdevBuf *d, uint64_t epoch,
                       GError **errp)
{
    HeldBuffer *h = g_new0(HeldBuffer, 1);
    g_autofree char *args = NULL;

    h->id = g_strdup_printf(ID_BUFFER "%08" PRIu64 "-%u", ++nb->seq,
                            d->index);
    h->epoch = epoch;
    args = g_strdup_printf(
        "{\"qom-type\": \"filter-buffer\", \"id\": \"%s\", \"netdev\": "
        "\"%s\", \"queue\": \"rx\", \"interval\": %u, \"position\": "
        "\"id=" ID_MIRROR "%u\", \"insert\": \"before\"}", h->id, d->name,
        BUFFER_INTERVAL_US, d->index);
    if (!qmp_ok(nb, "object-add", args, errp)) {
        g_prefix_error(errp, "netdev %s: adding output buffer %s: ", d->name,
                       h->id);
        held_buffer_free(h);
        return false;
    }
    g_mutex_lock(&nb->lock);
    g_queue_push_tail(&d->held, h);
    nb->st.buffers_added++;
    g_mutex_unlock(&nb->lock);
    return true;
}

/* add_lock held: releases @d's oldest buffer. */
static bool drop_oldest(NetBuffer *nb, NetdevBuf *d, GError **errp)
{
    HeldBuffer *h = g_queue_peek_head(&d->held);
    g_autofree char *args = g_strdup_printf("{\"id\": \"%s\"}", h->id);
    int64_t now;

    if (!qmp_ok(nb, "object-del", args, errp)) {
        g_prefix_error(errp, "netdev %s: releasing output buffer %s (%" PRIu64
                       " packets held): ", d->name, h->id, h->packets);
        return false;
    }
    now = g_get_monotonic_time();
    g_mutex_lock(&nb->lock);
    g_queue_pop_head(&d->held);
    nb->st.packets_held -= h->packets;
    nb->st.bytes_held -= h->bytes;
    nb->st.packets_released += h->packets;
    nb->st.bytes_released += h->bytes;
    if (h->packets) {
        nb->latency_sum_us += now * (double)h->packets - h->arrival_sum_us;
        nb->st.latency_max_us = MAX(nb->st.latency_max_us, now - h->first_us);
    }
    g_mutex_unlock(&nb->lock);
    held_buffer_free(h);
    return true;
}

static gpointer rotator_thread(gpointer opaque)
{
    NetBuffer *nb = opaque;

    g_mutex_lock(&nb->lock);
    while (!nb->quit) {
        NetdevBuf *full = NULL;

        for (guint i = 0; i < nb->devs->len && !full; i++) {
            NetdevBuf *d = g_ptr_array_index(nb->devs, i);

            full = d->rotate ? d : NULL;
        }
        if (!full) {
            g_cond_wait(&nb->wake, &nb->lock);
            continue;
        }
        g_mutex_unlock(&nb->lock);
        g_mutex_lock(&nb->add_lock);
        {
            g_autoptr(GError) err = NULL;
            HeldBuffer *h;
            bool still_full;

            g_mutex_lock(&nb->lock);
            h = g_queue_peek_tail(&full->held);
            still_full = h && h->packets >= NET_BUFFER_ROTATE_PACKETS;
            g_mutex_unlock(&nb->lock);
            if (still_full && !add_buffer(nb, full, nb->epoch, &err)) {
                /* the next checkpoint will try again; until then the
                 * full buffer goes on catching */
                fprintf(stderr, "colo-primary: %s\n", err->message);
            } else if (still_full) {
                g_mutex_lock(&nb->lock);
                nb->st.rotations++;
                g_mutex_unlock(&nb->lock);
            }
        }
        g_mutex_unlock(&nb->add_lock);
        g_mutex_lock(&nb->lock);
        full->rotate = false;
    }
    g_mutex_unlock(&nb->lock);
    return NULL;
}

bool net_buffer_begin_epoch(NetBuffer *nb, uint64_t epoch, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&nb->add_lock);
    for (guint i = 0; i < nb->devs->len && ok; i++) {
        ok = add_buffer(nb, g_ptr_array_index(nb->devs, i), epoch, errp);
    }
    g_mutex_lock(&nb->lock);
    nb->epoch = epoch;
    nb->epoch_packets = nb->epoch_bytes = 0;
    nb->limit_told = false;
    nb->output_told = nb->ack_told = false;
    g_mutex_unlock(&nb->lock);
    g_mutex_unlock(&nb->add_lock);
    return ok;
}

bool net_buffer_release(NetBuffer *nb, uint64_t epoch, GError **errp)
{
    bool ok = true;

    g_mutex_lock(&nb->add_lock);
    for (guint i = 0; i < nb->devs->len && ok; i++) {
        NetdevBuf *d = g_ptr_array_index(nb->devs, i);
        HeldBuffer *h;

        while (ok && (h = g_queue_peek_head(&d->held)) && h->epoch <= epoch) {
            ok = drop_oldest(nb, d, errp);
        }
    }
    g_mutex_unlock(&nb->add_lock);
    return ok;
}

/* --- the release guard ----------------------------------------------------- */

static bool guard_start(NetBuffer *nb, const char *guard_exe,
                        const char *const *vm_args, GError **errp)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();

    g_ptr_array_add(argv, (char *)guard_exe);
    g_ptr_array_add(argv, (char *)"--x-net-release-guard");
    for (int i = 0; vm_args[i]; i++) {
        g_ptr_array_add(argv, (char *)vm_args[i]);
    }
    g_ptr_array_add(argv, NULL);
    if (!g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL,
                                  G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                  &nb->guard_pid, &nb->guard_fd, NULL, NULL,
                                  errp)) {
        g_prefix_error(errp, "starting the network release guard: ");
        return false;
    }
    fcntl(nb->guard_fd, F_SETFD, FD_CLOEXEC);
    return true;
}

static void guard_stop(NetBuffer *nb)
{
    if (nb->guard_fd >= 0) {
        if (write(nb->guard_fd, "done\n", 5) != 5) {
            /* it is gone already; nothing to tell */
        }
        close(nb->guard_fd);
        nb->guard_fd = -1;
    }
    if (nb->guard_pid > 0) {
        waitpid(nb->guard_pid, NULL, 0);
        g_spawn_close_pid(nb->guard_pid);
        nb->guard_pid = 0;
    }
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Deletes the objects under /objects whose id starts with @prefix, in
 * the order of their ids (our buffers: oldest first). */
static guint delete_objects(QmpClient *qmp, const char *prefix)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(
        qmp, "qom-list", "{\"path\": \"/objects\"}", NULL);
    g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
    guint done = 0;

    if (!r || !JSON_NODE_HOLDS_ARRAY(r)) {
        return 0;
    }
    for (guint i = 0; i < json_array_get_length(json_node_get_array(r)); i++) {
        JsonObject *o = json_array_get_object_element(json_node_get_array(r),
                                                      i);
        const char *name = o ? json_object_get_string_member_with_default(
            o, "name", "") : "";

        if (g_str_has_prefix(name, prefix)) {
            g_ptr_array_add(ids, g_strdup(name));
        }
    }
    g_ptr_array_sort(ids, cmp_str);
    for (guint i = 0; i < ids->len; i++) {
        g_autofree char *args = g_strdup_printf(
            "{\"id\": \"%s\"}", (char *)g_ptr_array_index(ids, i));

        done += qmp_client_try(qmp, "object-del", args);
    }
    return done;
}

static void remove_chardevs(QmpClient *qmp)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(qmp, "query-chardev", NULL, NULL);

    if (!r || !JSON_NODE_HOLDS_ARRAY(r)) {
        return;
    }
    for (guint i = 0; i < json_array_get_length(json_node_get_array(r)); i++) {
        JsonObject *o = json_array_get_object_element(json_node_get_array(r),
                                                      i);
        const char *label = o ? json_object_get_string_member_with_default(
            o, "label", "") : "";

        if (g_str_has_prefix(label, ID_CHARDEV)) {
            g_autofree char *args = g_strdup_printf("{\"id\": \"%s\"}", label);

            qmp_client_try(qmp, "chardev-remove", args);
        }
    }
}

guint net_buffer_release_leftovers(QmpClient *qmp)
{
    guint released = delete_objects(qmp, ID_BUFFER);

    delete_objects(qmp, ID_MIRROR);
    remove_chardevs(qmp);
    return released;
}

int net_buffer_guard_main(NetBufferOpenQemu open_qemu, void *opaque)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) qmp = NULL;
    char buf[64];
    size_t got = 0;
    ssize_t k;
    guint released;

    /* a Ctrl-C or SIGTERM to the group is for colo-primary: the guard
     * goes when colo-primary has gone */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    while ((k = read(STDIN_FILENO, buf + got, sizeof(buf) - 1 - got)) != 0) {
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            break;
        }
        got += k;
        buf[got] = 0;
        if (strstr(buf, "done\n") || got == sizeof(buf) - 1) {
            return 0;
        }
    }
    qmp = open_qemu(opaque, &err);
    if (!qmp) {
        /* QEMU went with it: nothing is held any more */
        return 0;
    }
    released = net_buffer_release_leftovers(qmp);
    fprintf(stderr, "colo-primary (release guard): colo-primary is gone; "
            "released %u output buffer(s) of the VM\n", released);
    return 0;
}

/* --- life ------------------------------------------------------------------ */

NetBuffer *net_buffer_new(QmpClient *qmp, const char *const *vm_args,
                          const char *work_dir, const char *guard_exe,
                          const NetBufferCallbacks *cb, GError **errp)
{
    NetBuffer *nb = g_new0(NetBuffer, 1);

    nb->qmp = qmp;
    nb->cb = *cb;
    nb->devs = g_ptr_array_new();
    nb->guard_fd = nb->wake_fds[0] = nb->wake_fds[1] = -1;
    g_mutex_init(&nb->add_lock);
    g_mutex_init(&nb->lock);
    g_cond_init(&nb->wake);
    if (!find_netdevs(nb, errp)) {
        goto fail;
    }
    nb->st.netdevs = nb->devs->len;
    if (!nb->devs->len) {
        return nb;
    }
    if (guard_exe && !guard_start(nb, guard_exe, vm_args, errp)) {
        goto fail;
    }
    for (guint i = 0; i < nb->devs->len; i++) {
        NetdevBuf *d = g_ptr_array_index(nb->devs, i);

        if (!mirror_start(nb, d, work_dir, errp)) {
            g_prefix_error(errp, "netdev %s (%s): QEMU will not let us watch "
                           "its output: ", d->name, d->type);
            goto fail;
        }
    }
    if (!g_unix_open_pipe(nb->wake_fds, FD_CLOEXEC, errp)) {
        goto fail;
    }
    nb->reader = g_thread_new("colo-net-reader", reader_thread, nb);
    nb->rotator = g_thread_new("colo-net-rotator", rotator_thread, nb);
    return nb;

fail:
    net_buffer_free(nb);
    return NULL;
}

void net_buffer_free(NetBuffer *nb)
{
    g_autoptr(GError) err = NULL;

    if (!nb) {
        return;
    }
    /* release every buffer, oldest first, going on past one that will
     * not go (someone else deleted it, or QEMU is gone): the owner has
     * said what failed already; then take the mirrors away */
    g_mutex_lock(&nb->add_lock);
    for (guint i = 0; i < nb->devs->len && !nb->keep_held; i++) {
        NetdevBuf *d = g_ptr_array_index(nb->devs, i);

        while (!g_queue_is_empty(&d->held)) {
            if (!drop_oldest(nb, d, &err)) {
                g_clear_error(&err);
                held_buffer_free(g_queue_pop_head(&d->held));
            }
        }
    }
    for (guint i = 0; i < nb->devs->len; i++) {
        NetdevBuf *d = g_ptr_array_index(nb->devs, i);
        g_autofree char *mirror = g_strdup_printf(
            "{\"id\": \"" ID_MIRROR "%u\"}", d->index);
        g_autofree char *chardev = g_strdup_printf(
            "{\"id\": \"" ID_CHARDEV "%u\"}", d->index);

        if (d->mirror_tried) {
            /* either may not exist if setup stopped half way */
            qmp_client_try(nb->qmp, "object-del", mirror);
            qmp_client_try(nb->qmp, "chardev-remove", chardev);
        }
    }
    g_mutex_unlock(&nb->add_lock);
    if (nb->reader) {
        if (write(nb->wake_fds[1], "q", 1) != 1) {
            /* the pipe is ours and empty: cannot fail */
        }
        g_thread_join(nb->reader);
    }
    if (nb->rotator) {
        g_mutex_lock(&nb->lock);
        nb->quit = true;
        g_cond_broadcast(&nb->wake);
        g_mutex_unlock(&nb->lock);
        g_thread_join(nb->rotator);
    }
    guard_stop(nb);
    for (guint i = 0; i < nb->devs->len; i++) {
        NetdevBuf *d = g_ptr_array_index(nb->devs, i);

        if (d->fd >= 0) {
            close(d->fd);
        }
        g_queue_clear_full(&d->held, (GDestroyNotify)held_buffer_free);
        g_free(d->name);
        g_free(d->type);
        g_free(d->sock_path);
        g_free(d);
    }
    g_ptr_array_unref(nb->devs);
    if (nb->wake_fds[0] >= 0) {
        close(nb->wake_fds[0]);
        close(nb->wake_fds[1]);
    }
    g_mutex_clear(&nb->add_lock);
    g_mutex_clear(&nb->lock);
    g_cond_clear(&nb->wake);
    g_free(nb);
}

void net_buffer_free_keeping_held(NetBuffer *nb)
{
    if (nb) {
        nb->keep_held = true;
        net_buffer_free(nb);
    }
}

void net_buffer_stats(NetBuffer *nb, NetBufferStats *st)
{
    g_mutex_lock(&nb->lock);
    *st = nb->st;
    st->latency_mean_us = st->packets_released ?
        (int64_t)(nb->latency_sum_us / st->packets_released) : 0;
    g_mutex_unlock(&nb->lock);
}

char *net_buffer_describe(NetBuffer *nb)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < nb->devs->len; i++) {
        NetdevBuf *d = g_ptr_array_index(nb->devs, i);

        g_string_append_printf(s, "%s%s (%s)", i ? ", " : "", d->name,
                               d->type);
    }
    return g_string_free(s, FALSE);
}
