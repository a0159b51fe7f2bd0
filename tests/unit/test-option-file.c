/*
 * test-option-file.c: -config FILE (util/option-file.c).  The expected
 * argument vectors are written out by hand, as a shell would split the
 * same lines.
 */
#include "qemu/osdep.h"

#include <glib/gstdio.h>

#include "qemu/option-file.h"

static char *tmp_dir;

static char *write_file(const char *name, const char *text, gssize len)
{
    char *path = g_build_filename(tmp_dir, name, NULL);

    g_assert_true(g_file_set_contents(path, text, len, NULL));
    return path;
}

/* expands argv and compares it with the words of @want, joined by '|' */
static void expect(char **argv, const char *want)
{
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) got = option_file_expand(g_strv_length(argv), argv, &err);
    g_autofree char *joined = NULL;

    g_assert_no_error(err);
    joined = g_strjoinv("|", got);
    g_assert_cmpstr(joined, ==, want);
}

static void expect_error(char **argv, const char *part)
{
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) got = option_file_expand(g_strv_length(argv), argv, &err);

    g_assert_null(got);
    g_assert_nonnull(err);
    if (!strstr(err->message, part)) {
        g_error("'%s' does not say '%s'", err->message, part);
    }
}

static void test_expand(void)
{
    g_autofree char *f = write_file("vm1.conf",
        "# the standby of vm1\n"
        "\n"
        "-incoming tcp:0.0.0.0:9998   -once\n"
        "   -failover-args '-bios /usr/share/x.bin -serial \"file:/a b\"'\n"
        "-name \"vm one\"\t-x 'a#1'\n", -1);
    g_autofree char *eq = g_strdup_printf("--config=%s", f);
    char *sep[] = { "prog", "-ram-dir", "/d", "-config", f, "-once", NULL };
    char *joined[] = { "prog", eq, NULL };
    char *none[] = { "prog", "-name", "-config.x", NULL };

    expect(sep, "prog|-ram-dir|/d|-incoming|tcp:0.0.0.0:9998|-once|"
           "-failover-args|-bios /usr/share/x.bin -serial \"file:/a b\"|"
           "-name|vm one|-x|a#1|-once");
    expect(joined, "prog|-incoming|tcp:0.0.0.0:9998|-once|-failover-args|"
           "-bios /usr/share/x.bin -serial \"file:/a b\"|-name|vm one|-x|"
           "a#1");
    expect(none, "prog|-name|-config.x");
}

static void test_refused(void)
{
    g_autofree char *nested = write_file("nested.conf", "-once\n"
                                         "--config=other.conf\n", -1);
    g_autofree char *quote = write_file("quote.conf", "-name 'vm\n", -1);
    g_autofree char *nul = write_file("nul.conf", "-once\0-x", 8);
    g_autofree char *big_text = g_strnfill(OPTION_FILE_MAX_BYTES + 1, 'a');
    g_autofree char *big = write_file("big.conf", big_text, -1);
    g_autofree char *missing = g_build_filename(tmp_dir, "none", NULL);
    char *a[] = { "prog", "-config", nested, NULL };
    char *b[] = { "prog", "-config", quote, NULL };
    char *c[] = { "prog", "-config", nul, NULL };
    char *d[] = { "prog", "-config", big, NULL };
    char *e[] = { "prog", "-config", missing, NULL };
    char *f[] = { "prog", "-once", "--config", NULL };
    char *g[] = { "prog", "-config", tmp_dir, NULL };

    expect_error(a, "nested.conf:2: an option file cannot name another");
    expect_error(b, "quote.conf:1: ");
    expect_error(c, "not a text file");
    expect_error(d, "at most 65536 bytes");
    expect_error(e, "No such file");
    expect_error(f, "--config needs a file name");
    expect_error(g, "not a regular file");
}

int main(int argc, char **argv)
{
    int rc;

    g_test_init(&argc, &argv, NULL);
    tmp_dir = g_dir_make_tmp("test-option-file-XXXXXX", NULL);
    g_assert_nonnull(tmp_dir);
    g_test_add_func("/option-file/expand", test_expand);
    g_test_add_func("/option-file/refused", test_refused);
    rc = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmp_dir);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));
    g_free(tmp_dir);
    return rc;
}
