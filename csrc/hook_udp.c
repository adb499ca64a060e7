/*
 * hook_udp.c -- the data calls of connected UDP sockets: send(), recv(), write(), read(),
 * writev(), readv().
 *
 * On a UDP socket connect()ed to a proxied destination the kernel socket is NOT connected
 * (it talks to the relay), so these calls must wrap and unwrap datagrams (udp.c). Every
 * other fd leaves through the first line: one lock-free memory load (sfy_udp_maybe), no
 * syscall, no lock, so file and TCP I/O pay nothing measurable.
 */
#include "socksify.h"
#include "udp.h"

#include <errno.h>

SFY_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    struct iovec iov;
    ssize_t rc;
    if (!sfy_udp_maybe(fd) || !sfy_hook_enter())
        return SFY_REAL(send)(fd, buf, len, flags);
    iov.iov_base = (void *)buf;
    iov.iov_len = len;
    rc = sfy_udp_send(fd, &iov, 1, flags, NULL, 0, NULL);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(send)(fd, buf, len, flags);
    sfy_hook_leave();
    return rc;
}

SFY_EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
    struct iovec iov;
    ssize_t rc;
    if (!sfy_udp_maybe(fd) || !sfy_hook_enter())
        return SFY_REAL(write)(fd, buf, len);
    iov.iov_base = (void *)buf;
    iov.iov_len = len;
    rc = sfy_udp_send(fd, &iov, 1, 0, NULL, 0, NULL);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(write)(fd, buf, len);
    sfy_hook_leave();
    return rc;
}

/* recv()/read() logic: one datagram into buf. */
static ssize_t udp_recv_one(int fd, void *buf, size_t len, int flags)
{
    struct iovec iov = {buf, len};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return sfy_udp_recv(fd, &msg, flags);
}

SFY_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t rc;
    if (!sfy_udp_maybe(fd) || !sfy_hook_enter())
        return SFY_REAL(recv)(fd, buf, len, flags);
    rc = udp_recv_one(fd, buf, len, flags);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(recv)(fd, buf, len, flags);
    sfy_hook_leave();
    return rc;
}

SFY_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
    ssize_t rc;
    if (!sfy_udp_maybe(fd) || !sfy_hook_enter())
        return SFY_REAL(read)(fd, buf, len);
    rc = udp_recv_one(fd, buf, len, 0);
    if (rc == SFY_UDP_NOT_MINE)
        rc = SFY_REAL(read)(fd, buf, len);
    sfy_hook_leave();
    return rc;
}

static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_readv)(int, const struct iovec *, int);

SFY_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    ssize_t rc;
    if (!real_writev)
        real_writev = (ssize_t(*)(int, const struct iovec *, int))sfy_dlsym_next("writev");
    if (!real_writev) {
        errno = ENOSYS;
        return -1;
    }
    if (!sfy_udp_maybe(fd) || iovcnt < 0 || !sfy_hook_enter())
        return real_writev(fd, iov, iovcnt);
    rc = sfy_udp_send(fd, iov, (size_t)iovcnt, 0, NULL, 0, NULL);
    if (rc == SFY_UDP_NOT_MINE)
        rc = real_writev(fd, iov, iovcnt);
    sfy_hook_leave();
    return rc;
}

SFY_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {0};
    ssize_t rc;
    if (!real_readv)
        real_readv = (ssize_t(*)(int, const struct iovec *, int))sfy_dlsym_next("readv");
    if (!real_readv) {
        errno = ENOSYS;
        return -1;
    }
    if (!sfy_udp_maybe(fd) || iovcnt < 0 || !sfy_hook_enter())
        return real_readv(fd, iov, iovcnt);
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    rc = sfy_udp_recv(fd, &msg, 0);
    if (rc == SFY_UDP_NOT_MINE)
        rc = real_readv(fd, iov, iovcnt);
    sfy_hook_leave();
    return rc;
}
