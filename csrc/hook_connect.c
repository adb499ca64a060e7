/*
 * hook_connect.c -- connect(): TCP through the proxy chain, UDP handed to hook_udp.c.
 *
 * Non-blocking sockets: the handshake runs to completion inside this call (poll under the
 * socket's SO_SNDTIMEO, else 30 s); then connect() returns -1 with EINPROGRESS, exactly as
 * the kernel does for a non-blocking TCP connect. The socket is already connected, so the
 * program's poll()/epoll for writability fires at once and SO_ERROR reads 0 (curl, libuv,
 * asyncio, glib all follow that path). A failure is reported right away as the connect()'s
 * own errno, which POSIX allows for non-blocking sockets too. A second connect() on a
 * proxied socket gives EISCONN, as the kernel would.
 */
#include "socksify.h"
#include "bind.h"
#include "udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>

/* Weak default until hook_udp.c provides the UDP ASSOCIATE path: fail closed. */
__attribute__((weak)) int sfy_udp_connect(int fd, const struct sockaddr *addr, socklen_t len,
                                          const struct sfy_addr *dest)
{
    (void)fd, (void)addr, (void)len, (void)dest;
    errno = SFY_ERRNO_UDP_NOT_RELAYABLE;
    return -1;
}

/* The BND address of the reply as the program's socket family (that of the address it
 * connected to) sees it: the getsockname answer. The descriptor may be of the other family
 * by now (an IPv4 socket reaching an IPv6 proxy is replaced by an IPv6 one), so its own
 * answer is used only when the families agree. */
static socklen_t local_from_bnd(int fd, sa_family_t family, const struct sfy_addr *bnd,
                                struct sockaddr_storage *ss)
{
    struct sockaddr_storage mine;
    socklen_t len = sizeof mine;
    if (bnd->atyp == SFY_ATYP_IPV4 && family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        memset(ss, 0, sizeof *ss);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(bnd->port);
        in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&in6->sin6_addr.s6_addr[12], bnd->ip, 4);
        return sizeof *in6;
    }
    if ((bnd->atyp == SFY_ATYP_IPV4 && family == AF_INET) ||
        (bnd->atyp == SFY_ATYP_IPV6 && family == AF_INET6))
        return sfy_addr_to_sockaddr(bnd, ss);
    /* A BND the family cannot express (IPv6 or a name, for an IPv4 socket): the kernel's
     * answer stands if it is of that family, else the family's unspecified address. */
    if (SFY_REAL(getsockname)(fd, (struct sockaddr *)&mine, &len) == 0 && mine.ss_family == family)
        return 0;
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(bnd->port);
        return sizeof *in;
    }
    ((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(bnd->port);
    return sizeof(struct sockaddr_in6);
}

/* connect() logic. Returns 0, or -1 with errno valid for connect(): the errno of the
 * connect to the first hop, the reply's errno (errmap.c), EACCES, EPROTO, ETIMEDOUT,
 * EINPROGRESS (non-blocking success), EISCONN, EPERM / EHOSTUNREACH / ENETUNREACH (denied
 * by sfy_route). */
static int sfy_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct sfy_fdinfo info;
    struct sfy_addr dest, bnd;
    int type, err = 0, flags;
    if (sfy_udp_maybe(fd) && sfy_udp_disconnect(fd, addr))
        return 0; /* a relayed UDP socket "disconnected" (AF_UNSPEC) without the kernel */
    if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return SFY_REAL(connect)(fd, addr, len);
    if (sfy_fd_get(fd, &info) && info.kind == SFY_FD_CONNECT) {
        errno = EISCONN;
        return -1;
    }
    if (info.kind == SFY_FD_BIND)
        sfy_bind_abandon(fd); /* bound to port 0, then connected after all (bind.c) */
    type = sfy_socktype(fd);
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        return SFY_REAL(connect)(fd, addr, len); /* EBADF/ENOTSOCK/raw: libc decides */
    switch (sfy_route(addr, len, type, &dest, &err)) {
    case SFY_PASS:
        return SFY_REAL(connect)(fd, addr, len);
    case SFY_DENY:
        errno = err;
        return -1;
    case SFY_PROXY:
        break;
    }
    if (type == SOCK_DGRAM)
        return sfy_udp_connect(fd, addr, len, &dest);
    flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    if (sfy_chain_open_flags(fd, flags, SFY_CMD_CONNECT, &dest, &bnd, sfy_deadline_for(fd)) < 0) {
        /* errno MUST be a valid connect() error here. Dissolve the connection to the proxy
         * (AF_UNSPEC) so the socket is unconnected again, as after a failed connect. */
        struct sockaddr unspec;
        err = errno;
        memset(&unspec, 0, sizeof unspec);
        unspec.sa_family = AF_UNSPEC;
        SFY_REAL(connect)(fd, &unspec, sizeof unspec);
        errno = err;
        return -1;
    }
    memset(&info, 0, sizeof info);
    info.kind = SFY_FD_CONNECT;
    info.dest = dest;
    info.aux_fd = -1;
    memcpy(&info.peer, addr, len < sizeof info.peer ? len : sizeof info.peer);
    info.peer_len = len < sizeof info.peer ? len : sizeof info.peer;
    info.local_len = local_from_bnd(fd, addr->sa_family, &bnd, &info.local);
    if (sfy_fd_set(fd, &info) < 0)
        SFY_WARN("cannot remember fd %d: getpeername() will show the proxy", fd);
    sfy_last_dest_set(&dest);
    if (flags & O_NONBLOCK) {
        errno = EINPROGRESS;
        return -1;
    }
    return 0;
}

int sfy_tcp_fastopen(int fd, const struct sockaddr *to, socklen_t tolen, int flags)
{
    struct sfy_fdinfo info;
    struct sfy_addr dest;
    int err = 0;
    if (!(flags & MSG_FASTOPEN) || !to || sfy_socktype(fd) != SOCK_STREAM)
        return 1;
    if (sfy_fd_get(fd, &info) && info.kind == SFY_FD_CONNECT)
        return 0; /* already connected through the proxy: the address is ignored */
    switch (sfy_route(to, tolen, SOCK_STREAM, &dest, &err)) {
    case SFY_PASS:
        return 1;
    case SFY_DENY:
        errno = err;
        return -1;
    case SFY_PROXY:
        break;
    }
    if (sfy_connect(fd, to, tolen) == 0 || errno == EINPROGRESS || errno == EISCONN)
        return 0;
    return -1;
}

SFY_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(connect)(fd, addr, len);
    rc = sfy_connect(fd, addr, len);
    sfy_hook_leave();
    return rc;
}
