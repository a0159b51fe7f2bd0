/*
 * qmp-cmds-block.c: the block commands of colo-secondary, with QEMU's
 * names, arguments and reply shapes: nbd-server-start/-add/-remove/-stop,
 * query-block, query-named-block-nodes, query-block-exports, and our
 * x-query-nbd-server.
 *
 * Owner: the main thread.
 */
#include "qemu/osdep.h"

#include "block/nbd.h"
#include "monitor/monitor.h"

static bool no_nbd(const MonitorContext *ctx, GError **errp)
{
    if (!ctx->nbd) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "this monitor has no NBD "
                    "server");
        return true;
    }
    return false;
}

/* An optional string member; false (error set) if present but not one. */
static bool opt_str(JsonObject *o, const char *name, const char **out,
                    GError **errp)
{
    JsonNode *n = json_object_get_member(o, name);

    *out = NULL;
    if (!n || JSON_NODE_HOLDS_NULL(n)) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' expects "
                    "string", name);
        return false;
    }
    *out = json_node_get_string(n);
    return true;
}

static bool opt_bool(JsonObject *o, const char *name, bool *out,
                     GError **errp)
{
    JsonNode *n = json_object_get_member(o, name);

    if (!n) {
        return true;
    }
    if (!JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_BOOLEAN) {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' expects "
                    "'bool'", name);
        return false;
    }
    *out = json_node_get_boolean(n);
    return true;
}

static bool only_members(JsonObject *o, const char *const *known,
                         GError **errp)
{
    g_autoptr(GList) m = json_object_get_members(o);

    for (GList *l = m; l; l = l->next) {
        if (!g_strv_contains(known, l->data)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' is "
                        "unexpected", (const char *)l->data);
            return false;
        }
    }
    return true;
}

/* SocketAddressLegacy: {"type": "inet", "data": {"host", "port"}} or
 * {"type": "unix", "data": {"path"}}; the flat SocketAddress form
 * ({"type": "inet", "host", "port"}) too. */
static bool parse_addr(JsonObject *args, NbdListenAddress *a, GError **errp)
{
    JsonNode *n = json_object_get_member(args, "addr");
    JsonObject *o, *data;
    const char *type, *host = NULL, *port = NULL, *path = NULL;

    if (!n || !JSON_NODE_HOLDS_OBJECT(n)) {
        g_set_error(errp, COLO_ERROR, EINVAL, n ? "Parameter 'addr' expects "
                    "object" : "Parameter 'addr' is missing");
        return false;
    }
    o = json_node_get_object(n);
    type = qmp_arg_str(o, "type", errp);
    if (!type) {
        return false;
    }
    data = o;
    if (json_object_has_member(o, "data")) {
        n = json_object_get_member(o, "data");
        if (!JSON_NODE_HOLDS_OBJECT(n)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'addr.data' "
                        "expects object");
            return false;
        }
        data = json_node_get_object(n);
    }
    if (!strcmp(type, "inet")) {
        if (!opt_str(data, "host", &host, errp) ||
            !opt_str(data, "port", &port, errp)) {
            return false;
        }
        if (!port) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'port' is "
                        "missing");
            return false;
        }
        a->host = g_strdup(host);
        a->port = g_strdup(port);
    } else if (!strcmp(type, "unix")) {
        if (!opt_str(data, "path", &path, errp)) {
            return false;
        }
        if (!path) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'path' is "
                        "missing");
            return false;
        }
        a->is_unix = true;
        a->path = g_strdup(path);
    } else {
        g_set_error(errp, COLO_ERROR, EINVAL, "NBD server address type '%s' "
                    "is not supported (inet, unix)", type);
        return false;
    }
    return true;
}

JsonNode *qmp_nbd_server_start(const MonitorContext *ctx, JsonObject *args,
                               GError **errp)
{
    static const char *const known[] = {
        "addr", "tls-creds", "tls-authz", "max-connections", NULL,
    };
    NbdListenAddress a = { 0 };
    const char *creds, *authz;

    if (no_nbd(ctx, errp) || !only_members(args, known, errp) ||
        !opt_str(args, "tls-creds", &creds, errp) ||
        !opt_str(args, "tls-authz", &authz, errp)) {
        return NULL;
    }
    if (ctx->sandboxed) {
        g_set_error(errp, COLO_ERROR, EPERM, "nbd-server-start is not "
                    "allowed here");
        return NULL;
    }
    if (parse_addr(args, &a, errp)) {
        nbd_server_start(ctx->nbd, &a, creds, authz, errp);
    }
    nbd_listen_address_clear(&a);
    return NULL;
}

JsonNode *qmp_nbd_server_add(const MonitorContext *ctx, JsonObject *args,
                             GError **errp)
{
    static const char *const known[] = {
        "device", "name", "writable", "description", NULL,
    };
    const char *device, *name;
    bool writable = false;

    if (no_nbd(ctx, errp) || !only_members(args, known, errp)) {
        return NULL;
    }
    device = qmp_arg_str(args, "device", errp);
    if (!device || !opt_str(args, "name", &name, errp) ||
        !opt_bool(args, "writable", &writable, errp)) {
        return NULL;
    }
    nbd_server_add(ctx->nbd, device, name, writable, errp);
    return NULL;
}

JsonNode *qmp_nbd_server_remove(const MonitorContext *ctx, JsonObject *args,
                                GError **errp)
{
    static const char *const known[] = { "name", "mode", NULL };
    const char *name, *mode;

    if (no_nbd(ctx, errp) || !only_members(args, known, errp)) {
        return NULL;
    }
    name = qmp_arg_str(args, "name", errp);
    if (!name || !opt_str(args, "mode", &mode, errp)) {
        return NULL;
    }
    if (mode && strcmp(mode, "safe") != 0 && strcmp(mode, "hard") != 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'mode' does not "
                    "accept value '%s'", mode);
        return NULL;
    }
    nbd_server_remove(ctx->nbd, name, mode && !strcmp(mode, "hard"), errp);
    return NULL;
}

JsonNode *qmp_nbd_server_stop(const MonitorContext *ctx, JsonObject *args,
                              GError **errp)
{
    if (no_nbd(ctx, errp)) {
        return NULL;
    }
    if (!nbd_server_running(ctx->nbd)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "NBD server not running");
        return NULL;
    }
    nbd_server_stop(ctx->nbd);
    return NULL;
}

/* BlockDeviceInfo of one node, with our cache figures as x-colo. */
static JsonObject *node_info(ColoDisk *d)
{
    JsonObject *o = json_object_new(), *img = json_object_new();
    JsonObject *x = json_object_new();
    ColoDiskStats st;

    colo_disk_stats(d, &st);
    json_object_set_string_member(o, "node-name", colo_disk_node(d));
    json_object_set_string_member(o, "file", colo_disk_filename(d));
    json_object_set_boolean_member(o, "ro", colo_disk_read_only(d));
    json_object_set_string_member(o, "drv", "file");
    json_object_set_boolean_member(o, "encrypted", FALSE);
    json_object_set_string_member(o, "detect_zeroes", "off");
    json_object_set_int_member(o, "bps", 0);
    json_object_set_int_member(o, "iops", 0);
    json_object_set_string_member(img, "filename", colo_disk_filename(d));
    json_object_set_string_member(img, "format", "file");
    json_object_set_int_member(img, "virtual-size", st.size);
    json_object_set_object_member(o, "image", img);
    json_object_set_boolean_member(x, "caching", st.caching);
    json_object_set_int_member(x, "open-pages", st.open_pages);
    json_object_set_int_member(x, "sealed-pages", st.sealed_pages);
    json_object_set_int_member(x, "cache-limit", st.cache_limit);
    json_object_set_int_member(x, "reads", st.reads);
    json_object_set_int_member(x, "writes", st.writes);
    json_object_set_int_member(x, "flushes", st.flushes);
    json_object_set_int_member(x, "bytes-read", st.bytes_read);
    json_object_set_int_member(x, "bytes-written", st.bytes_written);
    json_object_set_int_member(x, "direct-bytes", st.direct_bytes);
    json_object_set_int_member(x, "commits", st.commits);
    json_object_set_int_member(x, "last-commit-pages", st.last_commit_pages);
    json_object_set_int_member(x, "last-apply-us", st.last_apply_us);
    json_object_set_int_member(x, "discarded-pages", st.discarded_pages);
    json_object_set_object_member(o, "x-colo", x);
    return o;
}

JsonNode *qmp_query_block(const MonitorContext *ctx, JsonObject *args,
                          GError **errp)
{
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (guint i = 0; i < block_devices_count(ctx->disks); i++) {
        JsonObject *o = json_object_new();

        /* no guest device here: the nodes are what a failover QEMU gets */
        json_object_set_string_member(o, "device", "");
        json_object_set_boolean_member(o, "locked", FALSE);
        json_object_set_boolean_member(o, "removable", FALSE);
        json_object_set_string_member(o, "type", "unknown");
        json_object_set_object_member(o, "inserted", node_info(
            block_devices_nth(ctx->disks, i)));
        json_array_add_object_element(a, o);
    }
    json_node_take_array(n, a);
    return n;
}

JsonNode *qmp_query_named_block_nodes(const MonitorContext *ctx,
                                      JsonObject *args, GError **errp)
{
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (guint i = 0; i < block_devices_count(ctx->disks); i++) {
        json_array_add_object_element(a, node_info(
            block_devices_nth(ctx->disks, i)));
    }
    json_node_take_array(n, a);
    return n;
}

JsonNode *qmp_query_block_exports(const MonitorContext *ctx,
                                  JsonObject *args, GError **errp)
{
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    g_autoptr(GPtrArray) ex = ctx->nbd ? nbd_server_exports(ctx->nbd) : NULL;

    for (guint i = 0; ex && i < ex->len; i++) {
        NbdExportInfo *e = g_ptr_array_index(ex, i);
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "id", e->name);
        json_object_set_string_member(o, "type", "nbd");
        json_object_set_string_member(o, "node-name", e->node);
        json_object_set_boolean_member(o, "shutting-down", FALSE);
        json_array_add_object_element(a, o);
    }
    json_node_take_array(n, a);
    return n;
}

JsonNode *qmp_x_query_nbd_server(const MonitorContext *ctx, JsonObject *args,
                                 GError **errp)
{
    JsonObject *o = json_object_new();
    JsonArray *a = json_array_new();
    g_autoptr(GPtrArray) ex = ctx->nbd ? nbd_server_exports(ctx->nbd) : NULL;

    json_object_set_boolean_member(o, "running",
                                   ctx->nbd && nbd_server_running(ctx->nbd));
    if (ctx->nbd && nbd_server_port(ctx->nbd)) {
        json_object_set_int_member(o, "port", nbd_server_port(ctx->nbd));
    }
    for (guint i = 0; ex && i < ex->len; i++) {
        NbdExportInfo *e = g_ptr_array_index(ex, i);
        JsonObject *x = json_object_new();

        json_object_set_string_member(x, "name", e->name);
        json_object_set_string_member(x, "node-name", e->node);
        json_object_set_boolean_member(x, "writable", e->writable);
        json_object_set_int_member(x, "clients", e->clients);
        json_array_add_object_element(a, x);
    }
    json_object_set_array_member(o, "exports", a);
    return qmp_node_take_object(o);
}
