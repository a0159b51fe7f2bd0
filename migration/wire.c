/*
 * wire.c: names of the wire constants of include/migration/wire.h, for
 * error messages and logs.
 */
#include "qemu/osdep.h"

#include "migration/wire.h"

const char *colo_message_name(uint32_t msg)
{
    static const char *const names[] = {
        [COLO_MESSAGE_CHECKPOINT_READY] = "CHECKPOINT_READY",
        [COLO_MESSAGE_CHECKPOINT_REQUEST] = "CHECKPOINT_REQUEST",
        [COLO_MESSAGE_CHECKPOINT_REPLY] = "CHECKPOINT_REPLY",
        [COLO_MESSAGE_VMSTATE_SEND] = "VMSTATE_SEND",
        [COLO_MESSAGE_VMSTATE_SIZE] = "VMSTATE_SIZE",
        [COLO_MESSAGE_VMSTATE_RECEIVED] = "VMSTATE_RECEIVED",
        [COLO_MESSAGE_VMSTATE_LOADED] = "VMSTATE_LOADED",
    };

    if (msg == COLO_MESSAGE_X_STANDBY_ERROR) {
        return "X_STANDBY_ERROR";
    }
    return msg < COLO_MESSAGE__MAX ? names[msg] : "(unknown)";
}
