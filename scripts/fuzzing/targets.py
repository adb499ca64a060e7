"""Fuzz targets: what each parser must do with any input.

Each target's ``check(data)`` returns normally when the parser behaved, and raises
``FuzzFailure`` (a broken property) or lets an unexpected exception escape (a crash) when it
found a bug. The documented errors are caught here and are not bugs:

==============  ======================================================================
target          documented outcome for bad input
==============  ======================================================================
core-server     ``RemoteProtocolError`` from ``Connection(SERVER).next_event``
core-client     ``RemoteProtocolError`` from ``Connection(CLIENT).next_event``
udp             ``RemoteProtocolError`` from ``decode_udp_datagram``
config          ``socksify.server.ConfigError`` (and the TOML subset reader's own error)
proxy-url       ``socksify.proxy.ConfigError`` from the client URL / bypass parsers
native-url      a non-zero return and a NUL-terminated message from ``csrc/config.c``
native-codec    ``SFY_NEED_MORE`` or a negative ``SFY_E*`` code from ``csrc/codec.c``
==============  ======================================================================

Beyond "no other exception", the properties checked are:

- the core gives the same events and the same error whether the bytes come whole or split at
  arbitrary points (tests/vectors/README.md: "Stream decoders must give the same result");
- a decoded message encodes back to bytes that decode to the same event (round trip);
- the native codec agrees with the Python core on every input (accepts the same messages,
  decodes the same fields, asks for more data on the same prefixes);
- the native URL parser accepts exactly what ``socksify.proxy.parse_chain`` accepts, and never
  writes past the buffers it is given.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    AuthResult,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Reply4,
    Reply5,
    Request,
    Role,
    State,
    UdpDatagram,
    UserPassAuth,
    decode_udp_datagram,
    encode_udp_datagram,
)

from . import seeds as _seeds

__all__ = ["TARGETS", "FuzzFailure", "Target", "get"]

#: inputs longer than this are cut (the parsers' interesting behaviour is in the first KiB)
MAX_INPUT = 4096


#: states where the handshake is over and ``trailing_data`` may be read
_AFTER = (State.TUNNEL, State.UDP_ASSOCIATED, State.CLOSED)


class FuzzFailure(AssertionError):
    """A property the target must keep was broken."""


class TargetUnavailable(RuntimeError):
    """The code under test is not there (e.g. the native binding is not built)."""


@dataclass
class Target:
    name: str
    description: str
    check: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    #: returns None when usable, else the reason it is not
    unavailable: Callable[[], str | None] = lambda: None
    #: tokens the mutators may insert (a libFuzzer dictionary)
    dictionary: tuple = ()


# --- helpers --------------------------------------------------------------------------------


def _chunks(data: bytes) -> list[bytes]:
    """Split ``data`` at points derived from its own bytes (deterministic per input)."""
    rng = random.Random(zlib.crc32(data) ^ len(data))
    out, pos = [], 0
    while pos < len(data):
        size = rng.choice((1, 1, 2, 3, 5, 8, 64)) if rng.random() < 0.8 else len(data)
        out.append(data[pos : pos + size])
        pos += size
    return out


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise FuzzFailure(message)


# --- core, server role ----------------------------------------------------------------------


def _server_answer(conn: Connection, event) -> bool:
    """Answer ``event`` as a permissive server would; False once the handshake is over."""
    if isinstance(event, Greeting):
        if AuthMethod.NO_AUTH in event.methods:
            method = AuthMethod.NO_AUTH
        elif AuthMethod.USERNAME_PASSWORD in event.methods:
            method = AuthMethod.USERNAME_PASSWORD
        else:
            method = AuthMethod.NO_ACCEPTABLE
        conn.send(MethodSelected(method))
        return method != AuthMethod.NO_ACCEPTABLE
    if isinstance(event, UserPassAuth):
        ok = len(event.username) % 4 != 3  # refuse some, to reach the failure path too
        conn.send(AuthResult(ok))
        return ok
    if isinstance(event, Request):
        _check_request_round_trip(conn, event)
        granted = event.port % 5 != 4
        if conn.version == 4:
            code = Reply4.GRANTED if granted else Reply4.REJECTED
            bound = Address.ipv4("10.1.2.3")
        else:
            code = Reply5.SUCCEEDED if granted else Reply5.CONNECTION_REFUSED
            bound = event.address if event.address.is_ip else Address.ipv6("::1")
        conn.send(Reply(code, bound, 4321))
        if granted and event.command == Command.BIND:
            conn.send(Reply(code, bound, 4322))
        return False
    raise FuzzFailure(f"a server Connection returned {event!r}")


def _check_request_round_trip(server: Connection, request: Request) -> None:
    """A decoded request, encoded by a client, decodes to the same request."""
    client = Connection(Role.CLIENT, int(server.version))
    wire = b""
    if server.version == 5:
        wire += client.send(Greeting((AuthMethod.NO_AUTH,)))
        client.receive_data(b"\x05\x00")
        _expect(isinstance(client.next_event(), MethodSelected), "method selection lost")
    wire += client.send(request)
    again = Connection(Role.SERVER)
    again.receive_data(wire)
    event = again.next_event()
    if isinstance(event, Greeting):
        again.send(MethodSelected(AuthMethod.NO_AUTH))
        event = again.next_event()
    _expect(event == request, f"request round trip: {request!r} came back as {event!r}")


def _drive_server(pieces: list[bytes], max_buffer: int) -> list:
    """Feed ``pieces`` (then EOF) to a server Connection; return the trace of outcomes."""
    conn = Connection(Role.SERVER, max_buffer=max_buffer)
    trace: list = []
    for index, piece in enumerate([*pieces, b""]):
        conn.receive_data(piece)
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                trace.append(("error", str(exc)))
                _check_rejection(conn, exc)
                return trace
            if event is NEED_DATA:
                break
            trace.append(event)
            if not _server_answer(conn, event):
                _expect(conn.state in _AFTER, f"ended in {conn.state}")
                # What the peer sent past the handshake, whether already buffered or not.
                tail = conn.trailing_data + b"".join(pieces[index + 1 :])
                trace.append(("end", conn.state.name, tail))
                return trace
    raise FuzzFailure(f"EOF in state {conn.state.name} raised nothing")


def _check_rejection(conn: Connection, exc: RemoteProtocolError) -> None:
    _expect(conn.state is State.ERROR, f"state {conn.state.name} after an error")
    if exc.reply_hint is not None:
        # The documented way out: one failure reply, then CLOSED.
        address = Address.ipv4("0.0.0.0")
        conn.send(Reply(exc.reply_hint, address, 0))
        _expect(conn.state is State.CLOSED, f"state {conn.state.name} after the rejection")


def check_core_server(data: bytes) -> None:
    data = data[:MAX_INPUT]
    whole = _drive_server([data], max_buffer=65536)
    split = _drive_server(_chunks(data), max_buffer=65536)
    _expect(whole == split, f"whole {whole!r} != split {split!r}")
    # A small cap reaches the overflow path; only RemoteProtocolError is allowed there.
    _drive_server(_chunks(data), max_buffer=40)


# --- core, client role ----------------------------------------------------------------------

_DEST = {
    "ipv4": Address.ipv4("192.0.2.7"),
    "name": Address.domain("example.test"),
    "ipv6": Address.ipv6("2001:db8::7"),
}

#: (version, offered methods, command, destination, send the next messages ahead)
_CLIENT_SCENARIOS = [
    (5, (AuthMethod.NO_AUTH,), Command.CONNECT, "name", False),
    (5, (AuthMethod.NO_AUTH, AuthMethod.USERNAME_PASSWORD), Command.BIND, "ipv6", False),
    (5, (AuthMethod.USERNAME_PASSWORD,), Command.UDP_ASSOCIATE, "ipv4", True),
    (5, (AuthMethod.NO_AUTH,), Command.BIND, "ipv4", True),
    (4, (), Command.CONNECT, "ipv4", False),
    (4, (), Command.BIND, "name", False),
]


def _client_step(conn: Connection, scenario, event) -> None:
    version, methods, command, dest, ahead = scenario
    request = Request(command, _DEST[dest], 80, b"fuzz" if version == 4 else b"")
    if isinstance(event, MethodSelected):
        if event.method == AuthMethod.USERNAME_PASSWORD and not ahead:
            conn.send(UserPassAuth(b"user", b"pass"))
        elif event.method == AuthMethod.NO_AUTH and not ahead:
            conn.send(request)
    elif isinstance(event, AuthResult):
        if event.success and not ahead:
            conn.send(request)
    elif not isinstance(event, Reply):
        raise FuzzFailure(f"a client Connection returned {event!r}")


def _drive_client(scenario, pieces: list[bytes], max_buffer: int) -> list:
    version, methods, command, dest, ahead = scenario
    conn = Connection(Role.CLIENT, version, max_buffer=max_buffer)
    request = Request(command, _DEST[dest], 80, b"fuzz" if version == 4 else b"")
    if version == 5:
        conn.send(Greeting(methods))
        if ahead:
            if methods == (AuthMethod.USERNAME_PASSWORD,):
                conn.send(UserPassAuth(b"user", b"pass"))
            conn.send(request)
    else:
        conn.send(request)
    trace: list = []
    for index, piece in enumerate([*pieces, b""]):
        conn.receive_data(piece)
        while conn.state not in _AFTER:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                _expect(conn.state is State.ERROR, f"state {conn.state.name} after an error")
                trace.append(("error", str(exc)))
                return trace
            if event is NEED_DATA:
                break
            trace.append(event)
            if isinstance(event, Reply):
                _check_reply_round_trip(version, event)
            _client_step(conn, scenario, event)
        else:
            tail = conn.trailing_data + b"".join(pieces[index + 1 :])
            trace.append(("end", conn.state.name, tail))
            return trace
    raise FuzzFailure(f"EOF in state {conn.state.name} raised nothing")


def _check_reply_round_trip(version: int, reply: Reply) -> None:
    """A decoded reply, encoded by a server, decodes to the same reply."""
    server = Connection(Role.SERVER, version)
    client = Connection(Role.CLIENT, version)
    request = Request(Command.CONNECT, Address.ipv4("192.0.2.1"), 1)
    if version == 5:
        server.receive_data(client.send(Greeting((AuthMethod.NO_AUTH,))))
        server.next_event()
        client.receive_data(server.send(MethodSelected(AuthMethod.NO_AUTH)))
        client.next_event()
    server.receive_data(client.send(request))
    server.next_event()
    client.receive_data(server.send(reply))
    again = client.next_event()
    _expect(again == reply, f"reply round trip: {reply!r} came back as {again!r}")


def check_core_client(data: bytes) -> None:
    data = data[:MAX_INPUT]
    for scenario in _CLIENT_SCENARIOS:
        whole = _drive_client(scenario, [data], max_buffer=65536)
        split = _drive_client(scenario, _chunks(data), max_buffer=65536)
        _expect(whole == split, f"{scenario}: whole {whole!r} != split {split!r}")
        _drive_client(scenario, _chunks(data), max_buffer=24)


# --- UDP header -----------------------------------------------------------------------------


def check_udp(data: bytes) -> None:
    data = data[:MAX_INPUT]
    try:
        datagram = decode_udp_datagram(data)
    except RemoteProtocolError:
        return
    _expect(isinstance(datagram, UdpDatagram), f"decoded to {datagram!r}")
    wire = encode_udp_datagram(datagram)
    _expect(decode_udp_datagram(wire) == datagram, f"round trip changed {datagram!r}")
    _expect(wire.endswith(datagram.data), "payload not at the end")


# --- server config --------------------------------------------------------------------------


def check_config(data: bytes) -> None:
    from socksify.server import _toml
    from socksify.server._config import (
        ConfigError,
        config_from_dict,
        parse_config_text,
        parse_listen,
    )

    text = data[:MAX_INPUT].decode("utf-8", "replace")
    # The --listen / server.listen syntax: a port is ASCII digits (int() also takes others).
    try:
        parse_listen(text)
    except ConfigError:
        pass
    else:
        stripped = text.strip()
        if stripped.startswith("["):
            port_text = stripped.partition("]")[2][1:]
        else:
            port_text = stripped.partition(":")[2]
        _expect(port_text.isascii(), f"listen {text!r} accepted a non-ASCII port")
    try:
        config = parse_config_text(text, where="fuzz")
    except ConfigError:
        config = None
    if config is not None:
        for name in ("handshake", "connect", "idle", "bind"):
            value = getattr(config, f"{name}_timeout")
            _expect(not math.isnan(value), f"timeouts.{name} accepted as {value!r}")
    # The Python 3.10 path: the subset TOML reader, then the same dict -> config step.
    try:
        subset = _toml.loads(text)
    except _toml.TOMLDecodeError:
        return
    try:
        import tomllib
    except ImportError:
        tomllib = None
    if tomllib is not None:
        try:
            full = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            raise FuzzFailure("the TOML subset reader accepted what tomllib rejects") from None
        _expect(_same_toml(subset, full), f"subset reader read {subset!r}, tomllib {full!r}")
    try:
        config_from_dict(subset)
    except ConfigError:
        pass


def _same_toml(a, b) -> bool:
    """Equal documents, with NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_toml(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_toml(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# --- client configuration (Python) ----------------------------------------------------------


def check_proxy_url(data: bytes) -> None:
    from socksify import proxy

    text = data[:MAX_INPUT].decode("utf-8", "replace")
    for parse in (proxy.parse_chain, proxy.parse_no_proxy, proxy.parse_dns_range,
                  proxy.parse_log_level):
        try:
            parse(text)
        except proxy.ConfigError:
            pass


# --- native shim (csrc/ through the cffi binding) -------------------------------------------

_NATIVE = None


def _native():
    """``socksify._native``, or a sanitizer build named by SOCKSIFY_FUZZ_NATIVE (a path)."""
    global _NATIVE
    if _NATIVE is None:
        import importlib.util
        import os

        path = os.environ.get("SOCKSIFY_FUZZ_NATIVE")
        if path:
            spec = importlib.util.spec_from_file_location("socksify._native", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            try:
                import socksify._native as module
            except ImportError as exc:
                raise TargetUnavailable(
                    f"socksify._native is not built ({exc}); run `pip install -e .` "
                    "(needs cffi and a C compiler)"
                ) from None
        _NATIVE = module
    return _NATIVE


def _native_unavailable() -> str | None:
    try:
        _native()
    except TargetUnavailable as exc:
        return str(exc)
    return None


_GUARD = 0xA5


def _cstr(ffi, buf, cap: int, what: str) -> bytes:
    raw = ffi.buffer(buf, cap)[:]
    _expect(b"\0" in raw, f"{what} is not NUL-terminated")
    return raw.split(b"\0", 1)[0]


def check_native_url(data: bytes) -> None:
    from socksify import proxy

    native = _native()
    ffi, lib = native.ffi, native.lib
    text = data[:MAX_INPUT].split(b"\0", 1)[0]
    # Python's view of the same text (the C side sees bytes; surrogates never match).
    try:
        py_text = text.decode("utf-8")
    except UnicodeDecodeError:
        py_text = None
    max_hops = int(lib.SFY_MAX_HOPS)
    errlen = 96  # short on purpose: long messages must be cut, not overflow
    hops = ffi.new("struct sfy_hop[]", max_hops + 1)
    guard_bytes = ffi.sizeof("struct sfy_hop")
    ffi.memmove(ffi.addressof(hops, max_hops), bytes([_GUARD]) * guard_bytes, guard_bytes)
    err = ffi.new("char[]", errlen + 16)
    ffi.memmove(err, bytes([_GUARD]) * (errlen + 16), errlen + 16)
    n_hops = ffi.new("size_t *")
    rc = lib.sfy_parse_chain(text, hops, max_hops, n_hops, err, errlen)
    tail = ffi.buffer(ffi.addressof(hops, max_hops), guard_bytes)[:]
    _expect(tail == bytes([_GUARD]) * guard_bytes, "sfy_parse_chain wrote past max_hops")
    _expect(ffi.buffer(err, errlen + 16)[errlen:] == bytes([_GUARD]) * 16,
            "sfy_parse_chain wrote past errlen")
    if rc == 0:
        _expect(1 <= n_hops[0] <= max_hops, f"n_hops {n_hops[0]}")
        for i in range(n_hops[0]):
            hop = hops[i]
            _cstr(ffi, hop.host, 256, "hop host")
            _cstr(ffi, hop.scheme, 8, "hop scheme")
            _expect(hop.version in (4, 5), f"hop version {hop.version}")
            _expect(hop.user_len <= 255 and hop.pass_len <= 255, "credentials over 255 bytes")
    else:
        _expect(rc < 0, f"sfy_parse_chain returned {rc}")
        _expect(_cstr(ffi, err, errlen, "error message") != b"", "empty error message")
    if py_text is not None and "\ufffd" not in py_text and len(text) < 1024:
        try:
            chain = proxy.parse_chain(py_text)
        except proxy.ConfigError:
            chain = None
        if chain is not None and len(chain) > max_hops:
            chain = None  # the C side caps the chain length; Python does not
        if chain is not None and _known_chain_divergence(chain):
            return
        _expect((chain is not None) == (rc == 0),
                f"C {'accepts' if rc == 0 else 'rejects'} {text!r}, Python does the opposite")
        if chain is not None:
            for i, hop in enumerate(chain):
                c_host = ffi.string(hops[i].host).decode("utf-8", "replace")
                _expect(_same_host(c_host, hop.host) and hops[i].port == hop.port,
                        f"hop {i}: C {c_host}:{hops[i].port}, Python {hop.host}:{hop.port}")
    # The other parsers of the same configuration read the same kind of text.
    noproxy = ffi.new("struct sfy_noproxy *")
    lib.sfy_parse_no_proxy(text, noproxy, err, errlen)
    v4, v6 = ffi.new("struct sfy_net *"), ffi.new("struct sfy_net *")
    lib.sfy_parse_dns_range(text, v4, v6, err, errlen)
    level = ffi.new("int *")
    lib.sfy_parse_log_level(text, level)
    _expect(ffi.buffer(err, errlen + 16)[errlen:] == bytes([_GUARD]) * 16,
            "a config parser wrote past errlen")
    cfg = ffi.new("struct sfy_config *")
    half = len(text) // 2
    lib.sfy_config_load(cfg, text, text[:half], text[half:], text, text, text)
    _cstr(ffi, cfg.error, 512, "config error")
    _expect(cfg.n_hops <= max_hops, f"config n_hops {cfg.n_hops}")


#: an IPv6 zone id both parsers agree on: an interface name or number
_PLAIN_ZONE = re.compile(r"[A-Za-z0-9._-]{1,63}")


def _known_chain_divergence(chain) -> bool:
    """Inputs where the two URL parsers are known to disagree (reported, not yet fixed).

    IPv6 zone ids: ``proxy.py`` keeps whatever percent-decoding gives (NUL, U+FFFD for
    invalid UTF-8, any length); ``config.c`` stops at a NUL and cuts the zone to 63 bytes
    (``zone[64]``). The regression cases are in ``tests/vectors/regressions/native-url.json``;
    SOCKSIFY_FUZZ_STRICT=1 checks these inputs too. (Three earlier divergences, fixed in
    ``proxy.py``, are regression cases there as well.)
    """
    import os

    if os.environ.get("SOCKSIFY_FUZZ_STRICT") == "1":
        return False
    for hop in chain:
        zone = hop.host.partition("%")[2]
        if ":" in hop.host and zone and not _PLAIN_ZONE.fullmatch(zone):
            return True
    return False


def _same_host(a: str, b: str) -> bool:
    """Same host name, or the same IP address however it is spelled (::ffff:1.2.3.4)."""
    import ipaddress

    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def _py_client_read(version: int, data: bytes, states: int) -> object:
    """What the Python core's client makes of ``data`` as a method selection (0), auth
    result (1) or reply (2): an event, NEED_DATA or "error"."""
    conn = Connection(Role.CLIENT, version)
    if version == 5:
        offered = {0: (AuthMethod.NO_AUTH, AuthMethod.USERNAME_PASSWORD),
                   1: (AuthMethod.USERNAME_PASSWORD,), 2: (AuthMethod.NO_AUTH,)}[states]
        conn.send(Greeting(offered))
        if states >= 1:
            conn.receive_data(b"\x05\x02" if states == 1 else b"\x05\x00")
            conn.next_event()
        if states == 1:
            conn.send(UserPassAuth(b"u", b"p"))
    if states == 2:
        conn.send(Request(Command.CONNECT, Address.ipv4("192.0.2.1"), 1))
    if not data:
        return NEED_DATA  # b"" would mean EOF to the core; the C parsers have no EOF
    conn.receive_data(data)
    try:
        return conn.next_event()
    except RemoteProtocolError:
        return "error"


def _address_text(ffi, addr) -> str:
    import ipaddress

    if addr.atyp == 1:
        return str(ipaddress.IPv4Address(bytes(ffi.buffer(addr.ip, 4))))
    if addr.atyp == 4:
        return str(ipaddress.IPv6Address(bytes(ffi.buffer(addr.ip, 16))))
    return ffi.string(addr.name).decode("ascii", "replace")


def _c_parse(ffi, lib, name: str, data: bytes):
    """Run one C parser over exactly ``data`` (a fresh buffer of its size)."""
    buf = ffi.new("uint8_t[]", max(len(data), 1))
    ffi.memmove(buf, data, len(data))
    if name in ("s5_reply", "s4_reply"):
        out = ffi.new("struct sfy_reply *")
        rc = getattr(lib, f"sfy_{name[:2]}_parse_reply")(buf, len(data), out)
        return rc, out
    if name == "method":
        out = ffi.new("uint8_t *")
        return lib.sfy_s5_parse_method(buf, len(data), out), out
    if name == "auth":
        out = ffi.new("int *")
        return lib.sfy_s5_parse_auth_result(buf, len(data), out), out
    addr, frag = ffi.new("struct sfy_addr *"), ffi.new("uint8_t *")
    return lib.sfy_udp_parse_header(buf, len(data), addr, frag), (addr, frag)


def check_native_codec(data: bytes) -> None:
    native = _native()
    ffi, lib = native.ffi, native.lib
    data = data[:600]
    for name, version, states in (("method", 5, 0), ("auth", 5, 1), ("s5_reply", 5, 2),
                                  ("s4_reply", 4, 2)):
        rc, out = _c_parse(ffi, lib, name, data)
        _expect(rc != lib.SFY_ESPACE, f"{name}: a parser returned SFY_ESPACE")
        _expect(rc <= len(data), f"{name}: consumed {rc} of {len(data)} bytes")
        py = _py_client_read(version, data, states)
        if rc == 0:
            _expect(py is NEED_DATA, f"{name}: C wants more of {data.hex()}, Python: {py!r}")
            continue
        if rc < 0:
            _expect(py == "error", f"{name}: C rejects {data.hex()} ({rc}), Python: {py!r}")
            continue
        if name != "method":
            _expect(py not in ("error", NEED_DATA),
                    f"{name}: C accepts {data.hex()}, Python {py!r}")
        if name == "method":
            # C decodes any METHOD byte; the core also checks it against the offer (0, 2).
            want = MethodSelected(out[0]) if out[0] in (0, 2, 0xFF) else "error"
            _expect(py == want, f"method: C {out[0]}, Python {py!r}")
        elif name == "auth":
            _expect(py == AuthResult(bool(out[0])), f"auth: C {out[0]}, Python {py!r}")
        else:
            host = _address_text(ffi, out.addr)
            _expect((out.code, host, out.addr.port) == (py.code, py.address.host, py.port),
                    f"{name}: C {(out.code, host, out.addr.port)}, Python {py!r}")
        # Every shorter prefix of a complete message is an incomplete one.
        for cut in range(rc):
            short, _ = _c_parse(ffi, lib, name, data[:cut])
            _expect(short == 0, f"{name}: prefix {data[:cut].hex()} gave {short}, not NEED_MORE")
    rc, (addr, frag) = _c_parse(ffi, lib, "udp", data)
    try:
        datagram = decode_udp_datagram(data)
    except RemoteProtocolError:
        datagram = None
    _expect(rc != 0, f"udp: NEED_MORE for a datagram {data.hex()}")
    _expect((rc > 0) == (datagram is not None),
            f"udp: C {rc}, Python {datagram!r} for {data.hex()}")
    if datagram is not None:
        got = (frag[0], _address_text(ffi, addr), addr.port, data[rc:])
        want = (datagram.frag, datagram.address.host, datagram.port, datagram.data)
        _expect(got == want, f"udp: C {got}, Python {want}")


_CONFIG_TOKENS = (
    b"[server]", b"[timeouts]", b"[users]", b"[hosts]", b"[[rules]]", b"listen", b"max_clients",
    b"allow_open_proxy", b"log_level", b"handshake", b"connect", b"idle", b"bind", b"action",
    b'"allow"', b'"deny"', b"from", b"to", b"ports", b"commands", b"protocols", b"days",
    b"hours", b"users", b" = ", b"\n", b"true", b"false", b"nan", b"inf", b"-inf", b"+nan",
    b"1e999", b"-0.0", b"0x7fffffffffffffff", b"99999999999999999999999", b"1_000", b'"""',
    b"\x27\x27\x27", b"[", b"]", b"{", b"}", b",", b".", b'"127.0.0.1:0"', b'"[::1]:1080"',
    b'"8000-8999"', b'"08:00-18:00"', b'"mon-fri"', b'"10.0.0.0/8"', b'"*.example.org"',
    b"\\u0000", b"scrypt$16384$8$1$", b"1979-05-27T07:32:00Z",
)
_URL_TOKENS = (
    b"socks4://", b"socks4a://", b"socks5://", b"socks5h://", b"@", b":", b"[", b"]", b",",
    b"%25", b"%40", b"%3A", b"%00", b"%ff", b"::1", b"127.0.0.1", b"::ffff:", b"fe80::1%",
    b":1080", b":0", b":65536", b"localhost", b".example.org", b"/", b"10.0.0.0/8", b"/64",
)
_SOCKS_TOKENS = (
    b"\x05\x01\x00", b"\x05\x01\x02", b"\x05\x00", b"\x05\x02", b"\x01\x00",
    b"\x05\x01\x00\x01", b"\x05\x01\x00\x03", b"\x05\x01\x00\x04",
    b"\x04\x01\x00\x50", b"\x00\x5a", b"\x00\x00\x00\x01", b"\x7f\x00\x00\x01",
    b"\xff", b"\x00\x00",
)

TARGETS = {
    t.name: t
    for t in (
        Target("core-server", "sans-IO Connection(SERVER) fed a client's bytes",
               check_core_server, _seeds.core_server, dictionary=_SOCKS_TOKENS),
        Target("core-client", "sans-IO Connection(CLIENT) fed a server's bytes (6 scenarios)",
               check_core_client, _seeds.core_client, dictionary=_SOCKS_TOKENS),
        Target("udp", "decode_udp_datagram and its round trip", check_udp, _seeds.udp,
               dictionary=_SOCKS_TOKENS),
        Target("config", "socksify-server TOML config (tomllib and the 3.10 subset reader)",
               check_config, _seeds.config, dictionary=_CONFIG_TOKENS),
        Target("proxy-url", "client proxy URL, bypass list, DNS range, log level (Python)",
               check_proxy_url, _seeds.proxy_url, dictionary=_URL_TOKENS),
        Target("native-url", "csrc/config.c parsers through socksify._native, vs Python",
               check_native_url, _seeds.proxy_url, _native_unavailable, _URL_TOKENS),
        Target("native-codec", "csrc/codec.c parsers through socksify._native, vs Python",
               check_native_codec, _seeds.native_codec, _native_unavailable,
               _SOCKS_TOKENS),
    )
}


def get(name: str) -> Target:
    return TARGETS[name]
