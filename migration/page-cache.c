/*
 * page-cache.c: the sender's XBZRLE cache (see page-cache.h).
 */
#include "qemu/osdep.h"

#include <sys/mman.h>

#include "migration/wire.h"
#include "migration/page-cache.h"

#define SLOT_EMPTY UINT64_MAX

struct PageCache {
    uint64_t nslots;
    uint64_t *tags;             /* page number held by each slot */
    uint8_t *data;              /* nslots pages, mapped on first use */
};

PageCache *page_cache_new(uint64_t size_bytes, GError **errp)
{
    uint64_t n = MAX(size_bytes / TARGET_PAGE_SIZE, 1);
    PageCache *pc;
    void *mem = mmap(NULL, n * TARGET_PAGE_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

    if (mem == MAP_FAILED) {
        g_set_error(errp, COLO_ERROR, errno, "XBZRLE cache of %" PRIu64
                    " bytes: %s", n * TARGET_PAGE_SIZE, g_strerror(errno));
        return NULL;
    }
    pc = g_new0(PageCache, 1);
    pc->nslots = n;
    pc->data = mem;
    pc->tags = g_new(uint64_t, n);
    for (uint64_t i = 0; i < n; i++) {
        pc->tags[i] = SLOT_EMPTY;
    }
    return pc;
}

void page_cache_free(PageCache *pc)
{
    if (!pc) {
        return;
    }
    munmap(pc->data, pc->nslots * TARGET_PAGE_SIZE);
    g_free(pc->tags);
    g_free(pc);
}

const uint8_t *page_cache_lookup(const PageCache *pc, uint64_t page_no)
{
    uint64_t slot = page_no % pc->nslots;

    return pc->tags[slot] == page_no ?
           pc->data + slot * TARGET_PAGE_SIZE : NULL;
}

void page_cache_insert(PageCache *pc, uint64_t page_no, const uint8_t *data)
{
    uint64_t slot = page_no % pc->nslots;

    g_assert(page_no != SLOT_EMPTY);
    pc->tags[slot] = page_no;
    memcpy(pc->data + slot * TARGET_PAGE_SIZE, data, TARGET_PAGE_SIZE);
}

uint64_t page_cache_slots(const PageCache *pc)
{
    return pc->nslots;
}
