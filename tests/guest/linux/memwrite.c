/*
 * memwrite MIB [MIB_PER_S]: the soak's memory writer.  It owns MIB MiB of
 * anonymous memory, one record per 4 KiB page, and rewrites the pages
 * in order, round after round, MIB_PER_S MiB a second (default 8).
 * Before it rewrites a page it checks what the page holds: this round's
 * predecessor, so in page order every page is of round R up to the one
 * being written and of round R-1 after it.  A checkpoint (or failover)
 * that mixed pages of different moments, lost one or rolled the memory
 * back against the program's own counter would break that: it prints
 * "MEM MISMATCH" with the page.  Every round it prints "MEM ok round R"
 * with the guest clock.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096
#define MAGIC 0x434f4c4f4d454d31ull     /* "COLOMEM1" */

struct page {
    uint64_t magic;
    uint64_t index;
    uint64_t round;
    uint64_t sum;                       /* of the fields above and fill */
    uint64_t fill[PAGE / 8 - 4];
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t page_sum(const struct page *p)
{
    uint64_t s = p->magic ^ (p->index * 31) ^ (p->round * 131);

    for (size_t i = 0; i < sizeof(p->fill) / 8; i++) {
        s = (s ^ p->fill[i]) * 0x100000001b3ull;
    }
    return s;
}

static void fill_page(struct page *p, uint64_t index, uint64_t round)
{
    uint64_t x = index * 0x9e3779b97f4a7c15ull + round;

    p->magic = MAGIC;
    p->index = index;
    p->round = round;
    for (size_t i = 0; i < sizeof(p->fill) / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p->fill[i] = x;
    }
    p->sum = page_sum(p);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
    double rate = argc > 2 ? atof(argv[2]) : 8;
    size_t pages = mib * 256;
    struct page *mem;
    double t0;

    if (!mib || rate <= 0) {
        fprintf(stderr, "usage: memwrite MIB [MIB_PER_S]\n");
        return 2;
    }
    mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        perror("memwrite: mmap");
        return 1;
    }
    for (size_t i = 0; i < pages; i++) {
        fill_page(&mem[i], i, 0);
    }
    t0 = now();
    for (uint64_t round = 1;; round++) {
        for (size_t i = 0; i < pages; i++) {
            struct page *p = &mem[i];
            double due = t0 + (double)((round - 1) * pages + i) /
                         (rate * 256);

            if (p->magic != MAGIC || p->index != i ||
                p->round != round - 1 || p->sum != page_sum(p)) {
                printf("MEM MISMATCH page %zu: round %llu (want %llu), "
                       "index %llu, sum %s at %.3f\n", i,
                       (unsigned long long)p->round,
                       (unsigned long long)(round - 1),
                       (unsigned long long)p->index,
                       p->sum == page_sum(p) ? "ok" : "bad", now());
                fflush(stdout);
                fill_page(p, i, round - 1);   /* go on checking the rest */
            }
            fill_page(p, i, round);
            while (now() < due) {
                struct timespec ts = { 0, 2000000 };

                nanosleep(&ts, NULL);
            }
        }
        printf("MEM ok round %llu, %zu MiB at %.1f MiB/s, at %.3f\n",
               (unsigned long long)round, mib, rate, now());
        fflush(stdout);
    }
}
