/*
 * hook_listen.c -- listen(): a SOCKS BIND socket starts "listening" at the proxy; an unbound
 * socket may become one here (rule and mechanism: bind.c).
 */
#include "bind.h"
#include "socksify.h"

SFY_EXPORT int listen(int fd, int backlog)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(listen)(fd, backlog);
    rc = sfy_listen(fd, backlog);
    sfy_hook_leave();
    return rc;
}
