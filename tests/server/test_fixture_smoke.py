"""The socks_server fixture itself: a CONNECT through it is recorded."""

import socket

import pytest

from socksify.protocol import Address, Command, Connection, Reply, Request, Role


@pytest.mark.e2e
def test_fixture_records_a_socks4_connect(socks_server, tcp_echo_server):
    srv = socks_server()
    host, port = tcp_echo_server
    conn = Connection(Role.CLIENT, 4)
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        sock.sendall(conn.send(Request(Command.CONNECT, Address.from_host(host), port, b"bob")))
        sock.sendall(b"ping")
        event = None
        while not isinstance(event, Reply):
            conn.receive_data(sock.recv(4096))
            event = conn.next_event()
        assert conn.reply_succeeded(event)
        data = conn.trailing_data
        while len(data) < 4:
            data += sock.recv(4096)
        assert data == b"ping"
    [record] = srv.wait_records(1)
    assert record["command"] == "connect"
    assert (record["destination"], record["port"]) == (host, port)
    assert record["user"] == "bob"
    assert record["outcome"] == "ok"
    assert record["bytes_up"] == 4 and record["bytes_down"] == 4
