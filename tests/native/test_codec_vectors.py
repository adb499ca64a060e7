"""csrc/codec.c against the shared vectors (tests/vectors/socks4.json, socks5.json,
udp.json; format in tests/vectors/README.md), through the cffi binding.

The C codec is a CLIENT codec: it encodes what a client sends (greeting, username/password,
request, UDP header) and decodes what a server sends (method, auth result, reply) plus UDP
datagrams both ways. Every vector of those kinds runs here, whole and one byte at a time.
"""

import ipaddress
import json
import pathlib
import socket

import pytest

VECTORS = pathlib.Path(__file__).resolve().parents[1] / "vectors"
COMMANDS = {"connect": 1, "bind": 2, "udp_associate": 3}
ATYPS = {"ipv4": 1, "domain": 3, "ipv6": 4}


def load(name):
    return json.loads((VECTORS / name).read_text("utf-8"))["cases"]


CASES = [c for name in ("socks5.json", "socks4.json", "udp.json") for c in load(name)]
#: Tor's RESOLVE commands: the shim resolves nothing through the proxy (placeholders stand
#: for names), so its encoder refuses them like any command outside RFC 1928
TOR_COMMANDS = ("resolve", "resolve_ptr")
ENCODED = [
    c for c in CASES
    if c["direction"] == "client_to_server" and "decoded" in c and not c.get("decode_only")
    and c["message"] in ("greeting", "userpass_auth", "request", "udp_datagram")
    and c["decoded"].get("command") not in TOR_COMMANDS
]
DECODED = [
    c for c in CASES
    if (c["direction"] == "server_to_client" or c["message"] == "udp_datagram")
]


def ids(cases):
    return [c["name"] for c in cases]


def wire(case) -> bytes:
    return bytes.fromhex(case["hex"].replace(" ", ""))


def make_addr(ffi, fields):
    addr = ffi.new("struct sfy_addr *")
    addr.atyp = ATYPS[fields["atyp"]]
    addr.port = fields["port"]
    if fields["atyp"] == "domain":
        addr.name = fields["host"].encode("ascii")
    else:
        packed = ipaddress.ip_address(fields["host"]).packed
        ffi.memmove(addr.ip, packed, len(packed))
    return addr


def addr_fields(ffi, addr):
    atyp = {1: "ipv4", 3: "domain", 4: "ipv6"}[addr.atyp]
    if atyp == "domain":
        host = ffi.string(addr.name).decode("ascii")
    else:
        family = socket.AF_INET if atyp == "ipv4" else socket.AF_INET6
        host = socket.inet_ntop(family, bytes(ffi.buffer(addr.ip, 4 if atyp == "ipv4" else 16)))
    return {"atyp": atyp, "host": host, "port": addr.port}


def text_or_hex(fields, key):
    if key + "_hex" in fields:
        return bytes.fromhex(fields[key + "_hex"])
    return fields[key].encode("utf-8")


def encode(ffi, lib, case) -> int | bytes:
    out = ffi.new("uint8_t[]", 1024)
    f = case["decoded"]
    msg = case["message"]
    if msg == "greeting":
        methods = bytes(f["methods"])
        n = lib.sfy_s5_encode_greeting(out, 1024, methods, len(methods))
    elif msg == "userpass_auth":
        user, password = text_or_hex(f, "username"), text_or_hex(f, "password")
        n = lib.sfy_s5_encode_userpass(out, 1024, user, len(user), password, len(password))
    elif msg == "request" and case["version"] == 5:
        n = lib.sfy_s5_encode_request(out, 1024, COMMANDS[f["command"]], make_addr(ffi, f))
    elif msg == "request":
        user = text_or_hex(f, "user_id")
        n = lib.sfy_s4_encode_request(out, 1024, COMMANDS[f["command"]], make_addr(ffi, f),
                                      user, len(user))
    else:  # udp_datagram: header, then the data
        n = lib.sfy_udp_encode_header(out, 1024, f["frag"], make_addr(ffi, f))
        if n > 0:
            return bytes(ffi.buffer(out, n)) + bytes.fromhex(f["data_hex"])
    return bytes(ffi.buffer(out, n)) if n > 0 else n


def decode(ffi, lib, case, data):
    """(consumed or code, fields) for server_to_client messages and UDP datagrams."""
    msg = case["message"]
    if msg == "method_selected":
        method = ffi.new("uint8_t *")
        n = lib.sfy_s5_parse_method(data, len(data), method)
        return n, {"method": method[0]}
    if msg == "auth_result":
        ok = ffi.new("int *")
        n = lib.sfy_s5_parse_auth_result(data, len(data), ok)
        return n, {"success": bool(ok[0])}
    if msg == "reply":
        reply = ffi.new("struct sfy_reply *")
        parse = lib.sfy_s5_parse_reply if case["version"] == 5 else lib.sfy_s4_parse_reply
        n = parse(data, len(data), reply)
        return n, ({"code": reply.code, **addr_fields(ffi, reply.addr)} if n > 0 else {})
    assert msg == "udp_datagram"
    addr, frag = ffi.new("struct sfy_addr *"), ffi.new("uint8_t *")
    n = lib.sfy_udp_parse_header(data, len(data), addr, frag)
    fields = {"frag": frag[0], **addr_fields(ffi, addr)} if n > 0 else {}
    if n > 0:
        fields["data_hex"] = data[n:].hex()
        n = len(data)  # the datagram's data is the rest
    return n, fields


def test_every_client_codec_vector_kind_is_covered():
    assert len(ENCODED) >= 40 and len(DECODED) >= 50
    assert len(set(ids(CASES))) == len(CASES)


@pytest.mark.parametrize("case", ENCODED, ids=ids(ENCODED))
def test_encoders_match_vectors(native, case):
    ffi, lib = native
    assert encode(ffi, lib, case) == wire(case)


@pytest.mark.parametrize("case", DECODED, ids=ids(DECODED))
def test_parsers_match_vectors(native, case):
    ffi, lib = native
    data = wire(case)
    n, fields = decode(ffi, lib, case, data)
    if "decoded" in case:
        assert n == len(data)
        assert fields == case["decoded"]
    elif "error" in case:
        assert n < 0, f"accepted bad bytes: {case['error']}"
    else:
        assert case.get("incomplete")
        assert n == lib.SFY_NEED_MORE


@pytest.mark.parametrize(
    "case", [c for c in DECODED if c["message"] != "udp_datagram" and "decoded" in c],
    ids=ids([c for c in DECODED if c["message"] != "udp_datagram" and "decoded" in c]),
)
def test_parsers_need_more_on_every_prefix(native, case):
    ffi, lib = native
    data = wire(case)
    for cut in range(len(data)):
        n, _ = decode(ffi, lib, case, data[:cut])
        assert n == lib.SFY_NEED_MORE, f"prefix of {cut} bytes gave {n}"


@pytest.mark.parametrize(
    "case", [c for c in DECODED if c["message"] == "udp_datagram" and "decoded" in c],
    ids=ids([c for c in DECODED if c["message"] == "udp_datagram" and "decoded" in c]),
)
def test_udp_truncation_is_an_error_never_need_more(native, case):
    ffi, lib = native
    data = wire(case)
    header = len(data) - len(bytes.fromhex(case["decoded"]["data_hex"]))
    for cut in range(header):
        n, _ = decode(ffi, lib, case, data[:cut])
        assert n < 0


def test_parsers_leave_bytes_after_the_message(native):
    """A reply followed by tunnel data (a server banner) consumes only the reply."""
    ffi, lib = native
    reply = ffi.new("struct sfy_reply *")
    data = bytes.fromhex("05000001 7f000001 0050") + b"SSH-2.0-banner\r\n"
    assert lib.sfy_s5_parse_reply(data, len(data), reply) == 10


def test_encoders_refuse_what_the_wire_cannot_carry(native):
    ffi, lib = native
    out = ffi.new("uint8_t[]", 1024)
    addr = ffi.new("struct sfy_addr *")
    addr.atyp = 3
    addr.name = b"x" * 255
    assert lib.sfy_s5_encode_request(out, 1024, 1, addr) == 3 + 1 + 1 + 255 + 2
    assert lib.sfy_s5_encode_request(out, 10, 1, addr) == lib.SFY_ESPACE
    addr.name = "bücher.example".encode()
    assert lib.sfy_s5_encode_request(out, 1024, 1, addr) == lib.SFY_EINVAL
    addr.name = b""
    assert lib.sfy_s5_encode_request(out, 1024, 1, addr) == lib.SFY_ENAME
    addr.atyp = 4
    assert lib.sfy_s4_encode_request(out, 1024, 1, addr, b"", 0) == lib.SFY_EINVAL
    addr.atyp = 1
    assert lib.sfy_s4_encode_request(out, 1024, 1, addr, b"a\0b", 3) == lib.SFY_EINVAL
    assert lib.sfy_s4_encode_request(out, 1024, 3, addr, b"", 0) == lib.SFY_EINVAL
    assert lib.sfy_s5_encode_greeting(out, 1024, b"", 0) == lib.SFY_EINVAL
    assert lib.sfy_s5_encode_userpass(out, 1024, b"u" * 256, 256, b"", 0) == lib.SFY_EINVAL
