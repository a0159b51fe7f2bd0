/*
 * option-file.h: command-line options kept in a file.  A service manager
 * starts a program with "-config FILE" (the systemd units of
 * tools/systemd/), and the file holds the rest of its command line.
 *
 * The file is text: each line holds one or more arguments, split and
 * unquoted as a POSIX shell would (so "-failover-args '-bios x.bin'"
 * is two arguments); empty lines and lines starting with '#' are skipped.
 */
#ifndef QEMU_OPTION_FILE_H
#define QEMU_OPTION_FILE_H

#include <glib.h>

/* The largest option file read. */
#define OPTION_FILE_MAX_BYTES (64 * 1024)

/*
 * Returns a new NULL-terminated argument vector: argv with every
 * "-config FILE", "--config FILE" or "--config=FILE" replaced, in its
 * place, by the arguments FILE holds (later arguments still override
 * earlier ones).  An option file may not name another one.  NULL with
 * @errp set (naming the file and line) if one cannot be read or parsed.
 */
char **option_file_expand(int argc, char **argv, GError **errp);

#endif
