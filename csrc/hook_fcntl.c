/*
 * hook_fcntl.c -- fcntl(F_DUPFD / F_DUPFD_CLOEXEC) is a dup(): the copy gets its socket's
 * entry (sfy_fd_copied), so getpeername(), a UDP association and a connected UDP socket's
 * destination work on it too. CPython's os.dup() and socket.dup() copy this way, and a
 * copy without the entry would answer getpeername() with the proxy's address and read a
 * UDP relay's datagrams with their SOCKS header.
 *
 * fcntl64 is the same function under the name glibc 2.28+ binds programs built with
 * _FILE_OFFSET_BITS=64 to (wget, git, Debian's python3). Every other command goes to libc
 * unchanged, after one comparison: programs call fcntl often (F_GETFL/F_SETFL per socket).
 *
 * The third argument is read as a pointer, as glibc's own fcntl reads it: an int argument
 * arrives in the same register, and the commands that take none ignore it.
 */
#include "socksify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>

typedef int (*fcntl_fn)(int, int, ...);

static fcntl_fn real_fcntl, real_fcntl64;

/* *slot, resolved on first use; fcntl64 falls back to fcntl (no fcntl64 before glibc 2.28). */
static fcntl_fn real_of(fcntl_fn *slot, const char *name)
{
    fcntl_fn fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = (fcntl_fn)sfy_dlsym_next(name);
        if (!fn)
            fn = (fcntl_fn)sfy_dlsym_next("fcntl");
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

static int do_fcntl(fcntl_fn real, int fd, int cmd, void *arg)
{
    int copy;
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    /* (an fd the table has no room for cannot be tracked: no need to start the library) */
    if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || fd >= sfy_fd_limit() || !sfy_hook_enter())
        return real(fd, cmd, arg);
    copy = real(fd, cmd, arg);
    if (copy >= 0)
        sfy_fd_copied(fd, copy);
    sfy_hook_leave();
    return copy;
}

SFY_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(real_of(&real_fcntl, "fcntl"), fd, cmd, arg);
}

SFY_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;
    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(real_of(&real_fcntl64, "fcntl64"), fd, cmd, arg);
}
