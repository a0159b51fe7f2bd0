/*
 * vm-control.h: what colo-primary asks of the stock QEMU that runs the VM,
 * over its QMP socket: stop, cont, and the device state.
 *
 * The device state is taken with a migration to a UNIX socket of ours (or
 * a descriptor passed to QEMU) while the VM is stopped, with x-ignore-shared on, so the shared main RAM
 * stays out of it: what comes is the device sections and the small
 * non-shared blocks (firmware, option ROMs), a few hundred KiB.
 *
 * Owner: one thread at a time (the session thread while one runs).
 */
#ifndef COLO_PRIMARY_VM_CONTROL_H
#define COLO_PRIMARY_VM_CONTROL_H

#include "qemu/osdep.h"

#include "monitor/qmp-client.h"

typedef struct VmControl VmControl;

/* Connects to QEMU's QMP socket @qmp_path, switches x-ignore-shared on
 * and listens for device-state captures in @work_dir. */
VmControl *vm_control_new(const char *qmp_path, const char *work_dir,
                          GError **errp);
/* The same over @qmp (taken), a client that passes descriptors (libvirt's
 * pass-through): captures go to a socket pair QEMU gets with getfd, so
 * no path of ours must be visible to QEMU (libvirt's namespaces and
 * confinement).  x-ignore-shared is on only during our captures: libvirt
 * may migrate or save the domain between them, and must send its RAM. */
VmControl *vm_control_new_shared(QmpClient *qmp, GError **errp);
void vm_control_free(VmControl *vc);

/* Stops a running VM (@t_stop: the moment just before); a VM that is
 * not running is left as it is and will not be continued by us. */
bool vm_control_stop(VmControl *vc, int64_t *t_stop, GError **errp);
/* Continues the VM if we stopped it; a no-op otherwise. */
bool vm_control_cont(VmControl *vc, GError **errp);
bool vm_control_stopped_by_us(const VmControl *vc);
/* The QMP connection, for others that drive QEMU (the network buffer). */
QmpClient *vm_control_qmp(VmControl *vc);
/* QEMU's run state ("running", "paused", ...), or NULL on error. */
char *vm_control_run_state(VmControl *vc, GError **errp);

/* With the VM stopped: the bytes of an x-ignore-shared migration.  Waits
 * at most @timeout_ms for QEMU.  A VM that has not run since the last
 * capture (someone else paused it) gets that capture again: QEMU will not
 * migrate it twice, and nothing changed.
 *
 * QEMU's migration status is not asked for: QEMU closes the socket in its
 * migration clean-up, on its main thread, after the status is final, so
 * the end of the bytes means the migration is over for every later QMP
 * command (this saves a round trip, 0.6 ms of the pause measured).  The
 * bytes are checked when they are read (device-capture.h); if they do
 * not read, vm_control_capture_failure() tells what QEMU says. */
GBytes *vm_control_capture(VmControl *vc, int timeout_ms, GError **errp);
/* QEMU's last migration, if it failed: "failed: ERROR-DESC"; else NULL. */
char *vm_control_capture_failure(VmControl *vc);

#endif /* COLO_PRIMARY_VM_CONTROL_H */
