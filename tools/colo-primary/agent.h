/*
 * agent.h: colo-primary's state: what it was started with, the options a
 * client sets over its QMP socket (QEMU's names), and the COLO session
 * that checkpoints the VM into a secondary.
 *
 * Threads: the main thread runs the QMP server and starts sessions, and
 * is the only one to touch an Agent.  A session runs on its own thread,
 * uses the VM's QMP connection and the dirty scan the agent lends it,
 * and keeps its own state behind its own lock (session.h).
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
#include "tools/colo-primary/libvirt-domain.h"
#include "tools/colo-primary/primary-error.h"
#include "tools/colo-primary/secondary-check.h"
#include "tools/colo-primary/session.h"
#include "tools/colo-primary/vm-control.h"

/* What colo-primary was started with: main.c's options parse straight
 * into it (so strings are owned, freed by agent_config_clear). */
typedef struct AgentConfig {
    char *vm_qmp_path;          /* QEMU's QMP socket, or: */
    char *libvirt_domain;       /* a libvirt domain's name */
    char *libvirt_uri;          /* its libvirt (NULL: the default) */
    char *ram_file;             /* the VM's shared RAM file (found through
                                   libvirt for a domain) */
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
    gboolean no_output_trigger; /* checkpoints on the timer only */
    int checkpoint_min_gap_ms;  /* -1: the default */
    int checkpoint_coalesce_us; /* -1: the default */
    int checkpoint_ack_delay_us; /* -1: the default */
    int link_stall_limit_ms;    /* -1: the default */
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

/* QEMU's QMP as @cfg names it: its socket, or a libvirt domain (checked,
 * *@domain set, if @domain is not NULL). */
QmpClient *agent_open_qemu(const AgentConfig *cfg, LibvirtDomain **domain,
                           GError **errp);

typedef struct Agent {
    /* Fixed after start. */
    AgentConfig cfg;            /* a copy, ram_block filled in */
    char *work;                 /* captures, the device-state socket */
    const uint8_t *ram;         /* the shared RAM file, read only */
    uint64_t ram_size;
    LibvirtDomain *domain;      /* --libvirt-domain, else NULL */
    char **vm_args;             /* the options that name QEMU again */
    VmControl *vm;              /* lent to the session while one runs */
    DirtyScan *scan;            /* lent to the session while one runs */
    DirtyTrackingMode tracking_mode;
    SecondaryCheck *check;      /* tests' oracle, or NULL */
    Monitor *mon;               /* NULL without --monitor */
    GMainLoop *loop;

    /* The main thread's, no lock: the session keeps its own state. */
    MigrationOptions opts;      /* what clients set */
    Session *session;           /* the running one, or the last one */
    bool session_running;       /* until joined */
    bool quit_when_idle;
    int exit_status;
} Agent;

/* The agent's state for query-migrate and query-colo-status. */
typedef struct AgentInfo {
    SessionInfo session;        /* all zero (status none) before the first */
    uint64_t ram_size;
    bool xbzrle;
    uint64_t xbzrle_cache_size;
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

/* Main thread: a session to @uri with the options set (EBUSY while one
 * runs). */
bool agent_session_start(Agent *a, const char *uri, GError **errp);
/* Main thread: ends the running session after its checkpoint in
 * progress, as @as (COMPLETED: failover or quit; CANCELLED). */
void agent_session_stop(Agent *a, MigrationStatus as);
bool agent_session_active(Agent *a);
/* Main thread: the running session takes the options' parameters; with
 * @now it checkpoints at once. */
void agent_params_changed(Agent *a, bool now);

/* Main thread: the agent's state for the QMP queries. */
void agent_query(Agent *a, AgentInfo *info);
void agent_info_clear(AgentInfo *info);

/* The QMP commands (agent-qmp.c). */
extern const QmpCommand agent_qmp_commands[];
extern const size_t agent_qmp_n_commands;

#endif /* COLO_PRIMARY_AGENT_H */
