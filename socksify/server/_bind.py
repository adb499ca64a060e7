"""The listening half of BIND (RFC 1928 §4 "BIND"; SOCKS4.protocol "2) BIND").

Rules of this module:

- The listening socket is bound on the address of the interface the client came in on
  (port 0, the system picks), so the first reply names an address the client can pass on.
- Only the expected peer is accepted when the request named one (SOCKS4 DSTIP, SOCKS5
  DST.ADDR; 0.0.0.0 / :: mean any): a connection from another address is closed and logged,
  and the wait goes on until the expected peer comes or the timeout ends (SOCKS4.protocol
  would answer 91 to a mismatch; waiting instead keeps a port scanner from spoiling the
  rendezvous).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from ._deadline import within

__all__ = ["accept_expected", "open_listener"]

logger = logging.getLogger(__name__)


def _plain(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(host.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def open_listener(local_ip: str) -> socket.socket:
    """A non-blocking TCP socket listening on ``(local_ip, 0)``."""
    family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.bind((local_ip, 0))
        sock.listen(4)
    except BaseException:
        sock.close()
        raise
    return sock


async def accept_expected(
    listener: socket.socket, expected: set[str] | None, timeout: float
) -> tuple[socket.socket, tuple[str, int]]:
    """Accept the first connection from an address in ``expected`` (None: anyone).

    Raises:
        TimeoutError: no acceptable peer within ``timeout`` seconds (0 = wait forever).
    """
    loop = asyncio.get_running_loop()
    wanted = {_plain(a) for a in expected} if expected else None
    deadline = loop.time() + timeout if timeout > 0 else None
    while True:
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise TimeoutError("no connection from the expected peer")
        try:
            sock, addr = await within(loop.sock_accept(listener), left)
        except asyncio.TimeoutError:
            raise TimeoutError("no connection from the expected peer") from None
        if wanted is None or _plain(addr[0]) in wanted:
            sock.setblocking(False)
            return sock, (str(_plain(addr[0])), addr[1])
        logger.warning("bind: closed a connection from unexpected peer %s:%s", addr[0], addr[1])
        sock.close()
