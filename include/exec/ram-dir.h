/*
 * ram-dir.h: every name colo-secondary itself keeps in a RAM folder.
 *
 * The folder also holds one file per RAM block, named by the stream; a
 * block may never take one of these names (ram_dir_name_reserved(),
 * system/physmem.c), nor any of them with ".tmp" added (what is being
 * written).  Everyone who opens one of these files takes its name from
 * here, so the reserved list cannot miss one.
 */
#ifndef EXEC_RAM_DIR_H
#define EXEC_RAM_DIR_H

/* the committed checkpoint's record and the commit's journal
 * (migration/colo-journal.c) */
#define COLO_CHECKPOINT_FILE    "colo-checkpoint"
#define COLO_JOURNAL_FILE       "colo-journal"
/* the RAM cache of the checkpoint in flight (migration/colo-cache.c) */
#define COLO_CACHE_DIR          "colo-cache"
/* the disks' epoch caches (block/colo-disk.c) */
#define COLO_DISK_CACHE_DIR     "colo-disk-cache"
/* the device state of the committed checkpoint, and its description
 * (migration/device-state.c) */
#define DEVICE_STATE_FILE       "device-state.bin"
#define VMDESC_FILE             "vmdesc.json"
/* what a failover writes and starts (system/failover.c) */
#define FAILOVER_QMP_FILE       "failover-qemu.qmp"
#define FAILOVER_LOG_FILE       "failover-qemu.log"
/* the FIFO a failover into libvirt streams its save image through
 * (system/failover-libvirt.c) */
#define FAILOVER_SAVE_FIFO      "failover-libvirt.save"

/* held locked (flock) by the folder's colo-secondary, and by the QEMU a
 * failover started on the folder's RAM files, as long as they run */
#define RAM_DIR_LOCK_FILE       "colo-owner.lock"

/* All of them, for the reserved list. */
#define RAM_DIR_OWN_NAMES                                               \
    COLO_CHECKPOINT_FILE, COLO_JOURNAL_FILE, COLO_CACHE_DIR,            \
    COLO_DISK_CACHE_DIR, DEVICE_STATE_FILE, VMDESC_FILE,                \
    FAILOVER_QMP_FILE, FAILOVER_LOG_FILE,         \
    FAILOVER_SAVE_FIFO, RAM_DIR_LOCK_FILE

#endif /* EXEC_RAM_DIR_H */
