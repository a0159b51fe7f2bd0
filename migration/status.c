/*
 * status.c: QEMU's names for the states of include/migration/status.h.
 */
#include "qemu/osdep.h"

#include "migration/status.h"

static const char *const status_names[] = {
    [MIGRATION_STATUS_NONE] = "none",
    [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_ACTIVE] = "active",
    [MIGRATION_STATUS_COLO] = "colo",
    [MIGRATION_STATUS_COMPLETED] = "completed",
    [MIGRATION_STATUS_FAILED] = "failed",
    [MIGRATION_STATUS_CANCELLED] = "cancelled",
};

static const char *const colo_mode_names[] = {
    [COLO_MODE_NONE] = "none",
    [COLO_MODE_PRIMARY] = "primary",
    [COLO_MODE_SECONDARY] = "secondary",
};

static const char *const colo_reason_names[] = {
    [COLO_EXIT_REASON_NONE] = "none",
    [COLO_EXIT_REASON_REQUEST] = "request",
    [COLO_EXIT_REASON_ERROR] = "error",
    [COLO_EXIT_REASON_PROCESSING] = "processing",
};

const char *colo_mode_name(COLOMode m)
{
    return colo_mode_names[m];
}

const char *colo_exit_reason_name(COLOExitReason r)
{
    return colo_reason_names[r];
}

const char *migration_status_name(MigrationStatus s)
{
    return status_names[s];
}
