/*
 * hook_bind.c -- bind(): a TCP socket bound to port 0 after a proxied connection becomes a
 * SOCKS BIND (rule and mechanism: bind.c).
 */
#include "bind.h"
#include "socksify.h"

SFY_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(bind)(fd, addr, len);
    rc = sfy_bind(fd, addr, len);
    sfy_hook_leave();
    return rc;
}
