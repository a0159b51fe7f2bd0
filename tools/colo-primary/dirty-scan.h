/*
 * dirty-scan.h: which pages of the VM's shared RAM changed since the last
 * checkpoint, found by comparing a keyed 64-bit digest per page, and a
 * copy of those pages taken while the VM is stopped (the staging area),
 * so the VM can continue before anything is sent.
 *
 * Why digests: a kernel's record of QEMU's writes (write-tracker.h:
 * userfaultfd write protection or soft-dirty bits) is the cheap way, but
 * not every kernel or setup allows one (dirty-tracking.h chooses).  With
 * a tracker each scan is narrowed to the pages QEMU wrote (still digested,
 * so a page written with its old contents is not sent).  A digest per
 * page never misses a write; without a tracker its cost is one read of
 * all guest RAM per checkpoint, spread over worker threads while the
 * vCPUs are stopped (in 4 MiB chunks they take in turn, so the thread
 * that waits for QEMU's device state joins in as soon as it has it).  The
 * 4 KiB key is random per run, so a guest cannot craft a change that
 * keeps a digest.
 *
 * Owner: the session thread; the workers only run between
 * dirty_scan_start() and dirty_scan_finish().
 */
#ifndef COLO_PRIMARY_DIRTY_SCAN_H
#define COLO_PRIMARY_DIRTY_SCAN_H

#include "qemu/osdep.h"

#include "tools/colo-primary/write-tracker.h"

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
/* With a tracker, its pages are collected by the first worker, so the
 * caller's QMP round trips run meanwhile; this waits until they are
 * (finish does too).  Writes before start are in this scan, writes after
 * this in the next one. */
void dirty_scan_wait_collected(DirtyScan *ds);

/* After finish: the changed pages, in ascending order; @data points into
 * the staging area (valid until the next start). */
typedef void (*DirtyPageFn)(void *opaque, uint64_t page_no,
                            const uint8_t *data);
uint64_t dirty_scan_count(const DirtyScan *ds);
void dirty_scan_foreach(const DirtyScan *ds, DirtyPageFn fn, void *opaque);

/*
 * From now on only the pages @t reports as written since the previous
 * scan are digested (write-tracker.h); the scan owns @t.  NULL: back to
 * digests of every page.  If @t fails at a scan, it is given up and that
 * scan and every later one digest every page (still exact: the digests
 * are current), and dirty_scan_fallback_reason() says why.
 */
void dirty_scan_set_tracker(DirtyScan *ds, WriteTracker *t);
/* The tracker's method ("uffd-wp", "soft-dirty") or "digest"; why the
 * tracker was given up, or NULL. */
const char *dirty_scan_method(const DirtyScan *ds);
const char *dirty_scan_fallback_reason(const DirtyScan *ds);
/* After a scan: how many pages were digested (all of them without a
 * tracker), and whether @page_no was one of them. */
uint64_t dirty_scan_candidates(const DirtyScan *ds);
bool dirty_scan_is_candidate(const DirtyScan *ds, uint64_t page_no);

#endif /* COLO_PRIMARY_DIRTY_SCAN_H */
