/*
 * migration.c: the incoming migration session (see migration.h for who
 * owns what).
 *
 *   NONE --start--> SETUP --first byte--> ACTIVE --EOF--> COMPLETED
 *                     |                     |  \
 *                     +--------error--------+   +--ENABLE_COLO--> COLO
 *                                 v
 *                               FAILED
 */
#include "qemu/osdep.h"

#include "migration/migration.h"
#include "migration/wire.h"

struct MigrationIncomingState {
    GMutex lock;
    MigrationNotifier notifier;
    char *ram_dir;
    MigrationOptions opts;          /* main thread; copied into @lv */

    /* Under @lock. */
    MigrationStatus status;
    char *error_desc;
    RAMLoadStats stats;
    uint64_t transferred;
    uint64_t total;
    int64_t start_us;
    int64_t end_us;
    bool started;

    /* Set at start; read by the main thread for socket-address. */
    IncomingChannel *channel;

    /* The migration thread's own. */
    GThread *thread;
    QEMUFile *file;
    RAMList *ram_list;
    LoadVMState lv;
};

static const char *const status_names[] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_COLO] = "colo",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
};

const char *migration_status_name(MigrationStatus s)
{
    return status_names[s];
}

void migration_info_clear(MigrationInfo *info)
{
    g_free(info->error_desc);
    g_free(info->socket_host);
    g_free(info->socket_path);
    memset(info, 0, sizeof(*info));
}

MigrationIncomingState *migration_incoming_new(const char *ram_dir,
                                               const MigrationNotifier *n)
{
    MigrationIncomingState *mis = g_new0(MigrationIncomingState, 1);

    g_mutex_init(&mis->lock);
    mis->ram_dir = g_strdup(ram_dir);
    mis->notifier = *n;
    migration_options_init(&mis->opts);
    return mis;
}

void migration_incoming_free(MigrationIncomingState *mis)
{
    if (!mis) {
        return;
    }
    migration_incoming_cancel(mis);
    migration_channel_free(mis->channel);
    g_free(mis->error_desc);
    g_free(mis->ram_dir);
    g_mutex_clear(&mis->lock);
    g_free(mis);
}

MigrationOptions *migration_incoming_options(MigrationIncomingState *mis)
{
    return &mis->opts;
}

bool migration_incoming_options_mutable(MigrationIncomingState *mis,
                                        GError **errp)
{
    if (mis->started) {
        g_set_error(errp, COLO_ERROR, EBUSY, "There's a migration process in "
                    "progress");
        return false;
    }
    return true;
}

const char *migration_incoming_ram_dir(MigrationIncomingState *mis)
{
    return mis->ram_dir;
}

static void migration_event(MigrationIncomingState *mis, const char *name,
                            GVariant *data)
{
    if (data) {
        g_variant_ref_sink(data);
    }
    if (mis->notifier.event) {
        mis->notifier.event(mis->notifier.opaque, name, data);
    }
    if (data) {
        g_variant_unref(data);
    }
}

static void migration_set_status(MigrationIncomingState *mis,
                                 MigrationStatus s)
{
    GVariantDict d;

    g_mutex_lock(&mis->lock);
    mis->status = s;
    if (s == MIGRATION_STATUS_COMPLETED || s == MIGRATION_STATUS_FAILED ||
        s == MIGRATION_STATUS_CANCELLED) {
        mis->end_us = g_get_monotonic_time();
    }
    g_mutex_unlock(&mis->lock);

    if (mis->opts.caps[MIGRATION_CAPABILITY_EVENTS]) {
        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "status", "s", migration_status_name(s));
        migration_event(mis, "MIGRATION", g_variant_dict_end(&d));
    }
}

MigrationStatus migration_incoming_status(MigrationIncomingState *mis)
{
    MigrationStatus s;

    g_mutex_lock(&mis->lock);
    s = mis->status;
    g_mutex_unlock(&mis->lock);
    return s;
}

const char *migration_incoming_runstate(MigrationIncomingState *mis)
{
    switch (migration_incoming_status(mis)) {
    case MIGRATION_STATUS_COMPLETED:
        /* The state is complete and held; we never execute the guest. */
        return "paused";
    case MIGRATION_STATUS_COLO:
        return "colo";
    case MIGRATION_STATUS_FAILED:
    case MIGRATION_STATUS_CANCELLED:
        return "shutdown";
    default:
        return "inmigrate";
    }
}

/* Called by the loader after every RAM section. */
static void migration_ram_progress(void *opaque)
{
    MigrationIncomingState *mis = opaque;

    g_mutex_lock(&mis->lock);
    mis->stats = mis->lv.ram.stats;
    mis->transferred = qemu_file_tell(mis->file);
    mis->total = ram_list_total(mis->ram_list);
    g_mutex_unlock(&mis->lock);
}

static void migration_fail(MigrationIncomingState *mis, GError *err)
{
    g_mutex_lock(&mis->lock);
    g_free(mis->error_desc);
    mis->error_desc = g_strdup(err->message);
    g_mutex_unlock(&mis->lock);
    migration_set_status(mis, MIGRATION_STATUS_FAILED);
}

/* After a complete load: make the RAM files and device state durable. */
static bool migration_commit_loaded(MigrationIncomingState *mis,
                                    GError **errp)
{
    for (guint i = 0; i < mis->ram_list->blocks->len; i++) {
        ram_block_sync(g_ptr_array_index(mis->ram_list->blocks, i));
    }
    if (mis->lv.devices &&
        !device_state_save(mis->lv.devices, mis->ram_dir, errp)) {
        return false;
    }
    return true;
}

static gpointer migration_incoming_thread(gpointer opaque)
{
    MigrationIncomingState *mis = opaque;
    IncomingChannel *ch = mis->channel;
    GError *err = NULL;
    bool ok;

    if (!migration_channel_accept(ch, &err)) {
        goto fail;
    }
    mis->file = qemu_file_new_input_fd(ch->fd, false);
    mis->ram_list = ram_list_new(mis->ram_dir);
    loadvm_init(&mis->lv, mis->file, mis->ram_list);
    mis->lv.cap_ignore_shared =
        mis->opts.caps[MIGRATION_CAPABILITY_X_IGNORE_SHARED];
    mis->lv.cap_colo = mis->opts.caps[MIGRATION_CAPABILITY_X_COLO];
    mis->lv.return_path_fd = ch->is_socket ? ch->fd : -1;
    mis->lv.hooks.ram_progress = migration_ram_progress;
    mis->lv.hooks.opaque = mis;

    if (!qemu_file_fill(mis->file, 1)) {
        if (!qemu_file_propagate_error(mis->file, &err)) {
            g_set_error(&err, COLO_ERROR, EPIPE, "the stream ended at byte "
                        "offset 0, before the source sent anything");
        }
        goto fail;
    }
    migration_set_status(mis, MIGRATION_STATUS_ACTIVE);

    ok = qemu_loadvm_state(&mis->lv, &err);
    migration_ram_progress(mis);
    if (ok) {
        ok = migration_commit_loaded(mis, &err);
    }
    if (mis->lv.to_src) {
        uint8_t v[4] = { 0, 0, 0, ok ? 0 : 1 };

        loadvm_send_rp(&mis->lv, MIG_RP_MSG_SHUT, v, 4, NULL);
    }
    if (!ok) {
        goto fail;
    }
    migration_set_status(mis, MIGRATION_STATUS_COMPLETED);
    goto out;

fail:
    g_prefix_error(&err, "incoming migration failed: ");
    migration_fail(mis, err);
    g_error_free(err);
out:
    if (mis->notifier.thread_done) {
        mis->notifier.thread_done(mis->notifier.opaque);
    }
    return NULL;
}

bool migration_incoming_start(MigrationIncomingState *mis, const char *uri,
                              GError **errp)
{
    if (mis->started) {
        g_set_error(errp, COLO_ERROR, EBUSY, "The incoming migration has "
                    "already been started");
        return false;
    }
    if (!migration_capabilities_check(mis->opts.caps, errp)) {
        return false;
    }
    mis->channel = migration_channel_open(uri, errp);
    if (!mis->channel) {
        return false;
    }
    mis->started = true;
    mis->start_us = g_get_monotonic_time();
    migration_set_status(mis, MIGRATION_STATUS_SETUP);
    mis->thread = g_thread_new("mig/incoming", migration_incoming_thread,
                               mis);
    return true;
}

void migration_incoming_join(MigrationIncomingState *mis)
{
    if (!mis->thread) {
        return;
    }
    g_thread_join(mis->thread);
    mis->thread = NULL;
    loadvm_cleanup(&mis->lv);
    g_clear_pointer(&mis->file, qemu_fclose);
    g_clear_pointer(&mis->ram_list, ram_list_free);
    if (mis->channel) {
        migration_channel_free(mis->channel);
        mis->channel = NULL;
    }
}

void migration_incoming_cancel(MigrationIncomingState *mis)
{
    if (mis->thread && mis->channel) {
        migration_channel_shutdown(mis->channel);
    }
    migration_incoming_join(mis);
}

void migration_incoming_query(MigrationIncomingState *mis,
                              MigrationInfo *info)
{
    int64_t now = g_get_monotonic_time();
    int64_t end;

    memset(info, 0, sizeof(*info));
    g_mutex_lock(&mis->lock);
    info->status = mis->status;
    info->error_desc = g_strdup(mis->error_desc);
    info->ram = mis->stats;
    info->transferred = mis->transferred;
    info->total = mis->total;
    end = mis->end_us ? mis->end_us : now;
    if (mis->start_us) {
        info->total_time_ms = (end - mis->start_us) / 1000;
        if (end > mis->start_us) {
            double secs = (end - mis->start_us) / 1e6;
            uint64_t pages = mis->stats.normal + mis->stats.duplicate +
                             mis->stats.xbzrle + mis->stats.compressed;

            info->mbps = mis->transferred * 8.0 / 1e6 / secs;
            info->pages_per_second = pages / secs;
        }
    }
    if (mis->channel && mis->channel->kind == CHANNEL_TCP) {
        info->socket_host = g_strdup(mis->channel->host);
        info->socket_port = mis->channel->port;
        info->socket_ipv6 = mis->channel->ipv6;
    } else if (mis->channel && mis->channel->kind == CHANNEL_UNIX) {
        info->socket_path = g_strdup(mis->channel->unix_path);
    }
    g_mutex_unlock(&mis->lock);
}
