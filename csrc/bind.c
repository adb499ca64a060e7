/*
 * bind.c -- listening TCP sockets served by SOCKS BIND (RFC 1928 §4 "BIND", §6; SOCKS4.protocol
 * "2) BIND").
 *
 * THE RULE (sfy_listen_rule() in bind.h, SPEC.md): a TCP socket (AF_INET/AF_INET6) that is
 * bound to port 0, or that starts listening without ever being bound, becomes a SOCKS BIND
 * when the process already has a proxied connection: the destination of the most recent one
 * (sfy_last_dest_get) is the expected peer sent in the BIND request, as RFC 1928 expects
 * ("the client side of an application protocol will use the BIND request only to establish
 * secondary connections after a primary connection is established using CONNECT"). A socket
 * bound to an explicit port is the program's own server and stays local, and so does any
 * listener before the first proxied connection.
 *
 * THE MECHANISM:
 *
 *   bind(fd, port 0)   The real bind() runs first (EADDRNOTAVAIL is ignored: programs such as
 *                      curl bind to the address getsockname() gave for their control
 *                      connection, which is the proxy's BND address and need not be local).
 *                      Then a new internal TCP socket, the *control* socket, goes through the
 *                      chain and sends BIND; the first reply's BND address is the rendezvous
 *                      address. It is stored as fd's getsockname() answer right away, because
 *                      curl and wget call getsockname() between bind() and listen() to learn
 *                      the port they announce (EPRT/PORT). State ARMED, control = aux_fd.
 *   listen(fd)         ARMED: the control socket is dup3()ed over fd's number (keeping fd's
 *                      FD_CLOEXEC and O_NONBLOCK), so poll/select/epoll on the listening fd
 *                      wake when the proxy sends the second reply. An unbound socket (listen
 *                      without bind) does the BIND here first. State LISTENING.
 *   accept(fd)         LISTENING: wait until fd is readable (O_NONBLOCK: EAGAIN if it is not;
 *                      blocking: SO_RCVTIMEO if set, else forever; EINTR is returned), read the
 *                      second reply (the peer that connected), then return a NEW fd: a dup of
 *                      the control socket, which now carries the tunnel to that peer
 *                      (SOCK_CLOEXEC / SOCK_NONBLOCK honoured). SOCKS BIND gives exactly one
 *                      connection, so fd's number is then given a fresh TCP socket that is
 *                      not listening: further accept() calls fail with EINVAL, and closing the
 *                      accepted fd really closes the tunnel. State SPENT.
 *
 * getsockname(listening fd) is the first reply's address; on the accepted fd getpeername()
 * is the second reply's address and getsockname() the first's (what the peer connected to).
 * close() of fd at any stage ends the BIND (fdtable closes the control socket, aux_fd).
 *
 * Errors: a BIND the proxy cannot set up fails bind() (or listen()) with SPEC's errno for the
 * reply (e.g. EOPNOTSUPP for "command not supported"): fail closed, never a local listener
 * the peer would have to reach directly. A failed second reply fails accept() with
 * ECONNABORTED (EPROTO for a malformed reply, EPERM when the proxy's rules refused it).
 */
#include "bind.h"
#include "socksify.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/time.h>

enum bind_state {
    BIND_ARMED = 1, /* first reply received; control socket is aux_fd */
    BIND_LISTENING, /* control socket lives at the program's fd number */
    BIND_SPENT,     /* the one connection was accepted (or failed) */
};

/* Serialises the state changes of BIND sockets (two threads accepting on one listener). */
static pthread_mutex_t bind_lock = PTHREAD_MUTEX_INITIALIZER;

static int sockaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* An IP sfy_addr as a sockaddr of `family` (IPv4 becomes ::ffff:a.b.c.d in an AF_INET6
 * socket). Returns the length, or 0 when it cannot be expressed (a name, IPv6 in AF_INET). */
static socklen_t addr_for_family(const struct sfy_addr *a, int family,
                                 struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET && a->atyp == SFY_ATYP_IPV4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        memcpy(&s4->sin_addr, a->ip, 4);
        return sizeof *s4;
    }
    if (family == AF_INET6 && (a->atyp == SFY_ATYP_IPV4 || a->atyp == SFY_ATYP_IPV6)) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        if (a->atyp == SFY_ATYP_IPV6) {
            memcpy(&s6->sin6_addr, a->ip, 16);
        } else {
            s6->sin6_addr.s6_addr[10] = 0xff;
            s6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&s6->sin6_addr.s6_addr[12], a->ip, 4);
        }
        return sizeof *s6;
    }
    return 0;
}

static int addr_is_unspecified(const struct sfy_addr *a)
{
    static const uint8_t zero[16];
    if (a->atyp == SFY_ATYP_IPV4)
        return memcmp(a->ip, zero, 4) == 0;
    if (a->atyp == SFY_ATYP_IPV6)
        return memcmp(a->ip, zero, 16) == 0;
    return 0;
}

/* The family of fd's socket, or -1. */
static int socket_family(int fd)
{
    int family = 0;
    socklen_t len = sizeof family;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) != 0)
        return -1;
    return family;
}

/*
 * Open the control connection and send BIND for the expected peer. On success stores fd's
 * entry (ARMED, aux_fd = control socket, local = rendezvous address) and returns 0.
 * Returns -1 with SPEC's errno (reply code, proxy unreachable, EPROTO) on failure.
 */
static int bind_open(int fd, int family, const struct sfy_addr *peer)
{
    struct sfy_addr bnd;
    struct sfy_fdinfo info;
    char shown[300];
    int saved;
    int ctrl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ctrl < 0)
        return -1;
    if (sfy_fd_mark_internal(ctrl, 1) != 0)
        goto fail;
    if (sfy_chain_open(ctrl, SFY_CMD_BIND, peer, &bnd, sfy_deadline_for(fd)) != 0)
        goto fail;
    if (addr_is_unspecified(&bnd)) {
        /* "0.0.0.0" in a reply means "the address you reached me at" (as Dante and others
         * send it): the rendezvous is on the proxy's own address. */
        struct sockaddr_storage proxy;
        socklen_t plen = sizeof proxy;
        uint16_t port = bnd.port;
        if (SFY_REAL(getpeername)(ctrl, (struct sockaddr *)&proxy, &plen) != 0 ||
            sfy_addr_from_sockaddr(&bnd, (struct sockaddr *)&proxy, plen) != 0)
            goto fail;
        bnd.port = port;
    }
    memset(&info, 0, sizeof info);
    info.kind = SFY_FD_BIND;
    info.state = BIND_ARMED;
    info.dest = *peer;
    info.aux_fd = ctrl;
    info.local_len = addr_for_family(&bnd, family, &info.local);
    if (info.local_len == 0) {
        SFY_ERR("BIND: the proxy's rendezvous address %s cannot be used by this socket",
                sfy_addr_str(&bnd, shown, sizeof shown));
        errno = EAFNOSUPPORT;
        goto fail;
    }
    if (sfy_fd_set(fd, &info) != 0)
        goto fail;
    SFY_INFO("fd %d: SOCKS BIND, the proxy listens at %s", fd,
             sfy_addr_str(&bnd, shown, sizeof shown));
    return 0;

fail:
    /* errno MUST be set to the reason (a SPEC table errno) before this label */
    saved = errno;
    sfy_fd_mark_internal(ctrl, 0);
    SFY_REAL(close)(ctrl);
    errno = saved;
    return -1;
}

/* The expected peer and whether the rule makes (family, socktype, port) a BIND. */
static enum sfy_listen_plan plan_for(int fd, int family, unsigned port, struct sfy_addr *peer)
{
    int have_peer = sfy_last_dest_get(peer);
    return sfy_listen_rule(family, sfy_socktype(fd), port, have_peer, sfy_cfg.valid);
}

/*
 * bind() hook logic. Returns 0, or -1 with errno: bind()'s own errors, or SPEC's errno when
 * the SOCKS BIND cannot be set up.
 */
int sfy_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct sfy_addr peer;
    int rc;
    if (!addr || len < sizeof(sa_family_t) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6) ||
        len < (addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                          : sizeof(struct sockaddr_in6)))
        return SFY_REAL(bind)(fd, addr, len);
    if (plan_for(fd, addr->sa_family, (unsigned)sockaddr_port(addr), &peer) != SFY_LISTEN_BIND)
        return SFY_REAL(bind)(fd, addr, len);
    rc = SFY_REAL(bind)(fd, addr, len);
    if (rc != 0 && errno != EADDRNOTAVAIL)
        return rc;
    return bind_open(fd, addr->sa_family, &peer);
}

/* Put `src` at fd's number, keeping fd's FD_CLOEXEC and O_NONBLOCK. 0 or -1 errno. */
static int replace_fd(int src, int fd)
{
    int fdflags = fcntl(fd, F_GETFD);
    int flflags = fcntl(fd, F_GETFL);
    int srcfl = fcntl(src, F_GETFL);
    if (fdflags < 0 || flflags < 0 || srcfl < 0)
        return -1;
    if (fcntl(src, F_SETFL, (srcfl & ~O_NONBLOCK) | (flflags & O_NONBLOCK)) != 0)
        return -1;
    if (sfy_real.dup3)
        return sfy_real.dup3(src, fd, (fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0 ? -1 : 0;
    if (SFY_REAL(dup2)(src, fd) < 0)
        return -1;
    return fcntl(fd, F_SETFD, fdflags);
}

/*
 * listen() hook logic. Returns 0, or -1 with errno (listen()'s own errors, or SPEC's errno
 * when a BIND for an unbound socket cannot be set up).
 */
int sfy_listen(int fd, int backlog)
{
    struct sfy_fdinfo info;
    int rc = 0, saved;
    pthread_mutex_lock(&bind_lock);
    if (!sfy_fd_get(fd, &info) || info.kind != SFY_FD_BIND) {
        /* never bound: listen() binds to port 0 (an ephemeral port), so the rule applies */
        struct sockaddr_storage local;
        socklen_t llen = sizeof local;
        struct sfy_addr peer;
        int family = socket_family(fd);
        if ((family != AF_INET && family != AF_INET6) ||
            SFY_REAL(getsockname)(fd, (struct sockaddr *)&local, &llen) != 0 ||
            sockaddr_port((struct sockaddr *)&local) != 0 ||
            plan_for(fd, family, 0, &peer) != SFY_LISTEN_BIND) {
            pthread_mutex_unlock(&bind_lock);
            return SFY_REAL(listen)(fd, backlog);
        }
        if (bind_open(fd, family, &peer) != 0 || !sfy_fd_get(fd, &info)) {
            saved = errno;
            pthread_mutex_unlock(&bind_lock);
            errno = saved;
            return -1;
        }
    }
    if (info.state == BIND_ARMED) {
        int ctrl = info.aux_fd;
        if (replace_fd(ctrl, fd) != 0) {
            /* errno MUST be a valid listen() error: ENOBUFS-like resource failure */
            saved = errno == EMFILE ? EMFILE : ENOBUFS;
            pthread_mutex_unlock(&bind_lock);
            errno = saved;
            return -1;
        }
        info.aux_fd = -1;
        info.state = BIND_LISTENING;
        sfy_fd_set(fd, &info); /* replaces the entry; cannot fail for an existing fd */
        sfy_fd_mark_internal(ctrl, 0);
        SFY_REAL(close)(ctrl);
        SFY_DBG("fd %d: listening through SOCKS BIND", fd);
    } else if (info.state == BIND_SPENT) {
        rc = SFY_REAL(listen)(fd, backlog); /* a fresh socket: the kernel decides */
    }
    pthread_mutex_unlock(&bind_lock);
    return rc;
}

/*
 * A socket armed for BIND (bound to port 0) is connect()ed instead: bind-before-connect, as
 * `curl --interface` does. Called by hook_connect.c before it routes: closes the control
 * connection (the proxy stops listening) and forgets the entry. Never fails.
 */
void sfy_bind_abandon(int fd)
{
    struct sfy_fdinfo info;
    pthread_mutex_lock(&bind_lock);
    if (sfy_fd_get(fd, &info) && info.kind == SFY_FD_BIND && info.state == BIND_ARMED) {
        sfy_fd_forget(fd, NULL);
        if (info.aux_fd >= 0) {
            sfy_fd_mark_internal(info.aux_fd, 0);
            SFY_REAL(close)(info.aux_fd);
        }
        SFY_DBG("fd %d: bound to port 0 but connected: SOCKS BIND abandoned", fd);
    }
    pthread_mutex_unlock(&bind_lock);
}

/* errno for accept() after a failed second reply (must be a valid accept() errno). */
static int accept_errno(int err)
{
    switch (err) {
    case EPROTO:
        return EPROTO;
    case EACCES:
        return EPERM; /* "firewall rules forbid connection" */
    case EINTR:
    case EAGAIN:
    case ENOMEM:
    case ENOBUFS:
    case EMFILE:
    case ENFILE:
        return err;
    default:
        return ECONNABORTED;
    }
}

/* Wait until the second reply can be read. 0, or -1 with errno EAGAIN (O_NONBLOCK and not
 * ready, or SO_RCVTIMEO expired) or EINTR. */
static int wait_second_reply(int fd)
{
    struct timeval tv = {0, 0};
    socklen_t tvlen = sizeof tv;
    struct pollfd p = {fd, POLLIN, 0};
    int timeout = -1, rc;
    if (fcntl(fd, F_GETFL) & O_NONBLOCK) {
        timeout = 0;
    } else if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen) == 0 &&
               (tv.tv_sec > 0 || tv.tv_usec > 0)) {
        timeout = (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
        if (timeout == 0)
            timeout = 1;
    }
    rc = poll(&p, 1, timeout);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        errno = EAGAIN;
        return -1;
    }
    return 0;
}

/*
 * accept()/accept4() hook logic (use_accept4 selects which real function a non-BIND fd goes
 * to). Returns the new fd, or -1 with a valid accept() errno.
 */
int sfy_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, int use_accept4)
{
    struct sfy_fdinfo info, conn;
    struct sfy_addr peer;
    int newfd = -1, fresh, family, fdflags, saved;

    if (!sfy_fd_get(fd, &info) || info.kind != SFY_FD_BIND || info.state != BIND_LISTENING) {
        if (use_accept4)
            return SFY_REAL(accept4)(fd, addr, len, flags);
        return SFY_REAL(accept)(fd, addr, len);
    }
    if ((flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) != 0) {
        errno = EINVAL;
        return -1;
    }
    if (wait_second_reply(fd) != 0)
        return -1;

    pthread_mutex_lock(&bind_lock);
    if (!sfy_fd_get(fd, &info) || info.kind != SFY_FD_BIND || info.state != BIND_LISTENING) {
        /* another thread took the one connection meanwhile */
        pthread_mutex_unlock(&bind_lock);
        errno = EINVAL;
        return -1;
    }
    family = info.local.ss_family;
    if (sfy_chain_read_reply(fd, &peer, sfy_now_ms() + SFY_DEFAULT_TIMEOUT_MS) != 0) {
        saved = accept_errno(errno);
        SFY_WARN("fd %d: SOCKS BIND: no connection from the peer (errno %d)", fd, errno);
        goto spend;
    }
    newfd = fcntl(fd, (flags & SOCK_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    if (newfd < 0) {
        saved = errno == EINVAL ? EMFILE : errno;
        pthread_mutex_unlock(&bind_lock);
        errno = saved;
        return -1;
    }
    /* the accepted socket's O_NONBLOCK comes from accept4's flags (Linux semantics) */
    fdflags = fcntl(newfd, F_GETFL);
    if (fdflags >= 0)
        fcntl(newfd, F_SETFL,
              (flags & SOCK_NONBLOCK) ? (fdflags | O_NONBLOCK) : (fdflags & ~O_NONBLOCK));

    memset(&conn, 0, sizeof conn);
    conn.kind = SFY_FD_CONNECT;
    conn.dest = peer;
    conn.aux_fd = -1;
    conn.peer_len = addr_for_family(&peer, family, &conn.peer);
    conn.local = info.local;
    conn.local_len = info.local_len;
    if (sfy_fd_set(newfd, &conn) != 0) {
        SFY_REAL(close)(newfd);
        saved = ENOMEM;
        goto spend;
    }
    saved = 0;
    if (addr && len) {
        socklen_t copy = *len < conn.peer_len ? *len : conn.peer_len;
        memcpy(addr, &conn.peer, copy);
        *len = conn.peer_len;
    }

spend:
    /* Exactly one connection per BIND: fd's number gets a fresh socket that is not
     * listening, so the tunnel lives only in newfd and accept() fails with EINVAL. */
    fdflags = fcntl(fd, F_GETFD);
    fresh = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fresh >= 0) {
        if (replace_fd(fresh, fd) != 0)
            SFY_WARN("fd %d: could not retire the BIND listener", fd);
        SFY_REAL(close)(fresh);
        if (fdflags >= 0)
            fcntl(fd, F_SETFD, fdflags);
    }
    info.state = BIND_SPENT;
    sfy_fd_set(fd, &info);
    pthread_mutex_unlock(&bind_lock);
    if (saved) {
        errno = saved;
        return -1;
    }
    SFY_INFO("fd %d: SOCKS BIND accepted as fd %d", fd, newfd);
    return newfd;
}
