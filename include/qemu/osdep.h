/*
 * osdep.h: the first include of every colo-standby source file.
 *
 * Pulls in the C library and GLib pieces that nearly every file needs, so
 * each .c starts from the same ground, the way QEMU's own osdep.h does.
 */
#ifndef QEMU_OSDEP_H
#define QEMU_OSDEP_H

#define _GNU_SOURCE 1

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

/* One error domain for the whole core library; codes are not interpreted. */
#define COLO_ERROR (colo_error_quark())
GQuark colo_error_quark(void);

#define COLO_VERSION_STRING "0.1.0"

#endif /* QEMU_OSDEP_H */
