/*
 * hook_close.c -- close(): forget the fd's state; refuse to close the library's own fds.
 *
 * Some programs close every fd they did not open (daemons, ssh); the log file and UDP
 * control connections must survive that (proxychains: "prevent rude programs ... from
 * closing our pipes"). An aux_fd tied to a closed socket is closed with it.
 */
#include "socksify.h"

#include <errno.h>

/* Returns close()'s result; EBADF for an internal fd (as if it were not open). */
static int sfy_close(int fd)
{
    struct sfy_fdinfo old;
    if (sfy_fd_is_internal(fd)) {
        SFY_DBG("refusing to close internal fd %d", fd);
        errno = EBADF;
        return -1;
    }
    if (sfy_fd_forget(fd, &old) && old.aux_fd >= 0) {
        sfy_fd_forget(old.aux_fd, NULL);
        SFY_REAL(close)(old.aux_fd);
    }
    return SFY_REAL(close)(fd);
}

SFY_EXPORT int close(int fd)
{
    int rc;
    /* An fd the table has no room for is neither proxied nor one of ours (those are in the
     * table too): no need to start the library, which a program's first close() would. */
    if (fd >= sfy_fd_limit() || !sfy_hook_enter())
        return SFY_REAL(close)(fd);
    rc = sfy_close(fd);
    sfy_hook_leave();
    return rc;
}
