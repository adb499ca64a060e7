"""Name resolution and outbound TCP connects, with access rules applied per address.

Rules of this module:

- Names are resolved without blocking the event loop (``loop.getaddrinfo``), after a look in
  the static ``[hosts]`` map (names only this server knows).
- Every resolved address is checked against the rules (with the name, see ``_rules.py``);
  denied addresses are skipped; the allowed ones are tried in order until one connects.
- Failures become :class:`OutboundError` carrying the SOCKS5 reply code (RFC 1928 §6) and a
  short outcome name for the session log. Connect timeout is reported as 6 "TTL expired",
  which clients map to ETIMEDOUT, the errno a direct connect would give.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol import Reply5
from ._deadline import within

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["OutboundError", "Resolver", "connect_outbound", "finish_connection",
           "open_connection", "outbound_error", "reply_for_oserror"]


class OutboundError(Exception):
    """A request could not be carried out; ``code`` is the SOCKS5 reply to send."""

    def __init__(self, code: int, outcome: str, detail: str = ""):
        super().__init__(detail or outcome)
        self.code = code
        self.outcome = outcome


_ERRNO_REPLY = {
    errno.ECONNREFUSED: (Reply5.CONNECTION_REFUSED, "connection-refused"),
    errno.ENETUNREACH: (Reply5.NETWORK_UNREACHABLE, "network-unreachable"),
    errno.EHOSTUNREACH: (Reply5.HOST_UNREACHABLE, "host-unreachable"),
    errno.EHOSTDOWN: (Reply5.HOST_UNREACHABLE, "host-unreachable"),
    errno.ETIMEDOUT: (Reply5.TTL_EXPIRED, "timeout"),
    errno.EACCES: (Reply5.NOT_ALLOWED, "not-allowed"),
    errno.EPERM: (Reply5.NOT_ALLOWED, "not-allowed"),
}


def reply_for_oserror(exc: OSError) -> OutboundError:
    """Map a connect error to the SOCKS5 reply code (anything unknown: 1, general failure)."""
    if isinstance(exc, socket.gaierror):
        return OutboundError(Reply5.HOST_UNREACHABLE, "name-not-found", str(exc))
    code, outcome = _ERRNO_REPLY.get(exc.errno, (Reply5.GENERAL_FAILURE, "failed"))
    return OutboundError(code, outcome, exc.strerror or str(exc))


class Resolver:
    """Resolves host names: the static map first, then the system resolver, asynchronously."""

    def __init__(self, hosts: dict[str, list[str]] | None = None):
        self.hosts = {name.lower().rstrip("."): addrs for name, addrs in (hosts or {}).items()}

    def known(self, host: str) -> list[str] | None:
        """The addresses of an IP literal or a static name at once; None: ask DNS."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        static = self.hosts.get(host.lower().rstrip("."))
        return list(static) if static else None

    async def resolve(self, host: str, kind: int = socket.SOCK_STREAM) -> list[str]:
        """IP address strings for ``host`` (an IP literal resolves to itself).

        Raises:
            OutboundError: name not found (reply 4).
        """
        known = self.known(host)
        if known is not None:
            return known
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=kind)
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundError(Reply5.HOST_UNREACHABLE, "name-not-found", str(exc)) from None
        seen: list[str] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = sockaddr[0].split("%")[0]  # no IPv6 scope id in rules or logs
            if address not in seen:
                seen.append(address)
        if not seen:
            raise OutboundError(Reply5.HOST_UNREACHABLE, "name-not-found", host)
        return seen

    async def reverse(self, address: str) -> str:
        """The host name of the IP ``address`` (Tor's RESOLVE_PTR): a name of the static
        map that lists it, else the system's reverse lookup, asynchronously.

        Raises:
            OutboundError: no name for it (reply 4).
        """
        ip = ipaddress.ip_address(address)
        for name, addresses in self.hosts.items():
            if any(ipaddress.ip_address(a) == ip for a in addresses):
                return name
        loop = asyncio.get_running_loop()
        try:
            name, _port = await loop.getnameinfo((str(ip), 0), socket.NI_NAMEREQD)
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundError(Reply5.HOST_UNREACHABLE, "name-not-found", str(exc)) from None
        return name


#: Create outbound sockets non-blocking at once (Linux): no separate ioctl.
_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)


def _family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _fail_future(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _done_future(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def open_connection(address: str, port: int) -> tuple[socket.socket, bool]:
    """A non-blocking TCP socket connecting to ``address``:``port``, and whether the
    connect is still in progress (then :func:`finish_connection` waits for it).

    Raises OSError when the connect failed at once (refused, unreachable).
    """
    # The C socket type, as for accepted clients (_server.py): no Python wrapper calls.
    sock = _socket.socket(_family(address), socket.SOCK_STREAM | _NONBLOCK)
    try:
        if not _NONBLOCK:
            sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((address, port))
        if code == errno.EINPROGRESS:
            # A nearby destination (loopback, LAN) has often answered within the connect
            # call: asking again tells (EISCONN) without a writer callback and a loop turn.
            code = sock.connect_ex((address, port))
            if code == errno.EISCONN:
                code = 0
        if code in (errno.EINPROGRESS, errno.EALREADY):
            return sock, True
        if code:
            raise OSError(code, os.strerror(code))
    except BaseException:
        sock.close()
        raise
    return sock, False


async def finish_connection(
    loop: asyncio.AbstractEventLoop, poller, sock: socket.socket, timeout: float
) -> None:
    """Wait until the connect :func:`open_connection` left in progress is done, with a
    timer (no extra task per connection, as ``wait_for(loop.sock_connect(...))`` would
    create). ``poller`` watches for the end: the loop, or the server's
    :class:`._poller.Poller`. Raises OSError or TimeoutError, closing ``sock``."""
    try:
        fd = sock.fileno()
        future = loop.create_future()
        poller.add_writer(fd, _done_future, future)
        timer = None
        if timeout > 0:
            timer = loop.call_later(timeout, _fail_future, future, asyncio.TimeoutError())
        try:
            await future
        finally:
            poller.remove_writer(fd)
            if timer is not None:
                timer.cancel()
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
    except BaseException:
        sock.close()
        raise


async def _connect_one(
    loop: asyncio.AbstractEventLoop, poller, address: str, port: int, timeout: float
) -> socket.socket:
    sock, pending = open_connection(address, port)
    if pending:
        await finish_connection(loop, poller, sock, timeout)
    return sock


def outbound_error(exc: BaseException, address: str) -> OutboundError:
    """The reply for a failed connect to ``address`` (a timeout or an OSError)."""
    if isinstance(exc, asyncio.TimeoutError):
        return OutboundError(Reply5.TTL_EXPIRED, "timeout", f"connect to {address} timed out")
    return reply_for_oserror(exc)


async def connect_outbound(
    resolver: Resolver,
    host: str,
    port: int,
    allowed: Callable[[str], bool],
    timeout: float,
    loop: asyncio.AbstractEventLoop | None = None,
    addresses: list[str] | None = None,
    poller: Poller | None = None,
) -> socket.socket:
    """Resolve ``host`` and connect to the first allowed address that answers.

    ``allowed(address)`` applies the access rules to one resolved address. ``timeout``
    bounds the whole attempt (resolution included; 0 = none). ``loop`` is the running
    loop (looked up when not given: each look-up costs a getpid system call).
    ``addresses``: what ``host`` stands for when the caller knows already (an IP literal
    the codec parsed, in canonical form): no second parse. ``poller``: where to wait
    for the connect (the server's :class:`._poller.Poller` on the threaded path; the
    loop when None).

    Raises:
        OutboundError: with the reply code for the last failure (2 when every address was
        denied by the rules, 6 on timeout).
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout > 0 else None

    def remaining() -> float:
        if deadline is None:
            return 0
        left = deadline - loop.time()
        if left <= 0:
            raise OutboundError(Reply5.TTL_EXPIRED, "timeout", "connect timed out")
        return left

    if addresses is None:
        addresses = resolver.known(host)  # no task for wait_for when there is nothing to wait
    try:
        if addresses is not None:
            pass
        elif deadline is None:
            addresses = await resolver.resolve(host)
        else:
            addresses = await within(resolver.resolve(host), remaining())
    except asyncio.TimeoutError:
        raise OutboundError(Reply5.TTL_EXPIRED, "timeout", "name resolution timed out") from None
    candidates = [a for a in addresses if allowed(a)]
    if not candidates:
        raise OutboundError(Reply5.NOT_ALLOWED, "not-allowed", f"{host} is denied by the rules")
    last = OutboundError(Reply5.GENERAL_FAILURE, "failed", "no address to try")
    for address in candidates:
        try:
            return await _connect_one(loop, poller or loop, address, port, remaining())
        except (asyncio.TimeoutError, OSError) as exc:
            last = outbound_error(exc, address)
    raise last
