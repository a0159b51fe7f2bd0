/*
 * dirty-tracking.c: soft-dirty or digests for a session (see
 * dirty-tracking.h).
 */
#include "qemu/osdep.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "tools/colo-primary/dirty-tracking.h"

bool dirty_tracking_parse(const char *s, DirtyTrackingMode *mode)
{
    static const char *const names[] = {
        [DIRTY_TRACKING_AUTO] = "auto",
        [DIRTY_TRACKING_DIGEST] = "digest",
        [DIRTY_TRACKING_SOFT_DIRTY] = "soft-dirty",
    };

    for (unsigned i = 0; i < G_N_ELEMENTS(names); i++) {
        if (s && !strcmp(s, names[i])) {
            *mode = i;
            return true;
        }
    }
    return false;
}

bool dirty_tracking_find_mapping(int pid, const char *ram_file,
                                 uint64_t size, uint64_t *addr,
                                 GError **errp)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/maps", pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    struct stat st;

    if (stat(ram_file, &st) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "%s: %s", ram_file,
                    g_strerror(errno));
        return false;
    }
    if (!g_file_get_contents(path, &text, NULL, errp)) {
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i]; i++) {
        unsigned long long start, end, off, ino;
        unsigned int maj, min;
        char perms[5];

        /* start-end perms offset major:minor inode path */
        if (sscanf(lines[i], "%llx-%llx %4s %llx %x:%x %llu", &start, &end,
                   perms, &off, &maj, &min, &ino) != 7) {
            continue;
        }
        if (ino == st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev) && off == 0 && perms[3] == 's' &&
            end - start >= size) {
            *addr = start;
            return true;
        }
    }
    g_set_error(errp, COLO_ERROR, ENOENT, "process %d has no shared mapping "
                "of all of %s", pid, ram_file);
    return false;
}

/* Whether QEMU runs the guest with KVM (query-kvm). */
static bool qemu_uses_kvm(QmpClient *qemu)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) r = qmp_client_cmd(qemu, "query-kvm", NULL, &err);
    JsonObject *o = r && JSON_NODE_HOLDS_OBJECT(r) ?
                    json_node_get_object(r) : NULL;

    /* Unknown counts as KVM: the cautious side. */
    return !o || json_object_get_boolean_member_with_default(o, "enabled",
                                                             TRUE);
}

static bool swap_is_on(void)
{
    g_autofree char *text = NULL;

    if (!g_file_get_contents("/proc/swaps", &text, NULL, NULL)) {
        return true;
    }
    /* a header line, then one line per swap area */
    return strchr(text, '\n') && strchr(text, '\n')[1] != '\0';
}

static uint64_t locked_bytes(int pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL) ||
        !(p = strstr(text, "VmLck:"))) {
        return 0;
    }
    return g_ascii_strtoull(p + 6, NULL, 10) * 1024;
}

/* NULL if soft-dirty may be used, else why not. */
static char *soft_dirty_obstacle(QmpClient *qemu, int pid, uint64_t size,
                                 DirtyTrackingMode mode)
{
    if (!dirty_scan_soft_dirty_works()) {
        return g_strdup("this kernel has no soft-dirty bits");
    }
    if (pid <= 0) {
        return g_strdup("QEMU's pid is unknown (--qemu-pid)");
    }
    if (mode == DIRTY_TRACKING_SOFT_DIRTY) {
        return NULL;
    }
    if (qemu_uses_kvm(qemu)) {
        return g_strdup("QEMU uses KVM, whose writes were not measured to "
                        "set soft-dirty bits (--dirty-tracking soft-dirty "
                        "to use them anyway)");
    }
    if (swap_is_on() && locked_bytes(pid) < size) {
        return g_strdup("swap is on and QEMU's memory is not locked (a "
                        "page swapped out loses its soft-dirty bit; "
                        "-overcommit mem-lock=on)");
    }
    return NULL;
}

bool dirty_tracking_choose(DirtyScan *scan, QmpClient *qemu,
                           const char *ram_file, uint64_t size,
                           DirtyTrackingMode mode, int qemu_pid,
                           char **why, GError **errp)
{
    g_autoptr(GError) err = NULL;
    int pid = qemu_pid > 0 ? qemu_pid : qmp_client_peer_pid(qemu);
    uint64_t addr;

    *why = NULL;
    dirty_scan_detach_soft_dirty(scan);
    if (mode == DIRTY_TRACKING_DIGEST) {
        *why = g_strdup("--dirty-tracking digest");
        return true;
    }
    *why = soft_dirty_obstacle(qemu, pid, size, mode);
    if (!*why &&
        (!dirty_tracking_find_mapping(pid, ram_file, size, &addr, &err) ||
         !dirty_scan_attach_soft_dirty(scan, pid, addr, &err))) {
        *why = g_strdup(err->message);
    }
    if (*why && mode == DIRTY_TRACKING_SOFT_DIRTY) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "--dirty-tracking "
                    "soft-dirty: %s", *why);
        return false;
    }
    return true;
}
