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

#include "exec/ram_addr.h"
#include "migration/ram.h"

/* The loader's page sink while a checkpoint's RAM part streams in: pages
 * land in colo_cache and are marked in bmap (the route, see the top of
 * colo-cache.c). */
extern const RAMPageSink colo_cache_sink;

/* Gives every migrated block a colo_cache and an empty bmap.  On failure
 * nothing stays allocated and the error names the block and its size. */
bool colo_init_ram_cache(RAMList *rl, GError **errp);
/* Its part in a commit (colo-commit.h: colo_cache_commit): the bitmaps
 * into the journal, the marked pages into the RAM files, the bits
 * cleared. */
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
