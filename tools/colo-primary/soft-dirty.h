/*
 * soft-dirty.h: which pages QEMU wrote, from the soft-dirty bits of its
 * page tables (bit 55 of /proc/PID/pagemap, cleared by writing "4" to
 * /proc/PID/clear_refs).  Needs CONFIG_MEM_SOFT_DIRTY (Debian's kernels
 * have it; the development host's does not).
 *
 * The bits are read, then cleared for the whole process in a second step,
 * so a write between the two would be lost: collect() must run with the
 * VM stopped (it does: the dirty scan starts at the pause).  A shared page
 * swapped out loses its bit (dirty-tracking.h refuses soft-dirty when swap
 * is on and QEMU's memory is not locked).
 */
#ifndef COLO_PRIMARY_SOFT_DIRTY_H
#define COLO_PRIMARY_SOFT_DIRTY_H

#include "qemu/osdep.h"

#include "tools/colo-primary/write-tracker.h"

/* Whether this kernel sets soft-dirty bits (tried on a page of ours). */
bool soft_dirty_works(void);

/* Tracks process @pid's writes to the @size bytes it maps at @addr from
 * now on (clears the bits now: make it before the initial copy). */
WriteTracker *soft_dirty_attach(int pid, uint64_t addr, uint64_t size,
                                GError **errp);

#endif /* COLO_PRIMARY_SOFT_DIRTY_H */
