/*
 * fuzz-common.c: see fuzz-common.h.
 */
#include "fuzz-common.h"

#include "qemu/scratch-dir.h"

static char *ram_dir;

static void remove_ram_dir(void)
{
    scratch_dir_remove(ram_dir);
}

/* colo-fuzz.PID.START (qemu/scratch-dir.h): removed when the fuzzer
 * exits, or by the next fuzzer if this one was killed */
const char *fuzz_ram_dir(void)
{
    if (!ram_dir) {
        scratch_dir_reap("/dev/shm", "colo-fuzz", NULL);
        ram_dir = scratch_dir_create("/dev/shm", "colo-fuzz", NULL);
        if (!ram_dir) {
            abort();
        }
        atexit(remove_ram_dir);
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
