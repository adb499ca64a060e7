"""The transition table: every legal send works, every (role, state, event) pair missing from
``TRANSITIONS`` raises LocalProtocolError and leaves the connection in ERROR."""

import pytest

from socksify.protocol import (
    AuthResult,
    Command,
    Greeting,
    LocalProtocolError,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Request,
    Role,
    State,
    UserPassAuth,
)
from socksify.protocol._address import Address
from socksify.protocol._state import FINAL_STATES, TRANSITIONS

from .helpers import ConnectionPair

C, S = Role.CLIENT, Role.SERVER
DEST = Address.ipv4("192.0.2.1")


def _request(command=Command.CONNECT):
    return Request(command, DEST, 80)


def _reply(version, ok=True):
    code = (0 if ok else 1) if version == 5 else (90 if ok else 91)
    return Reply(code, Address.ipv4("0.0.0.0"), 0)


#: (version, state) -> the conversation that leads there
PATHS = {
    (5, State.AWAIT_GREETING): [],
    (5, State.AWAIT_METHOD): [(C, Greeting((0, 2)))],
    (5, State.AWAIT_AUTH): [(C, Greeting((0, 2))), (S, MethodSelected(2))],
    (5, State.AWAIT_AUTH_RESULT): [
        (C, Greeting((2,))),
        (S, MethodSelected(2)),
        (C, UserPassAuth(b"u", b"p")),
    ],
    (5, State.AWAIT_REQUEST): [(C, Greeting((0,))), (S, MethodSelected(0))],
    (5, State.AWAIT_REPLY): [(C, Greeting((0,))), (S, MethodSelected(0)), (C, _request())],
    (5, State.AWAIT_SECOND_REPLY): [
        (C, Greeting((0,))),
        (S, MethodSelected(0)),
        (C, _request(Command.BIND)),
        (S, _reply(5)),
    ],
    (5, State.TUNNEL): [
        (C, Greeting((0,))),
        (S, MethodSelected(0)),
        (C, _request()),
        (S, _reply(5)),
    ],
    (5, State.UDP_ASSOCIATED): [
        (C, Greeting((0,))),
        (S, MethodSelected(0)),
        (C, _request(Command.UDP_ASSOCIATE)),
        (S, _reply(5)),
    ],
    (5, State.CLOSED): [(C, Greeting((0,))), (S, MethodSelected(255))],
    (4, State.AWAIT_REQUEST): [],
    (4, State.AWAIT_REPLY): [(C, _request())],
    (4, State.AWAIT_SECOND_REPLY): [(C, _request(Command.BIND)), (S, _reply(4))],
    (4, State.TUNNEL): [(C, _request()), (S, _reply(4))],
    (4, State.CLOSED): [(C, _request()), (S, _reply(4, ok=False))],
}


#: Rule 5 (pipelining): what a client on the PATHS above may send before the server answers
#: (the greeting on the AWAIT_METHOD path offers two methods, so nothing there).
SEND_AHEAD = {(5, State.AWAIT_AUTH_RESULT): {Request}}


def connection_in(role, version, state):
    if state is State.ERROR:
        pair = ConnectionPair(version)
        conn = pair.conn(role)
        conn.receive_data(b"\x00" * 8)
        if role is C:  # a client only reads once it has sent something
            pair.send(C, Greeting((0,)) if version == 5 else _request())
        with pytest.raises(RemoteProtocolError):
            conn.next_event()
        assert conn.state is State.ERROR
        return conn
    pair = ConnectionPair(version)
    for sender, event in PATHS[(version, state)]:
        pair.send(sender, event)
    assert pair.client.state is state
    assert pair.server.state is state
    return pair.conn(role)


def sample_events(version):
    return [
        Greeting((0,)),
        MethodSelected(0),
        UserPassAuth(b"u", b"p"),
        AuthResult(True),
        _request(),
        _reply(version),
    ]


CASES = [
    (role, version, state)
    for role in (C, S)
    for version, state in [*PATHS, (5, State.ERROR), (4, State.ERROR)]
]


@pytest.mark.parametrize(
    "role,version,state", CASES, ids=[f"{r.name}-v{v}-{s.name}" for r, v, s in CASES]
)
def test_send_follows_the_table(role, version, state):
    for event in sample_events(version):
        conn = connection_in(role, version, state)
        legal = type(event) in TRANSITIONS[role].get(state, {}) or (
            role is C and type(event) in SEND_AHEAD.get((version, state), ())
        )
        if legal:
            conn.send(event)
            assert conn.state is not State.ERROR
        else:
            with pytest.raises(LocalProtocolError, match="can't send|only a failure Reply"):
                conn.send(event)
            assert conn.state is State.ERROR


def test_table_covers_every_state_and_only_sendable_events():
    # Every non-final state has exactly one side that may speak (Rule 2).
    for state in State:
        speakers = [role for role in Role if state in TRANSITIONS[role]]
        if state in FINAL_STATES:
            assert speakers == []
        else:
            assert len(speakers) == 1, state
    # Every state the table leads to exists and is reachable from some path above.
    targets = set()
    for per_role in TRANSITIONS.values():
        for entries in per_role.values():
            for entry in entries.values():
                targets.update(entry.values() if isinstance(entry, dict) else [entry])
    reached = {state for _, state in PATHS}
    assert targets <= reached


def test_both_ends_walk_the_same_states():
    pair = ConnectionPair(5)
    for sender, event in PATHS[(5, State.TUNNEL)]:
        pair.send(sender, event)
        assert pair.client.state is pair.server.state
