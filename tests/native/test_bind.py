"""SOCKS BIND in the native shim (csrc/bind.c): listening sockets served by the proxy.

The rule under test (SPEC, bind.h ``sfy_listen_rule``): a TCP socket bound to port 0 (or
listening unbound) becomes a SOCKS BIND once the process has a proxied connection, whose
destination is the expected peer; a socket bound to an explicit port, or any listener before
the first proxied connection, stays local.
"""

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import ftp as _ftp
from support.peers import require_peer
from support.targets import pattern_bytes

ftp_server = _ftp.ftp_server

PROGS = Path(__file__).parent / "progs"
CSRC = Path(__file__).resolve().parents[2] / "csrc"
TIMEOUT = 60


def shim_run(shim, proxy: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run argv under ``socksify-run --proxy proxy`` (bounded, clean environment)."""
    return shim.run_cli(["--proxy", proxy, "--", *argv])


@pytest.fixture(scope="module")
def bind_client(build_c):
    return build_c(PROGS / "bind_client.c", "-O2", "-Wall")


class ControlServer:
    """The "remote server" of bind_client: told an address on the control connection, it
    connects there (directly: it is not under the shim) and sends ``payload``."""

    def __init__(self, payload: bytes, host: str = "127.0.0.1"):
        self.payload = payload
        self.target = None  # the address bind_client announced
        self.data_local = None  # our end of the data connection (what the proxy saw)
        self.error = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.listener.settimeout(15)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(15)
                words = conn.makefile("rb").readline().split()
                assert words[0] == b"CONNECT-TO", words
                self.target = (words[1].decode(), int(words[2]))
                with socket.create_connection(self.target, timeout=15) as data:
                    self.data_local = data.getsockname()[:2]
                    data.sendall(self.payload)
                conn.recv(1)  # until bind_client closes the control connection
        except Exception as exc:  # reported by the test through .error
            self.error = exc
        finally:
            self.listener.close()

    def join(self):
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "control server did not finish"


def parse_lines(stderr: bytes) -> dict[str, tuple[str, int]]:
    found = {}
    for match in re.finditer(rb"^(listening|peer|accepted) (\S+) (\d+)$", stderr, re.M):
        found[match.group(1).decode()] = (match.group(2).decode(), int(match.group(3)))
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["blocking", "nonblocking", "epoll", "nobind"])
def test_bind_client_through_reference_server(shim, socks_server, bind_client, mode):
    srv = socks_server()
    payload = pattern_bytes(200_000)
    control = ControlServer(payload)
    result = shim_run(shim, srv.url("socks5"), [bind_client, "127.0.0.1", str(control.port), mode])
    control.join()
    assert result.returncode == 0, result.stderr.decode()
    assert control.error is None
    assert result.stdout == payload
    lines = parse_lines(result.stderr)
    # getsockname() on the listening socket named the proxy's BIND listener...
    assert lines["listening"] == control.target
    # ...and getpeername() on the accepted socket the peer the proxy accepted
    assert lines["peer"] == control.data_local
    records = srv.wait_records(2)
    binds = [r for r in records if r["command"] == "bind"]
    assert len(binds) == 1 and binds[0]["outcome"] == "ok"
    # the expected peer is the primary connection's destination (the server shows the peer
    # that came as "EXPECTED<-ACTUAL")
    assert binds[0]["destination"].split("<-")[0] == "127.0.0.1"
    assert binds[0]["port"] == control.port
    assert binds[0]["bytes_down"] == len(payload)


@pytest.mark.e2e
def test_bind_socks4(shim, socks_server, bind_client):
    srv = socks_server()
    control = ControlServer(b"over socks4 bind\n")
    result = shim_run(shim, srv.url("socks4"), [bind_client, "127.0.0.1", str(control.port)])
    control.join()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"over socks4 bind\n"
    records = srv.wait_records(2)
    assert [r["version"] for r in records if r["command"] == "bind"] == [4]


@pytest.mark.e2e
def test_bind_through_danted(shim, danted, bind_client):
    proxy = danted(allow_bind=True)
    control = ControlServer(b"through dante\n" * 1000)
    result = shim_run(shim, proxy.url("socks5"), [bind_client, "127.0.0.1", str(control.port)])
    control.join()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"through dante\n" * 1000


DENY_BIND = """
[[rules]]
action = "deny"
commands = ["bind"]

[[rules]]
action = "allow"
"""


@pytest.mark.e2e
def test_bind_refused_fails_closed(shim, socks_server, bind_client):
    """A proxy whose rules refuse BIND: bind() fails with SPEC's errno, nothing listens
    locally, and the remote server is never told an address."""
    srv = socks_server(config=DENY_BIND)
    control = ControlServer(b"never sent")
    result = shim_run(shim, srv.url("socks5"), [bind_client, "127.0.0.1", str(control.port)])
    assert result.returncode == 3, result.stderr.decode()
    assert b"FAIL bind errno=13" in result.stderr  # EACCES: not allowed by ruleset
    control.join()
    assert control.target is None


# -- curl, wget and Python's ftplib in active mode ------------------------------------------


def assert_active_through_proxy(ftp, records, socks_host: str):
    transfer = ftp.transfers[-1]
    assert transfer["mode"] == "active"
    # the FTP server was sent to the proxy's BIND listener, not to the client
    assert transfer["target"][0] == socks_host
    binds = [r for r in records if r["command"] == "bind"]
    assert binds and all(r["outcome"] == "ok" for r in binds)


@pytest.mark.e2e
@pytest.mark.parametrize("extra", [[], ["--disable-eprt"]], ids=["EPRT", "PORT"])
def test_curl_active_ftp(shim, socks_server, ftp_server, extra):
    curl = require_peer("curl")
    srv = socks_server()
    result = shim_run(
        shim,
        srv.url("socks5h"),
        [
            curl,
            "-sS",
            "--max-time",
            "20",
            "--ftp-port",
            "-",
            *extra,
            ftp_server.url("/pattern.bin"),
        ],
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == ftp_server.files["/pattern.bin"]
    assert_active_through_proxy(ftp_server, srv.wait_records(2), srv.host)


@pytest.mark.e2e
def test_curl_active_ftp_through_danted(shim, danted, ftp_server):
    curl = require_peer("curl")
    proxy = danted(allow_bind=True)
    result = shim_run(
        shim,
        proxy.url("socks5"),
        [curl, "-sS", "--max-time", "20", "--ftp-port", "-", ftp_server.url("/hello.txt")],
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == ftp_server.files["/hello.txt"]
    assert ftp_server.transfers[-1]["mode"] == "active"


@pytest.mark.e2e
def test_wget_active_ftp(shim, socks_server, ftp_server):
    wget = require_peer("wget")
    srv = socks_server()
    result = shim_run(
        shim,
        srv.url("socks5h"),
        [
            wget,
            "-q",
            "-O",
            "-",
            "-T",
            "20",
            "--tries=1",
            "--no-passive-ftp",
            ftp_server.url("/pattern.bin"),
        ],
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == ftp_server.files["/pattern.bin"]
    assert_active_through_proxy(ftp_server, srv.wait_records(2), srv.host)


@pytest.mark.e2e
def test_python_ftplib_active_under_preload(shim, socks_server, ftp_server):
    srv = socks_server()
    script = (
        "import ftplib, sys\n"
        "f = ftplib.FTP()\n"
        f"f.connect('127.0.0.1', {ftp_server.port}, timeout=20)\n"
        "f.login()\n"
        "f.set_pasv(False)\n"
        "print(','.join(f.nlst()))\n"
        "f.quit()\n"
    )
    result = shim_run(shim, srv.url("socks5"), [sys.executable, "-c", script])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "hello.txt,pattern.bin"
    assert_active_through_proxy(ftp_server, srv.wait_records(2), srv.host)


# -- what stays local -------------------------------------------------------------------------

LOCAL_SERVER = """
import socket, sys
primary = socket.create_connection(("127.0.0.1", {echo_port}), timeout=20)  # proxied
primary.sendall(b"x"); assert primary.recv(1) == b"x"
server = socket.socket()
server.bind(("127.0.0.1", {port}))
server.listen(1)
print("ready", server.getsockname()[1], flush=True)
server.settimeout(20)
conn, peer = server.accept()
conn.sendall(b"local server, peer %s\\n" % peer[0].encode())
conn.close()
"""


def run_local_server(shim, srv, code: str):
    """Start ``code`` under the shim; return (process, the port it printed), or None when
    the explicit port it was given has been taken by another socket since it was picked."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=shim.env(srv.url("socks5")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    line = proc.stdout.readline()  # bounded: the script connects with a 20 s timeout
    words = line.split()
    if not words or words[0] != b"ready":
        proc.kill()
        out, err = proc.communicate(timeout=TIMEOUT)
        if b"Address already in use" in err:
            return None
        pytest.fail(f"local server did not start: {line!r} {err.decode()}")
    return proc, int(words[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.e2e
@pytest.mark.parametrize("explicit_port", [True, False], ids=["explicit-port", "before-primary"])
def test_local_listener_is_not_hijacked(shim, socks_server, tcp_echo_server, explicit_port):
    """A server of the program's own (explicit port) stays local even after a proxied
    connection; a port-0 listener before any proxied connection stays local too."""
    srv = socks_server()
    if explicit_port:
        # picked free here, bound later by the program: another socket may take it between
        # the two, so try again on a new port (bounded)
        codes = (LOCAL_SERVER.format(echo_port=tcp_echo_server[1], port=free_port())
                 for _attempt in range(5))
    else:
        codes = [(
            "import socket\n"
            "server = socket.create_server(('127.0.0.1', 0))\n"
            "print('ready', server.getsockname()[1], flush=True)\n"
            "server.settimeout(20)\n"
            "conn, peer = server.accept()\n"
            "conn.sendall(b'local server, peer %s\\n' % peer[0].encode())\n"
        )]
    started = None
    for code in codes:
        started = run_local_server(shim, srv, code)
        if started:
            break
    assert started, "every explicit port picked was taken before the program bound it"
    proc, port = started
    try:
        # the test process is not under the shim: a direct connection must reach it
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.settimeout(10)
            assert client.recv(100) == b"local server, peer 127.0.0.1\n"
        assert proc.wait(timeout=TIMEOUT) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)
    assert not [r for r in srv.records if r["command"] == "bind"]


# -- the rule as a pure function -------------------------------------------------------------


@pytest.fixture(scope="module")
def listen_rule(build_c):
    """sfy_listen_rule() from csrc/bind.h, compiled into a tiny program (progs/listen_rule.c)."""
    out = build_c(PROGS / "listen_rule.c", "-Wall", "-I", str(CSRC))

    def rule(*args: int) -> str:
        result = subprocess.run(
            # int() first: before 3.11, str() of an IntEnum is its name, not its number
            [str(out), *(str(int(a)) for a in args)],
            capture_output=True, check=True, timeout=TIMEOUT,
        )
        return result.stdout.decode().strip()

    return rule


BIND, LOCAL = "bind", "local"


@pytest.mark.parametrize(
    "family, socktype, port, have_peer, peer_proxied, expected",
    [
        (socket.AF_INET, socket.SOCK_STREAM, 0, 1, 1, BIND),
        (socket.AF_INET6, socket.SOCK_STREAM, 0, 1, 1, BIND),
        (socket.AF_INET, socket.SOCK_STREAM, 8021, 1, 1, LOCAL),  # explicit port
        (socket.AF_INET, socket.SOCK_STREAM, 0, 0, 0, LOCAL),  # no primary connection
        (socket.AF_INET, socket.SOCK_STREAM, 0, 1, 0, LOCAL),  # peer bypasses the proxy
        (socket.AF_INET, socket.SOCK_DGRAM, 0, 1, 1, LOCAL),  # UDP: not BIND
        (socket.AF_UNIX, socket.SOCK_STREAM, 0, 1, 1, LOCAL),
    ],
)
def test_listen_rule(listen_rule, family, socktype, port, have_peer, peer_proxied, expected):
    assert listen_rule(family, socktype, port, have_peer, peer_proxied) == expected


COUNT_SOCKETS = """
def sockets():
    count = 0
    for fd in os.listdir('/proc/self/fd'):
        try:
            count += os.readlink(f'/proc/self/fd/{fd}').startswith('socket:')
        except OSError:  # the fd listdir itself used
            pass
    return count
"""


@pytest.mark.e2e
def test_bind_before_connect_abandons_bind(shim, socks_server, tcp_echo_server):
    """bind(port 0) then connect() (curl --interface does this after a first connection):
    the connection works and the BIND that bind() started is dropped, its control
    connection closed rather than leaked."""
    srv = socks_server()
    port = tcp_echo_server[1]
    code = (
        "import os, socket\n"
        + COUNT_SOCKETS
        + f"primary = socket.create_connection(('127.0.0.1', {port}), timeout=20)\n"
        "s = socket.socket()\n"
        "s.bind(('127.0.0.1', 0))\n"
        "during = sockets()\n"
        f"s.connect(('127.0.0.1', {port}))\n"
        "s.sendall(b'via bound socket')\n"
        "s.settimeout(20)\n"
        "print(s.recv(100).decode(), during, sockets())\n"
    )
    result = shim.run([sys.executable, "-c", code], srv.url("socks5"))
    assert result.returncode == 0, result.stderr.decode()
    # primary + s + the BIND control connection, then primary + s only
    assert result.stdout.decode().split() == ["via", "bound", "socket", "3", "2"]


@pytest.mark.e2e
def test_bind_chain_and_auth(shim, socks_server, bind_client):
    """BIND at the last hop of a two-hop chain whose hops want a username and password."""
    first = socks_server(users={"alice": "s3cret"})
    last = socks_server(users={"bob": "pa:ss"})
    chain = f"{first.url('socks5', 'alice', 's3cret')},{last.url('socks5', 'bob', 'pa:ss')}"
    control = ControlServer(b"through a chain\n")
    result = shim_run(shim, chain, [bind_client, "127.0.0.1", str(control.port)])
    control.join()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"through a chain\n"
    binds = [r for r in last.wait_records(2) if r["command"] == "bind"]
    assert len(binds) == 1 and binds[0]["user"] == "bob"


@pytest.mark.e2e
def test_bind_after_a_connection_by_name(shim, socks_server, bind_client):
    """The primary connection went to a name only the proxy knows (socks5h): the BIND
    request names the same host, and the proxy resolves it to check the peer."""
    srv = socks_server(hosts={"ctrl.only-proxy.test": "127.0.0.1"})
    control = ControlServer(b"expected peer by name\n")
    result = shim_run(
        shim, srv.url("socks5h"), [bind_client, "ctrl.only-proxy.test", str(control.port)]
    )
    control.join()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"expected peer by name\n"
    binds = [r for r in srv.wait_records(2) if r["command"] == "bind"]
    assert binds[0]["destination"].split("<-")[0] == "ctrl.only-proxy.test"


@pytest.mark.e2e
def test_bind_ipv6(shim, socks_server, bind_client):
    """All IPv6: proxy on ::1, primary connection to ::1, the BIND listener on ::1."""
    if not socket.has_ipv6:
        pytest.skip("MISSING: this machine has no IPv6 loopback")
    srv = socks_server(listen="[::1]:0")
    control = ControlServer(b"over ipv6\n", host="::1")
    result = shim_run(shim, srv.url("socks5"), [bind_client, "::1", str(control.port)])
    control.join()
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"over ipv6\n"
    lines = parse_lines(result.stderr)
    assert lines["listening"] == control.target
    assert control.target[0] == "::1"
    assert lines["peer"] == control.data_local
