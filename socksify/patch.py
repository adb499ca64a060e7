"""Routing a whole Python program through SOCKS by patching the ``socket`` module.

Rules of this module (after gevent's ``monkey`` and trio's socket factory):

- ``install(settings)`` replaces methods ON the ``socket.socket`` class (so sockets created
  before the patch, ``from socket import socket``, ``ssl.SSLSocket`` and asyncio's sockets
  are all covered) and the resolver functions of the ``socket`` module. Every original goes
  into ONE registry, ``_saved``, filled with ``setdefault`` so the first original wins and a
  second ``install()`` only swaps the settings. ``uninstall()`` puts back exactly what was
  there, deleting the attributes that were inherited before (``socket.socket.connect`` is
  ``_socket.socket``'s).
- What is proxied is decided by one pure function, :func:`should_proxy`; everything else goes
  to the original method untouched. The connection to the proxy itself and AF_UNIX sockets
  are never touched; loopback IS proxied unless the bypass list names it (SPEC.md).
- The handshake is ``socksify.client``'s; this module only decides *when*, and keeps what a
  proxied socket must report afterwards (``getpeername``: the destination asked for;
  ``getsockname``: BND.ADDR/BND.PORT of the reply) in the fd-keyed table of
  ``socksify._sockets``. UDP framing and the relay side live in ``socksify._udp``.
- Non-blocking sockets: asyncio's ``BaseSelectorEventLoop.sock_connect`` is patched to run the
  handshake on the loop. Other non-blocking sockets (trio, hand-written selectors) get a
  blocking handshake in ``connect()``, bounded by the default timeout (or 30 s), after which
  ``connect()`` returns as if the connection completed at once (which POSIX allows). A
  further ``connect()`` on a socket with an open tunnel is EISCONN, as on any connected
  socket: the fd is connected to the proxy, so it must never reach the kernel or the tunnel.
- BIND (SPEC.md): a TCP socket bound to port 0, or never bound, that then ``listen()``s is
  turned into SOCKS BIND when a proxied connection preceded it (the expected peer is the
  destination of the most recent one). A socket bound to an explicit port stays local.
- No side effects at import: nothing happens until ``install()``.
"""

from __future__ import annotations

import _socket
import _thread  # the C RLock threading.RLock() returns, without importing threading
import errno
import os
import socket as _stdlib_socket
import sys
import time

from . import _log
from ._log import DEBUG, INFO, log
from ._resolver import PlaceholderMap, RemoteResolver, is_ip_literal
from ._sockets import drop_state, new_state, owner_fds, release, state_of, states
from .proxy import Settings, load_settings

__all__ = ["install", "is_installed", "patch", "patched", "should_proxy", "uninstall", "unpatch"]


class _LazyModule:
    """A submodule imported on first use, then put in its place: ``patch()`` itself must not
    load the protocol core (start-up cost); the first proxied connection does."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        name = f"{__package__}.{self._name}"
        __import__(name)  # (importlib.import_module would cost importlib at start-up)
        module = sys.modules[name]
        globals()[self._name] = module
        return getattr(module, attribute)


client = _LazyModule("client")
_udp = _LazyModule("_udp")

_MISSING = object()
#: (owner, attribute name) -> the original value, or _MISSING if it was inherited
_saved: dict = {}
_lock = _thread.RLock()
_active: _Active | None = None
_original_close = None  # socket.socket.close as install() found it

_base = _socket.socket
#: the C-level attributes: plain ints, without socket.socket's enum-converting properties
_family_of = _base.family.__get__
_type_of = _base.type.__get__
_SocketClass = _stdlib_socket.socket
_AF_INET = _stdlib_socket.AF_INET
_AF_INET6 = _stdlib_socket.AF_INET6
_INET = (_AF_INET, _AF_INET6)
_STREAM = _stdlib_socket.SOCK_STREAM
_DGRAM = _stdlib_socket.SOCK_DGRAM
_DEFAULT_TIMEOUT = _stdlib_socket._GLOBAL_DEFAULT_TIMEOUT
#: bound (seconds) on the blocking handshake a non-blocking socket gets when no default
#: timeout is set: in connect(), listen() (BIND) and a datagram socket's UDP ASSOCIATE
NONBLOCKING_HANDSHAKE_TIMEOUT = 30.0


def handshake_timeout(sock_timeout: float | None) -> float | None:
    """The bound (seconds, None = none) on a proxy handshake done for a socket whose
    timeout is ``sock_timeout``: its own timeout, or for a non-blocking socket (asyncio)
    the default timeout, or NONBLOCKING_HANDSHAKE_TIMEOUT when there is none."""
    if sock_timeout == 0.0:
        return _stdlib_socket.getdefaulttimeout() or NONBLOCKING_HANDSHAKE_TIMEOUT
    return sock_timeout
#: the most destinations whose routing decision is remembered (see _Active.target)
_ROUTES_MAX = 1024


def should_proxy(family, type, address, settings: Settings, proxy_endpoints=frozenset()) -> bool:
    """Decide whether a connection or datagram to ``address`` goes through the proxy.

    Args:
        family, type: of the socket (AF_UNIX and raw sockets are never proxied).
        address: ``(host, port, ...)``; host is an IP or, for remote DNS, the name a
            placeholder stands for.
        settings: for the bypass list.
        proxy_endpoints: ``(ip, port)`` pairs of the first hop: the connection to the proxy
            itself is never proxied.

    Loopback destinations are proxied like any other unless the bypass list names them.
    """
    if family not in _INET or type not in (_STREAM, _DGRAM):
        return False
    host, port = address[0], address[1]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if (host, port) in proxy_endpoints:
        return False
    if host.startswith("::ffff:") and (host[7:], port) in proxy_endpoints:
        return False
    return not settings.no_proxy.matches(host)


# --- the active configuration -----------------------------------------------------------


class _Active:
    """Installed settings plus what is derived from them once."""

    def __init__(self, settings: Settings, originals: dict):
        self.settings = settings
        self.chain = settings.chain
        self.first = settings.chain[0]
        self.remote_dns = settings.remote_dns
        # the range is parsed (ipaddress loaded) when the first placeholder is needed
        self.placeholders = PlaceholderMap(lambda: settings.dns_range)
        self.resolver = RemoteResolver(
            self.placeholders,
            [hop.host for hop in settings.chain],
            settings.no_proxy,
            originals,
        )
        self._proxy_infos = None
        self.endpoints = frozenset((hop.host, hop.port) for hop in settings.chain[:1])
        self.last_destination: tuple[str, int] | None = None
        #: (family, type, host, port) -> (placeholder generation then, target()): see target()
        self.routes: dict = {}

    def proxy_infos(self) -> list:
        """getaddrinfo results for the first hop (resolved locally once, then cached)."""
        infos = self._proxy_infos
        if infos is None:
            try:
                infos = client.proxy_addresses(self.first)
            except OSError as exc:
                raise client.proxy_unreachable(self.first, exc) from exc
            self._proxy_infos = infos
            self.endpoints = self.endpoints | {(info[4][0], info[4][1]) for info in infos}
        return infos

    def proxy_sockaddr(self, family: int) -> tuple:
        """The first hop's address in a form a socket of ``family`` can connect to."""
        infos = self.proxy_infos()
        for info in infos:
            if info[0] == family:
                return info[4]
        if family == _AF_INET6:  # an IPv4-only proxy from an IPv6 socket: IPv4-mapped
            host, port = infos[0][4][0], infos[0][4][1]
            return ("::ffff:" + host, port, 0, 0)
        raise client.proxy_unreachable(
            self.first,
            OSError(
                errno.EAFNOSUPPORT, "the proxy has only IPv6 addresses; this is an IPv4 socket"
            ),
        )

    def target(self, family: int, socktype: int, host, port: int):
        """Where ``(host, port)`` really goes: None (direct, unchanged), or
        ``(host_to_send, sockaddr_to_report)``, or ``("direct", sockaddr)`` for a placeholder
        whose name must go direct.

        Decisions that need no DNS (IP literals, remote-DNS names and their placeholders) are
        remembered per (family, type, host, port): a program connects to the same few places
        again and again, and the decision costs several parses and bypass-list checks. An
        entry is only good while no placeholder has been handed out since: a new one gives a
        name to an address that may have been decided as a plain IP (and refused) before,
        and one reused after wrap-around moves an address to another name.
        """
        entry = self.routes.get((family, socktype, host, port))
        if entry is not None and entry[0] == self.placeholders.generation:
            return entry[1]
        return self._decide(family, socktype, host, port)

    def _decide(self, family: int, socktype: int, host, port: int):
        key = (family, socktype, host, port)
        if isinstance(host, bytes):
            host = host.decode("idna")
        if self._proxy_infos is None:  # know the proxy's own addresses before deciding
            try:
                self.proxy_infos()
            except OSError:
                pass
        generation = self.placeholders.generation
        name = self.placeholders.name_for(host) if self.remote_dns else None
        if name is not None:
            send, report = name, host
        elif is_ip_literal(host):
            send = report = host
        elif self.remote_dns and not self.resolver.resolves_locally(host):
            send = host
            report = self.placeholders.address_for(
                host, 6 if family == _AF_INET6 and self.placeholders.has_family(6) else 4
            )
        else:  # socks4/socks5: the client resolves, as connect() itself would (no caching)
            infos = self.resolver.originals["getaddrinfo"](host, port, family, socktype)
            send = report = infos[0][4][0]
            return self._route(family, socktype, host, send, report, port)
        route = self._route(family, socktype, host, send, report, port)
        if self._proxy_infos is not None and (route is None or route[0] != "direct"):
            routes = self.routes
            if len(routes) >= _ROUTES_MAX:
                routes.clear()
            try:
                routes[key] = (generation, route)
            except TypeError:  # an unhashable host (bytearray): not remembered
                pass
        return route

    def _route(self, family: int, socktype: int, host: str, send: str, report: str, port):
        if not should_proxy(family, socktype, (send, port), self.settings, self.endpoints):
            if send == host:
                return None
            infos = self.resolver.originals["getaddrinfo"](send, port, family, socktype)
            return ("direct", infos[0][4])
        return send, _udp.in_family(family, report, port)

    def bind_applies(self) -> bool:
        destination = self.last_destination
        return destination is not None and not self.settings.no_proxy.matches(destination[0])


# --- TCP: connect --------------------------------------------------------------------------


#: options carried over when an IPv4 socket's fd is replaced to reach an IPv6-only proxy
_CARRIED_OPTIONS = (
    (_stdlib_socket.IPPROTO_TCP, _stdlib_socket.TCP_NODELAY),
    (_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_KEEPALIVE),
    (_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_RCVBUF),
    (_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_SNDBUF),
)


def _connect_proxy(sock, active: _Active) -> None:
    """Connect ``sock`` itself to the first hop (errors: ProxyUnreachableError)."""
    family = _family_of(sock)
    try:
        sockaddr = active.proxy_sockaddr(family)
    except client.ProxyUnreachableError:
        if family != _AF_INET:
            raise
        return _connect_proxy_over_ipv6(sock, active)
    try:
        _base.connect(sock, sockaddr)
    except OSError as exc:
        raise client.proxy_unreachable(active.first, exc) from exc


def _ipv6_replacement(sock):
    """A new IPv6 socket with ``sock``'s timeout and common options (see below)."""
    replacement = _base(_AF_INET6, _STREAM)
    replacement.settimeout(sock.gettimeout())
    for level, option in _CARRIED_OPTIONS:
        try:
            replacement.setsockopt(level, option, _base.getsockopt(sock, level, option))
        except OSError:
            pass
    return replacement


def _connect_proxy_over_ipv6(sock, active: _Active) -> None:
    """An IPv4 socket, an IPv6-only proxy: connect an IPv6 socket to the proxy and put it
    under the program's fd with dup2(). The program's socket object still says AF_INET;
    what it reports (getpeername/getsockname) comes from the table, in IPv4 form."""
    sockaddr = active.proxy_sockaddr(_AF_INET6)
    replacement = _ipv6_replacement(sock)
    try:
        try:
            _base.connect(replacement, sockaddr)
        except OSError as exc:
            raise client.proxy_unreachable(active.first, exc) from exc
        os.dup2(replacement.fileno(), _base.fileno(sock), inheritable=sock.get_inheritable())
    finally:
        replacement.close()


def _handshake_deadline(sock):
    """Deadline for a handshake in connect()/listen(): the socket's timeout. Non-blocking
    sockets get a bounded blocking handshake (see the module rules); returns
    ``(deadline, restore_nonblocking)``."""
    own = sock.gettimeout()
    timeout = handshake_timeout(own)
    if timeout is None:
        return None, False
    if own == 0.0:
        sock.settimeout(timeout)
        return time.monotonic() + timeout, True
    return time.monotonic() + timeout, False


def _fail_closed(sock) -> None:
    try:
        _base.shutdown(sock, _stdlib_socket.SHUT_RDWR)
    except OSError:
        pass


def _open_tunnel(sock, active: _Active, host: str, port: int, command):
    """Connect ``sock`` to the first hop and run the handshake for ``command``.

    On failure the socket is shut down (fail closed: nothing may go direct) and the error
    re-raised; a non-blocking socket is non-blocking again either way.
    """
    deadline, restore_nonblocking = _handshake_deadline(sock)
    try:
        _connect_proxy(sock, active)
        return client.handshake(sock, active.chain, host, port, command, deadline=deadline)
    except OSError as exc:
        _fail_closed(sock)
        log(
            __name__,
            INFO,
            "%s %s:%s via %s failed: %s",
            command.name,
            host,
            port,
            active.first,
            exc,
        )
        raise
    finally:
        if restore_nonblocking:
            sock.settimeout(0.0)


def _record_connection(sock, active: _Active, host: str, port: int, peer: tuple, tunnel) -> None:
    """What a proxied TCP socket reports from now on, and the destination a BIND expects."""
    state = new_state(sock, "tcp")
    state.peer = peer
    state.tunnel = tunnel  # state.bound (BND.ADDR/PORT) is worked out when first asked for
    active.last_destination = (host, port)


def _proxied_connect(sock, active: _Active, host: str, port: int, peer: tuple) -> None:
    state = state_of(sock)
    if state is not None and state.kind == "pending-bind":
        try:  # a source address; the proxy decides the rest
            _base.bind(sock, state.pending_bind)
        except OSError:
            pass
    _open_connection(sock, active, host, port, peer)


def _open_connection(sock, active: _Active, host: str, port: int, peer: tuple) -> None:
    """CONNECT through the proxy and record what the socket reports from now on."""
    tunnel = _open_tunnel(sock, active, host, port, client.Command.CONNECT)
    _record_connection(sock, active, host, port, peer, tunnel)
    if _log.enabled(DEBUG, __name__):
        log(__name__, DEBUG, "connected to %s:%s via %s", host, port, active.first)


def _connect(self, address):
    active = _active
    if active is None or _family_of(self) not in _INET:
        return _base.connect(self, address)
    socktype = _type_of(self)
    if socktype == _DGRAM:
        return _udp_connect(self, active, address)
    if socktype != _STREAM:
        return _base.connect(self, address)
    if states:
        _refuse_if_connected(self)
    target = active.target(_family_of(self), socktype, address[0], address[1])
    if target is None or target[0] == "direct":
        state = state_of(self)
        if state is not None and state.kind == "pending-bind":
            _base.bind(self, state.pending_bind)
            drop_state(self)
        return _base.connect(self, address if target is None else target[1])
    _proxied_connect(self, active, target[0], address[1], target[1])


def _refuse_if_connected(sock) -> None:
    """EISCONN, as connect(2) gives on a connected socket, for one whose tunnel is open
    (CONNECT, or SOCKS BIND). Its fd is connected to the proxy: connecting it to the proxy
    again gets EISCONN (taken for an unreachable proxy), or 0 once after a non-blocking
    first connect, and then a second handshake would go down the open tunnel."""
    state = state_of(sock)
    if state is not None and state.kind in ("tcp", "bind"):
        raise OSError(errno.EISCONN, os.strerror(errno.EISCONN))


def _connect_ex(self, address):
    try:
        _connect(self, address)
    except TimeoutError as exc:
        return exc.errno or errno.ETIMEDOUT
    except OSError as exc:
        if exc.errno is None:
            raise
        return exc.errno
    return 0


# --- TCP: BIND ---------------------------------------------------------------------------


def _bind(self, address):
    active = _active
    if (
        active is not None
        and _family_of(self) in _INET
        and _type_of(self) == _STREAM
        and address[1] == 0
        and active.bind_applies()
    ):
        # Port 0: maybe a SOCKS BIND at listen(); the real bind waits till we know.
        new_state(self, "pending-bind").pending_bind = address
        return None
    return _base.bind(self, address)


def _listen(self, *args):
    active = _active
    if active is None or _family_of(self) not in _INET or _type_of(self) != _STREAM:
        return _base.listen(self, *args)
    state = state_of(self)
    pending = state is not None and state.kind == "pending-bind"
    unbound = not pending and state is None and _base.getsockname(self)[1] == 0
    if (pending or unbound) and active.bind_applies():
        return _proxied_bind(self, active)
    if pending:
        _base.bind(self, state.pending_bind)
        drop_state(self)
    return _base.listen(self, *args)


def _proxied_bind(sock, active: _Active) -> None:
    """SOCKS BIND (RFC 1928 §4, SOCKS4.protocol "BIND"): the first reply at listen()."""
    host, port = active.last_destination
    tunnel = _open_tunnel(sock, active, host, port, client.Command.BIND)
    bound_host, bound_port = tunnel.bound
    if bound_host in ("0.0.0.0", "::"):  # "the proxy's address": the one we reached
        bound_host = _base.getpeername(sock)[0]
    state = new_state(sock, "bind")
    state.tunnel = tunnel
    state.bound = _udp.in_family(_family_of(sock), bound_host, bound_port)
    log(
        __name__,
        DEBUG,
        "BIND via %s: listening at %s:%s for %s:%s",
        active.first,
        bound_host,
        bound_port,
        host,
        port,
    )


def _accept(self):
    state = state_of(self) if _active is not None else None
    if state is None or state.kind not in ("bind", "bind-used"):
        return _original("accept")(self)
    if state.kind == "bind-used":
        raise OSError(errno.EINVAL, "a SOCKS BIND listener accepts one connection only")
    second = client.await_second_reply(self, state.tunnel)
    # Hand the proxy connection (now the data connection) to a new socket object and leave
    # a fresh, unconnected socket under the listener's fd: closing either is then final.
    fd = _base.fileno(self)
    conn_fd = os.dup(fd)
    fresh = _base(_family_of(self), _STREAM)
    try:
        os.dup2(fresh.fileno(), fd, inheritable=False)
    finally:
        fresh.close()
    conn = _SocketClass(_family_of(self), _STREAM, 0, fileno=conn_fd)
    conn.settimeout(_stdlib_socket.getdefaulttimeout())
    peer = _udp.in_family(_family_of(self), second.address.host, second.port)
    conn_state = new_state(conn, "tcp")
    conn_state.peer = peer
    conn_state.bound = state.bound
    state.kind = "bind-used"
    return conn, peer


# --- addresses -----------------------------------------------------------------------------


def _getsockname(self):
    state = state_of(self) if states else None
    if state is None or state.bound is None:
        if state is not None and state.kind == "tcp" and state.tunnel is not None:
            # a CONNECT: the reply's BND.ADDR/BND.PORT, as this socket's family shows it
            state.bound = _udp.in_family(_family_of(self), *state.tunnel.bound)
            return state.bound
        if state is not None and state.kind == "pending-bind":
            return _udp.in_family(
                _family_of(self),
                state.pending_bind[0] or ("::" if _family_of(self) == _AF_INET6 else "0.0.0.0"),
                0,
            )
        return _base.getsockname(self)
    return state.bound


def _getpeername(self):
    state = state_of(self) if states else None
    if state is None or state.peer is None:
        return _base.getpeername(self)
    return state.peer


def _close(self):
    if states:
        drop_state(self)
    original = _original_close  # every socket's close() comes here: one global, no lookup
    return (_original("close") if original is None else original)(self)


def _detach(self):
    state = state_of(self) if states else None
    if state is not None:
        state.detached = True
    return _original("detach")(self)


def _dup(self):
    new = _original("dup")(self)
    state = state_of(self) if states else None
    if state is not None and state.udp is None:
        copy = new_state(new, state.kind)
        copy.peer, copy.bound, copy.tunnel = state.peer, state.bound, state.tunnel
    return new


# --- UDP -----------------------------------------------------------------------------------


def _udp_target(sock, active: _Active, address):
    return active.target(_family_of(sock), _DGRAM, address[0], address[1])


def _udp_connect(sock, active: _Active, address):
    target = _udp_target(sock, active, address)
    if target is None or target[0] == "direct":
        state = state_of(sock)
        if state is not None:
            state.udp_peer = state.peer = None
        return _base.connect(sock, address if target is None else target[1])
    state = _udp.associate(sock, active, state_of(sock))
    state.udp_peer = (target[0], address[1])
    state.peer = target[1]
    return None


def _sendto(self, data, *args):
    active = _active
    if active is None or _type_of(self) != _DGRAM or _family_of(self) not in _INET:
        return _base.sendto(self, data, *args)
    address = args[-1]
    target = _udp_target(self, active, address)
    if target is None:
        return _base.sendto(self, data, *args)
    return _sendto_target(self, active, target, data, args[0] if len(args) == 2 else 0, address)


def _sendto_target(self, active: _Active, target, data, flags: int, address):
    """Send ``data`` to ``address`` by its (not None) :meth:`_Active.target`."""
    if target[0] == "direct":
        return _base.sendto(self, data, flags, target[1])
    state = _udp.associate(self, active, state_of(self))
    if target[0] != target[1][0]:  # a name (remote DNS), reported as its placeholder
        state.udp_names[address[1]] = target[1][0]
    else:  # an address: what comes back from this port is its own, not a name's
        state.udp_names.pop(address[1], None)
    packet = _udp.wrap(data, target[0], address[1])
    _base.sendto(self, packet, flags, state.udp.relay)
    return len(memoryview(data))


def _send(self, data, flags=0):
    if _type_of(self) == _DGRAM and states:
        state = state_of(self)
        if state is not None and state.udp_peer is not None:
            packet = _udp.wrap(data, *state.udp_peer)
            _base.sendto(self, packet, flags, state.udp.relay)
            return len(memoryview(data))
    return _base.send(self, data, flags)


def _sendmsg(self, buffers, ancdata=(), flags=0, address=None):
    active = _active
    if _type_of(self) == _DGRAM and active is not None and _family_of(self) in _INET:
        if address is not None:
            target = _udp_target(self, active, address)
            if target is not None:
                if ancdata:
                    raise OSError(errno.EOPNOTSUPP, "ancillary data cannot be relayed by SOCKS")
                data = b"".join(bytes(buffer) for buffer in buffers)
                return _sendto_target(self, active, target, data, flags, address)
        else:
            state = state_of(self)
            if state is not None and state.udp_peer is not None:
                return _send(self, b"".join(bytes(buffer) for buffer in buffers), flags)
    if address is None:
        return _base.sendmsg(self, buffers, ancdata, flags)
    return _base.sendmsg(self, buffers, ancdata, flags, address)


def _udp_state(sock):
    if _type_of(sock) != _DGRAM or not states:
        return None
    state = state_of(sock)
    return state if state is not None and state.udp is not None else None


def _recvfrom(self, bufsize, flags=0):
    state = _udp_state(self)
    if state is None:
        return _base.recvfrom(self, bufsize, flags)
    return _udp.receive(self, state, _active, bufsize, flags)


def _recv(self, bufsize, flags=0):
    state = _udp_state(self)
    if state is None:
        return _base.recv(self, bufsize, flags)
    return _udp.receive(self, state, _active, bufsize, flags)[0]


def _recv_into(self, buffer, nbytes=0, flags=0):
    state = _udp_state(self)
    if state is None:
        return _base.recv_into(self, buffer, nbytes, flags)
    data, _ = _udp.receive(self, state, _active, nbytes or len(buffer), flags)
    memoryview(buffer)[: len(data)] = data
    return len(data)


def _recvfrom_into(self, buffer, nbytes=0, flags=0):
    state = _udp_state(self)
    if state is None:
        return _base.recvfrom_into(self, buffer, nbytes, flags)
    data, address = _udp.receive(self, state, _active, nbytes or len(buffer), flags)
    memoryview(buffer)[: len(data)] = data
    return len(data), address


def _recvmsg(self, bufsize, ancbufsize=0, flags=0):
    state = _udp_state(self)
    if state is None:
        return _base.recvmsg(self, bufsize, ancbufsize, flags)
    return _udp.receive_msg(self, state, _active, bufsize, flags)


def _recvmsg_into(self, buffers, ancbufsize=0, flags=0):
    state = _udp_state(self)
    if state is None:
        return _base.recvmsg_into(self, buffers, ancbufsize, flags)
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    data, _, msg_flags, address = _udp.receive_msg(self, state, _active, sum(map(len, views)),
                                                   flags)
    offset = 0
    for view in views:  # scattered over the buffers in order, as recvmsg_into(2) fills them
        chunk = data[offset : offset + len(view)]
        view[: len(chunk)] = chunk
        offset += len(chunk)
    return len(data), [], msg_flags, address


_SOCKET_METHODS = {
    "connect": _connect,
    "connect_ex": _connect_ex,
    "bind": _bind,
    "listen": _listen,
    "accept": _accept,
    "getsockname": _getsockname,
    "getpeername": _getpeername,
    "close": _close,
    "detach": _detach,
    "dup": _dup,
    "sendto": _sendto,
    "send": _send,
    "sendmsg": _sendmsg,
    "recv": _recv,
    "recv_into": _recv_into,
    "recvfrom": _recvfrom,
    "recvfrom_into": _recvfrom_into,
    "recvmsg": _recvmsg,
    "recvmsg_into": _recvmsg_into,
}


# --- module functions ------------------------------------------------------------------


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    active = _active
    if active is None or not active.remote_dns:
        return _original_function("getaddrinfo")(host, port, family, type, proto, flags)
    return active.resolver.getaddrinfo(host, port, family, type, proto, flags)


def _resolver_hook(name: str):
    def hook(*args):
        active = _active
        if active is None or not active.remote_dns:
            return _original_function(name)(*args)
        return getattr(active.resolver, name)(*args)

    hook.__name__ = hook.__qualname__ = name
    hook.__doc__ = f"socksify: {name} answering placeholders for remote DNS (RFC 3089)."
    return hook


def _create_connection(
    address, timeout=_DEFAULT_TIMEOUT, source_address=None, *, all_errors=None
):
    """socket.create_connection, straight to the proxy for IP literals and remote-DNS names
    (no resolver round trip, no placeholder detour); everything else is the original, which
    resolves and calls the patched connect(). (``all_errors``: Python 3.11+, passed on.)"""
    active = _active
    host, port = address[0], address[1]
    if active is None or all_errors is not None or host.__class__ is not str:
        kwargs = {} if all_errors is None else {"all_errors": all_errors}
        return _original_function("create_connection")(address, timeout, source_address, **kwargs)
    # Names never contain ":", so this is the family of an IP literal and AF_INET otherwise.
    family = _AF_INET6 if ":" in host else _AF_INET
    entry = active.routes.get((family, _STREAM, host, port))
    if entry is not None and entry[0] == active.placeholders.generation:
        target = entry[1]  # decided before (see _Active.target)
    else:
        literal = is_ip_literal(host)
        if not literal and not (active.remote_dns and not active.resolver.resolves_locally(host)):
            return _original_function("create_connection")(address, timeout, source_address)
        if not literal:
            family = _AF_INET
        target = active.target(family, _STREAM, host, port)
    if target is None or target[0] == "direct":
        return _original_function("create_connection")(address, timeout, source_address)
    sock = _SocketClass(family, _STREAM)
    try:
        if timeout is not _DEFAULT_TIMEOUT:
            sock.settimeout(timeout)
        if source_address:
            _base.bind(sock, source_address)
        _open_connection(sock, active, target[0], port, target[1])
        return sock
    except BaseException:
        sock.close()
        raise


_MODULE_FUNCTIONS = {
    "getaddrinfo": _getaddrinfo,
    "gethostbyname": _resolver_hook("gethostbyname"),
    "gethostbyname_ex": _resolver_hook("gethostbyname_ex"),
    "gethostbyaddr": _resolver_hook("gethostbyaddr"),
    "getnameinfo": _resolver_hook("getnameinfo"),
    "create_connection": _create_connection,
}


def _original(name: str):
    """The original ``socket.socket`` method ``name`` (Python-level or inherited)."""
    value = _saved.get((_SocketClass, name), _MISSING)
    if value is _MISSING:
        return getattr(_base, name)
    return value


def _original_function(name: str):
    return _saved.get((_stdlib_socket, name)) or getattr(_stdlib_socket, name)


# --- asyncio --------------------------------------------------------------------------------


async def _sock_connect(self, sock, address):
    """BaseSelectorEventLoop.sock_connect with the SOCKS handshake run on the loop."""
    original = _saved[(_selector_loop_class(), "sock_connect")]
    active = _active
    if active is None or _family_of(sock) not in _INET or _type_of(sock) != _STREAM:
        return await original(self, sock, address)
    target = active.target(_family_of(sock), _STREAM, address[0], address[1])
    if target is None or target[0] == "direct":
        return await original(self, sock, address if target is None else target[1])
    host, port = target[0], address[1]
    try:
        try:
            sockaddr = active.proxy_sockaddr(_family_of(sock))
        except client.ProxyUnreachableError:
            if _family_of(sock) != _AF_INET:
                raise
            await _async_connect_proxy_over_ipv6(self, original, sock, active)
        else:
            await original(self, sock, sockaddr)
    except client.ProxyError:
        raise
    except OSError as exc:
        raise client.proxy_unreachable(active.first, exc) from exc
    try:
        tunnel = await client.async_handshake(self, sock, active.chain, host, port)
    except OSError:
        _fail_closed(sock)
        raise
    _record_connection(sock, active, host, port, target[1], tunnel)


async def _async_connect_proxy_over_ipv6(loop, original, sock, active: _Active) -> None:
    """:func:`_connect_proxy_over_ipv6` with the connect awaited on the loop."""
    replacement = _ipv6_replacement(sock)
    try:
        await original(loop, replacement, active.proxy_sockaddr(_AF_INET6))
        os.dup2(replacement.fileno(), _base.fileno(sock), inheritable=sock.get_inheritable())
    finally:
        replacement.close()


def _selector_loop_class():
    return sys.modules["asyncio.selector_events"].BaseSelectorEventLoop


def _patch_asyncio() -> None:
    cls = _selector_loop_class()
    _replace(cls, "sock_connect", _sock_connect)


class _AsyncioImportHook:
    """A meta path finder that patches asyncio when it is first imported, so that
    ``patch()`` need not import it (about 20 ms)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "asyncio.selector_events":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader:
    """Wraps the real loader of asyncio.selector_events: run it, then patch the loop."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        with _lock:
            if _active is not None:
                _patch_asyncio()


_asyncio_hook = _AsyncioImportHook()


# --- install / uninstall -------------------------------------------------------------------


def _replace(owner, name: str, value) -> None:
    _saved.setdefault((owner, name), owner.__dict__.get(name, _MISSING))
    setattr(owner, name, value)


def install(settings: Settings) -> dict:
    """Patch ``socket`` (and asyncio, now or when it is imported) to use ``settings``.

    A second call only replaces the settings. Returns what was replaced, keyed by owner
    ``__name__`` and attribute: ``{"socket.getaddrinfo": original, "socket.connect": None,
    ...}`` (the ``socket`` module's functions and ``socket.socket``'s methods share the
    ``socket.`` prefix; inherited methods show as None).
    """
    global _active, _original_close
    with _lock:
        for name, hook in _MODULE_FUNCTIONS.items():
            _replace(_stdlib_socket, name, hook)
        for name, hook in _SOCKET_METHODS.items():
            _replace(_SocketClass, name, hook)
        _original_close = _original("close")
        originals = {name: _original_function(name) for name in _MODULE_FUNCTIONS}
        _active = _Active(settings, originals)
        if "asyncio.selector_events" in sys.modules:
            _patch_asyncio()
        elif _asyncio_hook not in sys.meta_path:
            sys.meta_path.insert(0, _asyncio_hook)
        _log.configure(settings.log_level)
        log(__name__, DEBUG, "patched: proxy %s", ",".join(str(hop) for hop in settings.chain))
        return {
            f"{getattr(owner, '__name__', owner)}.{name}": (None if value is _MISSING else value)
            for (owner, name), value in _saved.items()
        }


def uninstall() -> None:
    """Put back every original exactly; end UDP associations. Harmless when not installed."""
    global _active, _original_close
    with _lock:
        _active = None
        _original_close = None
        if _asyncio_hook in sys.meta_path:
            sys.meta_path.remove(_asyncio_hook)
        for (owner, name), value in reversed(list(_saved.items())):
            if value is _MISSING:
                if name in owner.__dict__:
                    delattr(owner, name)
            else:
                setattr(owner, name, value)
        _log.unconfigure()
        _saved.clear()
        for state in list(states.values()):
            release(state)
        states.clear()
        owner_fds.clear()


def is_installed() -> bool:
    return _active is not None


def current_settings() -> Settings | None:
    active = _active
    return None if active is None else active.settings


def patch(proxy=None, *, no_proxy=None, log_level=None) -> Settings:
    """Route this process's sockets through ``proxy`` (URL or chain; None: the environment).

    Raises:
        socksify.ConfigError: bad or missing configuration (nothing is patched then).
    """
    settings = load_settings(proxy=proxy, no_proxy=no_proxy, log_level=log_level)
    install(settings)
    return settings


def unpatch() -> None:
    """Undo :func:`patch`: every patched attribute is restored exactly."""
    uninstall()


def patched(proxy=None, *, no_proxy=None, log_level=None):
    """``with socksify.patched("socks5h://..."):`` patch for the block; yields the Settings.

    On exit the previous state comes back: unpatched, or the settings patched before.
    """
    import contextlib  # here, not at the top: about 0.4 ms of ``import socksify`` otherwise

    return contextlib.contextmanager(_patched_block)(proxy, no_proxy, log_level)


def _patched_block(proxy, no_proxy, log_level):
    previous = current_settings()
    settings = patch(proxy, no_proxy=no_proxy, log_level=log_level)
    try:
        yield settings
    finally:
        if previous is None:
            uninstall()
        else:
            install(previous)
