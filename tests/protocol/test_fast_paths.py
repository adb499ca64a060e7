"""The core's performance shortcuts keep its API.

- Events write their own ``__init__`` but are still frozen, slotted dataclasses: keyword
  arguments, defaults, ``fields()``, ``replace()`` (which re-validates), ``repr`` and ``==``.
- ``Address`` parses canonical dotted quads without ``ipaddress``: the same set, same result.
- A complete SOCKS5 IPv4 request or reply is read with one ``struct`` call: same events, same
  errors (in wire order) as the byte-by-byte decoder, for every one-byte change of the message.
- Decoded IPv4 addresses may be shared between replies, and ``Address.from_host`` values
  between calls with the same text (bounded caches): they are equal to freshly built ones and
  immutable.
"""

import dataclasses
import ipaddress
import itertools
import random

import pytest

from socksify.protocol import (
    NEED_DATA,
    UNSPECIFIED_V4,
    Address,
    AddressType,
    Command,
    Connection,
    Greeting,
    LocalProtocolError,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Request,
    Role,
    State,
    UdpDatagram,
    UserPassAuth,
    _address,
    _socks4,
    _socks5,
)

EVENTS = [
    Greeting((0, 2)),
    UserPassAuth(b"u", b"p"),
    Request(Command.BIND, Address.from_host("10.1.2.3"), 21, b"joe"),
    Reply(0, UNSPECIFIED_V4, 0),
    UdpDatagram(Address.domain("example.org"), 53, b"q", frag=1),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda event: type(event).__name__)
def test_events_keep_the_dataclass_api(event):
    cls = type(event)
    assert dataclasses.is_dataclass(event) and not hasattr(event, "__dict__")
    values = {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
    assert cls(**values) == event and hash(cls(**values)) == hash(event)
    assert dataclasses.replace(event) == event
    assert repr(event).startswith(f"{cls.__name__}(")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, dataclasses.fields(event)[0].name, None)


def test_defaults_and_keywords():
    address = Address.from_host("192.0.2.7")
    assert Request(command=Command.CONNECT, address=address, port=1).user_id == b""
    assert UdpDatagram(address=address, port=1, data=b"").frag == 0
    with pytest.raises(LocalProtocolError, match="port"):
        dataclasses.replace(Reply(0, address, 80), port=70000)
    with pytest.raises(TypeError):
        Reply(0, address)  # missing argument, as with the generated __init__


def test_decoded_ipv4_addresses_equal_fresh_ones_and_stay_bounded():
    first = _socks5_reply_address(b"\xc0\x00\x02\x07")
    second = _socks5_reply_address(b"\xc0\x00\x02\x07")
    assert first == second == Address.ipv4("192.0.2.7")
    assert first.type is AddressType.IPV4 and first.packed == b"\xc0\x00\x02\x07"
    for index in range(1000):
        _socks5_reply_address(index.to_bytes(4, "big"))
    assert len(_address._ipv4_cache) <= 256
    with pytest.raises(AttributeError):
        first.host = "10.0.0.1"


def test_from_host_shares_one_value_per_text_and_stays_bounded():
    first = Address.from_host("192.0.2.8")
    assert Address.from_host("192.0.2.8") is first
    assert first == Address.ipv4("192.0.2.8") and first.packed == b"\xc0\x00\x02\x08"
    assert Address.from_host("[2001:db8::0:1]") == Address.ipv6("2001:db8::1")
    for index in range(1000):
        assert Address.from_host(f"host{index}.example").host == f"host{index}.example"
    assert len(_address._host_cache) <= 256
    for _ in range(2):  # an error is raised every time, never cached
        with pytest.raises(LocalProtocolError, match="empty domain name"):
            Address.from_host("")

    class Text(str):
        pass

    assert Address.from_host(Text("192.0.2.8")) == first  # parsed, not looked up


def _socks5_reply_address(packed: bytes) -> Address:
    conn = Connection(Role.CLIENT, 5)
    conn.send(Greeting((0,)))
    conn.receive_data(b"\x05\x00")
    conn.next_event()
    conn.send(Request(Command.CONNECT, UNSPECIFIED_V4, 80))
    conn.receive_data(b"\x05\x00\x00\x01" + packed + b"\x00\x50")
    return conn.next_event().address


def test_dotted_quad_shortcut_accepts_exactly_what_ipaddress_accepts():
    pieces = ["0", "00", "1", "01", "9", "10", "99", "255", "256", "1000", "", "a", "٤", "²"]
    pieces += ["-1", " 1", "+1", "1_0", "0x1", "1 "]
    checked = 0
    for count in (3, 4, 5):
        for octets in itertools.product(pieces, repeat=count) if count != 4 else _sample(pieces):
            host = ".".join(octets)
            try:
                expected = ipaddress.IPv4Address(host).packed
            except ValueError:
                expected = None
            assert _address._dotted_quad(host) == expected, repr(host)
            if expected is not None:
                assert Address.from_host(host).packed == Address.ipv4(host).packed == expected
                assert Address.from_host(host).host == host
            checked += 1
    assert checked > 10_000


def _sample(pieces):
    """Every 4-octet combination of the first pieces, and seeded random ones of all."""
    yield from itertools.product(pieces[:9], repeat=4)
    rng = random.Random(1928)
    for _ in range(20_000):
        yield tuple(rng.choice(pieces) for _ in range(4))


@pytest.mark.parametrize("buffered", [b"", b"\x05"])
def test_eof_while_waiting_is_an_error_and_moves_to_error(buffered):
    conn = Connection(Role.CLIENT, 5)
    conn.send(Greeting((0,)))
    conn.receive_data(buffered)  # b"" is EOF at once
    if buffered:
        assert conn.next_event() is NEED_DATA
        conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="connection closed"):
        conn.next_event()
    assert conn.state is State.ERROR


def _decode_outcome(decode, buf):
    try:
        return decode(bytearray(buf))
    except RemoteProtocolError as exc:
        return ("error", str(exc), exc.reply_hint)


def _one_byte_variants(message: bytes):
    """``message`` with each byte in turn set to every value, with and without bytes after it."""
    for position in range(len(message)):
        for value in range(256):
            variant = bytearray(message)
            variant[position] = value
            yield bytes(variant)
            yield bytes(variant) + b"\x05\x01"


@pytest.mark.parametrize(
    "decode, message",
    [
        (_socks5.maybe_decode_request, b"\x05\x01\x00\x01\xc0\x00\x02\x07\x1f\x90"),
        (_socks5.maybe_decode_reply, b"\x05\x00\x00\x01\xc0\x00\x02\x07\x9c\x41"),
    ],
    ids=["request", "reply"],
)
def test_ipv4_struct_shortcut_agrees_with_the_byte_by_byte_decoder(monkeypatch, decode, message):
    variants = list(_one_byte_variants(message))
    fast = [_decode_outcome(decode, variant) for variant in variants]
    monkeypatch.setattr(_socks5, "_unpack_ipv4_message", lambda buf: (None,) * 6)
    general = [_decode_outcome(decode, variant) for variant in variants]
    assert fast == general
    kinds = {None if outcome is None else outcome[0] for outcome in fast}
    kinds = {kind if kind in (None, "error") else type(kind) for kind in kinds}
    assert kinds == {None, "error", Request if decode is _socks5.maybe_decode_request else Reply}


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
def test_received_bytes_are_kept_whatever_the_caller_does_with_its_buffer(kind):
    """The core keeps a bytes read as is and copies a mutable one; reads pile up correctly."""
    request = b"\x05\x01\x00\x01\xc0\x00\x02\x07\x00\x50"
    read = bytearray(b"\x05\x01\x00" + request[:4])
    server = Connection(Role.SERVER)
    given = {"bytes": bytes(read), "bytearray": read, "memoryview": memoryview(read)}[kind]
    server.receive_data(given)
    read[:] = b"\xff" * len(read)  # the caller reuses its read buffer
    assert server.next_event() == Greeting((0,))
    server.send(MethodSelected(0))
    for byte in request[4:] + b"early":
        server.receive_data(bytes((byte,)))
    assert server.next_event() == Request(Command.CONNECT, Address.ipv4("192.0.2.7"), 80)
    server.send(Reply(0, UNSPECIFIED_V4, 0))
    early = server.trailing_data
    assert early == b"early" and early.__class__ is bytes
    assert server.trailing_data == b""
    with pytest.raises(TypeError):
        Connection(Role.SERVER).receive_data(5)


def test_decoded_names_and_greetings_are_shared_bounded_and_never_cache_an_error():
    request = b"\x05\x01\x00\x03\x0bexample.org\x00\x50"
    first, _ = _socks5.maybe_decode_request(request)
    again, _ = _socks5.maybe_decode_request(bytearray(request))
    assert again.address is first.address and first.address == Address.domain("example.org")
    socks4a = b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.org\x00"
    assert _socks4.maybe_decode_request(socks4a)[0].address is first.address
    for _ in range(2):  # a bad name is refused every time
        with pytest.raises(RemoteProtocolError, match="non-ASCII"):
            _socks5.maybe_decode_request(b"\x05\x01\x00\x03\x01\xff\x00\x50")
    for index in range(300):
        name = f"n{index}.example".encode()
        message = b"\x05\x01\x00\x03" + bytes((len(name),)) + name + b"\x00\x50"
        assert _socks5.maybe_decode_request(message)[0].address.host == name.decode()
        greeting = bytes((5, 2, 0, index % 256))
        assert _socks5.maybe_decode_greeting(greeting) == (Greeting((0, index % 256)), 4)
    assert len(_socks5._names) <= 256 and len(_socks5._greetings) <= 64
    greeting, consumed = _socks5.maybe_decode_greeting(b"\x05\x01\x00xyz")
    assert _socks5.maybe_decode_greeting(bytearray(b"\x05\x01\x00"))[0] is greeting
    assert greeting == Greeting((0,)) and consumed == 3
