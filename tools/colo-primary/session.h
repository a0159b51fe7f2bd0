/*
 * session.h: one COLO session of colo-primary, on its own thread: the
 * initial synchronisation, then a checkpoint every x-checkpoint-delay ms
 * until it is stopped or something fails (session.c).
 *
 * A session reports through its agent's SessionNotifier, as the
 * secondary's migration reports through MigrationNotifier: session.c
 * never knows who listens.
 */
#ifndef COLO_PRIMARY_SESSION_H
#define COLO_PRIMARY_SESSION_H

#include "qemu/osdep.h"

#include "migration/status.h"

typedef struct Agent Agent;

typedef struct SessionNotifier {
    /* An event with QMP-shaped data (a{sv} GVariant, floating, or NULL);
     * called on the session thread. */
    void (*event)(void *opaque, const char *name, GVariant *data);
    /* The session thread has finished its work; called on it, last. */
    void (*ended)(void *opaque);
    void *opaque;
} SessionNotifier;

/* Main thread: starts a session to @uri (status must not be active). */
bool agent_session_start(Agent *a, const char *uri, GError **errp);
/* Any thread: ends the session after the checkpoint in progress, as
 * @as (COMPLETED: failover/quit; CANCELLED: migrate_cancel). */
void agent_session_stop(Agent *a, MigrationStatus as);
/* Any thread: checkpoint now rather than after the delay. */
void agent_checkpoint_now(Agent *a);
bool agent_session_active(Agent *a);
/* Median and 99th percentile of this session's pauses; false if none. */
bool agent_pause_figures(Agent *a, int64_t *median, int64_t *p99);

#endif /* COLO_PRIMARY_SESSION_H */
