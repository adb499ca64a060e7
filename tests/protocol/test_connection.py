"""Full handshakes: a client Connection paired in memory with a server Connection."""

import pytest

from socksify.protocol import (
    NEED_DATA,
    UNSPECIFIED_V4,
    Address,
    AuthMethod,
    AuthResult,
    Command,
    Connection,
    Greeting,
    LocalProtocolError,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Reply4,
    Reply5,
    Request,
    Role,
    State,
    UserPassAuth,
    Version,
)

from .helpers import ConnectionPair, deliver

C, S = Role.CLIENT, Role.SERVER
DEST = Address.from_host("example.org")
BOUND = Address.ipv4("192.0.2.7")
CHUNKS = pytest.mark.parametrize("chunk", [0, 1, 3], ids=["whole", "bytewise", "by3"])


@CHUNKS
def test_socks5_no_auth_connect_with_early_data_both_ways(chunk):
    pair = ConnectionPair(5, server_version=None, chunk=chunk)
    assert pair.server.version is None
    assert pair.send(C, Greeting((AuthMethod.NO_AUTH,))) == [Greeting((0,))]
    assert pair.server.version is Version.SOCKS5
    assert pair.send(S, MethodSelected(0)) == [MethodSelected(0)]
    assert pair.client.auth_method == 0
    request = Request(Command.CONNECT, DEST, 443)
    assert pair.send(C, request, extra=b"\x16\x03\x01 client hello") == [request]
    assert pair.server.request == request
    reply = Reply(Reply5.SUCCEEDED, BOUND, 40000)
    assert pair.send(S, reply, extra=b"\x05 server bytes") == [reply]
    assert pair.client.reply_succeeded(reply)
    assert pair.client.state is pair.server.state is State.TUNNEL
    assert pair.server.trailing_data == b"\x16\x03\x01 client hello"
    assert pair.client.trailing_data == b"\x05 server bytes"
    assert pair.client.trailing_data == b""  # handed back once


@CHUNKS
def test_socks5_username_password(chunk):
    pair = ConnectionPair(5, chunk=chunk)
    pair.send(C, Greeting((0, 2)))
    pair.send(S, MethodSelected(2))
    assert pair.client.state is State.AWAIT_AUTH
    assert pair.send(C, UserPassAuth("alice", "s3cret")) == [UserPassAuth(b"alice", b"s3cret")]
    assert pair.send(S, AuthResult(True)) == [AuthResult(True)]
    assert pair.client.state is State.AWAIT_REQUEST
    pair.send(C, Request(Command.CONNECT, Address.ipv6("::1"), 80))
    pair.send(S, Reply(0, Address.ipv6("::1"), 1))
    assert pair.client.state is State.TUNNEL


def test_socks5_auth_failure_closes():
    pair = ConnectionPair(5)
    pair.send(C, Greeting((2,)))
    pair.send(S, MethodSelected(2))
    pair.send(C, UserPassAuth(b"alice", b"wrong"))
    assert pair.send(S, AuthResult(False)) == [AuthResult(False)]
    assert pair.client.state is pair.server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.client.send(Request(Command.CONNECT, DEST, 80))


def test_socks5_no_acceptable_method_closes():
    pair = ConnectionPair(5)
    pair.send(C, Greeting((2,)))
    assert pair.send(S, MethodSelected(AuthMethod.NO_ACCEPTABLE)) == [MethodSelected(255)]
    assert pair.client.state is pair.server.state is State.CLOSED
    assert pair.client.trailing_data == b""


@CHUNKS
def test_socks5_bind_two_replies(chunk):
    pair = ConnectionPair(5, chunk=chunk)
    pair.send(C, Greeting((0,)))
    pair.send(S, MethodSelected(0))
    pair.send(C, Request(Command.BIND, Address.ipv4("198.51.100.1"), 21))
    first = Reply(0, BOUND, 50000)
    assert pair.send(S, first) == [first]
    assert pair.client.state is pair.server.state is State.AWAIT_SECOND_REPLY
    second = Reply(0, Address.ipv4("198.51.100.1"), 20)
    assert pair.send(S, second, extra=b"220 data") == [second]
    assert pair.client.state is State.TUNNEL
    assert pair.client.trailing_data == b"220 data"


def test_socks5_bind_second_reply_failure_closes():
    pair = ConnectionPair(5)
    pair.send(C, Greeting((0,)))
    pair.send(S, MethodSelected(0))
    pair.send(C, Request(Command.BIND, Address.ipv4("198.51.100.1"), 21))
    pair.send(S, Reply(0, BOUND, 50000))
    pair.send(S, Reply(Reply5.TTL_EXPIRED, UNSPECIFIED_V4, 0))
    assert pair.client.state is pair.server.state is State.CLOSED


def test_socks5_both_bind_replies_in_one_read():
    pair = ConnectionPair(5)
    pair.send(C, Greeting((0,)))
    pair.send(S, MethodSelected(0))
    pair.send(C, Request(Command.BIND, Address.ipv4("198.51.100.1"), 21))
    data = pair.server.send(Reply(0, BOUND, 1)) + pair.server.send(Reply(0, BOUND, 2)) + b"x"
    assert deliver(pair.client, data) == [Reply(0, BOUND, 1), Reply(0, BOUND, 2)]
    assert pair.client.trailing_data == b"x"


def test_socks5_udp_associate():
    pair = ConnectionPair(5)
    pair.send(C, Greeting((0,)))
    pair.send(S, MethodSelected(0))
    pair.send(C, Request(Command.UDP_ASSOCIATE, UNSPECIFIED_V4, 0))
    pair.send(S, Reply(0, Address.ipv4("127.0.0.1"), 40001))
    assert pair.client.state is pair.server.state is State.UDP_ASSOCIATED
    with pytest.raises(LocalProtocolError, match="no events"):
        pair.client.next_event()


@pytest.mark.parametrize("code", [*range(1, 9), 0x09, 0xF4, 0xFF])
def test_socks5_failure_reply_closes(code):
    pair = ConnectionPair(5)
    pair.send(C, Greeting((0,)))
    pair.send(S, MethodSelected(0))
    pair.send(C, Request(Command.CONNECT, DEST, 80))
    [reply] = pair.send(S, Reply(code, UNSPECIFIED_V4, 0))
    assert reply.code == code
    assert not pair.client.reply_succeeded(reply)
    assert pair.client.state is pair.server.state is State.CLOSED


@CHUNKS
@pytest.mark.parametrize(
    "address", [Address.ipv4("192.0.2.1"), Address.domain("example.org")], ids=["4", "4a"]
)
def test_socks4_connect(chunk, address):
    pair = ConnectionPair(4, server_version=None, chunk=chunk)
    request = Request(Command.CONNECT, address, 80, b"joe")
    assert pair.send(C, request, extra=b"early") == [request]
    assert pair.server.version is Version.SOCKS4
    reply = Reply(Reply4.GRANTED, UNSPECIFIED_V4, 0)
    assert pair.send(S, reply) == [reply]
    assert pair.client.reply_succeeded(reply)
    assert pair.client.state is State.TUNNEL
    assert pair.server.trailing_data == b"early"


def test_socks4_bind_two_replies():
    pair = ConnectionPair(4)
    pair.send(C, Request(Command.BIND, Address.ipv4("198.51.100.1"), 21))
    pair.send(S, Reply(90, BOUND, 50000))
    assert pair.client.state is State.AWAIT_SECOND_REPLY
    pair.send(S, Reply(90, Address.ipv4("198.51.100.1"), 20))
    assert pair.client.state is State.TUNNEL


@pytest.mark.parametrize("code", [91, 92, 93])
def test_socks4_rejected_closes(code):
    pair = ConnectionPair(4)
    pair.send(C, Request(Command.CONNECT, Address.ipv4("192.0.2.1"), 80))
    [reply] = pair.send(S, Reply(code, UNSPECIFIED_V4, 0))
    assert not pair.client.reply_succeeded(reply)
    assert pair.client.state is pair.server.state is State.CLOSED


# --- pipelining -----------------------------------------------------------------------------


def test_server_returns_pipelined_messages_one_at_a_time():
    client = Connection(C, 5)
    wire = (
        client.send(Greeting((2,)))
        + client.send(UserPassAuth(b"alice", b"pw"))
        + client.send(Request(Command.CONNECT, DEST, 80))
        + b"GET / HTTP/1.0\r\n\r\n"
    )
    assert client.state is State.AWAIT_METHOD  # nothing answered yet
    server = Connection(S)
    server.receive_data(wire)
    assert server.next_event() == Greeting((2,))
    assert server.next_event() is NEED_DATA  # our turn: the rest waits
    assert server.next_event() is NEED_DATA
    answer = server.send(MethodSelected(2))
    assert server.next_event() == UserPassAuth(b"alice", b"pw")
    assert server.next_event() is NEED_DATA
    answer += server.send(AuthResult(True))
    assert server.next_event() == Request(Command.CONNECT, DEST, 80)
    answer += server.send(Reply(0, BOUND, 1)) + b"HTTP/1.0 200 OK"
    assert server.trailing_data == b"GET / HTTP/1.0\r\n\r\n"
    # ... and the client gets the three answers in one read.
    assert deliver(client, answer) == [MethodSelected(2), AuthResult(True), Reply(0, BOUND, 1)]
    assert client.state is State.TUNNEL
    assert client.trailing_data == b"HTTP/1.0 200 OK"


def test_client_pipelined_request_after_no_auth_greeting():
    pair = ConnectionPair(5, chunk=1)
    request = Request(Command.CONNECT, DEST, 80)
    pair.client.send(Greeting((0,)))
    wire = pair.client.send(request)
    assert pair.client.state is State.AWAIT_METHOD
    assert deliver(pair.server, bytes((5, 1, 0)) + wire) == [Greeting((0,))]
    assert pair.send(S, MethodSelected(0)) == [MethodSelected(0)]
    assert pair.client.state is State.AWAIT_REPLY  # the request sent ahead is now due
    assert pair.server.next_event() == request


def test_client_pipelining_refused_when_answer_not_forced():
    client = Connection(C, 5)
    client.send(Greeting((0, 2)))  # the server may pick either
    with pytest.raises(LocalProtocolError, match="can't send Request in state AWAIT_METHOD"):
        client.send(Request(Command.CONNECT, DEST, 80))


def test_client_pipelined_then_refused():
    pair = ConnectionPair(5)
    pair.client.send(Greeting((2,)))
    pair.client.send(UserPassAuth(b"a", b"b"))
    pair.client.send(Request(Command.CONNECT, DEST, 80))
    pair.server.receive_data(bytes((5, 1, 2)))
    pair.server.next_event()
    events = deliver(pair.client, pair.server.send(MethodSelected(255)))
    assert events == [MethodSelected(255)]
    assert pair.client.state is State.CLOSED


def test_client_pipelined_auth_failure():
    client = Connection(C, 5)
    client.send(Greeting((2,)))
    client.send(UserPassAuth(b"a", b"b"))
    client.send(Request(Command.CONNECT, DEST, 80))
    assert deliver(client, b"\x05\x02\x01\x01") == [MethodSelected(2), AuthResult(False)]
    assert client.state is State.CLOSED


# --- misuse and malformed input ----------------------------------------------------------------


def test_client_needs_a_version():
    with pytest.raises(LocalProtocolError, match="version"):
        Connection(C)
    with pytest.raises(LocalProtocolError, match="version"):
        Connection(C, 6)
    with pytest.raises(LocalProtocolError, match="role"):
        Connection("client", 5)


@pytest.mark.parametrize("first", [b"\x00", b"\x01", b"G", b"\x16"])
def test_server_rejects_unknown_version(first):
    server = Connection(S)
    server.receive_data(first + b"rest")
    with pytest.raises(RemoteProtocolError, match="bad version"):
        server.next_event()
    assert server.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        server.next_event()


def test_server_cannot_select_unoffered_method():
    server = Connection(S, 5)
    server.receive_data(b"\x05\x01\x00")
    server.next_event()
    with pytest.raises(LocalProtocolError, match="not offered"):
        server.send(MethodSelected(2))
    assert server.state is State.ERROR


def test_server_cannot_select_unimplemented_method():
    server = Connection(S, 5)
    server.receive_data(b"\x05\x02\x01\x00")
    assert server.next_event() == Greeting((1, 0))
    with pytest.raises(LocalProtocolError, match="not implemented"):
        server.send(MethodSelected(AuthMethod.GSSAPI))


def test_client_rejects_unoffered_method():
    client = Connection(C, 5)
    client.send(Greeting((0,)))
    client.receive_data(b"\x05\x02")
    with pytest.raises(RemoteProtocolError, match="not offered"):
        client.next_event()
    assert client.state is State.ERROR


def test_client_cannot_offer_unimplemented_method():
    with pytest.raises(LocalProtocolError, match="not implemented"):
        Connection(C, 5).send(Greeting((AuthMethod.GSSAPI,)))


def test_server_may_send_one_failure_reply_after_bad_request():
    server = Connection(S, 5)
    server.receive_data(b"\x05\x01\x00" + b"\x05\x09\x00\x01\x7f\x00\x00\x01\x00\x50")
    server.next_event()
    server.send(MethodSelected(0))
    with pytest.raises(RemoteProtocolError, match="unknown command 0x09") as info:
        server.next_event()
    assert info.value.reply_hint == Reply5.COMMAND_NOT_SUPPORTED
    assert server.state is State.ERROR
    with pytest.raises(LocalProtocolError, match="only a failure"):
        server.send(Reply(0, UNSPECIFIED_V4, 0))
    server = Connection(S, 5)
    server.receive_data(b"\x05\x01\x00" + b"\x05\x01\x00\x07")
    server.next_event()
    server.send(MethodSelected(0))
    with pytest.raises(RemoteProtocolError, match="unknown address type") as info:
        server.next_event()
    wire = server.send(Reply(info.value.reply_hint, UNSPECIFIED_V4, 0))
    assert wire == bytes.fromhex("05 08 00 01 00000000 0000")
    assert server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.send(Reply(1, UNSPECIFIED_V4, 0))


def test_socks4_server_bad_request_gets_rejected_hint():
    server = Connection(S)
    server.receive_data(b"\x04\x01\x00\x50\x00\x00\x00\x00joe\x00")
    with pytest.raises(RemoteProtocolError, match="0.0.0.0") as info:
        server.next_event()
    assert info.value.reply_hint == Reply4.REJECTED
    assert server.send(Reply(91, UNSPECIFIED_V4, 0)) == b"\x00\x5b\x00\x00\x00\x00\x00\x00"


def test_bad_greeting_gives_no_reply_hint():
    server = Connection(S)
    server.receive_data(b"\x05\x00")
    with pytest.raises(RemoteProtocolError, match="empty method list") as info:
        server.next_event()
    assert info.value.reply_hint is None
    with pytest.raises(LocalProtocolError):
        server.send(Reply(1, UNSPECIFIED_V4, 0))


@pytest.mark.parametrize(
    "event,match",
    [
        (Request(Command.CONNECT, Address.ipv6("::1"), 80), "IPv6"),
        (Request(Command.UDP_ASSOCIATE, UNSPECIFIED_V4, 0), "UDP"),
        (Request(Command.CONNECT, Address.ipv4("0.0.0.7"), 80), "reserved"),
        (Request(Command.CONNECT, UNSPECIFIED_V4, 80), "reserved"),
    ],
)
def test_socks4_client_cannot_send(event, match):
    client = Connection(C, 4)
    with pytest.raises(LocalProtocolError, match=match):
        client.send(event)
    assert client.state is State.ERROR


@pytest.mark.parametrize(
    "reply,match",
    [
        (Reply(0, UNSPECIFIED_V4, 0), "90..93"),
        (Reply(94, UNSPECIFIED_V4, 0), "90..93"),
        (Reply(90, Address.ipv6("::1"), 0), "IPv4"),
        (Reply(90, Address.domain("example.org"), 0), "IPv4"),
    ],
)
def test_socks4_server_cannot_send(reply, match):
    server = Connection(S, 4)
    server.receive_data(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
    server.next_event()
    with pytest.raises(LocalProtocolError, match=match):
        server.send(reply)


def test_next_event_is_need_data_on_our_turn():
    client = Connection(C, 5)
    client.receive_data(b"\x05\x00")  # unsolicited: waits until we have spoken
    assert client.next_event() is NEED_DATA
    client.send(Greeting((0,)))
    assert client.next_event() == MethodSelected(0)


def test_trailing_data_only_after_handshake():
    client = Connection(C, 5)
    with pytest.raises(LocalProtocolError, match="no trailing data"):
        client.trailing_data  # noqa: B018


def test_reply_succeeded_needs_version():
    with pytest.raises(LocalProtocolError):
        Connection(S).reply_succeeded(Reply(0, UNSPECIFIED_V4, 0))


# --- EOF and max_buffer ----------------------------------------------------------------------


def test_eof_mid_message():
    server = Connection(S)
    server.receive_data(b"\x05\x02\x00")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    assert server.peer_closed
    with pytest.raises(RemoteProtocolError, match="closed in the middle of the greeting"):
        server.next_event()
    assert server.state is State.ERROR


def test_eof_while_waiting():
    client = Connection(C, 4)
    client.send(Request(Command.CONNECT, Address.ipv4("192.0.2.1"), 80))
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed while waiting for the reply"):
        client.next_event()


def test_eof_after_complete_message_still_yields_it():
    server = Connection(S, 4)
    server.receive_data(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
    server.receive_data(b"")
    assert isinstance(server.next_event(), Request)


def test_data_after_eof_is_misuse():
    conn = Connection(S)
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"x")


def test_max_buffer_socks4_userid_without_nul():
    server = Connection(S, max_buffer=64)
    server.receive_data(b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"u" * 50)
    assert server.next_event() is NEED_DATA
    server.receive_data(b"u" * 10)
    with pytest.raises(RemoteProtocolError, match="NUL-terminated.*max_buffer 64"):
        server.next_event()
    assert server.state is State.ERROR


def test_max_buffer_does_not_limit_complete_messages_with_early_data():
    server = Connection(S, max_buffer=16)
    early = b"e" * 1000
    server.receive_data(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00" + early)
    assert isinstance(server.next_event(), Request)
    server.send(Reply(90, UNSPECIFIED_V4, 0))
    assert server.trailing_data == early


def test_max_buffer_socks4a_name_without_nul():
    server = Connection(S, max_buffer=4096)
    server.receive_data(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00" + b"n" * 256)
    with pytest.raises(RemoteProtocolError, match="longer than 255"):
        server.next_event()


def test_repr_and_bad_max_buffer():
    assert repr(Connection(S)) == "<Connection SERVER SOCKS? AWAIT_GREETING>"
    assert repr(Connection(C, 4)) == "<Connection CLIENT SOCKS4 AWAIT_REQUEST>"
    with pytest.raises(LocalProtocolError, match="max_buffer"):
        Connection(S, max_buffer=0)


def test_eof_before_any_byte():
    server = Connection(S)
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed while waiting for the greeting"):
        server.next_event()
    assert server.state is State.ERROR


def test_eof_while_awaiting_request_gives_no_reply_hint():
    server = Connection(S, 4)
    server.receive_data(b"\x04\x01")
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of the request") as info:
        server.next_event()
    assert info.value.reply_hint is None
