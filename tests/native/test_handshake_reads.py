"""The native shim reads each SOCKS reply exactly (csrc/handshake.c read_message): the bytes
the destination sends right after the reply, in the same TCP segment (a server banner),
belong to the program and must reach it, whatever the reply's BND address type; a reply
that arrives in pieces is put together; garbage fails closed with EPROTO.

The proxy here is a scripted SOCKS server on loopback that answers with fixed bytes (no
destination is ever contacted)."""

import errno
import socket
import struct
import textwrap
import threading
import time

import pytest

pytestmark = pytest.mark.e2e

BANNER = b"SSH-2.0-banner-from-the-destination\r\n"

CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.socket()
    s.settimeout(20)
    rc = s.connect_ex(("127.0.0.1", 2222))
    if rc:
        print("connect", rc)
        sys.exit(0)
    data = b""
    while not data.endswith(b"\\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        data += chunk
    print("got", data.decode().strip())
""")


class ScriptedProxy:
    """Accepts one client, reads its greeting and request, and sends ``answers`` (a list of
    byte strings, each its own send(), ``pause`` seconds apart): the first after the
    greeting (SOCKS5) or the request (SOCKS4), the rest after the request."""

    def __init__(self, version, answers, pause=0.0, host="127.0.0.1"):
        self.version, self.answers, self.pause, self.host = version, answers, pause, host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.requests = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, conn, chunks):
        for i, chunk in enumerate(chunks):
            if i and self.pause:
                time.sleep(self.pause)
            conn.sendall(chunk)

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if self.version == 5:
                    conn.recv(16)  # greeting: 05 01 00
                    conn.sendall(b"\x05\x00")
                self.requests.append(conn.recv(300))
                self._send(conn, self.answers)
                self.done.wait(20)  # keep the connection until the client is finished
            except OSError:
                pass

    def url(self) -> str:
        scheme = "socks5" if self.version == 5 else "socks4"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def close(self):
        self.done.set()
        self.listener.close()
        self.thread.join(timeout=10)


def run_through(shim, proxy, code=CLIENT, check=True):
    """Run the Python ``code`` under the shim through ``proxy``, then close the proxy."""
    try:
        result = shim.python(code, proxy.url())
    finally:
        proxy.close()
    if check:
        assert result.returncode == 0, result.stderr
    return result


def run_client(shim, version, answers, pause=0.0):
    proxy = ScriptedProxy(version, answers, pause)
    result = run_through(shim, proxy)
    return result.stdout.decode().strip(), proxy.requests


def s5_reply(bnd: bytes) -> bytes:
    return b"\x05\x00\x00" + bnd + struct.pack("!H", 4321)


BNDS = {
    "ipv4": b"\x01" + socket.inet_aton("127.0.0.1"),
    "ipv6": b"\x04" + socket.inet_pton(socket.AF_INET6, "::1"),
    "domain": b"\x03" + bytes([len(b"proxy.example")]) + b"proxy.example",
    "one-letter domain": b"\x03\x01x",
}


@pytest.mark.parametrize("bnd", list(BNDS), ids=list(BNDS))
def test_socks5_reply_and_banner_in_one_segment(shim, bnd):
    """Reply and banner in ONE send(): the shim takes the reply's bytes only."""
    out, requests = run_client(shim, 5, [s5_reply(BNDS[bnd]) + BANNER])
    assert out == "got " + BANNER.decode().strip()
    assert requests == [b"\x05\x01\x00\x01\x7f\x00\x00\x01\x08\xae"]  # CONNECT 127.0.0.1:2222


def test_socks4_reply_and_banner_in_one_segment(shim):
    reply = b"\x00\x5a" + struct.pack("!H", 4321) + socket.inet_aton("127.0.0.1")
    out, requests = run_client(shim, 4, [reply + BANNER])
    assert out == "got " + BANNER.decode().strip()
    assert requests[0][:8] == b"\x04\x01\x08\xae\x7f\x00\x00\x01"


@pytest.mark.parametrize("bnd", ["ipv4", "domain"])
def test_socks5_reply_in_pieces_then_banner(shim, bnd):
    """The reply split inside its head and inside BND.ADDR (a name's length octet alone),
    the banner glued to its last piece."""
    reply = s5_reply(BNDS[bnd])
    pieces = [reply[:2], reply[2:4], reply[4:5], reply[5:7], reply[7:] + BANNER]
    out, _ = run_client(shim, 5, pieces, pause=0.05)
    assert out == "got " + BANNER.decode().strip()


@pytest.mark.parametrize("answer", [
    b"\x04\x00\x00\x01" + b"\x7f\x00\x00\x01\x10\xe1",  # SOCKS4-style version in a SOCKS5 reply
    b"\x05\x00\x00\x07" + b"\x7f\x00\x00\x01\x10\xe1",  # unknown ATYP
    b"\x05\x00\x01\x01" + b"\x7f\x00\x00\x01\x10\xe1",  # non-zero RSV
], ids=["version", "atyp", "rsv"])
def test_malformed_socks5_reply_fails_closed(shim, answer):
    out, _ = run_client(shim, 5, [answer + BANNER])
    assert out == f"connect {errno.EPROTO}"


def test_reply_cut_short_by_the_proxy_fails_closed(shim):
    """The proxy closes after half a reply: EPROTO, not a hang and not a connection."""
    proxy = ScriptedProxy(5, [s5_reply(BNDS["domain"])[:6]])
    proxy.done.set()  # close right after the partial answer
    result = run_through(shim, proxy, check=False)
    assert result.stdout.decode().strip() == f"connect {errno.EPROTO}", result.stderr


def test_blocking_socket_flags_survive_the_handshake(shim):
    """A blocking socket is made non-blocking for the handshake and given its flags back."""
    code = textwrap.dedent("""
        import fcntl, socket
        s = socket.socket()
        before = fcntl.fcntl(s, fcntl.F_GETFL)
        s.connect(("127.0.0.1", 2222))
        print(before == fcntl.fcntl(s, fcntl.F_GETFL), s.recv(100).decode().strip())
    """)
    proxy = ScriptedProxy(5, [s5_reply(BNDS["ipv4"]) + BANNER])
    result = run_through(shim, proxy, code)
    assert result.stdout.decode().strip().split(None, 1) == ["True", BANNER.decode().strip()]


def test_ipv6_socket_reaches_an_ipv4_proxy(shim):
    """An AF_INET6 socket and an IPv4 proxy: the kernel refuses the sockaddr_in, the shim
    connects to the proxy's v4-mapped address instead (csrc/handshake.c connect_one)."""
    code = textwrap.dedent("""
        import socket
        s = socket.socket(socket.AF_INET6)
        s.settimeout(20)
        s.connect(("::1", 2222))
        print(s.recv(100).decode().strip())
    """)
    proxy = ScriptedProxy(5, [s5_reply(BNDS["ipv4"]) + BANNER])
    result = run_through(shim, proxy, code)
    assert result.stdout.decode().strip() == BANNER.decode().strip()
    assert proxy.requests[0][3] == 4  # CONNECT to an IPv6 address (ATYP 4)


def test_ipv4_socket_reaches_an_ipv6_proxy_and_keeps_its_flags(shim):
    """An AF_INET socket and a proxy on ::1: the shim puts an IPv6 socket in the fd's place
    (csrc/handshake.c replace_socket) and gives it the program's flags (blocking)."""
    code = textwrap.dedent("""
        import fcntl, socket
        s = socket.socket(socket.AF_INET)
        before = fcntl.fcntl(s, fcntl.F_GETFL)
        s.connect(("127.0.0.1", 2222))
        print(before == fcntl.fcntl(s, fcntl.F_GETFL), s.family == socket.AF_INET,
              s.recv(100).decode().strip())
    """)
    proxy = ScriptedProxy(5, [s5_reply(BNDS["ipv6"]) + BANNER], host="::1")
    result = run_through(shim, proxy, code)
    flags_kept, still_inet, banner = result.stdout.decode().strip().split(None, 2)
    assert (flags_kept, still_inet, banner) == ("True", "True", BANNER.decode().strip())
