/*
 * mt_connect: many threads, many short TCP connections to an echo server.
 *
 *     mt_connect HOST PORT [THREADS [CONNECTS]]       (defaults: 8 threads x 50 connects)
 *
 * Each connection writes one line naming its thread and round, reads the echo back and
 * checks it byte for byte. Prints "ok N" (N connections verified) and exits 0; on the first
 * failure prints what failed (with errno) to stderr and exits 1. HOST may be a name: it is
 * resolved with getaddrinfo(), so remote-DNS placeholders are exercised too. Every socket
 * has a 10 s receive/send timeout, so a lost echo cannot hang the test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *host, *port;
static int connects = 50;
static volatile int failed;
static int done_total;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;

static int one_round(int thread, int round)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "thread %d round %d: getaddrinfo: %s\n", thread, round,
                gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "thread %d round %d: socket: %s\n", thread, round, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        fprintf(stderr, "thread %d round %d: connect: %s\n", thread, round, strerror(errno));
        freeaddrinfo(res);
        close(fd);
        return -1;
    }
    freeaddrinfo(res);

    char line[128], echo[128];
    int len = snprintf(line, sizeof line, "thread %d round %d pid %d\n", thread, round,
                       (int)getpid());
    if (write(fd, line, (size_t)len) != len) {
        fprintf(stderr, "thread %d round %d: write: %s\n", thread, round, strerror(errno));
        close(fd);
        return -1;
    }
    int got = 0;
    while (got < len) {
        ssize_t n = read(fd, echo + got, (size_t)(len - got));
        if (n <= 0) {
            fprintf(stderr, "thread %d round %d: read: %s\n", thread, round,
                    n == 0 ? "unexpected EOF" : strerror(errno));
            close(fd);
            return -1;
        }
        got += (int)n;
    }
    close(fd);
    if (memcmp(line, echo, (size_t)len) != 0) {
        fprintf(stderr, "thread %d round %d: echo mismatch\n", thread, round);
        return -1;
    }
    return 0;
}

static void *worker(void *arg)
{
    int thread = (int)(long)arg;
    for (int round = 0; round < connects && !failed; round++) {
        if (one_round(thread, round) != 0) {
            failed = 1;
            break;
        }
        pthread_mutex_lock(&done_lock);
        done_total++;
        pthread_mutex_unlock(&done_lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [THREADS [CONNECTS]]\n", argv[0]);
        return 2;
    }
    host = argv[1];
    port = argv[2];
    int threads = argc > 3 ? atoi(argv[3]) : 8;
    if (argc > 4)
        connects = atoi(argv[4]);
    if (threads < 1 || threads > 256 || connects < 1) {
        fprintf(stderr, "bad THREADS or CONNECTS\n");
        return 2;
    }
    pthread_t tids[256];
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&tids[i], NULL, worker, (void *)(long)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    printf("ok %d\n", done_total);
    return failed ? 1 : 0;
}
