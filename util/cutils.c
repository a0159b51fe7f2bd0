/*
 * cutils.c: see include/qemu/cutils.h.
 */
#include "qemu/osdep.h"

#include "qemu/cutils.h"

bool buffer_is_zero(const void *p, size_t len)
{
    const uint64_t *w = p;
    size_t i;

    /* Eight words at a time while whole 64-byte lines remain. */
    for (i = 0; i + 8 <= len / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] |
            w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) {
            return false;
        }
    }
    for (i *= 8; i < len; i++) {
        if (((const uint8_t *)p)[i]) {
            return false;
        }
    }
    return true;
}
