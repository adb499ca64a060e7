"""The SOCKS handshake as a table of states (after h11 ``_state.py``).

This file does not know about bytes: ``_connection.py`` decodes and encodes, then asks this
table what the event does to the state.

Rule 1: both ends of a connection walk the *same* states. A client's ``Connection`` and the
server's ``Connection`` are always in the same state once each has seen the same events,
whether an event was sent or received.

Rule 2: in every state at most one side may speak. ``TRANSITIONS[role][state]`` maps the event
types that ``role`` may *send* in ``state`` to the next state; the other side *receives* those
same events through the same entry. A (role, state, event type) missing from the table is
illegal: sending it raises ``LocalProtocolError``. States where neither side may speak are
final (``TUNNEL``, ``UDP_ASSOCIATED``, ``CLOSED``, ``ERROR``).

Rule 3: where the content of an event decides the next state, the entry is a dict keyed by
the event's *outcome*:

- ``MethodSelected``: the METHOD (RFC 1928 §3). Methods missing from the dict (GSSAPI and the
  private ones) are not implemented by this core.
- ``AuthResult``: ``success`` (RFC 1929 §2: on failure the server MUST close).
- ``Reply``: ``(command of the request, reply succeeded)`` (RFC 1928 §6; SOCKS4.protocol).
  A successful BIND takes two replies; a failed reply always ends in ``CLOSED``, and so
  does any reply to Tor's RESOLVE and RESOLVE_PTR (the answer is the reply itself).

Rule 4: the version picks the first state: ``AWAIT_GREETING`` for SOCKS5, ``AWAIT_REQUEST``
for SOCKS4 (which has no method negotiation). A server that does not know the version yet
starts in ``AWAIT_GREETING`` and moves to ``AWAIT_REQUEST`` when the first byte says 4.

Rule 5 (pipelining): a client may send ahead of the server's answer when that answer is
forced: after a ``Greeting`` offering exactly one method, the message that method leads to;
after a ``UserPassAuth``, the ``Request``. The table is walked as if the answer had come, and the
state moves when it does (``Connection._send_ahead``). A refusal ends in ``CLOSED`` as usual.

Rule 6: any ``LocalProtocolError`` or ``RemoteProtocolError`` moves the connection to
``ERROR``, which is final.
"""

import enum

from ._codes import AuthMethod, Command
from ._events import AuthResult, Greeting, MethodSelected, Reply, Request, UserPassAuth

__all__ = ["FINAL_STATES", "TRANSITIONS", "Role", "State"]


class Role(enum.Enum):
    """Which end of the TCP connection to the proxy this ``Connection`` is."""

    # Members are singletons: hash by identity in C, not by name in Python (enum.Enum's
    # default), because the transition tables are looked up on every event.
    __hash__ = object.__hash__

    #: the program asking the proxy for a connection
    CLIENT = "client"
    #: the proxy
    SERVER = "server"


class State(enum.Enum):
    """Handshake states, named after what is expected next."""

    # Members are singletons: hash by identity in C, not by name in Python (enum.Enum's
    # default), because the transition tables are looked up on every event.
    __hash__ = object.__hash__

    #: SOCKS5: the client's greeting (method list)
    AWAIT_GREETING = "AWAIT_GREETING"
    #: SOCKS5: the server's method selection
    AWAIT_METHOD = "AWAIT_METHOD"
    #: RFC 1929: the client's username/password
    AWAIT_AUTH = "AWAIT_AUTH"
    #: RFC 1929: the server's verdict
    AWAIT_AUTH_RESULT = "AWAIT_AUTH_RESULT"
    #: the client's request (the first state of SOCKS4)
    AWAIT_REQUEST = "AWAIT_REQUEST"
    #: the server's (first) reply
    AWAIT_REPLY = "AWAIT_REPLY"
    #: BIND: the second reply, sent when the inbound connection arrives (or fails)
    AWAIT_SECOND_REPLY = "AWAIT_SECOND_REPLY"
    #: CONNECT or BIND succeeded: the stream now carries application data
    TUNNEL = "TUNNEL"
    #: UDP ASSOCIATE succeeded: the TCP connection only keeps the association alive
    UDP_ASSOCIATED = "UDP_ASSOCIATED"
    #: the handshake ended without a tunnel (refused, auth failed); close the connection
    CLOSED = "CLOSED"
    #: a protocol error happened; close the connection
    ERROR = "ERROR"


#: states where nobody speaks any more
FINAL_STATES = frozenset({State.TUNNEL, State.UDP_ASSOCIATED, State.CLOSED, State.ERROR})

_CONNECT, _BIND, _UDP = Command.CONNECT, Command.BIND, Command.UDP_ASSOCIATE
_RESOLVE, _RESOLVE_PTR = Command.RESOLVE, Command.RESOLVE_PTR

TRANSITIONS = {
    Role.CLIENT: {
        State.AWAIT_GREETING: {Greeting: State.AWAIT_METHOD},
        State.AWAIT_AUTH: {UserPassAuth: State.AWAIT_AUTH_RESULT},
        State.AWAIT_REQUEST: {Request: State.AWAIT_REPLY},
    },
    Role.SERVER: {
        State.AWAIT_METHOD: {
            MethodSelected: {
                AuthMethod.NO_AUTH: State.AWAIT_REQUEST,
                AuthMethod.USERNAME_PASSWORD: State.AWAIT_AUTH,
                AuthMethod.NO_ACCEPTABLE: State.CLOSED,
            },
        },
        State.AWAIT_AUTH_RESULT: {
            AuthResult: {True: State.AWAIT_REQUEST, False: State.CLOSED},
        },
        State.AWAIT_REPLY: {
            Reply: {
                (_CONNECT, True): State.TUNNEL,
                (_BIND, True): State.AWAIT_SECOND_REPLY,
                (_UDP, True): State.UDP_ASSOCIATED,
                (_CONNECT, False): State.CLOSED,
                (_BIND, False): State.CLOSED,
                (_UDP, False): State.CLOSED,
                # Tor's RESOLVE and RESOLVE_PTR: the reply is the answer; nothing follows
                (_RESOLVE, True): State.CLOSED,
                (_RESOLVE, False): State.CLOSED,
                (_RESOLVE_PTR, True): State.CLOSED,
                (_RESOLVE_PTR, False): State.CLOSED,
            },
        },
        State.AWAIT_SECOND_REPLY: {
            Reply: {(_BIND, True): State.TUNNEL, (_BIND, False): State.CLOSED},
        },
    },
}
