/*
 * scratch-dir.h: the folders a program makes for itself (colo-primary's
 * work folder, colo-secondary's RAM folder when none is named), named so
 * that a later run knows whose they are.
 *
 * A folder is BASE/PROG.PID.START: the maker's pid and its start time
 * (clock ticks after boot, /proc/PID/stat), so a pid used again by
 * another process does not pass for the owner.  A program removes its
 * folder when it exits; one left by an owner that was killed is removed
 * by the next run of the same program (scratch_dir_reap()).
 */
#ifndef QEMU_SCRATCH_DIR_H
#define QEMU_SCRATCH_DIR_H

#include <glib.h>

/* Makes BASE/PROG.PID.START for this process (mode 0700); its path, or
 * NULL with @errp set. */
char *scratch_dir_create(const char *base, const char *prog, GError **errp);

/* Whether @path is a folder a live process may still use although its
 * maker is gone (for colo-secondary: a failover QEMU holds its lock). */
typedef bool (*ScratchDirInUse)(const char *path);

/* Removes every BASE/PROG.PID.START whose maker no longer runs and that
 * @in_use (may be NULL) does not claim; says so on stderr.  Returns how
 * many were removed. */
unsigned scratch_dir_reap(const char *base, const char *prog,
                          ScratchDirInUse in_use);

/* Removes @path and everything under it (not following symbolic links,
 * not leaving its file system); false if something stayed. */
bool scratch_dir_remove(const char *path);

#endif
