/*
 * colo-disk.h: one disk image of the protected VM on the standby, and the
 * writes of the checkpoints that have not committed yet.
 *
 * A disk is a raw image file (-blockdev driver=file).  Before COLO runs
 * (the initial synchronisation) writes go straight into the image: there
 * is no committed checkpoint yet for them to spoil.  Once checkpoint 0 is
 * committed the disk caches instead, page by page (4 KiB), in a cache
 * file of its own in the RAM folder:
 *
 *   open    the writes of the epoch now running on the primary
 *   sealed  the writes of checkpoint N: everything the primary wrote
 *           before it stopped the VM for N (colo_disk_seal, on
 *           CHECKPOINT_REQUEST); copied into the image when N commits,
 *           inside the same journal as its RAM (colo-journal.h)
 *
 * Reads see image, then sealed, then open: what the primary's disk holds.
 * The image itself only ever holds a committed checkpoint.
 *
 * Threads: NBD connection threads read and write; the migration thread
 * seals, commits and discards; everything under the disk's lock except
 * the copy of a sealed set into the image, which nothing else touches.
 */
#ifndef BLOCK_COLO_DISK_H
#define BLOCK_COLO_DISK_H

#include "qemu/osdep.h"

#include "exec/ram-dir.h"

#define COLO_DISK_PAGE          4096
/* Default bound of one disk's cache (both epochs), bytes. */
#define COLO_DISK_CACHE_DEFAULT (1024ull << 20)

typedef struct ColoDisk ColoDisk;

/* One page of a sealed epoch: where it goes, where it is. */
typedef struct ColoDiskExtent {
    uint64_t page;              /* in the image, COLO_DISK_PAGE units */
    uint64_t slot;              /* in the cache file, same units */
} ColoDiskExtent;

typedef struct ColoDiskStats {
    uint64_t size;
    bool caching;
    uint64_t open_pages;
    uint64_t sealed_pages;
    uint64_t cache_limit;       /* bytes */
    uint64_t reads, writes, flushes, trims, zeroes;
    uint64_t bytes_read, bytes_written;
    uint64_t direct_bytes;      /* written straight into the image */
    uint64_t commits;
    uint64_t last_commit_pages;
    int64_t last_apply_us;
    uint64_t discarded_pages;
} ColoDiskStats;

/* Opens the raw image @filename as node @node; the cache file will be
 * <@ram_dir>/colo-disk-cache/<node>, at most @cache_limit bytes. */
ColoDisk *colo_disk_open(const char *node, const char *filename,
                         bool read_only, const char *ram_dir,
                         uint64_t cache_limit, GError **errp);
void colo_disk_close(ColoDisk *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ColoDisk, colo_disk_close)

const char *colo_disk_node(const ColoDisk *d);
const char *colo_disk_filename(const ColoDisk *d);
uint64_t colo_disk_size(const ColoDisk *d);
bool colo_disk_read_only(const ColoDisk *d);
const char *colo_disk_cache_path(const ColoDisk *d);
void colo_disk_stats(ColoDisk *d, ColoDiskStats *st);

/* Called once, on the first write that goes straight into the image
 * (the folder's committed checkpoint, if any, no longer matches it). */
void colo_disk_set_direct_write_hook(ColoDisk *d, void (*fn)(void *),
                                     void *opaque);

/* I/O as a client sees it; the range must lie within the disk.  Errors
 * carry an errno code (EIO, ENOSPC, EPERM...) for the reply. */
bool colo_disk_read(ColoDisk *d, void *buf, uint64_t offset, uint64_t len,
                    GError **errp);
bool colo_disk_write(ColoDisk *d, const void *buf, uint64_t offset,
                     uint64_t len, GError **errp);
/* Zeroes (also TRIM: a trimmed range reads back as zeroes, as a raw
 * image with a punched hole does). */
bool colo_disk_write_zeroes(ColoDisk *d, uint64_t offset, uint64_t len,
                            GError **errp);
bool colo_disk_flush(ColoDisk *d, GError **errp);

/* --- the checkpoint side (migration thread) --- */

/* The first write refused while caching (its error's text; the caller
 * frees it), or NULL: a checkpoint with such a write cannot be whole. */
char *colo_disk_refusal(ColoDisk *d);
/* Checkpoint 0 is committed: from now on writes are cached. */
void colo_disk_start_caching(ColoDisk *d);
/* CHECKPOINT_REQUEST of @number: the open epoch becomes the sealed one. */
void colo_disk_seal(ColoDisk *d, uint64_t number);
/* The sealed pages, sorted by page (the caller frees the array). */
GArray *colo_disk_sealed_extents(ColoDisk *d);
/* Before the commit point: makes sure the image has room for every
 * sealed page (a full filesystem fails here, the image untouched). */
bool colo_disk_reserve(ColoDisk *d, GArray *extents, uint64_t number,
                       GError **errp);
/* After the commit point: copies the sealed pages into the image. */
bool colo_disk_apply(ColoDisk *d, GArray *extents, uint64_t number,
                     GError **errp);
/* The commit is over: the sealed pages' slots are free again. */
void colo_disk_release_sealed(ColoDisk *d, int64_t apply_us);
/* Throws away every uncommitted write (failover, end of COLO). */
void colo_disk_discard(ColoDisk *d);

/* Recovery (colo-journal.c): copies @extents of the cache file @cache into
 * the image @filename of @size bytes. */
bool colo_disk_replay(const char *filename, uint64_t size,
                      const char *cache, GArray *extents, uint64_t *pages,
                      GError **errp);

#endif /* BLOCK_COLO_DISK_H */
