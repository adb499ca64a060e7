"""Pure SOCKS5 codec: RFC 1928 messages, RFC 1929 username/password, RFC 1928 §7 UDP header.

Rules:

- ``encode_*(event) -> bytes``. Events are already valid; encoders only lay out bytes.
- ``maybe_decode_*(buf) -> (event, consumed) | None``: ``None`` means "incomplete, wait for more
  bytes"; nothing is consumed from ``buf`` (the caller deletes ``consumed`` bytes). Malformed
  input raises ``RemoteProtocolError`` as soon as the offending byte is available, so a bad
  version is reported after one byte, not after a whole message. A complete, well-formed
  IPv4 request or reply is read in one ``struct`` call first; anything else takes the
  byte-by-byte checks.
- Events and addresses are immutable, so a decoder may return the same one for the same bytes
  (greetings, method selections, auth results and requested names repeat on every
  connection). The caches are bounded: cleared when full, whatever a peer sends.
- No state: only ``_connection.py`` calls these and decides what is legal when.
"""

import struct

from ._address import Address, domain_from_wire, ipv4_from_packed, ipv6_from_packed
from ._codes import AddressType, Command, Reply5
from ._errors import RemoteProtocolError
from ._events import (
    AuthResult,
    Greeting,
    MethodSelected,
    Reply,
    Request,
    UdpDatagram,
    UserPassAuth,
)

__all__ = [
    "decode_udp_datagram",
    "encode_address",
    "encode_auth_result",
    "encode_greeting",
    "encode_method_selected",
    "encode_reply",
    "encode_request",
    "encode_udp_datagram",
    "encode_userpass_auth",
    "maybe_decode_auth_result",
    "maybe_decode_greeting",
    "maybe_decode_method_selected",
    "maybe_decode_reply",
    "maybe_decode_request",
    "maybe_decode_userpass_auth",
]

#: RFC 1929 §2: "The VER field contains the current version of the subnegotiation, which is X'01'"
USERPASS_VERSION = 0x01
_ATYP_IPV4 = 0x01
_ATYP_DOMAIN = 0x03
_ATYP_IPV6 = 0x04
_IPV4 = AddressType.IPV4

#: reply_hint for a request with an unknown ATYP (a global: enum attribute access is slow)
_ADDRESS_TYPE_NOT_SUPPORTED = Reply5.ADDRESS_TYPE_NOT_SUPPORTED
#: CMD octet -> Command: the three of RFC 1928 §4, and Tor's RESOLVE and RESOLVE_PTR
_COMMAND = {c.value: c for c in Command}
_AUTH_OK = b"\x01\x00"
_AUTH_FAILED = b"\x01\x01"

# Shared decoded values (see the module rules).
#: greeting message -> Greeting (at most 64)
_greetings: "dict[bytes, Greeting]" = {}
#: domain name octets -> Address (at most 256; see ``domain_address``)
_names: "dict[bytes, Address]" = {}
#: METHOD -> the method selection message and event (RFC 1928 §3), for every octet
_METHOD_SELECTED_BYTES = tuple(bytes((5, method)) for method in range(256))
_METHOD_SELECTED = tuple(MethodSelected(method) for method in range(256))
#: RFC 1929 §2 STATUS X'00' (success) or anything else (failure)
_AUTH_SUCCEEDED, _AUTH_REJECTED = AuthResult(True), AuthResult(False)


def _bad_version(version: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"bad version 0x{version:02x} (expected 0x05)")


def decode_name(name: bytes) -> str:
    """Text of a domain name received on the wire: ASCII only, no NUL (shared with SOCKS4A)."""
    try:
        host = name.decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("non-ASCII byte in domain name") from None
    if "\0" in host:
        raise RemoteProtocolError("NUL byte in domain name")
    return host


def domain_address(name: bytes) -> Address:
    """Address for a domain name received on the wire, checked by ``decode_name`` (shared
    with SOCKS4A). Clients ask for the same few names over and over: each is built once."""
    address = _names.get(name)
    if address is None:
        address = domain_from_wire(name, decode_name(name))
        if len(_names) >= 256:
            _names.clear()
        _names[name] = address
    return address


def encode_address(address: Address, port: int) -> bytes:
    """ATYP, DST.ADDR/BND.ADDR and port (RFC 1928 §4, §5)."""
    packed = address.packed
    if address.type == _ATYP_DOMAIN:
        head = bytes((_ATYP_DOMAIN, len(packed)))
    else:
        head = bytes((address.type,))
    return head + packed + port.to_bytes(2, "big")


#: VER, CMD or REP, RSV, ATYP X'01', 4 address octets, port: a request or reply to or from an
#: IPv4 address (RFC 1928 §4, §6) laid out, or read from the start of a buffer, in one call
_IPV4_MESSAGE = struct.Struct(">BBBB4sH")
_pack_ipv4_message = _IPV4_MESSAGE.pack
_unpack_ipv4_message = _IPV4_MESSAGE.unpack_from


def _maybe_decode_address(buf, i: int, hint: "int | None"):
    """Decode ATYP/ADDR/PORT starting at ``buf[i]``: ``(Address, port, end)`` or None.

    ``hint`` is the ``reply_hint`` for an unknown address type (set for requests only).
    """
    n = len(buf)
    if n <= i:
        return None
    atyp = buf[i]
    if atyp == _ATYP_IPV4:
        end = i + 7
        if n < end:
            return None
        address = ipv4_from_packed(bytes(buf[i + 1 : i + 5]))
    elif atyp == _ATYP_DOMAIN:
        if n <= i + 1:
            return None
        length = buf[i + 1]
        if not length:
            raise RemoteProtocolError("empty domain name")
        end = i + 4 + length
        if n < end:
            return None
        address = domain_address(bytes(buf[i + 2 : end - 2]))
    elif atyp == _ATYP_IPV6:
        end = i + 19
        if n < end:
            return None
        address = ipv6_from_packed(bytes(buf[i + 1 : i + 17]))
    else:
        raise RemoteProtocolError(f"unknown address type 0x{atyp:02x}", reply_hint=hint)
    return address, (buf[end - 2] << 8) | buf[end - 1], end


# --- RFC 1928 §3: method negotiation -----------------------------------------------------


def encode_greeting(event: Greeting) -> bytes:
    """VER X'05', NMETHODS, METHODS (RFC 1928 §3)."""
    methods = event.methods
    return bytes((5, len(methods), *methods))


def maybe_decode_greeting(buf):
    """Decode a version identifier/method selection message (RFC 1928 §3)."""
    n = len(buf)
    if not n:
        return None
    if buf[0] != 5:
        raise _bad_version(buf[0])
    if n < 2:
        return None
    count = buf[1]
    if not count:
        raise RemoteProtocolError("empty method list (NMETHODS is 0)")
    end = 2 + count
    if n < end:
        return None
    message = bytes(buf[:end]) if n > end else bytes(buf)
    greeting = _greetings.get(message)
    if greeting is None:
        greeting = Greeting(tuple(message[2:]))
        if len(_greetings) >= 64:
            _greetings.clear()
        _greetings[message] = greeting
    return greeting, end


def encode_method_selected(event: MethodSelected) -> bytes:
    """VER X'05', METHOD (RFC 1928 §3)."""
    return _METHOD_SELECTED_BYTES[event.method]


def maybe_decode_method_selected(buf):
    """Decode a METHOD selection message (RFC 1928 §3)."""
    n = len(buf)
    if not n:
        return None
    if buf[0] != 5:
        raise _bad_version(buf[0])
    if n < 2:
        return None
    return _METHOD_SELECTED[buf[1]], 2


# --- RFC 1929 §2: username/password subnegotiation ----------------------------------------


def encode_userpass_auth(event: UserPassAuth) -> bytes:
    """VER X'01', ULEN, UNAME, PLEN, PASSWD (RFC 1929 §2)."""
    username, password = event.username, event.password
    return bytes((USERPASS_VERSION, len(username))) + username + bytes((len(password),)) + password


def maybe_decode_userpass_auth(buf):
    """Decode a username/password request (RFC 1929 §2)."""
    n = len(buf)
    if not n:
        return None
    _check_userpass_version(buf[0])
    if n < 2:
        return None
    ulen = buf[1]
    plen_at = 2 + ulen
    if n <= plen_at:
        return None
    end = plen_at + 1 + buf[plen_at]
    if n < end:
        return None
    return UserPassAuth(bytes(buf[2:plen_at]), bytes(buf[plen_at + 1 : end])), end


def _check_userpass_version(version: int) -> None:
    """VER must be X'01' in both subnegotiation messages (RFC 1929 §2)."""
    if version != USERPASS_VERSION:
        raise RemoteProtocolError(
            f"bad RFC 1929 subnegotiation version 0x{version:02x} (expected 0x01)"
        )


def encode_auth_result(event: AuthResult) -> bytes:
    """VER X'01', STATUS: X'00' success, X'01' failure (RFC 1929 §2)."""
    return _AUTH_OK if event.success else _AUTH_FAILED


def maybe_decode_auth_result(buf):
    """Decode a username/password response (RFC 1929 §2); any non-zero STATUS is failure."""
    n = len(buf)
    if not n:
        return None
    _check_userpass_version(buf[0])
    if n < 2:
        return None
    return (_AUTH_REJECTED if buf[1] else _AUTH_SUCCEEDED), 2


# --- RFC 1928 §4, §6: request and reply ---------------------------------------------------


def encode_request(event: Request) -> bytes:
    """VER X'05', CMD, RSV X'00', ATYP, DST.ADDR, DST.PORT (RFC 1928 §4)."""
    address = event.address
    if address.type is _IPV4:
        return _pack_ipv4_message(5, event.command, 0, _ATYP_IPV4, address.packed, event.port)
    return bytes((5, event.command, 0)) + encode_address(address, event.port)


def maybe_decode_request(buf):
    """Decode a request (RFC 1928 §4).

    An unknown CMD or ATYP raises ``RemoteProtocolError`` with ``reply_hint`` X'07' or X'08'
    (RFC 1928 §6), so a server can answer before closing.
    """
    n = len(buf)
    if n >= 10:  # the usual request, to an IPv4 address: one unpack if every field is right
        version, command, reserved, atyp, packed, port = _unpack_ipv4_message(buf)
        if version == 5 and reserved == 0 and atyp == _ATYP_IPV4:
            command = _COMMAND.get(command)
            if command is not None:
                return Request(command, ipv4_from_packed(packed), port), 10
    # Anything else goes through the checks below, which raise in wire order.
    if not n:
        return None
    if buf[0] != 5:
        raise _bad_version(buf[0])
    if n < 2:
        return None
    command = _COMMAND.get(buf[1])
    if command is None:
        raise RemoteProtocolError(
            f"unknown command 0x{buf[1]:02x}", reply_hint=Reply5.COMMAND_NOT_SUPPORTED
        )
    if n < 3:
        return None
    if buf[2]:
        raise RemoteProtocolError(f"non-zero reserved byte 0x{buf[2]:02x}")
    decoded = _maybe_decode_address(buf, 3, _ADDRESS_TYPE_NOT_SUPPORTED)
    if decoded is None:
        return None
    address, port, end = decoded
    return Request(command, address, port), end


def encode_reply(event: Reply) -> bytes:
    """VER X'05', REP, RSV X'00', ATYP, BND.ADDR, BND.PORT (RFC 1928 §6)."""
    address = event.address
    if address.type is _IPV4:
        return _pack_ipv4_message(5, event.code, 0, _ATYP_IPV4, address.packed, event.port)
    return bytes((5, event.code, 0)) + encode_address(address, event.port)


def maybe_decode_reply(buf):
    """Decode a reply (RFC 1928 §6). Every REP value is accepted and kept as an int."""
    n = len(buf)
    if n >= 10:  # the usual reply, with an IPv4 address: one unpack if every field is right
        version, code, reserved, atyp, packed, port = _unpack_ipv4_message(buf)
        if version == 5 and reserved == 0 and atyp == _ATYP_IPV4:
            return Reply(code, ipv4_from_packed(packed), port), 10
    # Anything else goes through the checks below, which raise in wire order.
    if not n:
        return None
    if buf[0] != 5:
        raise _bad_version(buf[0])
    if n < 3:
        return None
    if buf[2]:
        raise RemoteProtocolError(f"non-zero reserved byte 0x{buf[2]:02x}")
    decoded = _maybe_decode_address(buf, 3, None)
    if decoded is None:
        return None
    address, port, end = decoded
    return Reply(buf[1], address, port), end


# --- RFC 1928 §7: UDP request header -------------------------------------------------------


def encode_udp_datagram(event: UdpDatagram) -> bytes:
    """RSV X'0000', FRAG, ATYP, DST.ADDR, DST.PORT, DATA (RFC 1928 §7)."""
    return bytes((0, 0, event.frag)) + encode_address(event.address, event.port) + event.data


def decode_udp_datagram(datagram: bytes) -> UdpDatagram:
    """Parse one whole UDP datagram with its SOCKS5 header (RFC 1928 §7).

    Raises:
        RemoteProtocolError: non-zero RSV, unknown ATYP, bad name, or a header cut short.
    """
    if len(datagram) < 3:
        raise RemoteProtocolError(f"truncated UDP datagram header ({len(datagram)} bytes)")
    if datagram[0] or datagram[1]:
        raise RemoteProtocolError(
            f"non-zero reserved bytes 0x{datagram[0]:02x}{datagram[1]:02x} in UDP header"
        )
    decoded = _maybe_decode_address(datagram, 3, None)
    if decoded is None:
        raise RemoteProtocolError("truncated address in UDP datagram header")
    address, port, end = decoded
    return UdpDatagram(address, port, bytes(datagram[end:]), datagram[2])
