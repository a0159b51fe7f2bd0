/*
 * ram-save.h: writing RAM section records (the sending side), for our COLO
 * primary and the test primary.
 *
 * Owner: the thread that writes the stream.
 */
#ifndef MIGRATION_RAM_SAVE_H
#define MIGRATION_RAM_SAVE_H

#include "qemu/osdep.h"

#include "exec/ram_addr.h"
#include "migration/qemu-file.h"

typedef struct RAMSaveState {
    QEMUFile *f;
    /* The block the receiver will apply CONTINUE records to; like QEMU's
     * sender we keep it across sections and checkpoints. */
    const RAMBlock *last_block;
    uint64_t pages;
    uint64_t zero_pages;
    uint64_t xbzrle_pages;
    uint64_t bytes;
    uint8_t enc[4096];
} RAMSaveState;

void ram_save_init(RAMSaveState *rs, QEMUFile *f);
/* MEM_SIZE with every block of @rl, then EOS (a START section body). */
void ram_save_mem_size(RAMSaveState *rs, RAMList *rl, bool ignore_shared);
void ram_save_page(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset,
                   const uint8_t *data);
void ram_save_zero(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset);
/* XBZRLE against @old (what the receiver holds); falls back to PAGE when
 * the encoding would not be shorter, and sends nothing if equal.  Returns
 * true if a record was written. */
bool ram_save_xbzrle(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset,
                     const uint8_t *old, const uint8_t *new);
/* Picks ZERO, XBZRLE (when @old is given) or PAGE for @data. */
void ram_save_any(RAMSaveState *rs, const RAMBlock *rb, uint64_t offset,
                  const uint8_t *old, const uint8_t *data);
void ram_save_eos(RAMSaveState *rs);

/* The "ram" SECTION_START: MEM_SIZE with every block of @rl (and its
 * mr_addr under x-ignore-shared), EOS, footer. */
void ram_save_section_start(RAMSaveState *rs, uint32_t section_id,
                            RAMList *rl, bool ignore_shared);
/* EOS and the footer after a PART or END section's records. */
void ram_save_section_end(RAMSaveState *rs, uint32_t section_id);
/* Every page of @rb, as ZERO or PAGE records. */
void ram_save_block(RAMSaveState *rs, const RAMBlock *rb);

#endif /* MIGRATION_RAM_SAVE_H */
