/*
 * json-input.c: see include/qemu/json-input.h.
 *
 * One pass over the text with an explicit stack (never recursion): each
 * token is checked and written out in canonical form.  Objects keep the
 * set of their keys (decoded, so "a" and "\u0061" are one key) while
 * they are open.
 */
#include "qemu/osdep.h"

#include <math.h>

#include "qemu/json-input.h"
#include "qemu/log.h"

typedef enum Expect {
    EXPECT_VALUE,               /* a value, and nothing else */
    EXPECT_VALUE_OR_CLOSE,      /* just after '[' */
    EXPECT_KEY,                 /* after ',' in an object */
    EXPECT_KEY_OR_CLOSE,        /* just after '{' */
    EXPECT_COLON,
    EXPECT_COMMA_OR_CLOSE,      /* after a member or an element */
    EXPECT_END,                 /* after the top-level value */
} Expect;

typedef struct Level {
    char kind;                  /* '{' or '[' */
    GHashTable *keys;           /* objects: the keys so far */
    char *key;                  /* objects: the member being read */
} Level;

typedef struct Scanner {
    const char *text;
    size_t len;
    size_t pos;
    unsigned flags;
    GString *out;
    Level stack[JSON_MAX_NESTING];
    unsigned depth;
} Scanner;

static bool fail(Scanner *s, GError **errp, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static bool fail(Scanner *s, GError **errp, const char *fmt, ...)
{
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, COLO_ERROR, EINVAL, "%s (at byte %zu)", what, s->pos);
    return false;
}

/* What the byte at the scanner's position is, for a message. */
static char *describe_here(Scanner *s)
{
    if (s->pos >= s->len) {
        return g_strdup("the end of the text");
    }
    g_autofree char *c = qemu_escape(s->text + s->pos, 1, 1);

    return g_strdup_printf("'%s'", c);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = g_ascii_tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool read_hex4(Scanner *s, size_t at, gunichar *out)
{
    gunichar v = 0;

    if (at + 4 > s->len) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        int h = hex_value(s->text[at + i]);

        if (h < 0) {
            return false;
        }
        v = v << 4 | h;
    }
    *out = v;
    return true;
}

/* Appends @ch to the canonical output, escaped where JSON wants it. */
static void put_char(GString *out, gunichar ch)
{
    switch (ch) {
    case '"':
        g_string_append(out, "\\\"");
        break;
    case '\\':
        g_string_append(out, "\\\\");
        break;
    case '\n':
        g_string_append(out, "\\n");
        break;
    case '\t':
        g_string_append(out, "\\t");
        break;
    case '\r':
        g_string_append(out, "\\r");
        break;
    default:
        if (ch < 0x20) {
            g_string_append_printf(out, "\\u%04x", ch);
        } else {
            g_string_append_unichar(out, ch);
        }
    }
}

/*
 * The string starting at the quote under the position; canonical form to
 * s->out, and its decoded text to @decoded if not NULL.
 */
static bool scan_string(Scanner *s, GString *decoded, GError **errp)
{
    char quote = s->text[s->pos];
    size_t start = s->pos;

    g_string_append_c(s->out, '"');
    s->pos++;
    for (;;) {
        const char *p = s->text + s->pos;
        gunichar ch;

        if (s->pos >= s->len) {
            s->pos = start;
            return fail(s, errp, "string not terminated");
        }
        if (*p == quote) {
            s->pos++;
            break;
        }
        if ((unsigned char)*p < 0x20) {
            return fail(s, errp, "control character 0x%02x in a string",
                        (unsigned char)*p);
        }
        if (*p != '\\') {
            /* UTF-8 was checked for the whole text */
            ch = g_utf8_get_char(p);
            s->pos = g_utf8_next_char(p) - s->text;
        } else {
            if (s->pos + 1 >= s->len) {
                return fail(s, errp, "string not terminated");
            }
            switch (p[1]) {
            case '"': ch = '"'; break;
            case '\'': ch = '\''; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u':
                if (!read_hex4(s, s->pos + 2, &ch)) {
                    return fail(s, errp, "\\u needs four hexadecimal digits");
                }
                if (ch >= 0xdc00 && ch <= 0xdfff) {
                    return fail(s, errp, "\\u%04x is half of a surrogate "
                                "pair without its first half", ch);
                }
                if (ch >= 0xd800 && ch <= 0xdbff) {
                    gunichar lo;

                    if (s->pos + 12 > s->len || p[6] != '\\' || p[7] != 'u' ||
                        !read_hex4(s, s->pos + 8, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff) {
                        return fail(s, errp, "\\u%04x is not followed by the "
                                    "second half of its surrogate pair", ch);
                    }
                    ch = 0x10000 + ((ch - 0xd800) << 10) + (lo - 0xdc00);
                    s->pos += 6;
                }
                if (ch == 0) {
                    return fail(s, errp, "\\u0000 in a string");
                }
                s->pos += 4;
                break;
            default: {
                g_autofree char *e = qemu_escape(p + 1, 1, 1);

                return fail(s, errp, "unknown escape \\%s in a string", e);
            }
            }
            s->pos += 2;
        }
        put_char(s->out, ch);
        if (decoded) {
            g_string_append_unichar(decoded, ch);
        }
    }
    g_string_append_c(s->out, '"');
    return true;
}

static bool scan_digits(Scanner *s)
{
    size_t start = s->pos;

    while (s->pos < s->len && g_ascii_isdigit(s->text[s->pos])) {
        s->pos++;
    }
    return s->pos > start;
}

/* The member a value at this depth belongs to, for messages. */
static char *where(Scanner *s)
{
    const Level *l = s->depth ? &s->stack[s->depth - 1] : NULL;

    if (l && l->kind == '{' && l->key) {
        g_autofree char *k = qemu_escape(l->key, strlen(l->key), 64);

        return g_strdup_printf("member '%s': ", k);
    }
    return g_strdup("");
}

static bool scan_number(Scanner *s, GError **errp)
{
    size_t start = s->pos;
    bool integer = true;
    g_autofree char *tok = NULL;
    g_autofree char *member = NULL;

    if (s->text[s->pos] == '-') {
        s->pos++;
    }
    if (s->pos < s->len && s->text[s->pos] == '0') {
        s->pos++;
        if (s->pos < s->len && g_ascii_isalnum(s->text[s->pos]) &&
            s->text[s->pos] != 'e' && s->text[s->pos] != 'E') {
            return fail(s, errp, "a number with a leading zero or a "
                        "radix prefix is not JSON");
        }
    } else if (!scan_digits(s)) {
        return fail(s, errp, "'-' without digits");
    }
    if (s->pos < s->len && s->text[s->pos] == '.') {
        s->pos++;
        integer = false;
        if (!scan_digits(s)) {
            return fail(s, errp, "no digits after the decimal point");
        }
    }
    if (s->pos < s->len && (s->text[s->pos] == 'e' ||
                            s->text[s->pos] == 'E')) {
        s->pos++;
        integer = false;
        if (s->pos < s->len && (s->text[s->pos] == '+' ||
                                s->text[s->pos] == '-')) {
            s->pos++;
        }
        if (!scan_digits(s)) {
            return fail(s, errp, "no digits in the exponent");
        }
    }
    if (s->pos < s->len && (g_ascii_isalnum(s->text[s->pos]) ||
                            s->text[s->pos] == '.')) {
        g_autofree char *here = describe_here(s);

        return fail(s, errp, "a number runs into %s", here);
    }
    tok = g_strndup(s->text + start, s->pos - start);
    member = where(s);
    if (integer) {
        gint64 v;

        if (!g_ascii_string_to_signed(tok, 10, G_MININT64, G_MAXINT64, &v,
                                      NULL) &&
            (s->flags & JSON_INPUT_WIDE_INTEGERS) &&
            isfinite(g_ascii_strtod(tok, NULL))) {
            g_string_append_printf(s->out, "%s.0", tok);
            return true;
        }
        if (!g_ascii_string_to_signed(tok, 10, G_MININT64, G_MAXINT64, &v,
                                      NULL)) {
            s->pos = start;
            return fail(s, errp, "%sthe integer %.40s%s is out of range "
                        "(%" G_GINT64_FORMAT " to %" G_GINT64_FORMAT ")",
                        member, tok, strlen(tok) > 40 ? "..." : "",
                        G_MININT64, G_MAXINT64);
        }
    } else if (!isfinite(g_ascii_strtod(tok, NULL))) {
        s->pos = start;
        return fail(s, errp, "%sthe number %.40s%s is out of range", member,
                    tok, strlen(tok) > 40 ? "..." : "");
    }
    g_string_append(s->out, tok);
    return true;
}

static bool scan_word(Scanner *s, GError **errp)
{
    static const char *const words[] = { "true", "false", "null" };

    for (size_t i = 0; i < G_N_ELEMENTS(words); i++) {
        size_t n = strlen(words[i]);

        if (s->len - s->pos >= n && !memcmp(s->text + s->pos, words[i], n) &&
            (s->pos + n == s->len || !g_ascii_isalnum(s->text[s->pos + n]))) {
            g_string_append(s->out, words[i]);
            s->pos += n;
            return true;
        }
    }
    {
        g_autofree char *here = describe_here(s);

        return fail(s, errp, "unexpected %s", here);
    }
}

static void level_clear(Level *l)
{
    if (l->keys) {
        g_hash_table_unref(l->keys);
    }
    g_free(l->key);
    memset(l, 0, sizeof(*l));
}

static bool push(Scanner *s, char kind, GError **errp)
{
    Level *l;

    if (s->depth >= JSON_MAX_NESTING) {
        return fail(s, errp, "JSON nested deeper than %u levels",
                    JSON_MAX_NESTING);
    }
    l = &s->stack[s->depth++];
    l->kind = kind;
    if (kind == '{') {
        l->keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        NULL);
    }
    g_string_append_c(s->out, kind);
    s->pos++;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_quote(Scanner *s, char c)
{
    return c == '"' ||
           (c == '\'' && (s->flags & JSON_INPUT_SINGLE_QUOTES));
}

/* A value under the position: a scalar whole, or a container opened. */
static bool scan_value(Scanner *s, bool *opened, GError **errp)
{
    char c = s->text[s->pos];

    *opened = false;
    if (c == '{' || c == '[') {
        *opened = true;
        return push(s, c, errp);
    }
    if (is_quote(s, c)) {
        return scan_string(s, NULL, errp);
    }
    if (c == '-' || g_ascii_isdigit(c)) {
        return scan_number(s, errp);
    }
    if (c == '/') {
        return fail(s, errp, "comments are not JSON");
    }
    if (c == '\'') {
        return fail(s, errp, "single-quoted strings are not accepted here");
    }
    return scan_word(s, errp);
}

static bool scan_key(Scanner *s, GError **errp)
{
    Level *l = &s->stack[s->depth - 1];
    g_autoptr(GString) key = g_string_new(NULL);
    size_t at = s->pos;

    if (!scan_string(s, key, errp)) {
        return false;
    }
    if (g_hash_table_contains(l->keys, key->str)) {
        g_autofree char *k = qemu_escape(key->str, key->len, 64);

        s->pos = at;
        return fail(s, errp, "duplicate key '%s'", k);
    }
    g_free(l->key);
    l->key = g_strdup(key->str);
    g_hash_table_add(l->keys, g_string_free(g_steal_pointer(&key), FALSE));
    return true;
}

static bool scan(Scanner *s, GError **errp)
{
    Expect expect = EXPECT_VALUE;

    for (;;) {
        char c;

        while (s->pos < s->len && is_space(s->text[s->pos])) {
            s->pos++;
        }
        if (s->pos >= s->len) {
            if (expect == EXPECT_END) {
                return true;
            }
            return fail(s, errp, s->pos == 0 || !s->out->len ? "no JSON "
                        "value" : "the text ends inside a JSON value");
        }
        c = s->text[s->pos];
        switch (expect) {
        case EXPECT_VALUE_OR_CLOSE:
        case EXPECT_KEY_OR_CLOSE:
        case EXPECT_COMMA_OR_CLOSE:
            if (c == (s->stack[s->depth - 1].kind == '{' ? '}' : ']')) {
                level_clear(&s->stack[--s->depth]);
                g_string_append_c(s->out, c);
                s->pos++;
                expect = s->depth ? EXPECT_COMMA_OR_CLOSE : EXPECT_END;
                continue;
            }
            if (expect == EXPECT_COMMA_OR_CLOSE) {
                if (c != ',') {
                    g_autofree char *here = describe_here(s);

                    return fail(s, errp, "expected ',' or '%c', found %s",
                                s->stack[s->depth - 1].kind == '{' ? '}' : ']',
                                here);
                }
                g_string_append_c(s->out, c);
                s->pos++;
                expect = s->stack[s->depth - 1].kind == '{' ? EXPECT_KEY
                                                            : EXPECT_VALUE;
                continue;
            }
            expect = expect == EXPECT_KEY_OR_CLOSE ? EXPECT_KEY : EXPECT_VALUE;
            /* the first key or element: handled below */
            /* fall through */
        case EXPECT_KEY:
        case EXPECT_VALUE:
            if (expect == EXPECT_KEY) {
                if (!is_quote(s, c)) {
                    g_autofree char *here = describe_here(s);

                    return fail(s, errp, "expected a key in quotes, found %s",
                                here);
                }
                if (!scan_key(s, errp)) {
                    return false;
                }
                expect = EXPECT_COLON;
            } else {
                bool opened;

                if (!scan_value(s, &opened, errp)) {
                    return false;
                }
                expect = opened ? (c == '{' ? EXPECT_KEY_OR_CLOSE
                                            : EXPECT_VALUE_OR_CLOSE)
                       : s->depth ? EXPECT_COMMA_OR_CLOSE : EXPECT_END;
            }
            continue;
        case EXPECT_COLON:
            if (c != ':') {
                g_autofree char *here = describe_here(s);

                return fail(s, errp, "expected ':', found %s", here);
            }
            g_string_append_c(s->out, c);
            s->pos++;
            expect = EXPECT_VALUE;
            continue;
        case EXPECT_END:
            return fail(s, errp, "%s after the JSON value",
                        c == '/' ? "a comment" : "more text");
        }
    }
}

char *json_input_canonical(const char *text, size_t len, unsigned flags,
                           size_t *out_len, GError **errp)
{
    Scanner *s;
    const char *bad = NULL;
    char *result = NULL;
    bool ok;

    if (memchr(text, '\0', len)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "NUL byte in JSON text (at "
                    "byte %zu)", (size_t)((const char *)memchr(text, '\0',
                                                                len) - text));
        return NULL;
    }
    if (!g_utf8_validate_len(text, len, &bad)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "JSON text is not UTF-8 (at "
                    "byte %zu)", (size_t)(bad - text));
        return NULL;
    }
    s = g_new0(Scanner, 1);
    s->text = text;
    s->len = len;
    s->flags = flags;
    s->out = g_string_sized_new(len + 16);
    ok = scan(s, errp);
    while (s->depth) {
        level_clear(&s->stack[--s->depth]);
    }
    if (ok) {
        if (out_len) {
            *out_len = s->out->len;
        }
        result = g_string_free(s->out, FALSE);
    } else {
        g_string_free(s->out, TRUE);
    }
    g_free(s);
    return result;
}

JsonNode *json_input_parse(const char *text, size_t len, unsigned flags,
                           GError **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autofree char *canon = NULL;
    size_t clen;

    canon = json_input_canonical(text, len, flags, &clen, errp);
    if (!canon) {
        return NULL;
    }
    if (!json_parser_load_from_data(parser, canon, clen, errp)) {
        return NULL;    /* not expected: the text is plain JSON by now */
    }
    return json_parser_steal_root(parser);
}
