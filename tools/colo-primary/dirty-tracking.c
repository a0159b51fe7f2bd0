/*
 * dirty-tracking.c: soft-dirty or digests for a session (see
 * dirty-tracking.h).
 */
#include "qemu/osdep.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "tools/colo-primary/dirty-tracking.h"
#include "tools/colo-primary/proc-status.h"
#include "tools/colo-primary/soft-dirty.h"
#include "tools/colo-primary/uffd-wp.h"

bool dirty_tracking_parse(const char *s, DirtyTrackingMode *mode)
{
    static const char *const names[] = {
        [DIRTY_TRACKING_AUTO] = "auto",
        [DIRTY_TRACKING_DIGEST] = "digest",
        [DIRTY_TRACKING_SOFT_DIRTY] = "soft-dirty",
        [DIRTY_TRACKING_UFFD_WP] = "uffd-wp",
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
    uint64_t kib = 0;

    return proc_status_field(pid, "VmLck", &kib) ? kib * 1024 : 0;
}

/*
 * Another process that maps the RAM file shared and writable (a
 * vhost-user back end, say) writes guest RAM without QEMU: no tracker of
 * QEMU's writes sees that.  Its pid, or 0.
 */
static int other_writer(int qemu_pid, const char *ram_file)
{
    g_autoptr(GDir) proc = g_dir_open("/proc", 0, NULL);
    const char *name;
    struct stat st;

    if (!proc || stat(ram_file, &st) < 0) {
        return 0;
    }
    while ((name = g_dir_read_name(proc))) {
        int pid = (int)g_ascii_strtoll(name, NULL, 10);
        g_autofree char *path = NULL;
        g_autofree char *text = NULL;
        g_auto(GStrv) lines = NULL;

        if (pid <= 0 || pid == qemu_pid || pid == getpid()) {
            continue;
        }
        path = g_strdup_printf("/proc/%d/maps", pid);
        if (!g_file_get_contents(path, &text, NULL, NULL)) {
            continue;
        }
        lines = g_strsplit(text, "\n", -1);
        for (int i = 0; lines[i]; i++) {
            unsigned long long ino;
            unsigned int maj, min;
            char perms[5];

            if (sscanf(lines[i], "%*x-%*x %4s %*x %x:%x %llu", perms, &maj,
                       &min, &ino) == 4 && ino == st.st_ino &&
                maj == major(st.st_dev) && min == minor(st.st_dev) &&
                perms[1] == 'w' && perms[3] == 's') {
                return pid;
            }
        }
    }
    return 0;
}

/* NULL if QEMU's writes can be tracked at all (*@addr: its mapping),
 * else why not. */
static char *qemu_obstacle(int pid, const char *ram_file, uint64_t size,
                           uint64_t *addr)
{
    g_autoptr(GError) err = NULL;
    int writer;

    if (pid <= 0) {
        return g_strdup("QEMU's pid is unknown (--qemu-pid)");
    }
    if (!dirty_tracking_find_mapping(pid, ram_file, size, addr, &err)) {
        return g_strdup(err->message);
    }
    writer = other_writer(pid, ram_file);
    if (writer) {
        return g_strdup_printf("process %d also maps the RAM file writable: "
                               "its writes are not QEMU's", writer);
    }
    return NULL;
}

/* NULL if uffd-wp may be tried, else why not: the kernel's part (a
 * probe on memory of our own); QEMU's part shows when attaching. */
static char *uffd_wp_obstacle(QmpClient *qemu G_GNUC_UNUSED,
                              int pid G_GNUC_UNUSED,
                              uint64_t size G_GNUC_UNUSED,
                              DirtyTrackingMode mode G_GNUC_UNUSED)
{
    return uffd_wp_kernel_obstacle();
}

/* NULL if soft-dirty may be used, else why not. */
static char *soft_dirty_obstacle(QmpClient *qemu, int pid, uint64_t size,
                                 DirtyTrackingMode mode)
{
    if (!soft_dirty_works()) {
        return g_strdup("this kernel has no soft-dirty bits");
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

typedef struct TrackingMethod {
    DirtyTrackingMode mode;
    const char *name;
    char *(*obstacle)(QmpClient *qemu, int pid, uint64_t size,
                      DirtyTrackingMode mode);
    WriteTracker *(*attach)(int pid, uint64_t addr, uint64_t size,
                            GError **errp);
} TrackingMethod;

/* In the order auto tries them. */
static const TrackingMethod methods[] = {
    { DIRTY_TRACKING_UFFD_WP, "uffd-wp", uffd_wp_obstacle, uffd_wp_attach },
    { DIRTY_TRACKING_SOFT_DIRTY, "soft-dirty", soft_dirty_obstacle,
      soft_dirty_attach },
};

bool dirty_tracking_choose(DirtyScan *scan, QmpClient *qemu,
                           const char *ram_file, uint64_t size,
                           DirtyTrackingMode mode, int qemu_pid,
                           char **why, GError **errp)
{
    int pid = qemu_pid > 0 ? qemu_pid : qmp_client_peer_pid(qemu);
    g_autoptr(GString) refused = g_string_new(NULL);
    g_autofree char *common = NULL;
    uint64_t addr = 0;

    *why = NULL;
    dirty_scan_set_tracker(scan, NULL);
    if (mode == DIRTY_TRACKING_DIGEST) {
        *why = g_strdup("--dirty-tracking digest");
        return true;
    }
    common = qemu_obstacle(pid, ram_file, size, &addr);
    for (unsigned i = 0; i < G_N_ELEMENTS(methods); i++) {
        const TrackingMethod *m = &methods[i];
        g_autoptr(GError) err = NULL;
        g_autofree char *no = NULL;
        WriteTracker *t;

        if (mode != DIRTY_TRACKING_AUTO && mode != m->mode) {
            continue;
        }
        no = common ? g_strdup(common) : m->obstacle(qemu, pid, size, mode);
        if (!no) {
            t = m->attach(pid, addr, size, &err);
            if (t) {
                dirty_scan_set_tracker(scan, t);
                *why = refused->len ? g_strdup(refused->str) : NULL;
                return true;
            }
            no = g_strdup(err->message);
        }
        g_string_append_printf(refused, "%s%s: %s", refused->len ? "; " : "",
                               m->name, no);
    }
    if (mode != DIRTY_TRACKING_AUTO) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "--dirty-tracking %s",
                    refused->str);
        return false;
    }
    *why = g_strdup(refused->str);
    return true;
}
