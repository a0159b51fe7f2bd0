/*
 * options.c: names, defaults and consistency rules of the migration
 * capabilities and parameters (QEMU's QAPI spelling).
 */
#include "qemu/osdep.h"

#include "migration/options.h"

static const char *const capability_names[MIGRATION_CAPABILITY__MAX] = {
    [MIGRATION_CAPABILITY_XBZRLE] = "xbzrle",
    [MIGRATION_CAPABILITY_EVENTS] = "events",
    [MIGRATION_CAPABILITY_X_COLO] = "x-colo",
    [MIGRATION_CAPABILITY_RETURN_PATH] = "return-path",
    [MIGRATION_CAPABILITY_X_IGNORE_SHARED] = "x-ignore-shared",
    [MIGRATION_CAPABILITY_COMPRESS] = "compress",
    [MIGRATION_CAPABILITY_POSTCOPY_RAM] = "postcopy-ram",
    [MIGRATION_CAPABILITY_MULTIFD] = "multifd",
    [MIGRATION_CAPABILITY_VALIDATE_UUID] = "validate-uuid",
    [MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER] = "pause-before-switchover",
    [MIGRATION_CAPABILITY_AUTO_CONVERGE] = "auto-converge",
    [MIGRATION_CAPABILITY_MAPPED_RAM] = "mapped-ram",
    [MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER] = "x-colo-output-trigger",
};

static const struct {
    const char *name;
    uint64_t def;
    uint64_t max;
    bool primary_only;
} parameter_info[MIGRATION_PARAMETER__MAX] = {
    [MIGRATION_PARAMETER_X_CHECKPOINT_DELAY] = { "x-checkpoint-delay", 20000,
                                                 UINT32_MAX },
    [MIGRATION_PARAMETER_MAX_BANDWIDTH] = { "max-bandwidth", 134217728,
                                            INT64_MAX },
    [MIGRATION_PARAMETER_DOWNTIME_LIMIT] = { "downtime-limit", 300, 2000000 },
    [MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE] = { "xbzrle-cache-size",
                                                64 * 1024 * 1024, INT64_MAX },
    [MIGRATION_PARAMETER_MULTIFD_CHANNELS] = { "multifd-channels", 2, 255 },
    [MIGRATION_PARAMETER_X_HEARTBEAT_TIMEOUT] = { "x-heartbeat-timeout", 0,
                                                  3600 * 1000 },
    /* defaults: docs/network.rst, "Output-triggered checkpoints" */
    [MIGRATION_PARAMETER_X_CHECKPOINT_MIN_GAP] = { "x-checkpoint-min-gap", 0,
                                                   60 * 1000, true },
    [MIGRATION_PARAMETER_X_CHECKPOINT_COALESCE] = { "x-checkpoint-coalesce",
                                                    500, 1000 * 1000, true },
    [MIGRATION_PARAMETER_X_CHECKPOINT_ACK_DELAY] = {
        "x-checkpoint-ack-delay", 5000, 60 * 1000 * 1000, true },
    /* docs/colo-primary.rst, "A bad link" */
    [MIGRATION_PARAMETER_X_LINK_STALL_LIMIT] = { "x-link-stall-limit", 60000,
                                                 3600 * 1000, true },
};

void migration_options_init(MigrationOptions *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < MIGRATION_PARAMETER__MAX; i++) {
        o->params[i] = parameter_info[i].def;
    }
}

const char *migration_capability_name(MigrationCapability c)
{
    return capability_names[c];
}

bool migration_capability_primary_only(MigrationCapability c)
{
    return c == MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER;
}

int migration_capability_lookup(const char *name)
{
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (strcmp(capability_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

bool migration_capabilities_check(const bool caps[MIGRATION_CAPABILITY__MAX],
                                  GError **errp)
{
    static const MigrationCapability unsupported[] = {
        MIGRATION_CAPABILITY_POSTCOPY_RAM,
        MIGRATION_CAPABILITY_MULTIFD,
        MIGRATION_CAPABILITY_MAPPED_RAM,
    };

    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        if (caps[i] && migration_capability_primary_only(i)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "capability %s is "
                        "colo-primary's", capability_names[i]);
            return false;
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(unsupported); i++) {
        if (caps[unsupported[i]]) {
            g_set_error(errp, COLO_ERROR, ENOTSUP, "capability %s is not "
                        "supported by colo-standby",
                        capability_names[unsupported[i]]);
            return false;
        }
    }
    if (caps[MIGRATION_CAPABILITY_X_COLO] &&
        caps[MIGRATION_CAPABILITY_RETURN_PATH]) {
        g_set_error(errp, COLO_ERROR, EINVAL, "x-colo and return-path cannot "
                    "be combined: COLO replies are not return-path "
                    "messages");
        return false;
    }
    return true;
}

const char *migration_parameter_name(MigrationParameter p)
{
    return parameter_info[p].name;
}

bool migration_parameter_primary_only(MigrationParameter p)
{
    return parameter_info[p].primary_only;
}

int migration_parameter_lookup(const char *name)
{
    for (int i = 0; i < MIGRATION_PARAMETER__MAX; i++) {
        if (strcmp(parameter_info[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

bool migration_parameter_check(MigrationParameter p, uint64_t v,
                               GError **errp)
{
    if (v > parameter_info[p].max) {
        g_set_error(errp, COLO_ERROR, ERANGE, "Parameter '%s' expects an "
                    "integer from 0 to %" PRIu64, parameter_info[p].name,
                    parameter_info[p].max);
        return false;
    }
    return true;
}

static const char *const str_parameter_names[MIGRATION_STR_PARAMETER__MAX] = {
    [MIGRATION_PARAMETER_TLS_CREDS] = "tls-creds",
    [MIGRATION_PARAMETER_TLS_HOSTNAME] = "tls-hostname",
    [MIGRATION_PARAMETER_TLS_AUTHZ] = "tls-authz",
};

const char *migration_str_parameter_name(MigrationStrParameter p)
{
    return str_parameter_names[p];
}

int migration_str_parameter_lookup(const char *name)
{
    for (int i = 0; i < MIGRATION_STR_PARAMETER__MAX; i++) {
        if (strcmp(str_parameter_names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

bool migration_str_parameter_set(MigrationOptions *o, MigrationStrParameter p,
                                 const char *v, GError **errp)
{
    v = v ? v : "";
    if (strlen(v) >= MIGRATION_STR_PARAMETER_LEN) {
        g_set_error(errp, COLO_ERROR, ERANGE, "Parameter '%s' is longer than "
                    "%d bytes", str_parameter_names[p],
                    MIGRATION_STR_PARAMETER_LEN - 1);
        return false;
    }
    for (const char *c = v; *c; c++) {
        if (!g_ascii_isalnum(*c) && !strchr("-._:", *c)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' may only "
                        "hold letters, digits and '-._:'",
                        str_parameter_names[p]);
            return false;
        }
    }
    g_strlcpy(o->strs[p], v, MIGRATION_STR_PARAMETER_LEN);
    return true;
}
