"""socksify.proxy: URL and chain parsing (shared vectors), bypass lists, settings precedence."""

import ipaddress
import json
import pathlib

import pytest

from socksify.proxy import (
    DEFAULT_DNS_RANGE,
    ConfigError,
    NoProxyConfigured,
    ProxyConfig,
    ProxyURLError,
    Settings,
    load_settings,
    parse_chain,
    parse_dns_range,
    parse_no_proxy,
    parse_proxy_url,
)

VECTORS = json.loads(
    (pathlib.Path(__file__).parent.parent / "vectors" / "proxy_urls.json").read_text("utf-8")
)["cases"]


@pytest.mark.parametrize("case", VECTORS, ids=[case["name"] for case in VECTORS])
def test_proxy_url_vectors(case):
    if "error" in case:
        with pytest.raises(ProxyURLError) as info:
            parse_chain(case["url"])
        assert case["error"] in str(info.value)
        assert "secret" not in str(info.value)
        assert isinstance(info.value, ValueError)
    else:
        chain = parse_chain(case["url"])
        assert [
            {
                "scheme": hop.scheme,
                "host": hop.host,
                "port": hop.port,
                "username": hop.username,
                "password": hop.password,
            }
            for hop in chain
        ] == case["chain"]


# "\udcff" is how Python shows the byte 0xFF (not UTF-8) from argv or the environment
# (surrogateescape); "\ud800" is a lone surrogate from a Python caller.
@pytest.mark.parametrize(
    "url, part",
    [
        ("socks5://\udcff@h", "user name is not UTF-8 after percent-decoding"),
        ("socks5://al\udcffice:pw@h", "user name is not UTF-8 after percent-decoding"),
        ("socks5://\ud800@h", "user name is not UTF-8 after percent-decoding"),
        ("socks5://u:s3cr\udcffet@h", "password is not UTF-8 after percent-decoding"),
        ("socks5://u:s3cr\ud800et@h", "password is not UTF-8 after percent-decoding"),
        ("socks5://[fe80::1%25\udcff]", "bad IPv6 zone id '\\udcff'"),
        ("socks5://[fe80::1%\udcff]:1080", "bad IPv6 zone id '\\udcff'"),
        ("socks5://h\udcff", "bad host 'h\\udcff'"),
        ("socks5://h:\udcff", "bad port '\\udcff'"),
    ],
)
def test_text_that_is_not_utf8_is_a_url_error(url, part):
    with pytest.raises(ProxyURLError) as info:
        parse_chain(url)
    assert part in str(info.value)
    assert "s3cr" not in str(info.value)
    with pytest.raises(ProxyURLError, match="SOCKSIFY_PROXY: "):
        load_settings(environ={"SOCKSIFY_PROXY": url})


def test_vectors_cover_enough_cases():
    assert len(VECTORS) >= 40
    assert sum("error" in case for case in VECTORS) >= 15


def test_version_and_remote_dns():
    assert [
        (p.version, p.remote_dns)
        for p in parse_chain("socks4://a,socks4a://b,socks5://c,socks5h://d")
    ] == [(4, False), (4, True), (5, False), (5, True)]


def test_str_and_repr_hide_the_password():
    proxy = parse_proxy_url("socks5://alice:top%40secret@[::1]:99")
    assert str(proxy) == "socks5://alice:***@[::1]:99"
    assert "secret" not in repr(proxy)
    assert proxy.url(redact=False) == "socks5://alice:top%40secret@[::1]:99"
    assert parse_proxy_url(proxy.url(redact=False)) == proxy


def test_proxy_config_is_frozen():
    proxy = ProxyConfig("socks5", "h")
    with pytest.raises(AttributeError):
        proxy.port = 2  # type: ignore[misc]
    assert proxy.port == 1080


def test_url_round_trips_for_all_vectors():
    for case in VECTORS:
        if "chain" in case:
            for hop in parse_chain(case["url"]):
                assert parse_proxy_url(hop.url(redact=False)) == hop


# --- bypass list ------------------------------------------------------------------------


def test_no_proxy_matching():
    bypass = parse_no_proxy(
        "intranet, .corp.example, 10.0.0.0/8, 192.168.1.7, [::1], fd00::/8, *.wild.test"
    )
    assert bypass.matches("intranet")
    assert bypass.matches("INTRANET.")
    assert not bypass.matches("intranet.other")
    assert bypass.matches("corp.example")
    assert bypass.matches("a.b.corp.example")
    assert not bypass.matches("notcorp.example")
    assert bypass.matches("10.200.0.1")
    assert not bypass.matches("11.0.0.1")
    assert bypass.matches("192.168.1.7")
    assert not bypass.matches("192.168.1.8")
    assert bypass.matches("::1")
    assert bypass.matches("fd12::5")
    assert bypass.matches("::ffff:10.1.1.1")  # IPv4-mapped form of a listed network
    assert bypass.matches("x.wild.test")
    assert not bypass.matches("127.0.0.1")  # loopback is proxied unless listed (SPEC)


def test_no_proxy_empty_and_star():
    assert not parse_no_proxy(None)
    assert not parse_no_proxy("  ")
    assert not parse_no_proxy("").matches("127.0.0.1")
    assert parse_no_proxy("*").matches("anything.at.all")


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "exa mple/x", "bad_ch@r", "..x"])
def test_no_proxy_bad_entries(bad):
    with pytest.raises(ConfigError, match="no-proxy"):
        parse_no_proxy(bad)


# --- DNS placeholder range ----------------------------------------------------------------


def test_default_dns_range():
    assert parse_dns_range(DEFAULT_DNS_RANGE) == (
        ipaddress.ip_network("240.0.0.0/8"),
        ipaddress.ip_network("100::/64"),
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ("224.0.0.0/4", "multicast"),
        ("127.0.0.0/8", "loopback"),
        ("100::/64", "no IPv4"),
        ("240.0.0.0/30", "too small"),
        ("240.0.0.0/8,241.0.0.0/8", "more than one IPv4"),
        ("nonsense", "bad CIDR"),
    ],
)
def test_bad_dns_range(bad, message):
    with pytest.raises(ConfigError, match=message):
        parse_dns_range(bad)


# --- settings precedence ----------------------------------------------------------------


def test_flag_wins_over_environment():
    env = {"SOCKSIFY_PROXY": "socks5://env:1", "ALL_PROXY": "socks5://all:1"}
    assert load_settings(proxy="socks4://flag:1", environ=env).chain[0].host == "flag"


def test_socksify_proxy_wins_over_all_proxy():
    env = {"SOCKSIFY_PROXY": "socks5://env:1", "ALL_PROXY": "socks5://all:1"}
    assert load_settings(environ=env).chain[0].host == "env"


def test_all_proxy_counts_only_with_a_socks_url():
    assert load_settings(environ={"ALL_PROXY": "socks5h://all:1"}).chain[0].host == "all"
    assert load_settings(environ={"all_proxy": "SOCKS5://low:1"}).chain[0].host == "low"
    with pytest.raises(NoProxyConfigured, match="no proxy configured"):
        load_settings(environ={"ALL_PROXY": "http://web:3128"})


def test_lowercase_all_proxy_first_like_curl():
    env = {"all_proxy": "socks5://low:1", "ALL_PROXY": "socks5://up:1"}
    assert load_settings(environ=env).chain[0].host == "low"


def test_nothing_configured_is_an_error():
    with pytest.raises(NoProxyConfigured) as info:
        load_settings(environ={"SOCKSIFY_PROXY": ""})
    assert "SOCKSIFY_PROXY" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_names_the_variable():
    with pytest.raises(ProxyURLError, match="SOCKSIFY_PROXY: bad port"):
        load_settings(environ={"SOCKSIFY_PROXY": "socks5://h:x"})
    with pytest.raises(ProxyURLError, match="--proxy: unsupported scheme"):
        load_settings(proxy="http://h", environ={})
    with pytest.raises(ProxyURLError, match="ALL_PROXY: bad port"):
        load_settings(environ={"ALL_PROXY": "socks5://h:x"})


def test_log_level_and_no_proxy_from_environment():
    env = {
        "SOCKSIFY_PROXY": "socks5://h",
        "SOCKSIFY_LOG": "DEBUG",
        "SOCKSIFY_NO_PROXY": "example.org",
        "SOCKSIFY_DNS_RANGE": "240.1.0.0/16",
    }
    settings = load_settings(environ=env)
    assert settings.log_level == "debug"
    assert settings.no_proxy.matches("example.org")
    assert settings.dns_range == (ipaddress.ip_network("240.1.0.0/16"),)
    assert load_settings(log_level="info", no_proxy="", environ=env).log_level == "info"
    assert not load_settings(no_proxy="", environ=env).no_proxy
    with pytest.raises(ConfigError, match="log level"):
        load_settings(log_level="loud", environ=env)


def test_defaults():
    settings = load_settings(environ={"SOCKSIFY_PROXY": "socks5h://h"})
    assert settings == Settings(chain=parse_chain("socks5h://h"))
    assert settings.log_level == "error"
    assert not settings.no_proxy
    assert settings.remote_dns


def test_to_environ_round_trips():
    settings = load_settings(
        proxy="socks5://u:p%2Cw@a:1,socks5h://[::1]:2",
        no_proxy=".lan, 10.0.0.0/8",
        log_level="warning",
        environ={"SOCKSIFY_DNS_RANGE": "240.0.0.0/12,100::/96"},
    )
    exported = settings.to_environ()
    assert set(exported) == {
        "SOCKSIFY_PROXY",
        "SOCKSIFY_NO_PROXY",
        "SOCKSIFY_LOG",
        "SOCKSIFY_DNS_RANGE",
    }
    assert load_settings(environ=exported) == settings


def test_percent_coding_matches_urllib():
    import urllib.parse

    from hypothesis import given
    from hypothesis import strategies as st

    from socksify.proxy import quote, unquote_to_bytes

    @given(st.text())
    def check(text):
        assert unquote_to_bytes(text) == urllib.parse.unquote_to_bytes(text)
        assert quote(text) == urllib.parse.quote(text, safe="")
        assert unquote_to_bytes(quote(text)) == text.encode("utf-8")

    check()
    assert unquote_to_bytes("%zz%4%41") == b"%zz%4A"
