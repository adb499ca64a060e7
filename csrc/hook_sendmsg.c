/*
 * hook_sendmsg.c -- sendmsg() and sendmmsg() through the SOCKS5 UDP relay (udp.c).
 *
 * TCP Fast Open (MSG_FASTOPEN with msg_name on a TCP socket) is a connect in disguise:
 * sfy_tcp_fastopen() (hook_connect.c) connects through the proxy first, then the message
 * goes out without its address and without the flag (as in hook_sendto.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg, recvmmsg, struct mmsghdr */
#endif
#include "socksify.h"
#include "udp.h"

#include <errno.h>

/* sendmsg() logic: payload bytes sent, -1 errno, or SFY_UDP_NOT_MINE. */
static ssize_t sfy_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if ((flags & MSG_FASTOPEN) && msg->msg_name) {
        struct msghdr plain;
        int tfo = sfy_tcp_fastopen(fd, (const struct sockaddr *)msg->msg_name,
                                   msg->msg_namelen, flags);
        if (tfo < 0)
            return -1;
        if (tfo == 0) {
            plain = *msg;
            plain.msg_name = NULL;
            plain.msg_namelen = 0;
            return SFY_REAL(sendmsg)(fd, &plain, flags & ~MSG_FASTOPEN);
        }
    }
    return sfy_udp_send(fd, msg->msg_iov, (size_t)msg->msg_iovlen, flags,
                        (const struct sockaddr *)msg->msg_name, msg->msg_namelen, msg);
}

SFY_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    ssize_t rc;
    if (!msg || (!msg->msg_name && !sfy_udp_maybe(fd)))
        return SFY_REAL(sendmsg)(fd, msg, flags);
    if (!sfy_hook_enter())
        return SFY_REAL(sendmsg)(fd, msg, flags);
    rc = sfy_sendmsg(fd, msg, flags);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(sendmsg)(fd, msg, flags);
    sfy_hook_leave();
    return rc;
}

/* sendmmsg() is a loop of sendmsg(): returns the number of messages sent (msg_len filled);
 * -1 with errno only when the first one fails (sendmmsg(2)). */
SFY_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    int any_named = 0;
    unsigned int i;
    if (!SFY_REAL(sendmmsg)) {
        errno = ENOSYS;
        return -1;
    }
    for (i = 0; vec && i < vlen; i++)
        any_named |= vec[i].msg_hdr.msg_name != NULL;
    if (!vec || vlen == 0 || (!any_named && !sfy_udp_maybe(fd)))
        return sfy_real.sendmmsg(fd, vec, vlen, flags);
    if (!sfy_hook_enter())
        return sfy_real.sendmmsg(fd, vec, vlen, flags);
    for (i = 0; i < vlen; i++) {
        ssize_t rc = sfy_sendmsg(fd, &vec[i].msg_hdr, flags);
        if (rc == SFY_UDP_NOT_MINE)
            rc = sfy_real.sendmsg(fd, &vec[i].msg_hdr, flags);
        if (rc < 0)
            break;
        vec[i].msg_len = (unsigned int)rc;
    }
    sfy_hook_leave();
    return i > 0 ? (int)i : -1;
}
