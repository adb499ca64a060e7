/*
 * udp.h -- UDP through SOCKS5 UDP ASSOCIATE (udp.c; hooks in hook_sendto.c, hook_sendmsg.c
 * (sendmsg, sendmmsg), hook_recvfrom.c, hook_recvmsg.c (recvmsg, recvmmsg), hook_udp.c (send,
 * recv, write, read, writev, readv), hook_syscall.c (libuv's raw sendmmsg/recvmmsg) and
 * hook_dup.c (copies share the association)).
 *
 * Interface with the rest of the library:
 *   - hook_connect.c calls sfy_udp_connect() for SOCK_DGRAM sockets (connect() on a UDP
 *     socket only records the default destination; the kernel is never connected to it).
 *   - fdtable's close path closes aux_fd, which is the association's control connection, so
 *     closing (or dup2-ing over) the UDP socket ends the association (RFC 1928 §6: "A UDP
 *     association terminates when the TCP connection that the UDP ASSOCIATE request arrived
 *     on terminates").
 */
#ifndef SFY_UDP_H
#define SFY_UDP_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "codec.h"

/* Returned by sfy_udp_send / sfy_udp_recv when the fd is not a relayed UDP socket (or the
 * destination is not proxied): the hook calls the real libc function instead. */
#define SFY_UDP_NOT_MINE (-2)

/* 1 when fd may be a relayed UDP socket: lock-free, no syscall; false positives allowed,
 * never a false negative. The data-path hooks (read, write, recv, send...) test this before
 * anything else, so traffic on other fds pays one memory load. */
#define SFY_UDP_FAST_FDS 65536
extern unsigned char sfy_udp_maybe_fd[SFY_UDP_FAST_FDS]; /* udp.c: 1 for a relayed fd */
extern int sfy_udp_any;                                /* udp.c: any relayed fd so far */
static inline int sfy_udp_maybe(int fd)
{
    /* inline, so that the hooks' pass-through path is this load and nothing else */
    if (!__atomic_load_n(&sfy_udp_any, __ATOMIC_RELAXED))
        return 0;
    if (fd < 0)
        return 0;
    if (fd >= SFY_UDP_FAST_FDS)
        return 1;
    return __atomic_load_n(&sfy_udp_maybe_fd[fd], __ATOMIC_RELAXED);
}

/* connect() of a UDP socket to `addr`, which sfy_route() sends to the proxy as `dest`
 * (declared in socksify.h too; hook_connect.c routes, then calls this for SFY_PROXY only).
 * Records the default destination; 0, or -1 with a valid connect() errno (EPERM when UDP
 * cannot be relayed: SOCKS4, a chain of more than one hop; ENOMEM). */
int sfy_udp_connect(int fd, const struct sockaddr *addr, socklen_t len,
                    const struct sfy_addr *dest);

/* connect() on fd, whatever the address (AF_UNSPEC included): the recorded default
 * destination of a relayed UDP socket is forgotten (hook_connect.c, before routing).
 * Returns 1 when connect() must return 0 right away (AF_UNSPEC handled), else 0. */
int sfy_udp_disconnect(int fd, const struct sockaddr *addr);

/* fd's number now also refers to a relayed UDP socket (dup): keep the data-path hint. */
void sfy_udp_adopt(int fd);

/* Send one datagram made of iov[0..iovlen) to `to` (NULL: the connected destination).
 * `control` is the caller's msghdr for ancillary data (may be NULL). Returns the number of
 * payload bytes sent, -1 with errno, or SFY_UDP_NOT_MINE. */
ssize_t sfy_udp_send(int fd, const struct iovec *iov, size_t iovlen, int flags,
                     const struct sockaddr *to, socklen_t tolen, const struct msghdr *control);

/* Receive one datagram into msg (msg_name, msg_iov, msg_control, msg_flags as recvmsg(2)),
 * unwrapping the SOCKS5 UDP header; the source reported is the real remote one. Returns
 * the payload length (with MSG_TRUNC in flags: the full datagram payload length), -1 with
 * errno, or SFY_UDP_NOT_MINE. */
ssize_t sfy_udp_recv(int fd, struct msghdr *msg, int flags);

#endif
