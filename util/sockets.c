/*
 * sockets.c: see qemu/sockets.h.
 */
#include "qemu/osdep.h"

#include <sys/socket.h>
#include <sys/un.h>

#include "qemu/sockets.h"

int unix_listen(const char *path, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        g_set_error(errp, COLO_ERROR, ENAMETOOLONG, "socket path too long: "
                    "%s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        g_set_error(errp, COLO_ERROR, errno, "socket: %s", g_strerror(errno));
        return -1;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 16) < 0) {
        g_set_error(errp, COLO_ERROR, errno, "cannot listen on unix:%s: %s",
                    path, g_strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
