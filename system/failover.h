/*
 * failover.h: resume the protected VM in a stock QEMU from the last
 * committed checkpoint (RAM files used in place, no RAM copied).
 *
 * Owner: the thread that calls colo_failover_resume() (a worker thread of
 * colo-secondary: it blocks for up to a few seconds).
 */
#ifndef SYSTEM_FAILOVER_H
#define SYSTEM_FAILOVER_H

#include "qemu/osdep.h"

#include "migration/device-state.h"
#include "migration/migration.h"
#include "migration/qemu-file.h"

typedef struct FailoverConfig {
    char *qemu;             /* binary, default qemu-system-x86_64 */
    char **args;            /* the operator's extra arguments (devices...) */
    char *machine;          /* overrides the machine type of the stream */
    char *libvirt_xml;      /* or: restore this domain's XML (a file)... */
    char *libvirt_uri;      /* ... into this libvirt (NULL: the default) */
    int ram_dir_lock;       /* the RAM folder's lock (ram_dir_lock()): the
                               QEMU started on its files holds it too */
} FailoverConfig;

typedef struct FailoverResult {
    char *qmp_path;         /* the new QEMU's QMP socket ("" in libvirt) */
    char *libvirt_domain;   /* the restored domain's name, or NULL */
    char *log_path;         /* its stdout and stderr */
    GPid pid;
    int64_t resume_us;      /* from the call to the guest running */
    bool paused;            /* left stopped (-S in the arguments) */
} FailoverResult;

void failover_result_clear(FailoverResult *r);

typedef enum FailoverState {
    FAILOVER_NONE,
    FAILOVER_RUNNING,       /* starting the VM in stock QEMU */
    FAILOVER_DONE,
    FAILOVER_FAILED,
} FailoverState;

/*
 * The failover job: colo_failover_resume() on a worker thread for a
 * session whose migration thread has been joined.  @done runs on the
 * main context when it is over, with the result, or with @err if it
 * failed.  Owner: the main thread.
 */
typedef struct FailoverJob FailoverJob;
typedef void (*FailoverDoneFn)(void *opaque, const FailoverResult *res,
                               const GError *err);

FailoverJob *failover_job_start(const FailoverConfig *cfg,
                                MigrationIncomingState *mis,
                                FailoverDoneFn done, void *opaque);
FailoverState failover_job_state(const FailoverJob *job);
/* The resumed QEMU (FAILOVER_DONE) or what went wrong (FAILOVER_FAILED),
 * else NULL. */
const FailoverResult *failover_job_result(const FailoverJob *job);
const char *failover_job_error(const FailoverJob *job);
/* Waits for the worker thread; its @done is then delivered by the next
 * iteration of the main context. */
void failover_job_join(FailoverJob *job);
/* Joins, and drops @done if it has not been delivered. */
void failover_job_free(FailoverJob *job);

/* The stream that resumes the committed state, into @f: with
 * x-ignore-shared (the main RAM stays in its file) or, @main_ram, with
 * every page (for a QEMU whose RAM is its own, as libvirt starts it). */
bool failover_put_stream(QEMUFile *f, const char *ram_dir, GArray *blocks,
                         VMDeviceState *ds, const char *machine,
                         uint32_t ram_section_id, bool main_ram,
                         GError **errp);

/* failover-libvirt.c: the same committed state restored as the libvirt
 * domain of cfg->libvirt_xml (a save image streamed to libvirt). */
bool failover_libvirt_restore(const FailoverConfig *cfg, const char *ram_dir,
                              GArray *blocks, const GPtrArray *disks,
                              VMDeviceState *ds, const char *machine,
                              uint32_t ram_section_id, FailoverResult *res,
                              GError **errp);

/* The stream a stock QEMU needs to resume from the committed state
 * (x-ignore-shared: no main RAM in it) in a memfd, read from its start;
 * -1 on failure.  Not a file in the RAM folder: a failover must work
 * when that folder's filesystem is full. */
int failover_stream_memfd(const char *ram_dir, GArray *blocks,
                          VMDeviceState *ds, const char *machine,
                          uint32_t ram_section_id, GError **errp);

/* @disks (of ColoRecordDisk, or NULL): images to give QEMU as -blockdev
 * nodes. */
bool colo_failover_resume(const FailoverConfig *cfg, const char *ram_dir,
                          GArray *blocks, const GPtrArray *disks,
                          VMDeviceState *ds, const char *machine,
                          uint32_t ram_section_id, FailoverResult *res,
                          GError **errp);

#endif
