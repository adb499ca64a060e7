"""Shared test helpers for the sans-IO core: vector <-> event conversion, ConnectionPair."""

from support.vectors import text_or_hex

from socksify.protocol import (
    NEED_DATA,
    Address,
    AddressType,
    AuthResult,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    Reply,
    Request,
    Role,
    UdpDatagram,
    UserPassAuth,
    _socks4,
    _socks5,
)

COMMANDS = {
    "connect": Command.CONNECT,
    "bind": Command.BIND,
    "udp_associate": Command.UDP_ASSOCIATE,
    "resolve": Command.RESOLVE,
    "resolve_ptr": Command.RESOLVE_PTR,
}
ATYPS = {"ipv4": AddressType.IPV4, "domain": AddressType.DOMAIN, "ipv6": AddressType.IPV6}

#: (version, message) -> (encoder, stream decoder)
CODECS = {
    (5, "greeting"): (_socks5.encode_greeting, _socks5.maybe_decode_greeting),
    (5, "method_selected"): (_socks5.encode_method_selected, _socks5.maybe_decode_method_selected),
    (5, "userpass_auth"): (_socks5.encode_userpass_auth, _socks5.maybe_decode_userpass_auth),
    (5, "auth_result"): (_socks5.encode_auth_result, _socks5.maybe_decode_auth_result),
    (5, "request"): (_socks5.encode_request, _socks5.maybe_decode_request),
    (5, "reply"): (_socks5.encode_reply, _socks5.maybe_decode_reply),
    (4, "request"): (_socks4.encode_request, _socks4.maybe_decode_request),
    (4, "reply"): (_socks4.encode_reply, _socks4.maybe_decode_reply),
}


def _address(fields: dict) -> Address:
    return Address(ATYPS[fields["atyp"]], fields["host"])


def event_from_case(case: dict):
    """The event a valid vector describes."""
    f = case["decoded"]
    message = case["message"]
    if message == "greeting":
        return Greeting(tuple(f["methods"]))
    if message == "method_selected":
        return MethodSelected(f["method"])
    if message == "userpass_auth":
        return UserPassAuth(text_or_hex(f, "username"), text_or_hex(f, "password"))
    if message == "auth_result":
        return AuthResult(f["success"])
    if message == "request":
        return Request(COMMANDS[f["command"]], _address(f), f["port"], text_or_hex(f, "user_id"))
    if message == "reply":
        return Reply(f["code"], _address(f), f["port"])
    if message == "udp_datagram":
        return UdpDatagram(_address(f), f["port"], bytes.fromhex(f["data_hex"]), f["frag"])
    raise AssertionError(f"unknown message {message!r}")


def assert_matches(event, case: dict) -> None:
    """The decoded event has exactly the vector's fields (and no others)."""
    expected = event_from_case(case)
    assert type(event) is type(expected)
    assert event == expected
    if isinstance(event, (Request, Reply, UdpDatagram)):
        # Address equality is on (type, host): check the wire form too.
        assert event.address.packed == expected.address.packed


class ConnectionPair:
    """A client and a server Connection wired together in memory (after h11 tests/helpers.py).

    ``send(role, event)`` sends from that side and delivers the bytes to the other side,
    ``chunk`` bytes at a time (0 = all at once), returning the events the other side decoded.
    """

    def __init__(self, version: int, *, server_version="same", chunk: int = 0):
        self.client = Connection(Role.CLIENT, version)
        self.server = Connection(Role.SERVER, version if server_version == "same" else None)
        self.chunk = chunk

    def conn(self, role: Role) -> Connection:
        return self.client if role is Role.CLIENT else self.server

    def send(self, role: Role, event, extra: bytes = b"") -> list:
        data = self.conn(role).send(event) + extra
        peer = self.conn(Role.SERVER if role is Role.CLIENT else Role.CLIENT)
        return deliver(peer, data, self.chunk)


def deliver(conn: Connection, data: bytes, chunk: int = 0) -> list:
    """Feed ``data`` (whole, or ``chunk`` bytes at a time) and collect events until NEED_DATA
    or a state where nothing more can be received."""
    events = []
    pieces = [data] if not chunk else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        conn.receive_data(piece)
        events.extend(drain(conn))
    return events


def drain(conn: Connection) -> list:
    from socksify.protocol._state import FINAL_STATES

    events = []
    while conn.state not in FINAL_STATES:
        event = conn.next_event()
        if event is NEED_DATA:
            break
        events.append(event)
    return events
