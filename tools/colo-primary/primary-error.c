/*
 * primary-error.c: the kinds of colo-primary's errors (primary-error.h).
 */
#include "qemu/osdep.h"

#include "tools/colo-primary/primary-error.h"

GQuark primary_error_quark(void)
{
    return g_quark_from_static_string("colo-primary-error");
}

void primary_error_tag(GError **errp, PrimaryErrorKind kind)
{
    if (errp && *errp) {
        (*errp)->domain = PRIMARY_ERROR;
        (*errp)->code = kind;
    }
}

int primary_error_exit_status(const GError *err)
{
    if (!err) {
        return PRIMARY_EXIT_OK;
    }
    if (err->domain != PRIMARY_ERROR) {
        return PRIMARY_EXIT_QEMU;
    }
    switch ((PrimaryErrorKind)err->code) {
    case PRIMARY_ERROR_SECONDARY:
        return PRIMARY_EXIT_SECONDARY;
    case PRIMARY_ERROR_VERIFY:
        return PRIMARY_EXIT_VERIFY;
    case PRIMARY_ERROR_QEMU:
    default:
        return PRIMARY_EXIT_QEMU;
    }
}
