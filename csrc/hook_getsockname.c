/*
 * hook_getsockname.c -- getsockname() on a proxied socket gives the BND address of the
 * proxy's reply (SPEC: what the peer sees). For SOCKS BIND that is the address the proxy
 * listens on (hook_bind.c fills local/local_len from the first reply).
 */
#include "socksify.h"

#include <errno.h>
#include <string.h>

static int sfy_getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct sfy_fdinfo info;
    if (sfy_fd_get(fd, &info) && info.kind != SFY_FD_INTERNAL && info.local_len > 0) {
        if (!addr || !len) {
            errno = EFAULT;
            return -1;
        }
        memcpy(addr, &info.local, *len < info.local_len ? *len : info.local_len);
        *len = info.local_len;
        return 0;
    }
    return SFY_REAL(getsockname)(fd, addr, len);
}

SFY_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(getsockname)(fd, addr, len);
    rc = sfy_getsockname(fd, addr, len);
    sfy_hook_leave();
    return rc;
}
