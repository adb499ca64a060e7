"""Run-time errors: the single translation point from SOCKS replies to OSError and errno.

Rules of this module:

- Every error a proxied socket raises is a :class:`ProxyError`, which is an ``OSError`` with a
  real ``errno`` (so ``connect_ex`` can return it and callers that catch ``OSError`` keep
  working) and ``args == (errno, message)``. The underlying cause is in ``__cause__``.
- Each raised instance is ALSO the builtin ``OSError`` subclass for its errno (SPEC.md's
  table): a SOCKS5 reply 5 is both :class:`ProxyRefusedError` and ``ConnectionRefusedError``.
  ``ProxyRefusedError(...)`` builds that combined class itself (cached per (kind, builtin)),
  so ``except ConnectionRefusedError`` and ``except socksify.ProxyError`` both work.
- ``csrc/errmap.c`` mirrors these tables; ``tests/vectors/errno_map.json`` (errno NAMES)
  holds both to the same values.
- A timeout while talking to the proxy is the stdlib ``TimeoutError`` (``socket.timeout``),
  passed through unchanged.
"""

from __future__ import annotations

import errno as _errno
import functools

__all__ = [
    "ERRNO_AUTH_FAILED",
    "ERRNO_NO_ACCEPTABLE_METHOD",
    "ERRNO_PROTOCOL_VIOLATION",
    "ERRNO_UDP_NOT_RELAYABLE",
    "ERRNO_UNKNOWN_REPLY",
    "REPLY4_ERRNO",
    "REPLY5_ERRNO",
    "ProxyAuthError",
    "ProxyError",
    "ProxyProtocolError",
    "ProxyRefusedError",
    "ProxyUnreachableError",
    "UdpNotRelayableError",
    "refused",
    "reply_errno",
]

#: RFC 1928 §6 REP field -> errno (SPEC.md table).
REPLY5_ERRNO = {
    1: _errno.ECONNREFUSED,  # general SOCKS server failure
    2: _errno.EACCES,  # connection not allowed by ruleset
    3: _errno.ENETUNREACH,  # network unreachable
    4: _errno.EHOSTUNREACH,  # host unreachable
    5: _errno.ECONNREFUSED,  # connection refused
    6: _errno.ETIMEDOUT,  # TTL expired
    7: _errno.EOPNOTSUPP,  # command not supported
    8: _errno.EAFNOSUPPORT,  # address type not supported
}
#: SOCKS4 CD field of a reply (SOCKS4.protocol) -> errno.
REPLY4_ERRNO = {
    91: _errno.ECONNREFUSED,  # request rejected or failed
    92: _errno.EACCES,  # rejected: cannot connect to identd on the client
    93: _errno.EACCES,  # rejected: identd reports a different user-id
}
#: Any other failure code (e.g. Tor's extended replies 0xF0-0xF7, RFC-unassigned values).
ERRNO_UNKNOWN_REPLY = _errno.ECONNREFUSED
ERRNO_AUTH_FAILED = _errno.EACCES  # RFC 1929 §2 STATUS != 0
ERRNO_NO_ACCEPTABLE_METHOD = _errno.EACCES  # RFC 1928 §3 X'FF'
ERRNO_PROTOCOL_VIOLATION = _errno.EPROTO
ERRNO_UDP_NOT_RELAYABLE = _errno.EPERM  # SOCKS4 or a chain: no UDP ASSOCIATE possible

#: errno -> the builtin OSError subclass Python itself would raise for it (PEP 3151).
_BUILTIN_FOR_ERRNO = {
    _errno.ECONNREFUSED: ConnectionRefusedError,
    _errno.ECONNRESET: ConnectionResetError,
    _errno.ECONNABORTED: ConnectionAbortedError,
    _errno.EPIPE: BrokenPipeError,
    _errno.EACCES: PermissionError,
    _errno.EPERM: PermissionError,
    _errno.ETIMEDOUT: TimeoutError,
}


class ProxyError(OSError):
    """Base of every socksify run-time error: an ``OSError`` with a real errno.

    Constructed as ``ProxyError(errno, message)``; the instance you get back is also the
    builtin ``OSError`` subclass for that errno (``ConnectionRefusedError`` etc.).
    """

    def __new__(cls, *args, **kwargs):
        code = args[0] if args and isinstance(args[0], int) else None
        return OSError.__new__(_combined(cls, _BUILTIN_FOR_ERRNO.get(code)), *args)

    def __init__(self, errno: int, message: str):
        super().__init__(errno, message)

    def __reduce__(self):
        return (_rebuild, (_public_class(type(self)), self.args, self.__dict__))


class ProxyUnreachableError(ProxyError):
    """The first hop could not be reached: the errno is that of the failed connect()."""


class ProxyAuthError(ProxyError):
    """The proxy refused our credentials, or offered no method we can use (EACCES)."""


class ProxyRefusedError(ProxyError):
    """The proxy answered the request with a failure reply; ``reply_code`` is its REP/CD."""

    def __init__(self, errno: int, message: str, reply_code: int | None = None):
        super().__init__(errno, message)
        self.reply_code = reply_code


class ProxyProtocolError(ProxyError):
    """The proxy broke the protocol: malformed or unexpected bytes, early EOF (EPROTO), or a
    connection that broke mid-handshake (its own errno, e.g. ECONNRESET)."""


class UdpNotRelayableError(ProxyError):
    """UDP cannot go through this proxy (SOCKS4, or a chain of hops): EPERM, fail closed."""


@functools.cache
def _combined(cls: type, builtin: type | None) -> type:
    """``cls`` itself, or a cached subclass of both ``cls`` and ``builtin``."""
    if builtin is None or issubclass(cls, builtin) or getattr(cls, "_socksify_base", None):
        return cls
    return type(
        cls.__name__,
        (cls, builtin),
        {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "_socksify_base": cls},
    )


def _public_class(cls: type) -> type:
    return getattr(cls, "_socksify_base", cls)


def _rebuild(cls, args, state):
    error = cls.__new__(cls, *args)
    OSError.__init__(error, *args)
    error.__dict__.update(state)
    return error


def reply_errno(version: int, code: int) -> int:
    """errno for a failure reply ``code`` from a SOCKS ``version`` (4 or 5) proxy."""
    table = REPLY5_ERRNO if version == 5 else REPLY4_ERRNO
    return table.get(code, ERRNO_UNKNOWN_REPLY)


_REPLY5_TEXT = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
_REPLY4_TEXT = {
    91: "request rejected or failed",
    92: "rejected: proxy cannot reach our identd",
    93: "rejected: identd user-id mismatch",
}


def refused(version: int, code: int, proxy: object, what: str) -> ProxyRefusedError:
    """The error for a failure reply; ``what`` says which request (e.g. "CONNECT host:80")."""
    texts = _REPLY5_TEXT if version == 5 else _REPLY4_TEXT
    reason = texts.get(code, f"unknown reply code 0x{code:02x}")
    return ProxyRefusedError(
        reply_errno(version, code),
        f"proxy {proxy} refused {what}: {reason} (SOCKS{version} reply {code})",
        reply_code=code,
    )
