/*
 * handshake.c -- the blocking SOCKS driver: connect to the first hop, walk the chain, send
 * the request, read the reply. All I/O runs with O_NONBLOCK set and poll() under ONE
 * deadline (SO_SNDTIMEO of the socket, else SFY_DEFAULT_TIMEOUT_MS), so blocking sockets,
 * non-blocking sockets and sockets with timeouts are handled by one code path.
 *
 * Rules:
 * - The fd's file status flags are saved with F_GETFL and the SAVED value is restored, on
 *   success and on failure (never F_SETFL with a computed "blocking" value) whenever the
 *   handshake changed them (O_NONBLOCK set here, or the socket replaced); a non-blocking
 *   socket that was not replaced is left alone (no F_SETFL at all).
 * - EINTR restarts the interrupted poll/send/recv with the remaining time; partial writes
 *   continue where they stopped.
 * - Replies are read exactly: each recv() asks for no more than the message still needs
 *   (its fixed part, then what its length fields say: message_length()), and the whole
 *   message is parsed with codec.c, so data the destination sends right after the reply (a
 *   server banner, in the same TCP segment) stays in the socket for the program. No
 *   MSG_PEEK: one recv() per fixed-size message, two for a SOCKS5 reply.
 * - Failures return -1 with errno per SPEC.md's table: the connect() errno of the first
 *   hop, the errmap.c errno of a refusing reply, EACCES for authentication, EPROTO for
 *   malformed replies or a proxy that closes mid-handshake, ETIMEDOUT at the deadline.
 */
#include "socksify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t sfy_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sfy_deadline_for(int fd)
{
    struct timeval tv = {0, 0};
    socklen_t len = sizeof tv;
    int64_t ms = SFY_DEFAULT_TIMEOUT_MS;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) == 0 && (tv.tv_sec || tv.tv_usec))
        ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    return sfy_now_ms() + (ms > 0 ? ms : 1);
}

/* ------------------------------------------------------------ first hop address */

#define MAX_HOP_ADDRS 4

static struct sfy_once hop_once = SFY_ONCE_INIT;
static struct sockaddr_storage hop_ss[MAX_HOP_ADDRS];
static socklen_t hop_len[MAX_HOP_ADDRS];
static int hop_count;

static void resolve_first_hop(void)
{
    const struct sfy_hop *hop = &sfy_cfg.hops[0];
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", hop->port);
    /* The proxy's own name is resolved locally, with the real resolver: it is the one name
     * that must be (curl does the same for --socks5-hostname). All its addresses are kept:
     * "localhost" may give ::1 first while the proxy listens on 127.0.0.1 only. */
    rc = SFY_REAL(getaddrinfo)(hop->host, port, &hints, &res);
    if (rc != 0 || !res) {
        SFY_ERR("cannot resolve the proxy %s: %s", hop->host, gai_strerror(rc));
        return;
    }
    for (struct addrinfo *ai = res; ai && hop_count < MAX_HOP_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof hop_ss[0])
            continue;
        memcpy(&hop_ss[hop_count], ai->ai_addr, ai->ai_addrlen);
        hop_len[hop_count++] = ai->ai_addrlen;
    }
    SFY_REAL(freeaddrinfo)(res);
}

int sfy_first_hop_addrs(struct sockaddr_storage *ss, socklen_t *len, int max)
{
    int n = 0;
    if (!sfy_cfg.valid) {
        errno = SFY_ERRNO_NOT_CONFIGURED;
        return -1;
    }
    sfy_once(&hop_once, resolve_first_hop);
    if (!hop_count) {
        errno = EHOSTUNREACH;
        return -1;
    }
    for (; n < hop_count && n < max; n++) {
        ss[n] = hop_ss[n];
        len[n] = hop_len[n];
    }
    return n;
}

/* ------------------------------------------------------------ I/O under a deadline */

/* Wait until fd is ready for `events`: 0, or -1 ETIMEDOUT / poll's errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int64_t left = deadline - sfy_now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int rc = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t n = SFY_REAL(send)(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* A codec parser with its output: returns consumed / SFY_NEED_MORE / negative. */
typedef int (*parse_fn)(const uint8_t *buf, size_t len, void *out);

static int parse_method(const uint8_t *b, size_t n, void *out) { return sfy_s5_parse_method(b, n, out); }
static int parse_auth(const uint8_t *b, size_t n, void *out) { return sfy_s5_parse_auth_result(b, n, out); }
static int parse_reply5(const uint8_t *b, size_t n, void *out) { return sfy_s5_parse_reply(b, n, out); }
static int parse_reply4(const uint8_t *b, size_t n, void *out) { return sfy_s4_parse_reply(b, n, out); }

/* The messages a client reads, and how long each is. */
enum message { MSG_METHOD, MSG_AUTH, MSG_REPLY5, MSG_REPLY4 };

/* The length of the message whose first `have` bytes are in b, as far as they tell: at
 * most the message's own length, never more (the bytes after a reply are the program's).
 * A malformed head gives `have` (nothing more to read: the parser rejects it). */
static size_t message_length(enum message kind, const uint8_t *b, size_t have)
{
    switch (kind) {
    case MSG_METHOD: /* RFC 1928 §3: VER METHOD */
    case MSG_AUTH:   /* RFC 1929 §2: VER STATUS */
        return 2;
    case MSG_REPLY4: /* SOCKS4: VN CD DSTPORT DSTIP */
        return 8;
    case MSG_REPLY5: /* RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT */
        if (have < 5)
            return 5; /* up to the first octet of BND.ADDR: a name's length */
        if (b[0] != 5) /* not SOCKS5: the parser says so */
            return have;
        switch (b[3]) {
        case SFY_ATYP_IPV4:
            return 4 + 4 + 2;
        case SFY_ATYP_IPV6:
            return 4 + 16 + 2;
        case SFY_ATYP_DOMAIN:
            return 4 + 1 + (size_t)b[4] + 2;
        default:
            return have;
        }
    }
    return have;
}

/* Read exactly one message of `kind` and parse it: 0, or -1 with errno (EPROTO for garbage
 * or early EOF). `wait_first`: poll before the first recv() (a CONNECT reply comes only
 * after the proxy reached the destination: a recv() at once would mostly meet EAGAIN). */
static int read_message(int fd, enum message kind, parse_fn parse, void *out, int64_t deadline,
                        int wait_first)
{
    uint8_t buf[600];
    size_t have = 0, want;
    int used;
    if (wait_first && wait_fd(fd, POLLIN, deadline) < 0)
        return -1;
    for (;;) {
        /* parsed after every read, so garbage fails at once, as soon as it shows */
        want = message_length(kind, buf, have);
        used = have ? parse(buf, have, out) : SFY_NEED_MORE;
        if (used > 0 && (size_t)used == have)
            return 0;
        if (used != SFY_NEED_MORE || want <= have || want > sizeof buf) {
            SFY_INFO("malformed reply from the proxy (codec error %d)", used);
            errno = SFY_ERRNO_PROTOCOL;
            return -1;
        }
        ssize_t n = SFY_REAL(recv)(fd, buf + have, want - have, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLIN, deadline) < 0)
                    return -1;
                continue;
            }
            return -1;
        }
        if (n == 0) {
            SFY_INFO("the proxy closed the connection during the handshake");
            errno = SFY_ERRNO_PROTOCOL;
            return -1;
        }
        have += (size_t)n;
    }
}

/* ------------------------------------------------------------ one hop */

/* The address to ask hop `i` for when it is not the last: hop i+1's host. */
static int next_hop_addr(size_t i, struct sfy_addr *out)
{
    const struct sfy_hop *next = &sfy_cfg.hops[i + 1];
    char host[256];
    memset(out, 0, sizeof *out);
    out->port = next->port;
    snprintf(host, sizeof host, "%s", next->host);
    char *pct = strchr(host, '%');
    if (pct)
        *pct = '\0';
    if (inet_pton(AF_INET, host, out->ip) == 1) {
        out->atyp = SFY_ATYP_IPV4;
    } else if (inet_pton(AF_INET6, host, out->ip) == 1) {
        out->atyp = SFY_ATYP_IPV6;
    } else {
        out->atyp = SFY_ATYP_DOMAIN;
        snprintf(out->name, sizeof out->name, "%s", host);
    }
    return 0;
}

/* SOCKS4 cannot carry a name (only 4a can): resolve it locally to IPv4. */
static int resolve_for_socks4(struct sfy_addr *a)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (SFY_REAL(getaddrinfo)(a->name, NULL, &hints, &res) != 0 || !res) {
        errno = EHOSTUNREACH;
        return -1;
    }
    a->atyp = SFY_ATYP_IPV4;
    memcpy(a->ip, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
    SFY_REAL(freeaddrinfo)(res);
    return 0;
}

/* RFC 1928 §3 method negotiation and RFC 1929 §2 sub-negotiation with `hop`. */
static int negotiate5(int fd, const struct sfy_hop *hop, int64_t deadline)
{
    uint8_t msg[600], method = 0;
    uint8_t methods[2] = {SFY_METHOD_NO_AUTH, SFY_METHOD_USERPASS};
    int n = sfy_s5_encode_greeting(msg, sizeof msg, methods, hop->has_user ? 2 : 1);
    if (send_all(fd, msg, (size_t)n, deadline) < 0 ||
        read_message(fd, MSG_METHOD, parse_method, &method, deadline, 0) < 0)
        return -1;
    if (method == SFY_METHOD_NO_AUTH)
        return 0;
    if (method == SFY_METHOD_USERPASS && hop->has_user) {
        int ok = 0;
        n = sfy_s5_encode_userpass(msg, sizeof msg, hop->user, hop->user_len, hop->pass,
                                   hop->pass_len);
        if (n < 0) {
            errno = EINVAL;
            return -1;
        }
        if (send_all(fd, msg, (size_t)n, deadline) < 0 ||
            read_message(fd, MSG_AUTH, parse_auth, &ok, deadline, 0) < 0)
            return -1;
        if (!ok) {
            SFY_ERR("the proxy %s:%u rejected the user name or password", hop->host, hop->port);
            errno = SFY_ERRNO_AUTH_FAILED;
            return -1;
        }
        return 0;
    }
    if (method == SFY_METHOD_NO_ACCEPTABLE) {
        SFY_ERR("the proxy %s:%u accepts none of our authentication methods%s", hop->host,
                hop->port, hop->has_user ? "" : " (does it need a user name?)");
        errno = SFY_ERRNO_NO_ACCEPTABLE_METHOD;
        return -1;
    }
    SFY_INFO("the proxy chose method %u, which we did not offer", method);
    errno = SFY_ERRNO_PROTOCOL;
    return -1;
}

/* Send `cmd` for `target` to `hop` and read its reply. 0 and *reply, or -1/errno. */
static int request(int fd, const struct sfy_hop *hop, uint8_t cmd, const struct sfy_addr *target,
                   struct sfy_reply *reply, int64_t deadline)
{
    uint8_t msg[600];
    char shown[300];
    struct sfy_addr t = *target;
    int n;
    if (hop->version == 5) {
        if (negotiate5(fd, hop, deadline) < 0)
            return -1;
        n = sfy_s5_encode_request(msg, sizeof msg, cmd, &t);
    } else {
        if (t.atyp == SFY_ATYP_IPV6) {
            SFY_ERR("SOCKS4 cannot reach the IPv6 address %s", sfy_addr_str(&t, shown, sizeof shown));
            errno = EAFNOSUPPORT;
            return -1;
        }
        if (t.atyp == SFY_ATYP_DOMAIN && !hop->remote_dns && resolve_for_socks4(&t) < 0)
            return -1;
        n = sfy_s4_encode_request(msg, sizeof msg, cmd, &t, hop->user, hop->user_len);
    }
    if (n < 0) {
        errno = EINVAL;
        return -1;
    }
    if (send_all(fd, msg, (size_t)n, deadline) < 0)
        return -1;
    if (read_message(fd, hop->version == 5 ? MSG_REPLY5 : MSG_REPLY4,
                     hop->version == 5 ? parse_reply5 : parse_reply4, reply, deadline, 1) < 0)
        return -1;
    if (reply->code != (hop->version == 5 ? 0 : SFY_S4_GRANTED)) {
        SFY_INFO("the proxy %s:%u refused %s: reply %u", hop->host, hop->port,
                 sfy_addr_str(target, shown, sizeof shown), reply->code);
        errno = sfy_errno_for_reply(hop->version, reply->code);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ first hop connect */

static int socket_domain(int fd)
{
    int domain = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return -1;
    return domain;
}

/* Put a socket of `family` in fd's place (an AF_INET socket cannot reach an IPv6 proxy). */
static int replace_socket(int fd, int family)
{
    int fdflags = fcntl(fd, F_GETFD);
    int nodelay = 0, keepalive = 0;
    socklen_t len = sizeof nodelay;
    getsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &nodelay, &len);
    len = sizeof keepalive;
    getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, &len);
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    setsockopt(s, IPPROTO_TCP, 1, &nodelay, sizeof nodelay);
    setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &keepalive, sizeof keepalive);
    if (dup3(s, fd, (fdflags >= 0 && (fdflags & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
        SFY_REAL(close)(s);
        return -1;
    }
    SFY_REAL(close)(s);
    return 0;
}

/* One connect attempt to `ss` under the deadline: 0, or -1 with the connect errno.
 * *replaced becomes 1 when fd was replaced by a socket of the proxy's family. The socket's
 * family is asked (SO_DOMAIN) only when the kernel refuses the address for it (EINVAL: a
 * sockaddr_in is too short for an IPv6 socket; EAFNOSUPPORT: a sockaddr_in6 on an IPv4
 * socket; the kernel checks before doing anything): a socket of the proxy's own family,
 * the common case, costs no getsockopt. */
static int connect_one(int fd, struct sockaddr_storage *ss, socklen_t len, int64_t deadline,
                       int *replaced)
{
    int err = 0, rc;
    socklen_t errlen = sizeof err;
    rc = SFY_REAL(connect)(fd, (struct sockaddr *)ss, len);
    if (rc < 0 && (errno == EINVAL || errno == EAFNOSUPPORT)) {
        int refused = errno, domain = socket_domain(fd);
        if (domain == AF_INET6 && ss->ss_family == AF_INET) {
            /* reach an IPv4 proxy from an IPv6 socket through its v4-mapped address */
            struct sockaddr_in in = *(struct sockaddr_in *)ss;
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
            memset(in6, 0, sizeof *in6);
            in6->sin6_family = AF_INET6;
            in6->sin6_port = in.sin_port;
            in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&in6->sin6_addr.s6_addr[12], &in.sin_addr, 4);
            rc = SFY_REAL(connect)(fd, (struct sockaddr *)ss, sizeof *in6);
        } else if (domain == AF_INET && ss->ss_family == AF_INET6) {
            if (replace_socket(fd, AF_INET6) < 0)
                return -1;
            *replaced = 1;
            if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                return -1;
            rc = SFY_REAL(connect)(fd, (struct sockaddr *)ss, len);
        } else {
            errno = refused;
        }
    }
    if (rc == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -1;
    if (wait_fd(fd, POLLOUT, deadline) < 0)
        return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        return -1;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* Connect to the first hop, trying each of its addresses in order (a failed TCP connect
 * leaves the socket unconnected, so it can try again). errno of the last attempt. */
static int connect_first_hop(int fd, int64_t deadline, int *replaced)
{
    struct sockaddr_storage ss[MAX_HOP_ADDRS];
    socklen_t len[MAX_HOP_ADDRS];
    int n = sfy_first_hop_addrs(ss, len, MAX_HOP_ADDRS), err = EHOSTUNREACH;
    for (int i = 0; i < n; i++) {
        if (connect_one(fd, &ss[i], len[i], deadline, replaced) == 0)
            return 0;
        err = errno;
        if (err == ETIMEDOUT)
            break; /* the deadline is spent */
    }
    if (n >= 0)
        errno = err;
    return -1;
}

/* ------------------------------------------------------------ public */

int sfy_chain_open(int fd, uint8_t cmd, const struct sfy_addr *dest, struct sfy_addr *bnd,
                   int64_t deadline)
{
    int saved_flags = fcntl(fd, F_GETFL);
    if (saved_flags < 0)
        return -1;
    return sfy_chain_open_flags(fd, saved_flags, cmd, dest, bnd, deadline);
}

int sfy_chain_open_flags(int fd, int saved_flags, uint8_t cmd, const struct sfy_addr *dest,
                         struct sfy_addr *bnd, int64_t deadline)
{
    struct sfy_reply reply;
    int rc = -1, err = 0, replaced = 0;
    char shown[300];
    if (!(saved_flags & O_NONBLOCK) && fcntl(fd, F_SETFL, saved_flags | O_NONBLOCK) < 0)
        return -1;
    if (connect_first_hop(fd, deadline, &replaced) < 0) {
        err = errno;
        SFY_ERR("cannot reach the proxy %s:%u: %s", sfy_cfg.hops[0].host, sfy_cfg.hops[0].port,
                strerror(err));
        goto out;
    }
    for (size_t i = 0; i < sfy_cfg.n_hops; i++) {
        struct sfy_addr target;
        int last = i + 1 == sfy_cfg.n_hops;
        if (last)
            target = *dest;
        else
            next_hop_addr(i, &target);
        if (request(fd, &sfy_cfg.hops[i], last ? cmd : SFY_CMD_CONNECT, &target, &reply,
                    deadline) < 0) {
            err = errno;
            SFY_INFO("hop %zu (%s:%u) failed for %s: %s", i + 1, sfy_cfg.hops[i].host,
                     sfy_cfg.hops[i].port, sfy_addr_str(&target, shown, sizeof shown),
                     strerror(err));
            goto out;
        }
    }
    if (bnd)
        *bnd = reply.addr;
    SFY_DBG("proxied %s (command %u)", sfy_addr_str(dest, shown, sizeof shown), cmd);
    rc = 0;
out:
    /* the flags we changed, or a socket put in fd's place by replace_socket: restore */
    if (!(saved_flags & O_NONBLOCK) || replaced)
        fcntl(fd, F_SETFL, saved_flags);
    errno = err;
    return rc;
}

int sfy_chain_read_reply(int fd, struct sfy_addr *out, int64_t deadline)
{
    const struct sfy_hop *hop = &sfy_cfg.hops[sfy_cfg.n_hops - 1];
    struct sfy_reply reply;
    int saved_flags = fcntl(fd, F_GETFL), rc = -1, err = 0;
    if (saved_flags < 0)
        return -1;
    if (!(saved_flags & O_NONBLOCK) && fcntl(fd, F_SETFL, saved_flags | O_NONBLOCK) < 0)
        return -1;
    if (read_message(fd, hop->version == 5 ? MSG_REPLY5 : MSG_REPLY4,
                     hop->version == 5 ? parse_reply5 : parse_reply4, &reply, deadline, 1) < 0) {
        err = errno;
        goto out;
    }
    if (reply.code != (hop->version == 5 ? 0 : SFY_S4_GRANTED)) {
        err = sfy_errno_for_reply(hop->version, reply.code);
        goto out;
    }
    *out = reply.addr;
    rc = 0;
out:
    if (!(saved_flags & O_NONBLOCK))
        fcntl(fd, F_SETFL, saved_flags);
    errno = err;
    return rc;
}
