/*
 * resolve.h -- shared decisions of the resolver hooks (resolve.c).
 */
#ifndef SFY_RESOLVE_H
#define SFY_RESOLVE_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>

enum sfy_name_route {
    SFY_NAME_LIBC = 0,     /* ask the real resolver (numeric, bypassed, remote DNS off) */
    SFY_NAME_PLACEHOLDER,  /* answer with a placeholder of the remote-DNS range */
    SFY_NAME_NONE,         /* no such name (not a name a proxy could be asked for) */
    SFY_NAME_FAIL,         /* no usable configuration: fail closed */
};

enum sfy_reverse_route {
    SFY_REVERSE_LIBC = 0,  /* ask the real resolver */
    SFY_REVERSE_NAME,      /* a placeholder: its name was copied out */
    SFY_REVERSE_NONE,      /* no name (a PTR query would leave the client) */
};

/* 1 for an IPv4 (inet_aton forms) or IPv6 literal (with an optional %zone). */
int sfy_is_numeric_host(const char *name);
enum sfy_name_route sfy_name_route(const char *name);
/* Placeholder for name: 0 and 4 (AF_INET) or 16 (AF_INET6) bytes in ip; -1 with errno
 * (EAFNOSUPPORT: no IPv6 range, ENOSPC: map full, ENOMEM: no map). */
int sfy_name_placeholder(const char *name, int family, uint8_t *ip);
/* Both placeholders of name from its one map slot (an AF_UNSPEC lookup): 0, 4 bytes in ip4
 * and, when SOCKSIFY_DNS_RANGE has an IPv6 part (*has6 = 1), 16 bytes in ip6; -1 with errno
 * as above. */
int sfy_name_placeholders(const char *name, uint8_t *ip4, uint8_t *ip6, int *has6);
/* Reverse lookup decision for ip (family AF_INET/AF_INET6). */
int sfy_reverse_route(int family, const uint8_t *ip, char *name, size_t cap);
/* Lay out a hostent for one address in buf: 0, or ERANGE when buflen is too small. */
int sfy_fill_hostent(struct hostent *he, char *buf, size_t buflen, const char *name,
                     int family, const uint8_t *ip);

/* hook_getaddrinfo.c: getaddrinfo() as the hook answers it (placeholder, libc or failure),
 * for a caller inside the hook guard (hook_getaddrinfo_a.c). */
int sfy_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res);
/* hook_getaddrinfo.c: lists it built. sfy_gai_release() returns 1 (and frees) for one of
 * ours, 0 for a list libc built. */
int sfy_gai_release(struct addrinfo *res);

#endif
