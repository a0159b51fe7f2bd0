/*
 * cutils.h: small helpers on plain memory that the load and save sides
 * both need.
 */
#ifndef QEMU_CUTILS_H
#define QEMU_CUTILS_H

#include "qemu/osdep.h"

/* True if the @len bytes at @p are all zero.  Fast for pages: 8-byte
 * aligned buffers whose length is a multiple of 64. */
bool buffer_is_zero(const void *p, size_t len);

#endif /* QEMU_CUTILS_H */
