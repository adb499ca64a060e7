"""Every vector in tests/vectors through the Python codec, both directions, whole and byte by
byte (h11 ``test_chunk_boundaries``), then through a Connection in the matching state."""

import pytest
from support import vectors

from socksify.protocol import (
    NEED_DATA,
    UNSPECIFIED_V4,
    Address,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    RemoteProtocolError,
    Request,
    Role,
    State,
    UserPassAuth,
    decode_udp_datagram,
    encode_udp_datagram,
)

from .helpers import CODECS, assert_matches, event_from_case

STREAM = [c for c in vectors.all_cases() if c["message"] != "udp_datagram"]
VALID = vectors.select(STREAM, kinds={"valid"})
ENCODABLE = [c for c in VALID if not c.get("decode_only")]
ERRORS = vectors.select(STREAM, kinds={"error"})
INCOMPLETE = vectors.select(STREAM, kinds={"incomplete"})
UDP = vectors.load("udp.json")


def test_vector_files_are_well_formed():
    cases = vectors.all_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names))
    assert len(cases) >= 80
    for case in cases:
        assert case["direction"] in ("client_to_server", "server_to_client")
        assert case["version"] in (4, 5)
        vectors.kind(case)  # exactly one of decoded / error / incomplete
        vectors.case_bytes(case)
    # every REP value of RFC 1928 §6, an unassigned one, and every SOCKS4 CD
    codes5 = {c["decoded"]["code"] for c in VALID if c["message"] == "reply" and c["version"] == 5}
    assert set(range(9)) | {0xF4} <= codes5
    codes4 = {c["decoded"]["code"] for c in VALID if c["message"] == "reply" and c["version"] == 4}
    assert codes4 == {90, 91, 92, 93}
    messages = {(c["version"], c["message"]) for c in VALID}
    assert messages == set(CODECS)


# --- codec level ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", vectors.params(ENCODABLE))
def test_encode(case):
    encode, _ = CODECS[(case["version"], case["message"])]
    assert encode(event_from_case(case)).hex() == vectors.case_bytes(case).hex()


@pytest.mark.parametrize(
    "case", vectors.params([c for c in VALID if "host_unicode" in c["decoded"]])
)
def test_encode_unicode_host_as_idna(case):
    encode, _ = CODECS[(case["version"], case["message"])]
    event = event_from_case(case)
    fields = case["decoded"]
    unicode_event = Request(
        event.command, Address.from_host(fields["host_unicode"]), event.port, event.user_id
    )
    assert encode(unicode_event) == vectors.case_bytes(case)


@pytest.mark.parametrize("case", vectors.params(VALID))
def test_decode_whole(case):
    _, decode = CODECS[(case["version"], case["message"])]
    data = vectors.case_bytes(case)
    event, consumed = decode(bytearray(data))
    assert consumed == len(data)
    assert_matches(event, case)
    # Bytes after the message are not consumed (pipelining / early data).
    event2, consumed2 = decode(bytearray(data + b"\x05\x01\x00"))
    assert (event2, consumed2) == (event, consumed)


@pytest.mark.parametrize("case", vectors.params(VALID))
def test_decode_byte_by_byte(case):
    _, decode = CODECS[(case["version"], case["message"])]
    data = vectors.case_bytes(case)
    buf = bytearray()
    for i, byte in enumerate(data):
        buf.append(byte)
        result = decode(buf)
        if i < len(data) - 1:
            assert result is None, f"event after {i + 1} of {len(data)} bytes"
    event, consumed = result
    assert consumed == len(data)
    assert_matches(event, case)


@pytest.mark.parametrize("case", vectors.params(ERRORS))
def test_decode_error_whole(case):
    _, decode = CODECS[(case["version"], case["message"])]
    with pytest.raises(RemoteProtocolError, match=case["error"]) as info:
        decode(bytearray(vectors.case_bytes(case)))
    if "reply_hint" in case:
        assert info.value.reply_hint == case["reply_hint"]


@pytest.mark.parametrize("case", vectors.params(ERRORS))
def test_decode_error_byte_by_byte(case):
    _, decode = CODECS[(case["version"], case["message"])]
    buf = bytearray()
    with pytest.raises(RemoteProtocolError, match=case["error"]):
        for byte in vectors.case_bytes(case):
            buf.append(byte)
            assert decode(buf) is None


@pytest.mark.parametrize("case", vectors.params(INCOMPLETE))
def test_decode_incomplete(case):
    _, decode = CODECS[(case["version"], case["message"])]
    data = vectors.case_bytes(case)
    for end in range(len(data) + 1):
        assert decode(bytearray(data[:end])) is None


@pytest.mark.parametrize("case", vectors.params(vectors.select(UDP, kinds={"valid"})))
def test_udp_datagram(case):
    data = vectors.case_bytes(case)
    event = decode_udp_datagram(data)
    assert_matches(event, case)
    assert encode_udp_datagram(event_from_case(case)) == data
    # a memoryview of a receive buffer works too
    assert decode_udp_datagram(memoryview(bytearray(data))) == event


@pytest.mark.parametrize("case", vectors.params(vectors.select(UDP, kinds={"error"})))
def test_udp_datagram_error(case):
    with pytest.raises(RemoteProtocolError, match=case["error"]):
        decode_udp_datagram(vectors.case_bytes(case))


# --- through a Connection ------------------------------------------------------------------


def _receiving_connection(case):
    """A Connection in the state where the vector's message is the next thing to receive,
    or None where no legal conversation leads there (e.g. a GSSAPI selection)."""
    version, message = case["version"], case["message"]
    if case["direction"] == "client_to_server":
        if message == "greeting" or (message == "request" and version == 4):
            # valid cases: the version is sniffed from the first byte, as a server does
            return Connection(Role.SERVER, None if vectors.kind(case) == "valid" else version)
        server = Connection(Role.SERVER, 5)
        method = 2 if message == "userpass_auth" else 0
        server.receive_data(bytes((5, 1, method)))
        assert server.next_event() == Greeting((method,))
        server.send(MethodSelected(method))
        return server
    client = Connection(Role.CLIENT, version)
    if version == 5:
        offered = (0, 2)
        if message == "method_selected":
            if case.get("decoded", {}).get("method", 0) not in (0, 2, 255):
                return None
            client.send(Greeting(offered))
            return client
        client.send(Greeting((2,) if message == "auth_result" else (0,)))
        client.receive_data(b"\x05\x02" if message == "auth_result" else b"\x05\x00")
        client.next_event()
        if message == "auth_result":
            client.send(UserPassAuth(b"u", b"p"))
            return client
    client.send(
        Request(Command.CONNECT, UNSPECIFIED_V4 if version == 5 else Address.ipv4("192.0.2.1"), 80)
    )
    return client


CONNECTION_CASES = [
    c
    for c in STREAM
    if vectors.kind(c) != "valid" or c.get("decoded", {}).get("method", 0) in (0, 2, 255)
]


@pytest.mark.parametrize("chunk", [0, 1], ids=["whole", "bytewise"])
@pytest.mark.parametrize("case", vectors.params(CONNECTION_CASES))
def test_through_connection(case, chunk):
    conn = _receiving_connection(case)
    data = vectors.case_bytes(case)
    pieces = [data] if chunk == 0 and data else [data[i : i + 1] for i in range(len(data))]
    kind = vectors.kind(case)
    events = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            event = conn.next_event()
            if event is not NEED_DATA:
                events.append(event)
    except RemoteProtocolError as exc:
        assert kind == "error", exc
        assert case["error"] in str(exc)
        assert conn.state is State.ERROR
        return
    if kind == "valid":
        assert len(events) == 1
        assert_matches(events[0], case)
    else:
        assert kind == "incomplete" or not data, case
        assert events == []
        # EOF now: the message can never complete.
        conn.receive_data(b"")
        with pytest.raises(RemoteProtocolError, match="connection closed"):
            conn.next_event()
