/*
 * test-json-input.c: the JSON front end (util/json-input.c) against fixed
 * cases and against random documents in every syntax json-glib accepts.
 *
 * The property: whatever the text, json_input_canonical() either refuses
 * it, or returns plain JSON that json-glib parses to the same value as
 * the document the generator meant, nested no deeper than the limit.
 * The generator knows the true depth and meaning of what it wrote (it
 * writes a plain twin of every document), so the oracle is not the code
 * under test.
 */
#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

#include "qemu/json-input.h"
#include "qemu/log.h"

static bool accepts(const char *text, unsigned flags)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *out = json_input_canonical(text, strlen(text), flags,
                                                NULL, &err);

    g_assert_true(!out == !!err);
    return out != NULL;
}

static void test_fixed(void)
{
    static const char *const good[] = {
        "{}", "[]", "0", "-0", "1.5e-3", "-12E+4", "true", "null",
        "\"a\\u00e9\\ud83d\\ude00\\n\"", " { \"a\" : [ 1 , { } ] } \r\n",
        "9223372036854775807", "-9223372036854775808", "{\"a\":1,\"b\":1}",
        "{\"a\":{\"a\":1}}", "[\"'\"]",
    };
    static const char *const bad[] = {
        "", "  ", "/* c */ {}", "{} // c", "{}/**/", "{'a':1}", "0x10",
        "010", "-", "1.", ".5", "1e", "+1", "[1,]", "{\"a\":1,}", "{a:1}",
        "[1] [2]", "tru", "truex", "nul", "NaN", "Infinity", "1e999",
        "-1e999", "9223372036854775808", "-9223372036854775809",
        "18446744073709551616", "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}",
        "\"\\ud800\"", "\"\\udc00\"", "\"\\u0000\"", "\"\\x41\"",
        "\"a\tb\"", "\"abc", "[", "{\"a\"", "{\"a\":", "\"\\u12\"",
        "[1 2]", "{\"a\" 1}", "\xff", "\"\xc3\"",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_assert_true(accepts(good[i], JSON_INPUT_STRICT));
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        if (accepts(bad[i], JSON_INPUT_STRICT)) {
            g_error("accepted: %s", bad[i]);
        }
    }
    /* QEMU's single quotes, with QEMU's escapes, only when asked for */
    g_assert_true(accepts("{'a':'\"','b':'\\''}", JSON_INPUT_SINGLE_QUOTES));
    g_assert_false(accepts("{'a':1}", JSON_INPUT_STRICT));
    g_assert_false(accepts("{'a':1,\"a\":2}", JSON_INPUT_SINGLE_QUOTES));
    /* uint64 figures from QEMU, on request */
    g_assert_true(accepts("18446744073709551615", JSON_INPUT_WIDE_INTEGERS));
    g_assert_false(accepts("1e999", JSON_INPUT_WIDE_INTEGERS));
}

static void test_canonical(void)
{
    g_autoptr(GError) err = NULL;
    const char *in = "{'a':'x\"y\\'z', \"b\":\"\\u0041\\/\\u0001\"}";
    g_autofree char *out = json_input_canonical(in, strlen(in),
                                                JSON_INPUT_SINGLE_QUOTES,
                                                NULL, &err);

    g_assert_no_error(err);
    g_assert_cmpstr(out, ==, "{\"a\":\"x\\\"y'z\",\"b\":\"A/\\u0001\"}");
}

/* The crashing inputs of the security review, and their cousins. */
static void test_deep(void)
{
    static const char *const heads[] = {
        "{'a':'\"','b':", "/* \" */ ", "{\"x\":\"'\",\"y\":", "// \"\n",
        "{'x':'\"','y':/* ' */", "",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(heads); i++) {
        for (int kind = 0; kind < 2; kind++) {
            g_autoptr(GString) s = g_string_new(heads[i]);
            g_autoptr(GError) err = NULL;
            g_autoptr(JsonNode) n = NULL;

            for (int k = 0; k < 1000000; k++) {
                g_string_append(s, kind ? "{\"a\":" : "[");
            }
            n = json_input_parse(s->str, s->len, JSON_INPUT_SINGLE_QUOTES,
                                 &err);
            g_assert_null(n);
            g_assert_nonnull(err);
        }
    }
}

/* --- random documents ---------------------------------------------------- */

typedef struct Gen {
    GRand *r;
    GString *fancy;     /* what a peer might send */
    GString *plain;     /* what it means, as plain JSON */
    bool single;        /* used single quotes */
    bool extension;     /* used something only json-glib accepts */
    unsigned max_depth;
} Gen;

static void gen_space(Gen *g)
{
    static const char *const spaces[] = { "", " ", "\n", "\t ", "\r\n" };

    g_string_append(g->fancy, spaces[g_rand_int_range(g->r, 0, 5)]);
    if (g_rand_int_range(g->r, 0, 40) == 0) {
        /* comments that hide quotes and brackets from a naive scanner */
        static const char *const comments[] = {
            "/* \" */", "/* ' [ */", "/**/", "// \"\n", "/* ] } */",
        };
        g_string_append(g->fancy, comments[g_rand_int_range(g->r, 0, 5)]);
        g->extension = true;
    }
}

static void gen_string(Gen *g)
{
    static const char chars[] = "ab\"'[]{}\\/ :,\n\x01\xc3\xa9";
    bool sq = g_rand_int_range(g->r, 0, 3) == 0;
    int n = g_rand_int_range(g->r, 0, 8);
    char q = sq ? '\'' : '"';

    g->single |= sq;
    g_string_append_c(g->fancy, q);
    g_string_append_c(g->plain, '"');
    for (int i = 0; i < n; i++) {
        int k = g_rand_int_range(g->r, 0, sizeof(chars) - 1);
        char c = chars[k];

        if (c == '\xc3') {      /* a two-byte character, whole */
            g_string_append(g->fancy, "\xc3\xa9");
            g_string_append(g->plain, "\xc3\xa9");
            continue;
        }
        if (c == '\xa9') {
            g_string_append(g->fancy, "\\u00e9");
            g_string_append(g->plain, "\xc3\xa9");
            continue;
        }
        if (c == q || c == '\\') {
            g_string_append_c(g->fancy, '\\');
            g_string_append_c(g->fancy, c);
        } else if (c == '\n') {
            g_string_append(g->fancy, "\\n");
        } else if (c == '\x01') {
            g_string_append(g->fancy, "\\u0001");
        } else {
            g_string_append_c(g->fancy, c);
        }
        if (c == '"' || c == '\\') {
            g_string_append_c(g->plain, '\\');
            g_string_append_c(g->plain, c);
        } else if (c == '\n') {
            g_string_append(g->plain, "\\n");
        } else if (c == '\x01') {
            g_string_append(g->plain, "\\u0001");
        } else {
            g_string_append_c(g->plain, c);
        }
    }
    g_string_append_c(g->fancy, q);
    g_string_append_c(g->plain, '"');
}

static void gen_scalar(Gen *g)
{
    switch (g_rand_int_range(g->r, 0, 6)) {
    case 0:
        gen_string(g);
        break;
    case 1: {
        gint64 v = (gint64)g_rand_int(g->r) - G_MAXINT32;

        g_string_append_printf(g->fancy, "%" G_GINT64_FORMAT, v);
        g_string_append_printf(g->plain, "%" G_GINT64_FORMAT, v);
        break;
    }
    case 2:
        g_string_append(g->fancy, "0x1f");     /* json-glib: 31 */
        g_string_append(g->plain, "31");
        g->extension = true;
        break;
    case 3:
        g_string_append(g->fancy, "2.5e3");
        g_string_append(g->plain, "2.5e3");
        break;
    default:
        g_string_append(g->fancy, "null");
        g_string_append(g->plain, "null");
    }
}

/* A value of at most @depth more levels (the generator recurses; its depth
 * is the test's to choose). */
static void gen_value(Gen *g, unsigned level, unsigned depth)
{
    bool obj = g_rand_boolean(g->r);
    int n;

    if (depth == 0 || (depth < 20 && g_rand_int_range(g->r, 0, 6) == 0)) {
        gen_scalar(g);
        return;
    }
    if (level + 1 > g->max_depth) {
        g->max_depth = level + 1;
    }
    n = g_rand_int_range(g->r, 1, 3);
    g_string_append_c(g->fancy, obj ? '{' : '[');
    g_string_append_c(g->plain, obj ? '{' : '[');
    for (int i = 0; i < n; i++) {
        gen_space(g);
        if (i) {
            g_string_append_c(g->fancy, ',');
            g_string_append_c(g->plain, ',');
            gen_space(g);
        }
        if (obj) {
            /* distinct keys; the quotes vary */
            bool sq = g_rand_boolean(g->r);

            g->single |= sq;
            g_string_append_printf(g->fancy, sq ? "'k%d'" : "\"k%d\"", i);
            g_string_append_printf(g->plain, "\"k%d\"", i);
            gen_space(g);
            g_string_append_c(g->fancy, ':');
            g_string_append_c(g->plain, ':');
            gen_space(g);
        }
        /* one chain goes deep, the rest stay shallow */
        gen_value(g, level + 1, i == 0 ? depth - 1 : MIN(depth - 1, 3));
    }
    gen_space(g);
    g_string_append_c(g->fancy, obj ? '}' : ']');
    g_string_append_c(g->plain, obj ? '}' : ']');
}

static void test_random(void)
{
    GRand *r = g_rand_new_with_seed(20261205);
    unsigned accepted = 0, refused = 0, too_deep = 0;

    for (int iter = 0; iter < 3000; iter++) {
        Gen g = { .r = r, .fancy = g_string_new(NULL),
                  .plain = g_string_new(NULL) };
        unsigned want = iter % 10 == 0 ? g_rand_int_range(r, 1000, 1050)
                                       : g_rand_int_range(r, 0, 12);
        unsigned flags = g_rand_boolean(r) ? JSON_INPUT_SINGLE_QUOTES
                                           : JSON_INPUT_STRICT;
        g_autoptr(GError) err = NULL;
        g_autoptr(JsonNode) got = NULL;

        gen_space(&g);
        gen_value(&g, 0, want);
        gen_space(&g);
        got = json_input_parse(g.fancy->str, g.fancy->len, flags, &err);
        if (g.max_depth > JSON_MAX_NESTING || g.extension ||
            (g.single && !(flags & JSON_INPUT_SINGLE_QUOTES))) {
            /* the bound holds, and nothing outside QEMU's JSON passes */
            if (got) {
                g_error("accepted (depth %u, extension %d): %.200s",
                        g.max_depth, g.extension, g.fancy->str);
            }
            refused++;
            too_deep += g.max_depth > JSON_MAX_NESTING;
        } else {
            g_autoptr(JsonParser) p = json_parser_new();

            if (!got) {
                g_error("refused %s: %.200s", err->message, g.fancy->str);
            }
            g_assert_true(json_parser_load_from_data(p, g.plain->str, -1,
                                                     NULL));
            g_assert_true(json_node_equal(got, json_parser_get_root(p)));
            accepted++;
        }
        g_string_free(g.fancy, TRUE);
        g_string_free(g.plain, TRUE);
    }
    g_test_message("%u accepted, %u refused (%u too deep)", accepted,
                   refused, too_deep);
    g_assert_cmpuint(too_deep, >, 50);
    g_assert_cmpuint(accepted, >, 500);
    g_assert_cmpuint(refused, >, 500);
    g_rand_free(r);
}

static void test_escape(void)
{
    g_autofree char *a = qemu_escape("ok\n\x1b[31mFAKE\\", 14, 100);
    g_autofree char *b = qemu_escape("abcdef", 6, 3);

    g_assert_cmpstr(a, ==, "ok\\x0a\\x1b[31mFAKE\\\\");
    g_assert_cmpstr(b, ==, "abc...");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-input/fixed", test_fixed);
    g_test_add_func("/json-input/canonical", test_canonical);
    g_test_add_func("/json-input/deep", test_deep);
    g_test_add_func("/json-input/random", test_random);
    g_test_add_func("/log/escape", test_escape);
    return g_test_run();
}
