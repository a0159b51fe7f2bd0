/*
 * bitmap.h: page bitmaps (one bit per target page), as arrays of unsigned
 * long.  Only what the RAM code needs.
 */
#ifndef QEMU_BITMAP_H
#define QEMU_BITMAP_H

#include "qemu/osdep.h"

#define BITS_PER_LONG      (sizeof(unsigned long) * 8)
#define BITS_TO_LONGS(n)   (((n) + BITS_PER_LONG - 1) / BITS_PER_LONG)

static inline void set_bit(uint64_t nr, unsigned long *map)
{
    map[nr / BITS_PER_LONG] |= 1UL << (nr % BITS_PER_LONG);
}

static inline void clear_bit(uint64_t nr, unsigned long *map)
{
    map[nr / BITS_PER_LONG] &= ~(1UL << (nr % BITS_PER_LONG));
}

static inline bool test_bit(uint64_t nr, const unsigned long *map)
{
    return (map[nr / BITS_PER_LONG] >> (nr % BITS_PER_LONG)) & 1;
}

/* First set bit at or after @start, or @size if there is none. */
static inline uint64_t find_next_bit(const unsigned long *map, uint64_t size,
                                     uint64_t start)
{
    while (start < size) {
        unsigned long w = map[start / BITS_PER_LONG] >>
                          (start % BITS_PER_LONG);

        if (w) {
            start += __builtin_ctzl(w);
            return MIN(start, size);
        }
        start = (start / BITS_PER_LONG + 1) * BITS_PER_LONG;
    }
    return size;
}

/* First clear bit at or after @start, or @size if there is none. */
static inline uint64_t find_next_zero_bit(const unsigned long *map,
                                          uint64_t size, uint64_t start)
{
    while (start < size) {
        unsigned long w = ~map[start / BITS_PER_LONG] >>
                          (start % BITS_PER_LONG);

        if (w) {
            start += __builtin_ctzl(w);
            return MIN(start, size);
        }
        start = (start / BITS_PER_LONG + 1) * BITS_PER_LONG;
    }
    return size;
}

/* A bitmap of @nbits, all clear. */
static inline unsigned long *bitmap_new(uint64_t nbits)
{
    return g_new0(unsigned long, BITS_TO_LONGS(nbits));
}

static inline void bitmap_zero(unsigned long *map, uint64_t nbits)
{
    memset(map, 0, BITS_TO_LONGS(nbits) * sizeof(unsigned long));
}

/* Sets bits [@start, @start + @n). */
static inline void bitmap_set(unsigned long *map, uint64_t start, uint64_t n)
{
    uint64_t end = start + n;

    while (start < end && start % BITS_PER_LONG) {
        set_bit(start++, map);
    }
    while (end - start >= BITS_PER_LONG) {
        map[start / BITS_PER_LONG] = ~0UL;
        start += BITS_PER_LONG;
    }
    while (start < end) {
        set_bit(start++, map);
    }
}

static inline uint64_t bitmap_count_one(const unsigned long *map,
                                        uint64_t nbits)
{
    uint64_t n = 0, full = nbits / BITS_PER_LONG;

    for (uint64_t i = 0; i < full; i++) {
        n += __builtin_popcountl(map[i]);
    }
    if (nbits % BITS_PER_LONG) {
        n += __builtin_popcountl(map[full] &
                                 ((1UL << (nbits % BITS_PER_LONG)) - 1));
    }
    return n;
}

#endif /* QEMU_BITMAP_H */
