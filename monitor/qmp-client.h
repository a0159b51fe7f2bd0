/*
 * qmp-client.h: a small synchronous QMP client (for driving a stock QEMU:
 * failover today, the COLO primary agent later).
 *
 * Threads: any; commands are serialised.
 */
#ifndef MONITOR_QMP_CLIENT_H
#define MONITOR_QMP_CLIENT_H

#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

typedef struct QmpClient QmpClient;

/* Connects to @path (retrying until @timeout_ms), reads the greeting and
 * negotiates capabilities. */
QmpClient *qmp_client_connect(const char *path, int timeout_ms,
                              GError **errp);
void qmp_client_free(QmpClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QmpClient, qmp_client_free)

/* Runs @command with @args (a JSON object text or NULL); returns the
 * "return" member, or NULL with the QMP error in @errp.  Events that
 * arrive meanwhile are counted by name (qmp_client_event_count).  Any
 * thread may call it: one command runs at a time. */
JsonNode *qmp_client_cmd(QmpClient *c, const char *command,
                         const char *args_json, GError **errp);
/* Runs @command for its effect only: whether it succeeded. */
bool qmp_client_try(QmpClient *c, const char *command, const char *args_json);
guint qmp_client_event_count(QmpClient *c, const char *event);
/* The process on the other end of the socket (SO_PEERCRED), or -1. */
int qmp_client_peer_pid(QmpClient *c);

#endif
