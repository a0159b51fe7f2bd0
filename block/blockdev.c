/*
 * blockdev.c: the -blockdev nodes of colo-secondary (see blockdev.h).
 */
#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

#include "block/blockdev.h"
#include "qemu/json-input.h"

struct BlockDevices {
    char *ram_dir;
    GPtrArray *disks;           /* of ColoDisk */
};

BlockDevices *block_devices_new(const char *ram_dir)
{
    BlockDevices *bd = g_new0(BlockDevices, 1);

    bd->ram_dir = g_strdup(ram_dir);
    bd->disks = g_ptr_array_new_with_free_func(
        (GDestroyNotify)colo_disk_close);
    return bd;
}

void block_devices_free(BlockDevices *bd)
{
    if (!bd) {
        return;
    }
    g_ptr_array_unref(bd->disks);
    g_free(bd->ram_dir);
    g_free(bd);
}

bool block_node_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > BLOCK_NODE_NAME_MAX || !g_ascii_isalpha(name[0])) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        if (!g_ascii_isalnum(name[i]) && !strchr("-._", name[i])) {
            return false;
        }
    }
    return true;
}

/* The options of one -blockdev as key -> value strings. */
static GHashTable *spec_parse(const char *spec, GError **errp)
{
    g_autoptr(GHashTable) kv = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                     g_free, g_free);

    if (spec[0] == '{') {
        g_autoptr(JsonNode) root = json_input_parse(spec, strlen(spec),
                                                    JSON_INPUT_STRICT, errp);
        JsonObject *o;
        g_autoptr(GList) members = NULL;

        if (!root) {
            g_prefix_error(errp, "-blockdev: ");
            return NULL;
        }
        if (!JSON_NODE_HOLDS_OBJECT(root)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: expected a "
                        "JSON object");
            return NULL;
        }
        o = json_node_get_object(root);
        members = json_object_get_members(o);
        for (GList *l = members; l; l = l->next) {
            JsonNode *n = json_object_get_member(o, l->data);
            JsonObject *file;

            if (JSON_NODE_HOLDS_OBJECT(n) && !strcmp(l->data, "file")) {
                /* {"file": {"driver": "file", "filename": ...}} */
                g_autoptr(GList) fm = NULL;

                file = json_node_get_object(n);
                fm = json_object_get_members(file);
                for (GList *f = fm; f; f = f->next) {
                    JsonNode *v = json_object_get_member(file, f->data);

                    if (!JSON_NODE_HOLDS_VALUE(v)) {
                        continue;
                    }
                    g_hash_table_insert(kv, g_strconcat("file.", f->data,
                                                        NULL),
                                        json_node_get_value_type(v) ==
                                        G_TYPE_BOOLEAN ? g_strdup(
                                            json_node_get_boolean(v) ? "on" :
                                            "off") :
                                        g_strdup(json_node_get_string(v) ?
                                                 json_node_get_string(v) :
                                                 ""));
                }
                continue;
            }
            if (!JSON_NODE_HOLDS_VALUE(n)) {
                g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: '%s' "
                            "must be a string, number or boolean",
                            (const char *)l->data);
                return NULL;
            }
            if (json_node_get_value_type(n) == G_TYPE_BOOLEAN) {
                g_hash_table_insert(kv, g_strdup(l->data), g_strdup(
                                    json_node_get_boolean(n) ? "on" : "off"));
            } else if (json_node_get_value_type(n) == G_TYPE_INT64) {
                g_hash_table_insert(kv, g_strdup(l->data), g_strdup_printf(
                                    "%" G_GINT64_FORMAT,
                                    json_node_get_int(n)));
            } else {
                g_hash_table_insert(kv, g_strdup(l->data),
                                    g_strdup(json_node_get_string(n)));
            }
        }
        return g_steal_pointer(&kv);
    }
    /* key=value,key=value with ",," for a comma inside a value */
    for (const char *p = spec; *p;) {
        const char *eq = strchr(p, '=');
        GString *val = g_string_new(NULL);
        char *key;

        if (!eq || eq == p) {
            g_string_free(val, TRUE);
            g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: expected "
                        "key=value in '%s'", p);
            return NULL;
        }
        key = g_strndup(p, eq - p);
        for (p = eq + 1; *p; p++) {
            if (*p == ',' && p[1] == ',') {
                g_string_append_c(val, ',');
                p++;
            } else if (*p == ',') {
                p++;
                break;
            } else {
                g_string_append_c(val, *p);
            }
        }
        g_hash_table_insert(kv, key, g_string_free(val, FALSE));
    }
    return g_steal_pointer(&kv);
}

static bool spec_bool(GHashTable *kv, const char *key, bool *out,
                      GError **errp)
{
    const char *v = g_hash_table_lookup(kv, key);

    if (!v) {
        return true;
    }
    if (!strcmp(v, "on") || !strcmp(v, "true")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "false")) {
        *out = false;
    } else {
        g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: %s=%s: expected on "
                    "or off", key, v);
        return false;
    }
    return true;
}

bool block_devices_add_spec(BlockDevices *bd, const char *spec,
                            GError **errp)
{
    static const char *const known[] = {
        "driver", "node-name", "filename", "read-only", "x-cache-size",
        "file.driver", "file.filename", "file.aio", "aio", "cache.direct",
        "cache.no-flush", "file.cache.direct", "discard", "file.locking",
        "locking", "auto-read-only", NULL,
    };
    g_autoptr(GHashTable) kv = spec_parse(spec, errp);
    const char *driver, *node, *filename;
    uint64_t cache = COLO_DISK_CACHE_DEFAULT;
    bool ro = false;
    GHashTableIter it;
    gpointer k;
    ColoDisk *d;

    if (!kv) {
        return false;
    }
    g_hash_table_iter_init(&it, kv);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        if (!g_strv_contains(known, k)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: unknown option "
                        "'%s' (colo-secondary takes raw images: driver=file "
                        "or driver=raw over file)", (const char *)k);
            return false;
        }
    }
    driver = g_hash_table_lookup(kv, "driver");
    node = g_hash_table_lookup(kv, "node-name");
    if (!driver || (strcmp(driver, "file") != 0 && strcmp(driver, "raw") != 0)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: driver '%s' is not "
                    "supported (file, or raw over file)",
                    driver ? driver : "(none)");
        return false;
    }
    if (!strcmp(driver, "raw")) {
        const char *fd = g_hash_table_lookup(kv, "file.driver");

        if (fd && strcmp(fd, "file") != 0) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: file.driver "
                        "'%s' is not supported (file)", fd);
            return false;
        }
        filename = g_hash_table_lookup(kv, "file.filename");
    } else {
        filename = g_hash_table_lookup(kv, "filename");
    }
    if (!node || !block_node_name_valid(node)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev: node-name '%s' is "
                    "not valid (a letter, then letters, digits, '-', '.', "
                    "'_'; at most %d characters)", node ? node : "(none)",
                    BLOCK_NODE_NAME_MAX);
        return false;
    }
    if (!filename || !filename[0]) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev %s: no filename",
                    node);
        return false;
    }
    if (block_devices_find(bd, node)) {
        g_set_error(errp, COLO_ERROR, EEXIST, "-blockdev: duplicate node name "
                    "'%s'", node);
        return false;
    }
    if (!spec_bool(kv, "read-only", &ro, errp)) {
        return false;
    }
    if (g_hash_table_lookup(kv, "x-cache-size")) {
        const char *v = g_hash_table_lookup(kv, "x-cache-size");
        guint64 mib;

        if (!g_ascii_string_to_unsigned(v, 10, 1, 1 << 20, &mib, NULL)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-blockdev %s: x-cache-size "
                        "'%s' is not a size in MiB (1 to 1048576)", node, v);
            return false;
        }
        cache = mib << 20;
    }
    d = colo_disk_open(node, filename, ro, bd->ram_dir, cache, errp);
    if (!d) {
        g_prefix_error(errp, "-blockdev %s: ", node);
        return false;
    }
    g_ptr_array_add(bd->disks, d);
    return true;
}

guint block_devices_count(const BlockDevices *bd)
{
    return bd ? bd->disks->len : 0;
}

ColoDisk *block_devices_nth(const BlockDevices *bd, guint i)
{
    return g_ptr_array_index(bd->disks, i);
}

ColoDisk *block_devices_find(const BlockDevices *bd, const char *node)
{
    for (guint i = 0; i < block_devices_count(bd); i++) {
        ColoDisk *d = block_devices_nth(bd, i);

        if (!strcmp(colo_disk_node(d), node)) {
            return d;
        }
    }
    return NULL;
}

void block_devices_set_direct_write_hook(BlockDevices *bd, void (*fn)(void *),
                                         void *opaque)
{
    for (guint i = 0; i < block_devices_count(bd); i++) {
        colo_disk_set_direct_write_hook(block_devices_nth(bd, i), fn, opaque);
    }
}

void block_devices_start_caching(BlockDevices *bd)
{
    for (guint i = 0; i < block_devices_count(bd); i++) {
        colo_disk_start_caching(block_devices_nth(bd, i));
    }
}

void block_devices_seal(BlockDevices *bd, uint64_t number)
{
    for (guint i = 0; i < block_devices_count(bd); i++) {
        colo_disk_seal(block_devices_nth(bd, i), number);
    }
}

void block_devices_discard(BlockDevices *bd)
{
    for (guint i = 0; i < block_devices_count(bd); i++) {
        colo_disk_discard(block_devices_nth(bd, i));
    }
}
