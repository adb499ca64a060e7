"""Tor's RESOLVE and RESOLVE_PTR (tor-socks-extensions.txt §2): torsocks, which sends them
for a program's name lookups, gets its answers from the server; our own core client covers
SOCKS4a, failures and rules. Names come from the server's [hosts] map, so nothing here asks
DNS; the lookups that must fail run in an empty network namespace."""

import os
import subprocess
import sys
import textwrap

import pytest
from support.netns import run_in_empty_netns
from support.peers import require_peer

from ._server_core_client import CoreClient, recv_until_closed

pytestmark = pytest.mark.e2e

RESOLVE, RESOLVE_PTR = 0xF0, 0xF1
HOSTS = {"tor.test": ["127.0.0.5", "::1"], "v6only.test": "::2"}

LOOKUPS = textwrap.dedent("""
    import socket
    print(socket.gethostbyname("tor.test"))
    print(socket.gethostbyaddr("127.0.0.5")[0])
""")


def test_torsocks_lookups_are_answered(socks_server, tmp_path):
    """Under torsocks a program's gethostbyname is a RESOLVE and its gethostbyaddr a
    RESOLVE_PTR, both answered from the server's [hosts]."""
    torsocks = require_peer("torsocks")
    srv = socks_server(hosts=HOSTS)
    conf = tmp_path / "torsocks.conf"
    conf.write_text(f"TorAddress {srv.host}\nTorPort {srv.port}\n")
    env = {**os.environ, "TORSOCKS_CONF_FILE": str(conf)}
    result = subprocess.run([torsocks, sys.executable, "-c", LOOKUPS], env=env,
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["127.0.0.5", "tor.test"]
    records = srv.wait_records(2)
    assert [(r["command"], r["destination"], r["peer"], r["outcome"]) for r in records] == [
        ("resolve", "tor.test", "127.0.0.5", "ok"),
        ("resolve_ptr", "127.0.0.5", "tor.test", "ok"),
    ]


@pytest.mark.parametrize(
    ("version", "name", "code", "address"),
    [
        (5, "tor.test", 0, "127.0.0.5"),  # IPv4 first, as Tor answers
        (5, "v6only.test", 0, "::2"),
        (4, "tor.test", 90, "127.0.0.5"),  # SOCKS4a
        (4, "v6only.test", 91, "0.0.0.0"),  # no IPv4 address: SOCKS4 cannot carry it
    ],
)
def test_resolve_reply_carries_the_address(socks_server, version, name, code, address):
    srv = socks_server(hosts=HOSTS)
    with CoreClient(srv.address, version) as client:
        reply = client.request(RESOLVE, name, 0)
        assert (reply.code, reply.address.host, reply.port) == (code, address, 0)
        assert recv_until_closed(client.sock) == b""  # the answer is all: the server closes
    [record] = srv.wait_records(1)
    assert record["outcome"] == ("ok" if code in (0, 90) else "no-ipv4-address")


@pytest.mark.parametrize(("address", "name"), [("127.0.0.5", "tor.test"), ("::2", "v6only.test")])
def test_resolve_ptr_reply_carries_the_name(socks_server, address, name):
    srv = socks_server(hosts=HOSTS)
    with CoreClient(srv.address, 5) as client:
        reply = client.request(RESOLVE_PTR, address, 0)
        assert (reply.code, reply.address.type.name, reply.address.host) == (0, "DOMAIN", name)


def test_resolve_ptr_of_a_name_is_refused(socks_server):
    srv = socks_server(hosts=HOSTS)
    with CoreClient(srv.address, 5) as client:
        assert client.request(RESOLVE_PTR, "tor.test", 0).code == 8  # address type
    assert srv.wait_records(1)[0]["outcome"] == "address-type-not-supported"


RULES = """
[[rules]]
action = "deny"
commands = ["resolve"]
to = ["127.0.0.5"]
[[rules]]
action = "deny"
commands = ["resolve_ptr"]
to = ["127.0.0.0/8"]
[[rules]]
action = "allow"
commands = ["resolve", "resolve_ptr"]
"""


def test_rules_judge_each_address_and_the_ptr_target(socks_server):
    srv = socks_server(config=RULES, hosts=HOSTS)
    with CoreClient(srv.address, 5) as client:  # 127.0.0.5 denied: the next address answers
        assert client.request(RESOLVE, "tor.test", 0).address.host == "::1"
    with CoreClient(srv.address, 5) as client:
        assert client.request(RESOLVE_PTR, "127.0.0.5", 0).code == 2
    with CoreClient(srv.address, 5) as client:
        assert client.request(RESOLVE_PTR, "::2", 0).address.host == "v6only.test"
    with CoreClient(srv.address, 5) as client:  # CONNECT is not among the allowed commands
        assert client.request(1, "tor.test", 80).code == 2
    outcomes = [r["outcome"] for r in srv.wait_records(4)]
    assert sorted(outcomes) == ["not-allowed", "not-allowed", "ok", "ok"]


NETNS_SCRIPT = textwrap.dedent(
    """
    from socksify.server import ServerConfig, run_in_thread
    from _server_core_client import CoreClient
    records = []
    config = ServerConfig(listen=[("127.0.0.1", 0)])
    with run_in_thread(config, on_session=records.append) as srv:
        # No DNS server is reachable from this namespace: both lookups fail.
        with CoreClient(srv.addresses[0], 5) as client:
            print(client.request(0xF0, "no-such-name.invalid", 0).code)
        with CoreClient(srv.addresses[0], 5) as client:
            print(client.request(0xF1, "192.0.2.1", 0).code)
    print(*sorted(r["outcome"] for r in records))
    """
)


def test_failed_lookups_reply_host_unreachable():
    result = run_in_empty_netns(NETNS_SCRIPT, path=[os.path.dirname(os.path.abspath(__file__))])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split("\n")[:3] == ["4", "4", "name-not-found name-not-found"]
