/*
 * init.c -- one-time set-up: the real libc functions, the configuration, the DNS map.
 *
 * Rules: the constructor and every hook call the same pthread_once(sfy_init), because
 * hooks can run before constructors (another library's constructor may connect). A
 * thread-local depth counter makes every hook that runs while this thread is already inside
 * the library (init itself, the resolver called from a hook, a signal handler interrupting
 * a hook) pass straight to libc: no recursion, no deadlock on the pthread_once.
 * After sfy_init returns, sfy_cfg and sfy_map never change, so they are read without locks.
 */
#include "socksify.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sfy_config sfy_cfg;
struct sfy_real sfy_real;
struct sfy_dnsmap *sfy_map;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static __thread int depth __attribute__((tls_model("initial-exec")));

#define SFY_DNSMAP_MAX_SLOTS 65536u

/* Our own load address, to detect dlsym handing back our wrapper (circular reference). */
static void *self_base(void)
{
    Dl_info info;
    if (dladdr((void *)self_base, &info) && info.dli_fbase)
        return info.dli_fbase;
    return NULL;
}

void *sfy_dlsym_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Resolve `name` into *slot. A mandatory symbol that is missing, or any symbol that turns
 * out to be our own wrapper, aborts: running on would recurse or leak traffic. */
static void resolve(void **slot, const char *name, int mandatory)
{
    static void *base;
    Dl_info info;
    void *sym = dlsym(RTLD_NEXT, name);
    if (!base)
        base = self_base();
    if (sym && base && dladdr(sym, &info) && info.dli_fbase == base) {
        SFY_ERR("circular reference: dlsym(RTLD_NEXT, \"%s\") returned our own wrapper", name);
        abort();
    }
    if (!sym && mandatory) {
        SFY_ERR("cannot find the real %s() in libc: %s", name, dlerror());
        abort();
    }
    *slot = sym;
}

#define MANDATORY(fn) resolve((void **)&sfy_real.fn, #fn, 1)
#define OPTIONAL(fn) resolve((void **)&sfy_real.fn, #fn, 0)

static void resolve_all(void)
{
    MANDATORY(write); /* first: logging needs it */
    MANDATORY(connect);
    MANDATORY(close);
    MANDATORY(getaddrinfo);
    MANDATORY(freeaddrinfo);
    MANDATORY(getnameinfo);
    MANDATORY(gethostbyname);
    MANDATORY(gethostbyname2);
    MANDATORY(gethostbyname_r);
    MANDATORY(gethostbyname2_r);
    MANDATORY(gethostbyaddr);
    MANDATORY(getsockname);
    MANDATORY(getpeername);
    MANDATORY(bind);
    MANDATORY(listen);
    MANDATORY(accept);
    MANDATORY(send);
    MANDATORY(sendto);
    MANDATORY(sendmsg);
    MANDATORY(recv);
    MANDATORY(recvfrom);
    MANDATORY(recvmsg);
    MANDATORY(read);
    OPTIONAL(gethostbyaddr_r);
    OPTIONAL(accept4);
    OPTIONAL(sendmmsg);
    OPTIONAL(recvmmsg);
    OPTIONAL(dup2);
    OPTIONAL(dup3);
    OPTIONAL(res_query);
    OPTIONAL(res_search);
    OPTIONAL(res_querydomain);
    OPTIONAL(res_send);
}

static void sfy_init(void)
{
    resolve_all();
    sfy_config_load(&sfy_cfg, getenv("SOCKSIFY_PROXY"), getenv("all_proxy"),
                    getenv("ALL_PROXY"), getenv("SOCKSIFY_NO_PROXY"), getenv("SOCKSIFY_LOG"),
                    getenv("SOCKSIFY_DNS_RANGE"));
    sfy_log_level = sfy_cfg.log_level;
    sfy_log_open(getenv("SOCKSIFY_LOG_FILE"));
    if (!sfy_cfg.valid) {
        /* Logged at the first refused call (route.c), not here: a program that never
         * opens a socket should not print anything. */
        return;
    }
    if (sfy_cfg.remote_dns) {
        uint32_t slots = sfy_range_slots(&sfy_cfg.dns4, SFY_DNSMAP_MAX_SLOTS);
        if (sfy_cfg.dns6.family)
            slots = sfy_range_slots(&sfy_cfg.dns6, slots);
        sfy_map = sfy_dnsmap_create(slots);
        if (!sfy_map)
            SFY_ERR("cannot create the remote DNS map (%s): name lookups will fail",
                    strerror(errno));
    }
    SFY_DBG("initialised: %zu hop(s), remote DNS %s", sfy_cfg.n_hops,
            sfy_cfg.remote_dns ? "on" : "off");
}

int sfy_hook_enter(void)
{
    int saved;
    if (depth)
        return 0;
    saved = errno;
    depth = 1;
    pthread_once(&init_once, sfy_init);
    errno = saved;
    return 1;
}

void sfy_hook_leave(void)
{
    depth = 0;
}

__attribute__((constructor)) static void sfy_constructor(void)
{
    if (sfy_hook_enter())
        sfy_hook_leave();
}
