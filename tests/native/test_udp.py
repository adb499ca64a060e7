"""UDP through SOCKS5 UDP ASSOCIATE in the native shim (csrc/udp.c).

udp_client.c exercises sendto/recvfrom, connected send/recv/write/read, sendmsg/recvmsg,
sendmmsg/recvmmsg, truncation, dup() and fcntl(F_DUPFD) against a UDP echo server; dig (libuv, raw
syscall(SYS_sendmmsg)) asks the test DNS server. Where UDP cannot be relayed (SOCKS4, a
chain) the program gets EPERM and nothing reaches the target.
"""

import contextlib
import errno
import socket
import socketserver
import subprocess
import sys
from pathlib import Path

import pytest
from support import dns as _dns
from support.peers import require_peer
from support.targets import UdpEchoHandler, serving

from .conftest import clean_env

dns_server = _dns.dns_server

PROGS = Path(__file__).parent / "progs"
TIMEOUT = 60
ALL_MODES = ["sendto", "connected", "msg", "mmsg", "trunc", "dup", "unspec", "fdup"]


@pytest.fixture(scope="module")
def udp_client(build_c):
    return build_c(PROGS / "udp_client.c", "-O2", "-Wall")


class CountingEcho:
    """A UDP echo server that also counts what reached it (and from where)."""

    def __init__(self, host: str = "127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sources: list[tuple] = []
        target = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                target.sources.append(self.client_address[:2])
                sock.sendto(data, self.client_address)

        class Server(socketserver.ThreadingUDPServer):
            address_family = family

        self.server = Server((host, 0), Handler)
        self.address = self.server.server_address[:2]


@pytest.fixture
def counting_echo():
    echo = CountingEcho()
    with serving(echo.server):
        yield echo


@pytest.fixture
def counting_echo6():
    if not socket.has_ipv6:
        pytest.skip("MISSING: this machine has no IPv6 loopback")
    echo = CountingEcho("::1")
    with serving(echo.server):
        yield echo


def run_client(shim, udp_client, proxy, address, modes=(), **extra):
    host, port = address
    return shim.run([udp_client, host, str(port), *modes], proxy, **extra)


def ok_lines(result) -> list[str]:
    return [line.split()[1] for line in result.stdout.decode().splitlines() if line]


def udp_records(srv) -> list[dict]:
    return [r for r in srv.records if r["command"] == "udp"]


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_udp_client_through_reference_server(shim, socks_server, udp_client, counting_echo, scheme):
    srv = socks_server()
    result = run_client(shim, udp_client, srv.url(scheme), counting_echo.address)
    assert result.returncode == 0, result.stderr.decode()
    assert ok_lines(result) == ALL_MODES
    records = srv.wait_records(len(ALL_MODES))
    assert all(r["outcome"] == "ok" and r["bytes_up"] > 0 for r in records)
    # one association per mode: a dup() or fcntl(F_DUPFD) copy shares its original's
    assert len(udp_records(srv)) == len(ALL_MODES)


@pytest.mark.e2e
def test_fcntl64_copy_keeps_the_association(shim, socks_server, build_c, counting_echo):
    """Built with _FILE_OFFSET_BITS=64, the program calls fcntl64 (glibc 2.28+), which the
    shim hooks too: the copy keeps the destination and the association."""
    lfs_client = build_c(PROGS / "udp_client.c", "-O2", "-Wall", "-D_FILE_OFFSET_BITS=64")
    imports = subprocess.run([require_peer("nm"), "-D", "--undefined-only", lfs_client],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    assert " fcntl64@" in imports, imports  # else this test would not test fcntl64
    srv = socks_server()
    result = run_client(shim, lfs_client, srv.url("socks5"), counting_echo.address, ["fdup"])
    assert result.returncode == 0, result.stderr.decode()
    assert ok_lines(result) == ["fdup"]
    [record] = srv.wait_records(1)
    assert (record["command"], record["outcome"]) == ("udp", "ok")
    assert record["bytes_up"] > 0 and len(counting_echo.sources) == 3


@pytest.mark.e2e
def test_udp_with_username_password(shim, socks_server, udp_client, counting_echo):
    srv = socks_server(users={"carol": "p@ss word"})
    proxy = srv.url("socks5", "carol", "p@ss word")
    result = run_client(shim, udp_client, proxy, counting_echo.address, ["sendto", "msg"])
    assert result.returncode == 0, result.stderr.decode()
    records = srv.wait_records(2)
    assert [r["user"] for r in records] == ["carol", "carol"]


@pytest.mark.e2e
def test_udp_ipv6_target(shim, socks_server, udp_client, counting_echo6):
    """An AF_INET6 socket talks to an IPv4 relay through a v4-mapped address."""
    srv = socks_server()
    result = run_client(
        shim, udp_client, srv.url("socks5"), counting_echo6.address, ["sendto", "connected", "msg"]
    )
    assert result.returncode == 0, result.stderr.decode()
    assert ok_lines(result) == ["sendto", "connected", "msg"]
    srv.wait_records(3)
    assert len(udp_records(srv)) == 3


@pytest.mark.e2e
def test_udp_client_through_danted(shim, danted, udp_client, counting_echo):
    proxy = danted(allow_udp=True)
    result = run_client(shim, udp_client, proxy.url("socks5"), counting_echo.address)
    assert result.returncode == 0, result.stderr.decode()
    assert ok_lines(result) == ALL_MODES


@pytest.mark.e2e
def test_udp_name_through_remote_dns(shim, socks_server, udp_client, counting_echo):
    """A name only the proxy knows: the datagram carries the name (ATYP 3), and the answer is
    reported as coming from the placeholder address the program sent to."""
    srv = socks_server(hosts={"udp-echo.test": "127.0.0.1"})
    address = ("udp-echo.test", counting_echo.address[1])
    result = run_client(
        shim, udp_client, srv.url("socks5h"), address, ["sendto", "connected", "msg"]
    )
    assert result.returncode == 0, result.stderr.decode()
    assert ok_lines(result) == ["sendto", "connected", "msg"]
    assert len(counting_echo.sources) >= 3


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["sendto", "connected"])
def test_udp_socks4_fails_closed(shim, socks_server, udp_client, counting_echo, mode):
    srv = socks_server()
    result = run_client(shim, udp_client, srv.url("socks4"), counting_echo.address, [mode])
    assert result.returncode == 3, result.stderr.decode()
    assert f"errno={errno.EPERM} ".encode() in result.stderr
    assert counting_echo.sources == []
    assert srv.records == []


@pytest.mark.e2e
def test_udp_chain_fails_closed(shim, socks_server, udp_client, counting_echo):
    first, second = socks_server(), socks_server()
    chain = f"{first.url('socks5')},{second.url('socks5')}"
    result = run_client(shim, udp_client, chain, counting_echo.address, ["sendto"])
    assert result.returncode == 3, result.stderr.decode()
    assert f"FAIL sendto sendto errno={errno.EPERM} ".encode() in result.stderr
    assert counting_echo.sources == []


@pytest.mark.e2e
def test_udp_bypass_goes_direct(shim, socks_server, udp_client, counting_echo):
    srv = socks_server()
    result = run_client(
        shim,
        udp_client,
        srv.url("socks5"),
        counting_echo.address,
        ["sendto", "connected"],
        SOCKSIFY_NO_PROXY="127.0.0.1",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert srv.records == []


@pytest.mark.e2e
def test_udp_proxy_unreachable(shim, udp_client, counting_echo):
    with socket.socket() as probe:  # bound, never listening (for the whole run): refused
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
        result = run_client(
            shim, udp_client, f"socks5://127.0.0.1:{dead}", counting_echo.address, ["sendto"]
        )
    assert result.returncode == 3
    assert f"errno={errno.ECONNREFUSED} ".encode() in result.stderr
    assert counting_echo.sources == []


# -- dig ---------------------------------------------------------------------------------------


def dig(shim, proxy, server, name="example.test", **extra):
    program = require_peer("dig")
    argv = [
        program,
        "+short",
        "+time=5",
        "+tries=1",
        f"@{server.host}",
        "-p",
        str(server.port),
        name,
    ]
    return shim.run(argv, proxy, **extra)


@pytest.mark.e2e
@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_dig_through_reference_server(shim, socks_server, dns_server, scheme):
    srv = socks_server()
    result = dig(shim, srv.url(scheme), dns_server)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["10.1.2.3"]
    assert [q[:2] for q in dns_server.queries] == [("example.test", 1)]
    srv.wait_records(1)
    assert len(udp_records(srv)) == 1


@pytest.mark.e2e
def test_dig_through_danted(shim, danted, dns_server):
    proxy = danted(allow_udp=True)
    result = dig(shim, proxy.url("socks5"), dns_server)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["10.1.2.3"]


@pytest.mark.e2e
def test_dig_socks4_fails_closed(shim, socks_server, dns_server):
    srv = socks_server()
    result = dig(shim, srv.url("socks4"), dns_server)
    assert result.returncode != 0
    assert dns_server.queries == []


@pytest.mark.e2e
def test_udp_association_ends_with_socket(shim, socks_server, counting_echo):
    """Closing the UDP socket closes the control connection: the server's session ends."""
    srv = socks_server()
    code = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.settimeout(10)\n"
        f"s.sendto(b'ping', ('127.0.0.1', {counting_echo.address[1]}))\n"
        "assert s.recvfrom(100) == (b'ping', ('127.0.0.1', %d))\n"
        % counting_echo.address[1]
        + "s.close()\n"
        "print('closed', flush=True)\n"
        "time.sleep(30)\n"  # the process lives on: only the close can end the association
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=shim.env(srv.url("socks5")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline() == b"closed\n", proc.stderr.read().decode()
        records = srv.wait_records(1)
        assert records[0]["command"] == "udp" and records[0]["outcome"] == "ok"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


@pytest.mark.e2e
def test_udp_threads_share_one_association(shim, socks_server, counting_echo):
    """Eight threads send their first datagrams on one socket at once: one association
    (the process holds two sockets: its UDP socket and one control connection)."""
    srv = socks_server()
    code = (
        "import os, socket, threading\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.settimeout(10)\n"
        "go = threading.Barrier(8)\n"
        "def send(i):\n"
        "    go.wait()\n"
        f"    s.sendto(b'thread %d' % i, ('127.0.0.1', {counting_echo.address[1]}))\n"
        "threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "got = sorted(s.recv(100) for _ in range(8))\n"
        "print(got == sorted(b'thread %d' % i for i in range(8)))\n"
        "links = []\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        links.append(os.readlink(f'/proc/self/fd/{fd}'))\n"
        "    except OSError:\n"
        "        pass\n"
        "print(sum(link.startswith('socket:') for link in links))\n"
    )
    result = shim.python(code, srv.url("socks5"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.split() == [b"True", b"2"]
    srv.wait_records(1)
    assert len(udp_records(srv)) == 1


#: sends to a name, then to an address with the same port; prints each reply's source
REPLY_SOURCES = """
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
for destination in ("far.test", "127.0.0.1", "far.test"):
    s.sendto(destination.encode(), (destination, port))
    data, source = s.recvfrom(100)
    print(data.decode(), source[0], source[1] == port)
"""


@pytest.mark.parametrize("which", ["native", "python"])
def test_a_reply_is_reported_from_where_it_came(shim, socks_server, tmp_path, which):
    """After a send to a name (remote DNS), answers from that port are reported under the
    name's placeholder; after a send to an address on the same port, its answer is reported
    from that address, not as the name's (SPEC: recvfrom reports the real remote address).
    The same script runs under both shims."""
    near = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UdpEchoHandler)
    port = near.server_address[1]
    far = socketserver.ThreadingUDPServer(("127.0.0.2", port), UdpEchoHandler)
    srv = socks_server(hosts={"far.test": "127.0.0.2"})
    script = tmp_path / "reply_sources.py"
    script.write_text(REPLY_SOURCES)
    with serving(near), serving(far):
        if which == "native":
            result = shim.run([sys.executable, str(script), str(port)], srv.url("socks5h"))
        else:
            result = subprocess.run(
                [sys.executable, "-m", "socksify", "--proxy", srv.url("socks5h"), str(script),
                 str(port)], env=clean_env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [
        "far.test 240.0.0.1 True", "127.0.0.1 127.0.0.1 True", "far.test 240.0.0.1 True"]
