/*
 * agent.h: colo-primary's state: what it was started with, the options a
 * client sets over its QMP socket (QEMU's names), and the COLO session
 * that checkpoints the VM into a secondary.
 *
 * Threads: the main thread runs the QMP server and starts sessions; a
 * session runs on its own thread and owns the VM's QMP connection, the
 * dirty scan and the secondary's socket while it runs.  Everything both
 * touch sits behind @lock.
 */
#ifndef COLO_PRIMARY_AGENT_H
#define COLO_PRIMARY_AGENT_H

#include "qemu/osdep.h"

#include "migration/options.h"
#include "migration/status.h"
#include "migration/wire.h"
#include "monitor/monitor.h"
#include "tools/colo-primary/dirty-scan.h"
#include "tools/colo-primary/dirty-tracking.h"
#include "tools/colo-primary/net-buffer.h"
#include "tools/colo-primary/session.h"
#include "tools/colo-primary/vm-control.h"

/* Exit statuses (documented in docs/colo-primary.rst). */
enum {
    AGENT_EXIT_OK = 0,
    AGENT_EXIT_USAGE = 1,
    AGENT_EXIT_SECONDARY = 2,   /* the secondary failed or is unreachable */
    AGENT_EXIT_QEMU = 3,        /* QEMU failed, is gone, or does not fit */
    AGENT_EXIT_VERIFY = 4,      /* --verify-secondary found a difference */
};

/* Who failed: the code of an AGENT_ERROR. */
typedef enum AgentErrorKind {
    AGENT_ERROR_QEMU,
    AGENT_ERROR_SECONDARY,
    AGENT_ERROR_VERIFY,
} AgentErrorKind;

#define AGENT_ERROR agent_error_quark()
GQuark agent_error_quark(void);
/* Re-labels *@errp (if set) as @kind. */
void agent_error_tag(GError **errp, AgentErrorKind kind);

/* One checkpoint, as query-migrate and the bench report it. */
typedef struct CheckpointFigures {
    uint64_t number;            /* 0: the initial synchronisation */
    int64_t pause_us;           /* stop -> cont, of which: */
    int64_t stop_us;            /*   QEMU's stop */
    int64_t capture_us;         /*   device state (the scan runs along) */
    int64_t scan_wait_us;       /*   the scan after the capture */
    int64_t cont_us;            /*   QEMU's cont */
    int64_t verify_us;          /* --verify-secondary's snapshot sum, not
                                   counted in pause_us */
    int64_t total_us;           /* stop -> the secondary's LOADED */
    uint64_t dirty_pages;       /* of main RAM */
    uint64_t scanned_pages;     /* digested to find them (all without
                                   a tracker) */
    uint64_t wire_bytes;        /* RAM records and device state */
    uint64_t device_bytes;
    uint64_t xbzrle_pages;
} CheckpointFigures;

/* What colo-primary was started with: main.c's options parse straight
 * into it (so strings are owned, freed by agent_config_clear). */
typedef struct AgentConfig {
    char *vm_qmp_path;          /* QEMU's QMP socket */
    char *ram_file;             /* the VM's shared RAM file */
    char *ram_block;            /* its block name (pc.ram) */
    char *monitor;              /* our QMP socket spec, or NULL */
    char *connect;              /* protect at once into this, or NULL */
    char *verify_dir;           /* tests: the secondary's RAM folder */
    char **disks;               /* --disk NODE=URI */
    char **verify_disks;        /* tests: --verify-disk NODE=PATH */
    int checkpoint_delay_ms;
    gboolean xbzrle;
    int max_checkpoints;        /* 0: until stopped */
    int scan_threads;           /* 0: one per CPU */
    gboolean no_net_buffer;     /* let the VM's output go out at once */
    gboolean keep_held_output;  /* --held-output keep: what never committed
                                   stays held in QEMU when the session
                                   ends (a cluster manager releases it) */
    char *dirty_tracking;       /* auto, digest, uffd-wp, soft-dirty */
    int qemu_pid;               /* 0: the QMP socket's peer */
    char *tls_creds;            /* --tls-creds: a --object's id */
    char *tls_hostname;
    char *guard_exe;            /* colo-primary itself, for the network
                                   release guard */
    gboolean quiet;
} AgentConfig;

void agent_config_clear(AgentConfig *cfg);

struct Agent {
    /* Fixed after start. */
    AgentConfig cfg;            /* a copy, ram_block filled in */
    char *work;                 /* captures, the device-state socket */
    const uint8_t *ram;         /* the shared RAM file, read only */
    uint64_t ram_size;
    VmControl *vm;              /* the session's while one runs */
    DirtyScan *scan;            /* the session's while one runs */
    DirtyTrackingMode tracking_mode;
    Monitor *mon;               /* NULL without --monitor */
    GMainLoop *loop;

    GMutex lock;
    GCond wake;                 /* checkpoint_now, stop_requested */
    MigrationOptions opts;
    MigrationStatus status;
    COLOMode mode, last_mode;
    COLOExitReason exit_reason;
    char *error_desc;
    char *uri;
    int64_t start_us;
    int64_t end_us;
    int64_t colo_start_us;      /* when the first checkpoint began */
    bool checkpoint_now;
    bool stop_requested;
    MigrationStatus stop_as;    /* COMPLETED (failover, quit) or CANCELLED */
    struct ColoPeer *peer;      /* while one is connected */
    CheckpointFigures last;
    uint64_t checkpoints;
    uint64_t total_bytes;
    uint64_t xbzrle_pages;
    GArray *pauses_us;          /* int64_t, of this session */
    bool net_buffered;          /* this session holds the VM's output */
    char *net_netdevs;          /* which netdevs, for the queries */
    NetBufferStats net;         /* as of the last checkpoint */
    char *tracking_why;         /* what was refused, or NULL */
    const char *tracking;       /* the scan's method, as of the last pause */
    char *tracking_fallback;    /* why the tracker was given up, or NULL */
    GThread *session;
    SessionNotifier notify;     /* how the session reaches agent.c */
    bool quit_when_idle;
    int exit_status;
};

/* A snapshot of the agent for query-migrate and query-colo-status. */
typedef struct AgentInfo {
    MigrationStatus status;
    COLOMode mode, last_mode;
    COLOExitReason exit_reason;
    char *error_desc;           /* owned; NULL if none */
    int64_t total_time_ms;
    uint64_t ram_size;
    uint64_t total_bytes;
    uint64_t checkpoints;
    bool xbzrle;
    uint64_t xbzrle_cache_size;
    uint64_t xbzrle_pages;
    CheckpointFigures last;
    bool have_pauses;
    int64_t pause_median_us, pause_p99_us;
    bool net_buffered;
    char *net_netdevs;          /* owned */
    NetBufferStats net;
    const char *tracking;       /* "uffd-wp", "soft-dirty", "digest" */
    char *tracking_why;         /* owned; what was refused, or NULL */
    char *tracking_fallback;    /* owned; why given up mid-session */
} AgentInfo;

/* Main thread.  Maps the RAM file, connects to QEMU, prepares the dirty
 * scan and the monitor.  NULL on failure, with *@exit_status set to the
 * status main() must exit with. */
Agent *agent_new(const AgentConfig *cfg, int *exit_status, GError **errp);
/* Main thread: protects the VM (at once with cfg->connect, else when a
 * client says so) until there is nothing left to do or a signal comes;
 * returns the exit status. */
int agent_run(Agent *a, const char *connect, GError **errp);
void agent_free(Agent *a);

/* Main thread: ends the session (as @session_as) if one runs, then the
 * agent. */
void agent_quit(Agent *a, MigrationStatus session_as);

/* Any thread: the agent's state for the QMP queries. */
void agent_query(Agent *a, AgentInfo *info);
void agent_info_clear(AgentInfo *info);

/* The QMP commands (agent-qmp.c). */
extern const QmpCommand agent_qmp_commands[];
extern const size_t agent_qmp_n_commands;

#endif /* COLO_PRIMARY_AGENT_H */
