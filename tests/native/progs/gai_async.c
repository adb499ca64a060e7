/*
 * gai_async: resolve NAME with glibc's getaddrinfo_a(), then fetch http://NAME:PORT/ from the
 * first address.
 *
 *     gai_async NAME PORT MODE
 *
 * MODE is one of:
 *   wait     GAI_WAIT
 *   thread   GAI_NOWAIT, notified by SIGEV_THREAD; then gai_suspend() must not wait
 *   signal   GAI_NOWAIT, notified by a queued SIGUSR1 (SIGEV_SIGNAL)
 * Every wait is bounded (5 s). Prints "ok MODE" and the HTTP status line; on a failure prints
 * "FAIL MODE: why" to stderr and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *mode;
static sem_t notified;

static void die(const char *why, int code)
{
    fprintf(stderr, "FAIL %s: %s%s%s\n", mode, why, code ? ": " : "",
            code ? gai_strerror(code) : "");
    exit(1);
}

static void on_notify(union sigval value)
{
    if (value.sival_int == 42)
        sem_post(&notified);
}

static struct timespec in_seconds(int seconds)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += seconds;
    return t;
}

static void fetch(const struct addrinfo *ai, const char *name)
{
    char request[256], reply[256];
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die(strerror(errno), 0);
    int n = snprintf(request, sizeof request, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", name);
    if (write(fd, request, (size_t)n) != n)
        die("write", 0);
    ssize_t got = read(fd, reply, sizeof reply - 1);
    if (got <= 0)
        die("no reply", 0);
    reply[got] = 0;
    reply[strcspn(reply, "\r\n")] = 0;
    printf("%s\n", reply);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s NAME PORT wait|thread|signal\n", argv[0]);
        return 2;
    }
    mode = argv[3];
    struct addrinfo hints = {0};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    struct gaicb request = {0};
    request.ar_name = argv[1];
    request.ar_service = argv[2];
    request.ar_request = &hints;
    struct gaicb *list[1] = {&request};
    struct sigevent event = {0};
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sem_init(&notified, 0, 0);
    int rc;
    if (strcmp(mode, "wait") == 0) {
        rc = getaddrinfo_a(GAI_WAIT, list, 1, NULL);
    } else if (strcmp(mode, "thread") == 0) {
        event.sigev_notify = SIGEV_THREAD;
        event.sigev_notify_function = on_notify;
        event.sigev_value.sival_int = 42;
        rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &event);
        struct timespec deadline = in_seconds(5);
        if (rc == 0 && sem_timedwait(&notified, &deadline) != 0)
            die("no SIGEV_THREAD notification within 5 s", 0);
        struct timespec five = {5, 0};
        const struct gaicb *const waiting[1] = {&request};
        int suspended = rc == 0 ? gai_suspend(waiting, 1, &five) : 0;
        if (suspended != 0 && suspended != EAI_ALLDONE) /* glibc: EAI_ALLDONE once done */
            die("gai_suspend after the notification", suspended);
    } else if (strcmp(mode, "signal") == 0) {
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        event.sigev_notify = SIGEV_SIGNAL;
        event.sigev_signo = SIGUSR1;
        event.sigev_value.sival_int = 42;
        rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &event);
        siginfo_t info;
        struct timespec five = {5, 0};
        if (rc == 0 && (sigtimedwait(&usr1, &info, &five) != SIGUSR1
                        || info.si_value.sival_int != 42))
            die("no SIGUSR1 with the caller's value within 5 s", 0);
    } else {
        die("unknown mode", 0);
        return 2;
    }
    if (rc != 0)
        die("getaddrinfo_a", rc);
    if ((rc = gai_error(&request)) != 0)
        die("gai_error", rc);
    printf("ok %s\n", mode);
    fetch(request.ar_result, argv[1]);
    freeaddrinfo(request.ar_result);
    return 0;
}
