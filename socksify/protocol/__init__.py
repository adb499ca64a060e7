"""Sans-IO SOCKS4, SOCKS4a and SOCKS5 protocol core (RFC 1928, RFC 1929, SOCKS4/4A).

Bytes to events and events to bytes, with no sockets, DNS, clock or logging; the client,
server and shims drive a ``Connection`` over their own I/O. Import from here only: the
``_x.py`` modules are private.
"""

from ._address import UNSPECIFIED_V4, Address
from ._codes import AddressType, AuthMethod, Command, Reply4, Reply5, Version
from ._connection import NEED_DATA, Connection, Sentinel
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, SOCKSError
from ._events import (
    AuthResult,
    Greeting,
    MethodSelected,
    Reply,
    Request,
    UdpDatagram,
    UserPassAuth,
)
from ._socks5 import decode_udp_datagram, encode_udp_datagram
from ._state import Role, State

__all__ = [
    "NEED_DATA",
    "UNSPECIFIED_V4",
    "Address",
    "AddressType",
    "AuthMethod",
    "AuthResult",
    "Command",
    "Connection",
    "Greeting",
    "LocalProtocolError",
    "MethodSelected",
    "ProtocolError",
    "RemoteProtocolError",
    "Reply",
    "Reply4",
    "Reply5",
    "Request",
    "Role",
    "SOCKSError",
    "Sentinel",
    "State",
    "UdpDatagram",
    "UserPassAuth",
    "Version",
    "decode_udp_datagram",
    "encode_udp_datagram",
]
