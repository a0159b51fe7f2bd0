/*
 * diskcheck DEVICE [BLOCKS]: the disk tests' guest workload.  It writes
 * 4 KiB records to random blocks of DEVICE with O_DIRECT|O_SYNC, keeps in
 * its own memory which record each block must hold, and every 64
 * writes reads all blocks back and compares them with its memory.  After a failover memory and disk are both rolled back to the
 * same checkpoint, so they must still agree: any difference is printed
 * as "DISK MISMATCH".  Once a second it prints "DISK ok" with its counts
 * and the guest clock (a rollback shows as time running backwards).
 *
 * diskcheck DEVICE --bench SECONDS: the disk benchmark (bench/disk.py),
 * fio-like, round after round: SECONDS of 4 KiB random writes, then
 * SECONDS of 1 MiB sequential writes, both O_DIRECT|O_SYNC, one at a
 * time; "BENCH round N rand4k iops=... p50_us=... p99_us=... seq1m
 * mbps=..." after each round.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define MAGIC 0x434f4c4f44534b31ull     /* "COLODSK1" */

struct record {
    uint64_t magic;
    uint64_t block;
    uint64_t seq;
    uint64_t written_ns;
    uint64_t sum;                       /* of the fields above and fill */
    uint8_t fill[BLOCK - 40];
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t record_sum(const struct record *r)
{
    uint64_t s = r->magic ^ (r->block * 31) ^ (r->seq * 131) ^ r->written_ns;

    for (size_t i = 0; i < sizeof(r->fill); i += 8) {
        uint64_t v;

        memcpy(&v, r->fill + i, 8);
        s = (s ^ v) * 0x100000001b3ull;
    }
    return s;
}

static void record_make(struct record *r, uint64_t block, uint64_t seq)
{
    r->magic = MAGIC;
    r->block = block;
    r->seq = seq;
    r->written_ns = now_ns();
    for (size_t i = 0; i < sizeof(r->fill); i++) {
        r->fill[i] = (uint8_t)(seq * 7 + i * 13 + block);
    }
    r->sum = record_sum(r);
}

/* The seq a block holds, -1 if it does not hold a whole record of its
 * own. */
static int64_t record_seq(const struct record *r, uint64_t block)
{
    if (r->magic != MAGIC || r->block != block || r->sum != record_sum(r)) {
        return -1;
    }
    return (int64_t)r->seq;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int bench(int fd, double seconds)
{
    const size_t big = 1 << 20;
    off_t size = lseek(fd, 0, SEEK_END);
    uint64_t max_lat = 1 << 20, *lat = malloc(max_lat * sizeof(*lat));
    uint8_t *buf;

    if (size < (off_t)(16 * big) || posix_memalign((void **)&buf, BLOCK, big)) {
        printf("BENCH ERROR: the disk is too small\n");
        return 1;
    }
    memset(buf, 0x5a, big);
    for (int round = 1;; round++) {
        uint64_t n = 0, t0 = now_ns(), end = t0 + seconds * 1e9, bytes = 0;
        uint64_t t1;
        off_t pos = 0;

        while (now_ns() < end) {
            uint64_t s = now_ns();
            off_t off = (off_t)((uint64_t)rand() % (size / BLOCK)) * BLOCK;

            if (pwrite(fd, buf, BLOCK, off) != BLOCK) {
                printf("BENCH ERROR write: %s\n", strerror(errno));
                return 1;
            }
            if (n < max_lat) {
                lat[n] = now_ns() - s;
            }
            n++;
        }
        t1 = now_ns();
        qsort(lat, n < max_lat ? n : max_lat, sizeof(*lat), cmp_u64);
        end = t1 + seconds * 1e9;
        while (now_ns() < end) {
            if (pos + (off_t)big > size) {
                pos = 0;
            }
            if (pwrite(fd, buf, big, pos) != (ssize_t)big) {
                printf("BENCH ERROR write: %s\n", strerror(errno));
                return 1;
            }
            pos += big;
            bytes += big;
        }
        printf("BENCH round %d rand4k iops=%.1f p50_us=%.0f p99_us=%.0f "
               "seq1m mbps=%.2f\n", round, n / ((t1 - t0) / 1e9),
               lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3,
               bytes / 1048576.0 / ((now_ns() - t1) / 1e9));
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    uint64_t nblocks = argc > 2 ? strtoull(argv[2], NULL, 10) : 512;
    struct record *r;
    uint64_t *table, seq = 0, writes = 0, verified = 0, mismatches = 0;
    uint64_t last_print = 0;
    int fd;

    bool bench_mode = argc > 3 && !strcmp(argv[2], "--bench");

    if (argc < 2 || (nblocks == 0 && !bench_mode)) {
        fprintf(stderr, "usage: diskcheck DEVICE [BLOCKS]\n");
        return 2;
    }
    fd = open(argv[1], O_RDWR | O_DIRECT | O_SYNC);
    if (fd < 0) {
        printf("DISK ERROR open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if (bench_mode) {
        return bench(fd, atof(argv[3]));
    }
    if (posix_memalign((void **)&r, BLOCK, BLOCK)) {
        return 1;
    }
    table = calloc(nblocks, sizeof(*table));
    /* every block gets a record first */
    for (uint64_t b = 0; b < nblocks; b++) {
        record_make(r, b, ++seq);
        if (pwrite(fd, r, BLOCK, b * BLOCK) != BLOCK) {
            printf("DISK ERROR write block %llu: %s\n",
                   (unsigned long long)b, strerror(errno));
            return 1;
        }
        table[b] = seq;
    }
    printf("DISK start blocks=%llu\n", (unsigned long long)nblocks);
    fflush(stdout);
    srand((unsigned)now_ns());
    for (;;) {
        uint64_t b = (uint64_t)rand() % nblocks;
        uint64_t t;

        record_make(r, b, ++seq);
        if (pwrite(fd, r, BLOCK, b * BLOCK) != BLOCK) {
            printf("DISK ERROR write block %llu: %s\n",
                   (unsigned long long)b, strerror(errno));
            fflush(stdout);
            sleep(1);
            continue;
        }
        table[b] = seq;
        writes++;
        if (writes % 64 == 0) {
            for (uint64_t k = 0; k < nblocks; k++) {
                int64_t got;

                if (pread(fd, r, BLOCK, k * BLOCK) != BLOCK) {
                    printf("DISK ERROR read block %llu: %s\n",
                           (unsigned long long)k, strerror(errno));
                    break;
                }
                got = record_seq(r, k);
                if (got != (int64_t)table[k]) {
                    mismatches++;
                    printf("DISK MISMATCH block %llu: the disk holds seq "
                           "%lld, memory says %llu\n", (unsigned long long)k,
                           (long long)got, (unsigned long long)table[k]);
                    table[k] = got < 0 ? 0 : (uint64_t)got;
                }
            }
            verified++;
        }
        t = now_ns();
        if (t - last_print > 1000000000ull) {
            last_print = t;
            printf("DISK ok seq=%llu writes=%llu verified=%llu "
                   "mismatches=%llu now=%llu\n", (unsigned long long)seq,
                   (unsigned long long)writes, (unsigned long long)verified,
                   (unsigned long long)mismatches, (unsigned long long)t);
            fflush(stdout);
        }
    }
}
