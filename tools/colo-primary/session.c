/*
 * session.c: one COLO session of colo-primary: the initial
 * synchronisation, then checkpoints every x-checkpoint-delay ms until the
 * session is stopped or something fails.
 *
 *   initial sync   stop, capture, cont       (a few ms: the machine type,
 *                                             section ids, the ROMs)
 *                  all of main RAM, live      (each page copied, then
 *                                             digested and sent: what
 *                                             the digest describes is
 *                                             exactly what went out)
 *                  stop, scan + capture, cont (pages changed meanwhile)
 *                  the rest of the stream     -> CHECKPOINT_READY
 *   checkpoint     stop, REQUEST, scan + capture, REPLY, cont; then
 *                  build and send it: VMSTATE_SEND ... LOADED
 *
 * With disks (--disk, disk-mirror.c) they are mirrored to the secondary
 * before the initial synchronisation, and the VM stays stopped from its
 * last pause until CHECKPOINT_READY: the secondary starts caching disk
 * writes when it commits checkpoint 0, and no write may come before.
 * CHECKPOINT_REQUEST goes out while the VM is stopped and the VM only
 * runs on once CHECKPOINT_REPLY is back: the secondary seals the disk
 * writes of the checkpoint on REQUEST, so every write before the stop is
 * in it (QEMU's stop drains the mirror's writes too) and none after.
 *
 * During a pause the dirty scan runs in worker threads while this thread
 * waits for QEMU's device-state migration; the changed pages are copied
 * into the scan's staging area, so the stream is built after cont.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "crypto/tls-creds.h"
#include "migration/colo-send.h"
#include "migration/page-cache.h"
#include "migration/ram-save.h"
#include "migration/savevm-put.h"
#include "tools/colo-primary/device-capture.h"
#include "tools/colo-primary/disk-mirror.h"
#include "tools/colo-primary/primary-error.h"
#include "tools/colo-primary/session.h"

#define CAPTURE_TIMEOUT_MS 10000
/* The initial copy of a disk (an hour: a large disk on a slow link). */
#define DISK_SYNC_TIMEOUT_MS (3600 * 1000)

struct Session {
    SessionConfig cfg;          /* its strings: ours below, or lent */
    char *uri;                  /* the secondary, and how to reach it */
    char *tls_creds, *tls_hostname;
    TlsParams tls;
    GThread *thread;

    /* The session thread's own. */
    ColoPeer *peer;             /* written under @lock (session_stop) */
    RAMSaveState rs;
    PageCache *xbzrle;          /* NULL without the xbzrle capability */
    NetBuffer *net;             /* NULL with --no-net-buffer */
    DiskMirror *disks;          /* NULL without --disk */
    int64_t stopped_at;         /* the VM was left stopped at (initial
                                   sync with disks) */
    DeviceCapture *model;       /* the first capture: blocks as sent */
    VmdescMemo *vmdesc;         /* the captures' VMDESCRIPTION, parsed */
    RAMBlock *main_rb;          /* in @model */
    uint32_t section_id;
    bool switchover;
    int capture_no;

    /* What other threads ask, tell or read: under @lock. */
    GMutex lock;
    GCond wake;                 /* checkpoint_now, stop_requested, params */
    SessionParams params;
    bool checkpoint_now;
    bool stop_requested;
    uint64_t output_epoch;      /* the epoch whose output is held ... */
    int64_t output_at;          /* ... since (monotonic us); 0: none */
    uint64_t ack_epoch;         /* the same for pure TCP acks */
    int64_t ack_at;
    MigrationStatus stop_as;    /* COMPLETED (failover, quit) or CANCELLED */
    MigrationStatus status;
    COLOMode mode, last_mode;
    COLOExitReason exit_reason;
    char *error_desc;
    int64_t start_us, end_us;
    int64_t colo_start_us;      /* when the first checkpoint began */
    CheckpointFigures last;
    uint64_t checkpoints;
    uint64_t total_bytes;
    uint64_t xbzrle_pages;
    uint64_t by_trigger[CHECKPOINT_TRIGGER__MAX];
    CheckpointFigures sums;     /* of the checkpoints after the first */
    GArray *pauses_us;          /* int64_t, a ring of the last
                                   SESSION_PAUSE_WINDOW */
    uint64_t pauses;            /* all of them */
    bool net_buffered;
    char *net_netdevs;          /* which netdevs, for the queries */
    NetBufferStats net_stats;   /* as of the last checkpoint */
    char *tracking_why;         /* what was refused, or NULL */
    const char *tracking;       /* the scan's method, as of the last pause */
    char *tracking_fallback;    /* why the tracker was given up, or NULL */
    int exit_status;
};

const char *checkpoint_trigger_name(CheckpointTrigger t)
{
    static const char *const names[CHECKPOINT_TRIGGER__MAX] = {
        [CHECKPOINT_TRIGGER_TIMER] = "timer",
        [CHECKPOINT_TRIGGER_OUTPUT] = "output",
        [CHECKPOINT_TRIGGER_REQUEST] = "request",
    };

    return names[t];
}

/* Reports to whoever started the session, through its notifier. */
static void session_emit(Session *s, const char *name, GVariant *data)
{
    s->cfg.notify.event(s->cfg.notify.opaque, name, data);
}

static void set_status(Session *s, MigrationStatus st)
{
    g_mutex_lock(&s->lock);
    s->status = st;
    g_mutex_unlock(&s->lock);
    if (s->cfg.events) {
        GVariantDict d;

        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "status", "s", migration_status_name(st));
        session_emit(s, "MIGRATION", g_variant_dict_end(&d));
    }
}

static bool stop_requested(Session *s)
{
    bool r;

    g_mutex_lock(&s->lock);
    r = s->stop_requested;
    g_mutex_unlock(&s->lock);
    return r;
}

/* One pause: stop, scan and capture at once, cont.  With @request the
 * checkpoint's CHECKPOINT_REQUEST goes out at the stop and its REPLY is
 * awaited before cont; with @stay_stopped there is no cont.  Returns the
 * capture, parsed; the changed pages are in the scan. */
static DeviceCapture *session_pause(Session *s, CheckpointFigures *fig,
                                    bool request, bool stay_stopped,
                                    GError **errp)
{
    int64_t t0 = 0, t1, t2, t3;
    g_autoptr(GBytes) bytes = NULL;
    g_autofree char *dir = NULL;
    DeviceCapture *dc;

    /* The next epoch's output buffer goes in first, while the VM still
     * runs (adding one is a QMP round trip of ~2.4 ms under TCG, which
     * would be pause): what the guest sends from now on is held until
     * checkpoint @fig->number + 1 commits.  The few packets sent between
     * here and the stop belong to this checkpoint's epoch but wait for the
     * next one: later than they might, never earlier. */
    if (s->net && !net_buffer_begin_epoch(s->net, fig->number + 1, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return NULL;
    }
    if (!vm_control_stop(s->cfg.vm, &t0, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return NULL;
    }
    t1 = g_get_monotonic_time();
    if (request &&
        !colo_peer_send_message(s->peer, COLO_MESSAGE_CHECKPOINT_REQUEST,
                                errp)) {
        /* session_finish continues the VM */
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return NULL;
    }
    /* The scan first: its workers run during the QMP round trip below. */
    dirty_scan_start(s->cfg.scan);
    bytes = vm_control_capture(s->cfg.vm, CAPTURE_TIMEOUT_MS, errp);
    t2 = g_get_monotonic_time();
    dirty_scan_finish(s->cfg.scan);
    t3 = g_get_monotonic_time();
    if (bytes && s->disks && !disk_mirror_check(s->disks, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return NULL;
    }
    if (bytes && s->cfg.checker.stopped) {
        /* tests: an oracle's record of this moment, left out of the
         * pause figures */
        if (!s->cfg.checker.stopped(s->cfg.checker.opaque, s->disks,
                                    errp)) {
            return NULL;
        }
        fig->verify_us = g_get_monotonic_time() - t3;
        t0 += fig->verify_us;
    }
    if (!bytes) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return NULL;
    }
    /* the secondary has sealed the checkpoint's disk writes */
    if (request &&
        !colo_peer_expect(s->peer, COLO_MESSAGE_CHECKPOINT_REPLY, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return NULL;
    }
    if (stay_stopped) {
        s->stopped_at = t0;
    } else if (!vm_control_cont(s->cfg.vm, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return NULL;
    }
    fig->pause_us = g_get_monotonic_time() - t0;
    fig->stop_us = t1 - t0;
    fig->capture_us = t2 - t1;
    fig->scan_wait_us = t3 - t2;
    fig->scanned_pages = dirty_scan_candidates(s->cfg.scan);
    fig->cont_us = fig->pause_us - (t3 - t0);
    dir = g_strdup_printf("%s/capture%d", s->cfg.work, s->capture_no++ % 2);
    dc = device_capture_parse(bytes, dir, s->cfg.ram_block, s->cfg.ram_size,
                              s->vmdesc, errp);
    if (!dc) {
        g_autofree char *qemu_says = vm_control_capture_failure(s->cfg.vm);

        if (qemu_says) {
            g_prefix_error(errp, "%s; ", qemu_says);
        }
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
    }
    return dc;
}

static void put_dirty_page(void *opaque, uint64_t page_no, const uint8_t *data)
{
    Session *s = opaque;
    uint64_t off = page_no << TARGET_PAGE_BITS;
    const uint8_t *old = s->xbzrle ? page_cache_lookup(s->xbzrle, page_no) :
                         NULL;

    ram_save_any(&s->rs, s->main_rb, off, old, data);
    if (s->xbzrle) {
        page_cache_insert(s->xbzrle, page_no, data);
    }
}

/* Pages of the non-shared blocks (ROMs) in @dc that differ from what the
 * secondary has (all of them if @all); the model follows. */
static void put_rom_pages(Session *s, DeviceCapture *dc, bool all)
{
    for (guint i = 0; i < s->model->rl->blocks->len; i++) {
        RAMBlock *mine = g_ptr_array_index(s->model->rl->blocks, i);
        RAMBlock *now = ram_list_find(dc->rl, mine->idstr);

        if (mine->ignored || !now || now->used_length != mine->used_length) {
            continue;
        }
        for (uint64_t off = 0; off < mine->used_length;
             off += TARGET_PAGE_SIZE) {
            if (all || memcmp(mine->host + off, now->host + off,
                              TARGET_PAGE_SIZE) != 0) {
                memcpy(mine->host + off, now->host + off, TARGET_PAGE_SIZE);
                ram_save_any(&s->rs, mine, off, NULL, mine->host + off);
            }
        }
    }
}

/* Tests: the secondary's copy against the oracle's record. */
static bool session_check(Session *s, const char *what, GError **errp)
{
    return !s->cfg.checker.committed ||
           s->cfg.checker.committed(s->cfg.checker.opaque, s->disks, what,
                                    errp);
}

static void record_net_stats(Session *s)
{
    NetBufferStats net;

    if (s->net) {
        net_buffer_stats(s->net, &net);
        g_mutex_lock(&s->lock);
        s->net_stats = net;
        g_mutex_unlock(&s->lock);
    }
}

static void record_figures(Session *s, const CheckpointFigures *fig)
{
    const char *fallback = dirty_scan_fallback_reason(s->cfg.scan);
    bool gave_up;

    record_net_stats(s);
    g_mutex_lock(&s->lock);
    gave_up = fallback && !s->tracking_fallback;
    if (gave_up) {
        s->tracking_fallback = g_strdup(fallback);
    }
    s->tracking = dirty_scan_method(s->cfg.scan);
    s->last = *fig;
    if (fig->number > 0) {
        s->checkpoints = fig->number;
        s->by_trigger[fig->trigger]++;
        s->sums.output_wait_us += fig->output_wait_us;
        s->sums.pause_us += fig->pause_us;
        s->sums.send_us += fig->send_us;
        s->sums.received_us += fig->received_us;
        s->sums.commit_us += fig->commit_us;
        s->sums.release_us += fig->release_us;
        if (s->pauses_us->len < SESSION_PAUSE_WINDOW) {
            g_array_append_val(s->pauses_us, fig->pause_us);
        } else {
            g_array_index(s->pauses_us, int64_t,
                          s->pauses % SESSION_PAUSE_WINDOW) = fig->pause_us;
        }
        s->pauses++;
    }
    s->total_bytes += fig->wire_bytes;
    s->xbzrle_pages += fig->xbzrle_pages;
    g_mutex_unlock(&s->lock);
    if (gave_up) {
        /* said even with -q: protection got more expensive */
        fprintf(stderr, "colo-primary: dirty tracking: digests of every page "
                "from checkpoint %" PRIu64 " on (%s)\n", fig->number,
                fallback);
    }
    if (s->cfg.events && fig->number > 0) {
        GVariantDict d;

        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "checkpoint", "t", fig->number);
        g_variant_dict_insert(&d, "pause-us", "x", fig->pause_us);
        g_variant_dict_insert(&d, "dirty-pages", "t", fig->dirty_pages);
        g_variant_dict_insert(&d, "wire-bytes", "t", fig->wire_bytes);
        g_variant_dict_insert(&d, "total-us", "x", fig->total_us);
        g_variant_dict_insert(&d, "trigger", "s",
                              checkpoint_trigger_name(fig->trigger));
        g_variant_dict_insert(&d, "start-at-us", "x", fig->start_at);
        g_variant_dict_insert(&d, "released-at-us", "x", fig->released_at);
        g_variant_dict_insert(&d, "output-wait-us", "x",
                              fig->output_wait_us);
        g_variant_dict_insert(&d, "send-us", "x", fig->send_us);
        g_variant_dict_insert(&d, "received-us", "x", fig->received_us);
        g_variant_dict_insert(&d, "commit-us", "x", fig->commit_us);
        g_variant_dict_insert(&d, "release-us", "x", fig->release_us);
        session_emit(s, "X_COLO_CHECKPOINT", g_variant_dict_end(&d));
    }
    if (!s->cfg.quiet) {
        g_autofree char *verified = s->cfg.checker.stopped ? g_strdup_printf(
            ", secondary verified (RAM sum %.1f ms, not in the pause)",
            fig->verify_us / 1000.0) : g_strdup("");

        if (fig->number == 0) {
            printf("initial sync: %" PRIu64 " bytes, final pause %.2f ms, "
                   "%" PRIu64 " pages changed meanwhile%s; COLO running\n",
                   fig->wire_bytes, fig->pause_us / 1000.0, fig->dirty_pages,
                   verified);
        } else {
            /* the times are CLOCK_MONOTONIC's: a test on this machine
             * compares them with its own */
            printf("checkpoint %" PRIu64 ": pause %.2f ms (stop %.1f, "
                   "devices %.1f, scan +%.1f, cont %.1f), %" PRIu64
                   " dirty pages (%.2f MiB), %" PRIu64 " xbzrle, %" PRIu64
                   " bytes%s; by %s, started %.6f, loaded %.6f, released "
                   "%.6f\n",
                   fig->number, fig->pause_us / 1000.0, fig->stop_us / 1000.0,
                   fig->capture_us / 1000.0, fig->scan_wait_us / 1000.0,
                   fig->cont_us / 1000.0, fig->dirty_pages,
                   fig->dirty_pages / 256.0, fig->xbzrle_pages,
                   fig->wire_bytes, verified,
                   checkpoint_trigger_name(fig->trigger), fig->start_at / 1e6,
                   fig->loaded_at / 1e6, fig->released_at / 1e6);
        }
        fflush(stdout);
    }
}

/* A write tracker or digests (dirty-tracking.h), said once per session. */
static bool session_choose_tracking(Session *s, GError **errp)
{
    g_autofree char *why = NULL;

    if (!dirty_tracking_choose(s->cfg.scan, vm_control_qmp(s->cfg.vm),
                               s->cfg.ram_file, s->cfg.ram_size,
                               s->cfg.tracking_mode, s->cfg.qemu_pid, &why,
                               errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return false;
    }
    g_mutex_lock(&s->lock);
    g_free(s->tracking_why);
    s->tracking_why = g_steal_pointer(&why);
    s->tracking = dirty_scan_method(s->cfg.scan);
    g_clear_pointer(&s->tracking_fallback, g_free);
    g_mutex_unlock(&s->lock);
    if (!s->cfg.quiet) {
        printf("dirty tracking: %s%s%s%s\n", dirty_scan_method(s->cfg.scan),
               s->tracking_why ? " (" : "",
               s->tracking_why ? s->tracking_why : "",
               s->tracking_why ? ")" : "");
        fflush(stdout);
    }
    return true;
}

/* Connects to the secondary right before the stream head goes out. */
static bool session_connect(Session *s, GError **errp)
{
    ColoPeer *peer = colo_peer_connect(s->uri, &s->tls, errp);

    if (!peer) {
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return false;
    }
    colo_peer_set_stall_limit(peer, s->cfg.link_stall_limit_ms);
    g_mutex_lock(&s->lock);
    s->peer = peer;
    g_mutex_unlock(&s->lock);
    set_status(s, MIGRATION_STATUS_ACTIVE);
    return true;
}

static bool session_initial_sync(Session *s, GError **errp)
{
    g_autoptr(QEMUFile) f = NULL;
    g_autoptr(GBytes) first = NULL;
    CheckpointFigures fig = { 0 };
    DeviceCapture *dc;
    uint8_t page[TARGET_PAGE_SIZE] __attribute__((aligned(64)));
    g_autofree char *model_dir = g_build_filename(s->cfg.work, "model", NULL);
    int64_t t0;
    const char *json;

    /* 1. A short pause for what the stream head needs. */
    if (!vm_control_stop(s->cfg.vm, &t0, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return false;
    }
    first = vm_control_capture(s->cfg.vm, CAPTURE_TIMEOUT_MS, errp);
    if (!vm_control_cont(s->cfg.vm, first ? errp : NULL) || !first) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return false;
    }
    s->model = device_capture_parse(first, model_dir, s->cfg.ram_block,
                                    s->cfg.ram_size, s->vmdesc, errp);
    if (!s->model) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return false;
    }
    s->main_rb = ram_list_find(s->model->rl, s->cfg.ram_block);
    s->section_id = s->model->lv.ram_section_id;
    s->switchover = colo_machine_sends_switchover(s->model->lv.machine);

    /* 2. All of main RAM while the VM runs; from here on the tracker
     * (where used) marks what QEMU writes. */
    if (!session_choose_tracking(s, errp) || !session_connect(s, errp)) {
        return false;
    }
    t0 = g_get_monotonic_time();
    f = qemu_file_new_output_fd(dup(s->peer->fd), true);
    s->rs.f = f;
    colo_put_stream_head(f, s->model->lv.machine);
    ram_save_section_start(&s->rs, s->section_id, s->model->rl, false);
    qemu_savevm_put_section_header(f, QEMU_VM_SECTION_PART, s->section_id);
    for (uint64_t n = 0; n < s->cfg.ram_size >> TARGET_PAGE_BITS; n++) {
        memcpy(page, s->cfg.ram + (n << TARGET_PAGE_BITS), sizeof(page));
        dirty_scan_set_digest(s->cfg.scan, n,
                              dirty_scan_page_digest(s->cfg.scan, page));
        ram_save_any(&s->rs, s->main_rb, n << TARGET_PAGE_BITS, NULL, page);
        if ((n & 4095) == 0 && (qemu_file_get_error(f) || stop_requested(s))) {
            break;
        }
    }
    ram_save_section_end(&s->rs, s->section_id);
    if (qemu_fflush(f) < 0 || !qemu_file_propagate_error(f, errp)) {
        g_prefix_error(errp, "the secondary %s: ", s->peer->uri);
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return false;
    }
    if (stop_requested(s)) {
        g_set_error(errp, PRIMARY_ERROR, PRIMARY_ERROR_SECONDARY, "stopped "
                    "during the initial synchronisation");
        return false;
    }

    /* 3. The pages changed meanwhile, with the VM stopped. */
    dc = session_pause(s, &fig, false, s->disks != NULL, errp);
    if (!dc) {
        return false;
    }
    if (s->switchover) {
        qemu_savevm_put_command(f, MIG_CMD_SWITCHOVER_START);
    }
    qemu_savevm_put_section_header(f, QEMU_VM_SECTION_END, s->section_id);
    dirty_scan_foreach(s->cfg.scan, put_dirty_page, s);
    put_rom_pages(s, dc, true);
    ram_save_section_end(&s->rs, s->section_id);
    qemu_put_buffer(f, g_bytes_get_data(dc->lv.devices->blob, NULL),
                    g_bytes_get_size(dc->lv.devices->blob));
    json = dc->lv.devices->vmdesc_json;
    if (json) {
        qemu_savevm_put_vmdescription(f, json);
    }
    fig.device_bytes = g_bytes_get_size(dc->lv.devices->blob);
    device_capture_free(dc);
    fig.dirty_pages = dirty_scan_count(s->cfg.scan);
    if (qemu_fflush(f) < 0 || !qemu_file_propagate_error(f, errp) ||
        !colo_peer_expect(s->peer, COLO_MESSAGE_CHECKPOINT_READY, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return false;
    }
    if (s->disks) {
        /* checkpoint 0 holds the disks: their writes may go on now */
        if (!vm_control_cont(s->cfg.vm, errp)) {
            primary_error_tag(errp, PRIMARY_ERROR_QEMU);
            return false;
        }
        fig.pause_us = g_get_monotonic_time() - s->stopped_at;
    }
    fig.wire_bytes = qemu_file_tell(f);
    fig.total_us = g_get_monotonic_time() - t0;
    s->rs.f = NULL;
    if (!session_check(s, "initial sync", errp)) {
        return false;
    }
    record_figures(s, &fig);
    return true;
}

static bool session_checkpoint(Session *s, uint64_t number,
                               CheckpointTrigger trigger, int64_t output_at,
                               GError **errp)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    g_autoptr(GBytes) live = NULL;
    CheckpointFigures fig = { .number = number, .trigger = trigger };
    int64_t t0 = g_get_monotonic_time();
    int64_t cont_at;
    ColoSendTimes sent;
    uint64_t xbzrle_before = s->rs.xbzrle_pages;
    DeviceCapture *dc = session_pause(s, &fig, true, false, errp);
    g_autofree char *what = NULL;
    bool ok;

    if (!dc) {
        return false;
    }
    fig.start_at = t0;
    fig.output_wait_us = output_at ? t0 - output_at : 0;
    cont_at = t0 + fig.pause_us + fig.verify_us;
    s->rs.f = f;
    colo_put_checkpoint_head(f, s->section_id, s->switchover);
    dirty_scan_foreach(s->cfg.scan, put_dirty_page, s);
    put_rom_pages(s, dc, false);
    colo_put_checkpoint_tail(&s->rs, s->section_id);
    s->rs.f = NULL;
    live = qemu_file_steal_output(f);
    fig.dirty_pages = dirty_scan_count(s->cfg.scan);
    fig.xbzrle_pages = s->rs.xbzrle_pages - xbzrle_before;
    fig.device_bytes = g_bytes_get_size(dc->lv.devices->blob);
    fig.wire_bytes = g_bytes_get_size(live) + 12 + fig.device_bytes;
    ok = colo_peer_send_checkpoint(s->peer, live, dc->lv.devices->blob,
                                   &sent, errp);
    device_capture_free(dc);
    if (!ok) {
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return false;
    }
    /* committed: what the guest sent before this checkpoint may go */
    if (s->net && !net_buffer_release(s->net, number, errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return false;
    }
    fig.released_at = g_get_monotonic_time();
    fig.loaded_at = sent.loaded_us;
    fig.total_us = sent.loaded_us - t0;
    fig.send_us = sent.sent_us - cont_at;
    fig.received_us = sent.received_us - sent.sent_us;
    fig.commit_us = sent.loaded_us - sent.received_us;
    fig.release_us = fig.released_at - sent.loaded_us;
    what = g_strdup_printf("checkpoint %" PRIu64, number);
    if (!session_check(s, what, errp)) {
        return false;
    }
    record_figures(s, &fig);
    return true;
}

/* Waits until checkpoint @next is due: x-checkpoint-delay after the
 * last one ended (@ended_at), or, with the output trigger, once the
 * guest has output held for epoch @next: x-checkpoint-coalesce after its
 * first packet and no sooner than x-checkpoint-min-gap after the last
 * checkpoint began (@started_at).  Says what started it and since when
 * output was held (0: none); false if the session must end. */
static bool session_wait(Session *s, uint64_t next, int64_t ended_at,
                         int64_t started_at, CheckpointTrigger *trigger,
                         int64_t *output_at)
{
    bool go_on;

    g_mutex_lock(&s->lock);
    for (;;) {
        int64_t due = ended_at + s->params.checkpoint_delay_ms * 1000;
        bool held = s->output_epoch == next && s->output_at;
        bool acks = s->ack_epoch == next && s->ack_at;

        *trigger = CHECKPOINT_TRIGGER_TIMER;
        if (s->stop_requested) {
            break;
        }
        if (s->checkpoint_now) {
            *trigger = CHECKPOINT_TRIGGER_REQUEST;
            break;
        }
        if ((held || acks) && s->params.output_trigger) {
            /* output a client waits for after the coalescing window; a
             * pure ack alone after its own delay: a reply it precedes
             * rides the same checkpoint, an upload's acks still go */
            int64_t first = held ? s->output_at + s->params.coalesce_us :
                            INT64_MAX;
            int64_t by_output;

            if (acks) {
                first = MIN(first, s->ack_at +
                            MAX(s->params.ack_delay_us,
                                s->params.coalesce_us));
            }
            by_output = MAX(first, started_at + s->params.min_gap_ms * 1000);

            if (by_output < due) {
                due = by_output;
                *trigger = CHECKPOINT_TRIGGER_OUTPUT;
            }
        }
        if (g_get_monotonic_time() >= due) {
            break;
        }
        g_cond_wait_until(&s->wake, &s->lock, due);
    }
    *output_at = s->output_epoch == next ? s->output_at : 0;
    if (s->ack_epoch == next && s->ack_at &&
        (!*output_at || s->ack_at < *output_at)) {
        *output_at = s->ack_at;
    }
    s->checkpoint_now = false;
    go_on = !s->stop_requested;
    g_mutex_unlock(&s->lock);
    return go_on;
}

static void session_finish(Session *s, GError *err)
{
    g_autoptr(GError) cont_err = NULL;
    MigrationStatus st;
    bool was_colo, requested;
    COLOExitReason reason;

    if (vm_control_stopped_by_us(s->cfg.vm) &&
        !vm_control_cont(s->cfg.vm, &cont_err)) {
        fprintf(stderr, "colo-primary: could not resume the VM: %s\n",
                cont_err->message);
    }
    /* QEMU as it was: no write protection left behind */
    dirty_scan_set_tracker(s->cfg.scan, NULL);
    g_mutex_lock(&s->lock);
    requested = s->stop_requested;
    was_colo = s->mode == COLO_MODE_PRIMARY;
    st = requested ? s->stop_as : err ? MIGRATION_STATUS_FAILED :
         MIGRATION_STATUS_COMPLETED;
    reason = requested ? COLO_EXIT_REASON_REQUEST : err ?
             COLO_EXIT_REASON_ERROR : COLO_EXIT_REASON_REQUEST;
    if (was_colo) {
        s->last_mode = COLO_MODE_PRIMARY;
        s->mode = COLO_MODE_NONE;
        s->exit_reason = reason;
    }
    if (err && !requested) {
        g_free(s->error_desc);
        s->error_desc = g_strdup(err->message);
        s->exit_status = primary_error_exit_status(err);
    }
    s->end_us = g_get_monotonic_time();
    g_mutex_unlock(&s->lock);
    if (err && !requested) {
        fprintf(stderr, "colo-primary: %s\n", err->message);
    }
    if (was_colo) {
        GVariantDict d;

        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "mode", "s", "primary");
        g_variant_dict_insert(&d, "reason", "s",
                              colo_exit_reason_name(reason));
        session_emit(s, "COLO_EXIT", g_variant_dict_end(&d));
    }
    set_status(s, st);
}

static void net_limit_reached(void *opaque)
{
    session_checkpoint_now(opaque);
}

/* The reader thread saw the first packet of @epoch of a kind: a pure
 * TCP ack (@ack) or other output. */
static void net_output_held(void *opaque, uint64_t epoch, int64_t at,
                            bool ack)
{
    Session *s = opaque;
    uint64_t *held_epoch = ack ? &s->ack_epoch : &s->output_epoch;
    int64_t *held_at = ack ? &s->ack_at : &s->output_at;

    g_mutex_lock(&s->lock);
    if (epoch > *held_epoch || !*held_at) {
        *held_epoch = epoch;
        *held_at = at;
        g_cond_broadcast(&s->wake);
    }
    g_mutex_unlock(&s->lock);
}

/* Holds the VM's network output per epoch unless told not to. */
static bool session_net_start(Session *s, GError **errp)
{
    g_autofree char *netdevs = NULL;

    if (s->cfg.no_net_buffer) {
        if (!s->cfg.quiet) {
            printf("network output: not held (--no-net-buffer)\n");
        }
        return true;
    }
    /* --held-output keep: no guard releases anything behind the back of
     * whoever decides (a cluster manager) */
    NetBufferCallbacks cb = {
        .limit = net_limit_reached,
        .output = net_output_held,
        .opaque = s,
    };

    s->net = net_buffer_new(vm_control_qmp(s->cfg.vm), s->cfg.vm_args,
                            s->cfg.work, s->cfg.keep_held_output ? NULL :
                            s->cfg.guard_exe ? s->cfg.guard_exe :
                            "colo-primary", &cb, errp);
    if (!s->net) {
        g_prefix_error(errp, "cannot hold the VM's network output (run with "
                       "--no-net-buffer to protect it without): ");
        primary_error_tag(errp, PRIMARY_ERROR_QEMU);
        return false;
    }
    netdevs = net_buffer_describe(s->net);
    g_mutex_lock(&s->lock);
    s->net_buffered = true;
    g_free(s->net_netdevs);
    s->net_netdevs = g_strdup(netdevs);
    memset(&s->net_stats, 0, sizeof(s->net_stats));
    g_mutex_unlock(&s->lock);
    if (!s->cfg.quiet) {
        printf("network output: %s%s\n", *netdevs ?
               "held until its checkpoint commits, on " : "no NIC",
               netdevs);
        fflush(stdout);
    }
    return true;
}

/* Protection ends: whatever is held goes out (the VM goes on alone, or
 * under a new session), unless --held-output keep leaves it to the
 * cluster manager. */
static void session_net_stop(Session *s)
{
    g_autoptr(GError) err = NULL;

    if (!s->net) {
        return;
    }
    if (s->cfg.keep_held_output) {
        g_autofree char *vm_args_text =
            g_strjoinv(" ", (char **)s->cfg.vm_args);
        NetBufferStats st;

        net_buffer_stats(s->net, &st);
        record_net_stats(s);
        fprintf(stderr, "colo-primary: protection ended; the VM's output of "
                "checkpoints that never committed stays held in QEMU (%"
                PRIu64 " packets now; --held-output keep): release it with "
                "colo-primary %s --release-held-output\n",
                st.packets_held, vm_args_text);
        net_buffer_free_keeping_held(s->net);
        s->net = NULL;
        return;
    }
    if (!net_buffer_release(s->net, UINT64_MAX, &err)) {
        fprintf(stderr, "colo-primary: %s\n", err->message);
    }
    record_net_stats(s);
    net_buffer_free(s->net);
    s->net = NULL;
}

/* Mirrors the VM's disks to the secondary's exports (--disk). */
static bool session_disks_start(Session *s, const TlsParams *tls,
                                GError **errp)
{
    const TlsCreds *creds = NULL;

    if (!s->cfg.disks || !s->cfg.disks[0]) {
        return true;
    }
    /* --tls-creds protects the disks too: QEMU gets the same folder */
    if (tls->creds[0]) {
        creds = tls_creds_find(tls->creds, errp);
        if (!creds) {
            primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
            return false;
        }
    }
    s->disks = disk_mirror_new(vm_control_qmp(s->cfg.vm), s->cfg.disks,
                               creds ? creds->dir : NULL,
                               tls->hostname[0] ? tls->hostname : NULL,
                               errp);
    if (!s->disks ||
        !disk_mirror_start(s->disks, DISK_SYNC_TIMEOUT_MS, s->cfg.quiet,
                           errp)) {
        primary_error_tag(errp, PRIMARY_ERROR_SECONDARY);
        return false;
    }
    return true;
}

static gpointer session_thread(gpointer opaque)
{
    Session *s = opaque;
    g_autoptr(GError) err = NULL;
    ColoPeer *peer;

    set_status(s, MIGRATION_STATUS_SETUP);
    ram_save_init(&s->rs, NULL);
    if (s->cfg.xbzrle) {
        s->xbzrle = page_cache_new(s->cfg.xbzrle_cache_size, &err);
        primary_error_tag(&err, PRIMARY_ERROR_SECONDARY);
    }
    /* The disks' first copy (minutes for a large one) and everything else
     * that takes time comes before the migration connection: the
     * secondary gives a connection MIG_PREAMBLE_TIMEOUT_S to send the
     * stream header (session_initial_sync connects). */
    if (!err) {
        session_disks_start(s, &s->tls, &err);
    }
    if (!err) {
        session_net_start(s, &err);
    }
    if (!err && session_initial_sync(s, &err)) {
        g_mutex_lock(&s->lock);
        s->mode = COLO_MODE_PRIMARY;
        s->colo_start_us = g_get_monotonic_time();
        g_mutex_unlock(&s->lock);
        set_status(s, MIGRATION_STATUS_COLO);
        int64_t started_at = g_get_monotonic_time();

        for (uint64_t k = 1; s->cfg.max_checkpoints == 0 ||
             k <= (uint64_t)s->cfg.max_checkpoints; k++) {
            CheckpointTrigger trigger;
            int64_t output_at;

            if (!session_wait(s, k, g_get_monotonic_time(), started_at,
                              &trigger, &output_at)) {
                break;
            }
            started_at = g_get_monotonic_time();
            if (!session_checkpoint(s, k, trigger, output_at, &err)) {
                break;
            }
        }
    }
    if (g_error_matches(err, PRIMARY_ERROR, PRIMARY_ERROR_SECONDARY) &&
        s->peer && !stop_requested(s) && colo_peer_explain(s->peer, &err)) {
        /* the secondary said why it gave up (a full RAM folder, ...);
         * QEMU's own failures stay QEMU's */
        primary_error_tag(&err, PRIMARY_ERROR_SECONDARY);
    }
    session_net_stop(s);
    disk_mirror_stop(s->disks);
    session_finish(s, err);
    disk_mirror_free(s->disks);
    s->disks = NULL;
    g_mutex_lock(&s->lock);
    peer = g_steal_pointer(&s->peer);
    g_mutex_unlock(&s->lock);
    colo_peer_free(peer);
    page_cache_free(s->xbzrle);
    s->xbzrle = NULL;
    device_capture_free(s->model);
    s->model = NULL;
    s->cfg.notify.ended(s->cfg.notify.opaque);
    return NULL;
}

Session *session_start(const SessionConfig *cfg)
{
    Session *s = g_new0(Session, 1);

    s->cfg = *cfg;
    s->uri = g_strdup(cfg->uri);
    s->tls_creds = g_strdup(cfg->tls_creds ? cfg->tls_creds : "");
    s->tls_hostname = g_strdup(cfg->tls_hostname ? cfg->tls_hostname : "");
    s->cfg.uri = s->uri;
    s->cfg.tls_creds = s->tls_creds;
    s->cfg.tls_hostname = s->tls_hostname;
    s->tls = (TlsParams) { .creds = s->tls_creds,
                           .hostname = s->tls_hostname };
    g_mutex_init(&s->lock);
    g_cond_init(&s->wake);
    s->vmdesc = vmdesc_memo_new();
    s->params = cfg->params;
    s->pauses_us = g_array_new(FALSE, FALSE, sizeof(int64_t));
    s->status = MIGRATION_STATUS_SETUP;
    s->last_mode = cfg->last_mode;
    s->exit_reason = cfg->last_exit_reason;
    s->start_us = g_get_monotonic_time();
    s->thread = g_thread_new("colo-session", session_thread, s);
    return s;
}

void session_stop(Session *s, MigrationStatus as)
{
    g_mutex_lock(&s->lock);
    if (!s->stop_requested) {
        s->stop_requested = true;
        s->stop_as = as;
        if (s->peer) {
            /* a secondary that does not answer must not hold us up */
            colo_peer_shutdown(s->peer);
        }
        g_cond_broadcast(&s->wake);
    }
    g_mutex_unlock(&s->lock);
}

void session_checkpoint_now(Session *s)
{
    g_mutex_lock(&s->lock);
    s->checkpoint_now = true;
    g_cond_broadcast(&s->wake);
    g_mutex_unlock(&s->lock);
}

void session_set_params(Session *s, const SessionParams *p)
{
    g_mutex_lock(&s->lock);
    s->params = *p;
    g_cond_broadcast(&s->wake);
    g_mutex_unlock(&s->lock);
}

void session_join(Session *s)
{
    if (s && s->thread) {
        g_thread_join(s->thread);
        s->thread = NULL;
    }
}

int session_exit_status(Session *s)
{
    int r;

    g_mutex_lock(&s->lock);
    r = s->exit_status;
    g_mutex_unlock(&s->lock);
    return r;
}

void session_free(Session *s)
{
    if (!s) {
        return;
    }
    session_join(s);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->wake);
    vmdesc_memo_free(s->vmdesc);
    g_array_unref(s->pauses_us);
    g_free(s->uri);
    g_free(s->tls_creds);
    g_free(s->tls_hostname);
    g_free(s->error_desc);
    g_free(s->net_netdevs);
    g_free(s->tracking_why);
    g_free(s->tracking_fallback);
    g_free(s);
}

static gint cmp_int64(gconstpointer x, gconstpointer y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return a < b ? -1 : a > b;
}

void session_query(Session *s, SessionInfo *info)
{
    g_autoptr(GArray) sorted = NULL;

    memset(info, 0, sizeof(*info));
    g_mutex_lock(&s->lock);
    info->status = s->status;
    info->mode = s->mode;
    info->last_mode = s->last_mode;
    info->exit_reason = s->exit_reason;
    info->error_desc = g_strdup(s->error_desc);
    info->total_time_ms = ((s->end_us ? s->end_us : g_get_monotonic_time()) -
                           s->start_us) / 1000;
    info->total_bytes = s->total_bytes;
    info->checkpoints = s->checkpoints;
    info->xbzrle_pages = s->xbzrle_pages;
    memcpy(info->by_trigger, s->by_trigger, sizeof(info->by_trigger));
    info->sum_output_wait_us = s->sums.output_wait_us;
    info->sum_pause_us = s->sums.pause_us;
    info->sum_send_us = s->sums.send_us;
    info->sum_received_us = s->sums.received_us;
    info->sum_commit_us = s->sums.commit_us;
    info->sum_release_us = s->sums.release_us;
    info->last = s->last;
    info->colo_time_us = s->colo_start_us ?
        (s->end_us ? s->end_us : g_get_monotonic_time()) - s->colo_start_us :
        0;
    info->net_buffered = s->net_buffered;
    info->net_netdevs = g_strdup(s->net_netdevs);
    info->net = s->net_stats;
    info->tracking = s->tracking ? s->tracking : "digest";
    info->tracking_why = g_strdup(s->tracking_why);
    info->tracking_fallback = g_strdup(s->tracking_fallback);
    sorted = g_array_copy(s->pauses_us);
    info->pauses = s->pauses;
    g_mutex_unlock(&s->lock);
    if (sorted->len) {
        g_array_sort(sorted, cmp_int64);
        info->pause_median_us = g_array_index(sorted, int64_t,
                                              sorted->len / 2);
        info->pause_p99_us = g_array_index(sorted, int64_t,
                                           sorted->len * 99 / 100);
    }
}

void session_info_clear(SessionInfo *info)
{
    g_clear_pointer(&info->error_desc, g_free);
    g_clear_pointer(&info->net_netdevs, g_free);
    g_clear_pointer(&info->tracking_why, g_free);
    g_clear_pointer(&info->tracking_fallback, g_free);
}
