/*
 * splice_relay: a minimal fixed-target TCP relay in C, for the benchmark only.
 *
 * It answers one question: how fast can *any* relay process forward one loopback TCP
 * stream on this machine (the sender, the relay and the sink are three busy processes on
 * the same cores)? socksify-server's one-stream figure is judged against it.
 *
 *   splice_relay TARGET_PORT MODE [pipe=N] [chunk=N] [rcvbuf=N] [sndbuf=N] [lowat=N]
 *
 * Listens on 127.0.0.1:0, prints "port N", then per accepted connection connects to
 * 127.0.0.1:TARGET_PORT and relays both directions until both are done (EOF -> shutdown
 * of the other side). Exits when stdin closes. MODE:
 *
 *   splice      two threads per connection, each a blocking splice(src->pipe->dst) loop
 *   splice-ep   one thread, non-blocking splice driven by epoll (edge-triggered)
 *   rw          two threads per connection, blocking read()/write() through a buffer
 *   rw-ep       one thread, non-blocking read()/write() driven by epoll
 *
 * pipe: pipe capacity (F_SETPIPE_SZ, default 1 MiB); chunk: splice length or buffer size
 * (default 1 MiB for splice, 256 KiB for rw); rcvbuf/sndbuf: SO_RCVBUF/SO_SNDBUF on both
 * sockets (0: kernel autotuning); lowat: SO_RCVLOWAT on the accepted (client) socket, the
 * bulk source of the benchmark (on the other one it would hold back the sink's 1-byte ack).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int target_port, pipe_size = 1 << 20, chunk, rcvbuf, sndbuf, lowat;
static enum { SPLICE, SPLICE_EP, RW, RW_EP } mode;

static void die(const char *what)
{
    fprintf(stderr, "splice_relay: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void tune(int fd, int client)
{
    if (lowat && client) /* only the bulk source: the sink's 1-byte ack must get through */
        setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (sndbuf)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
}

static int connect_target(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    tune(fd, 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect");
    return fd;
}

static void make_pipe(int p[2], int flags)
{
    if (pipe2(p, O_CLOEXEC | flags) < 0)
        die("pipe2");
    fcntl(p[1], F_SETPIPE_SZ, pipe_size);
}

/* ------------------------------------------------------------ blocking, 2 threads */

struct half {
    int src, dst;
};

static void *splice_half(void *arg)
{
    struct half *h = arg;
    int p[2];
    make_pipe(p, 0);
    for (;;) {
        ssize_t n = splice(h->src, NULL, p[1], NULL, (size_t)chunk, SPLICE_F_MOVE);
        if (n <= 0)
            break;
        while (n > 0) {
            ssize_t m = splice(p[0], NULL, h->dst, NULL, (size_t)n, SPLICE_F_MOVE);
            if (m <= 0)
                goto out;
            n -= m;
        }
    }
out:
    shutdown(h->dst, SHUT_WR);
    close(p[0]);
    close(p[1]);
    return NULL;
}

static void *rw_half(void *arg)
{
    struct half *h = arg;
    char *buf = malloc((size_t)chunk);
    for (;;) {
        ssize_t n = read(h->src, buf, (size_t)chunk);
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t m = write(h->dst, buf + off, (size_t)(n - off));
            if (m <= 0)
                goto out;
            off += m;
        }
    }
out:
    shutdown(h->dst, SHUT_WR);
    free(buf);
    return NULL;
}

static void *threaded_conn(void *arg)
{
    int client = (int)(long)arg;
    int remote = connect_target();
    struct half up = {client, remote}, down = {remote, client};
    void *(*fn)(void *) = mode == SPLICE ? splice_half : rw_half;
    pthread_t t;
    pthread_create(&t, NULL, fn, &down);
    fn(&up);
    pthread_join(t, NULL);
    close(client);
    close(remote);
    return NULL;
}

/* ------------------------------------------------------------ epoll, 1 thread */

struct dir {
    int src, dst, p[2];
    size_t pending, off;
    char *buf;
    int eof, done;
};

/* Move what can be moved now; 1 when this direction is finished. */
static int pump(struct dir *d)
{
    for (;;) {
        while (d->pending) {
            ssize_t m;
            if (mode == SPLICE_EP)
                m = splice(d->p[0], NULL, d->dst, NULL, d->pending,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                m = write(d->dst, d->buf + d->off, d->pending);
            if (m < 0 && errno == EAGAIN)
                return 0;
            if (m <= 0)
                return 1;
            d->pending -= (size_t)m;
            d->off += (size_t)m;
        }
        if (d->eof)
            return 1;
        ssize_t n;
        d->off = 0;
        if (mode == SPLICE_EP)
            n = splice(d->src, NULL, d->p[1], NULL, (size_t)chunk,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        else
            n = read(d->src, d->buf, (size_t)chunk);
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) {
            d->eof = 1;
            continue;
        }
        d->pending = (size_t)n;
    }
}

struct econn {
    struct dir d[2];
    int fds[2];
};

static void epoll_loop(int lfd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static int zero_tag;
    ev.data.ptr = &zero_tag;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &zero_tag) {
                char b[64];
                if (read(0, b, sizeof b) <= 0)
                    exit(0);
                continue;
            }
            if (tag == NULL) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                    continue;
                tune(c, 1);
                struct econn *e = calloc(1, sizeof *e);
                e->fds[0] = c;
                e->fds[1] = connect_target();
                fcntl(c, F_SETFL, O_NONBLOCK);
                fcntl(e->fds[1], F_SETFL, O_NONBLOCK);
                for (int k = 0; k < 2; k++) {
                    struct dir *d = &e->d[k];
                    d->src = e->fds[k];
                    d->dst = e->fds[1 - k];
                    if (mode == SPLICE_EP)
                        make_pipe(d->p, O_NONBLOCK);
                    else
                        d->buf = malloc((size_t)chunk);
                }
                for (int k = 0; k < 2; k++) {
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                              .data.ptr = e};
                    epoll_ctl(ep, EPOLL_CTL_ADD, e->fds[k], &cev);
                }
                continue;
            }
            struct econn *e = tag;
            for (int k = 0; k < 2; k++) {
                struct dir *d = &e->d[k];
                if (!d->done && pump(d)) {
                    d->done = 1;
                    shutdown(d->dst, SHUT_WR);
                }
            }
            if (e->d[0].done && e->d[1].done) {
                for (int k = 0; k < 2; k++) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, e->fds[k], NULL);
                    close(e->fds[k]);
                    if (mode == SPLICE_EP) {
                        close(e->d[k].p[0]);
                        close(e->d[k].p[1]);
                    }
                    free(e->d[k].buf);
                }
                free(e);
            }
        }
    }
}

static void *stdin_watch(void *arg)
{
    (void)arg;
    char b[64];
    while (read(0, b, sizeof b) > 0)
        ;
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: splice_relay TARGET_PORT splice|splice-ep|rw|rw-ep "
                        "[pipe=N] [chunk=N] [rcvbuf=N] [sndbuf=N] [lowat=N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    target_port = atoi(argv[1]);
    if (strcmp(argv[2], "splice") == 0)
        mode = SPLICE;
    else if (strcmp(argv[2], "splice-ep") == 0)
        mode = SPLICE_EP;
    else if (strcmp(argv[2], "rw") == 0)
        mode = RW;
    else if (strcmp(argv[2], "rw-ep") == 0)
        mode = RW_EP;
    else {
        fprintf(stderr, "splice_relay: unknown mode %s\n", argv[2]);
        return 2;
    }
    chunk = (mode == SPLICE || mode == SPLICE_EP) ? 1 << 20 : 256 << 10;
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "splice_relay: bad option %s\n", argv[i]);
            return 2;
        }
        int v = atoi(eq + 1);
        size_t k = (size_t)(eq - argv[i]);
        if (strncmp(argv[i], "pipe", k) == 0)
            pipe_size = v;
        else if (strncmp(argv[i], "chunk", k) == 0)
            chunk = v;
        else if (strncmp(argv[i], "rcvbuf", k) == 0)
            rcvbuf = v;
        else if (strncmp(argv[i], "sndbuf", k) == 0)
            sndbuf = v;
        else if (strncmp(argv[i], "lowat", k) == 0)
            lowat = v;
        else {
            fprintf(stderr, "splice_relay: bad option %s\n", argv[i]);
            return 2;
        }
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 128) < 0)
        die("listen");
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);
    if (mode == SPLICE_EP || mode == RW_EP) {
        epoll_loop(lfd);
        return 0;
    }
    pthread_t w;
    pthread_create(&w, NULL, stdin_watch, NULL);
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        tune(c, 1);
        pthread_t t;
        pthread_create(&t, NULL, threaded_conn, (void *)(long)c);
        pthread_detach(t);
    }
}
