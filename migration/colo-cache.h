/*
 * colo-cache.h: the secondary's per-RAMBlock COLO cache (see the picture
 * at the top of colo-cache.c).
 *
 * Owner: the incoming migration thread (which is the COLO incoming
 * thread); colo_release_ram_cache() runs after it has been joined.
 */
#ifndef MIGRATION_COLO_CACHE_H
#define MIGRATION_COLO_CACHE_H

#include "qemu/osdep.h"

#include "exec/ram_addr.h"

typedef struct ColoFlushStats {
    uint64_t pages;         /* pages copied into the RAM files */
    uint64_t runs;          /* contiguous runs written */
} ColoFlushStats;

/* Gives every migrated block a colo_cache and an empty bmap.  On failure
 * nothing stays allocated and the error names the block and its size. */
bool colo_init_ram_cache(RAMList *rl, GError **errp);
/* Copies exactly the pages whose bmap bit is set from the cache into the
 * RAM files and clears the bits. */
bool colo_flush_ram_cache(RAMList *rl, ColoFlushStats *stats, GError **errp);
/* Gives the memory of flushed cache pages back to the kernel; the cache
 * keeps its addresses and reads as zero until written again. */
void colo_trim_ram_cache(RAMList *rl);
/* Forgets pages of a checkpoint that will never be committed. */
void colo_discard_ram_cache(RAMList *rl);
void colo_release_ram_cache(RAMList *rl);

/* Bytes of address space reserved for caches, and bytes resident now. */
uint64_t colo_cache_reserved_bytes(RAMList *rl);
uint64_t colo_cache_resident_bytes(RAMList *rl);

#endif /* MIGRATION_COLO_CACHE_H */
