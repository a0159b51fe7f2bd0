/*
 * colo-primary: checkpoints an unmodified, running QEMU VM into a COLO
 * secondary, from outside, with nothing but QEMU's QMP and the VM's RAM in
 * a shared file.  docs/colo-primary.rst tells how it works.
 *
 *   colo-primary --qmp QEMU_QMP_SOCKET --ram-file SHARED_RAM_FILE
 *                [--ram-block pc.ram] [--monitor unix:PATH,server=on]
 *                [--connect tcp:HOST:PORT] [--x-checkpoint-delay MS]
 *                [--xbzrle] [--checkpoints N] [--scan-threads N]
 *                [--object tls-creds-x509,id=ID,dir=DIR,endpoint=client]
 *                [--tls-creds ID] [--tls-hostname NAME]
 *                [--no-net-buffer] [--verify-secondary RAM_DIR]
 *                [--dirty-tracking auto|digest|uffd-wp|soft-dirty]
 *                [--qemu-pid N]
 *                [--disk NODE=nbd://HOST:PORT/EXPORT ...]
 *                [--held-output release|keep] [--quiet]
 *   colo-primary --libvirt-domain NAME [--libvirt-uri URI] [the same]
 *   colo-primary --qmp QEMU_QMP_SOCKET --release-held-output
 *
 * --connect starts protecting the VM at once (x-colo implied); with
 * --monitor a client does it with QEMU's commands (migrate-set-
 * capabilities x-colo, migrate) and can watch, re-tune, fail over and
 * quit.  Exit status: 0 done, 1 bad arguments, 2 the secondary failed
 * (without --monitor), 3 QEMU failed or is gone, 4 --verify-secondary
 * found a difference.  The VM is never left stopped by us.
 *
 * This file is the command line only; the agent is agent.c.
 */
#include "qemu/osdep.h"

#include <locale.h>
#include <signal.h>

#include "crypto/tls-creds.h"
#include "qemu/option-file.h"
#include "tools/colo-primary/agent.h"
#include "tools/colo-primary/net-buffer.h"

static int usage_error(const char *msg)
{
    fprintf(stderr, "colo-primary: %s\n", msg);
    return PRIMARY_EXIT_USAGE;
}

/* The release guard's way to QEMU: what the options name (NULL quietly
 * when it is gone: nothing is held any more). */
static QmpClient *guard_open_qemu(void *opaque, GError **errp)
{
    const AgentConfig *cfg = opaque;

    return agent_open_qemu(cfg, NULL, errp);
}

/* --release-held-output: what a --held-output keep run left in QEMU. */
static int release_held_output(const AgentConfig *cfg)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(QmpClient) qmp = agent_open_qemu(cfg, NULL, &err);
    guint n;

    if (!qmp) {
        fprintf(stderr, "colo-primary: releasing the VM's held output: %s\n",
                err->message);
        return PRIMARY_EXIT_QEMU;
    }
    n = net_buffer_release_leftovers(qmp);
    printf("released %u output buffer(s) of the VM\n", n);
    return PRIMARY_EXIT_OK;
}

int main(int argc, char **argv)
{
    AgentConfig cfg = { .checkpoint_delay_ms = 100,
                        .checkpoint_min_gap_ms = -1,
                        .checkpoint_coalesce_us = -1,
                        .checkpoint_ack_delay_us = -1,
                        .link_stall_limit_ms = -1 }, *c = &cfg;
    g_auto(GStrv) objects = NULL;
    g_autofree char *held_output = NULL;
    gboolean release_held = FALSE;
    gboolean release_guard = FALSE;
    gboolean version = FALSE;
    g_autofree char *nested_config = NULL;
    g_auto(GStrv) args = NULL;
    GOptionEntry entries[] = {
        { "qmp", 0, 0, G_OPTION_ARG_FILENAME, &c->vm_qmp_path,
          "the VM's QMP socket (QEMU's -qmp unix:PATH)", "PATH" },
        { "libvirt-domain", 0, 0, G_OPTION_ARG_STRING, &c->libvirt_domain,
          "or: the running libvirt domain NAME (its QMP through libvirt, "
          "its RAM file from QEMU; no --qmp or --ram-file)", "NAME" },
        { "libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &c->libvirt_uri,
          "the libvirt of --libvirt-domain (default: libvirt's own "
          "default, qemu:///system for root)", "URI" },
        { "x-net-release-guard", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE,
          &release_guard, "our own child (net-buffer.c)", NULL },
        { "ram-file", 0, 0, G_OPTION_ARG_FILENAME, &c->ram_file,
          "the VM's shared memory-backend-file", "PATH" },
        { "ram-block", 0, 0, G_OPTION_ARG_STRING, &c->ram_block,
          "its RAM block name, the backend id (pc.ram)", "NAME" },
        { "monitor", 0, 0, G_OPTION_ARG_STRING, &c->monitor,
          "our own QMP socket", "unix:PATH,server=on,wait=off" },
        { "connect", 0, 0, G_OPTION_ARG_STRING, &c->connect,
          "protect the VM into this secondary now", "tcp:HOST:PORT" },
        { "x-checkpoint-delay", 0, 0, G_OPTION_ARG_INT,
          &c->checkpoint_delay_ms, "ms between checkpoints (100)", "MS" },
        { "x-checkpoint-min-gap", 0, 0, G_OPTION_ARG_INT,
          &c->checkpoint_min_gap_ms, "with output held, checkpoint no "
          "sooner than MS after the last one began (0)", "MS" },
        { "x-checkpoint-coalesce", 0, 0, G_OPTION_ARG_INT,
          &c->checkpoint_coalesce_us, "with output held, wait US for more "
          "to ride the same checkpoint (500)", "US" },
        { "x-checkpoint-ack-delay", 0, 0, G_OPTION_ARG_INT,
          &c->checkpoint_ack_delay_us, "when the held output is only pure "
          "TCP acks, wait US for more before a checkpoint (5000)", "US" },
        { "x-link-stall-limit", 0, 0, G_OPTION_ARG_INT,
          &c->link_stall_limit_ms, "end protection when for MS nothing "
          "can be sent to the secondary, or a reply that is due brings "
          "nothing; the VM runs on (60000; 0: TCP's own limit)", "MS" },
        { "no-output-trigger", 0, 0, G_OPTION_ARG_NONE,
          &c->no_output_trigger, "checkpoint every --x-checkpoint-delay "
          "only, not as soon as the VM's output is held", NULL },
        { "xbzrle", 0, 0, G_OPTION_ARG_NONE, &c->xbzrle,
          "send changed pages as XBZRLE deltas", NULL },
        { "checkpoints", 0, 0, G_OPTION_ARG_INT, &c->max_checkpoints,
          "end the session after N checkpoints (0: never)", "N" },
        { "scan-threads", 0, 0, G_OPTION_ARG_INT, &c->scan_threads,
          "threads that look for changed pages (one per CPU but one)",
          "N" },
        { "object", 0, 0, G_OPTION_ARG_STRING_ARRAY, &objects,
          "as QEMU's -object: tls-creds-x509,id=ID,dir=DIR,endpoint=client",
          "SPEC" },
        { "tls-creds", 0, 0, G_OPTION_ARG_STRING, &c->tls_creds,
          "protect over TLS with the credentials of --object ID "
          "(migrate-set-parameters tls-creds)", "ID" },
        { "tls-hostname", 0, 0, G_OPTION_ARG_STRING, &c->tls_hostname,
          "the name the secondary's certificate must carry (default: "
          "HOST of the URI)", "NAME" },
        { "no-net-buffer", 0, 0, G_OPTION_ARG_NONE, &c->no_net_buffer,
          "let the VM's network output out at once (it is held until its "
          "checkpoint commits otherwise)", NULL },
        { "held-output", 0, 0, G_OPTION_ARG_STRING, &held_output,
          "when protection ends, the VM's output of checkpoints that "
          "never committed is let out (release, the default) or stays "
          "held in QEMU until --release-held-output (keep: for a cluster "
          "manager, which must first make sure the standby cannot take "
          "over)", "release|keep" },
        { "release-held-output", 0, 0, G_OPTION_ARG_NONE, &release_held,
          "let out what a colo-primary run with --held-output keep left "
          "held in the VM of --qmp or --libvirt-domain, oldest first, and "
          "exit", NULL },
        { "dirty-tracking", 0, 0, G_OPTION_ARG_STRING, &c->dirty_tracking,
          "how changed pages are found: auto (uffd-wp, else soft-dirty, "
          "where it can be had), digest, uffd-wp, soft-dirty", "MODE" },
        { "qemu-pid", 0, 0, G_OPTION_ARG_INT, &c->qemu_pid,
          "QEMU's pid, for uffd-wp and soft-dirty (default: the QMP "
          "socket's peer)",
          "PID" },
        { "disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &c->disks,
          "mirror the VM's block node NODE to the secondary's NBD export "
          "(nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH); "
          "its writes commit with the checkpoints", "NODE=URI" },
        { "verify-disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &c->verify_disks,
          "tests: compare the secondary's image of NODE after every "
          "checkpoint", "NODE=PATH" },
        { "verify-secondary", 0, 0, G_OPTION_ARG_FILENAME, &c->verify_dir,
          "tests: compare the secondary's RAM file after every checkpoint",
          "RAM_DIR" },
        { "config", 0, 0, G_OPTION_ARG_FILENAME, &nested_config,
          "more options from FILE, as if they stood here: one or more a "
          "line with shell quoting, lines starting with # skipped (the "
          "systemd unit's "
          "/etc/colo-standby/NAME.primary.conf)", "FILE" },
        { "version", 0, 0, G_OPTION_ARG_NONE, &version,
          "print the version", NULL },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &c->quiet, "no progress",
          NULL },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- checkpoint a QEMU VM into a COLO secondary");
    g_autoptr(GError) err = NULL;
    Agent *a;
    int status = PRIMARY_EXIT_USAGE;

    /* the character set of the help's text; numbers stay in C's form */
    setlocale(LC_CTYPE, "");
    g_option_context_add_main_entries(ctx, entries, NULL);
    cfg.guard_exe = g_file_read_link("/proc/self/exe", NULL);
    args = option_file_expand(argc, argv, &err);
    if (!args || !g_option_context_parse_strv(ctx, &args, &err)) {
        usage_error(err->message);
    } else if (nested_config) {
        usage_error("--config was not read");
    } else if (version) {
        printf("colo-primary %s\n", COLO_VERSION_STRING);
        status = PRIMARY_EXIT_OK;
    } else if (!!cfg.vm_qmp_path == !!cfg.libvirt_domain) {
        usage_error("one of --qmp or --libvirt-domain is required");
    } else if (release_guard) {
        /* our own child (net-buffer.c), not a user's command */
        status = net_buffer_guard_main(guard_open_qemu, &cfg);
    } else if (release_held) {
        status = release_held_output(&cfg);
    } else if (held_output && strcmp(held_output, "keep") != 0 &&
               strcmp(held_output, "release") != 0) {
        usage_error("--held-output takes release or keep");
    } else if ((cfg.vm_qmp_path && !cfg.ram_file) ||
               (cfg.libvirt_domain && cfg.ram_file) ||
               (!cfg.connect && !cfg.monitor)) {
        usage_error("--qmp with --ram-file, or --libvirt-domain alone, and "
                    "one of --connect or --monitor are required");
    } else if (cfg.libvirt_domain && cfg.disks) {
        usage_error("--disk does not work with --libvirt-domain yet: "
                    "libvirt would not know the mirror's block job");
    } else if (cfg.checkpoint_delay_ms < 0 || cfg.max_checkpoints < 0 ||
               cfg.scan_threads < 0 || cfg.checkpoint_min_gap_ms < -1 ||
               cfg.checkpoint_coalesce_us < -1 ||
               cfg.checkpoint_ack_delay_us < -1 ||
               cfg.link_stall_limit_ms < -1) {
        usage_error("numbers must not be negative");
    } else {
        cfg.keep_held_output = held_output &&
                               strcmp(held_output, "keep") == 0;
        signal(SIGPIPE, SIG_IGN);
        for (int i = 0; objects && objects[i]; i++) {
            if (!user_object_add(objects[i], &err)) {
                agent_config_clear(&cfg);
                return usage_error(err->message);
            }
        }
        a = agent_new(&cfg, &status, &err);
        if (a) {
            status = agent_run(a, cfg.connect, &err);
            agent_free(a);
        }
        if (err) {
            fprintf(stderr, "colo-primary: %s\n", err->message);
        }
    }
    agent_config_clear(&cfg);
    return status;
}
