/*
 * dirty-scan.h: which pages of the VM's shared RAM changed since the last
 * checkpoint, found by comparing a keyed 64-bit digest per page, and a
 * copy of those pages taken while the VM is stopped (the staging area),
 * so the VM can continue before anything is sent.
 *
 * Why digests: soft-dirty bits are the cheap way, but not every kernel
 * has them (this one has none: dirty_scan_soft_dirty_works() checks at
 * start), and nothing else tells a process which pages another process
 * wrote through a shared mapping.  A digest per page never misses a
 * write; its cost is one read of all guest RAM per checkpoint, spread over
 * worker threads while the vCPUs are stopped (in 4 MiB chunks they take
 * in turn, so the thread that waits for QEMU's device state joins in as
 * soon as it has it).  The 4 KiB key is random
 * per run, so a guest cannot craft a change that keeps a digest.
 *
 * Owner: the session thread; the workers only run between
 * dirty_scan_start() and dirty_scan_finish().
 */
#ifndef COLO_PRIMARY_DIRTY_SCAN_H
#define COLO_PRIMARY_DIRTY_SCAN_H

#include "qemu/osdep.h"

typedef struct DirtyScan DirtyScan;

/* @ram: @size bytes (whole pages) of the VM's RAM, read only. */
DirtyScan *dirty_scan_new(const uint8_t *ram, uint64_t size, int threads,
                          GError **errp);
void dirty_scan_free(DirtyScan *ds);

uint64_t dirty_scan_page_digest(const DirtyScan *ds, const void *page);
/* What the secondary holds of page @page_no, as a digest. */
void dirty_scan_set_digest(DirtyScan *ds, uint64_t page_no, uint64_t d);

/* Whether the vector versions of the digest agree with the plain one. */
bool dirty_scan_self_test(void);

/* In @threads worker threads (and the caller's, inside finish): digests
 * every page, stages the changed ones and
 * records their new digests.  Call with the VM stopped; finish before it
 * continues. */
void dirty_scan_start(DirtyScan *ds);
void dirty_scan_finish(DirtyScan *ds);

/* After finish: the changed pages, in ascending order; @data points into
 * the staging area (valid until the next start). */
typedef void (*DirtyPageFn)(void *opaque, uint64_t page_no,
                            const uint8_t *data);
uint64_t dirty_scan_count(const DirtyScan *ds);
void dirty_scan_foreach(const DirtyScan *ds, DirtyPageFn fn, void *opaque);

/* Whether this kernel sets soft-dirty bits (tried on a page of ours). */
bool dirty_scan_soft_dirty_works(void);

#endif /* COLO_PRIMARY_DIRTY_SCAN_H */
