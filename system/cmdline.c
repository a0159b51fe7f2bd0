/*
 * cmdline.c: see system/cmdline.h.
 */
#include "qemu/osdep.h"

#include "crypto/tls-creds.h"
#include "system/cmdline.h"

typedef struct SecondaryOption {
    const char *name;               /* without its dash */
    const char *arg;                /* what it takes; NULL: a flag */
    const char *help;               /* lines, "\n" between them */
    bool (*apply)(SecondaryOptions *o, const char *val, GError **errp);
} SecondaryOption;

static bool opt_incoming(SecondaryOptions *o, const char *v, GError **errp)
{
    o->incoming = v;
    return true;
}

static bool opt_ram_dir(SecondaryOptions *o, const char *v, GError **errp)
{
    g_free(o->ram_dir);
    o->ram_dir = g_strdup(v);
    return true;
}

static bool opt_qmp(SecondaryOptions *o, const char *v, GError **errp)
{
    o->qmp = v;
    return true;
}

static bool opt_name(SecondaryOptions *o, const char *v, GError **errp)
{
    o->name = g_str_has_prefix(v, "guest=") ? v + 6 : v;
    return true;
}

static bool opt_blockdev(SecondaryOptions *o, const char *v, GError **errp)
{
    g_ptr_array_add(o->blockdevs, g_strdup(v));
    return true;
}

static bool opt_global(SecondaryOptions *o, const char *v, GError **errp)
{
    g_ptr_array_add(o->globals, g_strdup(v));
    return true;
}

static bool opt_object(SecondaryOptions *o, const char *v, GError **errp)
{
    return user_object_add(v, errp);
}

static bool opt_failover(SecondaryOptions *o, const char *v, GError **errp)
{
    if (!parse_bool(v, &o->failover_enabled)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-failover on|off");
        return false;
    }
    return true;
}

static bool opt_failover_qemu(SecondaryOptions *o, const char *v,
                              GError **errp)
{
    o->failover_qemu = v;
    o->failover_enabled = true;
    return true;
}

static bool opt_failover_args(SecondaryOptions *o, const char *v,
                              GError **errp)
{
    g_strfreev(o->failover_args);
    o->failover_args = NULL;
    if (!g_shell_parse_argv(v, NULL, &o->failover_args, errp)) {
        g_prefix_error(errp, "-failover-args: ");
        return false;
    }
    o->failover_enabled = true;
    return true;
}

static bool opt_failover_machine(SecondaryOptions *o, const char *v,
                                 GError **errp)
{
    o->failover_machine = v;
    return true;
}

static bool opt_failover_libvirt_xml(SecondaryOptions *o, const char *v,
                                     GError **errp)
{
    o->failover_libvirt_xml = v;
    o->failover_enabled = true;
    return true;
}

static bool opt_failover_libvirt_uri(SecondaryOptions *o, const char *v,
                                     GError **errp)
{
    o->failover_libvirt_uri = v;
    return true;
}

static bool opt_heartbeat(SecondaryOptions *o, const char *v, GError **errp)
{
    g_ptr_array_add(o->globals,
                    g_strdup_printf("migration.x-heartbeat-timeout=%s", v));
    return true;
}

static bool opt_once(SecondaryOptions *o, const char *v, GError **errp)
{
    o->once = true;
    return true;
}

static bool opt_help(SecondaryOptions *o, const char *v, GError **errp)
{
    o->help = true;
    return true;
}

/* option_file_expand() (main.c) has put the file's options in its place
 * before parsing; one met here was not expanded. */
static bool opt_config(SecondaryOptions *o, const char *v, GError **errp)
{
    g_set_error(errp, COLO_ERROR, EINVAL, "-config %s was not read", v);
    return false;
}

static bool opt_version(SecondaryOptions *o, const char *v, GError **errp)
{
    o->version = true;
    return true;
}

static const SecondaryOption options[] = {
    { "incoming", "URI", "tcp:HOST:PORT, unix:PATH, exec:CMD, "
      "file:PATH[,offset=N]\nor defer (then QMP migrate-incoming)",
      opt_incoming },
    { "ram-dir", "DIR", "where the RAM block files live, kept at exit\n"
      "(default: a new folder under /dev/shm, removed\n"
      "at exit; one a killed colo-secondary left goes\n"
      "at the next start)", opt_ram_dir },
    { "qmp", "unix:PATH,server=on,wait=off", "QMP monitor socket",
      opt_qmp },
    { "name", "NAME", "a name for this instance (query-name)", opt_name },
    { "blockdev", "driver=file,node-name=NAME,filename=IMAGE"
      "[,read-only=on][,x-cache-size=MIB]",
      "a raw disk image of the protected VM, replicated\nper checkpoint "
      "(QMP nbd-server-start, nbd-server-add;\ndriver=raw,file.filename="
      "IMAGE and JSON work too)", opt_blockdev },
    { "global", "migration.CAP=on|off | migration.PARAM=VALUE",
      "set a migration capability (x-colo, x-ignore-shared,\nevents, ...) "
      "or parameter (also tls-creds=ID,\ntls-authz=ID)", opt_global },
    { "object", "tls-creds-x509,id=ID,dir=DIR,endpoint=server"
      "[,verify-peer=on] | authz-simple,id=ID,identity=DN | "
      "authz-list-file,id=ID,filename=PATH",
      "TLS for the incoming migration and the NBD server, as\nQEMU's (then "
      "migrate-set-parameters tls-creds, tls-authz)", opt_object },
    { "failover", "on|off", "after x-colo-lost-heartbeat, resume the VM "
      "from the\ncommitted state in a stock QEMU (default off)",
      opt_failover },
    { "failover-qemu", "PATH", "the QEMU binary for that "
      "(qemu-system-x86_64)", opt_failover_qemu },
    { "failover-args", "ARGS", "its extra arguments: devices, -bios, "
      "-serial ...\n(the same devices as the primary's; shell quoting;\n"
      "with -S the resumed VM waits for cont)", opt_failover_args },
    { "failover-machine", "M", "machine type (default: the one in the "
      "stream)", opt_failover_machine },
    { "failover-libvirt-xml", "FILE", "instead: restore the VM as the "
      "libvirt domain\nof this XML (its name, UUID and devices;\n"
      "docs/libvirt.rst)", opt_failover_libvirt_xml },
    { "failover-libvirt-uri", "URI", "that domain's libvirt (default: "
      "libvirt's\ndefault)", opt_failover_libvirt_uri },
    { "heartbeat-timeout", "MS", "fail over on its own MS ms after the "
      "primary's\nstream broke (0, the default: wait for\n"
      "x-colo-lost-heartbeat; QMP x-heartbeat-timeout)", opt_heartbeat },
    { "once", NULL, "exit when the incoming migration ends: 0 if it\n"
      "completed, 1 (with the error on stderr) if not", opt_once },
    { "config", "FILE", "more options from FILE, as if they stood here:\n"
      "one or more a line with shell quoting, lines\n"
      "starting with # skipped (the systemd unit's\n"
      "/etc/colo-standby/NAME.conf)", opt_config },
    { "version", NULL, "print the version", opt_version },
    { "h", NULL, "this help (also -help)", opt_help },
    { "help", NULL, NULL, opt_help },
};

bool parse_bool(const char *v, bool *out)
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

static const SecondaryOption *option_find(const char *arg)
{
    if (arg[0] != '-') {
        return NULL;
    }
    arg += arg[1] == '-' ? 2 : 1;       /* one dash or two */
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        if (!strcmp(options[i].name, arg)) {
            return &options[i];
        }
    }
    return NULL;
}

bool secondary_options_parse(SecondaryOptions *o, int argc, char **argv,
                             GError **errp)
{
    o->globals = g_ptr_array_new_with_free_func(g_free);
    o->blockdevs = g_ptr_array_new_with_free_func(g_free);
    for (int i = 1; i < argc; i++) {
        const SecondaryOption *opt = option_find(argv[i]);
        const char *val = NULL;

        if (!opt) {
            g_set_error(errp, COLO_ERROR, EINVAL, "unknown option %s",
                        argv[i]);
            return false;
        }
        if (opt->arg) {
            if (i + 1 >= argc) {
                g_set_error(errp, COLO_ERROR, EINVAL, "%s needs an argument",
                            argv[i]);
                return false;
            }
            val = argv[++i];
        }
        if (!opt->apply(o, val, errp)) {
            return false;
        }
        if (o->help || o->version) {
            return true;
        }
    }
    if (!o->incoming) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-incoming is required");
        return false;
    }
    return true;
}

void secondary_options_clear(SecondaryOptions *o)
{
    if (o->globals) {
        g_ptr_array_unref(o->globals);
        o->globals = NULL;
    }
    if (o->blockdevs) {
        g_ptr_array_unref(o->blockdevs);
        o->blockdevs = NULL;
    }
    g_clear_pointer(&o->ram_dir, g_free);
    g_clear_pointer(&o->failover_args, g_strfreev);
}

void secondary_usage(FILE *out)
{
    fprintf(out, "Usage: colo-secondary [options] -incoming URI\n\n");
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        const SecondaryOption *opt = &options[i];
        g_autofree char *head = NULL;
        g_auto(GStrv) lines = NULL;
        int col;

        if (!opt->help) {
            continue;               /* a second spelling */
        }
        head = g_strdup_printf("  -%s%s%s", opt->name, opt->arg ? " " : "",
                               opt->arg ? opt->arg : "");
        lines = g_strsplit(opt->help, "\n", -1);
        col = (int)strlen(head);
        fputs(head, out);
        for (int k = 0; lines[k]; k++) {
            if (k == 0 && col < 21) {
                fprintf(out, "%*s%s\n", 22 - col, "", lines[k]);
            } else {
                fprintf(out, "%s%22s%s\n", k == 0 ? "\n" : "", "", lines[k]);
            }
        }
    }
}
