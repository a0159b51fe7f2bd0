/*
 * agent-qmp.c: colo-primary's QMP commands.  QEMU's names, arguments and
 * reply shapes where QEMU has the command (a COLO primary's vocabulary),
 * x- members for figures QEMU does not report.
 *
 * Owner: the main thread.
 */
#include "qemu/osdep.h"

#include "tools/colo-primary/agent.h"

static Agent *agent_of(const MonitorContext *ctx)
{
    return ctx->opaque;
}

static JsonNode *qmp_migrate_set_capabilities(const MonitorContext *ctx,
                                              JsonObject *args, GError **errp)
{
    Agent *a = agent_of(ctx);
    bool caps[MIGRATION_CAPABILITY__MAX];

    if (agent_session_active(a)) {
        g_set_error(errp, COLO_ERROR, EBUSY, "There's a migration process "
                    "in progress");
        return NULL;
    }
    memcpy(caps, a->opts.caps, sizeof(caps));
    if (!qmp_arg_capabilities(args, caps, errp)) {
        return NULL;
    }
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        if (caps[c] && c != MIGRATION_CAPABILITY_X_COLO &&
            c != MIGRATION_CAPABILITY_XBZRLE &&
            c != MIGRATION_CAPABILITY_EVENTS &&
            c != MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER) {
            g_set_error(errp, COLO_ERROR, ENOTSUP, "capability %s is not "
                        "supported by colo-primary (it has x-colo, xbzrle, "
                        "events and x-colo-output-trigger)",
                        migration_capability_name(c));
            return NULL;
        }
    }
    memcpy(a->opts.caps, caps, sizeof(caps));
    return NULL;
}

static JsonNode *qmp_query_migrate_capabilities(const MonitorContext *ctx,
                                                JsonObject *args,
                                                GError **errp)
{
    Agent *a = agent_of(ctx);
    static const MigrationCapability shown[] = {
        MIGRATION_CAPABILITY_XBZRLE, MIGRATION_CAPABILITY_EVENTS,
        MIGRATION_CAPABILITY_X_COLO,
        MIGRATION_CAPABILITY_X_COLO_OUTPUT_TRIGGER,
    };
    JsonArray *arr = json_array_new();
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);

    for (size_t i = 0; i < G_N_ELEMENTS(shown); i++) {
        JsonObject *o = json_object_new();

        json_object_set_string_member(o, "capability",
                                      migration_capability_name(shown[i]));
        json_object_set_boolean_member(o, "state", a->opts.caps[shown[i]]);
        json_array_add_object_element(arr, o);
    }
    json_node_take_array(n, arr);
    return n;
}

static JsonNode *qmp_migrate_set_parameters(const MonitorContext *ctx,
                                            JsonObject *args, GError **errp)
{
    Agent *a = agent_of(ctx);
    MigrationOptions next;
    uint64_t set = 0;
    const uint64_t str0 = 1ull << MIGRATION_PARAMETER__MAX;
    const uint64_t ours = (1ull << MIGRATION_PARAMETER_X_CHECKPOINT_DELAY) |
                          (1ull << MIGRATION_PARAMETER_X_CHECKPOINT_MIN_GAP) |
                          (1ull << MIGRATION_PARAMETER_X_CHECKPOINT_COALESCE) |
                          (1ull << MIGRATION_PARAMETER_X_CHECKPOINT_ACK_DELAY) |
                          (1ull << MIGRATION_PARAMETER_X_LINK_STALL_LIMIT) |
                          (1ull << MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE) |
                          (str0 << MIGRATION_PARAMETER_TLS_CREDS) |
                          (str0 << MIGRATION_PARAMETER_TLS_HOSTNAME);

    next = a->opts;
    if (!qmp_arg_parameters(args, &next, &set, errp)) {
        return NULL;
    }
    if (set & ~ours) {
        for (int p = 0; p < MIGRATION_PARAMETER__MAX +
             MIGRATION_STR_PARAMETER__MAX; p++) {
            if (set & ~ours & (1ull << p)) {
                g_set_error(errp, COLO_ERROR, ENOTSUP, "Parameter '%s' is "
                            "not used by colo-primary",
                            p < MIGRATION_PARAMETER__MAX ?
                            migration_parameter_name(p) :
                            migration_str_parameter_name(
                                p - MIGRATION_PARAMETER__MAX));
                return NULL;
            }
        }
    }
    memcpy(a->opts.params, next.params, sizeof(next.params));
    memcpy(a->opts.strs, next.strs, sizeof(next.strs));
    /* as QEMU does: a new delay takes effect with a checkpoint now */
    agent_params_changed(a, set & (1u <<
                                   MIGRATION_PARAMETER_X_CHECKPOINT_DELAY));
    return NULL;
}

static JsonNode *qmp_query_migrate_parameters(const MonitorContext *ctx,
                                              JsonObject *args, GError **errp)
{
    Agent *a = agent_of(ctx);
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "x-checkpoint-delay", a->opts.params[
        MIGRATION_PARAMETER_X_CHECKPOINT_DELAY]);
    json_object_set_int_member(o, "x-checkpoint-min-gap", a->opts.params[
        MIGRATION_PARAMETER_X_CHECKPOINT_MIN_GAP]);
    json_object_set_int_member(o, "x-checkpoint-coalesce", a->opts.params[
        MIGRATION_PARAMETER_X_CHECKPOINT_COALESCE]);
    json_object_set_int_member(o, "x-checkpoint-ack-delay", a->opts.params[
        MIGRATION_PARAMETER_X_CHECKPOINT_ACK_DELAY]);
    json_object_set_int_member(o, "x-link-stall-limit", a->opts.params[
        MIGRATION_PARAMETER_X_LINK_STALL_LIMIT]);
    json_object_set_int_member(o, "xbzrle-cache-size", a->opts.params[
        MIGRATION_PARAMETER_XBZRLE_CACHE_SIZE]);
    json_object_set_string_member(o, "tls-creds", a->opts.strs[
        MIGRATION_PARAMETER_TLS_CREDS]);
    json_object_set_string_member(o, "tls-hostname", a->opts.strs[
        MIGRATION_PARAMETER_TLS_HOSTNAME]);
    return qmp_node_take_object(o);
}

static JsonNode *qmp_migrate(const MonitorContext *ctx, JsonObject *args,
                             GError **errp)
{
    Agent *a = agent_of(ctx);
    const char *uri = qmp_arg_uri(args, errp);
    bool colo;

    if (!uri) {
        return NULL;
    }
    if (!g_str_has_prefix(uri, "tcp:") && !g_str_has_prefix(uri, "unix:")) {
        g_set_error(errp, COLO_ERROR, EINVAL, "uri '%s': colo-primary "
                    "connects to tcp:HOST:PORT or unix:PATH", uri);
        return NULL;
    }
    colo = a->opts.caps[MIGRATION_CAPABILITY_X_COLO];
    if (!colo) {
        g_set_error(errp, COLO_ERROR, EINVAL, "colo-primary only runs COLO: "
                    "set the x-colo capability first");
        return NULL;
    }
    if (ctx->sandboxed) {
        g_set_error(errp, COLO_ERROR, EPERM, "migrate is disabled");
        return NULL;
    }
    agent_session_start(a, uri, errp);
    return NULL;
}

static JsonNode *qmp_migrate_cancel(const MonitorContext *ctx,
                                    JsonObject *args, GError **errp)
{
    agent_session_stop(agent_of(ctx), MIGRATION_STATUS_CANCELLED);
    return NULL;
}

/* query-migrate's "x-colo-net-buffer": the VM's held output. */
static JsonObject *net_buffer_object(const SessionInfo *info)
{
    JsonObject *n = json_object_new();
    const NetBufferStats *st = &info->net;

    json_object_set_string_member(n, "netdevs", info->net_netdevs ?
                                  info->net_netdevs : "");
    json_object_set_int_member(n, "packets-held", st->packets_held);
    json_object_set_int_member(n, "bytes-held", st->bytes_held);
    json_object_set_int_member(n, "packets-held-peak", st->packets_held_peak);
    json_object_set_int_member(n, "packets-released", st->packets_released);
    json_object_set_int_member(n, "bytes-released", st->bytes_released);
    json_object_set_int_member(n, "release-latency-mean-us",
                               st->latency_mean_us);
    json_object_set_int_member(n, "release-latency-max-us",
                               st->latency_max_us);
    json_object_set_int_member(n, "buffers-added", st->buffers_added);
    json_object_set_int_member(n, "rotations", st->rotations);
    json_object_set_int_member(n, "early-checkpoints", st->early_checkpoints);
    json_object_set_int_member(n, "pure-acks", st->pure_acks);
    return n;
}

static JsonNode *qmp_query_migrate(const MonitorContext *ctx,
                                   JsonObject *args, GError **errp)
{
    JsonObject *o = json_object_new();
    JsonObject *ram;
    AgentInfo info;
    const SessionInfo *si = &info.session;

    agent_query(agent_of(ctx), &info);
    if (si->status == MIGRATION_STATUS_NONE) {
        agent_info_clear(&info);
        return qmp_node_take_object(o);
    }
    json_object_set_string_member(o, "status",
                                  migration_status_name(si->status));
    json_object_set_int_member(o, "total-time", si->total_time_ms);
    if (si->error_desc) {
        json_object_set_string_member(o, "error-desc", si->error_desc);
    }
    ram = json_object_new();
    json_object_set_int_member(ram, "transferred", si->total_bytes);
    json_object_set_int_member(ram, "total", info.ram_size);
    json_object_set_int_member(ram, "remaining", 0);
    json_object_set_int_member(ram, "page-size", TARGET_PAGE_SIZE);
    json_object_set_int_member(ram, "dirty-sync-count", si->checkpoints);
    json_object_set_object_member(o, "ram", ram);
    if (info.xbzrle) {
        JsonObject *x = json_object_new();

        json_object_set_int_member(x, "cache-size", info.xbzrle_cache_size);
        json_object_set_int_member(x, "pages", si->xbzrle_pages);
        json_object_set_object_member(o, "xbzrle-cache", x);
    }
    json_object_set_int_member(o, "x-colo-checkpoints", si->checkpoints);
    json_object_set_int_member(o, "x-colo-last-pause-us", si->last.pause_us);
    json_object_set_int_member(o, "x-colo-last-checkpoint-us",
                               si->last.total_us);
    json_object_set_int_member(o, "x-colo-last-dirty-pages",
                               si->last.dirty_pages);
    json_object_set_int_member(o, "x-colo-last-dirty-bytes",
                               si->last.dirty_pages * TARGET_PAGE_SIZE);
    json_object_set_int_member(o, "x-colo-last-wire-bytes",
                               si->last.wire_bytes);
    json_object_set_int_member(o, "x-colo-last-device-bytes",
                               si->last.device_bytes);
    json_object_set_int_member(o, "x-colo-last-scanned-pages",
                               si->last.scanned_pages);
    json_object_set_int_member(o, "x-colo-last-send-us", si->last.send_us);
    json_object_set_int_member(o, "x-colo-last-received-us",
                               si->last.received_us);
    json_object_set_int_member(o, "x-colo-last-commit-us",
                               si->last.commit_us);
    json_object_set_int_member(o, "x-colo-last-release-us",
                               si->last.release_us);
    {
        JsonObject *t = json_object_new();

        for (int i = 0; i < CHECKPOINT_TRIGGER__MAX; i++) {
            json_object_set_int_member(t, checkpoint_trigger_name(i),
                                       si->by_trigger[i]);
        }
        json_object_set_object_member(o, "x-colo-checkpoint-triggers", t);
    }
    {
        /* sums since the session began: a client diffs two queries */
        JsonObject *t = json_object_new();

        json_object_set_int_member(t, "output-wait-us",
                                   si->sum_output_wait_us);
        json_object_set_int_member(t, "pause-us", si->sum_pause_us);
        json_object_set_int_member(t, "send-us", si->sum_send_us);
        json_object_set_int_member(t, "received-us", si->sum_received_us);
        json_object_set_int_member(t, "commit-us", si->sum_commit_us);
        json_object_set_int_member(t, "release-us", si->sum_release_us);
        json_object_set_object_member(o, "x-colo-round-trip-sums", t);
    }
    {
        JsonObject *t = json_object_new();

        json_object_set_string_member(t, "method", si->tracking);
        if (si->tracking_why) {
            json_object_set_string_member(t, "reason", si->tracking_why);
        }
        if (si->tracking_fallback) {
            json_object_set_string_member(t, "fallback",
                                          si->tracking_fallback);
        }
        json_object_set_object_member(o, "x-colo-dirty-tracking", t);
    }
    if (si->pauses) {
        json_object_set_int_member(o, "x-colo-pause-median-us",
                                   si->pause_median_us);
        json_object_set_int_member(o, "x-colo-pause-p99-us",
                                   si->pause_p99_us);
    }
    if (si->net_buffered) {
        json_object_set_object_member(o, "x-colo-net-buffer",
                                      net_buffer_object(si));
    }
    agent_info_clear(&info);
    return qmp_node_take_object(o);
}

static JsonNode *qmp_query_colo_status(const MonitorContext *ctx,
                                       JsonObject *args, GError **errp)
{
    AgentInfo info;
    JsonObject *o;

    agent_query(agent_of(ctx), &info);
    o = qmp_colo_status_object(info.session.mode, info.session.last_mode,
                               info.session.exit_reason,
                               info.session.checkpoints);
    agent_info_clear(&info);
    return qmp_node_take_object(o);
}

static bool in_colo(Agent *a, GError **errp)
{
    AgentInfo info;
    COLOMode mode;

    agent_query(a, &info);
    mode = info.session.mode;
    agent_info_clear(&info);
    if (mode != COLO_MODE_PRIMARY) {
        g_set_error(errp, COLO_ERROR, EINVAL, "VM is not in COLO mode");
        return false;
    }
    return true;
}

static JsonNode *qmp_x_colo_lost_heartbeat(const MonitorContext *ctx,
                                           JsonObject *args, GError **errp)
{
    Agent *a = agent_of(ctx);

    if (!in_colo(a, errp)) {
        return NULL;
    }
    /* The primary goes on alone: the session ends, the VM keeps running. */
    agent_session_stop(a, MIGRATION_STATUS_COMPLETED);
    return NULL;
}

/* Ours: a checkpoint now (a proxy that saw the outputs diverge would
 * ask for one; QEMU's primary takes it from colo-compare). */
static JsonNode *qmp_x_colo_checkpoint(const MonitorContext *ctx,
                                       JsonObject *args, GError **errp)
{
    Agent *a = agent_of(ctx);

    if (!in_colo(a, errp)) {
        return NULL;
    }
    agent_params_changed(a, true);
    return NULL;
}

static JsonNode *qmp_quit(const MonitorContext *ctx, JsonObject *args,
                          GError **errp)
{
    if (!ctx->sandboxed) {
        agent_quit(agent_of(ctx), MIGRATION_STATUS_COMPLETED);
    }
    return NULL;
}

static JsonNode *qmp_query_commands(const MonitorContext *ctx,
                                    JsonObject *args, GError **errp)
{
    return qmp_list_commands(ctx);
}

const QmpCommand agent_qmp_commands[] = {
    { "query-commands", qmp_query_commands },
    { "migrate-set-capabilities", qmp_migrate_set_capabilities },
    { "query-migrate-capabilities", qmp_query_migrate_capabilities },
    { "migrate-set-parameters", qmp_migrate_set_parameters },
    { "query-migrate-parameters", qmp_query_migrate_parameters },
    { "migrate", qmp_migrate },
    { "migrate_cancel", qmp_migrate_cancel },
    { "query-migrate", qmp_query_migrate },
    { "query-colo-status", qmp_query_colo_status },
    { "x-colo-lost-heartbeat", qmp_x_colo_lost_heartbeat },
    { "x-colo-checkpoint", qmp_x_colo_checkpoint },
    { "quit", qmp_quit },
};
const size_t agent_qmp_n_commands = G_N_ELEMENTS(agent_qmp_commands);
