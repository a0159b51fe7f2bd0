/*
 * colo-primary: checkpoints an unmodified, running QEMU VM into a COLO
 * secondary, from outside, with nothing but QEMU's QMP and the VM's RAM in
 * a shared file.  docs/colo-primary.rst tells how it works.
 *
 *   colo-primary --qmp QEMU_QMP_SOCKET --ram-file SHARED_RAM_FILE
 *                [--ram-block pc.ram] [--monitor unix:PATH,server=on]
 *                [--connect tcp:HOST:PORT] [--x-checkpoint-delay MS]
 *                [--xbzrle] [--checkpoints N] [--scan-threads N]
 *                [--verify-secondary RAM_DIR] [--quiet]
 *
 * --connect starts protecting the VM at once (x-colo implied); with
 * --monitor a client does it with QEMU's commands (migrate-set-
 * capabilities x-colo, migrate) and can watch, re-tune, fail over and
 * quit.  Exit status: 0 done, 1 bad arguments, 2 the secondary failed
 * (without --monitor), 3 QEMU failed or is gone, 4 --verify-secondary
 * found a difference.  The VM is never left stopped by us.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "tools/colo-primary/agent.h"

static Agent agent;

void agent_emit(Agent *a, const char *name, GVariant *data)
{
    if (a->mon) {
        monitor_emit_event(a->mon, name, data);
    } else if (data) {
        g_variant_unref(g_variant_ref_sink(data));
    }
}

void agent_session_ended(Agent *a)
{
    GThread *t;
    int status;

    g_mutex_lock(&a->lock);
    t = a->session;
    g_mutex_unlock(&a->lock);
    if (t) {
        g_thread_join(t);
    }
    g_mutex_lock(&a->lock);
    a->session = NULL;
    status = a->exit_status;
    g_mutex_unlock(&a->lock);
    /* Nothing to protect once QEMU failed; without a monitor nobody can
     * start another session. */
    if (status == AGENT_EXIT_QEMU || !a->mon || a->quit_when_idle) {
        g_main_loop_quit(a->loop);
    }
}

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
        a->exit_status = AGENT_EXIT_QEMU;
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

static int usage_error(const char *msg)
{
    fprintf(stderr, "colo-primary: %s\n", msg);
    return AGENT_EXIT_USAGE;
}

static bool map_ram(Agent *a, GError **errp)
{
    struct stat st;
    void *p;
    int fd = open(a->ram_file, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
        (st.st_size % TARGET_PAGE_SIZE)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "RAM file %s: %s", a->ram_file,
                    fd < 0 ? g_strerror(errno) : "not a usable size");
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        g_set_error(errp, COLO_ERROR, errno, "mapping %s: %s", a->ram_file,
                    g_strerror(errno));
        return false;
    }
    a->ram = p;
    a->ram_size = st.st_size;
    return true;
}

static void print_summary(Agent *a)
{
    int64_t median, p99;

    if (a->quiet || !agent_pause_figures(a, &median, &p99)) {
        return;
    }
    printf("done: %u checkpoints, pause median %.2f ms, p99 %.2f ms, "
           "%.2f checkpoints/s\n", a->pauses_us->len, median / 1000.0,
           p99 / 1000.0,
           a->pauses_us->len * 1e6 / MAX(a->end_us - a->colo_start_us, 1));
}

int main(int argc, char **argv)
{
    g_autofree char *connect = NULL, *monitor = NULL;
    int delay_ms = 100, threads = 0;
    gboolean quiet = FALSE, xbzrle = FALSE;
    Agent *a = &agent;
    GOptionEntry entries[] = {
        { "qmp", 0, 0, G_OPTION_ARG_FILENAME, &a->vm_qmp_path,
          "the VM's QMP socket (QEMU's -qmp unix:PATH)", "PATH" },
        { "ram-file", 0, 0, G_OPTION_ARG_FILENAME, &a->ram_file,
          "the VM's shared memory-backend-file", "PATH" },
        { "ram-block", 0, 0, G_OPTION_ARG_STRING, &a->ram_block,
          "its RAM block name, the backend id (pc.ram)", "NAME" },
        { "monitor", 0, 0, G_OPTION_ARG_STRING, &monitor,
          "our own QMP socket", "unix:PATH,server=on,wait=off" },
        { "connect", 0, 0, G_OPTION_ARG_STRING, &connect,
          "start protecting the VM into this secondary now",
          "tcp:HOST:PORT" },
        { "x-checkpoint-delay", 0, 0, G_OPTION_ARG_INT, &delay_ms,
          "ms between checkpoints (100)", "MS" },
        { "xbzrle", 0, 0, G_OPTION_ARG_NONE, &xbzrle,
          "send changed pages as XBZRLE deltas", NULL },
        { "checkpoints", 0, 0, G_OPTION_ARG_INT, &a->max_checkpoints,
          "end the session after N checkpoints (0: never)", "N" },
        { "scan-threads", 0, 0, G_OPTION_ARG_INT, &threads,
          "threads that look for changed pages (one per CPU)", "N" },
        { "verify-secondary", 0, 0, G_OPTION_ARG_FILENAME, &a->verify_dir,
          "tests: compare the secondary's RAM file after every checkpoint",
          "RAM_DIR" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "no progress", NULL },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- checkpoint a QEMU VM into a COLO secondary");
    g_autoptr(GError) err = NULL;
    int status;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        return usage_error(err->message);
    }
    if (!a->vm_qmp_path || !a->ram_file || (!connect && !monitor)) {
        return usage_error("--qmp, --ram-file and one of --connect or "
                           "--monitor are required");
    }
    if (delay_ms < 0 || a->max_checkpoints < 0 || threads < 0) {
        return usage_error("numbers must not be negative");
    }
    signal(SIGPIPE, SIG_IGN);
    a->ram_block = a->ram_block ? a->ram_block : g_strdup("pc.ram");
    a->quiet = quiet;
    g_mutex_init(&a->lock);
    g_cond_init(&a->wake);
    a->pauses_us = g_array_new(FALSE, FALSE, sizeof(int64_t));
    migration_options_init(&a->opts);
    a->opts.params[MIGRATION_PARAMETER_X_CHECKPOINT_DELAY] = delay_ms;
    a->opts.caps[MIGRATION_CAPABILITY_XBZRLE] = xbzrle;
    a->opts.caps[MIGRATION_CAPABILITY_X_COLO] = connect != NULL;
    a->loop = g_main_loop_new(NULL, FALSE);

    if (!quiet) {
        printf("dirty tracking: %s\n", dirty_scan_soft_dirty_works() ?
               "page digests (soft-dirty is available but not used)" :
               "page digests (this kernel has no soft-dirty bits)");
    }
    a->work = g_strdup("/dev/shm/colo-primary-XXXXXX");
    if (!g_mkdtemp(a->work)) {
        return usage_error("cannot create a work folder in /dev/shm");
    }
    if (!map_ram(a, &err)) {
        status = AGENT_EXIT_QEMU;
        goto out;
    }
    a->vm = vm_control_new(a->vm_qmp_path, a->work, &err);
    if (!a->vm) {
        status = AGENT_EXIT_QEMU;
        goto out;
    }
    a->scan = dirty_scan_new(a->ram, a->ram_size,
                             threads ? threads : (int)g_get_num_processors(),
                             &err);
    if (!a->scan) {
        status = AGENT_EXIT_QEMU;
        goto out;
    }
    if (monitor) {
        MonitorContext mctx = {
            .name = "colo-primary",
            .opaque = a,
            .commands = agent_qmp_commands,
            .n_commands = agent_qmp_n_commands,
        };

        a->mon = monitor_new(monitor, &mctx, &err);
        if (!a->mon) {
            status = AGENT_EXIT_USAGE;
            goto out;
        }
        g_timeout_add_seconds(1, watch_qemu, a);
    }
    g_unix_signal_add(SIGINT, on_signal, a);
    g_unix_signal_add(SIGTERM, on_signal, a);
    if (connect && !agent_session_start(a, connect, &err)) {
        status = AGENT_EXIT_USAGE;
        goto out;
    }
    g_main_loop_run(a->loop);
    if (agent_session_active(a)) {
        agent_session_stop(a, MIGRATION_STATUS_CANCELLED);
        g_thread_join(a->session);
        a->session = NULL;
    }
    status = a->exit_status;
    print_summary(a);

out:
    if (err) {
        fprintf(stderr, "colo-primary: %s\n", err->message);
    }
    monitor_free(a->mon);
    dirty_scan_free(a->scan);
    vm_control_free(a->vm);
    if (a->ram) {
        munmap((void *)a->ram, a->ram_size);
    }
    g_rmdir(a->work);
    g_free(a->work);
    g_array_unref(a->pauses_us);
    g_free(a->uri);
    g_free(a->error_desc);
    g_main_loop_unref(a->loop);
    g_free(a->vm_qmp_path);
    g_free(a->ram_file);
    g_free(a->ram_block);
    g_free(a->verify_dir);
    return status;
}
