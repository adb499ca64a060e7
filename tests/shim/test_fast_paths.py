"""The shim's performance shortcuts keep the behaviour they replace.

- ``proxy._is_host_name`` is the old host-name regular expression written without ``re``.
- ``ProxyConfig``, ``NoProxy`` and ``Settings`` are hand-written frozen value classes (no
  ``dataclasses`` at start-up) and must behave as the frozen dataclasses they were.
- ``import socksify; socksify.patch()`` loads none of the heavy modules (protocol core,
  dataclasses, re, logging, asyncio, threading); the first proxied connection loads them.
"""

import copy
import itertools
import pickle
import re
import subprocess
import sys

import pytest

from socksify.proxy import (
    NoProxy,
    ProxyConfig,
    Settings,
    _is_host_name,
    load_settings,
    parse_no_proxy,
    parse_proxy_url,
)

HOST_NAME_REGEX = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?\.?")


def test_host_name_check_equals_the_regex_on_every_short_string():
    alphabet = "a0_.-:é \n@"
    checked = 0
    for length in range(6):
        for chars in itertools.product(alphabet, repeat=length):
            text = "".join(chars)
            assert _is_host_name(text) == bool(HOST_NAME_REGEX.fullmatch(text)), repr(text)
            checked += 1
    assert checked > 100_000


@pytest.mark.parametrize(
    "host, ok",
    [
        ("proxy.lan", True),
        ("proxy.lan.", True),
        ("a", True),
        ("_srv", True),
        ("-a", False),
        ("a-", False),
        ("a..", False),
        (".", False),
        ("", False),
        ("pröxy", False),
    ],
)
def test_host_name_examples(host, ok):
    assert _is_host_name(host) is ok


def test_proxy_config_is_an_immutable_value():
    config = parse_proxy_url("socks5h://alice:s3cret@proxy.lan:1081")
    same = ProxyConfig("socks5h", "proxy.lan", 1081, "alice", "s3cret")
    assert config == same and hash(config) == hash(same)
    assert config != ProxyConfig("socks5h", "proxy.lan", 1081, "alice", "other")
    assert config != ("socks5h", "proxy.lan", 1081, "alice", "s3cret")
    assert ProxyConfig(scheme="socks4", host="h") == ProxyConfig("socks4", "h", 1080, None, None)
    with pytest.raises(AttributeError):
        config.host = "elsewhere"
    with pytest.raises(AttributeError):
        del config.port
    with pytest.raises(AttributeError):
        config.extra = 1
    assert "s3cret" not in repr(config)
    assert (
        repr(config)
        == "ProxyConfig(scheme='socks5h', host='proxy.lan', port=1081, username='alice')"
    )
    for clone in (pickle.loads(pickle.dumps(config)), copy.copy(config), copy.deepcopy(config)):
        assert clone == config and clone.password == "s3cret"
    assert (config.version, config.remote_dns) == (5, True)


def test_settings_and_no_proxy_are_immutable_values():
    settings = load_settings("socks5://h", no_proxy=".lan,10.0.0.0/8", environ={})
    again = load_settings("socks5://h", no_proxy=".lan,10.0.0.0/8", environ={})
    assert settings == again and hash(settings) == hash(again)
    assert settings.no_proxy == parse_no_proxy(".lan,10.0.0.0/8")
    assert pickle.loads(pickle.dumps(settings)) == settings
    assert Settings(chain=settings.chain).no_proxy == NoProxy()
    with pytest.raises(AttributeError):
        settings.log_level = "debug"
    with pytest.raises(AttributeError):
        settings.no_proxy.everything = True
    assert "no_proxy=NoProxy(names=frozenset()" in repr(Settings(chain=settings.chain))


def test_patch_alone_loads_none_of_the_heavy_modules():
    code = """
import sys
before = set(sys.modules)
import socksify
socksify.patch("socks5h://127.0.0.1:1")
heavy = {"dataclasses", "inspect", "re", "logging", "asyncio", "threading", "importlib.util",
         "socksify.protocol", "socksify.client"}
print(sorted(heavy & (set(sys.modules) - before)))
import socket
try:
    socket.create_connection(("127.0.0.1", 9), timeout=2)  # proxied; the proxy port is closed
except OSError:
    pass
print("socksify.protocol" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"  # the first proxied connection loaded the core
