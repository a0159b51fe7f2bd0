/*
 * fuzz-colo.c: the COLO checkpoint loop.  A fixed, valid initial COLO
 * stream (built here) is loaded first; the fuzzer's bytes are what the
 * "primary" sends after CHECKPOINT_READY.  Invariants: no crash; the RAM
 * files change only through a committed checkpoint (each one answered by
 * VMSTATE_LOADED); every failure has an error message.
 */
#include "fuzz-common.h"

#include "migration/colo.h"
#include "migration/colo-send.h"
#include "migration/ram-save.h"
#include "migration/savevm-put.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE   (1 << 20)
#define ROM_SIZE   (64 << 10)

static GBytes *initial_stream(void)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    g_autoptr(RAMList) rl = fuzz_ram_list();
    g_autoptr(GError) err = NULL;
    RAMSaveState rs;
    uint8_t page[TARGET_PAGE_SIZE];
    RAMBlock *ram, *rom;

    ram = ram_list_add(rl, "pc.ram", RAM_SIZE, &err);
    rom = ram_list_add(rl, "/rom@etc/fuzz", ROM_SIZE, &err);
    g_assert(ram && rom);
    colo_put_stream_head(f, "pc-i440fx-10.0");
    ram_save_init(&rs, f);
    ram_save_section_start(&rs, 1, rl, false);
    qemu_savevm_put_section_header(f, QEMU_VM_SECTION_END, 1);
    for (int i = 0; i < 16; i++) {
        memset(page, 'A' + i, sizeof(page));
        ram_save_page(&rs, ram, (uint64_t)i * 3 * TARGET_PAGE_SIZE, page);
    }
    ram_save_page(&rs, rom, 0, page);
    ram_save_section_end(&rs, 1);
    qemu_put_byte(f, QEMU_VM_EOF);
    /* QEMU always ends the initial stream with a VMDESCRIPTION; without
     * one, fuzzed bytes starting with 0x06 would be read as its
     * (optional) record instead of COLO traffic (crash-bcb86a39). */
    qemu_savevm_put_vmdescription(f, "{}");
    g_clear_pointer(&rl, ram_list_free);
    fuzz_clear_ram_dir();
    return qemu_file_steal_output(f);
}

static int committed;

static bool on_committed(void *opaque, VMDeviceState *ds,
                         const ColoCheckpointStats *st, GError **errp)
{
    committed++;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GBytes *initial;
    g_autoptr(GByteArray) all = g_byte_array_new();
    g_autoptr(GBytes) bytes = NULL;
    g_autoptr(QEMUFile) f = NULL;
    g_autoptr(QEMUFile) out = qemu_file_new_output_buffer();
    g_autoptr(GBytes) replies = NULL;
    g_autoptr(RAMList) rl = fuzz_ram_list();
    g_autoptr(GError) err = NULL;
    g_autofree uint8_t *ram_before = NULL;
    g_autoptr(ColoRecord) record = colo_record_new();
    LoadVMState lv;
    ColoIncoming ci = { 0 };
    RAMBlock *ram;
    const uint8_t *r;
    gsize rlen;
    int loaded = 0;

    if (!initial) {
        initial = initial_stream();
    }
    g_byte_array_append(all, g_bytes_get_data(initial, NULL),
                        g_bytes_get_size(initial));
    g_byte_array_append(all, data, size);
    bytes = g_byte_array_free_to_bytes(g_steal_pointer(&all));
    f = qemu_file_new_input_bytes(bytes);

    loadvm_init(&lv, f, rl);
    lv.cap_colo = true;
    if (!qemu_loadvm_state(&lv, &err) || !lv.colo_requested) {
        abort();    /* the fixed initial stream must load */
    }
    committed = 0;
    ci.lv = &lv;
    ci.ram_list = rl;
    ci.to_primary = out;
    ci.hooks.committed = on_committed;
    g_array_unref(record->blocks);
    record->blocks = colo_record_blocks_of(rl);
    ci.record = record;
    if (!colo_incoming_setup(&ci, &err)) {
        abort();
    }
    ram = ram_list_find(rl, "pc.ram");
    ram_before = g_memdup2(ram->host, RAM_SIZE);
    if (colo_incoming_run(&ci, &err)) {
        abort();    /* it only ends with an error */
    }
    fuzz_check_error(err);

    replies = qemu_file_steal_output(out);
    r = g_bytes_get_data(replies, &rlen);
    for (gsize i = 0; i + 4 <= rlen; i += 4) {
        loaded += r[i] == 0 && r[i + 1] == 0 && r[i + 2] == 0 &&
                  r[i + 3] == COLO_MESSAGE_VMSTATE_LOADED;
    }
    if (loaded != committed || (int)ci.last.number != committed) {
        abort();
    }
    if (committed == 0 && memcmp(ram_before, ram->host, RAM_SIZE) != 0) {
        fprintf(stderr, "RAM changed without a committed checkpoint\n");
        abort();
    }
    if (committed > 0 && record->number != (uint64_t)committed) {
        abort();    /* the folder's record is the last committed one */
    }
    if (colo_incoming_cache_reserved(&ci) != 0) {
        abort();    /* the loop releases the cache when it ends */
    }
    loadvm_cleanup(&lv);
    g_clear_pointer(&rl, ram_list_free);
    fuzz_clear_ram_dir();
    return 0;
}
