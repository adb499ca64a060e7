/*
 * bind.h -- SOCKS BIND for listening TCP sockets (bind.c; hooks in hook_bind.c,
 * hook_listen.c, hook_accept.c).
 *
 * The rule (SPEC "Listening TCP sockets bound to port 0 ... become SOCKS BIND") is the pure
 * function sfy_listen_rule() below, kept free of any other header so that tests can compile
 * it alone through cffi. The mechanism is described at the top of bind.c.
 */
#ifndef SFY_BIND_H
#define SFY_BIND_H

#include <sys/socket.h>

/* What a TCP socket that is being bound or is starting to listen becomes. */
enum sfy_listen_plan {
    SFY_LISTEN_LOCAL = 0, /* a real, local listening socket: libc does everything */
    SFY_LISTEN_BIND,      /* SOCKS BIND at the proxy; the proxy listens for us */
};

/*
 * The rule, as one pure function (STYLE.md §12):
 *
 *   family        AF_INET / AF_INET6 (anything else stays local: Unix sockets, ...)
 *   socktype      SOCK_STREAM only (UDP goes through UDP ASSOCIATE, not BIND)
 *   port          the port the program asked for (host order); 0 = "system, pick one",
 *                 also what listen() on a socket that was never bound means
 *   have_peer     1 when the process has made a proxied connection: its destination is
 *                 the expected peer of the BIND request (RFC 1928 §4: BIND is for
 *                 "secondary connections after a primary connection is established")
 *   peer_proxied  1 when that expected peer is routed through the proxy (not NO_PROXY)
 *
 * A socket bound to an explicit port is a server of the program's own and stays local;
 * without a primary connection there is nobody to expect, so it stays local too.
 */
static inline enum sfy_listen_plan sfy_listen_rule(int family, int socktype, unsigned port,
                                                   int have_peer, int peer_proxied)
{
    if (family != AF_INET && family != AF_INET6)
        return SFY_LISTEN_LOCAL;
    if (socktype != SOCK_STREAM)
        return SFY_LISTEN_LOCAL;
    if (port != 0)
        return SFY_LISTEN_LOCAL;
    if (!have_peer || !peer_proxied)
        return SFY_LISTEN_LOCAL;
    return SFY_LISTEN_BIND;
}

/* bind.c: the logic behind the hooks. Each returns what the libc call returns (-1 and
 * errno on failure) and calls only sfy_real functions. */
int sfy_bind(int fd, const struct sockaddr *addr, socklen_t len);
int sfy_listen(int fd, int backlog);
int sfy_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, int use_accept4);
/* connect() on a socket armed for BIND (bound to port 0): drop the BIND (hook_connect.c). */
void sfy_bind_abandon(int fd);

#endif
