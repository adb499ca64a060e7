/*
 * udp.c -- UDP datagrams relayed by SOCKS5 UDP ASSOCIATE (RFC 1928 §4 "UDP ASSOCIATE", §7).
 *
 * Rules of this module:
 *
 * - Which datagrams: those a SOCK_DGRAM AF_INET/AF_INET6 socket sends to a destination
 *   sfy_route() says SFY_PROXY for. PASS destinations (NO_PROXY, Unix sockets) go to libc
 *   untouched; DENY fails the call with route's errno.
 * - Only a single SOCKS5 hop can relay UDP: with a SOCKS4/4a proxy or a chain of more than
 *   one hop, a proxied datagram (or connect()) fails with EPERM (SPEC), never goes direct.
 * - The association is made on the first proxied datagram of a socket: a new internal TCP
 *   control connection (aux_fd of the socket's fdtable entry) sends UDP ASSOCIATE with
 *   DST 0.0.0.0:0 ("if the client is not in possession of the information at the time of
 *   the UDP ASSOCIATE, the client MUST use a port number and address of all zeros", §6).
 *   The reply's BND address is the relay (0.0.0.0 there means the proxy's own address). A
 *   control connection the proxy has closed is noticed on the next send, and a new
 *   association is made.
 * - Sending: the §7 header (codec.c) is put in front of the caller's iovec and the datagram
 *   goes to the relay with one sendmsg(); the caller's ancillary data and flags are kept.
 *   The return value counts payload bytes only.
 * - Receiving: a datagram from the relay is unwrapped and reported as coming from the
 *   address in its header (the real remote). FRAG != 0 and malformed headers are dropped
 *   ("an implementation that does not support fragmentation MUST drop any datagram whose
 *   FRAG field is other than X'00'"). A datagram that did not come from the relay is
 *   delivered only when its source is in the bypass list (NO_PROXY); otherwise dropped. On a
 *   "connected" socket only datagrams from the connected destination are delivered (kernel
 *   semantics), and they are reported as coming from the address given to connect().
 * - Names (remote DNS): a datagram sent to a placeholder carries the name in its header. The
 *   relay answers with the resolved IP, so an answer from the port of the name last sent to
 *   is reported as coming from that name's placeholder (the address the program used).
 * - connect() records the default destination (and getpeername's answer) without
 *   connecting the kernel socket, which must stay free to talk to the relay.
 * - The payload room is the caller's buffer; the header needs up to 262 more bytes, so the
 *   datagram is read into a scratch buffer and copied out (MSG_TRUNC semantics preserved).
 *
 * Thread safety: fdtable holds the per-socket state; `assoc_lock` serialises the creation
 * of associations so two threads' first datagrams make one association. `sfy_udp_maybe_fd` is a
 * lock-free hint table for the data-path hooks.
 */
#include "udp.h"
#include "socksify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h> /* IOV_MAX */
#include <sys/uio.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum udp_state_bits {
    UDP_CONNECTED = 1,  /* connect() named a proxied default destination (dest, peer) */
    UDP_ASSOCIATED = 2, /* aux_fd is the control connection, relay is set */
};

/* RFC 1928 §7 header: 2 RSV + FRAG + ATYP + (1 + 255 name) + 2 port */
#define UDP_HEADER_MAX 262
#define UDP_PAYLOAD_MAX 65535

unsigned char sfy_udp_maybe_fd[SFY_UDP_FAST_FDS];
int sfy_udp_any;
static pthread_mutex_t assoc_lock = PTHREAD_MUTEX_INITIALIZER;

/* sfy_udp_maybe() is inline in udp.h: the data-path hooks' one memory load. */

static void hint_set(int fd, unsigned char on)
{
    if (on)
        __atomic_store_n(&sfy_udp_any, 1, __ATOMIC_RELAXED);
    if (fd >= 0 && fd < SFY_UDP_FAST_FDS)
        __atomic_store_n(&sfy_udp_maybe_fd[fd], on, __ATOMIC_RELAXED);
}

/* fd's entry when it is a UDP one (1), else 0 (and the stale hint is cleared). */
static int udp_entry(int fd, struct sfy_fdinfo *info)
{
    if (sfy_fd_get(fd, info) && info->kind == SFY_FD_UDP)
        return 1;
    hint_set(fd, 0);
    return 0;
}

/* 0 when UDP can be relayed with this configuration, else -1 errno EPERM (SPEC). */
static int check_relayable(void)
{
    if (sfy_cfg.n_hops == 1 && sfy_cfg.hops[0].version == 5)
        return 0;
    SFY_ERR("UDP cannot be relayed: %s", sfy_cfg.n_hops != 1
                                             ? "a chain of more than one hop"
                                             : "SOCKS4 has no UDP ASSOCIATE");
    errno = SFY_ERRNO_UDP_NOT_RELAYABLE;
    return -1;
}

static int socket_family(int fd)
{
    int family = 0;
    socklen_t len = sizeof family;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0)
        return -1;
    return family;
}

/* An IP sfy_addr as a sockaddr of `family` (IPv4 as ::ffff:a.b.c.d in AF_INET6): length,
 * or 0 when it cannot be expressed. */
static socklen_t addr_for_family(const struct sfy_addr *a, int family,
                                 struct sockaddr_storage *ss)
{
    socklen_t len;
    if (a->atyp == SFY_ATYP_IPV4 && family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        memset(ss, 0, sizeof *ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        s6->sin6_addr.s6_addr[10] = 0xff;
        s6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&s6->sin6_addr.s6_addr[12], a->ip, 4);
        return sizeof *s6;
    }
    len = sfy_addr_to_sockaddr(a, ss);
    if (len && ss->ss_family != family)
        return 0;
    return len;
}

/* 1 when two IP sockaddrs name the same address and port (IPv4-mapped == IPv4). */
static int same_endpoint(const struct sockaddr *a, socklen_t alen, const struct sockaddr *b,
                         socklen_t blen)
{
    struct sfy_addr x, y;
    if (sfy_addr_from_sockaddr(&x, a, alen) != 0 || sfy_addr_from_sockaddr(&y, b, blen) != 0)
        return 0;
    return x.atyp == y.atyp && x.port == y.port &&
           memcmp(x.ip, y.ip, x.atyp == SFY_ATYP_IPV4 ? 4 : 16) == 0;
}

static int same_addr(const struct sfy_addr *x, const struct sfy_addr *y)
{
    if (x->atyp != y->atyp || x->port != y->port)
        return 0;
    if (x->atyp == SFY_ATYP_DOMAIN)
        return strcmp(x->name, y->name) == 0;
    return memcmp(x->ip, y->ip, x->atyp == SFY_ATYP_IPV4 ? 4 : 16) == 0;
}

/* 1 when a datagram's source is in the bypass list (it may reach the program directly) */
static int from_bypassed(const struct sockaddr *sa, socklen_t len)
{
    struct sfy_addr a;
    if (sfy_addr_from_sockaddr(&a, sa, len) != 0)
        return 0;
    return sfy_noproxy_match_ip(&sfy_cfg.no_proxy, a.atyp == SFY_ATYP_IPV4 ? AF_INET : AF_INET6,
                                a.ip);
}

/* 1 when the control connection is still open and quiet (the proxy sends nothing on it;
 * readable means EOF, an error or garbage: the association is over). */
static int control_alive(int ctrl)
{
    struct pollfd p = {ctrl, POLLIN, 0};
    int rc = poll(&p, 1, 0);
    return rc == 0;
}

/* Drop the association of `info` (locked by caller): close the control connection. */
static void drop_association(int fd, struct sfy_fdinfo *info)
{
    if (info->aux_fd >= 0) {
        sfy_fd_mark_internal(info->aux_fd, 0);
        SFY_REAL(close)(info->aux_fd);
    }
    info->aux_fd = -1;
    info->state &= ~UDP_ASSOCIATED;
    info->relay_len = 0;
    sfy_fd_set(fd, info);
}

/*
 * Make sure fd has a live association; fill *info with its entry. Returns 0, or -1 with
 * SPEC's errno (proxy unreachable: the connect errno; refused: the reply's errno; EPERM
 * when UDP cannot be relayed or the relay's address does not fit the socket's family).
 */
static int ensure_association(int fd, struct sfy_fdinfo *info)
{
    struct sfy_addr any, bnd;
    char shown[300];
    int ctrl, family, saved;

    if (sfy_fd_get(fd, info) && info->kind == SFY_FD_UDP && (info->state & UDP_ASSOCIATED) &&
        control_alive(info->aux_fd))
        return 0;
    if (check_relayable() != 0)
        return -1;
    family = socket_family(fd);
    if (family != AF_INET && family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return -1;
    }

    pthread_mutex_lock(&assoc_lock);
    if (!sfy_fd_get(fd, info) || info->kind != SFY_FD_UDP) {
        memset(info, 0, sizeof *info);
        info->kind = SFY_FD_UDP;
        info->aux_fd = -1;
    }
    if (info->state & UDP_ASSOCIATED) {
        if (control_alive(info->aux_fd)) {
            pthread_mutex_unlock(&assoc_lock);
            return 0;
        }
        SFY_INFO("fd %d: the proxy ended the UDP association; making a new one", fd);
        drop_association(fd, info);
    }

    ctrl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ctrl < 0)
        goto fail;
    if (sfy_fd_mark_internal(ctrl, 1) != 0)
        goto fail_ctrl;
    memset(&any, 0, sizeof any);
    any.atyp = SFY_ATYP_IPV4; /* 0.0.0.0:0, RFC 1928 §6 */
    if (sfy_chain_open(ctrl, SFY_CMD_UDP_ASSOCIATE, &any, &bnd, sfy_deadline_for(fd)) != 0)
        goto fail_ctrl;
    if (bnd.atyp != SFY_ATYP_DOMAIN &&
        memcmp(bnd.ip, any.ip, bnd.atyp == SFY_ATYP_IPV4 ? 4 : 16) == 0) {
        /* unspecified relay address: the relay is on the proxy's own address */
        struct sockaddr_storage proxy;
        socklen_t plen = sizeof proxy;
        uint16_t port = bnd.port;
        if (SFY_REAL(getpeername)(ctrl, (struct sockaddr *)&proxy, &plen) != 0 ||
            sfy_addr_from_sockaddr(&bnd, (struct sockaddr *)&proxy, plen) != 0)
            goto fail_ctrl;
        bnd.port = port;
    }
    info->relay_len = addr_for_family(&bnd, family, &info->relay);
    if (info->relay_len == 0) {
        SFY_ERR("UDP relay %s cannot be reached from this socket's address family",
                sfy_addr_str(&bnd, shown, sizeof shown));
        errno = SFY_ERRNO_UDP_NOT_RELAYABLE;
        goto fail_ctrl;
    }
    info->aux_fd = ctrl;
    info->state |= UDP_ASSOCIATED;
    if (sfy_fd_set(fd, info) != 0)
        goto fail_ctrl;
    hint_set(fd, 1);
    pthread_mutex_unlock(&assoc_lock);
    SFY_INFO("fd %d: UDP ASSOCIATE, relay %s", fd, sfy_addr_str(&bnd, shown, sizeof shown));
    return 0;

fail_ctrl:
    /* errno MUST be SPEC's errno for the failure before reaching this label */
    saved = errno;
    sfy_fd_mark_internal(ctrl, 0);
    SFY_REAL(close)(ctrl);
    errno = saved;
fail:
    saved = errno;
    pthread_mutex_unlock(&assoc_lock);
    errno = saved;
    return -1;
}

/*
 * connect() of a UDP socket to a proxied destination (hook_connect.c routed it): only
 * recorded, as the default destination and getpeername's answer; the kernel socket stays
 * unconnected so it can talk to the relay. Returns 0, or -1 with errno EPERM (UDP cannot be
 * relayed) or ENOMEM.
 */
int sfy_udp_connect(int fd, const struct sockaddr *addr, socklen_t len,
                    const struct sfy_addr *dest)
{
    struct sfy_fdinfo info;
    if (check_relayable() != 0)
        return -1;
    if (!udp_entry(fd, &info)) {
        memset(&info, 0, sizeof info);
        info.kind = SFY_FD_UDP;
        info.aux_fd = -1;
    }
    info.state |= UDP_CONNECTED;
    info.dest = *dest;
    info.peer_len = len < sizeof info.peer ? len : sizeof info.peer;
    memcpy(&info.peer, addr, info.peer_len);
    if (sfy_fd_set(fd, &info) != 0)
        return -1;
    hint_set(fd, 1);
    return 0;
}

/*
 * Any connect() on a UDP socket replaces its default destination: forget the recorded one
 * (hook_connect.c calls this first; a proxied destination is then recorded again). Returns
 * 1 when the call is complete: connect(AF_UNSPEC) on a relayed socket whose kernel socket
 * was never connected must not reach the kernel, because Linux then also drops the
 * automatically bound local port, and the relay only accepts the port it first saw.
 */
int sfy_udp_disconnect(int fd, const struct sockaddr *addr)
{
    struct sfy_fdinfo info;
    struct sockaddr_storage kernel_peer;
    socklen_t plen = sizeof kernel_peer;
    if (!udp_entry(fd, &info))
        return 0;
    if (info.state & UDP_CONNECTED) {
        info.state &= ~UDP_CONNECTED;
        info.peer_len = 0;
        memset(&info.dest, 0, sizeof info.dest);
        sfy_fd_set(fd, &info);
    }
    return addr && addr->sa_family == AF_UNSPEC && (info.state & UDP_ASSOCIATED) &&
           SFY_REAL(getpeername)(fd, (struct sockaddr *)&kernel_peer, &plen) != 0 &&
           errno == ENOTCONN;
}

void sfy_udp_adopt(int fd)
{
    hint_set(fd, 1);
}

ssize_t sfy_udp_send(int fd, const struct iovec *iov, size_t iovlen, int flags,
                     const struct sockaddr *to, socklen_t tolen, const struct msghdr *control)
{
    struct sfy_fdinfo info;
    struct sfy_addr dest;
    struct iovec stack_iov[16], *out = stack_iov;
    struct msghdr m;
    uint8_t header[UDP_HEADER_MAX];
    int hlen, err = 0, tracked = udp_entry(fd, &info);
    ssize_t sent;

    if (!to) {
        if (!tracked || !(info.state & UDP_CONNECTED))
            return SFY_UDP_NOT_MINE; /* the kernel answers (EDESTADDRREQ, ENOTCONN...) */
        dest = info.dest;
    } else {
        if (!tracked && sfy_socktype(fd) != SOCK_DGRAM)
            return SFY_UDP_NOT_MINE;
        switch (sfy_route(to, tolen, SOCK_DGRAM, &dest, &err)) {
        case SFY_PASS:
            return SFY_UDP_NOT_MINE;
        case SFY_DENY:
            errno = err;
            return -1;
        case SFY_PROXY:
            break;
        }
    }
    if (iovlen >= IOV_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (ensure_association(fd, &info) != 0)
        return -1;
    if (to && !(info.state & UDP_CONNECTED) && !same_addr(&dest, &info.dest)) {
        /* the last destination: a name's answer is reported under the name; after a send
         * to an address, what comes back is reported as it is (not as the name's) */
        info.dest = dest;
        sfy_fd_set(fd, &info);
    }
    hlen = sfy_udp_encode_header(header, sizeof header, 0, &dest);
    if (hlen < 0) {
        errno = EINVAL;
        return -1;
    }
    if (iovlen + 1 > sizeof stack_iov / sizeof stack_iov[0]) {
        out = malloc((iovlen + 1) * sizeof *out);
        if (!out) {
            errno = ENOMEM;
            return -1;
        }
    }
    out[0].iov_base = header;
    out[0].iov_len = (size_t)hlen;
    if (iovlen)
        memcpy(out + 1, iov, iovlen * sizeof *iov);
    memset(&m, 0, sizeof m);
    m.msg_name = &info.relay;
    m.msg_namelen = info.relay_len;
    m.msg_iov = out;
    m.msg_iovlen = iovlen + 1;
    if (control) {
        m.msg_control = control->msg_control;
        m.msg_controllen = control->msg_controllen;
    }
    sent = SFY_REAL(sendmsg)(fd, &m, flags);
    if (out != stack_iov) {
        int saved = errno;
        free(out);
        errno = saved;
    }
    if (sent < 0)
        return -1;
    return sent >= hlen ? sent - hlen : 0;
}

/* Copy len bytes of src into the iovec; returns the bytes copied. */
static size_t scatter(const struct iovec *iov, size_t iovlen, const uint8_t *src, size_t len)
{
    size_t done = 0;
    for (size_t i = 0; i < iovlen && done < len; i++) {
        size_t n = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
        if (n)
            memcpy(iov[i].iov_base, src + done, n);
        done += n;
    }
    return done;
}

/* The source to report for a datagram whose header names `src`: an IP as a sockaddr of
 * the socket's family; a name as its remote-DNS placeholder when there is a map. */
static socklen_t report_source(const struct sfy_addr *src, int family,
                               struct sockaddr_storage *out)
{
    if (src->atyp == SFY_ATYP_DOMAIN) {
        struct sfy_addr ph = *src;
        const struct sfy_net *net = family == AF_INET6 && sfy_cfg.dns6.family
                                        ? &sfy_cfg.dns6 : &sfy_cfg.dns4;
        uint32_t slot;
        struct sfy_dnsmap *map = sfy_map_get();
        if (!map || sfy_dnsmap_intern(map, src->name, &slot) != 0)
            return 0;
        ph.atyp = net->family == AF_INET6 ? SFY_ATYP_IPV6 : SFY_ATYP_IPV4;
        sfy_placeholder_ip(net, slot, ph.ip);
        return addr_for_family(&ph, family, out);
    }
    return addr_for_family(src, family, out);
}

ssize_t sfy_udp_recv(int fd, struct msghdr *msg, int flags)
{
    struct sfy_fdinfo info;
    struct sockaddr_storage from, source;
    socklen_t source_len;
    struct msghdr m;
    struct iovec scratch_iov;
    struct sfy_addr src;
    uint8_t *scratch, frag;
    size_t room = 0, cap, got, copied, payload;
    ssize_t n;
    int hlen, saved;

    if (!udp_entry(fd, &info) || !(info.state & UDP_ASSOCIATED))
        return SFY_UDP_NOT_MINE;
    for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++)
        room += msg->msg_iov[i].iov_len;
    cap = (room < UDP_PAYLOAD_MAX ? room : UDP_PAYLOAD_MAX) + UDP_HEADER_MAX;
    scratch = malloc(cap);
    if (!scratch) {
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        memset(&m, 0, sizeof m);
        scratch_iov.iov_base = scratch;
        scratch_iov.iov_len = cap;
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &scratch_iov;
        m.msg_iovlen = 1;
        m.msg_control = msg->msg_control;
        m.msg_controllen = msg->msg_controllen;
        /* MSG_TRUNC: the kernel returns the full datagram length (udp(7)) */
        n = SFY_REAL(recvmsg)(fd, &m, flags | MSG_TRUNC);
        if (n < 0)
            goto out;
        got = (size_t)n < cap ? (size_t)n : cap;
        if (!same_endpoint((struct sockaddr *)&from, m.msg_namelen,
                           (struct sockaddr *)&info.relay, info.relay_len)) {
            /* not from the relay: only a bypassed (NO_PROXY) source may talk to us
             * directly, and never to a socket "connected" through the relay */
            if ((info.state & UDP_CONNECTED) || !from_bypassed((struct sockaddr *)&from,
                                                               m.msg_namelen))
                goto drop;
            payload = (size_t)n;
            copied = scatter(msg->msg_iov, (size_t)msg->msg_iovlen, scratch, got);
            source = from;
            source_len = m.msg_namelen;
            break;
        }
        hlen = sfy_udp_parse_header(scratch, got, &src, &frag);
        if (hlen < 0 || frag != 0) {
            SFY_DBG("fd %d: dropped a relayed datagram (%s)", fd,
                    hlen < 0 ? "malformed header" : "fragment");
            goto drop;
        }
        if ((info.state & UDP_CONNECTED) && info.dest.atyp != SFY_ATYP_DOMAIN &&
            !same_addr(&src, &info.dest))
            goto drop;
        payload = (size_t)n - (size_t)hlen;
        copied = scatter(msg->msg_iov, (size_t)msg->msg_iovlen, scratch + hlen,
                         got - (size_t)hlen);
        if (info.state & UDP_CONNECTED) {
            source = info.peer;
            source_len = info.peer_len;
        } else if (info.dest.atyp == SFY_ATYP_DOMAIN && src.atyp != SFY_ATYP_DOMAIN &&
                   src.port == info.dest.port) {
            /* the answer to the name we last sent to: report that name's placeholder, so
             * the program sees the address it sent to (the relay names the resolved IP) */
            src = info.dest;
            source_len = report_source(&src, info.relay.ss_family, &source);
        } else {
            source_len = report_source(&src, info.relay.ss_family, &source);
        }
        break;
    drop:
        if (flags & MSG_PEEK) /* consume the datagram we only peeked at */
            SFY_REAL(recvfrom)(fd, scratch, 1, (flags & ~MSG_PEEK) | MSG_DONTWAIT, NULL, NULL);
    }
    if (msg->msg_name) {
        socklen_t len = msg->msg_namelen < source_len ? msg->msg_namelen : source_len;
        memcpy(msg->msg_name, &source, len);
        msg->msg_namelen = source_len;
    }
    msg->msg_controllen = m.msg_controllen;
    msg->msg_flags = m.msg_flags & ~MSG_TRUNC;
    if (payload > copied)
        msg->msg_flags |= MSG_TRUNC;
    n = (flags & MSG_TRUNC) ? (ssize_t)payload : (ssize_t)copied;
out:
    saved = errno;
    free(scratch);
    errno = saved;
    return n;
}
