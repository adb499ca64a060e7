/*
 * hook_recvfrom.c -- recvfrom(): on a relayed UDP socket, unwrap the SOCKS5 UDP header and
 * report the real remote as the source (udp.c).
 */
#include "socksify.h"
#include "udp.h"

SFY_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                            socklen_t *fromlen)
{
    struct iovec iov;
    struct msghdr msg = {0};
    ssize_t rc;
    if (!sfy_udp_maybe(fd) || !sfy_hook_enter())
        return SFY_REAL(recvfrom)(fd, buf, len, flags, from, fromlen);
    iov.iov_base = buf;
    iov.iov_len = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (from && fromlen) {
        msg.msg_name = from;
        msg.msg_namelen = *fromlen;
    }
    rc = sfy_udp_recv(fd, &msg, flags);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(recvfrom)(fd, buf, len, flags, from, fromlen);
    else if (rc >= 0 && from && fromlen)
        *fromlen = msg.msg_namelen;
    sfy_hook_leave();
    return rc;
}
