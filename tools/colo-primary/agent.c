/*
 * agent.c: colo-primary's agent (see agent.h): made from the options,
 * it owns the VM's RAM mapping, the QMP connection to QEMU, the dirty
 * scan and our monitor; it hears from its session through the
 * SessionNotifier, passes events on to QMP clients, answers queries with
 * a snapshot, and ends when there is nothing left to protect.
 *
 * Owner: the main thread (GMainLoop); the session thread only calls the
 * notifier, which hands over to the main loop.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "tools/colo-primary/agent.h"
#include "qemu/scratch-dir.h"

/* --- what the session tells us ---------------------------------------- */

static void agent_on_event(void *opaque, const char *name, GVariant *data)
{
    Agent *a = opaque;

    if (a->mon) {
        monitor_emit_event(a->mon, name, data);
    } else if (data) {
        g_variant_unref(g_variant_ref_sink(data));
    }
}

/* Whether a libvirt domain lost its QEMU because someone meant it
 * (virsh shutdown, destroy, save): then protection just ends, and says
 * so.  libvirt tells every end of a domain, but after it has reaped QEMU
 * (a destroy took 1.3 s here): we wait for it up to 10 s. */
static bool agent_domain_ended(Agent *a)
{
    g_autofree char *end = NULL;
    bool orderly = false;

    if (!a->domain) {
        return false;
    }
    for (int i = 0; i < 500 && !end; i++) {
        /* the event comes through our main context */
        while (g_main_context_iteration(NULL, FALSE)) {
        }
        end = libvirt_domain_end(a->domain, &orderly);
        if (!end) {
            g_usleep(20 * 1000);
        }
    }
    if (end) {
        fprintf(stderr, "colo-primary: libvirt domain %s %s: protection "
                "ended%s\n", a->cfg.libvirt_domain, end, orderly ? "" :
                " (the standby may take over)");
    }
    return end && orderly;
}

/* Main thread: joins the session; what it failed of decides how the
 * agent exits. */
static void agent_session_done(Agent *a)
{
    int status;

    if (!a->session_running) {
        return;
    }
    session_join(a->session);
    a->session_running = false;
    status = session_exit_status(a->session);
    if (status == PRIMARY_EXIT_QEMU && agent_domain_ended(a)) {
        status = PRIMARY_EXIT_OK;
    }
    /* with a monitor, a failed session is reported there and the agent
     * waits for the next; a failed QEMU ends it either way */
    if (status != PRIMARY_EXIT_OK &&
        (!a->mon || status == PRIMARY_EXIT_QEMU)) {
        a->exit_status = status;
    }
}

static gboolean agent_session_ended(gpointer opaque)
{
    Agent *a = opaque;

    agent_session_done(a);
    /* Nothing to protect once QEMU failed; without a monitor nobody can
     * start another session. */
    if (a->exit_status == PRIMARY_EXIT_QEMU || !a->mon ||
        a->quit_when_idle) {
        g_main_loop_quit(a->loop);
    }
    return G_SOURCE_REMOVE;
}

static void agent_on_session_end(void *opaque)
{
    g_idle_add(agent_session_ended, opaque);
}

/* --- the main loop's own work ----------------------------------------- */

/* With a monitor and no session: notice a QEMU that went away. */
static gboolean watch_qemu(gpointer opaque)
{
    Agent *a = opaque;
    g_autoptr(GError) err = NULL;
    g_autofree char *st = NULL;

    if (agent_session_active(a)) {
        return G_SOURCE_CONTINUE;
    }
    st = vm_control_run_state(a->vm, &err);
    if (!st) {
        fprintf(stderr, "colo-primary: QEMU's QMP: %s\n", err->message);
        a->exit_status = agent_domain_ended(a) ? PRIMARY_EXIT_OK :
                         PRIMARY_EXIT_QEMU;
        g_main_loop_quit(a->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

void agent_quit(Agent *a, MigrationStatus session_as)
{
    a->quit_when_idle = true;
    if (agent_session_active(a)) {
        agent_session_stop(a, session_as);
    } else {
        g_main_loop_quit(a->loop);
    }
}

static gboolean on_signal(gpointer opaque)
{
    agent_quit(opaque, MIGRATION_STATUS_CANCELLED);
    return G_SOURCE_CONTINUE;
}

/* --- sessions ------------------------------------------------------------- */

/* Tests' oracle, as the session's checker. */
static bool check_stopped(void *opaque, DiskMirror *disks, GError **errp)
{
    return secondary_check_note(opaque, disks, errp);
}

static bool check_committed(void *opaque, DiskMirror *disks,
                            const char *what, GError **errp)
{
    return secondary_check_compare(opaque, disks, what, errp);
}

/* What the options say a session's parameters are. */
static void agent_session_params(Agent *a, SessionParams *p)
{
    *p = (SessionParams) {
        .checkpoint_delay_ms =
            a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_DELAY],
        .output_trigger =
            a->opts.caps[MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER],
        .min_gap_ms =
            a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_MIN_GAP],
        .coalesce_us =
            a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_COALESCE],
        .ack_delay_us =
            a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_ACK_DELAY],
    };
}

bool agent_session_start(Agent *a, const char *uri, GError **errp)
{
    SessionConfig sc = {
        .vm = a->vm,
        .scan = a->scan,
        .ram = a->ram,
        .ram_size = a->ram_size,
        .ram_file = a->cfg.ram_file,
        .ram_block = a->cfg.ram_block,
        .vm_args = (const char *const *)a->vm_args,
        .work = a->work,
        .tracking_mode = a->tracking_mode,
        .qemu_pid = a->cfg.qemu_pid,
        .uri = uri,
        .tls_creds = a->opts.strs[MIGRATION_PARAMETER_TLS_CREDS],
        .tls_hostname = a->opts.strs[MIGRATION_PARAMETER_TLS_HOSTNAME],
        .disks = a->cfg.disks,
        .link_stall_limit_ms =
            a->opts.params[MIGRATION_PARAMETER_X_LINK_STALL_LIMIT],
        .xbzrle = a->opts.caps[MIGRATION_CAPABILITY_XBZRLE],
        .xbzrle_cache_size =
            a->opts.params[MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE],
        .events = a->opts.caps[MIGRATION_CAPABILITY_EVENTS],
        .max_checkpoints = a->cfg.max_checkpoints,
        .no_net_buffer = a->cfg.no_net_buffer,
        .keep_held_output = a->cfg.keep_held_output,
        .guard_exe = a->cfg.guard_exe,
        .quiet = a->cfg.quiet,
        .notify = {
            .event = agent_on_event,
            .ended = agent_on_session_end,
            .opaque = a,
        },
    };

    if (a->session_running) {
        g_set_error(errp, COLO_ERROR, EBUSY, "There's a migration process "
                    "in progress");
        return false;
    }
    agent_session_params(a, &sc.params);
    if (a->check) {
        sc.checker = (SessionChecker) {
            .stopped = check_stopped,
            .committed = check_committed,
            .opaque = a->check,
        };
    }
    if (a->session) {
        SessionInfo prev;

        /* query-colo-status keeps telling how the last one ended */
        session_query(a->session, &prev);
        sc.last_mode = prev.last_mode;
        sc.last_exit_reason = prev.exit_reason;
        session_info_clear(&prev);
        session_free(a->session);
        a->session = NULL;
    }
    a->session = session_start(&sc);
    a->session_running = true;
    return true;
}

void agent_session_stop(Agent *a, MigrationStatus as)
{
    if (a->session_running) {
        session_stop(a->session, as);
    }
}

bool agent_session_active(Agent *a)
{
    return a->session_running;
}

void agent_params_changed(Agent *a, bool now)
{
    SessionParams p;

    agent_session_params(a, &p);
    if (a->session_running) {
        session_set_params(a->session, &p);
        if (now) {
            session_checkpoint_now(a->session);
        }
    }
}

/* --- life ----------------------------------------------------------------- */

static bool map_ram(Agent *a, GError **errp)
{
    struct stat st;
    void *p;
    int fd = open(a->cfg.ram_file, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
        (st.st_size % TARGET_PAGE_SIZE)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM file %s: %s", a->cfg.ram_file,
                    fd < 0 ? g_strerror(errno) : "not a usable size");
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        g_set_error(errp, COLO_ERROR, errno, "mapping %s: %s", a->cfg.ram_file,
                    g_strerror(errno));
        return false;
    }
    a->ram = p;
    a->ram_size = st.st_size;
    return true;
}

void agent_config_clear(AgentConfig *cfg)
{
    g_clear_pointer(&cfg->vm_qmp_path, g_free);
    g_clear_pointer(&cfg->libvirt_domain, g_free);
    g_clear_pointer(&cfg->libvirt_uri, g_free);
    g_clear_pointer(&cfg->ram_file, g_free);
    g_clear_pointer(&cfg->ram_block, g_free);
    g_clear_pointer(&cfg->monitor, g_free);
    g_clear_pointer(&cfg->connect, g_free);
    g_clear_pointer(&cfg->verify_dir, g_free);
    g_clear_pointer(&cfg->disks, g_strfreev);
    g_clear_pointer(&cfg->verify_disks, g_strfreev);
    g_clear_pointer(&cfg->guard_exe, g_free);
    g_clear_pointer(&cfg->tls_creds, g_free);
    g_clear_pointer(&cfg->tls_hostname, g_free);
    g_clear_pointer(&cfg->dirty_tracking, g_free);
}

QmpClient *agent_open_qemu(const AgentConfig *cfg, LibvirtDomain **domain,
                           GError **errp)
{
    g_autoptr(LibvirtDomain) d = NULL;
    QmpClient *qmp;

    if (!cfg->libvirt_domain) {
        return qmp_client_connect(cfg->vm_qmp_path, 10000, errp);
    }
    d = libvirt_domain_open(cfg->libvirt_uri, cfg->libvirt_domain, errp);
    qmp = d ? libvirt_domain_qmp(d, errp) : NULL;
    if (qmp && domain) {
        *domain = g_steal_pointer(&d);
    }
    return qmp;
}

/* QEMU's QMP, the RAM file and the options that name them again. */
static bool agent_connect_qemu(Agent *a, GError **errp)
{
    QmpClient *qmp;

    if (!a->cfg.libvirt_domain) {
        a->vm_args = g_new0(char *, 3);
        a->vm_args[0] = g_strdup("--qmp");
        a->vm_args[1] = g_strdup(a->cfg.vm_qmp_path);
        a->vm = vm_control_new(a->cfg.vm_qmp_path, a->work, errp);
        return a->vm != NULL;
    }
    a->vm_args = g_new0(char *, 5);
    a->vm_args[0] = g_strdup("--libvirt-domain");
    a->vm_args[1] = g_strdup(a->cfg.libvirt_domain);
    if (a->cfg.libvirt_uri) {
        a->vm_args[2] = g_strdup("--libvirt-uri");
        a->vm_args[3] = g_strdup(a->cfg.libvirt_uri);
    }
    qmp = agent_open_qemu(&a->cfg, &a->domain, errp);
    if (!qmp) {
        return false;
    }
    if (!a->cfg.quiet) {
        printf("QEMU's QMP: %s%s\n", libvirt_domain_monitor(a->domain) ?
               "the second monitor of the domain's XML, " :
               "libvirt's pass-through (a second monitor in the domain's "
               "XML makes the pause shorter: docs/libvirt.rst)",
               libvirt_domain_monitor(a->domain) ?
               libvirt_domain_monitor(a->domain) : "");
    }
    a->vm = vm_control_new_shared(qmp, errp);
    if (!a->vm) {
        return false;
    }
    g_free(a->cfg.ram_file);
    a->cfg.ram_file = libvirt_domain_ram_file(a->domain, qmp,
                                              a->cfg.ram_block, errp);
    return a->cfg.ram_file != NULL;
}

Agent *agent_new(const AgentConfig *cfg, int *exit_status, GError **errp)
{
    Agent *a = g_new0(Agent, 1);
    /* One CPU is left to QEMU, which saves the device state while the
     * scan runs (bench/pause_linux.py: on 2 CPUs, 2 workers made the
     * capture 50% slower and the pause 1.3 ms longer at the median). */
    int threads = cfg->scan_threads ? cfg->scan_threads
                                    : MAX(1, (int)g_get_num_processors() - 1);
    const char *base;

    a->cfg = *cfg;
    a->cfg.vm_qmp_path = g_strdup(cfg->vm_qmp_path);
    a->cfg.libvirt_domain = g_strdup(cfg->libvirt_domain);
    a->cfg.libvirt_uri = g_strdup(cfg->libvirt_uri);
    a->cfg.ram_file = g_strdup(cfg->ram_file);
    a->cfg.ram_block = g_strdup(cfg->ram_block ? cfg->ram_block : "pc.ram");
    a->cfg.monitor = g_strdup(cfg->monitor);
    a->cfg.connect = g_strdup(cfg->connect);
    a->cfg.verify_dir = g_strdup(cfg->verify_dir);
    a->cfg.disks = g_strdupv(cfg->disks);
    a->cfg.verify_disks = g_strdupv(cfg->verify_disks);
    a->cfg.guard_exe = g_strdup(cfg->guard_exe);
    a->cfg.dirty_tracking = g_strdup(cfg->dirty_tracking);
    a->cfg.tls_creds = NULL;        /* kept in opts, settable over QMP */
    a->cfg.tls_hostname = NULL;
    migration_options_init(&a->opts);
    a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_DELAY] =
        cfg->checkpoint_delay_ms;
    a->opts.caps[MIGRATION_CAPABILITY_XBZRLE] = cfg->xbzrle;
    a->opts.caps[MIGRATION_CAPABILITY_X_COLO] = cfg->connect != NULL;
    a->opts.caps[MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER] =
        !cfg->no_output_trigger && !cfg->no_net_buffer;
    if (cfg->checkpoint_min_gap_ms >= 0) {
        a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_MIN_GAP] =
            cfg->checkpoint_min_gap_ms;
    }
    if (cfg->link_stall_limit_ms >= 0) {
        a->opts.params[MIGRATION_PARAMETER_X_LINK_STALL_LIMIT] =
            cfg->link_stall_limit_ms;
    }
    if (cfg->checkpoint_ack_delay_us >= 0) {
        a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_ACK_DELAY] =
            cfg->checkpoint_ack_delay_us;
    }
    if (cfg->checkpoint_coalesce_us >= 0) {
        a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_COALESCE] =
            cfg->checkpoint_coalesce_us;
    }
    a->loop = g_main_loop_new(NULL, FALSE);

    *exit_status = PRIMARY_EXIT_USAGE;
    if (!migration_str_parameter_set(&a->opts, MIGRATION_PARAMETER_TLS_CREDS,
                                     cfg->tls_creds, errp) ||
        !migration_str_parameter_set(&a->opts,
                                     MIGRATION_PARAMETER_TLS_HOSTNAME,
                                     cfg->tls_hostname, errp)) {
        goto fail;
    }
    /* COLO_PRIMARY_RUNDIR: where the work folder goes (tests put it in
     * their own folder); what a killed colo-primary left there goes
     * first */
    base = g_getenv("COLO_PRIMARY_RUNDIR") ? g_getenv("COLO_PRIMARY_RUNDIR")
                                           : "/dev/shm";
    scratch_dir_reap(base, "colo-primary", NULL);
    a->work = scratch_dir_create(base, "colo-primary", errp);
    if (!a->work) {
        g_prefix_error(errp, "the work folder: ");
        goto fail;
    }
    *exit_status = PRIMARY_EXIT_QEMU;
    if (!agent_connect_qemu(a, errp) || !map_ram(a, errp)) {
        goto fail;
    }
    a->scan = dirty_scan_new(a->ram, a->ram_size, threads, errp);
    if (!a->scan) {
        goto fail;
    }
    a->check = secondary_check_new(a->ram, a->ram_size, a->cfg.ram_block,
                                   cfg->verify_dir, cfg->verify_disks);
    if (!dirty_tracking_parse(cfg->dirty_tracking ? cfg->dirty_tracking :
                              "auto", &a->tracking_mode)) {
        *exit_status = PRIMARY_EXIT_USAGE;
        g_set_error(errp, COLO_ERROR, EINVAL, "--dirty-tracking %s: expected "
                    "auto, digest, uffd-wp or soft-dirty", cfg->dirty_tracking);
        goto fail;
    }
    if (cfg->monitor) {
        MonitorContext mctx = {
            .name = "colo-primary",
            .opaque = a,
            .commands = agent_qmp_commands,
            .n_commands = agent_qmp_n_commands,
        };

        *exit_status = PRIMARY_EXIT_USAGE;
        a->mon = monitor_new(cfg->monitor, &mctx, errp);
        if (!a->mon) {
            goto fail;
        }
        g_timeout_add_seconds(1, watch_qemu, a);
    }
    *exit_status = PRIMARY_EXIT_OK;
    return a;

fail:
    agent_free(a);
    return NULL;
}

static void print_summary(Agent *a)
{
    SessionInfo info;

    if (a->cfg.quiet || !a->session) {
        return;
    }
    session_query(a->session, &info);
    if (info.pauses) {
        printf("done: %" PRIu64 " checkpoints, pause median %.2f ms, p99 "
               "%.2f ms, %.2f checkpoints/s\n", info.pauses,
               info.pause_median_us / 1000.0, info.pause_p99_us / 1000.0,
               info.pauses * 1e6 / MAX(info.colo_time_us, 1));
    }
    session_info_clear(&info);
}

int agent_run(Agent *a, const char *connect, GError **errp)
{
    guint sigint = g_unix_signal_add(SIGINT, on_signal, a);
    guint sigterm = g_unix_signal_add(SIGTERM, on_signal, a);

    if (connect && !agent_session_start(a, connect, errp)) {
        a->exit_status = PRIMARY_EXIT_USAGE;
    } else {
        g_main_loop_run(a->loop);
        agent_session_stop(a, MIGRATION_STATUS_CANCELLED);
        agent_session_done(a);
        print_summary(a);
    }
    g_source_remove(sigint);
    g_source_remove(sigterm);
    return a->exit_status;
}

void agent_free(Agent *a)
{
    if (!a) {
        return;
    }
    monitor_free(a->mon);
    agent_session_stop(a, MIGRATION_STATUS_CANCELLED);
    session_free(a->session);
    secondary_check_free(a->check);
    dirty_scan_free(a->scan);
    vm_control_free(a->vm);
    libvirt_domain_free(a->domain);
    g_strfreev(a->vm_args);
    if (a->ram) {
        munmap((void *)a->ram, a->ram_size);
    }
    if (a->work) {
        scratch_dir_remove(a->work);
    }
    g_free(a->work);
    g_main_loop_unref(a->loop);
    agent_config_clear(&a->cfg);
    g_free(a);
}

/* --- queries -------------------------------------------------------------- */

void agent_query(Agent *a, AgentInfo *info)
{
    memset(info, 0, sizeof(*info));
    if (a->session) {
        session_query(a->session, &info->session);
    }
    info->ram_size = a->ram_size;
    info->xbzrle = a->opts.caps[MIGRATION_CAPABILITY_XBZRLE];
    info->xbzrle_cache_size =
        a->opts.params[MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE];
}

void agent_info_clear(AgentInfo *info)
{
    session_info_clear(&info->session);
}
