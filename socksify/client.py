"""The SOCKS client: the only module that does handshake I/O.

Rules of this module:

- The protocol lives in ``socksify.protocol``; here a short generator (``_negotiate``) says
  what to send and which reply to wait for, and two small runners do the I/O: one over a
  blocking socket (``handshake``), one on an asyncio loop (``async_handshake``). Where
  bytes may follow the awaited reply, both read the same way (``_take``):
  ``recv(MSG_PEEK)``, feed the core, then remove from the kernel only the bytes the core
  consumed (the blocking runner reads plainly while nothing can follow, ``_MID_HANDSHAKE``).
  Bytes the proxy sent past its final reply (a server that speaks first, like FTP or SMTP,
  can arrive in the same segment) stay in the socket for the program, and a chain's next
  hop reads its own reply from where the last one ended.
- I/O on the proxy connection uses the ``_socket.socket`` methods directly, so the patched
  ``socket.socket`` methods (``socksify.patch``) never see our own traffic.
- Destination names: socks4/socks5 resolve them here with the ORIGINAL ``getaddrinfo``
  (captured at import, before any patch); socks4a/socks5h send the name. For a chain, the hop
  that carries a request decides: hop N's scheme decides how hop N+1's host is sent, the last
  hop's scheme how the destination is sent.
- Errors are built by ``socksify.errors`` only; the stdlib ``TimeoutError`` passes through.
"""

from __future__ import annotations

import _socket
import dataclasses
import errno
import functools
import os
import select
import socket
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

from . import errors
from ._log import DEBUG, log
from ._log import enabled as log_enabled
from .errors import ProxyAuthError, ProxyError, ProxyProtocolError, ProxyUnreachableError
from .protocol import (
    NEED_DATA,
    Address,
    AddressType,
    AuthMethod,
    Command,
    Connection,
    Greeting,
    Reply,
    Request,
    Role,
    SOCKSError,
    State,
    UserPassAuth,
)
from .proxy import ProxyConfig, load_settings, parse_chain

if TYPE_CHECKING:  # asyncio costs ~20 ms to import; only the annotations need it
    import asyncio

__all__ = [
    "Tunnel",
    "async_handshake",
    "await_second_reply",
    "create_connection",
    "handshake",
    "resolve",
    "resolve_ptr",
]


#: the C resolver, which socksify.patch never replaces: local DNS for socks4/socks5 and for
#: the proxy itself (results carry plain ints for family and type)
_getaddrinfo = _socket.getaddrinfo
_connect = _socket.socket.connect
_send = _socket.socket.send
_recv = _socket.socket.recv
_fileno = _socket.socket.fileno
_os_read = os.read
_os_write = os.write
_poll = getattr(select, "poll", None)  # not on Windows: the settimeout() way there
_POLLIN = getattr(select, "POLLIN", 1)
_POLLOUT = getattr(select, "POLLOUT", 4)
_MSG_PEEK = socket.MSG_PEEK
_READ_SIZE = 1024  # more than the longest proxy message: a SOCKS5 reply with a domain (262)
_AFTER_HANDSHAKE = (State.TUNNEL, State.UDP_ASSOCIATED)
#: states whose next message cannot be followed by more bytes until we send again, so a
#: plain recv() cannot read past it (saves the peek's second syscall)
_MID_HANDSHAKE = (State.AWAIT_METHOD, State.AWAIT_AUTH_RESULT)


@dataclasses.dataclass
class Tunnel:
    """A finished handshake: the last hop's ``Connection`` and its (first) reply."""

    proxy: ProxyConfig
    conn: Connection
    reply: Reply

    @property
    def bound(self) -> tuple[str, int]:
        """BND.ADDR and BND.PORT of the reply: the address the destination sees."""
        return (self.reply.address.host, self.reply.port)


# Enum members compared on every handshake, as globals: attribute access on an enum class goes
# through its metaclass and costs about 20 times a global lookup.
_CLIENT = Role.CLIENT
_NO_AUTH = AuthMethod.NO_AUTH
_USERNAME_PASSWORD = AuthMethod.USERNAME_PASSWORD
_NO_ACCEPTABLE = AuthMethod.NO_ACCEPTABLE
_IPV6 = AddressType.IPV6
#: Tor's lookups (tor-socks-extensions.txt §2) carry the host as given, whatever the scheme:
#: the proxy resolving it is what they are for
_LOOKUPS = (Command.RESOLVE, Command.RESOLVE_PTR)

#: RFC 1928 §3 method offers: no authentication, plus RFC 1929 when we have a user name
_GREETINGS = {
    False: Greeting((AuthMethod.NO_AUTH,)),
    True: Greeting((AuthMethod.NO_AUTH, AuthMethod.USERNAME_PASSWORD)),
}


class _Read:
    """I/O request from ``_negotiate``: the next event ``conn`` decodes from the proxy."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection):
        self.conn = conn


def _as_chain(proxy: ProxyConfig | Sequence[ProxyConfig]) -> tuple[ProxyConfig, ...]:
    return (proxy,) if isinstance(proxy, ProxyConfig) else tuple(proxy)


_address_cache: dict[str, Address] = {}  # Address values are immutable; parsing costs


def _wire_address(host: str, carrier: ProxyConfig) -> Address:
    """The DST.ADDR for ``host`` in a request to ``carrier`` (resolving locally if it must)."""
    address = _address_cache.get(host)
    if address is None:
        address = Address.from_host(host)
        if len(_address_cache) >= 1024:
            _address_cache.clear()
        _address_cache[host] = address
    if address.is_ip or carrier.remote_dns:
        return address
    # socks4 / socks5: the client resolves (SPEC.md "Proxy URLs"). SOCKS4 carries IPv4 only.
    family = socket.AF_INET if carrier.version == 4 else socket.AF_UNSPEC
    infos = _getaddrinfo(host, None, family, socket.SOCK_STREAM)
    return Address.from_host(infos[0][4][0])


def _negotiate(
    hop: ProxyConfig, host: str, port: int, command: Command
) -> Generator[bytes | _Read, object, Tunnel]:
    """One hop's handshake: yields bytes to send or ``_Read``; returns the ``Tunnel``.

    RFC 1928 §3 (method selection), RFC 1929 §2 (username/password), RFC 1928 §4/§6
    (request/reply); SOCKS4.protocol and SOCKS4A.protocol for version 4.
    """
    version = hop.version
    conn = Connection(_CLIENT, version)
    if version == 5:
        yield conn.send(_GREETINGS[hop.username is not None])
        # Built while the greeting is on its way: the work overlaps the round trip.
        address = Address.from_host(host) if command in _LOOKUPS else _wire_address(host, hop)
        request = Request(command, address, port)
        selected = yield _Read(conn)
        method = selected.method
        if method == _NO_AUTH:
            pass  # the usual case: straight to the request
        elif method == _USERNAME_PASSWORD:
            user = (hop.username or "").encode()
            password = (hop.password or "").encode()
            yield conn.send(UserPassAuth(user, password))
            result = yield _Read(conn)
            if not result.success:
                raise ProxyAuthError(
                    errors.ERRNO_AUTH_FAILED,
                    f"proxy {hop} rejected the user name or password (RFC 1929)",
                )
        elif method == _NO_ACCEPTABLE:
            raise ProxyAuthError(
                errors.ERRNO_NO_ACCEPTABLE_METHOD,
                f"proxy {hop} accepts none of our authentication methods"
                + ("" if hop.username is not None else " (does it need a user name?)"),
            )
        else:
            raise ProxyProtocolError(
                errors.ERRNO_PROTOCOL_VIOLATION,
                f"proxy {hop} selected method 0x{selected.method:02x}, which we did not offer",
            )
    else:
        address = Address.from_host(host) if command in _LOOKUPS else _wire_address(host, hop)
        if address.type is _IPV6:
            raise ProxyError(
                errno.EAFNOSUPPORT, f"SOCKS4 proxy {hop} cannot carry IPv6 destination {host}"
            )
        request = Request(command, address, port, user_id=(hop.username or "").encode())
    yield conn.send(request)
    reply = yield _Read(conn)
    if not conn.reply_succeeded(reply):
        raise errors.refused(version, reply.code, hop, f"{command.name} {host}:{port}")
    if log_enabled(DEBUG, __name__):  # the arguments cost more than the check
        log(
            __name__,
            DEBUG,
            "%s: %s %s:%s granted, bound %s:%s",
            hop,
            command.name,
            host,
            port,
            reply.address.host,
            reply.port,
        )
    return Tunnel(hop, conn, reply)


def _chain_steps(chain, host: str, port: int, command: Command):
    """Hop 1 CONNECTs to hop 2, ..., the last hop runs ``command`` for the destination."""
    if len(chain) == 1:  # the common case, without a generator in between
        return _negotiate(chain[0], host, port, command)
    return _hops(chain, host, port, command)


def _hops(chain, host: str, port: int, command: Command):
    for index, hop in enumerate(chain):
        if index + 1 < len(chain):
            following = chain[index + 1]
            yield from _negotiate(hop, following.host, following.port, Command.CONNECT)
        else:
            return (yield from _negotiate(hop, host, port, command))


def _take(conn: Connection, data: bytes) -> tuple[object, int]:
    """Feed peeked ``data`` to ``conn``: (event or NEED_DATA, bytes to remove from the socket).

    Bytes past the end of the handshake (``trailing_data``) are left in the kernel.
    """
    conn.receive_data(data)
    event = conn.next_event()
    if conn.state in _AFTER_HANDSHAKE:
        return event, len(data) - len(conn.trailing_data)
    return event, len(data)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(errno.ETIMEDOUT, "timed out talking to the SOCKS proxy")
    return left


def _read_event(sock: socket.socket, conn: Connection, deadline: float | None):
    while True:
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
        if deadline is not None:
            sock.settimeout(_remaining(deadline))
        if conn.state in _MID_HANDSHAKE:  # nothing can follow before we speak: plain read
            conn.receive_data(_recv(sock, _READ_SIZE))
            continue
        data = _recv(sock, _READ_SIZE, _MSG_PEEK)
        event, consumed = _take(conn, data)
        if consumed:
            _recv(sock, consumed)
        if event is not NEED_DATA:
            return event


def _sendall(sock: socket.socket, data: bytes, deadline: float | None) -> None:
    sent = 0
    if deadline is None:  # handshake messages are small: one send() is the usual case
        sent = _send(sock, data)
        if sent == len(data):
            return
    view = memoryview(data)[sent:]
    while view:
        if deadline is not None:
            sock.settimeout(_remaining(deadline))
        view = view[_send(sock, view) :]


class _Timed:
    """Handshake I/O under a deadline on a socket that has a timeout.

    CPython keeps the descriptor of any socket with a timeout (0 included) in non-blocking
    mode and polls inside each call. So instead of narrowing the socket's timeout before every
    call (``settimeout()`` is an ``ioctl()`` each time, and once more to put it back), wait
    with ``poll()`` for the time left, then read or write the descriptor, which cannot block.
    The socket's own timeout is never touched.
    """

    __slots__ = ("deadline", "fd", "poller")

    def __init__(self, fd: int, deadline: float):
        self.fd = fd
        self.deadline = deadline
        self.poller = _poll()
        self.poller.register(fd, _POLLIN)  # no system call: poll objects live in user space

    def wait(self, events: int) -> None:
        """Until the descriptor is ready for ``events`` (or failed); TimeoutError at the
        deadline."""
        left = self.deadline - time.monotonic()
        if left > 0:
            self.poller.modify(self.fd, events)
            if self.poller.poll(int(left * 1000) + 1):  # ms, rounded up
                return
        raise TimeoutError(errno.ETIMEDOUT, "timed out talking to the SOCKS proxy")

    def read_event(self, sock: socket.socket, conn: Connection):
        """:func:`_read_event` under the deadline."""
        fd = self.fd
        while True:
            event = conn.next_event()
            if event is not NEED_DATA:
                return event
            self.wait(_POLLIN)
            if conn.state in _MID_HANDSHAKE:
                conn.receive_data(_os_read(fd, _READ_SIZE))
                continue
            event, consumed = _take(conn, _recv(sock, _READ_SIZE, _MSG_PEEK))
            if consumed:
                _os_read(fd, consumed)  # peeked already: all there
            if event is not NEED_DATA:
                return event

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[_os_write(self.fd, view) :]
            except BlockingIOError:
                self.wait(_POLLOUT)


_NARROWED_NOTHING = object()


def _run(sock: socket.socket, steps, deadline: float | None):
    """Drive ``steps`` over ``sock``; protocol errors become ProxyProtocolError.

    Without a ``deadline`` every call blocks as the socket itself does. With one, a socket
    that has a timeout gets :class:`_Timed` I/O; a blocking socket (or a platform without
    ``poll()``) gets its timeout narrowed per call, and put back at the end.
    """
    timed = None
    saved = _NARROWED_NOTHING
    if deadline is not None:
        timeout = sock.gettimeout()
        fd = _fileno(sock)
        if timeout is not None and _poll is not None and fd >= 0:
            timed = _Timed(fd, deadline)
        else:
            saved = timeout
    try:
        request = next(steps)
        if timed is None:
            while True:
                if isinstance(request, _Read):
                    request = steps.send(_read_event(sock, request.conn, deadline))
                else:
                    _sendall(sock, request, deadline)
                    request = steps.send(None)
        else:
            while True:
                if isinstance(request, _Read):
                    request = steps.send(timed.read_event(sock, request.conn))
                else:
                    timed.sendall(request)
                    request = steps.send(None)
    except StopIteration as done:
        return done.value
    except _PASS_THROUGH:
        raise
    except (SOCKSError, OSError) as exc:
        raise _handshake_failure(exc) from exc
    finally:
        if saved is not _NARROWED_NOTHING:
            sock.settimeout(saved)


# Errors that keep their own type: a timeout, "not ready yet" on a non-blocking socket,
# socks4/socks5's local name resolution, and our own ProxyError family.
_PASS_THROUGH = (ProxyError, TimeoutError, BlockingIOError, socket.gaierror)


def _handshake_failure(exc: SOCKSError | OSError) -> ProxyProtocolError:
    """A protocol violation by the proxy, or its connection breaking (reset, EPIPE…) before
    the handshake was done.

    Both are the proxy failing to finish the protocol: a ProxyProtocolError. A broken
    connection keeps its own errno (ECONNRESET, as the native shim reports it), which also
    makes the error the matching builtin (ConnectionResetError).
    """
    if isinstance(exc, SOCKSError):
        return ProxyProtocolError(
            errors.ERRNO_PROTOCOL_VIOLATION, f"SOCKS protocol violation by the proxy: {exc}"
        )
    code = exc.errno or errors.ERRNO_PROTOCOL_VIOLATION
    reason = exc.strerror or str(exc) or "connection broke"
    return ProxyProtocolError(code, f"SOCKS proxy connection broke during the handshake: {reason}")


def handshake(
    sock: socket.socket,
    proxy: ProxyConfig | Sequence[ProxyConfig],
    dest_host: str,
    dest_port: int,
    command: Command = Command.CONNECT,
    *,
    deadline: float | None = None,
) -> Tunnel:
    """Run the SOCKS handshake(s) over ``sock``, already connected to the first hop.

    Args:
        sock: a connected TCP socket to ``proxy`` (or the chain's first hop).
        proxy: a :class:`ProxyConfig` or a chain; hop N reaches hop N+1 with CONNECT.
        dest_host: IP literal or name (sent as is with socks4a/socks5h, else resolved here).
        dest_port: destination port (0 is legal for BIND and UDP ASSOCIATE).
        command: CONNECT, BIND (returns after the FIRST reply; see
            :func:`await_second_reply`) or UDP_ASSOCIATE.
        deadline: ``time.monotonic()`` value by which the handshake must be done, or None to
            keep the socket's own blocking mode and timeout.

    Returns:
        The :class:`Tunnel`: the last hop's reply (BND.ADDR/PORT) and connection.

    Raises:
        ProxyAuthError, ProxyRefusedError, ProxyProtocolError: see ``socksify.errors``.
        TimeoutError: the deadline or the socket timeout passed.
        socket.gaierror: socks4/socks5 could not resolve ``dest_host`` locally.
        ProxyProtocolError: also when the connection to the proxy broke mid-handshake; it
            keeps that errno (a reset is ECONNRESET and a ConnectionResetError).
    """
    return _run(sock, _chain_steps(_as_chain(proxy), dest_host, dest_port, command), deadline)


def await_second_reply(sock: socket.socket, tunnel: Tunnel, deadline: float | None = None):
    """BIND (RFC 1928 §4 "BIND"): wait for the reply sent when the inbound connection arrives.

    Returns the second ``Reply`` (its address is the peer that connected). With a
    non-blocking ``sock`` it raises ``BlockingIOError`` until that reply is complete.

    Raises:
        ProxyRefusedError: the proxy reported failure (e.g. the peer never came).
    """
    return _run(sock, _second_reply_steps(tunnel), deadline)


def _second_reply_steps(tunnel: Tunnel):
    reply = yield _Read(tunnel.conn)
    if not tunnel.conn.reply_succeeded(reply):
        raise errors.refused(tunnel.proxy.version, reply.code, tunnel.proxy, "BIND connection")
    return reply


# --- asyncio ------------------------------------------------------------------------------


async def _wait_readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    waiter = loop.create_future()

    def ready():
        if not waiter.done():
            waiter.set_result(None)

    fd = sock.fileno()
    loop.add_reader(fd, ready)
    try:
        await waiter
    finally:
        loop.remove_reader(fd)


async def async_handshake(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    proxy: ProxyConfig | Sequence[ProxyConfig],
    dest_host: str,
    dest_port: int,
    command: Command = Command.CONNECT,
) -> Tunnel:
    """:func:`handshake` on a non-blocking ``sock`` without blocking the event loop.

    Same steps and errors; writes with ``loop.sock_sendall``, reads by waiting for the socket
    to become readable. Deadlines are the caller's (``asyncio.wait_for`` / ``timeout``).
    """
    steps = _chain_steps(_as_chain(proxy), dest_host, dest_port, command)
    try:
        request = next(steps)
        while True:
            if isinstance(request, _Read):
                conn = request.conn
                event = conn.next_event()
                while event is NEED_DATA:
                    try:
                        data = _recv(sock, _READ_SIZE, _MSG_PEEK)
                    except (BlockingIOError, InterruptedError):
                        await _wait_readable(loop, sock)
                        continue
                    event, consumed = _take(conn, data)
                    if consumed:
                        _recv(sock, consumed)
                request = steps.send(event)
            else:
                await loop.sock_sendall(sock, request)
                request = steps.send(None)
    except StopIteration as done:
        return done.value
    except _PASS_THROUGH:
        raise
    except (SOCKSError, OSError) as exc:
        raise _handshake_failure(exc) from exc


# --- connecting to the proxy ----------------------------------------------------------------


def proxy_unreachable(proxy: ProxyConfig, exc: OSError) -> ProxyUnreachableError:
    """The first hop cannot be reached: same errno as the failed connect (SPEC.md table)."""
    if isinstance(exc, socket.gaierror):
        code = errno.EHOSTUNREACH
        reason = f"cannot resolve proxy host {proxy.host!r}: {exc.strerror}"
    else:
        timed_out = isinstance(exc, TimeoutError)
        code = exc.errno or (errno.ETIMEDOUT if timed_out else errno.ECONNREFUSED)
        reason = exc.strerror or str(exc) or "connection failed"
    error = ProxyUnreachableError(code, f"cannot reach SOCKS proxy {proxy}: {reason}")
    error.__cause__ = exc
    return error


_literal_proxy_infos: dict = {}


def proxy_addresses(proxy: ProxyConfig, family: int = 0) -> list:
    """``getaddrinfo`` results for the proxy itself (always resolved locally; the answers
    for IP literals never change, so they are kept)."""
    key = (proxy.host, proxy.port, family)
    infos = _literal_proxy_infos.get(key)
    if infos is None:
        infos = _getaddrinfo(proxy.host, proxy.port, family, socket.SOCK_STREAM)
        if Address.from_host(proxy.host).is_ip and len(_literal_proxy_infos) < 256:
            _literal_proxy_infos[key] = infos
    return infos


_DEFAULT = object()
_parse_chain_cached = functools.lru_cache(maxsize=64)(parse_chain)
#: every variable load_settings() reads: the chain it gave is good while they are unchanged
_SETTINGS_VARIABLES = (
    "SOCKSIFY_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "SOCKSIFY_NO_PROXY",
    "SOCKSIFY_LOG",
    "SOCKSIFY_DNS_RANGE",
)
_environment_chains: dict = {}


def _chain_from_environment() -> tuple[ProxyConfig, ...]:
    """``load_settings().chain``, parsed again only when the variables change."""
    get = os.environ.get
    key = tuple([get(name) for name in _SETTINGS_VARIABLES])
    chain = _environment_chains.get(key)
    if chain is None:
        chain = load_settings().chain  # ConfigError for a bad value, every time
        if len(_environment_chains) >= 16:
            _environment_chains.clear()
        _environment_chains[key] = chain
    return chain


def create_connection(
    address: tuple[str, int],
    proxy: str | ProxyConfig | Sequence[ProxyConfig] | None = None,
    timeout: float | None | object = _DEFAULT,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """Connect to ``address`` through ``proxy`` (URL, chain, or None: read the environment).

    Like ``socket.create_connection``; the socket returned is a plain ``socket.socket``
    connected to the first hop, with the tunnel to ``address`` established over it.
    ``timeout`` (default: ``socket.getdefaulttimeout()``) bounds the whole connect and
    handshake and stays set on the socket. Never falls back to a direct connection.

    Raises:
        ProxyUnreachableError: no address of the first hop accepted the connection (the
            errno of the last failed connect, e.g. ConnectionRefusedError).
        ProxyAuthError, ProxyRefusedError, ProxyProtocolError, TimeoutError: see handshake().
    """
    chain = _chain_of(proxy)
    if timeout is _DEFAULT:
        timeout = socket.getdefaulttimeout()
    host, port = address[0], address[1]
    deadline = None if timeout is None else time.monotonic() + timeout
    first = chain[0]
    try:
        infos = proxy_addresses(first)
    except OSError as exc:
        raise proxy_unreachable(first, exc) from exc
    sock = connect_first_hop(first, infos, timeout, source_address)
    try:
        handshake(sock, chain, host, port, deadline=deadline)  # puts ``timeout`` back
    except BaseException:
        sock.close()
        raise
    return sock


def _chain_of(proxy: str | ProxyConfig | Sequence[ProxyConfig] | None) -> tuple:
    if proxy is None:
        return _chain_from_environment()
    if isinstance(proxy, str):
        return _parse_chain_cached(proxy)
    return _as_chain(proxy)


def resolve(
    host: str,
    proxy: str | ProxyConfig | Sequence[ProxyConfig] | None = None,
    timeout: float | None | object = _DEFAULT,
) -> str:
    """An address of ``host`` as the proxy resolves it (Tor's RESOLVE command,
    tor-socks-extensions.txt §2, which Tor and socksify-server answer): no DNS query leaves
    this host, whatever the scheme. Through a chain, the last hop resolves.

    Raises:
        ProxyRefusedError: e.g. SOCKS5 reply 4 (no such name) or 7 (the proxy does not
            know RESOLVE).
        ProxyUnreachableError, ProxyAuthError, ProxyProtocolError, TimeoutError: as for
            create_connection().
    """
    return _lookup(Command.RESOLVE, host, proxy, timeout)


def resolve_ptr(
    address: str,
    proxy: str | ProxyConfig | Sequence[ProxyConfig] | None = None,
    timeout: float | None | object = _DEFAULT,
) -> str:
    """The host name of the IP ``address`` as the proxy finds it (Tor's RESOLVE_PTR, SOCKS5
    only): a reverse lookup that leaves no PTR query on this host.

    Raises:
        ValueError: ``address`` is not an IP address.
        ProxyError: EAFNOSUPPORT, the last hop is a SOCKS4 proxy.
        and the errors of resolve().
    """
    if not Address.from_host(address).is_ip:
        raise ValueError(f"resolve_ptr() needs an IP address, not {address!r}")
    return _lookup(Command.RESOLVE_PTR, address, proxy, timeout)


def _lookup(command: Command, host: str, proxy, timeout) -> str:
    chain = _chain_of(proxy)
    if command is Command.RESOLVE_PTR and chain[-1].version == 4:
        raise ProxyError(errno.EAFNOSUPPORT, f"RESOLVE_PTR needs a SOCKS5 proxy, not {chain[-1]}")
    if timeout is _DEFAULT:
        timeout = socket.getdefaulttimeout()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        infos = proxy_addresses(chain[0])
    except OSError as exc:
        raise proxy_unreachable(chain[0], exc) from exc
    with connect_first_hop(chain[0], infos, timeout) as sock:
        tunnel = handshake(sock, chain, host, 0, command, deadline=deadline)
    return tunnel.reply.address.host


def connect_first_hop(
    proxy: ProxyConfig,
    infos: list,
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """A new socket with ``timeout``, connected to ``proxy`` at the first of its ``infos``
    (``getaddrinfo`` results) that accepts.

    Raises:
        ProxyUnreachableError: none did; the errno of the last failed connect.
    """
    # The loop follows urllib3's util/connection.py create_connection: try each address,
    # close on failure, re-raise the last error, and clear the reference so the traceback
    # does not keep the socket alive.
    err = None
    for family, socktype, proto, _canonname, sockaddr in infos:
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            if timeout != socket.getdefaulttimeout():  # a new socket has the default already
                sock.settimeout(timeout)  # also None: blocking, as socket.create_connection does
            if source_address:
                _socket.socket.bind(sock, source_address)
            _connect(sock, sockaddr)
            return sock
        except OSError as exc:
            err = exc
            if sock is not None:
                sock.close()
    try:
        raise proxy_unreachable(proxy, err or OSError(errno.EHOSTUNREACH, "no address")) from err
    finally:
        err = None
