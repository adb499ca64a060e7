"""BIND and UDP ASSOCIATE end to end: our core as the client, and PySocks for UDP."""

import socket
import time

import pytest
from support.peers import require_module

from socksify.protocol import (
    Address,
    Reply4,
    Reply5,
    UdpDatagram,
    decode_udp_datagram,
    encode_udp_datagram,
)

from ._server_core_client import CoreClient

pytestmark = pytest.mark.e2e

BIND, UDP = 2, 3


# -- BIND ------------------------------------------------------------------------------

@pytest.mark.parametrize("relay", ["threads", "portable"])
@pytest.mark.parametrize("version", [4, 5])
def test_bind_two_replies_then_relay_with_half_close(socks_server, version, relay):
    srv = socks_server(config=f'[server]\nrelay = "{relay}"\n')
    with CoreClient(srv.address, version) as client:
        first = client.request(BIND, "127.0.0.1", 21, user_id=b"ftp" if version == 4 else b"")
        assert client.succeeded(first)
        assert str(first.address) == "127.0.0.1" and first.port > 0
        with socket.create_connection((str(first.address), first.port), timeout=5) as peer:
            second = client.reply()
            assert client.succeeded(second)
            assert (str(second.address), second.port) == peer.getsockname()
            client.sock.sendall(b"to peer")
            assert peer.recv(100) == b"to peer"
            peer.sendall(b"to client")
            assert client.recv_exactly(9) == b"to client"
            # Half-close from the client: the peer sees EOF, and can still answer.
            client.sock.shutdown(socket.SHUT_WR)
            assert peer.recv(100) == b""
            peer.sendall(b"after eof")
            assert client.recv_exactly(9) == b"after eof"
    record = srv.wait_records(1)[0]
    assert record["command"] == "bind" and record["outcome"] == "ok"
    assert record["bytes_up"] == 7 and record["bytes_down"] == 18


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_bind_passes_on_what_the_client_sent_while_it_waited(socks_server, relay):
    """Bytes sent between the two replies are read in several pieces and kept, in
    order, until the peer has connected; then they are its first bytes."""
    srv = socks_server(config=f'[server]\nrelay = "{relay}"\n')
    pieces = [b"first ", b"second ", b"third"]
    with CoreClient(srv.address, 5) as client:
        first = client.request(BIND, "127.0.0.1", 0)
        assert client.succeeded(first)
        for piece in pieces:
            client.sock.sendall(piece)
            time.sleep(0.05)  # separate segments, each read on its own
        with socket.create_connection((str(first.address), first.port), timeout=5) as peer:
            assert client.succeeded(client.reply())
            peer.settimeout(5)
            received = b""
            while len(received) < len(b"".join(pieces)):
                chunk = peer.recv(100)
                assert chunk, "closed before the early bytes arrived"
                received += chunk
            assert received == b"".join(pieces)
    assert srv.wait_records(1)[0]["bytes_up"] == len(b"".join(pieces))


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_a_client_that_closes_while_bind_waits_ends_it(socks_server, relay):
    """A plain close (FIN, not a reset) between the two replies ends the BIND at once:
    the session is recorded as client-closed and its listening port is closed, rather
    than held open for a peer until the bind timeout."""
    srv = socks_server(config=f'[server]\nrelay = "{relay}"\n[timeouts]\nbind = 60\n')
    with CoreClient(srv.address, 5) as client:
        first = client.request(BIND, "127.0.0.1", 0)
        assert client.succeeded(first)
    record = srv.wait_records(1)[0]
    assert (record["command"], record["outcome"]) == ("bind", "client-closed")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((str(first.address), first.port), timeout=5).close()


def test_bind_accepts_only_the_expected_peer(socks_server):
    srv = socks_server()
    with CoreClient(srv.address, 5) as client:
        first = client.request(BIND, "127.0.0.2", 0)
        target = (str(first.address), first.port)
        with socket.socket() as intruder:
            intruder.bind(("127.0.0.1", 0))
            intruder.settimeout(5)
            intruder.connect(target)
            assert intruder.recv(10) == b""  # closed by the server
        with socket.socket() as peer:
            peer.bind(("127.0.0.2", 0))
            peer.settimeout(5)
            peer.connect(target)
            second = client.reply()
            assert client.succeeded(second) and str(second.address) == "127.0.0.2"


@pytest.mark.parametrize(("version", "code"), [(4, Reply4.REJECTED), (5, Reply5.TTL_EXPIRED)])
def test_bind_timeout(socks_server, version, code):
    srv = socks_server(config="[timeouts]\nbind = 0.3\n")
    with CoreClient(srv.address, version) as client:
        first = client.request(BIND, "127.0.0.1", 0)
        assert client.succeeded(first)
        second = client.reply()
        assert second.code == code
    assert srv.wait_records(1)[0]["outcome"] == "bind-timeout"


def test_bind_denied_by_rule(socks_server):
    srv = socks_server(config='[[rules]]\naction = "deny"\ncommands = ["bind"]\n'
                              '[[rules]]\naction = "allow"\n')
    with CoreClient(srv.address, 5) as client:
        reply = client.request(BIND, "127.0.0.1", 0)
        assert reply.code == Reply5.NOT_ALLOWED


# -- UDP ASSOCIATE ---------------------------------------------------------------------

def udp_associate(srv, client_port=0):
    client = CoreClient(srv.address, 5)
    reply = client.request(UDP, "0.0.0.0", client_port)
    assert client.succeeded(reply)
    return client, (str(reply.address), reply.port)


def exchange(udp, relay, datagram, timeout=5):
    udp.settimeout(timeout)
    udp.sendto(encode_udp_datagram(datagram), relay)
    data, source = udp.recvfrom(65536)
    assert source == relay
    return decode_udp_datagram(data)


def test_udp_associate_relays_both_ways(socks_server, udp_echo_server):
    srv = socks_server()
    client, relay = udp_associate(srv)
    with client, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        answer = exchange(udp, relay, UdpDatagram(Address.from_host(udp_echo_server[0]),
                                                  udp_echo_server[1], b"ping"))
        assert answer.data == b"ping" and answer.frag == 0
        assert (str(answer.address), answer.port) == udp_echo_server
    record = srv.wait_records(1)[0]
    assert record["command"] == "udp" and record["bytes_up"] == 4 == record["bytes_down"]


def test_udp_domain_destination_resolved_by_server(socks_server, udp_echo_server):
    srv = socks_server(hosts={"udp-echo.test": udp_echo_server[0]})
    client, relay = udp_associate(srv)
    with client, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        answer = exchange(udp, relay, UdpDatagram(Address.from_host("udp-echo.test"),
                                                  udp_echo_server[1], b"by name"))
        assert answer.data == b"by name"


def test_udp_drops_fragments_strangers_and_other_ports(socks_server, udp_echo_server):
    srv = socks_server()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other_port, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        udp.bind(("127.0.0.1", 0))
        other_port.bind(("127.0.0.1", 0))
        stranger.bind(("127.0.0.2", 0))
        client, relay = udp_associate(srv, client_port=udp.getsockname()[1])
        with client:
            dest = Address.from_host(udp_echo_server[0])
            for sock in (other_port, stranger):
                sock.sendto(encode_udp_datagram(UdpDatagram(dest, udp_echo_server[1], b"no")),
                            relay)
            udp.sendto(encode_udp_datagram(UdpDatagram(dest, udp_echo_server[1], b"frag", 1)),
                       relay)
            # The good datagram after the bad ones is the only one answered.
            answer = exchange(udp, relay, UdpDatagram(dest, udp_echo_server[1], b"good"))
            assert answer.data == b"good"
            for sock in (other_port, stranger, udp):
                sock.settimeout(0.3)
                with pytest.raises(socket.timeout):
                    sock.recvfrom(100)
    record = srv.wait_records(1)[0]
    assert record["bytes_up"] == 4


def test_udp_association_ends_with_the_tcp_connection(socks_server, udp_echo_server):
    srv = socks_server()
    client, relay = udp_associate(srv)
    client.close()
    srv.wait_records(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(relay)
        udp.settimeout(2)
        dest = Address.from_host(udp_echo_server[0])
        deadline = time.monotonic() + 5
        with pytest.raises((ConnectionRefusedError, socket.timeout)):
            while time.monotonic() < deadline:
                udp.send(encode_udp_datagram(UdpDatagram(dest, udp_echo_server[1], b"late")))
                udp.recv(100)


def test_udp_destination_denied_by_rule_is_dropped(socks_server, udp_echo_server):
    config = f"""
    [[rules]]
    action = "deny"
    ports = [{udp_echo_server[1]}]
    [[rules]]
    action = "allow"
    """
    srv = socks_server(config=config)
    client, relay = udp_associate(srv)
    with client, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        with pytest.raises(socket.timeout):
            exchange(udp, relay, UdpDatagram(Address.from_host(udp_echo_server[0]),
                                             udp_echo_server[1], b"x"), timeout=0.5)


def test_pysocks_udp(socks_server, udp_echo_server):
    socks = require_module("socks")
    srv = socks_server()
    sock = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.set_proxy(socks.SOCKS5, srv.host, srv.port)
    sock.settimeout(5)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(b"pysocks udp", udp_echo_server)
        data, source = sock.recvfrom(100)
        assert data == b"pysocks udp" and source == udp_echo_server
    finally:
        sock.close()
    record = srv.wait_records(1)[0]
    assert record["command"] == "udp" and record["outcome"] == "ok"


# -- IPv6 ------------------------------------------------------------------------------

def test_bind_over_ipv6(socks_server):
    srv = socks_server(listen="[::1]:0")
    with CoreClient(srv.address, 5) as client:
        first = client.request(BIND, "::1", 0)
        assert client.succeeded(first) and str(first.address) == "::1"
        with socket.create_connection(("::1", first.port), timeout=5) as peer:
            second = client.reply()
            assert client.succeeded(second) and str(second.address) == "::1"
            peer.sendall(b"v6")
            assert client.recv_exactly(2) == b"v6"


@pytest.fixture
def udp_echo_server6():
    import threading

    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            sock.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[:2]
    stop.set()
    thread.join(5)
    sock.close()


def test_udp_over_ipv6(socks_server, udp_echo_server6):
    srv = socks_server(listen="[::1]:0")
    client, relay = udp_associate(srv)
    assert relay[0] == "::1"
    with client, socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:
        udp.bind(("::1", 0))
        udp.settimeout(5)
        datagram = UdpDatagram(Address.from_host("::1"), udp_echo_server6[1], b"six")
        udp.sendto(encode_udp_datagram(datagram), relay)
        data, _ = udp.recvfrom(65536)
        answer = decode_udp_datagram(data)
        assert answer.data == b"six" and str(answer.address) == "::1"
