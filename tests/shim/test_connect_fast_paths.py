"""The per-connect shortcuts of the Python shim keep the behaviour they replace.

- ``_Active.target`` remembers routing decisions that need no DNS; a placeholder given to
  another name (the range wrapped around) must not be routed to the old name, and an
  address of the range decided (and refused) before it was handed out must, once it is,
  be routed to its name.
- A handshake under a deadline on a socket with a timeout polls and reads the descriptor
  instead of narrowing the socket's timeout per call: the reply may come in pieces, bytes
  the destination sends right after the reply stay in the socket, the socket keeps its own
  timeout, and a proxy that stalls mid-handshake still ends in TimeoutError at the deadline.
"""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import socksify
from socksify.patch import install, uninstall
from socksify.proxy import load_settings

patch_module = sys.modules["socksify.patch"]  # socksify.patch is the function


@pytest.fixture(autouse=True)
def _always_unpatch():
    yield
    uninstall()


def test_route_memory_follows_a_placeholder_given_to_another_name():
    settings = load_settings(
        proxy="socks5h://127.0.0.1:9", environ={"SOCKSIFY_DNS_RANGE": "240.1.2.0/24"}
    )
    install(settings)
    active = patch_module._active
    first = socket.gethostbyname("first.example")
    assert active.target(socket.AF_INET, socket.SOCK_STREAM, first, 80)[0] == "first.example"
    assert active.target(socket.AF_INET, socket.SOCK_STREAM, first, 80)[0] == "first.example"
    # 254 placeholders in a /24: the 255th name takes the oldest one, first's
    for index in range(254):
        socket.gethostbyname(f"name{index}.example")
    assert socket.gethostbyname("name253.example") == first
    assert active.target(socket.AF_INET, socket.SOCK_STREAM, first, 80)[0] == "name253.example"


def test_route_memory_follows_a_placeholder_handed_out_after_it_was_decided():
    settings = load_settings(
        proxy="socks5h://127.0.0.1:9", environ={"SOCKSIFY_DNS_RANGE": "240.1.2.0/24"}
    )
    install(settings)
    active = patch_module._active
    # before any placeholder exists, then with the range in use: the next one to come
    for address, name in (("240.1.2.1", "first.example"), ("240.1.2.2", "second.example")):
        for _ in range(2):  # not handed out yet: a plain address (computed, remembered)
            assert active.target(socket.AF_INET, socket.SOCK_STREAM, address, 80) == (
                address,
                (address, 80),
            )
        assert socket.gethostbyname(name) == address
        assert active.target(socket.AF_INET, socket.SOCK_STREAM, address, 80)[0] == name


PLACEHOLDER_HANDED_OUT_LATER = """
    import os, socket, sys
    port, order = int(sys.argv[1]), sys.argv[2]

    def echo(address):
        try:
            with socket.create_connection((address, port), timeout=10) as c:
                c.sendall(b"ping")
                return c.recv(10).decode()
        except OSError:
            return "refused"

    def in_a_child(function):
        sys.stdout.flush()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write_end, function().encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return os.read(read_end, 100).decode()

    if order == "before any lookup":
        placeholder = "240.0.0.1"
    elif order == "after a lookup":
        assert socket.gethostbyname("first.test") == "240.0.0.1"
        placeholder = "240.0.0.2"
    else:  # a placeholder a child was given, so not one in this process (yet)
        placeholder = in_a_child(lambda: socket.gethostbyname("target.test"))
    print(echo(placeholder))
    infos = socket.getaddrinfo("target.test", port, socket.AF_INET, socket.SOCK_STREAM)
    print(infos[0][4] == (placeholder, port))
    print(echo(placeholder))  # create_connection
    s = socket.socket()
    s.settimeout(10)
    s.connect((placeholder, port))
    s.sendall(b"ping")
    print(s.recv(10).decode())
    s.close()
    print(in_a_child(lambda: echo(placeholder)))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("order", ["before any lookup", "after a lookup", "after a child's lookup"])
def test_a_placeholder_refused_before_it_was_handed_out_works_after(
    runner, socks_server, tcp_echo_server, order
):
    """A connection to an address of the range that is no placeholder yet goes to the proxy
    as that address and fails; once getaddrinfo hands it out for a name, connections to it
    (create_connection, connect, and in a child forked later) go to the name."""
    # the proxy refuses the range: it must not try to reach such an address off this machine
    config = '[[rules]]\naction = "deny"\nto = ["240.0.0.0/4", "100::/64"]\n'
    config += '[[rules]]\naction = "allow"\n'
    srv = socks_server(config=config, hosts={"target.test": "127.0.0.1", "first.test": "127.0.0.1"})
    out = runner.run_script(
        srv.url("socks5h"), PLACEHOLDER_HANDED_OUT_LATER, str(tcp_echo_server[1]), order
    )
    assert out.splitlines() == ["refused", "True", "ping", "ping", "ping"]
    refused = "240.0.0.2" if order == "after a lookup" else "240.0.0.1"
    sessions = sorted((r["destination"], r["outcome"] == "ok") for r in srv.wait_records(4))
    assert sessions == [(refused, False)] + [("target.test", True)] * 3


def test_route_memory_keeps_bypass_and_literal_decisions():
    install(load_settings(proxy="socks5h://127.0.0.1:9", no_proxy="10.0.0.0/8"))
    active = patch_module._active
    for _ in range(2):  # computed, then remembered
        assert active.target(socket.AF_INET, socket.SOCK_STREAM, "10.1.2.3", 80) is None
        assert active.target(socket.AF_INET, socket.SOCK_STREAM, "192.0.2.1", 80) == (
            "192.0.2.1",
            ("192.0.2.1", 80),
        )


class StandInProxy:
    """A SOCKS5 proxy that answers one CONNECT its own way: ``reply_parts`` are sent with
    ``pause`` seconds between them after the request arrives (``stall`` : never reply)."""

    REPLY = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"

    def __init__(self, reply_parts, pause=0.0, stall=False):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]
        self.reply_parts, self.pause, self.stall = reply_parts, pause, stall
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        self.conns.append(conn)
        conn.settimeout(10)
        try:
            conn.recv(3)
            conn.sendall(b"\x05\x00")
            conn.recv(512)
            if self.stall:
                return
            for part in self.reply_parts:
                time.sleep(self.pause)
                conn.sendall(part)
        except OSError:
            pass

    def url(self):
        return f"socks5h://127.0.0.1:{self.port}"

    def close(self):
        self.thread.join(10)
        for conn in self.conns:
            conn.close()
        self.server.close()


@pytest.mark.e2e
@pytest.mark.parametrize("how", ["patched connect", "create_connection"])
def test_timed_handshake_keeps_early_data_and_the_timeout(how):
    reply = StandInProxy.REPLY
    proxy = StandInProxy([reply[:3], reply[3:7], reply[7:] + b"BANNER"], pause=0.05)
    try:
        if how == "create_connection":
            sock = socksify.create_connection(("dest.example", 25), proxy.url(), timeout=5)
        else:
            socksify.patch(proxy.url())
            sock = socket.socket()
            sock.settimeout(5)
            sock.connect(("dest.example", 25))
        with sock:
            assert sock.gettimeout() == 5
            assert sock.recv(100) == b"BANNER"  # left in the socket for the program
    finally:
        proxy.close()


@pytest.mark.e2e
def test_timed_handshake_stalled_mid_way_times_out_at_the_deadline():
    proxy = StandInProxy([], stall=True)
    try:
        socksify.patch(proxy.url())
        sock = socket.socket()
        sock.settimeout(0.5)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            sock.connect(("dest.example", 25))
        assert time.monotonic() - start < 5  # bounded (generously: a loaded CI machine)
        assert sock.gettimeout() == 0.5
        sock.close()
    finally:
        proxy.close()


@pytest.mark.e2e
def test_nonblocking_socket_gets_its_handshake_and_stays_nonblocking():
    reply = StandInProxy.REPLY
    proxy = StandInProxy([reply + b"HELLO"])
    try:
        socksify.patch(proxy.url())
        with socket.socket() as sock:
            sock.setblocking(False)
            assert sock.connect_ex(("dest.example", 25)) == 0
            assert sock.gettimeout() == 0.0
            sock.settimeout(5)
            assert sock.recv(100) == b"HELLO"
    finally:
        proxy.close()


def test_patched_is_a_context_manager_and_a_decorator():
    url = "socks5h://127.0.0.1:9"

    @socksify.patched(url)
    def inside():
        return patch_module.is_installed()

    assert inside() is True
    assert patch_module.is_installed() is False
    with socksify.patched(url) as settings:
        assert settings.chain[0].port == 9
    assert patch_module.is_installed() is False


def test_patch_alone_loads_no_address_parsing_or_weakref_modules():
    """``ipaddress`` waits for the first placeholder; ``weakref`` and ``contextlib`` are not
    needed at all (start-up cost, issue #5); the first remote-DNS name loads ipaddress."""
    code = (
        "import sys, socket\n"
        "before = set(sys.modules)\n"
        "import socksify\n"
        "socksify.patch('socks5h://127.0.0.1:9')\n"
        "print(sorted({'ipaddress', 'weakref', 'contextlib'} & (set(sys.modules) - before)))\n"
        "socket.getaddrinfo('some.example', 80)\n"
        "print('ipaddress' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "True"]


def test_settings_default_dns_range_is_parsed_when_read():
    from socksify.proxy import DEFAULT_DNS_RANGE, Settings, parse_dns_range

    settings = load_settings(proxy="socks5h://127.0.0.1:9", environ={})
    assert settings.dns_range == parse_dns_range(DEFAULT_DNS_RANGE)
    assert settings == Settings(settings.chain, dns_range=parse_dns_range(DEFAULT_DNS_RANGE))
    assert settings.to_environ()["SOCKSIFY_DNS_RANGE"] == "240.0.0.0/8,100::/64"
    assert "dns_range=(IPv4Network('240.0.0.0/8')" in repr(settings)


def test_create_connection_reads_the_environment_again_when_it_changes(monkeypatch):
    from socksify.proxy import ConfigError

    first, second = socket.socket(), socket.socket()
    with first, second:
        for sock in (first, second):  # bound, never listening: connecting is refused
            sock.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        monkeypatch.setenv("SOCKSIFY_PROXY", f"socks5h://127.0.0.1:{port}")
        for _ in range(2):
            with pytest.raises(socksify.ProxyUnreachableError, match=f":{port}"):
                socksify.create_connection(("dest.example", 80), timeout=5)
        monkeypatch.setenv("SOCKSIFY_NO_PROXY", "bad entry!")
        with pytest.raises(ConfigError):
            socksify.create_connection(("dest.example", 80), timeout=5)
        monkeypatch.setenv("SOCKSIFY_NO_PROXY", "")
        port = second.getsockname()[1]
        monkeypatch.setenv("SOCKSIFY_PROXY", f"socks5h://127.0.0.1:{port}")
        with pytest.raises(socksify.ProxyUnreachableError, match=f":{port}"):
            socksify.create_connection(("dest.example", 80), timeout=5)
