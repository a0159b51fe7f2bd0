/*
 * qmp-cmds.c: the QMP commands colo-standby answers, with QEMU's names,
 * arguments and reply shapes.
 *
 * Owner: the main thread.
 */
#include "qemu/osdep.h"

#include "migration/migration.h"
#include "monitor/monitor.h"

JsonNode *qmp_node_take_object(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(n, o);
    return n;
}

JsonObject *qmp_colo_status_object(COLOMode mode, COLOMode last_mode,
                                   COLOExitReason reason,
                                   uint64_t checkpoints)
{
    JsonObject *o = json_object_new();

    json_object_set_string_member(o, "mode", colo_mode_name(mode));
    json_object_set_string_member(o, "last-mode", colo_mode_name(last_mode));
    json_object_set_string_member(o, "reason", colo_exit_reason_name(reason));
    json_object_set_int_member(o, "x-checkpoints", checkpoints);
    return o;
}

/* Reads an unsigned integer argument; false (error set) if malformed. */
bool qmp_arg_uint(JsonObject *args, const char *name, uint64_t *out,
                  GError **errp)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_INT64 ||
        json_node_get_int(n) < 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' expects "
                    "an integer from 0 to %" G_GINT64_FORMAT, name,
                    G_MAXINT64);
        return false;
    }
    *out = json_node_get_int(n);
    return true;
}

const char *qmp_arg_str(JsonObject *args, const char *name, GError **errp)
{
    JsonNode *n = json_object_get_member(args, name);

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_STRING) {
        g_set_error(errp, COLO_ERROR, EINVAL, n ? "Parameter '%s' expects "
                    "string" : "Parameter '%s' is missing", name);
        return NULL;
    }
    return json_node_get_string(n);
}

const char *qmp_arg_uri(JsonObject *args, GError **errp)
{
    if (json_object_has_member(args, "channels")) {
        g_set_error(errp, COLO_ERROR, EINVAL, "'channels' is not supported; "
                    "use 'uri'");
        return NULL;
    }
    return qmp_arg_str(args, "uri", errp);
}

static JsonNode *qmp_query_version(const MonitorContext *ctx,
                                   JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new(), *q = json_object_new();
    g_auto(GStrv) v = g_strsplit(COLO_VERSION_STRING, ".", 3);

    (void)ctx;
    (void)args;
    (void)errp;
    json_object_set_int_member(q, "major", atoi(v[0]));
    json_object_set_int_member(q, "minor", atoi(v[1]));
    json_object_set_int_member(q, "micro", atoi(v[2]));
    json_object_set_object_member(o, "qemu", q);
    json_object_set_string_member(o, "package", "colo-standby "
                                  COLO_VERSION_STRING);
    return qmp_node_take_object(o);
}

static JsonNode *qmp_query_status(const MonitorContext *ctx,
                                  JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();

    (void)args;
    (void)errp;
    json_object_set_boolean_member(o, "running", FALSE);
    json_object_set_boolean_member(o, "singlestep", FALSE);
    json_object_set_string_member(o, "status",
                                  migration_incoming_runstate(ctx->mis));
    return qmp_node_take_object(o);
}

static JsonNode *qmp_query_name(const MonitorContext *ctx, JsonObject *args,
                                GError **errp)
{
    JsonObject *o = json_object_new();

    (void)args;
    (void)errp;
    if (ctx->name) {
        json_object_set_string_member(o, "name", ctx->name);
    }
    return qmp_node_take_object(o);
}

static JsonNode *qmp_query_migrate(const MonitorContext *ctx,
                                   JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    MigrationInfo info;

    (void)args;
    (void)errp;
    migration_incoming_query(ctx->mis, &info);
    if (info.status == MIGRATION_STATUS_NONE) {
        migration_info_clear(&info);
        return qmp_node_take_object(o);
    }
    json_object_set_string_member(o, "status",
                                  migration_status_name(info.status));
    if (info.status != MIGRATION_STATUS_SETUP) {
        JsonObject *ram = json_object_new();
        uint64_t pages = info.ram.normal + info.ram.duplicate +
                         info.ram.xbzrle + info.ram.compressed;

        json_object_set_int_member(ram, "transferred", info.transferred);
        json_object_set_int_member(ram, "remaining", 0);
        json_object_set_int_member(ram, "total", info.total);
        json_object_set_int_member(ram, "duplicate", info.ram.duplicate);
        json_object_set_int_member(ram, "normal", info.ram.normal);
        json_object_set_int_member(ram, "normal-bytes", info.ram.normal_bytes);
        json_object_set_int_member(ram, "skipped", 0);
        json_object_set_int_member(ram, "dirty-sync-count", 0);
        json_object_set_int_member(ram, "page-size", 4096);
        json_object_set_int_member(ram, "pages-per-second",
                                   (int64_t)info.pages_per_second);
        json_object_set_double_member(ram, "mbps", info.mbps);
        json_object_set_int_member(ram, "precopy-bytes", info.transferred);
        json_object_set_int_member(ram, "x-pages", pages);
        json_object_set_int_member(ram, "x-xbzrle-pages", info.ram.xbzrle);
        json_object_set_int_member(ram, "x-compressed-pages",
                                   info.ram.compressed);
        json_object_set_object_member(o, "ram", ram);
        json_object_set_int_member(o, "total-time", info.total_time_ms);
    }
    if (info.error_desc) {
        json_object_set_string_member(o, "error-desc", info.error_desc);
    }
    if (info.refused) {
        json_object_set_int_member(o, "x-refused-connections", info.refused);
        json_object_set_string_member(o, "x-last-refusal", info.last_refusal);
    }
    if (info.socket_host) {
        JsonArray *a = json_array_new();
        JsonObject *s = json_object_new();
        g_autofree char *port = g_strdup_printf("%d", info.socket_port);

        json_object_set_string_member(s, "type", "inet");
        json_object_set_string_member(s, "host", info.socket_host);
        json_object_set_string_member(s, "port", port);
        json_object_set_boolean_member(s, info.socket_ipv6 ? "ipv6" : "ipv4",
                                       TRUE);
        json_array_add_object_element(a, s);
        json_object_set_array_member(o, "socket-address", a);
    } else if (info.socket_path) {
        JsonArray *a = json_array_new();
        JsonObject *s = json_object_new();

        json_object_set_string_member(s, "type", "unix");
        json_object_set_string_member(s, "path", info.socket_path);
        json_array_add_object_element(a, s);
        json_object_set_array_member(o, "socket-address", a);
    }
    migration_info_clear(&info);
    return qmp_node_take_object(o);
}

bool qmp_arg_capabilities(JsonObject *args,
                          bool caps[MIGRATION_CAPABILITY__MAX],
                          GError **errp)
{
    JsonNode *n = json_object_get_member(args, "capabilities");
    JsonArray *a;

    if (!n || !JSON_NODE_HOLDS_ARRAY(n)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'capabilities' "
                    "expects array");
        return false;
    }
    a = json_node_get_array(n);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *en = json_array_get_element(a, i);
        JsonObject *e = JSON_NODE_HOLDS_OBJECT(en) ?
                        json_node_get_object(en) : NULL;
        JsonNode *state = e ? json_object_get_member(e, "state") : NULL;
        const char *name;
        int cap;

        if (!e) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Invalid parameter type "
                        "for 'capabilities[%u]', expected: object", i);
            return false;
        }
        name = qmp_arg_str(e, "capability", errp);
        if (!name) {
            return false;
        }
        cap = migration_capability_lookup(name);
        if (cap < 0) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'capability' "
                        "does not accept value '%s'", name);
            return false;
        }
        if (!state || !JSON_NODE_HOLDS_VALUE(state) ||
            json_node_get_value_type(state) != G_TYPE_BOOLEAN) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'state' expects "
                        "boolean");
            return false;
        }
        caps[cap] = json_node_get_boolean(state);
    }
    return true;
}

static JsonNode *qmp_migrate_set_capabilities(const MonitorContext *ctx,
                                              JsonObject *args, GError **errp)
{
    MigrationOptions *opts = migration_incoming_options(ctx->mis);
    bool caps[MIGRATION_CAPABILITY__MAX];

    if (!migration_incoming_options_mutable(ctx->mis, errp)) {
        return NULL;
    }
    memcpy(caps, opts->caps, sizeof(caps));
    if (!qmp_arg_capabilities(args, caps, errp) ||
        !migration_capabilities_check(caps, errp)) {
        return NULL;
    }
    memcpy(opts->caps, caps, sizeof(caps));
    return NULL;
}

static JsonNode *qmp_query_migrate_capabilities(const MonitorContext *ctx,
                                                JsonObject *args,
                                                GError **errp)
{
    MigrationOptions *opts = migration_incoming_options(ctx->mis);
    JsonArray *a = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    (void)args;
    (void)errp;
    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        JsonObject *o;

        if (migration_capability_primary_only(i)) {
            continue;
        }
        o = json_object_new();
        json_object_set_string_member(o, "capability",
                                      migration_capability_name(i));
        json_object_set_boolean_member(o, "state", opts->caps[i]);
        json_array_add_object_element(a, o);
    }
    json_node_take_array(n, a);
    return n;
}

bool qmp_arg_parameters(JsonObject *args, MigrationOptions *o,
                        uint64_t *set, GError **errp)
{
    g_autoptr(GList) names = json_object_get_members(args);

    *set = 0;
    for (GList *l = names; l; l = l->next) {
        int p = migration_parameter_lookup(l->data);
        int sp = migration_str_parameter_lookup(l->data);
        uint64_t v;

        if (sp >= 0) {
            JsonNode *n = json_object_get_member(args, l->data);

            if (!JSON_NODE_HOLDS_NULL(n) &&
                (!JSON_NODE_HOLDS_VALUE(n) ||
                 json_node_get_value_type(n) != G_TYPE_STRING)) {
                g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' "
                            "expects a string or null", (char *)l->data);
                return false;
            }
            if (!migration_str_parameter_set(o, sp, JSON_NODE_HOLDS_NULL(n) ?
                                             NULL : json_node_get_string(n),
                                             errp)) {
                return false;
            }
            *set |= 1ull << (MIGRATION_PARAMETER__MAX + sp);
            continue;
        }
        if (p < 0) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' is "
                        "unexpected", (const char *)l->data);
            return false;
        }
        if (!qmp_arg_uint(args, l->data, &v, errp) ||
            !migration_parameter_check(p, v, errp)) {
            return false;
        }
        o->params[p] = v;
        *set |= 1ull << p;
    }
    return true;
}

void qmp_parameters_to_object(const MigrationOptions *o, JsonObject *out)
{
    for (int i = 0; i < MIGRATION_PARAMETER__MAX; i++) {
        if (!migration_parameter_primary_only(i)) {
            json_object_set_int_member(out, migration_parameter_name(i),
                                       o->params[i]);
        }
    }
    for (int i = 0; i < MIGRATION_STR_PARAMETER__MAX; i++) {
        json_object_set_string_member(out, migration_str_parameter_name(i),
                                      o->strs[i]);
    }
}

static JsonNode *qmp_migrate_set_parameters(const MonitorContext *ctx,
                                            JsonObject *args, GError **errp)
{
    MigrationOptions *opts = migration_incoming_options(ctx->mis);
    MigrationOptions next = *opts;
    uint64_t set;

    if (!qmp_arg_parameters(args, &next, &set, errp)) {
        return NULL;
    }
    for (int i = 0; i < MIGRATION_PARAMETER__MAX; i++) {
        if ((set & (1ull << i)) && migration_parameter_primary_only(i)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' is "
                        "unexpected (it is colo-primary's)",
                        migration_parameter_name(i));
            return NULL;
        }
    }
    *opts = next;
    return NULL;
}

static JsonNode *qmp_query_migrate_parameters(const MonitorContext *ctx,
                                              JsonObject *args, GError **errp)
{
    MigrationOptions *opts = migration_incoming_options(ctx->mis);
    JsonObject *o = json_object_new();

    (void)args;
    (void)errp;
    qmp_parameters_to_object(opts, o);
    return qmp_node_take_object(o);
}

static JsonNode *qmp_migrate_incoming(const MonitorContext *ctx,
                                      JsonObject *args, GError **errp)
{
    const char *uri = qmp_arg_uri(args, errp);

    if (!uri) {
        return NULL;
    }
    if (ctx->sandboxed) {
        g_set_error(errp, COLO_ERROR, EPERM, "migrate-incoming is disabled");
        return NULL;
    }
    migration_incoming_start(ctx->mis, uri, errp);
    return NULL;
}

static JsonNode *qmp_query_colo_status(const MonitorContext *ctx,
                                       JsonObject *args, GError **errp)
{
    JsonObject *o;
    ColoStatusInfo info;

    (void)args;
    (void)errp;
    migration_incoming_colo_status(ctx->mis, &info);
    o = qmp_colo_status_object(info.mode, info.last_mode, info.reason,
                               info.checkpoints);
    json_object_set_boolean_member(o, "x-in-checkpoint", info.in_checkpoint);
    json_object_set_int_member(o, "x-last-commit-us", info.last_commit_us);
    json_object_set_int_member(o, "x-last-checkpoint-us", info.last_total_us);
    json_object_set_int_member(o, "x-last-ram-pages", info.last_ram_pages);
    json_object_set_int_member(o, "x-last-device-bytes",
                               info.last_device_bytes);
    json_object_set_int_member(o, "x-cache-reserved-bytes",
                               info.cache_reserved);
    json_object_set_int_member(o, "x-last-flushed-pages",
                               info.last_flushed_pages);
    json_object_set_int_member(o, "x-last-journal-us", info.last_journal_us);
    json_object_set_int_member(o, "x-last-flush-us", info.last_flush_us);
    json_object_set_int_member(o, "x-last-disk-pages", info.last_disk_pages);
    json_object_set_int_member(o, "x-last-disk-us", info.last_disk_us);
    if (info.recovered) {
        JsonObject *r = json_object_new();

        json_object_set_int_member(r, "checkpoint",
                                   info.recovered_checkpoint);
        json_object_set_boolean_member(r, "replayed",
                                       info.recovered_replayed);
        json_object_set_int_member(r, "replayed-pages", info.recovered_pages);
        json_object_set_object_member(o, "x-recovered", r);
    }
    if (ctx->colo_status) {
        ctx->colo_status(ctx->opaque, o);
    }
    return qmp_node_take_object(o);
}

static JsonNode *qmp_x_colo_lost_heartbeat(const MonitorContext *ctx,
                                           JsonObject *args, GError **errp)
{
    (void)args;
    migration_incoming_colo_failover(ctx->mis, errp);
    return NULL;
}

static JsonNode *qmp_quit(const MonitorContext *ctx, JsonObject *args,
                          GError **errp)
{
    (void)args;
    (void)errp;
    if (ctx->quit && !ctx->sandboxed) {
        ctx->quit(ctx->opaque);
    }
    return NULL;
}

static JsonNode *qmp_query_commands(const MonitorContext *ctx,
                                    JsonObject *args, GError **errp);

static const QmpCommand qmp_commands[] = {
    { "query-version", qmp_query_version },
    { "query-status", qmp_query_status },
    { "query-name", qmp_query_name },
    { "query-commands", qmp_query_commands },
    { "query-migrate", qmp_query_migrate },
    { "migrate-set-capabilities", qmp_migrate_set_capabilities },
    { "query-migrate-capabilities", qmp_query_migrate_capabilities },
    { "migrate-set-parameters", qmp_migrate_set_parameters },
    { "query-migrate-parameters", qmp_query_migrate_parameters },
    { "migrate-incoming", qmp_migrate_incoming },
    { "query-colo-status", qmp_query_colo_status },
    { "x-colo-lost-heartbeat", qmp_x_colo_lost_heartbeat },
    { "nbd-server-start", qmp_nbd_server_start },
    { "nbd-server-add", qmp_nbd_server_add },
    { "nbd-server-remove", qmp_nbd_server_remove },
    { "nbd-server-stop", qmp_nbd_server_stop },
    { "query-block", qmp_query_block },
    { "query-named-block-nodes", qmp_query_named_block_nodes },
    { "query-block-exports", qmp_query_block_exports },
    { "x-query-nbd-server", qmp_x_query_nbd_server },
    { "quit", qmp_quit },
};

static JsonNode *qmp_query_commands(const MonitorContext *ctx,
                                    JsonObject *args, GError **errp)
{
    (void)args;
    (void)errp;
    return qmp_list_commands(ctx);
}

JsonNode *qmp_list_commands(const MonitorContext *ctx)
{
    const QmpCommand *table = ctx->commands ? ctx->commands : qmp_commands;
    size_t n = ctx->commands ? ctx->n_commands : G_N_ELEMENTS(qmp_commands);
    JsonArray *a = json_array_new();
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);
    JsonObject *cap = json_object_new();

    json_object_set_string_member(cap, "name", "qmp_capabilities");
    json_array_add_object_element(a, cap);
    for (size_t i = 0; i < n; i++) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "name", table[i].name);
        json_array_add_object_element(a, o);
    }
    json_node_take_array(node, a);
    return node;
}

QmpCommandFn qmp_find_command(const MonitorContext *ctx, const char *name)
{
    const QmpCommand *table = ctx->commands ? ctx->commands : qmp_commands;
    size_t n = ctx->commands ? ctx->n_commands : G_N_ELEMENTS(qmp_commands);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) == 0) {
            return table[i].fn;
        }
    }
    return NULL;
}
