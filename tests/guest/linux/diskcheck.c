/*
 * diskcheck DEVICE [BLOCKS]: the disk tests' guest workload.  It writes
 * 4 KiB records to random blocks of DEVICE with O_DIRECT|O_SYNC, keeps in
 * its own memory which record each block must hold, and every 64
 * writes reads all blocks back and compares them with its memory.  After a failover memory and disk are both rolled back to the
 * same checkpoint, so they must still agree: any difference is printed
 * as "DISK MISMATCH".  Once a second it prints "DISK ok" with its counts
 * and the guest clock (a rollback shows as time running backwards).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

int main(int argc, char **argv)
{
    uint64_t nblocks = argc > 2 ? strtoull(argv[2], NULL, 10) : 512;
    struct record *r;
    uint64_t *table, seq = 0, writes = 0, verified = 0, mismatches = 0;
    uint64_t last_print = 0;
    int fd;

    if (argc < 2 || nblocks == 0) {
        fprintf(stderr, "usage: diskcheck DEVICE [BLOCKS]\n");
        return 2;
    }
    fd = open(argv[1], O_RDWR | O_DIRECT | O_SYNC);
    if (fd < 0) {
        printf("DISK ERROR open %s: %s\n", argv[1], strerror(errno));
        return 1;
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
