/*
 * secondary-check.h: tests' oracle of colo-primary (--verify-secondary,
 * --verify-disk): SHA-256 of the VM's RAM file and disk images while it
 * is stopped at a pause, compared with the secondary's files once that
 * checkpoint has committed.  Independent of the session's own digests
 * and trackers, and not part of the pause figures.
 *
 * Owner: the session thread, through its SessionChecker.
 */
#ifndef COLO_PRIMARY_SECONDARY_CHECK_H
#define COLO_PRIMARY_SECONDARY_CHECK_H

#include "qemu/osdep.h"

#include "tools/colo-primary/disk-mirror.h"

typedef struct SecondaryCheck SecondaryCheck;

/* @ram_dir: the secondary's RAM folder (its file @ram_block is
 * compared), or NULL; @disks: NODE=PATH of the secondary's images, or
 * NULL.  NULL when there is nothing to check.  Borrows @ram. */
SecondaryCheck *secondary_check_new(const uint8_t *ram, uint64_t ram_size,
                                    const char *ram_block,
                                    const char *ram_dir, char **disks);
void secondary_check_free(SecondaryCheck *c);

/* The VM is stopped: note its RAM and the images of @mirror (may be
 * NULL) as they are now. */
bool secondary_check_note(SecondaryCheck *c, DiskMirror *mirror,
                          GError **errp);
/* The checkpoint @what has committed: the secondary's files must be what
 * was noted.  PRIMARY_ERROR_VERIFY when not. */
bool secondary_check_compare(SecondaryCheck *c, DiskMirror *mirror,
                             const char *what, GError **errp);

#endif /* COLO_PRIMARY_SECONDARY_CHECK_H */
