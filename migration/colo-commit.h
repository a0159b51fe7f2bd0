/*
 * colo-commit.h: the one owner of "checkpoint N becomes committed", for
 * checkpoint 0 (the initial migration) and every later one.
 *
 * A checkpoint's state lives in participants until it is committed: the
 * RAM cache (colo-cache.c) and the disks' epoch caches
 * (colo-disk-commit.c).  Each takes part through the same steps:
 *
 *   prepare   before the commit point: make room, give its part of the
 *             journal entry (the RAM cache: its bitmaps).  A failure here
 *             fails the commit with nothing changed.
 *   -------   the journal is written (colo-journal.h): the commit point;
 *             from here on a restart replays this checkpoint
 *   apply     copy its pages into the RAM files / images
 *   -------   the journal becomes the folder's record
 *   done      release what the checkpoint held
 *
 * Owner: the incoming migration thread.
 */
#ifndef MIGRATION_COLO_COMMIT_H
#define MIGRATION_COLO_COMMIT_H

#include "qemu/osdep.h"

#include "block/blockdev.h"
#include "exec/ram_addr.h"
#include "migration/colo-journal.h"
#include "migration/device-state.h"

typedef struct ColoCommitStats {
    uint64_t pages;         /* RAM pages copied into the RAM files */
    uint64_t runs;          /* contiguous runs written */
    int64_t journal_us;     /* writing the journal (the commit point) */
    int64_t total_us;       /* prepare, journal, apply, retiring it */
    uint64_t disk_pages;    /* disk pages copied into the images */
    int64_t disk_us;        /* of total_us: that copy */
} ColoCommitStats;

/* One commit in progress, as the participants see it. */
typedef struct ColoCommit {
    ColoRecord *rec;
    /* the journal's RAM part: one GBytes (or NULL) per rec->blocks entry,
     * filled by the RAM cache's prepare */
    GPtrArray *ram_bitmaps;
    ColoCommitStats stats;
} ColoCommit;

typedef struct ColoCommitParticipant {
    const char *name;
    bool (*prepare)(void *opaque, ColoCommit *c, GError **errp);
    bool (*apply)(void *opaque, ColoCommit *c, GError **errp);
    void (*done)(void *opaque, ColoCommit *c);
} ColoCommitParticipant;

/* The participants (colo-cache.c: opaque is the RAMList;
 * colo-disk-commit.c: opaque is the BlockDevices). */
extern const ColoCommitParticipant colo_cache_commit;
extern const ColoCommitParticipant colo_disks_commit;

/*
 * Commits checkpoint @rec (number > 0) of the RAM cache of @rl and, if
 * @disks is not NULL, the sealed epochs of its disks (@rec->disks lists
 * them in the same order); the figures in *@stats if not NULL.
 */
bool colo_commit(ColoRecord *rec, RAMList *rl, BlockDevices *disks,
                 ColoCommitStats *stats, GError **errp);

/*
 * Commits what a complete initial migration loaded as checkpoint 0: the
 * RAM files get all their storage and are synced, and, when @rec is not
 * NULL (a stream with devices), @devices and @rec are written as the
 * folder's device state and record.
 */
bool colo_commit_initial(RAMList *rl, VMDeviceState *devices,
                         const ColoRecord *rec, GError **errp);

#endif /* MIGRATION_COLO_COMMIT_H */
