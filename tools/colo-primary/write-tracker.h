/*
 * write-tracker.h: a kernel's record of which pages of QEMU's RAM mapping
 * QEMU wrote, read once per checkpoint by the dirty scan (dirty-scan.h)
 * so that it digests only those pages.  Two kinds: uffd-wp.h (userfaultfd
 * write protection, asynchronous, read with PAGEMAP_SCAN) and
 * soft-dirty.h (the pagemap's soft-dirty bits).
 *
 * A tracker may report a page QEMU rewrote with its old contents (the
 * digest then finds it unchanged) but never miss one it wrote.  When
 * collect() fails the scan gives the tracker up and digests every page
 * from then on: the digests are current, so that stays exact.
 *
 * Owner: the dirty scan that holds it (the session thread).
 */
#ifndef COLO_PRIMARY_WRITE_TRACKER_H
#define COLO_PRIMARY_WRITE_TRACKER_H

#include "qemu/osdep.h"

typedef struct WriteTracker WriteTracker;

typedef struct WriteTrackerOps {
    const char *method;         /* "uffd-wp", "soft-dirty" */
    /*
     * Sets in @written (one bit per page of the RAM, all clear on entry)
     * the pages written since the previous call (or since the tracker was
     * made) and starts the next interval.  Called with the VM stopped.
     */
    bool (*collect)(WriteTracker *t, unsigned long *written, GError **errp);
    /* Leaves QEMU as it was before the tracker was made. */
    void (*free)(WriteTracker *t);
} WriteTrackerOps;

struct WriteTracker {
    const WriteTrackerOps *ops;
    uint64_t npages;            /* of the RAM: bits of @written */
};

/* For the kinds: @t set up for QEMU's mapping of @size bytes at @addr;
 * false (error set) unless both are whole pages. */
bool write_tracker_init(WriteTracker *t, const WriteTrackerOps *ops,
                        uint64_t addr, uint64_t size, GError **errp);

#endif /* COLO_PRIMARY_WRITE_TRACKER_H */
