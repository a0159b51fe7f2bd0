/*
 * json-input.h: JSON text from untrusted peers, checked and rewritten
 * into plain RFC 8259 JSON before a recursive parser (json-glib) sees it.
 *
 * json-glib accepts more than JSON: single-quoted strings (without
 * QEMU's escapes), C comments, hexadecimal and octal-looking numbers,
 * integers that silently wrap, duplicate keys (the last one wins).  A
 * nesting check that does not tokenize exactly as json-glib does can be
 * fooled by any of these ("'\"'" hides every bracket after it), and
 * json-glib descends once per level: enough '[' exhaust the stack.
 *
 * So nothing reaches json-glib but the output of one iterative scanner
 * that knows the whole grammar.  It refuses, with the byte offset:
 *   - text that is not UTF-8, or holds a NUL byte;
 *   - anything outside RFC 8259: comments, bare words, hexadecimal,
 *     leading zeros, a second top-level value, trailing commas;
 *   - nesting of arrays and objects deeper than JSON_MAX_NESTING;
 *   - a key that appears twice in one object (QEMU refuses those too);
 *   - integers outside int64 and numbers that are not finite, naming the
 *     member they belong to;
 *   - control characters in strings, "\u0000" and unpaired surrogates.
 * With JSON_INPUT_SINGLE_QUOTES it also takes QEMU's single-quoted
 * strings (QMP accepts them), with QEMU's meaning: escapes work in them
 * and "\'" is a quote.  The output has double-quoted strings only, with
 * every \u escape decoded, so the parser's view and ours cannot differ.
 */
#ifndef QEMU_JSON_INPUT_H
#define QEMU_JSON_INPUT_H

#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

/* Deepest nesting of arrays and objects we accept (QEMU's own limit). */
#define JSON_MAX_NESTING   1024

typedef enum JsonInputFlags {
    JSON_INPUT_STRICT = 0,
    JSON_INPUT_SINGLE_QUOTES = 1 << 0,  /* QEMU's 'strings' as well */
    /* integers outside int64 (QEMU's uint64 figures) become floating
     * point numbers instead of an error */
    JSON_INPUT_WIDE_INTEGERS = 1 << 1,
} JsonInputFlags;

/*
 * The canonical form of the @len bytes at @text (NUL-terminated, its
 * length in *@out_len if not NULL), or NULL with @errp set to the defect
 * and its byte offset.  The output is never longer than twice the input.
 */
char *json_input_canonical(const char *text, size_t len, unsigned flags,
                           size_t *out_len, GError **errp);

/*
 * Checks and parses @text: the root node (any JSON value; the caller
 * unrefs it) or NULL with @errp set.
 */
JsonNode *json_input_parse(const char *text, size_t len, unsigned flags,
                           GError **errp);

#endif /* QEMU_JSON_INPUT_H */
