/*
 * libvirt-domain.c: see libvirt-domain.h.
 */
#include "qemu/osdep.h"

#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "tools/colo-primary/libvirt-domain.h"
#include "tools/colo-primary/proc-status.h"

struct LibvirtDomain {
    virConnectPtr conn;
    virDomainPtr dom;
    char *name;
    char *monitor;              /* a QMP socket of <qemu:commandline> (in
                                   QEMU's mount namespace), or NULL */
    int lifecycle_cb;           /* -1: none */
    /* set by the lifecycle event (on the thread that runs GLib's
     * default main context: the owner) */
    char *end;                  /* how the domain ended, or NULL */
    bool orderly;
};

/* What the QMP client's transport holds: the connection and the domain,
 * referenced, so the client may outlive the LibvirtDomain. */
typedef struct LibvirtQmp {
    virConnectPtr conn;
    virDomainPtr dom;
    int pid;                    /* 0: not looked up yet */
} LibvirtQmp;

static void libvirt_error(GError **errp, int code, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* @fmt's message, then libvirt's last error for this thread. */
static void libvirt_error(GError **errp, int code, const char *fmt, ...)
{
    const char *why = virGetLastErrorMessage();
    g_autofree char *what = NULL;
    va_list ap;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, COLO_ERROR, code, "%s: %s", what,
                why ? why : "no reason given");
}

static void libvirt_quiet(void *opaque, virErrorPtr err)
{
}

/* --- the end of the domain --------------------------------------------- */

static const char *stopped_why(int detail, bool *orderly)
{
    *orderly = true;
    switch (detail) {
    case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
        return "shut down";
    case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
        return "destroyed";
    case VIR_DOMAIN_EVENT_STOPPED_SAVED:
        return "saved";
    case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
        return "migrated away by libvirt";
    case VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT:
        return "reverted to a snapshot";
    case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
        *orderly = false;
        return "crashed";
    default:
        *orderly = false;
        return "died (its QEMU ended unexpectedly)";
    }
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
                        int detail, void *opaque)
{
    LibvirtDomain *d = opaque;
    bool orderly;
    const char *why;

    if (event != VIR_DOMAIN_EVENT_STOPPED) {
        return 0;
    }
    why = stopped_why(detail, &orderly);
    if (!d->end) {
        d->end = g_strdup(why);
        d->orderly = orderly;
    }
    return 0;
}

char *libvirt_domain_end(LibvirtDomain *d, bool *orderly)
{
    *orderly = d->orderly;
    return g_strdup(d->end);
}

/* --- checks ------------------------------------------------------------- */

/* Whether @xpath selects anything in @doc. */
static bool xml_has(xmlDocPtr doc, const char *xpath)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr r = ctx ? xmlXPathEvalExpression(BAD_CAST xpath, ctx)
                              : NULL;
    bool found = r && r->nodesetval && r->nodesetval->nodeNr > 0;

    xmlXPathFreeObject(r);
    xmlXPathFreeContext(ctx);
    return found;
}

/*
 * A second QMP monitor the domain's XML gives QEMU: <qemu:arg value='-qmp'/>
 * then <qemu:arg value='unix:PATH,server=on,wait=off'/>.  Its PATH, else
 * NULL.
 */
static char *second_monitor(xmlDocPtr doc)
{
    xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
    xmlXPathObjectPtr r = NULL;
    char *path = NULL;

    if (!ctx || xmlXPathRegisterNs(ctx, BAD_CAST "q", BAD_CAST
                                   "http://libvirt.org/schemas/domain/qemu/"
                                   "1.0") < 0) {
        goto out;
    }
    r = xmlXPathEvalExpression(BAD_CAST "/domain/q:commandline/q:arg/@value",
                               ctx);
    for (int i = 0; r && r->nodesetval &&
         i + 1 < r->nodesetval->nodeNr && !path; i++) {
        xmlChar *opt = xmlXPathCastNodeToString(r->nodesetval->nodeTab[i]);
        xmlChar *val = xmlXPathCastNodeToString(
            r->nodesetval->nodeTab[i + 1]);

        if (!strcmp((char *)opt, "-qmp") &&
            g_str_has_prefix((char *)val, "unix:")) {
            const char *p = (char *)val + 5;

            path = g_strndup(p, strcspn(p, ","));
        }
        xmlFree(opt);
        xmlFree(val);
    }
out:
    xmlXPathFreeObject(r);
    xmlXPathFreeContext(ctx);
    return path;
}

static bool check_definition(LibvirtDomain *d, GError **errp)
{
    g_autofree char *xml = virDomainGetXMLDesc(d->dom, 0);
    xmlDocPtr doc;
    bool file, shared, ok = true;

    if (!xml) {
        libvirt_error(errp, EIO, "libvirt domain %s: its XML", d->name);
        return false;
    }
    doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR |
                        XML_PARSE_NOWARNING);
    if (!doc) {
        g_set_error(errp, COLO_ERROR, EPROTO, "libvirt domain %s: its XML "
                    "does not parse", d->name);
        return false;
    }
    if (!xml_has(doc, "/domain[@type='qemu' or @type='kvm']")) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "libvirt domain %s is not a "
                    "QEMU domain (type qemu or kvm)", d->name);
        ok = false;
    }
    file = xml_has(doc, "/domain/memoryBacking/source[@type='file']");
    shared = xml_has(doc, "/domain/memoryBacking/access[@mode='shared']") ||
             xml_has(doc, "/domain/cpu/numa/cell[@memAccess='shared']");
    if (ok && (!file || !shared)) {
        g_set_error(errp, COLO_ERROR, ENOTSUP, "libvirt domain %s: its RAM "
                    "is not in a shared file (colo-primary reads it there); "
                    "add <memoryBacking><source type='file'/><access "
                    "mode='shared'/></memoryBacking> to its XML (virsh edit "
                    "%s) and start it again%s", d->name, d->name,
                    file ? " (it has the source, the access is missing)" :
                    "");
        ok = false;
    }
    d->monitor = second_monitor(doc);
    xmlFreeDoc(doc);
    return ok;
}

LibvirtDomain *libvirt_domain_open(const char *uri, const char *name,
                                   GError **errp)
{
    static gsize event_impl;
    LibvirtDomain *d = g_new0(LibvirtDomain, 1);
    int state = 0, reason = 0;

    if (g_once_init_enter(&event_impl)) {
        /* libvirt's errors reach the user in ours, not on stderr too */
        virSetErrorFunc(NULL, libvirt_quiet);
        /* libvirt's default event loop is GLib's default main context:
         * the main loop of whoever runs it (the agent's) delivers the
         * events */
        virEventRegisterDefaultImpl();
        g_once_init_leave(&event_impl, 1);
    }
    d->lifecycle_cb = -1;
    d->name = g_strdup(name);
    d->conn = virConnectOpen(uri);
    if (!d->conn) {
        libvirt_error(errp, ECONNREFUSED, "libvirt %s", uri ? uri :
                      "(the default URI)");
        goto fail;
    }
    d->dom = virDomainLookupByName(d->conn, name);
    if (!d->dom) {
        libvirt_error(errp, ENOENT, "libvirt has no domain %s", name);
        goto fail;
    }
    if (virDomainGetState(d->dom, &state, &reason, 0) < 0) {
        libvirt_error(errp, EIO, "libvirt domain %s: its state", name);
        goto fail;
    }
    if (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED) {
        g_set_error(errp, COLO_ERROR, ESRCH, "libvirt domain %s is not "
                    "running (virsh start %s first)", name, name);
        goto fail;
    }
    if (!check_definition(d, errp)) {
        goto fail;
    }
    d->lifecycle_cb = virConnectDomainEventRegisterAny(
        d->conn, d->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
        VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), d, NULL);
    if (d->lifecycle_cb < 0) {
        libvirt_error(errp, EIO, "libvirt domain %s: its lifecycle events",
                      name);
        goto fail;
    }
    return d;

fail:
    libvirt_domain_free(d);
    return NULL;
}

void libvirt_domain_free(LibvirtDomain *d)
{
    if (!d) {
        return;
    }
    if (d->lifecycle_cb >= 0) {
        virConnectDomainEventDeregisterAny(d->conn, d->lifecycle_cb);
    }
    if (d->dom) {
        virDomainFree(d->dom);
    }
    if (d->conn) {
        virConnectClose(d->conn);
    }
    g_free(d->end);
    g_free(d->monitor);
    g_free(d->name);
    g_free(d);
}

/* --- QMP through libvirt ------------------------------------------------ */

static char *libvirt_qmp_exec(void *opaque, const char *request,
                              const int *fds, unsigned nfds, GError **errp)
{
    LibvirtQmp *q = opaque;
    char *reply = NULL;
    unsigned int nout = 0;
    int *out = NULL;

    if (virDomainQemuMonitorCommandWithFiles(q->dom, request, nfds,
                                             (int *)fds, &nout, &out,
                                             &reply, 0) < 0) {
        libvirt_error(errp, EPIPE, "through libvirt");
        return NULL;
    }
    for (unsigned i = 0; i < nout; i++) {
        close(out[i]);
    }
    free(out);
    return reply;
}

/* Tgid of @tid, from /proc. */
static int thread_group(int tid)
{
    uint64_t tgid = 0;

    return proc_status_field(tid, "Tgid", &tgid) ? (int)tgid : -1;
}

/* QEMU's pid: the process of its first vCPU thread. */
static int libvirt_qmp_pid(void *opaque)
{
    LibvirtQmp *q = opaque;
    g_autofree char *reply = NULL;
    const char *p;

    if (q->pid) {
        return q->pid;
    }
    reply = libvirt_qmp_exec(q, "{\"execute\": \"query-cpus-fast\"}", NULL,
                             0, NULL);
    p = reply ? strstr(reply, "\"thread-id\":") : NULL;
    q->pid = p ? thread_group((int)g_ascii_strtoll(p + 12, NULL, 10)) : -1;
    return q->pid;
}

static void libvirt_qmp_free(void *opaque)
{
    LibvirtQmp *q = opaque;

    virDomainFree(q->dom);
    virConnectClose(q->conn);
    g_free(q);
}

static const QmpTransport libvirt_qmp_transport = {
    .exec = libvirt_qmp_exec,
    .peer_pid = libvirt_qmp_pid,
    .free = libvirt_qmp_free,
};

QmpClient *libvirt_domain_qmp(LibvirtDomain *d, GError **errp)
{
    LibvirtQmp *q = g_new0(LibvirtQmp, 1);
    QmpClient *c;
    JsonNode *r;

    virConnectRef(d->conn);
    virDomainRef(d->dom);
    q->conn = d->conn;
    q->dom = d->dom;
    c = qmp_client_new_transport(&libvirt_qmp_transport, q);
    r = qmp_client_cmd(c, "query-status", NULL, errp);
    if (!r) {
        g_prefix_error(errp, "libvirt does not let colo-primary reach domain "
                       "%s's QEMU: ", d->name);
        qmp_client_free(c);
        return NULL;
    }
    json_node_unref(r);
    if (d->monitor) {
        /* the faster way (docs/libvirt.rst): QEMU's pid came from libvirt,
         * its socket is reached through QEMU's own root */
        int pid = qmp_client_peer_pid(c);
        g_autofree char *path = g_strdup_printf("/proc/%d/root%s", pid,
                                                d->monitor);
        QmpClient *sock;

        qmp_client_free(c);
        sock = pid > 0 ? qmp_client_connect(path, 2000, errp) : NULL;
        if (!sock) {
            if (pid <= 0) {
                g_set_error(errp, COLO_ERROR, ESRCH, "QEMU's pid is unknown");
            }
            g_prefix_error(errp, "libvirt domain %s: the QMP monitor of its "
                           "<qemu:commandline>, %s: ", d->name, d->monitor);
            return NULL;
        }
        qmp_client_set_fd_passing(sock);
        return sock;
    }
    return c;
}

const char *libvirt_domain_monitor(LibvirtDomain *d)
{
    return d->monitor;
}

char *libvirt_domain_ram_file(LibvirtDomain *d, QmpClient *qmp,
                              const char *block, GError **errp)
{
    g_autofree char *args = g_strdup_printf(
        "{\"path\": \"/objects/%s\", \"property\": \"mem-path\"}", block);
    g_autoptr(JsonNode) r = qmp_client_cmd(qmp, "qom-get", args, errp);
    int pid = qmp_client_peer_pid(qmp);
    const char *path;

    if (!r || !JSON_NODE_HOLDS_VALUE(r) ||
        json_node_get_value_type(r) != G_TYPE_STRING) {
        if (errp && !*errp) {
            g_set_error(errp, COLO_ERROR, EPROTO, "no mem-path");
        }
        g_prefix_error(errp, "libvirt domain %s: the file of its memory "
                       "backend %s: ", d->name, block);
        return NULL;
    }
    path = json_node_get_string(r);
    if (pid <= 0) {
        g_set_error(errp, COLO_ERROR, ESRCH, "libvirt domain %s: QEMU's pid "
                    "is unknown (query-cpus-fast)", d->name);
        return NULL;
    }
    return g_strdup_printf("/proc/%d/root%s", pid, path);
}
