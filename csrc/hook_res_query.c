/*
 * hook_res_query.c -- the raw resolver API (res_query, res_search, res_querydomain,
 * res_send and their res_n* forms, each also under its old __res_* name, which binaries
 * built against glibc < 2.34 reference). In remote-DNS mode these would send DNS packets
 * from the client, so they fail (h_errno NO_RECOVERY, errno ECONNREFUSED) unless the name
 * is in SOCKSIFY_NO_PROXY; res_send/res_nsend (a ready packet) only with NO_PROXY "*".
 * With remote DNS off they are libc's. libc's own getaddrinfo does not come through here.
 */
#include "socksify.h"

#include "resolve.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <resolv.h>

/* 1 when a query for `name` (NULL: a prebuilt packet) must be refused. */
static int blocked(const char *name)
{
    int block;
    if (!sfy_hook_enter())
        return 0;
    if (!name)
        block = sfy_cfg.valid ? sfy_cfg.remote_dns && !sfy_cfg.no_proxy.everything : 1;
    else
        block = sfy_name_route(name) != SFY_NAME_LIBC;
    if (block)
        SFY_ERR("refusing a raw DNS query%s%s: remote DNS is on (the proxy resolves names)",
                name ? " for " : "", name ? name : "");
    sfy_hook_leave();
    return block;
}

static int refuse(res_state statp)
{
    if (statp)
        statp->res_h_errno = NO_RECOVERY;
    h_errno = NO_RECOVERY;
    errno = ECONNREFUSED;
    return -1;
}

/* Real functions by name: resolved once (dlsym), optional (NULL gives ENOSYS). */
#define REAL_OR_FAIL(type, name, ...)                                                     \
    do {                                                                                  \
        static type real;                                                                 \
        if (!real)                                                                        \
            real = (type)sfy_dlsym_next(name);                                            \
        if (!real) {                                                                      \
            errno = ENOSYS;                                                               \
            return -1;                                                                    \
        }                                                                                 \
        return real(__VA_ARGS__);                                                         \
    } while (0)

typedef int (*query_fn)(const char *, int, int, unsigned char *, int);
typedef int (*querydomain_fn)(const char *, const char *, int, int, unsigned char *, int);
typedef int (*send_fn)(const unsigned char *, int, unsigned char *, int);
typedef int (*nquery_fn)(res_state, const char *, int, int, unsigned char *, int);
typedef int (*nquerydomain_fn)(res_state, const char *, const char *, int, int,
                               unsigned char *, int);
typedef int (*nsend_fn)(res_state, const unsigned char *, int, unsigned char *, int);

SFY_EXPORT int res_query(const char *dname, int class, int type, unsigned char *answer,
                         int anslen)
{
    if (blocked(dname))
        return refuse(NULL);
    REAL_OR_FAIL(query_fn, "res_query", dname, class, type, answer, anslen);
}

SFY_EXPORT int res_search(const char *dname, int class, int type, unsigned char *answer,
                          int anslen)
{
    if (blocked(dname))
        return refuse(NULL);
    REAL_OR_FAIL(query_fn, "res_search", dname, class, type, answer, anslen);
}

SFY_EXPORT int res_querydomain(const char *name, const char *domain, int class, int type,
                               unsigned char *answer, int anslen)
{
    if (blocked(name))
        return refuse(NULL);
    REAL_OR_FAIL(querydomain_fn, "res_querydomain", name, domain, class, type, answer, anslen);
}

SFY_EXPORT int res_send(const unsigned char *msg, int msglen, unsigned char *answer,
                        int anslen)
{
    if (blocked(NULL))
        return refuse(NULL);
    REAL_OR_FAIL(send_fn, "res_send", msg, msglen, answer, anslen);
}

SFY_EXPORT int res_nquery(res_state statp, const char *dname, int class, int type,
                          unsigned char *answer, int anslen)
{
    if (blocked(dname))
        return refuse(statp);
    REAL_OR_FAIL(nquery_fn, "res_nquery", statp, dname, class, type, answer, anslen);
}

SFY_EXPORT int res_nsearch(res_state statp, const char *dname, int class, int type,
                           unsigned char *answer, int anslen)
{
    if (blocked(dname))
        return refuse(statp);
    REAL_OR_FAIL(nquery_fn, "res_nsearch", statp, dname, class, type, answer, anslen);
}

SFY_EXPORT int res_nquerydomain(res_state statp, const char *name, const char *domain,
                                int class, int type, unsigned char *answer, int anslen)
{
    if (blocked(name))
        return refuse(statp);
    REAL_OR_FAIL(nquerydomain_fn, "res_nquerydomain", statp, name, domain, class, type,
                 answer, anslen);
}

SFY_EXPORT int res_nsend(res_state statp, const unsigned char *msg, int msglen,
                         unsigned char *answer, int anslen)
{
    if (blocked(NULL))
        return refuse(statp);
    REAL_OR_FAIL(nsend_fn, "res_nsend", statp, msg, msglen, answer, anslen);
}

/* The names binaries linked against glibc < 2.34 use (resolv.h #defined them). */
SFY_EXPORT extern __typeof__(res_query) __res_query __attribute__((alias("res_query"), copy(res_query)));
SFY_EXPORT extern __typeof__(res_search) __res_search __attribute__((alias("res_search"), copy(res_search)));
SFY_EXPORT extern __typeof__(res_querydomain) __res_querydomain
    __attribute__((alias("res_querydomain"), copy(res_querydomain)));
SFY_EXPORT extern __typeof__(res_send) __res_send __attribute__((alias("res_send"), copy(res_send)));
SFY_EXPORT extern __typeof__(res_nquery) __res_nquery __attribute__((alias("res_nquery"), copy(res_nquery)));
SFY_EXPORT extern __typeof__(res_nsearch) __res_nsearch __attribute__((alias("res_nsearch"), copy(res_nsearch)));
SFY_EXPORT extern __typeof__(res_nquerydomain) __res_nquerydomain
    __attribute__((alias("res_nquerydomain"), copy(res_nquerydomain)));
SFY_EXPORT extern __typeof__(res_nsend) __res_nsend __attribute__((alias("res_nsend"), copy(res_nsend)));
