/*
 * resolve.c -- the decisions behind the resolver hooks (getaddrinfo, gethostbyname*,
 * gethostbyaddr*, getnameinfo, res_*) in remote-DNS mode (socks4a, socks5h).
 *
 * Rules (SPEC.md "Remote DNS"; design of the map: dnsmap.c):
 * - Remote DNS off (socks4, socks5: the client resolves): every call goes to libc.
 * - No usable configuration: names fail (EAI_FAIL / NO_RECOVERY), since we cannot know
 *   whether resolving locally would leak; numeric hosts still work.
 * - Numeric hosts (IPv4 in any inet_aton form, IPv6, with AI_NUMERICHOST) go to libc:
 *   nothing to resolve.
 * - Names in SOCKSIFY_NO_PROXY, and "localhost" names (RFC 6761 §6.3: always loopback,
 *   answered from /etc/hosts), go to libc: those connections are direct anyway.
 * - Every other name gets placeholder addresses from the map: IPv4 for AF_INET, IPv6 for
 *   AF_INET6, and for AF_UNSPEC the IPv4 one first, then the IPv6 one (when the range has
 *   an IPv6 part); both come from the name's one slot, so either maps back to the name.
 *   connect()/sendto()/BIND send the name to the proxy.
 * - Reverse lookups: a placeholder gives its name back; any other address of a proxied
 *   destination has no name (PTR queries would leave the client).
 */
#include "socksify.h"

#include "resolve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <strings.h>

int sfy_is_numeric_host(const char *name)
{
    struct in_addr a4;
    uint8_t a6[16];
    char buf[64];
    if (inet_aton(name, &a4))
        return 1;
    snprintf(buf, sizeof buf, "%s", name);
    char *pct = strchr(buf, '%');
    if (pct)
        *pct = '\0';
    return inet_pton(AF_INET6, buf, a6) == 1;
}

/* RFC 6761 §6.3: "localhost." and names under it are loopback. */
static int is_localhost(const char *name)
{
    size_t n = strlen(name);
    if (n && name[n - 1] == '.')
        n--;
    if (n == 9 && strncasecmp(name, "localhost", 9) == 0)
        return 1;
    return n > 10 && strncasecmp(name + n - 10, ".localhost", 10) == 0;
}

/* A name the proxy could be asked for: 1..255 bytes of printable, non-space ASCII (the
 * wire form; IDNA encoding of other names is the program's business, as with DNS). */
static int plausible_name(const char *name)
{
    size_t n = strnlen(name, 256);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 0x7F)
            return 0;
    }
    return 1;
}

enum sfy_name_route sfy_name_route(const char *name)
{
    if (!name)
        return SFY_NAME_LIBC;
    if (sfy_is_numeric_host(name))
        return SFY_NAME_LIBC;
    if (!sfy_cfg.valid) {
        SFY_ERR("refusing to resolve %s: %s", name, sfy_cfg.error);
        return SFY_NAME_FAIL;
    }
    if (!sfy_cfg.remote_dns)
        return SFY_NAME_LIBC;
    if (is_localhost(name) || sfy_noproxy_match_name(&sfy_cfg.no_proxy, name)) {
        SFY_DBG("resolving %s locally (bypassed)", name);
        return SFY_NAME_LIBC;
    }
    if (!plausible_name(name))
        return SFY_NAME_NONE;
    return SFY_NAME_PLACEHOLDER;
}

/* The map slot of name: 0 and *slot, or -1 with errno (ENOMEM: no map, ENOSPC: full). */
static int name_slot(const char *name, uint32_t *slot)
{
    struct sfy_dnsmap *map = sfy_map_get();
    if (!map) {
        errno = ENOMEM;
        return -1;
    }
    if (sfy_dnsmap_intern(map, name, slot) < 0) {
        if (errno == ENOSPC)
            SFY_ERR("remote DNS map full (%u names): cannot resolve %s",
                    sfy_dnsmap_capacity(map), name);
        return -1;
    }
    SFY_DBG("%s -> placeholder slot %u", name, *slot);
    return 0;
}

/* The placeholder of `slot` in net: 0, or -1 with errno ENOSPC when net cannot number it. */
static int slot_ip(const struct sfy_net *net, uint32_t slot, uint8_t *ip)
{
    if (slot >= sfy_range_slots(net, UINT32_MAX)) {
        errno = ENOSPC;
        return -1;
    }
    sfy_placeholder_ip(net, slot, ip);
    return 0;
}

int sfy_name_placeholder(const char *name, int family, uint8_t *ip)
{
    uint32_t slot;
    const struct sfy_net *net = family == AF_INET6 ? &sfy_cfg.dns6 : &sfy_cfg.dns4;
    if (!net->family) {
        errno = EAFNOSUPPORT;
        return -1;
    }
    if (name_slot(name, &slot) < 0)
        return -1;
    return slot_ip(net, slot, ip);
}

int sfy_name_placeholders(const char *name, uint8_t *ip4, uint8_t *ip6, int *has6)
{
    uint32_t slot;
    /* one slot names both addresses (dnsmap.c): one lookup never takes two */
    if (name_slot(name, &slot) < 0 || slot_ip(&sfy_cfg.dns4, slot, ip4) < 0)
        return -1;
    *has6 = sfy_cfg.dns6.family != 0;
    if (*has6 && slot_ip(&sfy_cfg.dns6, slot, ip6) < 0)
        return -1;
    return 0;
}

int sfy_reverse_route(int family, const uint8_t *ip, char *name, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct sfy_addr a;
    int found;
    if (!sfy_cfg.valid || !sfy_cfg.remote_dns)
        return SFY_REVERSE_LIBC;
    memset(&a, 0, sizeof a);
    a.atyp = family == AF_INET ? SFY_ATYP_IPV4 : SFY_ATYP_IPV6;
    memcpy(a.ip, ip, family == AF_INET ? 4 : 16);
    len = sfy_addr_to_sockaddr(&a, &ss);
    found = sfy_placeholder_name((struct sockaddr *)&ss, len, name, cap);
    if (found > 0)
        return SFY_REVERSE_NAME;
    if (found < 0)
        return SFY_REVERSE_NONE;
    if (sfy_noproxy_match_ip(&sfy_cfg.no_proxy, family, ip))
        return SFY_REVERSE_LIBC;
    return SFY_REVERSE_NONE;
}

int sfy_fill_hostent(struct hostent *he, char *buf, size_t buflen, const char *name,
                     int family, const uint8_t *ip)
{
    size_t alen = family == AF_INET ? 4 : 16, nlen = strlen(name) + 1;
    uintptr_t start = (uintptr_t)buf, aligned = (start + sizeof(char *) - 1) & ~(uintptr_t)(sizeof(char *) - 1);
    size_t pad = (size_t)(aligned - start);
    size_t need = pad + 3 * sizeof(char *) + alen + nlen;
    char **ptrs;
    if (buflen < need)
        return ERANGE;
    ptrs = (char **)(buf + pad);
    char *addr = (char *)(ptrs + 3);
    char *copy = addr + alen;
    memcpy(addr, ip, alen);
    memcpy(copy, name, nlen);
    ptrs[0] = NULL;  /* h_aliases */
    ptrs[1] = addr;  /* h_addr_list */
    ptrs[2] = NULL;
    he->h_name = copy;
    he->h_aliases = &ptrs[0];
    he->h_addrtype = family;
    he->h_length = (int)alen;
    he->h_addr_list = &ptrs[1];
    return 0;
}
