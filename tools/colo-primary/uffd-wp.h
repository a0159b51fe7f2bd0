/*
 * uffd-wp.h: which pages QEMU wrote, from userfaultfd write protection in
 * asynchronous mode (Linux ≥ 6.7), read with the PAGEMAP_SCAN ioctl.
 *
 * A userfaultfd belongs to the process that creates it, so QEMU's main
 * thread is made to create one (remote-syscall.h); we take a copy of the
 * descriptor (pidfd_getfd) and close QEMU's, so ours is the only one and
 * nothing of ours stays in QEMU.  On that descriptor, from our process:
 * UFFDIO_API with WP_ASYNC (the kernel resolves write faults itself, no
 * message, no thread of ours involved), WP_HUGETLBFS_SHMEM (the RAM file
 * is on tmpfs or hugetlbfs) and WP_UNPOPULATED (pages QEMU never touched
 * are protected too); UFFDIO_REGISTER of QEMU's mapping of the RAM file in
 * write-protect mode; UFFDIO_WRITEPROTECT of all of it.  From then on the
 * first write to a page after it is protected clears its protection; at
 * each checkpoint one PAGEMAP_SCAN on /proc/PID/pagemap returns the pages
 * written (PAGE_IS_WRITTEN) and protects them again in the same walk, so
 * no write falls between reading and protecting.
 *
 * QEMU is left as it was: uffd_wp_free() unregisters the range; if we are
 * killed instead, our descriptor closes with us, the last one of the
 * context, and the kernel unregisters it.
 */
#ifndef COLO_PRIMARY_UFFD_WP_H
#define COLO_PRIMARY_UFFD_WP_H

#include "qemu/osdep.h"

#include "tools/colo-primary/write-tracker.h"

/* NULL if this kernel can track writes this way (tried on memory of our
 * own), else why not. */
char *uffd_wp_kernel_obstacle(void);

/* Tracks QEMU's (process @pid) writes to the @size bytes it maps at
 * @addr from now on.  Make it before the initial copy. */
WriteTracker *uffd_wp_attach(int pid, uint64_t addr, uint64_t size,
                             GError **errp);

#endif /* COLO_PRIMARY_UFFD_WP_H */
