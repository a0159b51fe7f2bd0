/*
 * wire.h: every number that travels in QEMU's migration stream, in one place.
 *
 * The values are QEMU's wire format (see docs/migration-wire.rst and the
 * project's shared MIGRATION-WIRE notes); they never change meaning, and
 * each carries a note on when it appeared or went away.
 */
#ifndef MIGRATION_WIRE_H
#define MIGRATION_WIRE_H

#include <stdint.h>

/* File header: "QEVM" and version 3.  Version 2 died with QEMU 0.13. */
#define QEMU_VM_FILE_MAGIC           0x5145564dU
#define QEMU_VM_FILE_VERSION         0x00000003U

/* Record type bytes at the top level of a stream. */
enum {
    QEMU_VM_EOF                = 0x00, /* end of the main state */
    QEMU_VM_SECTION_START      = 0x01, /* first chunk of a live handler */
    QEMU_VM_SECTION_PART       = 0x02, /* further chunks (short header) */
    QEMU_VM_SECTION_END        = 0x03, /* last chunk (short header) */
    QEMU_VM_SECTION_FULL       = 0x04, /* whole state of a device */
    QEMU_VM_SUBSECTION         = 0x05, /* only inside a vmstate body */
    QEMU_VM_VMDESCRIPTION      = 0x06, /* JSON after EOF (informational) */
    QEMU_VM_CONFIGURATION      = 0x07, /* right after the header (2.4+) */
    QEMU_VM_COMMAND            = 0x08, /* in-band commands (2.5+) */
    QEMU_VM_SECTION_FOOTER     = 0x7e, /* after every section body (2.4+) */
};

/* QEMU_VM_COMMAND numbers and their fixed payload lengths. */
enum {
    MIG_CMD_INVALID            = 0,
    MIG_CMD_OPEN_RETURN_PATH   = 1,  /* len 0 */
    MIG_CMD_PING               = 2,  /* len 4: be32 value for PONG */
    MIG_CMD_POSTCOPY_ADVISE    = 3,  /* len 0 or 16 */
    MIG_CMD_POSTCOPY_LISTEN    = 4,
    MIG_CMD_POSTCOPY_RUN       = 5,
    MIG_CMD_POSTCOPY_RAM_DISCARD = 6,
    MIG_CMD_PACKAGED           = 7,  /* len 4, then be32 more bytes */
    MIG_CMD_ENABLE_COLO        = 8,  /* len 0 */
    MIG_CMD_POSTCOPY_RESUME    = 9,
    MIG_CMD_RECV_BITMAP        = 10,
    MIG_CMD_SWITCHOVER_START   = 11, /* len 0; new in 10.0, fatal for 7.2 */
    MIG_CMD_MAX
};

/* Return-path messages (destination to source): be16 type, be16 len. */
enum {
    MIG_RP_MSG_INVALID         = 0,
    MIG_RP_MSG_SHUT            = 1,  /* be32 0 = ok, 1 = error; last one */
    MIG_RP_MSG_PONG            = 2,  /* be32 echoed from PING */
    MIG_RP_MSG_SWITCHOVER_ACK  = 7,  /* 10.0 */
};

/*
 * RAM record flags.  They ride in the low bits of a page-aligned offset,
 * which is why none may reach 0x400 (TARGET_PAGE_SIZE is at least 1 KiB).
 * 0x001 (FULL) was retired before QEMU 1.0 and is refused.
 */
#define RAM_SAVE_FLAG_FULL           0x001U  /* obsolete, refused */
#define RAM_SAVE_FLAG_ZERO           0x002U  /* was "COMPRESS" before 2.x */
#define RAM_SAVE_FLAG_MEM_SIZE       0x004U
#define RAM_SAVE_FLAG_PAGE           0x008U
#define RAM_SAVE_FLAG_EOS            0x010U
#define RAM_SAVE_FLAG_CONTINUE       0x020U
#define RAM_SAVE_FLAG_XBZRLE         0x040U
#define RAM_SAVE_FLAG_HOOK           0x080U  /* RDMA only */
#define RAM_SAVE_FLAG_COMPRESS_PAGE  0x100U  /* zlib; removed in QEMU 9.1 */
#define RAM_SAVE_FLAG_MULTIFD_FLUSH  0x200U  /* QEMU 8.0+ */

#define RAM_SECTION_IDSTR            "ram"
#define RAM_SECTION_VERSION          4

/* XBZRLE record: encoding byte, then be16 length <= TARGET_PAGE_SIZE. */
#define XBZRLE_ENCODING_BYTE         0x01

/* x86 target pages. */
#define TARGET_PAGE_BITS             12
#define TARGET_PAGE_SIZE             (1U << TARGET_PAGE_BITS)
#define TARGET_PAGE_MASK             (~(uint64_t)(TARGET_PAGE_SIZE - 1))

/* COLO messages: raw be32 values on both directions of the socket. */
typedef enum COLOMessage {
    COLO_MESSAGE_CHECKPOINT_READY   = 0,
    COLO_MESSAGE_CHECKPOINT_REQUEST = 1,
    COLO_MESSAGE_CHECKPOINT_REPLY   = 2,
    COLO_MESSAGE_VMSTATE_SEND       = 3,
    COLO_MESSAGE_VMSTATE_SIZE       = 4, /* followed by be64 byte count */
    COLO_MESSAGE_VMSTATE_RECEIVED   = 5,
    COLO_MESSAGE_VMSTATE_LOADED     = 6,
    COLO_MESSAGE__MAX
} COLOMessage;

/*
 * colo-standby's own word, never sent by QEMU: the secondary gives up and
 * tells why, right before it shuts its sending side down.  After the word:
 * be32 errno (0 if none), be16 length (at most COLO_STANDBY_ERROR_MAX),
 * that many bytes of UTF-8 text.  A QEMU primary takes it for an unknown
 * message and ends COLO, as it would on the closed connection.
 */
#define COLO_MESSAGE_X_STANDBY_ERROR 0x58455252U      /* "XERR" */
#define COLO_STANDBY_ERROR_MAX       1024

/* "CHECKPOINT_READY" ... for @msg, "(unknown)" past the last (wire.c). */
const char *colo_message_name(uint32_t msg);

#endif /* MIGRATION_WIRE_H */
