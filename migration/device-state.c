/*
 * device-state.c: keeping device state we cannot parse.
 *
 * A FULL section carries no length: only the device's vmstate schema says
 * where its body ends.  The VMDESCRIPTION JSON that QEMU writes after EOF
 * describes every FULL section of the stream, field sizes included, so
 * once the stream up to the end of that JSON is buffered every section can
 * be delimited exactly and its footer checked.
 *
 * Finding that end while the stream is still arriving: the JSON record is
 * "00 06 <be32 len> {".  Every such pattern in the buffered bytes is a
 * candidate; a candidate is accepted only when its JSON parses and walking
 * the sections with the JSON's lengths lands exactly on its EOF byte, each
 * footer matching.  Candidates are only tried once all their bytes are
 * buffered, and we only block for more input when no complete candidate
 * is left, so a COLO primary that pauses after the JSON never stalls us.
 */
#include "qemu/osdep.h"

#include <json-glib/json-glib.h>

#include "migration/device-state.h"
#include "migration/wire.h"
#include "qemu/bswap.h"
#include "qemu/json-input.h"

VMDeviceState *device_state_ref(VMDeviceState *ds)
{
    g_atomic_int_inc(&ds->refcount);
    return ds;
}

void device_state_unref(VMDeviceState *ds)
{
    if (!ds || !g_atomic_int_dec_and_test(&ds->refcount)) {
        return;
    }
    g_bytes_unref(ds->blob);
    g_array_unref(ds->sections);
    g_free(ds->vmdesc_json);
    g_free(ds);
}

static VMDeviceState *device_state_new(void)
{
    VMDeviceState *ds = g_new0(VMDeviceState, 1);

    ds->refcount = 1;
    ds->sections = g_array_new(FALSE, TRUE, sizeof(DeviceSection));
    return ds;
}

/* Sum of a JSON integer member, refusing anything but 0..limit. */
static bool json_uint(JsonObject *o, const char *name, int64_t limit,
                      int64_t *out)
{
    JsonNode *n = json_object_get_member(o, name);

    if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
        json_node_get_value_type(n) != G_TYPE_INT64) {
        return false;
    }
    *out = json_node_get_int(n);
    return *out >= 0 && *out <= limit;
}

/* Body length of a vmstate description (device or subsection); -1 when
 * the description does not make sense. */
static int64_t vmsd_length(JsonObject *o, int depth)
{
    JsonArray *fields, *subs;
    int64_t total = 0;

    if (depth > 32) {
        return -1;
    }
    fields = json_object_has_member(o, "fields") ?
             json_object_get_array_member(o, "fields") : NULL;
    if (!fields) {
        return -1;
    }
    for (guint i = 0; i < json_array_get_length(fields); i++) {
        JsonObject *fo = json_array_get_object_element(fields, i);
        int64_t size, count = 1;

        if (!fo || !json_uint(fo, "size", DEVICE_STATE_MAX_BYTES, &size)) {
            return -1;
        }
        if (json_object_has_member(fo, "array_len") &&
            !json_uint(fo, "array_len", DEVICE_STATE_MAX_BYTES, &count)) {
            return -1;
        }
        total += size * count;
        if (total > DEVICE_STATE_MAX_BYTES) {
            return -1;
        }
    }
    subs = json_object_has_member(o, "subsections") ?
           json_object_get_array_member(o, "subsections") : NULL;
    for (guint i = 0; subs && i < json_array_get_length(subs); i++) {
        JsonObject *so = json_array_get_object_element(subs, i);
        const char *name;
        int64_t len;

        if (!so || !json_object_has_member(so, "vmsd_name")) {
            return -1;
        }
        name = json_object_get_string_member(so, "vmsd_name");
        len = vmsd_length(so, depth + 1);
        if (!name || strlen(name) > 255 || len < 0) {
            return -1;
        }
        total += 1 + 1 + (int64_t)strlen(name) + 4 + len;
        if (total > DEVICE_STATE_MAX_BYTES) {
            return -1;
        }
    }
    return total;
}

static int64_t device_length(JsonObject *dev)
{
    int64_t size;

    /* Old-style handlers are described by their byte size alone. */
    if (!json_object_has_member(dev, "vmsd_name") &&
        json_uint(dev, "size", DEVICE_STATE_MAX_BYTES, &size)) {
        return size;
    }
    return vmsd_length(dev, 0);
}

/* The globalstate body: be32 size, then the NUL-padded run state name. */
static void device_state_note_runstate(VMDeviceState *ds, const uint8_t *body,
                                       size_t len)
{
    size_t n;

    if (len < 4 + 1) {
        return;
    }
    n = MIN(ldl_be_p(body), len - 4);
    n = MIN(n, sizeof(ds->runstate) - 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = body[4 + i];

        if (c == 0) {
            break;
        }
        if (!g_ascii_isalnum(c) && c != '-' && c != '_') {
            ds->runstate[0] = '\0';
            return;
        }
        ds->runstate[i] = c;
        ds->runstate[i + 1] = '\0';
    }
}

/*
 * Walks the FULL sections in @t[0, @eof) with the lengths of @json.
 * On success fills @ds->sections.  @why names the first mismatch.
 */
static bool device_state_walk(VMDeviceState *ds, const uint8_t *t, size_t eof,
                              JsonObject *top, char **why)
{
    JsonArray *devs = json_object_has_member(top, "devices") ?
                      json_object_get_array_member(top, "devices") : NULL;
    size_t pos = 0;

    if (!devs) {
        *why = g_strdup("VMDESCRIPTION has no device list");
        return false;
    }
    g_array_set_size(ds->sections, 0);
    for (guint i = 0; i < json_array_get_length(devs); i++) {
        JsonObject *dev = json_array_get_object_element(devs, i);
        DeviceSection s = { 0 };
        const char *name;
        int64_t inst, body;
        size_t hdr;
        uint8_t nlen;

        if (!dev || !json_object_has_member(dev, "name") ||
            !json_uint(dev, "instance_id", UINT32_MAX, &inst)) {
            *why = g_strdup_printf("device %u of VMDESCRIPTION is malformed",
                                   i);
            return false;
        }
        name = json_object_get_string_member(dev, "name");
        body = device_length(dev);
        if (!name || body < 0) {
            *why = g_strdup_printf("cannot size device %u of VMDESCRIPTION",
                                   i);
            return false;
        }
        if (eof - pos < 6 || t[pos] != QEMU_VM_SECTION_FULL) {
            *why = g_strdup_printf("expected FULL section '%s' at +%zu",
                                   name, pos);
            return false;
        }
        nlen = t[pos + 5];
        hdr = 1 + 4 + 1 + nlen + 4 + 4;
        if (eof - pos < hdr) {
            *why = g_strdup_printf("section '%s' header overruns", name);
            return false;
        }
        memcpy(s.idstr, t + pos + 6, nlen);
        s.idstr[nlen] = '\0';
        s.section_id = ldl_be_p(t + pos + 1);
        s.instance_id = ldl_be_p(t + pos + 6 + nlen);
        s.version_id = ldl_be_p(t + pos + 10 + nlen);
        if (strcmp(s.idstr, name) != 0 || s.instance_id != inst) {
            *why = g_strdup_printf("section '%s' instance %u does not match "
                                   "VMDESCRIPTION entry '%s' instance %"
                                   PRId64, s.idstr, s.instance_id, name,
                                   inst);
            return false;
        }
        if ((uint64_t)body + 5 > eof - pos - hdr) {
            *why = g_strdup_printf("section '%s' runs past the EOF byte",
                                   name);
            return false;
        }
        s.offset = pos;
        s.length = hdr + body + 5;
        if (t[pos + hdr + body] != QEMU_VM_SECTION_FOOTER ||
            ldl_be_p(t + pos + hdr + body + 1) != s.section_id) {
            *why = g_strdup_printf("section '%s' (id %u) has no matching "
                                   "footer at +%zu", name, s.section_id,
                                   (size_t)(pos + hdr + body));
            return false;
        }
        if (strcmp(s.idstr, "globalstate") == 0) {
            device_state_note_runstate(ds, t + pos + hdr, body);
        }
        g_array_append_val(ds->sections, s);
        pos += s.length;
    }
    if (pos != eof) {
        *why = g_strdup_printf("%zu bytes between the last section and EOF",
                               eof - pos);
        return false;
    }
    return true;
}

struct VmdescMemo {
    char *json;
    uint32_t len;
    JsonNode *root;
};

VmdescMemo *vmdesc_memo_new(void)
{
    return g_new0(VmdescMemo, 1);
}

void vmdesc_memo_free(VmdescMemo *m)
{
    if (m) {
        g_free(m->json);
        if (m->root) {
            json_node_unref(m->root);
        }
        g_free(m);
    }
}

/* The parse of @json, from @memo when the text is the one it holds. */
static JsonNode *vmdesc_parse(VmdescMemo *memo, const char *json,
                              uint32_t jlen, GError **errp)
{
    JsonNode *root;

    if (memo && memo->root && memo->len == jlen &&
        memcmp(memo->json, json, jlen) == 0) {
        return json_node_ref(memo->root);
    }
    root = json_input_parse(json, jlen, JSON_INPUT_STRICT, errp);
    if (root && memo) {
        g_free(memo->json);
        if (memo->root) {
            json_node_unref(memo->root);
        }
        memo->json = g_memdup2(json, jlen);
        memo->len = jlen;
        memo->root = json_node_ref(root);
    }
    return root;
}

/* Tries the candidate EOF at @p: true if it delimits everything. */
static bool device_state_try(VMDeviceState *ds, const uint8_t *t, size_t p,
                             uint32_t jlen, VmdescMemo *memo, char **why)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(JsonNode) root = NULL;
    const char *json = (const char *)t + p + 6;

    if (memchr(json, '\0', jlen)) {
        return false;   /* not JSON; any later candidate's header has one */
    }
    root = vmdesc_parse(memo, json, jlen, &err);
    if (!root) {
        /* not this candidate; the reason stays unless a later one fits */
        g_free(*why);
        *why = g_strdup_printf("VMDESCRIPTION: %s",
                               err ? err->message : "not JSON");
        return false;
    }
    if (!JSON_NODE_HOLDS_OBJECT(root)) {
        return false;
    }
    g_free(*why);
    *why = NULL;
    return device_state_walk(ds, t, p, json_node_get_object(root), why);
}

VMDeviceState *device_state_read_stream_tail(QEMUFile *f, VmdescMemo *memo,
                                             GError **errp)
{
    g_autoptr(VMDeviceState) ds = device_state_new();
    g_autoptr(GArray) cands = g_array_new(FALSE, FALSE, sizeof(size_t));
    g_autofree char *why = NULL;
    uint64_t start = qemu_file_tell(f);
    size_t scanned = 0, tried = 0;
    size_t avail = qemu_file_fill(f, 1);

    for (;;) {
        const uint8_t *t = qemu_peek(f, avail);

        if (!t) {
            break;
        }
        /* Collect new candidates "00 06 len {". */
        for (; scanned + 7 <= avail; scanned++) {
            if (t[scanned] == QEMU_VM_EOF &&
                t[scanned + 1] == QEMU_VM_VMDESCRIPTION &&
                t[scanned + 6] == '{') {
                uint32_t jlen = ldl_be_p(t + scanned + 2);

                if (jlen > 0 && jlen <= VMDESC_MAX_BYTES) {
                    g_array_append_val(cands, scanned);
                }
            }
        }
        /* Try every candidate whose JSON is complete, in order. */
        for (guint i = tried; i < cands->len; i++) {
            size_t p = g_array_index(cands, size_t, i);
            uint32_t jlen = ldl_be_p(t + p + 2);

            if (p + 6 + jlen > avail) {
                continue;
            }
            if (device_state_try(ds, t, p, jlen, memo, &why)) {
                ds->blob = g_bytes_new(t, p + 1);
                ds->vmdesc_json = g_strndup((const char *)t + p + 6, jlen);
                qemu_file_skip(f, p + 6 + jlen);
                return g_steal_pointer(&ds);
            }
            /* Rejected for good: drop it by swapping in the next one. */
            g_array_remove_index(cands, i);
            i--;
        }
        tried = 0;
        if (avail >= DEVICE_STATE_MAX_BYTES) {
            g_set_error(errp, COLO_ERROR, E2BIG, "device state starting at "
                        "byte offset %" PRIu64 " is larger than %d bytes",
                        start, DEVICE_STATE_MAX_BYTES);
            return NULL;
        }
        {
            size_t more = qemu_file_fill(f, avail + 1);

            if (more <= avail) {
                break;
            }
            avail = more;
        }
    }
    /* ds is released by g_autoptr (refcounted; the analyzer cannot see
     * the count reach zero). */
    if (qemu_file_propagate_error(f, errp)) { // NOLINT(clang-analyzer-unix.Malloc)
        g_set_error(errp, COLO_ERROR, EINVAL, "device state starting at byte "
                    "offset %" PRIu64 " could not be delimited: the stream "
                    "ended after %zu bytes%s%s", start, avail,
                    why ? "; last VMDESCRIPTION candidate: " :
                    " without a usable VMDESCRIPTION",
                    why ? why : "");
    } else {
        g_prefix_error(errp, "device state: ");
    }
    return NULL;
}

VMDeviceState *device_state_from_blob(GBytes *blob, GError **errp)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(blob, &len);
    VMDeviceState *ds;

    if (len == 0 || p[len - 1] != QEMU_VM_EOF) {
        g_set_error(errp, COLO_ERROR, EINVAL, "device state blob of %zu "
                    "bytes does not end with EOF", (size_t)len);
        return NULL;
    }
    if (p[0] != QEMU_VM_SECTION_FULL && len != 1) {
        g_set_error(errp, COLO_ERROR, EINVAL, "device state blob starts "
                    "with 0x%02x, not a FULL section", p[0]);
        return NULL;
    }
    ds = device_state_new();
    ds->blob = g_bytes_ref(blob);
    return ds;
}

bool device_state_save_blob(GBytes *blob, const char *dir, GError **errp)
{
    g_autofree char *bin = g_build_filename(dir, DEVICE_STATE_FILE, NULL);
    gsize len;
    const char *data = g_bytes_get_data(blob, &len);

    return g_file_set_contents(bin, data, len, errp);
}

bool device_state_save(VMDeviceState *ds, const char *dir, GError **errp)
{
    if (!device_state_save_blob(ds->blob, dir, errp)) {
        return false;
    }
    if (ds->vmdesc_json) {
        g_autofree char *js = g_build_filename(dir, VMDESC_FILE, NULL);

        if (!g_file_set_contents(js, ds->vmdesc_json, -1, errp)) {
            return false;
        }
    }
    return true;
}
