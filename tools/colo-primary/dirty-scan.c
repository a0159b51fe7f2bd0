/*
 * dirty-scan.c: changed pages by keyed digests (see dirty-scan.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "migration/wire.h"
#include "qemu/bitmap.h"
#include "tools/colo-primary/dirty-scan.h"

#define WORDS_PER_PAGE (TARGET_PAGE_SIZE / 8)
#define LANES          8
#define MAX_THREADS    64
#define CHUNK_PAGES    1024     /* 4 MiB: the unit threads take */
/* Prefetch this far ahead: the hardware prefetchers stop at page
 * boundaries, and a scan without this waits on memory half the time
 * (8.4 vs 13.7 GB/s per thread here).  Prefetches never fault. */
#define PREFETCH_AHEAD (2 * TARGET_PAGE_SIZE)

typedef struct ScanChunk {
    uint64_t first, end;        /* pages [first, end) */
    uint64_t count;             /* changed pages, staged from @first on */
} ScanChunk;

struct DirtyScan {
    const uint8_t *ram;
    uint64_t npages;

    /* The pages QEMU wrote (dirty_scan_set_tracker); NULL: all pages */
    WriteTracker *tracker;
    unsigned long *candidates;  /* the tracker's pages of this scan */
    uint64_t ncandidates;
    char *fallback_reason;      /* why the tracker was given up, or NULL */

    uint64_t *digests;
    uint64_t key[WORDS_PER_PAGE];
    uint8_t *staging;           /* mirrors RAM: chunk pages staged in place */
    uint32_t *changed;          /* per chunk, from its @first on */
    ScanChunk *chunks;
    uint64_t nchunks;
    gint next_chunk;            /* atomic: the next chunk to take */
    /* The tracker's pages are collected by the first worker while the
     * caller asks QEMU for its device state; digesting waits for them. */
    GMutex collect_lock;
    GCond collected_cond;
    bool collected;
    int nthreads;
    GThread *threads[MAX_THREADS];
};

/*
 * Eight independent accumulators (so the multiplies overlap and vector
 * units can do them): each word is mixed with its own key
 * word, its two halves multiplied, and the word itself added so no
 * change is lost to a zero half.  The lanes are folded at the end.
 */
static uint64_t fold_lanes(const uint64_t acc[LANES])
{
    uint64_t h = 0;

    for (int j = 0; j < LANES; j++) {
        h = (h ^ acc[j]) * 0xff51afd7ed558ccdULL;
        h ^= h >> 31;
    }
    return h;
}

static uint64_t digest_plain(const uint64_t *key, const void *page)
{
    const uint64_t *w = page;
    uint64_t acc[LANES];

    for (int j = 0; j < LANES; j++) {
        acc[j] = key[j];
    }
    for (unsigned i = 0; i < WORDS_PER_PAGE; i += LANES) {
        __builtin_prefetch((const char *)(w + i) + PREFETCH_AHEAD);
        for (int j = 0; j < LANES; j++) {
            uint64_t v = w[i + j];
            uint64_t x = v ^ key[i + j];

            acc[j] += v + (x & 0xffffffffu) * (x >> 32);
        }
    }
    return fold_lanes(acc);
}

#if defined(__x86_64__)
/* The same computation, written for the vector units: compilers turn the
 * 32x32->64 multiply of the plain version into a full 64-bit one. */
static uint64_t digest_sse2(const uint64_t *key, const void *page)
{
    const __m128i *w = page, *k = (const __m128i *)key;
    __m128i acc[LANES / 2];
    uint64_t out[LANES];

    for (int j = 0; j < LANES / 2; j++) {
        acc[j] = _mm_loadu_si128(k + j);
    }
    for (unsigned i = 0; i < WORDS_PER_PAGE / 2; i += LANES / 2) {
        __builtin_prefetch((const char *)(w + i) + PREFETCH_AHEAD);
        for (int j = 0; j < LANES / 2; j++) {
            __m128i v = _mm_load_si128(w + i + j);
            __m128i x = _mm_xor_si128(v, _mm_loadu_si128(k + i + j));

            acc[j] = _mm_add_epi64(acc[j], _mm_add_epi64(
                v, _mm_mul_epu32(x, _mm_srli_epi64(x, 32))));
        }
    }
    for (int j = 0; j < LANES / 2; j++) {
        _mm_storeu_si128((__m128i *)out + j, acc[j]);
    }
    return fold_lanes(out);
}

__attribute__((target("avx2")))
static uint64_t digest_avx2(const uint64_t *key, const void *page)
{
    const __m256i *w = page, *k = (const __m256i *)key;
    __m256i lo = _mm256_loadu_si256(k), hi = _mm256_loadu_si256(k + 1);
    uint64_t out[LANES];

    for (unsigned i = 0; i < WORDS_PER_PAGE / 4; i += 2) {
        __m256i v, x;

        __builtin_prefetch((const char *)(w + i) + PREFETCH_AHEAD);
        v = _mm256_load_si256(w + i);
        x = _mm256_xor_si256(v, _mm256_loadu_si256(k + i));
        lo = _mm256_add_epi64(lo, _mm256_add_epi64(
            v, _mm256_mul_epu32(x, _mm256_srli_epi64(x, 32))));
        v = _mm256_load_si256(w + i + 1);
        x = _mm256_xor_si256(v, _mm256_loadu_si256(k + i + 1));
        hi = _mm256_add_epi64(hi, _mm256_add_epi64(
            v, _mm256_mul_epu32(x, _mm256_srli_epi64(x, 32))));
    }
    _mm256_storeu_si256((__m256i *)out, lo);
    _mm256_storeu_si256((__m256i *)out + 1, hi);
    return fold_lanes(out);
}
#endif

typedef uint64_t (*DigestFn)(const uint64_t *key, const void *page);

static DigestFn digest_fn = digest_plain;

static void digest_pick(void)
{
#if defined(__x86_64__)
    digest_fn = digest_sse2;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        digest_fn = digest_avx2;
    }
#endif
}

bool dirty_scan_self_test(void)
{
    uint64_t key[WORDS_PER_PAGE];
    uint64_t page[WORDS_PER_PAGE] __attribute__((aligned(64)));
    uint64_t want;
    bool ok = true;

    for (unsigned i = 0; i < WORDS_PER_PAGE; i++) {
        key[i] = ((uint64_t)g_random_int() << 32) | g_random_int();
        page[i] = ((uint64_t)g_random_int() << 32) | g_random_int();
    }
    want = digest_plain(key, page);
#if defined(__x86_64__)
    ok &= digest_sse2(key, page) == want;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        ok &= digest_avx2(key, page) == want;
    }
#endif
    return ok;
}

uint64_t dirty_scan_page_digest(const DirtyScan *ds, const void *page)
{
    return digest_fn(ds->key, page);
}

DirtyScan *dirty_scan_new(const uint8_t *ram, uint64_t size, int threads,
                          GError **errp)
{
    static gsize picked;
    DirtyScan *ds;
    void *stage;

    if (g_once_init_enter(&picked)) {
        digest_pick();
        g_once_init_leave(&picked, 1);
    }
    if (size == 0 || size % TARGET_PAGE_SIZE) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM of %" PRIu64 " bytes "
                    "cannot be scanned", size);
        return NULL;
    }
    stage = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stage == MAP_FAILED) {
        g_set_error(errp, COLO_ERROR, errno, "staging area of %" PRIu64
                    " bytes: %s", size, g_strerror(errno));
        return NULL;
    }
    ds = g_new0(DirtyScan, 1);
    ds->ram = ram;
    ds->npages = size / TARGET_PAGE_SIZE;
    ds->digests = g_new0(uint64_t, ds->npages);
    ds->changed = g_new(uint32_t, ds->npages);
    ds->staging = stage;
    for (unsigned i = 0; i < WORDS_PER_PAGE; i++) {
        ds->key[i] = ((uint64_t)g_random_int() << 32) | g_random_int();
    }
    ds->nchunks = (ds->npages + CHUNK_PAGES - 1) / CHUNK_PAGES;
    ds->chunks = g_new0(ScanChunk, ds->nchunks);
    for (uint64_t c = 0; c < ds->nchunks; c++) {
        ds->chunks[c].first = c * CHUNK_PAGES;
        ds->chunks[c].end = MIN(ds->npages, (c + 1) * CHUNK_PAGES);
    }
    ds->nthreads = CLAMP(threads, 1, MAX_THREADS);
    g_mutex_init(&ds->collect_lock);
    g_cond_init(&ds->collected_cond);
    return ds;
}

static void tracker_close(DirtyScan *ds)
{
    if (ds->tracker) {
        ds->tracker->ops->free(ds->tracker);
        ds->tracker = NULL;
    }
    g_clear_pointer(&ds->candidates, g_free);
}

void dirty_scan_set_tracker(DirtyScan *ds, WriteTracker *t)
{
    tracker_close(ds);
    if (t) {
        g_assert(t->npages == ds->npages);
        ds->tracker = t;
        ds->candidates = bitmap_new(ds->npages);
        g_clear_pointer(&ds->fallback_reason, g_free);
    }
}

/* From now on every page is a candidate again: the digests are current,
 * so the full scan finds exactly what changed. */
static void tracker_give_up(DirtyScan *ds, const char *why)
{
    g_free(ds->fallback_reason);
    ds->fallback_reason = g_strdup_printf("%s: %s",
                                          ds->tracker->ops->method, why);
    tracker_close(ds);
}

/* The tracker's pages since the previous scan, into @candidates. */
static bool tracker_collect(DirtyScan *ds, GError **errp)
{
    bitmap_zero(ds->candidates, ds->npages);
    if (!ds->tracker->ops->collect(ds->tracker, ds->candidates, errp)) {
        return false;
    }
    ds->ncandidates = bitmap_count_one(ds->candidates, ds->npages);
    return true;
}

const char *dirty_scan_method(const DirtyScan *ds)
{
    return ds->tracker ? ds->tracker->ops->method : "digest";
}

const char *dirty_scan_fallback_reason(const DirtyScan *ds)
{
    return ds->fallback_reason;
}

uint64_t dirty_scan_candidates(const DirtyScan *ds)
{
    return ds->tracker ? ds->ncandidates : ds->npages;
}

bool dirty_scan_is_candidate(const DirtyScan *ds, uint64_t page_no)
{
    return !ds->tracker || test_bit(page_no, ds->candidates);
}

void dirty_scan_free(DirtyScan *ds)
{
    if (!ds) {
        return;
    }
    for (int i = 0; i < ds->nthreads; i++) {
        g_assert(!ds->threads[i]);
    }
    munmap(ds->staging, ds->npages * TARGET_PAGE_SIZE);
    tracker_close(ds);
    g_mutex_clear(&ds->collect_lock);
    g_cond_clear(&ds->collected_cond);
    g_free(ds->fallback_reason);
    g_free(ds->chunks);
    g_free(ds->changed);
    g_free(ds->digests);
    g_free(ds);
}

void dirty_scan_set_digest(DirtyScan *ds, uint64_t page_no, uint64_t d)
{
    g_assert(page_no < ds->npages);
    ds->digests[page_no] = d;
}

static void scan_chunk(DirtyScan *ds, ScanChunk *c)
{
    uint8_t *out = ds->staging + c->first * TARGET_PAGE_SIZE;
    uint32_t *changed = ds->changed + c->first;
    DigestFn fn = digest_fn;

    c->count = 0;
    for (uint64_t n = c->first; n < c->end; n++) {
        const uint8_t *page = ds->ram + n * TARGET_PAGE_SIZE;
        uint64_t d;

        if (ds->candidates && !test_bit(n, ds->candidates)) {
            continue;       /* not written since the last scan */
        }
        d = fn(ds->key, page);

        if (d != ds->digests[n]) {
            ds->digests[n] = d;
            memcpy(out, page, TARGET_PAGE_SIZE);
            out += TARGET_PAGE_SIZE;
            changed[c->count++] = (uint32_t)(n - c->first);
        }
    }
}

/* The VM is stopped: the written pages since the previous scan.  Writes
 * after this, while the pages are digested, are next scan's. */
static void collect_written(DirtyScan *ds)
{
    g_autoptr(GError) err = NULL;

    if (ds->tracker && !tracker_collect(ds, &err)) {
        tracker_give_up(ds, err->message);
    }
    g_mutex_lock(&ds->collect_lock);
    ds->collected = true;
    g_cond_broadcast(&ds->collected_cond);
    g_mutex_unlock(&ds->collect_lock);
}

void dirty_scan_wait_collected(DirtyScan *ds)
{
    g_mutex_lock(&ds->collect_lock);
    while (!ds->collected) {
        g_cond_wait(&ds->collected_cond, &ds->collect_lock);
    }
    g_mutex_unlock(&ds->collect_lock);
}

/* Takes chunks until none is left. */
static gpointer scan_worker(gpointer opaque)
{
    DirtyScan *ds = opaque;

    dirty_scan_wait_collected(ds);
    for (;;) {
        uint64_t c = (uint64_t)g_atomic_int_add(&ds->next_chunk, 1);

        if (c >= ds->nchunks) {
            return NULL;
        }
        scan_chunk(ds, &ds->chunks[c]);
    }
}

/* The spawned workers yield to QEMU's threads, which have the device
 * state to send meanwhile; the caller's thread joins in at full weight. */
static gpointer scan_thread(gpointer opaque)
{
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) < 0) {
        /* only slower */
    }
    return scan_worker(opaque);
}

/* The first worker: collects, then digests with the others. */
static gpointer collect_thread(gpointer opaque)
{
    collect_written(opaque);
    return scan_thread(opaque);
}

void dirty_scan_start(DirtyScan *ds)
{
    g_atomic_int_set(&ds->next_chunk, 0);
    ds->collected = false;
    /* the first worker collects the tracker's pages (collect_written),
     * all digest once it has */
    for (int i = 0; i < ds->nthreads; i++) {
        g_assert(!ds->threads[i]);
        ds->threads[i] = g_thread_new("dirty-scan", i ? scan_thread :
                                      collect_thread, ds);
    }
}

void dirty_scan_finish(DirtyScan *ds)
{
    /* the caller's thread helps with what is left */
    scan_worker(ds);
    for (int i = 0; i < ds->nthreads; i++) {
        if (ds->threads[i]) {
            g_thread_join(ds->threads[i]);
            ds->threads[i] = NULL;
        }
    }
}

uint64_t dirty_scan_count(const DirtyScan *ds)
{
    uint64_t n = 0;

    for (uint64_t c = 0; c < ds->nchunks; c++) {
        n += ds->chunks[c].count;
    }
    return n;
}

void dirty_scan_foreach(const DirtyScan *ds, DirtyPageFn fn, void *opaque)
{
    for (uint64_t c = 0; c < ds->nchunks; c++) {
        const ScanChunk *ch = &ds->chunks[c];
        const uint8_t *staged = ds->staging + ch->first * TARGET_PAGE_SIZE;

        for (uint64_t k = 0; k < ch->count; k++) {
            fn(opaque, ch->first + ds->changed[ch->first + k],
               staged + k * TARGET_PAGE_SIZE);
        }
    }
}
