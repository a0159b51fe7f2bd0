/*
 * colo-test-primary: a scripted COLO primary for tests and benchmarks.
 *
 * It sends a real initial migration stream (one a stock QEMU saved with the
 * x-colo capability on, so it carries ENABLE_COLO) to one or more
 * secondaries, then drives them through checkpoints of QEMU's COLO
 * protocol made from a RAM model it changes between checkpoints: chosen
 * dirty sets, zero pages, XBZRLE updates, pages of several blocks,
 * CONTINUE across checkpoints, empty RAM parts.  The device-state blob of
 * every checkpoint is the one of the initial stream.  All secondaries get
 * the same bytes and must all answer each step before the next goes out.
 *
 *   colo-test-primary --initial FILE --connect tcp:HOST:PORT [--connect ...]
 *       [--checkpoints N] [--pages N] [--seed N] [--xbzrle] [--ram-dir DIR]
 *       [--region MIB:MIB] [--cut-last] [--delay-ms N] [--exact] [--ram-only]
 *       [--quiet]
 *
 * On exit the RAM model (--ram-dir) holds what every secondary must hold.
 * Exit status: 0 done, 1 bad arguments or input, 2 a secondary failed.
 */
#include "qemu/osdep.h"

#include "crypto/tls-creds.h"
#include "exec/ram_addr.h"
#include "migration/colo-send.h"
#include "migration/qemu-file.h"
#include "migration/ram-save.h"
#include "migration/savevm.h"
#include "migration/wire.h"

typedef struct Options {
    char *initial;
    char **connect;
    int checkpoints;
    int pages;
    int seed;
    gboolean xbzrle;
    char *ram_dir;
    char *region;
    gboolean cut_last;
    int delay_ms;
    gboolean quiet;
    gboolean exact;
    gboolean ram_only;
    char **objects;             /* -object specs: TLS credentials */
    char *tls_creds;
    char *tls_hostname;
} Options;

/* Every secondary gets the same bytes, or the first error. */
static bool send_all(GPtrArray *peers, GBytes *bytes, GError **errp)
{
    for (guint i = 0; i < peers->len; i++) {
        if (!colo_peer_send_bytes(g_ptr_array_index(peers, i), bytes, errp)) {
            return false;
        }
    }
    return true;
}

static bool send_message_all(GPtrArray *peers, COLOMessage msg,
                             GError **errp)
{
    for (guint i = 0; i < peers->len; i++) {
        if (!colo_peer_send_message(g_ptr_array_index(peers, i), msg,
                                    errp)) {
            return false;
        }
    }
    return true;
}

/* Each secondary must answer @msg before anything else goes out. */
static bool expect_all(GPtrArray *peers, COLOMessage msg, GError **errp)
{
    for (guint i = 0; i < peers->len; i++) {
        if (!colo_peer_expect(g_ptr_array_index(peers, i), msg, errp)) {
            return false;
        }
    }
    return true;
}

/* Picks the next dirty page: mostly pc.ram inside the region, sometimes
 * another migrated block. */
static RAMBlock *pick_page(RAMList *rl, GRand *r, uint64_t lo, uint64_t hi,
                           bool ram_only, uint64_t *offset)
{
    RAMBlock *ram, *rb;

    g_assert(rl->blocks->len > 0);
    ram = rb = g_ptr_array_index(rl->blocks, 0);

    if (!ram_only && g_rand_int_range(r, 0, 100) < 15 &&
        rl->blocks->len > 1) {
        rb = g_ptr_array_index(rl->blocks,
                               g_rand_int_range(r, 1, rl->blocks->len));
    }
    if (rb == ram && hi > lo && hi <= rb->used_length) {
        *offset = lo + ((uint64_t)g_rand_int_range(r, 0, (hi - lo) >> 12)
                        << 12);
    } else {
        *offset = (uint64_t)g_rand_int_range(r, 0, rb->used_length >> 12)
                  << 12;
    }
    return rb;
}

/* Builds the live state of checkpoint @k and applies it to the model. */
static GBytes *build_checkpoint(const Options *o, LoadVMState *lv,
                                RAMSaveState *rs, GRand *r, int k,
                                uint64_t lo, uint64_t hi, bool switchover)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    g_autoptr(GHashTable) seen = g_hash_table_new(NULL, NULL);
    RAMList *rl = lv->ram.ram_list;
    int n = o->exact ? o->pages :
            (k % 5 == 3) ? 0 : g_rand_int_range(r, 1, o->pages + 1);
    int got = 0;
    uint8_t old[TARGET_PAGE_SIZE];

    rs->f = f;
    colo_put_checkpoint_head(f, lv->ram_section_id, switchover);
    for (int i = 0; got < n && i < 8 * n; i++) {
        uint64_t off;
        RAMBlock *rb = pick_page(rl, r, lo, hi, o->ram_only, &off);
        uint8_t *page = rb->host + off;
        gpointer key = GSIZE_TO_POINTER((gsize)page);
        int kind = g_rand_int_range(r, 0, 100);

        if (rb->ignored || g_hash_table_contains(seen, key)) {
            continue;
        }
        g_hash_table_add(seen, key);
        got++;
        memcpy(old, page, sizeof(old));
        if (kind < 20) {
            memset(page, 0, TARGET_PAGE_SIZE);
        } else if (kind < 60) {
            /* a few words change, as a running guest does */
            for (int j = g_rand_int_range(r, 1, 8); j > 0; j--) {
                uint32_t v = g_rand_int(r);

                memcpy(page + (g_rand_int_range(r, 0, 1024) << 2), &v, 4);
            }
            snprintf((char *)page, 32, "ckpt %d page %" PRIx64, k, off);
        } else {
            for (int j = 0; j < (int)TARGET_PAGE_SIZE; j += 4) {
                uint32_t v = g_rand_int(r);

                memcpy(page + j, &v, 4);
            }
        }
        ram_save_any(rs, rb, off, o->xbzrle ? old : NULL, page);
    }
    colo_put_checkpoint_tail(rs, lv->ram_section_id);
    rs->f = NULL;
    return qemu_file_steal_output(f);
}

int main(int argc, char **argv)
{
    Options o = { .checkpoints = 20, .pages = 64, .seed = 1 };
    GOptionEntry entries[] = {
        { "initial", 0, 0, G_OPTION_ARG_FILENAME, &o.initial,
          "initial migration stream (with ENABLE_COLO)", "FILE" },
        { "connect", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o.connect,
          "a secondary (repeatable)", "tcp:HOST:PORT" },
        { "checkpoints", 0, 0, G_OPTION_ARG_INT, &o.checkpoints,
          "checkpoints to run (20)", "N" },
        { "pages", 0, 0, G_OPTION_ARG_INT, &o.pages,
          "at most N dirty pages per checkpoint (64)", "N" },
        { "seed", 0, 0, G_OPTION_ARG_INT, &o.seed, "random seed", "N" },
        { "xbzrle", 0, 0, G_OPTION_ARG_NONE, &o.xbzrle,
          "send changed pages as XBZRLE", NULL },
        { "ram-dir", 0, 0, G_OPTION_ARG_FILENAME, &o.ram_dir,
          "where the RAM model lives", "DIR" },
        { "region", 0, 0, G_OPTION_ARG_STRING, &o.region,
          "pc.ram range to dirty, in MiB (16:48)", "LO:HI" },
        { "cut-last", 0, 0, G_OPTION_ARG_NONE, &o.cut_last,
          "close the connection after the last checkpoint's RAM part",
          NULL },
        { "delay-ms", 0, 0, G_OPTION_ARG_INT, &o.delay_ms,
          "pause between checkpoints", "MS" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "no progress", NULL },
        { "ram-only", 0, 0, G_OPTION_ARG_NONE, &o.ram_only,
          "dirty the main RAM block only (keep the guest's firmware)",
          NULL },
        { "exact", 0, 0, G_OPTION_ARG_NONE, &o.exact,
          "exactly --pages distinct pages in every checkpoint", NULL },
        { "object", 0, 0, G_OPTION_ARG_STRING_ARRAY, &o.objects,
          "as QEMU's -object (repeatable)", "tls-creds-x509,id=ID,..." },
        { "tls-creds", 0, 0, G_OPTION_ARG_STRING, &o.tls_creds,
          "connect over TLS with these credentials", "ID" },
        { "tls-hostname", 0, 0, G_OPTION_ARG_STRING, &o.tls_hostname,
          "the name in the secondary's certificate (default: HOST)",
          "NAME" },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- scripted COLO "
                                                         "primary");
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) peers =
        g_ptr_array_new_with_free_func((GDestroyNotify)colo_peer_free);
    g_autoptr(GBytes) initial = NULL;
    g_autoptr(QEMUFile) model_in = NULL;
    g_autoptr(RAMList) rl = NULL;
    GBytes *blob;
    LoadVMState lv;
    RAMSaveState rs;
    GRand *r = NULL;
    uint64_t lo = 16 << 20, hi = 48 << 20;
    bool switchover;
    gchar *contents;
    gsize len;
    int status = 0;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "colo-test-primary: %s\n", err->message);
        return 1;
    }
    if (!o.initial || !o.connect) {
        fprintf(stderr, "colo-test-primary: --initial and --connect are "
                "required\n");
        return 1;
    }
    for (int i = 0; o.objects && o.objects[i]; i++) {
        if (!user_object_add(o.objects[i], &err)) {
            fprintf(stderr, "colo-test-primary: %s\n", err->message);
            return 1;
        }
    }
    if (o.region && sscanf(o.region, "%" SCNu64 ":%" SCNu64, &lo, &hi) == 2) {
        lo <<= 20;
        hi <<= 20;
    }
    if (!o.ram_dir) {
        /* under $COLO_PRIMARY_RUNDIR when set (a test's own folder: gone
         * with it even when the test kills us) */
        const char *base = g_getenv("COLO_PRIMARY_RUNDIR");

        o.ram_dir = g_build_filename(base ? base : "/dev/shm",
                                     "colo-test-primary-XXXXXX", NULL);
        if (!g_mkdtemp(o.ram_dir)) {
            fprintf(stderr, "colo-test-primary: cannot create %s\n",
                    o.ram_dir);
            g_free(o.ram_dir);
            return 1;
        }
    }


    /* The model: the initial stream, loaded by our own loader. */
    if (!g_file_get_contents(o.initial, &contents, &len, &err)) {
        fprintf(stderr, "colo-test-primary: %s\n", err->message);
        g_free(o.ram_dir);
        return 1;
    }
    initial = g_bytes_new_take(contents, len);
    model_in = qemu_file_new_input_bytes(initial);
    rl = ram_list_new(o.ram_dir);
    loadvm_init(&lv, model_in, rl);
    lv.cap_colo = true;
    if (!qemu_loadvm_state(&lv, &err) || !lv.colo_requested ||
        !lv.devices || qemu_file_tell(model_in) != len) {
        fprintf(stderr, "colo-test-primary: %s: %s\n", o.initial,
                err ? err->message : "not a complete COLO initial stream");
        status = 1;
        goto out;
    }
    blob = lv.devices->blob;
    switchover = colo_machine_sends_switchover(lv.machine);
    ram_save_init(&rs, NULL);
    rs.last_block = lv.ram.last_block;
    r = g_rand_new_with_seed(o.seed);

    for (int i = 0; o.connect[i]; i++) {
        TlsParams tls = { .creds = o.tls_creds,
                          .hostname = o.tls_hostname };
        ColoPeer *p = colo_peer_connect(o.connect[i], &tls, &err);

        if (!p) {
            goto fail;
        }
        g_ptr_array_add(peers, p);
    }

    if (!send_all(peers, initial, &err) ||
        !expect_all(peers, COLO_MESSAGE_CHECKPOINT_READY, &err)) {
        goto fail;
    }
    for (int k = 1; k <= o.checkpoints; k++) {
        g_autoptr(GBytes) live = NULL;
        int64_t t0 = g_get_monotonic_time();

        if (o.delay_ms) {
            g_usleep(o.delay_ms * 1000);
        }
        if (!send_message_all(peers, COLO_MESSAGE_CHECKPOINT_REQUEST, &err) ||
            !expect_all(peers, COLO_MESSAGE_CHECKPOINT_REPLY, &err)) {
            goto fail;
        }
        live = build_checkpoint(&o, &lv, &rs, r, k, lo, hi, switchover);
        if (!send_all(peers, live, &err)) {
            goto fail;
        }
        if (o.cut_last && k == o.checkpoints) {
            if (!o.quiet) {
                printf("checkpoint %d cut after its RAM part\n", k);
            }
            break;
        }
        for (guint i = 0; i < peers->len; i++) {
            if (!colo_peer_send_vmstate_size(g_ptr_array_index(peers, i),
                                             g_bytes_get_size(blob), &err)) {
                goto fail;
            }
        }
        if (!send_all(peers, blob, &err) ||
            !expect_all(peers, COLO_MESSAGE_VMSTATE_RECEIVED, &err) ||
            !expect_all(peers, COLO_MESSAGE_VMSTATE_LOADED, &err)) {
            goto fail;
        }
        if (!o.quiet) {
            printf("checkpoint %d: %zu bytes of RAM records, %.1f ms\n", k,
                   (size_t)g_bytes_get_size(live),
                   (g_get_monotonic_time() - t0) / 1000.0);
            fflush(stdout);
        }
    }
    if (!o.quiet) {
        printf("done: %" PRIu64 " pages, %" PRIu64 " zero, %" PRIu64
               " xbzrle; model in %s\n", rs.pages, rs.zero_pages,
               rs.xbzrle_pages, o.ram_dir);
    }
    goto out;

fail:
    fprintf(stderr, "colo-test-primary: %s\n", err->message);
    status = 2;
out:
    for (guint i = 0; i < rl->blocks->len; i++) {
        ram_block_sync(g_ptr_array_index(rl->blocks, i));
    }
    loadvm_cleanup(&lv);
    if (r) {
        g_rand_free(r);
    }
    g_strfreev(o.connect);
    g_strfreev(o.objects);
    g_free(o.tls_creds);
    g_free(o.tls_hostname);
    g_free(o.initial);
    g_free(o.region);
    g_free(o.ram_dir);
    return status;
}
