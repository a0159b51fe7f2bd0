/*
 * savevm-put.c: see savevm-put.h; byte layouts in include/migration/wire.h.
 */
#include "qemu/osdep.h"

#include "migration/savevm-put.h"
#include "migration/wire.h"

void qemu_savevm_put_header(QEMUFile *f, const char *machine)
{
    qemu_put_be32(f, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(f, QEMU_VM_FILE_VERSION);
    qemu_put_byte(f, QEMU_VM_CONFIGURATION);
    qemu_put_be32(f, strlen(machine));
    qemu_put_buffer(f, machine, strlen(machine));
}

void qemu_savevm_put_capabilities(QEMUFile *f, const char *const *caps)
{
    uint32_t n = 0;

    while (caps[n]) {
        n++;
    }
    qemu_put_byte(f, QEMU_VM_SUBSECTION);
    qemu_put_str8(f, "configuration/capabilities");
    qemu_put_be32(f, 1);                /* the subsection's version */
    qemu_put_be32(f, n);
    for (uint32_t i = 0; i < n; i++) {
        qemu_put_str8(f, caps[i]);
    }
}

void qemu_savevm_put_section_start(QEMUFile *f, uint32_t section_id,
                                   const char *idstr, uint32_t instance_id,
                                   uint32_t version_id)
{
    qemu_put_byte(f, QEMU_VM_SECTION_START);
    qemu_put_be32(f, section_id);
    qemu_put_str8(f, idstr);
    qemu_put_be32(f, instance_id);
    qemu_put_be32(f, version_id);
}

void qemu_savevm_put_section_header(QEMUFile *f, uint8_t type,
                                    uint32_t section_id)
{
    g_assert(type == QEMU_VM_SECTION_PART || type == QEMU_VM_SECTION_END);
    qemu_put_byte(f, type);
    qemu_put_be32(f, section_id);
}

void qemu_savevm_put_section_footer(QEMUFile *f, uint32_t section_id)
{
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, section_id);
}

void qemu_savevm_put_command(QEMUFile *f, uint16_t cmd)
{
    qemu_put_byte(f, QEMU_VM_COMMAND);
    qemu_put_be16(f, cmd);
    qemu_put_be16(f, 0);
}

void qemu_savevm_put_vmdescription(QEMUFile *f, const char *json)
{
    qemu_put_byte(f, QEMU_VM_VMDESCRIPTION);
    qemu_put_be32(f, strlen(json));
    qemu_put_buffer(f, json, strlen(json));
}
