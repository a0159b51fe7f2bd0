/*
 * qmp-client.c: see qmp-client.h.  Newline-framed JSON over a UNIX socket;
 * replies are matched by our "id", events in between are tallied.  Over a
 * transport the reply comes back whole and events are not seen.
 */
#include "qemu/osdep.h"

#include <gio/gio.h>
#include <gio/gunixfdmessage.h>
#include <gio/gunixsocketaddress.h>

#include "monitor/qmp-client.h"
#include "qemu/json-input.h"

struct QmpClient {
    GSocketConnection *conn;
    GDataInputStream *in;
    GOutputStream *out;
    GHashTable *events;     /* name -> count */
    int64_t next_id;
    const QmpTransport *transport;   /* or NULL: the socket */
    bool fd_passing;                 /* the socket passes descriptors */
    void *transport_opaque;
    GMutex lock;            /* one command at a time, from any thread */
};

void qmp_client_free(QmpClient *c)
{
    if (!c) {
        return;
    }
    if (c->transport && c->transport->free) {
        c->transport->free(c->transport_opaque);
    }
    if (c->in) {
        g_object_unref(c->in);
    }
    if (c->conn) {
        g_io_stream_close(G_IO_STREAM(c->conn), NULL, NULL);
        g_object_unref(c->conn);
    }
    g_hash_table_unref(c->events);
    g_mutex_clear(&c->lock);
    g_free(c);
}

static JsonNode *qmp_client_read(QmpClient *c, GError **errp)
{
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *line = NULL;
    gsize len;

    line = g_data_input_stream_read_line(c->in, &len, NULL, errp);
    if (!line) {
        if (errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EPIPE, "QMP connection closed");
        }
        return NULL;
    }
    root = json_input_parse(line, len, JSON_INPUT_WIDE_INTEGERS, errp);
    if (!root) {
        g_prefix_error(errp, "QMP: bad JSON from the server: ");
        return NULL;
    }
    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        g_set_error(errp, COLO_ERROR, EPROTO, "QMP: not an object: %s", line);
        return NULL;
    }
    return g_steal_pointer(&root);
}

QmpClient *qmp_client_connect(const char *path, int timeout_ms,
                              GError **errp)
{
    g_autoptr(GSocketClient) client = g_socket_client_new();
    g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);
    g_autoptr(JsonNode) greeting = NULL;
    g_autoptr(JsonNode) ret = NULL;
    int64_t deadline = g_get_monotonic_time() + timeout_ms * 1000LL;
    GSocketConnection *conn;
    QmpClient *c;

    for (;;) {
        g_autoptr(GError) err = NULL;

        conn = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(addr),
                                       NULL, &err);
        if (conn) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            g_set_error(errp, COLO_ERROR, ETIMEDOUT, "QMP %s: %s", path,
                        err->message);
            return NULL;
        }
        g_usleep(20 * 1000);
    }
    c = g_new0(QmpClient, 1);
    c->events = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_mutex_init(&c->lock);
    c->conn = conn;
    c->in = g_data_input_stream_new(
        g_io_stream_get_input_stream(G_IO_STREAM(c->conn)));
    c->out = g_io_stream_get_output_stream(G_IO_STREAM(c->conn));
    greeting = qmp_client_read(c, errp);
    if (!greeting ||
        !json_object_has_member(json_node_get_object(greeting), "QMP")) {
        if (errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EPROTO, "QMP %s: no greeting",
                        path);
        }
        qmp_client_free(c);
        return NULL;
    }
    ret = qmp_client_cmd(c, "qmp_capabilities", NULL, errp);
    if (!ret) {
        qmp_client_free(c);
        return NULL;
    }
    return c;
}

/* The "return" of a reply, or NULL with its "error" in @errp. */
static JsonNode *qmp_client_reply(JsonObject *o, const char *command,
                                  GError **errp)
{
    if (json_object_has_member(o, "error")) {
        JsonObject *e = json_object_get_object_member(o, "error");

        g_set_error(errp, COLO_ERROR, EIO, "QMP %s: %s", command,
                    e && json_object_has_member(e, "desc") ?
                    json_object_get_string_member(e, "desc") : "error");
        return NULL;
    }
    if (!json_object_has_member(o, "return")) {
        g_set_error(errp, COLO_ERROR, EPROTO, "QMP %s: a reply without "
                    "return or error", command);
        return NULL;
    }
    return json_node_copy(json_object_get_member(o, "return"));
}

QmpClient *qmp_client_new_transport(const QmpTransport *t, void *opaque)
{
    QmpClient *c = g_new0(QmpClient, 1);

    c->events = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_mutex_init(&c->lock);
    c->transport = t;
    c->transport_opaque = opaque;
    return c;
}

/* The first byte of @req goes with @fds (SCM_RIGHTS), the rest after. */
static bool qmp_client_send_fds(QmpClient *c, const char *req,
                                const int *fds, unsigned nfds, GError **errp)
{
    GSocket *sock = g_socket_connection_get_socket(c->conn);
    g_autoptr(GUnixFDList) list = g_unix_fd_list_new();
    g_autoptr(GSocketControlMessage) msg = NULL;
    GOutputVector v = { req, 1 };

    for (unsigned i = 0; i < nfds; i++) {
        if (g_unix_fd_list_append(list, fds[i], errp) < 0) {
            return false;
        }
    }
    msg = g_unix_fd_message_new_with_fd_list(list);
    if (g_socket_send_message(sock, NULL, &v, 1, &msg, 1, 0, NULL,
                              errp) != 1) {
        return false;
    }
    return g_output_stream_write_all(c->out, req + 1, strlen(req) - 1, NULL,
                                     NULL, errp);
}

static JsonNode *qmp_client_cmd_locked(QmpClient *c, const char *command,
                                       const char *args_json, const int *fds,
                                       unsigned nfds, GError **errp)
{
    int64_t id = ++c->next_id;
    g_autofree char *req = g_strdup_printf(
        "{\"execute\": \"%s\"%s%s, \"id\": %" PRId64 "}\n", command,
        args_json ? ", \"arguments\": " : "", args_json ? args_json : "", id);

    if (nfds ? !qmp_client_send_fds(c, req, fds, nfds, errp) :
        !g_output_stream_write_all(c->out, req, strlen(req), NULL, NULL,
                                   errp)) {
        g_prefix_error(errp, "QMP %s: ", command);
        return NULL;
    }
    for (;;) {
        g_autoptr(JsonNode) msg = qmp_client_read(c, errp);
        JsonObject *o;

        if (!msg) {
            g_prefix_error(errp, "QMP %s: ", command);
            return NULL;
        }
        o = json_node_get_object(msg);
        if (json_object_has_member(o, "event")) {
            const char *name = json_object_get_string_member(o, "event");
            guint n = GPOINTER_TO_UINT(g_hash_table_lookup(c->events, name));

            g_hash_table_replace(c->events, g_strdup(name),
                                 GUINT_TO_POINTER(n + 1));
            continue;
        }
        if (json_object_has_member(o, "error") ||
            json_object_has_member(o, "return")) {
            return qmp_client_reply(o, command, errp);
        }
    }
}

static JsonNode *qmp_client_cmd_transport(QmpClient *c, const char *command,
                                          const char *args_json,
                                          const int *fds, unsigned nfds,
                                          GError **errp)
{
    g_autofree char *req = g_strdup_printf(
        "{\"execute\": \"%s\"%s%s}", command,
        args_json ? ", \"arguments\": " : "", args_json ? args_json : "");
    g_autofree char *reply = NULL;
    g_autoptr(JsonNode) root = NULL;

    reply = c->transport->exec(c->transport_opaque, req, fds, nfds, errp);
    if (!reply) {
        g_prefix_error(errp, "QMP %s: ", command);
        return NULL;
    }
    root = json_input_parse(reply, strlen(reply), JSON_INPUT_WIDE_INTEGERS,
                            errp);
    if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
        g_prefix_error(errp, "QMP %s: bad reply: ", command);
        if (root && errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EPROTO, "QMP %s: not an object",
                        command);
        }
        return NULL;
    }
    return qmp_client_reply(json_node_get_object(root), command, errp);
}

JsonNode *qmp_client_cmd_fds(QmpClient *c, const char *command,
                             const char *args_json, const int *fds,
                             unsigned nfds, GError **errp)
{
    JsonNode *r;

    if (nfds && !qmp_client_passes_fds(c)) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "QMP %s: this connection "
                    "does not pass descriptors", command);
        return NULL;
    }
    g_mutex_lock(&c->lock);
    r = c->transport ?
        qmp_client_cmd_transport(c, command, args_json, fds, nfds, errp) :
        qmp_client_cmd_locked(c, command, args_json, fds, nfds, errp);
    g_mutex_unlock(&c->lock);
    return r;
}

JsonNode *qmp_client_cmd(QmpClient *c, const char *command,
                         const char *args_json, GError **errp)
{
    return qmp_client_cmd_fds(c, command, args_json, NULL, 0, errp);
}

bool qmp_client_passes_fds(const QmpClient *c)
{
    return c->transport != NULL || c->fd_passing;
}

void qmp_client_set_fd_passing(QmpClient *c)
{
    c->fd_passing = true;
}

bool qmp_client_try(QmpClient *c, const char *command, const char *args_json)
{
    JsonNode *r = qmp_client_cmd(c, command, args_json, NULL);

    if (!r) {
        return false;
    }
    json_node_unref(r);
    return true;
}

guint qmp_client_event_count(QmpClient *c, const char *event)
{
    guint n;

    g_mutex_lock(&c->lock);
    n = GPOINTER_TO_UINT(g_hash_table_lookup(c->events, event));
    g_mutex_unlock(&c->lock);
    return n;
}

int qmp_client_peer_pid(QmpClient *c)
{
    g_autoptr(GCredentials) cred = NULL;

    if (c->transport) {
        return c->transport->peer_pid ?
               c->transport->peer_pid(c->transport_opaque) : -1;
    }
    cred = g_socket_get_credentials(g_socket_connection_get_socket(c->conn),
                                    NULL);
    return cred ? (int)g_credentials_get_unix_pid(cred, NULL) : -1;
}
