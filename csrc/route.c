/*
 * route.c -- which destinations go through the proxy (torsocks' tsocks_validate_socket
 * idea as one named decision, STYLE.md §5 "Decide the route up front").
 *
 * Rules, in order (SPEC.md "What goes through the proxy"):
 *   1. Not AF_INET/AF_INET6 (Unix sockets, netlink...): PASS.
 *   2. No usable proxy configuration: DENY with ENETUNREACH, logged once (fail closed).
 *   3. A placeholder of the remote-DNS range: the name it stands for is the destination;
 *      one nobody handed out: DENY with EHOSTUNREACH (never sent anywhere).
 *   4. The first hop itself (the program talks to the proxy directly): PASS.
 *   5. NO_PROXY matches the address: PASS. Loopback is proxied unless listed (SPEC).
 *   6. Remote DNS on and port 53: DENY with EPERM (raw resolver traffic never leaves the
 *      client; list the server in SOCKSIFY_NO_PROXY to allow it).
 *   7. Everything else: PROXY.
 */
#include "socksify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int sfy_addr_from_sockaddr(struct sfy_addr *out, const struct sockaddr *sa, socklen_t len)
{
    memset(out, 0, sizeof *out);
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->atyp = SFY_ATYP_IPV4;
        memcpy(out->ip, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *ip = (const uint8_t *)&in6->sin6_addr;
        if (memcmp(ip, v4mapped_prefix, 12) == 0) {
            out->atyp = SFY_ATYP_IPV4;
            memcpy(out->ip, ip + 12, 4);
        } else {
            out->atyp = SFY_ATYP_IPV6;
            memcpy(out->ip, ip, 16);
        }
        out->port = ntohs(in6->sin6_port);
        return 0;
    }
    return -1;
}

socklen_t sfy_addr_to_sockaddr(const struct sfy_addr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->atyp == SFY_ATYP_IPV4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, a->ip, 4);
        return sizeof *in;
    }
    if (a->atyp == SFY_ATYP_IPV6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        memcpy(&in6->sin6_addr, a->ip, 16);
        return sizeof *in6;
    }
    return 0;
}

int sfy_socktype(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -1;
    return type;
}

int sfy_placeholder_name(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
    struct sfy_addr a;
    const struct sfy_net *net;
    const struct sfy_dnsmap *map;
    uint32_t slot;
    int family;
    if (!sfy_cfg.remote_dns || sfy_addr_from_sockaddr(&a, sa, len) < 0)
        return 0;
    family = a.atyp == SFY_ATYP_IPV4 ? AF_INET : AF_INET6;
    net = family == AF_INET ? &sfy_cfg.dns4 : &sfy_cfg.dns6;
    if (!sfy_placeholder_slot(net, family, a.ip, &slot))
        return 0;
    /* no map yet (it is made with the first name, resolve.c): nobody handed this one out */
    map = sfy_map_peek();
    return map && sfy_dnsmap_lookup(map, slot, out, cap) ? 1 : -1;
}

/* Log the configuration error once per process (the first refused call). */
static void log_not_configured(void)
{
    static int logged;
    if (!__atomic_exchange_n(&logged, 1, __ATOMIC_ACQ_REL))
        SFY_ERR("refusing network access: %s", sfy_cfg.error);
}

/* 1 when a is one of the first hop's own addresses (the program talking to the proxy). */
static int is_first_hop(const struct sfy_addr *a)
{
    struct sockaddr_storage ss[4];
    socklen_t len[4];
    int n = sfy_first_hop_addrs(ss, len, 4);
    for (int i = 0; i < n; i++) {
        struct sfy_addr hop;
        if (sfy_addr_from_sockaddr(&hop, (struct sockaddr *)&ss[i], len[i]) == 0 &&
            hop.atyp == a->atyp && hop.port == a->port &&
            memcmp(hop.ip, a->ip, a->atyp == SFY_ATYP_IPV4 ? 4 : 16) == 0)
            return 1;
    }
    return 0;
}

enum sfy_route sfy_route(const struct sockaddr *addr, socklen_t len, int socktype,
                         struct sfy_addr *dest, int *err)
{
    char buf[300];
    int found;
    if (!addr || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return SFY_PASS;
    if (sfy_addr_from_sockaddr(dest, addr, len) < 0)
        return SFY_PASS; /* short sockaddr: let libc report EINVAL */
    if (!sfy_cfg.valid) {
        log_not_configured();
        *err = SFY_ERRNO_NOT_CONFIGURED;
        return SFY_DENY;
    }
    found = sfy_placeholder_name(addr, len, dest->name, sizeof dest->name);
    if (found < 0) {
        SFY_ERR("refusing %s: a remote-DNS placeholder this process tree never handed out",
                sfy_addr_str(dest, buf, sizeof buf));
        *err = SFY_ERRNO_UNKNOWN_PLACEHOLDER;
        return SFY_DENY;
    }
    if (found) {
        dest->atyp = SFY_ATYP_DOMAIN;
        memset(dest->ip, 0, sizeof dest->ip);
        if (sfy_noproxy_match_name(&sfy_cfg.no_proxy, dest->name)) {
            /* cannot happen for names resolved after init (they resolve for real) */
            SFY_ERR("refusing %s: bypassed name behind a placeholder",
                    sfy_addr_str(dest, buf, sizeof buf));
            *err = SFY_ERRNO_UNKNOWN_PLACEHOLDER;
            return SFY_DENY;
        }
    } else {
        if (socktype == SOCK_STREAM && is_first_hop(dest)) {
            SFY_DBG("direct: %s is the proxy itself", sfy_addr_str(dest, buf, sizeof buf));
            return SFY_PASS;
        }
        if (sfy_noproxy_match_ip(&sfy_cfg.no_proxy, dest->atyp == SFY_ATYP_IPV4 ? AF_INET
                                                                                 : AF_INET6,
                                 dest->ip)) {
            SFY_DBG("direct: %s is in the no-proxy list", sfy_addr_str(dest, buf, sizeof buf));
            return SFY_PASS;
        }
    }
    if (sfy_cfg.remote_dns && dest->port == 53) {
        SFY_ERR("refusing DNS traffic to %s: remote DNS is on (add the server to "
                "SOCKSIFY_NO_PROXY to allow it)", sfy_addr_str(dest, buf, sizeof buf));
        *err = EPERM;
        return SFY_DENY;
    }
    return SFY_PROXY;
}
