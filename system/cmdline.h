/*
 * cmdline.h: colo-secondary's command line, QEMU's conventions (one or two
 * dashes, "-opt value").  One table (cmdline.c) says each option's name,
 * argument and help; it drives both the parsing and usage().
 */
#ifndef SYSTEM_CMDLINE_H
#define SYSTEM_CMDLINE_H

#include "qemu/osdep.h"

typedef struct SecondaryOptions {
    const char *incoming;           /* -incoming (required) */
    const char *qmp;
    char *ram_dir;                  /* NULL: a new folder under /dev/shm */
    const char *name;
    GPtrArray *globals;             /* -global migration.X=Y, as given */
    GPtrArray *blockdevs;           /* -blockdev specs, as given */
    bool failover_enabled;
    const char *failover_qemu;
    const char *failover_machine;
    const char *failover_libvirt_xml;
    const char *failover_libvirt_uri;
    char **failover_args;           /* -failover-args, split as a shell
                                       would */
    bool once;
    bool help;                      /* -h: usage() was asked for */
    bool version;
} SecondaryOptions;

/* colo-secondary's exit status when its RAM folder is another process's
 * (its systemd unit does not restart it then); 1 for other errors. */
#define SECONDARY_EXIT_RAM_DIR_BUSY 2

/* Parses argv into @o (zeroed by the caller); false with @errp set on a
 * bad command line.  -object is applied as it is met (crypto/). */
bool secondary_options_parse(SecondaryOptions *o, int argc, char **argv,
                             GError **errp);
void secondary_options_clear(SecondaryOptions *o);
void secondary_usage(FILE *out);

/* "on"/"yes"/"true" or "off"/"no"/"false". */
bool parse_bool(const char *v, bool *out);

#endif /* SYSTEM_CMDLINE_H */
