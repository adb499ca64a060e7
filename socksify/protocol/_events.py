"""Events: one frozen dataclass per SOCKS message (after h11 ``_events.py``).

Rules:

- Events are named after the RFC message, not the direction. Which side may send which event,
  and when, is decided by ``_state.py``; the SOCKS version belongs to the ``Connection``, so one
  ``Request`` (and one ``Reply``) serves SOCKS4, 4a and 5.
- Every event is validated on construction (``LocalProtocolError``) and is never subclassed:
  ``_connection.py`` dispatches on the exact type.
- Version-specific limits (no IPv6 or UDP in SOCKS4, reply codes 90..93) are checked by the
  encoders, which know the version.
"""

from dataclasses import dataclass

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

_set = object.__setattr__


def _check_byte(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 255:
        raise LocalProtocolError(f"{name} must be an int in 0..255, not {value!r}")


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise LocalProtocolError(f"port must be an int in 0..65535, not {port!r}")


def _check_address(address: Address) -> None:
    if address.__class__ is not Address:
        raise LocalProtocolError(f"address must be an Address, not {type(address).__name__}")


def _as_bytes(obj: object, name: str, value: "bytes | str") -> bytes:
    """bytes as is; str is UTF-8 encoded (stored back so the event holds bytes)."""
    if isinstance(value, str):
        value = value.encode("utf-8")
        _set(obj, name, value)
    elif value.__class__ is not bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"{name} must be bytes, not {type(value).__name__}")
        value = bytes(value)
        _set(obj, name, value)
    return value


@dataclass(frozen=True, slots=True)
class Greeting:
    """Version identifier/method selection message, client -> server (RFC 1928 §3).

    ``methods``: 1 to 255 METHOD octets, in the client's order of preference.
    """

    methods: "tuple[int, ...]"

    def __post_init__(self) -> None:
        methods = self.methods
        if methods.__class__ is not tuple:
            methods = tuple(methods)
            _set(self, "methods", methods)
        if not 1 <= len(methods) <= 255:
            raise LocalProtocolError(f"a greeting offers 1 to 255 methods, not {len(methods)}")
        for method in methods:
            _check_byte("method", method)


@dataclass(frozen=True, slots=True)
class MethodSelected:
    """METHOD selection message, server -> client (RFC 1928 §3). X'FF': none acceptable."""

    method: int

    def __post_init__(self) -> None:
        _check_byte("method", self.method)


@dataclass(frozen=True, slots=True)
class UserPassAuth:
    """Username/password request, client -> server (RFC 1929 §2).

    Each field is 0..255 bytes (RFC 1929 says 1..255; empty fields are accepted because
    clients send them). ``str`` values are UTF-8 encoded.
    """

    username: bytes
    password: bytes

    def __post_init__(self) -> None:
        for name in ("username", "password"):
            value = _as_bytes(self, name, getattr(self, name))
            if len(value) > 255:
                raise LocalProtocolError(f"{name} longer than 255 bytes ({len(value)})")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Username/password response, server -> client (RFC 1929 §2): STATUS X'00' is success.

    On failure the server MUST close the connection.
    """

    success: bool

    def __post_init__(self) -> None:
        if self.success.__class__ is not bool:
            raise LocalProtocolError(f"success must be a bool, not {self.success!r}")


@dataclass(frozen=True, slots=True)
class Request:
    """CONNECT / BIND / UDP ASSOCIATE request, client -> server.

    RFC 1928 §4 for SOCKS5; SOCKS4.protocol for SOCKS4, where a DOMAIN address means the
    SOCKS4A form (DSTIP 0.0.0.x, name after the USERID). ``user_id`` is SOCKS4's USERID
    (ignored by SOCKS5; it must not contain NUL).
    """

    command: Command
    address: Address
    port: int
    user_id: bytes = b""

    def __post_init__(self) -> None:
        command = self.command
        if command.__class__ is not Command:
            try:
                _set(self, "command", Command(command))
            except ValueError:
                raise LocalProtocolError(f"unknown command {command!r}") from None
        _check_address(self.address)
        _check_port(self.port)
        user_id = self.user_id
        if user_id:
            user_id = _as_bytes(self, "user_id", user_id)
            if b"\0" in user_id:
                raise LocalProtocolError("NUL byte in SOCKS4 user id")
        elif user_id.__class__ is not bytes:
            _as_bytes(self, "user_id", user_id)


@dataclass(frozen=True, slots=True)
class Reply:
    """Reply to a request, server -> client (RFC 1928 §6, SOCKS4.protocol).

    ``code`` is the raw REP/CD byte: 0..255 for SOCKS5 (unknown codes are kept), 90..93 for
    SOCKS4. Whether it means success depends on the version: ``Connection.reply_succeeded``.
    A BIND gets two replies: the listening address, then the connecting peer's address.
    """

    code: int
    address: Address
    port: int

    def __post_init__(self) -> None:
        _check_byte("reply code", self.code)
        _check_address(self.address)
        _check_port(self.port)


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """One UDP datagram with its SOCKS5 request header (RFC 1928 §7).

    ``frag`` is the FRAG octet: 0 for a standalone datagram (receivers that do not reassemble
    MUST drop the others).
    """

    address: Address
    port: int
    data: bytes
    frag: int = 0

    def __post_init__(self) -> None:
        _check_address(self.address)
        _check_port(self.port)
        _check_byte("frag", self.frag)
        if self.data.__class__ is not bytes:
            if not isinstance(self.data, (bytes, bytearray, memoryview)):
                raise LocalProtocolError(f"data must be bytes, not {type(self.data).__name__}")
            _set(self, "data", bytes(self.data))
