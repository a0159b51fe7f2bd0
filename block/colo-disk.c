/*
 * colo-disk.c: a disk image and its per-checkpoint write cache (see
 * colo-disk.h).
 *
 * The cache is a file of 4 KiB slots; two hash tables map an image page
 * to its slot, one for the open epoch and one for the sealed one.  A
 * write that covers part of a page not yet in the open epoch first copies
 * the page as a reader would see it (sealed, else image) into a new slot.
 * The file lives in the RAM folder (tmpfs by default, so it is memory the
 * kernel may swap) because the commit journal must be able to name the
 * sealed pages for a colo-secondary that restarts after a crash; memory
 * of our own could not be replayed.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "block/colo-disk.h"
#include "qemu/crash-test.h"

G_STATIC_ASSERT(sizeof(gpointer) >= sizeof(uint64_t));

#define PAGE COLO_DISK_PAGE

struct ColoDisk {
    char *node;
    char *filename;
    char *cache_path;
    int fd;
    int cache_fd;               /* -1 until the first cached write */
    uint64_t size;
    bool read_only;
    uint64_t max_slots;

    GMutex lock;
    bool caching;
    GHashTable *open;           /* page -> slot + 1 */
    GHashTable *sealed;
    uint64_t sealed_number;
    uint64_t slots;             /* slots the file has */
    GArray *free_slots;         /* of uint64_t */
    ColoDiskStats st;
    char *refusal;              /* the first cached write refused since
                                   caching began, or NULL */

    void (*direct_hook)(void *opaque);
    void *direct_opaque;
};

static bool io_error(GError **errp, int err, const ColoDisk *d,
                     const char *what, const char *path)
{
    g_set_error(errp, COLO_ERROR, err ? err : EIO, "disk '%s': %s %s: %s",
                d->node, what, path, g_strerror(err ? err : EIO));
    return false;
}

static bool pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pread(fd, buf, len, off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                /* past the end of a sparse file: zeroes */
                memset(buf, 0, len);
                return true;
            }
            return false;
        }
        buf = (char *)buf + n;
        len -= n;
        off += n;
    }
    return true;
}

static bool pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = ENOSPC;
            }
            return false;
        }
        buf = (const char *)buf + n;
        len -= n;
        off += n;
    }
    return true;
}

ColoDisk *colo_disk_open(const char *node, const char *filename,
                         bool read_only, const char *ram_dir,
                         uint64_t cache_limit, GError **errp)
{
    g_autoptr(ColoDisk) d = g_new0(ColoDisk, 1);
    struct stat st;
    off_t end;

    d->fd = -1;
    d->cache_fd = -1;
    d->node = g_strdup(node);
    d->filename = g_strdup(filename);
    d->read_only = read_only;
    d->cache_path = g_build_filename(ram_dir, COLO_DISK_CACHE_DIR, node,
                                     NULL);
    d->max_slots = cache_limit / PAGE;
    g_mutex_init(&d->lock);
    d->open = g_hash_table_new(g_direct_hash, g_direct_equal);
    d->sealed = g_hash_table_new(g_direct_hash, g_direct_equal);
    d->free_slots = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    d->fd = open(filename, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (d->fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "Could not open '%s': %s",
                    filename, g_strerror(errno));
        return NULL;
    }
    if (fstat(d->fd, &st) < 0 || !(S_ISREG(st.st_mode) ||
                                   S_ISBLK(st.st_mode))) {
        g_set_error(errp, COLO_ERROR, EINVAL, "'%s' is not a regular file "
                    "or block device", filename);
        return NULL;
    }
    end = lseek(d->fd, 0, SEEK_END);
    if (end <= 0 || (end & 511)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "'%s': a disk image must have "
                    "a size that is a non-zero multiple of 512 bytes (it "
                    "has %lld)", filename, (long long)end);
        return NULL;
    }
    d->size = end;
    d->st.cache_limit = d->max_slots * PAGE;
    return g_steal_pointer(&d);
}

void colo_disk_close(ColoDisk *d)
{
    if (!d) {
        return;
    }
    if (d->fd >= 0) {
        close(d->fd);
    }
    if (d->cache_fd >= 0) {
        close(d->cache_fd);
        g_unlink(d->cache_path);
    }
    g_hash_table_unref(d->open);
    g_hash_table_unref(d->sealed);
    g_array_unref(d->free_slots);
    g_mutex_clear(&d->lock);
    g_free(d->node);
    g_free(d->filename);
    g_free(d->cache_path);
    g_free(d->refusal);
    g_free(d);
}

const char *colo_disk_node(const ColoDisk *d)
{
    return d->node;
}

const char *colo_disk_filename(const ColoDisk *d)
{
    return d->filename;
}

uint64_t colo_disk_size(const ColoDisk *d)
{
    return d->size;
}

bool colo_disk_read_only(const ColoDisk *d)
{
    return d->read_only;
}

const char *colo_disk_cache_path(const ColoDisk *d)
{
    return d->cache_path;
}

void colo_disk_stats(ColoDisk *d, ColoDiskStats *st)
{
    g_mutex_lock(&d->lock);
    *st = d->st;
    st->size = d->size;
    st->caching = d->caching;
    st->open_pages = g_hash_table_size(d->open);
    st->sealed_pages = g_hash_table_size(d->sealed);
    g_mutex_unlock(&d->lock);
}

void colo_disk_set_direct_write_hook(ColoDisk *d, void (*fn)(void *),
                                     void *opaque)
{
    d->direct_hook = fn;
    d->direct_opaque = opaque;
}

/* --- the cache file ----------------------------------------------------- */

static uint64_t slot_of(GHashTable *t, uint64_t page)
{
    return GPOINTER_TO_SIZE(g_hash_table_lookup(t, GSIZE_TO_POINTER(page)));
}

/* Under the lock. */
static bool cache_open(ColoDisk *d, GError **errp)
{
    g_autofree char *dir = NULL;

    if (d->cache_fd >= 0) {
        return true;
    }
    dir = g_path_get_dirname(d->cache_path);
    if (g_mkdir_with_parents(dir, 0700) < 0) {
        return io_error(errp, errno, d, "cannot create", dir);
    }
    d->cache_fd = open(d->cache_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                       0600);
    if (d->cache_fd < 0) {
        return io_error(errp, errno, d, "cannot create cache file",
                        d->cache_path);
    }
    return true;
}

/* Under the lock: a free slot, the file grown for it. */
static bool slot_alloc(ColoDisk *d, uint64_t *slot, GError **errp)
{
    if (d->free_slots->len) {
        *slot = g_array_index(d->free_slots, uint64_t,
                              d->free_slots->len - 1);
        g_array_set_size(d->free_slots, d->free_slots->len - 1);
        return true;
    }
    if (d->slots >= d->max_slots) {
        g_set_error(errp, COLO_ERROR, ENOSPC, "disk '%s': the checkpoint "
                    "cache is full (%" PRIu64 " MiB: the writes of one "
                    "checkpoint exceed the disk's cache-size)", d->node,
                    (d->max_slots * PAGE) >> 20);
        return false;
    }
    if (!cache_open(d, errp)) {
        return false;
    }
    if (fallocate(d->cache_fd, 0, d->slots * PAGE, PAGE) < 0 &&
        errno != EOPNOTSUPP) {
        return io_error(errp, errno, d, "no room in cache file",
                        d->cache_path);
    }
    *slot = d->slots++;
    return true;
}

static void slots_free(ColoDisk *d, GHashTable *t)
{
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, t);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        uint64_t slot = GPOINTER_TO_SIZE(v) - 1;

        g_array_append_val(d->free_slots, slot);
    }
    g_hash_table_remove_all(t);
}

/* Bytes of @page that lie inside the disk. */
static size_t page_len(const ColoDisk *d, uint64_t page)
{
    return MIN((uint64_t)PAGE, d->size - page * PAGE);
}

/* Under the lock: @page as a reader sees it, skipping the open epoch if
 * @skip_open. */
static bool page_read(ColoDisk *d, uint64_t page, uint8_t *buf,
                      bool skip_open, GError **errp)
{
    uint64_t s = skip_open ? 0 : slot_of(d->open, page);

    if (!s) {
        s = slot_of(d->sealed, page);
    }
    if (s) {
        if (!pread_full(d->cache_fd, buf, PAGE, (s - 1) * PAGE)) {
            return io_error(errp, errno, d, "cannot read cache file",
                            d->cache_path);
        }
        return true;
    }
    memset(buf, 0, PAGE);
    if (!pread_full(d->fd, buf, page_len(d, page), page * PAGE)) {
        return io_error(errp, errno, d, "cannot read", d->filename);
    }
    return true;
}

/* --- client I/O --------------------------------------------------------- */

bool colo_disk_read(ColoDisk *d, void *buf, uint64_t offset, uint64_t len,
                    GError **errp)
{
    uint8_t page[PAGE] __attribute__((aligned(64)));
    uint8_t *out = buf;
    bool ok = true;

    g_mutex_lock(&d->lock);
    d->st.reads++;
    d->st.bytes_read += len;
    while (len && ok) {
        uint64_t p = offset / PAGE, in = offset % PAGE;
        uint64_t n = MIN(len, PAGE - in);

        if (!slot_of(d->open, p) && !slot_of(d->sealed, p)) {
            /* a run of image pages in one read */
            uint64_t end = offset + n;

            while (end < offset + len && !slot_of(d->open, end / PAGE) &&
                   !slot_of(d->sealed, end / PAGE)) {
                end = MIN(offset + len, (end / PAGE + 1) * PAGE);
            }
            n = end - offset;
            if (!pread_full(d->fd, out, n, offset)) {
                ok = io_error(errp, errno, d, "cannot read", d->filename);
            }
        } else {
            ok = page_read(d, p, page, false, errp);
            memcpy(out, page + in, n);
        }
        out += n;
        offset += n;
        len -= n;
    }
    g_mutex_unlock(&d->lock);
    return ok;
}

/* Under the lock: @n bytes at @in of @page into the open epoch; @src
 * NULL writes zeroes. */
static bool cache_write_page(ColoDisk *d, uint64_t page, uint64_t in,
                             const uint8_t *src, uint64_t n, GError **errp)
{
    static const uint8_t zero[PAGE];
    uint8_t buf[PAGE] __attribute__((aligned(64)));
    uint64_t s = slot_of(d->open, page), slot;

    if (!s) {
        if (!slot_alloc(d, &slot, errp)) {
            return false;
        }
        if (n < PAGE && !page_read(d, page, buf, true, errp)) {
            g_array_append_val(d->free_slots, slot);
            return false;
        }
        if (n < PAGE) {
            memcpy(buf + in, src ? src : zero, n);
            src = buf;
            in = 0;
            n = PAGE;
        }
        g_hash_table_insert(d->open, GSIZE_TO_POINTER(page),
                            GSIZE_TO_POINTER(slot + 1));
        s = slot + 1;
    }
    if (!pwrite_full(d->cache_fd, src ? src : zero, n, (s - 1) * PAGE + in)) {
        return io_error(errp, errno, d, "cannot write cache file",
                        d->cache_path);
    }
    return true;
}

static bool disk_write(ColoDisk *d, const uint8_t *src, uint64_t offset,
                       uint64_t len, GError **errp)
{
    static const uint8_t zero[PAGE];
    void (*hook)(void *) = NULL;
    GError *err = NULL;
    bool ok = true;

    if (d->read_only) {
        g_set_error(errp, COLO_ERROR, EPERM, "disk '%s' is read-only",
                    d->node);
        return false;
    }
    g_mutex_lock(&d->lock);
    d->st.writes++;
    d->st.bytes_written += len;
    if (!d->caching) {
        if (d->direct_hook) {
            hook = d->direct_hook;
            d->direct_hook = NULL;
        }
        d->st.direct_bytes += len;
    }
    g_mutex_unlock(&d->lock);
    if (hook) {
        hook(d->direct_opaque);
    }

    g_mutex_lock(&d->lock);
    if (!src && !d->caching &&
        fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
                  len) == 0) {
        /* zeroes straight into the image: a hole reads back as zeroes */
        len = 0;
    }
    while (len && ok) {
        uint64_t p = offset / PAGE, in = offset % PAGE;
        uint64_t n = MIN(len, PAGE - in);

        if (d->caching) {
            ok = cache_write_page(d, p, in, src, n, &err);
        } else if (!pwrite_full(d->fd, src ? src : zero, n, offset)) {
            ok = io_error(&err, errno, d, "cannot write", d->filename);
        }
        if (src) {
            src += n;
        }
        offset += n;
        len -= n;
    }
    if (err && d->caching && !d->refusal) {
        /* the epoch has a hole now: the primary's mirror fails on it,
         * and the standby says why when its session ends */
        d->refusal = g_strdup(err->message);
    }
    g_mutex_unlock(&d->lock);
    if (err) {
        g_propagate_error(errp, err);
    }
    return ok;
}

bool colo_disk_write(ColoDisk *d, const void *buf, uint64_t offset,
                     uint64_t len, GError **errp)
{
    return disk_write(d, buf, offset, len, errp);
}

bool colo_disk_write_zeroes(ColoDisk *d, uint64_t offset, uint64_t len,
                            GError **errp)
{
    g_mutex_lock(&d->lock);
    d->st.zeroes++;
    g_mutex_unlock(&d->lock);
    return disk_write(d, NULL, offset, len, errp);
}

bool colo_disk_flush(ColoDisk *d, GError **errp)
{
    bool caching;

    g_mutex_lock(&d->lock);
    d->st.flushes++;
    caching = d->caching;
    g_mutex_unlock(&d->lock);
    /* While caching, the commit of the checkpoint is what makes a write
     * durable on the standby (a failover rolls back to a checkpoint). */
    if (!caching && !d->read_only && fdatasync(d->fd) < 0) {
        return io_error(errp, errno, d, "cannot flush", d->filename);
    }
    return true;
}

/* --- checkpoints -------------------------------------------------------- */

char *colo_disk_refusal(ColoDisk *d)
{
    char *r;

    g_mutex_lock(&d->lock);
    r = g_strdup(d->refusal);
    g_mutex_unlock(&d->lock);
    return r;
}

void colo_disk_start_caching(ColoDisk *d)
{
    g_mutex_lock(&d->lock);
    g_clear_pointer(&d->refusal, g_free);
    d->caching = true;
    d->direct_hook = NULL;
    g_mutex_unlock(&d->lock);
}

void colo_disk_seal(ColoDisk *d, uint64_t number)
{
    GHashTableIter it;
    gpointer k, v;

    g_mutex_lock(&d->lock);
    /* A sealed set that never committed (it cannot happen while COLO
     * runs: a failed commit ends it) is folded in, the newer page wins. */
    g_hash_table_iter_init(&it, d->open);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        uint64_t old = GPOINTER_TO_SIZE(g_hash_table_lookup(d->sealed, k));

        if (old) {
            old--;
            g_array_append_val(d->free_slots, old);
        }
        g_hash_table_insert(d->sealed, k, v);
    }
    g_hash_table_remove_all(d->open);
    d->sealed_number = number;
    g_mutex_unlock(&d->lock);
}

static gint extent_cmp(gconstpointer a, gconstpointer b)
{
    const ColoDiskExtent *x = a, *y = b;

    return x->page < y->page ? -1 : x->page > y->page;
}

GArray *colo_disk_sealed_extents(ColoDisk *d)
{
    GArray *a = g_array_new(FALSE, FALSE, sizeof(ColoDiskExtent));
    GHashTableIter it;
    gpointer k, v;

    g_mutex_lock(&d->lock);
    g_hash_table_iter_init(&it, d->sealed);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        ColoDiskExtent e = { GPOINTER_TO_SIZE(k), GPOINTER_TO_SIZE(v) - 1 };

        g_array_append_val(a, e);
    }
    g_mutex_unlock(&d->lock);
    g_array_sort(a, extent_cmp);
    return a;
}

bool colo_disk_reserve(ColoDisk *d, GArray *extents, uint64_t number,
                       GError **errp)
{
    for (guint i = 0; i < extents->len;) {
        uint64_t first = g_array_index(extents, ColoDiskExtent, i).page;
        uint64_t last = first;

        /* one call per run of adjacent pages */
        while (++i < extents->len &&
               g_array_index(extents, ColoDiskExtent, i).page == last + 1) {
            last++;
        }
        if (fallocate(d->fd, 0, first * PAGE,
                      (last - first) * PAGE + page_len(d, last)) < 0 &&
            errno != EOPNOTSUPP) {
            g_set_error(errp, COLO_ERROR, errno, "disk '%s': no room in %s "
                        "for the writes of checkpoint %" PRIu64 " (%u "
                        "pages): %s", d->node, d->filename, number,
                        extents->len, g_strerror(errno));
            return false;
        }
    }
    return true;
}

static bool copy_extents(int from, int to, uint64_t size, GArray *extents,
                         uint64_t number, uint64_t *pages, const char *src,
                         const char *dst, GError **errp)
{
    uint8_t buf[PAGE] __attribute__((aligned(64)));

    for (guint i = 0; i < extents->len; i++) {
        const ColoDiskExtent *e = &g_array_index(extents, ColoDiskExtent, i);
        size_t n;

        if (e->page * PAGE >= size) {
            g_set_error(errp, COLO_ERROR, EINVAL, "page %" PRIu64 " lies "
                        "beyond the end of %s", e->page, dst);
            return false;
        }
        n = MIN((uint64_t)PAGE, size - e->page * PAGE);
        if (!pread_full(from, buf, PAGE, e->slot * PAGE)) {
            g_set_error(errp, COLO_ERROR, errno ? errno : EIO, "cannot read "
                        "%s: %s", src, g_strerror(errno ? errno : EIO));
            return false;
        }
        if (!pwrite_full(to, buf, n, e->page * PAGE)) {
            g_set_error(errp, COLO_ERROR, errno ? errno : EIO, "cannot "
                        "write %s: %s", dst, g_strerror(errno ? errno : EIO));
            return false;
        }
        if (pages) {
            ++*pages;
        } else {
            colo_test_crash_point(number, "disk", i + 1);
        }
    }
    return true;
}

bool colo_disk_apply(ColoDisk *d, GArray *extents, uint64_t number,
                     GError **errp)
{
    if (!extents->len) {
        return true;
    }
    if (!copy_extents(d->cache_fd, d->fd, d->size, extents, number, NULL,
                      d->cache_path, d->filename, errp)) {
        g_prefix_error(errp, "disk '%s': ", d->node);
        return false;
    }
    return true;
}

void colo_disk_release_sealed(ColoDisk *d, int64_t apply_us)
{
    g_mutex_lock(&d->lock);
    d->st.commits++;
    d->st.last_commit_pages = g_hash_table_size(d->sealed);
    d->st.last_apply_us = apply_us;
    slots_free(d, d->sealed);
    g_mutex_unlock(&d->lock);
}

void colo_disk_discard(ColoDisk *d)
{
    g_mutex_lock(&d->lock);
    d->st.discarded_pages += g_hash_table_size(d->open) +
                             g_hash_table_size(d->sealed);
    slots_free(d, d->open);
    slots_free(d, d->sealed);
    g_mutex_unlock(&d->lock);
}

bool colo_disk_replay(const char *filename, uint64_t size,
                      const char *cache, GArray *extents, uint64_t *pages,
                      GError **errp)
{
    int from, to;
    off_t end;
    bool ok;

    if (!extents->len) {
        return true;
    }
    from = open(cache, O_RDONLY | O_CLOEXEC);
    if (from < 0) {
        g_set_error(errp, COLO_ERROR, errno, "the journal needs the disk "
                    "cache file %s: %s", cache, g_strerror(errno));
        return false;
    }
    to = open(filename, O_WRONLY | O_CLOEXEC);
    if (to < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot open disk image %s: %s",
                    filename, g_strerror(errno));
        close(from);
        return false;
    }
    end = lseek(to, 0, SEEK_END);
    if (end < 0 || (uint64_t)end != size) {
        g_set_error(errp, COLO_ERROR, EINVAL, "disk image %s has %lld "
                    "bytes, the journal says %" PRIu64, filename,
                    (long long)end, size);
        ok = false;
    } else {
        ok = copy_extents(from, to, size, extents, 0, pages, cache, filename,
                          errp);
    }
    close(from);
    close(to);
    return ok;
}
