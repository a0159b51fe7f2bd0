/*
 * fuzz-common.c: see fuzz-common.h.
 */
#include "fuzz-common.h"

static char *ram_dir;

const char *fuzz_ram_dir(void)
{
    if (!ram_dir) {
        ram_dir = g_strdup("/dev/shm/colo-fuzz-XXXXXX");
        if (!g_mkdtemp(ram_dir)) {
            abort();
        }
    }
    return ram_dir;
}

static void remove_tree(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, name, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR)) {
            remove_tree(p);
            g_rmdir(p);
        } else {
            g_unlink(p);
        }
    }
    if (d) {
        g_dir_close(d);
    }
}

void fuzz_clear_ram_dir(void)
{
    remove_tree(fuzz_ram_dir());
}

RAMList *fuzz_ram_list(void)
{
    RAMList *rl = ram_list_new(fuzz_ram_dir());

    rl->max_total = FUZZ_RAM_LIMIT;
    return rl;
}

void fuzz_check_error(const GError *err)
{
    if (!err || !err->message || !err->message[0]) {
        fprintf(stderr, "failure without an error message\n");
        abort();
    }
}
