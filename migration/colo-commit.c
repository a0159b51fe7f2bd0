/*
 * colo-commit.c: see migration/colo-commit.h.
 */
#include "qemu/osdep.h"

#include "migration/colo-commit.h"
#include "qemu/crash-test.h"

typedef struct Participant {
    const ColoCommitParticipant *p;
    void *opaque;
} Participant;

static void bitmap_unref0(gpointer b)
{
    if (b) {
        g_bytes_unref(b);
    }
}

bool colo_commit(ColoRecord *rec, RAMList *rl, BlockDevices *disks,
                 ColoCommitStats *stats, GError **errp)
{
    Participant parts[] = {
        { &colo_cache_commit, rl },
        { &colo_disks_commit, disks },
    };
    size_t n = disks ? 2 : 1;
    ColoCommit c = {
        .rec = rec,
        .ram_bitmaps = g_ptr_array_new_with_free_func(bitmap_unref0),
    };
    int64_t t0 = g_get_monotonic_time();
    bool ok = false;

    for (size_t i = 0; i < n; i++) {
        if (!parts[i].p->prepare(parts[i].opaque, &c, errp)) {
            goto out;
        }
    }
    /* The commit point: from here on a restart replays this checkpoint. */
    if (!colo_journal_write(rl->dir, rec, c.ram_bitmaps, errp)) {
        g_prefix_error(errp, "journal: ");
        goto out;
    }
    c.stats.journal_us = g_get_monotonic_time() - t0;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].p->apply(parts[i].opaque, &c, errp)) {
            goto out;
        }
    }
    colo_test_crash_point(rec->number, "applied", 0);
    if (!colo_journal_finish(rl->dir, errp)) {
        goto out;
    }
    colo_test_crash_point(rec->number, "committed", 0);
    for (size_t i = 0; i < n; i++) {
        parts[i].p->done(parts[i].opaque, &c);
    }
    c.stats.total_us = g_get_monotonic_time() - t0;
    if (stats) {
        *stats = c.stats;
    }
    ok = true;
out:
    if (!ok) {
        g_prefix_error(errp, "COLO checkpoint %" PRIu64 ": ", rec->number);
    }
    g_ptr_array_unref(c.ram_bitmaps);
    return ok;
}

bool colo_commit_initial(RAMList *rl, VMDeviceState *devices,
                         const ColoRecord *rec, GError **errp)
{
    /* the files got storage page by page while the stream wrote them;
     * committed state gets all of it (a failover QEMU must not fault) */
    if (!ram_list_reserve_all(rl, errp)) {
        return false;
    }
    for (guint i = 0; i < rl->blocks->len; i++) {
        ram_block_sync(g_ptr_array_index(rl->blocks, i));
    }
    if (!rec) {
        return true;
    }
    return device_state_save(devices, rl->dir, errp) &&
           colo_record_save(rl->dir, rec, errp);
}
