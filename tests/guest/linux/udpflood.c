/*
 * udpflood HOST PORT COUNT: the guest's packet burst for the network
 * buffer's limit test.  Sends COUNT UDP datagrams "N\n" (N = 1..COUNT) to
 * HOST:PORT as fast as the kernel takes them, one datagram each, and says
 * so on stdout.  Built static for the busybox guest (build-guest.sh).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_in to = { .sin_family = AF_INET };
    long count;
    int fd;

    if (argc != 4 || inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
        fprintf(stderr, "usage: udpflood IPV4 PORT COUNT\n");
        return 1;
    }
    to.sin_port = htons((unsigned short)atoi(argv[2]));
    count = atol(argv[3]);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("udpflood: socket");
        return 1;
    }
    for (long n = 1; n <= count; n++) {
        char msg[32];
        int len = snprintf(msg, sizeof(msg), "%ld\n", n);

        while (sendto(fd, msg, len, 0, (struct sockaddr *)&to,
                      sizeof(to)) < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("udpflood: sendto");
                return 1;
            }
            usleep(100);
        }
    }
    printf("udpflood: sent %ld datagrams\n", count);
    return 0;
}
