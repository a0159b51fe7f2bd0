/*
 * disk-mirror.h: the VM's disks, mirrored to the secondary's NBD exports
 * with stock QEMU's own block layer, driven over QMP:
 *
 *   [object-add    tls-creds-x509 colo-nbd-tls, with --tls-creds' folder]
 *   blockdev-add   driver nbd, node colo-nbd-K, the export of --disk
 *   blockdev-mirror job colo-mirror-K: the VM's node -> colo-nbd-K,
 *                  sync full, copy-mode write-blocking (a guest write
 *                  completes only once the secondary has it)
 *   ... until query-block-jobs says ready: the whole disk is there
 *
 * Every write of epoch N is then acknowledged by the secondary before
 * checkpoint N goes out: QEMU's stop drains all I/O, the mirror's writes
 * to the target included, and disk_mirror_check() looks at the jobs
 * while the VM is stopped (a job that failed, or fell out of sync, ends
 * the session instead of sending a checkpoint whose disk is not whole).
 *
 * Owner: the session thread; the QMP connection is shared (serialised).
 */
#ifndef COLO_PRIMARY_DISK_MIRROR_H
#define COLO_PRIMARY_DISK_MIRROR_H

#include "qemu/osdep.h"

#include "monitor/qmp-client.h"

typedef struct DiskMirror DiskMirror;

/* One --disk NODE=URI: the URI as QEMU's nbd driver takes it,
 * nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH. */
typedef struct DiskTarget {
    char *node;
    char *uri;
    bool is_unix;
    char *host, *port, *path;
    char *export;
} DiskTarget;

/* Parses "NODE=URI"; false with the reason. */
bool disk_target_parse(const char *spec, DiskTarget *t, GError **errp);
void disk_target_clear(DiskTarget *t);

/* @specs: the --disk arguments.  With @tls_dir (a tls-creds-x509 folder
 * with client credentials, colo-primary's own --tls-creds), QEMU gets a
 * tls-creds-x509 object of its own on that folder and the NBD
 * connections use TLS, the server's certificate checked against
 * @tls_hostname (default: the URI's host, or localhost). */
DiskMirror *disk_mirror_new(QmpClient *qmp, char **specs,
                            const char *tls_dir, const char *tls_hostname,
                            GError **errp);
void disk_mirror_free(DiskMirror *dm);

/* Mirrors every disk and waits (up to @timeout_ms) until each job is
 * ready.  Leftovers of an earlier colo-primary are removed first. */
bool disk_mirror_start(DiskMirror *dm, int64_t timeout_ms, bool quiet,
                       GError **errp);
/* With the VM stopped: every job still there, ready, in sync. */
bool disk_mirror_check(DiskMirror *dm, GError **errp);
/* Cancels the jobs and removes the NBD nodes (best effort). */
void disk_mirror_stop(DiskMirror *dm);

guint disk_mirror_count(const DiskMirror *dm);
const DiskTarget *disk_mirror_target(const DiskMirror *dm, guint i);
/* The image file QEMU has under the node (query-named-block-nodes). */
char *disk_mirror_image_path(DiskMirror *dm, guint i, GError **errp);
/* Bytes and microseconds of each disk's initial copy. */
void disk_mirror_initial(const DiskMirror *dm, guint i, uint64_t *bytes,
                         int64_t *us);

#endif /* COLO_PRIMARY_DISK_MIRROR_H */
