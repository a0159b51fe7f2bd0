/*
 * colo-cache.h: the secondary's per-RAMBlock COLO cache (see the picture
 * at the top of colo-cache.c).
 *
 * Owner: the COLO incoming thread; colo.c reserves the cache when COLO
 * starts and releases it when its checkpoint loop ends.
 */
#ifndef MIGRATION_COLO_CACHE_H
#define MIGRATION_COLO_CACHE_H

#include "qemu/osdep.h"

#include "block/blockdev.h"
#include "exec/ram_addr.h"
#include "migration/colo-journal.h"
#include "migration/ram.h"

typedef struct ColoFlushStats {
    uint64_t pages;         /* pages copied into the RAM files */
    uint64_t runs;          /* contiguous runs written */
    int64_t journal_us;     /* writing the journal (the commit point) */
    int64_t total_us;       /* journal, copy and retiring the journal */
    uint64_t disk_pages;    /* disk pages copied into the images */
    int64_t disk_us;        /* of total_us: that copy */
} ColoFlushStats;

/* The loader's page sink while a checkpoint's RAM part streams in: pages
 * land in colo_cache and are marked in bmap (the route, see the top of
 * colo-cache.c). */
extern const RAMPageSink colo_cache_sink;

/* Gives every migrated block a colo_cache and an empty bmap.  On failure
 * nothing stays allocated and the error names the block and its size. */
bool colo_init_ram_cache(RAMList *rl, GError **errp);
/* Commits checkpoint @rec: makes room in the disk images for the sealed
 * disk pages of @disks (NULL: none), writes the journal (colo-journal.h),
 * copies exactly the pages whose bmap bit is set from the cache into the
 * RAM files and the sealed disk pages into the images, makes @rec the
 * folder's record and clears the bits.  @rec->disks lists @disks' disks in
 * the same order. */
bool colo_flush_ram_cache(RAMList *rl, ColoRecord *rec, BlockDevices *disks,
                          ColoFlushStats *stats, GError **errp);
/* Gives the memory of flushed cache pages back to the kernel; the cache
 * keeps its addresses and reads as zero until written again. */
void colo_trim_ram_cache(RAMList *rl);
/* Unmaps the caches and removes their files unless a journal needs them
 * (idempotent): a checkpoint cut off is forgotten. */
void colo_release_ram_cache(RAMList *rl);

/* Bytes of address space reserved for caches, and bytes resident now. */
uint64_t colo_cache_reserved_bytes(RAMList *rl);
uint64_t colo_cache_resident_bytes(RAMList *rl);

#endif /* MIGRATION_COLO_CACHE_H */
