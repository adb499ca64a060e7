/*
 * socksify.h -- internal declarations of the native LD_PRELOAD shim (libsocksify.so).
 *
 * Every internal symbol is prefixed sfy_ and hidden (-fvisibility=hidden); only the hooked
 * libc names are exported, each from its own hook_<fn>.c file (STYLE.md §5).
 *
 * Module map and the interfaces other hook files may rely on (kept stable):
 *
 *   codec.c     pure SOCKS4/4a/5 encode/parse (codec.h)
 *   config.c    pure proxy URL / NO_PROXY / DNS range parser (reference: socksify/proxy.py)
 *   errmap.c    reply code -> errno (mirrors socksify/errors.py)
 *   dnsmap.c    RFC 3089 placeholder address <-> name map in MAP_SHARED memory (fork-safe)
 *   log.c       SFY_ERR / SFY_WARN / SFY_INFO / SFY_DBG, errno-preserving, `socksify:` lines
 *   init.c      constructor + sfy_once: real_* table via dlsym(RTLD_NEXT), sfy_cfg
 *   fdtable.c   per-fd state (what getpeername/getsockname report, aux fds), one mutex
 *   route.c     sfy_route(): PASS / PROXY / DENY for a destination (bypass, placeholders)
 *   handshake.c blocking driver with poll + deadline: sfy_chain_open(), sfy_chain_read_reply()
 *   inherit.c   SOCKSIFY_INHERIT: proxied TCP connections passed across exec (hook_exec.c)
 *   hook_*.c    one exported libc symbol (or one family) per file
 *
 * Writing a hook (the pattern every hook_*.c follows):
 *
 *     int connect(int fd, const struct sockaddr *addr, socklen_t len)
 *     {
 *         if (!sfy_hook_enter())               // re-entered or during init: go to libc
 *             return SFY_REAL(connect)(fd, addr, len);
 *         int rc = sfy_connect(fd, addr, len); // the logic; may call sfy_real.* only
 *         sfy_hook_leave();                    // preserves errno
 *         return rc;
 *     }
 *
 * Inside the library always call the real functions through sfy_real / SFY_REAL(): a plain
 * call to connect() or close() would bind to our own exported hook.
 */
#ifndef SFY_SOCKSIFY_H
#define SFY_SOCKSIFY_H

/* The build passes -D_GNU_SOURCE (mmsghdr, RTLD_NEXT); this covers other includers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include "codec.h"

#define SFY_EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------------ config.c */

#define SFY_MAX_HOPS 8
#define SFY_NOPROXY_MAX 64

enum sfy_log_level { SFY_LOG_ERROR = 0, SFY_LOG_WARNING, SFY_LOG_INFO, SFY_LOG_DEBUG };

/* One proxy hop, as socksify/proxy.py's ProxyConfig. */
struct sfy_hop {
    char scheme[8];   /* "socks4", "socks4a", "socks5", "socks5h" */
    int version;      /* 4 or 5 */
    int remote_dns;   /* socks4a / socks5h */
    char host[256];   /* name or IP literal (IPv6 without brackets, normalised) */
    uint16_t port;
    int has_user, has_pass;
    uint8_t user[256];
    size_t user_len;
    uint8_t pass[256];
    size_t pass_len;
};

/* An IPv4 or IPv6 network: family AF_INET/AF_INET6, address in network byte order. */
struct sfy_net {
    int family;
    uint8_t addr[16];
    int prefix;
};

/* The bypass list (socksify/proxy.py NoProxy). */
struct sfy_noproxy {
    int everything;
    size_t n_names, n_suffixes, n_nets;
    char names[SFY_NOPROXY_MAX][256];    /* exact names, lower case, no trailing dot */
    char suffixes[SFY_NOPROXY_MAX][256]; /* ".example.org" stored as "example.org" */
    struct sfy_net nets[SFY_NOPROXY_MAX];
};

/* The small fields first, then the first hop right after the error text: a process that
 * loads a one-hop configuration writes two pages of this 41 KiB struct (this first one and
 * no_proxy's counts), not three (every page written is a page fault at start-up). */
struct sfy_config {
    int valid;        /* 0: no usable proxy configuration: every proxied call fails closed */
    int remote_dns;   /* the last hop's scheme decides (SPEC) */
    int log_level;
    size_t n_hops;
    struct sfy_net dns4, dns6;  /* placeholder ranges; dns6.family == 0 when none */
    char error[512];  /* why not valid (never contains a password) */
    struct sfy_hop hops[SFY_MAX_HOPS];
    struct sfy_noproxy no_proxy;
};

/* Parsers: return 0, or -1 with a message in err (NUL-terminated, no password). Pure. */
int sfy_parse_chain(const char *text, struct sfy_hop *hops, size_t max_hops, size_t *n_hops,
                    char *err, size_t errlen);
int sfy_parse_no_proxy(const char *text, struct sfy_noproxy *out, char *err, size_t errlen);
int sfy_parse_dns_range(const char *text, struct sfy_net *v4, struct sfy_net *v6, char *err,
                        size_t errlen);
int sfy_parse_log_level(const char *text, int *level);
/* Fill *cfg from the values of SOCKSIFY_PROXY, all_proxy, ALL_PROXY, SOCKSIFY_NO_PROXY,
 * SOCKSIFY_LOG, SOCKSIFY_DNS_RANGE (any may be NULL). Always fills log_level and the
 * defaults; cfg->valid says whether proxied calls may proceed. */
void sfy_config_load(struct sfy_config *cfg, const char *proxy, const char *all_proxy_lc,
                     const char *all_proxy_uc, const char *no_proxy, const char *log,
                     const char *dns_range);
/* 1 when the name / IP must go direct (NO_PROXY). */
int sfy_noproxy_match_name(const struct sfy_noproxy *np, const char *name);
int sfy_noproxy_match_ip(const struct sfy_noproxy *np, int family, const uint8_t *ip);
int sfy_net_contains(const struct sfy_net *net, int family, const uint8_t *ip);

/* The process's configuration: written once by init.c, read-only (and lock-free) after. */
extern struct sfy_config sfy_cfg;

/* ------------------------------------------------------------------ errmap.c */

/* errno for a failure reply: version 5 (RFC 1928 REP) or 4 (SOCKS4 CD). */
int sfy_errno_for_reply(int version, int code);
#define SFY_ERRNO_AUTH_FAILED EACCES
#define SFY_ERRNO_NO_ACCEPTABLE_METHOD EACCES
#define SFY_ERRNO_PROTOCOL EPROTO
#define SFY_ERRNO_UDP_NOT_RELAYABLE EPERM
#define SFY_ERRNO_NOT_CONFIGURED ENETUNREACH  /* no/bad proxy configuration: fail closed */
#define SFY_ERRNO_UNKNOWN_PLACEHOLDER EHOSTUNREACH

/* ------------------------------------------------------------------ dnsmap.c */

/* The RFC 3089 "fake IP" map. Slot i is the name of placeholders dns4+1+i and dns6+1+i. */
struct sfy_dnsmap;
struct sfy_dnsmap *sfy_dnsmap_create(uint32_t slots); /* MAP_SHARED|MAP_ANONYMOUS; NULL+errno */
void sfy_dnsmap_destroy(struct sfy_dnsmap *map);
uint32_t sfy_dnsmap_capacity(const struct sfy_dnsmap *map);
uint32_t sfy_dnsmap_used(const struct sfy_dnsmap *map);
/* Slot for `name` (found or newly added): 0, or -1 (errno ENAMETOOLONG / EINVAL / ENOSPC). */
int sfy_dnsmap_intern(struct sfy_dnsmap *map, const char *name, uint32_t *slot);
/* Copy the name of `slot` into out: 1 found, 0 not (never assigned). */
int sfy_dnsmap_lookup(const struct sfy_dnsmap *map, uint32_t slot, char *out, size_t cap);
/* Slots a range can number (excluding the network and last address), capped at `limit`. */
uint32_t sfy_range_slots(const struct sfy_net *net, uint32_t limit);
/* Placeholder address of `slot` in `net` (4 or 16 bytes into ip). */
void sfy_placeholder_ip(const struct sfy_net *net, uint32_t slot, uint8_t *ip);
/* 1 and *slot when ip (family AF_INET/AF_INET6) is a placeholder of `net`, else 0. */
int sfy_placeholder_slot(const struct sfy_net *net, int family, const uint8_t *ip,
                         uint32_t *slot);

/* The process's map (init.c), created at its first use: the first name that needs a
 * placeholder, or just before the first fork() (so the process tree shares one map).
 * Survives fork (shared mapping); starts empty after exec. sfy_map_get() creates it when
 * remote DNS is on (NULL when off, or when the mapping failed); sfy_map_peek() never
 * creates: NULL also means "no name was handed out yet" (lock-free, acquire load). */
struct sfy_dnsmap *sfy_map_get(void);
struct sfy_dnsmap *sfy_map_peek(void);
/* Name for a sockaddr if it is a placeholder: 1 found (name copied), 0 not a placeholder,
 * -1 a placeholder nobody handed out in this process tree (fail closed). */
int sfy_placeholder_name(const struct sockaddr *sa, socklen_t len, char *out, size_t cap);

/* ------------------------------------------------------------------ log.c */

extern int sfy_log_level;
void sfy_log(int level, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define SFY_ERR(...) sfy_log(SFY_LOG_ERROR, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define SFY_WARN(...)                                                                     \
    do {                                                                                  \
        if (sfy_log_level >= SFY_LOG_WARNING)                                             \
            sfy_log(SFY_LOG_WARNING, __FILE__, __LINE__, __func__, __VA_ARGS__);          \
    } while (0)
#define SFY_INFO(...)                                                                     \
    do {                                                                                  \
        if (sfy_log_level >= SFY_LOG_INFO)                                                \
            sfy_log(SFY_LOG_INFO, __FILE__, __LINE__, __func__, __VA_ARGS__);             \
    } while (0)
#define SFY_DBG(...)                                                                      \
    do {                                                                                  \
        if (sfy_log_level >= SFY_LOG_DEBUG)                                               \
            sfy_log(SFY_LOG_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__);            \
    } while (0)
int sfy_log_fd(void);  /* the fd log lines go to (the close hook protects it) */
void sfy_log_open(const char *path); /* SOCKSIFY_LOG_FILE, or stderr when NULL */
/* Format an address for logs ("1.2.3.4:80", "[::1]:80", "name:80"). */
const char *sfy_addr_str(const struct sfy_addr *a, char *buf, size_t cap);

/* ------------------------------------------------------------------ init.c */

/* The real libc functions (dlsym(RTLD_NEXT)). Mandatory ones abort() the process when
 * missing; optional ones (res_*, accept4, ...) may be NULL. */
struct sfy_real {
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*close)(int);
    int (*getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    void (*freeaddrinfo)(struct addrinfo *);
    int (*getnameinfo)(const struct sockaddr *, socklen_t, char *, socklen_t, char *,
                       socklen_t, int);
    struct hostent *(*gethostbyname)(const char *);
    struct hostent *(*gethostbyname2)(const char *, int);
    int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t, struct hostent **,
                           int *);
    int (*gethostbyname2_r)(const char *, int, struct hostent *, char *, size_t,
                            struct hostent **, int *);
    struct hostent *(*gethostbyaddr)(const void *, socklen_t, int);
    int (*gethostbyaddr_r)(const void *, socklen_t, int, struct hostent *, char *, size_t,
                           struct hostent **, int *);
    int (*getsockname)(int, struct sockaddr *, socklen_t *);
    int (*getpeername)(int, struct sockaddr *, socklen_t *);
    /* for the BIND / UDP hooks (hook_bind.c, hook_udp.c) */
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    /* resolver entry points (optional) */
    int (*res_query)(const char *, int, int, unsigned char *, int);
    int (*res_search)(const char *, int, int, unsigned char *, int);
    int (*res_querydomain)(const char *, const char *, int, int, unsigned char *, int);
    int (*res_send)(const unsigned char *, int, unsigned char *, int);
};
extern struct sfy_real sfy_real;

/* Resolve one real symbol now (used by SFY_REAL before init finished). */
void *sfy_dlsym_next(const char *name);
/* *slot, resolving it first when a hook runs before init filled the table. */
static inline void *sfy_real_get(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!fn) {
        fn = sfy_dlsym_next(name);
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}
/* The real libc function `fn` (a member of struct sfy_real), usable at any time. */
#define SFY_REAL(fn) ((__typeof__(sfy_real.fn))sfy_real_get((void **)&sfy_real.fn, #fn))

/* Hook entry guard: returns 1 after making sure init ran, when the hook may apply its
 * logic; 0 when this thread is already inside the library (init, a hook, the resolver
 * called from a hook, a signal handler interrupting a hook): then pass straight to libc.
 * Every 1 must be paired with sfy_hook_leave(). Both preserve errno. */
int sfy_hook_enter(void);
void sfy_hook_leave(void);

/* ------------------------------------------------------------------ fdtable.c */

enum sfy_fdkind {
    SFY_FD_PLAIN = 0,   /* not ours: never stored */
    SFY_FD_CONNECT,     /* TCP socket connected through the proxy chain (hook_connect.c) */
    SFY_FD_BIND,        /* listening socket turned into SOCKS BIND (hook_bind.c) */
    SFY_FD_UDP,         /* UDP socket relayed by UDP ASSOCIATE (hook_udp.c) */
    SFY_FD_INTERNAL,    /* the library's own fd (log file, UDP control connection) */
};

/* What the library knows about one fd. Owners fill what they need; the rest is zero. */
struct sfy_fdinfo {
    enum sfy_fdkind kind;
    struct sfy_addr dest;                /* the destination the program asked for */
    struct sockaddr_storage peer;        /* getpeername() answer when peer_len > 0 */
    socklen_t peer_len;
    struct sockaddr_storage local;       /* getsockname() answer when local_len > 0 */
    socklen_t local_len;
    int aux_fd;                          /* internal fd closed together with this one, or -1 */
    int state;                           /* free for the owner of `kind` */
    struct sockaddr_storage relay;       /* UDP: the proxy's relay address (hook_udp.c) */
    socklen_t relay_len;
    unsigned long ino;                   /* set by sfy_fd_set: the socket's inode, so an
                                            entry whose fd was closed behind our back
                                            (fclose, close_range, dup2) is dropped */
};

/* Copy the entry of fd into *out: 1 if tracked, 0 if not (out zeroed, aux_fd -1). An entry
 * whose fd now names another file (closed without our close(), then reused) is dropped. */
int sfy_fd_get(int fd, struct sfy_fdinfo *out);
/* Store (replace) the entry of fd: 0, or -1 ENOMEM / EBADF. */
int sfy_fd_set(int fd, const struct sfy_fdinfo *info);
/* Remove fd's entry; copy it to *old when non-NULL. 1 if it was tracked. */
int sfy_fd_forget(int fd, struct sfy_fdinfo *old);
/* `copy` is a new descriptor for the same socket as `orig` (dup, dup2/dup3 or fcntl
 * F_DUPFD): give it orig's entry (hook_dup.c). Call inside the hook guard. */
void sfy_fd_copied(int orig, int copy);
/* 1 when fd is one of the library's own (the close hook refuses to close those). */
int sfy_fd_is_internal(int fd);
/* Mark fd as internal (on=1) or not; -1 ENOMEM. */
int sfy_fd_mark_internal(int fd, int on);
/* The destination of this process's most recent proxied connection (the expected peer of
 * a SOCKS BIND request, SPEC). 1 if there is one. */
void sfy_last_dest_set(const struct sfy_addr *dest);
int sfy_last_dest_get(struct sfy_addr *out);
/* One past the highest fd the table has room for (0 when nothing was ever tracked): the
 * bound of a scan with sfy_fd_peek (inherit.c). Lock-free. */
int sfy_fd_limit(void);
/* As sfy_fd_get, but changes nothing (a stale entry is reported as untracked, not dropped),
 * no malloc/free: safe in a vfork() child, whose writes would land in the parent's table. */
int sfy_fd_peek(int fd, struct sfy_fdinfo *out);

/* ------------------------------------------------------------------ inherit.c */

/* Proxied TCP connections survive exec (hook_exec.c): the exec hooks pass the entries of
 * SFY_FD_CONNECT fds that are not close-on-exec to the new image in this variable. */
#define SFY_INHERIT_VAR "SOCKSIFY_INHERIT"
#define SFY_INHERIT_MAX 16384  /* bytes of "SOCKSIFY_INHERIT=..." (built on the stack) */
/* Write "SOCKSIFY_INHERIT=entry;entry..." into buf for the carried fds: the number of
 * entries (0: nothing to carry, buf untouched beyond buf[0]). Never allocates. */
int sfy_inherit_encode(char *buf, size_t cap);
/* Parse one value of SOCKSIFY_INHERIT and restore the entries whose fd is still the same
 * socket (inode): the number restored. Called by init.c's constructor. */
int sfy_inherit_restore(const char *value);
/* 1 when this thread is inside the library (a hook, init): exec hooks then pass through. */
int sfy_in_library(void);

/* ------------------------------------------------------------------ env_follow.c */

/* A child given an environment without the shim gets it back (hook_exec.c). */
#define SFY_FOLLOW_MAX 16    /* SOCKSIFY_*, all_proxy and sanitizer options followed */
#define SFY_PRELOAD_MAX 4096 /* bytes of a rebuilt "LD_PRELOAD=ours:theirs" (on the stack) */
/* Note LD_PRELOAD and the followed variables of the initial environment (constructor). */
void sfy_follow_take(void);
/* How many of them envp lacks (LD_PRELOAD: also when its value does not contain ours). */
int sfy_follow_missing(char *const *envp);
/* 1 when entry (of envp) is an LD_PRELOAD that sfy_follow_append rebuilds: leave it out. */
int sfy_follow_replaces(const char *entry, char *const *envp);
/* Append to out[n...] the entries envp lacks (a rebuilt LD_PRELOAD goes into buf, of cap
 * bytes); returns the new n. Never allocates. */
size_t sfy_follow_append(char **out, size_t n, char *const *envp, char *buf, size_t cap);

/* ------------------------------------------------------------------ route.c */

enum sfy_route {
    SFY_PASS = 0,   /* hand to libc unchanged */
    SFY_PROXY,      /* go through the proxy chain to *dest */
    SFY_DENY,       /* refuse: *err holds the errno */
};

/* Decide what to do with traffic of `socktype` (SOCK_STREAM / SOCK_DGRAM) to addr.
 * Non-IP families, the first hop itself and NO_PROXY destinations pass; placeholders become
 * names; an unknown placeholder, a missing config or DNS to port 53 in remote-DNS mode is
 * denied. Fills *dest (the SOCKS destination) for SFY_PROXY. */
enum sfy_route sfy_route(const struct sockaddr *addr, socklen_t len, int socktype,
                         struct sfy_addr *dest, int *err);
/* The socket type of fd (SOCK_STREAM...), or -1. */
int sfy_socktype(int fd);
/* struct sfy_addr <-> sockaddr for IP addresses (IPv4-mapped IPv6 becomes IPv4). */
int sfy_addr_from_sockaddr(struct sfy_addr *out, const struct sockaddr *sa, socklen_t len);
socklen_t sfy_addr_to_sockaddr(const struct sfy_addr *a, struct sockaddr_storage *ss);

/* ------------------------------------------------------------------ hook_udp.c */

/* Implemented by udp.c (native-hooks-2, see udp.h); hook_connect.c holds a weak default
 * that refuses with EPERM (fail closed) for builds without it. connect() of an
 * AF_INET/AF_INET6 SOCK_DGRAM socket whose sfy_route() is SFY_PROXY (hook_connect.c
 * routes first; PASS and DENY never get here); dest is the SOCKS destination (a placeholder
 * already mapped back to its name). Returns connect()'s result and errno. */
int sfy_udp_connect(int fd, const struct sockaddr *addr, socklen_t len,
                    const struct sfy_addr *dest);

/* ------------------------------------------------------------------ hook_connect.c */

/* TCP Fast Open: sendto()/sendmsg() with MSG_FASTOPEN and an address on an unconnected TCP
 * socket makes the KERNEL connect, directly. hook_sendto.c / hook_sendmsg.c call this
 * first. Returns 1 when the call is not affected (send unchanged), 0 when the socket is now
 * connected through the proxy (send the data WITHOUT the address and without
 * MSG_FASTOPEN), or -1 with an errno valid for sendto(). */
int sfy_tcp_fastopen(int fd, const struct sockaddr *to, socklen_t tolen, int flags);

/* ------------------------------------------------------------------ sfy_once (init.c) */

/* pthread_once without its system call: glibc's pthread_once ends every first run with a
 * futex(FUTEX_WAKE) even when no thread waits (three per proxied process: init, the fd
 * table's fork handler, the first hop's address). Double-checked instead: an acquire load
 * when done, else a mutex (no system call unless contended) around the one run. Other
 * threads wait on the mutex, as on pthread_once. After fork() the child resets the mutex
 * of every sfy_once (a thread that held it did not come along), so an interrupted run
 * runs again in the child, as glibc's pthread_once does. fn must not re-enter it. */
struct sfy_once {
    int done;
    int listed; /* in init.c's list of onces the fork child handler resets */
    pthread_mutex_t lock;
};
#define SFY_ONCE_INIT {0, 0, PTHREAD_MUTEX_INITIALIZER}
void sfy_once_slow(struct sfy_once *once, void (*fn)(void));
static inline void sfy_once(struct sfy_once *once, void (*fn)(void))
{
    if (!__atomic_load_n(&once->done, __ATOMIC_ACQUIRE))
        sfy_once_slow(once, fn);
}

/* ------------------------------------------------------------------ handshake.c */

#define SFY_DEFAULT_TIMEOUT_MS 30000

int64_t sfy_now_ms(void);
/* The first hop's socket addresses (resolved once, with the real resolver, for a name):
 * the number copied (1..max) into ss[] and len[], or -1 with errno. */
int sfy_first_hop_addrs(struct sockaddr_storage *ss, socklen_t *len, int max);
/* Deadline (CLOCK_MONOTONIC ms) for a handshake on fd: SO_SNDTIMEO if set, else default. */
int64_t sfy_deadline_for(int fd);
/* Connect fd (a TCP socket) to the first hop, CONNECT through each further hop, then send
 * `cmd` for `dest` to the last hop and read its reply. fd may be replaced (dup3) by a socket
 * of the first hop's address family. The fd's file status flags (O_NONBLOCK) are restored.
 * Returns 0 and the reply's BND address in *bnd, or -1 with errno per SPEC's table (the
 * errno of the connect to the first hop when it is unreachable; ETIMEDOUT at the
 * deadline). The fd is left connected to the proxy on failure. */
int sfy_chain_open(int fd, uint8_t cmd, const struct sfy_addr *dest, struct sfy_addr *bnd,
                   int64_t deadline);
/* sfy_chain_open for a caller that already read the fd's file status flags (F_GETFL). */
int sfy_chain_open_flags(int fd, int saved_flags, uint8_t cmd, const struct sfy_addr *dest,
                         struct sfy_addr *bnd, int64_t deadline);
/* Read one more reply from the last hop (the second BIND reply, RFC 1928 §6): 0 and *out,
 * or -1 with errno (as sfy_chain_open). Restores the fd's flags. */
int sfy_chain_read_reply(int fd, struct sfy_addr *out, int64_t deadline);

#endif
