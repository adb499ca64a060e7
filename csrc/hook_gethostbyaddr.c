/*
 * hook_gethostbyaddr.c -- gethostbyaddr(), gethostbyaddr_r(): a placeholder gives its name
 * back (SPEC "Reverse lookups of a placeholder give the name back"); in remote-DNS mode any
 * other proxied address has no name, because a PTR query would leave the client.
 */
#include "socksify.h"

#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>

/* 0 with *result set or NULL (*herr), ERANGE, or -1 when libc must answer. */
static int reverse(const void *addr, socklen_t len, int type, struct hostent *he, char *buf,
                   size_t buflen, struct hostent **result, int *herr)
{
    char name[256];
    *result = NULL;
    if (!addr || !((type == AF_INET && len == 4) || (type == AF_INET6 && len == 16)))
        return -1;
    switch (sfy_reverse_route(type, addr, name, sizeof name)) {
    case SFY_REVERSE_LIBC:
        return -1;
    case SFY_REVERSE_NONE:
        *herr = HOST_NOT_FOUND;
        return 0;
    case SFY_REVERSE_NAME:
        break;
    }
    if (sfy_fill_hostent(he, buf, buflen, name, type, addr) != 0) {
        *herr = NETDB_INTERNAL;
        return ERANGE;
    }
    *herr = 0;
    *result = he;
    return 0;
}

static __thread struct hostent tls_he;
static __thread char tls_buf[512] __attribute__((aligned(16)));

SFY_EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
    struct hostent *result;
    int herr = 0, rc;
    if (!sfy_hook_enter())
        return SFY_REAL(gethostbyaddr)(addr, len, type);
    rc = reverse(addr, len, type, &tls_he, tls_buf, sizeof tls_buf, &result, &herr);
    sfy_hook_leave();
    if (rc < 0)
        return SFY_REAL(gethostbyaddr)(addr, len, type);
    if (!result)
        h_errno = herr;
    return result;
}

SFY_EXPORT int gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret,
                               char *buf, size_t buflen, struct hostent **result, int *h_errnop)
{
    int rc;
    if (!sfy_hook_enter() ) {
        if (!SFY_REAL(gethostbyaddr_r))
            return ENOSYS;
        return SFY_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
    }
    rc = reverse(addr, len, type, ret, buf, buflen, result, h_errnop);
    sfy_hook_leave();
    if (rc >= 0 && !*result)
        h_errno = *h_errnop; /* as glibc: callers (CPython) read h_errno */
    if (rc < 0) {
        if (!SFY_REAL(gethostbyaddr_r))
            return ENOSYS;
        return SFY_REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
    }
    return rc;
}
