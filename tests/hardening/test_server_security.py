"""Security defaults of the reference server, checked from outside like an attacker would.

- No open proxy by default: a non-loopback listener without users is refused (exit 2).
- Access rules hold for every spelling of a denied address: IPv4-mapped IPv6, host names
  that resolve to it (system resolver, inet_aton forms, the [hosts] map), SOCKS4a names,
  and the unspecified address (a connect to 0.0.0.0 or :: reaches this host).
- Failed logins are logged with the client's address and port, never with a password, and
  nothing a client sends can forge a log line.
- A config file holding plain-text passwords that others can read draws a warning.

Constant-time credential checks are not timed here (no timing assertions in this suite);
tests/server/test_auth.py checks that an unknown user costs the same scrypt work and that
the comparison is hmac.compare_digest.
"""

import socket
import struct
import subprocess
import sys
import threading

import pytest
from _hardening_support import ServerProcess, server_env, socks5_connect

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    Command,
    Connection,
    Greeting,
    Request,
    Role,
    UdpDatagram,
    encode_udp_datagram,
)

pytestmark = pytest.mark.e2e

DENY_LOOPBACK = """
[hosts]
"alias.test" = "127.0.0.1"

[[rules]]
action = "deny"
to = ["127.0.0.0/8", "::1"]

[[rules]]
action = "allow"
"""


# --- no open proxy by default ---------------------------------------------------------------


def _server_cli(*args, config_text=None, tmp_path=None, timeout=20):
    argv = [sys.executable, "-m", "socksify.server", *args]
    if config_text is not None:
        path = tmp_path / "server.toml"
        path.write_text(config_text)
        path.chmod(0o600)
        argv += ["--config", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=server_env())


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0:0", "[::]:0", "[::ffff:0.0.0.0]:0", "0:0", "127.0.0.1.nip.io:0"],
)
def test_non_loopback_listener_without_auth_is_refused(listen):
    proc = _server_cli("--listen", listen)
    assert proc.returncode == 2, proc.stderr
    assert "open proxy" in proc.stderr and "Traceback" not in proc.stderr


def test_non_loopback_listener_from_config_file_is_refused(tmp_path):
    proc = _server_cli(config_text='[server]\nlisten = ["127.0.0.1:0", "0.0.0.0:0"]\n',
                       tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "open proxy" in proc.stderr and "Traceback" not in proc.stderr


# --- access rules vs. every spelling of a denied address ------------------------------------


class CountingListener:
    """A TCP listener that counts the connections it accepts (it should get none)."""

    def __init__(self, host):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, 0), family=family)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listeners():
    pair = {"v4": CountingListener("127.0.0.1"), "v6": CountingListener("::1")}
    yield pair
    for listener in pair.values():
        listener.close()


def _socks5_request(proxy, address: Address, port: int) -> int:
    """One SOCKS5 CONNECT with a raw Address (any type); returns the reply code."""
    conn = Connection(Role.CLIENT, 5)
    with socket.create_connection(proxy, timeout=10) as sock:
        sock.sendall(conn.send(Greeting((AuthMethod.NO_AUTH,))))
        sock.sendall(conn.send(Request(Command.CONNECT, address, port)))
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(sock.recv(4096))
            elif hasattr(event, "code"):
                return event.code


@pytest.mark.parametrize(
    ("address", "family"),
    [
        (Address.ipv4("127.0.0.1"), "v4"),
        (Address.ipv4("127.0.0.2"), "v4"),
        (Address.ipv6("::ffff:127.0.0.1"), "v4"),
        (Address.ipv6("::1"), "v6"),
        (Address.domain("localhost"), "v4"),
        (Address.domain("127.1"), "v4"),
        (Address.domain("0x7f.1"), "v4"),
        (Address.domain("2130706433"), "v4"),
        (Address.domain("0177.0.0.1"), "v4"),
        (Address.domain("alias.test"), "v4"),
        (Address.domain("ALIAS.test."), "v4"),
        # A connect to the unspecified address reaches this host (fixed: judged as loopback).
        (Address.ipv4("0.0.0.0"), "v4"),
        (Address.ipv6("::ffff:0.0.0.0"), "v4"),
        (Address.ipv6("::"), "v6"),
        (Address.domain("0"), "v4"),
        (Address.domain("0.0.0.0"), "v4"),
    ],
    ids=str,
)
def test_deny_rule_holds_for_every_spelling(socks_server, listeners, address, family):
    srv = socks_server(config=DENY_LOOPBACK)
    target = listeners[family]
    code = _socks5_request(srv.address, address, target.port)
    [record] = srv.wait_records(1)
    assert target.accepted == 0, f"{address} reached the denied listener (reply {code})"
    assert code == 2 and record["outcome"] == "not-allowed", (code, record["outcome"])


def test_deny_rule_holds_for_socks4a_names(socks_server, listeners):
    srv = socks_server(config=DENY_LOOPBACK)
    with socket.create_connection(srv.address, timeout=10) as sock:
        port = listeners["v4"].port
        sock.sendall(struct.pack("!BBH", 4, 1, port) + b"\0\0\0\x01" + b"id\0localhost\0")
        reply = sock.recv(8)
    assert reply[1] == 91
    assert listeners["v4"].accepted == 0
    assert srv.wait_records(1)[0]["outcome"] == "not-allowed"


@pytest.mark.parametrize(
    ("host", "denied"),
    [("127.0.0.1", False),  # the control: without the rule the datagram arrives
     ("127.0.0.1", True), ("::ffff:127.0.0.1", True),
     ("0.0.0.0", True)],
)
def test_deny_rule_holds_for_udp_datagrams(socks_server, host, denied):
    """A datagram to a denied address is dropped by the relay, whatever its spelling."""
    srv = socks_server(config=DENY_LOOPBACK if denied else "")
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    # The control's datagram must come: a generous bound (a loaded machine) that only costs
    # time when it fails. A denied one must not: nothing marks its drop, so that check is a
    # window after the send.
    target.settimeout(2.0 if denied else 30.0)
    conn = Connection(Role.CLIENT, 5)
    with target, socket.create_connection(srv.address, timeout=10) as control, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        control.sendall(conn.send(Greeting((AuthMethod.NO_AUTH,))))
        control.sendall(conn.send(Request(Command.UDP_ASSOCIATE, Address.ipv4("127.0.0.1"),
                                          udp.getsockname()[1])))
        reply = None
        while reply is None:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(control.recv(4096))
            elif hasattr(event, "code"):
                reply = event
        assert reply.code == 0
        relay = (reply.address.host, reply.port)
        datagram = UdpDatagram(Address.from_host(host), target.getsockname()[1], b"leak?")
        udp.sendto(encode_udp_datagram(datagram), relay)
        try:
            leaked = target.recvfrom(100)
        except TimeoutError:
            leaked = None
    if denied:
        assert leaked is None, f"a datagram to {host} reached the denied target"
    else:
        assert leaked is not None and leaked[0].endswith(b"leak?")


# --- logging ---------------------------------------------------------------------------------


def test_failed_login_logged_with_client_address_without_password(tmp_path):
    server = ServerProcess(tmp_path, "", args=["--user", "alice:right-pw-7f3a"]).start()
    try:
        sock = socket.create_connection(server.address, timeout=10)
        with sock:
            client_port = sock.getsockname()[1]
            sock.sendall(b"\x05\x01\x02")
            assert sock.recv(2) == b"\x05\x02"
            sock.sendall(b"\x01\x05alice\x0ewrong-pw-91c2d")
            assert sock.recv(2) == b"\x01\x01"  # RFC 1929 §2: non-zero STATUS is failure
        ok, reply = socks5_connect(server.address, ("127.0.0.1", 9), user="alice",
                                   password="right-pw-7f3a")
        ok.close()
        server.stop()
        log = server.log()
        lines = [ln for ln in log.splitlines() if "failed login" in ln]
        assert len(lines) == 1, log
        assert f"127.0.0.1:{client_port}" in lines[0] and "alice" in lines[0]
        assert "wrong-pw-91c2d" not in log and "right-pw-7f3a" not in log
    finally:
        server.stop()


def test_socks4_userid_cannot_forge_log_lines(tmp_path, listeners):
    server = ServerProcess(tmp_path, "").start()
    try:
        with socket.create_connection(server.address, timeout=10) as sock:
            userid = b"mallory\nsocksify-server: FORGED admin logged in"
            sock.sendall(struct.pack("!BBH", 4, 1, listeners["v4"].port)
                         + b"\x7f\0\0\x01" + userid + b"\0")
            assert sock.recv(8)[1] == 90
        server.stop()
        lines = server.log().splitlines()
        assert not any(ln.startswith("socksify-server: FORGED") for ln in lines), lines
    finally:
        server.stop()


def test_failed_login_user_name_cannot_forge_log_lines(tmp_path):
    server = ServerProcess(tmp_path, "", args=["--user", "alice:pw"]).start()
    try:
        with socket.create_connection(server.address, timeout=10) as sock:
            name = b"x\nsocksify-server: FORGED"
            sock.sendall(b"\x05\x01\x02")
            assert sock.recv(2) == b"\x05\x02"
            sock.sendall(b"\x01" + bytes([len(name)]) + name + b"\x01p")
            assert sock.recv(2) == b"\x01\x01"
        server.stop()
        log = server.log()
        assert "failed login" in log
        assert not any(ln.startswith("socksify-server: FORGED") for ln in log.splitlines()), log
    finally:
        server.stop()


# --- plain-text passwords in a readable config file -----------------------------------------


@pytest.mark.parametrize(
    ("users", "mode", "warned"),
    [
        ('alice = "plain"', 0o644, True),
        ('alice = "plain"', 0o640, True),
        ('alice = "plain"', 0o600, False),
        ('alice = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$'
         'ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g="', 0o644, False),
    ],
)
def test_readable_plaintext_password_config_warns(tmp_path, users, mode, warned):
    server = ServerProcess(tmp_path, f"[users]\n{users}\n")  # written 0600 ...
    server.config_path.chmod(mode)  # ... then given the mode under test
    server.start()
    try:
        log = server.log()
    finally:
        assert server.stop() == 0
    assert ("readable by group/others" in log) is warned, log
    assert "plain\n" not in log and "scrypt$" not in log


# --- credentials ----------------------------------------------------------------------------


def _login(address, user: bytes, password: bytes) -> bool:
    """One RFC 1929 username/password exchange; True when the server says success."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"\x05\x01\x02")
        assert sock.recv(2) == b"\x05\x02"
        sock.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
        status = sock.recv(2)
    assert status[:1] == b"\x01"
    return status[1:] == b"\x00"


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        (b"", True),
        (b"\0" * 32, False),
        (b"x", False),
    ],
    ids=["empty", "32-nuls", "other"],
)
def test_user_with_an_empty_password(tmp_path, password, accepted):
    server = ServerProcess(tmp_path, "", args=["--user", "alice:"]).start()
    try:
        assert _login(server.address, b"alice", password) is accepted
        assert _login(server.address, b"mallory", b"\0" * 32) is False
    finally:
        assert server.stop() == 0
