/*
 * hook_getaddrinfo_a.c -- getaddrinfo_a(): glibc resolves the requests in threads of its own
 * that call getaddrinfo() inside libc, where a preloaded library cannot hook it, so in
 * remote-DNS mode every name of the batch would be asked of DNS (a leak, found with strace).
 *
 * In remote-DNS mode, and with no usable configuration (fail closed), the batch is answered
 * here, through the getaddrinfo hook, before the call returns: each request gets its result
 * and the status gai_error() reads (glibc's gai_error() returns the request's __return, and
 * gai_suspend() and gai_cancel() see a request that is not in progress as done). A
 * GAI_NOWAIT caller is then notified as sevp asks: a signal, or a function run on a new
 * thread, as glibc does. Names the shim answers take no time; a name that goes to libc
 * (NO_PROXY, localhost) is resolved then and there. With remote DNS off, every name goes to
 * libc anyway, and so does the batch: to the real getaddrinfo_a, asynchronous as before.
 */
#include "socksify.h"

#include "resolve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

typedef int (*gai_a_fn)(int, struct gaicb **, int, struct sigevent *);

static gai_a_fn real_getaddrinfo_a;

struct notify {
    void (*function)(union sigval);
    union sigval value;
};

static void *notify_thread(void *arg)
{
    struct notify job = *(struct notify *)arg;
    free(arg);
    job.function(job.value);
    return NULL;
}

/* Tell a GAI_NOWAIT caller that every request is done (glibc's __gai_notify_only). */
static void notify(const struct sigevent *sevp)
{
    if (!sevp)
        return;
    if (sevp->sigev_notify == SIGEV_SIGNAL) {
        sigqueue(getpid(), sevp->sigev_signo, sevp->sigev_value);
    } else if (sevp->sigev_notify == SIGEV_THREAD && sevp->sigev_notify_function) {
        pthread_attr_t detached, *attr = sevp->sigev_notify_attributes;
        pthread_t thread;
        struct notify *job = malloc(sizeof *job);
        if (!job) {
            SFY_WARN("getaddrinfo_a: no memory to run the caller's notification");
            return;
        }
        job->function = sevp->sigev_notify_function;
        job->value = sevp->sigev_value;
        if (!attr) {
            pthread_attr_init(&detached);
            pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
            attr = &detached;
        }
        if (pthread_create(&thread, attr, notify_thread, job) != 0) {
            free(job);
            SFY_WARN("getaddrinfo_a: cannot start the caller's notification thread");
        }
        if (attr == &detached)
            pthread_attr_destroy(&detached);
    }
}

SFY_EXPORT int getaddrinfo_a(int mode, struct gaicb *list[], int nitems, struct sigevent *sevp)
{
    gai_a_fn real = (gai_a_fn)sfy_real_get((void **)&real_getaddrinfo_a, "getaddrinfo_a");
    if (!sfy_hook_enter()) {
        if (!real) {
            errno = ENOSYS;
            return EAI_SYSTEM;
        }
        return real(mode, list, nitems, sevp);
    }
    if (sfy_cfg.valid && !sfy_cfg.remote_dns) {
        sfy_hook_leave();
        if (!real) {
            errno = ENOSYS;
            return EAI_SYSTEM;
        }
        return real(mode, list, nitems, sevp);
    }
    if ((mode != GAI_WAIT && mode != GAI_NOWAIT) || nitems < 0) {
        sfy_hook_leave();
        errno = EINVAL;
        return EAI_SYSTEM;
    }
    for (int i = 0; i < nitems; i++) {
        struct gaicb *req = list[i];
        if (!req)
            continue;
        req->ar_result = NULL;
        req->__return = sfy_getaddrinfo(req->ar_name, req->ar_service, req->ar_request,
                                        &req->ar_result);
    }
    sfy_hook_leave();
    if (mode == GAI_NOWAIT)
        notify(sevp);
    return 0;
}
