/*
 * proc-status.h: one number of /proc/PID/status (Tgid, VmLck, ...), for
 * what colo-primary learns about QEMU's process.
 *
 * Owner: any thread.
 */
#ifndef COLO_PRIMARY_PROC_STATUS_H
#define COLO_PRIMARY_PROC_STATUS_H

#include "qemu/osdep.h"

/* The number after "@field:" in /proc/@pid/status (kB fields in kB). */
bool proc_status_field(int pid, const char *field, uint64_t *value);

#endif /* COLO_PRIMARY_PROC_STATUS_H */
