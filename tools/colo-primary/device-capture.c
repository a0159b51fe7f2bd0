/*
 * device-capture.c: reading a device-state capture (see device-capture.h).
 */
#include "qemu/osdep.h"

#include <fcntl.h>

#include <glib/gstdio.h>

#include "tools/colo-primary/device-capture.h"

static void remove_tree(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR)) {
            remove_tree(p);
        } else {
            g_unlink(p);
        }
    }
    g_rmdir(dir);
}

DeviceCapture *device_capture_parse(GBytes *bytes, const char *dir,
                                    const char *main_block,
                                    uint64_t main_size, VmdescMemo *memo,
                                    GError **errp)
{
    DeviceCapture *dc = g_new0(DeviceCapture, 1);
    g_autofree char *placeholder = g_build_filename(dir, main_block, NULL);
    g_autofree char *parent = g_path_get_dirname(placeholder);
    RAMBlock *rb;
    int fd;

    remove_tree(dir);
    dc->dir = g_strdup(dir);
    g_mkdir_with_parents(parent, 0700);
    /* A sparse file of the main block's size: our loader takes it as the
     * shared block the capture leaves out. */
    fd = open(placeholder, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, main_size) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "%s: %s", placeholder,
                    g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        g_free(dc->dir);
        g_free(dc);
        return NULL;
    }
    close(fd);
    dc->f = qemu_file_new_input_bytes(bytes);
    dc->rl = ram_list_new(dir);
    loadvm_init(&dc->lv, dc->f, dc->rl);
    dc->lv.cap_ignore_shared = true;
    dc->lv.vmdesc_memo = memo;
    if (!qemu_loadvm_state(&dc->lv, errp) || !dc->lv.devices) {
        if (errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EIO, "no device sections");
        }
        g_prefix_error(errp, "QEMU's device state: ");
        device_capture_free(dc);
        return NULL;
    }
    rb = ram_list_find(dc->rl, main_block);
    if (!rb || rb->used_length != main_size || !rb->ignored) {
        g_set_error(errp, COLO_ERROR, EINVAL, "the VM's RAM block '%s' is "
                    "%s, but the RAM file has %" PRIu64 " bytes", main_block,
                    !rb ? "missing" : !rb->ignored ? "not shared" :
                    "of another size", main_size);
        device_capture_free(dc);
        return NULL;
    }
    return dc;
}

void device_capture_free(DeviceCapture *dc)
{
    if (!dc) {
        return;
    }
    loadvm_cleanup(&dc->lv);
    qemu_fclose(dc->f);
    ram_list_free(dc->rl);
    remove_tree(dc->dir);
    g_free(dc->dir);
    g_free(dc);
}
