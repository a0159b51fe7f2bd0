/*
 * soft-dirty.c: QEMU's writes from soft-dirty bits (see soft-dirty.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>

#include "migration/wire.h"
#include "qemu/bitmap.h"
#include "tools/colo-primary/soft-dirty.h"

#define PM_SOFT_DIRTY_BIT 55
#define BATCH 16384             /* pagemap entries per read */

typedef struct SoftDirty {
    WriteTracker t;             /* first: the tracker is the object */
    int pagemap_fd;
    int clear_refs_fd;
    uint64_t first_page;        /* of the RAM in QEMU's address space */
    uint64_t *buf;
} SoftDirty;

/* Clears the soft-dirty bits of every page of the process. */
static bool clear_bits(SoftDirty *sd, GError **errp)
{
    if (pwrite(sd->clear_refs_fd, "4", 1, 0) != 1) {
        g_set_error(errp, COLO_ERROR, errno, "cannot clear the soft-dirty "
                    "bits of QEMU: %s", g_strerror(errno));
        return false;
    }
    return true;
}

static bool read_bits(SoftDirty *sd, unsigned long *written, GError **errp)
{
    uint64_t npages = sd->t.npages;

    for (uint64_t p = 0; p < npages; p += BATCH) {
        uint64_t n = MIN(BATCH, npages - p);
        off_t at = (off_t)((sd->first_page + p) * 8);
        ssize_t got = pread(sd->pagemap_fd, sd->buf, n * 8, at);

        if (got != (ssize_t)(n * 8)) {
            g_set_error(errp, COLO_ERROR, got < 0 ? errno : EIO, "cannot "
                        "read QEMU's pagemap: %s", got < 0 ?
                        g_strerror(errno) : "short read");
            return false;
        }
        for (uint64_t i = 0; i < n; i++) {
            if ((sd->buf[i] >> PM_SOFT_DIRTY_BIT) & 1) {
                set_bit(p + i, written);
            }
        }
    }
    return true;
}

static bool soft_dirty_collect(WriteTracker *t, unsigned long *written,
                               GError **errp)
{
    SoftDirty *sd = (SoftDirty *)t;

    /* read, then clear at once (the VM is stopped): writes after the
     * clear belong to the next interval */
    return read_bits(sd, written, errp) && clear_bits(sd, errp);
}

static void soft_dirty_free(WriteTracker *t)
{
    SoftDirty *sd = (SoftDirty *)t;

    if (sd->pagemap_fd >= 0) {
        close(sd->pagemap_fd);
    }
    if (sd->clear_refs_fd >= 0) {
        close(sd->clear_refs_fd);
    }
    g_free(sd->buf);
    g_free(sd);
}

static const WriteTrackerOps soft_dirty_ops = {
    .method = "soft-dirty",
    .collect = soft_dirty_collect,
    .free = soft_dirty_free,
};

WriteTracker *soft_dirty_attach(int pid, uint64_t addr, uint64_t size,
                                GError **errp)
{
    g_autofree char *pm = g_strdup_printf("/proc/%d/pagemap", pid);
    g_autofree char *cr = g_strdup_printf("/proc/%d/clear_refs", pid);
    unsigned long *probe;
    bool ok;
    SoftDirty *sd = g_new0(SoftDirty, 1);

    if (!write_tracker_init(&sd->t, &soft_dirty_ops, addr, size, errp)) {
        g_free(sd);
        return NULL;
    }
    sd->first_page = addr / TARGET_PAGE_SIZE;
    sd->buf = g_new(uint64_t, BATCH);
    sd->pagemap_fd = open(pm, O_RDONLY | O_CLOEXEC);
    sd->clear_refs_fd = open(cr, O_WRONLY | O_CLOEXEC);
    if (sd->pagemap_fd < 0 || sd->clear_refs_fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot open %s: %s",
                    sd->pagemap_fd < 0 ? pm : cr, g_strerror(errno));
        soft_dirty_free(&sd->t);
        return NULL;
    }
    /* a first read proves the range readable; the clear starts the
     * first interval */
    probe = bitmap_new(sd->t.npages);
    ok = soft_dirty_collect(&sd->t, probe, errp);
    g_free(probe);
    if (!ok) {
        soft_dirty_free(&sd->t);
        return NULL;
    }
    return &sd->t;
}

bool soft_dirty_works(void)
{
    /* Clear the bits, write a page of our own: is its bit set? */
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t entry = 0;
    int pm;
    bool ok = false;

    if (fd < 0 || p == MAP_FAILED) {
        goto out;
    }
    p[0] = 1;
    if (write(fd, "4", 1) != 1) {
        goto out;
    }
    p[0] = 2;
    pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm >= 0) {
        if (pread(pm, &entry, 8, ((uintptr_t)p / 4096) * 8) == 8) {
            ok = (entry >> PM_SOFT_DIRTY_BIT) & 1;
        }
        close(pm);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (p != MAP_FAILED) {
        munmap(p, 4096);
    }
    return ok;
}
