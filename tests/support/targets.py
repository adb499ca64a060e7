"""Destination servers for proxied traffic, all on loopback and port 0.

Each fixture starts a real server in a daemon thread and stops it afterwards:

- ``tcp_echo_server`` / ``tcp_echo_server6``: ``(host, port)`` of a TCP server that echoes
  every byte back and half-closes when the client does (so half-close can be tested).
- ``udp_echo_server``: ``(host, port)`` of a UDP server that sends each datagram back.
- ``http_server``: an :class:`HttpTarget` serving ``/`` (a short page), ``/bytes/N`` (N
  deterministic bytes) and any extra paths a test puts into ``.files``.
- ``full_accept_queue()``: a listener nobody accepts from, whose queue is full (connects to
  it hang).
"""

import contextlib
import hashlib
import http.server
import socket
import socketserver
import threading

import pytest


@contextlib.contextmanager
def full_accept_queue():
    """A loopback listener whose accept queue is full: a new connect to it stays in
    progress (its SYN is dropped) until the queue drains. Yields ``(listener, fillers)``:
    the fillers are the client sockets that fill the queue."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(4):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(listener.getsockname())
            fillers.append(sock)
        yield listener, fillers
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


def pattern_bytes(size: int) -> bytes:
    """``size`` deterministic, non-repeating-looking bytes (so truncation or reordering shows)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(counter.to_bytes(8, "big")).digest() * 128
        counter += 1
    return bytes(out[:size])


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)


class _ThreadingTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: the default 5 stalls many parallel clients


class _ThreadingTCPServer6(_ThreadingTCPServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def serving(server):
    """Run a socketserver in a daemon thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def tcp_echo_server():
    with serving(_ThreadingTCPServer(("127.0.0.1", 0), _EchoHandler)) as server:
        yield server.server_address[:2]


@pytest.fixture
def tcp_echo_server6():
    if not socket.has_ipv6:
        pytest.skip("MISSING: this machine has no IPv6 loopback")
    with serving(_ThreadingTCPServer6(("::1", 0), _EchoHandler)) as server:
        yield server.server_address[:2]


class UdpEchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


@pytest.fixture
def udp_echo_server():
    with serving(socketserver.ThreadingUDPServer(("127.0.0.1", 0), UdpEchoHandler)) as server:
        yield server.server_address[:2]


class HttpTarget:
    """A small HTTP/1.1 server; ``url(path)`` gives an http URL by IP address."""

    def __init__(self, host: str = "127.0.0.1"):
        self.files: dict[str, bytes] = {"/": b"<html><body>hello from the target</body></html>\n"}
        self.requests: list[str] = []
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                target.requests.append(self.path)
                body = target.body_for(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server_class = _ThreadingTCPServer6 if ":" in host else _ThreadingTCPServer
        self.server = server_class((host, 0), Handler)
        self.host = host
        self.port = self.server.server_address[1]

    def body_for(self, path: str) -> bytes | None:
        if path in self.files:
            return self.files[path]
        if path.startswith("/bytes/") and path[7:].isdigit():
            return pattern_bytes(int(path[7:]))
        return None

    def url(self, path: str = "/", host: str | None = None) -> str:
        host = host or self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def http_server():
    target = HttpTarget()
    with serving(target.server):
        yield target


@pytest.fixture
def http_server6():
    if not socket.has_ipv6:
        pytest.skip("MISSING: this machine has no IPv6 loopback")
    target = HttpTarget("::1")
    with serving(target.server):
        yield target
