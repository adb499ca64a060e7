/*
 * hook_recvmsg.c -- recvmsg() and recvmmsg() on relayed UDP sockets (udp.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg, recvmmsg, struct mmsghdr */
#endif
#include "socksify.h"
#include "udp.h"

#include <errno.h>

SFY_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    ssize_t rc;
    if (!msg || !sfy_udp_maybe(fd) || !sfy_hook_enter())
        return SFY_REAL(recvmsg)(fd, msg, flags);
    rc = sfy_udp_recv(fd, msg, flags);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(recvmsg)(fd, msg, flags);
    sfy_hook_leave();
    return rc;
}

/* recvmmsg() as a loop of recvmsg(). MSG_WAITFORONE makes every message after the first
 * non-blocking, as recvmmsg(2) says. Limitation: the timeout argument is ignored on relayed
 * sockets (it is only checked between datagrams by the kernel anyway, see BUGS in
 * recvmmsg(2)). Returns the number received, or -1 with errno when the first one fails. */
SFY_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags,
                        struct timespec *timeout)
{
    unsigned int i;
    if (!SFY_REAL(recvmmsg)) {
        errno = ENOSYS;
        return -1;
    }
    if (!vec || vlen == 0 || !sfy_udp_maybe(fd) || !sfy_hook_enter())
        return sfy_real.recvmmsg(fd, vec, vlen, flags, timeout);
    for (i = 0; i < vlen; i++) {
        int f = flags & ~MSG_WAITFORONE;
        ssize_t rc;
        if (i > 0 && (flags & MSG_WAITFORONE))
            f |= MSG_DONTWAIT;
        rc = sfy_udp_recv(fd, &vec[i].msg_hdr, f);
        if (rc == SFY_UDP_NOT_MINE) {
            sfy_hook_leave();
            return sfy_real.recvmmsg(fd, vec, vlen, flags, timeout);
        }
        if (rc < 0)
            break;
        vec[i].msg_len = (unsigned int)rc;
    }
    sfy_hook_leave();
    if (i == 0)
        return -1;
    return (int)i;
}
