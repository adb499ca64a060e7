/*
 * hook_sendto.c -- sendto(): datagrams to proxied destinations go through the SOCKS5 UDP
 * relay (udp.c). A sendto() without an address on a socket that is not a relayed UDP socket
 * never leaves the fast path.
 *
 * TCP Fast Open: sendto(MSG_FASTOPEN, address) on a TCP socket makes the KERNEL connect
 * (directly). sfy_tcp_fastopen() (hook_connect.c) turns that into a proxied connect first;
 * the data then goes out as a plain send on the tunnel, without the address or the flag.
 */
#include "socksify.h"
#include "udp.h"

SFY_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                          const struct sockaddr *to, socklen_t tolen)
{
    struct iovec iov;
    ssize_t rc;
    if (!to && !sfy_udp_maybe(fd))
        return SFY_REAL(sendto)(fd, buf, len, flags, to, tolen);
    if (!sfy_hook_enter())
        return SFY_REAL(sendto)(fd, buf, len, flags, to, tolen);
    if (flags & MSG_FASTOPEN) {
        int tfo = sfy_tcp_fastopen(fd, to, tolen, flags);
        if (tfo <= 0) {
            rc = tfo < 0 ? -1 : SFY_REAL(sendto)(fd, buf, len, flags & ~MSG_FASTOPEN, NULL, 0);
            sfy_hook_leave();
            return rc;
        }
    }
    iov.iov_base = (void *)buf;
    iov.iov_len = len;
    rc = sfy_udp_send(fd, &iov, 1, flags, to, tolen, NULL);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(sendto)(fd, buf, len, flags, to, tolen);
    sfy_hook_leave();
    return rc;
}
