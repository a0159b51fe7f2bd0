/*
 * test-xbzrle.c: the XBZRLE decoder against hand-made records, its
 * validation rules, and encode/decode round trips.
 */
#include "qemu/osdep.h"

#include "migration/xbzrle.h"

#define PAGE 4096

static void test_decode_real_record(void)
{
    /* pc64-xbzrle.mig, page pc.ram+0x7000: three counters moved. */
    static const uint8_t rec[] = {
        0x00, 0x01, 0xa4, 0xff, 0x0f, 0x02, 0xd1, 0xdb,
        0xfc, 0x0f, 0x01, 0xec,
    };
    g_autofree uint8_t *page = g_malloc0(PAGE);
    const char *why = NULL;
    int n;

    memset(page, 0x55, PAGE);
    n = xbzrle_decode(rec, sizeof(rec), page, PAGE, &why);
    g_assert_cmpint(n, ==, 4095);
    g_assert_cmphex(page[0], ==, 0xa4);
    g_assert_cmphex(page[1], ==, 0x55);
    g_assert_cmphex(page[2048], ==, 0xd1);
    g_assert_cmphex(page[2049], ==, 0xdb);
    g_assert_cmphex(page[4094], ==, 0xec);
    g_assert_cmphex(page[4095], ==, 0x55);
}

static void expect_bad(const uint8_t *rec, size_t len, const char *what)
{
    g_autofree uint8_t *page = g_malloc0(PAGE);
    const char *why = NULL;

    g_assert_cmpint(xbzrle_decode(rec, len, page, PAGE, &why), ==, -1);
    g_assert_true(why != NULL && strstr(why, what) != NULL);
}

static void test_decode_rejects(void)
{
    /* zero-length unchanged run after the first pair */
    static const uint8_t zero_skip[] = { 0x00, 0x01, 0xaa, 0x00, 0x01, 0xbb };
    /* changed run of length 0 */
    static const uint8_t zero_run[] = { 0x05, 0x00, 0x01 };
    /* changed run longer than the data */
    static const uint8_t short_data[] = { 0x00, 0x05, 0x01, 0x02 };
    /* runs past the end of the page: skip 4095, 2 bytes */
    static const uint8_t past_end[] = { 0xff, 0x1f, 0x02, 0x01, 0x02 };
    /* uleb with a third byte */
    static const uint8_t long_uleb[] = { 0x80, 0x80, 0x01, 0x01, 0x01 };
    /* a lone byte */
    static const uint8_t lone[] = { 0x00 };

    expect_bad(zero_skip, sizeof(zero_skip), "empty unchanged run");
    expect_bad(zero_run, sizeof(zero_run), "empty changed run");
    expect_bad(short_data, sizeof(short_data), "past the end of the record");
    expect_bad(past_end, sizeof(past_end), "past the end of the page");
    expect_bad(long_uleb, sizeof(long_uleb), "malformed");
    expect_bad(lone, sizeof(lone), "cut short");
}

static void test_round_trip(void)
{
    g_autofree uint8_t *old = g_malloc(PAGE);
    g_autofree uint8_t *new = g_malloc(PAGE);
    g_autofree uint8_t *out = g_malloc(PAGE);
    g_autofree uint8_t *page = g_malloc(PAGE);
    GRand *r = g_rand_new_with_seed(42);

    for (int round = 0; round < 500; round++) {
        const char *why = NULL;
        int n, changes = g_rand_int_range(r, 0, 64);

        for (int i = 0; i < PAGE; i++) {
            old[i] = g_rand_int(r);
        }
        memcpy(new, old, PAGE);
        for (int i = 0; i < changes; i++) {
            int at = g_rand_int_range(r, 0, PAGE);
            int len = g_rand_int_range(r, 1, 40);

            for (int j = at; j < MIN(at + len, PAGE); j++) {
                new[j] = ~old[j];
            }
        }
        n = xbzrle_encode(old, new, PAGE, out, PAGE);
        if (n < 0) {
            continue;   /* too many changes for one page: sent as PAGE */
        }
        memcpy(page, old, PAGE);
        g_assert_cmpint(xbzrle_decode(out, n, page, PAGE, &why), >=, 0);
        g_assert_cmpmem(page, PAGE, new, PAGE);
    }
    g_rand_free(r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/xbzrle/decode/real-record", test_decode_real_record);
    g_test_add_func("/xbzrle/decode/rejects", test_decode_rejects);
    g_test_add_func("/xbzrle/round-trip", test_round_trip);
    return g_test_run();
}
