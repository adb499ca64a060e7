"""socksify.client: the blocking client and create_connection against real proxies.

These tests do not patch anything, so the reference server can run in this process.
"""

import errno
import socket
import threading

import pytest
from support.targets import pattern_bytes

import socksify
from socksify import client
from socksify.errors import (
    ProxyAuthError,
    ProxyError,
    ProxyProtocolError,
    ProxyRefusedError,
    ProxyUnreachableError,
)

pytestmark = pytest.mark.e2e


def echo_roundtrip(sock, size=100_000):
    payload = pattern_bytes(size)
    received = bytearray()

    def reader():
        while len(received) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    sock.sendall(payload)
    thread.join(timeout=20)
    assert bytes(received) == payload


@pytest.mark.parametrize("scheme", ["socks4", "socks4a", "socks5", "socks5h"])
def test_all_schemes_reach_an_echo_server(socks_server, tcp_echo_server, scheme):
    srv = socks_server()
    with socksify.create_connection(tcp_echo_server, proxy=srv.url(scheme), timeout=10) as s:
        echo_roundtrip(s)
    record = srv.wait_records(1)[0]
    assert record["command"] == "connect"
    assert record["destination"] == "127.0.0.1"
    assert record["port"] == tcp_echo_server[1]


@pytest.mark.parametrize("scheme", ["socks4a", "socks5h"])
def test_remote_dns_schemes_send_the_name(socks_server, tcp_echo_server, scheme):
    srv = socks_server(hosts={"only-proxy.test": "127.0.0.1"})
    address = ("only-proxy.test", tcp_echo_server[1])
    with socksify.create_connection(address, proxy=srv.url(scheme), timeout=10) as s:
        echo_roundtrip(s, 1000)
    assert srv.wait_records(1)[0]["destination"] == "only-proxy.test"


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
def test_local_dns_schemes_resolve_here(socks_server, tcp_echo_server, scheme):
    srv = socks_server()
    address = ("localhost", tcp_echo_server[1])
    with socksify.create_connection(address, proxy=srv.url(scheme), timeout=10) as s:
        echo_roundtrip(s, 1000)
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


def test_ipv6_target(socks_server, tcp_echo_server6):
    srv = socks_server()
    with socksify.create_connection(tcp_echo_server6, proxy=srv.url("socks5"), timeout=10) as s:
        echo_roundtrip(s, 5000)
    assert srv.wait_records(1)[0]["destination"] == "::1"


def test_proxy_on_ipv6(socks_server, tcp_echo_server):
    srv = socks_server(listen="[::1]:0")
    assert srv.url("socks5").startswith("socks5://[::1]:")
    with socksify.create_connection(tcp_echo_server, proxy=srv.url("socks5"), timeout=10) as s:
        echo_roundtrip(s, 5000)


def test_timeout_none_is_a_blocking_socket_like_the_stdlib(socks_server, tcp_echo_server):
    srv = socks_server()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        with socksify.create_connection(
            tcp_echo_server, proxy=srv.url("socks5"), timeout=None
        ) as s:
            assert s.gettimeout() is None
            echo_roundtrip(s, 1000)
    finally:
        socket.setdefaulttimeout(previous)


def test_username_password(socks_server, tcp_echo_server):
    srv = socks_server(users={"alice": "s3cr:et@"})
    url = srv.url("socks5", "alice", "s3cr:et@")
    with socksify.create_connection(tcp_echo_server, proxy=url, timeout=10) as s:
        echo_roundtrip(s, 1000)
    assert srv.wait_records(1)[0]["user"] == "alice"


def test_bad_credentials(socks_server, tcp_echo_server):
    srv = socks_server(users={"alice": "right"})
    with pytest.raises(ProxyAuthError) as info:
        socksify.create_connection(
            tcp_echo_server, proxy=srv.url("socks5", "alice", "wrong"), timeout=10
        )
    assert isinstance(info.value, PermissionError)
    assert info.value.errno == errno.EACCES
    assert "wrong" not in str(info.value)


def test_credentials_missing(socks_server, tcp_echo_server):
    srv = socks_server(users={"alice": "right"})
    with pytest.raises(ProxyAuthError, match="none of our authentication methods"):
        socksify.create_connection(tcp_echo_server, proxy=srv.url("socks5"), timeout=10)


def test_dead_proxy_is_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connect is refused
        with pytest.raises(ProxyUnreachableError) as info:
            socksify.create_connection(
                ("127.0.0.1", 80), proxy=f"socks5://127.0.0.1:{port}", timeout=20
            )
    assert isinstance(info.value, ConnectionRefusedError)
    assert info.value.errno == errno.ECONNREFUSED
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_refused_by_rule(socks_server, tcp_echo_server):
    config = f"""
[[rules]]
action = "deny"
ports = [{tcp_echo_server[1]}]
[[rules]]
action = "allow"
"""
    srv = socks_server(config=config)
    with pytest.raises(ProxyRefusedError) as info:
        socksify.create_connection(tcp_echo_server, proxy=srv.url("socks5"), timeout=10)
    assert info.value.reply_code == 2
    assert isinstance(info.value, PermissionError)
    with pytest.raises(ProxyRefusedError) as info4:
        socksify.create_connection(tcp_echo_server, proxy=srv.url("socks4"), timeout=10)
    assert info4.value.reply_code == 91
    assert isinstance(info4.value, ConnectionRefusedError)


def test_destination_refused_is_reply_5(socks_server):
    srv = socks_server()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        with pytest.raises(ProxyRefusedError) as info:
            socksify.create_connection(("127.0.0.1", port), proxy=srv.url("socks5"), timeout=10)
    assert info.value.reply_code == 5
    assert isinstance(info.value, ConnectionRefusedError)


def test_chain_of_two_servers(socks_server, tcp_echo_server):
    near = socks_server()
    far = socks_server(users={"bob": "pw"}, hosts={"only-far.test": "127.0.0.1"})
    chain = f"{near.url('socks4')},{far.url('socks5h', 'bob', 'pw')}"
    address = ("only-far.test", tcp_echo_server[1])
    with socksify.create_connection(address, proxy=chain, timeout=10) as s:
        echo_roundtrip(s, 20_000)
    assert near.wait_records(1)[0]["port"] == far.port
    far_record = far.wait_records(1)[0]
    assert far_record["destination"] == "only-far.test"
    assert far_record["user"] == "bob"


def test_chain_with_unreachable_second_hop(socks_server):
    near = socks_server()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
        with pytest.raises(ProxyRefusedError) as info:
            socksify.create_connection(
                ("127.0.0.1", 9),
                timeout=10,
                proxy=f"{near.url('socks5')},socks5://127.0.0.1:{dead}",
            )
    assert info.value.reply_code == 5  # "shows as the previous hop's reply" (SPEC)


def _fake_proxy(script):
    """A one-connection fake proxy on loopback that runs ``script(conn)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            script(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_protocol_violation_is_eproto():
    def garbage(conn):
        conn.recv(100)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    listener, thread = _fake_proxy(garbage)
    with listener:
        port = listener.getsockname()[1]
        with pytest.raises(ProxyProtocolError) as info:
            socksify.create_connection(
                ("127.0.0.1", 80), proxy=f"socks5://127.0.0.1:{port}", timeout=20
            )
    thread.join(20)
    assert info.value.errno == errno.EPROTO
    assert isinstance(info.value, ProxyError) and isinstance(info.value, OSError)
    assert info.value.__cause__ is not None


def test_silent_proxy_times_out():
    done = threading.Event()

    def silent(conn):
        conn.recv(100)
        done.wait(10)

    listener, thread = _fake_proxy(silent)
    with listener:
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            socksify.create_connection(
                ("127.0.0.1", 80), proxy=f"socks5://127.0.0.1:{port}", timeout=0.5
            )
    done.set()
    thread.join(20)


def test_early_data_after_the_reply_is_kept():
    """A proxy that sends its reply and the server's banner in ONE segment."""

    def eager(conn):
        assert conn.recv(3) == b"\x05\x01\x00"
        conn.sendall(b"\x05\x00")
        conn.recv(100)
        conn.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\xd2" + b"220 banner\r\n")
        conn.recv(100)

    listener, thread = _fake_proxy(eager)
    with listener:
        port = listener.getsockname()[1]
        with socksify.create_connection(
            ("127.0.0.1", 21), proxy=f"socks5://127.0.0.1:{port}", timeout=20
        ) as s:
            assert s.recv(100) == b"220 banner\r\n"
    thread.join(20)


def test_handshake_reports_bound_address(socks_server, tcp_echo_server):
    srv = socks_server()
    sock = socket.create_connection(srv.address, timeout=10)
    with sock:
        tunnel = client.handshake(
            sock, socksify.parse_proxy_url(srv.url("socks5")), *tcp_echo_server
        )
        assert tunnel.bound[0] == "127.0.0.1"
        assert tunnel.bound[1] > 0
        echo_roundtrip(sock, 100)


def test_microsocks_with_and_without_auth(microsocks, tcp_echo_server):
    plain = microsocks()
    with socksify.create_connection(tcp_echo_server, proxy=plain.url("socks5"), timeout=10) as s:
        echo_roundtrip(s, 10_000)
    authed = microsocks(users={"carol": "pw"})
    url = authed.url("socks5h", "carol", "pw")
    with socksify.create_connection(tcp_echo_server, proxy=url, timeout=10) as s:
        echo_roundtrip(s, 10_000)
    with pytest.raises(ProxyAuthError):
        socksify.create_connection(
            tcp_echo_server, proxy=authed.url("socks5", "carol", "no"), timeout=10
        )


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
def test_danted_connect(danted, tcp_echo_server, scheme):
    proxy = danted()
    with socksify.create_connection(tcp_echo_server, proxy=proxy.url(scheme), timeout=10) as s:
        echo_roundtrip(s, 10_000)


def test_danted_with_password(danted, tcp_echo_server):
    proxy = danted(users={"sfyshimu": "pw-1"})
    url = proxy.url("socks5", "sfyshimu", "pw-1")
    with socksify.create_connection(tcp_echo_server, proxy=url, timeout=10) as s:
        echo_roundtrip(s, 10_000)
    with pytest.raises(ProxyAuthError):
        socksify.create_connection(
            tcp_echo_server, proxy=proxy.url("socks5", "sfyshimu", "x"), timeout=10
        )
