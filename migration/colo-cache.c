/*
 * colo-cache.c: where a checkpoint's pages wait until the checkpoint is
 * whole.
 *
 * Every page record of a checkpoint is decoded into block->colo_cache at
 * the page's own offset and marks the page in block->bmap; the RAM files
 * (block->host) are not touched.  Only after the device state has arrived
 * too does colo_flush_ram_cache() copy the marked pages into the files.
 * A checkpoint cut off half way is simply never flushed.
 *
 *    RAM file (MAP_SHARED, the committed VM)      colo_cache (reserved)
 *   +----+----+----+----+----+----+----+         +----+----+----+----+----
 *   | c0 | c0 | c0 | c0 | c0 | c0 | c0 |  flush  |    | n1 |    | n1 |
 *   +----+----+----+----+----+----+----+  <----  +----+----+----+----+----
 *               bmap:   0    1    0    1            ^ only written pages
 *                                                     use memory
 *
 * Why not a full second copy, as QEMU keeps: QEMU's secondary runs the
 * guest between checkpoints, so its RAM diverges and the cache must hold
 * the primary's whole RAM.  Ours never runs the guest: the RAM files *are*
 * the primary's RAM at the last checkpoint.  So the cache only needs the
 * pages of the checkpoint in flight:
 *
 * - colo_cache is an anonymous MAP_NORESERVE mapping of the block's size:
 *   address space, not memory.  Addressing stays colo_cache + offset.
 * - A page costs memory only once a record writes it; after the flush
 *   (and after VMSTATE_LOADED has gone out, off the critical path)
 *   colo_trim_ram_cache() returns it with MADV_DONTNEED, so memory beyond
 *   the RAM files follows the checkpoint's dirty set, not guest RAM.
 * - XBZRLE decodes on top of the previous version of the page: when a
 *   checkpoint first touches a page with XBZRLE, ram.c seeds the cache page
 *   from the RAM file, which holds exactly that version.  A ZERO record on
 *   an untouched page needs nothing: a trimmed page reads as zero.
 * - The flush writes each run of marked pages with one pwrite() into the
 *   RAM file, so the shared mapping never takes write faults.
 *
 * The price is a page fault per cache page per checkpoint (~3 us here,
 * see bench/ram-write: fresh anonymous memcpy 2.7 GB/s against 7.4 GB/s
 * into touched memory); it is paid while the RAM part streams in, not
 * between VMSTATE_RECEIVED and VMSTATE_LOADED.  bench/colo_commit.py
 * measures the commit and the memory.
 */
#include "qemu/osdep.h"

#include <sys/mman.h>

#include "migration/colo-cache.h"
#include "migration/wire.h"
#include "qemu/bitmap.h"

static void colo_cache_free_block(RAMBlock *rb)
{
    if (rb->colo_cache) {
        munmap(rb->colo_cache, rb->max_length);
        rb->colo_cache = NULL;
    }
    g_free(rb->bmap);
    rb->bmap = NULL;
}

bool colo_init_ram_cache(RAMList *rl, GError **errp)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        size_t longs = BITS_TO_LONGS(rb->max_length >> TARGET_PAGE_BITS);
        void *p;

        if (rb->ignored) {
            continue;       /* never migrated, so never cached */
        }
        p = mmap(NULL, rb->max_length, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            g_set_error(errp, COLO_ERROR, errno, "cannot reserve the COLO "
                        "cache of block '%s' (%" PRIu64 " bytes): %s",
                        rb->idstr, rb->max_length, g_strerror(errno));
            goto fail;
        }
        rb->colo_cache = p;
        rb->bmap = g_try_new0(unsigned long, longs);
        if (!rb->bmap) {
            g_set_error(errp, COLO_ERROR, ENOMEM, "cannot allocate the COLO "
                        "bitmap of block '%s' (%" PRIu64 " bytes)",
                        rb->idstr, rb->max_length);
            goto fail;
        }
    }
    return true;

fail:
    colo_release_ram_cache(rl);
    return false;
}

/* --- the route: the loader's page sink inside a checkpoint ----------- */

static uint8_t *colo_cache_target(RAMBlock *rb, uint64_t offset)
{
    return rb->colo_cache ? rb->colo_cache + offset : NULL;
}

/* A page this checkpoint has not written yet is, for XBZRLE, the committed
 * one in the RAM file: the version the primary encoded against. */
static const uint8_t *colo_cache_base(RAMBlock *rb, uint64_t offset)
{
    return test_bit(offset >> TARGET_PAGE_BITS, rb->bmap) ?
           rb->colo_cache + offset : rb->host + offset;
}

/* Not yet written in this checkpoint: a trimmed cache page, all zero. */
static bool colo_cache_known_zero(RAMBlock *rb, uint64_t offset)
{
    return !test_bit(offset >> TARGET_PAGE_BITS, rb->bmap);
}

static void colo_cache_page_done(RAMBlock *rb, uint64_t offset)
{
    set_bit(offset >> TARGET_PAGE_BITS, rb->bmap);
}

const RAMPageSink colo_cache_sink = {
    .name = "COLO cache",
    .target = colo_cache_target,
    .base = colo_cache_base,
    .known_zero = colo_cache_known_zero,
    .done = colo_cache_page_done,
};

/* --- commit ------------------------------------------------------------ */

bool colo_flush_ram_cache(RAMList *rl, ColoFlushStats *stats, GError **errp)
{
    ColoFlushStats s = { 0 };

    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        uint64_t npages = rb->used_length >> TARGET_PAGE_BITS;
        uint64_t start = 0;

        if (!rb->colo_cache) {
            continue;
        }
        for (;;) {
            uint64_t end, off, len;

            start = find_next_bit(rb->bmap, npages, start);
            if (start >= npages) {
                break;
            }
            end = find_next_zero_bit(rb->bmap, npages, start);
            off = start << TARGET_PAGE_BITS;
            len = (end - start) << TARGET_PAGE_BITS;
            while (len > 0) {
                ssize_t n = pwrite(rb->fd, rb->colo_cache + off, len, off);

                if (n < 0 && errno == EINTR) {
                    continue;
                }
                if (n <= 0) {
                    g_set_error(errp, COLO_ERROR, n < 0 ? errno : EIO,
                                "COLO flush: cannot write %s at 0x%" PRIx64
                                ": %s", rb->path, off,
                                n < 0 ? g_strerror(errno) : "short write");
                    return false;
                }
                off += n;
                len -= n;
            }
            for (uint64_t p = start; p < end; p++) {
                clear_bit(p, rb->bmap);
            }
            s.pages += end - start;
            s.runs++;
            start = end;
        }
    }
    if (stats) {
        *stats = s;
    }
    return true;
}

void colo_trim_ram_cache(RAMList *rl)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        if (rb->colo_cache) {
            madvise(rb->colo_cache, rb->max_length, MADV_DONTNEED);
        }
    }
}

void colo_release_ram_cache(RAMList *rl)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        colo_cache_free_block(g_ptr_array_index(rl->blocks, i));
    }
}

uint64_t colo_cache_reserved_bytes(RAMList *rl)
{
    uint64_t total = 0;

    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        if (rb->colo_cache) {
            total += rb->max_length;
        }
    }
    return total;
}

uint64_t colo_cache_resident_bytes(RAMList *rl)
{
    uint64_t total = 0;
    long psz = sysconf(_SC_PAGESIZE);

    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        size_t pages = rb->max_length / psz;
        g_autofree unsigned char *vec = NULL;

        if (!rb->colo_cache) {
            continue;
        }
        vec = g_malloc(pages);
        if (mincore(rb->colo_cache, rb->max_length, vec) < 0) {
            continue;
        }
        for (size_t p = 0; p < pages; p++) {
            total += (vec[p] & 1) ? psz : 0;
        }
    }
    return total;
}
