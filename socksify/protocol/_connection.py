"""``Connection``: one end of a SOCKS handshake, driven by bytes in and events out.

Sans-IO (after h11 ``_connection.py``): the caller owns the socket. ``receive_data`` only
buffers, ``next_event`` decodes one message at a time as the state allows, ``send`` encodes
one event and returns the bytes to write. Only this module calls the codecs and moves the
state, following ``_state.TRANSITIONS``.

A peer may pipeline: a SOCKS5 client often writes greeting, auth and request in one go. The
bytes wait in the buffer until it is the peer's turn to speak again, so ``next_event`` returns
the greeting, then ``NEED_DATA`` until ``send(MethodSelected)``, then the next message.
Bytes past the final message (early data) come back untouched from ``trailing_data``.

A client may pipeline too, where the server's answer is forced (``_state.py`` Rule 6): it can
send greeting, username/password and request back to back, and later receive the method
selection, the auth result and the reply in one read.
"""

import enum

from . import _socks4, _socks5
from ._codes import AuthMethod, Reply4, Reply5, Version
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import AuthResult, Greeting, MethodSelected, Reply, Request, UserPassAuth
from ._state import FINAL_STATES, TRANSITIONS, Role, State

__all__ = ["NEED_DATA", "Connection", "Sentinel"]


class Sentinel(enum.Enum):
    """Non-event results of ``Connection.next_event``."""

    #: no complete message buffered yet (or it is our turn to send): read and call again
    NEED_DATA = "NEED_DATA"


NEED_DATA = Sentinel.NEED_DATA

_S = State
#: the message the peer may send in each state, per (our role, version): its decoder and the
#: one event type that decoder returns
_DECODERS = {
    (Role.SERVER, Version.SOCKS5): {
        _S.AWAIT_GREETING: (_socks5.maybe_decode_greeting, Greeting),
        _S.AWAIT_AUTH: (_socks5.maybe_decode_userpass_auth, UserPassAuth),
        _S.AWAIT_REQUEST: (_socks5.maybe_decode_request, Request),
    },
    (Role.SERVER, Version.SOCKS4): {
        _S.AWAIT_REQUEST: (_socks4.maybe_decode_request, Request),
    },
    (Role.CLIENT, Version.SOCKS5): {
        _S.AWAIT_METHOD: (_socks5.maybe_decode_method_selected, MethodSelected),
        _S.AWAIT_AUTH_RESULT: (_socks5.maybe_decode_auth_result, AuthResult),
        _S.AWAIT_REPLY: (_socks5.maybe_decode_reply, Reply),
        _S.AWAIT_SECOND_REPLY: (_socks5.maybe_decode_reply, Reply),
    },
    (Role.CLIENT, Version.SOCKS4): {
        _S.AWAIT_REPLY: (_socks4.maybe_decode_reply, Reply),
        _S.AWAIT_SECOND_REPLY: (_socks4.maybe_decode_reply, Reply),
    },
}
_ENCODERS = {
    Version.SOCKS5: {
        Greeting: _socks5.encode_greeting,
        MethodSelected: _socks5.encode_method_selected,
        UserPassAuth: _socks5.encode_userpass_auth,
        AuthResult: _socks5.encode_auth_result,
        Request: _socks5.encode_request,
        Reply: _socks5.encode_reply,
    },
    Version.SOCKS4: {
        Request: _socks4.encode_request,
        Reply: _socks4.encode_reply,
    },
}
#: what the peer owes us in each state, for error messages
_EXPECTED = {
    _S.AWAIT_GREETING: "greeting",
    _S.AWAIT_METHOD: "method selection",
    _S.AWAIT_AUTH: "username/password request",
    _S.AWAIT_AUTH_RESULT: "username/password response",
    _S.AWAIT_REQUEST: "request",
    _S.AWAIT_REPLY: "reply",
    _S.AWAIT_SECOND_REPLY: "second reply",
}
#: the methods this core has a sub-negotiation for (RFC 1928 §3; GSSAPI is not implemented)
_IMPLEMENTED_METHODS = frozenset({AuthMethod.NO_AUTH, AuthMethod.USERNAME_PASSWORD})
_GRANTED = {Version.SOCKS5: Reply5.SUCCEEDED, Version.SOCKS4: Reply4.GRANTED}
_REJECTED = {Version.SOCKS5: Reply5.GENERAL_FAILURE, Version.SOCKS4: Reply4.REJECTED}
_NOTHING: dict = {}
_AFTER_HANDSHAKE = frozenset({State.TUNNEL, State.UDP_ASSOCIATED, State.CLOSED})
# Enum members read on every event are module globals: ``AuthMethod.NO_ACCEPTABLE`` goes through
# the enum metaclass and costs about 20 times a global lookup.
_NO_ACCEPTABLE = AuthMethod.NO_ACCEPTABLE
_CLIENT = Role.CLIENT
_AWAIT_GREETING = State.AWAIT_GREETING
#: role -> (what we send, what the peer sends): the sender's TRANSITIONS for each direction
_TABLES = {
    Role.CLIENT: (TRANSITIONS[Role.CLIENT], TRANSITIONS[Role.SERVER]),
    Role.SERVER: (TRANSITIONS[Role.SERVER], TRANSITIONS[Role.CLIENT]),
}


def _receivers(role: Role, version: "Version | None") -> dict:
    """state -> (decoder, the peer's TRANSITIONS entry for its event), or None, for every state.

    Joined once here so that ``next_event`` makes one lookup per message; a decoder whose event
    the table does not allow in its state fails here, at import.
    """
    decoders = _DECODERS.get((role, version), _NOTHING)
    peer_sends = _TABLES[role][1]
    return {
        state: (decoders[state][0], peer_sends[state][decoders[state][1]])
        if state in decoders
        else None
        for state in State
    }


def _senders(role: Role, version: "Version | None") -> dict:
    """state -> {event type: (encoder, our TRANSITIONS entry)} for every state, so that ``send``
    makes one lookup per message (empty: nothing of ours is legal in that state as such)."""
    encoders = _ENCODERS.get(version, _NOTHING)
    return {
        state: {
            cls: (encoders[cls], entry)
            for cls, entry in _TABLES[role][0].get(state, _NOTHING).items()
            if cls in encoders
        }
        for state in State
    }


#: (role, version number) -> (Version, receivers, senders, encoders, first state), looked up
#: once per Connection instead of rebuilt (SOCKS4 has no method negotiation: the request comes
#: first)
_VERSION_SETUP = {
    (role, int(version)): (
        version,
        _receivers(role, version),
        _senders(role, version),
        _ENCODERS[version],
        State.AWAIT_GREETING if version is Version.SOCKS5 else State.AWAIT_REQUEST,
    )
    for role in Role
    for version in Version
}
#: role -> the same for a server that does not know the version yet: nothing to decode or send
_NO_VERSION = {role: (_receivers(role, None), _senders(role, None)) for role in Role}


class Connection:
    """One end (``Role.CLIENT`` or ``Role.SERVER``) of a SOCKS4/4a/5 handshake.

    Args:
        role: which end we are.
        version: 4 or 5. Required for a client; a server may pass ``None`` and let the first
            byte received decide (anything but 4 or 5 is a ``RemoteProtocolError``).
        max_buffer: the most bytes buffered while a message is incomplete; more is a
            ``RemoteProtocolError`` (it bounds a SOCKS4 USERID or name without its NUL).
    """

    __slots__ = (
        "_ahead",
        "_buf",
        "_encoders",
        "_eof",
        "_max_buffer",
        "_may_reject",
        "_method",
        "_offered",
        "_projected",
        "_receivers",
        "_receives",
        "_request",
        "_senders",
        "_sends",
        "_state",
        "_version",
        "role",
    )

    def __init__(self, role: Role, version: "int | None" = None, *, max_buffer: int = 65536):
        if role.__class__ is not Role:
            raise LocalProtocolError(f"role must be Role.CLIENT or Role.SERVER, not {role!r}")
        if not isinstance(max_buffer, int) or max_buffer < 1:
            raise LocalProtocolError(f"max_buffer must be a positive int, not {max_buffer!r}")
        self.role = role
        self._sends, self._receives = _TABLES[role]
        # The peer's bytes not decoded yet: the bytes object of the last read while it holds
        # one read (no copy), a bytearray once reads pile up (appends stay cheap).
        self._buf = b""
        self._ahead: tuple = ()  # events sent ahead (pipelining), oldest first
        self._projected = None
        self._eof = False
        self._max_buffer = max_buffer
        self._may_reject = False
        self._method = None
        self._offered: tuple = ()
        self._request = None
        if version is None:
            if role is _CLIENT:
                raise LocalProtocolError("a client Connection needs a version (4 or 5)")
            self._version = None
            self._receivers, self._senders = _NO_VERSION[role]
            self._encoders = _NOTHING
            self._state = _AWAIT_GREETING
        else:
            self._set_version(version)

    def _set_version(self, version: int) -> None:
        """Rule 4 of ``_state.py``: the version picks the codecs and the first state."""
        try:
            setup = _VERSION_SETUP.get((self.role, version))
        except TypeError:  # unhashable
            setup = None
        if setup is None:
            raise LocalProtocolError(f"version must be 4 or 5, not {version!r}")
        self._version, self._receivers, self._senders, self._encoders, self._state = setup

    def __repr__(self) -> str:
        version = f"SOCKS{int(self._version)}" if self._version else "SOCKS?"
        return f"<Connection {self.role.name} {version} {self._state.name}>"

    # --- read-only views --------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current ``State``."""
        return self._state

    @property
    def version(self) -> "Version | None":
        """``Version.SOCKS4`` or ``SOCKS5``; ``None`` on a server that has not seen a byte."""
        return self._version

    @property
    def request(self) -> "Request | None":
        """The ``Request`` sent or received so far, if any."""
        return self._request

    @property
    def auth_method(self) -> "int | None":
        """The METHOD the server selected (SOCKS5), if any."""
        return self._method

    @property
    def peer_closed(self) -> bool:
        """True once ``receive_data(b"")`` reported EOF."""
        return self._eof

    @property
    def trailing_data(self) -> bytes:
        """Bytes received past the last handshake message (early data), handed back once.

        Available in ``TUNNEL``, ``UDP_ASSOCIATED`` and ``CLOSED``; the buffer is emptied.

        Raises:
            LocalProtocolError: the handshake is still running (or failed with ERROR).
        """
        if self._state not in _AFTER_HANDSHAKE:
            raise LocalProtocolError(f"no trailing data in state {self._state.name}")
        data = self._buf
        self._buf = b""
        return bytes(data)  # a bytes buffer is returned as is

    def reply_succeeded(self, reply: Reply) -> bool:
        """True if ``reply`` grants the request: X'00' for SOCKS5, 90 for SOCKS4."""
        if self._version is None:
            raise LocalProtocolError("the version is not known yet")
        return reply.code == _GRANTED[self._version]

    # --- input ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes read from the peer; ``b""`` means EOF (what ``recv`` returns).

        Nothing is decoded here; call ``next_event``.

        Raises:
            LocalProtocolError: data after EOF was reported.
        """
        if data:
            if self._eof:
                raise LocalProtocolError("received data after EOF")
            buf = self._buf
            if not buf and data.__class__ is bytes:
                self._buf = data  # the usual case: a whole message in one read, kept uncopied
            else:  # reads pile up (or a mutable buffer came in): append in place from now on
                if buf.__class__ is bytes:
                    buf = self._buf = bytearray(buf)
                buf += data
        else:
            self._eof = True

    def next_event(self):
        """Decode the next message from the peer, if it is the peer's turn and it is complete.

        Returns:
            An event, or ``NEED_DATA`` when more bytes are needed or when it is our turn to
            send (bytes the peer pipelined stay buffered until it is its turn again).

        Raises:
            RemoteProtocolError: the peer sent malformed bytes, closed the connection in the
                middle of the handshake, or overflowed ``max_buffer``. The state becomes
                ``ERROR``. A server that fails to read a request gets ``reply_hint`` (the code
                to reply with) and may still ``send`` one failure ``Reply``.
            LocalProtocolError: called in a final state (``TUNNEL``, ``UDP_ASSOCIATED``,
                ``CLOSED``, ``ERROR``); read ``trailing_data`` instead.
        """
        state = self._state
        receiver = self._receivers[state]
        buf = self._buf
        try:
            if receiver is None:
                if state in FINAL_STATES:
                    raise LocalProtocolError(f"no events to receive in state {state.name}")
                if self._version is not None:
                    return NEED_DATA  # our turn to send
                if buf:
                    receiver = self._detect_version(buf[0])
                    state = self._state
            if not buf:  # every decoder needs a byte: skip the call (once per read)
                return self._need_data() if self._eof else NEED_DATA
            decode, entry = receiver
            decoded = decode(buf)
            if decoded is None:
                return self._need_data()
            event, consumed = decoded
            self._buf = buf[consumed:]
            self._state = self._next_state(entry, event, RemoteProtocolError)
            if self._ahead:
                self._catch_up()
        except RemoteProtocolError as exc:
            self._fail(exc, state)
            raise
        return event

    def _detect_version(self, first: int):
        """Server without a version: the first byte is VN (SOCKS4) or VER (RFC 1928 §3).

        Returns the receiver (decoder, entry) for the version's first state.
        """
        if first != 5 and first != 4:
            raise RemoteProtocolError(f"bad version 0x{first:02x} (expected 0x04 or 0x05)")
        self._set_version(first)
        return self._receivers[self._state]

    def _need_data(self):
        if self._eof:
            what = _EXPECTED[self._state]
            if self._buf:
                raise RemoteProtocolError(f"connection closed in the middle of the {what}")
            raise RemoteProtocolError(f"connection closed while waiting for the {what}")
        if len(self._buf) > self._max_buffer:
            what = _EXPECTED[self._state]
            if self._version is Version.SOCKS4 and self._state is State.AWAIT_REQUEST:
                what = "SOCKS4 request (USERID or hostname not NUL-terminated)"
            raise RemoteProtocolError(
                f"{what} incomplete after {len(self._buf)} bytes (max_buffer {self._max_buffer})"
            )
        return NEED_DATA

    def _fail(self, exc: RemoteProtocolError, state: State) -> None:
        self._state = State.ERROR
        if state is State.AWAIT_REQUEST and self.role is Role.SERVER and not self._eof:
            # The server may still tell the client why (RFC 1928 §6 X'07', X'08'), then close.
            if exc.reply_hint is None:
                exc.reply_hint = _REJECTED[self._version]
            self._may_reject = True

    # --- output -----------------------------------------------------------------------

    def send(self, event) -> bytes:
        """Encode ``event`` and advance the state; write the returned bytes to the peer.

        A client may send ahead of a forced answer (``_state.py`` Rule 5): the state then
        stays where the conversation is and catches up as the server's answers arrive.

        Raises:
            LocalProtocolError: the event is not legal for our role in this state, or it does
                not fit the version (SOCKS4 and IPv6, UDP, reply codes outside 90..93), or the
                server selects a method the client did not offer. The state becomes ERROR.
        """
        cls = event.__class__
        if self._may_reject and cls is Reply:
            return self._send_rejection(event)
        sender = self._senders[self._state].get(cls)
        try:
            if sender is None or self._ahead:
                return self._send_out_of_turn(event)
            encode, entry = sender
            data = encode(event)
            self._state = self._next_state(entry, event, LocalProtocolError)
        except LocalProtocolError:
            self._state = State.ERROR
            raise
        return data

    def _send_out_of_turn(self, event) -> bytes:
        """``send`` for an event that is not simply our turn: sent ahead, or illegal."""
        encode = self._encoders.get(event.__class__)
        if encode is None:
            self._illegal(event)
        if self._ahead or self._state not in self._sends:
            return self._send_ahead(event, encode)
        self._illegal(event)

    def _send_ahead(self, event, encode) -> bytes:
        """Pipelining: a client may send before the server's answer when that answer is forced.

        After a ``Greeting`` offering exactly one method, the server can only select it (or
        X'FF', which ends the handshake); after a ``UserPassAuth`` the only answer that does not
        end the handshake is success. So the client may send the next message at once (saving a
        round trip); it is applied to the state when the server's answer arrives.
        """
        after = self._forced_answer(self._projected if self._ahead else self._state)
        entry = None if after is None else self._sends.get(after, _NOTHING).get(event.__class__)
        if entry is None:
            self._illegal(event)
        data = encode(event)
        self._projected = self._next_state(entry, event, LocalProtocolError)
        self._ahead += (event,)
        return data

    def _forced_answer(self, state: State) -> "State | None":
        """The state the server's only non-final answer in ``state`` leads to, if forced."""
        if self.role is not Role.CLIENT:
            return None
        if state is State.AWAIT_METHOD and len(set(self._offered)) == 1:
            return self._receives[state][MethodSelected].get(self._offered[0])
        if state is State.AWAIT_AUTH_RESULT:
            return self._receives[state][AuthResult][True]
        return None

    def _catch_up(self) -> None:
        """Apply events sent ahead once the server's answer made them due."""
        while self._ahead and self._state in self._sends:
            event = self._ahead[0]
            self._ahead = self._ahead[1:]
            entry = self._sends[self._state].get(event.__class__)
            if entry is None:
                self._illegal(event)
            self._state = self._next_state(entry, event, LocalProtocolError)
        if self._state in FINAL_STATES:
            self._ahead = ()  # refused: what we sent ahead is moot

    def _send_rejection(self, event: Reply) -> bytes:
        """The one failure ``Reply`` a server may send after a request it could not read."""
        self._may_reject = False
        if self.reply_succeeded(event):
            raise LocalProtocolError("only a failure Reply may answer a malformed request")
        data = self._encoders[Reply](event)
        self._state = State.CLOSED
        return data

    def _illegal(self, event) -> None:
        raise LocalProtocolError(
            f"can't send {type(event).__name__} in state {self._state.name} as {self.role.name}"
            f" (SOCKS{self._version or '?'})"
        )

    def _next_state(self, entry, event, error: type) -> State:
        """The state after ``event``, given its ``entry`` in the sender's TRANSITIONS.

        The caller looked the entry up for the current state (a missing one is illegal); where
        the event's content decides (Rule 3 of ``_state.py``), it is picked here. Also records
        what later transitions depend on (offered methods, the request). ``error`` is the
        exception type for a violation: ``LocalProtocolError`` when we send,
        ``RemoteProtocolError`` when the peer did.
        """
        cls = event.__class__
        if cls is Greeting:
            if error is LocalProtocolError and not _IMPLEMENTED_METHODS.issuperset(event.methods):
                unknown = set(event.methods) - _IMPLEMENTED_METHODS
                raise LocalProtocolError(
                    f"method(s) {sorted(unknown)} offered but not implemented"
                    " (only NO_AUTH and USERNAME_PASSWORD are)"
                )
            self._offered = event.methods
        elif cls is MethodSelected:
            method = event.method
            if method != _NO_ACCEPTABLE and method not in self._offered:
                raise error(f"method 0x{method:02x} selected but not offered by the client")
            entry = entry.get(method)
            if entry is None:
                raise error(f"method 0x{method:02x} is not implemented")
            self._method = method
        elif cls is AuthResult:
            entry = entry[event.success]
        elif cls is Request:
            self._request = event
        elif cls is Reply:
            entry = entry[(self._request.command, event.code == _GRANTED[self._version])]
        return entry
