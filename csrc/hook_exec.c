/*
 * hook_exec.c -- the exec family and posix_spawn: proxied TCP connections that stay open
 * across exec keep what getpeername / getsockname say in the new image (inherit.c).
 *
 * Hooked (each exported name, because glibc's execl* / execvp / system / popen reach
 * execve through internal symbols an LD_PRELOAD library cannot see): execve, execv, execvp,
 * execvpe, execl, execle, execlp, fexecve, execveat (glibc 2.34+), posix_spawn, posix_spawnp.
 * Not hooked: system(), popen() (glibc spawns them internally) and raw syscalls: the new
 * image then sees plain sockets (the proxy as peer), as before. Their children keep the
 * shim all the same, through the environment they inherit.
 *
 * When the process has no proxied connection to pass (always, for one that never proxied)
 * and the new environment has the shim's variables, the call goes to libc with the
 * caller's own environment. Otherwise the new image gets a COPY of it with what it lacks
 * put back (LD_PRELOAD, SOCKSIFY_*: env_follow.c) and SOCKSIFY_INHERIT (an old value
 * replaced); the caller's environ is never modified. Everything is built on the stack: no
 * allocation in a vfork() child, nothing to leak if the exec succeeds (malloc only for an
 * environment of more than ENV_ON_STACK; if that fails while the shim's variables must be
 * put back, the exec fails with ENOMEM rather than start a child without the shim).
 */
#include "socksify.h"

#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#define ENV_ON_STACK 1024

static void *real_execve, *real_execvpe, *real_fexecve, *real_execveat, *real_posix_spawn,
    *real_posix_spawnp;

/* Declared by <unistd.h> only since glibc 2.34; absent from libc: ENOSYS, as libc would. */
int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags);

static void *real_sym(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = sfy_dlsym_next(name);
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

/* Call the real `fn` (ENOSYS when libc lacks it). */
#define CALL_REAL(fn, ...)                                                                \
    do {                                                                                  \
        __typeof__(&fn) real_ = (__typeof__(&fn))real_sym(&real_##fn, #fn);               \
        if (!real_) {                                                                     \
            errno = ENOSYS;                                                               \
            return -1;                                                                    \
        }                                                                                 \
        return real_(__VA_ARGS__);                                                        \
    } while (0)

static size_t env_count(char *const *envp)
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    return n;
}

/* Fill out (room for envp's entries, what env_follow.c puts back, SOCKSIFY_INHERIT and the
 * NULL) with envp minus any SOCKSIFY_INHERIT, the shim's variables it lacks, and var (when
 * not NULL). NULL when out is NULL (malloc failed) and the shim's variables are missing:
 * the exec must fail rather than start a child without the shim; with only connections to
 * carry, envp (they travel as plain sockets: the exec itself must not fail for that). */
static char *const *shim_env(char **out, char *const *envp, int missing, char *var,
                             char *preload, size_t cap)
{
    static const char name[] = SFY_INHERIT_VAR "=";
    size_t i, n = 0;
    if (!out) {
        if (missing)
            return NULL;
        SFY_WARN("out of memory: inherited proxied connections show the proxy after exec");
        return envp;
    }
    for (i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, sizeof name - 1) != 0
            && !sfy_follow_replaces(envp[i], envp))
            out[n++] = envp[i];
    if (missing)
        n = sfy_follow_append(out, n, envp, preload, cap);
    if (var)
        out[n++] = var;
    out[n] = NULL;
    return out;
}

/* Declares `env` in the caller's frame: envp itself when nothing travels and nothing is
 * missing, else a stack copy (shim_env). The buffers are VLAs of one element when unused,
 * so an exec in a process that never proxied, with the environment it started with, costs
 * one sfy_fd_limit() call, a scan of the environment and no stack. env is NULL when the
 * copy could not be made and the child would lack the shim (ENOMEM). */
#define WITH_SHIM_ENV(envp, env)                                                          \
    int inside_ = sfy_in_library();                                                       \
    int limit_ = inside_ ? 0 : sfy_fd_limit();                                            \
    char var_[limit_ ? SFY_INHERIT_MAX : 1];                                              \
    int carry_ = limit_ && sfy_inherit_encode(var_, sizeof var_);                         \
    int missing_ = inside_ ? 0 : sfy_follow_missing(envp);                                \
    char preload_[missing_ ? SFY_PRELOAD_MAX : 1];                                        \
    size_t n_ = carry_ || missing_ ? env_count(envp) + 2 + (size_t)missing_ : 0;          \
    char *stack_env_[n_ && n_ <= ENV_ON_STACK ? n_ : 1];                                  \
    char *const *env = !n_ ? (envp)                                                       \
                           : shim_env(n_ <= ENV_ON_STACK ? stack_env_                     \
                                                         : malloc(n_ * sizeof(char *)),   \
                                      (envp), missing_, carry_ ? var_ : NULL, preload_,   \
                                      sizeof preload_)

/* For the exec forms: -1 ENOMEM when env could not be built. */
#define EXEC_WITH_SHIM_ENV(envp, env)                                                     \
    WITH_SHIM_ENV(envp, env);                                                             \
    if (!env) {                                                                           \
        errno = ENOMEM;                                                                   \
        return -1;                                                                        \
    }

static int do_execve(const char *path, char *const argv[], char *const envp[])
{
    EXEC_WITH_SHIM_ENV(envp, env);
    CALL_REAL(execve, path, argv, env);
}

static int do_execvpe(const char *file, char *const argv[], char *const envp[])
{
    EXEC_WITH_SHIM_ENV(envp, env);
    CALL_REAL(execvpe, file, argv, env);
}

SFY_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    return do_execve(path, argv, envp);
}

SFY_EXPORT int execv(const char *path, char *const argv[])
{
    return do_execve(path, argv, environ);
}

SFY_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    return do_execvpe(file, argv, envp);
}

SFY_EXPORT int execvp(const char *file, char *const argv[])
{
    return do_execvpe(file, argv, environ);
}

SFY_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    EXEC_WITH_SHIM_ENV(envp, env);
    CALL_REAL(fexecve, fd, argv, env);
}

SFY_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
                        int flags)
{
    EXEC_WITH_SHIM_ENV(envp, env);
    CALL_REAL(execveat, dirfd, path, argv, env, flags);
}

/* The execl* forms: the argument list as an argv on the stack (as glibc does). */
#define COLLECT_ARGS(arg, argv, after)                                                    \
    size_t argc_ = 1;                                                                     \
    va_list ap_;                                                                          \
    va_start(ap_, arg);                                                                   \
    while (va_arg(ap_, const char *))                                                     \
        argc_++;                                                                          \
    va_end(ap_);                                                                          \
    const char *argv[argc_ + 1];                                                          \
    argv[0] = arg;                                                                        \
    va_start(ap_, arg);                                                                   \
    for (size_t i_ = 1; i_ <= argc_; i_++)                                                \
        argv[i_] = va_arg(ap_, const char *);                                             \
    after;                                                                                \
    va_end(ap_)

SFY_EXPORT int execl(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, argv, (void)0);
    return do_execve(path, (char *const *)argv, environ);
}

SFY_EXPORT int execlp(const char *file, const char *arg, ...)
{
    COLLECT_ARGS(arg, argv, (void)0);
    return do_execvpe(file, (char *const *)argv, environ);
}

SFY_EXPORT int execle(const char *path, const char *arg, ...)
{
    char *const *envp;
    COLLECT_ARGS(arg, argv, envp = va_arg(ap_, char *const *));
    return do_execve(path, (char *const *)argv, envp);
}

SFY_EXPORT int posix_spawn(pid_t *pid, const char *path,
                           const posix_spawn_file_actions_t *file_actions,
                           const posix_spawnattr_t *attrp, char *const argv[],
                           char *const envp[])
{
    WITH_SHIM_ENV(envp, env);
    if (!env)
        return ENOMEM;
    CALL_REAL(posix_spawn, pid, path, file_actions, attrp, argv, env);
}

SFY_EXPORT int posix_spawnp(pid_t *pid, const char *file,
                            const posix_spawn_file_actions_t *file_actions,
                            const posix_spawnattr_t *attrp, char *const argv[],
                            char *const envp[])
{
    WITH_SHIM_ENV(envp, env);
    if (!env)
        return ENOMEM;
    CALL_REAL(posix_spawnp, pid, file, file_actions, attrp, argv, env);
}
