/*
 * hook_freeaddrinfo.c -- freeaddrinfo(): lists hook_getaddrinfo.c built are freed here,
 * every other list by libc.
 */
#include "socksify.h"

#include "resolve.h"

SFY_EXPORT void freeaddrinfo(struct addrinfo *res)
{
    /* no init needed: the registry is static memory; never re-entered into libc twice */
    if (!sfy_gai_release(res))
        SFY_REAL(freeaddrinfo)(res);
}
