/*
 * colo.c: the COLO secondary's checkpoint loop.
 *
 *   primary (main stream)                  secondary (reverse direction)
 *   ... initial migration, ENABLE_COLO,
 *       EOF, VMDESCRIPTION
 *                                          CHECKPOINT_READY
 *   CHECKPOINT_REQUEST  -------------->    disks: seal the epoch's writes
 *                       <--------------    CHECKPOINT_REPLY
 *   VMSTATE_SEND        -------------->
 *   [SWITCHOVER_START] END "ram"           pages -> colo_cache only
 *     ... EOS, footer, EOF
 *   VMSTATE_SIZE be64 N, N bytes  ---->    device state -> buffer
 *                       <--------------    VMSTATE_RECEIVED
 *                                          journal, colo_cache -> RAM
 *                                          files, record (colo-journal.h)
 *                       <--------------    VMSTATE_LOADED
 *   (next CHECKPOINT_REQUEST after x-checkpoint-delay)
 *
 * Disks (block/colo-disk.h): the writes that reached our NBD server
 * before CHECKPOINT_REQUEST belong to this checkpoint.  That is exact
 * only if the primary's VM is stopped, with its I/O drained, from before
 * it sends CHECKPOINT_REQUEST until CHECKPOINT_REPLY has come back:
 * colo-primary does so (QEMU as COLO primary stops its VM only after
 * REPLY, and replicates disks with its own replication driver, which
 * this secondary does not speak).
 *
 * Messages are bare be32 values in both directions (never return-path
 * frames).  Anything out of order ends COLO with an error.  Until
 * VMSTATE_RECEIVED nothing of a checkpoint has reached the RAM files or
 * the committed device state, so a checkpoint cut off anywhere before
 * that leaves the previous one intact.
 *
 * Owner: the incoming migration thread.
 */
#include "qemu/osdep.h"

#include "migration/colo.h"
#include "migration/colo-commit.h"

static bool colo_send_message(ColoIncoming *ci, COLOMessage msg,
                              GError **errp)
{
    qemu_put_be32(ci->to_primary, msg);
    if (qemu_fflush(ci->to_primary) < 0) {
        qemu_file_propagate_error(ci->to_primary, errp);
        g_prefix_error(errp, "COLO: sending %s: ", colo_message_name(msg));
        return false;
    }
    return true;
}

static bool colo_receive_check_message(ColoIncoming *ci, COLOMessage expect,
                                       GError **errp)
{
    QEMUFile *f = ci->lv->f;
    uint64_t at = qemu_file_tell(f);
    uint32_t msg = qemu_get_be32(f);

    if (!qemu_file_propagate_error(f, errp)) {
        g_prefix_error(errp, "COLO: waiting for %s: ",
                       colo_message_name(expect));
        return false;
    }
    if (msg != expect) {
        g_set_error(errp, COLO_ERROR, EPROTO, "COLO: got message %u (%s), "
                    "expected %s (at byte offset %" PRIu64 ")", msg,
                    colo_message_name(msg), colo_message_name(expect), at);
        return false;
    }
    return true;
}

/* Everything of one checkpoint after CHECKPOINT_REQUEST. */
static bool colo_incoming_checkpoint(ColoIncoming *ci, int64_t t_request,
                                     GError **errp)
{
    LoadVMState *lv = ci->lv;
    QEMUFile *f = lv->f;
    ColoCheckpointStats st = { .number = ci->last.number + 1 };
    RAMLoadStats before = lv->ram.stats;
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(VMDeviceState) ds = NULL;
    ColoCommitStats flushed;
    uint64_t ram_start, at, size;
    uint8_t *buf;
    int64_t t_received;
    bool ok;

    if (ci->disks) {
        block_devices_seal(ci->disks, st.number);
    }
    if (!colo_send_message(ci, COLO_MESSAGE_CHECKPOINT_REPLY, errp) ||
        !colo_receive_check_message(ci, COLO_MESSAGE_VMSTATE_SEND, errp)) {
        return false;
    }

    /* The live state: RAM pages into the cache, up to EOF. */
    ram_start = qemu_file_tell(f);
    lv->ram.sink = &colo_cache_sink;
    ok = qemu_loadvm_state_main(lv, errp);
    lv->ram.sink = NULL;
    if (!ok) {
        g_prefix_error(errp, "COLO checkpoint %" PRIu64 ": ", st.number);
        return false;
    }
    st.ram_bytes = qemu_file_tell(f) - ram_start;
    st.ram_pages = (lv->ram.stats.normal - before.normal) +
                   (lv->ram.stats.duplicate - before.duplicate) +
                   (lv->ram.stats.xbzrle - before.xbzrle) +
                   (lv->ram.stats.compressed - before.compressed);

    /* The device state, whole, into a buffer. */
    if (!colo_receive_check_message(ci, COLO_MESSAGE_VMSTATE_SIZE, errp)) {
        return false;
    }
    at = qemu_file_tell(f);
    size = qemu_get_be64(f);
    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    if (size == 0 || size > DEVICE_STATE_MAX_BYTES) {
        g_set_error(errp, COLO_ERROR, EPROTO, "COLO checkpoint %" PRIu64
                    ": device state of %" PRIu64 " bytes (limit %d, at "
                    "byte offset %" PRIu64 ")", st.number, size,
                    DEVICE_STATE_MAX_BYTES, at);
        return false;
    }
    buf = g_try_malloc(size);
    if (!buf) {
        g_set_error(errp, COLO_ERROR, ENOMEM, "COLO checkpoint %" PRIu64
                    ": no memory for %" PRIu64 " bytes of device state",
                    st.number, size);
        return false;
    }
    if (!qemu_get_buffer(f, buf, size)) {
        g_free(buf);
        qemu_file_propagate_error(f, errp);
        g_prefix_error(errp, "COLO checkpoint %" PRIu64 ": device state: ",
                       st.number);
        return false;
    }
    blob = g_bytes_new_take(buf, size);
    ds = device_state_from_blob(blob, errp);
    if (!ds) {
        g_prefix_error(errp, "COLO checkpoint %" PRIu64 " (device state at "
                       "byte offset %" PRIu64 "): ", st.number, at + 8);
        return false;
    }
    st.device_bytes = size;

    /* Whole: from here on the checkpoint is committed. */
    if (!colo_send_message(ci, COLO_MESSAGE_VMSTATE_RECEIVED, errp)) {
        return false;
    }
    t_received = g_get_monotonic_time();
    ci->record->number = st.number;
    if (ci->record->devices) {
        g_bytes_unref(ci->record->devices);
    }
    ci->record->devices = g_bytes_ref(blob);
    if (!colo_commit(ci->record, ci->ram_list, ci->disks, &flushed, errp)) {
        return false;
    }
    st.flushed_pages = flushed.pages;
    st.disk_pages = flushed.disk_pages;
    st.disk_us = flushed.disk_us;
    st.journal_us = flushed.journal_us;
    st.flush_us = flushed.total_us;
    st.commit_us = g_get_monotonic_time() - t_received;
    st.total_us = g_get_monotonic_time() - t_request;
    if (ci->hooks.committed &&
        !ci->hooks.committed(ci->hooks.opaque, ds, &st, errp)) {
        return false;
    }
    ci->last = st;
    /* A failover asked for while we flushed: the checkpoint is kept, but
     * the primary is not told (it is presumed gone). */
    if (!(ci->hooks.failover_requested &&
          ci->hooks.failover_requested(ci->hooks.opaque)) &&
        !colo_send_message(ci, COLO_MESSAGE_VMSTATE_LOADED, errp)) {
        return false;
    }
    colo_trim_ram_cache(ci->ram_list);
    return true;
}

bool colo_incoming_setup(ColoIncoming *ci, GError **errp)
{
    return colo_init_ram_cache(ci->ram_list, errp);
}

uint64_t colo_incoming_cache_reserved(ColoIncoming *ci)
{
    return colo_cache_reserved_bytes(ci->ram_list);
}

void colo_incoming_cleanup(ColoIncoming *ci)
{
    colo_release_ram_cache(ci->ram_list);
}

/* The loop; ends only with an error (or a failover, reported as one). */
static bool colo_incoming_loop(ColoIncoming *ci, GError **errp)
{
    if (!colo_send_message(ci, COLO_MESSAGE_CHECKPOINT_READY, errp)) {
        return false;
    }
    for (;;) {
        int64_t t_request;

        if (ci->hooks.failover_requested &&
            ci->hooks.failover_requested(ci->hooks.opaque)) {
            g_set_error(errp, COLO_ERROR, ECANCELED, "COLO: failover "
                        "requested");
            return false;
        }
        /* between checkpoints the primary may be silent for as long as
         * it likes; inside one, the progress floor holds */
        qemu_file_set_idle(ci->lv->f, true);
        if (!colo_receive_check_message(ci, COLO_MESSAGE_CHECKPOINT_REQUEST,
                                        errp)) {
            qemu_file_set_idle(ci->lv->f, false);
            return false;
        }
        qemu_file_set_idle(ci->lv->f, false);
        t_request = g_get_monotonic_time();
        if (ci->hooks.checkpoint_begin) {
            ci->hooks.checkpoint_begin(ci->hooks.opaque,
                                       ci->last.number + 1);
        }
        if (!colo_incoming_checkpoint(ci, t_request, errp)) {
            return false;
        }
    }
}

bool colo_incoming_run(ColoIncoming *ci, GError **errp)
{
    bool ok = colo_incoming_loop(ci, errp);

    /* Nothing of a half checkpoint survives, and the cache is not needed
     * once the loop is over: the RAM files hold the committed state. */
    colo_incoming_cleanup(ci);
    return ok;
}
