/*
 * hook_getaddrinfo.c -- getaddrinfo(): placeholders for names the proxy resolves
 * (RFC 3089 §3 step 2; rules in resolve.c).
 *
 * The lists built here have glibc's own layout (each node one malloc block: the addrinfo
 * followed by its sockaddr; ai_canonname a separate malloc), so even a free through the
 * real freeaddrinfo would be correct. hook_freeaddrinfo.c still frees them itself: their
 * heads are kept in a small lock-free registry.
 */
#include "socksify.h"

#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_SIZE 1024
static struct addrinfo *registry[REGISTRY_SIZE];

static void remember(struct addrinfo *res)
{
    for (size_t i = 0; i < REGISTRY_SIZE; i++) {
        struct addrinfo *expected = NULL;
        if (__atomic_compare_exchange_n(&registry[i], &expected, res, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return;
    }
    /* full (a program keeping > 1024 lists): the glibc-compatible layout still frees fine */
}

static void free_list(struct addrinfo *res)
{
    while (res) {
        struct addrinfo *next = res->ai_next;
        free(res->ai_canonname);
        free(res);
        res = next;
    }
}

int sfy_gai_release(struct addrinfo *res)
{
    if (!res)
        return 0;
    for (size_t i = 0; i < REGISTRY_SIZE; i++) {
        struct addrinfo *expected = res;
        if (__atomic_load_n(&registry[i], __ATOMIC_ACQUIRE) == res &&
            __atomic_compare_exchange_n(&registry[i], &expected, NULL, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            free_list(res);
            return 1;
        }
    }
    return 0;
}

struct node {
    struct addrinfo ai;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } sa;
};

/* The port of `service` for protocol "tcp"/"udp": 0 and *port, or an EAI_* code. */
static int service_port(const char *service, int flags, const char *proto, uint16_t *port)
{
    char *end;
    unsigned long v;
    if (!service || !*service) {
        *port = 0;
        return 0;
    }
    v = strtoul(service, &end, 10);
    if (*end == '\0') {
        if (v > 65535)
            return EAI_SERVICE;
        *port = (uint16_t)v;
        return 0;
    }
    if (flags & AI_NUMERICSERV)
        return EAI_NONAME;
    struct servent se, *found = NULL;
    char buf[1024];
    if (getservbyname_r(service, proto, &se, buf, sizeof buf, &found) != 0 || !found)
        return EAI_SERVICE;
    *port = ntohs((uint16_t)found->s_port);
    return 0;
}

/* The placeholder addresses a lookup of `family` answers, in order: 0 and *count entries
 * of out (family, 4 or 16 bytes), or an EAI_* code. AF_UNSPEC: IPv4 first (a program
 * taking the first address behaves as with IPv4 only), then IPv6 when the range has an
 * IPv6 part. AI_ADDRCONFIG is ignored: the proxy, not this host, reaches the name. */
struct placeholder {
    int family;
    uint8_t ip[16];
};

static int placeholder_addresses(const char *node, int family, int flags,
                                 struct placeholder out[2], int *count)
{
    int has6;
    *count = 1;
    switch (family) {
    case AF_UNSPEC:
        if (sfy_name_placeholders(node, out[0].ip, out[1].ip, &has6) < 0)
            return EAI_MEMORY;
        out[0].family = AF_INET;
        out[1].family = AF_INET6;
        *count = has6 ? 2 : 1;
        return 0;
    case AF_INET:
        out[0].family = AF_INET;
        return sfy_name_placeholder(node, AF_INET, out[0].ip) < 0 ? EAI_MEMORY : 0;
    case AF_INET6:
        out[0].family = AF_INET6;
        if (sfy_name_placeholder(node, AF_INET6, out[0].ip) == 0)
            return 0;
        /* no IPv6 range: with AI_V4MAPPED, the IPv4 placeholder as ::ffff:a.b.c.d */
        if (errno == EAFNOSUPPORT && (flags & AI_V4MAPPED) &&
            sfy_name_placeholder(node, AF_INET, out[0].ip + 12) == 0) {
            memset(out[0].ip, 0, 10);
            out[0].ip[10] = out[0].ip[11] = 0xff;
            return 0;
        }
        return errno == EAFNOSUPPORT ? EAI_NONAME : EAI_MEMORY;
    default:
        return EAI_FAMILY;
    }
}

/* Build the answer for a placeholder. 0 and *res, or an EAI_* code. The socktype and
 * protocol rules make the same entries for each family; AI_CANONNAME names the first. */
static int placeholder_answer(const char *node, const char *service,
                              const struct addrinfo *hints, struct addrinfo **res)
{
    static const struct { int socktype, protocol; const char *proto; } kinds[] = {
        {SOCK_STREAM, IPPROTO_TCP, "tcp"},
        {SOCK_DGRAM, IPPROTO_UDP, "udp"},
    };
    int flags = hints ? hints->ai_flags : 0;
    int family = hints ? hints->ai_family : AF_UNSPEC;
    int want_type = hints ? hints->ai_socktype : 0;
    int want_proto = hints ? hints->ai_protocol : 0;
    struct placeholder addrs[2];
    int n_addrs;
    struct addrinfo *head = NULL, **tail = &head;
    int rc = placeholder_addresses(node, family, flags, addrs, &n_addrs);
    if (rc)
        return rc;
    rc = EAI_SERVICE;
    for (int a = 0; a < n_addrs; a++) {
        int out_family = addrs[a].family;
        const uint8_t *ip = addrs[a].ip;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            uint16_t port;
            int socktype = kinds[k].socktype, protocol = kinds[k].protocol;
            if (want_type && want_type != socktype) {
                if (k == 0 && want_type != SOCK_STREAM && want_type != SOCK_DGRAM) {
                    socktype = want_type; /* SOCK_RAW & co: one entry, the caller's protocol */
                    protocol = want_proto;
                } else {
                    continue;
                }
            } else if (!want_type && want_proto && want_proto != protocol) {
                continue;
            }
            int err = service_port(service, flags, kinds[k].proto, &port);
            if (err) {
                if (err != EAI_SERVICE)
                    rc = err;
                continue;
            }
            struct node *n = calloc(1, sizeof *n);
            if (!n) {
                free_list(head);
                return EAI_MEMORY;
            }
            n->ai.ai_family = out_family;
            n->ai.ai_socktype = socktype;
            n->ai.ai_protocol = protocol;
            n->ai.ai_addr = (struct sockaddr *)&n->sa;
            if (out_family == AF_INET) {
                n->sa.v4.sin_family = AF_INET;
                n->sa.v4.sin_port = htons(port);
                memcpy(&n->sa.v4.sin_addr, ip, 4);
                n->ai.ai_addrlen = sizeof n->sa.v4;
            } else {
                n->sa.v6.sin6_family = AF_INET6;
                n->sa.v6.sin6_port = htons(port);
                memcpy(&n->sa.v6.sin6_addr, ip, 16);
                n->ai.ai_addrlen = sizeof n->sa.v6;
            }
            if (!head && (flags & AI_CANONNAME)) {
                n->ai.ai_canonname = strdup(node);
                if (!n->ai.ai_canonname) {
                    free(n);
                    return EAI_MEMORY;
                }
            }
            *tail = &n->ai;
            tail = &n->ai.ai_next;
            if (socktype != kinds[k].socktype)
                break; /* the single SOCK_RAW-style entry */
        }
    }
    SFY_DBG("getaddrinfo(%s, %s, family %d, type %d, flags 0x%x): %d placeholder famil%s%s",
            node, service ? service : "-", family, want_type, flags, n_addrs,
            n_addrs == 1 ? "y" : "ies", head ? "" : " (no entry)");
    if (!head)
        return rc;
    remember(head);
    *res = head;
    return 0;
}

/* Returns 0 or an EAI_* code, as getaddrinfo(3). */
int sfy_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    if (!node || (hints && (hints->ai_flags & AI_NUMERICHOST)))
        return SFY_REAL(getaddrinfo)(node, service, hints, res);
    switch (sfy_name_route(node)) {
    case SFY_NAME_LIBC:
        return SFY_REAL(getaddrinfo)(node, service, hints, res);
    case SFY_NAME_NONE:
        return EAI_NONAME;
    case SFY_NAME_FAIL:
        return EAI_FAIL;
    case SFY_NAME_PLACEHOLDER:
        break;
    }
    return placeholder_answer(node, service, hints, res);
}

SFY_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                           struct addrinfo **res)
{
    int rc;
    if (!sfy_hook_enter())
        return SFY_REAL(getaddrinfo)(node, service, hints, res);
    rc = sfy_getaddrinfo(node, service, hints, res);
    sfy_hook_leave();
    return rc;
}
