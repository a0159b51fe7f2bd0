/*
 * ram_addr.h: the guest's RAM blocks as colo-standby holds them.
 *
 * Each RAMBlock is a MAP_SHARED mapping of one file in the RAM folder
 * (<ram-dir>/<idstr without its leading '/'>), so the memory outlives the
 * process and a stock QEMU can later map the very same pages with
 * memory-backend-file,share=on.  A file that already exists with the right
 * size is used as it is: that is how a stream saved with x-ignore-shared
 * finds the RAM it does not carry.
 *
 * Owner: the incoming migration thread creates, fills and frees blocks; the
 * monitor only reads the list after the migration thread is joined, or
 * through the counters that migration.c publishes.
 */
#ifndef EXEC_RAM_ADDR_H
#define EXEC_RAM_ADDR_H

#include "qemu/osdep.h"

/* Longest RAMBlock name we accept; QEMU's real ones (a qdev path plus a
 * name) stay far below it. */
#define RAM_BLOCK_IDSTR_MAX   128
/* Upper bound for one block: 16 TiB, far above anything we map here. */
#define RAM_BLOCK_MAX_BYTES   (UINT64_C(1) << 44)
/* Upper bound for the number of blocks in one stream. */
#define RAM_BLOCKS_MAX        1024

typedef struct RAMBlock {
    char idstr[RAM_BLOCK_IDSTR_MAX + 1];
    uint8_t *host;              /* MAP_SHARED view of the block's file */
    uint64_t used_length;       /* bytes the stream announced */
    uint64_t max_length;        /* bytes mapped (== used_length here) */
    uint64_t mr_addr;           /* address announced under x-ignore-shared */
    bool has_mr_addr;
    char *path;                 /* the RAM file */
    int fd;
    bool preexisting;           /* the file was there before we started */
    bool ignored;               /* skipped by x-ignore-shared: never written */
    unsigned long *receivedmap; /* pages written during this migration */
    unsigned long *allocmap;    /* files of ours: pages with storage; NULL
                                   once all have it (or not our file) */

    /*
     * COLO (docs/colo.rst): checkpoint pages land here first and reach
     * @host only when the whole checkpoint has arrived.  NULL outside COLO.
     */
    uint8_t *colo_cache;        /* MAP_SHARED view of the cache file */
    int colo_cache_fd;          /* valid while colo_cache is set */
    int colo_cache_error;       /* errno of the last page it could not take */
    unsigned long *bmap;        /* pages held in colo_cache, not yet flushed */
} RAMBlock;

/* What a failover needs to know of a RAM block, kept after the RAM list
 * itself is gone (and in the checkpoint record, migration/colo-journal.h). */
typedef struct RAMBlockSummary {
    char idstr[RAM_BLOCK_IDSTR_MAX + 1];
    uint64_t used_length;
    uint64_t mr_addr;
} RAMBlockSummary;

typedef struct RAMList {
    char *dir;                  /* the RAM folder */
    GPtrArray *blocks;          /* of RAMBlock*, in announcement order */
    uint64_t max_total;         /* refuse blocks beyond this sum; 0: none */
} RAMList;

RAMList *ram_list_new(const char *dir);
void ram_list_free(RAMList *rl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RAMList, ram_list_free)

RAMBlock *ram_list_find(RAMList *rl, const char *idstr);
/* Creates (or opens, if its file already has @length bytes) a block. */
RAMBlock *ram_list_add(RAMList *rl, const char *idstr, uint64_t length,
                       GError **errp);
uint64_t ram_list_total(RAMList *rl);

/* Whether @name (a first path component) is one of the files
 * colo-secondary keeps in a RAM folder, not usable for a block. */
bool ram_dir_name_reserved(const char *name);
/* Locks the RAM folder @dir for its one user (RAM_DIR_LOCK_FILE); the
 * descriptor holding the lock, close-on-exec, or -1 with @errp set (code
 * EBUSY if another process holds it). */
int ram_dir_lock(const char *dir, GError **errp);
/* The file a block with @idstr lives in, or NULL (error set) if the name
 * cannot be a file name under the RAM folder. */
char *ram_block_path(const char *dir, const char *idstr, GError **errp);

static inline uint64_t ram_block_pages(const RAMBlock *rb)
{
    return rb->used_length >> 12;
}

/* Msync and drop nothing: the files are the state. */
void ram_block_sync(RAMBlock *rb);

/*
 * A file of ours gets storage as pages are written, not when the stream
 * announces the block (a peer's announcement costs no memory).  Before a
 * write through @host (a fault there on a full filesystem would be a
 * SIGBUS), the pages of [@offset, @offset + @len) get theirs with
 * fallocate(); false (error set) if there is no room.
 */
bool ram_block_reserve(RAMBlock *rb, uint64_t offset, uint64_t len,
                       GError **errp);
/* Every page of every block, once the state they hold is committed (a
 * failover QEMU must never fault on a full filesystem). */
bool ram_list_reserve_all(RAMList *rl, GError **errp);
/* Removes the files this list created (not the ones that were there), and
 * the folders made for them: what a stream that failed before anything
 * was committed leaves behind. */
void ram_list_remove_created(RAMList *rl);

#endif /* EXEC_RAM_ADDR_H */
