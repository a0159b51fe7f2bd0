/*
 * fuzz-nbd.c: colo-secondary's NBD server (nbd/server.c) on one end of a
 * socketpair, the input on the other: handshake, options, requests.
 * Exports: disk0 (1 MiB, writes go straight into the image, as before
 * COLO), disk1 (1 MiB, caching: a checkpoint epoch, discarded after each
 * input) and ro (disk0 read-only).  Invariants: no crash, no leak, no
 * hang (libFuzzer's -timeout), and the images never change size.
 */
#include "qemu/osdep.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include "block/nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IMAGE_BYTES (1 << 20)

static BlockDevices *bd;
static NbdServer *server;
static char *dir;

static void add_disk(const char *node)
{
    g_autofree char *image = g_strdup_printf("%s/%s.img", dir, node);
    g_autofree char *spec = g_strdup_printf(
        "driver=file,node-name=%s,filename=%s,x-cache-size=4", node, image);
    FILE *f = fopen(image, "w");

    if (!f || ftruncate(fileno(f), IMAGE_BYTES) < 0) {
        abort();
    }
    fclose(f);
    if (!block_devices_add_spec(bd, spec, NULL)) {
        abort();
    }
}

static void setup(void)
{
    g_autofree char *sock = NULL;
    NbdListenAddress addr = { .is_unix = true };

    dir = g_dir_make_tmp("fuzz-nbd-XXXXXX", NULL);
    bd = block_devices_new(dir);
    add_disk("disk0");
    add_disk("disk1");
    colo_disk_start_caching(block_devices_find(bd, "disk1"));
    server = nbd_server_new(bd);
    sock = g_build_filename(dir, "nbd.sock", NULL);
    addr.path = sock;
    if (!nbd_server_start(server, &addr, NULL, NULL, NULL) ||
        !nbd_server_add(server, "disk0", NULL, true, NULL) ||
        !nbd_server_add(server, "disk1", NULL, true, NULL) ||
        !nbd_server_add(server, "disk0", "ro", false, NULL)) {
        abort();
    }
}

/* Reads and drops what the server says, so that it never blocks. */
static gpointer drain(gpointer opaque)
{
    int fd = GPOINTER_TO_INT(opaque);
    char buf[65536];

    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    GThread *t;
    int sv[2];

    if (!bd) {
        setup();
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        abort();
    }
    t = g_thread_new("drain", drain, GINT_TO_POINTER(sv[1]));
    if (size && write(sv[1], data, size) < 0) {
        abort();
    }
    shutdown(sv[1], SHUT_WR);
    nbd_server_serve_fd(server, sv[0]);
    close(sv[0]);
    g_thread_join(t);
    close(sv[1]);
    /* the epoch never commits: its pages go */
    for (guint i = 0; i < block_devices_count(bd); i++) {
        ColoDisk *d = block_devices_nth(bd, i);
        struct stat st;

        colo_disk_seal(d, 1);
        colo_disk_discard(d);
        if (stat(colo_disk_filename(d), &st) < 0 ||
            st.st_size != IMAGE_BYTES) {
            abort();
        }
    }
    return 0;
}
