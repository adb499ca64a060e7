"""Pure SOCKS4 / SOCKS4A codec (SOCKS4.protocol, SOCKS4A.protocol).

Same conventions as ``_socks5.py``: ``encode_*(event) -> bytes``, ``maybe_decode_*(buf) ->
(event, consumed) | None``, ``RemoteProtocolError`` as soon as a bad byte is seen.

Request layout: VN X'04', CD, DSTPORT (2), DSTIP (4), USERID, NUL.  SOCKS4A: DSTIP is
0.0.0.x with x non-zero, and the domain name follows the USERID's NUL, ended by another NUL.
A USERID or name that never ends is bounded by the connection's ``max_buffer``; a name is
rejected as soon as it is longer than 255 bytes (the limit ``Address`` enforces everywhere).

Reply layout: VN X'00', CD (90..93), DSTPORT (2), DSTIP (4). "VN is the version of the reply
code and should be 0"; VN X'04' is accepted too, because some servers send it.
"""

import struct

from ._address import Address, ipv4_from_packed
from ._codes import AddressType, Command, Reply4
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import Reply, Request
from ._socks5 import domain_address

__all__ = ["encode_reply", "encode_request", "maybe_decode_reply", "maybe_decode_request"]

#: SOCKS4A: "set the first three bytes of DSTIP to NULL and the last byte to a non-zero value"
_SOCKS4A_DSTIP = b"\x00\x00\x00\x01"
_SOCKS4A_PREFIX = _SOCKS4A_DSTIP[:3]
_COMMAND = {1: Command.CONNECT, 2: Command.BIND, 0xF0: Command.RESOLVE}  # F0: Tor's
# Enum members as globals: attribute access on an enum class costs about 20 global lookups.
_IPV4, _DOMAIN = AddressType.IPV4, AddressType.DOMAIN
#: VN, CD, DSTPORT, DSTIP: a reply, or the fixed part of a request
_MESSAGE = struct.Struct(">BBH4s")
_pack_message = _MESSAGE.pack
_unpack_message = _MESSAGE.unpack_from


def encode_request(event: Request) -> bytes:
    """Encode a SOCKS4 request, or the SOCKS4A form for a DOMAIN address.

    Raises:
        LocalProtocolError: UDP ASSOCIATE or RESOLVE_PTR, an IPv6 address, or an IPv4
            0.0.0.x destination (that range means "a name follows" in SOCKS4A).
    """
    command = event.command
    if command not in _COMMAND.values():
        raise LocalProtocolError(f"SOCKS4 has no {command.name.replace('_', ' ')} command")
    address = event.address
    kind = address.type
    if kind is _IPV4:
        packed = address.packed
        if packed[:3] == _SOCKS4A_PREFIX:
            raise LocalProtocolError(
                f"SOCKS4 destination {address.host} is reserved (0.0.0.x means SOCKS4A)"
            )
        return _pack_message(4, command, event.port, packed) + event.user_id + b"\x00"
    if kind is _DOMAIN:
        head = _pack_message(4, command, event.port, _SOCKS4A_DSTIP)
        return head + event.user_id + b"\x00" + address.packed + b"\x00"
    raise LocalProtocolError("SOCKS4 cannot carry an IPv6 address")


def maybe_decode_request(buf):
    """Decode a SOCKS4 or SOCKS4A request.

    An unknown CD raises ``RemoteProtocolError`` with ``reply_hint`` 91 (rejected).
    """
    n = len(buf)
    if not n:
        return None
    if buf[0] != 4:
        raise RemoteProtocolError(f"bad version 0x{buf[0]:02x} (expected 0x04)")
    if n < 2:
        return None
    command = _COMMAND.get(buf[1])
    if command is None:
        raise RemoteProtocolError(
            f"unknown command 0x{buf[1]:02x} (SOCKS4 has CONNECT, BIND and Tor's RESOLVE)",
            reply_hint=Reply4.REJECTED,
        )
    if n < 9:
        return None
    user_end = buf.find(0, 8)
    if user_end < 0:
        return None
    _, _, port, dstip = _unpack_message(buf)
    user_id = bytes(buf[8:user_end]) if user_end > 8 else b""
    if dstip[:3] != _SOCKS4A_PREFIX:
        return Request(command, ipv4_from_packed(dstip), port, user_id), user_end + 1
    if not dstip[3]:
        raise RemoteProtocolError(
            "SOCKS4 destination 0.0.0.0 is invalid (SOCKS4A uses 0.0.0.x with x non-zero)"
        )
    # SOCKS4A: "Following the NULL byte terminating USERID, the client must sends the
    # destination domain name and termiantes it with another NULL byte."
    name_start = user_end + 1
    name_end = buf.find(0, name_start, name_start + 256)
    if name_end < 0:
        if n - name_start > 255:
            raise RemoteProtocolError("domain name longer than 255 bytes")
        return None
    if name_end == name_start:
        raise RemoteProtocolError("empty domain name")
    address = domain_address(bytes(buf[name_start:name_end]))
    return Request(command, address, port, user_id), name_end + 1


def encode_reply(event: Reply) -> bytes:
    """VN X'00', CD, DSTPORT, DSTIP.

    Raises:
        LocalProtocolError: a code outside 90..93 or an address that is not IPv4.
    """
    if not 90 <= event.code <= 93:
        raise LocalProtocolError(f"SOCKS4 reply code must be 90..93, not {event.code}")
    address: Address = event.address
    if address.type is not _IPV4:
        raise LocalProtocolError("SOCKS4 replies carry only IPv4 addresses (use 0.0.0.0)")
    return _pack_message(0, event.code, event.port, address.packed)


def maybe_decode_reply(buf):
    """Decode a SOCKS4 reply; "The remaining fields are ignored" except for BIND."""
    n = len(buf)
    if not n:
        return None
    if buf[0] not in (0, 4):
        raise RemoteProtocolError(f"bad reply version 0x{buf[0]:02x} (SOCKS4 expects 0x00)")
    if n < 2:
        return None
    code = buf[1]
    if not 90 <= code <= 93:
        raise RemoteProtocolError(f"unknown SOCKS4 reply code 0x{code:02x} ({code})")
    if n < 8:
        return None
    _, _, port, dstip = _unpack_message(buf)
    return Reply(code, ipv4_from_packed(dstip), port), 8
