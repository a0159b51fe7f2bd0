/*
 * dirty-scan.h: which pages of the VM's shared RAM changed since the last
 * checkpoint, found by comparing a keyed 64-bit digest per page, and a
 * copy of those pages taken while the VM is stopped (the staging area),
 * so the VM can continue before anything is sent.
 *
 * Why digests: soft-dirty bits are the cheap way, but not every kernel
 * has them (dirty_scan_soft_dirty_works() checks at start), and nothing
 * else tells a process which pages another process wrote through a
 * shared mapping.  Where the kernel has them, dirty_scan_attach_soft_dirty()
 * narrows each scan to the pages QEMU wrote (still digested, so a page
 * written with its old contents is not sent).  A digest per page never misses a
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

/*
 * Soft-dirty: from now on only the pages QEMU (process @pid, the RAM
 * mapped at @addr in its address space) wrote since the previous scan are
 * digested, found by bit 55 of /proc/PID/pagemap; the bits are cleared
 * (/proc/PID/clear_refs, "4") right after they are read in
 * dirty_scan_start(), so QEMU must not write guest RAM between the two
 * (the VM is stopped), and writes during the rest of the scan count for
 * the next one.  Clears the bits now: attach before the initial copy.
 * If reading or clearing fails later, the scan falls back to digests of
 * every page (still exact: the digests stay current) and says why.
 */
bool dirty_scan_attach_soft_dirty(DirtyScan *ds, int pid, uint64_t addr,
                                  GError **errp);
/* Back to digests of every page. */
void dirty_scan_detach_soft_dirty(DirtyScan *ds);
/* "soft-dirty" or "digest"; why soft-dirty was given up, or NULL. */
const char *dirty_scan_method(const DirtyScan *ds);
const char *dirty_scan_fallback_reason(const DirtyScan *ds);
/* After a scan: how many pages were digested (all of them without
 * soft-dirty), and whether @page_no was one of them. */
uint64_t dirty_scan_candidates(const DirtyScan *ds);
bool dirty_scan_is_candidate(const DirtyScan *ds, uint64_t page_no);

#endif /* COLO_PRIMARY_DIRTY_SCAN_H */
