/*
 * scan-bench: colo-primary's changed-page scan, page digests against
 * soft-dirty bits, for a few RAM sizes and dirty-set sizes.  Static, so
 * bench/soft_dirty_vm.py can run it inside Debian's cloud kernel (this
 * host's kernel has no soft-dirty bits).
 *
 * The process plays both QEMU and colo-primary: it writes random pages of
 * its own shared memfd mapping and scans that mapping, following its own
 * soft-dirty bits (/proc/PID/pagemap of itself).  Prints, per RAM size and
 * dirty size, the median scan (dirty_scan_start + finish) in ms for both.
 *
 *   scan-bench RAM_MIB[,RAM_MIB...] DIRTY_MIB[,DIRTY_MIB...] ROUNDS
 */
#include "qemu/osdep.h"

#include <sys/mman.h>

#include "migration/wire.h"
#include "tools/colo-primary/dirty-scan.h"
#include "tools/colo-primary/soft-dirty.h"

G_DEFINE_QUARK(colo-error-quark, colo_error)

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Median scan time in us after writing @dirty random pages, @rounds
 * times. */
static int64_t bench(DirtyScan *ds, uint8_t *mem, uint64_t npages,
                     uint64_t dirty, int rounds, GRand *r)
{
    g_autofree int64_t *us = g_new(int64_t, rounds);

    for (int i = 0; i < rounds; i++) {
        int64_t t0;

        for (uint64_t k = 0; k < dirty; k++) {
            uint64_t p = g_rand_int_range(r, 0, (gint32)npages);

            memset(mem + p * TARGET_PAGE_SIZE, g_rand_int(r) | 1,
                   TARGET_PAGE_SIZE);
        }
        t0 = g_get_monotonic_time();
        dirty_scan_start(ds);
        dirty_scan_finish(ds);
        us[i] = g_get_monotonic_time() - t0;
    }
    qsort(us, rounds, sizeof(int64_t), cmp_i64);
    return us[rounds / 2];
}

int main(int argc, char **argv)
{
    g_auto(GStrv) rams = NULL, dirties = NULL;
    g_autoptr(GRand) r = g_rand_new_with_seed(7);
    int rounds;

    if (argc != 4) {
        fprintf(stderr, "usage: scan-bench RAM_MIB,... DIRTY_MIB,... "
                "ROUNDS\n");
        return 1;
    }
    rams = g_strsplit(argv[1], ",", -1);
    dirties = g_strsplit(argv[2], ",", -1);
    rounds = atoi(argv[3]);
    printf("soft-dirty in this kernel: %s\n",
           soft_dirty_works() ? "yes" : "no");
    for (int i = 0; rams[i]; i++) {
        uint64_t size = g_ascii_strtoull(rams[i], NULL, 10) << 20;
        uint64_t npages = size / TARGET_PAGE_SIZE;
        int fd = memfd_create("ram", MFD_CLOEXEC);
        uint8_t *mem;

        if (fd < 0 || ftruncate(fd, size) < 0) {
            perror("memfd");
            return 1;
        }
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mem == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        memset(mem, 0x11, size);
        for (int j = 0; dirties[j]; j++) {
            uint64_t dirty = (g_ascii_strtoull(dirties[j], NULL, 10) << 20) /
                             TARGET_PAGE_SIZE;
            g_autoptr(GError) err = NULL;
            WriteTracker *tracker;
            DirtyScan *ds = dirty_scan_new(mem, size, 2, &err);
            int64_t digest_us, sd_us;

            if (!ds) {
                fprintf(stderr, "%s\n", err->message);
                return 1;
            }
            for (uint64_t p = 0; p < npages; p++) {
                dirty_scan_set_digest(ds, p, dirty_scan_page_digest(
                    ds, mem + p * TARGET_PAGE_SIZE));
            }
            digest_us = bench(ds, mem, npages, dirty, rounds, r);
            tracker = soft_dirty_attach(getpid(), (uintptr_t)mem,
                                        npages * TARGET_PAGE_SIZE, &err);
            if (!tracker) {
                fprintf(stderr, "soft-dirty: %s\n", err->message);
                return 1;
            }
            dirty_scan_set_tracker(ds, tracker);
            sd_us = bench(ds, mem, npages, dirty, rounds, r);
            printf("scan ram %s MiB dirty %s MiB: digest %.2f ms  "
                   "soft-dirty %.2f ms  (%s)\n", rams[i], dirties[j],
                   digest_us / 1000.0, sd_us / 1000.0,
                   dirty_scan_method(ds));
            fflush(stdout);
            dirty_scan_free(ds);
        }
        munmap(mem, size);
        close(fd);
    }
    return 0;
}
