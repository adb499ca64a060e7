/*
 * loadgen: the benchmark's load generator and target, compiled by scripts/bench at run time.
 *
 * A Python load generator cannot push a 5 GB/s loopback relay or open 35,000 connections a
 * second on two cores, and a generator slower than the subject caps every ratio, so the
 * hot loops are here. Modes (all addresses are numeric IPv4, loopback only):
 *
 *   loadgen serve
 *       The target. Listens on 127.0.0.1:0, prints "port N", serves until stdin closes.
 *       Per connection, by its first byte: "GET " -> a fixed HTTP/1.0 reply, then close;
 *       "Q" -> close at once; "S" -> an 8-byte little-endian length L, then L bytes that are
 *       discarded, then a 1-byte ack (so the sender knows the bytes arrived without relying
 *       on a proxy's half-close); no bytes -> held idle until the peer closes it.
 *   loadgen relay PROXY_HOST PROXY_PORT direct|socks5 TARGET_HOST TARGET_PORT STREAMS BYTES
 *       STREAMS threads, each sends BYTES through its own connection and waits for the ack.
 *       Prints "bytes B seconds S" (clock from after every handshake to the last ack).
 *   loadgen rate PROXY_HOST PROXY_PORT direct|socks5 TARGET_HOST TARGET_PORT CONC MILLIS
 *       One epoll thread keeps CONC connections in flight for MILLIS ms: connect, SOCKS5
 *       greeting, CONNECT, reply (direct: connect) -- the latency ends here --, then "Q"
 *       through the tunnel, the target closes, the client closes after the EOF. Prints
 *       "count N seconds S p50_us A p99_us B errors E cpu_s C" from per-connection
 *       timings; C is this process's own CPU time (user + system).
 *   loadgen idle PROXY_HOST PROXY_PORT direct|socks5 TARGET_HOST TARGET_PORT N
 *       Opens N connections (handshake done), prints "ready N", holds them until stdin
 *       closes.
 *   loadgen connects HOST PORT N [socks5 PROXY_HOST PROXY_PORT]
 *       N x (socket, connect, close) in one process, HOST resolved once by getaddrinfo
 *       (so a preloaded shim sees an ordinary program). With "socks5" every connect goes
 *       through the proxy with the SOCKS5 handshake done here, HOST sent unresolved (ATYP
 *       domain unless numeric): a program with built-in SOCKS support.
 *       Prints "count N seconds S" (after an untimed warm-up of N/10, at most 100).
 *
 * Exit status 0 on success, 1 on any error (message on stderr).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "loadgen: %s\n", what);
    exit(1);
}

static struct sockaddr_in addr_of(const char *host, const char *port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        fail("address must be numeric IPv4");
    return sa;
}

/* Read exactly n bytes; 0 on success, -1 on error or EOF. */
static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = send(fd, (const char *)buf + put, n - put, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

/* Total length of a SOCKS5 reply (RFC 1928 section 6) given its first n bytes, or 0 if
 * n bytes do not tell yet; -1 for a bad address type. */
static int s5_reply_len(const uint8_t *buf, size_t n)
{
    if (n < 5)
        return 0;
    switch (buf[3]) {
    case 1: return 4 + 4 + 2;
    case 4: return 4 + 16 + 2;
    case 3: return 4 + 1 + buf[4] + 2;
    default: return -1;
    }
}

static void s5_request(uint8_t req[10], const struct sockaddr_in *target)
{
    req[0] = 5; req[1] = 1; req[2] = 0; req[3] = 1;
    memcpy(req + 4, &target->sin_addr, 4);
    memcpy(req + 8, &target->sin_port, 2);
}

/* Blocking SOCKS5 no-auth CONNECT over fd (RFC 1928 sections 3, 4, 6); 0 on success. */
static int s5_handshake(int fd, const struct sockaddr_in *target)
{
    static const uint8_t greeting[3] = {5, 1, 0};
    uint8_t buf[262], req[10];
    if (write_full(fd, greeting, 3) || read_full(fd, buf, 2) || buf[0] != 5 || buf[1] != 0)
        return -1;
    s5_request(req, target);
    if (write_full(fd, req, 10) || read_full(fd, buf, 5) || buf[1] != 0)
        return -1;
    int total = s5_reply_len(buf, 5);
    if (total < 0 || read_full(fd, buf + 5, (size_t)total - 5))
        return -1;
    return 0;
}

/* Connect (blocking) to the proxy and CONNECT to target, or straight to target. */
static int open_conn(const struct sockaddr_in *proxy, int socks, const struct sockaddr_in *target)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    const struct sockaddr_in *first = socks ? proxy : target;
    if (connect(fd, (const struct sockaddr *)first, sizeof *first) < 0
        || (socks && s5_handshake(fd, target) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------- serve */

enum { PHASE_NEW, PHASE_HEADER, PHASE_SINK, PHASE_HELD };

struct conn {
    int phase;
    uint8_t header[8];
    size_t header_got;
    uint64_t remaining;
};

static const char HTTP_REPLY[] =
    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    "Connection: close\r\n\r\nok\n";

static int serve(void)
{
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sa = addr_of("127.0.0.1", "0");
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4096) < 0)
        die("listen");
    getsockname(lfd, (struct sockaddr *)&sa, &salen);
    printf("port %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = 0;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);

    size_t cap = 65536;
    struct conn *conns = calloc(cap, sizeof *conns);
    size_t bufsize = 1 << 20;
    char *buf = malloc(bufsize);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == 0) {
                if (read(0, buf, bufsize) <= 0)
                    return 0; /* stdin closed: the harness is done with us */
                continue;
            }
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0)
                        break;
                    if ((size_t)c >= cap) {
                        close(c);
                        continue;
                    }
                    memset(&conns[c], 0, sizeof conns[c]);
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            struct conn *cs = &conns[fd];
            int closing = 0;
            for (int rounds = 0; rounds < 8 && !closing; rounds++) {
                ssize_t r = recv(fd, buf, bufsize, 0);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                if (r <= 0) {
                    closing = 1;
                    break;
                }
                size_t off = 0;
                if (cs->phase == PHASE_NEW) {
                    if (buf[0] == 'G') { /* "GET ..." (one segment from curl) */
                        write_full(fd, HTTP_REPLY, sizeof HTTP_REPLY - 1);
                        closing = 1;
                        break;
                    }
                    if (buf[0] == 'Q') { /* the rate client's "close first" */
                        closing = 1;
                        break;
                    }
                    if (buf[0] != 'S') {
                        closing = 1;
                        break;
                    }
                    off = 1;
                    cs->phase = PHASE_HEADER;
                }
                while (off < (size_t)r && cs->phase == PHASE_HEADER) {
                    cs->header[cs->header_got++] = (uint8_t)buf[off++];
                    if (cs->header_got == 8) {
                        uint64_t len = 0;
                        for (int k = 7; k >= 0; k--)
                            len = (len << 8) | cs->header[k];
                        cs->remaining = len;
                        cs->phase = PHASE_SINK;
                    }
                }
                if (cs->phase == PHASE_SINK) {
                    size_t take = (size_t)r - off;
                    cs->remaining = take > cs->remaining ? 0 : cs->remaining - take;
                    if (cs->remaining == 0) {
                        write_full(fd, "k", 1);
                        cs->phase = PHASE_HELD;
                    }
                }
            }
            if (closing) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            }
        }
    }
}

/* ---------------------------------------------------------------- relay */

struct stream {
    struct sockaddr_in proxy, target;
    int socks;
    uint64_t bytes;
    int fd;
    int ok;
    pthread_barrier_t *ready;
};

static char *payload;
static size_t payload_size = 4 << 20;

static void *stream_main(void *arg)
{
    struct stream *s = arg;
    s->fd = open_conn(&s->proxy, s->socks, &s->target);
    pthread_barrier_wait(s->ready);
    if (s->fd < 0)
        return NULL;
    uint8_t header[9] = {'S'};
    for (int k = 0; k < 8; k++)
        header[1 + k] = (uint8_t)(s->bytes >> (8 * k));
    if (write_full(s->fd, header, 9))
        return NULL;
    uint64_t left = s->bytes;
    while (left) {
        size_t chunk = left < payload_size ? (size_t)left : payload_size;
        if (write_full(s->fd, payload, chunk))
            return NULL;
        left -= chunk;
    }
    char ack;
    if (read_full(s->fd, &ack, 1) == 0)
        s->ok = 1;
    close(s->fd);
    return NULL;
}

static int relay(char **argv)
{
    struct sockaddr_in proxy = addr_of(argv[0], argv[1]);
    int socks = strcmp(argv[2], "socks5") == 0;
    struct sockaddr_in target = addr_of(argv[3], argv[4]);
    int streams = atoi(argv[5]);
    uint64_t bytes = strtoull(argv[6], NULL, 10);
    if (streams < 1 || streams > 64)
        fail("streams must be 1..64");
    payload = malloc(payload_size);
    memset(payload, 'x', payload_size);
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, (unsigned)streams + 1);
    struct stream s[64];
    pthread_t th[64];
    for (int i = 0; i < streams; i++) {
        s[i] = (struct stream){proxy, target, socks, bytes, -1, 0, &ready};
        pthread_create(&th[i], NULL, stream_main, &s[i]);
    }
    pthread_barrier_wait(&ready);
    double start = now();
    for (int i = 0; i < streams; i++)
        pthread_join(th[i], NULL);
    double seconds = now() - start;
    for (int i = 0; i < streams; i++)
        if (!s[i].ok)
            fail("a stream failed (connect, handshake, send or ack)");
    printf("bytes %llu seconds %.6f\n", (unsigned long long)bytes * (unsigned)streams, seconds);
    return 0;
}

/* ---------------------------------------------------------------- rate */

enum { ST_CONNECTING, ST_METHOD, ST_REPLY, ST_CLOSING };

struct slot {
    int fd;
    int state;
    double started, latency;
    uint8_t buf[262];
    size_t got;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int start_slot(int ep, struct slot *sl, const struct sockaddr_in *first)
{
    sl->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sl->fd < 0)
        return -1;
    sl->state = ST_CONNECTING;
    sl->got = 0;
    sl->started = now();
    if (connect(sl->fd, (const struct sockaddr *)first, sizeof *first) < 0
        && errno != EINPROGRESS) {
        close(sl->fd);
        sl->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = sl};
    epoll_ctl(ep, EPOLL_CTL_ADD, sl->fd, &ev);
    return 0;
}

static int rate(char **argv)
{
    struct sockaddr_in proxy = addr_of(argv[0], argv[1]);
    int socks = strcmp(argv[2], "socks5") == 0;
    struct sockaddr_in target = addr_of(argv[3], argv[4]);
    int conc = atoi(argv[5]);
    double duration = atoi(argv[6]) / 1000.0;
    const struct sockaddr_in *first = socks ? &proxy : &target;
    if (conc < 1 || conc > 4096)
        fail("concurrency must be 1..4096");

    size_t cap = 4 << 20, count = 0;
    double *lat = malloc(cap * sizeof *lat);
    long errors = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct slot *slots = calloc((size_t)conc, sizeof *slots);
    static const uint8_t greeting[3] = {5, 1, 0};
    uint8_t req[10];
    s5_request(req, &target);

    double start = now(), end = start + duration;
    int active = 0;
    for (int i = 0; i < conc; i++)
        if (start_slot(ep, &slots[i], first) == 0)
            active++;
        else
            errors++;
    struct epoll_event events[512];
    while (active > 0) {
        int n = epoll_wait(ep, events, 512, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (now() > end + 10)
                fail("connections stalled for 10 s");
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct slot *sl = events[i].data.ptr;
            int ready = 0, done = 0, bad = 0;
            if (sl->state == ST_CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(sl->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    bad = 1;
                } else if (!socks) {
                    ready = 1;
                } else if (write_full(sl->fd, greeting, 3)) {
                    bad = 1;
                } else {
                    sl->state = ST_METHOD;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sl};
                    epoll_ctl(ep, EPOLL_CTL_MOD, sl->fd, &ev);
                }
            } else if (sl->state == ST_CLOSING) {
                char sink[64];
                ssize_t r = recv(sl->fd, sink, sizeof sink, 0);
                if (r < 0 && errno == EAGAIN)
                    continue;
                if (r <= 0) /* EOF (or a reset) from the target's close */
                    done = 1;
            } else {
                ssize_t r = recv(sl->fd, sl->buf + sl->got, sizeof sl->buf - sl->got, 0);
                if (r < 0 && errno == EAGAIN)
                    continue;
                if (r <= 0) {
                    bad = 1;
                } else {
                    sl->got += (size_t)r;
                    if (sl->state == ST_METHOD && sl->got >= 2) {
                        if (sl->buf[0] != 5 || sl->buf[1] != 0 || sl->got > 2
                            || write_full(sl->fd, req, 10)) {
                            bad = 1;
                        } else {
                            sl->state = ST_REPLY;
                            sl->got = 0;
                        }
                    } else if (sl->state == ST_REPLY) {
                        int total = s5_reply_len(sl->buf, sl->got);
                        if (total < 0 || (total > 0 && sl->buf[1] != 0))
                            bad = 1;
                        else if (total > 0 && sl->got >= (size_t)total)
                            ready = 1;
                    }
                }
            }
            if (ready) {
                /* Set up: the latency ends here. Then one byte through the tunnel asks the
                 * target to close first, so TIME_WAIT lands on the listening ports and not on
                 * the ephemeral ports that later servers (and Dante's bind before connect)
                 * need; 2-second rounds at 15,000 conn/s would otherwise exhaust them. */
                sl->latency = now() - sl->started;
                if (write_full(sl->fd, "Q", 1)) {
                    bad = 1;
                } else {
                    sl->state = ST_CLOSING;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = sl};
                    epoll_ctl(ep, EPOLL_CTL_MOD, sl->fd, &ev);
                }
            }
            if (done || bad) {
                double t = now();
                close(sl->fd); /* closing also removes it from the epoll set */
                sl->fd = -1;
                active--;
                if (bad)
                    errors++;
                else if (count < cap)
                    lat[count++] = sl->latency;
                if (t < end) {
                    if (start_slot(ep, sl, first) == 0)
                        active++;
                    else
                        errors++;
                }
            }
        }
    }
    double seconds = now() - start;
    if (count == 0)
        fail("no connection completed");
    qsort(lat, count, sizeof *lat, cmp_double);
    double p50 = lat[(size_t)(0.50 * (double)(count - 1))];
    double p99 = lat[(size_t)(0.99 * (double)(count - 1))];
    struct rusage use;
    getrusage(RUSAGE_SELF, &use);
    double cpu = (double)(use.ru_utime.tv_sec + use.ru_stime.tv_sec)
                 + (double)(use.ru_utime.tv_usec + use.ru_stime.tv_usec) / 1e6;
    printf("count %zu seconds %.6f p50_us %.2f p99_us %.2f errors %ld cpu_s %.6f\n", count,
           seconds, p50 * 1e6, p99 * 1e6, errors, cpu);
    return 0;
}

/* ---------------------------------------------------------------- idle */

static int idle(char **argv)
{
    struct sockaddr_in proxy = addr_of(argv[0], argv[1]);
    int socks = strcmp(argv[2], "socks5") == 0;
    struct sockaddr_in target = addr_of(argv[3], argv[4]);
    int n = atoi(argv[5]);
    int *fds = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        fds[i] = open_conn(&proxy, socks, &target);
        if (fds[i] < 0) {
            fprintf(stderr, "loadgen: idle connection %d of %d failed: %s\n", i + 1, n,
                    strerror(errno));
            return 1;
        }
    }
    printf("ready %d\n", n);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0)
        ;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return 0;
}

/* ---------------------------------------------------------------- connects */

/* Blocking SOCKS5 no-auth CONNECT to a host name or numeric IPv4 (ATYP 3 or 1) and port. */
static int s5_connect_name(const struct sockaddr_in *proxy, const char *host, uint16_t port)
{
    static const uint8_t greeting[3] = {5, 1, 0};
    uint8_t req[262], buf[262];
    size_t len;
    struct in_addr ip;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    req[0] = 5; req[1] = 1; req[2] = 0;
    if (inet_pton(AF_INET, host, &ip) == 1) {
        req[3] = 1;
        memcpy(req + 4, &ip, 4);
        len = 8;
    } else {
        size_t n = strlen(host);
        if (n > 255)
            fail("host name too long");
        req[3] = 3;
        req[4] = (uint8_t)n;
        memcpy(req + 5, host, n);
        len = 5 + n;
    }
    req[len++] = (uint8_t)(port >> 8);
    req[len++] = (uint8_t)port;
    if (connect(fd, (const struct sockaddr *)proxy, sizeof *proxy) < 0
        || write_full(fd, greeting, 3) || read_full(fd, buf, 2) || buf[1] != 0
        || write_full(fd, req, len) || read_full(fd, buf, 5) || buf[1] != 0) {
        close(fd);
        return -1;
    }
    int total = s5_reply_len(buf, 5);
    if (total < 0 || read_full(fd, buf + 5, (size_t)total - 5)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connects(int argc, char **argv)
{
    long n = atol(argv[2]);
    int socks = argc >= 6 && strcmp(argv[3], "socks5") == 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    struct sockaddr_in proxy;
    if (socks) {
        proxy = addr_of(argv[4], argv[5]); /* the name goes to the proxy unresolved */
    } else {
        int rc = getaddrinfo(argv[0], argv[1], &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "loadgen: getaddrinfo %s: %s\n", argv[0], gai_strerror(rc));
            return 1;
        }
    }
    /* The first n/10 connects (at most 100) are a warm-up and not timed: a shim's lazy
     * set-up on first use belongs to the whole-process figure, not to the per-connect one. */
    long warm = n / 10 < 100 ? n / 10 : 100;
    double start = 0;
    for (long i = -warm; i < n; i++) {
        int fd;
        if (i == 0)
            start = now();
        if (socks) {
            fd = s5_connect_name(&proxy, argv[0], (uint16_t)atoi(argv[1]));
        } else {
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
                close(fd);
                fd = -1;
            }
        }
        if (fd < 0)
            die("connect");
        close(fd);
    }
    double seconds = now() - start;
    printf("count %ld seconds %.6f\n", n, seconds);
    if (ai)
        freeaddrinfo(ai);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve();
    if (argc == 9 && strcmp(argv[1], "relay") == 0)
        return relay(argv + 2);
    if (argc == 9 && strcmp(argv[1], "rate") == 0)
        return rate(argv + 2);
    if (argc == 8 && strcmp(argv[1], "idle") == 0)
        return idle(argv + 2);
    if ((argc == 5 || argc == 8) && strcmp(argv[1], "connects") == 0)
        return connects(argc - 2, argv + 2);
    fail("usage: see the comment at the top of loadgen.c");
    return 1;
}
