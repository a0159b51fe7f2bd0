/*
 * xbzrle.h: QEMU's XBZRLE page delta format.
 *
 * An encoded page is a list of (unchanged run, changed run) pairs, each
 * length a little-endian base-128 number of at most two bytes (< 0x4000),
 * the changed run followed by its new bytes.  Decoding patches a page in
 * place: bytes in unchanged runs keep what the page already held.
 */
#ifndef MIGRATION_XBZRLE_H
#define MIGRATION_XBZRLE_H

#include "qemu/osdep.h"

/*
 * Applies @in (@in_len bytes) on top of @page (@page_size bytes).
 * Returns the decoded length, or -1 with *@why set to a static string
 * naming the defect; @page is then partly patched, so decode into a copy
 * when the page must stay intact on error.
 */
int xbzrle_decode(const uint8_t *in, size_t in_len, uint8_t *page,
                  size_t page_size, const char **why);

/*
 * Encodes the change from @old to @new (@page_size bytes each) into @out
 * (@out_size bytes).  Returns the encoded length, 0 if the pages are equal,
 * or -1 if the encoding would not fit in @out_size bytes.
 */
int xbzrle_encode(const uint8_t *old, const uint8_t *new, size_t page_size,
                  uint8_t *out, size_t out_size);

#endif /* MIGRATION_XBZRLE_H */
