/*
 * failover.c: the secondary takes over.
 *
 * The RAM files already hold the last committed checkpoint, and the
 * committed device state is in memory.  A stock QEMU is started with the
 * main RAM block backed by its RAM file (memory-backend-file, share=on,
 * same block name) and -incoming defer; with x-ignore-shared on both
 * sides it is fed a stream made of: header, configuration (with the
 * x-ignore-shared capability), a RAM section whose block list carries
 * every block (and mr_addr) but whose pages are only those of the small
 * blocks QEMU cannot take from a file (ROMs), the committed device
 * sections, EOF.  The guest's RAM is never copied.  The disk images the
 * checkpoint names (already holding exactly that checkpoint) are given as
 * -blockdev nodes of the same names.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/mman.h>

#include "block/blockdev.h"
#include "migration/colo-journal.h"
#include "migration/qemu-file.h"
#include "migration/ram-save.h"
#include "migration/savevm-put.h"
#include "migration/wire.h"
#include "monitor/qmp-client.h"
#include "system/failover.h"

void failover_result_clear(FailoverResult *r)
{
    g_free(r->qmp_path);
    g_free(r->libvirt_domain);
    g_free(r->log_path);
    memset(r, 0, sizeof(*r));
}

/* The session's RAM files again, as RAMBlocks of a fresh list (the
 * files exist with their sizes, so nothing is created or cleared). */
static RAMList *failover_open_blocks(const char *ram_dir, GArray *blocks,
                                     GError **errp)
{
    g_autoptr(RAMList) rl = ram_list_new(ram_dir);

    for (guint i = 0; i < blocks->len; i++) {
        const RAMBlockSummary *b = &g_array_index(blocks, RAMBlockSummary, i);
        RAMBlock *rb = ram_list_add(rl, b->idstr, b->used_length, errp);

        if (!rb) {
            g_prefix_error(errp, "failover: ");
            return NULL;
        }
        rb->mr_addr = b->mr_addr;
        rb->has_mr_addr = true;
    }
    return g_steal_pointer(&rl);
}

bool failover_put_stream(QEMUFile *f, const char *ram_dir, GArray *blocks,
                         VMDeviceState *ds, const char *machine,
                         uint32_t ram_section_id, bool main_ram,
                         GError **errp)
{
    static const char *const caps[] = { "x-ignore-shared", NULL };
    g_autoptr(RAMList) rl = NULL;
    RAMSaveState rs;
    gsize blen;
    const uint8_t *blob;

    if (!ds || !blocks || blocks->len == 0) {
        g_set_error(errp, COLO_ERROR, ENOENT, "failover: nothing committed "
                    "to resume from");
        return false;
    }
    rl = failover_open_blocks(ram_dir, blocks, errp);
    if (!rl) {
        return false;
    }
    ram_save_init(&rs, f);
    qemu_savevm_put_header(f, machine);
    if (!main_ram) {
        qemu_savevm_put_capabilities(f, caps);
    }
    ram_save_section_start(&rs, ram_section_id, rl, !main_ram);

    /* Block 0 is the main RAM: shared with QEMU through its file, unless
     * @main_ram; the small blocks (ROMs) QEMU cannot take from a file go
     * in full. */
    qemu_savevm_put_section_header(f, QEMU_VM_SECTION_END, ram_section_id);
    for (guint i = main_ram ? 0 : 1; i < rl->blocks->len; i++) {
        ram_save_block(&rs, g_ptr_array_index(rl->blocks, i));
    }
    ram_save_section_end(&rs, ram_section_id);

    /* The committed device sections already end with EOF. */
    blob = g_bytes_get_data(ds->blob, &blen);
    qemu_put_buffer(f, blob, blen);
    return true;
}

int failover_stream_memfd(const char *ram_dir, GArray *blocks,
                          VMDeviceState *ds, const char *machine,
                          uint32_t ram_section_id, GError **errp)
{
    g_autoptr(QEMUFile) f = qemu_file_new_output_buffer();
    g_autoptr(GBytes) bytes = NULL;
    const uint8_t *data;
    gsize len;
    int fd;

    if (!failover_put_stream(f, ram_dir, blocks, ds, machine,
                             ram_section_id, false, errp)) {
        return -1;
    }
    bytes = qemu_file_steal_output(f);
    data = g_bytes_get_data(bytes, &len);
    fd = memfd_create("colo-failover-stream", MFD_CLOEXEC);
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "failover: memfd_create: %s",
                    g_strerror(errno));
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            g_set_error(errp, COLO_ERROR, n < 0 ? errno : EIO, "failover: "
                        "writing the stream to its memfd: %s",
                        g_strerror(n < 0 ? errno : EIO));
            close(fd);
            return -1;
        }
        data += n;
        len -= n;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        g_set_error(errp, COLO_ERROR, errno, "failover: %s",
                    g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* What the resumed QEMU inherits. */
typedef struct FailoverChildFds {
    int ram_dir_lock;           /* or -1 */
    int stream;                 /* its -incoming fd:N */
} FailoverChildFds;

static void child_setup(gpointer opaque)
{
    const FailoverChildFds *fds = opaque;

    /* The resumed VM must outlive colo-secondary, and keep the RAM folder
     * locked as long as it runs on the folder's files: a colo-secondary
     * started on the folder again must not take them for a standby's.
     * (GLib has marked every other descriptor close-on-exec.) */
    setsid();
    if (fds->ram_dir_lock >= 0) {
        fcntl(fds->ram_dir_lock, F_SETFD, 0);
    }
    fcntl(fds->stream, F_SETFD, 0);
}

static bool failover_wait_migration(QmpClient *c, GError **errp)
{
    int64_t deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    for (;;) {
        g_autoptr(JsonNode) r = qmp_client_cmd(c, "query-migrate", NULL,
                                               errp);
        const char *st;

        if (!r) {
            return false;
        }
        st = json_object_has_member(json_node_get_object(r), "status") ?
             json_object_get_string_member(json_node_get_object(r),
                                           "status") : "none";
        if (strcmp(st, "completed") == 0) {
            return true;
        }
        if (strcmp(st, "failed") == 0) {
            const char *why = json_object_has_member(
                json_node_get_object(r), "error-desc") ?
                json_object_get_string_member(json_node_get_object(r),
                                              "error-desc") : "failed";

            g_set_error(errp, COLO_ERROR, EIO, "failover: QEMU could not "
                        "load the committed state: %s", why);
            return false;
        }
        if (g_get_monotonic_time() > deadline) {
            g_set_error(errp, COLO_ERROR, ETIMEDOUT, "failover: QEMU did "
                        "not load the committed state within 60 s");
            return false;
        }
        g_usleep(2000);
    }
}

static char *qemu_opt_escape(const char *s)
{
    g_auto(GStrv) parts = g_strsplit(s, ",", -1);

    return g_strjoinv(",,", parts);
}

/* The -blockdev arguments a stock QEMU needs to open the record's images
 * as the same nodes (raw format over file protocol). */
static void failover_blockdev_args(GPtrArray *argv,
                                   const GPtrArray *record_disks)
{
    for (guint i = 0; record_disks && i < record_disks->len; i++) {
        const ColoRecordDisk *d = g_ptr_array_index(record_disks, i);
        g_autofree char *file = qemu_opt_escape(d->filename);

        g_ptr_array_add(argv, g_strdup("-blockdev"));
        g_ptr_array_add(argv, g_strdup_printf(
            "driver=raw,node-name=%s,file.driver=file,file.filename=%s",
            d->node, file));
    }
}


bool colo_failover_resume(const FailoverConfig *cfg, const char *ram_dir,
                          GArray *blocks, const GPtrArray *disks,
                          VMDeviceState *ds, const char *machine,
                          uint32_t ram_section_id, FailoverResult *res,
                          GError **errp)
{
    int64_t t0 = g_get_monotonic_time();
    g_autofree char *incoming = NULL;
    FailoverChildFds fds = { cfg->ram_dir_lock, -1 };
    bool spawned;
    g_autofree char *mopt = NULL, *obj = NULL, *mem = NULL, *qmp = NULL;
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GPtrArray) disk_args = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(QmpClient) c = NULL;
    g_autoptr(JsonNode) r = NULL;
    const RAMBlockSummary *main_ram;
    const char *m = cfg->machine ? cfg->machine : machine;
    int logfd;

    memset(res, 0, sizeof(*res));
    if (cfg->libvirt_xml) {
        return failover_libvirt_restore(cfg, ram_dir, blocks, disks, ds,
                                        machine, ram_section_id, res, errp);
    }
    main_ram = &g_array_index(blocks, RAMBlockSummary, 0);
    if (strchr(main_ram->idstr, '/') || !main_ram->idstr[0]) {
        g_set_error(errp, COLO_ERROR, EINVAL, "failover: the main RAM block "
                    "'%s' is not a memory backend name", main_ram->idstr);
        return false;
    }
    res->qmp_path = g_build_filename(ram_dir, FAILOVER_QMP_FILE, NULL);
    res->log_path = g_build_filename(ram_dir, FAILOVER_LOG_FILE, NULL);
    mopt = g_strdup_printf("%s,memory-backend=%s", m, main_ram->idstr);
    obj = g_strdup_printf("memory-backend-file,id=%s,size=%" PRIu64
                          ",mem-path=%s/%s,share=on", main_ram->idstr,
                          main_ram->used_length, ram_dir, main_ram->idstr);
    mem = g_strdup_printf("%" PRIu64 "M", main_ram->used_length >> 20);
    qmp = g_strdup_printf("unix:%s,server=on,wait=off", res->qmp_path);
    g_ptr_array_add(argv, cfg->qemu ? cfg->qemu : "qemu-system-x86_64");
    g_ptr_array_add(argv, "-M");
    g_ptr_array_add(argv, mopt);
    g_ptr_array_add(argv, "-object");
    g_ptr_array_add(argv, obj);
    g_ptr_array_add(argv, "-m");
    g_ptr_array_add(argv, mem);
    g_ptr_array_add(argv, "-qmp");
    g_ptr_array_add(argv, qmp);
    g_ptr_array_add(argv, "-incoming");
    g_ptr_array_add(argv, "defer");
    /* the disks as the same nodes: -failover-args only names devices */
    failover_blockdev_args(disk_args, disks);
    for (guint i = 0; i < disk_args->len; i++) {
        g_ptr_array_add(argv, g_ptr_array_index(disk_args, i));
    }
    for (int i = 0; cfg->args && cfg->args[i]; i++) {
        g_ptr_array_add(argv, cfg->args[i]);
    }
    g_ptr_array_add(argv, NULL);

    fds.stream = failover_stream_memfd(ram_dir, blocks, ds, m,
                                       ram_section_id, errp);
    if (fds.stream < 0) {
        return false;
    }
    logfd = open(res->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                 0600);
    spawned = logfd >= 0 &&
              g_spawn_async_with_fds(NULL, (char **)argv->pdata, NULL,
                                     G_SPAWN_SEARCH_PATH |
                                     G_SPAWN_STDIN_FROM_DEV_NULL,
                                     child_setup, &fds, &res->pid,
                                     -1, logfd, logfd, errp);
    /* QEMU has its own copy of the memfd now */
    close(fds.stream);
    if (!spawned) {
        if (logfd >= 0) {
            close(logfd);
        } else {
            g_set_error(errp, COLO_ERROR, errno, "failover: %s: %s",
                        res->log_path, g_strerror(errno));
        }
        g_prefix_error(errp, "failover: starting QEMU: ");
        return false;
    }
    close(logfd);
    c = qmp_client_connect(res->qmp_path, 20000, errp);
    if (!c) {
        g_prefix_error(errp, "failover: QEMU (see %s): ", res->log_path);
        return false;
    }
    /* QEMU reads the stream from the memfd it inherited (a number after
     * "fd:" is a descriptor of its own, in 7.2 as in 10.0) */
    incoming = g_strdup_printf("{\"uri\": \"fd:%d\"}", fds.stream);
    r = qmp_client_cmd(c, "migrate-set-capabilities",
                       "{\"capabilities\": [{\"capability\": "
                       "\"x-ignore-shared\", \"state\": true}]}", errp);
    if (!r) {
        return false;
    }
    json_node_unref(r);
    r = NULL;
    r = qmp_client_cmd(c, "migrate-incoming", incoming, errp);
    if (!r || !failover_wait_migration(c, errp)) {
        return false;
    }
    json_node_unref(r);
    r = NULL;
    r = qmp_client_cmd(c, "query-status", NULL, errp);
    if (!r) {
        return false;
    }
    /* -S among the operator's arguments means what it means to QEMU:
     * the CPUs stay stopped until someone sends "cont". */
    res->paused = cfg->args && g_strv_contains((const char *const *)cfg->args,
                                               "-S");
    if (!res->paused &&
        !json_object_get_boolean_member(json_node_get_object(r),
                                        "running")) {
        g_autoptr(JsonNode) cont = qmp_client_cmd(c, "cont", NULL, errp);

        if (!cont) {
            return false;
        }
    }
    res->resume_us = g_get_monotonic_time() - t0;
    return true;
}

/* --- the job ------------------------------------------------------------ */

struct FailoverJob {
    const FailoverConfig *cfg;      /* the caller's, outlives the job */
    char *ram_dir;
    FailoverDoneFn done;
    void *opaque;

    GThread *thread;
    guint idle_id;                  /* the pending delivery of @done */
    bool delivered;
    FailoverState state;
    bool ok;                        /* set by the thread, read after join */
    FailoverResult result;
    GError *err;
};

static gboolean failover_job_deliver(gpointer opaque)
{
    FailoverJob *job = opaque;

    failover_job_join(job);
    job->delivered = true;
    job->state = job->ok ? FAILOVER_DONE : FAILOVER_FAILED;
    job->done(job->opaque, job->ok ? &job->result : NULL, job->err);
    return G_SOURCE_REMOVE;
}

/* The RAM folder is the truth: it is first brought to the one checkpoint
 * it holds (a journal left by a commit that did not finish is replayed),
 * and that checkpoint's record says what to resume. */
static bool failover_from_folder(FailoverJob *job, GError **errp)
{
    g_auto(ColoRecovery) r = { 0 };
    g_autoptr(VMDeviceState) ds = NULL;

    if (!colo_journal_recover(job->ram_dir, &r, errp)) {
        g_prefix_error(errp, "failover: ");
        return false;
    }
    if (!r.record) {
        g_set_error(errp, COLO_ERROR, ENOENT, "failover: nothing committed "
                    "to resume from in %s", job->ram_dir);
        return false;
    }
    ds = device_state_from_blob(r.record->devices, errp);
    if (!ds) {
        g_prefix_error(errp, "failover: the committed device state: ");
        return false;
    }
    return colo_failover_resume(job->cfg, job->ram_dir, r.record->blocks,
                                r.record->disks, ds,
                                r.record->machine, r.record->ram_section_id,
                                &job->result, errp);
}

static gpointer failover_job_thread(gpointer opaque)
{
    FailoverJob *job = opaque;

    job->ok = failover_from_folder(job, &job->err);
    /* Always through the main context, never called here. */
    job->idle_id = g_idle_add(failover_job_deliver, job);
    return NULL;
}

FailoverJob *failover_job_start(const FailoverConfig *cfg,
                                MigrationIncomingState *mis,
                                FailoverDoneFn done, void *opaque)
{
    FailoverJob *job = g_new0(FailoverJob, 1);

    job->cfg = cfg;
    job->ram_dir = g_strdup(migration_incoming_ram_dir(mis));
    job->done = done;
    job->opaque = opaque;
    job->state = FAILOVER_RUNNING;
    job->thread = g_thread_new("failover", failover_job_thread, job);
    return job;
}

FailoverState failover_job_state(const FailoverJob *job)
{
    return job ? job->state : FAILOVER_NONE;
}

const FailoverResult *failover_job_result(const FailoverJob *job)
{
    return job && job->state == FAILOVER_DONE ? &job->result : NULL;
}

const char *failover_job_error(const FailoverJob *job)
{
    return job && job->state == FAILOVER_FAILED && job->err ?
           job->err->message : NULL;
}

void failover_job_join(FailoverJob *job)
{
    if (job && job->thread) {
        g_thread_join(job->thread);
        job->thread = NULL;
    }
}

void failover_job_free(FailoverJob *job)
{
    if (!job) {
        return;
    }
    failover_job_join(job);
    if (!job->delivered && job->idle_id) {
        g_source_remove(job->idle_id);
    }
    failover_result_clear(&job->result);
    g_clear_error(&job->err);
    g_free(job->ram_dir);
    g_free(job);
}
