/*
 * qmp-client.h: a small synchronous QMP client for driving a stock QEMU
 * (failover, colo-primary): over QEMU's QMP socket, or over a transport
 * of someone else's (libvirt's monitor pass-through, QmpTransport).
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

/*
 * A transport that carries one command at a time to QEMU's monitor and
 * brings back its reply, whole: @exec gets the request (a JSON object
 * text) and the descriptors to pass with it, and returns the reply text
 * or NULL with @errp set.  @peer_pid tells QEMU's pid (or -1).  @free
 * drops @opaque with the client.
 */
typedef struct QmpTransport {
    char *(*exec)(void *opaque, const char *request, const int *fds,
                  unsigned nfds, GError **errp);
    int (*peer_pid)(void *opaque);
    void (*free)(void *opaque);
} QmpTransport;

QmpClient *qmp_client_new_transport(const QmpTransport *t, void *opaque);

/* Runs @command with @args (a JSON object text or NULL); returns the
 * "return" member, or NULL with the QMP error in @errp.  Events that
 * arrive meanwhile are counted by name (qmp_client_event_count).  Any
 * thread may call it: one command runs at a time. */
JsonNode *qmp_client_cmd(QmpClient *c, const char *command,
                         const char *args_json, GError **errp);
/* Runs @command for its effect only: whether it succeeded. */
/* The same with descriptors passed along (getfd, add-fd): only over a
 * transport, or over a socket once qmp_client_set_fd_passing() said its
 * QEMU may not see our paths (libvirt's), so descriptors are what it
 * gets (qmp_client_passes_fds). */
JsonNode *qmp_client_cmd_fds(QmpClient *c, const char *command,
                             const char *args_json, const int *fds,
                             unsigned nfds, GError **errp);
bool qmp_client_passes_fds(const QmpClient *c);
void qmp_client_set_fd_passing(QmpClient *c);
bool qmp_client_try(QmpClient *c, const char *command, const char *args_json);
guint qmp_client_event_count(QmpClient *c, const char *event);
/* QEMU's pid: the process on the other end of the socket (SO_PEERCRED)
 * or what the transport says; -1 if unknown. */
int qmp_client_peer_pid(QmpClient *c);

#endif
