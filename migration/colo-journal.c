/*
 * colo-journal.c: the committed checkpoint as files (see colo-journal.h).
 *
 * Record and journal share one layout (big-endian, through QEMUFile):
 *
 *   "COLOCKPT" u32 version (1; 2 with disks)
 *   u32 flags (1: a journal: a bitmap follows each block, extents each disk)
 *   u64 number   str8 machine   u32 RAM section id   u32 block count
 *   per block:   str8 idstr  u64 used_length  u64 mr_addr
 *                [u64 bitmap bytes, bitmap: one bit per page, host longs]
 *   u64 device bytes, device sections
 *   version 2:   u32 disk count, per disk: str8 node, u32 + filename,
 *                u64 size, [u32 + cache file, u64 extent count,
 *                per extent: u64 image page, u64 cache slot (4 KiB units)]
 *   u32 CRC-32 (zlib) of everything before it
 *
 * The commit point of checkpoint N+1 is the rename that makes
 * colo-journal appear; the rename of colo-journal over colo-checkpoint
 * ends it.  In between, the journal's bitmaps name every page that may
 * differ between the RAM files and N+1, and the cache files hold those
 * pages, so the copy can be done again from the start any number of times.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <zlib.h>

#include "migration/colo-journal.h"
#include "migration/device-state.h"
#include "migration/qemu-file.h"
#include "qemu/bitmap.h"
#include "qemu/crash-test.h"

#define RECORD_MAGIC      "COLOCKPT"
#define RECORD_VERSION    1
#define RECORD_VERSION_DISKS 2
#define RECORD_HAS_BITMAP 1u
#define RECORD_PATH_MAX   4096

ColoRecordDisk *colo_record_disk_new(const char *node, const char *filename,
                                     uint64_t size)
{
    ColoRecordDisk *d = g_new0(ColoRecordDisk, 1);

    g_strlcpy(d->node, node, sizeof(d->node));
    d->filename = g_strdup(filename);
    d->size = size;
    return d;
}

void colo_record_disk_free(gpointer p)
{
    ColoRecordDisk *d = p;

    if (d->extents) {
        g_array_unref(d->extents);
    }
    g_free(d->cache);
    g_free(d->filename);
    g_free(d);
}

ColoRecord *colo_record_new(void)
{
    ColoRecord *rec = g_new0(ColoRecord, 1);

    rec->blocks = g_array_new(FALSE, TRUE, sizeof(RAMBlockSummary));
    rec->disks = g_ptr_array_new_with_free_func(colo_record_disk_free);
    return rec;
}

void colo_record_free(ColoRecord *rec)
{
    if (!rec) {
        return;
    }
    g_array_unref(rec->blocks);
    g_ptr_array_unref(rec->disks);
    if (rec->devices) {
        g_bytes_unref(rec->devices);
    }
    g_free(rec);
}

GArray *colo_record_blocks_of(RAMList *rl)
{
    GArray *a = g_array_new(FALSE, TRUE, sizeof(RAMBlockSummary));

    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);
        RAMBlockSummary b = { .used_length = rb->used_length,
                              .mr_addr = rb->mr_addr };

        g_strlcpy(b.idstr, rb->idstr, sizeof(b.idstr));
        g_array_append_val(a, b);
    }
    return a;
}

/* --- writing ------------------------------------------------------------ */

static GBytes *record_encode(const ColoRecord *rec,
                            const GPtrArray *ram_bitmaps)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    gsize dlen = 0;
    const void *dev = rec->devices ? g_bytes_get_data(rec->devices, &dlen)
                                   : NULL;
    GByteArray *out;
    uint32_t crc;

    qemu_put_buffer(f, RECORD_MAGIC, 8);
    qemu_put_be32(f, rec->disks->len ? RECORD_VERSION_DISKS : RECORD_VERSION);
    qemu_put_be32(f, ram_bitmaps ? RECORD_HAS_BITMAP : 0);
    qemu_put_be64(f, rec->number);
    qemu_put_str8(f, rec->machine);
    qemu_put_be32(f, rec->ram_section_id);
    qemu_put_be32(f, rec->blocks->len);
    for (guint i = 0; i < rec->blocks->len; i++) {
        const RAMBlockSummary *b = &g_array_index(rec->blocks,
                                                  RAMBlockSummary, i);

        qemu_put_str8(f, b->idstr);
        qemu_put_be64(f, b->used_length);
        qemu_put_be64(f, b->mr_addr);
        if (ram_bitmaps) {
            GBytes *bm = i < ram_bitmaps->len ?
                         g_ptr_array_index(ram_bitmaps, i) : NULL;
            gsize bytes = 0;
            const void *bits = bm ? g_bytes_get_data(bm, &bytes) : NULL;

            qemu_put_be64(f, bytes);
            if (bytes) {
                qemu_put_buffer(f, bits, bytes);
            }
        }
    }
    qemu_put_be64(f, dlen);
    if (dlen) {
        qemu_put_buffer(f, dev, dlen);
    }
    if (rec->disks->len) {
        qemu_put_be32(f, rec->disks->len);
        for (guint i = 0; i < rec->disks->len; i++) {
            const ColoRecordDisk *d = g_ptr_array_index(rec->disks, i);

            qemu_put_str8(f, d->node);
            qemu_put_be32(f, strlen(d->filename));
            qemu_put_buffer(f, d->filename, strlen(d->filename));
            qemu_put_be64(f, d->size);
            if (ram_bitmaps) {
                const char *cache = d->cache ? d->cache : "";
                guint n = d->extents ? d->extents->len : 0;

                qemu_put_be32(f, strlen(cache));
                qemu_put_buffer(f, cache, strlen(cache));
                qemu_put_be64(f, n);
                for (guint k = 0; k < n; k++) {
                    const ColoDiskExtent *e = &g_array_index(
                        d->extents, ColoDiskExtent, k);

                    qemu_put_be64(f, e->page);
                    qemu_put_be64(f, e->slot);
                }
            }
        }
    }
    out = g_bytes_unref_to_array(qemu_file_steal_output(f));
    crc = GUINT32_TO_BE(crc32(0, out->data, out->len));
    g_byte_array_append(out, (const guint8 *)&crc, 4);
    return g_byte_array_free_to_bytes(out);
}

/* @name appears whole or not at all; @phase names the crash points. */
static bool record_write(const char *ram_dir, const char *name,
                         GBytes *bytes, uint64_t number, const char *phase,
                         GError **errp)
{
    g_autofree char *path = g_build_filename(ram_dir, name, NULL);
    g_autofree char *tmp = g_strconcat(path, ".tmp", NULL);
    g_autofree char *tmp_phase = g_strconcat(phase, "-tmp", NULL);

    if (!g_file_set_contents_full(tmp, g_bytes_get_data(bytes, NULL),
                                  g_bytes_get_size(bytes),
                                  G_FILE_SET_CONTENTS_NONE, 0600, errp)) {
        return false;
    }
    colo_test_crash_point(number, tmp_phase, 0);
    if (g_rename(tmp, path) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot rename %s to %s: %s",
                    tmp, path, g_strerror(errno));
        g_unlink(tmp);
        return false;
    }
    colo_test_crash_point(number, phase, 0);
    return true;
}

bool colo_record_save(const char *ram_dir, const ColoRecord *rec,
                      GError **errp)
{
    g_autoptr(GBytes) bytes = record_encode(rec, NULL);

    return record_write(ram_dir, COLO_CHECKPOINT_FILE, bytes, rec->number,
                        "record", errp);
}

bool colo_record_export_devices(const char *ram_dir, const ColoRecord *rec,
                                GError **errp)
{
    return !rec->devices ||
           device_state_save_blob(rec->devices, ram_dir, errp);
}

bool colo_journal_write(const char *ram_dir, const ColoRecord *rec,
                        const GPtrArray *ram_bitmaps, GError **errp)
{
    g_autoptr(GBytes) bytes = record_encode(rec, ram_bitmaps);

    return record_write(ram_dir, COLO_JOURNAL_FILE, bytes, rec->number,
                        "journal", errp);
}

bool colo_journal_finish(const char *ram_dir, GError **errp)
{
    g_autofree char *j = g_build_filename(ram_dir, COLO_JOURNAL_FILE, NULL);
    g_autofree char *c = g_build_filename(ram_dir, COLO_CHECKPOINT_FILE,
                                          NULL);

    if (g_rename(j, c) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot rename %s to %s: %s",
                    j, c, g_strerror(errno));
        return false;
    }
    return true;
}

static void remove_tree(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *name;

    if (!d) {
        g_unlink(path);
        return;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *sub = g_build_filename(path, name, NULL);

        if (g_file_test(sub, G_FILE_TEST_IS_DIR) &&
            !g_file_test(sub, G_FILE_TEST_IS_SYMLINK)) {
            remove_tree(sub);
        } else {
            g_unlink(sub);
        }
    }
    g_rmdir(path);
}

static void remove_in(const char *ram_dir, const char *name)
{
    g_autofree char *p = g_build_filename(ram_dir, name, NULL);

    g_unlink(p);
}

void colo_journal_remove_cache(const char *ram_dir)
{
    g_autofree char *cache = g_build_filename(ram_dir, COLO_CACHE_DIR, NULL);

    remove_tree(cache);
}

void colo_journal_remove_disk_cache(const char *ram_dir)
{
    g_autofree char *cache = g_build_filename(ram_dir, COLO_DISK_CACHE_DIR,
                                              NULL);

    remove_tree(cache);
}

void colo_journal_invalidate(const char *ram_dir)
{

    remove_in(ram_dir, COLO_JOURNAL_FILE);
    remove_in(ram_dir, COLO_JOURNAL_FILE ".tmp");
    remove_in(ram_dir, COLO_CHECKPOINT_FILE);
    remove_in(ram_dir, COLO_CHECKPOINT_FILE ".tmp");
    colo_journal_remove_cache(ram_dir);
}

/* --- reading ------------------------------------------------------------ */

static bool record_fail(GError **errp, const char *path, const char *what)
{
    g_set_error(errp, COLO_ERROR, EINVAL, "%s: %s", path, what);
    return false;
}

static void bytes_unref0(gpointer b)
{
    if (b) {
        g_bytes_unref(b);
    }
}

static char *get_path(QEMUFile *f)
{
    uint32_t n = qemu_get_be32(f);
    const uint8_t *p;

    if (qemu_file_get_error(f) || n > RECORD_PATH_MAX) {
        return NULL;
    }
    p = n ? qemu_get_ptr(f, n) : (const uint8_t *)"";
    if (!p || memchr(p, 0, n)) {
        return NULL;
    }
    return g_strndup((const char *)p, n);
}

static bool record_decode_disks(const char *path, QEMUFile *f, bool journal,
                                ColoRecord *rec, GError **errp)
{
    uint32_t ndisks = qemu_get_be32(f);

    if (qemu_file_get_error(f) || ndisks == 0 || ndisks > 64) {
        return record_fail(errp, path, "bad number of disks");
    }
    for (uint32_t i = 0; i < ndisks; i++) {
        char node[256];
        g_autofree char *filename = NULL;
        ColoRecordDisk *d;

        if (qemu_get_str8(f, node) <= 0 || strlen(node) >= sizeof(d->node)) {
            return record_fail(errp, path, "bad disk node name");
        }
        filename = get_path(f);
        if (!filename || !filename[0]) {
            return record_fail(errp, path, "bad disk file name");
        }
        d = colo_record_disk_new(node, filename, qemu_get_be64(f));
        g_ptr_array_add(rec->disks, d);
        if (d->size == 0 || d->size > (1ull << 50)) {
            return record_fail(errp, path, "bad disk size");
        }
        if (journal) {
            uint64_t n;

            d->cache = get_path(f);
            n = qemu_get_be64(f);
            if (!d->cache || qemu_file_get_error(f) ||
                n > d->size / COLO_DISK_PAGE + 1) {
                return record_fail(errp, path, "bad disk journal");
            }
            d->extents = g_array_sized_new(FALSE, FALSE,
                                           sizeof(ColoDiskExtent), n);
            for (uint64_t k = 0; k < n; k++) {
                ColoDiskExtent e;

                e.page = qemu_get_be64(f);
                e.slot = qemu_get_be64(f);
                if (qemu_file_get_error(f)) {
                    return record_fail(errp, path, "truncated disk journal");
                }
                g_array_append_val(d->extents, e);
            }
        }
    }
    if (qemu_file_get_error(f) || !qemu_file_at_eof(f)) {
        return record_fail(errp, path, "bad disk list");
    }
    return true;
}

static bool record_decode(const char *path, GBytes *bytes, ColoRecord *rec,
                          GPtrArray **bitmaps, GError **errp)
{
    gsize len = g_bytes_get_size(bytes);
    const uint8_t *data = g_bytes_get_data(bytes, NULL);
    g_autoptr(GBytes) body = NULL;
    g_autoptr(QEMUFile) f = NULL;
    uint8_t magic[8];
    uint32_t crc, flags, nblocks, version;
    uint64_t dlen, disks_at;

    if (len < 8 + 4 + 4 + 4) {
        return record_fail(errp, path, "too short to be a checkpoint record");
    }
    memcpy(&crc, data + len - 4, 4);
    if (GUINT32_FROM_BE(crc) != crc32(0, data, len - 4)) {
        return record_fail(errp, path, "checksum mismatch (the file was "
                           "changed by something else)");
    }
    body = g_bytes_new_from_bytes(bytes, 0, len - 4);
    f = qemu_file_new_input_bytes(body);
    if (!qemu_get_buffer(f, magic, 8) ||
        memcmp(magic, RECORD_MAGIC, 8) != 0) {
        return record_fail(errp, path, "not a checkpoint record (bad magic)");
    }
    version = qemu_get_be32(f);
    if (version != RECORD_VERSION && version != RECORD_VERSION_DISKS) {
        return record_fail(errp, path, "unknown record version");
    }
    flags = qemu_get_be32(f);
    rec->number = qemu_get_be64(f);
    if (qemu_get_str8(f, (char *)rec->machine) < 0) {
        return record_fail(errp, path, "truncated machine type");
    }
    rec->ram_section_id = qemu_get_be32(f);
    nblocks = qemu_get_be32(f);
    if (nblocks == 0 || nblocks > RAM_BLOCKS_MAX) {
        return record_fail(errp, path, "bad number of RAM blocks");
    }
    if (bitmaps) {
        *bitmaps = g_ptr_array_new_with_free_func(bytes_unref0);
    }
    for (uint32_t i = 0; i < nblocks; i++) {
        RAMBlockSummary b = { 0 };
        char id[256];

        if (qemu_get_str8(f, id) <= 0 || strlen(id) > RAM_BLOCK_IDSTR_MAX) {
            return record_fail(errp, path, "bad RAM block name");
        }
        g_strlcpy(b.idstr, id, sizeof(b.idstr));
        b.used_length = qemu_get_be64(f);
        b.mr_addr = qemu_get_be64(f);
        if (b.used_length == 0 || b.used_length > RAM_BLOCK_MAX_BYTES ||
            (b.used_length & 4095)) {
            return record_fail(errp, path, "bad RAM block length");
        }
        if (flags & RECORD_HAS_BITMAP) {
            uint64_t want = BITS_TO_LONGS(b.used_length >> 12) *
                            sizeof(unsigned long);
            uint64_t n = qemu_get_be64(f);
            const uint8_t *p;

            if (n != 0 && n != want) {
                return record_fail(errp, path, "bitmap of the wrong size");
            }
            p = n ? qemu_get_ptr(f, n) : NULL;
            if (n && !p) {
                return record_fail(errp, path, "truncated bitmap");
            }
            if (bitmaps) {
                g_ptr_array_add(*bitmaps, n ? g_bytes_new(p, n) : NULL);
            }
        }
        g_array_append_val(rec->blocks, b);
    }
    dlen = qemu_get_be64(f);
    if (qemu_file_get_error(f) || dlen > DEVICE_STATE_MAX_BYTES ||
        dlen > len - 4 - qemu_file_tell(f) ||
        (version == RECORD_VERSION &&
         dlen != len - 4 - qemu_file_tell(f))) {
        return record_fail(errp, path, "bad device state length");
    }
    rec->devices = g_bytes_new_from_bytes(body, qemu_file_tell(f), dlen);
    disks_at = qemu_file_tell(f) + dlen;
    if (version == RECORD_VERSION_DISKS) {
        g_autoptr(GBytes) tail = g_bytes_new_from_bytes(
            body, disks_at, len - 4 - disks_at);
        g_autoptr(QEMUFile) df = qemu_file_new_input_bytes(tail);

        if (!record_decode_disks(path, df, flags & RECORD_HAS_BITMAP, rec,
                                 errp)) {
            return false;
        }
    }
    if (bitmaps && !(flags & RECORD_HAS_BITMAP)) {
        return record_fail(errp, path, "a journal without page bitmaps");
    }
    return true;
}

ColoRecord *colo_record_load(const char *path, GPtrArray **bitmaps,
                             GError **errp)
{
    g_autoptr(GMappedFile) mf = g_mapped_file_new(path, FALSE, errp);
    g_autoptr(GBytes) bytes = NULL;
    ColoRecord *rec;

    if (!mf) {
        return NULL;
    }
    rec = colo_record_new();
    bytes = g_mapped_file_get_bytes(mf);
    if (!record_decode(path, bytes, rec, bitmaps, errp)) {
        if (bitmaps && *bitmaps) {
            g_ptr_array_unref(*bitmaps);
            *bitmaps = NULL;
        }
        colo_record_free(rec);
        return NULL;
    }
    return rec;
}

/* --- recovery ----------------------------------------------------------- */

/* Copies the marked pages of one block from its cache file into its RAM
 * file (both must exist with the block's size). */
static bool replay_block(const char *ram_dir, const RAMBlockSummary *b,
                         GBytes *bitmap, uint64_t *pages, GError **errp)
{
    g_autofree char *cache_dir = g_build_filename(ram_dir, COLO_CACHE_DIR,
                                                  NULL);
    g_autofree char *ram = ram_block_path(ram_dir, b->idstr, errp);
    g_autofree char *cache = ram ? ram_block_path(cache_dir, b->idstr, errp)
                                 : NULL;
    const unsigned long *bm = g_bytes_get_data(bitmap, NULL);
    uint64_t npages = b->used_length >> 12;
    g_autoptr(GMappedFile) src = NULL;
    int fd;
    bool ok = true;

    if (!cache) {
        return false;
    }
    src = g_mapped_file_new(cache, FALSE, errp);
    if (!src) {
        g_prefix_error(errp, "the journal needs the cache file: ");
        return false;
    }
    if (g_mapped_file_get_length(src) < b->used_length) {
        g_set_error(errp, COLO_ERROR, EINVAL, "cache file %s is shorter "
                    "than block '%s'", cache, b->idstr);
        return false;
    }
    fd = open(ram, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot open RAM file %s: %s",
                    ram, g_strerror(errno));
        return false;
    }
    for (uint64_t p = find_next_bit(bm, npages, 0); p < npages && ok;
         p = find_next_bit(bm, npages, p + 1)) {
        const char *page = g_mapped_file_get_contents(src) + (p << 12);

        if (pwrite(fd, page, 4096, p << 12) != 4096) {
            g_set_error(errp, COLO_ERROR, errno ? errno : EIO, "cannot "
                        "write RAM file %s: %s", ram, g_strerror(errno));
            ok = false;
        }
        ++*pages;
    }
    close(fd);
    return ok;
}

void colo_recovery_clear(ColoRecovery *r)
{
    colo_record_free(r->record);
    memset(r, 0, sizeof(*r));
}

bool colo_journal_recover(const char *ram_dir, ColoRecovery *r,
                          GError **errp)
{
    g_autofree char *journal = g_build_filename(ram_dir, COLO_JOURNAL_FILE,
                                                NULL);
    g_autofree char *record = g_build_filename(ram_dir, COLO_CHECKPOINT_FILE,
                                               NULL);
    g_autofree char *jtmp = g_strconcat(journal, ".tmp", NULL);
    g_autofree char *rtmp = g_strconcat(record, ".tmp", NULL);

    memset(r, 0, sizeof(*r));
    r->discarded = g_file_test(jtmp, G_FILE_TEST_EXISTS);
    g_unlink(jtmp);
    g_unlink(rtmp);
    if (g_file_test(journal, G_FILE_TEST_EXISTS)) {
        g_autoptr(GPtrArray) bitmaps = NULL;
        g_autoptr(ColoRecord) rec = colo_record_load(journal, &bitmaps, errp);

        if (!rec) {
            g_prefix_error(errp, "cannot replay the checkpoint journal: ");
            return false;
        }
        for (guint i = 0; i < rec->disks->len; i++) {
            const ColoRecordDisk *d = g_ptr_array_index(rec->disks, i);

            if (d->extents &&
                !colo_disk_replay(d->filename, d->size, d->cache, d->extents,
                                  &r->replayed_disk_pages, errp)) {
                g_prefix_error(errp, "cannot replay the checkpoint journal "
                               "(checkpoint %" PRIu64 ", disk '%s'): ",
                               rec->number, d->node);
                return false;
            }
        }
        for (guint i = 0; i < rec->blocks->len; i++) {
            GBytes *bm = g_ptr_array_index(bitmaps, i);

            if (bm && !replay_block(ram_dir, &g_array_index(
                                        rec->blocks, RAMBlockSummary, i),
                                    bm, &r->replayed_pages, errp)) {
                g_prefix_error(errp, "cannot replay the checkpoint journal "
                               "(checkpoint %" PRIu64 "): ", rec->number);
                return false;
            }
        }
        if (!colo_journal_finish(ram_dir, errp)) {
            return false;
        }
        r->replayed = true;
    }
    colo_journal_remove_cache(ram_dir);
    colo_journal_remove_disk_cache(ram_dir);
    if (g_file_test(record, G_FILE_TEST_EXISTS)) {
        g_autoptr(GError) copy_err = NULL;

        r->record = colo_record_load(record, NULL, errp);
        if (!r->record) {
            return false;
        }
        /* device-state.bin is a copy for people and tools (the record
         * holds the state): a full filesystem only costs the copy */
        if (!colo_record_export_devices(ram_dir, r->record, &copy_err)) {
            fprintf(stderr, "colo-secondary: %s\n", copy_err->message);
        }
    }
    return true;
}
