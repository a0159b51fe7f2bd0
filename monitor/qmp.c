/*
 * qmp.c: the QMP server: greeting, capability negotiation, line framing,
 * dispatch, replies and events (QEMU's wire conventions: one JSON object
 * per line, "\r\n" after each line we send).
 *
 * Owner: the main thread.
 */
#include "qemu/osdep.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "monitor/monitor.h"
#include "qemu/json-input.h"

/* A client that sends a line longer than this gets an error reply and is
 * cut off; we never hold more than this of its input. */
#define QMP_MAX_LINE   (1024 * 1024)
#define QMP_READ_CHUNK 65536
/* A client that lets this much of our output pile up (it does not read
 * its replies and events) is cut off: the main loop never waits for a
 * client, so failover and the other clients stay served. */
#define QMP_MAX_PENDING_OUTPUT (8 * 1024 * 1024)

struct Monitor {
    MonitorContext ctx;
    GSocketService *service;
    char *path;
    GList *clients;
    GMainContext *main_ctx;
    GMutex lock;            /* for @alive, read by other threads */
    bool alive;
};

typedef struct MonitorClient {
    Monitor *mon;
    GSocketConnection *conn;
    GInputStream *in;
    GByteArray *inbuf;      /* input not yet split into lines */
    GOutputStream *out;
    GCancellable *cancel;
    GByteArray *outbuf;     /* queued output, written as the socket takes it */
    int refs;               /* the pending read and the pending write */
    bool writing;
    bool negotiated;
    bool closing;           /* close once the queued output is written */
    bool closed;
} MonitorClient;

static void client_read_next(MonitorClient *c);
static void client_write_next(MonitorClient *c);

static void client_close(MonitorClient *c)
{
    if (c->closed) {
        return;
    }
    c->closed = true;
    g_cancellable_cancel(c->cancel);
    c->mon->clients = g_list_remove(c->mon->clients, c);
    g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
}

static void client_unref(MonitorClient *c)
{
    if (--c->refs > 0) {
        return;
    }
    g_byte_array_unref(c->inbuf);
    g_object_unref(c->conn);
    g_object_unref(c->cancel);
    g_byte_array_unref(c->outbuf);
    g_free(c);
}

static void client_written(GObject *src, GAsyncResult *res, gpointer opaque)
{
    MonitorClient *c = opaque;
    gssize n = g_output_stream_write_bytes_finish(G_OUTPUT_STREAM(src), res,
                                                  NULL);

    c->writing = false;
    if (!c->closed) {
        if (n <= 0) {
            client_close(c);
        } else {
            g_byte_array_remove_range(c->outbuf, 0, n);
            client_write_next(c);
        }
    }
    client_unref(c);
}

static void client_write_next(MonitorClient *c)
{
    g_autoptr(GBytes) chunk = NULL;

    if (c->writing || c->closed) {
        return;
    }
    if (c->outbuf->len == 0) {
        if (c->closing) {
            client_close(c);
        }
        return;
    }
    chunk = g_bytes_new(c->outbuf->data, c->outbuf->len);
    c->writing = true;
    c->refs++;
    g_output_stream_write_bytes_async(c->out, chunk, G_PRIORITY_DEFAULT,
                                      c->cancel, client_written, c);
}

static void client_send_node(MonitorClient *c, JsonNode *node)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autofree char *text = NULL;
    gsize len;

    if (c->closed) {
        return;
    }
    json_generator_set_root(gen, node);
    text = json_generator_to_data(gen, &len);
    if (c->outbuf->len + len + 2 > QMP_MAX_PENDING_OUTPUT) {
        fprintf(stderr, "QMP %s: a client left %u bytes of replies and "
                "events unread: disconnected\n", c->mon->path,
                c->outbuf->len);
        client_close(c);
        return;
    }
    g_byte_array_append(c->outbuf, (const guint8 *)text, len);
    g_byte_array_append(c->outbuf, (const guint8 *)"\r\n", 2);
    client_write_next(c);
}

static bool monitor_output_pending(Monitor *mon)
{
    for (GList *l = mon->clients; l; l = l->next) {
        MonitorClient *c = l->data;

        if (c->outbuf->len > 0) {
            return true;
        }
    }
    return false;
}

static JsonNode *make_error(const char *klass, const char *desc,
                            JsonNode *id)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "class");
    json_builder_add_string_value(b, klass);
    json_builder_set_member_name(b, "desc");
    json_builder_add_string_value(b, desc);
    json_builder_end_object(b);
    if (id) {
        json_builder_set_member_name(b, "id");
        json_builder_add_value(b, json_node_copy(id));
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
}

static JsonNode *make_return(JsonNode *value, JsonNode *id)
{
    JsonObject *o = json_object_new();
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);

    if (!value) {
        value = json_node_new(JSON_NODE_OBJECT);
        json_node_take_object(value, json_object_new());
    }
    json_object_set_member(o, "return", value);
    if (id) {
        json_object_set_member(o, "id", json_node_copy(id));
    }
    json_node_take_object(n, o);
    return n;
}

static void client_send_greeting(MonitorClient *c)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    g_auto(GStrv) v = g_strsplit(COLO_VERSION_STRING, ".", 3);

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "QMP");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "version");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "qemu");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "micro");
    json_builder_add_int_value(b, atoi(v[2]));
    json_builder_set_member_name(b, "minor");
    json_builder_add_int_value(b, atoi(v[1]));
    json_builder_set_member_name(b, "major");
    json_builder_add_int_value(b, atoi(v[0]));
    json_builder_end_object(b);
    json_builder_set_member_name(b, "package");
    json_builder_add_string_value(b, "colo-standby " COLO_VERSION_STRING);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "capabilities");
    json_builder_begin_array(b);
    json_builder_add_string_value(b, "oob");
    json_builder_end_array(b);
    json_builder_end_object(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    client_send_node(c, root);
}

JsonNode *monitor_handle_request(const MonitorContext *ctx, bool *negotiated,
                                 const char *line)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) root = NULL;
    JsonNode *reply = NULL;
    JsonNode *id = NULL, *argsn;
    JsonObject *req, *args = NULL;
    const char *cmd;
    QmpCommandFn fn;

    while (*line == ' ' || *line == '\t' || *line == '\r') {
        line++;
    }
    if (!*line) {
        return NULL;
    }
    /* QEMU's JSON: RFC 8259 plus its single-quoted strings */
    root = json_input_parse(line, strlen(line), JSON_INPUT_SINGLE_QUOTES,
                            &err);
    if (!root) {
        g_autofree char *msg = g_strdup_printf("JSON parse error, %s",
                                               err->message);
        reply = make_error("GenericError", msg, NULL);
        goto send;
    }
    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        reply = make_error("GenericError", "QMP input must be a JSON object",
                           NULL);
        goto send;
    }
    req = json_node_get_object(root);
    id = json_object_get_member(req, "id");
    if (!json_object_has_member(req, "execute") ||
        json_node_get_value_type(json_object_get_member(req, "execute")) !=
        G_TYPE_STRING) {
        reply = make_error("GenericError", "QMP input lacks member "
                           "'execute'", id);
        goto send;
    }
    cmd = json_object_get_string_member(req, "execute");
    argsn = json_object_get_member(req, "arguments");
    if (argsn) {
        if (!JSON_NODE_HOLDS_OBJECT(argsn)) {
            reply = make_error("GenericError", "QMP input member "
                               "'arguments' must be an object", id);
            goto send;
        }
        args = json_node_get_object(argsn);
    }

    if (strcmp(cmd, "qmp_capabilities") == 0) {
        if (*negotiated) {
            reply = make_error("CommandNotFound", "Capabilities negotiation "
                               "is already complete, command ignored", id);
        } else {
            *negotiated = true;
            reply = make_return(NULL, id);
        }
        goto send;
    }
    if (!*negotiated) {
        reply = make_error("CommandNotFound", "Expecting capabilities "
                           "negotiation with 'qmp_capabilities'", id);
        goto send;
    }
    fn = qmp_find_command(ctx, cmd);
    if (!fn) {
        g_autofree char *msg = g_strdup_printf("The command %s has not been "
                                               "found", cmd);
        reply = make_error("CommandNotFound", msg, id);
        goto send;
    }
    {
        JsonObject *empty = args ? NULL : json_object_new();
        JsonNode *ret = fn(ctx, args ? args : empty, &err);

        if (empty) {
            json_object_unref(empty);
        }
        reply = err ? make_error("GenericError", err->message, id)
                    : make_return(ret, id);
        if (err && ret) {
            json_node_unref(ret);
        }
    }
send:
    return reply;
}

static void client_handle_line(MonitorClient *c, const char *line)
{
    g_autoptr(JsonNode) reply = monitor_handle_request(&c->mon->ctx,
                                                       &c->negotiated, line);

    if (reply) {
        client_send_node(c, reply);
    }
}

/* Handles every complete line in @c->inbuf; false once @c is closing. */
static bool client_handle_input(MonitorClient *c)
{
    bool too_long = false;
    guint8 *nl;

    while (!too_long && !c->closed && !c->closing &&
           (nl = memchr(c->inbuf->data, '\n', c->inbuf->len))) {
        gsize len = nl - c->inbuf->data;
        g_autofree char *line = g_strndup((const char *)c->inbuf->data, len);

        if (len > 0 && line[len - 1] == '\r') {
            line[len - 1] = '\0';
        }
        g_byte_array_remove_range(c->inbuf, 0, len + 1);
        too_long = len > QMP_MAX_LINE;
        if (!too_long) {
            client_handle_line(c, line);
        }
    }
    too_long = too_long || c->inbuf->len > QMP_MAX_LINE;
    if (!c->closed && !c->closing && too_long) {
        g_autoptr(JsonNode) reply = NULL;
        g_autofree char *msg = g_strdup_printf(
            "QMP input line longer than %d bytes: closing the connection",
            QMP_MAX_LINE);

        reply = make_error("GenericError", msg, NULL);
        client_send_node(c, reply);
        c->closing = true;
        client_write_next(c);
    }
    return !c->closed && !c->closing;
}

static void client_data_ready(GObject *src, GAsyncResult *res, gpointer opaque)
{
    MonitorClient *c = opaque;
    g_autoptr(GBytes) data = g_input_stream_read_bytes_finish(
        G_INPUT_STREAM(src), res, NULL);

    if (c->closed) {
        client_unref(c);
        return;
    }
    if (!data || g_bytes_get_size(data) == 0) {
        client_close(c);
        client_unref(c);
        return;
    }
    g_byte_array_append(c->inbuf, g_bytes_get_data(data, NULL),
                        g_bytes_get_size(data));
    if (!client_handle_input(c)) {
        client_unref(c);
        return;
    }
    client_read_next(c);
}

static void client_read_next(MonitorClient *c)
{
    g_input_stream_read_bytes_async(c->in, QMP_READ_CHUNK, G_PRIORITY_DEFAULT,
                                    c->cancel, client_data_ready, c);
}

static gboolean monitor_incoming(GSocketService *service,
                                 GSocketConnection *conn, GObject *source,
                                 gpointer opaque)
{
    Monitor *mon = opaque;
    MonitorClient *c = g_new0(MonitorClient, 1);

    (void)service;
    (void)source;
    c->mon = mon;
    c->conn = g_object_ref(conn);
    c->in = g_io_stream_get_input_stream(G_IO_STREAM(conn));
    c->inbuf = g_byte_array_new();
    c->out = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    c->cancel = g_cancellable_new();
    c->outbuf = g_byte_array_new();
    c->refs = 1;            /* the read, from here on always pending */
    mon->clients = g_list_append(mon->clients, c);
    client_send_greeting(c);
    if (c->closed) {
        client_unref(c);
        return TRUE;
    }
    client_read_next(c);
    return TRUE;
}

Monitor *monitor_new(const char *spec, const MonitorContext *ctx,
                     GError **errp)
{
    g_auto(GStrv) parts = NULL;
    g_autoptr(GSocketAddress) addr = NULL;
    Monitor *mon;

    if (!g_str_has_prefix(spec, "unix:")) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-qmp %s: only unix:PATH "
                    "sockets are supported", spec);
        return NULL;
    }
    parts = g_strsplit(spec + 5, ",", -1);
    for (int i = 1; parts[i]; i++) {
        if (!g_strv_contains((const char *const[]) {
                "server=on", "server", "wait=off", "nowait", NULL },
                parts[i])) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-qmp: unsupported option "
                        "'%s'", parts[i]);
            return NULL;
        }
    }
    mon = g_new0(Monitor, 1);
    mon->ctx = *ctx;
    mon->path = g_strdup(parts[0]);
    mon->main_ctx = g_main_context_ref_thread_default();
    g_mutex_init(&mon->lock);
    mon->alive = true;
    g_unlink(mon->path);
    addr = g_unix_socket_address_new(mon->path);
    mon->service = g_socket_service_new();
    if (!g_socket_listener_add_address(G_SOCKET_LISTENER(mon->service), addr,
                                       G_SOCKET_TYPE_STREAM,
                                       G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL,
                                       errp)) {
        g_prefix_error(errp, "-qmp %s: ", spec);
        monitor_free(mon);
        return NULL;
    }
    g_signal_connect(mon->service, "incoming", G_CALLBACK(monitor_incoming),
                     mon);
    g_socket_service_start(mon->service);
    return mon;
}

void monitor_free(Monitor *mon)
{
    if (!mon) {
        return;
    }
    g_mutex_lock(&mon->lock);
    mon->alive = false;
    g_mutex_unlock(&mon->lock);
    if (mon->service) {
        g_socket_service_stop(mon->service);
        g_socket_listener_close(G_SOCKET_LISTENER(mon->service));
        g_object_unref(mon->service);
    }
    /* The last replies (to quit, say) go out first, for up to a second. */
    {
        gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;

        while (monitor_output_pending(mon) &&
               g_get_monotonic_time() < deadline) {
            if (!g_main_context_iteration(mon->main_ctx, FALSE)) {
                g_usleep(1000);
            }
        }
    }
    while (mon->clients) {
        client_close(mon->clients->data);
    }
    /* Let the cancelled reads finish so their clients are freed. */
    while (g_main_context_iteration(mon->main_ctx, FALSE)) {
    }
    g_unlink(mon->path);
    g_free(mon->path);
    g_main_context_unref(mon->main_ctx);
    g_mutex_clear(&mon->lock);
    g_free(mon);
}

typedef struct PendingEvent {
    Monitor *mon;
    char *name;
    GVariant *data;
    gint64 when_us;
} PendingEvent;

static gboolean monitor_deliver_event(gpointer opaque)
{
    PendingEvent *ev = opaque;
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    JsonObject *o = json_object_new();
    JsonObject *ts = json_object_new();

    json_object_set_int_member(ts, "seconds", ev->when_us / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds",
                               ev->when_us % G_USEC_PER_SEC);
    json_object_set_object_member(o, "timestamp", ts);
    json_object_set_string_member(o, "event", ev->name);
    if (ev->data) {
        json_object_set_member(o, "data", json_gvariant_serialize(ev->data));
    }
    json_node_take_object(node, o);
    for (GList *l = ev->mon->clients; l;) {
        MonitorClient *c = l->data;

        l = l->next;
        if (c->negotiated) {
            client_send_node(c, node);
        }
    }
    return G_SOURCE_REMOVE;
}

static void pending_event_free(gpointer opaque)
{
    PendingEvent *ev = opaque;

    g_free(ev->name);
    if (ev->data) {
        g_variant_unref(ev->data);
    }
    g_free(ev);
}

void monitor_emit_event(Monitor *mon, const char *name, GVariant *data)
{
    PendingEvent *ev = g_new0(PendingEvent, 1);

    ev->mon = mon;
    ev->name = g_strdup(name);
    ev->data = data ? g_variant_ref_sink(data) : NULL;
    ev->when_us = g_get_real_time();
    {
        /* Queued on the main context, never run inline on this thread. */
        GSource *src = g_idle_source_new();

        g_source_set_priority(src, G_PRIORITY_DEFAULT);
        g_source_set_callback(src, monitor_deliver_event, ev,
                              pending_event_free);
        g_source_attach(src, mon->main_ctx);
        g_source_unref(src);
    }
    /* @ev now belongs to the source (freed by pending_event_free). */
    // cppcheck-suppress memleak
}
