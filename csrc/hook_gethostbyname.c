/*
 * hook_gethostbyname.c -- gethostbyname(), gethostbyname2(), gethostbyname_r(),
 * gethostbyname2_r(): the legacy forward lookups, answered like getaddrinfo() (resolve.c).
 * One family per file: the four share one implementation.
 *
 * The non-reentrant forms return thread-local storage (glibc's is process-wide static; a
 * per-thread buffer is at least as safe for callers).
 */
#include "socksify.h"

#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>

/* Answer a forward lookup into (he, buf). Returns 0 with *result = he or NULL (then
 * *herr says why), ERANGE when buf is too small, or -1 when libc must answer. */
static int lookup(const char *name, int af, struct hostent *he, char *buf, size_t buflen,
                  struct hostent **result, int *herr)
{
    uint8_t ip[16];
    *result = NULL;
    if (af != AF_INET && af != AF_INET6)
        return -1;
    switch (sfy_name_route(name)) {
    case SFY_NAME_LIBC:
        return -1;
    case SFY_NAME_NONE:
        *herr = HOST_NOT_FOUND;
        return 0;
    case SFY_NAME_FAIL:
        *herr = NO_RECOVERY;
        return 0;
    case SFY_NAME_PLACEHOLDER:
        break;
    }
    if (sfy_name_placeholder(name, af, ip) < 0) {
        *herr = errno == EAFNOSUPPORT ? NO_ADDRESS : NO_RECOVERY;
        return 0;
    }
    if (sfy_fill_hostent(he, buf, buflen, name, af, ip) != 0) {
        *herr = NETDB_INTERNAL;
        return ERANGE;
    }
    *herr = 0;
    *result = he;
    return 0;
}

static __thread struct hostent tls_he;
static __thread char tls_buf[512] __attribute__((aligned(16)));

static struct hostent *by_name2(const char *name, int af, int *used_libc)
{
    struct hostent *result;
    int herr = 0;
    int rc = lookup(name, af, &tls_he, tls_buf, sizeof tls_buf, &result, &herr);
    *used_libc = rc < 0;
    if (rc >= 0 && !result)
        h_errno = herr;
    return result;
}

SFY_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    struct hostent *he;
    int libc;
    if (!sfy_hook_enter())
        return SFY_REAL(gethostbyname2)(name, af);
    he = by_name2(name, af, &libc);
    sfy_hook_leave();
    return libc ? SFY_REAL(gethostbyname2)(name, af) : he;
}

SFY_EXPORT struct hostent *gethostbyname(const char *name)
{
    struct hostent *he;
    int libc;
    if (!sfy_hook_enter())
        return SFY_REAL(gethostbyname)(name);
    he = by_name2(name, AF_INET, &libc);
    sfy_hook_leave();
    return libc ? SFY_REAL(gethostbyname)(name) : he;
}

SFY_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf,
                                size_t buflen, struct hostent **result, int *h_errnop)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
    rc = lookup(name, af, ret, buf, buflen, result, h_errnop);
    sfy_hook_leave();
    if (rc >= 0 && !*result)
        h_errno = *h_errnop; /* as glibc: callers (CPython) read h_errno */
    if (rc < 0)
        return SFY_REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
    return rc;
}

SFY_EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
                               struct hostent **result, int *h_errnop)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
    rc = lookup(name, AF_INET, ret, buf, buflen, result, h_errnop);
    sfy_hook_leave();
    if (rc >= 0 && !*result)
        h_errno = *h_errnop;
    if (rc < 0)
        return SFY_REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
    return rc;
}
