/*
 * failover-libvirt.c: failover into a libvirt domain.
 *
 * libvirt restores a domain from a save image: its own header (magic,
 * version 2, the length of the domain XML that follows, whether the
 * domain was running, the compression, where a cookie starts) and then a
 * QEMU migration stream, which it hands to a QEMU it starts from that XML
 * with -incoming defer.  We write that image from the committed state
 * into a FIFO while libvirt reads it (virDomainRestoreFlags), so nothing
 * is staged on disk: the XML is the operator's (the same name, UUID and
 * devices as on the primary), the stream carries every page of RAM (the
 * new QEMU's memory is libvirt's file, not ours) and the committed device
 * state.  The domain comes up running, as libvirt's own: virsh list,
 * console, shutdown, and colo-primary --libvirt-domain to protect it again.
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <glib/gstdio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "exec/ram-dir.h"
#include "system/failover.h"

/* libvirt's save image header (src/qemu/qemu_saveimage.h), host order. */
#define LIBVIRT_SAVE_MAGIC      "LibvirtQemudSave"
#define LIBVIRT_SAVE_VERSION    2

typedef struct LibvirtSaveHeader {
    char magic[16];
    uint32_t version;
    uint32_t data_len;          /* the XML, with its NUL */
    uint32_t was_running;
    uint32_t format;            /* 0: raw */
    uint32_t cookie_offset;     /* 0: no cookie */
    uint32_t unused[14];
} LibvirtSaveHeader;
G_STATIC_ASSERT(sizeof(LibvirtSaveHeader) == 92);

/* The domain XML is the operator's file: bounded like any input. */
#define LIBVIRT_XML_MAX         (1u << 20)

typedef struct SaveWriter {
    const char *fifo;
    const char *xml;
    const char *ram_dir;
    GArray *blocks;
    VMDeviceState *ds;
    const char *machine;
    uint32_t ram_section_id;
    bool ok;
    GError *err;
} SaveWriter;

static bool write_all(int fd, const void *buf, size_t len, GError **errp)
{
    const uint8_t *p = buf;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            g_set_error(errp, COLO_ERROR, errno, "writing the save image: %s",
                        g_strerror(errno));
            return false;
        }
        p += n;
        len -= n;
    }
    return true;
}

static bool save_writer_run(SaveWriter *w, int fd, GError **errp)
{
    LibvirtSaveHeader h = {
        .version = LIBVIRT_SAVE_VERSION,
        .data_len = (uint32_t)strlen(w->xml) + 1,
        .was_running = 1,
    };
    g_autoptr(QEMUFile) f = NULL;

    memcpy(h.magic, LIBVIRT_SAVE_MAGIC, sizeof(h.magic));
    if (!write_all(fd, &h, sizeof(h), errp) ||
        !write_all(fd, w->xml, h.data_len, errp)) {
        return false;
    }
    f = qemu_file_new_output_fd(fd, false);
    if (!failover_put_stream(f, w->ram_dir, w->blocks, w->ds, w->machine,
                             w->ram_section_id, true, errp)) {
        return false;
    }
    qemu_fflush(f);
    return qemu_file_propagate_error(f, errp);
}

/* The FIFO's writer: blocks until libvirt opens it. */
static gpointer save_writer_thread(gpointer opaque)
{
    SaveWriter *w = opaque;
    int fd = open(w->fifo, O_WRONLY | O_CLOEXEC);

    if (fd < 0) {
        g_set_error(&w->err, COLO_ERROR, errno, "%s: %s", w->fifo,
                    g_strerror(errno));
        return NULL;
    }
    w->ok = save_writer_run(w, fd, &w->err);
    close(fd);
    return NULL;
}

/* /domain/name of @xml, or NULL. */
static char *domain_name(const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR |
                                  XML_PARSE_NOWARNING);
    xmlXPathContextPtr ctx = doc ? xmlXPathNewContext(doc) : NULL;
    xmlXPathObjectPtr r = ctx ?
        xmlXPathEvalExpression(BAD_CAST "string(/domain/name)", ctx) : NULL;
    char *name = r && r->type == XPATH_STRING && r->stringval &&
                 r->stringval[0] ? g_strdup((char *)r->stringval) : NULL;

    xmlXPathFreeObject(r);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return name;
}

bool failover_libvirt_restore(const FailoverConfig *cfg, const char *ram_dir,
                              GArray *blocks, const GPtrArray *disks,
                              VMDeviceState *ds, const char *machine,
                              uint32_t ram_section_id, FailoverResult *res,
                              GError **errp)
{
    int64_t t0 = g_get_monotonic_time();
    g_autofree char *xml = NULL;
    g_autofree char *fifo = g_build_filename(ram_dir, FAILOVER_SAVE_FIFO,
                                             NULL);
    g_autofree char *name = NULL;
    SaveWriter w = { 0 };
    GThread *writer;
    virConnectPtr conn;
    gsize len = 0;
    int rc;

    if (disks && disks->len) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "failover into libvirt: the "
                    "checkpoint has disk images, which a libvirt domain "
                    "cannot take from it yet");
        return false;
    }
    if (!g_file_get_contents(cfg->libvirt_xml, &xml, &len, errp)) {
        g_prefix_error(errp, "failover into libvirt: ");
        return false;
    }
    if (len > LIBVIRT_XML_MAX || strlen(xml) != len) {
        g_set_error(errp, COLO_ERROR, EINVAL, "failover into libvirt: %s is "
                    "not a domain XML of at most 1 MiB", cfg->libvirt_xml);
        return false;
    }
    name = domain_name(xml);
    if (!name) {
        g_set_error(errp, COLO_ERROR, EINVAL, "failover into libvirt: %s has "
                    "no /domain/name", cfg->libvirt_xml);
        return false;
    }
    conn = virConnectOpen(cfg->libvirt_uri);
    if (!conn) {
        g_set_error(errp, COLO_ERROR, ECONNREFUSED, "failover into libvirt "
                    "%s: %s", cfg->libvirt_uri ? cfg->libvirt_uri :
                    "(the default URI)", virGetLastErrorMessage());
        return false;
    }
    g_unlink(fifo);
    if (mkfifo(fifo, 0600) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "failover into libvirt: %s: %s",
                    fifo, g_strerror(errno));
        virConnectClose(conn);
        return false;
    }
    w = (SaveWriter) {
        .fifo = fifo, .xml = xml, .ram_dir = ram_dir, .blocks = blocks,
        .ds = ds, .machine = cfg->machine ? cfg->machine : machine,
        .ram_section_id = ram_section_id,
    };
    writer = g_thread_new("failover-save", save_writer_thread, &w);
    rc = virDomainRestoreFlags(conn, fifo, NULL, VIR_DOMAIN_SAVE_RUNNING);
    if (rc < 0) {
        g_set_error(errp, COLO_ERROR, EIO, "failover into libvirt: "
                    "restoring domain %s: %s", name,
                    virGetLastErrorMessage());
        /* a writer still waiting for a reader gets one, and EPIPE */
        int unblock = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

        if (unblock >= 0) {
            close(unblock);
        }
    }
    g_thread_join(writer);
    g_unlink(fifo);
    virConnectClose(conn);
    if (rc == 0 && !w.ok) {
        g_propagate_prefixed_error(errp, g_steal_pointer(&w.err),
                                   "failover into libvirt: libvirt restored "
                                   "domain %s, but the save image: ", name);
        return false;
    }
    g_clear_error(&w.err);
    if (rc < 0) {
        return false;
    }
    res->qmp_path = g_strdup("");
    res->log_path = g_strdup("");
    res->libvirt_domain = g_steal_pointer(&name);
    res->resume_us = g_get_monotonic_time() - t0;
    return true;
}
