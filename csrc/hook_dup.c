/*
 * hook_dup.c -- dup(), dup2(), dup3(): keep fdtable true when fd numbers are copied.
 *
 * Rules:
 * - The fd replaced by dup2/dup3 is closed by the kernel, so its entry is forgotten and its
 *   aux_fd (a UDP association's or an armed BIND's control connection) closed, exactly as
 *   hook_close.c does. Without this a later socket at that number would inherit the stale
 *   state (a file read through the UDP relay path, an EISCONN on connect).
 * - The copy gets the original's entry, so getpeername() and a connected UDP socket's
 *   default destination work on it too. A UDP association's control connection is
 *   duplicated with it (an internal close-on-exec fd), so the association lives until the
 *   last copy of the socket is closed (RFC 1928 §6: it ends with its TCP connection).
 * - An armed BIND socket's copy is not tracked (the BIND belongs to the original number).
 *
 * - A copy of, or onto, a descriptor number the table has no room for (sfy_fd_limit: 0
 *   until anything was tracked) goes straight to libc, without starting the library: a
 *   program that only shuffles descriptors (a shell's redirections) pays for nothing.
 *
 * Limitation: dup2/dup3 onto one of the library's own internal fds replaces it (the
 * program's request wins). fcntl(F_DUPFD) copies go through sfy_fd_copied (hook_fcntl.c).
 */
#include "socksify.h"
#include "udp.h"

#include <errno.h>
#include <fcntl.h>

static int (*real_dup)(int);

/* Forget `fd`'s entry before the kernel closes it under dup2/dup3 (as hook_close.c). */
static void forget_replaced(int fd)
{
    struct sfy_fdinfo old;
    if (sfy_fd_is_internal(fd)) {
        SFY_WARN("fd %d, one of socksify's own, is being replaced by dup2/dup3", fd);
        sfy_fd_forget(fd, NULL);
        return;
    }
    if (sfy_fd_forget(fd, &old) && old.aux_fd >= 0) {
        sfy_fd_forget(old.aux_fd, NULL);
        SFY_REAL(close)(old.aux_fd);
    }
}

/* Give `copy` the entry of `orig` (see the rules above). */
void sfy_fd_copied(int orig, int copy)
{
    struct sfy_fdinfo info;
    if (!sfy_fd_get(orig, &info) || info.kind == SFY_FD_INTERNAL)
        return;
    if (info.kind == SFY_FD_BIND && info.aux_fd >= 0)
        return;
    if (info.aux_fd >= 0) {
        int aux = fcntl(info.aux_fd, F_DUPFD_CLOEXEC, 0);
        if (aux < 0 || sfy_fd_mark_internal(aux, 1) != 0) {
            if (aux >= 0)
                SFY_REAL(close)(aux);
            SFY_WARN("fd %d: cannot share the UDP association with its copy %d", orig, copy);
            return;
        }
        info.aux_fd = aux;
    }
    if (sfy_fd_set(copy, &info) != 0) {
        if (info.aux_fd >= 0) {
            sfy_fd_mark_internal(info.aux_fd, 0);
            SFY_REAL(close)(info.aux_fd);
        }
        return;
    }
    if (info.kind == SFY_FD_UDP)
        sfy_udp_adopt(copy);
}

SFY_EXPORT int dup(int fd)
{
    int copy;
    if (!real_dup)
        real_dup = (int (*)(int))sfy_dlsym_next("dup");
    if (!real_dup) {
        errno = ENOSYS;
        return -1;
    }
    if (fd >= sfy_fd_limit() || !sfy_hook_enter())
        return real_dup(fd);
    copy = real_dup(fd);
    if (copy >= 0)
        sfy_fd_copied(fd, copy);
    sfy_hook_leave();
    return copy;
}

/* dup2/dup3 logic; use_dup3 selects the real function. Returns newfd or -1 with errno. */
static int sfy_dup23(int oldfd, int newfd, int flags, int use_dup3)
{
    int rc;
    /* only touch state when the call can succeed: oldfd open, and a real replacement */
    if (oldfd != newfd && fcntl(oldfd, F_GETFD) >= 0 && newfd >= 0)
        forget_replaced(newfd);
    rc = use_dup3 ? sfy_real.dup3(oldfd, newfd, flags) : sfy_real.dup2(oldfd, newfd);
    if (rc >= 0 && oldfd != newfd)
        sfy_fd_copied(oldfd, newfd);
    return rc;
}

SFY_EXPORT int dup2(int oldfd, int newfd)
{
    int rc;
    if (!SFY_REAL(dup2)) {
        errno = ENOSYS;
        return -1;
    }
    if ((oldfd >= sfy_fd_limit() && newfd >= sfy_fd_limit()) || !sfy_hook_enter())
        return sfy_real.dup2(oldfd, newfd);
    rc = sfy_dup23(oldfd, newfd, 0, 0);
    sfy_hook_leave();
    return rc;
}

SFY_EXPORT int dup3(int oldfd, int newfd, int flags)
{
    int rc;
    if (!SFY_REAL(dup3)) {
        errno = ENOSYS;
        return -1;
    }
    if ((oldfd >= sfy_fd_limit() && newfd >= sfy_fd_limit()) || !sfy_hook_enter())
        return sfy_real.dup3(oldfd, newfd, flags);
    rc = sfy_dup23(oldfd, newfd, flags, 1);
    sfy_hook_leave();
    return rc;
}
