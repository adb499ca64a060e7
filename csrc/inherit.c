/*
 * inherit.c -- proxied TCP connections survive exec.
 *
 * exec() replaces the image and with it the fd table (fdtable.c), so an inherited proxied
 * socket would show the proxy to getpeername(). The exec hooks (hook_exec.c) therefore pass
 * the entries of SFY_FD_CONNECT fds that are NOT close-on-exec in one variable:
 *
 *     SOCKSIFY_INHERIT=FD:INODE:PEER:LOCAL:ATYP.PORT.DEST;...
 *
 * PEER and LOCAL are the raw sockaddr bytes (what getpeername / getsockname answer) in hex,
 * LOCAL empty when the kernel's answer stands; DEST is the SOCKS destination (IP bytes or
 * the remote-DNS name) in hex, so no byte of a name can break the syntax. The new image's
 * constructor (init.c) restores each entry only when FD is still that socket: a stream
 * socket with the same inode, still connected (posix_spawn file actions or the program may
 * have closed or replaced it). Only connected TCP tunnels travel: BIND listeners and UDP
 * associations depend on control connections and state that do not.
 *
 * Cost: nothing for a process that never proxied a connection (sfy_fd_limit() is 0). The
 * encoder never allocates and never changes the table (sfy_fd_peek): it may run in a
 * vfork() child (CPython's subprocess), whose memory is the parent's.
 */
#include "socksify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char hexdigits[] = "0123456789abcdef";

/* Append the hex of n bytes at *pos (bounded by end): 0, or -1 when it does not fit. */
static int put_hex(char **pos, char *end, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    size_t i;
    if ((size_t)(end - *pos) < 2 * n)
        return -1;
    for (i = 0; i < n; i++) {
        *(*pos)++ = hexdigits[b[i] >> 4];
        *(*pos)++ = hexdigits[b[i] & 15];
    }
    return 0;
}

static int put_text(char **pos, char *end, const char *fmt, unsigned long a, unsigned long b)
{
    int n = snprintf(*pos, (size_t)(end - *pos), fmt, a, b);
    if (n < 0 || n >= end - *pos)
        return -1;
    *pos += n;
    return 0;
}

static int put_char(char **pos, char *end, char c)
{
    if (*pos == end)
        return -1;
    *(*pos)++ = c;
    return 0;
}

/* The length of a stored address worth carrying: an IPv4 / IPv6 sockaddr's own size (the
 * program may have passed a larger buffer to connect), 0 for anything else. */
static size_t carried_len(const struct sockaddr_storage *ss, socklen_t len)
{
    if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in))
        return sizeof(struct sockaddr_in);
    if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
        return sizeof(struct sockaddr_in6);
    return 0;
}

/* One entry "FD:INODE:PEER:LOCAL:ATYP.PORT.DEST" at *pos: 0, or -1 when it does not fit
 * or cannot be carried. */
static int put_entry(char **pos, char *end, int fd, const struct sfy_fdinfo *info)
{
    const struct sfy_addr *d = &info->dest;
    const void *dest = d->atyp == SFY_ATYP_DOMAIN ? (const void *)d->name : d->ip;
    size_t dest_len = d->atyp == SFY_ATYP_DOMAIN ? strnlen(d->name, sizeof d->name - 1)
                      : d->atyp == SFY_ATYP_IPV4 ? 4 : 16;
    size_t peer_len = carried_len(&info->peer, info->peer_len);
    size_t local_len = info->local_len ? carried_len(&info->local, info->local_len) : 0;
    if (!peer_len || dest_len == 0)
        return -1;
    if (put_text(pos, end, "%lu:%lu:", (unsigned long)fd, info->ino) < 0 ||
        put_hex(pos, end, &info->peer, peer_len) < 0 || put_char(pos, end, ':') < 0 ||
        put_hex(pos, end, &info->local, local_len) < 0 ||
        put_text(pos, end, ":%lu.%lu.", d->atyp, d->port) < 0 ||
        put_hex(pos, end, dest, dest_len) < 0)
        return -1;
    return 0;
}

int sfy_inherit_encode(char *buf, size_t cap)
{
    static const char prefix[] = SFY_INHERIT_VAR "=";
    int limit = sfy_fd_limit(), fd, count = 0;
    char *pos = buf, *end = buf + cap - 1; /* room for the NUL */
    if (cap)
        buf[0] = '\0';
    if (limit == 0 || cap < sizeof prefix + 1)
        return 0;
    memcpy(pos, prefix, sizeof prefix - 1);
    pos += sizeof prefix - 1;
    for (fd = 0; fd < limit; fd++) {
        struct sfy_fdinfo info;
        char *mark = pos;
        int fdflags;
        if (!sfy_fd_peek(fd, &info) || info.kind != SFY_FD_CONNECT || info.peer_len == 0)
            continue;
        fdflags = fcntl(fd, F_GETFD);
        if (fdflags < 0 || (fdflags & FD_CLOEXEC))
            continue; /* closed by the exec itself */
        if ((count && put_char(&pos, end, ';') < 0) || put_entry(&pos, end, fd, &info) < 0) {
            pos = mark;
            SFY_WARN("cannot pass fd %d across exec (too many connections?): the new program "
                     "sees the proxy as its peer", fd);
            continue;
        }
        count++;
    }
    *pos = '\0';
    if (!count)
        buf[0] = '\0';
    return count;
}

/* ---------------------------------------------------------------- the new image's side */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decimal number up to `stop` at *p: 0 and *out, or -1. */
static int get_num(const char **p, char stop, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (unsigned long)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (*s != stop)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

/* Hex bytes up to `stop` (or the end of the entry when stop is ';') into out: the length,
 * or -1 (odd length, bad digit, longer than cap). */
static long get_hex(const char **p, char stop, void *out, size_t cap)
{
    unsigned char *o = out;
    const char *s = *p;
    size_t n = 0;
    while (*s && *s != stop && *s != ';') {
        int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
        if (lo < 0 || n == cap)
            return -1;
        o[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
    }
    if (*s != stop && !(stop == ';' && *s == '\0'))
        return -1;
    *p = *s ? s + 1 : s;
    return (long)n;
}

static int valid_sockaddr(const struct sockaddr_storage *ss, long len)
{
    if (len == (long)sizeof(struct sockaddr_in))
        return ss->ss_family == AF_INET;
    if (len == (long)sizeof(struct sockaddr_in6))
        return ss->ss_family == AF_INET6;
    return 0;
}

/* Parse one entry at *p (advanced past it): 0 and *fd / *info, or -1 (malformed). */
static int parse_entry(const char **p, int *fd, struct sfy_fdinfo *info)
{
    unsigned long num, ino, atyp, port;
    long peer_len, local_len, dest_len;
    struct sfy_addr *d = &info->dest;
    memset(info, 0, sizeof *info);
    if (get_num(p, ':', INT32_MAX, &num) < 0 || get_num(p, ':', (unsigned long)-1, &ino) < 0)
        return -1;
    peer_len = get_hex(p, ':', &info->peer, sizeof info->peer);
    local_len = peer_len < 0 ? -1 : get_hex(p, ':', &info->local, sizeof info->local);
    if (local_len < 0 || !valid_sockaddr(&info->peer, peer_len) ||
        (local_len && !valid_sockaddr(&info->local, local_len)))
        return -1;
    if (get_num(p, '.', 255, &atyp) < 0 || get_num(p, '.', 65535, &port) < 0)
        return -1;
    if (atyp == SFY_ATYP_DOMAIN)
        dest_len = get_hex(p, ';', d->name, sizeof d->name - 1);
    else
        dest_len = get_hex(p, ';', d->ip, sizeof d->ip);
    if (!((atyp == SFY_ATYP_IPV4 && dest_len == 4) || (atyp == SFY_ATYP_IPV6 && dest_len == 16) ||
          (atyp == SFY_ATYP_DOMAIN && dest_len > 0 && strlen(d->name) == (size_t)dest_len)))
        return -1;
    d->atyp = (uint8_t)atyp;
    d->port = (uint16_t)port;
    info->kind = SFY_FD_CONNECT;
    info->peer_len = (socklen_t)peer_len;
    info->local_len = (socklen_t)local_len;
    info->aux_fd = -1;
    info->ino = ino;
    *fd = (int)num;
    return 0;
}

/* 1 when fd is still the connected stream socket of inode `ino`. */
static int same_socket(int fd, unsigned long ino)
{
    struct stat st;
    struct sockaddr_storage real;
    socklen_t len = sizeof real;
    if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || (unsigned long)st.st_ino != ino)
        return 0;
    return sfy_socktype(fd) == SOCK_STREAM &&
           SFY_REAL(getpeername)(fd, (struct sockaddr *)&real, &len) == 0;
}

int sfy_inherit_restore(const char *value)
{
    const char *p = value;
    int restored = 0, saved = errno;
    while (*p) {
        struct sfy_fdinfo info;
        int fd;
        if (parse_entry(&p, &fd, &info) < 0) {
            SFY_WARN("ignoring a malformed " SFY_INHERIT_VAR " entry");
            p = strchr(p, ';');
            if (!p)
                break;
            p++;
            continue;
        }
        if (!same_socket(fd, info.ino))
            continue; /* closed or replaced on the way (file actions, the program) */
        if (sfy_fd_set(fd, &info) == 0)
            restored++;
    }
    errno = saved;
    return restored;
}
