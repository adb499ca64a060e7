"""UDP through SOCKS5 UDP ASSOCIATE (RFC 1928 §7) for patched datagram sockets.

Rules of this module:

- One association per datagram socket, opened on its first proxied send (or ``connect``):
  a control TCP connection to the proxy carries the UDP ASSOCIATE request, and lives exactly
  as long as the association (RFC 1928 §7: "A UDP association terminates when the TCP
  connection that the UDP ASSOCIATE request arrived on terminates"). ``close()`` of the
  datagram socket closes it.
- Only a single SOCKS5 hop can relay UDP. SOCKS4 and chains fail closed with EPERM
  (``UdpNotRelayableError``): nothing is ever sent directly instead.
- The datagram socket is not connected to the relay, so datagrams to bypass-list
  destinations still go direct; on receive, datagrams from the relay are unwrapped and
  datagrams from anyone else are dropped unless their source is on the bypass list.
- Fragments (FRAG != 0) are dropped: "An implementation that does not support fragmentation
  MUST drop any datagram whose FRAG field is other than X'00'" (RFC 1928 §7).
"""

from __future__ import annotations

import _socket
import errno
import math
import select
import socket
import time

from . import client, errors
from ._log import DEBUG, log
from ._resolver import is_ip_literal
from ._sockets import SockState, new_state
from .errors import UdpNotRelayableError
from .patch import handshake_timeout
from .protocol import (
    Address,
    Command,
    SOCKSError,
    UdpDatagram,
    decode_udp_datagram,
    encode_udp_datagram,
)

__all__ = ["UdpAssociation", "open_association", "unwrap", "wrap"]


_base = _socket.socket
_UNSPECIFIED = ("0.0.0.0", "::")
_poll = getattr(select, "poll", None)
_POLLIN = getattr(select, "POLLIN", 1)


class UdpAssociation:
    """An open association: the control connection and the relay's address."""

    __slots__ = ("control", "relay", "relay_host", "tunnel")

    def __init__(self, control: socket.socket, relay: tuple, tunnel: client.Tunnel):
        self.control = control
        self.relay = relay  # sockaddr in the datagram socket's family
        self.relay_host = relay[0]
        self.tunnel = tunnel

    def from_relay(self, source: tuple) -> bool:
        return source[1] == self.relay[1] and source[0] == self.relay_host

    def close(self) -> None:
        self.control.close()


def in_family(family: int, host: str, port: int) -> tuple:
    """``host``:``port`` as a socket of ``family`` reports addresses: IPv4 on AF_INET6 in
    IPv4-mapped form; on AF_INET an IPv4-mapped address is unmapped and any other IPv6
    address (a BND.ADDR from an IPv6 proxy) shows as 0.0.0.0, which it cannot express."""
    if family == socket.AF_INET6:
        if ":" not in host:
            host = "::ffff:" + host
        return (host, port, 0, 0)
    if ":" in host:
        host = host[7:] if host.startswith("::ffff:") and "." in host else "0.0.0.0"
    return (host, port)


def check_relayable(chain) -> None:
    if len(chain) != 1 or chain[0].version != 5:
        why = "a chain of proxies" if len(chain) != 1 else f"SOCKS4 proxy {chain[0]}"
        raise UdpNotRelayableError(
            errors.ERRNO_UDP_NOT_RELAYABLE,
            f"UDP cannot be relayed through {why} (only one SOCKS5 proxy can); "
            "socksify does not send it directly",
        )


def open_association(sock: socket.socket, chain, proxy_sockaddrs) -> UdpAssociation:
    """UDP ASSOCIATE for datagram socket ``sock`` (bound first if it is not).

    ``proxy_sockaddrs`` are ``getaddrinfo`` results for the proxy. The socket's timeout (or
    the default timeout) bounds the control connection and handshake.

    Raises:
        UdpNotRelayableError: SOCKS4 or a chain (EPERM).
        ProxyUnreachableError, ProxyAuthError, ProxyRefusedError, ProxyProtocolError.
    """
    check_relayable(chain)
    proxy = chain[0]
    local = _base.getsockname(sock)
    if local[1] == 0:
        _base.bind(sock, ("::", 0) if sock.family == socket.AF_INET6 else ("0.0.0.0", 0))
        local = _base.getsockname(sock)
    timeout = handshake_timeout(sock.gettimeout())
    deadline = None if timeout is None else time.monotonic() + timeout
    control = client.connect_first_hop(proxy, proxy_sockaddrs, timeout)
    try:
        # RFC 1928 §4: DST.ADDR/DST.PORT of UDP ASSOCIATE are where the client will send
        # from; the address is left unspecified (we may reach the relay from any interface).
        unspecified = "::" if control.family == socket.AF_INET6 else "0.0.0.0"
        tunnel = client.handshake(
            control, proxy, unspecified, local[1], Command.UDP_ASSOCIATE, deadline=deadline
        )
        host, port = tunnel.bound
        if host in _UNSPECIFIED:  # "use the address you reached me at"
            host = _base.getpeername(control)[0]
            if host.startswith("::ffff:") and sock.family == socket.AF_INET:
                host = host[7:]
        if sock.family == socket.AF_INET and ":" in host and not host.startswith("::ffff:"):
            raise OSError(
                errno.EAFNOSUPPORT, f"the UDP relay {host} is IPv6; this is an IPv4 socket"
            )
        relay = in_family(sock.family, host, port)
    except BaseException:
        control.close()
        raise
    log(__name__, DEBUG, "UDP ASSOCIATE via %s: relay %s:%s", proxy, host, port)
    return UdpAssociation(control, relay, tunnel)


def wrap(data, host: str, port: int) -> bytes:
    """RFC 1928 §7 UDP request header + ``data`` for destination ``host``:``port``."""
    return encode_udp_datagram(UdpDatagram(Address.from_host(host), port, bytes(data)))


def unwrap(packet: bytes):
    """``(data, host, port)`` from a relayed datagram, or None to drop it."""
    try:
        datagram = decode_udp_datagram(packet)
    except SOCKSError as exc:  # a malformed datagram is dropped, like any stray packet
        log(__name__, DEBUG, "dropping malformed datagram from the relay: %s", exc)
        return None
    if datagram.frag != 0:
        return None
    return datagram.data, datagram.address.host, datagram.port


# --- the datagram socket side (called by socksify.patch's socket methods) -----------------


def associate(sock: socket.socket, active, state: SockState | None) -> SockState:
    """The socket's table entry, with its association opened if it has none yet."""
    if state is not None and state.udp is not None:
        return state
    association = open_association(sock, active.chain, active.proxy_infos())
    if state is None:
        state = new_state(sock, "udp")
    state.udp = association
    return state


def receive(sock: socket.socket, state: SockState, active, bufsize: int, flags: int):
    """``(data, address)`` of the next datagram for the program: unwrapped from the relay,
    or direct from a bypassed source; anything else is dropped (RFC 1928 §7).

    ``address`` is the real remote address, except that a reply to a datagram sent to a
    NAME (remote DNS) shows as that name's placeholder, and a connected socket reports its
    peer: what the program sent to. ``data`` is at most ``bufsize`` bytes: the rest of a
    longer datagram is discarded, as the kernel does.
    """
    data, address = _next_datagram(sock, state, active, flags)
    return data[:bufsize], address


def receive_msg(sock: socket.socket, state: SockState, active, bufsize: int, flags: int):
    """``recvmsg``'s ``(data, ancdata, msg_flags, address)`` for :func:`receive`'s datagram:
    ``msg_flags`` has MSG_TRUNC when the datagram was longer than ``bufsize`` (recvmsg(2))."""
    data, address = _next_datagram(sock, state, active, flags)
    msg_flags = _MSG_TRUNC if len(data) > bufsize else 0
    return data[:bufsize], [], msg_flags, address


#: room for the largest datagram plus the largest RFC 1928 §7 header
_PACKET_MAX = 65535 + 262
_MSG_PEEK = int(socket.MSG_PEEK)
_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))
_MSG_DONTWAIT = int(getattr(socket, "MSG_DONTWAIT", 0))


def _next_datagram(sock: socket.socket, state: SockState, active, flags: int):
    """``(data, address)`` of the next datagram for the program, whole; see :func:`receive`.

    A dropped datagram is consumed even under MSG_PEEK (else the next peek would see it
    again, forever), and the socket's timeout bounds the whole call, however many datagrams
    are dropped on the way.
    """
    association = state.udp
    family = sock.family
    timeout = _base.gettimeout(sock)
    deadline = time.monotonic() + timeout if timeout else None
    first = True
    while True:
        if not first and deadline is not None:
            _wait_readable(sock, deadline)
        first = False
        packet, source = _base.recvfrom(sock, _PACKET_MAX, flags)
        if association.from_relay(source):
            unwrapped = unwrap(packet)
            if unwrapped is not None:
                data, host, port = unwrapped
                if state.udp_peer is not None:
                    if _is_peer(host, port, state.udp_peer):  # connected: only its peer
                        return data, state.peer
                else:
                    placeholder = state.udp_names.get(port)
                    if placeholder is not None:
                        return data, in_family(family, placeholder, port)
                    if active is not None and active.remote_dns and not is_ip_literal(host):
                        host = active.placeholders.address_for(host)
                    return data, in_family(family, host, port)
        elif (state.udp_peer is None and active is not None
              and active.settings.no_proxy.matches(source[0])):
            return packet, source  # (a socket connected through the relay hears only it)
        if flags & _MSG_PEEK:
            _discard(sock, flags)


def _is_peer(host: str, port: int, peer: tuple) -> bool:
    """Whether a relayed datagram from ``host``:``port`` comes from a connected socket's
    ``peer`` (host as sent, port). A peer sent as a NAME is known by its port only: the
    relay answers from the address it resolved, which the client never learns."""
    if port != peer[1]:
        return False
    if not is_ip_literal(peer[0]):
        return True
    if host == peer[0]:
        return True
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # the same address written two ways ("::1" and "0::1")
        return socket.inet_pton(family, host) == socket.inet_pton(family, peer[0])
    except OSError:
        return False


def _discard(sock: socket.socket, flags: int) -> None:
    """Consume the datagram just peeked at (the head of the queue), without waiting."""
    try:
        _base.recvfrom(sock, 1, (flags & ~_MSG_PEEK) | _MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError, TimeoutError):
        pass  # another thread took it first


def _wait_readable(sock: socket.socket, deadline: float) -> None:
    """Wait until ``sock`` is readable, or raise the socket timeout at ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining > 0:
        if _poll is not None:
            poller = _poll()
            poller.register(_base.fileno(sock), _POLLIN)
            ready = poller.poll(math.ceil(remaining * 1000))
        else:
            ready = select.select([sock], [], [], remaining)[0]
        if ready:
            return
    raise TimeoutError("timed out")
