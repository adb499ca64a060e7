/*
 * hook_getpeername.c -- getpeername() on a proxied socket gives the destination the program
 * asked for (SPEC), not the proxy. Entries come from fdtable.c (peer/peer_len), filled by
 * hook_connect.c, hook_bind.c (the accepted peer) and hook_udp.c.
 */
#include "socksify.h"

#include <errno.h>
#include <string.h>

/* Copy a stored address with getpeername()'s truncation rule (*len gets the full size). */
static int copy_out(const struct sockaddr_storage *ss, socklen_t ss_len, struct sockaddr *addr,
                    socklen_t *len)
{
    if (!addr || !len) {
        errno = EFAULT;
        return -1;
    }
    memcpy(addr, ss, *len < ss_len ? *len : ss_len);
    *len = ss_len;
    return 0;
}

static int sfy_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct sfy_fdinfo info;
    if (sfy_fd_get(fd, &info) && info.kind != SFY_FD_INTERNAL && info.peer_len > 0)
        return copy_out(&info.peer, info.peer_len, addr, len);
    if (info.kind == SFY_FD_BIND) {
        /* a SOCKS BIND "listener" is the control connection to the proxy underneath */
        errno = ENOTCONN;
        return -1;
    }
    return SFY_REAL(getpeername)(fd, addr, len);
}

SFY_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(getpeername)(fd, addr, len);
    rc = sfy_getpeername(fd, addr, len);
    sfy_hook_leave();
    return rc;
}
