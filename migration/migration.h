/*
 * migration.h: one incoming migration session: its state machine,
 * options, statistics, and the thread that reads the stream.
 *
 * Threads: the main thread creates the session, changes options, starts
 * it and queries it; the migration thread reads the stream and owns the
 * RAM list and loader state until it is joined.  Everything both of them
 * touch sits behind @lock.  State changes and events reach the outside
 * world only through MigrationNotifier, called on the migration thread:
 * migration/ never knows who listens (the monitor, or main() with --once).
 */
#ifndef MIGRATION_MIGRATION_H
#define MIGRATION_MIGRATION_H

#include "qemu/osdep.h"

#include "block/blockdev.h"
#include "exec/ram_addr.h"
#include "migration/channel.h"
#include "migration/colo-journal.h"
#include "migration/device-state.h"
#include "migration/options.h"
#include "migration/ram.h"
#include "migration/savevm.h"
#include "migration/status.h"

typedef struct MigrationNotifier {
    /* An event with QMP-shaped data (a{sv} GVariant, or NULL). */
    void (*event)(void *opaque, const char *name, GVariant *data);
    /* The migration thread has finished its work; join it from the main
     * thread (migration_incoming_join). */
    void (*thread_done)(void *opaque);
    /* COLO has ended (also announced as the COLO_EXIT event); on the
     * migration thread.  Optional. */
    void (*colo_exit)(void *opaque, COLOExitReason reason);
    void *opaque;
} MigrationNotifier;

/* A snapshot for query-colo-status (plus our own x- figures). */
typedef struct ColoStatusInfo {
    COLOMode mode;
    COLOMode last_mode;
    COLOExitReason reason;
    uint64_t checkpoints;
    int64_t last_commit_us;
    int64_t last_total_us;
    uint64_t last_ram_pages;
    uint64_t last_device_bytes;
    uint64_t cache_reserved;
    bool in_checkpoint;
    uint64_t last_flushed_pages;
    int64_t last_journal_us;
    int64_t last_flush_us;
    uint64_t last_disk_pages;
    int64_t last_disk_us;
    /* The RAM folder held a committed checkpoint at start. */
    bool recovered;
    uint64_t recovered_checkpoint;
    bool recovered_replayed;        /* from its journal */
    uint64_t recovered_pages;
} ColoStatusInfo;

/* A snapshot for query-migrate. */
typedef struct MigrationInfo {
    MigrationStatus status;
    char *error_desc;
    RAMLoadStats ram;
    uint64_t transferred;
    uint64_t total;
    int64_t total_time_ms;
    double mbps;
    double pages_per_second;
    char *socket_host;
    int socket_port;
    bool socket_ipv6;
    char *socket_path;
    uint64_t refused;           /* connections that did not earn the port */
    char *last_refusal;
} MigrationInfo;

void migration_info_clear(MigrationInfo *info);

typedef struct MigrationIncomingState MigrationIncomingState;

MigrationIncomingState *migration_incoming_new(const char *ram_dir,
                                               const MigrationNotifier *n);
void migration_incoming_free(MigrationIncomingState *mis);

MigrationOptions *migration_incoming_options(MigrationIncomingState *mis);
/* True while options may change (no migration started yet). */
bool migration_incoming_options_mutable(MigrationIncomingState *mis,
                                        GError **errp);

/* Opens @uri and starts the migration thread. */
bool migration_incoming_start(MigrationIncomingState *mis, const char *uri,
                              GError **errp);
void migration_incoming_query(MigrationIncomingState *mis,
                              MigrationInfo *info);
MigrationStatus migration_incoming_status(MigrationIncomingState *mis);
/* Joins a finished migration thread; no-op if none. */
void migration_incoming_join(MigrationIncomingState *mis);
/* Stops a running migration (quit) and joins the thread. */
void migration_incoming_cancel(MigrationIncomingState *mis);

const char *migration_incoming_ram_dir(MigrationIncomingState *mis);

void migration_incoming_colo_status(MigrationIncomingState *mis,
                                    ColoStatusInfo *info);
/* Before any migration: brings the RAM folder to the one checkpoint it
 * holds (replaying a journal an earlier colo-secondary left) and keeps it
 * as what x-colo-lost-heartbeat resumes if no migration starts. */
bool migration_incoming_recover(MigrationIncomingState *mis, GError **errp);
const ColoRecovery *migration_incoming_recovery(MigrationIncomingState *mis);

/* The disks replicated with RAM (before any migration starts). */
void migration_incoming_set_disks(MigrationIncomingState *mis,
                                  BlockDevices *disks);
/* A disk was written directly (no checkpoint running): a record the
 * folder held at start no longer describes the images. */
void migration_incoming_disk_written(MigrationIncomingState *mis);

/* x-colo-lost-heartbeat: take over from the primary (or, before any
 * migration, from what migration_incoming_recover() found). */
bool migration_incoming_colo_failover(MigrationIncomingState *mis,
                                      GError **errp);
bool migration_incoming_failover_requested(MigrationIncomingState *mis);

/* Run state as query-status reports it. */
const char *migration_incoming_runstate(MigrationIncomingState *mis);

#endif /* MIGRATION_MIGRATION_H */
