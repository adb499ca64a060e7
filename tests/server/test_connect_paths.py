"""The ways a CONNECT to an IP address goes on the threaded path (socksify/server/_handler.py
``_connect_ip``): carried out on the spot when the destination answers at once, continued
in a coroutine when the connect is still in progress, failed at once when it is refused.
Each one must end with the same replies and record as the general path."""

import socket
import threading
import time

import pytest
from support.targets import full_accept_queue

from socksify.protocol import Address, Command, Request

from ._server_core_client import CoreClient

pytestmark = pytest.mark.e2e

CONNECT = 1


@pytest.fixture
def late_listener():
    """A loopback listener whose accept queue is full, so a connect to it stays in
    progress (its SYN is dropped) until ``open_up()`` drains the queue; the kernel
    resends the SYN about a second later and the connect completes. The connection
    then accepted echoes what it receives."""
    with full_accept_queue() as (listener, fillers):
        filler_addresses = [sock.getsockname() for sock in fillers]
        echoed = threading.Event()

        def echo_the_next_one():
            listener.settimeout(15)
            try:
                while True:
                    conn, peer = listener.accept()
                    if peer in filler_addresses:
                        conn.close()
                        continue
                    with conn:
                        conn.settimeout(10)
                        while data := conn.recv(65536):
                            conn.sendall(data)
                        echoed.set()
                    return
            except OSError:
                return

        def open_up():
            for sock in fillers:
                sock.close()
            thread.start()

        thread = threading.Thread(target=echo_the_next_one, daemon=True)
        yield listener.getsockname(), open_up, echoed
    if thread.is_alive():
        thread.join(15)


def connects_in_progress(port: int) -> int:
    """IPv4 sockets of this machine in SYN_SENT toward loopback ``port`` (/proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        next(table)
        rows = [line.split() for line in table]
    return sum(1 for row in rows
               if row[3] == "02" and int(row[2].split(":")[1], 16) == port)


@pytest.mark.parametrize("version", [5, 4])
def test_a_connect_still_in_progress_goes_on_and_relays(socks_server, late_listener, version):
    target, open_up, echoed = late_listener
    srv = socks_server(config="[timeouts]\nconnect = 20\n")
    with CoreClient(srv.address, version, timeout=20) as client:
        if version == 5:
            assert client.negotiate() is None
        waiting = connects_in_progress(target[1])
        client.sock.sendall(client.conn.send(Request(Command.CONNECT, Address.from_host(target[0]),
                                                     target[1])))
        # The proxy's connect is in progress (its SYN was dropped) before the queue drains.
        deadline = time.monotonic() + 10
        while connects_in_progress(target[1]) <= waiting:
            assert time.monotonic() < deadline, "the proxy never started its connect"
            time.sleep(0.01)
        assert srv.records == []
        open_up()
        assert client.succeeded(client.reply())
        client.sock.sendall(b"late but fine")
        assert client.recv_exactly(13) == b"late but fine"
        client.sock.shutdown(socket.SHUT_WR)
        assert echoed.wait(15)
    record = srv.wait_records(1)[0]
    assert (record["outcome"], record["bytes_up"], record["bytes_down"]) == ("ok", 13, 13)


@pytest.mark.parametrize(("version", "code"), [(5, 5), (4, 91)])
def test_a_refused_connect_is_answered_at_once(socks_server, version, code):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]  # bound, never listening: connects are refused
    srv = socks_server()
    try:
        with CoreClient(srv.address, version) as client:
            assert client.request(CONNECT, "127.0.0.1", port).code == code
    finally:
        closed.close()
    record = srv.wait_records(1)[0]
    assert (record["outcome"], record["destination"], record["port"]) == (
        "connection-refused", "127.0.0.1", port)


def test_a_denied_address_is_refused_before_any_connect(socks_server, tcp_echo_server):
    srv = socks_server(config=f'[[rules]]\naction = "deny"\nto = ["{tcp_echo_server[0]}"]\n')
    with CoreClient(srv.address, 5) as client:
        assert client.request(CONNECT, *tcp_echo_server).code == 2
    assert srv.wait_records(1)[0]["outcome"] == "not-allowed"
