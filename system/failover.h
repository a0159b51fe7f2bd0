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

typedef struct FailoverConfig {
    char *qemu;             /* binary, default qemu-system-x86_64 */
    char **args;            /* the operator's extra arguments (devices...) */
    char *machine;          /* overrides the machine type of the stream */
} FailoverConfig;

typedef struct FailoverResult {
    char *qmp_path;         /* the new QEMU's QMP socket */
    char *log_path;         /* its stdout and stderr */
    GPid pid;
    int64_t resume_us;      /* from the call to the guest running */
    bool paused;            /* left stopped (-S in the arguments) */
} FailoverResult;

void failover_result_clear(FailoverResult *r);

/* Writes the stream a stock QEMU needs to resume from the committed state
 * (x-ignore-shared: no main RAM in it) to @path. */
bool failover_write_stream(const char *path, const char *ram_dir,
                           GArray *blocks, VMDeviceState *ds,
                           const char *machine, uint32_t ram_section_id,
                           GError **errp);

bool colo_failover_resume(const FailoverConfig *cfg, const char *ram_dir,
                          GArray *blocks, VMDeviceState *ds,
                          const char *machine, uint32_t ram_section_id,
                          FailoverResult *res, GError **errp);

#endif
