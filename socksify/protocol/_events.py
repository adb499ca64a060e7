"""Events: one frozen dataclass per SOCKS message (after h11 ``_events.py``).

Rules:

- Events are named after the RFC message, not the direction. Which side may send which event,
  and when, is decided by ``_state.py``; the SOCKS version belongs to the ``Connection``, so one
  ``Request`` (and one ``Reply``) serves SOCKS4, 4a and 5.
- Every event is validated on construction (``LocalProtocolError``) and is never subclassed:
  ``_connection.py`` dispatches on the exact type.
- Version-specific limits (no IPv6 or UDP in SOCKS4, reply codes 90..93) are checked by the
  encoders, which know the version.
- Each class writes its own ``__init__`` (``init=False``) that validates and sets the fields
  in one frame, through the slots' own setters: a handshake builds several events, and the
  generated frozen ``__init__`` plus ``__post_init__`` and a helper per check cost about twice
  as much. The checks are the same as they always were; ``dataclass`` still provides
  ``repr``, ``==``, ``hash``, ``fields()``, ``__slots__`` and immutability.
"""

from dataclasses import dataclass, fields

from ._address import Address
from ._codes import Command
from ._errors import LocalProtocolError

__all__ = [
    "AuthResult",
    "Greeting",
    "MethodSelected",
    "Reply",
    "Request",
    "UdpDatagram",
    "UserPassAuth",
]


def _slot_setters(cls: type) -> tuple:
    """The ``__set__`` of each field's slot, in field order.

    The fastest way to fill a frozen, slotted instance: ``object.__setattr__(self, name,
    value)`` looks the name up on the type first.
    """
    return tuple(cls.__dict__[field.name].__set__ for field in fields(cls))


# The checks below are written out at each use (one frame per event, not one per field);
# these build the messages.


def _bad_byte(name: str, value: object) -> LocalProtocolError:
    return LocalProtocolError(f"{name} must be an int in 0..255, not {value!r}")


def _bad_port(port: object) -> LocalProtocolError:
    return LocalProtocolError(f"port must be an int in 0..65535, not {port!r}")


def _bad_address(address: object) -> LocalProtocolError:
    return LocalProtocolError(f"address must be an Address, not {type(address).__name__}")


def _as_bytes(name: str, value: "bytes | str") -> bytes:
    """bytes as is; str is UTF-8 encoded (so the event holds bytes)."""
    if value.__class__ is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


@dataclass(frozen=True, slots=True, init=False)
class Greeting:
    """Version identifier/method selection message, client -> server (RFC 1928 §3).

    ``methods``: 1 to 255 METHOD octets, in the client's order of preference.
    """

    methods: "tuple[int, ...]"

    def __init__(self, methods: "tuple[int, ...]") -> None:
        if methods.__class__ is not tuple:
            methods = tuple(methods)
        if not 1 <= len(methods) <= 255:
            raise LocalProtocolError(f"a greeting offers 1 to 255 methods, not {len(methods)}")
        for method in methods:
            if not isinstance(method, int) or not 0 <= method <= 255:
                raise _bad_byte("method", method)
        _greeting_methods(self, methods)


@dataclass(frozen=True, slots=True, init=False)
class MethodSelected:
    """METHOD selection message, server -> client (RFC 1928 §3). X'FF': none acceptable."""

    method: int

    def __init__(self, method: int) -> None:
        if not isinstance(method, int) or not 0 <= method <= 255:
            raise _bad_byte("method", method)
        _selected_method(self, method)


@dataclass(frozen=True, slots=True, init=False)
class UserPassAuth:
    """Username/password request, client -> server (RFC 1929 §2).

    Each field is 0..255 bytes (RFC 1929 says 1..255; empty fields are accepted because
    clients send them). ``str`` values are UTF-8 encoded.
    """

    username: bytes
    password: bytes

    def __init__(self, username: bytes, password: bytes) -> None:
        for name, value, set_field in (
            ("username", username, _auth_username),
            ("password", password, _auth_password),
        ):
            value = _as_bytes(name, value)
            if len(value) > 255:
                raise LocalProtocolError(f"{name} longer than 255 bytes ({len(value)})")
            set_field(self, value)


@dataclass(frozen=True, slots=True, init=False)
class AuthResult:
    """Username/password response, server -> client (RFC 1929 §2): STATUS X'00' is success.

    On failure the server MUST close the connection.
    """

    success: bool

    def __init__(self, success: bool) -> None:
        if success.__class__ is not bool:
            raise LocalProtocolError(f"success must be a bool, not {success!r}")
        _result_success(self, success)


@dataclass(frozen=True, slots=True, init=False)
class Request:
    """CONNECT / BIND / UDP ASSOCIATE (or Tor's RESOLVE / RESOLVE_PTR) request, client -> server.

    RFC 1928 §4 for SOCKS5; SOCKS4.protocol for SOCKS4, where a DOMAIN address means the
    SOCKS4A form (DSTIP 0.0.0.x, name after the USERID). ``user_id`` is SOCKS4's USERID
    (ignored by SOCKS5; it must not contain NUL).
    """

    command: Command
    address: Address
    port: int
    user_id: bytes = b""

    def __init__(self, command: Command, address: Address, port: int, user_id: bytes = b"") -> None:
        if command.__class__ is not Command:
            try:
                command = Command(command)
            except ValueError:
                raise LocalProtocolError(f"unknown command {command!r}") from None
        if address.__class__ is not Address:
            raise _bad_address(address)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise _bad_port(port)
        _request_command(self, command)
        _request_address(self, address)
        _request_port(self, port)
        if user_id:
            user_id = _as_bytes("user_id", user_id)
            if b"\0" in user_id:
                raise LocalProtocolError("NUL byte in SOCKS4 user id")
        elif user_id.__class__ is not bytes:
            user_id = _as_bytes("user_id", user_id)
        _request_user_id(self, user_id)


@dataclass(frozen=True, slots=True, init=False)
class Reply:
    """Reply to a request, server -> client (RFC 1928 §6, SOCKS4.protocol).

    ``code`` is the raw REP/CD byte: 0..255 for SOCKS5 (unknown codes are kept), 90..93 for
    SOCKS4. Whether it means success depends on the version: ``Connection.reply_succeeded``.
    A BIND gets two replies: the listening address, then the connecting peer's address.
    """

    code: int
    address: Address
    port: int

    def __init__(self, code: int, address: Address, port: int) -> None:
        if not isinstance(code, int) or not 0 <= code <= 255:
            raise _bad_byte("reply code", code)
        if address.__class__ is not Address:
            raise _bad_address(address)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise _bad_port(port)
        _reply_code(self, code)
        _reply_address(self, address)
        _reply_port(self, port)


@dataclass(frozen=True, slots=True, init=False)
class UdpDatagram:
    """One UDP datagram with its SOCKS5 request header (RFC 1928 §7).

    ``frag`` is the FRAG octet: 0 for a standalone datagram (receivers that do not reassemble
    MUST drop the others).
    """

    address: Address
    port: int
    data: bytes
    frag: int = 0

    def __init__(self, address: Address, port: int, data: bytes, frag: int = 0) -> None:
        if address.__class__ is not Address:
            raise _bad_address(address)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise _bad_port(port)
        if not isinstance(frag, int) or not 0 <= frag <= 255:
            raise _bad_byte("frag", frag)
        if data.__class__ is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise LocalProtocolError(f"data must be bytes, not {type(data).__name__}")
            data = bytes(data)
        _datagram_address(self, address)
        _datagram_port(self, port)
        _datagram_data(self, data)
        _datagram_frag(self, frag)


# Bound after the classes exist (``dataclass(slots=True)`` builds a new class); the ``__init__``
# methods above find them as globals when they run.
(_greeting_methods,) = _slot_setters(Greeting)
(_selected_method,) = _slot_setters(MethodSelected)
_auth_username, _auth_password = _slot_setters(UserPassAuth)
(_result_success,) = _slot_setters(AuthResult)
_request_command, _request_address, _request_port, _request_user_id = _slot_setters(Request)
_reply_code, _reply_address, _reply_port = _slot_setters(Reply)
_datagram_address, _datagram_port, _datagram_data, _datagram_frag = _slot_setters(UdpDatagram)
