/*
 * fd_chaos: descriptor games a program may play under the native shim, each checked for
 * crossed state (a stale destination, data on the wrong connection, a lost connection).
 *
 *   fd_chaos reuse HOW PORT_A PORT_B   HOW: close | close_range | closefrom | sys_close | dup2
 *       connect fd X to 127.0.0.1:PORT_A, close X by HOW, make a new socket (number X again)
 *       and connect it to PORT_B: the new socket must not inherit anything of the old one.
 *   fd_chaos threads HOW PORT_A PORT_B THREADS ROUNDS
 *       THREADS threads connect, check getpeername and an echo, and close (by HOW), mixed with
 *       socketpair churn so descriptor numbers are reused across threads all the time.
 *   fd_chaos fork PORT         a proxied connection used by a forked child, then the parent;
 *       children forked while other threads connect (the table lock must not stay held).
 *   fd_chaos exec PORT         connect, then exec ourselves: the exec'd image keeps the
 *       inherited connection working and makes new proxied connections.
 *
 * Every target is an echo server on 127.0.0.1. Each check prints "NAME: ok" or
 * "NAME: FAIL details" on stdout; exit status 0 when every check passed, 1 otherwise.
 * Sockets have 10 s timeouts and the process an alarm(), so nothing can hang.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

#include <stdarg.h>
static void check(const char *name, int ok, const char *fmt, ...)
{
    pthread_mutex_lock(&out_lock);
    if (ok) {
        printf("%s: ok\n", name);
    } else {
        va_list ap;
        va_start(ap, fmt);
        printf("%s: FAIL ", name);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        failures++;
    }
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
}

static void timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int connect_to(int fd, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return connect(fd, (struct sockaddr *)&sin, sizeof sin);
}

/* The port getpeername() reports, -errno on failure. */
static int peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Send msg, read the same number of bytes back; 0 when the echo matches. */
static int echo(int fd, const char *msg)
{
    size_t n = strlen(msg), got = 0;
    char buf[256];
    if (send(fd, msg, n, MSG_NOSIGNAL) != (ssize_t)n)
        return -1;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return memcmp(buf, msg, n) == 0 ? 0 : 1;
}

/* Close fd behind the shim's back (or not), as HOW says. */
static int close_by(const char *how, int fd)
{
    if (strcmp(how, "close") == 0)
        return close(fd);
    if (strcmp(how, "close_range") == 0)
        return close_range((unsigned)fd, (unsigned)fd, 0);
    if (strcmp(how, "sys_close") == 0)
        return (int)syscall(SYS_close, fd);
    if (strcmp(how, "dup2") == 0) {
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int rc = dup2(null, fd); /* the kernel closes the socket under the new file */
        close(null);
        return rc < 0 ? -1 : close(fd);
    }
    fprintf(stderr, "unknown HOW %s\n", how);
    exit(2);
}

static int cmd_reuse(const char *how, int port_a, int port_b)
{
    int x = socket(AF_INET, SOCK_STREAM, 0);
    timeouts(x);
    check("first-connect", connect_to(x, port_a) == 0, "errno %s", strerrorname_np(errno));
    check("first-echo", echo(x, "first\n") == 0, "no echo");
    if (strcmp(how, "closefrom") == 0)
        closefrom(x); /* glibc: close_range(x, ~0U, 0), or /proc/self/fd as a fallback */
    else
        check("close", close_by(how, x) == 0, "errno %s", strerrorname_np(errno));
    int y = socket(AF_INET, SOCK_STREAM, 0);
    timeouts(y);
    check("same-number", y == x, "got fd %d for fd %d", y, x);
    int before = peer_port(y);
    check("peer-before-connect", before == -ENOTCONN, "getpeername gave %d", before);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(y, (struct sockaddr *)&sin, &len);
    check("name-before-connect", sin.sin_port == 0 && sin.sin_addr.s_addr == 0,
          "getsockname gave %s:%d", inet_ntoa(sin.sin_addr), ntohs(sin.sin_port));
    check("second-connect", connect_to(y, port_b) == 0, "errno %s", strerrorname_np(errno));
    int after = peer_port(y);
    check("peer-after-connect", after == port_b, "getpeername gave %d, want %d", after, port_b);
    check("second-echo", echo(y, "second\n") == 0, "no echo");
    close(y);
    return failures ? 1 : 0;
}

struct worker {
    int index, rounds, port_a, port_b;
    const char *how;
};

static void *thread_main(void *arg)
{
    struct worker *w = arg;
    char msg[64], name[64];
    for (int r = 0; r < w->rounds && !failures; r++) {
        int port = (w->index + r) % 2 ? w->port_b : w->port_a;
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0) { /* churn descriptor numbers */
            close(pair[0]);
            close(pair[1]);
        }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        timeouts(fd);
        snprintf(name, sizeof name, "thread-%d-round-%d", w->index, r);
        if (connect_to(fd, port) < 0) {
            check(name, 0, "connect: %s", strerrorname_np(errno));
            close(fd);
            break;
        }
        int seen = peer_port(fd);
        snprintf(msg, sizeof msg, "t%d r%d fd%d\n", w->index, r, fd);
        int bad_echo = echo(fd, msg);
        if (seen != port || bad_echo)
            check(name, 0, "fd %d peer %d want %d, echo %d", fd, seen, port, bad_echo);
        close_by(w->how, fd);
    }
    return NULL;
}

static int cmd_threads(const char *how, int port_a, int port_b, int n, int rounds)
{
    pthread_t tids[64];
    struct worker workers[64];
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++) {
        workers[i] = (struct worker){i, rounds, port_a, port_b, how};
        pthread_create(&tids[i], NULL, thread_main, &workers[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    check("threads", failures == 0, "%d failures", failures);
    return failures ? 1 : 0;
}

static volatile int stop_busy;

static void *busy_connect(void *arg)
{
    int port = *(int *)arg;
    while (!stop_busy) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        timeouts(fd);
        if (connect_to(fd, port) == 0)
            echo(fd, "busy\n");
        close(fd);
    }
    return NULL;
}

static int cmd_fork(int port)
{
    int x = socket(AF_INET, SOCK_STREAM, 0);
    timeouts(x);
    check("parent-connect", connect_to(x, port) == 0, "errno %s", strerrorname_np(errno));
    pid_t pid = fork();
    if (pid == 0) {
        int ok = peer_port(x) == port && echo(x, "from the child\n") == 0;
        int y = socket(AF_INET, SOCK_STREAM, 0);
        timeouts(y);
        ok = ok && connect_to(y, port) == 0 && peer_port(y) == port && echo(y, "new\n") == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    check("child-uses-inherited-and-new", WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "child status %d", status);
    check("parent-after-child", peer_port(x) == port && echo(x, "parent again\n") == 0,
          "parent lost its connection");
    close(x);

    /* fork while other threads are inside the shim: a child must not find a lock held */
    pthread_t busy[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&busy[i], NULL, busy_connect, &port);
    int bad = 0;
    for (int i = 0; i < 20; i++) {
        pid = fork();
        if (pid == 0) {
            alarm(10); /* a deadlocked child dies by SIGALRM instead of hanging the test */
            int y = socket(AF_INET, SOCK_STREAM, 0);
            timeouts(y);
            int ok = connect_to(y, port) == 0 && echo(y, "forked\n") == 0;
            _exit(ok ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bad++;
    }
    stop_busy = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(busy[i], NULL);
    check("fork-under-thread-load", bad == 0, "%d of 20 children failed", bad);
    return failures ? 1 : 0;
}

static int cmd_exec(const char *self, int port)
{
    int x = socket(AF_INET, SOCK_STREAM, 0); /* no CLOEXEC: the exec'd image inherits it */
    timeouts(x);
    check("before-exec-connect", connect_to(x, port) == 0, "errno %s", strerrorname_np(errno));
    check("before-exec-echo", echo(x, "before exec\n") == 0, "no echo");
    char fdtext[16], porttext[16];
    snprintf(fdtext, sizeof fdtext, "%d", x);
    snprintf(porttext, sizeof porttext, "%d", port);
    execl(self, self, "after-exec", fdtext, porttext, (char *)NULL);
    check("exec", 0, "errno %s", strerrorname_np(errno));
    return 1;
}

static int cmd_after_exec(int x, int port)
{
    check("inherited-echo", echo(x, "after exec\n") == 0, "inherited connection lost");
    int y = socket(AF_INET, SOCK_STREAM, 0);
    timeouts(y);
    check("new-connect-after-exec", connect_to(y, port) == 0 && peer_port(y) == port,
          "errno %s", strerrorname_np(errno));
    check("new-echo-after-exec", echo(y, "new after exec\n") == 0, "no echo");
    int peer = peer_port(x);
    check("inherited-peer", peer == port, "getpeername gave %d, want %d", peer, port);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    alarm(60);
    if (argc == 5 && strcmp(argv[1], "reuse") == 0)
        return cmd_reuse(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 7 && strcmp(argv[1], "threads") == 0)
        return cmd_threads(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]),
                           atoi(argv[6]));
    if (argc == 3 && strcmp(argv[1], "fork") == 0)
        return cmd_fork(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "exec") == 0)
        return cmd_exec("/proc/self/exe", atoi(argv[2]));
    if (argc == 4 && strcmp(argv[1], "after-exec") == 0)
        return cmd_after_exec(atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: see the comment at the top of fd_chaos.c\n");
    return 2;
}
