"""UDP ASSOCIATE and ``[timeouts] idle``: an association that relays no datagram either way
for the idle timeout ends (its control connection is closed, outcome ``idle-timeout``), one
with traffic lives on, and ``idle = 0`` keeps them all."""

import socket
import time

import pytest

from socksify.protocol import Address, UdpDatagram, decode_udp_datagram, encode_udp_datagram

from ._server_core_client import CoreClient, recv_until_closed

pytestmark = pytest.mark.e2e

UDP = 3
IDLE = 0.5


def udp_associate(srv):
    client = CoreClient(srv.address, 5)
    reply = client.request(UDP, "0.0.0.0", 0)
    assert client.succeeded(reply)
    return client, (str(reply.address), reply.port)


def still_open(sock: socket.socket, wait: float) -> bool:
    """True when ``sock`` got neither data nor EOF nor a reset within ``wait`` seconds."""
    sock.settimeout(wait)
    try:
        sock.recv(100)
    except TimeoutError:
        return True
    except ConnectionResetError:
        pass
    return False


def send_to(udp, relay_address, target, payload):
    datagram = UdpDatagram(Address.from_host(target[0]), target[1], payload)
    udp.sendto(encode_udp_datagram(datagram), relay_address)


def echo_through(udp, relay_address, target, payload, wait=30):
    """Send ``payload`` until its echo comes back (UDP may drop one); False if it never
    does within ``wait`` seconds."""
    udp.settimeout(0.5)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        send_to(udp, relay_address, target, payload)
        try:
            data, source = udp.recvfrom(65536)
        except TimeoutError:
            continue
        if source == relay_address and decode_udp_datagram(data).data == payload:
            return True
    return False


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_quiet_association_is_closed_as_idle(socks_server, udp_echo_server, relay):
    srv = socks_server(config=f'[server]\nrelay = "{relay}"\n[timeouts]\nidle = {IDLE}\n')
    client, relay_address = udp_associate(srv)
    with client:
        # The server closes the control connection (bounded: 30 s per wait).
        assert recv_until_closed(client.sock) == b""
    record = srv.wait_records(1)[0]
    assert record["command"] == "udp"
    assert record["outcome"] == "idle-timeout"
    assert record["bytes_up"] == 0 == record["bytes_down"]
    # Its UDP socket is gone too: a datagram for the echo server is not relayed any more.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.connect(relay_address)
        udp.settimeout(1)
        with pytest.raises((ConnectionRefusedError, TimeoutError)):
            for _ in range(3):
                datagram = UdpDatagram(Address.from_host(udp_echo_server[0]),
                                       udp_echo_server[1], b"late")
                udp.send(encode_udp_datagram(datagram))
                udp.recv(100)
    assert len(srv.records) == 1  # one session, one record


def test_association_with_traffic_stays_open(socks_server, udp_echo_server):
    srv = socks_server(config=f"[timeouts]\nidle = {IDLE}\n")
    client, relay_address = udp_associate(srv)
    echoed = set()
    with client, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        client.sock.setblocking(False)
        # A datagram every 0.1 s for three idle timeouts, echoes collected in between;
        # each round also checks that the server did not close the control connection.
        start = time.monotonic()
        for number in range(round(3 * IDLE / 0.1)):
            send_to(udp, relay_address, udp_echo_server, b"tick %d" % number)
            while (left := start + (number + 1) * 0.1 - time.monotonic()) > 0:
                udp.settimeout(left)
                try:
                    data, source = udp.recvfrom(65536)
                except TimeoutError:
                    break
                if source == relay_address:
                    echoed.add(decode_udp_datagram(data).data)
            try:
                assert client.sock.recv(100) != b"", "the server closed an active association"
            except BlockingIOError:
                pass  # nothing to read: still open, as it should be
        assert echoed, "no echo came back during the steady traffic"
        # The association still relays after three timeouts' worth of traffic.
        assert echo_through(udp, relay_address, udp_echo_server, b"after")
        client.sock.setblocking(True)
        assert still_open(client.sock, 0.05)
    record = srv.wait_records(1)[0]
    assert record["command"] == "udp" and record["outcome"] == "ok"
    assert record["bytes_down"] > 0


def test_idle_zero_keeps_a_quiet_association(socks_server, udp_echo_server):
    srv = socks_server(config="[timeouts]\nidle = 0\n")
    client, relay_address = udp_associate(srv)
    with client, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        # Quiet for what would be three timeouts of the other tests: still open...
        assert still_open(client.sock, 3 * IDLE)
        # ...and still relaying.
        assert echo_through(udp, relay_address, udp_echo_server, b"still")
    record = srv.wait_records(1)[0]
    assert record["outcome"] == "ok"
