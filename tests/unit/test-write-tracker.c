/*
 * test-write-tracker: colo-primary's scan narrowed by each kind of write
 * tracker (write-tracker.h) the kernel has: uffd-wp (Linux 6.7; this
 * development host has it) and soft-dirty (Debian's kernels; this host
 * has none, so tests/functional/test_soft_dirty.py boots Debian's cloud
 * kernel under TCG with this program (static) in the initramfs and reads
 * its TAP output from the serial port).  A kind the kernel lacks is
 * skipped here, with the reason; the functional tests say which ran.
 *
 * A child process plays QEMU: it maps a shared memfd and writes the pages
 * it is told to, and waits for orders blocked in read() (so uffd-wp's
 * injection lands in a blocked system call, as in QEMU's poll loop); the
 * scanner maps the same memfd read only and follows the child's writes
 * through the tracker.  Each scan must look at exactly the pages the
 * child wrote since the previous one, and report as changed exactly those
 * whose contents differ.
 */
#include "qemu/osdep.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "migration/wire.h"
#include "tools/colo-primary/dirty-scan.h"
#include "tools/colo-primary/soft-dirty.h"
#include "tools/colo-primary/uffd-wp.h"

#define NPAGES 4096             /* 16 MiB */

#ifdef STANDALONE_STATIC
/* the static build for the guest links no library that defines it */
G_DEFINE_QUARK(colo-error-quark, colo_error)
#endif

typedef struct Child {
    pid_t pid;
    int cmd;                    /* we write page lists here */
    int ack;                    /* it answers each list */
    uint64_t addr;              /* its mapping of the memfd */
} Child;

typedef struct Fixture {
    int memfd;
    uint8_t *view;              /* ours, read only */
    Child child;
    DirtyScan *ds;
    GRand *rand;
} Fixture;

/*
 * The child: reads "count, then count x (page, byte)" as uint32 pairs,
 * fills each page with its byte (0 = leave the contents as they are but
 * write them again), answers one byte.  Exits on EOF.
 */
static void child_main(int memfd, int cmd, int ack)
{
    uint8_t *mem = mmap(NULL, NPAGES * TARGET_PAGE_SIZE,
                        PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    uint64_t addr = (uintptr_t)mem;
    uint32_t n;

    if (mem == MAP_FAILED || write(ack, &addr, 8) != 8) {
        _exit(1);
    }
    memset(mem, 0x11, NPAGES * TARGET_PAGE_SIZE);   /* every page present */
    while (read(cmd, &n, 4) == 4) {
        for (uint32_t i = 0; i < n; i++) {
            uint32_t pb[2];

            if (read(cmd, pb, 8) != 8 || pb[0] >= NPAGES) {
                _exit(2);
            }
            if (pb[1] == 0) {
                volatile uint8_t *p = mem + (uint64_t)pb[0] * TARGET_PAGE_SIZE;
                uint8_t v = p[100];

                p[100] = v;
            } else {
                memset(mem + (uint64_t)pb[0] * TARGET_PAGE_SIZE, (int)pb[1],
                       TARGET_PAGE_SIZE);
            }
        }
        if (write(ack, "k", 1) != 1) {
            _exit(3);
        }
    }
    _exit(0);
}

static void child_write(Fixture *f, GArray *pages, uint8_t byte)
{
    uint32_t n = pages->len;
    char k;

    g_assert_cmpint(write(f->child.cmd, &n, 4), ==, 4);
    for (guint i = 0; i < pages->len; i++) {
        uint32_t pb[2] = { (uint32_t)g_array_index(pages, uint64_t, i),
                           byte };

        g_assert_cmpint(write(f->child.cmd, pb, 8), ==, 8);
    }
    g_assert_cmpint(read(f->child.ack, &k, 1), ==, 1);
}

static void fixture_setup(Fixture *f, gconstpointer data)
{
    const char *method = data;
    int cmd[2], ack[2];
    uint64_t addr;
    g_autoptr(GError) err = NULL;
    WriteTracker *t;

    f->rand = g_rand_new_with_seed(42);
    f->memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    g_assert_cmpint(f->memfd, >=, 0);
    g_assert_cmpint(ftruncate(f->memfd, NPAGES * TARGET_PAGE_SIZE), ==, 0);
    g_assert_cmpint(pipe(cmd), ==, 0);
    g_assert_cmpint(pipe(ack), ==, 0);
    f->child.pid = fork();
    g_assert_cmpint(f->child.pid, >=, 0);
    if (f->child.pid == 0) {
        close(cmd[1]);
        close(ack[0]);
        child_main(f->memfd, cmd[0], ack[1]);
    }
    close(cmd[0]);
    close(ack[1]);
    f->child.cmd = cmd[1];
    f->child.ack = ack[0];
    g_assert_cmpint(read(f->child.ack, &addr, 8), ==, 8);
    f->child.addr = addr;

    f->view = mmap(NULL, NPAGES * TARGET_PAGE_SIZE, PROT_READ, MAP_SHARED,
                   f->memfd, 0);
    g_assert_true(f->view != MAP_FAILED);
    f->ds = dirty_scan_new(f->view, NPAGES * TARGET_PAGE_SIZE, 2, &err);
    g_assert_no_error(err);

    /* The initial copy: the pages as they are (the child has filled them
     * once it answers a first, empty list). */
    {
        g_autoptr(GArray) none = g_array_new(FALSE, FALSE, sizeof(uint64_t));

        child_write(f, none, 0);
    }
    for (uint64_t p = 0; p < NPAGES; p++) {
        dirty_scan_set_digest(f->ds, p, dirty_scan_page_digest(
            f->ds, f->view + p * TARGET_PAGE_SIZE));
    }
    t = (!strcmp(method, "uffd-wp") ? uffd_wp_attach : soft_dirty_attach)(
        f->child.pid, addr, NPAGES * TARGET_PAGE_SIZE, &err);
    g_assert_no_error(err);
    dirty_scan_set_tracker(f->ds, t);
    g_assert_cmpstr(dirty_scan_method(f->ds), ==, method);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    int status;

    (void)data;
    close(f->child.cmd);
    g_assert_cmpint(waitpid(f->child.pid, &status, 0), ==, f->child.pid);
    g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(f->child.ack);
    dirty_scan_free(f->ds);
    munmap(f->view, NPAGES * TARGET_PAGE_SIZE);
    close(f->memfd);
    g_rand_free(f->rand);
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* @n distinct random pages, sorted. */
static GArray *random_pages(Fixture *f, guint n)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    g_autofree bool *taken = g_new0(bool, NPAGES);

    while (a->len < n) {
        uint64_t p = g_rand_int_range(f->rand, 0, NPAGES);

        if (!taken[p]) {
            taken[p] = true;
            g_array_append_val(a, p);
        }
    }
    g_array_sort(a, cmp_u64);
    return a;
}

typedef struct Found {
    GArray *pages;
    const uint8_t *view;
    bool staged_ok;
} Found;

static void collect(void *opaque, uint64_t page_no, const uint8_t *data)
{
    Found *s = opaque;

    g_array_append_val(s->pages, page_no);
    s->staged_ok &= memcmp(data, s->view + page_no * TARGET_PAGE_SIZE,
                           TARGET_PAGE_SIZE) == 0;
}

/* The candidates and the changed pages of the last scan must be @looked
 * and @changed exactly. */
static void check_scan(Fixture *f, GArray *looked, GArray *changed)
{
    Found s = { g_array_new(FALSE, FALSE, sizeof(uint64_t)), f->view, true };
    guint n = 0;

    g_array_sort(looked, cmp_u64);
    g_array_sort(changed, cmp_u64);
    for (uint64_t p = 0; p < NPAGES; p++) {
        bool want = n < looked->len &&
                    g_array_index(looked, uint64_t, n) == p;

        g_assert_cmpint(dirty_scan_is_candidate(f->ds, p), ==, want);
        n += want;
    }
    g_assert_cmpuint(dirty_scan_candidates(f->ds), ==, looked->len);
    dirty_scan_foreach(f->ds, collect, &s);
    g_assert_cmpuint(s.pages->len, ==, changed->len);
    for (guint i = 0; i < changed->len; i++) {
        g_assert_cmpuint(g_array_index(s.pages, uint64_t, i), ==,
                         g_array_index(changed, uint64_t, i));
    }
    g_assert_true(s.staged_ok);
    g_array_unref(s.pages);
}

static void scan(Fixture *f)
{
    dirty_scan_start(f->ds);
    dirty_scan_finish(f->ds);
}

/* Where a kind is required (COLO_TEST_REQUIRE_TRACKER=soft-dirty in the
 * Debian-kernel guest), the kernel must have it; elsewhere a kernel
 * without it must say why (the reason auto reports), and its other cases
 * are not registered. */
static void test_kernel_has_it(gconstpointer data)
{
    const char *method = data;
    g_autofree char *why = !strcmp(method, "uffd-wp") ?
                           uffd_wp_kernel_obstacle() :
                           soft_dirty_works() ? NULL :
                           g_strdup("this kernel has no soft-dirty bits");

    if (why) {
        g_assert_cmpstr(g_getenv("COLO_TEST_REQUIRE_TRACKER"), !=, method);
        g_assert_cmpstr(why, !=, "");
        g_test_message("%s: not in this kernel: %s", method, why);
    }
}

/* PAGEMAP_SCAN failing at the third checkpoint (the test hook): that scan
 * and the later ones digest every page, and the scan says why. */
static void test_falls_back_when_pagemap_scan_fails(Fixture *f,
                                                    gconstpointer d)
{
    g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    (void)d;
    for (uint64_t p = 0; p < NPAGES; p++) {
        g_array_append_val(all, p);
    }
    g_setenv("COLO_TEST_PAGEMAP_SCAN", "fail-after:2", TRUE);
    for (int round = 0; round < 4; round++) {
        g_autoptr(GArray) w = random_pages(f, 20 + round);

        child_write(f, w, 0x30 + round);
        scan(f);
        check_scan(f, round < 2 ? w : all, w);
    }
    g_unsetenv("COLO_TEST_PAGEMAP_SCAN");
    g_assert_cmpstr(dirty_scan_method(f->ds), ==, "digest");
    g_assert_nonnull(strstr(dirty_scan_fallback_reason(f->ds),
                            "uffd-wp: PAGEMAP_SCAN"));
}

/* Known pages written: exactly those are looked at and found. */
static void test_exactly_the_written_pages(Fixture *f, gconstpointer d)
{
    (void)d;
    for (int round = 0; round < 5; round++) {
        g_autoptr(GArray) w = random_pages(f, 1 + round * 37);

        child_write(f, w, 0x20 + round);
        scan(f);
        check_scan(f, w, w);
    }
    /* nothing written: nothing looked at */
    {
        g_autoptr(GArray) none = g_array_new(FALSE, FALSE, sizeof(uint64_t));

        scan(f);
        check_scan(f, none, none);
    }
}

/* A page written with the contents it had is looked at but not sent. */
static void test_rewrite_same_contents(Fixture *f, gconstpointer d)
{
    g_autoptr(GArray) w = random_pages(f, 50);
    g_autoptr(GArray) none = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    (void)d;
    child_write(f, w, 0);
    scan(f);
    check_scan(f, w, none);
}

/* Pages the child writes while the scan digests (after the tracker's
 * pages were collected) belong to the next scan. */
static void test_written_during_the_scan(Fixture *f, gconstpointer d)
{
    g_autoptr(GArray) before = random_pages(f, 40);
    g_autoptr(GArray) during = g_array_new(FALSE, FALSE, sizeof(uint64_t));

    (void)d;
    /* @during: 60 pages not in @before */
    while (during->len < 60) {
        uint64_t p = g_rand_int_range(f->rand, 0, NPAGES);
        bool dup = false;

        for (guint i = 0; i < before->len; i++) {
            dup |= g_array_index(before, uint64_t, i) == p;
        }
        for (guint i = 0; i < during->len; i++) {
            dup |= g_array_index(during, uint64_t, i) == p;
        }
        if (!dup) {
            g_array_append_val(during, p);
        }
    }
    child_write(f, before, 0x55);
    dirty_scan_start(f->ds);
    dirty_scan_wait_collected(f->ds);
    child_write(f, during, 0x66);   /* the workers are digesting now */
    dirty_scan_finish(f->ds);
    check_scan(f, before, before);

    scan(f);
    check_scan(f, during, during);
}

/* The process gone: the scan falls back to digests, says why, and still
 * finds what changed. */
static void test_falls_back_when_qemu_is_gone(Fixture *f, gconstpointer d)
{
    g_autoptr(GArray) w = random_pages(f, 30);
    g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    int memfd_writer;
    uint8_t *mem;

    (void)d;
    child_write(f, w, 0x77);
    scan(f);
    check_scan(f, w, w);

    /* kill the child, change pages ourselves through a writable view */
    kill(f->child.pid, SIGKILL);
    waitpid(f->child.pid, NULL, 0);
    memfd_writer = f->memfd;
    mem = mmap(NULL, NPAGES * TARGET_PAGE_SIZE, PROT_READ | PROT_WRITE,
               MAP_SHARED, memfd_writer, 0);
    g_assert_true(mem != MAP_FAILED);
    for (guint i = 0; i < w->len; i++) {
        memset(mem + g_array_index(w, uint64_t, i) * TARGET_PAGE_SIZE, 0x78,
               TARGET_PAGE_SIZE);
    }
    munmap(mem, NPAGES * TARGET_PAGE_SIZE);
    scan(f);
    g_assert_cmpstr(dirty_scan_method(f->ds), ==, "digest");
    g_assert_nonnull(dirty_scan_fallback_reason(f->ds));
    g_test_message("fell back: %s", dirty_scan_fallback_reason(f->ds));
    for (uint64_t p = 0; p < NPAGES; p++) {
        g_array_append_val(all, p);
    }
    check_scan(f, all, w);
    /* teardown reaps a child that exited 0: start a harmless one */
    f->child.pid = fork();
    if (f->child.pid == 0) {
        _exit(0);
    }
}

static bool kernel_has(const char *method)
{
    g_autofree char *why = NULL;

    if (!strcmp(method, "uffd-wp")) {
        why = uffd_wp_kernel_obstacle();
        return !why;
    }
    return soft_dirty_works();
}

static void add(const char *method, const char *name,
                void (*fn)(Fixture *, gconstpointer))
{
    g_autofree char *path = g_strdup_printf("/write-tracker/%s/%s", method,
                                            name);

    g_test_add(path, Fixture, method, fixture_setup, fn, fixture_teardown);
}

int main(int argc, char **argv)
{
    static const char *const methods[] = { "uffd-wp", "soft-dirty" };

    g_test_init(&argc, &argv, NULL);
    for (unsigned i = 0; i < G_N_ELEMENTS(methods); i++) {
        const char *m = methods[i];
        g_autofree char *path = g_strdup_printf("/write-tracker/%s/"
                                                "kernel-has-it", m);

        g_test_add_data_func(path, m, test_kernel_has_it);
        if (!kernel_has(m)) {
            continue;
        }
        add(m, "exactly-the-written-pages", test_exactly_the_written_pages);
        add(m, "rewrite-same-contents", test_rewrite_same_contents);
        add(m, "written-during-the-scan", test_written_during_the_scan);
        add(m, "falls-back-when-qemu-is-gone",
            test_falls_back_when_qemu_is_gone);
        if (!strcmp(m, "uffd-wp")) {
            add(m, "falls-back-when-pagemap-scan-fails",
                test_falls_back_when_pagemap_scan_fails);
        }
    }
    return g_test_run();
}
