/*
 * sockets.h: the socket helpers more than one part needs
 * (util/sockets.c).
 */
#ifndef QEMU_SOCKETS_H
#define QEMU_SOCKETS_H

#include "qemu/osdep.h"

/* A listening UNIX stream socket at @path (a stale file there is
 * removed first), close-on-exec; -1 with @errp set if not. */
int unix_listen(const char *path, GError **errp);

#endif /* QEMU_SOCKETS_H */
