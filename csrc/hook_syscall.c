/*
 * hook_syscall.c -- syscall(): the datagram calls some libraries make without libc's
 * wrappers.
 *
 * libuv (under BIND 9's dig, node, ...) sends and receives UDP with
 * syscall(__NR_sendmmsg, ...) / syscall(__NR_recvmmsg, ...), which no sendmmsg() hook sees:
 * its datagrams would reach the kernel unwrapped (and, on a UDP socket "connected" through
 * the relay, fail with EDESTADDRREQ). torsocks hooks syscall() for the same reason. Only the
 * datagram calls are redirected to our own hooks (hook_sendmsg.c, hook_recvmsg.c,
 * hook_sendto.c, hook_recvfrom.c), which keep their fast paths; every other number goes to
 * libc's syscall() with the arguments unchanged.
 *
 * Reading six variadic longs is what libc's own syscall() does on Linux (the kernel takes at
 * most six register arguments); unused ones are ignored by the callee.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg, recvmmsg, struct mmsghdr */
#endif
#include "socksify.h"
#include "udp.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>

static long (*real_syscall)(long, ...);

SFY_EXPORT long syscall(long number, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, number);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);

    switch (number) {
#ifdef SYS_sendmmsg
    case SYS_sendmmsg:
        return sendmmsg((int)a[0], (struct mmsghdr *)a[1], (unsigned int)a[2], (int)a[3]);
#endif
#ifdef SYS_recvmmsg
    case SYS_recvmmsg:
        if (sfy_udp_maybe((int)a[0]))
            return recvmmsg((int)a[0], (struct mmsghdr *)a[1], (unsigned int)a[2], (int)a[3],
                            (struct timespec *)a[4]);
        break;
#endif
#ifdef SYS_sendmsg
    case SYS_sendmsg:
        return sendmsg((int)a[0], (const struct msghdr *)a[1], (int)a[2]);
#endif
#ifdef SYS_sendto
    case SYS_sendto:
        return sendto((int)a[0], (const void *)a[1], (size_t)a[2], (int)a[3],
                      (const struct sockaddr *)a[4], (socklen_t)a[5]);
#endif
#ifdef SYS_recvmsg
    case SYS_recvmsg:
        if (sfy_udp_maybe((int)a[0]))
            return recvmsg((int)a[0], (struct msghdr *)a[1], (int)a[2]);
        break;
#endif
#ifdef SYS_recvfrom
    case SYS_recvfrom:
        if (sfy_udp_maybe((int)a[0]))
            return recvfrom((int)a[0], (void *)a[1], (size_t)a[2], (int)a[3],
                            (struct sockaddr *)a[4], (socklen_t *)a[5]);
        break;
#endif
    default:
        break;
    }
    if (!real_syscall)
        real_syscall = (long (*)(long, ...))sfy_dlsym_next("syscall");
    if (!real_syscall) {
        errno = ENOSYS;
        return -1;
    }
    return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
