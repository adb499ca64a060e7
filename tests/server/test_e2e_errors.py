"""Outbound failures become the right reply codes (RFC 1928 §6), on loopback or in a netns."""

import errno
import os
import socket
import textwrap

import pytest
from support.netns import run_in_empty_netns
from support.targets import full_accept_queue

from socksify.server._outbound import reply_for_oserror

from ._server_core_client import CoreClient

CONNECT = 1
HERE = os.path.dirname(os.path.abspath(__file__))  # _server_core_client, for netns scripts


@pytest.mark.parametrize(
    ("error", "code", "outcome"),
    [
        (errno.ECONNREFUSED, 5, "connection-refused"),
        (errno.ENETUNREACH, 3, "network-unreachable"),
        (errno.EHOSTUNREACH, 4, "host-unreachable"),
        (errno.ETIMEDOUT, 6, "timeout"),
        (errno.EACCES, 2, "not-allowed"),
        (errno.EADDRNOTAVAIL, 1, "failed"),
    ],
)
def test_errno_to_reply_code(error, code, outcome):
    mapped = reply_for_oserror(OSError(error, os.strerror(error)))
    assert (mapped.code, mapped.outcome) == (code, outcome)


def test_name_not_found_is_host_unreachable():
    mapped = reply_for_oserror(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert (mapped.code, mapped.outcome) == (4, "name-not-found")


@pytest.fixture
def black_hole():
    """A loopback port whose accept queue is full: new connects hang (SYNs are dropped)."""
    with full_accept_queue() as (listener, _fillers):
        yield listener.getsockname()


@pytest.mark.e2e
@pytest.mark.parametrize(("version", "code"), [(5, 6), (4, 91)])
def test_connect_timeout(socks_server, black_hole, version, code):
    srv = socks_server(config="[timeouts]\nconnect = 0.3\n")
    with CoreClient(srv.address, version) as client:
        assert client.request(CONNECT, *black_hole).code == code
    assert srv.wait_records(1)[0]["outcome"] == "timeout"


NETNS_SCRIPT = textwrap.dedent(
    """
    from socksify.server import ServerConfig, run_in_thread
    from _server_core_client import CoreClient
    config = ServerConfig(listen=[("127.0.0.1", 0)])
    with run_in_thread(config) as srv:
        with CoreClient(srv.addresses[0], 5) as client:
            # No route to anything but loopback in this namespace.
            print(client.request(1, "192.0.2.1", 80).code)
    """
)


@pytest.mark.e2e
def test_network_unreachable_in_empty_netns():
    result = run_in_empty_netns(NETNS_SCRIPT, path=[HERE])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"3"


@pytest.mark.e2e
def test_each_resolved_address_is_tried_in_order(socks_server, tcp_echo_server):
    # 127.0.0.2 has no listener on the echo port (refused), 127.0.0.1 has.
    srv = socks_server(hosts={"multi.test": ["127.0.0.2", tcp_echo_server[0]]})
    with CoreClient(srv.address, 5) as client:
        reply = client.request(CONNECT, "multi.test", tcp_echo_server[1])
        assert client.succeeded(reply)
        client.sock.sendall(b"second address")
        assert client.recv_exactly(14) == b"second address"


@pytest.mark.e2e
def test_denied_addresses_of_a_name_are_skipped(socks_server, tcp_echo_server):
    # The reachable 127.0.0.1 is denied, so only 127.0.0.2 (refused) may be tried: reply 5.
    config = '[[rules]]\naction = "deny"\nto = ["127.0.0.1"]\n[[rules]]\naction = "allow"\n'
    srv = socks_server(config=config, hosts={"multi.test": [tcp_echo_server[0], "127.0.0.2"]})
    with CoreClient(srv.address, 5) as client:
        assert client.request(CONNECT, "multi.test", tcp_echo_server[1]).code == 5
