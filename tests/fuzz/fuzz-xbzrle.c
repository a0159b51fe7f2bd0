/*
 * fuzz-xbzrle.c: the XBZRLE decoder on arbitrary records (never past the
 * page, an error reason on failure, untouched bytes kept), and encode ->
 * decode round trips of page pairs derived from the input.
 */
#include "qemu/osdep.h"

#include "migration/xbzrle.h"

#define PAGE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *page = g_malloc(PAGE);    /* exact size: ASan sees overruns */
    uint8_t *old = g_malloc(PAGE);
    uint8_t *new = g_malloc(PAGE);
    uint8_t *enc = g_malloc(PAGE);
    const char *why = NULL;
    int n;

    memset(page, 0x5a, PAGE);
    n = xbzrle_decode(data, MIN(size, (size_t)PAGE), page, PAGE, &why);
    if (n < 0 ? why == NULL : n > PAGE) {
        abort();
    }

    /* Round trip: old = pattern, new = old patched with the input. */
    for (int i = 0; i < PAGE; i++) {
        old[i] = (uint8_t)(i * 13 + 7);
    }
    memcpy(new, old, PAGE);
    for (size_t i = 0; i + 2 < size; i += 3) {
        new[((data[i] << 8) | data[i + 1]) % PAGE] = data[i + 2];
    }
    n = xbzrle_encode(old, new, PAGE, enc, PAGE);
    if (n >= 0) {
        memcpy(page, old, PAGE);
        if (xbzrle_decode(enc, n, page, PAGE, &why) < 0 ||
            memcmp(page, new, PAGE) != 0) {
            abort();
        }
    }
    g_free(page);
    g_free(old);
    g_free(new);
    g_free(enc);
    return 0;
}
