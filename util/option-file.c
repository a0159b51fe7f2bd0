/*
 * option-file.c: see include/qemu/option-file.h.
 */
#include "qemu/osdep.h"

#include <glib/gstdio.h>

#include "qemu/option-file.h"

/* The option's name without its one or two dashes, or NULL. */
static const char *option_name(const char *arg)
{
    if (arg[0] != '-') {
        return NULL;
    }
    return arg + (arg[1] == '-' ? 2 : 1);
}

static bool is_config_option(const char *arg)
{
    const char *name = option_name(arg);

    return name && (g_str_equal(name, "config") ||
                    g_str_has_prefix(name, "config="));
}

/* The FILE of the -config argument at argv[*i]; *i moves past a separate
 * FILE argument.  NULL with @errp set if FILE is missing. */
static const char *config_file(int argc, char **argv, int *i, GError **errp)
{
    const char *name = option_name(argv[*i]);

    if (g_str_has_prefix(name, "config=")) {
        return name + strlen("config=");
    }
    if (*i + 1 >= argc) {
        g_set_error(errp, COLO_ERROR, EINVAL, "%s needs a file name",
                    argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static bool option_file_read(const char *path, GPtrArray *out, GError **errp)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    gsize len = 0;
    GStatBuf st;

    if (g_stat(path, &st) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "-config %s: %s", path,
                    g_strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > OPTION_FILE_MAX_BYTES) {
        g_set_error(errp, COLO_ERROR, EINVAL,
                    "-config %s: not a regular file of at most %d bytes",
                    path, OPTION_FILE_MAX_BYTES);
        return false;
    }
    if (!g_file_get_contents(path, &text, &len, errp)) {
        g_prefix_error(errp, "-config: ");
        return false;
    }
    if (len > OPTION_FILE_MAX_BYTES || memchr(text, '\0', len)) {
        g_set_error(errp, COLO_ERROR, EINVAL,
                    "-config %s: not a text file of at most %d bytes",
                    path, OPTION_FILE_MAX_BYTES);
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int n = 0; lines[n]; n++) {
        const char *line = lines[n];
        g_auto(GStrv) words = NULL;
        g_autoptr(GError) err = NULL;

        while (g_ascii_isspace(*line)) {
            line++;
        }
        if (!*line || *line == '#') {
            continue;
        }
        if (!g_shell_parse_argv(line, NULL, &words, &err)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-config %s:%d: %s", path,
                        n + 1, err->message);
            return false;
        }
        for (int k = 0; words[k]; k++) {
            if (is_config_option(words[k])) {
                g_set_error(errp, COLO_ERROR, EINVAL,
                            "-config %s:%d: an option file cannot name "
                            "another one", path, n + 1);
                return false;
            }
            g_ptr_array_add(out, g_strdup(words[k]));
        }
    }
    return true;
}

char **option_file_expand(int argc, char **argv, GError **errp)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);

    for (int i = 0; i < argc; i++) {
        const char *file;

        if (i == 0 || !is_config_option(argv[i])) {
            g_ptr_array_add(out, g_strdup(argv[i]));
            continue;
        }
        file = config_file(argc, argv, &i, errp);
        if (!file || !option_file_read(file, out, errp)) {
            return NULL;
        }
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(g_steal_pointer(&out), false);
}
