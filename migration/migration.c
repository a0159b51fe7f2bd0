/*
 * migration.c: the incoming migration session (see migration.h for who
 * owns what).
 *
 *   NONE --start--> SETUP --first byte--> ACTIVE --EOF--> COMPLETED
 *                     |                     |                  ^
 *                     +--------error--------+                  | failover
 *                                 v         +-EOF, ENABLE_COLO-> COLO
 *                               FAILED
 *
 * In COLO the same thread serves checkpoints (colo.c).  When the stream
 * fails it emits COLO_EXIT (error) and waits, as QEMU does, for
 * x-colo-lost-heartbeat; a heartbeat loss while it is still serving shuts
 * the socket down so the thread notices at once.  Either way the state
 * ends COMPLETED, holding the last committed checkpoint.
 */
#include "qemu/osdep.h"

#include <sys/socket.h>

#include "migration/colo.h"
#include "migration/colo-commit.h"
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
    uint64_t refused;               /* of the channel, once it is gone */
    char *last_refusal;
    RAMLoadStats stats;
    uint64_t transferred;
    uint64_t total;
    int64_t start_us;
    int64_t end_us;
    bool started;

    /* COLO, under @lock. */
    GCond colo_cond;
    bool failover_requested;
    bool cancelled;
    bool colo_exit_sent;
    COLOMode last_mode;
    COLOExitReason reason;
    ColoCheckpointStats last_ckpt;  /* published copy of colo.c's */
    uint64_t cache_reserved;
    bool in_checkpoint;

    /* What the RAM folder held at start (colo-journal.h), under @lock;
     * cleared when a migration starts to change the RAM files. */
    ColoRecovery recovery;

    /* Set at start; read by the main thread for socket-address. */
    IncomingChannel *channel;

    /* The disks replicated with RAM (main()'s), or NULL. */
    BlockDevices *disks;

    /* The migration thread's own. */
    bool state_committed;           /* this stream's state is in the folder */
    GThread *thread;
    QEMUFile *file;
    RAMList *ram_list;
    LoadVMState lv;
};

void migration_info_clear(MigrationInfo *info)
{
    g_free(info->error_desc);
    g_free(info->socket_host);
    g_free(info->socket_path);
    g_free(info->last_refusal);
    memset(info, 0, sizeof(*info));
}

MigrationIncomingState *migration_incoming_new(const char *ram_dir,
                                               const MigrationNotifier *n)
{
    MigrationIncomingState *mis = g_new0(MigrationIncomingState, 1);

    g_mutex_init(&mis->lock);
    g_cond_init(&mis->colo_cond);
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
    g_free(mis->last_refusal);
    g_free(mis->ram_dir);
    colo_recovery_clear(&mis->recovery);
    g_cond_clear(&mis->colo_cond);
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
    /* it may quote the peer: printable and UTF-8 for QMP and the log */
    mis->error_desc = g_utf8_make_valid(err->message, -1);
    for (char *p = mis->error_desc; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    g_mutex_unlock(&mis->lock);
    migration_set_status(mis, MIGRATION_STATUS_FAILED);
}

/* What the RAM folder holds once this stream is loaded (colo-journal.h);
 * COLO checkpoints change its number and devices. */
static ColoRecord *migration_record_new(MigrationIncomingState *mis)
{
    ColoRecord *rec = colo_record_new();

    g_array_unref(rec->blocks);
    rec->blocks = colo_record_blocks_of(mis->ram_list);
    g_strlcpy(rec->machine, mis->lv.machine, sizeof(rec->machine));
    rec->ram_section_id = mis->lv.ram_section_id >= 0 ?
                          (uint32_t)mis->lv.ram_section_id : 0;
    if (mis->lv.devices) {
        rec->devices = g_bytes_ref(mis->lv.devices->blob);
    }
    for (guint i = 0; i < block_devices_count(mis->disks); i++) {
        ColoDisk *d = block_devices_nth(mis->disks, i);

        g_ptr_array_add(rec->disks, colo_record_disk_new(
            colo_disk_node(d), colo_disk_filename(d), colo_disk_size(d)));
    }
    return rec;
}

/* After a complete load: make the RAM files and device state durable, and
 * record them as the folder's committed checkpoint 0. */
static bool migration_commit_loaded(MigrationIncomingState *mis,
                                    GError **errp)
{
    /* a stream without devices makes no checkpoint of the folder */
    g_autoptr(ColoRecord) rec = mis->lv.devices ? migration_record_new(mis)
                                                : NULL;

    if (!colo_commit_initial(mis->ram_list, mis->lv.devices, rec, errp)) {
        return false;
    }
    if (!rec) {
        return true;
    }
    mis->state_committed = true;
    /* Checkpoint 0 holds the disks as they are now: from here on their
     * writes wait for the checkpoint they belong to. */
    if (mis->lv.colo_requested && mis->disks) {
        block_devices_start_caching(mis->disks);
    }
    return true;
}

/* --- COLO ------------------------------------------------------------- */

static bool colo_hook_failover_requested(void *opaque)
{
    return migration_incoming_failover_requested(opaque);
}

static void colo_hook_checkpoint_begin(void *opaque, uint64_t number)
{
    MigrationIncomingState *mis = opaque;

    g_mutex_lock(&mis->lock);
    mis->in_checkpoint = true;
    g_mutex_unlock(&mis->lock);
    migration_event(mis, "STOP", NULL);
}

static bool colo_hook_committed(void *opaque, VMDeviceState *ds,
                                const ColoCheckpointStats *st, GError **errp)
{
    MigrationIncomingState *mis = opaque;

    (void)ds;
    (void)errp;
    g_mutex_lock(&mis->lock);
    mis->last_ckpt = *st;
    mis->in_checkpoint = false;
    mis->stats = mis->lv.ram.stats;
    mis->transferred = qemu_file_tell(mis->file);
    g_mutex_unlock(&mis->lock);
    migration_event(mis, "RESUME", NULL);
    return true;
}

static void colo_emit_exit(MigrationIncomingState *mis, COLOExitReason r)
{
    GVariantDict d;

    g_variant_dict_init(&d, NULL);
    g_variant_dict_insert(&d, "mode", "s", "secondary");
    g_variant_dict_insert(&d, "reason", "s", colo_exit_reason_name(r));
    migration_event(mis, "COLO_EXIT", g_variant_dict_end(&d));
    if (mis->notifier.colo_exit) {
        mis->notifier.colo_exit(mis->notifier.opaque, r);
    }
}

/* Runs the COLO session after the initial migration has been loaded. */
static void migration_colo_session(MigrationIncomingState *mis)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GError) err2 = NULL;
    g_autoptr(ColoRecord) record = migration_record_new(mis);
    ColoIncoming ci = {
        .lv = &mis->lv,
        .ram_list = mis->ram_list,
        .disks = block_devices_count(mis->disks) ? mis->disks : NULL,
        .hooks = {
            .checkpoint_begin = colo_hook_checkpoint_begin,
            .committed = colo_hook_committed,
            .failover_requested = colo_hook_failover_requested,
            .opaque = mis,
        },
    };
    int fd;

    ci.record = record;
    if (!colo_incoming_setup(&ci, &err)) {
        g_prefix_error(&err, "incoming migration failed: ");
        migration_fail(mis, err);
        return;
    }
    g_mutex_lock(&mis->lock);
    mis->cache_reserved = colo_incoming_cache_reserved(&ci);
    g_mutex_unlock(&mis->lock);
    migration_set_status(mis, MIGRATION_STATUS_COLO);

    fd = dup(mis->channel->fd);
    if (fd < 0) {
        g_set_error(&err, COLO_ERROR, errno, "COLO: %s", g_strerror(errno));
        colo_incoming_cleanup(&ci);
    } else {
        ci.to_primary = qemu_file_new_output_fd(fd, true);
        qemu_file_set_quickack(mis->lv.f, true);
        colo_incoming_run(&ci, &err);
        qemu_fclose(ci.to_primary);
    }
    /* (the loop ends only with an error) */
    for (guint i = 0; mis->disks && i < block_devices_count(mis->disks);
         i++) {
        g_autofree char *why =
            colo_disk_refusal(block_devices_nth(mis->disks, i));

        if (why) {
            /* the primary ended it, because of this */
            char *m = g_strdup_printf("%s; before that this standby "
                                      "refused a write of the primary's "
                                      "disk: %s", err->message, why);

            g_free(err->message);
            err->message = m;
        }
    }
    /* the primary learns why now, not when its writes stall (after a
     * failover the connection is down already) */
    migration_channel_report(mis->channel, err);
    /* device-state.bin: a copy of the record's, for people and tools
     * (the record itself is written with every checkpoint). */
    if (!colo_record_export_devices(mis->ram_dir, record, &err2)) {
        fprintf(stderr, "colo-secondary: %s\n", err2->message);
    }

    g_mutex_lock(&mis->lock);
    mis->in_checkpoint = false;
    mis->cache_reserved = 0;
    if (!mis->failover_requested) {
        /* The stream failed: tell, keep the committed state, and wait for
         * the operator's (or the heartbeat's) decision, as QEMU does. */
        g_free(mis->error_desc);
        mis->error_desc = g_strdup_printf("COLO stopped (waiting for "
                                          "x-colo-lost-heartbeat): %s",
                                          err->message);
        g_mutex_unlock(&mis->lock);
        mis->colo_exit_sent = true;
        colo_emit_exit(mis, COLO_EXIT_REASON_ERROR);
        g_mutex_lock(&mis->lock);
        while (!mis->failover_requested && !mis->cancelled) {
            g_cond_wait(&mis->colo_cond, &mis->lock);
        }
    }
    if (mis->failover_requested) {
        mis->last_mode = COLO_MODE_SECONDARY;
        mis->reason = COLO_EXIT_REASON_REQUEST;
    }
    g_mutex_unlock(&mis->lock);
    if (!mis->colo_exit_sent) {
        mis->colo_exit_sent = true;
        colo_emit_exit(mis, COLO_EXIT_REASON_REQUEST);
    }
    migration_set_status(mis, mis->cancelled ? MIGRATION_STATUS_CANCELLED
                                             : MIGRATION_STATUS_COMPLETED);
}

bool migration_incoming_recover(MigrationIncomingState *mis, GError **errp)
{
    ColoRecovery r;

    if (!colo_journal_recover(mis->ram_dir, &r, errp)) {
        return false;
    }
    g_mutex_lock(&mis->lock);
    colo_recovery_clear(&mis->recovery);
    mis->recovery = r;
    if (r.record) {
        mis->last_ckpt.number = r.record->number;
    }
    g_mutex_unlock(&mis->lock);
    return true;
}

void migration_incoming_set_disks(MigrationIncomingState *mis,
                                  BlockDevices *disks)
{
    mis->disks = disks;
}

void migration_incoming_disk_written(MigrationIncomingState *mis)
{
    g_mutex_lock(&mis->lock);
    /* (a migration that has started but not yet sent a byte still has
     * the record: the mirror's first copy comes before the stream) */
    if (mis->recovery.record) {
        /* The images no longer are what the folder's record says. */
        fprintf(stderr, "colo-secondary: a disk was written before any "
                "migration: the checkpoint %" PRIu64 " the RAM folder held "
                "is dropped\n", mis->recovery.record->number);
        colo_journal_invalidate(mis->ram_dir);
        colo_recovery_clear(&mis->recovery);
    }
    g_mutex_unlock(&mis->lock);
}

const ColoRecovery *migration_incoming_recovery(MigrationIncomingState *mis)
{
    return &mis->recovery;
}

bool migration_incoming_colo_failover(MigrationIncomingState *mis,
                                      GError **errp)
{
    g_mutex_lock(&mis->lock);
    if (mis->recovery.record && !mis->failover_requested) {
        /* A folder left by an earlier colo-secondary, not yet touched by a
         * stream (the record goes with a stream's first byte): resume
         * from it, also while an incoming migration waits for a primary
         * (a restarted service listens at once). */
        bool waiting = mis->started;

        mis->failover_requested = true;
        mis->last_mode = COLO_MODE_SECONDARY;
        mis->reason = COLO_EXIT_REASON_REQUEST;
        g_mutex_unlock(&mis->lock);
        if (waiting) {
            /* the thread stops waiting, and its end starts the failover;
             * a stream that begins meanwhile is refused (it looks under
             * the lock) */
            migration_channel_shutdown(mis->channel);
        } else if (mis->notifier.thread_done) {
            mis->notifier.thread_done(mis->notifier.opaque);
        }
        return true;
    }
    if (mis->status != MIGRATION_STATUS_COLO) {
        g_mutex_unlock(&mis->lock);
        g_set_error(errp, COLO_ERROR, EINVAL, "VM is not in COLO mode");
        return false;
    }
    if (mis->failover_requested) {
        g_mutex_unlock(&mis->lock);
        g_set_error(errp, COLO_ERROR, EALREADY, "COLO failover is already "
                    "activated");
        return false;
    }
    mis->failover_requested = true;
    g_cond_broadcast(&mis->colo_cond);
    g_mutex_unlock(&mis->lock);
    /* Wake the thread if it is blocked on the primary. */
    if (mis->channel) {
        migration_channel_shutdown(mis->channel);
    }
    return true;
}

void migration_incoming_colo_status(MigrationIncomingState *mis,
                                    ColoStatusInfo *info)
{
    memset(info, 0, sizeof(*info));
    g_mutex_lock(&mis->lock);
    info->mode = mis->status == MIGRATION_STATUS_COLO ? COLO_MODE_SECONDARY
                                                      : COLO_MODE_NONE;
    info->last_mode = mis->last_mode;
    info->reason = mis->reason;
    info->checkpoints = mis->last_ckpt.number;
    info->last_commit_us = mis->last_ckpt.commit_us;
    info->last_total_us = mis->last_ckpt.total_us;
    info->last_ram_pages = mis->last_ckpt.ram_pages;
    info->last_device_bytes = mis->last_ckpt.device_bytes;
    info->cache_reserved = mis->cache_reserved;
    info->in_checkpoint = mis->in_checkpoint;
    info->last_flushed_pages = mis->last_ckpt.flushed_pages;
    info->last_journal_us = mis->last_ckpt.journal_us;
    info->last_flush_us = mis->last_ckpt.flush_us;
    info->last_disk_pages = mis->last_ckpt.disk_pages;
    info->last_disk_us = mis->last_ckpt.disk_us;
    info->recovered = mis->recovery.record != NULL;
    if (info->recovered) {
        info->recovered_checkpoint = mis->recovery.record->number;
        info->recovered_replayed = mis->recovery.replayed;
        info->recovered_pages = mis->recovery.replayed_pages;
    }
    g_mutex_unlock(&mis->lock);
}

bool migration_incoming_failover_requested(MigrationIncomingState *mis)
{
    bool r;

    g_mutex_lock(&mis->lock);
    r = mis->failover_requested;
    g_mutex_unlock(&mis->lock);
    return r;
}

/* --- the thread --------------------------------------------------------- */

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
    if (ch->is_socket) {
        /* tests shorten the window (a minute is long for a test) */
        const char *w = g_getenv("COLO_TEST_PROGRESS_WINDOW_S");

        qemu_file_set_progress_floor(mis->file, MIG_PROGRESS_FLOOR_BYTES,
                                     (w ? MAX(1, atoi(w))
                                        : MIG_PROGRESS_WINDOW_S) * 1000);
    }
    mis->ram_list = ram_list_new(mis->ram_dir);
    loadvm_init(&mis->lv, mis->file, mis->ram_list);
    mis->lv.cap_ignore_shared =
        mis->opts.caps[MIGRATION_CAPABILITY_X_IGNORE_SHARED];
    mis->lv.cap_colo = mis->opts.caps[MIGRATION_CAPABILITY_X_COLO];
    mis->lv.return_path_fd = ch->is_socket ? ch->fd : -1;
    mis->lv.hooks.ram_progress = migration_ram_progress;
    mis->lv.hooks.opaque = mis;

    if (!qemu_file_fill(mis->file, 1)) {
        if (qemu_file_propagate_error(mis->file, &err)) {
            g_set_error(&err, COLO_ERROR, EPIPE, "the stream ended at byte "
                        "offset 0, before the source sent anything");
        }
        goto fail;
    }
    /* From here on the RAM files change: a checkpoint recorded in the
     * folder by an earlier run no longer describes them, unless a
     * failover from it was asked for first. */
    g_mutex_lock(&mis->lock);
    if (mis->failover_requested) {
        g_mutex_unlock(&mis->lock);
        g_set_error(&err, COLO_ERROR, ECANCELED, "refused: the VM fails "
                    "over from the checkpoint the RAM folder held");
        goto fail;
    }
    colo_recovery_clear(&mis->recovery);
    g_mutex_unlock(&mis->lock);
    colo_journal_invalidate(mis->ram_dir);
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
    if (ok && mis->lv.colo_requested) {
        if (!ch->is_socket) {
            g_set_error(&err, COLO_ERROR, EINVAL, "COLO needs a socket "
                        "transport (tcp: or unix:), not %s", ch->uri);
            goto fail;
        }
        migration_colo_session(mis);
        goto out;
    }
    if (!ok) {
        goto fail;
    }
    migration_set_status(mis, MIGRATION_STATUS_COMPLETED);
    goto out;

fail:
    g_prefix_error(&err, "incoming migration failed: ");
    migration_channel_report(ch, err);
    if (mis->ram_list && !mis->state_committed) {
        /* nothing of it became state: the files it made go (on tmpfs
         * they are memory) */
        ram_list_remove_created(mis->ram_list);
    }
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
    if (mis->opts.strs[MIGRATION_PARAMETER_TLS_CREDS][0] &&
        !migration_channel_set_tls(
            mis->channel, mis->opts.strs[MIGRATION_PARAMETER_TLS_CREDS],
            mis->opts.strs[MIGRATION_PARAMETER_TLS_AUTHZ], errp)) {
        migration_channel_free(mis->channel);
        mis->channel = NULL;
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
    qemu_fclose(mis->file);
    mis->file = NULL;
    ram_list_free(mis->ram_list);
    mis->ram_list = NULL;
    if (mis->channel) {
        g_mutex_lock(&mis->lock);
        g_free(mis->last_refusal);
        migration_channel_refusals(mis->channel, &mis->refused,
                                   &mis->last_refusal);
        g_mutex_unlock(&mis->lock);
        migration_channel_free(mis->channel);
        mis->channel = NULL;
    }
}

void migration_incoming_cancel(MigrationIncomingState *mis)
{
    g_mutex_lock(&mis->lock);
    mis->cancelled = true;
    g_cond_broadcast(&mis->colo_cond);
    g_mutex_unlock(&mis->lock);
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
    if (mis->channel) {
        migration_channel_refusals(mis->channel, &info->refused,
                                   &info->last_refusal);
    } else {
        info->refused = mis->refused;
        info->last_refusal = g_strdup(mis->last_refusal);
    }
    g_mutex_unlock(&mis->lock);
}
