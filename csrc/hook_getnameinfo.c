/*
 * hook_getnameinfo.c -- getnameinfo(): a placeholder's host part is its name; in remote-DNS
 * mode other proxied addresses get their numeric form (a PTR query would leave the client),
 * or EAI_NONAME with NI_NAMEREQD. The service part is always libc's (/etc/services).
 */
#include "socksify.h"

#include "resolve.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int sfy_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                           socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
    char name[256];
    const uint8_t *ip;
    int family, rc;
    if (!sa || !host || !hostlen || (flags & NI_NUMERICHOST))
        return SFY_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
    if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        family = AF_INET;
        ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        family = AF_INET6;
        ip = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    } else {
        return SFY_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
    }
    switch (sfy_reverse_route(family, ip, name, sizeof name)) {
    case SFY_REVERSE_LIBC:
        return SFY_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
    case SFY_REVERSE_NONE:
        if (flags & NI_NAMEREQD)
            return EAI_NONAME;
        return SFY_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen,
                                     flags | NI_NUMERICHOST);
    case SFY_REVERSE_NAME:
        break;
    }
    if (strlen(name) >= hostlen)
        return EAI_OVERFLOW;
    if (serv && servlen) {
        rc = SFY_REAL(getnameinfo)(sa, salen, NULL, 0, serv, servlen, flags);
        if (rc != 0)
            return rc;
    }
    memcpy(host, name, strlen(name) + 1);
    return 0;
}

SFY_EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                           socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
    rc = sfy_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
    sfy_hook_leave();
    return rc;
}
