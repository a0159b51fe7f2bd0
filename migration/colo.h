/*
 * colo.h: the secondary side of QEMU's COLO checkpoint protocol.
 *
 * Owner: the incoming migration thread, which becomes the COLO incoming
 * thread once the initial migration has been loaded.
 */
#ifndef MIGRATION_COLO_H
#define MIGRATION_COLO_H

#include "qemu/osdep.h"

#include "block/blockdev.h"
#include "migration/colo-cache.h"
#include "migration/colo-journal.h"
#include "migration/savevm.h"
#include "migration/wire.h"

typedef struct ColoCheckpointStats {
    uint64_t number;            /* 1 for the first checkpoint */
    uint64_t ram_pages;         /* page records in the checkpoint */
    uint64_t ram_bytes;         /* bytes of the RAM part on the wire */
    uint64_t device_bytes;      /* size of the device-state blob */
    uint64_t flushed_pages;
    int64_t journal_us;         /* of that: writing the journal */
    int64_t flush_us;           /* journal, page copy, record */
    uint64_t disk_pages;        /* disk pages committed into the images */
    int64_t disk_us;            /* of flush_us: copying them */
    int64_t commit_us;          /* VMSTATE_RECEIVED -> VMSTATE_LOADED */
    int64_t total_us;           /* CHECKPOINT_REQUEST -> VMSTATE_LOADED */
} ColoCheckpointStats;

typedef struct ColoIncomingHooks {
    /* CHECKPOINT_REQUEST has come: checkpoint @number begins (where a
     * secondary that runs the guest stops it: QEMU's STOP event). */
    void (*checkpoint_begin)(void *opaque, uint64_t number);
    /* The checkpoint is in the RAM files and @ds is the committed device
     * state; called before VMSTATE_LOADED goes out (QEMU's RESUME). */
    bool (*committed)(void *opaque, VMDeviceState *ds,
                      const ColoCheckpointStats *st, GError **errp);
    /* True once x-colo-lost-heartbeat has been asked for. */
    bool (*failover_requested)(void *opaque);
    void *opaque;
} ColoIncomingHooks;

typedef struct ColoIncoming {
    LoadVMState *lv;            /* its QEMUFile is the main stream */
    RAMList *ram_list;
    ColoRecord *record;         /* required: blocks, machine; number and
                                 * devices are set per checkpoint */
    QEMUFile *to_primary;       /* the reverse direction of the socket */
    BlockDevices *disks;        /* the disks replicated with RAM, or NULL */
    ColoIncomingHooks hooks;
    /* The last committed checkpoint (number 0: the initial state). */
    ColoCheckpointStats last;
} ColoIncoming;

/* Reserves the COLO cache of every block of @ci->ram_list.  On failure
 * nothing stays reserved and the error names the block and its size. */
bool colo_incoming_setup(ColoIncoming *ci, GError **errp);
/* Bytes of address space the cache reserves (0 outside a session). */
uint64_t colo_incoming_cache_reserved(ColoIncoming *ci);
/* Releases the cache of a session that will not run after all. */
void colo_incoming_cleanup(ColoIncoming *ci);

/* After colo_incoming_setup(): sends CHECKPOINT_READY, then serves
 * checkpoints until the stream fails or a failover is requested, and
 * releases the cache.  Always returns false with @errp set (the loop only
 * ends by an error); the RAM files and committed device state are those
 * of the last complete checkpoint. */
bool colo_incoming_run(ColoIncoming *ci, GError **errp);

#endif /* MIGRATION_COLO_H */
