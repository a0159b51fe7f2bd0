/*
 * tls-creds.c: -object tls-creds-x509, authz-simple and authz-list-file
 * (see crypto/tls-creds.h).
 */
#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

#include "crypto/tls-creds.h"
#include "qemu/json-input.h"

#define AUTHZ_FILE_MAX (1u << 20)

typedef struct Authz {
    char *id;
    char *identity;             /* authz-simple */
    char *filename;             /* authz-list-file, read at each check */
} Authz;

static GMutex objects_lock;
static GHashTable *creds_by_id;     /* id -> TlsCreds * */
static GHashTable *authz_by_id;     /* id -> Authz * */

/* "a=b,c=d" with QEMU's ",," for a literal comma, into key -> value. */
static GHashTable *parse_props(const char *spec, char **type, GError **errp)
{
    GHashTable *props = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                              g_free);
    GString *cur = g_string_new(NULL);
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);

    for (const char *p = spec;; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',' || *p == '\0') {
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
            if (!*p) {
                break;
            }
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_string_free(cur, TRUE);
    *type = NULL;
    for (guint i = 0; i < parts->len; i++) {
        const char *part = g_ptr_array_index(parts, i);
        const char *eq = strchr(part, '=');

        if (i == 0 && !eq) {
            *type = g_strdup(part);
            continue;
        }
        if (!eq || eq == part) {
            g_set_error(errp, COLO_ERROR, EINVAL, "-object %s: '%s' is not "
                        "KEY=VALUE", spec, part);
            goto fail;
        }
        if (!strncmp(part, "qom-type=", 9)) {
            g_free(*type);
            *type = g_strdup(eq + 1);
            continue;
        }
        g_hash_table_replace(props, g_strndup(part, eq - part),
                             g_strdup(eq + 1));
    }
    if (!*type) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-object %s: no object type",
                    spec);
        goto fail;
    }
    g_ptr_array_unref(parts);
    return props;

fail:
    g_clear_pointer(type, g_free);
    g_ptr_array_unref(parts);
    g_hash_table_unref(props);
    return NULL;
}

/* Takes @key out of @props (NULL if absent): what is left at the end was
 * not understood. */
static char *take(GHashTable *props, const char *key)
{
    char *v = NULL;
    gpointer k;

    if (g_hash_table_steal_extended(props, key, &k, (gpointer *)&v)) {
        g_free(k);
    }
    return v;
}

static bool parse_bool(const char *what, const char *v, bool dflt, bool *out,
                       GError **errp)
{
    if (!v) {
        *out = dflt;
    } else if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
        *out = true;
    } else if (!strcmp(v, "off") || !strcmp(v, "no") ||
               !strcmp(v, "false")) {
        *out = false;
    } else {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter '%s' expects 'on' "
                    "or 'off'", what);
        return false;
    }
    return true;
}

static bool gnutls_ok(int rc, const char *what, const char *path,
                      GError **errp)
{
    if (rc < 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "%s %s: %s", what, path,
                    gnutls_strerror(rc));
        return false;
    }
    return true;
}

static void tls_creds_free(TlsCreds *c)
{
    if (c->x509) {
        gnutls_certificate_free_credentials(c->x509);
    }
    g_free(c->id);
    g_free(c->dir);
    g_free(c);
}

/* Loads the PEM files of @c->dir for its endpoint. */
static bool tls_creds_load(TlsCreds *c, GError **errp)
{
    const char *me = c->server ? "server" : "client";
    g_autofree char *ca = g_build_filename(c->dir, "ca-cert.pem", NULL);
    g_autofree char *cert_name = g_strdup_printf("%s-cert.pem", me);
    g_autofree char *key_name = g_strdup_printf("%s-key.pem", me);
    g_autofree char *cert = g_build_filename(c->dir, cert_name, NULL);
    g_autofree char *key = g_build_filename(c->dir, key_name, NULL);
    int rc;

    rc = gnutls_certificate_allocate_credentials(&c->x509);
    if (!gnutls_ok(rc, "TLS credentials", c->id, errp)) {
        return false;
    }
    if (!g_file_test(ca, G_FILE_TEST_EXISTS)) {
        g_set_error(errp, COLO_ERROR, ENOENT, "tls-creds-x509 %s: %s is "
                    "missing", c->id, ca);
        return false;
    }
    rc = gnutls_certificate_set_x509_trust_file(c->x509, ca,
                                                GNUTLS_X509_FMT_PEM);
    if (rc == 0) {
        g_set_error(errp, COLO_ERROR, EINVAL, "CA certificate %s: no "
                    "certificate in it", ca);
        return false;
    }
    if (!gnutls_ok(rc, "CA certificate", ca, errp)) {
        return false;
    }
    if (!c->server && !g_file_test(cert, G_FILE_TEST_EXISTS)) {
        /* a client may go without a certificate of its own */
        return true;
    }
    rc = gnutls_certificate_set_x509_key_file(c->x509, cert, key,
                                              GNUTLS_X509_FMT_PEM);
    return gnutls_ok(rc, "certificate and key", cert, errp);
}

static bool add_tls_creds(GHashTable *props, const char *spec, GError **errp)
{
    TlsCreds *c = g_new0(TlsCreds, 1);
    g_autofree char *endpoint = take(props, "endpoint");
    g_autofree char *verify = take(props, "verify-peer");

    c->id = take(props, "id");
    c->dir = take(props, "dir");
    if (!c->id || !c->dir) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-object %s: id= and dir= are "
                    "required", spec);
        goto fail;
    }
    if (endpoint && strcmp(endpoint, "server") && strcmp(endpoint, "client")) {
        g_set_error(errp, COLO_ERROR, EINVAL, "Parameter 'endpoint' does not "
                    "accept value '%s'", endpoint);
        goto fail;
    }
    c->server = !endpoint || !strcmp(endpoint, "server");
    /* QEMU's default: a client always checks the server; a server checks
     * its clients unless told not to */
    if (!parse_bool("verify-peer", verify, true, &c->verify_peer, errp) ||
        !tls_creds_load(c, errp)) {
        goto fail;
    }
    g_hash_table_replace(creds_by_id, g_strdup(c->id), c);
    return true;

fail:
    tls_creds_free(c);
    return false;
}

static void authz_free(Authz *z)
{
    g_free(z->id);
    g_free(z->identity);
    g_free(z->filename);
    g_free(z);
}

static bool add_authz(GHashTable *props, bool list_file, const char *spec,
                      GError **errp)
{
    Authz *z = g_new0(Authz, 1);
    g_autofree char *refresh = take(props, "refresh");
    bool unused;

    /* the file is read at every check, so it is always fresh */
    if (!parse_bool("refresh", refresh, true, &unused, errp)) {
        authz_free(z);
        return false;
    }
    z->id = take(props, "id");
    if (list_file) {
        z->filename = take(props, "filename");
    } else {
        z->identity = take(props, "identity");
    }
    if (!z->id || (!z->filename && !z->identity)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "-object %s: id= and %s= are "
                    "required", spec, list_file ? "filename" : "identity");
        authz_free(z);
        return false;
    }
    g_hash_table_replace(authz_by_id, g_strdup(z->id), z);
    return true;
}

bool user_object_add(const char *spec, GError **errp)
{
    g_autofree char *type = NULL;
    g_autoptr(GHashTable) props = parse_props(spec, &type, errp);
    g_autoptr(GList) left = NULL;
    g_autofree char *id = NULL;
    bool ok;

    if (!props) {
        return false;
    }
    id = g_strdup(g_hash_table_lookup(props, "id"));
    g_mutex_lock(&objects_lock);
    if (!creds_by_id) {
        creds_by_id = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify)tls_creds_free);
        authz_by_id = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify)authz_free);
    }
    if (g_hash_table_contains(props, "id") &&
        (g_hash_table_contains(creds_by_id, g_hash_table_lookup(props, "id"))
         || g_hash_table_contains(authz_by_id,
                                  g_hash_table_lookup(props, "id")))) {
        g_set_error(errp, COLO_ERROR, EEXIST, "attempt to add duplicate "
                    "property '%s' to object",
                    (char *)g_hash_table_lookup(props, "id"));
        ok = false;
    } else if (!strcmp(type, "tls-creds-x509")) {
        g_free(take(props, "sanity-check"));
        g_free(take(props, "priority"));
        ok = add_tls_creds(props, spec, errp);
    } else if (!strcmp(type, "authz-simple")) {
        ok = add_authz(props, false, spec, errp);
    } else if (!strcmp(type, "authz-list-file")) {
        ok = add_authz(props, true, spec, errp);
    } else {
        g_set_error(errp, COLO_ERROR, EINVAL, "-object %s: type '%s' is not "
                    "known here (tls-creds-x509, authz-simple, "
                    "authz-list-file are)", spec, type);
        ok = false;
    }
    left = g_hash_table_get_keys(props);
    if (ok && left) {
        /* a property we did not understand: no object after all */
        g_hash_table_remove(creds_by_id, id);
        g_hash_table_remove(authz_by_id, id);
        g_set_error(errp, COLO_ERROR, EINVAL, "-object %s: Property '%s' not "
                    "found", spec, (char *)left->data);
        ok = false;
    }
    g_mutex_unlock(&objects_lock);
    return ok;
}

const TlsCreds *tls_creds_find(const char *id, GError **errp)
{
    const TlsCreds *c = NULL;

    g_mutex_lock(&objects_lock);
    if (creds_by_id) {
        c = g_hash_table_lookup(creds_by_id, id);
    }
    g_mutex_unlock(&objects_lock);
    if (!c) {
        g_set_error(errp, COLO_ERROR, ENOENT, "No TLS credentials with id "
                    "'%s'", id);
    }
    return c;
}

/* authz-list-file: the first rule that matches decides, else the policy. */
static bool list_file_allows(const Authz *z, const char *identity,
                             GError **errp)
{
    g_autoptr(JsonNode) doc = NULL;
    g_autofree char *text = NULL;
    gsize len;
    JsonObject *root;
    JsonArray *rules;
    const char *policy;

    if (!g_file_get_contents(z->filename, &text, &len, errp)) {
        g_prefix_error(errp, "authz-list-file %s: ", z->id);
        return false;
    }
    if (len <= AUTHZ_FILE_MAX) {
        doc = json_input_parse(text, len, JSON_INPUT_STRICT, NULL);
    }
    if (!doc || !JSON_NODE_HOLDS_OBJECT(doc)) {
        g_set_error(errp, COLO_ERROR, EINVAL, "authz-list-file %s: %s is not "
                    "a JSON object of at most 1 MiB", z->id, z->filename);
        return false;
    }
    root = json_node_get_object(doc);
    policy = json_object_get_string_member_with_default(root, "policy",
                                                        "deny");
    rules = json_object_has_member(root, "rules") ?
            json_object_get_array_member(root, "rules") : NULL;
    for (guint i = 0; rules && i < json_array_get_length(rules); i++) {
        JsonObject *r = json_array_get_object_element(rules, i);
        const char *match, *format;
        bool hit;

        if (!r) {
            continue;
        }
        match = json_object_get_string_member_with_default(r, "match", NULL);
        format = json_object_get_string_member_with_default(r, "format",
                                                            "exact");
        if (!match) {
            continue;
        }
        hit = !strcmp(format, "glob") ? g_pattern_match_simple(match, identity)
                                      : !strcmp(match, identity);
        if (hit) {
            policy = json_object_get_string_member_with_default(r, "policy",
                                                                "deny");
            break;
        }
    }
    if (strcmp(policy, "allow") != 0) {
        g_set_error(errp, COLO_ERROR, EACCES, "TLS peer '%s' is not allowed "
                    "by authz-list-file %s", identity, z->id);
        return false;
    }
    return true;
}

bool authz_is_allowed(const char *id, const char *identity, GError **errp)
{
    const Authz *z = NULL;

    g_mutex_lock(&objects_lock);
    if (authz_by_id) {
        z = g_hash_table_lookup(authz_by_id, id);
    }
    g_mutex_unlock(&objects_lock);
    if (!z) {
        g_set_error(errp, COLO_ERROR, ENOENT, "No authorization object with "
                    "id '%s'", id);
        return false;
    }
    if (z->filename) {
        return list_file_allows(z, identity, errp);
    }
    if (strcmp(z->identity, identity) != 0) {
        g_set_error(errp, COLO_ERROR, EACCES, "TLS peer '%s' is not allowed "
                    "by authz-simple %s (identity %s)", identity, z->id,
                    z->identity);
        return false;
    }
    return true;
}
