/*
 * primary-error.h: who failed, when colo-primary fails, and the status
 * it then exits with (docs/colo-primary.rst lists the statuses).
 *
 * A session's errors carry the PRIMARY_ERROR domain with the kind as
 * code; an error of another domain counts as QEMU's.
 */
#ifndef COLO_PRIMARY_PRIMARY_ERROR_H
#define COLO_PRIMARY_PRIMARY_ERROR_H

#include "qemu/osdep.h"

/* colo-primary's exit statuses. */
enum {
    PRIMARY_EXIT_OK = 0,
    PRIMARY_EXIT_USAGE = 1,
    PRIMARY_EXIT_SECONDARY = 2,     /* the secondary failed or is gone */
    PRIMARY_EXIT_QEMU = 3,          /* QEMU failed, is gone, or does not
                                       fit */
    PRIMARY_EXIT_VERIFY = 4,        /* --verify-secondary found a
                                       difference */
};

typedef enum PrimaryErrorKind {
    PRIMARY_ERROR_QEMU,
    PRIMARY_ERROR_SECONDARY,
    PRIMARY_ERROR_VERIFY,
} PrimaryErrorKind;

#define PRIMARY_ERROR primary_error_quark()
GQuark primary_error_quark(void);

/* Re-labels *@errp, if set, as @kind. */
void primary_error_tag(GError **errp, PrimaryErrorKind kind);

/* The exit status @err calls for (PRIMARY_EXIT_OK for NULL). */
int primary_error_exit_status(const GError *err);

#endif /* COLO_PRIMARY_PRIMARY_ERROR_H */
