/*
 * ram-write.c: how fast can pages reach a RAM file in /dev/shm?
 *
 * Measures the ways a loader can put 4 KiB pages into a MAP_SHARED tmpfs
 * file, against plain memcpy into memory that is already mapped:
 *   memcpy-prefaulted   memcpy into anonymous memory written beforehand
 *   memcpy-fresh-anon   memcpy into fresh anonymous memory (faults)
 *   memcpy-fresh-shm    memcpy into a fresh tmpfs mapping (faults)
 *   populate-2m+memcpy  MADV_POPULATE_WRITE per 2 MiB, then memcpy
 *   pwrite-4k           one pwrite() per page
 *   pwritev-64          pwritev() of 64 pages at once
 * Prints GB/s for each; used by bench/run.sh and quoted in docs.
 * With --scatter, the baseline of the COLO commit instead (below).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096UL

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int shm_file(size_t size)
{
    char path[] = "/dev/shm/colo-bench-XXXXXX";
    int fd = mkstemp(path);

    if (fd < 0 || ftruncate(fd, size) < 0) {
        perror("shm");
        exit(1);
    }
    unlink(path);
    return fd;
}

static void report(const char *what, size_t size, double secs)
{
    printf("%-22s %8.3f GB/s  (%.1f ms)\n", what, size / secs / 1e9,
           secs * 1e3);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/*
 * --scatter RAM_MIB DIRTY_MIB ROUNDS: the COLO commit's baseline.  Each
 * round copies DIRTY_MIB of distinct random pages (a new set each round,
 * as checkpoints dirty different pages) from a source of RAM_MIB into the
 * same offsets of a RAM_MIB tmpfs file mapping written once before, like
 * the secondary's RAM file.  Prints the median round in ms.
 */
static int scatter(size_t ram, size_t dirty, int rounds)
{
    size_t np = ram / PAGE, nd = dirty / PAGE;
    int fd = shm_file(ram);
    uint8_t *dst = mmap(NULL, ram, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                        0);
    uint8_t *src = mmap(NULL, ram, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t *pages = malloc(np * sizeof(size_t));
    double *ms = malloc(rounds * sizeof(double));

    if (dst == MAP_FAILED || src == MAP_FAILED || !pages || !ms || nd > np ||
        np == 0 || rounds < 1) {
        fprintf(stderr, "scatter: cannot set up\n");
        free(pages);
        free(ms);
        return 1;
    }
    memset(dst, 0x5a, ram);
    memset(src, 0xa5, ram);
    for (size_t i = 0; i < np; i++) {
        pages[i] = i;
    }
    srand(1);
    for (int r = 0; r < rounds; r++) {
        double t;

        /* a fresh random set: a partial shuffle */
        for (size_t i = 0; i < nd && i < np; i++) {
            size_t j = i + (size_t)rand() % (np - i), tmp = pages[i];

            pages[i] = pages[j];
            pages[j] = tmp;
        }
        t = now();
        for (size_t i = 0; i < nd; i++) {
            memcpy(dst + pages[i] * PAGE, src + pages[i] * PAGE, PAGE);
        }
        ms[r] = (now() - t) * 1e3;
    }
    qsort(ms, rounds, sizeof(double), cmp_double);
    printf("scatter-memcpy %zu MiB of %zu MiB: %.3f ms (median of %d)\n",
           dirty >> 20, ram >> 20, ms[rounds / 2], rounds);
    free(pages);
    free(ms);
    munmap(dst, ram);
    munmap(src, ram);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    size_t size;

    if (argc == 5 && strcmp(argv[1], "--scatter") == 0) {
        return scatter(strtoull(argv[2], NULL, 0) << 20,
                       strtoull(argv[3], NULL, 0) << 20, atoi(argv[4]));
    }
    size = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) << 20;
    /* The source: a 4 MiB window of non-zero pages, reused, as a receive
     * buffer would be. */
    size_t win = 4 << 20;
    uint8_t *src = malloc(win);
    double t;

    for (size_t i = 0; i < win; i++) {
        src[i] = (uint8_t)(i * 7 + 1);
    }
    printf("writing %zu MiB in 4 KiB pages\n", size >> 20);

    {
        uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        /* Written once before: in a VM whose memory the hypervisor backs
         * lazily, MAP_POPULATE alone leaves the host's faults to the
         * first write (0.6 against 20 GB/s seen here). */
        memset(dst, 0x5a, size);
        t = now();
        for (size_t off = 0; off < size; off += PAGE) {
            memcpy(dst + off, src + off % win, PAGE);
        }
        report("memcpy-prefaulted", size, now() - t);
        munmap(dst, size);
    }
    {
        uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        t = now();
        for (size_t off = 0; off < size; off += PAGE) {
            memcpy(dst + off, src + off % win, PAGE);
        }
        report("memcpy-fresh-anon", size, now() - t);
        munmap(dst, size);
    }
    {
        int fd = shm_file(size);
        uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                            fd, 0);
        t = now();
        for (size_t off = 0; off < size; off += PAGE) {
            memcpy(dst + off, src + off % win, PAGE);
        }
        report("memcpy-fresh-shm", size, now() - t);
        munmap(dst, size);
        close(fd);
    }
    {
        int fd = shm_file(size);
        uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
                            fd, 0);
        t = now();
        for (size_t off = 0; off < size; off += PAGE) {
            if ((off & ((2 << 20) - 1)) == 0) {
                madvise(dst + off, 2 << 20, MADV_POPULATE_WRITE);
            }
            memcpy(dst + off, src + off % win, PAGE);
        }
        report("populate-2m+memcpy", size, now() - t);
        munmap(dst, size);
        close(fd);
    }
    {
        int fd = shm_file(size);
        t = now();
        for (size_t off = 0; off < size; off += PAGE) {
            if (pwrite(fd, src + off % win, PAGE, off) != (ssize_t)PAGE) {
                perror("pwrite");
                return 1;
            }
        }
        report("pwrite-4k", size, now() - t);
        close(fd);
    }
    {
        int fd = shm_file(size);
        struct iovec iov[64];

        t = now();
        for (size_t off = 0; off < size; off += 64 * PAGE) {
            for (int i = 0; i < 64; i++) {
                iov[i].iov_base = src + (off + i * PAGE) % win;
                iov[i].iov_len = PAGE;
            }
            if (pwritev(fd, iov, 64, off) != (ssize_t)(64 * PAGE)) {
                perror("pwritev");
                return 1;
            }
        }
        report("pwritev-64", size, now() - t);
        close(fd);
    }
    free(src);
    return 0;
}
