/*
 * status.h: the states QEMU reports for a migration and for COLO
 * (query-migrate's "status", query-colo-status' "mode" and "reason"),
 * shared by colo-secondary's session and colo-primary's agent.
 */
#ifndef MIGRATION_STATUS_H
#define MIGRATION_STATUS_H

typedef enum MigrationStatus {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_COLO,
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
    MIGRATION_STATUS_CANCELLED,
} MigrationStatus;

typedef enum COLOMode {
    COLO_MODE_NONE,
    COLO_MODE_PRIMARY,
    COLO_MODE_SECONDARY,
} COLOMode;

typedef enum COLOExitReason {
    COLO_EXIT_REASON_NONE,
    COLO_EXIT_REASON_REQUEST,
    COLO_EXIT_REASON_ERROR,
    COLO_EXIT_REASON_PROCESSING,
} COLOExitReason;

/* QEMU's names: "active", "colo", "secondary", "request", ... */
const char *migration_status_name(MigrationStatus s);
const char *colo_mode_name(COLOMode m);
const char *colo_exit_reason_name(COLOExitReason r);

#endif /* MIGRATION_STATUS_H */
