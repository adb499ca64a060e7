"""Errors of the sans-IO core (after h11 ``_util.py``).

``LocalProtocolError`` means *our* code misused the API (a bug, or an invalid field);
``RemoteProtocolError`` means the peer sent bytes the protocol does not allow. After either one
escapes ``Connection.next_event`` or ``Connection.send``, the connection is in ``State.ERROR``.
"""

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "SOCKSError"]


class SOCKSError(Exception):
    """Base class of every error raised by ``socksify.protocol``."""


class ProtocolError(SOCKSError):
    """A SOCKS protocol rule was broken; use one of the two subclasses."""


class LocalProtocolError(ProtocolError):
    """Our side misused the API: an event illegal in this state, or an invalid field."""


class RemoteProtocolError(ProtocolError):
    """The peer sent malformed or illegal bytes; the message says what was wrong.

    ``reply_hint`` is the reply code a server should send before closing, when the request
    was well framed but asked for something unsupported (RFC 1928 §6: X'07' for an unknown
    command, X'08' for an unknown address type; SOCKS4: 91). ``None`` otherwise.
    """

    def __init__(self, message: str, *, reply_hint: "int | None" = None) -> None:
        super().__init__(message)
        self.reply_hint = reply_hint
