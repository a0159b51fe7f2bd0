/*
 * main.c: colo-secondary, the receiving side of a QEMU migration and COLO
 * session, with QEMU's command line conventions (one or two dashes).
 *
 *   colo-secondary [-name NAME] [-ram-dir DIR] [-qmp unix:PATH,server=on,wait=off]
 *                  [-blockdev driver=file,node-name=N,filename=IMG ...]
 *                  [-global migration.CAPABILITY=on|off]
 *                  [-global migration.PARAMETER=N]
 *                  -incoming tcp:HOST:PORT|unix:PATH|exec:CMD|file:PATH|defer
 *                  [--once]
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

    /* failover into a stock QEMU (system/failover.c) */
    bool failover_enabled;
    FailoverConfig failover;
    FailoverJob *failover_job;      /* NULL until one starts */
} SecondaryMain;

static void usage(FILE *out)
{
    fprintf(out,
"usage: colo-secondary [options] -incoming URI\n"
"\n"
"  -incoming URI       tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH[,offset=N]\n"
"                      or defer (then QMP migrate-incoming)\n"
"  -ram-dir DIR        where the RAM block files live (default: a new\n"
"                      folder under /dev/shm)\n"
"  -qmp unix:PATH,server=on,wait=off\n"
"                      QMP monitor socket\n"
"  -name NAME          a name for this instance (query-name)\n"
"  -blockdev driver=file,node-name=NAME,filename=IMAGE[,read-only=on]\n"
"             [,x-cache-size=MIB]\n"
"                      a raw disk image of the protected VM, replicated\n"
"                      per checkpoint (QMP nbd-server-start, nbd-server-add;\n"
"                      driver=raw,file.filename=IMAGE and JSON work too)\n"
"  -global migration.CAP=on|off    set a migration capability (x-colo,\n"
"                      x-ignore-shared, events, ...)\n"
"  -global migration.PARAM=N       set a migration parameter (also\n"
"                      tls-creds=ID, tls-authz=ID)\n"
"  -object tls-creds-x509,id=ID,dir=DIR,endpoint=server[,verify-peer=on]\n"
"  -object authz-simple,id=ID,identity=DN\n"
"  -object authz-list-file,id=ID,filename=PATH\n"
"                      TLS for the incoming migration, as QEMU's\n"
"                      (then migrate-set-parameters tls-creds, tls-authz)\n"
"  -failover on|off    after x-colo-lost-heartbeat, resume the VM from the\n"
"                      committed state in a stock QEMU (default off)\n"
"  -failover-qemu PATH the QEMU binary for that (qemu-system-x86_64)\n"
"  -failover-args ARGS its extra arguments: devices, -bios, -serial ...\n"
"                      (the same devices as the primary's; shell quoting;\n"
"                      with -S the resumed VM waits for cont)\n"
"  -failover-machine M machine type (default: the one in the stream)\n"
"  -heartbeat-timeout MS  fail over on its own MS ms after the primary's\n"
"                      stream broke (0, the default: wait for\n"
"                      x-colo-lost-heartbeat; QMP x-heartbeat-timeout)\n"
"  --once              exit when the incoming migration ends: 0 if it\n"
"                      completed, 1 (with the error on stderr) if not\n"
"  -version, -h\n");
}

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
    if (res) {
        fprintf(stderr, "colo-secondary: failover: the VM %s in QEMU pid "
                "%d (QMP %s), resumed in %.1f ms\n",
                res->paused ? "waits for cont (-S)" : "runs",
                (int)res->pid, res->qmp_path, res->resume_us / 1000.0);
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

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
        *out = false;
    } else {
        return false;
    }
    return true;
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

int main(int argc, char **argv)
{
    SecondaryMain m = { .exit_status = 0 };
    g_autofree char *ram_dir = NULL;
    g_autoptr(GError) err = NULL;
    GPtrArray *globals = g_ptr_array_new();
    g_autoptr(GPtrArray) blockdevs = g_ptr_array_new();
    const char *incoming = NULL, *qmp = NULL, *name = NULL;
    const char *failover_qemu = NULL, *failover_machine = NULL;
    const char *failover_args = NULL;
    g_autofree char *heartbeat = NULL;
    MigrationNotifier notifier = {
        .event = on_event,
        .thread_done = on_thread_done,
        .colo_exit = on_colo_exit,
        .opaque = &m,
    };
    MonitorContext mctx;

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (opt[0] == '-' && opt[1] == '-') {
            opt++;
        }
        if (!strcmp(opt, "-once")) {
            m.once = true;
            continue;
        }
        if (!strcmp(opt, "-h") || !strcmp(opt, "-help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(opt, "-version")) {
            printf("colo-secondary %s\n", COLO_VERSION_STRING);
            return 0;
        }
        if (!strcmp(opt, "-incoming") || !strcmp(opt, "-qmp") ||
            !strcmp(opt, "-ram-dir") || !strcmp(opt, "-name") ||
            !strcmp(opt, "-global") || !strcmp(opt, "-failover") ||
            !strcmp(opt, "-failover-qemu") ||
            !strcmp(opt, "-failover-args") ||
            !strcmp(opt, "-failover-machine") ||
            !strcmp(opt, "-heartbeat-timeout") || !strcmp(opt, "-object") ||
            !strcmp(opt, "-blockdev")) {
            if (!val) {
                fprintf(stderr, "colo-secondary: %s needs an argument\n",
                        argv[i]);
                return 1;
            }
            i++;
            if (!strcmp(opt, "-incoming")) {
                incoming = val;
            } else if (!strcmp(opt, "-qmp")) {
                qmp = val;
            } else if (!strcmp(opt, "-ram-dir")) {
                g_free(ram_dir);
                ram_dir = g_strdup(val);
            } else if (!strcmp(opt, "-name")) {
                name = g_str_has_prefix(val, "guest=") ? val + 6 : val;
            } else if (!strcmp(opt, "-failover")) {
                if (!parse_bool(val, &m.failover_enabled)) {
                    fprintf(stderr, "colo-secondary: -failover on|off\n");
                    return 1;
                }
            } else if (!strcmp(opt, "-failover-qemu")) {
                failover_qemu = val;
                m.failover_enabled = true;
            } else if (!strcmp(opt, "-failover-machine")) {
                failover_machine = val;
            } else if (!strcmp(opt, "-heartbeat-timeout")) {
                heartbeat = g_strdup_printf("migration.x-heartbeat-timeout=%s",
                                            val);
                g_ptr_array_add(globals, heartbeat);
            } else if (!strcmp(opt, "-failover-args")) {
                failover_args = val;
                m.failover_enabled = true;
            } else if (!strcmp(opt, "-blockdev")) {
                g_ptr_array_add(blockdevs, (gpointer)val);
            } else if (!strcmp(opt, "-object")) {
                if (!user_object_add(val, &err)) {
                    fprintf(stderr, "colo-secondary: %s\n", err->message);
                    return 1;
                }
            } else {
                g_ptr_array_add(globals, (gpointer)val);
            }
            continue;
        }
        fprintf(stderr, "colo-secondary: unknown option %s\n", argv[i]);
        usage(stderr);
        return 1;
    }
    if (failover_args) {
        g_auto(GStrv) check = NULL;

        if (!g_shell_parse_argv(failover_args, NULL, &check, &err)) {
            fprintf(stderr, "colo-secondary: -failover-args: %s\n",
                    err->message);
            return 1;
        }
    }
    if (!incoming) {
        fprintf(stderr, "colo-secondary: -incoming is required\n");
        usage(stderr);
        return 1;
    }
    if (!ram_dir) {
        ram_dir = g_strdup("/dev/shm/colo-secondary-XXXXXX");
        if (!g_mkdtemp(ram_dir)) {
            fprintf(stderr, "colo-secondary: cannot create %s: %s\n", ram_dir,
                    g_strerror(errno));
            return 1;
        }
    } else if (g_mkdir_with_parents(ram_dir, 0700) < 0) {
        fprintf(stderr, "colo-secondary: cannot create %s: %s\n", ram_dir,
                g_strerror(errno));
        return 1;
    }

    m.disks = block_devices_new(ram_dir);
    for (guint i = 0; i < blockdevs->len; i++) {
        if (!block_devices_add_spec(m.disks, g_ptr_array_index(blockdevs, i),
                                    &err)) {
            fprintf(stderr, "colo-secondary: %s\n", err->message);
            block_devices_free(m.disks);
            g_ptr_array_free(globals, TRUE);
            return 1;
        }
    }

    m.loop = g_main_loop_new(NULL, FALSE);
    m.mis = migration_incoming_new(ram_dir, &notifier);
    if (!migration_incoming_recover(m.mis, &err)) {
        fprintf(stderr, "colo-secondary: -ram-dir %s: %s\n", ram_dir,
                err->message);
        migration_incoming_free(m.mis);
        block_devices_free(m.disks);
        g_ptr_array_free(globals, TRUE);
        g_main_loop_unref(m.loop);
        return 1;
    } else {
        const ColoRecovery *r = migration_incoming_recovery(m.mis);

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
    for (guint i = 0; i < globals->len; i++) {
        if (!apply_global(migration_incoming_options(m.mis),
                          g_ptr_array_index(globals, i), &err)) {
            fprintf(stderr, "colo-secondary: %s\n", err->message);
            migration_incoming_free(m.mis);
            block_devices_free(m.disks);
            g_ptr_array_free(globals, TRUE);
            g_main_loop_unref(m.loop);
            return 1;
        }
    }
    g_ptr_array_free(globals, TRUE);

    block_devices_set_direct_write_hook(m.disks, on_disk_written, &m);
    migration_incoming_set_disks(m.mis, m.disks);
    m.nbd = nbd_server_new(m.disks);

    mctx = (MonitorContext) {
        .mis = m.mis, .disks = m.disks, .nbd = m.nbd, .name = name,
        .quit = main_quit, .colo_status = on_colo_status, .opaque = &m,
    };
    if (qmp) {
        m.mon = monitor_new(qmp, &mctx, &err);
        if (!m.mon) {
            fprintf(stderr, "colo-secondary: %s\n", err->message);
            nbd_server_free(m.nbd);
            migration_incoming_free(m.mis);
            block_devices_free(m.disks);
            g_main_loop_unref(m.loop);
            return 1;
        }
    }
    if (strcmp(incoming, "defer") != 0 &&
        !migration_incoming_start(m.mis, incoming, &err)) {
        fprintf(stderr, "colo-secondary: -incoming %s: %s\n", incoming,
                err->message);
        monitor_free(m.mon);
        nbd_server_free(m.nbd);
        migration_incoming_free(m.mis);
        block_devices_free(m.disks);
        g_main_loop_unref(m.loop);
        return 1;
    }
    if (failover_args) {
        g_shell_parse_argv(failover_args, NULL, &m.failover.args, NULL);
    }
    m.failover.qemu = g_strdup(failover_qemu);
    m.failover.machine = g_strdup(failover_machine);
    g_unix_signal_add(SIGINT, on_signal, &m);
    g_unix_signal_add(SIGTERM, on_signal, &m);
    g_unix_signal_add(SIGHUP, on_signal, &m);

    g_main_loop_run(m.loop);

    migration_incoming_cancel(m.mis);
    failover_job_join(m.failover_job);
    if (m.quitting && m.once &&
        migration_incoming_status(m.mis) != MIGRATION_STATUS_COMPLETED &&
        m.exit_status == 0) {
        MigrationInfo info;

        migration_incoming_query(m.mis, &info);
        if (info.status != MIGRATION_STATUS_FAILED) {
            fprintf(stderr, "colo-secondary: interrupted before the "
                    "migration completed\n");
        }
        migration_info_clear(&info);
        m.exit_status = 1;
    }
    /* Deliver what the migration thread queued before the monitor goes. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
    failover_job_free(m.failover_job);
    monitor_free(m.mon);
    nbd_server_free(m.nbd);
    migration_incoming_free(m.mis);
    block_devices_free(m.disks);
    g_main_loop_unref(m.loop);
    g_free(m.failover.qemu);
    g_free(m.failover.machine);
    g_strfreev(m.failover.args);
    return m.exit_status;
}
