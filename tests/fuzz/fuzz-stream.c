/*
 * fuzz-stream.c: the whole migration stream loader, from memory, with RAM
 * files in a private folder.  Invariants: no crash, no write outside a
 * RAMBlock (blocks sit between guard pages), every failure has an error
 * message, and a successful load holds exactly the announced blocks.
 */
#include "fuzz-common.h"

#include "migration/savevm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GBytes) bytes = g_bytes_new_static(data, size);
    g_autoptr(QEMUFile) f = qemu_file_new_input_bytes(bytes);
    g_autoptr(RAMList) rl = fuzz_ram_list();
    g_autoptr(GError) err = NULL;
    LoadVMState lv;
    bool ok;

    loadvm_init(&lv, f, rl);
    /* Accept what a COLO secondary accepts; decide x-ignore-shared by
     * the first byte so both paths are explored. */
    lv.cap_colo = true;
    lv.cap_ignore_shared = size > 0 && (data[size - 1] & 1);
    ok = qemu_loadvm_state(&lv, &err);
    if (!ok) {
        fuzz_check_error(err);
    } else if (ram_list_total(rl) > FUZZ_RAM_LIMIT) {
        abort();
    }
    loadvm_cleanup(&lv);
    g_clear_pointer(&rl, ram_list_free);
    fuzz_clear_ram_dir();
    return 0;
}
