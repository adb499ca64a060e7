/*
 * connect_errno MODE HOST PORT: one TCP connect(), then print what the program saw.
 *
 * MODE "block": a blocking connect(). MODE "nonblock": O_NONBLOCK, connect(), then (on
 * EINPROGRESS) poll for POLLOUT (20 s at most) and read SO_ERROR, as event loops do.
 * MODE "sndtimeo": a blocking connect() on a socket with a 1 s SO_SNDTIMEO.
 * Prints "ok" or "errno NAME" on stdout and exits 0, so a crash or a hang is not confused
 * with an error the shim reported; exit 1 is a usage or local failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int report(int err)
{
    if (err == 0) {
        printf("ok\n");
    } else {
        const char *name = strerrorname_np(err);
        if (name)
            printf("errno %s\n", name);
        else
            printf("errno %d\n", err);
    }
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return fprintf(stderr, "usage: connect_errno block|nonblock|sndtimeo HOST PORT\n"), 1;
    int nonblock = strcmp(argv[1], "nonblock") == 0;
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &sin.sin_addr) != 1)
        return fprintf(stderr, "bad address\n"), 1;
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return perror("socket"), 1;
    if (strcmp(argv[1], "sndtimeo") == 0) {
        struct timeval tv = {.tv_sec = 1};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0)
        return report(0);
    if (!nonblock || errno != EINPROGRESS)
        return report(errno);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n = poll(&p, 1, 20000);
    if (n <= 0)
        return printf("poll timed out\n"), 1;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return perror("getsockopt"), 1;
    return report(err);
}
