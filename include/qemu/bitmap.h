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

#endif /* QEMU_BITMAP_H */
