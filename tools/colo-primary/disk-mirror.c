/*
 * disk-mirror.c: the VM's disks mirrored to the secondary (disk-mirror.h).
 */
#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

#include "tools/colo-primary/disk-mirror.h"

#define NBD_DEFAULT_PORT "10809"
#define TLS_OBJECT "colo-nbd-tls"

typedef struct MirroredDisk {
    DiskTarget t;
    char *nbd_node;             /* colo-nbd-K */
    char *job;                  /* colo-mirror-K */
    bool added, started;
    uint64_t bytes;
    int64_t initial_us;
} MirroredDisk;

struct DiskMirror {
    QmpClient *qmp;
    GArray *disks;              /* of MirroredDisk */
    char *tls_dir;              /* NULL: no TLS */
    char *tls_hostname;
    bool tls_added;
};

void disk_target_clear(DiskTarget *t)
{
    g_free(t->node);
    g_free(t->uri);
    g_free(t->host);
    g_free(t->port);
    g_free(t->path);
    g_free(t->export);
    memset(t, 0, sizeof(*t));
}

bool disk_target_parse(const char *spec, DiskTarget *t, GError **errp)
{
    const char *eq = strchr(spec, '=');
    g_autoptr(GUri) u = NULL;
    const char *scheme, *path;

    memset(t, 0, sizeof(*t));
    if (!eq || eq == spec) {
        g_set_error(errp, COLO_ERROR, EINVAL, "--disk %s: expected "
                    "NODE=nbd://HOST:PORT/EXPORT", spec);
        return false;
    }
    t->node = g_strndup(spec, eq - spec);
    t->uri = g_strdup(eq + 1);
    for (const char *p = t->node; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            g_set_error(errp, COLO_ERROR, EINVAL, "--disk %s: '%s' is not a "
                        "node name", spec, t->node);
            return false;
        }
    }
    u = g_uri_parse(t->uri, G_URI_FLAGS_NONE, errp);
    if (!u) {
        g_prefix_error(errp, "--disk %s: ", spec);
        return false;
    }
    scheme = g_uri_get_scheme(u);
    path = g_uri_get_path(u);
    if (!path || path[0] != '/' || !path[1]) {
        g_set_error(errp, COLO_ERROR, EINVAL, "--disk %s: the URI must name "
                    "the export (nbd://HOST:PORT/EXPORT)", spec);
        return false;
    }
    t->export = g_strdup(path + 1);
    if (!strcmp(scheme, "nbd") || !strcmp(scheme, "nbd+tcp")) {
        if (!g_uri_get_host(u) || !g_uri_get_host(u)[0]) {
            g_set_error(errp, COLO_ERROR, EINVAL, "--disk %s: no host",
                        spec);
            return false;
        }
        t->host = g_strdup(g_uri_get_host(u));
        t->port = g_uri_get_port(u) > 0 ? g_strdup_printf(
            "%d", g_uri_get_port(u)) : g_strdup(NBD_DEFAULT_PORT);
    } else if (!strcmp(scheme, "nbd+unix")) {
        g_autoptr(GHashTable) q = g_uri_get_query(u) ? g_uri_parse_params(
            g_uri_get_query(u), -1, "&", G_URI_PARAMS_NONE, errp) : NULL;
        const char *sock = q ? g_hash_table_lookup(q, "socket") : NULL;

        if (!sock || !sock[0]) {
            g_set_error(errp, COLO_ERROR, EINVAL, "--disk %s: "
                        "nbd+unix:///EXPORT?socket=PATH needs the socket",
                        spec);
            return false;
        }
        t->is_unix = true;
        t->path = g_strdup(sock);
    } else {
        g_set_error(errp, COLO_ERROR, EINVAL, "--disk %s: scheme '%s' is not "
                    "nbd or nbd+unix", spec, scheme);
        return false;
    }
    return true;
}

DiskMirror *disk_mirror_new(QmpClient *qmp, char **specs,
                            const char *tls_dir, const char *tls_hostname,
                            GError **errp)
{
    DiskMirror *dm = g_new0(DiskMirror, 1);

    dm->qmp = qmp;
    dm->tls_dir = g_strdup(tls_dir);
    dm->tls_hostname = g_strdup(tls_hostname);
    dm->disks = g_array_new(FALSE, TRUE, sizeof(MirroredDisk));
    for (int i = 0; specs && specs[i]; i++) {
        MirroredDisk *d;

        g_array_set_size(dm->disks, i + 1);
        d = &g_array_index(dm->disks, MirroredDisk, i);
        d->nbd_node = g_strdup_printf("colo-nbd-%d", i);
        d->job = g_strdup_printf("colo-mirror-%d", i);
        if (!disk_target_parse(specs[i], &d->t, errp)) {
            disk_mirror_free(dm);
            return NULL;
        }
    }
    return dm;
}

void disk_mirror_free(DiskMirror *dm)
{
    if (!dm) {
        return;
    }
    for (guint i = 0; i < dm->disks->len; i++) {
        MirroredDisk *d = &g_array_index(dm->disks, MirroredDisk, i);

        disk_target_clear(&d->t);
        g_free(d->nbd_node);
        g_free(d->job);
    }
    g_array_unref(dm->disks);
    g_free(dm->tls_dir);
    g_free(dm->tls_hostname);
    g_free(dm);
}

guint disk_mirror_count(const DiskMirror *dm)
{
    return dm ? dm->disks->len : 0;
}

const DiskTarget *disk_mirror_target(const DiskMirror *dm, guint i)
{
    return &g_array_index(dm->disks, MirroredDisk, i).t;
}

void disk_mirror_initial(const DiskMirror *dm, guint i, uint64_t *bytes,
                         int64_t *us)
{
    const MirroredDisk *d = &g_array_index(dm->disks, MirroredDisk, i);

    *bytes = d->bytes;
    *us = d->initial_us;
}

/* --- QMP ---------------------------------------------------------------- */

static char *json_args(JsonBuilder *b)
{
    g_autoptr(JsonNode) root = json_builder_get_root(b);

    return json_to_string(root, FALSE);
}

static JsonNode *cmd(DiskMirror *dm, const char *name, JsonBuilder *b,
                     GError **errp)
{
    g_autofree char *args = b ? json_args(b) : NULL;

    return qmp_client_cmd(dm->qmp, name, args, errp);
}

/* A command whose failure is expected now and then (a leftover that is
 * not there): its reply, if any, is dropped. */
static void cmd_try(DiskMirror *dm, const char *name, JsonBuilder *b)
{
    JsonNode *r = cmd(dm, name, b, NULL);

    if (r) {
        json_node_unref(r);
    }
}

static JsonBuilder *builder_with(const char *key, const char *value)
{
    JsonBuilder *b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, key);
    json_builder_add_string_value(b, value);
    return b;
}

static JsonBuilder *done(JsonBuilder *b)
{
    json_builder_end_object(b);
    return b;
}

/* The job named @job in query-block-jobs, or NULL (a new reference). */
static JsonObject *job_find(DiskMirror *dm, const char *job, GError **errp,
                            bool *failed)
{
    g_autoptr(JsonNode) r = cmd(dm, "query-block-jobs", NULL, errp);
    JsonArray *a;

    *failed = !r;
    if (!r || !JSON_NODE_HOLDS_ARRAY(r)) {
        return NULL;
    }
    a = json_node_get_array(r);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);

        if (o && json_object_has_member(o, "device") &&
            !g_strcmp0(json_object_get_string_member(o, "device"), job)) {
            return json_object_ref(o);
        }
    }
    return NULL;
}

static const char *str_member(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);

    return n && JSON_NODE_HOLDS_VALUE(n) &&
           json_node_get_value_type(n) == G_TYPE_STRING ?
           json_node_get_string(n) : "";
}

static int64_t int_member(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);

    return n && JSON_NODE_HOLDS_VALUE(n) &&
           json_node_get_value_type(n) == G_TYPE_INT64 ?
           json_node_get_int(n) : 0;
}

static void remove_one(DiskMirror *dm, MirroredDisk *d, bool leftovers)
{
    g_autoptr(JsonBuilder) b = NULL;
    int64_t deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    bool failed;

    if (d->started || leftovers) {
        b = builder_with("device", d->job);
        json_builder_set_member_name(b, "force");
        json_builder_add_boolean_value(b, TRUE);
        done(b);
        cmd_try(dm, "block-job-cancel", b);
        /* a cancelled mirror concludes; auto-dismiss is off */
        for (;;) {
            g_autoptr(JsonObject) o = job_find(dm, d->job, NULL, &failed);

            if (!o || failed || !strcmp(str_member(o, "status"),
                                        "concluded") ||
                g_get_monotonic_time() > deadline) {
                break;
            }
            g_usleep(5000);
        }
        g_object_unref(b);
        b = done(builder_with("id", d->job));
        cmd_try(dm, "job-dismiss", b);
        d->started = false;
    }
    if (d->added || leftovers) {
        if (b) {
            g_object_unref(b);
        }
        b = done(builder_with("node-name", d->nbd_node));
        cmd_try(dm, "blockdev-del", b);
        d->added = false;
    }
}

static bool start_one(DiskMirror *dm, MirroredDisk *d, GError **errp)
{
    g_autoptr(JsonBuilder) b = builder_with("driver", "nbd");
    g_autoptr(JsonNode) r = NULL;

    json_builder_set_member_name(b, "node-name");
    json_builder_add_string_value(b, d->nbd_node);
    json_builder_set_member_name(b, "export");
    json_builder_add_string_value(b, d->t.export);
    json_builder_set_member_name(b, "server");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "type");
    if (d->t.is_unix) {
        json_builder_add_string_value(b, "unix");
        json_builder_set_member_name(b, "path");
        json_builder_add_string_value(b, d->t.path);
    } else {
        json_builder_add_string_value(b, "inet");
        json_builder_set_member_name(b, "host");
        json_builder_add_string_value(b, d->t.host);
        json_builder_set_member_name(b, "port");
        json_builder_add_string_value(b, d->t.port);
    }
    json_builder_end_object(b);
    if (dm->tls_dir) {
        json_builder_set_member_name(b, "tls-creds");
        json_builder_add_string_value(b, TLS_OBJECT);
        json_builder_set_member_name(b, "tls-hostname");
        json_builder_add_string_value(b, dm->tls_hostname ? dm->tls_hostname
                                         : d->t.host ? d->t.host
                                         : "localhost");
    }
    done(b);
    r = cmd(dm, "blockdev-add", b, errp);
    if (!r) {
        g_prefix_error(errp, "disk %s: connecting QEMU to %s: ", d->t.node,
                       d->t.uri);
        return false;
    }
    d->added = true;
    g_object_unref(b);
    b = builder_with("job-id", d->job);
    json_builder_set_member_name(b, "device");
    json_builder_add_string_value(b, d->t.node);
    json_builder_set_member_name(b, "target");
    json_builder_add_string_value(b, d->nbd_node);
    json_builder_set_member_name(b, "sync");
    json_builder_add_string_value(b, "full");
    json_builder_set_member_name(b, "copy-mode");
    json_builder_add_string_value(b, "write-blocking");
    json_builder_set_member_name(b, "auto-dismiss");
    json_builder_add_boolean_value(b, FALSE);
    done(b);
    json_node_unref(r);
    r = cmd(dm, "blockdev-mirror", b, errp);
    if (!r) {
        g_prefix_error(errp, "disk %s: blockdev-mirror to %s: ", d->t.node,
                       d->t.uri);
        return false;
    }
    d->started = true;
    return true;
}

/* Why job @o is not (or no longer) a mirror in step, or NULL. */
static char *job_problem(JsonObject *o)
{
    const char *status = str_member(o, "status");
    JsonNode *synced = json_object_get_member(o, "actively-synced");

    if (json_object_has_member(o, "error")) {
        return g_strdup_printf("the mirror failed: %s",
                               str_member(o, "error"));
    }
    if (strcmp(status, "ready") != 0 && strcmp(status, "running") != 0) {
        return g_strdup_printf("the mirror job is %s", status);
    }
    if (!json_object_get_boolean_member_with_default(o, "ready", FALSE)) {
        return g_strdup("the mirror job is not ready");
    }
    if (synced && JSON_NODE_HOLDS_VALUE(synced) &&
        !json_node_get_boolean(synced)) {
        return g_strdup("the mirror is not in sync (a write to the "
                        "secondary failed)");
    }
    return NULL;
}

/* QEMU's own TLS client credentials for the NBD connections. */
static bool tls_object_add(DiskMirror *dm, GError **errp)
{
    g_autoptr(JsonBuilder) b = NULL;
    g_autoptr(JsonNode) r = NULL;

    b = done(builder_with("id", TLS_OBJECT));
    cmd_try(dm, "object-del", b);    /* a leftover */
    g_object_unref(b);
    b = builder_with("qom-type", "tls-creds-x509");
    json_builder_set_member_name(b, "id");
    json_builder_add_string_value(b, TLS_OBJECT);
    json_builder_set_member_name(b, "dir");
    json_builder_add_string_value(b, dm->tls_dir);
    json_builder_set_member_name(b, "endpoint");
    json_builder_add_string_value(b, "client");
    json_builder_set_member_name(b, "verify-peer");
    json_builder_add_boolean_value(b, TRUE);
    done(b);
    r = cmd(dm, "object-add", b, errp);
    if (!r) {
        g_prefix_error(errp, "TLS for the disks (QEMU's object-add "
                       "tls-creds-x509 dir=%s): ", dm->tls_dir);
        return false;
    }
    dm->tls_added = true;
    return true;
}

bool disk_mirror_start(DiskMirror *dm, int64_t timeout_ms, bool quiet,
                       GError **errp)
{
    for (guint i = 0; i < dm->disks->len; i++) {
        remove_one(dm, &g_array_index(dm->disks, MirroredDisk, i), true);
    }
    if (dm->tls_dir && dm->disks->len && !tls_object_add(dm, errp)) {
        return false;
    }
    for (guint i = 0; i < dm->disks->len; i++) {
        MirroredDisk *d = &g_array_index(dm->disks, MirroredDisk, i);
        int64_t t0 = g_get_monotonic_time();
        int64_t deadline = t0 + timeout_ms * 1000;

        if (!start_one(dm, d, errp)) {
            remove_one(dm, d, false);
            return false;
        }
        for (;;) {
            bool failed;
            g_autoptr(JsonObject) o = job_find(dm, d->job, errp, &failed);
            g_autofree char *why = NULL;

            if (failed) {
                return false;
            }
            if (!o) {
                g_set_error(errp, COLO_ERROR, EIO, "disk %s: the mirror job "
                            "to %s is gone", d->t.node, d->t.uri);
                return false;
            }
            why = job_problem(o);
            if (!why) {
                d->bytes = int_member(o, "len");
                break;
            }
            if (json_object_has_member(o, "error") ||
                !strcmp(str_member(o, "status"), "concluded")) {
                g_set_error(errp, COLO_ERROR, EIO, "disk %s: %s: %s",
                            d->t.node, d->t.uri, why);
                return false;
            }
            if (g_get_monotonic_time() > deadline) {
                g_set_error(errp, COLO_ERROR, ETIMEDOUT, "disk %s: the copy "
                            "to %s is not done after %" PRId64 " ms (%"
                            PRId64 " of %" PRId64 " bytes)", d->t.node,
                            d->t.uri, timeout_ms, int_member(o, "offset"),
                            int_member(o, "len"));
                return false;
            }
            g_usleep(20000);
        }
        d->initial_us = g_get_monotonic_time() - t0;
        if (!quiet) {
            printf("disk %s: mirrored to %s%s, %.1f MiB in %.2f s (%.1f "
                   "MiB/s); every write now reaches it before the guest "
                   "sees it done\n", d->t.node, d->t.uri,
                   dm->tls_dir ? " over TLS" : "",
                   d->bytes / 1048576.0, d->initial_us / 1e6,
                   d->bytes / 1048576.0 / MAX(d->initial_us / 1e6, 1e-6));
            fflush(stdout);
        }
    }
    return true;
}

bool disk_mirror_check(DiskMirror *dm, GError **errp)
{
    g_autoptr(JsonNode) r = NULL;
    JsonArray *a;

    if (!dm->disks->len) {
        return true;
    }
    r = cmd(dm, "query-block-jobs", NULL, errp);
    if (!r) {
        return false;
    }
    a = json_node_get_array(r);
    for (guint i = 0; i < dm->disks->len; i++) {
        MirroredDisk *d = &g_array_index(dm->disks, MirroredDisk, i);
        JsonObject *o = NULL;
        g_autofree char *why = NULL;

        for (guint k = 0; k < json_array_get_length(a); k++) {
            JsonObject *x = json_array_get_object_element(a, k);

            if (x && !g_strcmp0(str_member(x, "device"), d->job)) {
                o = x;
            }
        }
        why = o ? job_problem(o) : g_strdup("the mirror job is gone");
        if (why) {
            g_set_error(errp, COLO_ERROR, EIO, "disk %s: %s (%s): no "
                        "checkpoint without its disk", d->t.node, why,
                        d->t.uri);
            return false;
        }
    }
    return true;
}

void disk_mirror_stop(DiskMirror *dm)
{
    for (guint i = 0; dm && i < dm->disks->len; i++) {
        remove_one(dm, &g_array_index(dm->disks, MirroredDisk, i), false);
    }
    if (dm && dm->tls_added) {
        g_autoptr(JsonBuilder) b = done(builder_with("id", TLS_OBJECT));

        cmd_try(dm, "object-del", b);
        dm->tls_added = false;
    }
}

char *disk_mirror_image_path(DiskMirror *dm, guint i, GError **errp)
{
    MirroredDisk *d = &g_array_index(dm->disks, MirroredDisk, i);
    g_autoptr(JsonNode) r = cmd(dm, "query-named-block-nodes", NULL, errp);
    JsonArray *a;

    if (!r) {
        return NULL;
    }
    a = json_node_get_array(r);
    for (guint k = 0; k < json_array_get_length(a); k++) {
        JsonObject *o = json_array_get_object_element(a, k);

        if (o && !g_strcmp0(str_member(o, "node-name"), d->t.node)) {
            return g_strdup(str_member(o, "file"));
        }
    }
    g_set_error(errp, COLO_ERROR, ENOENT, "no node '%s' in QEMU", d->t.node);
    return NULL;
}
