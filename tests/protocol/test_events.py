"""Address and event values: validation on construction (LocalProtocolError), normalisation."""

import pytest

from socksify.protocol import (
    UNSPECIFIED_V4,
    Address,
    AddressType,
    AuthResult,
    Command,
    Greeting,
    LocalProtocolError,
    MethodSelected,
    Reply,
    Request,
    UdpDatagram,
    UserPassAuth,
)


@pytest.mark.parametrize(
    "text,kind,host",
    [
        ("127.0.0.1", AddressType.IPV4, "127.0.0.1"),
        ("::1", AddressType.IPV6, "::1"),
        ("[::1]", AddressType.IPV6, "::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", AddressType.IPV6, "2001:db8::1"),
        ("example.org", AddressType.DOMAIN, "example.org"),
        ("1.2.3", AddressType.DOMAIN, "1.2.3"),  # not an IPv4 literal: a name
        ("300.1.1.1", AddressType.DOMAIN, "300.1.1.1"),
        ("localhost", AddressType.DOMAIN, "localhost"),
        ("bücher.example", AddressType.DOMAIN, "bücher.example"),
    ],
)
def test_from_host(text, kind, host):
    address = Address.from_host(text)
    assert address.type is kind
    assert address.host == host
    assert str(address) == host
    assert address.is_ip is (kind is not AddressType.DOMAIN)


def test_equal_addresses_compare_and_hash_equal():
    a = Address.ipv6("0:0::1")
    b = Address.from_host("::1")
    assert a == b and hash(a) == hash(b)
    assert Address(4, "::1") == b  # a plain int ATYP is converted
    assert Address.ipv4("10.0.0.1") != Address.domain("10.0.0.1")


def test_packed_wire_forms():
    assert Address.ipv4("192.0.2.1").packed == bytes([192, 0, 2, 1])
    assert Address.ipv6("::1").packed == bytes(15) + b"\x01"
    assert Address.domain("bücher.example").packed == b"xn--bcher-kva.example"
    assert Address.domain("Example.ORG").packed == b"Example.ORG"
    assert UNSPECIFIED_V4.packed == bytes(4)


def test_domain_length_limits():
    name255 = ".".join(["a" * 63] * 3 + ["b" * 63])
    assert len(Address.domain(name255).packed) == 255
    with pytest.raises(LocalProtocolError, match="longer than 255"):
        Address.domain(name255 + "c")
    with pytest.raises(LocalProtocolError, match="longer than 255"):
        Address.from_host(name255 + "c")
    with pytest.raises(LocalProtocolError, match="empty domain name"):
        Address.domain("")


@pytest.mark.parametrize(
    "factory,value,match",
    [
        (Address.ipv4, "1.2.3.256", "bad IPV4"),
        (Address.ipv4, "::1", "bad IPV4"),
        (Address.ipv4, "01.2.3.4", "bad IPV4"),
        (Address.ipv6, "1.2.3.4", "bad IPV6"),
        (Address.ipv6, "fe80::1%eth0", "scoped"),
        (Address.domain, "a\0b", "NUL"),
        (Address.domain, "ex\u00e4mple." + "x" * 64, "IDNA"),
        (Address.domain, b"example.org", "must be str"),
        (Address.from_host, None, "must be str"),
        (lambda h: Address(9, h), "x", "unknown address type"),
    ],
)
def test_bad_addresses(factory, value, match):
    with pytest.raises(LocalProtocolError, match=match):
        factory(value)


def test_addresses_are_frozen():
    with pytest.raises(AttributeError):
        UNSPECIFIED_V4.host = "1.1.1.1"


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: Greeting(()), "1 to 255"),
        (lambda: Greeting(tuple(range(256))), "1 to 255"),
        (lambda: Greeting((256,)), "0..255"),
        (lambda: MethodSelected(-1), "0..255"),
        (lambda: UserPassAuth(b"u" * 256, b""), "username longer than 255"),
        (lambda: UserPassAuth(b"", "p" * 256), "password longer than 255"),
        (lambda: UserPassAuth(1, b""), "must be bytes"),
        (lambda: AuthResult(1), "bool"),
        (lambda: Request(9, UNSPECIFIED_V4, 80), "unknown command"),
        (lambda: Request(Command.CONNECT, "1.2.3.4", 80), "must be an Address"),
        (lambda: Request(Command.CONNECT, UNSPECIFIED_V4, 65536), "port"),
        (lambda: Request(Command.CONNECT, UNSPECIFIED_V4, -1), "port"),
        (lambda: Request(Command.CONNECT, UNSPECIFIED_V4, "80"), "port"),
        (lambda: Request(Command.CONNECT, UNSPECIFIED_V4, 80, b"a\0b"), "NUL"),
        (lambda: Reply(256, UNSPECIFIED_V4, 0), "0..255"),
        (lambda: UdpDatagram(UNSPECIFIED_V4, 53, "text"), "must be bytes"),
        (lambda: UdpDatagram(UNSPECIFIED_V4, 53, b"", frag=256), "0..255"),
    ],
)
def test_events_are_validated(build, match):
    with pytest.raises(LocalProtocolError, match=match):
        build()


def test_event_conversions():
    assert Greeting([0, 2]).methods == (0, 2)
    assert UserPassAuth("jürgen", "pw") == UserPassAuth("jürgen".encode(), b"pw")
    request = Request(1, UNSPECIFIED_V4, 80, "joe")
    assert request.command is Command.CONNECT and request.user_id == b"joe"
    assert UdpDatagram(UNSPECIFIED_V4, 53, bytearray(b"q")).data == b"q"
    with pytest.raises(AttributeError):
        request.port = 81
