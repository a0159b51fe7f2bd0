/*
 * device-capture.h: an x-ignore-shared migration of the stopped VM, read
 * by our own loader: the device-state blob a checkpoint ships, the
 * machine type, the RAM section id, and the non-shared blocks (ROMs) with
 * their contents.
 *
 * Owner: the session thread.
 */
#ifndef COLO_PRIMARY_DEVICE_CAPTURE_H
#define COLO_PRIMARY_DEVICE_CAPTURE_H

#include "qemu/osdep.h"

#include "exec/ram_addr.h"
#include "migration/savevm.h"

typedef struct DeviceCapture {
    char *dir;                  /* the blocks' files; removed on free */
    RAMList *rl;
    QEMUFile *f;
    LoadVMState lv;             /* lv.devices: the blob and its JSON */
} DeviceCapture;

/* @bytes from vm_control_capture().  @main_block of @main_size bytes must
 * be in it, and left out as shared.  @memo: the captures' VMDESCRIPTION
 * memo (one per QEMU), or NULL. */
DeviceCapture *device_capture_parse(GBytes *bytes, const char *dir,
                                    const char *main_block,
                                    uint64_t main_size, VmdescMemo *memo,
                                    GError **errp);
void device_capture_free(DeviceCapture *dc);

#endif /* COLO_PRIMARY_DEVICE_CAPTURE_H */
