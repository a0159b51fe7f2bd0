/*
 * colo-disk-commit.c: the disks' epoch caches as a participant of the
 * commit (migration/colo-commit.h): the sealed pages of each disk go into
 * the journal entry with room made for them in the image, then into the
 * image, then their cache slots are released.
 *
 * Owner: the incoming migration thread, inside colo_commit().
 */
#include "qemu/osdep.h"

#include "block/colo-disk.h"
#include "migration/colo-commit.h"

static bool disks_prepare(void *opaque, ColoCommit *c, GError **errp)
{
    BlockDevices *disks = opaque;
    ColoRecord *rec = c->rec;

    g_assert(rec->disks->len == block_devices_count(disks));
    for (guint i = 0; i < rec->disks->len; i++) {
        ColoRecordDisk *rd = g_ptr_array_index(rec->disks, i);
        ColoDisk *d = block_devices_nth(disks, i);

        if (rd->extents) {
            g_array_unref(rd->extents);
        }
        rd->extents = colo_disk_sealed_extents(d);
        g_free(rd->cache);
        rd->cache = g_strdup(colo_disk_cache_path(d));
        if (!colo_disk_reserve(d, rd->extents, rec->number, errp)) {
            return false;
        }
    }
    return true;
}

static bool disks_apply(void *opaque, ColoCommit *c, GError **errp)
{
    BlockDevices *disks = opaque;
    int64_t t0 = g_get_monotonic_time();

    for (guint i = 0; i < c->rec->disks->len; i++) {
        ColoRecordDisk *rd = g_ptr_array_index(c->rec->disks, i);

        if (!colo_disk_apply(block_devices_nth(disks, i), rd->extents,
                             c->rec->number, errp)) {
            return false;
        }
        c->stats.disk_pages += rd->extents->len;
    }
    c->stats.disk_us = g_get_monotonic_time() - t0;
    return true;
}

static void disks_done(void *opaque, ColoCommit *c)
{
    BlockDevices *disks = opaque;

    for (guint i = 0; i < c->rec->disks->len; i++) {
        ColoRecordDisk *rd = g_ptr_array_index(c->rec->disks, i);

        colo_disk_release_sealed(block_devices_nth(disks, i),
                                 c->stats.disk_us);
        g_array_unref(rd->extents);
        rd->extents = NULL;
        g_free(rd->cache);
        rd->cache = NULL;
    }
}

const ColoCommitParticipant colo_disks_commit = {
    .name = "disks",
    .prepare = disks_prepare,
    .apply = disks_apply,
    .done = disks_done,
};
