/*
 * A deliberately minimal SOCKS5 CONNECT server in C, for scripts/bench_rate_floor.py only.
 *
 * The C twin of bare_servers.py's "epoll" server, step for step: it answers any greeting
 * with "no authentication", takes only IPv4 CONNECT requests, replies 0.0.0.0:0 once the
 * connect completes, and relays with one recv/send per readiness event. It checks, logs
 * and records nothing. What it measures is the floor ANY server pays per connection on
 * the benchmark's connection-rate load (the kernel's share is the same for all), so the
 * gap between it and the bare Python servers is what a C handshake path could gain.
 *
 *     bare_server PORT PROCESSES
 *
 * Each of PROCESSES forked processes listens on 127.0.0.1:PORT with SO_REUSEPORT (as
 * socksify-server's workers do). Never use it for anything else.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { GREETING, REQUEST, CONNECTING, RELAY };
enum { MAX_FD = 1 << 16, EVENTS = 512 };

static const unsigned char REPLY[10] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
static int peer_of[MAX_FD];
static unsigned char state_of[MAX_FD];
static int epfd;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void watch(int op, int fd, unsigned events) {
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

static int listener(int port) {
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 4096) < 0)
        die("listener");
    return fd;
}

/* close() also takes the descriptor out of the epoll set */
static void drop(int fd) {
    int peer = peer_of[fd];
    close(fd);
    if (peer >= 0) {
        close(peer);
        peer_of[peer] = -1;
    }
    peer_of[fd] = -1;
}

static void on_request(int client, const unsigned char *req, ssize_t n) {
    struct sockaddr_in to = {.sin_family = AF_INET};
    int remote;
    if (n < 10 || req[3] != 1) {
        drop(client);
        return;
    }
    memcpy(&to.sin_addr, req + 4, 4);
    memcpy(&to.sin_port, req + 8, 2);
    remote = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (remote < 0 || remote >= MAX_FD) {
        if (remote >= 0)
            close(remote);
        drop(client);
        return;
    }
    if (connect(remote, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS) {
        close(remote);
        drop(client);
        return;
    }
    peer_of[client] = remote;
    peer_of[remote] = client;
    state_of[remote] = CONNECTING;
    watch(EPOLL_CTL_DEL, client, 0);
    watch(EPOLL_CTL_ADD, remote, EPOLLOUT);
}

static void serve(int port) {
    static unsigned char buf[65536];
    struct epoll_event events[EVENTS];
    int lfd = listener(port);
    epfd = epoll_create1(0);
    if (epfd < 0)
        die("epoll_create1");
    watch(EPOLL_CTL_ADD, lfd, EPOLLIN);
    for (;;) {
        int n = epoll_wait(epfd, events, EVENTS, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAX_FD) {
                        close(c);
                        continue;
                    }
                    peer_of[c] = -1;
                    state_of[c] = GREETING;
                    watch(EPOLL_CTL_ADD, c, EPOLLIN);
                }
                continue;
            }
            if (state_of[fd] == CONNECTING) {
                int client = peer_of[fd];
                if (send(client, REPLY, sizeof REPLY, MSG_NOSIGNAL) < 0) {
                    drop(fd);
                    continue;
                }
                state_of[fd] = state_of[client] = RELAY;
                watch(EPOLL_CTL_MOD, fd, EPOLLIN);
                watch(EPOLL_CTL_ADD, client, EPOLLIN);
                continue;
            }
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                drop(fd);
            } else if (state_of[fd] == RELAY) {
                if (send(peer_of[fd], buf, (size_t)got, MSG_NOSIGNAL) < 0)
                    drop(fd);
            } else if (state_of[fd] == GREETING) {
                if (send(fd, "\5\0", 2, MSG_NOSIGNAL) < 0)
                    drop(fd);
                else
                    state_of[fd] = REQUEST;
            } else {
                on_request(fd, buf, got);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bare_server PORT PROCESSES\n");
        return 2;
    }
    int port = atoi(argv[1]), processes = atoi(argv[2]);
    for (int i = 1; i < processes; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0)
            break;
    }
    serve(port);
    return 0;
}
