/*
 * fdtable.c -- what the library knows about file descriptors.
 *
 * Thread-safe design note: this file owns the library's ONLY mutex. Entries are
 * heap-allocated structs in a table indexed by fd, grown on demand. Readers get a COPY
 * (sfy_fd_get) made under the lock, so no caller ever holds a pointer into the table and
 * no lock is held across a syscall that may block. The configuration (init.c) is immutable
 * after init and read without locks; the DNS map (dnsmap.c) is lock-free.
 *
 * fork(): pthread_atfork takes the mutex before fork and releases it in parent and child,
 * so a fork while another thread is inside the table cannot leave the child's copy locked.
 * The child keeps the parent's entries (it inherited the same fds). exec() drops the table;
 * the exec hooks (hook_exec.c, inherit.c) carry the proxied TCP connections that stay open
 * across it to the new image, which restores them at start-up.
 */
#include "socksify.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sfy_fdinfo **table;
static size_t table_size;
static struct sfy_addr last_dest;
static int have_last_dest;
static struct sfy_once atfork_once = SFY_ONCE_INIT;

/* The process whose memory this table is. A vfork() child (CPython's subprocess, glibc-less
 * spawners) runs in its parent's memory until it execs, and no atfork handler tells us: its
 * close() calls must not remove entries, or the PARENT would forget fds it still has open.
 * fork() children take over their copy in the atfork child handler. */
static pid_t owner_pid;

static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork(void) { pthread_mutex_unlock(&lock); }
static void after_fork_child(void)
{
    owner_pid = getpid();
    pthread_mutex_unlock(&lock);
}
static void install_atfork(void)
{
    owner_pid = getpid();
    pthread_atfork(before_fork, after_fork, after_fork_child);
}

static void lock_table(void)
{
    sfy_once(&atfork_once, install_atfork);
    pthread_mutex_lock(&lock);
}

/* Make room for index fd (locked). 0 or -1 ENOMEM. */
static int grow(int fd)
{
    size_t want, n;
    struct sfy_fdinfo **bigger;
    if ((size_t)fd < table_size)
        return 0;
    want = table_size ? table_size : 64;
    while (want <= (size_t)fd)
        want *= 2;
    bigger = realloc(table, want * sizeof *table);
    if (!bigger)
        return -1;
    for (n = table_size; n < want; n++)
        bigger[n] = NULL;
    table = bigger;
    __atomic_store_n(&table_size, want, __ATOMIC_RELEASE);
    return 0;
}

/* The inode of fd's file (0 when fd is not open). */
static unsigned long inode_of(int fd)
{
    struct stat st;
    int saved = errno;
    unsigned long ino = fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
    errno = saved;
    return ino;
}

int sfy_fd_get(int fd, struct sfy_fdinfo *out)
{
    int found = 0;
    lock_table();
    if (fd >= 0 && (size_t)fd < table_size && table[fd]) {
        *out = *table[fd];
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    if (found && out->ino != inode_of(fd)) {
        sfy_fd_forget(fd, NULL); /* stale: fd was closed behind our back and reused */
        found = 0;
    }
    if (!found) {
        memset(out, 0, sizeof *out);
        out->aux_fd = -1;
    }
    return found;
}

int sfy_fd_set(int fd, const struct sfy_fdinfo *info)
{
    int rc = 0, saved = errno;
    unsigned long ino = inode_of(fd);
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    lock_table();
    if (grow(fd) < 0) {
        rc = -1;
    } else {
        if (!table[fd])
            table[fd] = malloc(sizeof **table);
        if (table[fd]) {
            *table[fd] = *info;
            table[fd]->ino = ino;
        }
        else
            rc = -1;
    }
    pthread_mutex_unlock(&lock);
    errno = rc ? ENOMEM : saved;
    return rc;
}

int sfy_fd_forget(int fd, struct sfy_fdinfo *old)
{
    struct sfy_fdinfo *entry = NULL;
    int borrowed = 0;
    lock_table();
    if (fd >= 0 && (size_t)fd < table_size && table[fd]) {
        entry = table[fd];
        borrowed = getpid() != owner_pid; /* a vfork child: the entry is the parent's */
        if (!borrowed)
            table[fd] = NULL;
        else if (old)
            *old = *entry;
    }
    pthread_mutex_unlock(&lock);
    if (!entry)
        return 0;
    if (!borrowed) {
        if (old)
            *old = *entry;
        free(entry);
    }
    return 1;
}

int sfy_fd_is_internal(int fd)
{
    int internal = 0;
    unsigned long ino = 0;
    lock_table();
    if (fd >= 0 && (size_t)fd < table_size && table[fd]) {
        internal = table[fd]->kind == SFY_FD_INTERNAL;
        ino = table[fd]->ino;
    }
    pthread_mutex_unlock(&lock);
    return internal && ino == inode_of(fd);
}

int sfy_fd_mark_internal(int fd, int on)
{
    struct sfy_fdinfo info;
    if (!on)
        return sfy_fd_forget(fd, NULL), 0;
    memset(&info, 0, sizeof info);
    info.kind = SFY_FD_INTERNAL;
    info.aux_fd = -1;
    return sfy_fd_set(fd, &info);
}

void sfy_last_dest_set(const struct sfy_addr *dest)
{
    lock_table();
    last_dest = *dest;
    have_last_dest = 1;
    pthread_mutex_unlock(&lock);
}

int sfy_last_dest_get(struct sfy_addr *out)
{
    int have;
    lock_table();
    have = have_last_dest;
    if (have)
        *out = last_dest;
    pthread_mutex_unlock(&lock);
    return have;
}

int sfy_fd_limit(void)
{
    /* The table only grows, so an unlocked read is a safe bound (and costs nothing). */
    size_t n = __atomic_load_n(&table_size, __ATOMIC_RELAXED);
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

int sfy_fd_peek(int fd, struct sfy_fdinfo *out)
{
    int found = 0;
    lock_table();
    if (fd >= 0 && (size_t)fd < table_size && table[fd]) {
        *out = *table[fd];
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found && out->ino == inode_of(fd);
}
