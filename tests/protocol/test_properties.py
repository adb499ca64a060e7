"""Property tests: deterministic (derandomize) and small, so the suite stays fast."""

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthResult,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Request,
    Role,
    State,
    UdpDatagram,
    decode_udp_datagram,
    encode_udp_datagram,
)

from .helpers import CODECS

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
addresses = st.one_of(
    st.ip_addresses(v=4).map(lambda ip: Address.ipv4(str(ip))),
    st.ip_addresses(v=6).map(lambda ip: Address.ipv6(str(ip))),
    st.lists(_label, min_size=1, max_size=8).map(lambda labels: Address.domain(".".join(labels))),
)
ports = st.integers(0, 65535)
# Bytes that start like each SOCKS version, so the fuzzing reaches past the version check.
junk = st.one_of(
    st.binary(max_size=64),
    st.binary(max_size=64).map(lambda b: b"\x05" + b),
    st.binary(max_size=64).map(lambda b: b"\x05\x01\x00" + b),
    st.binary(max_size=64).map(lambda b: b"\x04" + b),
    st.binary(max_size=64).map(lambda b: b"\x04\x01\x00\x50\x00\x00\x00\x01" + b),
)


def _feed_server(data: bytes, chunks: "list[int]") -> None:
    """Play a permissive server over ``data``, delivered in ``chunks``-sized reads."""
    server = Connection(Role.SERVER, max_buffer=48)
    greeting = None
    pos = 0
    for size in [*chunks, len(data)]:
        piece, pos = data[pos : pos + size], pos + size
        if piece:
            server.receive_data(piece)
        while server.state not in (State.ERROR, State.TUNNEL, State.CLOSED):
            event = server.next_event()
            if isinstance(event, Greeting):
                greeting = event
            elif server.state is State.AWAIT_METHOD:
                server.send(
                    MethodSelected(greeting.methods[0] if greeting.methods[0] in (0, 2) else 255)
                )
            elif server.state is State.AWAIT_AUTH_RESULT:
                server.send(AuthResult(True))
            elif server.state is State.AWAIT_REPLY:
                code = 0 if server.version == 5 else 90
                server.send(Reply(code, Address.ipv4("0.0.0.0"), 0))
            elif event is NEED_DATA:
                break


@SETTINGS
@given(junk, st.lists(st.integers(1, 8), max_size=8))
def test_random_bytes_only_raise_remote_protocol_error(data, chunks):
    try:
        _feed_server(data, chunks)
    except RemoteProtocolError:
        pass


@SETTINGS
@given(st.sampled_from(list(Command)), addresses, ports)
def test_socks5_request_round_trip(command, address, port):
    encode, decode = CODECS[(5, "request")]
    event = Request(command, address, port)
    data = encode(event)
    assert decode(bytearray(data)) == (event, len(data))


@SETTINGS
@given(
    st.sampled_from([Command.CONNECT, Command.BIND]),
    addresses.filter(lambda a: a.type != 4 and not a.host.startswith("0.0.0.")),
    ports,
    st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"")),
)
def test_socks4_request_round_trip(command, address, port, user_id):
    encode, decode = CODECS[(4, "request")]
    event = Request(command, address, port, user_id)
    data = encode(event)
    assert decode(bytearray(data)) == (event, len(data))


@SETTINGS
@given(st.integers(0, 255), addresses, ports)
def test_socks5_reply_round_trip(code, address, port):
    encode, decode = CODECS[(5, "reply")]
    event = Reply(code, address, port)
    data = encode(event)
    assert decode(bytearray(data)) == (event, len(data))


@SETTINGS
@given(addresses, ports, st.binary(max_size=100), st.integers(0, 255))
def test_udp_round_trip(address, port, data, frag):
    event = UdpDatagram(address, port, data, frag)
    assert decode_udp_datagram(encode_udp_datagram(event)) == event


@SETTINGS
@given(st.binary(max_size=40))
def test_random_udp_datagrams_only_raise_remote_protocol_error(data):
    try:
        event = decode_udp_datagram(data)
    except RemoteProtocolError:
        return
    assert encode_udp_datagram(event) == data


@SETTINGS
@given(st.ip_addresses(v=6))
def test_ipv6_text_is_compressed_canonical(ip):
    address = Address.ipv6(ip.exploded)
    assert address.host == ipaddress.IPv6Address(ip).compressed
