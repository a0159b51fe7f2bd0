/*
 * colo-primary: checkpoint an unmodified, running QEMU VM into a COLO
 * secondary, from outside, with nothing but QMP and shared memory.
 *
 *   colo-primary --qmp QEMU_QMP_SOCKET --ram-file SHARED_RAM_FILE
 *                --connect tcp:HOST:PORT [--x-checkpoint-delay MS]
 *                [--checkpoints N] [--ram-block pc.ram]
 *                [--verify-secondary RAM_DIR] [--quiet]
 *
 * The VM runs in stock qemu-system-x86_64 with its main RAM in a shared
 * memory-backend-file (id = --ram-block).  Per checkpoint, with the VM
 * stopped: the device state is taken with a migration that leaves the
 * shared RAM out (x-ignore-shared), the main RAM pages that changed are
 * found and copied into a staging buffer, then the VM continues and the
 * checkpoint goes to the secondary in QEMU's COLO wire format.
 *
 * Finding changed pages: this kernel offers no working soft-dirty bits
 * (checked at start by writing a page of our own), so a 64-bit hash per
 * page is compared while the VM is stopped.  That never misses a write,
 * at the price of reading all of guest RAM in every pause.
 *
 * Exit status: 0 done, 1 bad arguments, 2 the secondary failed, 3 QEMU
 * failed (QMP error, QEMU gone, RAM file of the wrong size), 4 the
 * secondary's RAM differs from ours (--verify-secondary).  The VM is never
 * left stopped by us: every error path after a stop issues cont first.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "exec/ram_addr.h"
#include "migration/channel.h"
#include "migration/qemu-file.h"
#include "migration/ram-save.h"
#include "migration/savevm.h"
#include "migration/wire.h"
#include "monitor/qmp-client.h"

enum { EXIT_USAGE = 1, EXIT_SECONDARY = 2, EXIT_QEMU = 3, EXIT_VERIFY = 4 };

typedef struct Agent {
    QmpClient *qmp;
    bool vm_stopped_by_us;
    uint8_t *ram;               /* the shared RAM file, read-only */
    uint64_t ram_size;
    char *ram_block;
    uint64_t *hashes;           /* per page of main RAM */
    char *work;                 /* captures and ROM models */
    int capture_no;
    int fd;                     /* the secondary */
    QEMUFile *from_sec;
    GHashTable *roms;           /* idstr -> GBytes (last sent) */
} Agent;

/* The state of one capture (device part of an x-ignore-shared migration). */
typedef struct Capture {
    RAMList *rl;
    LoadVMState lv;
    QEMUFile *f;
    GBytes *bytes;
} Capture;

static uint64_t page_hash(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t h = 0x9e3779b97f4a7c15ULL;

    for (int i = 0; i < 512; i++) {
        h = (h ^ w[i]) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
    }
    return h;
}

static bool qmp_simple(Agent *a, const char *cmd, const char *args,
                       GError **errp)
{
    g_autoptr(JsonNode) r = qmp_client_cmd(a->qmp, cmd, args, errp);

    return r != NULL;
}

static bool vm_stop(Agent *a, GError **errp)
{
    if (!qmp_simple(a, "stop", NULL, errp)) {
        return false;
    }
    a->vm_stopped_by_us = true;
    return true;
}

static bool vm_cont(Agent *a, GError **errp)
{
    if (!a->vm_stopped_by_us) {
        return true;
    }
    a->vm_stopped_by_us = false;
    return qmp_simple(a, "cont", NULL, errp);
}

static void capture_free(Capture *c)
{
    loadvm_cleanup(&c->lv);
    qemu_fclose(c->f);
    g_bytes_unref(c->bytes);
    ram_list_free(c->rl);
    g_free(c);
}

/* With the VM stopped: the device state, by a migration without the
 * shared RAM, loaded by our own loader into a fresh model folder. */
static Capture *capture_devices(Agent *a, GError **errp)
{
    g_autofree char *dir = g_strdup_printf("%s/cap%d", a->work,
                                           ++a->capture_no);
    g_autofree char *file = g_strdup_printf("%s.mig", dir);
    g_autofree char *placeholder = g_build_filename(dir, a->ram_block, NULL);
    g_autofree char *args = g_strdup_printf("{\"uri\": \"exec:cat > %s\"}",
                                            file);
    int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    Capture *c;
    gchar *data;
    gsize len;

    g_mkdir_with_parents(dir, 0700);
    if (!qmp_simple(a, "migrate", args, errp)) {
        return NULL;
    }
    for (;;) {
        g_autoptr(JsonNode) r = qmp_client_cmd(a->qmp, "query-migrate", NULL,
                                               errp);
        JsonObject *o;
        const char *st;

        if (!r) {
            return NULL;
        }
        o = json_node_get_object(r);
        st = json_object_has_member(o, "status") ?
             json_object_get_string_member(o, "status") : "none";
        if (!strcmp(st, "completed")) {
            break;
        }
        if (!strcmp(st, "failed") || g_get_monotonic_time() > deadline) {
            g_set_error(errp, COLO_ERROR, EIO, "device-state migration %s: "
                        "%s", st, json_object_has_member(o, "error-desc") ?
                        json_object_get_string_member(o, "error-desc") :
                        "timed out");
            return NULL;
        }
        g_usleep(500);
    }
    if (!g_file_get_contents(file, &data, &len, errp)) {
        return NULL;
    }
    g_unlink(file);
    c = g_new0(Capture, 1);
    c->bytes = g_bytes_new_take(data, len);
    c->f = qemu_file_new_input_bytes(c->bytes);
    c->rl = ram_list_new(dir);
    loadvm_init(&c->lv, c->f, c->rl);
    c->lv.cap_ignore_shared = true;
    {
        /* A sparse placeholder of the right size makes our loader treat
         * the block as the shared one the capture leaves out. */
        int fd = open(placeholder, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

        if (fd < 0 || ftruncate(fd, a->ram_size) < 0) {
            g_set_error(errp, COLO_ERROR, errno, "%s: %s", placeholder,
                        g_strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            capture_free(c);
            return NULL;
        }
        close(fd);
    }
    if (!qemu_loadvm_state(&c->lv, errp) || !c->lv.devices) {
        if (errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EIO, "capture has no devices");
        }
        g_prefix_error(errp, "reading QEMU's device state: ");
        capture_free(c);
        return NULL;
    }
    return c;
}

static void capture_remove_dir(Agent *a)
{
    g_autofree char *dir = g_strdup_printf("%s/cap%d", a->work, a->capture_no);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);

    if (system(cmd) != 0) {
        /* leftovers in the work folder are harmless */
    }
}

static bool send_bytes(Agent *a, GBytes *b, GError **errp)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(b, &len);

    while (len > 0) {
        ssize_t n = send(a->fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_set_error(errp, COLO_ERROR, errno, "sending to the secondary: "
                        "%s", g_strerror(errno));
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

static bool expect_msg(Agent *a, COLOMessage msg, GError **errp)
{
    uint32_t got = qemu_get_be32(a->from_sec);

    if (qemu_file_propagate_error(a->from_sec, errp)) {
        g_prefix_error(errp, "waiting for the secondary's message %u: ",
                       (unsigned)msg);
        return false;
    }
    if (got != msg) {
        g_set_error(errp, COLO_ERROR, EPROTO, "the secondary sent message "
                    "%u, expected %u", got, (unsigned)msg);
        return false;
    }
    return true;
}

/* Pages of the non-shared blocks (ROMs) that differ from what was sent. */
static void put_rom_changes(Agent *a, RAMSaveState *rs, Capture *c)
{
    for (guint i = 0; i < c->rl->blocks->len; i++) {
        RAMBlock *rb = g_ptr_array_index(c->rl->blocks, i);
        GBytes *old = g_hash_table_lookup(a->roms, rb->idstr);
        const uint8_t *o = old ? g_bytes_get_data(old, NULL) : NULL;

        if (rb->ignored) {
            continue;
        }
        for (uint64_t off = 0; off < rb->used_length;
             off += TARGET_PAGE_SIZE) {
            if (!o || memcmp(o + off, rb->host + off, TARGET_PAGE_SIZE) != 0) {
                ram_save_any(rs, rb, off, NULL, rb->host + off);
            }
        }
        g_hash_table_replace(a->roms, g_strdup(rb->idstr),
                             g_bytes_new(rb->host, rb->used_length));
    }
}

static bool machine_sends_switchover(const char *machine)
{
    int major = 0, minor = 0;

    return machine_type_version(machine, &major, &minor) &&
           (major > 9 || (major == 9 && minor > 2));
}

/* The whole VM, stopped: the initial COLO stream. */
static GBytes *build_initial(Agent *a, Capture *c, RAMSaveState *rs)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    RAMBlock *main_rb = ram_list_find(c->rl, a->ram_block);
    uint32_t id = c->lv.ram_section_id;
    const char *m = c->lv.machine;
    const char *json = c->lv.devices->vmdesc_json;

    rs->f = f;
    qemu_put_be32(f, QEMU_VM_FILE_MAGIC);
    qemu_put_be32(f, QEMU_VM_FILE_VERSION);
    qemu_put_byte(f, QEMU_VM_CONFIGURATION);
    qemu_put_be32(f, strlen(m));
    qemu_put_buffer(f, m, strlen(m));
    qemu_put_byte(f, QEMU_VM_COMMAND);
    qemu_put_be16(f, MIG_CMD_ENABLE_COLO);
    qemu_put_be16(f, 0);
    qemu_put_byte(f, QEMU_VM_SECTION_START);
    qemu_put_be32(f, id);
    qemu_put_str8(f, RAM_SECTION_IDSTR);
    qemu_put_be32(f, 0);
    qemu_put_be32(f, RAM_SECTION_VERSION);
    ram_save_mem_size(rs, c->rl, false);
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, id);
    if (machine_sends_switchover(m)) {
        qemu_put_byte(f, QEMU_VM_COMMAND);
        qemu_put_be16(f, MIG_CMD_SWITCHOVER_START);
        qemu_put_be16(f, 0);
    }
    qemu_put_byte(f, QEMU_VM_SECTION_END);
    qemu_put_be32(f, id);
    for (uint64_t off = 0; off < a->ram_size; off += TARGET_PAGE_SIZE) {
        ram_save_any(rs, main_rb, off, NULL, a->ram + off);
        a->hashes[off >> TARGET_PAGE_BITS] = page_hash(a->ram + off);
    }
    put_rom_changes(a, rs, c);
    ram_save_eos(rs);
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, id);
    qemu_put_buffer(f, g_bytes_get_data(c->lv.devices->blob, NULL),
                    g_bytes_get_size(c->lv.devices->blob));
    if (json) {
        qemu_put_byte(f, QEMU_VM_VMDESCRIPTION);
        qemu_put_be32(f, strlen(json));
        qemu_put_buffer(f, json, strlen(json));
    }
    rs->f = NULL;
    return qemu_file_steal_output(f);
}

typedef struct CheckpointFigures {
    double pause_ms;
    uint64_t dirty_pages;
    uint64_t bytes;
} CheckpointFigures;

/*
 * One checkpoint: stop, capture, find and stage the changed pages, cont
 * (pause ends), then send it and wait for the secondary.  @digest gets
 * the sha256 of main RAM at the checkpoint when not NULL.
 */
static bool checkpoint(Agent *a, RAMSaveState *rs, CheckpointFigures *fig,
                       char **digest, GError **errp)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    g_autoptr(GBytes) live = NULL;
    g_autoptr(GBytes) size_msg = NULL;
    static const uint8_t req[4] = { 0, 0, 0, COLO_MESSAGE_CHECKPOINT_REQUEST };
    g_autoptr(GBytes) reqb = g_bytes_new_static(req, sizeof(req));
    int64_t t0 = g_get_monotonic_time();
    Capture *c;
    RAMBlock *main_rb;
    uint32_t id;
    GBytes *blob;

    if (!vm_stop(a, errp)) {
        return false;
    }
    c = capture_devices(a, errp);
    if (!c) {
        return false;
    }
    main_rb = ram_list_find(c->rl, a->ram_block);
    id = c->lv.ram_section_id;
    rs->f = f;
    qemu_put_be32(f, COLO_MESSAGE_VMSTATE_SEND);
    if (machine_sends_switchover(c->lv.machine)) {
        qemu_put_byte(f, QEMU_VM_COMMAND);
        qemu_put_be16(f, MIG_CMD_SWITCHOVER_START);
        qemu_put_be16(f, 0);
    }
    qemu_put_byte(f, QEMU_VM_SECTION_END);
    qemu_put_be32(f, id);
    fig->dirty_pages = 0;
    for (uint64_t off = 0; off < a->ram_size; off += TARGET_PAGE_SIZE) {
        uint64_t h = page_hash(a->ram + off);

        if (h != a->hashes[off >> TARGET_PAGE_BITS]) {
            a->hashes[off >> TARGET_PAGE_BITS] = h;
            ram_save_any(rs, main_rb, off, NULL, a->ram + off);
            fig->dirty_pages++;
        }
    }
    put_rom_changes(a, rs, c);
    ram_save_eos(rs);
    qemu_put_byte(f, QEMU_VM_SECTION_FOOTER);
    qemu_put_be32(f, id);
    qemu_put_byte(f, QEMU_VM_EOF);
    rs->f = NULL;
    if (digest) {
        /* the page hashes of this very moment: no extra pass over RAM */
        *digest = g_compute_checksum_for_data(
            G_CHECKSUM_SHA256, (const guchar *)a->hashes,
            (a->ram_size >> TARGET_PAGE_BITS) * sizeof(uint64_t));
    }
    live = qemu_file_steal_output(f);
    blob = g_bytes_ref(c->lv.devices->blob);
    capture_free(c);
    capture_remove_dir(a);
    if (!vm_cont(a, errp)) {
        g_bytes_unref(blob);
        return false;
    }
    fig->pause_ms = (g_get_monotonic_time() - t0) / 1000.0;
    fig->bytes = g_bytes_get_size(live);

    {
        g_autoptr(QEMUFile) s = qemu_file_new_output_buffer();

        qemu_put_be32(s, COLO_MESSAGE_VMSTATE_SIZE);
        qemu_put_be64(s, g_bytes_get_size(blob));
        size_msg = qemu_file_steal_output(s);
    }
    if (!send_bytes(a, reqb, errp) ||
        !expect_msg(a, COLO_MESSAGE_CHECKPOINT_REPLY, errp) ||
        !send_bytes(a, live, errp) || !send_bytes(a, size_msg, errp) ||
        !send_bytes(a, blob, errp) ||
        !expect_msg(a, COLO_MESSAGE_VMSTATE_RECEIVED, errp) ||
        !expect_msg(a, COLO_MESSAGE_VMSTATE_LOADED, errp)) {
        g_bytes_unref(blob);
        return false;
    }
    g_bytes_unref(blob);
    return true;
}

static bool soft_dirty_works(void)
{
    /* Write a page of our own after clearing the bits: is bit 55 set? */
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    uint8_t *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t entry = 0;
    int pm;
    bool ok = false;

    if (fd < 0 || p == MAP_FAILED) {
        goto out;
    }
    p[0] = 1;
    if (write(fd, "4", 1) != 1) {
        goto out;
    }
    p[0] = 2;
    pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pm >= 0) {
        if (pread(pm, &entry, 8, ((uintptr_t)p / 4096) * 8) == 8) {
            ok = (entry >> 55) & 1;
        }
        close(pm);
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    if (p != MAP_FAILED) {
        munmap(p, 4096);
    }
    return ok;
}

static int fail(Agent *a, int status, GError *err)
{
    g_autoptr(GError) cont_err = NULL;

    fprintf(stderr, "colo-primary: %s\n", err ? err->message : "failed");
    if (a->qmp && a->vm_stopped_by_us && !vm_cont(a, &cont_err)) {
        fprintf(stderr, "colo-primary: could not resume the VM: %s\n",
                cont_err->message);
    }
    return status;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;

    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    g_autofree char *qmp_path = NULL, *ram_file = NULL, *connect = NULL;
    g_autofree char *verify = NULL, *ram_block = NULL;
    int delay_ms = 100, checkpoints = 0;
    gboolean quiet = FALSE;
    GOptionEntry entries[] = {
        { "qmp", 0, 0, G_OPTION_ARG_FILENAME, &qmp_path,
          "the VM's QMP socket", "PATH" },
        { "ram-file", 0, 0, G_OPTION_ARG_FILENAME, &ram_file,
          "the VM's shared memory-backend-file", "PATH" },
        { "ram-block", 0, 0, G_OPTION_ARG_STRING, &ram_block,
          "its RAM block name, the backend id (pc.ram)", "NAME" },
        { "connect", 0, 0, G_OPTION_ARG_STRING, &connect,
          "the secondary", "tcp:HOST:PORT" },
        { "x-checkpoint-delay", 0, 0, G_OPTION_ARG_INT, &delay_ms,
          "ms between checkpoints (100)", "MS" },
        { "checkpoints", 0, 0, G_OPTION_ARG_INT, &checkpoints,
          "stop after N checkpoints (0: run until an error)", "N" },
        { "verify-secondary", 0, 0, G_OPTION_ARG_FILENAME, &verify,
          "tests: compare the secondary's RAM file after every checkpoint",
          "RAM_DIR" },
        { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "no progress", NULL },
        { NULL }
    };
    g_autoptr(GOptionContext) ctx =
        g_option_context_new("- checkpoint a QEMU VM into a COLO secondary");
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) pauses = g_array_new(FALSE, FALSE, sizeof(double));
    g_autofree char *work = NULL;
    /* static: what it points to lives as long as the process */
    static Agent a = { .fd = -1 };
    RAMSaveState rs;
    Capture *c;
    struct stat st;
    int fd, status = 0;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || !qmp_path ||
        !ram_file || !connect) {
        fprintf(stderr, "colo-primary: %s\n", err ? err->message :
                "--qmp, --ram-file and --connect are required");
        return EXIT_USAGE;
    }
    a.ram_block = ram_block ? ram_block : "pc.ram";
    if (!quiet) {
        printf("dirty tracking: %s\n", soft_dirty_works() ?
               "soft-dirty available, using page hashes (verified path)" :
               "no soft-dirty on this kernel: page hashes");
    }
    a.qmp = qmp_client_connect(qmp_path, 10000, &err);
    if (!a.qmp) {
        return fail(&a, EXIT_QEMU, err);
    }
    fd = open(ram_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 ||
        (st.st_size & 4095)) {
        g_set_error(&err, COLO_ERROR, EINVAL, "RAM file %s: %s", ram_file,
                    fd < 0 ? g_strerror(errno) : "not a usable size");
        return fail(&a, EXIT_QEMU, err);
    }
    a.ram_size = st.st_size;
    a.ram = mmap(NULL, a.ram_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (a.ram == MAP_FAILED) {
        g_set_error(&err, COLO_ERROR, errno, "mapping %s: %s", ram_file,
                    g_strerror(errno));
        return fail(&a, EXIT_QEMU, err);
    }
    work = g_strdup("/dev/shm/colo-primary-XXXXXX");
    if (!g_mkdtemp(work)) {
        g_set_error(&err, COLO_ERROR, errno, "cannot create a work folder");
        return fail(&a, EXIT_USAGE, err);
    }
    a.work = work;
    a.hashes = g_new0(uint64_t, a.ram_size >> TARGET_PAGE_BITS);
    a.roms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                   (GDestroyNotify)g_bytes_unref);
    if (!qmp_simple(&a, "migrate-set-capabilities",
                    "{\"capabilities\": [{\"capability\": "
                    "\"x-ignore-shared\", \"state\": true}]}", &err)) {
        return fail(&a, EXIT_QEMU, err);
    }
    a.fd = migration_channel_connect(connect, &err);
    if (a.fd < 0) {
        return fail(&a, EXIT_SECONDARY, err);
    }
    a.from_sec = qemu_file_new_input_fd(dup(a.fd), true);
    ram_save_init(&rs, NULL);

    /* Initial synchronisation, with the VM stopped. */
    if (!vm_stop(&a, &err)) {
        return fail(&a, EXIT_QEMU, err);
    }
    c = capture_devices(&a, &err);
    if (!c) {
        return fail(&a, EXIT_QEMU, err);
    }
    {
        RAMBlock *main_rb = ram_list_find(c->rl, a.ram_block);
        g_autoptr(GBytes) initial = NULL;

        if (!main_rb || main_rb->used_length != a.ram_size ||
            !main_rb->ignored) {
            g_set_error(&err, COLO_ERROR, EINVAL, "the VM's RAM block '%s' "
                        "is %s, but %s has %" PRIu64 " bytes", a.ram_block,
                        main_rb ? "of another size or not shared" :
                        "missing", ram_file, a.ram_size);
            capture_free(c);
            return fail(&a, EXIT_QEMU, err);
        }
        initial = build_initial(&a, c, &rs);
        capture_free(c);
        capture_remove_dir(&a);
        if (!vm_cont(&a, &err)) {
            return fail(&a, EXIT_QEMU, err);
        }
        if (!send_bytes(&a, initial, &err) ||
            !expect_msg(&a, COLO_MESSAGE_CHECKPOINT_READY, &err)) {
            return fail(&a, EXIT_SECONDARY, err);
        }
        if (!quiet) {
            printf("initial sync: %zu bytes; COLO running\n",
                   (size_t)g_bytes_get_size(initial));
            fflush(stdout);
        }
    }

    for (int k = 1; checkpoints == 0 || k <= checkpoints; k++) {
        CheckpointFigures fig;
        g_autofree char *digest = NULL;

        g_usleep((gulong)delay_ms * 1000);
        if (!checkpoint(&a, &rs, &fig, verify ? &digest : NULL, &err)) {
            status = a.vm_stopped_by_us || !err ||
                     strstr(err->message, "secondary") == NULL ?
                     EXIT_QEMU : EXIT_SECONDARY;
            if (err && (strstr(err->message, "QMP") ||
                        strstr(err->message, "device-state"))) {
                status = EXIT_QEMU;
            }
            return fail(&a, status, err);
        }
        g_array_append_val(pauses, fig.pause_ms);
        if (verify) {
            g_autofree char *p = g_build_filename(verify, a.ram_block, NULL);
            gchar *data;
            gsize len;
            g_autofree char *theirs = NULL;

            if (!g_file_get_contents(p, &data, &len, &err)) {
                return fail(&a, EXIT_VERIFY, err);
            }
            {
                uint64_t *h = g_new(uint64_t, len / 4096);

                for (gsize i = 0; i < len / 4096; i++) {
                    h[i] = page_hash((const uint8_t *)data + i * 4096);
                }
                theirs = g_compute_checksum_for_data(
                    G_CHECKSUM_SHA256, (const guchar *)h,
                    (len / 4096) * sizeof(uint64_t));
                g_free(h);
            }
            g_free(data);
            if (strcmp(theirs, digest) != 0) {
                g_set_error(&err, COLO_ERROR, EIO, "checkpoint %d: the "
                            "secondary's %s differs from the VM's RAM at "
                            "the checkpoint", k, p);
                return fail(&a, EXIT_VERIFY, err);
            }
        }
        if (!quiet) {
            printf("checkpoint %d: pause %.2f ms, %" PRIu64 " dirty pages "
                   "(%.2f MiB), %" PRIu64 " bytes%s\n", k, fig.pause_ms,
                   fig.dirty_pages, fig.dirty_pages / 256.0, fig.bytes,
                   verify ? ", secondary verified" : "");
            fflush(stdout);
        }
    }
    g_array_sort(pauses, cmp_double);
    if (!quiet && pauses->len) {
        printf("done: %u checkpoints, pause median %.2f ms, p99 %.2f ms\n",
               pauses->len, g_array_index(pauses, double, pauses->len / 2),
               g_array_index(pauses, double, (pauses->len * 99) / 100));
    }
    qemu_fclose(a.from_sec);
    close(a.fd);
    qmp_client_free(a.qmp);
    munmap(a.ram, a.ram_size);
    g_free(a.hashes);
    g_hash_table_unref(a.roms);
    g_rmdir(work);
    return status;
}
