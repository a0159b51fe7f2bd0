/*
 * physmem.c: RAMBlocks backed by shared files in the RAM folder.
 *
 * Owner: the incoming migration thread (see include/exec/ram_addr.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "exec/ram-dir.h"
#include "exec/ram_addr.h"
#include "qemu/bitmap.h"

#define RAM_GUARD_BYTES   4096
/* the unit a RAM file gets storage in: a guest page */
#define RAM_PAGE_BITS     12
#define RAM_PAGE_SIZE     (1ull << RAM_PAGE_BITS)

RAMList *ram_list_new(const char *dir)
{
    RAMList *rl = g_new0(RAMList, 1);

    rl->dir = g_strdup(dir);
    rl->blocks = g_ptr_array_new();
    return rl;
}

static void ram_block_free(RAMBlock *rb)
{
    g_assert(!rb->colo_cache);
    if (rb->host) {
        munmap(rb->host - RAM_GUARD_BYTES,
               rb->max_length + 2 * RAM_GUARD_BYTES);
    }
    if (rb->fd >= 0) {
        close(rb->fd);
    }
    g_free(rb->receivedmap);
    g_free(rb->allocmap);
    g_free(rb->path);
    g_free(rb);
}

void ram_list_free(RAMList *rl)
{
    if (!rl) {
        return;
    }
    for (guint i = 0; i < rl->blocks->len; i++) {
        ram_block_free(g_ptr_array_index(rl->blocks, i));
    }
    g_ptr_array_unref(rl->blocks);
    g_free(rl->dir);
    g_free(rl);
}

RAMBlock *ram_list_find(RAMList *rl, const char *idstr)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        if (strcmp(rb->idstr, idstr) == 0) {
            return rb;
        }
    }
    return NULL;
}

uint64_t ram_list_total(RAMList *rl)
{
    uint64_t total = 0;

    for (guint i = 0; i < rl->blocks->len; i++) {
        total += ((RAMBlock *)g_ptr_array_index(rl->blocks, i))->used_length;
    }
    return total;
}

int ram_dir_lock(const char *dir, GError **errp)
{
    g_autofree char *path = g_build_filename(dir, RAM_DIR_LOCK_FILE, NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "%s: %s", path,
                    g_strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;

        close(fd);
        if (e == EWOULDBLOCK) {
            g_set_error(errp, COLO_ERROR, EBUSY,
                        "%s is in use: another colo-secondary, or the QEMU "
                        "a failover started on its RAM files, holds %s",
                        dir, RAM_DIR_LOCK_FILE);
        } else {
            g_set_error(errp, COLO_ERROR, e, "%s: %s", path, g_strerror(e));
        }
        return -1;
    }
    return fd;
}

bool ram_dir_name_reserved(const char *name)
{
    /* What colo-secondary itself keeps in a RAM folder. */
    static const char *const own[] = { RAM_DIR_OWN_NAMES, NULL };
    size_t len = strlen(name);

    /* ... and their ".tmp" while they are written */
    if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
        len -= 4;
    }
    for (int i = 0; own[i]; i++) {
        if (strlen(own[i]) == len && strncmp(own[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

char *ram_block_path(const char *dir, const char *idstr, GError **errp)
{
    const char *rel = idstr;
    g_auto(GStrv) parts = NULL;
    size_t len = strlen(idstr);

    if (len == 0 || len > RAM_BLOCK_IDSTR_MAX) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM block name of %zu bytes "
                    "(the limit is %d)", len, RAM_BLOCK_IDSTR_MAX);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isprint(idstr[i])) {
            g_set_error(errp, COLO_ERROR, EINVAL, "RAM block name contains "
                        "byte 0x%02x at position %zu", (uint8_t)idstr[i], i);
            return NULL;
        }
    }
    while (*rel == '/') {
        rel++;
    }
    parts = g_strsplit(rel, "/", -1);
    if (!parts[0]) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM block name '%s' is "
                    "not usable as a file name", idstr);
        return NULL;
    }
    for (int i = 0; parts[i]; i++) {
        if (!parts[i][0] || strcmp(parts[i], ".") == 0 ||
            strcmp(parts[i], "..") == 0) {
            g_set_error(errp, COLO_ERROR, EINVAL, "RAM block name '%s' is "
                        "not usable as a file name", idstr);
            return NULL;
        }
    }
    if (ram_dir_name_reserved(parts[0])) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM block name '%s' would "
                    "overwrite colo-secondary's own file '%s'", idstr,
                    parts[0]);
        return NULL;
    }
    return g_build_filename(dir, rel, NULL);
}

RAMBlock *ram_list_add(RAMList *rl, const char *idstr, uint64_t length,
                       GError **errp)
{
    g_autofree char *path = NULL;
    g_autofree char *parent = NULL;
    RAMBlock *rb;
    struct stat st;
    int fd;

    if (rl->blocks->len >= RAM_BLOCKS_MAX) {
        g_set_error(errp, COLO_ERROR, E2BIG, "more than %d RAM blocks",
                    RAM_BLOCKS_MAX);
        return NULL;
    }
    if (length == 0 || length > RAM_BLOCK_MAX_BYTES ||
        (length & 4095) != 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM block '%s' has an "
                    "unusable length 0x%" PRIx64, idstr, length);
        return NULL;
    }
    if (rl->max_total && ram_list_total(rl) + length > rl->max_total) {
        g_set_error(errp, COLO_ERROR, E2BIG, "RAM block '%s' of 0x%" PRIx64
                    " bytes exceeds the RAM limit of 0x%" PRIx64 " bytes",
                    idstr, length, rl->max_total);
        return NULL;
    }
    path = ram_block_path(rl->dir, idstr, errp);
    if (!path) {
        return NULL;
    }
    parent = g_path_get_dirname(path);
    if (g_mkdir_with_parents(parent, 0700) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot create %s: %s", parent,
                    g_strerror(errno));
        return NULL;
    }

    rb = g_new0(RAMBlock, 1);
    rb->fd = -1;
    g_strlcpy(rb->idstr, idstr, sizeof(rb->idstr));
    rb->used_length = rb->max_length = length;
    rb->path = g_steal_pointer(&path);

    fd = open(rb->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        fd = open(rb->path, O_RDWR | O_CLOEXEC);
        rb->preexisting = fd >= 0;
    }
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot open RAM file %s: %s",
                    rb->path, g_strerror(errno));
        goto fail;
    }
    rb->fd = fd;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM file %s is not a regular "
                    "file", rb->path);
        goto fail;
    }
    if (rb->preexisting && (uint64_t)st.st_size != length) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM block '%s': the stream "
                    "says 0x%" PRIx64 " bytes but %s has 0x%" PRIx64, idstr,
                    length, rb->path, (uint64_t)st.st_size);
        goto fail;
    }
    if (!rb->preexisting && ftruncate(fd, length) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot size RAM file %s: %s",
                    rb->path, g_strerror(errno));
        goto fail;
    }
    /* A file of ours gets its storage page by page as the stream writes
     * (ram_block_reserve), all of it once the state is committed.  A file
     * that was there (x-ignore-shared: QEMU's own RAM, never written by
     * us) keeps its allocation as it is. */
    if (!rb->preexisting) {
        rb->allocmap = g_new0(unsigned long,
                              BITS_TO_LONGS(length >> RAM_PAGE_BITS));
    }
    /*
     * The file is mapped between two inaccessible guard pages, so a write
     * that escaped the offset checks would fault instead of landing in
     * whatever happened to be mapped next.
     */
    {
        uint8_t *area = mmap(NULL, length + 2 * RAM_GUARD_BYTES, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                             -1, 0);

        if (area == MAP_FAILED) {
            g_set_error(errp, COLO_ERROR, errno, "cannot reserve %" PRIu64
                        " bytes for RAM block '%s': %s", length, idstr,
                        g_strerror(errno));
            goto fail;
        }
        rb->host = mmap(area + RAM_GUARD_BYTES, length,
                        PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
        if (rb->host == MAP_FAILED) {
            rb->host = NULL;
            munmap(area, length + 2 * RAM_GUARD_BYTES);
            g_set_error(errp, COLO_ERROR, errno, "cannot map RAM file %s: %s",
                        rb->path, g_strerror(errno));
            goto fail;
        }
    }
    rb->receivedmap = g_new0(unsigned long,
                             BITS_TO_LONGS(ram_block_pages(rb)));
    g_ptr_array_add(rl->blocks, rb);
    return rb;

fail:
    if (!rb->preexisting && rb->path) {
        g_unlink(rb->path);
    }
    ram_block_free(rb);
    return NULL;
}

static bool ram_block_fallocate(RAMBlock *rb, uint64_t off, uint64_t len,
                                GError **errp)
{
    if (fallocate(rb->fd, 0, off, len) < 0 && errno != EOPNOTSUPP) {
        g_set_error(errp, COLO_ERROR, errno, "no room for %" PRIu64 " bytes "
                    "of RAM file %s at 0x%" PRIx64 ": %s", len, rb->path,
                    off, g_strerror(errno));
        return false;
    }
    return true;
}

bool ram_block_reserve(RAMBlock *rb, uint64_t offset, uint64_t len,
                       GError **errp)
{
    uint64_t first = offset >> RAM_PAGE_BITS;
    uint64_t end = (offset + len + RAM_PAGE_SIZE - 1) >> RAM_PAGE_BITS;

    if (!rb->allocmap) {
        return true;
    }
    for (uint64_t p = first; p < end;) {
        uint64_t q = p;

        if (test_bit(p, rb->allocmap)) {
            p++;
            continue;
        }
        while (q < end && !test_bit(q, rb->allocmap)) {
            q++;
        }
        if (!ram_block_fallocate(rb, p << RAM_PAGE_BITS,
                                 (q - p) << RAM_PAGE_BITS, errp)) {
            return false;
        }
        for (; p < q; p++) {
            set_bit(p, rb->allocmap);
        }
    }
    return true;
}

bool ram_list_reserve_all(RAMList *rl, GError **errp)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        if (rb->allocmap) {
            if (!ram_block_fallocate(rb, 0, rb->used_length, errp)) {
                return false;
            }
            g_clear_pointer(&rb->allocmap, g_free);
        }
    }
    return true;
}

void ram_list_remove_created(RAMList *rl)
{
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        g_autofree char *dir = NULL;

        if (rb->preexisting || !rb->path) {
            continue;
        }
        g_unlink(rb->path);
        /* and the folders its name made, while they are empty */
        dir = g_path_get_dirname(rb->path);
        while (strlen(dir) > strlen(rl->dir) &&
               g_str_has_prefix(dir, rl->dir) && g_rmdir(dir) == 0) {
            char *up = g_path_get_dirname(dir);

            g_free(dir);
            dir = up;
        }
    }
}

void ram_block_sync(RAMBlock *rb)
{
    if (rb->host) {
        msync(rb->host, rb->max_length, MS_ASYNC);
    }
}
