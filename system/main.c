/*
 * main.c: colo-secondary, the receiving side of a QEMU migration and COLO
 * session.  Its options are system/cmdline.c's table; main() parses them,
 * builds the daemon (secondary_build), runs it and frees it.
 *
 * Threads: main runs the GMainLoop (QMP, signals); the incoming migration
 * has its own thread (migration/migration.c).
 */
#include "qemu/osdep.h"

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "block/blockdev.h"
#include "block/nbd.h"
#include "crypto/tls-creds.h"
#include "migration/migration.h"
#include "monitor/monitor.h"
#include "qemu/option-file.h"
#include "qemu/scratch-dir.h"
#include "system/cmdline.h"
#include "system/failover.h"

typedef struct SecondaryMain {
    GMainLoop *loop;
    MigrationIncomingState *mis;
    Monitor *mon;
    BlockDevices *disks;
    NbdServer *nbd;
    bool once;
    bool quitting;
    int exit_status;
    bool ram_dir_busy;              /* another process holds the folder */
    char *own_ram_dir;              /* the RAM folder, if we made it */

    /* failover into a stock QEMU (system/failover.c) */
    bool failover_enabled;
    FailoverConfig failover;
    FailoverJob *failover_job;      /* NULL until one starts */
} SecondaryMain;

static void main_quit(void *opaque)
{
    SecondaryMain *m = opaque;

    m->quitting = true;
    g_main_loop_quit(m->loop);
}

static gboolean on_signal(gpointer opaque)
{
    main_quit(opaque);
    return G_SOURCE_CONTINUE;
}

/* The failover job is over (main context). */
static void on_failover_done(void *opaque, const FailoverResult *res,
                             const GError *err)
{
    SecondaryMain *m = opaque;
    GVariantDict d;

    g_variant_dict_init(&d, NULL);
    if (res && res->libvirt_domain) {
        fprintf(stderr, "colo-secondary: failover: the VM runs as libvirt "
                "domain %s, resumed in %.1f ms\n", res->libvirt_domain,
                res->resume_us / 1000.0);
        g_variant_dict_insert(&d, "libvirt-domain", "s", res->libvirt_domain);
    } else if (res) {
        fprintf(stderr, "colo-secondary: failover: the VM %s in QEMU pid "
                "%d (QMP %s), resumed in %.1f ms\n",
                res->paused ? "waits for cont (-S)" : "runs",
                (int)res->pid, res->qmp_path, res->resume_us / 1000.0);
    }
    if (res) {
        g_variant_dict_insert(&d, "qmp", "s", res->qmp_path);
        g_variant_dict_insert(&d, "pid", "x", (gint64)res->pid);
        g_variant_dict_insert(&d, "resume-us", "x", (gint64)res->resume_us);
        g_variant_dict_insert(&d, "running", "b", !res->paused);
        if (m->mon && !res->paused) {
            monitor_emit_event(m->mon, "RESUME", NULL);
        }
    } else {
        fprintf(stderr, "colo-secondary: %s\n", err->message);
        g_variant_dict_insert(&d, "error", "s", err->message);
    }
    if (m->mon) {
        monitor_emit_event(m->mon, "X_COLO_FAILOVER", g_variant_dict_end(&d));
    } else {
        g_variant_dict_clear(&d);
    }
    if (m->once) {
        main_quit(m);
    }
}

/* After x-colo-lost-heartbeat: resume the VM from the committed state. */
static bool start_failover(SecondaryMain *m)
{
    if (!m->failover_enabled || m->failover_job) {
        return false;
    }
    /* Nobody writes the images any more, and what never committed goes:
     * the failover QEMU gets them as the checkpoint left them. */
    nbd_server_stop(m->nbd);
    block_devices_discard(m->disks);
    m->failover_job = failover_job_start(&m->failover, m->mis,
                                         on_failover_done, m);
    return true;
}

static void on_colo_status(void *opaque, JsonObject *o)
{
    SecondaryMain *m = opaque;
    static const char *const names[] = {
        [FAILOVER_NONE] = "none", [FAILOVER_RUNNING] = "running",
        [FAILOVER_DONE] = "done", [FAILOVER_FAILED] = "failed",
    };
    const FailoverResult *res = failover_job_result(m->failover_job);
    const char *error = failover_job_error(m->failover_job);

    json_object_set_string_member(o, "x-failover",
                                  names[failover_job_state(m->failover_job)]);
    if (res) {
        json_object_set_string_member(o, "x-failover-qmp", res->qmp_path);
        if (res->libvirt_domain) {
            json_object_set_string_member(o, "x-failover-libvirt-domain",
                                          res->libvirt_domain);
        }
        json_object_set_int_member(o, "x-failover-pid", res->pid);
        json_object_set_int_member(o, "x-failover-resume-us",
                                   res->resume_us);
    }
    if (error) {
        json_object_set_string_member(o, "x-failover-error", error);
    }
}

static gboolean auto_failover(gpointer opaque)
{
    SecondaryMain *m = opaque;
    g_autoptr(GError) err = NULL;

    if (!m->quitting && !migration_incoming_failover_requested(m->mis)) {
        fprintf(stderr, "colo-secondary: the primary is gone: failing over "
                "(x-heartbeat-timeout)\n");
        migration_incoming_colo_failover(m->mis, &err);
    }
    return G_SOURCE_REMOVE;
}

/* On the migration thread: losing the primary arms the automatic
 * failover when a heartbeat timeout is set. */
static void on_colo_exit(void *opaque, COLOExitReason reason)
{
    SecondaryMain *m = opaque;
    uint64_t ms = migration_incoming_options(m->mis)->params[
        MIGRATION_PARAMETER_X_HEARTBEAT_TIMEOUT];

    if (ms > 0 && reason == COLO_EXIT_REASON_ERROR) {
        g_timeout_add(ms, auto_failover, m);
    }
}

/* An NBD client wrote into an image while no checkpoint runs. */
static void on_disk_written(void *opaque)
{
    SecondaryMain *m = opaque;

    migration_incoming_disk_written(m->mis);
}

static void on_event(void *opaque, const char *name, GVariant *data)
{
    SecondaryMain *m = opaque;

    if (m->mon) {
        monitor_emit_event(m->mon, name, data);
    }
}

static gboolean on_thread_done_main(gpointer opaque)
{
    SecondaryMain *m = opaque;
    MigrationInfo info;

    migration_incoming_join(m->mis);
    migration_incoming_query(m->mis, &info);
    if (info.status == MIGRATION_STATUS_FAILED) {
        fprintf(stderr, "colo-secondary: %s\n",
                info.error_desc ? info.error_desc : "migration failed");
    }
    /* Only --once reports the migration in the exit status; a daemon that
     * is told to quit exits 0, as QEMU does. */
    if (m->once) {
        m->exit_status = info.status == MIGRATION_STATUS_FAILED ? 1 : 0;
    }
    migration_info_clear(&info);
    if (migration_incoming_failover_requested(m->mis) && !m->quitting &&
        start_failover(m)) {
        return G_SOURCE_REMOVE;     /* --once quits when it is done */
    }
    if (m->once) {
        main_quit(m);
    }
    return G_SOURCE_REMOVE;
}

static void on_thread_done(void *opaque)
{
    /* Always queued: g_main_context_invoke() would run it right here, on
     * the migration thread, whenever the main loop is not running. */
    g_idle_add(on_thread_done_main, opaque);
}

/* -global migration.NAME=VALUE */
static bool apply_global(MigrationOptions *opts, const char *spec,
                         GError **errp)
{
    const char *eq = strchr(spec, '=');
    g_autofree char *name = NULL;
    int idx;

    if (!g_str_has_prefix(spec, "migration.") || !eq) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-global %s: only "
                    "migration.NAME=VALUE is supported", spec);
        return false;
    }
    name = g_strndup(spec + 10, eq - spec - 10);
    idx = migration_capability_lookup(name);
    if (idx >= 0) {
        if (!parse_bool(eq + 1, &opts->caps[idx])) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-global %s: expected "
                        "on or off", spec);
            return false;
        }
        return true;
    }
    idx = migration_str_parameter_lookup(name);
    if (idx >= 0) {
        if (!migration_str_parameter_set(opts, idx, eq + 1, errp)) {
            g_prefix_error(errp, "-global %s: ", spec);
            return false;
        }
        return true;
    }
    idx = migration_parameter_lookup(name);
    if (idx >= 0) {
        uint64_t v;

        if (!g_ascii_string_to_unsigned(eq + 1, 10, 0, UINT64_MAX, &v,
                                        errp) ||
            !migration_parameter_check(idx, v, errp)) {
            g_prefix_error(errp, "-global %s: ", spec);
            return false;
        }
        opts->params[idx] = v;
        return true;
    }
    g_set_error(errp, COLO_ERROR, EINVAL, "-global %s: unknown migration "
                "property '%s'", spec, name);
    return false;
}

/* Says what the RAM folder held when we started (recovery). */
static void report_recovery(SecondaryMain *m, const char *ram_dir)
{
    const ColoRecovery *r = migration_incoming_recovery(m->mis);

    if (r->discarded) {
        fprintf(stderr, "colo-secondary: %s: dropped an unfinished "
                "checkpoint journal\n", ram_dir);
    }
    if (r->record) {
        fprintf(stderr, "colo-secondary: %s holds checkpoint %" PRIu64
                "%s (%" PRIu64 " pages replayed); x-colo-lost-heartbeat "
                "resumes it unless a migration starts\n", ram_dir,
                r->record->number, r->replayed ? ", replayed from its "
                "journal" : "", r->replayed_pages);
    }
}

/* Whether a process holds the RAM folder @path (its colo-secondary, or
 * the QEMU a failover started on its files). */
static bool ram_dir_in_use(const char *path)
{
    g_autoptr(GError) err = NULL;
    int fd = ram_dir_lock(path, &err);

    if (fd >= 0) {
        close(fd);
    }
    return fd < 0;
}

/* The RAM folder, created if needed.  If none was named, a new one of our
 * own under /dev/shm, removed at exit (secondary_free()); those that
 * killed colo-secondaries left go first. */
static bool ram_dir_prepare(SecondaryMain *m, SecondaryOptions *o,
                            GError **errp)
{
    if (!o->ram_dir) {
        scratch_dir_reap("/dev/shm", "colo-secondary", ram_dir_in_use);
        o->ram_dir = scratch_dir_create("/dev/shm", "colo-secondary", errp);
        m->own_ram_dir = g_strdup(o->ram_dir);
        return o->ram_dir != NULL;
    }
    if (g_mkdir_with_parents(o->ram_dir, 0700) == 0) {
        return true;
    }
    g_set_error(errp, COLO_ERROR, errno, "cannot create %s: %s", o->ram_dir,
                g_strerror(errno));
    return false;
}

/* Everything colo-secondary runs with, from its options; false (error
 * set) if it cannot start.  secondary_free() frees what was made. */
static bool secondary_build(SecondaryMain *m, SecondaryOptions *o,
                            GError **errp)
{
    MigrationNotifier notifier = {
        .event = on_event,
        .thread_done = on_thread_done,
        .colo_exit = on_colo_exit,
        .opaque = m,
    };
    MonitorContext mctx;

    m->once = o->once;
    m->failover_enabled = o->failover_enabled;
    if (!ram_dir_prepare(m, o, errp)) {
        return false;
    }
    m->failover.ram_dir_lock = ram_dir_lock(o->ram_dir, errp);
    if (m->failover.ram_dir_lock < 0) {
        m->ram_dir_busy = g_error_matches(*errp, COLO_ERROR, EBUSY);
        g_prefix_error(errp, "-ram-dir: ");
        return false;
    }
    m->disks = block_devices_new(o->ram_dir);
    for (guint i = 0; i < o->blockdevs->len; i++) {
        if (!block_devices_add_spec(m->disks,
                                    g_ptr_array_index(o->blockdevs, i),
                                    errp)) {
            return false;
        }
    }
    m->loop = g_main_loop_new(NULL, FALSE);
    m->mis = migration_incoming_new(o->ram_dir, &notifier);
    if (!migration_incoming_recover(m->mis, errp)) {
        g_prefix_error(errp, "-ram-dir %s: ", o->ram_dir);
        return false;
    }
    report_recovery(m, o->ram_dir);
    for (guint i = 0; i < o->globals->len; i++) {
        if (!apply_global(migration_incoming_options(m->mis),
                          g_ptr_array_index(o->globals, i), errp)) {
            return false;
        }
    }
    block_devices_set_direct_write_hook(m->disks, on_disk_written, m);
    migration_incoming_set_disks(m->mis, m->disks);
    m->nbd = nbd_server_new(m->disks);
    mctx = (MonitorContext) {
        .mis = m->mis, .disks = m->disks, .nbd = m->nbd, .name = o->name,
        .quit = main_quit, .colo_status = on_colo_status, .opaque = m,
    };
    if (o->qmp) {
        m->mon = monitor_new(o->qmp, &mctx, errp);
        if (!m->mon) {
            return false;
        }
    }
    if (strcmp(o->incoming, "defer") != 0 &&
        !migration_incoming_start(m->mis, o->incoming, errp)) {
        g_prefix_error(errp, "-incoming %s: ", o->incoming);
        return false;
    }
    m->failover.args = g_steal_pointer(&o->failover_args);
    m->failover.qemu = g_strdup(o->failover_qemu);
    m->failover.machine = g_strdup(o->failover_machine);
    m->failover.libvirt_xml = g_strdup(o->failover_libvirt_xml);
    m->failover.libvirt_uri = g_strdup(o->failover_libvirt_uri);
    g_unix_signal_add(SIGINT, on_signal, m);
    g_unix_signal_add(SIGTERM, on_signal, m);
    g_unix_signal_add(SIGHUP, on_signal, m);
    return true;
}

/* Runs until quit (QMP, a signal, --once's end); the exit status. */
static int secondary_run(SecondaryMain *m)
{
    g_main_loop_run(m->loop);
    migration_incoming_cancel(m->mis);
    failover_job_join(m->failover_job);
    if (m->quitting && m->once &&
        migration_incoming_status(m->mis) != MIGRATION_STATUS_COMPLETED &&
        m->exit_status == 0) {
        MigrationInfo info;

        migration_incoming_query(m->mis, &info);
        if (info.status != MIGRATION_STATUS_FAILED) {
            fprintf(stderr, "colo-secondary: interrupted before the "
                    "migration completed\n");
        }
        migration_info_clear(&info);
        m->exit_status = 1;
    }
    /* Deliver what the migration thread queued before the monitor goes. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    return m->exit_status;
}

static void secondary_free(SecondaryMain *m)
{
    failover_job_free(m->failover_job);
    monitor_free(m->mon);
    nbd_server_free(m->nbd);
    migration_incoming_free(m->mis);
    block_devices_free(m->disks);
    if (m->loop) {
        g_main_loop_unref(m->loop);
    }
    g_free(m->failover.qemu);
    g_free(m->failover.machine);
    g_free(m->failover.libvirt_xml);
    g_free(m->failover.libvirt_uri);
    g_strfreev(m->failover.args);
    if (m->failover.ram_dir_lock >= 0) {
        close(m->failover.ram_dir_lock);
    }
    if (m->own_ram_dir) {
        /* the VM a failover resumed may run on its files: then it stays */
        if (ram_dir_in_use(m->own_ram_dir)) {
            fprintf(stderr, "colo-secondary: %s stays: the VM that failed "
                    "over runs on its RAM files\n", m->own_ram_dir);
        } else {
            scratch_dir_remove(m->own_ram_dir);
        }
        g_free(m->own_ram_dir);
    }
}

int main(int argc, char **argv)
{
    SecondaryMain m = { .failover.ram_dir_lock = -1 };
    SecondaryOptions o = { 0 };
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) args = option_file_expand(argc, argv, &err);
    int rc = 1;

    if (!args) {
        fprintf(stderr, "colo-secondary: %s\n", err->message);
        return rc;
    }
    if (!secondary_options_parse(&o, g_strv_length(args), args, &err)) {
        fprintf(stderr, "colo-secondary: %s\n", err->message);
        secondary_usage(stderr);
    } else if (o.help) {
        secondary_usage(stdout);
        rc = 0;
    } else if (o.version) {
        printf("colo-secondary %s\n", COLO_VERSION_STRING);
        rc = 0;
    } else if (secondary_build(&m, &o, &err)) {
        rc = secondary_run(&m);
    } else {
        fprintf(stderr, "colo-secondary: %s\n", err->message);
        rc = m.ram_dir_busy ? SECONDARY_EXIT_RAM_DIR_BUSY : 1;
    }
    secondary_free(&m);
    secondary_options_clear(&o);
    return rc;
}
