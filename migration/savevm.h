/*
 * savevm.h: the top level of an incoming migration stream: header,
 * configuration, sections, commands, EOF.
 *
 * Owner: the incoming migration thread.
 */
#ifndef MIGRATION_SAVEVM_H
#define MIGRATION_SAVEVM_H

#include "qemu/osdep.h"

#include "migration/device-state.h"
#include "migration/qemu-file.h"
#include "migration/ram.h"

typedef struct LoadVMHooks {
    /* Called on ENABLE_COLO (after the x-colo check). */
    bool (*enable_colo)(void *opaque, GError **errp);
    /* Called after each RAM section, for statistics. */
    void (*ram_progress)(void *opaque);
    void *opaque;
} LoadVMHooks;

typedef struct LoadVMState {
    QEMUFile *f;                /* main stream */
    int return_path_fd;         /* socket fd usable for replies, or -1 */
    QEMUFile *to_src;           /* return path, open after OPEN_RETURN_PATH */

    /* Local capabilities that shape the stream. */
    bool cap_ignore_shared;
    bool cap_colo;

    RAMLoadState ram;
    int64_t ram_section_id;     /* -1 until the RAM START section */
    char machine[257];          /* machine type from the configuration */
    bool colo_requested;        /* ENABLE_COLO seen */
    bool switchover_started;
    VMDeviceState *devices;     /* FULL sections of the stream, kept */
    char *vmdesc_json;          /* VMDESCRIPTION when there were no FULLs */
    VmdescMemo *vmdesc_memo;    /* the reader's, lent; NULL: none */

    LoadVMHooks hooks;
} LoadVMState;

void loadvm_init(LoadVMState *lv, QEMUFile *f, RAMList *ram_list);
void loadvm_cleanup(LoadVMState *lv);

/* Header, configuration and records up to (and including) EOF and the
 * VMDESCRIPTION. */
bool qemu_loadvm_state(LoadVMState *lv, GError **errp);

/* Record loop only (no header): used for COLO checkpoints' live state.
 * Stops after EOF; FULL sections are refused here. */
bool qemu_loadvm_state_main(LoadVMState *lv, GError **errp);

/* Sends a return-path message (type, payload). */
bool loadvm_send_rp(LoadVMState *lv, uint16_t type, const void *data,
                    uint16_t len, GError **errp);

/* Parses the "major.minor" at the end of a machine type; false if none. */
bool machine_type_version(const char *machine, int *major, int *minor);

#endif /* MIGRATION_SAVEVM_H */
