/*
 * dirty-tracking.h: which way a session finds the pages the guest
 * changed: a kernel's record of QEMU's writes to its mapping of the RAM
 * file where one can be had and trusted (write-tracker.h), digests of
 * every page otherwise (dirty-scan.h).
 *
 * --dirty-tracking auto (the default) tries, in this order:
 *   - uffd-wp (uffd-wp.h): the kernel has userfaultfd's asynchronous
 *     write protection and PAGEMAP_SCAN (Linux 6.7; tried on memory of
 *     our own), we may trace QEMU (to have it create the userfaultfd) and
 *     the RAM file is on tmpfs or hugetlbfs.  Exact under KVM and TCG.
 *   - soft-dirty (soft-dirty.h): the kernel sets soft-dirty bits
 *     (CONFIG_MEM_SOFT_DIRTY), QEMU runs the guest with TCG (under KVM the
 *     guest writes through KVM's own page tables; whether those set the
 *     bits was not measured, so --dirty-tracking soft-dirty must insist),
 *     and no swap is on or QEMU's memory is locked (a shared page swapped
 *     out loses its bit).
 * and for both: QEMU is found (its pid: the QMP socket's peer, or
 * --qemu-pid) and maps the RAM file, shared, at one address, and no other
 * process maps it writable (a vhost-user back end's writes are not
 * QEMU's).  What each refused is said ("uffd-wp: ...; soft-dirty: ...").
 * --dirty-tracking uffd-wp or soft-dirty insists (an error if it cannot
 * be had); digest never tries.
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
    DIRTY_TRACKING_UFFD_WP,
} DirtyTrackingMode;

/* "auto", "digest", "soft-dirty", "uffd-wp"; false for anything else. */
bool dirty_tracking_parse(const char *s, DirtyTrackingMode *mode);

/* The address of the shared mapping of @ram_file (its whole @size) in
 * process @pid. */
bool dirty_tracking_find_mapping(int pid, const char *ram_file,
                                 uint64_t size, uint64_t *addr,
                                 GError **errp);

/* At a session's start, before the initial copy: gives @scan the first
 * tracker @mode allows that can be had.  *@why gets what each method
 * tried before refused (NULL if none was).  False (error set) only if
 * @mode names a method and it cannot be had. */
bool dirty_tracking_choose(DirtyScan *scan, QmpClient *qemu,
                           const char *ram_file, uint64_t size,
                           DirtyTrackingMode mode, int qemu_pid,
                           char **why, GError **errp);

#endif /* COLO_PRIMARY_DIRTY_TRACKING_H */
