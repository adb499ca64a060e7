"""The server under stress and abuse: half-close, bad and stalled clients, limits, volume."""

import hashlib
import logging
import socket
import subprocess
import time

import pytest
from support.peers import require_peer
from support.targets import pattern_bytes

from ._server_core_client import CoreClient, recv_until_closed

pytestmark = pytest.mark.e2e

CONNECT = 1


@pytest.fixture(params=["threads", "portable"])
def relay_toml(request):
    """TOML selecting the relay: the Linux threaded path or the portable asyncio path."""
    return f'[server]\nrelay = "{request.param}"\n'


def read_all(sock, timeout=10):
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def assert_closed_by_server(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        assert sock.recv(100) == b""
    except ConnectionResetError:
        pass


def assert_good_client_served(srv, echo):
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *echo))
        client.sock.sendall(b"still serving")
        assert client.recv_exactly(13) == b"still serving"


def test_half_close_through_connect(socks_server, tcp_echo_server, relay_toml):
    srv = socks_server(config=relay_toml)
    payload = pattern_bytes(300_000)
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
        client.sock.sendall(payload)
        client.sock.shutdown(socket.SHUT_WR)  # our EOF must reach the echo server ...
        echoed = client.conn.trailing_data + read_all(client.sock)
    assert echoed == payload  # ... which answers everything, then closes its side
    record = srv.wait_records(1)[0]
    assert record["bytes_up"] == record["bytes_down"] == len(payload)


def test_early_data_sent_with_the_request_is_forwarded(socks_server, tcp_echo_server,
                                                       relay_toml):
    from socksify.protocol import Address, Command, Connection, Request, Role

    srv = socks_server(config=relay_toml)
    conn = Connection(Role.CLIENT, 4)
    request = Request(Command.CONNECT, Address.from_host(tcp_echo_server[0]), tcp_echo_server[1])
    with socket.create_connection(srv.address, timeout=5) as sock:
        # Request and data in one write, without waiting for the reply.
        sock.sendall(conn.send(request) + b"early bytes")
        assert read_until(sock, 8 + 11)[8:] == b"early bytes"
    assert srv.wait_records(1)[0]["bytes_up"] == 11


def read_until(sock, count, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while len(data) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize(
    "garbage",
    [b"GIF89a" + bytes(20), b"\x05\x00", b"\x04\x07\x00\x50\x7f\x00\x00\x01\x00",
     b"\x05\x01\x00\x05\x01\x00\x09" + b"\x00" * 20],
)
def test_garbage_is_cut_off_and_logged_while_others_are_served(
    socks_server, tcp_echo_server, caplog, garbage
):
    srv = socks_server()
    with socket.create_connection(srv.address, timeout=5) as bad:
        bad.sendall(garbage)
        assert_good_client_served(srv, tcp_echo_server)
        bad.settimeout(5)
        try:
            leftover = read_all(bad)
        except ConnectionResetError:
            leftover = b""
        assert len(leftover) <= 12  # at most a method reply and a failure reply
    outcomes = [r["outcome"] for r in srv.wait_records(2)]
    assert "ok" in outcomes and "protocol-error" in outcomes
    assert "protocol-error from 127.0.0.1:" in caplog.text


@pytest.mark.parametrize(
    ("request_bytes", "expected_reply"),
    [
        (b"\x05\x09\x00\x01\x7f\x00\x00\x01\x00\x50", 7),  # unknown command
        (b"\x05\x01\x00\x05\x01\x02\x03\x04\x00\x50", 8),  # unknown address type
    ],
)
def test_unsupported_request_gets_its_reply_code(socks_server, request_bytes, expected_reply):
    srv = socks_server()
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert read_until(sock, 2) == b"\x05\x00"
        sock.sendall(request_bytes)
        reply = read_all(sock)
    assert reply[:2] == bytes([5, expected_reply])


def test_gssapi_only_is_declined(socks_server):
    srv = socks_server()
    with socket.create_connection(srv.address, timeout=5) as sock:
        sock.sendall(b"\x05\x01\x01")  # offers GSSAPI (RFC 1961) only
        assert read_all(sock) == b"\x05\xff"


@pytest.mark.parametrize("sent", [b"", b"\x05", b"\x05\x01\x00\x05\x01"])
def test_stalled_client_is_cut_off(socks_server, tcp_echo_server, sent):
    srv = socks_server(config="[timeouts]\nhandshake = 0.4\n")
    with socket.create_connection(srv.address, timeout=5) as stalled:
        stalled.sendall(sent)
        assert_good_client_served(srv, tcp_echo_server)
        assert recv_until_closed(stalled) in (b"", b"\x05\x00")
    records = srv.wait_records(2)
    assert sorted(r["outcome"] for r in records) == ["handshake-timeout", "ok"]


def test_idle_relay_is_closed(socks_server, tcp_echo_server, relay_toml):
    srv = socks_server(config=relay_toml + "[timeouts]\nidle = 0.4\n")
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
        assert_closed_by_server(client.sock)
    assert srv.wait_records(1)[0]["outcome"] == "idle-timeout"


def test_max_clients(socks_server, tcp_echo_server, caplog):
    srv = socks_server(config="[server]\nmax_clients = 2\n")
    first = CoreClient(srv.address, 5)
    second = CoreClient(srv.address, 5)
    try:
        for client in (first, second):
            assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
        with socket.create_connection(srv.address, timeout=5) as third:
            third.sendall(b"\x05\x01\x00")
            assert_closed_by_server(third)
        assert "max_clients (2) reached" in caplog.text
    finally:
        first.close()
        second.close()
    srv.wait_records(2)
    assert_good_client_served(srv, tcp_echo_server)


def test_connect_denied_by_rule_reply_2(socks_server, tcp_echo_server):
    srv = socks_server(config=f'[[rules]]\naction = "deny"\nports = [{tcp_echo_server[1]}]\n'
                              '[[rules]]\naction = "allow"\n')
    with CoreClient(srv.address, 5) as client:
        assert client.request(CONNECT, *tcp_echo_server).code == 2
    with CoreClient(srv.address, 4) as client:
        assert client.request(CONNECT, *tcp_echo_server).code == 91


def test_a_name_cannot_get_around_an_ip_deny_rule(socks_server, tcp_echo_server):
    config = '[[rules]]\naction = "deny"\nto = ["127.0.0.1/32"]\n[[rules]]\naction = "allow"\n'
    srv = socks_server(config=config, hosts={"sneaky.test": "127.0.0.1"})
    with CoreClient(srv.address, 5) as client:
        assert client.request(CONNECT, "sneaky.test", tcp_echo_server[1]).code == 2
    record = srv.wait_records(1)[0]
    assert record["outcome"] == "not-allowed" and record["destination"] == "sneaky.test"


def test_session_log_line(socks_server, tcp_echo_server, caplog):
    caplog.set_level(logging.INFO, logger="socksify.server")
    srv = socks_server(users={"alice": "pw"})
    with CoreClient(srv.address, 5, user="alice", password="pw") as client:
        assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
        client.sock.sendall(b"abc")
        assert client.recv_exactly(3) == b"abc"
    srv.wait_records(1)
    host, port = tcp_echo_server
    lines = [r.getMessage() for r in caplog.records if " connect " in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("127.0.0.1:")
    assert f" user=alice connect {host}:{port} ok up=3 down=3 time=" in lines[0]


def test_200_concurrent_curl_downloads(socks_server, http_server, tmp_path, relay_toml):
    curl = require_peer("curl")
    srv = socks_server(config=relay_toml)
    size = 50_000
    expected = hashlib.sha256(http_server.body_for(f"/bytes/{size}")).hexdigest()
    args = [curl, "-sS", "--max-time", "60", "--parallel", "--parallel-max", "200",
            "-H", "Connection: close", "--proxy", srv.url("socks5h")]
    for i in range(200):
        args += ["-o", str(tmp_path / f"out{i}"), http_server.url(f"/bytes/{size}?n={i}")]
    http_server.files.update({f"/bytes/{size}?n={i}": pattern_bytes(size) for i in range(200)})
    result = subprocess.run(args, capture_output=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    for i in range(200):
        assert hashlib.sha256((tmp_path / f"out{i}").read_bytes()).hexdigest() == expected
    records = srv.wait_records(200)
    assert all(r["outcome"] == "ok" and r["bytes_down"] > size for r in records)


def test_64_mib_download_intact(socks_server, http_server, tmp_path, relay_toml):
    curl = require_peer("curl")
    size = 64 * 1024 * 1024
    body = pattern_bytes(size)
    http_server.files["/big"] = body
    srv = socks_server(config=relay_toml)
    out = tmp_path / "big"
    started = time.monotonic()
    result = subprocess.run(
        [curl, "-sS", "--max-time", "60", "--proxy", srv.url("socks5"), "-o", str(out),
         http_server.url("/big")],
        capture_output=True, timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(body).digest()
    print(f"64 MiB through the relay in {time.monotonic() - started:.2f}s")


def test_upload_and_download_at_once_with_back_pressure(socks_server, tcp_echo_server,
                                                        relay_toml):
    """8 MiB each way at the same time through the echo server (exercises pausing)."""
    import threading

    srv = socks_server(config=relay_toml)
    payload = pattern_bytes(8 * 1024 * 1024)
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
        sender = threading.Thread(
            target=lambda: (client.sock.sendall(payload), client.sock.shutdown(socket.SHUT_WR))
        )
        sender.start()
        echoed = client.conn.trailing_data + read_all(client.sock, timeout=30)
        sender.join(30)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


def test_connect_then_close_without_data(socks_server, tcp_echo_server, relay_toml):
    srv = socks_server(config=relay_toml)
    for _ in range(3):
        with CoreClient(srv.address, 5) as client:
            assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
            client.sock.shutdown(socket.SHUT_WR)
            assert read_all(client.sock) == b""  # the echo server's EOF came back
    records = srv.wait_records(3)
    assert all((r["outcome"], r["bytes_up"], r["bytes_down"]) == ("ok", 0, 0) for r in records)


def _reset(sock):
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_reset_is_passed_on_as_a_reset(socks_server, relay_toml):
    """Target sends a line then resets: the client reads the line, then ECONNRESET; and a
    client reset reaches the target as a reset."""
    srv = socks_server(config=relay_toml)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        target = ("127.0.0.1", listener.getsockname()[1])
        # target -> client
        with CoreClient(srv.address, 5) as client:
            assert client.succeeded(client.request(CONNECT, *target))
            accepted, _ = listener.accept()
            accepted.sendall(b"hello\n")
            assert client.recv_exactly(6) == b"hello\n"
            _reset(accepted)
            client.sock.settimeout(10)
            with pytest.raises(ConnectionResetError):
                while client.sock.recv(100):
                    pass
        # client -> target
        client = CoreClient(srv.address, 5)
        assert client.succeeded(client.request(CONNECT, *target))
        accepted, _ = listener.accept()
        with accepted:
            _reset(client.sock)
            accepted.settimeout(10)
            with pytest.raises(ConnectionResetError):
                while accepted.recv(100):
                    pass
