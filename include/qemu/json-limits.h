/*
 * json-limits.h: bounds on JSON from untrusted peers, checked before a
 * recursive parser (json-glib) sees the text.
 *
 * json-glib descends once per nested array or object, so a document of
 * 100,000 '[' exhausts the stack of whatever thread parses it.  QEMU's
 * own JSON parser refuses nesting deeper than 1024; so do we, for QMP
 * requests, QMP replies from QEMU, and the VMDESCRIPTION of a stream.
 */
#ifndef QEMU_JSON_LIMITS_H
#define QEMU_JSON_LIMITS_H

#include "qemu/osdep.h"

/* Deepest nesting of arrays and objects we hand to a JSON parser. */
#define JSON_MAX_NESTING   1024

/* False (error set, naming the byte offset) if the JSON text @s of @len
 * bytes nests arrays and objects deeper than @limit.  Iterative; strings
 * and their escapes are skipped; it stops at a NUL byte, which json-glib
 * refuses before it parses anything; says nothing else about validity. */
bool json_check_nesting(const char *s, size_t len, unsigned limit,
                        GError **errp);

#endif /* QEMU_JSON_LIMITS_H */
