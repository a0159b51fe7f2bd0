/*
 * savevm-put.h: the framing of a migration stream, save side: header,
 * configuration, sections, commands, VMDESCRIPTION.  colo-send.c,
 * failover.c and the test primary write every stream with these; the RAM
 * records inside a section are ram-save.c's.  The loader of the same
 * format is savevm.c.
 *
 * Owner: the thread that writes the stream.
 */
#ifndef MIGRATION_SAVEVM_PUT_H
#define MIGRATION_SAVEVM_PUT_H

#include "qemu/osdep.h"

#include "migration/qemu-file.h"

/* The stream header and the CONFIGURATION section's machine type. */
void qemu_savevm_put_header(QEMUFile *f, const char *machine);
/* The configuration/capabilities subsection naming @caps (NULL ends the
 * list): capabilities the destination must have on too. */
void qemu_savevm_put_capabilities(QEMUFile *f, const char *const *caps);
void qemu_savevm_put_section_start(QEMUFile *f, uint32_t section_id,
                                   const char *idstr, uint32_t instance_id,
                                   uint32_t version_id);
/* SECTION_PART or SECTION_END of an open section. */
void qemu_savevm_put_section_header(QEMUFile *f, uint8_t type,
                                    uint32_t section_id);
void qemu_savevm_put_section_footer(QEMUFile *f, uint32_t section_id);
/* A COMMAND record without payload (ENABLE_COLO, SWITCHOVER_START). */
void qemu_savevm_put_command(QEMUFile *f, uint16_t cmd);
void qemu_savevm_put_vmdescription(QEMUFile *f, const char *json);


#endif /* MIGRATION_SAVEVM_PUT_H */
