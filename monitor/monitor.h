/*
 * monitor.h: the QMP server (QEMU's JSON protocol on a UNIX socket).
 *
 * Threads: everything here runs on the main thread's GMainContext.
 * Events raised on other threads are handed over with
 * monitor_emit_event(), which is thread safe.
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

#include "migration/options.h"
#include "migration/status.h"

/* The session the commands of colo-secondary operate on (opaque here;
 * migration/migration.h for those that use it). */
typedef struct MigrationIncomingState MigrationIncomingState;
typedef struct BlockDevices BlockDevices;
typedef struct NbdServer NbdServer;

typedef struct Monitor Monitor;
typedef struct MonitorContext MonitorContext;

typedef JsonNode *(*QmpCommandFn)(const MonitorContext *ctx,
                                  JsonObject *args, GError **errp);
typedef struct QmpCommand {
    const char *name;
    QmpCommandFn fn;
} QmpCommand;

/* What the commands operate on, owned by main(). */
struct MonitorContext {
    MigrationIncomingState *mis;
    BlockDevices *disks;            /* -blockdev nodes (may be NULL) */
    NbdServer *nbd;                 /* their NBD server (may be NULL) */
    const char *name;               /* -name, or NULL */
    bool sandboxed;                 /* refuse commands with effects beyond
                                       the process (the QMP fuzzer) */
    void (*quit)(void *opaque);     /* the quit command */
    /* Adds owner-specific members to query-colo-status (failover). */
    void (*colo_status)(void *opaque, JsonObject *o);
    void *opaque;
    /* The command table; NULL: colo-secondary's (monitor/qmp-cmds.c). */
    const QmpCommand *commands;
    size_t n_commands;
};

/* @spec: "unix:PATH[,server=on][,wait=off]" as QEMU's -qmp takes it. */
Monitor *monitor_new(const char *spec, const MonitorContext *ctx,
                     GError **errp);
void monitor_free(Monitor *mon);

/* Thread safe: queues an event for every negotiated client.  @data is an
 * a{sv} GVariant (floating references are sunk) or NULL. */
void monitor_emit_event(Monitor *mon, const char *name, GVariant *data);

/* One request line to its reply (NULL for a blank line); @negotiated is
 * the client's qmp_capabilities state.  The server's core, exposed for
 * the fuzzer. */
JsonNode *monitor_handle_request(const MonitorContext *ctx, bool *negotiated,
                                 const char *line);

/* The command @name of @ctx's table, or NULL. */
QmpCommandFn qmp_find_command(const MonitorContext *ctx, const char *name);
/* query-commands of @ctx's table. */
JsonNode *qmp_list_commands(const MonitorContext *ctx);

/* The block commands (monitor/qmp-cmds-block.c). */
JsonNode *qmp_nbd_server_start(const MonitorContext *ctx, JsonObject *args,
                               GError **errp);
JsonNode *qmp_nbd_server_add(const MonitorContext *ctx, JsonObject *args,
                             GError **errp);
JsonNode *qmp_nbd_server_remove(const MonitorContext *ctx, JsonObject *args,
                                GError **errp);
JsonNode *qmp_nbd_server_stop(const MonitorContext *ctx, JsonObject *args,
                              GError **errp);
JsonNode *qmp_query_block(const MonitorContext *ctx, JsonObject *args,
                          GError **errp);
JsonNode *qmp_query_named_block_nodes(const MonitorContext *ctx,
                                      JsonObject *args, GError **errp);
JsonNode *qmp_query_block_exports(const MonitorContext *ctx,
                                  JsonObject *args, GError **errp);
JsonNode *qmp_x_query_nbd_server(const MonitorContext *ctx, JsonObject *args,
                                 GError **errp);

/* Helpers for command implementations: argument readers that set QEMU's
 * error texts, and a node that takes @o. */
bool qmp_arg_uint(JsonObject *args, const char *name, uint64_t *out,
                  GError **errp);
const char *qmp_arg_str(JsonObject *args, const char *name, GError **errp);
/* migrate's and migrate-incoming's "uri" ("channels" is refused). */
const char *qmp_arg_uri(JsonObject *args, GError **errp);
JsonNode *qmp_node_take_object(JsonObject *o);
/* query-colo-status' members that QEMU has (mode, last-mode, reason),
 * plus our x-checkpoints; callers add their own x- members. */
JsonObject *qmp_colo_status_object(COLOMode mode, COLOMode last_mode,
                                   COLOExitReason reason,
                                   uint64_t checkpoints);
/* Applies migrate-set-parameters' arguments onto @o (numbers and the
 * tls-* strings; null or "" unsets a string); @set gets a bit per
 * parameter named: 1 << MigrationParameter, or 1 << (
 * MIGRATION_PARAMETER__MAX + MigrationStrParameter). */
bool qmp_arg_parameters(JsonObject *args, MigrationOptions *o,
                        uint64_t *set, GError **errp);
/* query-migrate-parameters' members for @o. */
void qmp_parameters_to_object(const MigrationOptions *o, JsonObject *out);
/* Applies migrate-set-capabilities' "capabilities" list onto @caps. */
bool qmp_arg_capabilities(JsonObject *args,
                          bool caps[MIGRATION_CAPABILITY__MAX],
                          GError **errp);

#endif /* MONITOR_MONITOR_H */
