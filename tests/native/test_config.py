"""csrc/config.c: the C proxy URL / chain / NO_PROXY / DNS range parser, held to
tests/vectors/proxy_urls.json and to socksify/proxy.py (its reference)."""

import ipaddress
import json
import pathlib
import socket

import pytest

from socksify import proxy as pyproxy

VECTORS = json.loads(
    (pathlib.Path(__file__).resolve().parents[1] / "vectors" / "proxy_urls.json").read_text()
)["cases"]


def decoded(ffi, field, length):
    return bytes(ffi.buffer(field, length)).decode("utf-8")


def parse_chain(native, text):
    ffi, lib = native
    hops = ffi.new("struct sfy_hop[]", 8)
    count = ffi.new("size_t *")
    err = ffi.new("char[]", 1024)
    rc = lib.sfy_parse_chain(text.encode("utf-8"), hops, 8, count, err, 1024)
    if rc != 0:
        return ffi.string(err).decode("utf-8")
    out = []
    for hop in hops[0:count[0]]:
        out.append({
            "scheme": ffi.string(hop.scheme).decode(),
            "host": ffi.string(hop.host).decode(),
            "port": hop.port,
            "username": decoded(ffi, hop.user, hop.user_len) if hop.has_user else None,
            "password": decoded(ffi, getattr(hop, "pass"), hop.pass_len) if hop.has_pass else None,
            "version": hop.version,
            "remote_dns": bool(hop.remote_dns),
        })
    return out


def same_host(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_url_vectors(native, case):
    result = parse_chain(native, case["url"])
    if "error" in case:
        assert isinstance(result, str), f"accepted {case['url']!r}"
        assert case["error"] in result
        assert "secret" not in result
        return
    assert not isinstance(result, str), result
    assert len(result) == len(case["chain"])
    for got, want in zip(result, case["chain"], strict=True):
        assert same_host(got["host"], want["host"]), (got["host"], want["host"])
        for key in ("scheme", "port", "username", "password"):
            assert got[key] == want[key], key


#: whole messages, as the C parser wrote them before its messages were built on the error
#: path only (fail_in in csrc/config.c): the redacted URL as given (trailing '/' kept), the
#: hop prefix of a chain, the suffix after the quoted URL
EXACT_MESSAGES = [
    ("socks5://user:secret@h:99999/",
     "bad port '99999' (1-65535) in 'socks5://user:***@h:99999/'"),
    ("h:1080", "missing scheme in 'h:1080': use one of socks4, socks4a, socks5, socks5h "
               "(like socks5h://HOST:PORT)"),
    ("ftp://h", "unsupported scheme 'ftp://' in 'ftp://h': use one of socks4, socks4a, "
                "socks5, socks5h"),
    ("socks5://a,,socks5://b", "empty entry (hop 2) in proxy chain 'socks5://a,,socks5://b'"),
    ("socks5://a, socks5://u:secret@b:0",
     "hop 2 of the chain: bad port '0' (1-65535) in 'socks5://u:***@b:0'"),
    ("socks5://fe80::1:1080", "IPv6 address must be in brackets, like socks5://[::1]:1080, "
                              "in 'socks5://fe80::1:1080'"),
    ("socks5://[::1]x", "unexpected 'x' after IPv6 address in 'socks5://[::1]x'"),
    ("   ", "empty proxy URL"),
    ("socks5://h/path", "unexpected path, query or fragment '/' in 'socks5://h/path'"),
    ("socks5://bad_host-:1", "bad host 'bad_host-' in 'socks5://bad_host-:1'"),
    ("socks5://[zz]:1", "bad IPv6 address [zz] in 'socks5://[zz]:1'"),
    ("socks5://a]", "unmatched ']' in 'socks5://a]'"),
]


@pytest.mark.parametrize(("url", "message"), EXACT_MESSAGES)
def test_exact_error_messages(native, url, message):
    assert parse_chain(native, url) == message


def test_message_cut_to_the_buffer(native):
    """A small error buffer holds the message's start, NUL-terminated (as snprintf)."""
    ffi, lib = native
    hops = ffi.new("struct sfy_hop[]", 8)
    count = ffi.new("size_t *")
    err = ffi.new("char[]", 20)
    assert lib.sfy_parse_chain(b"socks5://a, socks5://b:0", hops, 8, count, err, 20) == -1
    assert ffi.string(err).decode() == "hop 2 of the chain:"


def test_version_and_remote_dns(native):
    chain = parse_chain(native, "socks4://a,socks4a://b,socks5://c,socks5h://d")
    assert [(h["version"], h["remote_dns"]) for h in chain] == [
        (4, False), (4, True), (5, False), (5, True)]


def test_chain_longer_than_the_limit_is_an_error(native):
    assert "longer than 8 hops" in parse_chain(native, ",".join(["socks5://h"] * 9))


def no_proxy(native, text):
    ffi, lib = native
    np = ffi.new("struct sfy_noproxy *")
    err = ffi.new("char[]", 512)
    if lib.sfy_parse_no_proxy(text.encode(), np, err, 512) != 0:
        return ffi.string(err).decode()
    return np


@pytest.mark.parametrize("text", [
    "", "*", "example.org", ".example.org, 10.0.0.0/8", "*.example.org 127.0.0.1 [::1]",
    "Host.Example., 192.168.1.7, 2001:db8::/32",
])
@pytest.mark.parametrize("host", [
    "example.org", "www.example.org", "EXAMPLE.ORG.", "host.example", "other.test",
    "10.1.2.3", "11.0.0.1", "127.0.0.1", "::1", "2001:db8::5", "192.168.1.7",
    "::ffff:10.0.0.1",
])
def test_no_proxy_matches_like_proxy_py(native, text, host):
    ffi, lib = native
    np = no_proxy(native, text)
    expected = pyproxy.parse_no_proxy(text).matches(host)
    assert bool(lib.sfy_noproxy_match_name(np, host.encode())) == expected
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    assert bool(lib.sfy_noproxy_match_ip(np, family, address.packed)) == expected


@pytest.mark.parametrize("text, message", [
    ("bad_entry!", "bad entry 'bad_entry!'"),
    ("10.0.0.0/33", "bad CIDR '10.0.0.0/33'"),
    ("..bad", "bad domain"),
])
def test_no_proxy_errors_name_the_entry(native, text, message):
    result = no_proxy(native, text)
    assert isinstance(result, str) and message in result
    with pytest.raises(pyproxy.ConfigError):
        pyproxy.parse_no_proxy(text)


@pytest.mark.parametrize("text", [
    "240.0.0.0/8,100::/64", "10.99.0.0/16", "100::/64, 240.1.0.0/16", "198.18.0.0/15",
])
def test_dns_range_accepted_like_proxy_py(native, text):
    ffi, lib = native
    v4, v6 = ffi.new("struct sfy_net *"), ffi.new("struct sfy_net *")
    err = ffi.new("char[]", 512)
    assert lib.sfy_parse_dns_range(text.encode(), v4, v6, err, 512) == 0, ffi.string(err)
    nets = pyproxy.parse_dns_range(text)
    got = [(v4.family, bytes(v4.addr)[:4], v4.prefix)]
    if v6.family:
        got.append((v6.family, bytes(v6.addr), v6.prefix))
    want = [(socket.AF_INET if n.version == 4 else socket.AF_INET6,
             n.network_address.packed, n.prefixlen) for n in nets]
    assert got == want


@pytest.mark.parametrize("text, message", [
    ("100::/64", "has no IPv4 CIDR"),
    ("224.0.0.0/8", "multicast"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/25", "too small"),
    ("10.0.0.0/8,11.0.0.0/8", "more than one IPv4"),
    ("nonsense", "bad CIDR"),
])
def test_dns_range_errors(native, text, message):
    ffi, lib = native
    v4, v6 = ffi.new("struct sfy_net *"), ffi.new("struct sfy_net *")
    err = ffi.new("char[]", 512)
    assert lib.sfy_parse_dns_range(text.encode(), v4, v6, err, 512) != 0
    assert message in ffi.string(err).decode()
    with pytest.raises(pyproxy.ConfigError, match=message.split()[0]):
        pyproxy.parse_dns_range(text)


def load(native, proxy=None, all_lc=None, all_uc=None, no_proxy=None, log=None, dns=None):
    ffi, lib = native
    cfg = ffi.new("struct sfy_config *")
    args = [ffi.NULL if v is None else v.encode() for v in (proxy, all_lc, all_uc, no_proxy,
                                                           log, dns)]
    lib.sfy_config_load(cfg, *args)
    return cfg


def test_config_precedence_matches_proxy_py(native):
    ffi, _ = native
    cfg = load(native, "socks5://a:1", "socks4://b:2", "socks4://c:3")
    assert cfg.valid and ffi.string(cfg.hops[0].host) == b"a"
    cfg = load(native, None, "socks4a://b:2", "socks5://c:3")
    assert cfg.valid and ffi.string(cfg.hops[0].host) == b"b" and cfg.remote_dns
    cfg = load(native, "", "http://proxy:3128", "socks5h://c:3")
    assert cfg.valid and ffi.string(cfg.hops[0].host) == b"c" and cfg.remote_dns
    cfg = load(native, None, "http://proxy:3128", None)
    assert not cfg.valid and b"no proxy configured" in ffi.string(cfg.error)


def test_config_remote_dns_is_the_last_hops(native):
    assert load(native, "socks5h://a,socks5://b").remote_dns == 0
    assert load(native, "socks5://a,socks4a://b").remote_dns == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"proxy": "http://h"}, "SOCKSIFY_PROXY: unsupported scheme"),
    ({"proxy": "socks5://h", "log": "loud"}, "bad log level"),
    ({"proxy": "socks5://h", "dns": "1.2.3.0/30"}, "SOCKSIFY_DNS_RANGE"),
    ({"proxy": "socks5://h", "no_proxy": "a b/c"}, "no-proxy list"),
    ({"proxy": "socks5://u:secret@h:0"}, "bad port"),
])
def test_config_errors_make_it_invalid(native, kwargs, message):
    ffi, _ = native
    cfg = load(native, **kwargs)
    assert not cfg.valid
    text = ffi.string(cfg.error).decode()
    assert message in text and "secret" not in text


def test_log_levels(native):
    assert [load(native, "socks5://h", log=x).log_level
            for x in ("error", "WARNING", " info ", "debug")] == [0, 1, 2, 3]
