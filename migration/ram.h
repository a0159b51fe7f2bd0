/*
 * ram.h: the RAM section ("ram", instance 0, version 4) of a migration
 * stream, load side.
 *
 * Owner: the incoming migration thread.
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include "qemu/osdep.h"

#include <sys/uio.h>
#include <zlib.h>

#include "exec/ram_addr.h"
#include "migration/qemu-file.h"

typedef struct RAMLoadStats {
    uint64_t normal;        /* PAGE records */
    uint64_t duplicate;     /* ZERO records */
    uint64_t xbzrle;        /* XBZRLE records */
    uint64_t compressed;    /* COMPRESS_PAGE records */
    uint64_t normal_bytes;
} RAMLoadStats;

#define RAM_WRITE_RUN_PAGES   64

/*
 * Where page records land when not in the RAM files.  The loader knows
 * only this interface; inside a COLO checkpoint it is the COLO cache
 * (colo_cache_sink, colo-cache.c), which owns its routing end to end.
 */
typedef struct RAMPageSink {
    const char *name;           /* for errors: "COLO cache" */
    /* The memory the page at @offset of @rb is written to, or NULL if
     * @rb cannot take pages here. */
    uint8_t *(*target)(RAMBlock *rb, uint64_t offset);
    /* The version of that page an XBZRLE record was encoded against. */
    const uint8_t *(*base)(RAMBlock *rb, uint64_t offset);
    /* True if the target page certainly reads as zero. */
    bool (*known_zero)(RAMBlock *rb, uint64_t offset);
    /* The target page has its new contents. */
    void (*done)(RAMBlock *rb, uint64_t offset);
} RAMPageSink;

typedef struct RAMLoadState {
    RAMList *ram_list;
    /*
     * The block CONTINUE records refer to.  QEMU's sender keeps it across
     * sections and COLO checkpoints, so it lives for the whole incoming
     * migration.
     */
    RAMBlock *last_block;
    bool ignore_shared;     /* x-ignore-shared agreed with the source */
    bool zero_fill_strict;  /* refuse ZERO records with a non-zero fill */
    /*
     * NULL: pages go to the RAM files.  Set by colo.c for the live part of
     * each COLO checkpoint (colo_cache_sink); the initial migration writes
     * RAM directly: unlike QEMU's, our cache needs no copy of it.
     */
    const RAMPageSink *sink;
    bool mem_size_seen;

    /*
     * Runs of PAGE records for consecutive pages of one block are written
     * to the block's file with one pwritev(), straight from the stream
     * buffer: far cheaper than faulting each page of the shared mapping
     * in (bench/ram-write).  The iovecs point into the QEMUFile buffer, so
     * the run is flushed before the buffer can move.
     */
    RAMBlock *run_block;
    uint64_t run_offset;
    int run_pages;
    struct iovec run_iov[RAM_WRITE_RUN_PAGES];

    z_stream zs;
    bool zs_ready;
    uint8_t scratch[4096];
    RAMLoadStats stats;
} RAMLoadState;

void ram_load_init(RAMLoadState *rs, RAMList *ram_list);
void ram_load_cleanup(RAMLoadState *rs);

/* Loads one START/PART/END body (records up to EOS). */
bool ram_load_section(RAMLoadState *rs, QEMUFile *f, GError **errp);

#endif /* MIGRATION_RAM_H */
