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
#include "tools/colo-primary/agent.h"
#include "tools/colo-primary/device-capture.h"
#include "tools/colo-primary/disk-mirror.h"

#define CAPTURE_TIMEOUT_MS 10000
/* The initial copy of a disk (an hour: a large disk on a slow link). */
#define DISK_SYNC_TIMEOUT_MS (3600 * 1000)

typedef struct Session {
    Agent *a;
    ColoPeer *peer;
    RAMSaveState rs;
    PageCache *xbzrle;          /* NULL without the xbzrle capability */
    NetBuffer *net;             /* NULL with --no-net-buffer */
    DiskMirror *disks;          /* NULL without --disk */
    char **disk_sums;           /* --verify-disk: SHA-256 of each image at
                                   the last pause */
    int64_t stopped_at;         /* the VM was left stopped at (initial
                                   sync with disks) */
    DeviceCapture *model;       /* the first capture: blocks as sent */
    RAMBlock *main_rb;          /* in @model */
    uint32_t section_id;
    bool switchover;
    int capture_no;
    char *ram_sum;              /* --verify-secondary: SHA-256 of RAM at
                                   the last pause */
    const char *uri;            /* the secondary, and how to reach it */
    const TlsParams *tls;
} Session;

/* Reports to whoever owns the agent (agent.c), through its notifier. */
static void session_emit(Agent *a, const char *name, GVariant *data)
{
    a->notify.event(a->notify.opaque, name, data);
}

static void set_status(Agent *a, MigrationStatus st)
{
    bool events;

    g_mutex_lock(&a->lock);
    a->status = st;
    events = a->opts.caps[MIGRATION_CAPABILITY_EVENTS];
    g_mutex_unlock(&a->lock);
    if (events) {
        GVariantDict d;

        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "status", "s", migration_status_name(st));
        session_emit(a, "MIGRATION", g_variant_dict_end(&d));
    }
}

static bool stop_requested(Agent *a)
{
    bool r;

    g_mutex_lock(&a->lock);
    r = a->stop_requested;
    g_mutex_unlock(&a->lock);
    return r;
}

/* --verify-disk: SHA-256 of the VM's images while it is stopped. */
static bool sum_disks(Session *s, GError **errp)
{
    for (guint i = 0; i < disk_mirror_count(s->disks); i++) {
        g_autofree char *path = disk_mirror_image_path(s->disks, i, errp);
        g_autoptr(GMappedFile) mf = path ? g_mapped_file_new(path, FALSE,
                                                             errp) : NULL;

        if (!mf) {
            return false;
        }
        g_free(s->disk_sums[i]);
        s->disk_sums[i] = g_compute_checksum_for_data(
            G_CHECKSUM_SHA256, (const guchar *)g_mapped_file_get_contents(mf),
            g_mapped_file_get_length(mf));
    }
    return true;
}

/* One pause: stop, scan and capture at once, cont.  With @request the
 * checkpoint's CHECKPOINT_REQUEST goes out at the stop and its REPLY is
 * awaited before cont; with @stay_stopped there is no cont.  Returns the
 * capture, parsed; the changed pages are in the scan. */
static DeviceCapture *session_pause(Session *s, CheckpointFigures *fig,
                                    bool request, bool stay_stopped,
                                    GError **errp)
{
    Agent *a = s->a;
    int64_t t0 = 0, t1, t2, t3;
    g_autoptr(GBytes) bytes = NULL;
    g_autofree char *dir = NULL;
    DeviceCapture *dc;

    if (!vm_control_stop(a->vm, &t0, errp)) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return NULL;
    }
    t1 = g_get_monotonic_time();
    if (request &&
        !colo_peer_send_message(s->peer, COLO_MESSAGE_CHECKPOINT_REQUEST,
                                errp)) {
        /* session_finish continues the VM */
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return NULL;
    }
    /* The scan first: its workers run during the QMP round trips below. */
    dirty_scan_start(a->scan);
    /* what the guest sends from the next cont on is held until this
     * checkpoint is committed */
    if (s->net && !net_buffer_begin_epoch(s->net, fig->number + 1, errp)) {
        dirty_scan_finish(a->scan);
        /* session_finish continues the VM */
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return NULL;
    }
    bytes = vm_control_capture(a->vm, CAPTURE_TIMEOUT_MS, errp);
    t2 = g_get_monotonic_time();
    dirty_scan_finish(a->scan);
    t3 = g_get_monotonic_time();
    if (bytes && s->disks && !disk_mirror_check(s->disks, errp)) {
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return NULL;
    }
    if (bytes && a->cfg.verify_disks && !sum_disks(s, errp)) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return NULL;
    }
    if (a->cfg.verify_dir && bytes) {
        /* tests: an independent record of RAM at this moment (SHA-256,
         * not our digests), left out of the pause figures */
        g_free(s->ram_sum);
        s->ram_sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256,
                                                 a->ram, a->ram_size);
        fig->verify_us = g_get_monotonic_time() - t3;
        t0 += fig->verify_us;
    }
    if (!bytes) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return NULL;
    }
    /* the secondary has sealed the checkpoint's disk writes */
    if (request &&
        !colo_peer_expect(s->peer, COLO_MESSAGE_CHECKPOINT_REPLY, errp)) {
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return NULL;
    }
    if (stay_stopped) {
        s->stopped_at = t0;
    } else if (!vm_control_cont(a->vm, errp)) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return NULL;
    }
    fig->pause_us = g_get_monotonic_time() - t0;
    fig->stop_us = t1 - t0;
    fig->capture_us = t2 - t1;
    fig->scan_wait_us = t3 - t2;
    fig->scanned_pages = dirty_scan_candidates(a->scan);
    fig->cont_us = fig->pause_us - (t3 - t0);
    dir = g_strdup_printf("%s/capture%d", a->work, s->capture_no++ % 2);
    dc = device_capture_parse(bytes, dir, a->cfg.ram_block, a->ram_size, errp);
    if (!dc) {
        g_autofree char *qemu_says = vm_control_capture_failure(a->vm);

        if (qemu_says) {
            g_prefix_error(errp, "%s; ", qemu_says);
        }
        agent_error_tag(errp, AGENT_ERROR_QEMU);
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

/* Tests: the secondary's copy of main RAM against ours at the pause. */
/* --verify-disk NODE=PATH: the secondary's image of NODE must be what
 * the VM's was at the pause. */
static bool verify_disks(Session *s, const char *what, GError **errp)
{
    Agent *a = s->a;

    for (guint i = 0; i < disk_mirror_count(s->disks); i++) {
        const char *node = disk_mirror_target(s->disks, i)->node;
        g_autofree char *prefix = g_strconcat(node, "=", NULL);
        g_autoptr(GMappedFile) mf = NULL;
        g_autofree char *theirs = NULL;
        const char *path = NULL;

        for (int k = 0; a->cfg.verify_disks[k]; k++) {
            if (g_str_has_prefix(a->cfg.verify_disks[k], prefix)) {
                path = a->cfg.verify_disks[k] + strlen(prefix);
            }
        }
        if (!path) {
            continue;
        }
        mf = g_mapped_file_new(path, FALSE, errp);
        if (!mf) {
            agent_error_tag(errp, AGENT_ERROR_VERIFY);
            return false;
        }
        theirs = g_compute_checksum_for_data(
            G_CHECKSUM_SHA256, (const guchar *)g_mapped_file_get_contents(mf),
            g_mapped_file_get_length(mf));
        if (g_strcmp0(theirs, s->disk_sums[i])) {
            g_set_error(errp, AGENT_ERROR, AGENT_ERROR_VERIFY, "%s: the "
                        "secondary's image %s differs from the VM's disk %s "
                        "at that moment", what, path, node);
            return false;
        }
    }
    return true;
}

static bool verify_secondary(Session *s, const char *what, GError **errp)
{
    Agent *a = s->a;
    g_autofree char *path = g_build_filename(a->cfg.verify_dir, a->cfg.ram_block,
                                             NULL);
    g_autofree char *theirs = NULL;
    struct stat st;
    void *img;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != a->ram_size) {
        g_set_error(errp, AGENT_ERROR, AGENT_ERROR_VERIFY, "%s: %s", path,
                    fd < 0 ? g_strerror(errno) : "not the RAM's size");
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    img = mmap(NULL, a->ram_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (img == MAP_FAILED) {
        g_set_error(errp, AGENT_ERROR, AGENT_ERROR_VERIFY, "%s: %s", path,
                    g_strerror(errno));
        return false;
    }
    theirs = g_compute_checksum_for_data(G_CHECKSUM_SHA256, img, a->ram_size);
    munmap(img, a->ram_size);
    if (!s->ram_sum || strcmp(s->ram_sum, theirs) != 0) {
        g_set_error(errp, AGENT_ERROR, AGENT_ERROR_VERIFY, "%s: the "
                    "secondary's %s differs from the VM's RAM at that moment",
                    what, path);
        return false;
    }
    return true;
}

static void record_net_stats(Session *s)
{
    NetBufferStats net;

    if (s->net) {
        net_buffer_stats(s->net, &net);
        g_mutex_lock(&s->a->lock);
        s->a->net = net;
        g_mutex_unlock(&s->a->lock);
    }
}

static void record_figures(Session *s, const CheckpointFigures *fig)
{
    Agent *a = s->a;
    bool events;

    const char *fallback = dirty_scan_fallback_reason(a->scan);
    bool gave_up;

    record_net_stats(s);
    g_mutex_lock(&a->lock);
    gave_up = fallback && !a->tracking_fallback;
    if (gave_up) {
        a->tracking_fallback = g_strdup(fallback);
    }
    a->tracking = dirty_scan_method(a->scan);
    a->last = *fig;
    if (fig->number > 0) {
        a->checkpoints = fig->number;
        g_array_append_val(a->pauses_us, fig->pause_us);
    }
    a->total_bytes += fig->wire_bytes;
    a->xbzrle_pages += fig->xbzrle_pages;
    events = a->opts.caps[MIGRATION_CAPABILITY_EVENTS];
    g_mutex_unlock(&a->lock);
    if (gave_up) {
        /* said even with -q: protection got more expensive */
        fprintf(stderr, "colo-primary: dirty tracking: digests of every page "
                "from checkpoint %" PRIu64 " on (%s)\n", fig->number,
                fallback);
    }
    if (events && fig->number > 0) {
        GVariantDict d;

        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "checkpoint", "t", fig->number);
        g_variant_dict_insert(&d, "pause-us", "x", fig->pause_us);
        g_variant_dict_insert(&d, "dirty-pages", "t", fig->dirty_pages);
        g_variant_dict_insert(&d, "wire-bytes", "t", fig->wire_bytes);
        g_variant_dict_insert(&d, "total-us", "x", fig->total_us);
        session_emit(a, "X_COLO_CHECKPOINT", g_variant_dict_end(&d));
    }
    if (!a->cfg.quiet) {
        g_autofree char *verified = a->cfg.verify_dir ? g_strdup_printf(
            ", secondary verified (RAM sum %.1f ms, not in the pause)",
            fig->verify_us / 1000.0) : g_strdup("");

        if (fig->number == 0) {
            printf("initial sync: %" PRIu64 " bytes, final pause %.2f ms, "
                   "%" PRIu64 " pages changed meanwhile%s; COLO running\n",
                   fig->wire_bytes, fig->pause_us / 1000.0, fig->dirty_pages,
                   verified);
        } else {
            printf("checkpoint %" PRIu64 ": pause %.2f ms (stop %.1f, "
                   "devices %.1f, scan +%.1f, cont %.1f), %" PRIu64
                   " dirty pages (%.2f MiB), %" PRIu64 " xbzrle, %" PRIu64
                   " bytes%s\n",
                   fig->number, fig->pause_us / 1000.0, fig->stop_us / 1000.0,
                   fig->capture_us / 1000.0, fig->scan_wait_us / 1000.0,
                   fig->cont_us / 1000.0, fig->dirty_pages,
                   fig->dirty_pages / 256.0, fig->xbzrle_pages,
                   fig->wire_bytes,
                   verified);
        }
        fflush(stdout);
    }
}

/* A write tracker or digests (dirty-tracking.h), said once per session. */
static bool session_choose_tracking(Session *s, GError **errp)
{
    Agent *a = s->a;
    g_autofree char *why = NULL;

    if (!dirty_tracking_choose(a->scan, vm_control_qmp(a->vm),
                               a->cfg.ram_file, a->ram_size,
                               a->tracking_mode, a->cfg.qemu_pid, &why,
                               errp)) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return false;
    }
    g_mutex_lock(&a->lock);
    g_free(a->tracking_why);
    a->tracking_why = g_steal_pointer(&why);
    a->tracking = dirty_scan_method(a->scan);
    g_clear_pointer(&a->tracking_fallback, g_free);
    g_mutex_unlock(&a->lock);
    if (!a->cfg.quiet) {
        printf("dirty tracking: %s%s%s%s\n", dirty_scan_method(a->scan),
               a->tracking_why ? " (" : "",
               a->tracking_why ? a->tracking_why : "",
               a->tracking_why ? ")" : "");
        fflush(stdout);
    }
    return true;
}

/* Connects to the secondary right before the stream head goes out. */
static bool session_connect(Session *s, GError **errp)
{
    Agent *a = s->a;

    s->peer = colo_peer_connect(s->uri, s->tls, errp);
    if (!s->peer) {
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return false;
    }
    g_mutex_lock(&a->lock);
    a->peer = s->peer;
    g_mutex_unlock(&a->lock);
    set_status(a, MIGRATION_STATUS_ACTIVE);
    return true;
}

static bool session_initial_sync(Session *s, GError **errp)
{
    Agent *a = s->a;
    g_autoptr(QEMUFile) f = NULL;
    g_autoptr(GBytes) first = NULL;
    CheckpointFigures fig = { 0 };
    DeviceCapture *dc;
    uint8_t page[TARGET_PAGE_SIZE] __attribute__((aligned(64)));
    g_autofree char *model_dir = g_build_filename(a->work, "model", NULL);
    int64_t t0;
    const char *json;

    /* 1. A short pause for what the stream head needs. */
    if (!vm_control_stop(a->vm, &t0, errp)) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return false;
    }
    first = vm_control_capture(a->vm, CAPTURE_TIMEOUT_MS, errp);
    if (!vm_control_cont(a->vm, first ? errp : NULL) || !first) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return false;
    }
    s->model = device_capture_parse(first, model_dir, a->cfg.ram_block,
                                    a->ram_size, errp);
    if (!s->model) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return false;
    }
    s->main_rb = ram_list_find(s->model->rl, a->cfg.ram_block);
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
    for (uint64_t n = 0; n < a->ram_size >> TARGET_PAGE_BITS; n++) {
        memcpy(page, a->ram + (n << TARGET_PAGE_BITS), sizeof(page));
        dirty_scan_set_digest(a->scan, n,
                              dirty_scan_page_digest(a->scan, page));
        ram_save_any(&s->rs, s->main_rb, n << TARGET_PAGE_BITS, NULL, page);
        if ((n & 4095) == 0 && (qemu_file_get_error(f) || stop_requested(a))) {
            break;
        }
    }
    ram_save_section_end(&s->rs, s->section_id);
    if (qemu_fflush(f) < 0 || !qemu_file_propagate_error(f, errp)) {
        g_prefix_error(errp, "the secondary %s: ", s->peer->uri);
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return false;
    }
    if (stop_requested(a)) {
        g_set_error(errp, AGENT_ERROR, AGENT_ERROR_SECONDARY, "stopped "
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
    dirty_scan_foreach(a->scan, put_dirty_page, s);
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
    fig.dirty_pages = dirty_scan_count(a->scan);
    if (qemu_fflush(f) < 0 || !qemu_file_propagate_error(f, errp) ||
        !colo_peer_expect(s->peer, COLO_MESSAGE_CHECKPOINT_READY, errp)) {
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return false;
    }
    if (s->disks) {
        /* checkpoint 0 holds the disks: their writes may go on now */
        if (!vm_control_cont(a->vm, errp)) {
            agent_error_tag(errp, AGENT_ERROR_QEMU);
            return false;
        }
        fig.pause_us = g_get_monotonic_time() - s->stopped_at;
    }
    fig.wire_bytes = qemu_file_tell(f);
    fig.total_us = g_get_monotonic_time() - t0;
    s->rs.f = NULL;
    if (a->cfg.verify_dir && !verify_secondary(s, "initial sync", errp)) {
        return false;
    }
    if (a->cfg.verify_disks && !verify_disks(s, "initial sync", errp)) {
        return false;
    }
    record_figures(s, &fig);
    return true;
}

static bool session_checkpoint(Session *s, uint64_t number, GError **errp)
{
    Agent *a = s->a;
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    g_autoptr(GBytes) live = NULL;
    CheckpointFigures fig = { .number = number };
    int64_t t0 = g_get_monotonic_time();
    uint64_t xbzrle_before = s->rs.xbzrle_pages;
    DeviceCapture *dc = session_pause(s, &fig, true, false, errp);
    g_autofree char *what = NULL;
    bool ok;

    if (!dc) {
        return false;
    }
    s->rs.f = f;
    colo_put_checkpoint_head(f, s->section_id, s->switchover);
    dirty_scan_foreach(a->scan, put_dirty_page, s);
    put_rom_pages(s, dc, false);
    colo_put_checkpoint_tail(&s->rs, s->section_id);
    s->rs.f = NULL;
    live = qemu_file_steal_output(f);
    fig.dirty_pages = dirty_scan_count(a->scan);
    fig.xbzrle_pages = s->rs.xbzrle_pages - xbzrle_before;
    fig.device_bytes = g_bytes_get_size(dc->lv.devices->blob);
    fig.wire_bytes = g_bytes_get_size(live) + 12 + fig.device_bytes;
    ok = colo_peer_send_checkpoint(s->peer, live, dc->lv.devices->blob,
                                   errp);
    device_capture_free(dc);
    if (!ok) {
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return false;
    }
    /* committed: what the guest sent before this checkpoint may go */
    if (s->net && !net_buffer_release(s->net, number, errp)) {
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return false;
    }
    fig.total_us = g_get_monotonic_time() - t0;
    what = g_strdup_printf("checkpoint %" PRIu64, number);
    if (a->cfg.verify_dir && !verify_secondary(s, what, errp)) {
        return false;
    }
    if (a->cfg.verify_disks && !verify_disks(s, what, errp)) {
        return false;
    }
    record_figures(s, &fig);
    return true;
}

/* Waits for the next checkpoint's time; false if the session must end. */
static bool session_wait(Agent *a, int64_t since)
{
    bool go_on;

    g_mutex_lock(&a->lock);
    for (;;) {
        int64_t due = since + (int64_t)a->opts.params[
            MIGRATION_PARAMETER_X_CHECKPOINT_DELAY] * 1000;

        if (a->stop_requested || a->checkpoint_now ||
            g_get_monotonic_time() >= due) {
            break;
        }
        g_cond_wait_until(&a->wake, &a->lock, due);
    }
    a->checkpoint_now = false;
    go_on = !a->stop_requested;
    g_mutex_unlock(&a->lock);
    return go_on;
}

static void session_finish(Session *s, GError *err)
{
    Agent *a = s->a;
    g_autoptr(GError) cont_err = NULL;
    MigrationStatus st;
    bool was_colo, requested;
    COLOExitReason reason;

    if (vm_control_stopped_by_us(a->vm) &&
        !vm_control_cont(a->vm, &cont_err)) {
        fprintf(stderr, "colo-primary: could not resume the VM: %s\n",
                cont_err->message);
    }
    /* QEMU as it was: no write protection left behind */
    dirty_scan_set_tracker(a->scan, NULL);
    g_mutex_lock(&a->lock);
    a->peer = NULL;
    requested = a->stop_requested;
    was_colo = a->mode == COLO_MODE_PRIMARY;
    st = requested ? a->stop_as : err ? MIGRATION_STATUS_FAILED :
         MIGRATION_STATUS_COMPLETED;
    reason = requested ? COLO_EXIT_REASON_REQUEST : err ?
             COLO_EXIT_REASON_ERROR : COLO_EXIT_REASON_REQUEST;
    if (was_colo) {
        a->last_mode = COLO_MODE_PRIMARY;
        a->mode = COLO_MODE_NONE;
        a->exit_reason = reason;
    }
    if (err && !requested) {
        int status = err->domain != AGENT_ERROR ? AGENT_EXIT_QEMU :
                     err->code == AGENT_ERROR_SECONDARY ?
                     AGENT_EXIT_SECONDARY :
                     err->code == AGENT_ERROR_VERIFY ?
                     AGENT_EXIT_VERIFY : AGENT_EXIT_QEMU;

        g_free(a->error_desc);
        a->error_desc = g_strdup(err->message);
        /* with a monitor, a failed session is reported there and the
         * agent waits for the next; a failed QEMU ends it either way */
        if (!a->mon || status == AGENT_EXIT_QEMU) {
            a->exit_status = status;
        }
    }
    a->end_us = g_get_monotonic_time();
    g_mutex_unlock(&a->lock);
    if (err && !requested) {
        fprintf(stderr, "colo-primary: %s\n", err->message);
    }
    if (was_colo) {
        GVariantDict d;

        g_variant_dict_init(&d, NULL);
        g_variant_dict_insert(&d, "mode", "s", "primary");
        g_variant_dict_insert(&d, "reason", "s",
                              colo_exit_reason_name(reason));
        session_emit(a, "COLO_EXIT", g_variant_dict_end(&d));
    }
    set_status(a, st);
}

static void net_limit_reached(void *opaque)
{
    agent_checkpoint_now(opaque);
}

/* Holds the VM's network output per epoch unless told not to. */
static bool session_net_start(Session *s, GError **errp)
{
    Agent *a = s->a;
    g_autofree char *netdevs = NULL;

    if (a->cfg.no_net_buffer) {
        if (!a->cfg.quiet) {
            printf("network output: not held (--no-net-buffer)\n");
        }
        return true;
    }
    /* --held-output keep: no guard releases anything behind the back of
     * whoever decides (a cluster manager) */
    s->net = net_buffer_new(vm_control_qmp(a->vm), a->cfg.vm_qmp_path,
                            a->work, a->cfg.keep_held_output ? NULL :
                            a->cfg.guard_exe ? a->cfg.guard_exe :
                            "colo-primary", net_limit_reached, a, errp);
    if (!s->net) {
        g_prefix_error(errp, "cannot hold the VM's network output (run with "
                       "--no-net-buffer to protect it without): ");
        agent_error_tag(errp, AGENT_ERROR_QEMU);
        return false;
    }
    netdevs = net_buffer_describe(s->net);
    g_mutex_lock(&a->lock);
    a->net_buffered = true;
    g_free(a->net_netdevs);
    a->net_netdevs = g_strdup(netdevs);
    memset(&a->net, 0, sizeof(a->net));
    g_mutex_unlock(&a->lock);
    if (!a->cfg.quiet) {
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
    if (s->a->cfg.keep_held_output) {
        NetBufferStats st;

        net_buffer_stats(s->net, &st);
        record_net_stats(s);
        fprintf(stderr, "colo-primary: protection ended; the VM's output of "
                "checkpoints that never committed stays held in QEMU (%"
                PRIu64 " packets now; --held-output keep): release it with "
                "colo-primary --qmp %s --release-held-output\n",
                st.packets_held, s->a->cfg.vm_qmp_path);
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
    Agent *a = s->a;
    const TlsCreds *creds = NULL;

    if (!a->cfg.disks || !a->cfg.disks[0]) {
        return true;
    }
    /* --tls-creds protects the disks too: QEMU gets the same folder */
    if (tls->creds[0]) {
        creds = tls_creds_find(tls->creds, errp);
        if (!creds) {
            agent_error_tag(errp, AGENT_ERROR_SECONDARY);
            return false;
        }
    }
    s->disks = disk_mirror_new(vm_control_qmp(a->vm), a->cfg.disks,
                               creds ? creds->dir : NULL,
                               tls->hostname[0] ? tls->hostname : NULL,
                               errp);
    if (!s->disks ||
        !disk_mirror_start(s->disks, DISK_SYNC_TIMEOUT_MS, a->cfg.quiet,
                           errp)) {
        agent_error_tag(errp, AGENT_ERROR_SECONDARY);
        return false;
    }
    s->disk_sums = g_new0(char *, disk_mirror_count(s->disks) + 1);
    return true;
}

static gpointer session_thread(gpointer opaque)
{
    Session *s = opaque;
    Agent *a = s->a;
    g_autoptr(GError) err = NULL;
    g_autofree char *uri = NULL;
    char tls_creds[MIGRATION_STR_PARAMETER_LEN];
    char tls_hostname[MIGRATION_STR_PARAMETER_LEN];
    TlsParams tls = { .creds = tls_creds, .hostname = tls_hostname };
    uint64_t cache_size;
    bool xbzrle;

    g_mutex_lock(&a->lock);
    uri = g_strdup(a->uri);
    memcpy(tls_creds, a->opts.strs[MIGRATION_PARAMETER_TLS_CREDS],
           sizeof(tls_creds));
    memcpy(tls_hostname, a->opts.strs[MIGRATION_PARAMETER_TLS_HOSTNAME],
           sizeof(tls_hostname));
    xbzrle = a->opts.caps[MIGRATION_CAPABILITY_XBZRLE];
    cache_size = a->opts.params[MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE];
    g_mutex_unlock(&a->lock);
    set_status(a, MIGRATION_STATUS_SETUP);

    ram_save_init(&s->rs, NULL);
    if (xbzrle) {
        s->xbzrle = page_cache_new(cache_size, &err);
        agent_error_tag(&err, AGENT_ERROR_SECONDARY);
    }
    /* The disks' first copy (minutes for a large one) and everything else
     * that takes time comes before the migration connection: the
     * secondary gives a connection MIG_PREAMBLE_TIMEOUT_S to send the
     * stream header (session_initial_sync connects). */
    s->uri = uri;
    s->tls = &tls;
    if (!err) {
        session_disks_start(s, &tls, &err);
    }
    if (!err) {
        session_net_start(s, &err);
    }
    if (!err && session_initial_sync(s, &err)) {
        g_mutex_lock(&a->lock);
        a->mode = COLO_MODE_PRIMARY;
        a->colo_start_us = g_get_monotonic_time();
        g_mutex_unlock(&a->lock);
        set_status(a, MIGRATION_STATUS_COLO);
        for (uint64_t k = 1; a->cfg.max_checkpoints == 0 ||
             k <= (uint64_t)a->cfg.max_checkpoints; k++) {
            if (!session_wait(a, g_get_monotonic_time()) ||
                !session_checkpoint(s, k, &err)) {
                break;
            }
        }
    }
    session_net_stop(s);
    disk_mirror_stop(s->disks);
    session_finish(s, err);
    disk_mirror_free(s->disks);
    g_strfreev(s->disk_sums);
    colo_peer_free(s->peer);
    page_cache_free(s->xbzrle);
    device_capture_free(s->model);
    g_free(s->ram_sum);
    g_free(s);
    a->notify.ended(a->notify.opaque);
    return NULL;
}

bool agent_session_start(Agent *a, const char *uri, GError **errp)
{
    Session *s;

    g_mutex_lock(&a->lock);
    if (a->session) {
        g_mutex_unlock(&a->lock);
        g_set_error(errp, COLO_ERROR, EBUSY, "There's a migration process "
                    "in progress");
        return false;
    }
    g_free(a->uri);
    a->uri = g_strdup(uri);
    g_clear_pointer(&a->error_desc, g_free);
    a->stop_requested = false;
    a->checkpoint_now = false;
    a->checkpoints = 0;
    a->total_bytes = 0;
    a->xbzrle_pages = 0;
    memset(&a->last, 0, sizeof(a->last));
    g_array_set_size(a->pauses_us, 0);
    a->start_us = g_get_monotonic_time();
    a->end_us = 0;
    a->status = MIGRATION_STATUS_SETUP;
    s = g_new0(Session, 1);
    s->a = a;
    a->session = g_thread_new("colo-session", session_thread, s);
    g_mutex_unlock(&a->lock);
    return true;
}

void agent_session_stop(Agent *a, MigrationStatus as)
{
    g_mutex_lock(&a->lock);
    if (a->session && !a->stop_requested) {
        a->stop_requested = true;
        a->stop_as = as;
        if (a->peer) {
            /* a secondary that does not answer must not hold us up */
            colo_peer_shutdown(a->peer);
        }
        g_cond_broadcast(&a->wake);
    }
    g_mutex_unlock(&a->lock);
}

void agent_checkpoint_now(Agent *a)
{
    g_mutex_lock(&a->lock);
    a->checkpoint_now = true;
    g_cond_broadcast(&a->wake);
    g_mutex_unlock(&a->lock);
}

bool agent_session_active(Agent *a)
{
    bool r;

    g_mutex_lock(&a->lock);
    r = a->session != NULL;
    g_mutex_unlock(&a->lock);
    return r;
}

static gint cmp_int64(gconstpointer x, gconstpointer y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return a < b ? -1 : a > b;
}

bool agent_pause_figures(Agent *a, int64_t *median, int64_t *p99)
{
    g_autoptr(GArray) sorted = NULL;

    g_mutex_lock(&a->lock);
    sorted = g_array_copy(a->pauses_us);
    g_mutex_unlock(&a->lock);
    if (!sorted->len) {
        return false;
    }
    g_array_sort(sorted, cmp_int64);
    *median = g_array_index(sorted, int64_t, sorted->len / 2);
    *p99 = g_array_index(sorted, int64_t, sorted->len * 99 / 100);
    return true;
}
