/*
 * uffd-wp.c: QEMU's writes from userfaultfd write protection (see
 * uffd-wp.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "migration/wire.h"
#include "qemu/bitmap.h"
#include "tools/colo-primary/remote-syscall.h"
#include "tools/colo-primary/uffd-wp.h"

/*
 * Linux 6.7's ABI, missing from older headers (Debian 12 has 6.1's):
 * include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h.
 */
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PAGEMAP_SCAN
struct page_region {
    uint64_t start;
    uint64_t end;
    uint64_t categories;
};
struct pm_scan_arg {
    uint64_t size;
    uint64_t flags;
    uint64_t start;
    uint64_t end;
    uint64_t walk_end;
    uint64_t vec;
    uint64_t vec_len;
    uint64_t max_pages;
    uint64_t category_inverted;
    uint64_t category_mask;
    uint64_t category_anyof_mask;
    uint64_t return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WRITTEN (1 << 1)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif

#define WANTED_FEATURES (UFFD_FEATURE_WP_ASYNC | \
                         UFFD_FEATURE_WP_HUGETLBFS_SHMEM | \
                         UFFD_FEATURE_WP_UNPOPULATED)
#define VEC_LEN 4096            /* regions per PAGEMAP_SCAN call */

typedef struct UffdWp {
    WriteTracker t;             /* first: the tracker is the object */
    int pid;
    int uffd;                   /* ours: the only one of the context */
    int pagemap_fd;             /* /proc/PID/pagemap */
    uint64_t addr, size;        /* QEMU's mapping of the RAM */
    char *map_file;             /* /proc/PID/map_files/START-END */
    dev_t dev;                  /* the RAM file */
    ino_t ino;
    unsigned scans;             /* collect() calls so far */
    struct page_region *vec;
} UffdWp;

/*
 * Tests: COLO_TEST_PAGEMAP_SCAN=absent makes every PAGEMAP_SCAN fail as a
 * kernel without it would (ENOTTY); =fail-after:N lets N checkpoints'
 * scans succeed and fails the ones after.
 */
static int pagemap_scan(int fd, struct pm_scan_arg *arg, unsigned scan_no)
{
    const char *hook = g_getenv("COLO_TEST_PAGEMAP_SCAN");

    if (hook && (!strcmp(hook, "absent") ||
                 (g_str_has_prefix(hook, "fail-after:") &&
                  scan_no > g_ascii_strtoull(hook + 11, NULL, 10)))) {
        errno = ENOTTY;
        return -1;
    }
    return ioctl(fd, PAGEMAP_SCAN, arg);
}

static int new_userfaultfd(int flags)
{
    int fd = (int)syscall(SYS_userfaultfd, flags);

    if (fd < 0 && errno == EPERM) {
        /* vm.unprivileged_userfaultfd = 0: asynchronous write protection
         * never delivers faults, so user-mode-only loses nothing */
        fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    }
    return fd;
}

/* UFFDIO_API with our features, or why not. */
static char *uffd_api(int uffd)
{
    struct uffdio_api api = { .api = UFFD_API, .features = WANTED_FEATURES };

    if (ioctl(uffd, UFFDIO_API, &api) < 0) {
        return g_strdup_printf("UFFDIO_API with WP_ASYNC, WP_UNPOPULATED and "
                               "WP_HUGETLBFS_SHMEM: %s (Linux 6.7 or later "
                               "is needed)", g_strerror(errno));
    }
    return NULL;
}

static char *uffd_protect(int uffd, uint64_t addr, uint64_t size)
{
    struct uffdio_register reg = {
        .range = { .start = addr, .len = size },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    struct uffdio_writeprotect wp = {
        .range = { .start = addr, .len = size },
        .mode = UFFDIO_WRITEPROTECT_MODE_WP,
    };

    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        return g_strdup_printf("UFFDIO_REGISTER of the RAM mapping: %s (the "
                               "RAM file must be on tmpfs or hugetlbfs)",
                               g_strerror(errno));
    }
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        return g_strdup_printf("UFFDIO_WRITEPROTECT of the RAM mapping: %s",
                               g_strerror(errno));
    }
    return NULL;
}

/* One pass over [addr, addr + size) of @pagemap_fd: sets the written
 * pages in @written and protects them again. */
static bool scan_written(int pagemap_fd, uint64_t addr, uint64_t size,
                         struct page_region *vec, unsigned scan_no,
                         unsigned long *written, GError **errp)
{
    struct pm_scan_arg a = {
        .size = sizeof(a),
        .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        .start = addr,
        .end = addr + size,
        .vec = (uintptr_t)vec,
        .vec_len = VEC_LEN,
        .category_mask = PAGE_IS_WRITTEN,
        .return_mask = PAGE_IS_WRITTEN,
    };

    for (;;) {
        int n = pagemap_scan(pagemap_fd, &a, scan_no);

        if (n < 0) {
            g_set_error(errp, COLO_ERROR, errno, "PAGEMAP_SCAN of QEMU's "
                        "RAM mapping: %s", g_strerror(errno));
            return false;
        }
        for (int i = 0; i < n; i++) {
            uint64_t s = vec[i].start, e = vec[i].end;

            if (s < addr || e > addr + size || s >= e ||
                (s | e) % TARGET_PAGE_SIZE) {
                g_set_error(errp, COLO_ERROR, EIO, "PAGEMAP_SCAN returned "
                            "[0x%" PRIx64 ", 0x%" PRIx64 ") outside the RAM "
                            "mapping", s, e);
                return false;
            }
            bitmap_set(written, (s - addr) / TARGET_PAGE_SIZE,
                       (e - s) / TARGET_PAGE_SIZE);
        }
        if (a.walk_end >= addr + size) {
            return true;
        }
        if (a.walk_end <= a.start) {
            g_set_error(errp, COLO_ERROR, EIO, "PAGEMAP_SCAN made no progress "
                        "at 0x%" PRIx64, (uint64_t)a.start);
            return false;
        }
        a.start = a.walk_end;
    }
}

char *uffd_wp_kernel_obstacle(void)
{
    const uint64_t size = 2 * TARGET_PAGE_SIZE;
    unsigned long *written = bitmap_new(2);
    struct page_region *vec = g_new(struct page_region, VEC_LEN);
    g_autoptr(GError) err = NULL;
    char *why = NULL;
    int memfd = -1, uffd = -1, pm = -1;
    uint8_t *p = MAP_FAILED;

    memfd = memfd_create("colo-uffd-probe", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, (off_t)size) < 0 ||
        (p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
                  0)) == MAP_FAILED) {
        why = g_strdup_printf("a shared memory probe: %s", g_strerror(errno));
        goto out;
    }
    uffd = new_userfaultfd(O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) {
        why = g_strdup_printf("userfaultfd: %s", g_strerror(errno));
        goto out;
    }
    pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if ((why = uffd_api(uffd)) || (why = uffd_protect(uffd, (uintptr_t)p,
                                                      size))) {
        goto out;
    }
    p[TARGET_PAGE_SIZE] = 1;
    if (pm < 0 || !scan_written(pm, (uintptr_t)p, size, vec, 0, written,
                                &err)) {
        why = g_strdup_printf("this kernel has no usable PAGEMAP_SCAN: %s",
                              err ? err->message : g_strerror(errno));
        goto out;
    }
    if (test_bit(0, written) || !test_bit(1, written)) {
        why = g_strdup("PAGEMAP_SCAN did not report exactly the page written "
                       "in a probe");
    }
out:
    if (p != MAP_FAILED) {
        munmap(p, size);
    }
    if (uffd >= 0) {
        close(uffd);
    }
    if (pm >= 0) {
        close(pm);
    }
    if (memfd >= 0) {
        close(memfd);
    }
    g_free(vec);
    g_free(written);
    return why;
}

/* The mapping is still the one registered: same range, same file. */
static bool mapping_unchanged(UffdWp *u, GError **errp)
{
    struct stat st;

    if (stat(u->map_file, &st) < 0 || st.st_dev != u->dev ||
        st.st_ino != u->ino) {
        g_set_error(errp, COLO_ERROR, ESTALE, "QEMU's mapping of the RAM "
                    "file at 0x%" PRIx64 " moved or is gone", u->addr);
        return false;
    }
    return true;
}

static bool uffd_wp_collect(WriteTracker *t, unsigned long *written,
                            GError **errp)
{
    UffdWp *u = (UffdWp *)t;

    u->scans++;
    return scan_written(u->pagemap_fd, u->addr, u->size, u->vec, u->scans,
                        written, errp) &&
           mapping_unchanged(u, errp);
}

static void uffd_wp_free(WriteTracker *t)
{
    UffdWp *u = (UffdWp *)t;
    struct uffdio_range r = { .start = u->addr, .len = u->size };

    if (u->uffd >= 0) {
        /* fails harmlessly if QEMU is gone; closing would do it too */
        if (ioctl(u->uffd, UFFDIO_UNREGISTER, &r) < 0) {
            /* nothing left to undo */
        }
        close(u->uffd);
    }
    if (u->pagemap_fd >= 0) {
        close(u->pagemap_fd);
    }
    g_free(u->map_file);
    g_free(u->vec);
    g_free(u);
}

static const WriteTrackerOps uffd_wp_ops = {
    .method = "uffd-wp",
    .collect = uffd_wp_collect,
    .free = uffd_wp_free,
};

/* A userfaultfd made by QEMU, ours alone: QEMU's descriptor is closed. */
static int take_qemu_userfaultfd(int pid, GError **errp)
{
    uint64_t arg = O_CLOEXEC | O_NONBLOCK;
    g_autoptr(GError) err = NULL;
    int64_t remote = -1, closed = -1;
    int pidfd, fd = -1;

    if (!remote_syscall(pid, SYS_userfaultfd, &arg, 1, &remote, errp)) {
        return -1;
    }
    if (remote == -EPERM) {
        arg |= UFFD_USER_MODE_ONLY;
        if (!remote_syscall(pid, SYS_userfaultfd, &arg, 1, &remote, errp)) {
            return -1;
        }
    }
    if (remote < 0) {
        g_set_error(errp, COLO_ERROR, (int)-remote, "userfaultfd inside QEMU: "
                    "%s", g_strerror((int)-remote));
        return -1;
    }
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
        fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)remote, 0);
        close(pidfd);
    }
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "taking QEMU's userfaultfd "
                    "(pidfd_getfd): %s", g_strerror(errno));
    }
    arg = (uint64_t)remote;
    if (!remote_syscall(pid, SYS_close, &arg, 1, &closed, &err) ||
        closed != 0) {
        if (fd >= 0) {
            g_set_error(errp, COLO_ERROR, err ? err->code : (int)-closed,
                        "closing the userfaultfd inside QEMU: %s",
                        err ? err->message : g_strerror((int)-closed));
            close(fd);
        }
        return -1;
    }
    return fd;
}

/* /proc/PID/map_files/START-END of the mapping that starts at @addr
 * (it may be longer than the RAM), or a name that does not exist. */
static char *map_file_of(int pid, uint64_t addr)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/map_files", pid);
    g_autofree char *prefix = g_strdup_printf("%" PRIx64 "-", addr);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        if (g_str_has_prefix(name, prefix)) {
            return g_build_filename(dir, name, NULL);
        }
    }
    return g_build_filename(dir, prefix, NULL);
}

WriteTracker *uffd_wp_attach(int pid, uint64_t addr, uint64_t size,
                             GError **errp)
{
    g_autofree char *pm_path = g_strdup_printf("/proc/%d/pagemap", pid);
    UffdWp *u = g_new0(UffdWp, 1);
    struct stat st;
    char *why;

    if (!write_tracker_init(&u->t, &uffd_wp_ops, addr, size, errp)) {
        g_free(u);
        return NULL;
    }
    u->pid = pid;
    u->addr = addr;
    u->size = size;
    u->uffd = -1;
    u->vec = g_new(struct page_region, VEC_LEN);
    u->map_file = map_file_of(pid, addr);
    u->pagemap_fd = open(pm_path, O_RDONLY | O_CLOEXEC);
    if (u->pagemap_fd < 0 || stat(u->map_file, &st) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "%s: %s", u->pagemap_fd < 0 ?
                    pm_path : u->map_file, g_strerror(errno));
        uffd_wp_free(&u->t);
        return NULL;
    }
    u->dev = st.st_dev;
    u->ino = st.st_ino;
    u->uffd = take_qemu_userfaultfd(pid, errp);
    if (u->uffd < 0) {
        uffd_wp_free(&u->t);
        return NULL;
    }
    why = uffd_api(u->uffd);
    if (!why) {
        why = uffd_protect(u->uffd, addr, size);
    }
    if (why) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "%s", why);
        g_free(why);
        uffd_wp_free(&u->t);
        return NULL;
    }
    return &u->t;
}
