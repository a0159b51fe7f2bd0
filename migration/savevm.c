/*
 * savevm.c: reading the top level of a QEMU migration stream.
 *
 *   header "QEVM" v3 | CONFIGURATION | { START | PART | END | FULL |
 *   COMMAND }* | EOF | VMDESCRIPTION
 *
 * Live sections are RAM only (ram.c).  The first FULL section starts the
 * device part, which we cannot parse but keep byte for byte
 * (device-state.c).  Commands are checked for their fixed lengths and
 * handled: the return path (OPEN_RETURN_PATH, PING -> PONG), ENABLE_COLO,
 * SWITCHOVER_START; postcopy is refused.
 *
 * Every failure names what was wrong and the byte offset where the
 * offending record starts.
 *
 * Owner: the incoming migration thread.
 */
#include "qemu/osdep.h"

#include "migration/savevm.h"
#include "migration/wire.h"

void loadvm_init(LoadVMState *lv, QEMUFile *f, RAMList *ram_list)
{
    memset(lv, 0, sizeof(*lv));
    lv->f = f;
    lv->return_path_fd = -1;
    lv->ram_section_id = -1;
    ram_load_init(&lv->ram, ram_list);
}

void loadvm_cleanup(LoadVMState *lv)
{
    ram_load_cleanup(&lv->ram);
    if (lv->to_src) {
        qemu_fclose(lv->to_src);
        lv->to_src = NULL;
    }
    device_state_unref(lv->devices);
    lv->devices = NULL;
    g_clear_pointer(&lv->vmdesc_json, g_free);
}

bool machine_type_version(const char *machine, int *major, int *minor)
{
    const char *dash = strrchr(machine, '-');
    char *end;
    long ma, mi;

    if (!dash || !g_ascii_isdigit(dash[1])) {
        return false;
    }
    ma = strtol(dash + 1, &end, 10);
    if (*end != '.' || !g_ascii_isdigit(end[1])) {
        return false;
    }
    mi = strtol(end + 1, &end, 10);
    if (*end != '\0' || ma > 1000 || mi > 1000) {
        return false;
    }
    *major = (int)ma;
    *minor = (int)mi;
    return true;
}

bool loadvm_send_rp(LoadVMState *lv, uint16_t type, const void *data,
                    uint16_t len, GError **errp)
{
    if (!lv->to_src) {
        g_set_error(errp, COLO_ERROR, ENOTCONN, "return path is not open");
        return false;
    }
    qemu_put_be16(lv->to_src, type);
    qemu_put_be16(lv->to_src, len);
    qemu_put_buffer(lv->to_src, data, len);
    if (qemu_fflush(lv->to_src) < 0) {
        qemu_file_propagate_error(lv->to_src, errp);
        g_prefix_error(errp, "return path: ");
        return false;
    }
    return true;
}

/* The configuration section body (after the 0x07 byte). */
static bool loadvm_configuration(LoadVMState *lv, GError **errp)
{
    QEMUFile *f = lv->f;
    uint64_t at = qemu_file_tell(f);
    uint32_t name_len = qemu_get_be32(f);
    bool got_ignore_shared = false;
    int major, minor;

    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    if (name_len == 0 || name_len > 256) {
        return stream_error_at(errp, at, "configuration", "machine type name of %u "
                       "bytes", name_len);
    }
    if (!qemu_get_buffer(f, lv->machine, name_len)) {
        qemu_file_propagate_error(f, errp);
        return false;
    }
    lv->machine[name_len] = '\0';
    for (uint32_t i = 0; i < name_len; i++) {
        if (!g_ascii_isgraph(lv->machine[i])) {
            return stream_error_at(errp, at, "configuration", "machine type name "
                           "has byte 0x%02x", (uint8_t)lv->machine[i]);
        }
    }

    /* Subsections: 05 str8 name be32 version, while the name says so. */
    for (;;) {
        const uint8_t *p = qemu_peek(f, 2);
        char name[256];
        uint32_t version;
        uint64_t sub_at = qemu_file_tell(f);

        if (!p || p[0] != QEMU_VM_SUBSECTION) {
            break;
        }
        p = qemu_peek(f, 2 + p[1]);
        if (!p || p[1] < strlen("configuration") ||
            memcmp(p + 2, "configuration", strlen("configuration")) != 0) {
            break;
        }
        qemu_get_byte(f);
        qemu_get_str8(f, name);
        version = qemu_get_be32(f);
        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        if (version != 1) {
            return stream_error_at(errp, sub_at, "configuration", "subsection '%s' "
                           "version %u", name, version);
        }
        if (strcmp(name, "configuration/target-page-bits") == 0) {
            uint32_t bits = qemu_get_be32(f);

            if (!qemu_file_get_error(f) && bits != TARGET_PAGE_BITS) {
                return stream_error_at(errp, sub_at, "configuration", "target page "
                               "bits %u, we use %d", bits, TARGET_PAGE_BITS);
            }
        } else if (strcmp(name, "configuration/capabilities") == 0) {
            uint32_t count = qemu_get_be32(f);

            if (!qemu_file_get_error(f) && count > 64) {
                return stream_error_at(errp, sub_at, "configuration", "%u "
                               "capabilities listed", count);
            }
            for (uint32_t i = 0; i < count && !qemu_file_get_error(f); i++) {
                char cap[256];

                if (qemu_get_str8(f, cap) < 0) {
                    break;
                }
                if (strcmp(cap, "x-ignore-shared") == 0) {
                    got_ignore_shared = true;
                } else if (strcmp(cap, "mapped-ram") == 0) {
                    return stream_error_at(errp, sub_at, "configuration", "the "
                                   "source uses mapped-ram, which is not "
                                   "supported");
                } else {
                    return stream_error_at(errp, sub_at, "configuration", "unknown "
                                   "capability '%s'", cap);
                }
            }
        } else if (strcmp(name, "configuration/uuid") == 0) {
            qemu_file_skip(f, 16);
        } else {
            return stream_error_at(errp, sub_at, "configuration", "unknown "
                           "subsection '%s'", name);
        }
        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
    }
    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    if (got_ignore_shared != lv->cap_ignore_shared) {
        return stream_error_at(errp, at, "configuration", "capability "
                       "x-ignore-shared is %s here but %s at the source",
                       lv->cap_ignore_shared ? "on" : "off",
                       got_ignore_shared ? "on" : "off");
    }
    lv->ram.ignore_shared = got_ignore_shared;
    /*
     * QEMU 8.0+ destinations refuse non-zero ZERO fills; 7.2 still filled
     * the page with the byte.  Follow the generation the machine type
     * names.
     */
    if (machine_type_version(lv->machine, &major, &minor) &&
        (major < 7 || (major == 7 && minor <= 2))) {
        lv->ram.zero_fill_strict = false;
    }
    return true;
}

static bool loadvm_footer(LoadVMState *lv, uint32_t section_id,
                          GError **errp)
{
    uint64_t at = qemu_file_tell(lv->f);
    uint8_t marker = qemu_get_byte(lv->f);
    uint32_t id = qemu_get_be32(lv->f);

    if (!qemu_file_propagate_error(lv->f, errp)) {
        return false;
    }
    if (marker != QEMU_VM_SECTION_FOOTER) {
        return stream_error_at(errp, at, "section footer", "byte 0x%02x instead of "
                       "the footer of section %u", marker, section_id);
    }
    if (id != section_id) {
        return stream_error_at(errp, at, "section footer", "footer names section %u "
                       "but section %u was read", id, section_id);
    }
    return true;
}

static bool loadvm_command(LoadVMState *lv, uint64_t at, GError **errp)
{
    QEMUFile *f = lv->f;
    uint16_t cmd = qemu_get_be16(f);
    uint16_t len = qemu_get_be16(f);
    int expect = -1;

    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
    case MIG_CMD_ENABLE_COLO:
    case MIG_CMD_SWITCHOVER_START:
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_POSTCOPY_RUN:
    case MIG_CMD_POSTCOPY_RESUME:
        expect = 0;
        break;
    case MIG_CMD_PING:
    case MIG_CMD_PACKAGED:
        expect = 4;
        break;
    case MIG_CMD_POSTCOPY_ADVISE:
        if (len != 0 && len != 16) {
            return stream_error_at(errp, at, "command POSTCOPY_ADVISE", "length %u",
                           len);
        }
        break;
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
    case MIG_CMD_RECV_BITMAP:
        break;
    default:
        return stream_error_at(errp, at, "command", "unknown command 0x%x (length "
                       "%u)", cmd, len);
    }
    if (expect >= 0 && len != expect) {
        return stream_error_at(errp, at, "command", "command %u has length %u, "
                       "expected %d", cmd, len, expect);
    }

    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        if (lv->return_path_fd < 0) {
            return stream_error_at(errp, at, "command OPEN_RETURN_PATH", "this "
                           "transport has no return path (use a socket)");
        }
        if (!lv->to_src) {
            int fd = dup(lv->return_path_fd);

            if (fd < 0) {
                return stream_error_at(errp, at, "command OPEN_RETURN_PATH", "%s",
                               g_strerror(errno));
            }
            lv->to_src = qemu_file_new_output_fd(fd, true);
        }
        return true;

    case MIG_CMD_PING: {
        uint32_t v = qemu_get_be32(f);
        uint8_t pong[4] = { v >> 24, v >> 16, v >> 8, v };

        if (!qemu_file_propagate_error(f, errp)) {
            return false;
        }
        if (!lv->to_src) {
            return stream_error_at(errp, at, "command PING", "no return path is "
                           "open");
        }
        return loadvm_send_rp(lv, MIG_RP_MSG_PONG, pong, 4, errp);
    }

    case MIG_CMD_ENABLE_COLO:
        if (!lv->cap_colo) {
            return stream_error_at(errp, at, "command ENABLE_COLO", "the x-colo "
                           "capability is not set");
        }
        lv->colo_requested = true;
        if (lv->hooks.enable_colo &&
            !lv->hooks.enable_colo(lv->hooks.opaque, errp)) {
            g_prefix_error(errp, "ENABLE_COLO at byte offset %" PRIu64 ": ",
                           at);
            return false;
        }
        return true;

    case MIG_CMD_SWITCHOVER_START:
        lv->switchover_started = true;
        return true;

    default:
        return stream_error_at(errp, at, "command", "command %u (postcopy or "
                       "packaged stream) is not supported", cmd);
    }
}

/* A START section header's body, after type and section id. */
static bool loadvm_section_start(LoadVMState *lv, uint32_t id, uint64_t at,
                                 GError **errp)
{
    QEMUFile *f = lv->f;
    char idstr[256];
    uint32_t instance, version;

    qemu_get_str8(f, idstr);
    instance = qemu_get_be32(f);
    version = qemu_get_be32(f);
    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    if (strcmp(idstr, RAM_SECTION_IDSTR) != 0 || instance != 0) {
        return stream_error_at(errp, at, "section START", "unknown live section "
                       "'%s' instance %u", idstr, instance);
    }
    if (version != RAM_SECTION_VERSION) {
        return stream_error_at(errp, at, "section START", "RAM section version %u, "
                       "only %d is supported", version, RAM_SECTION_VERSION);
    }
    if (lv->ram_section_id >= 0 && lv->ram_section_id != id) {
        return stream_error_at(errp, at, "section START", "a second RAM section "
                       "(id %u, first was %" PRId64 ")", id,
                       lv->ram_section_id);
    }
    lv->ram_section_id = id;
    return true;
}

static bool loadvm_ram_body(LoadVMState *lv, uint32_t id, GError **errp)
{
    if (!ram_load_section(&lv->ram, lv->f, errp)) {
        return false;
    }
    if (lv->hooks.ram_progress) {
        lv->hooks.ram_progress(lv->hooks.opaque);
    }
    return loadvm_footer(lv, id, errp);
}

static bool loadvm_records(LoadVMState *lv, bool allow_devices, GError **errp)
{
    QEMUFile *f = lv->f;

    for (;;) {
        uint64_t at = qemu_file_tell(f);
        const uint8_t *peek = qemu_peek(f, 1);
        uint8_t type;
        uint32_t id;

        if (!peek) {
            if (qemu_file_propagate_error(f, errp)) {
                stream_error_at(errp, at, "stream", "ended before EOF");
            }
            return false;
        }
        type = peek[0];
        if (type == QEMU_VM_SECTION_FULL) {
            if (!allow_devices) {
                return stream_error_at(errp, at, "section FULL", "device section "
                               "where only live sections may appear");
            }
            lv->devices = device_state_read_stream_tail(f, lv->vmdesc_memo,
                                                        errp);
            return lv->devices != NULL;
        }
        qemu_get_byte(f);
        switch (type) {
        case QEMU_VM_SECTION_START:
            id = qemu_get_be32(f);
            if (!loadvm_section_start(lv, id, at, errp) ||
                !loadvm_ram_body(lv, id, errp)) {
                return false;
            }
            break;

        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
            id = qemu_get_be32(f);
            if (!qemu_file_propagate_error(f, errp)) {
                return false;
            }
            if (lv->ram_section_id < 0 || id != lv->ram_section_id) {
                return stream_error_at(errp, at, "section PART/END", "unknown "
                               "section id %u", id);
            }
            if (!loadvm_ram_body(lv, id, errp)) {
                return false;
            }
            break;

        case QEMU_VM_COMMAND:
            if (!loadvm_command(lv, at, errp)) {
                return false;
            }
            break;

        case QEMU_VM_EOF:
            return true;

        default:
            return stream_error_at(errp, at, "stream", "unknown section type 0x%02x",
                           type);
        }
    }
}

/* The VMDESCRIPTION after an EOF that had no device sections before it. */
static bool loadvm_vmdescription(LoadVMState *lv, GError **errp)
{
    QEMUFile *f = lv->f;
    uint64_t at = qemu_file_tell(f);
    const uint8_t *p = qemu_peek(f, 1);
    uint32_t len;

    if (!p || p[0] != QEMU_VM_VMDESCRIPTION) {
        return true;    /* optional, as in QEMU */
    }
    qemu_get_byte(f);
    len = qemu_get_be32(f);
    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    if (len > VMDESC_MAX_BYTES) {
        return stream_error_at(errp, at, "VMDESCRIPTION", "%u bytes", len);
    }
    p = qemu_get_ptr(f, len);
    if (!p) {
        qemu_file_propagate_error(f, errp);
        return false;
    }
    lv->vmdesc_json = g_strndup((const char *)p, len);
    return true;
}

bool qemu_loadvm_state(LoadVMState *lv, GError **errp)
{
    QEMUFile *f = lv->f;
    uint32_t magic = qemu_get_be32(f);
    uint32_t version = qemu_get_be32(f);

    if (!qemu_file_propagate_error(f, errp)) {
        return false;
    }
    if (magic != QEMU_VM_FILE_MAGIC) {
        return stream_error_at(errp, 0, "header", "magic 0x%08x is not QEVM", magic);
    }
    if (version != QEMU_VM_FILE_VERSION) {
        return stream_error_at(errp, 4, "header", "stream version %u, only %u is "
                       "supported", version, QEMU_VM_FILE_VERSION);
    }
    if (qemu_get_byte(f) != QEMU_VM_CONFIGURATION) {
        if (qemu_file_propagate_error(f, errp)) {
            stream_error_at(errp, 8, "configuration", "section missing");
        }
        return false;
    }
    if (!loadvm_configuration(lv, errp) ||
        !loadvm_records(lv, true, errp)) {
        return false;
    }
    if (!lv->devices && !loadvm_vmdescription(lv, errp)) {
        return false;
    }
    return true;
}

bool qemu_loadvm_state_main(LoadVMState *lv, GError **errp)
{
    return loadvm_records(lv, false, errp);
}
