/*
 * session.h: one COLO session of colo-primary, on its own thread: the
 * initial synchronisation, then a checkpoint every x-checkpoint-delay ms
 * until it is stopped or something fails (session.c).
 *
 * A Session owns its state and its lock: status, COLO mode, figures, the
 * connection to the secondary, the held output.  It is built from a
 * SessionConfig, which lends it the VM's handles (VmControl, DirtyScan,
 * the RAM mapping) for its life; whoever started it asks session_query()
 * for a snapshot and hears events through the SessionNotifier, as the
 * secondary's migration reports through MigrationNotifier: session.c
 * never knows who listens.
 *
 * Threads: session_start/free on the owner's thread; stop, checkpoint
 * now, parameters and queries from any thread.
 */
#ifndef COLO_PRIMARY_SESSION_H
#define COLO_PRIMARY_SESSION_H

#include "qemu/osdep.h"

#include "migration/options.h"
#include "migration/status.h"
#include "tools/colo-primary/dirty-scan.h"
#include "tools/colo-primary/dirty-tracking.h"
#include "tools/colo-primary/disk-mirror.h"
#include "tools/colo-primary/net-buffer.h"
#include "tools/colo-primary/vm-control.h"

typedef struct Session Session;

/* What started a checkpoint. */
typedef enum CheckpointTrigger {
    CHECKPOINT_TRIGGER_TIMER,   /* x-checkpoint-delay since the last one */
    CHECKPOINT_TRIGGER_OUTPUT,  /* the guest's output was held */
    CHECKPOINT_TRIGGER_REQUEST, /* a client, new parameters, a full
                                   output buffer */
    CHECKPOINT_TRIGGER__MAX
} CheckpointTrigger;

const char *checkpoint_trigger_name(CheckpointTrigger t);

/* One checkpoint, as query-migrate and the bench report it. */
typedef struct CheckpointFigures {
    uint64_t number;            /* 0: the initial synchronisation */
    CheckpointTrigger trigger;
    int64_t start_at;           /* monotonic us: the stop began */
    int64_t loaded_at;          /* monotonic us: LOADED was read */
    int64_t released_at;        /* monotonic us: its output went out */
    int64_t output_wait_us;     /* the first output held -> start_at */
    int64_t pause_us;           /* stop -> cont, of which: */
    int64_t stop_us;            /*   QEMU's stop */
    int64_t capture_us;         /*   device state (the scan runs along) */
    int64_t scan_wait_us;       /*   the scan after the capture */
    int64_t cont_us;            /*   QEMU's cont */
    int64_t verify_us;          /* the checker's snapshot, not counted in
                                   pause_us */
    int64_t total_us;           /* stop -> the secondary's LOADED */
    int64_t send_us;            /* cont -> the last byte sent */
    int64_t received_us;        /*   -> RECEIVED (the rest of the bytes
                                   on their way, read) */
    int64_t commit_us;          /*   -> LOADED (loaded, committed) */
    int64_t release_us;         /*   -> the held output let out */
    uint64_t dirty_pages;       /* of main RAM */
    uint64_t scanned_pages;     /* digested to find them (all without
                                   a tracker) */
    uint64_t wire_bytes;        /* RAM records and device state */
    uint64_t device_bytes;
    uint64_t xbzrle_pages;
} CheckpointFigures;

typedef struct SessionNotifier {
    /* An event with QMP-shaped data (a{sv} GVariant, floating, or NULL);
     * called on the session thread. */
    void (*event)(void *opaque, const char *name, GVariant *data);
    /* The session thread has finished its work; called on it, last.  The
     * owner then calls session_free() from its own thread. */
    void (*ended)(void *opaque);
    void *opaque;
} SessionNotifier;

/* Tests: an oracle outside the session (secondary-check.h) that notes
 * the VM's state while it is stopped, outside the pause figures, and
 * compares the secondary's copy once a checkpoint has committed. */
typedef struct SessionChecker {
    bool (*stopped)(void *opaque, DiskMirror *disks, GError **errp);
    bool (*committed)(void *opaque, DiskMirror *disks, const char *what,
                      GError **errp);
    void *opaque;
} SessionChecker;

/* What a client may change while the session runs. */
typedef struct SessionParams {
    int64_t checkpoint_delay_ms;    /* the longest gap, output or not */
    bool output_trigger;            /* held output starts a checkpoint */
    int64_t min_gap_ms;             /* ... no sooner after the last
                                       one's start */
    int64_t coalesce_us;            /* ... nor after its first packet */
    int64_t ack_delay_us;           /* ... or after its first pure TCP
                                       ack, when that is all there is */
} SessionParams;

typedef struct SessionConfig {
    /* The VM; lent for the session's life. */
    VmControl *vm;
    DirtyScan *scan;
    const uint8_t *ram;         /* the shared RAM file, read only */
    uint64_t ram_size;
    const char *ram_file;
    const char *ram_block;      /* main RAM's block name */
    const char *const *vm_args; /* the options that name QEMU (--qmp PATH
                                   or --libvirt-domain NAME ...): for the
                                   release guard and messages */
    const char *work;           /* captures, the device-state socket */
    DirtyTrackingMode tracking_mode;
    int qemu_pid;               /* 0: the QMP socket's peer */

    /* The secondary (copied). */
    const char *uri;
    const char *tls_creds;      /* "" or NULL: no TLS */
    const char *tls_hostname;
    char **disks;               /* --disk NODE=URI, or NULL (lent) */
    int link_stall_limit_ms;    /* x-link-stall-limit (0: none) */

    /* How to protect. */
    bool xbzrle;
    uint64_t xbzrle_cache_size;
    bool events;                /* the events capability */
    int max_checkpoints;        /* 0: until stopped */
    bool no_net_buffer;
    bool keep_held_output;      /* --held-output keep */
    const char *guard_exe;      /* for the network release guard; NULL:
                                   "colo-primary" */
    bool quiet;
    SessionParams params;
    /* What the session before this one left, for query-colo-status. */
    COLOMode last_mode;
    COLOExitReason last_exit_reason;

    SessionChecker checker;     /* tests; .stopped NULL: none */
    SessionNotifier notify;
} SessionConfig;

/* The pauses the median and p99 are taken over: the last ones, so that
 * a session protecting a VM for months keeps a fixed 128 KiB for them
 * (about half an hour at the 100 ms timer). */
#define SESSION_PAUSE_WINDOW 16384

/* A snapshot for query-migrate and query-colo-status. */
typedef struct SessionInfo {
    MigrationStatus status;
    COLOMode mode, last_mode;
    COLOExitReason exit_reason;
    char *error_desc;           /* owned; NULL if none */
    int64_t total_time_ms;
    uint64_t total_bytes;
    uint64_t checkpoints;
    uint64_t xbzrle_pages;
    CheckpointFigures last;
    uint64_t pauses;            /* checkpoints with a pause figure */
    uint64_t by_trigger[CHECKPOINT_TRIGGER__MAX];
    /* of the last SESSION_PAUSE_WINDOW pauses */
    int64_t pause_median_us, pause_p99_us;
    int64_t colo_time_us;       /* since the first checkpoint began */
    bool net_buffered;
    char *net_netdevs;          /* owned */
    NetBufferStats net;
    const char *tracking;       /* "uffd-wp", "soft-dirty", "digest" */
    char *tracking_why;         /* owned; what was refused, or NULL */
    char *tracking_fallback;    /* owned; why given up mid-session */
    /* Sums over the checkpoints after the first sync, for a client to
     * take differences of: where a held reply's time goes. */
    int64_t sum_output_wait_us, sum_pause_us, sum_send_us, sum_received_us,
            sum_commit_us, sum_release_us;
} SessionInfo;

/* Starts a session on its own thread. */
Session *session_start(const SessionConfig *cfg);
/* Ends the session after the checkpoint in progress, as @as
 * (COMPLETED: failover or quit; CANCELLED: migrate_cancel). */
void session_stop(Session *s, MigrationStatus as);
/* A checkpoint now rather than after the delay. */
void session_checkpoint_now(Session *s);
/* New parameters; they apply from the next wait on. */
void session_set_params(Session *s, const SessionParams *p);
/* After the notifier's ended: the thread is joined.  NULL is a no-op. */
void session_join(Session *s);
/* The status colo-primary exits with because of this session (after
 * session_join): PRIMARY_EXIT_OK unless it failed by itself. */
int session_exit_status(Session *s);
/* Joins if needed and frees. */
void session_free(Session *s);

void session_query(Session *s, SessionInfo *info);
void session_info_clear(SessionInfo *info);

#endif /* COLO_PRIMARY_SESSION_H */
