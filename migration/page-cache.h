/*
 * page-cache.h: the sender's XBZRLE cache: copies of pages as last sent,
 * so that the next version of a page can go out as a delta.  Direct
 * mapped (slot = page number modulo the slot count), fixed size: a page
 * whose slot another page took is simply sent whole.
 *
 * Owner: the thread that writes the stream.
 */
#ifndef MIGRATION_PAGE_CACHE_H
#define MIGRATION_PAGE_CACHE_H

#include "qemu/osdep.h"

typedef struct PageCache PageCache;

/* @size_bytes is rounded down to whole pages, at least one.  Memory is
 * taken only for slots in use. */
PageCache *page_cache_new(uint64_t size_bytes, GError **errp);
void page_cache_free(PageCache *pc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PageCache, page_cache_free)

/* The copy of page @page_no, or NULL if its slot holds another page. */
const uint8_t *page_cache_lookup(const PageCache *pc, uint64_t page_no);
/* Keeps @data as page @page_no, replacing what its slot held. */
void page_cache_insert(PageCache *pc, uint64_t page_no, const uint8_t *data);
uint64_t page_cache_slots(const PageCache *pc);

#endif /* MIGRATION_PAGE_CACHE_H */
