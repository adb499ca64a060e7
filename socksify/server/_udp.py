"""UDP ASSOCIATE relay (RFC 1928 §7).

Rules of this module:

- One association = one client-facing UDP socket, bound on the address of the interface the
  control connection came in on (port 0), plus one outbound socket per address family. Two
  sockets keep "from the client" and "from a remote host" apart even when both are on the
  same IP address (loopback tests, a NAT).
- Only the client that asked is served: the source IP must be the control connection's
  client IP, and the source port must be the DST.PORT of the request when it was not 0;
  otherwise the first datagram's source port is kept for the life of the association.
- Datagrams with FRAG != 0 are dropped ("an implementation that does not support
  fragmentation MUST drop any datagram whose FRAG field is other than X'00'"). So are
  malformed headers and destinations the rules deny (silently, as §7 says).
- Replies are accepted only from addresses the client has sent to (like a NAT), and are
  sent to the client with the SOCKS5 header naming the real sender.
- Domain destinations are resolved asynchronously; a bounded number of resolutions may be
  pending at once (more are dropped).
- The association ends when the control TCP connection ends (the caller calls close()).
- Idle timeout: the association joins the server's :class:`._relay.IdleSweeper` (one timer
  for every relay and association, a look every quarter of ``idle_timeout``); after four
  looks with no datagram relayed either way it closes its sockets and calls ``on_idle``
  (the caller then closes the control connection). Only relayed datagrams count, so
  nobody but the client and the hosts it talks to can keep an association alive:
  datagrams that are dropped (from strangers, from hosts the client never sent to,
  fragments, malformed or denied ones) and bytes on the control connection do not. The
  datagram path pays one attribute store for it (``_active = True``), no timer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable

from ..protocol import (
    Address,
    RemoteProtocolError,
    UdpDatagram,
    decode_udp_datagram,
    encode_udp_datagram,
)
from ._outbound import OutboundError, Resolver
from ._relay import _IDLE_TICKS, IdleSweeper

__all__ = ["UdpAssociation"]

logger = logging.getLogger(__name__)

_MAX_PEERS = 1024
_MAX_PENDING = 64


def _plain_ip(host: str) -> str:
    address = ipaddress.ip_address(host.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, association: UdpAssociation):
        self.association = association

    def datagram_received(self, data: bytes, addr) -> None:
        self.association._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp: client socket error: %s", exc)


class _RemoteSide(asyncio.DatagramProtocol):
    def __init__(self, association: UdpAssociation):
        self.association = association

    def datagram_received(self, data: bytes, addr) -> None:
        self.association._from_remote(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("udp: remote socket error: %s", exc)


class UdpAssociation:
    """Relays datagrams for one client; ``allowed(host, address, port)`` applies the rules."""

    def __init__(
        self,
        client_ip: str,
        client_port: int,
        resolver: Resolver,
        allowed: Callable[[str | None, str, int], bool],
        sweeper: IdleSweeper | None = None,
        on_idle: Callable[[], None] | None = None,
    ):
        self.client_ip = _plain_ip(client_ip)
        self.client_port = client_port or None
        self.client_addr: tuple | None = None
        self.resolver = resolver
        self.allowed = allowed
        self.bytes_up = 0
        self.bytes_down = 0
        self.dropped = 0
        self._client_transport: asyncio.DatagramTransport | None = None
        self._remote: dict[int, asyncio.DatagramTransport] = {}
        self._peers: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._pending: set[asyncio.Task] = set()
        self._closed = False
        self.sweeper = sweeper  #: None: no idle timeout (``idle_timeout = 0``)
        self.on_idle = on_idle  #: called once when the idle timeout closed the association
        self.timed_out = False
        self._active = True  # set per relayed datagram; the first look only starts counting
        self._idle_ticks = 0

    async def open(self, bind_ip: str) -> tuple[str, int]:
        """Bind the sockets; return the client-facing (address, port) for the reply."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in bind_ip else socket.AF_INET
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ClientSide(self), local_addr=(bind_ip, 0), family=family
        )
        self._client_transport = transport
        for family, wildcard in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            try:
                remote, _ = await loop.create_datagram_endpoint(
                    lambda: _RemoteSide(self), local_addr=(wildcard, 0), family=family
                )
            except OSError as exc:  # e.g. no IPv6 on this host
                logger.debug("udp: no outbound socket for family %s: %s", family, exc)
                continue
            self._remote[family] = remote
        host, port = transport.get_extra_info("sockname")[:2]
        if self.sweeper is not None:
            self.sweeper.add(self)
        return host, port

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.sweeper is not None:
            self.sweeper.relays.discard(self)
        for task in self._pending:
            task.cancel()
        if self._client_transport is not None:
            self._client_transport.close()
        for transport in self._remote.values():
            transport.close()

    # -- client -> remote ---------------------------------------------------------------

    def _from_client(self, data: bytes, addr) -> None:
        source_ip, source_port = _plain_ip(addr[0]), addr[1]
        if source_ip != self.client_ip:
            self.dropped += 1
            return
        if self.client_port is not None and source_port != self.client_port:
            self.dropped += 1
            return
        if self.client_addr is None:
            self.client_addr = addr
            self.client_port = source_port
        try:
            datagram = decode_udp_datagram(data)
        except RemoteProtocolError as exc:
            logger.debug("udp: dropped a malformed datagram from %s: %s", source_ip, exc)
            self.dropped += 1
            return
        if datagram.frag != 0:
            self.dropped += 1
            return
        host = str(datagram.address)
        if datagram.address.is_ip:
            self._send_remote(None, _plain_ip(host), datagram.port, datagram.data)
        elif len(self._pending) < _MAX_PENDING:
            task = asyncio.ensure_future(self._resolve_and_send(host, datagram))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            self.dropped += 1

    async def _resolve_and_send(self, host: str, datagram: UdpDatagram) -> None:
        try:
            addresses = await self.resolver.resolve(host, socket.SOCK_DGRAM)
        except OutboundError:
            self.dropped += 1
            return
        for address in addresses:
            if self._send_remote(host, address, datagram.port, datagram.data):
                return

    def _send_remote(self, host: str | None, address: str, port: int, data: bytes) -> bool:
        if self._closed or not (0 < port < 65536):
            return False
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        transport = self._remote.get(family)
        if transport is None or not self.allowed(host, address, port):
            self.dropped += 1
            return False
        peer = (address, port)
        self._peers[peer] = None
        self._peers.move_to_end(peer)
        while len(self._peers) > _MAX_PEERS:
            self._peers.popitem(last=False)
        transport.sendto(data, peer)
        self.bytes_up += len(data)
        self._active = True
        return True

    # -- remote -> client ---------------------------------------------------------------

    def _from_remote(self, data: bytes, addr) -> None:
        address, port = _plain_ip(addr[0]), addr[1]
        if (address, port) not in self._peers or self.client_addr is None or self._closed:
            self.dropped += 1
            return
        header = UdpDatagram(Address.from_host(address), port, data)
        self._client_transport.sendto(encode_udp_datagram(header), self.client_addr)
        self.bytes_down += len(data)
        self._active = True

    # -- idle timeout -------------------------------------------------------------------

    def _idle_tick(self) -> None:
        """One look of the sweeper (the same contract as ``Relay._idle_tick``)."""
        if self._active:
            self._active, self._idle_ticks = False, 0
            return
        self._idle_ticks += 1
        if self._idle_ticks >= _IDLE_TICKS:
            self.timed_out = True
            self.close()
            if self.on_idle is not None:
                self.on_idle()
