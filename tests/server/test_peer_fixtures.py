"""The peer proxy fixtures other test directories use: microsocks and danted."""

import os
import subprocess

import pytest
from support.peers import require_peer

from ._server_core_client import CoreClient

pytestmark = pytest.mark.e2e


def fetch(proxy_url, url):
    curl = require_peer("curl")
    return subprocess.run([curl, "-sS", "--max-time", "10", "--proxy", proxy_url, url],
                          capture_output=True, timeout=20)


def test_microsocks_fixture(microsocks, http_server):
    plain = microsocks()
    assert b"hello" in fetch(plain.url("socks5h"), http_server.url()).stdout
    authed = microsocks(users={"mu": "mp"})
    assert b"hello" in fetch(authed.url("socks5", "mu", "mp"), http_server.url()).stdout
    assert fetch(authed.url("socks5", "mu", "wrong"), http_server.url()).returncode != 0


@pytest.mark.parametrize("scheme", ["socks4", "socks5", "socks5h"])
def test_danted_fixture(danted, http_server, scheme):
    proxy = danted()
    assert b"hello" in fetch(proxy.url(scheme), http_server.url()).stdout


def test_danted_fixture_with_users(danted, http_server):
    if os.geteuid() != 0:
        pytest.skip("MISSING PRIVILEGE: needs root to create system users")
    proxy = danted(users={"sfydante": "dpw"})
    assert b"hello" in fetch(proxy.url("socks5", "sfydante", "dpw"), http_server.url()).stdout
    assert fetch(proxy.url("socks5", "sfydante", "bad"), http_server.url()).returncode != 0


def test_danted_fixture_bind(danted):
    import socket

    proxy = danted(allow_bind=True)
    with CoreClient(proxy.address, 5) as client:
        first = client.request(2, "127.0.0.1", 0)
        assert client.succeeded(first)
        with socket.create_connection((str(first.address), first.port), timeout=5):
            assert client.succeeded(client.reply())
