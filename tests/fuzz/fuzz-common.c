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

void fuzz_clear_ram_dir(void)
{
    const char *dir = fuzz_ram_dir();

    scratch_dir_remove(dir);
    g_mkdir(dir, 0700);
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
