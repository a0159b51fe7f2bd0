/*
 * dirty-tracking.h: which way a session finds the pages the guest
 * changed: soft-dirty bits of QEMU's mapping of the RAM file where they
 * can be trusted, digests of every page otherwise (dirty-scan.h).
 *
 * --dirty-tracking auto (the default) takes soft-dirty only when all of
 * these hold, and says which one did not:
 *   - the kernel sets soft-dirty bits (CONFIG_MEM_SOFT_DIRTY; Debian's
 *     kernels do, this development host's does not);
 *   - QEMU is found: its pid (the QMP socket's peer, or --qemu-pid) maps
 *     the RAM file, shared, at one address;
 *   - QEMU runs the guest with TCG: under KVM the guest writes through
 *     KVM's own page tables; whether those writes set the bits was not
 *     measured (no host here has both KVM and soft-dirty), so the digest
 *     stays unless --dirty-tracking soft-dirty says otherwise;
 *   - no swap is on, or QEMU's memory is locked (-overcommit mem-lock=on):
 *     a shared page written, then swapped out loses its bit.
 * --dirty-tracking soft-dirty insists (an error if it cannot attach);
 * digest never tries.
 */
#ifndef COLO_PRIMARY_DIRTY_TRACKING_H
#define COLO_PRIMARY_DIRTY_TRACKING_H

#include "qemu/osdep.h"

#include "monitor/qmp-client.h"
#include "tools/colo-primary/dirty-scan.h"

typedef enum DirtyTrackingMode {
    DIRTY_TRACKING_AUTO,
    DIRTY_TRACKING_DIGEST,
    DIRTY_TRACKING_SOFT_DIRTY,
} DirtyTrackingMode;

/* "auto", "digest", "soft-dirty"; false for anything else. */
bool dirty_tracking_parse(const char *s, DirtyTrackingMode *mode);

/* The address of the shared mapping of @ram_file (its whole @size) in
 * process @pid. */
bool dirty_tracking_find_mapping(int pid, const char *ram_file,
                                 uint64_t size, uint64_t *addr,
                                 GError **errp);

/* At a session's start, before the initial copy: attaches @scan to
 * soft-dirty if @mode allows and everything above holds.  *@why gets the
 * reason the digest is used (NULL when soft-dirty is).  False (error
 * set) only if @mode is SOFT_DIRTY and it cannot be had. */
bool dirty_tracking_choose(DirtyScan *scan, QmpClient *qemu,
                           const char *ram_file, uint64_t size,
                           DirtyTrackingMode mode, int qemu_pid,
                           char **why, GError **errp);

#endif /* COLO_PRIMARY_DIRTY_TRACKING_H */
