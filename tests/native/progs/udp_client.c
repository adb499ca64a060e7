/*
 * udp_client: exercise every UDP send/receive call against a UDP echo server.
 *
 *     udp_client HOST PORT [MODE...]
 *
 * MODE is one of (default: all of them, in this order):
 *   sendto     unconnected socket: sendto() then recvfrom(); the reported source must be
 *              HOST:PORT (through a SOCKS relay: the real remote, not the relay)
 *   connected  connect() then send()/recv(), write()/read(), writev()/readv();
 *              getpeername() must be HOST:PORT
 *   msg        sendmsg() with a two-part iovec and msg_name, recvmsg() with msg_name
 *   mmsg       sendmmsg() of three datagrams, recvmmsg() until all three are back
 *   trunc      recvmsg() into a buffer smaller than the datagram: MSG_TRUNC must be set
 *   dup        dup() the socket, close the original, send/receive on the copy
 *   fdup       connect(), copy with fcntl(F_DUPFD_CLOEXEC) (as CPython's os.dup() does):
 *              the copy's getpeername() is HOST:PORT and send()/recv() work on it, with
 *              the original open and after it is closed (built with
 *              -D_FILE_OFFSET_BITS=64, glibc binds the call to fcntl64)
 *   unspec     connect(), then connect(AF_UNSPEC): send() must fail (EDESTADDRREQ) and
 *              getpeername() with ENOTCONN; sendto() still works
 *
 * Prints "ok MODE" for each mode that passed. On a failed call prints
 * "FAIL MODE CALL errno=N (text)" to stderr and exits 3; on wrong data or a wrong address
 * prints "FAIL MODE: why" and exits 1. Every socket has a 5 s receive timeout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

static struct sockaddr_storage server;
static socklen_t server_len;
static const char *mode;

static void die_call(const char *call)
{
    int e = errno;
    fprintf(stderr, "FAIL %s %s errno=%d (%s)\n", mode, call, e, strerror(e));
    exit(3);
}

static void die(const char *why)
{
    fprintf(stderr, "FAIL %s: %s\n", mode, why);
    exit(1);
}

static int new_socket(void)
{
    int fd = socket(server.ss_family, SOCK_DGRAM, 0);
    if (fd < 0)
        die_call("socket");
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* 1 when (addr, len) names the same host and port as the server */
static int is_server(const struct sockaddr *addr, socklen_t len)
{
    if (addr->sa_family != server.ss_family)
        return 0;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)addr, *b = (const void *)&server;
        return len >= sizeof *a && a->sin_port == b->sin_port &&
               a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *a = (const void *)addr, *b = (const void *)&server;
    return len >= sizeof *a && a->sin6_port == b->sin6_port &&
           memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
}

static void expect_echo(const char *sent, size_t sent_len, const char *got, ssize_t got_len)
{
    if (got_len != (ssize_t)sent_len || memcmp(sent, got, sent_len) != 0)
        die("echo differs from what was sent");
}

static void run_sendto(void)
{
    int fd = new_socket();
    const char msg[] = "sendto datagram";
    if (sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&server, server_len) < 0)
        die_call("sendto");
    char buf[256];
    struct sockaddr_storage from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
    if (n < 0)
        die_call("recvfrom");
    expect_echo(msg, sizeof msg, buf, n);
    if (!is_server((struct sockaddr *)&from, from_len))
        die("recvfrom reported a source that is not the server");
    /* a second round trip on the same association */
    if (sendto(fd, msg, 5, 0, (struct sockaddr *)&server, server_len) != 5)
        die_call("sendto#2");
    n = recvfrom(fd, buf, sizeof buf, 0, NULL, NULL);
    if (n < 0)
        die_call("recvfrom#2");
    expect_echo(msg, 5, buf, n);
    close(fd);
}

/* getpeername() of the connected `fd` must be the server */
static void expect_peer_is_server(int fd)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0)
        die_call("getpeername");
    if (!is_server((struct sockaddr *)&peer, peer_len))
        die("getpeername is not the server");
}

static void run_connected(void)
{
    int fd = new_socket();
    if (connect(fd, (struct sockaddr *)&server, server_len) != 0)
        die_call("connect");
    expect_peer_is_server(fd);
    const char msg[] = "connected send";
    char buf[256];
    if (send(fd, msg, sizeof msg, 0) != (ssize_t)sizeof msg)
        die_call("send");
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0)
        die_call("recv");
    expect_echo(msg, sizeof msg, buf, n);
    const char msg2[] = "connected write";
    if (write(fd, msg2, sizeof msg2) != (ssize_t)sizeof msg2)
        die_call("write");
    n = read(fd, buf, sizeof buf);
    if (n < 0)
        die_call("read");
    expect_echo(msg2, sizeof msg2, buf, n);
    char part1[] = "connected ", part2[] = "writev";
    struct iovec out[2] = {{part1, strlen(part1)}, {part2, strlen(part2)}};
    if (writev(fd, out, 2) != 16)
        die_call("writev");
    char a[5], b[64];
    struct iovec in[2] = {{a, sizeof a}, {b, sizeof b}};
    n = readv(fd, in, 2);
    if (n != 16 || memcmp(a, "conne", 5) != 0 || memcmp(b, "cted writev", 11) != 0)
        die("readv did not return the writev datagram");
    close(fd);
}

static void run_msg(void)
{
    int fd = new_socket();
    char part1[] = "sendmsg ", part2[] = "two parts";
    struct iovec out[2] = {{part1, strlen(part1)}, {part2, strlen(part2)}};
    struct msghdr msg = {0};
    msg.msg_name = &server;
    msg.msg_namelen = server_len;
    msg.msg_iov = out;
    msg.msg_iovlen = 2;
    if (sendmsg(fd, &msg, 0) < 0)
        die_call("sendmsg");
    char a[4], b[100];
    struct iovec in[2] = {{a, sizeof a}, {b, sizeof b}};
    struct sockaddr_storage from;
    struct msghdr rmsg = {0};
    rmsg.msg_name = &from;
    rmsg.msg_namelen = sizeof from;
    rmsg.msg_iov = in;
    rmsg.msg_iovlen = 2;
    ssize_t n = recvmsg(fd, &rmsg, 0);
    if (n < 0)
        die_call("recvmsg");
    char joined[104];
    if (n > (ssize_t)sizeof joined)
        die("recvmsg returned too much");
    memcpy(joined, a, n < 4 ? (size_t)n : 4);
    if (n > 4)
        memcpy(joined + 4, b, (size_t)n - 4);
    expect_echo("sendmsg two parts", 17, joined, n);
    if (!is_server((struct sockaddr *)&from, rmsg.msg_namelen))
        die("recvmsg reported a source that is not the server");
    if (rmsg.msg_flags & MSG_TRUNC)
        die("recvmsg set MSG_TRUNC on a datagram that fitted");
    close(fd);
}

static void run_mmsg(void)
{
    int fd = new_socket();
    char texts[3][16] = {"mmsg zero", "mmsg one", "mmsg two"};
    struct iovec iov[3];
    struct mmsghdr out[3];
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) {
        iov[i].iov_base = texts[i];
        iov[i].iov_len = strlen(texts[i]);
        out[i].msg_hdr.msg_name = &server;
        out[i].msg_hdr.msg_namelen = server_len;
        out[i].msg_hdr.msg_iov = &iov[i];
        out[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = 0;
    while (sent < 3) {
        int n = sendmmsg(fd, out + sent, 3 - sent, 0);
        if (n <= 0)
            die_call("sendmmsg");
        sent += n;
    }
    int seen[3] = {0, 0, 0}, got = 0;
    while (got < 3) {
        char bufs[3][64];
        struct iovec riov[3];
        struct mmsghdr in[3];
        struct sockaddr_storage from[3];
        memset(in, 0, sizeof in);
        for (int i = 0; i < 3; i++) {
            riov[i].iov_base = bufs[i];
            riov[i].iov_len = sizeof bufs[i];
            in[i].msg_hdr.msg_iov = &riov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_name = &from[i];
            in[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(fd, in, 3 - got, MSG_WAITFORONE, NULL);
        if (n <= 0)
            die_call("recvmmsg");
        for (int i = 0; i < n; i++) {
            if (!is_server((struct sockaddr *)&from[i], in[i].msg_hdr.msg_namelen))
                die("recvmmsg reported a source that is not the server");
            int match = -1;
            for (int k = 0; k < 3; k++)
                if (in[i].msg_len == strlen(texts[k]) &&
                    memcmp(bufs[i], texts[k], in[i].msg_len) == 0)
                    match = k;
            if (match < 0 || seen[match])
                die("recvmmsg returned an unexpected datagram");
            seen[match] = 1;
        }
        got += n;
    }
    close(fd);
}

static void run_trunc(void)
{
    int fd = new_socket();
    const char msg[] = "this datagram is longer than the buffer";
    if (sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&server, server_len) < 0)
        die_call("sendto");
    char small[8];
    struct iovec in = {small, sizeof small};
    struct msghdr rmsg = {0};
    rmsg.msg_iov = &in;
    rmsg.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &rmsg, 0);
    if (n < 0)
        die_call("recvmsg");
    if (n != (ssize_t)sizeof small || memcmp(small, msg, sizeof small) != 0)
        die("truncated datagram has the wrong bytes");
    if (!(rmsg.msg_flags & MSG_TRUNC))
        die("MSG_TRUNC not reported");
    close(fd);
}

static void run_dup(void)
{
    int fd = new_socket();
    const char msg[] = "before dup";
    char buf[64];
    if (sendto(fd, msg, sizeof msg, 0, (struct sockaddr *)&server, server_len) < 0)
        die_call("sendto");
    if (recv(fd, buf, sizeof buf, 0) != (ssize_t)sizeof msg)
        die_call("recv");
    int copy = dup(fd);
    if (copy < 0)
        die_call("dup");
    close(fd);
    const char msg2[] = "after dup";
    if (sendto(copy, msg2, sizeof msg2, 0, (struct sockaddr *)&server, server_len) < 0)
        die_call("sendto(copy)");
    ssize_t n = recv(copy, buf, sizeof buf, 0);
    if (n < 0)
        die_call("recv(copy)");
    expect_echo(msg2, sizeof msg2, buf, n);
    close(copy);
}

/* send `msg` on the connected `fd` and expect it back */
static void echo_connected(int fd, const char *msg)
{
    char buf[64];
    if (send(fd, msg, strlen(msg), 0) != (ssize_t)strlen(msg))
        die_call("send");
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0)
        die_call("recv");
    expect_echo(msg, strlen(msg), buf, n);
}

static void run_fdup(void)
{
    int fd = new_socket();
    if (connect(fd, (struct sockaddr *)&server, server_len) != 0)
        die_call("connect");
    echo_connected(fd, "before the copy");
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        die_call("fcntl(F_DUPFD_CLOEXEC)");
    expect_peer_is_server(copy);
    echo_connected(copy, "on the copy");
    close(fd);
    echo_connected(copy, "original closed");
    close(copy);
}

static void run_unspec(void)
{
    int fd = new_socket();
    char buf[64];
    if (connect(fd, (struct sockaddr *)&server, server_len) != 0)
        die_call("connect");
    if (send(fd, "one", 3, 0) != 3 || recv(fd, buf, sizeof buf, 0) != 3)
        die_call("send/recv");
    struct sockaddr unspec = {0};
    unspec.sa_family = AF_UNSPEC;
    if (connect(fd, &unspec, sizeof unspec) != 0)
        die_call("connect(AF_UNSPEC)");
    if (send(fd, "two", 3, 0) >= 0 || (errno != EDESTADDRREQ && errno != ENOTCONN))
        die("send() after connect(AF_UNSPEC) did not fail with EDESTADDRREQ");
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0 || errno != ENOTCONN)
        die("getpeername() after connect(AF_UNSPEC) did not fail with ENOTCONN");
    if (sendto(fd, "three", 5, 0, (struct sockaddr *)&server, server_len) != 5)
        die_call("sendto");
    if (recv(fd, buf, sizeof buf, 0) != 5 || memcmp(buf, "three", 5) != 0)
        die_call("recv(three)");
    close(fd);
}

static const struct {
    const char *name;
    void (*run)(void);
} modes[] = {
    {"sendto", run_sendto}, {"connected", run_connected}, {"msg", run_msg},
    {"mmsg", run_mmsg},     {"trunc", run_trunc},         {"dup", run_dup},
    {"unspec", run_unspec}, {"fdup", run_fdup},
};

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [MODE...]\n", argv[0]);
        return 2;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_DGRAM;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "getaddrinfo: %s\n", gai_strerror(rc));
        return 2;
    }
    memcpy(&server, res->ai_addr, res->ai_addrlen);
    server_len = res->ai_addrlen;
    freeaddrinfo(res);

    size_t count = sizeof modes / sizeof modes[0];
    for (size_t i = 0; i < count; i++) {
        int wanted = argc == 3;
        for (int a = 3; a < argc; a++)
            if (strcmp(argv[a], modes[i].name) == 0)
                wanted = 1;
        if (!wanted)
            continue;
        mode = modes[i].name;
        modes[i].run();
        printf("ok %s\n", mode);
        fflush(stdout);
    }
    return 0;
}
