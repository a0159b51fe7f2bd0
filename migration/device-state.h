/*
 * device-state.h: the device part of a migration, kept as bytes.
 *
 * colo-standby does not emulate devices, so it cannot parse a FULL
 * section's body; it keeps the raw bytes so that a stock QEMU can load
 * them at failover.  The bytes are stored in the form a COLO checkpoint
 * carries them: every FULL section (header, body, footer) back to back,
 * then one EOF byte.
 *
 * Owner: the incoming migration thread builds one; once committed it is
 * immutable and may be read from any thread (hold a reference).
 */
#ifndef MIGRATION_DEVICE_STATE_H
#define MIGRATION_DEVICE_STATE_H

#include "qemu/osdep.h"

#include "exec/ram-dir.h"

#include "migration/qemu-file.h"

typedef struct DeviceSection {
    char idstr[256];
    uint32_t section_id;
    uint32_t instance_id;
    uint32_t version_id;
    size_t offset;          /* of the 0x04 byte inside the blob */
    size_t length;          /* header + body + footer */
} DeviceSection;

typedef struct VMDeviceState {
    gint refcount;
    GBytes *blob;           /* FULL sections, then EOF (0x00) */
    GArray *sections;       /* of DeviceSection; empty if not delimited */
    char *vmdesc_json;      /* the stream's VMDESCRIPTION, or NULL */
    char runstate[33];      /* from the globalstate section, or "" */
} VMDeviceState;

/* Largest device part (sections plus JSON) we are willing to buffer. */
#define DEVICE_STATE_MAX_BYTES   (256 * 1024 * 1024)
/* Largest VMDESCRIPTION JSON we accept. */
#define VMDESC_MAX_BYTES         (64 * 1024 * 1024)

VMDeviceState *device_state_ref(VMDeviceState *ds);
void device_state_unref(VMDeviceState *ds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VMDeviceState, device_state_unref)

/*
 * The last VMDESCRIPTION read and its parse, for a reader of many streams
 * from one QEMU (colo-primary's captures: the same text every time, and
 * parsing it was most of the time a capture took).  Only a text equal
 * byte for byte reuses the parse.  Owned by one thread.
 */
typedef struct VmdescMemo VmdescMemo;
VmdescMemo *vmdesc_memo_new(void);
void vmdesc_memo_free(VmdescMemo *m);

/*
 * The next byte of @f is a SECTION_FULL.  Reads every FULL section, the
 * EOF and the VMDESCRIPTION that follows, and delimits the sections with
 * the lengths the JSON gives; each footer is checked.  Consumes exactly up
 * to the end of the JSON.  @memo (may be NULL) spares parsing a
 * VMDESCRIPTION equal to the last one.
 */
VMDeviceState *device_state_read_stream_tail(QEMUFile *f, VmdescMemo *memo,
                                             GError **errp);

/* A device blob as a COLO checkpoint sends it (undelimited, kept whole);
 * it must end with the EOF byte. */
VMDeviceState *device_state_from_blob(GBytes *blob, GError **errp);

/* The files device_state_save() writes into a RAM folder:
 * DEVICE_STATE_FILE and VMDESC_FILE (exec/ram-dir.h). */

/* Writes <dir>/device-state.bin (and vmdesc.json) atomically. */
bool device_state_save(VMDeviceState *ds, const char *dir, GError **errp);
/* The device-state.bin part alone, from the sections' bytes. */
bool device_state_save_blob(GBytes *blob, const char *dir, GError **errp);

#endif /* MIGRATION_DEVICE_STATE_H */
