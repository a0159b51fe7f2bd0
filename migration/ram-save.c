/*
 * ram-save.c: RAM section records, sending side (format: ram.c, wire.h).
 */
#include "qemu/osdep.h"

#include "migration/ram-save.h"
#include "migration/savevm-put.h"
#include "migration/wire.h"
#include "migration/xbzrle.h"
#include "qemu/cutils.h"

void ram_save_init(RAMSaveState *rs, QEMUFile *f)
{
    memset(rs, 0, sizeof(*rs));
    rs->f = f;
}

void ram_save_mem_size(RAMSaveState *rs, RAMList *rl, bool ignore_shared)
{
    qemu_put_be64(rs->f, ram_list_total(rl) | RAM_SAVE_FLAG_MEM_SIZE);
    for (guint i = 0; i < rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(rl->blocks, i);

        qemu_put_str8(rs->f, rb->idstr);
        qemu_put_be64(rs->f, rb->used_length);
        if (ignore_shared) {
            qemu_put_be64(rs->f, rb->mr_addr);
        }
    }
    ram_save_eos(rs);
}

/* The record word, plus the block name unless CONTINUE applies. */
static void ram_save_header(RAMSaveState *rs, const RAMBlock *rb,
                            uint64_t offset, uint32_t flags)
{
    g_assert((offset & ~TARGET_PAGE_MASK) == 0 && offset < rb->used_length);
    if (rb == rs->last_block) {
        qemu_put_be64(rs->f, offset | flags | RAM_SAVE_FLAG_CONTINUE);
    } else {
        qemu_put_be64(rs->f, offset | flags);
        qemu_put_str8(rs->f, rb->idstr);
        rs->last_block = rb;
    }
}

void ram_save_page(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset,
                   const uint8_t *data)
{
    ram_save_header(rs, rb, offset, RAM_SAVE_FLAG_PAGE);
    qemu_put_buffer(rs->f, data, TARGET_PAGE_SIZE);
    rs->pages++;
}

void ram_save_zero(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset)
{
    ram_save_header(rs, rb, offset, RAM_SAVE_FLAG_ZERO);
    qemu_put_byte(rs->f, 0);
    rs->zero_pages++;
}

bool ram_save_xbzrle(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset,
                     const uint8_t *old, const uint8_t *new)
{
    /* Worth it only if clearly shorter than a page. */
    int n = xbzrle_encode(old, new, TARGET_PAGE_SIZE, rs->enc,
                          TARGET_PAGE_SIZE - 64);

    if (n == 0) {
        return false;
    }
    if (n < 0) {
        ram_save_page(rs, rb, offset, new);
        return true;
    }
    ram_save_header(rs, rb, offset, RAM_SAVE_FLAG_XBZRLE);
    qemu_put_byte(rs->f, XBZRLE_ENCODING_BYTE);
    qemu_put_be16(rs->f, n);
    qemu_put_buffer(rs->f, rs->enc, n);
    rs->xbzrle_pages++;
    return true;
}

void ram_save_any(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset,
                  const uint8_t *old, const uint8_t *data)
{
    if (buffer_is_zero(data, TARGET_PAGE_SIZE)) {
        ram_save_zero(rs, rb, offset);
    } else if (old) {
        if (!ram_save_xbzrle(rs, rb, offset, old, data)) {
            /* unchanged: QEMU sends nothing, but the page was dirty, so
             * send it plainly to keep the dirty set honest */
            ram_save_page(rs, rb, offset, data);
        }
    } else {
        ram_save_page(rs, rb, offset, data);
    }
}

void ram_save_eos(RAMSaveState *rs)
{
    qemu_put_be64(rs->f, RAM_SAVE_FLAG_EOS);
}

void ram_save_section_start(RAMSaveState *rs, uint32_t section_id,
                            RAMList *rl, bool ignore_shared)
{
    qemu_savevm_put_section_start(rs->f, section_id, RAM_SECTION_IDSTR, 0,
                                  RAM_SECTION_VERSION);
    ram_save_mem_size(rs, rl, ignore_shared);
    qemu_savevm_put_section_footer(rs->f, section_id);
}

void ram_save_section_end(RAMSaveState *rs, uint32_t section_id)
{
    ram_save_eos(rs);
    qemu_savevm_put_section_footer(rs->f, section_id);
}

void ram_save_block(RAMSaveState *rs, const RAMBlock *rb)
{
    for (uint64_t off = 0; off < rb->used_length; off += TARGET_PAGE_SIZE) {
        ram_save_any(rs, rb, off, NULL, rb->host + off);
    }
}
