/*
 * json-limits.c: see include/qemu/json-limits.h.
 */
#include "qemu/osdep.h"

#include "qemu/json-limits.h"

bool json_check_nesting(const char *s, size_t len, unsigned limit,
                        GError **errp)
{
    unsigned depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '\0') {
            /* json-glib refuses text with a NUL byte (not UTF-8) before it
             * parses anything.  Stopping here keeps the scan as short as
             * that check: many VMDESCRIPTION candidates share one buffer,
             * and each candidate's header holds a NUL. */
            return true;
        }
        if (in_string) {
            if (c == '\\') {
                i++;            /* the escaped character, whatever it is */
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '[':
        case '{':
            if (++depth > limit) {
                g_set_error(errp, COLO_ERROR, E2BIG, "JSON nested deeper "
                            "than %u levels (at byte %zu)", limit, i);
                return false;
            }
            break;
        case ']':
        case '}':
            if (depth > 0) {
                depth--;
            }
            break;
        default:
            break;
        }
    }
    return true;
}
