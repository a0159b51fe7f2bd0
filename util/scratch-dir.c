/*
 * scratch-dir.c: see include/qemu/scratch-dir.h.
 */
#include "qemu/osdep.h"

#include <ftw.h>
#include <glib/gstdio.h>

#include "qemu/scratch-dir.h"

/* The start time of @pid (field 22 of /proc/PID/stat), or 0 if it does
 * not run. */
static guint64 process_start_time(long pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%ld/stat", pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) fields = NULL;
    const char *after;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return 0;
    }
    /* the command name (field 2) is in parentheses and may hold spaces */
    after = strrchr(text, ')');
    if (!after) {
        return 0;
    }
    fields = g_strsplit(after + 1, " ", 0);
    /* fields[0] is empty (the space after ')'), fields[1] is field 3 */
    if (g_strv_length(fields) < 21) {
        return 0;
    }
    return g_ascii_strtoull(fields[20], NULL, 10);
}

char *scratch_dir_create(const char *base, const char *prog, GError **errp)
{
    long pid = (long)getpid();
    g_autofree char *name = g_strdup_printf("%s.%ld.%" G_GUINT64_FORMAT,
                                            prog, pid,
                                            process_start_time(pid));
    char *path = g_build_filename(base, name, NULL);

    if (g_mkdir(path, 0700) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot create %s: %s", path,
                    g_strerror(errno));
        g_free(path);
        return NULL;
    }
    return path;
}

/* Whether @name is PROG.PID.START of a maker that no longer runs. */
static bool owner_gone(const char *name, const char *prog)
{
    g_autofree char *prefix = g_strdup_printf("%s.", prog);
    const char *p = name;
    char *end;
    long pid;
    guint64 start;

    if (!g_str_has_prefix(p, prefix)) {
        return false;
    }
    p += strlen(prefix);
    pid = strtol(p, &end, 10);
    if (end == p || *end != '.' || pid <= 0) {
        return false;
    }
    p = end + 1;
    start = g_ascii_strtoull(p, &end, 10);
    if (end == p || *end) {
        return false;
    }
    return process_start_time(pid) != start;
}

unsigned scratch_dir_reap(const char *base, const char *prog,
                          ScratchDirInUse in_use)
{
    g_autoptr(GDir) dir = g_dir_open(base, 0, NULL);
    const char *name;
    unsigned n = 0;

    if (!dir) {
        return 0;
    }
    while ((name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(base, name, NULL);

        if (!owner_gone(name, prog) ||
            !g_file_test(path, G_FILE_TEST_IS_DIR) ||
            g_file_test(path, G_FILE_TEST_IS_SYMLINK) ||
            (in_use && in_use(path))) {
            continue;
        }
        if (scratch_dir_remove(path)) {
            fprintf(stderr, "%s: removed %s, left by a %s that was killed\n",
                    prog, path, prog);
            n++;
        }
    }
    return n;
}

static int remove_one(const char *path, const struct stat *st, int type,
                      struct FTW *ftw)
{
    /* what cannot go stays; the caller sees the folder remain */
    if (type == FTW_DP) {
        rmdir(path);
    } else {
        unlink(path);
    }
    return 0;
}

bool scratch_dir_remove(const char *path)
{
    nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    return !g_file_test(path, G_FILE_TEST_EXISTS);
}
