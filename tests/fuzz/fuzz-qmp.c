/*
 * fuzz-qmp.c: the QMP request parser and dispatcher, one request per line,
 * on a real (never started) incoming session, sandboxed: commands with
 * effects outside the process (migrate-incoming, quit) are refused.  Invariant: every reply is valid JSON
 * with either "return" or "error".
 */
#include "qemu/osdep.h"

#include "migration/migration.h"
#include "monitor/monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static MigrationIncomingState *mis;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MigrationNotifier n = { 0 };
    MonitorContext ctx;
    g_autofree char *text = g_strndup((const char *)data, size);
    g_auto(GStrv) lines = NULL;
    bool negotiated = false;

    if (!mis) {
        mis = migration_incoming_new("/nonexistent", &n);
    }
    ctx = (MonitorContext) { .mis = mis, .name = "fuzz", .sandboxed = true };
    lines = g_strsplit(text, "\n", 16);
    for (int i = 0; lines[i]; i++) {
        g_autoptr(JsonNode) reply = monitor_handle_request(&ctx, &negotiated,
                                                           lines[i]);
        JsonObject *o;

        if (!reply) {
            continue;
        }
        o = json_node_get_object(reply);
        if (!o || (!json_object_has_member(o, "return") &&
                   !json_object_has_member(o, "error"))) {
            abort();
        }
    }
    /* keep the session's options as they were for the next input */
    migration_options_init(migration_incoming_options(mis));
    return 0;
}
