/*
 * bind_client: the shape of an active-FTP client, without FTP.
 *
 *     bind_client CTRL_HOST CTRL_PORT [MODE]
 *
 * 1. connects to the control server CTRL_HOST:CTRL_PORT (its "primary connection");
 * 2. opens a listening socket bound to port 0 (MODE "nobind": listen() without bind());
 * 3. sends "CONNECT-TO HOST PORT\n" with the address getsockname() gave on the control
 *    connection, and waits for the control server to connect there and send data;
 * 4. accepts the connection: MODE "blocking" (default) with accept(); "nonblocking" with
 *    O_NONBLOCK (checking that accept4() says EAGAIN before step 3), poll() and
 *    accept4(SOCK_CLOEXEC), which must give a blocking, close-on-exec socket; "epoll" with epoll_wait() and accept();
 *    "nobind" like blocking;
 * 5. copies everything received to stdout until EOF.
 *
 * stderr gets "listening HOST PORT" and "peer HOST PORT" (getpeername of the accepted
 * socket); getpeername() on the listening socket must fail with ENOTCONN. A failed call prints "FAIL CALL errno=N (text)" and exits 3. Waits are bounded
 * (10 s).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void die_call(const char *call)
{
    int e = errno;
    fprintf(stderr, "FAIL %s errno=%d (%s)\n", call, e, strerror(e));
    exit(3);
}

static void format_addr(const struct sockaddr *sa, char *host, size_t size, int *port)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, (socklen_t)size);
        *port = ntohs(s6->sin6_port);
    } else {
        const struct sockaddr_in *s4 = (const void *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, (socklen_t)size);
        *port = ntohs(s4->sin_port);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CTRL_HOST CTRL_PORT [blocking|nonblocking|epoll|nobind]\n",
                argv[0]);
        return 2;
    }
    const char *mode = argc > 3 ? argv[3] : "blocking";
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        return 2;
    }
    int ctrl = socket(res->ai_family, SOCK_STREAM, 0);
    if (ctrl < 0 || connect(ctrl, res->ai_addr, res->ai_addrlen) != 0)
        die_call("connect");
    int family = res->ai_family;
    freeaddrinfo(res);

    int lfd = socket(family, SOCK_STREAM, 0);
    if (lfd < 0)
        die_call("socket");
    if (strcmp(mode, "nobind") != 0) {
        struct sockaddr_storage any = {0};
        any.ss_family = (sa_family_t)family;
        socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in);
        if (bind(lfd, (struct sockaddr *)&any, len) != 0)
            die_call("bind");
    }
    if (listen(lfd, 1) != 0)
        die_call("listen");
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (getsockname(lfd, (struct sockaddr *)&local, &local_len) != 0)
        die_call("getsockname");
    char host[INET6_ADDRSTRLEN];
    int port;
    format_addr((struct sockaddr *)&local, host, sizeof host, &port);
    fprintf(stderr, "listening %s %d\n", host, port);
    /* a listening socket has no peer, whatever is underneath */
    struct sockaddr_storage nopeer;
    socklen_t nopeer_len = sizeof nopeer;
    if (getpeername(lfd, (struct sockaddr *)&nopeer, &nopeer_len) == 0) {
        errno = EISCONN;
        die_call("getpeername(listener)");
    }
    if (errno != ENOTCONN)
        die_call("getpeername(listener)");
    if (strcmp(mode, "nonblocking") == 0) {
        /* nobody has been told the address yet, so there is nothing to accept */
        int flags = fcntl(lfd, F_GETFL);
        if (flags < 0 || fcntl(lfd, F_SETFL, flags | O_NONBLOCK) != 0)
            die_call("fcntl");
        if (accept4(lfd, NULL, NULL, SOCK_CLOEXEC) >= 0) {
            errno = EEXIST;
            die_call("early-accept4");
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            die_call("early-accept4");
    }
    char line[128];
    int len = snprintf(line, sizeof line, "CONNECT-TO %s %d\n", host, port);
    if (write(ctrl, line, (size_t)len) != len)
        die_call("write");

    int conn;
    if (strcmp(mode, "nonblocking") == 0) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1)
            die_call("poll");
        conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            die_call("accept4");
        if (!(fcntl(conn, F_GETFD) & FD_CLOEXEC))
            die_call("accept4-cloexec");
        if (fcntl(conn, F_GETFL) & O_NONBLOCK) {
            errno = EINVAL;
            die_call("accept4-inherited-nonblock");
        }
    } else if (strcmp(mode, "epoll") == 0) {
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd}, got;
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
            die_call("epoll_ctl");
        if (epoll_wait(ep, &got, 1, 10000) != 1)
            die_call("epoll_wait");
        conn = accept(lfd, NULL, NULL);
        if (conn < 0)
            die_call("accept");
        close(ep);
    } else {
        struct timeval tv = {10, 0};
        setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        conn = accept(lfd, (struct sockaddr *)&from, &from_len);
        if (conn < 0)
            die_call("accept");
        format_addr((struct sockaddr *)&from, host, sizeof host, &port);
        fprintf(stderr, "accepted %s %d\n", host, port);
    }
    close(lfd);

    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername(conn, (struct sockaddr *)&peer, &peer_len) != 0)
        die_call("getpeername");
    format_addr((struct sockaddr *)&peer, host, sizeof host, &port);
    fprintf(stderr, "peer %s %d\n", host, port);

    struct timeval tv = {10, 0};
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[65536];
    for (;;) {
        ssize_t n = read(conn, buf, sizeof buf);
        if (n < 0)
            die_call("read");
        if (n == 0)
            break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            die_call("fwrite");
    }
    close(conn);
    close(ctrl);
    return 0;
}
