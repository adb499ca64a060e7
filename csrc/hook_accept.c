/*
 * hook_accept.c -- accept() and accept4(): on a SOCKS BIND socket, the connection the proxy
 * accepted for us (second BIND reply); everything else goes to libc (bind.c).
 */
#include "bind.h"
#include "socksify.h"

#include <errno.h>

SFY_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(accept)(fd, addr, len);
    rc = sfy_accept(fd, addr, len, 0, 0);
    sfy_hook_leave();
    return rc;
}

SFY_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int rc;
    if (!SFY_REAL(accept4)) {
        errno = ENOSYS;
        return -1;
    }
    if (!sfy_hook_enter())
        return sfy_real.accept4(fd, addr, len, flags);
    rc = sfy_accept(fd, addr, len, flags, 1);
    sfy_hook_leave();
    return rc;
}
