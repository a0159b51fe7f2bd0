/*
 * secondary-check.c: the tests' oracle of colo-primary: SHA-256 sums
 * (see secondary-check.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "tools/colo-primary/primary-error.h"
#include "tools/colo-primary/secondary-check.h"

struct SecondaryCheck {
    const uint8_t *ram;
    uint64_t ram_size;
    char *ram_path;             /* the secondary's RAM file, or NULL */
    char **disks;               /* NODE=PATH */
    char *ram_sum;              /* of the VM's RAM at the last note */
    GHashTable *disk_sums;      /* node -> sum of its image then */
};

SecondaryCheck *secondary_check_new(const uint8_t *ram, uint64_t ram_size,
                                    const char *ram_block,
                                    const char *ram_dir, char **disks)
{
    SecondaryCheck *c;

    if (!ram_dir && !(disks && disks[0])) {
        return NULL;
    }
    c = g_new0(SecondaryCheck, 1);
    c->ram = ram;
    c->ram_size = ram_size;
    c->ram_path = ram_dir ? g_build_filename(ram_dir, ram_block, NULL) : NULL;
    c->disks = g_strdupv(disks);
    c->disk_sums = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                         g_free);
    return c;
}

void secondary_check_free(SecondaryCheck *c)
{
    if (c) {
        g_free(c->ram_path);
        g_strfreev(c->disks);
        g_free(c->ram_sum);
        g_hash_table_unref(c->disk_sums);
        g_free(c);
    }
}

static char *sum_file(const char *path, GError **errp)
{
    g_autoptr(GMappedFile) mf = g_mapped_file_new(path, FALSE, errp);

    if (!mf) {
        return NULL;
    }
    return g_compute_checksum_for_data(
        G_CHECKSUM_SHA256, (const guchar *)g_mapped_file_get_contents(mf),
        g_mapped_file_get_length(mf));
}

/* The secondary's image of @node, per --verify-disk; NULL: not checked. */
static const char *image_of(SecondaryCheck *c, const char *node)
{
    size_t n = strlen(node);

    for (int k = 0; c->disks && c->disks[k]; k++) {
        if (strncmp(c->disks[k], node, n) == 0 && c->disks[k][n] == '=') {
            return c->disks[k] + n + 1;
        }
    }
    return NULL;
}

bool secondary_check_note(SecondaryCheck *c, DiskMirror *mirror,
                          GError **errp)
{
    for (guint i = 0; mirror && i < disk_mirror_count(mirror); i++) {
        const char *node = disk_mirror_target(mirror, i)->node;
        g_autofree char *path = NULL;
        char *sum;

        if (!image_of(c, node)) {
            continue;
        }
        path = disk_mirror_image_path(mirror, i, errp);
        sum = path ? sum_file(path, errp) : NULL;
        if (!sum) {
            primary_error_tag(errp, PRIMARY_ERROR_QEMU);
            return false;
        }
        g_hash_table_replace(c->disk_sums, g_strdup(node), sum);
    }
    if (c->ram_path) {
        g_free(c->ram_sum);
        c->ram_sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, c->ram,
                                                 c->ram_size);
    }
    return true;
}

static bool compare_ram(SecondaryCheck *c, const char *what, GError **errp)
{
    g_autofree char *theirs = NULL;
    struct stat st;
    void *img;
    int fd = open(c->ram_path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != c->ram_size) {
        g_set_error(errp, PRIMARY_ERROR, PRIMARY_ERROR_VERIFY, "%s: %s",
                    c->ram_path, fd < 0 ? g_strerror(errno) :
                    "not the RAM's size");
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    img = mmap(NULL, c->ram_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (img == MAP_FAILED) {
        g_set_error(errp, PRIMARY_ERROR, PRIMARY_ERROR_VERIFY, "%s: %s",
                    c->ram_path, g_strerror(errno));
        return false;
    }
    theirs = g_compute_checksum_for_data(G_CHECKSUM_SHA256, img,
                                         c->ram_size);
    munmap(img, c->ram_size);
    if (g_strcmp0(c->ram_sum, theirs) != 0) {
        g_set_error(errp, PRIMARY_ERROR, PRIMARY_ERROR_VERIFY, "%s: the "
                    "secondary's %s differs from the VM's RAM at that moment",
                    what, c->ram_path);
        return false;
    }
    return true;
}

bool secondary_check_compare(SecondaryCheck *c, DiskMirror *mirror,
                             const char *what, GError **errp)
{
    if (c->ram_path && !compare_ram(c, what, errp)) {
        return false;
    }
    for (guint i = 0; mirror && i < disk_mirror_count(mirror); i++) {
        const char *node = disk_mirror_target(mirror, i)->node;
        const char *path = image_of(c, node);
        g_autofree char *theirs = NULL;

        if (!path) {
            continue;
        }
        theirs = sum_file(path, errp);
        if (!theirs) {
            primary_error_tag(errp, PRIMARY_ERROR_VERIFY);
            return false;
        }
        if (g_strcmp0(theirs, g_hash_table_lookup(c->disk_sums, node))) {
            g_set_error(errp, PRIMARY_ERROR, PRIMARY_ERROR_VERIFY, "%s: the "
                        "secondary's image %s differs from the VM's disk %s "
                        "at that moment", what, path, node);
            return false;
        }
    }
    return true;
}
