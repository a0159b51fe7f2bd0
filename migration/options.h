/*
 * options.h: migration capabilities and parameters, by QEMU's names.
 *
 * Owner: the main thread changes them (QMP, command line) only while no
 * incoming migration runs; the migration thread reads a copy taken at
 * start.
 */
#ifndef MIGRATION_OPTIONS_H
#define MIGRATION_OPTIONS_H

#include "qemu/osdep.h"

typedef enum MigrationCapability {
    MIGRATION_CAPABILITY_XBZRLE,
    MIGRATION_CAPABILITY_EVENTS,
    MIGRATION_CAPABILITY_X_COLO,
    MIGRATION_CAPABILITY_RETURN_PATH,
    MIGRATION_CAPABILITY_X_IGNORE_SHARED,
    MIGRATION_CAPABILITY_COMPRESS,
    MIGRATION_CAPABILITY_POSTCOPY_RAM,
    MIGRATION_CAPABILITY_MULTIFD,
    MIGRATION_CAPABILITY_VALIDATE_UUID,
    MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER,
    MIGRATION_CAPABILITY_AUTO_CONVERGE,
    MIGRATION_CAPABILITY_MAPPED_RAM,
    /* colo-primary's: a checkpoint as soon as the guest has output held
     * (x-checkpoint-min-gap, x-checkpoint-coalesce), not only on the
     * timer */
    MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER,
    MIGRATION_CAPABILITY__MAX
} MigrationCapability;

/* Parameters we keep (all unsigned integers in QEMU's QAPI). */
typedef enum MigrationParameter {
    MIGRATION_PARAMETER_X_CHECKPOINT_DELAY,
    MIGRATION_PARAMETER_MAX_BANDWIDTH,
    MIGRATION_PARAMETER_DOWNTIME_LIMIT,
    MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE,
    MIGRATION_PARAMETER_MULTIFD_CHANNELS,
    /* ours: ms after the primary's stream fails before an automatic
     * failover; 0 leaves it to x-colo-lost-heartbeat, as QEMU does */
    MIGRATION_PARAMETER_X_HEARTBEAT_TIMEOUT,
    /* colo-primary's, with the output trigger: ms from one checkpoint's
     * start before output may start the next, and us the output waits
     * for more to ride the same checkpoint */
    MIGRATION_PARAMETER_X_CHECKPOINT_MIN_GAP,
    MIGRATION_PARAMETER_X_CHECKPOINT_COALESCE,
    /* ... and us a pure TCP ack waits when it is all the output */
    MIGRATION_PARAMETER_X_CHECKPOINT_ACK_DELAY,
    /* colo-primary's: ms the link to the secondary may make no progress
     * (nothing sent, no reply due arriving) before protection ends; 0:
     * no limit of ours (TCP's) */
    MIGRATION_PARAMETER_X_LINK_STALL_LIMIT,
    MIGRATION_PARAMETER__MAX
} MigrationParameter;

/* QEMU's string parameters: TLS.  "" when unset. */
typedef enum MigrationStrParameter {
    MIGRATION_PARAMETER_TLS_CREDS,      /* a tls-creds-x509 object's id */
    MIGRATION_PARAMETER_TLS_HOSTNAME,   /* client: the server's name */
    MIGRATION_PARAMETER_TLS_AUTHZ,      /* server: an authz object's id */
    MIGRATION_STR_PARAMETER__MAX
} MigrationStrParameter;

#define MIGRATION_STR_PARAMETER_LEN 256

typedef struct MigrationOptions {
    bool caps[MIGRATION_CAPABILITY__MAX];
    uint64_t params[MIGRATION_PARAMETER__MAX];
    /* fixed size: the options are copied by value */
    char strs[MIGRATION_STR_PARAMETER__MAX][MIGRATION_STR_PARAMETER_LEN];
} MigrationOptions;

void migration_options_init(MigrationOptions *o);
const char *migration_capability_name(MigrationCapability c);
/* Only colo-primary has it: colo-secondary neither shows nor takes it. */
bool migration_capability_primary_only(MigrationCapability c);
/* -1 if unknown */
int migration_capability_lookup(const char *name);
/* Refuses combinations that cannot work (e.g. x-colo with return-path,
 * capabilities this program does not implement being switched on). */
bool migration_capabilities_check(const bool caps[MIGRATION_CAPABILITY__MAX],
                                  GError **errp);

const char *migration_parameter_name(MigrationParameter p);
bool migration_parameter_primary_only(MigrationParameter p);
int migration_parameter_lookup(const char *name);
bool migration_parameter_check(MigrationParameter p, uint64_t v,
                               GError **errp);

const char *migration_str_parameter_name(MigrationStrParameter p);
int migration_str_parameter_lookup(const char *name);
/* Sets @p to @v (NULL: unset), refusing what cannot be an object id or
 * a host name. */
bool migration_str_parameter_set(MigrationOptions *o, MigrationStrParameter p,
                                 const char *v, GError **errp);

#endif /* MIGRATION_OPTIONS_H */
