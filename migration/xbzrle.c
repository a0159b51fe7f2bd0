/*
 * xbzrle.c: XBZRLE decode (for the incoming side) and encode (for our
 * primary and the tests).  Format described in xbzrle.h.
 */
#include "qemu/osdep.h"

#include "migration/xbzrle.h"

/* Reads a one- or two-byte ULEB128 value; false if malformed. */
static bool uleb_get(const uint8_t *in, size_t len, size_t *pos,
                     uint32_t *val)
{
    uint8_t b0, b1;

    if (*pos >= len) {
        return false;
    }
    b0 = in[(*pos)++];
    if (!(b0 & 0x80)) {
        *val = b0;
        return true;
    }
    if (*pos >= len) {
        return false;
    }
    b1 = in[(*pos)++];
    if (b1 & 0x80) {
        return false;   /* a third byte would be needed: not allowed */
    }
    *val = (b0 & 0x7f) | ((uint32_t)b1 << 7);
    return true;
}

static size_t uleb_put(uint8_t *out, uint32_t v)
{
    if (v < 0x80) {
        out[0] = v;
        return 1;
    }
    out[0] = (v & 0x7f) | 0x80;
    out[1] = v >> 7;
    return 2;
}

int xbzrle_decode(const uint8_t *in, size_t in_len, uint8_t *page,
                  size_t page_size, const char **why)
{
    size_t ip = 0, op = 0;

    while (ip < in_len) {
        uint32_t skip, count;
        size_t pair_start = ip;

        /* Each pair needs at least its two length bytes. */
        if (in_len - ip < 2) {
            *why = "a run header is cut short";
            return -1;
        }
        if (!uleb_get(in, in_len, &ip, &skip)) {
            *why = "malformed unchanged-run length";
            return -1;
        }
        if (skip == 0 && pair_start != 0) {
            *why = "empty unchanged run after the first pair";
            return -1;
        }
        op += skip;
        if (op > page_size) {
            *why = "unchanged run goes past the end of the page";
            return -1;
        }
        if (in_len - ip < 2) {
            *why = "a changed run is cut short";
            return -1;
        }
        if (!uleb_get(in, in_len, &ip, &count)) {
            *why = "malformed changed-run length";
            return -1;
        }
        if (count == 0) {
            *why = "empty changed run";
            return -1;
        }
        if (count > page_size - op) {
            *why = "changed run goes past the end of the page";
            return -1;
        }
        if (count > in_len - ip) {
            *why = "changed run goes past the end of the record";
            return -1;
        }
        memcpy(page + op, in + ip, count);
        ip += count;
        op += count;
    }
    return (int)op;
}

int xbzrle_encode(const uint8_t *old, const uint8_t *new, size_t page_size,
                  uint8_t *out, size_t out_size)
{
    size_t i = 0, o = 0;
    bool first = true;

    g_assert(page_size < 0x4000);
    while (i < page_size) {
        size_t same = 0, diff = 0;

        while (i + same < page_size && old[i + same] == new[i + same]) {
            same++;
        }
        if (i + same == page_size) {
            break;      /* trailing unchanged bytes are never encoded */
        }
        if (same == 0 && !first) {
            /* cannot happen: a changed run always ends at an equal byte */
            return -1;
        }
        while (i + same + diff < page_size &&
               old[i + same + diff] != new[i + same + diff]) {
            diff++;
        }
        if (o + 4 + diff > out_size) {
            return -1;
        }
        o += uleb_put(out + o, same);
        o += uleb_put(out + o, diff);
        memcpy(out + o, new + i + same, diff);
        o += diff;
        i += same + diff;
        first = false;
    }
    return (int)o;
}
