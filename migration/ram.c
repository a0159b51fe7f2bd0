/*
 * ram.c: loading the RAM section of a QEMU migration stream.
 *
 * Every record starts with a be64 whose low 12 bits are flags and whose
 * page-aligned rest is an offset inside a RAMBlock (or, for MEM_SIZE, a
 * byte count).  Nothing here trusts the stream: every block name is looked
 * up, every offset is checked against the block before a byte is written,
 * and every payload is decoded into bounded buffers.
 *
 * Where a page goes: normally to the block's RAM file (block->host).  With
 * a page sink set (rs->sink: inside a COLO checkpoint, the COLO cache of
 * colo-cache.c) every page goes where the sink says instead, and the sink
 * alone decides what that means; a checkpoint that is cut off therefore
 * never reaches the RAM files.
 *
 * Owner: the incoming migration thread.
 */
#include "qemu/osdep.h"

#include "migration/ram.h"
#include "migration/wire.h"
#include "migration/xbzrle.h"
#include "qemu/bitmap.h"
#include "qemu/cutils.h"

void ram_load_init(RAMLoadState *rs, RAMList *ram_list)
{
    memset(rs, 0, sizeof(*rs));
    rs->ram_list = ram_list;
    rs->zero_fill_strict = true;
}

void ram_load_cleanup(RAMLoadState *rs)
{
    if (rs->zs_ready) {
        inflateEnd(&rs->zs);
        rs->zs_ready = false;
    }
    rs->last_block = NULL;
}

/* Errors name the record and where it starts. */
#define ram_fail(errp, at, what, ...) \
    stream_error_at(errp, at, "ram: " what, __VA_ARGS__)

/* Reads the block list of a MEM_SIZE record; @total is its byte count. */
static bool ram_load_mem_size(RAMLoadState *rs, QEMUFile *f, uint64_t total,
                              uint64_t at, GError **errp)
{
    uint64_t seen = 0;

    while (seen < total) {
        char idstr[256];
        uint64_t entry_at = qemu_file_tell(f);
        uint64_t len, mr_addr = 0;
        RAMBlock *rb;
        GError *local_err = NULL;
        int n = qemu_get_str8(f, idstr);

        len = qemu_get_be64(f);
        if (rs->ignore_shared) {
            mr_addr = qemu_get_be64(f);
        }
        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        if (n == 0) {
            return ram_fail(errp, entry_at, "MEM_SIZE", "empty block name");
        }
        if (n > RAM_BLOCK_IDSTR_MAX) {
            return ram_fail(errp, entry_at, "MEM_SIZE", "block name of %d "
                            "bytes is over-long (limit %d)", n,
                            RAM_BLOCK_IDSTR_MAX);
        }
        if (len > total - seen) {
            return ram_fail(errp, entry_at, "MEM_SIZE", "block '%s' of 0x%"
                            PRIx64 " bytes overruns the announced total 0x%"
                            PRIx64, idstr, len, total);
        }
        rb = ram_list_find(rs->ram_list, idstr);
        if (rb) {
            if (rb->used_length != len) {
                return ram_fail(errp, entry_at, "MEM_SIZE", "block '%s' "
                                "announced again with length 0x%" PRIx64
                                " (was 0x%" PRIx64 ")", idstr, len,
                                rb->used_length);
            }
        } else {
            rb = ram_list_add(rs->ram_list, idstr, len, &local_err);
            if (!rb) {
                ram_fail(errp, entry_at, "MEM_SIZE", "%s",
                         local_err->message);
                g_error_free(local_err);
                return false;
            }
        }
        rb->mr_addr = mr_addr;
        rb->has_mr_addr = rs->ignore_shared;
        /* Under x-ignore-shared, a RAM file that was already there is the
         * shared memory the source left out of the stream. */
        rb->ignored = rs->ignore_shared && rb->preexisting;
        seen += len;
    }
    rs->mem_size_seen = true;
    (void)at;
    return true;
}

/* Where the page at @offset of @rb is written (see the top of the file). */
static inline uint8_t *ram_page_target(RAMLoadState *rs, RAMBlock *rb,
                                       uint64_t offset)
{
    return rs->sink ? rs->sink->target(rb, offset) : rb->host + offset;
}

/* Bookkeeping once the page at @offset has its new contents. */
static inline void ram_page_done(RAMLoadState *rs, RAMBlock *rb,
                                 uint64_t offset)
{
    if (rs->sink) {
        rs->sink->done(rb, offset);
        return;
    }
    set_bit(offset >> TARGET_PAGE_BITS, rb->receivedmap);
}

/* Before a write through the mapping: the RAM file's page gets storage
 * (the COLO cache takes care of its own). */
static inline bool ram_page_reserve(RAMLoadState *rs, RAMBlock *rb,
                                    uint64_t offset, GError **errp)
{
    return rs->sink || ram_block_reserve(rb, offset, TARGET_PAGE_SIZE, errp);
}

/* True if the page certainly reads as zero without looking at it. */
static inline bool ram_page_known_zero(RAMLoadState *rs, RAMBlock *rb,
                                       uint64_t offset)
{
    if (rs->sink) {
        return rs->sink->known_zero(rb, offset);
    }
    return !rb->preexisting &&
           !test_bit(offset >> TARGET_PAGE_BITS, rb->receivedmap);
}

/* Largest record a page run may see before the next flush check: header,
 * block name, one page. */
#define RAM_RECORD_MAX   (8 + 1 + 255 + TARGET_PAGE_SIZE)

static bool ram_run_flush(RAMLoadState *rs, GError **errp)
{
    RAMBlock *rb = rs->run_block;
    struct iovec *iov = rs->run_iov;
    int cnt = rs->run_pages;
    uint64_t off = rs->run_offset;

    rs->run_pages = 0;
    while (cnt > 0) {
        ssize_t n = pwritev(rb->fd, iov, cnt, off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_set_error(errp, COLO_ERROR, n < 0 ? errno : EIO, "ram: cannot "
                        "write RAM file %s at 0x%" PRIx64 ": %s", rb->path,
                        off, n < 0 ? g_strerror(errno) : "short write");
            return false;
        }
        off += n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0 && n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= n;
        }
    }
    return true;
}

/* Queues a PAGE for @rb at @offset, whose bytes sit in the stream buffer. */
static bool ram_run_add(RAMLoadState *rs, RAMBlock *rb, uint64_t offset,
                        const uint8_t *src, GError **errp)
{
    if (rs->run_pages &&
        (rs->run_block != rb ||
         rs->run_offset + (uint64_t)rs->run_pages * TARGET_PAGE_SIZE !=
         offset || rs->run_pages == RAM_WRITE_RUN_PAGES) &&
        !ram_run_flush(rs, errp)) {
        return false;
    }
    if (!rs->run_pages) {
        rs->run_block = rb;
        rs->run_offset = offset;
    }
    rs->run_iov[rs->run_pages].iov_base = (void *)src;
    rs->run_iov[rs->run_pages].iov_len = TARGET_PAGE_SIZE;
    rs->run_pages++;
    return true;
}

static bool ram_load_zlib(RAMLoadState *rs, const uint8_t *in, uint32_t len,
                          const char **why)
{
    int ret;

    if (!rs->zs_ready) {
        memset(&rs->zs, 0, sizeof(rs->zs));
        if (inflateInit(&rs->zs) != Z_OK) {
            *why = "zlib could not be initialised";
            return false;
        }
        rs->zs_ready = true;
    } else if (inflateReset(&rs->zs) != Z_OK) {
        *why = "zlib could not be reset";
        return false;
    }
    rs->zs.next_in = (Bytef *)in;
    rs->zs.avail_in = len;
    rs->zs.next_out = rs->scratch;
    rs->zs.avail_out = sizeof(rs->scratch);
    ret = inflate(&rs->zs, Z_FINISH);
    if (ret != Z_STREAM_END) {
        *why = ret == Z_BUF_ERROR ? "zlib data does not fit in one page or "
               "is cut short" : "zlib data is corrupt";
        return false;
    }
    if (rs->zs.avail_out != 0) {
        *why = "zlib data inflates to less than a page";
        return false;
    }
    if (rs->zs.avail_in != 0) {
        *why = "trailing bytes after the zlib stream";
        return false;
    }
    return true;
}

/*
 * One ZERO, PAGE, XBZRLE or COMPRESS_PAGE record whose block @rb and
 * target @dst (RAM file or COLO cache, see ram_page_target) are resolved
 * and checked.
 */
static bool ram_load_page_record(RAMLoadState *rs, QEMUFile *f, RAMBlock *rb,
                                 uint64_t offset, uint8_t *dst,
                                 uint32_t kind, uint64_t at, GError **errp)
{
    switch (kind) {
    case RAM_SAVE_FLAG_ZERO: {
        uint8_t fill = qemu_get_byte(f);

        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        if (fill != 0 && rs->zero_fill_strict) {
            return ram_fail(errp, at, "ZERO page", "fill byte 0x%02x; "
                            "a QEMU 8.0+ stream only has zero fills",
                            fill);
        }
        if (fill != 0) {
            if (!ram_page_reserve(rs, rb, offset, errp)) {
                return false;
            }
            memset(dst, fill, TARGET_PAGE_SIZE);
        } else if (!ram_page_known_zero(rs, rb, offset) &&
                   !buffer_is_zero(dst, TARGET_PAGE_SIZE)) {
            /* a page with storage: reading it did not allocate */
            memset(dst, 0, TARGET_PAGE_SIZE);
        }
        ram_page_done(rs, rb, offset);
        rs->stats.duplicate++;
        return true;
    }

    case RAM_SAVE_FLAG_PAGE: {
        const uint8_t *src = qemu_get_ptr(f, TARGET_PAGE_SIZE);

        if (!src) {
            qemu_file_propagate_error(f, errp);
            return false;
        }
        if (rs->sink) {
            memcpy(dst, src, TARGET_PAGE_SIZE);
        } else if (!ram_run_add(rs, rb, offset, src, errp)) {
            return false;
        }
        ram_page_done(rs, rb, offset);
        rs->stats.normal++;
        rs->stats.normal_bytes += TARGET_PAGE_SIZE;
        return true;
    }

    case RAM_SAVE_FLAG_XBZRLE: {
        uint8_t enc = qemu_get_byte(f);
        uint16_t len = qemu_get_be16(f);
        const uint8_t *data;
        const char *why = NULL;

        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        if (enc != XBZRLE_ENCODING_BYTE) {
            return ram_fail(errp, at, "XBZRLE page", "encoding byte "
                            "0x%02x, expected 0x%02x", enc,
                            XBZRLE_ENCODING_BYTE);
        }
        if (len > TARGET_PAGE_SIZE) {
            return ram_fail(errp, at, "XBZRLE page", "data length %u "
                            "is larger than a page", len);
        }
        data = qemu_get_ptr(f, len);
        if (!data) {
            qemu_file_propagate_error(f, errp);
            return false;
        }
        /* Decode on a copy so a bad record leaves the page intact; a
         * sink may keep the version it was encoded against elsewhere. */
        memcpy(rs->scratch, rs->sink ? rs->sink->base(rb, offset) : dst,
               TARGET_PAGE_SIZE);
        if (xbzrle_decode(data, len, rs->scratch, TARGET_PAGE_SIZE,
                          &why) < 0) {
            return ram_fail(errp, at, "XBZRLE page", "%s", why);
        }
        if (!ram_page_reserve(rs, rb, offset, errp)) {
            return false;
        }
        memcpy(dst, rs->scratch, TARGET_PAGE_SIZE);
        ram_page_done(rs, rb, offset);
        rs->stats.xbzrle++;
        return true;
    }

    case RAM_SAVE_FLAG_COMPRESS_PAGE: {
        uint32_t len = qemu_get_be32(f);
        const uint8_t *data;
        const char *why = NULL;

        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        if (len == 0 || len > compressBound(TARGET_PAGE_SIZE)) {
            return ram_fail(errp, at, "compressed page", "length %u "
                            "outside 1..%lu", len,
                            (unsigned long)compressBound(TARGET_PAGE_SIZE));
        }
        data = qemu_get_ptr(f, len);
        if (!data) {
            qemu_file_propagate_error(f, errp);
            return false;
        }
        if (!ram_load_zlib(rs, data, len, &why)) {
            return ram_fail(errp, at, "compressed page", "%s", why);
        }
        if (!ram_page_reserve(rs, rb, offset, errp)) {
            return false;
        }
        memcpy(dst, rs->scratch, TARGET_PAGE_SIZE);
        ram_page_done(rs, rb, offset);
        rs->stats.compressed++;
        return true;
    }

    default:
        return ram_fail(errp, at, "record", "unknown combination of flags "
                        "0x%03x", kind);
    }
}

bool ram_load_section(RAMLoadState *rs, QEMUFile *f, GError **errp)
{
    for (;;) {
        uint64_t at, word;
        uint32_t flags;
        uint64_t offset;
        RAMBlock *rb = NULL;
        uint8_t *dst = NULL;

        /* The next record must not move the buffer under a queued run. */
        if (rs->run_pages && qemu_file_buffered(f) < RAM_RECORD_MAX &&
            !ram_run_flush(rs, errp)) {
            return false;
        }
        at = qemu_file_tell(f);
        word = qemu_get_be64(f);
        flags = word & ~TARGET_PAGE_MASK;
        offset = word & TARGET_PAGE_MASK;

        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        /* Anything but another PAGE may read or write a block: the queued
         * run must reach its file first. */
        if (rs->run_pages &&
            (flags & ~RAM_SAVE_FLAG_CONTINUE) != RAM_SAVE_FLAG_PAGE &&
            !ram_run_flush(rs, errp)) {
            return false;
        }

        if (flags & (RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_PAGE |
                     RAM_SAVE_FLAG_XBZRLE | RAM_SAVE_FLAG_COMPRESS_PAGE)) {
            if (flags & RAM_SAVE_FLAG_CONTINUE) {
                rb = rs->last_block;
                if (!rb) {
                    return ram_fail(errp, at, "page record", "CONTINUE "
                                    "flag before any block was named");
                }
            } else {
                char idstr[256];
                int n = qemu_get_str8(f, idstr);

                if (n < 0) {
                    qemu_file_propagate_error(f, errp);
                    return false;
                }
                rb = ram_list_find(rs->ram_list, idstr);
                if (!rb) {
                    return ram_fail(errp, at, "page record", "unknown RAM "
                                    "block '%s'", idstr);
                }
                rs->last_block = rb;
            }
            if (rb->ignored) {
                return ram_fail(errp, at, "page record", "block '%s' is "
                                "shared (x-ignore-shared) and must not be "
                                "migrated", rb->idstr);
            }
            if (offset >= rb->used_length) {
                return ram_fail(errp, at, "page record", "offset 0x%" PRIx64
                                " is outside block '%s' (0x%" PRIx64
                                " bytes)", offset, rb->idstr,
                                rb->used_length);
            }
            dst = ram_page_target(rs, rb, offset);
            if (!dst && rb->colo_cache_error) {
                return ram_fail(errp, at, "page record", "no room for page "
                                "0x%" PRIx64 " of block '%s' in the %s: %s",
                                offset, rb->idstr, rs->sink->name,
                                g_strerror(rb->colo_cache_error));
            }
            if (!dst) {
                return ram_fail(errp, at, "page record", "block '%s' has no "
                                "%s", rb->idstr, rs->sink->name);
            }
            if (!ram_load_page_record(rs, f, rb, offset, dst,
                                      flags & ~RAM_SAVE_FLAG_CONTINUE, at,
                                      errp)) {
                return false;
            }
            continue;
        }

        switch (flags & ~RAM_SAVE_FLAG_CONTINUE) {
        case RAM_SAVE_FLAG_MEM_SIZE:
            if (!ram_load_mem_size(rs, f, offset, at, errp)) {
                return false;
            }
            break;

        case RAM_SAVE_FLAG_MULTIFD_FLUSH:
            /* No multifd channels here: nothing is in flight elsewhere. */
            break;

        case RAM_SAVE_FLAG_EOS:
            return true;

        case RAM_SAVE_FLAG_HOOK:
            return ram_fail(errp, at, "record", "RDMA hook record on a "
                            "non-RDMA stream");

        default:
            return ram_fail(errp, at, "record", "unknown combination of "
                            "flags 0x%03x", flags);
        }
    }
}
