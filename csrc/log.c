/*
 * log.c -- the shim's diagnostics: one line per message, `socksify: LEVEL: text` on stderr
 * (or SOCKSIFY_LOG_FILE), written with one write(2) so lines from threads do not mix.
 *
 * Rules: logging never changes errno (hooks log on their error paths); quiet by default
 * (errors only, SOCKSIFY_LOG raises it); routine bypasses log at debug only, because the
 * program's stderr belongs to the user; never stdout. The log fd is protected from the
 * program's close() (hook_close.c asks sfy_fd_is_internal).
 */
#include "socksify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sfy_log_level = SFY_LOG_ERROR;
static int log_fd = 2;
static dev_t log_dev; /* identity of SOCKSIFY_LOG_FILE, to notice the fd being reused */
static ino_t log_ino;

int sfy_log_fd(void)
{
    return log_fd;
}

void sfy_log_open(const char *path)
{
    if (path && *path) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0) {
            log_dev = st.st_dev;
            log_ino = st.st_ino;
            log_fd = fd;
            sfy_fd_mark_internal(fd, 1);
        }
    }
}

void sfy_log(int level, const char *file, int line, const char *func, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    int saved = errno;
    char buf[1024];
    int n;
    va_list ap;
    if (level > sfy_log_level)
        goto out;
    if (sfy_log_level >= SFY_LOG_DEBUG)
        n = snprintf(buf, sizeof buf, "socksify: [%d] %s: %s:%d %s(): ", (int)getpid(),
                     names[level], file, line, func);
    else
        n = snprintf(buf, sizeof buf, "socksify: %s: ", names[level]);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = 0;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t (*real_write)(int, const void *, size_t) = SFY_REAL(write);
    int fd = log_fd;
    if (fd != 2) {
        /* close_range()/closefrom() bypass the close hook: never write into whatever file
         * now has the log file's number; fall back to stderr */
        struct stat st;
        if (fstat(fd, &st) != 0 || st.st_dev != log_dev || st.st_ino != log_ino)
            fd = 2;
    }
    if (real_write)
        (void)!real_write(fd, buf, (size_t)n);
out:
    errno = saved;
}

const char *sfy_addr_str(const struct sfy_addr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->atyp == SFY_ATYP_IPV4) {
        inet_ntop(AF_INET, a->ip, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, a->port);
    } else if (a->atyp == SFY_ATYP_IPV6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
        snprintf(buf, cap, "[%s]:%u", ip, a->port);
    } else {
        snprintf(buf, cap, "%s:%u", a->name, a->port);
    }
    return buf;
}
