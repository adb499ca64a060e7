/*
 * init.c -- one-time set-up: the real libc functions, the configuration, the DNS map.
 *
 * Rules: the constructor and every hook call the same sfy_once(sfy_init), because
 * hooks can run before constructors (another library's constructor may connect). A
 * thread-local depth counter makes every hook that runs while this thread is already inside
 * the library (init itself, the resolver called from a hook, a signal handler interrupting
 * a hook) pass straight to libc: no recursion, no deadlock on the once.
 * After sfy_init returns, sfy_cfg never changes, so it is read without locks; the DNS map
 * is created once, at its first use (sfy_map_get), and published with a release store.
 *
 * Lazy start-up: the constructor takes the SOCKSIFY_* environment and registers a fork
 * handler; nothing else. sfy_init runs at the first hooked call that needs it (or before a
 * fork, so the shared DNS map exists before the process tree splits). The data-path fast
 * paths (read/write/send/recv on fds that are not relayed UDP sockets) never call it.
 */
#include "socksify.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sfy_config sfy_cfg;
struct sfy_real sfy_real;
static struct sfy_dnsmap *sfy_map; /* sfy_map_get / sfy_map_peek */
static struct sfy_once map_once = SFY_ONCE_INIT;

static struct sfy_once init_once = SFY_ONCE_INIT;
static int inherited_count; /* connections restored from SOCKSIFY_INHERIT (for the log) */
static __thread int depth __attribute__((tls_model("initial-exec")));

#define SFY_DNSMAP_MAX_SLOTS 65536u

/* Our own mapped address range, to detect dlsym handing back our wrapper (circular
 * reference). Found ONCE with dl_iterate_phdr (the PT_LOAD segments of the object that
 * contains this function); each symbol is then checked with two compares. (dladdr() per
 * symbol walked libc's symbol table every time: 92% of the start-up instructions.) */
struct self_range {
    uintptr_t probe, lo, hi;
};

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    struct self_range *r = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    int i;
    (void)size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (info->dlpi_addr + ph->p_vaddr < lo)
            lo = info->dlpi_addr + ph->p_vaddr;
        if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
            hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    }
    if (r->probe >= lo && r->probe < hi) {
        r->lo = lo;
        r->hi = hi;
        return 1;
    }
    return 0;
}

void *sfy_dlsym_next(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Resolve `name` into *slot. A mandatory symbol that is missing, or any symbol that turns
 * out to be our own wrapper, aborts: running on would recurse or leak traffic. */
static void resolve(void **slot, const char *name, int mandatory)
{
    static struct self_range self;
    void *sym = dlsym(RTLD_NEXT, name);
    if (!self.probe) {
        self.probe = (uintptr_t)(void *)find_self;
        dl_iterate_phdr(find_self, &self);
    }
    if (sym && (uintptr_t)sym >= self.lo && (uintptr_t)sym < self.hi) {
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

/* The SOCKSIFY_* values as the program was started with them. Taken by the constructor
 * (six getenv calls), so a program that edits its environment before its first network
 * call (setenv, unsetenv, clearenv) still gets the configuration it was run with: the
 * strings of the initial environment stay valid whatever the program does to environ. */
static struct {
    int taken;
    const char *proxy, *all_proxy_lc, *all_proxy_uc, *no_proxy, *log, *dns_range, *log_file;
} start_env;

static void take_env(void)
{
    if (start_env.taken)
        return;
    start_env.proxy = getenv("SOCKSIFY_PROXY");
    start_env.all_proxy_lc = getenv("all_proxy");
    start_env.all_proxy_uc = getenv("ALL_PROXY");
    start_env.no_proxy = getenv("SOCKSIFY_NO_PROXY");
    start_env.log = getenv("SOCKSIFY_LOG");
    start_env.dns_range = getenv("SOCKSIFY_DNS_RANGE");
    start_env.log_file = getenv("SOCKSIFY_LOG_FILE");
    start_env.taken = 1;
}

static void sfy_init(void)
{
    take_env();
    resolve_all();
    sfy_config_load(&sfy_cfg, start_env.proxy, start_env.all_proxy_lc, start_env.all_proxy_uc,
                    start_env.no_proxy, start_env.log, start_env.dns_range);
    sfy_log_level = sfy_cfg.log_level;
    sfy_log_open(start_env.log_file);
    if (!sfy_cfg.valid) {
        /* Logged at the first refused call (route.c), not here: a program that never
         * opens a socket should not print anything. */
        return;
    }
    SFY_DBG("initialised: %zu hop(s), remote DNS %s, %d proxied connection(s) inherited "
            "across exec", sfy_cfg.n_hops, sfy_cfg.remote_dns ? "on" : "off", inherited_count);
}

/* The remote-DNS map, made at its first use rather than at init: its MAP_SHARED mapping
 * costs ~25 us per process (mmap of a shmem object, its first page fault, its teardown at
 * exit; scripts/bench_native_shim.py), which a program that never resolves a name through
 * the shim (it connects to addresses, or everything bypasses) need not pay. */
static void create_map(void)
{
    struct sfy_dnsmap *map;
    int saved = errno;
    uint32_t slots = sfy_range_slots(&sfy_cfg.dns4, SFY_DNSMAP_MAX_SLOTS);
    if (sfy_cfg.dns6.family)
        slots = sfy_range_slots(&sfy_cfg.dns6, slots);
    map = sfy_dnsmap_create(slots);
    if (!map)
        SFY_ERR("cannot create the remote DNS map (%s): name lookups will fail",
                strerror(errno));
    __atomic_store_n(&sfy_map, map, __ATOMIC_RELEASE);
    errno = saved;
}

struct sfy_dnsmap *sfy_map_get(void)
{
    if (!sfy_cfg.valid || !sfy_cfg.remote_dns)
        return NULL;
    sfy_once(&map_once, create_map);
    return sfy_map_peek();
}

struct sfy_dnsmap *sfy_map_peek(void)
{
    return __atomic_load_n(&sfy_map, __ATOMIC_ACQUIRE);
}

int sfy_hook_enter(void)
{
    int saved;
    if (depth)
        return 0;
    saved = errno;
    depth = 1;
    sfy_once(&init_once, sfy_init);
    errno = saved;
    return 1;
}

void sfy_hook_leave(void)
{
    depth = 0;
}

/* ------------------------------------------------------------ sfy_once (socksify.h) */

#define MAX_ONCES 8
static struct sfy_once *onces[MAX_ONCES];
static unsigned n_onces;

void sfy_once_slow(struct sfy_once *once, void (*fn)(void))
{
    pthread_mutex_lock(&once->lock);
    if (!once->done) {
        if (!once->listed) {
            unsigned i = __atomic_fetch_add(&n_onces, 1, __ATOMIC_RELAXED);
            if (i < MAX_ONCES)
                __atomic_store_n(&onces[i], once, __ATOMIC_RELEASE);
            once->listed = 1;
        }
        fn();
        __atomic_store_n(&once->done, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&once->lock);
}

/* fork() child: the only thread. A mutex another thread held (inside a run, or about to
 * see that the run is done) stays locked in the child's copy: reset every once's mutex;
 * an unfinished run runs again at its next use. */
static void onces_after_fork_child(void)
{
    static const pthread_mutex_t unlocked = PTHREAD_MUTEX_INITIALIZER;
    unsigned i, n = n_onces < MAX_ONCES ? n_onces : MAX_ONCES;
    for (i = 0; i < n; i++)
        if (onces[i])
            onces[i]->lock = unlocked;
}

/* Before fork(): the DNS map must exist BEFORE the process tree splits, so that parent and
 * children share one MAP_SHARED map (dnsmap.c); init is otherwise lazy. */
static void init_before_fork(void)
{
    if (sfy_hook_enter()) {
        sfy_map_get();
        sfy_hook_leave();
    }
}

/* Start-up is lazy: the constructor only takes the environment and registers the fork
 * handler; the symbol table, the configuration and the log are set up by the first hooked
 * call that needs them (sfy_hook_enter), or before the first fork(); the DNS map by the
 * first name that needs a placeholder, or before the first fork() (sfy_map_get). A
 * program that never touches the network pays for nothing else (scripts/bench_native_shim.py
 * measures the start-up). An exec'd image restores the proxied connections its predecessor
 * passed in SOCKSIFY_INHERIT (inherit.c) here, before main. Hooks that run before this
 * constructor still initialise fully. */
__attribute__((constructor)) static void sfy_constructor(void)
{
    const char *inherited;
    take_env();
    sfy_follow_take();
    pthread_atfork(init_before_fork, NULL, onces_after_fork_child);
    inherited = getenv(SFY_INHERIT_VAR);
    if (inherited) {
        /* Proxied connections of the image that exec'd us (inherit.c). Removed from the
         * environment so our own children never see it; our exec hooks pass a fresh one. */
        depth = 1;
        inherited_count = sfy_inherit_restore(inherited);
        unsetenv(SFY_INHERIT_VAR);
        depth = 0;
    }
}

int sfy_in_library(void)
{
    return depth;
}
