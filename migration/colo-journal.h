/*
 * colo-journal.h: the committed checkpoint as files in the RAM folder, so
 * that a colo-secondary killed at any instant leaves exactly checkpoint N
 * or N+1 behind, never a mix (docs/colo.rst, "Crash-consistent commit").
 *
 *   <ram-dir>/pc.ram ...           the RAM files: checkpoint N
 *   <ram-dir>/colo-cache/pc.ram    the cache files: pages of N+1 arriving
 *   <ram-dir>/colo-journal         N+1 is whole: its record plus a bitmap
 *                                  per block of the pages in the cache files
 *   <ram-dir>/colo-checkpoint      the record of the checkpoint the RAM
 *                                  files hold (number, blocks, machine,
 *                                  device state)
 *
 * A commit writes colo-journal (a new file, then rename: the commit point),
 * copies the marked cache pages into the RAM files, and renames
 * colo-journal over colo-checkpoint.  Whoever opens the folder next
 * replays a journal it finds (the copy is idempotent) or, without one,
 * trusts colo-checkpoint; the cache files alone never count.
 *
 * Protects against the process dying (SIGKILL, crash, OOM), not against
 * the host losing power: nothing is fsync'ed, and on tmpfs (the default
 * RAM folder) nothing would survive that anyway.
 *
 * Owner: the incoming migration thread while COLO runs; main() before it
 * starts (recovery).
 */
#ifndef MIGRATION_COLO_JOURNAL_H
#define MIGRATION_COLO_JOURNAL_H

#include "qemu/osdep.h"

#include "block/colo-disk.h"
#include "exec/ram-dir.h"
#include "exec/ram_addr.h"

/* A disk image that belongs to the checkpoint (block/colo-disk.h). */
typedef struct ColoRecordDisk {
    char node[32];
    char *filename;
    uint64_t size;
    /* journal only: the sealed pages and the cache file holding them */
    char *cache;
    GArray *extents;            /* of ColoDiskExtent, or NULL */
} ColoRecordDisk;

ColoRecordDisk *colo_record_disk_new(const char *node, const char *filename,
                                     uint64_t size);
void colo_record_disk_free(gpointer p);

/* What the RAM files (and disk images) of a folder are: enough to resume
 * the VM from them. */
typedef struct ColoRecord {
    uint64_t number;            /* checkpoint; 0: the initial migration */
    char machine[257];
    uint32_t ram_section_id;
    GArray *blocks;             /* of RAMBlockSummary */
    GBytes *devices;            /* device sections, ending with EOF */
    GPtrArray *disks;           /* of ColoRecordDisk (may be empty) */
} ColoRecord;

ColoRecord *colo_record_new(void);
void colo_record_free(ColoRecord *rec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoRecord, colo_record_free)
/* The blocks of @rl as a summary array (for a record). */
GArray *colo_record_blocks_of(RAMList *rl);

/* Writes @rec as the folder's committed record (tmp file + rename). */
bool colo_record_save(const char *ram_dir, const ColoRecord *rec,
                      GError **errp);
/* Writes the record's device state to <ram-dir>/device-state.bin. */
bool colo_record_export_devices(const char *ram_dir, const ColoRecord *rec,
                                GError **errp);
/* Reads and checks a record or journal file; NULL with the reason. */
ColoRecord *colo_record_load(const char *path, GPtrArray **bitmaps,
                             GError **errp);

/* The commit of checkpoint rec->number (colo-commit.c): the journal
 * first, with @ram_bitmaps (one GBytes, or NULL for none, per
 * rec->blocks entry: the pages the commit copies), then the commit copies
 * the pages, then colo_journal_finish() makes the record the committed
 * one. */
bool colo_journal_write(const char *ram_dir, const ColoRecord *rec,
                        const GPtrArray *ram_bitmaps, GError **errp);
bool colo_journal_finish(const char *ram_dir, GError **errp);

/* Removes the cache files. */
void colo_journal_remove_cache(const char *ram_dir);
/* Removes the disks' cache files (only when no disk is caching). */
void colo_journal_remove_disk_cache(const char *ram_dir);
/* A new incoming migration is about to write the RAM files: whatever
 * record the folder held no longer describes them. */
void colo_journal_invalidate(const char *ram_dir);

typedef struct ColoRecovery {
    ColoRecord *record;         /* what the folder holds now, or NULL */
    bool replayed;              /* a journal was found and applied */
    uint64_t replayed_pages;
    uint64_t replayed_disk_pages;
    bool discarded;             /* an unfinished journal was thrown away */
} ColoRecovery;

void colo_recovery_clear(ColoRecovery *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ColoRecovery, colo_recovery_clear)
/* Brings a folder a colo-secondary left behind to one whole checkpoint:
 * replays a journal, drops unfinished files and the cache files.  A
 * folder without a record is not an error (r->record stays NULL). */
bool colo_journal_recover(const char *ram_dir, ColoRecovery *r,
                          GError **errp);

#endif /* MIGRATION_COLO_JOURNAL_H */
