/*
 * colo-cache.c: where a checkpoint's pages wait until the checkpoint is
 * whole.
 *
 * Every page record of a checkpoint is decoded into block->colo_cache at
 * the page's own offset and marks the page in block->bmap; the RAM files
 * (block->host) are not touched.  Only after the device state has arrived
 * too does the commit (colo-commit.c, with this file's colo_cache_commit
 * as its RAM participant) copy the marked pages into the files.
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
 * - colo_cache is a shared mapping of a sparse cache file of the block's
 *   size (<ram-dir>/colo-cache/<block>): address space, not memory.
 *   Addressing stays colo_cache + offset.  It is a file, not anonymous
 *   memory, so that the commit journal (colo-journal.h) can name its
 *   pages and a colo-secondary started after a crash can replay them.
 * - A page costs memory only once a record writes it; the first write of
 *   a page in a checkpoint allocates it with fallocate(), so a full
 *   filesystem is a clear error instead of a SIGBUS.  After the flush
 *   (and after VMSTATE_LOADED has gone out, off the critical path)
 *   colo_trim_ram_cache() punches the pages out again, so memory beyond
 *   the RAM files follows the checkpoint's dirty set, not guest RAM.
 * - XBZRLE decodes on top of the previous version of the page: when a
 *   checkpoint first touches a page with XBZRLE, ram.c seeds the cache page
 *   from the RAM file, which holds exactly that version.  A ZERO record on
 *   an untouched page finds it all zero (trimmed) and writes nothing.
 * - The flush writes the journal, then copies each run of marked pages
 *   with memcpy() from the cache mapping into the RAM file's mapping (the
 *   RAM files are fully allocated once checkpoint 0 is committed, see
 *   physmem.c, so this cannot fault on a full filesystem; their pages
 *   are touched and locked when COLO starts, see colo_prepare_ram), then
 *   retires the journal.
 *
 * The price is a page fault (and an fallocate) per cache page per
 * checkpoint; it is paid while the RAM part streams in, not between
 * VMSTATE_RECEIVED and VMSTATE_LOADED.  bench/colo_commit.py measures the
 * commit against memcpy of the same pages, and the memory.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <glib/gstdio.h>

#include "migration/colo-cache.h"
#include "migration/colo-commit.h"
#include "migration/wire.h"
#include "qemu/bitmap.h"
#include "qemu/crash-test.h"

static void colo_cache_free_block(RAMBlock *rb)
{
    if (rb->colo_cache) {
        munmap(rb->colo_cache, rb->max_length);
        rb->colo_cache = NULL;
        close(rb->colo_cache_fd);
    }
    g_free(rb->bmap);
    rb->bmap = NULL;
}

static bool colo_cache_open_block(RAMList *rl, RAMBlock *rb, GError **errp)
{
    g_autofree char *dir = g_build_filename(rl->dir, COLO_CACHE_DIR, NULL);
    g_autofree char *path = ram_block_path(dir, rb->idstr, errp);
    g_autofree char *parent = NULL;
    void *p;
    int fd;

    if (!path) {
        return false;
    }
    parent = g_path_get_dirname(path);
    if (g_mkdir_with_parents(parent, 0700) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot create %s: %s", parent,
                    g_strerror(errno));
        return false;
    }
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, rb->max_length) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot create the COLO cache "
                    "file %s: %s", path, g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    p = mmap(NULL, rb->max_length, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
             0);
    if (p == MAP_FAILED) {
        g_set_error(errp, COLO_ERROR, errno, "cannot map the COLO cache of "
                    "block '%s' (%" PRIu64 " bytes): %s", rb->idstr,
                    rb->max_length, g_strerror(errno));
        close(fd);
        return false;
    }
    rb->colo_cache = p;
    rb->colo_cache_fd = fd;
    rb->colo_cache_error = 0;
    return true;
}

/*
 * Before the first checkpoint, every page of the RAM files is written once
 * from here (its own contents written back: nothing else writes them
 * now) and stays mapped (mlock2 MLOCK_ONFAULT: locked as touched), so no
 * commit takes a fault on its critical path.  Without it, two kinds of
 * page fault there, 20-30x the copy itself (bench/colo_commit.py): pages
 * the initial migration skipped (zero pages) are touched for the first
 * time, which in a VM whose memory the host maps lazily costs ~7 us a
 * page; and pages nobody touched for a while lose their mapping to
 * proactive reclaim (DAMON pageout on this host; on tmpfs without swap
 * the page stays, its mapping goes).  The lock is best effort: without
 * CAP_IPC_LOCK the RLIMIT_MEMLOCK may be too small.  The cost is one pass
 * over guest RAM when COLO starts (bench: 0.4 s for 256 MiB here).
 */
static void colo_prepare_ram(RAMList *rl)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        volatile uint8_t *p = rb->host;

        if (!rb->colo_cache) {
            continue;
        }
        /* best effort (RLIMIT_MEMLOCK): the copy is only slower without */
        (void)mlock2(rb->host, rb->used_length, MLOCK_ONFAULT);
        (void)mlock2(rb->colo_cache, rb->max_length, MLOCK_ONFAULT);
        for (uint64_t off = 0; off < rb->used_length;
             off += TARGET_PAGE_SIZE) {
            uint8_t v = p[off];

            p[off] = v;
        }
    }
}

bool colo_init_ram_cache(RAMList *rl, GError **errp)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        size_t longs = BITS_TO_LONGS(rb->max_length >> TARGET_PAGE_BITS);

        if (rb->ignored) {
            continue;       /* never migrated, so never cached */
        }
        if (!colo_cache_open_block(rl, rb, errp)) {
            goto fail;
        }
        rb->bmap = g_try_new0(unsigned long, longs);
        if (!rb->bmap) {
            g_set_error(errp, COLO_ERROR, ENOMEM, "cannot allocate the COLO "
                        "bitmap of block '%s' (%" PRIu64 " bytes)",
                        rb->idstr, rb->max_length);
            goto fail;
        }
    }
    colo_prepare_ram(rl);
    return true;

fail:
    colo_release_ram_cache(rl);
    return false;
}

/* --- the route: the loader's page sink inside a checkpoint ----------- */

static uint8_t *colo_cache_target(RAMBlock *rb, uint64_t offset)
{
    if (!rb->colo_cache) {
        return NULL;
    }
    /* First write of this page in the checkpoint: give it its memory now,
     * where a full filesystem is an error, not a SIGBUS. */
    if (!test_bit(offset >> TARGET_PAGE_BITS, rb->bmap) &&
        fallocate(rb->colo_cache_fd, 0, offset, TARGET_PAGE_SIZE) < 0) {
        rb->colo_cache_error = errno;
        return NULL;
    }
    return rb->colo_cache + offset;
}
/* A page this checkpoint has not written yet is, for XBZRLE, the committed
 * one in the RAM file: the version the primary encoded against. */
static const uint8_t *colo_cache_base(RAMBlock *rb, uint64_t offset)
{
    return test_bit(offset >> TARGET_PAGE_BITS, rb->bmap) ?
           rb->colo_cache + offset : rb->host + offset;
}

/*
 * Never "known": a ZERO record then looks at the cache page (all zero
 * after a trim, so nothing is written), which maps it here, while the
 * RAM part streams in.  Skipping the look would leave the first touch of
 * that page to the commit's copy, on the critical path (a fault per zero
 * page, ~3 us each in a VM).
 */
static bool colo_cache_known_zero(RAMBlock *rb, uint64_t offset)
{
    return false;
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

/* One run of marked pages into the RAM file.  With the crash test hook
 * armed for this phase, page by page so it can stop between any two. */
static void colo_apply_run(RAMBlock *rb, uint64_t off, uint64_t len,
                           uint64_t number, uint64_t *applied)
{
    if (!colo_test_crash_armed(number, "apply")) {
        memcpy(rb->host + off, rb->colo_cache + off, len);
        *applied += len >> TARGET_PAGE_BITS;
        return;
    }
    for (uint64_t o = off; o < off + len; o += TARGET_PAGE_SIZE) {
        colo_test_crash_point(number, "apply", *applied);
        memcpy(rb->host + o, rb->colo_cache + o, TARGET_PAGE_SIZE);
        ++*applied;
    }
}

/* The journal's RAM part: each block's bitmap of cached pages, as it is
 * (the bits stay until done). */
static bool cache_prepare(void *opaque, ColoCommit *c, GError **errp)
{
    RAMList *rl = opaque;

    for (guint i = 0; i < c->rec->blocks->len; i++) {
        const RAMBlockSummary *b = &g_array_index(c->rec->blocks,
                                                  RAMBlockSummary, i);
        RAMBlock *rb = ram_list_find(rl, b->idstr);

        g_ptr_array_add(c->ram_bitmaps, rb && rb->bmap ?
                        g_bytes_new_static(rb->bmap,
                                           BITS_TO_LONGS(ram_block_pages(rb))
                                           * sizeof(unsigned long)) : NULL);
    }
    return true;
}

/* Exactly the pages whose bit is set, from the cache into the RAM files. */
static bool cache_apply(void *opaque, ColoCommit *c, GError **errp)
{
    RAMList *rl = opaque;

    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        uint64_t npages = rb->used_length >> TARGET_PAGE_BITS;
        uint64_t start = 0;

        if (!rb->colo_cache) {
            continue;
        }
        for (;;) {
            uint64_t end;

            start = find_next_bit(rb->bmap, npages, start);
            if (start >= npages) {
                break;
            }
            end = find_next_zero_bit(rb->bmap, npages, start);
            colo_apply_run(rb, start << TARGET_PAGE_BITS,
                           (end - start) << TARGET_PAGE_BITS, c->rec->number,
                           &c->stats.pages);
            c->stats.runs++;
            start = end;
        }
    }
    return true;
}

static void cache_done(void *opaque, ColoCommit *c)
{
    RAMList *rl = opaque;

    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        if (rb->bmap) {
            memset(rb->bmap, 0, BITS_TO_LONGS(ram_block_pages(rb)) *
                   sizeof(unsigned long));
        }
    }
}

const ColoCommitParticipant colo_cache_commit = {
    .name = "RAM cache",
    .prepare = cache_prepare,
    .apply = cache_apply,
    .done = cache_done,
};

void colo_trim_ram_cache(RAMList *rl)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        if (rb->colo_cache) {
            fallocate(rb->colo_cache_fd,
                      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                      rb->max_length);
        }
    }
}

void colo_release_ram_cache(RAMList *rl)
{
    g_autofree char *journal = g_build_filename(rl->dir, COLO_JOURNAL_FILE,
                                                NULL);

    for (guint i = 0; i < rl->blocks->len; i++) {
        colo_cache_free_block(g_ptr_array_index(rl->blocks, i));
    }
    /* A journal still there (a commit that failed half way) needs the
     * cache files: the next colo-secondary on this folder replays it. */
    if (!g_file_test(journal, G_FILE_TEST_EXISTS)) {
        colo_journal_remove_cache(rl->dir);
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
