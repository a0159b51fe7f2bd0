/*
 * libvirt-domain.h: a running libvirt domain as colo-primary sees it:
 * checked for what protection needs (QEMU, running, RAM in a shared
 * file), reached through libvirt's QEMU monitor pass-through, or
 * through a second QMP monitor the domain's XML adds, and watched for its
 * end (libvirt's lifecycle events).
 *
 * Which way: each pass-through command costs a libvirt round trip and
 * job (about 2 ms here, bench/libvirt.py), and a checkpoint's pause has
 * five of them; the second monitor costs what QEMU's own socket does but
 * taints the domain (custom-argv).  Both work; docs/libvirt.rst has the
 * figures.
 *
 * Owner: the thread that opened it, which must run GLib's default main
 * context (libvirt's events come through it); the QMP client it hands
 * out is thread-safe like any QmpClient.
 */
#ifndef COLO_PRIMARY_LIBVIRT_DOMAIN_H
#define COLO_PRIMARY_LIBVIRT_DOMAIN_H

#include "qemu/osdep.h"

#include "monitor/qmp-client.h"

typedef struct LibvirtDomain LibvirtDomain;

/* Connects to libvirt at @uri (NULL: libvirt's default) and finds the
 * running domain @name; refuses, saying why, a domain that is not a QEMU
 * one, not running, or whose RAM is not in a shared file. */
LibvirtDomain *libvirt_domain_open(const char *uri, const char *name,
                                   GError **errp);
void libvirt_domain_free(LibvirtDomain *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LibvirtDomain, libvirt_domain_free)

/* A QMP client for the domain's QEMU: the QMP socket its XML adds with
 * <qemu:commandline> if there is one (libvirt_domain_monitor), else
 * libvirt's pass-through (QEMU's pid from its vCPU threads).  Either
 * passes descriptors; it keeps what it needs alive, not @d. */
QmpClient *libvirt_domain_qmp(LibvirtDomain *d, GError **errp);
/* That socket's path in QEMU's namespace, or NULL: the pass-through. */
const char *libvirt_domain_monitor(LibvirtDomain *d);

/* The file behind the memory backend @block (pc.ram), as this process
 * can open it: through QEMU's /proc/PID/root, since libvirt's QEMU may
 * live in another mount namespace. */
char *libvirt_domain_ram_file(LibvirtDomain *d, QmpClient *qmp,
                              const char *block, GError **errp);

/* How the domain ended ("shut down", "destroyed", "crashed", ...), or
 * NULL while it runs, as far as the events delivered so far tell;
 * *@orderly: whether someone meant it (libvirt's shutdown, destroy or
 * save), so the standby must not take over. */
char *libvirt_domain_end(LibvirtDomain *d, bool *orderly);

#endif /* COLO_PRIMARY_LIBVIRT_DOMAIN_H */
