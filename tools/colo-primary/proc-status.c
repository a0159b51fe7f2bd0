/*
 * proc-status.c: see proc-status.h.
 */
#include "qemu/osdep.h"

#include "tools/colo-primary/proc-status.h"

bool proc_status_field(int pid, const char *field, uint64_t *value)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
    g_autofree char *key = g_strdup_printf("\n%s:", field);
    g_autofree char *text = NULL;
    const char *p;

    if (!g_file_get_contents(path, &text, NULL, NULL) ||
        !(p = strstr(text, key))) {
        return false;
    }
    *value = g_ascii_strtoull(p + strlen(key), NULL, 10);
    return true;
}
