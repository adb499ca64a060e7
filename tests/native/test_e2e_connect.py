"""End-to-end: TCP connect() through the native shim, with real programs (curl, wget, ncat,
sh, python3) and real proxies (the reference server, microsocks, danted), on loopback only."""

import errno
import socket
import sys
import textwrap
import threading

import pytest
from support.peers import require_peer

pytestmark = pytest.mark.e2e

BODY = b"<html><body>hello from the target</body></html>\n"


def curl(shim, url, proxy, *args, **extra):
    return shim.run([require_peer("curl"), "-sS", "--max-time", "20", *args, url], proxy, **extra)


def test_curl_by_ip_through_the_reference_server(shim, socks_server, http_server):
    srv = socks_server()
    result = curl(shim, http_server.url("/"), srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    [record] = srv.wait_records(1)
    assert (record["command"], record["destination"], record["port"]) == (
        "connect", "127.0.0.1", http_server.port)
    assert record["outcome"] == "ok"


@pytest.mark.parametrize("scheme", ["socks4", "socks4a", "socks5", "socks5h"])
def test_every_scheme_by_ip(shim, socks_server, http_server, scheme):
    srv = socks_server()
    result = curl(shim, http_server.url("/bytes/100000"), srv.url(scheme))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 100000
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


def test_username_and_password(shim, socks_server, http_server):
    srv = socks_server(users={"alice": "s3cret"})
    ok = curl(shim, http_server.url("/"), srv.url("socks5", "alice", "s3cret"))
    assert ok.returncode == 0, ok.stderr
    assert srv.wait_records(1)[0]["user"] == "alice"
    bad = curl(shim, http_server.url("/"), srv.url("socks5", "alice", "wrong"))
    assert bad.returncode == 7  # curl: couldn't connect
    assert b"socksify: error:" in bad.stderr and b"rejected the user name" in bad.stderr
    assert b"wrong" not in bad.stderr
    assert http_server.requests == ["/"]


def test_peer_proxies(shim, microsocks, danted, http_server):
    for proxy in (microsocks(), danted()):
        result = curl(shim, http_server.url("/bytes/5000"), proxy.url("socks5"))
        assert result.returncode == 0, (proxy, result.stderr)
        assert len(result.stdout) == 5000
    assert len(http_server.requests) == 2


def test_microsocks_with_a_user(shim, microsocks, http_server):
    proxy = microsocks(users={"bob": "pw"})
    result = curl(shim, http_server.url("/"), proxy.url("socks5", "bob", "pw"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY


def test_ipv6_target(shim, socks_server, http_server6):
    srv = socks_server()
    result = curl(shim, http_server6.url("/"), srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    assert srv.wait_records(1)[0]["destination"] == "::1"


def test_ipv6_proxy_listener(shim, socks_server, http_server):
    srv = socks_server(listen="[::1]:0")
    result = curl(shim, http_server.url("/"), srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


def test_wget(shim, socks_server, http_server):
    srv = socks_server()
    wget = require_peer("wget")
    result = shim.run([wget, "-q", "-O", "-", "--tries=1", "--timeout=20",
                       http_server.url("/bytes/3000")], srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 3000
    assert srv.wait_records(1)[0]["port"] == http_server.port


def test_ncat_to_an_echo_server(shim, socks_server, tcp_echo_server):
    srv = socks_server()
    host, port = tcp_echo_server
    ncat = require_peer("ncat")
    result = shim.run([ncat, "--wait", "20", host, str(port)], srv.url("socks5"),
                      input=b"echo me through the proxy\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"echo me through the proxy\n"
    assert srv.wait_records(1)[0]["port"] == port


def test_shell_runs_children_under_the_shim(shim, socks_server, http_server):
    srv = socks_server()
    curl_path, wget = require_peer("curl"), require_peer("wget")
    url = http_server.url("/")
    script = f"{curl_path} -sS --max-time 20 {url} && {wget} -q -O - --tries=1 {url}"
    result = shim.run(["sh", "-c", script], srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY * 2
    assert len(srv.wait_records(2)) == 2


def test_lazy_binding_off(shim, socks_server, http_server):
    """LD_BIND_NOW=1 resolves every symbol at load: no stray (Python) symbol may remain."""
    srv = socks_server()
    result = curl(shim, http_server.url("/"), srv.url("socks5"), LD_BIND_NOW="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY


def test_python_urllib_under_the_shim(shim, socks_server, http_server):
    srv = socks_server()
    code = f"import urllib.request; print(urllib.request.urlopen({http_server.url('/')!r}," \
           " timeout=20).read().decode(), end='')"
    result = shim.python(code, srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


class PeerRecorder:
    """A TCP server that records the address each client connects FROM (what the proxy's
    BND address must be) and sends it back."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.peers = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, peer = self.listener.accept()
        except OSError:
            return
        with conn:
            self.peers.append(peer)
            conn.sendall(f"{peer[0]} {peer[1]}\n".encode())
            conn.recv(1)

    def close(self):
        self.listener.close()
        self.thread.join(timeout=10)


# An IPv6 proxy: the program's IPv4 socket is replaced by an IPv6 one to reach it, and
# getsockname() must still answer in the program's family (a sockaddr_in of 16 bytes).
@pytest.mark.parametrize("proxy_listen", ["127.0.0.1:0", "[::1]:0"], ids=["ipv4", "ipv6"])
def test_getpeername_is_the_destination_and_getsockname_the_bnd(shim, socks_server,
                                                                proxy_listen):
    srv = socks_server(listen=proxy_listen)
    target = PeerRecorder()
    code = textwrap.dedent(f"""
        import socket
        s = socket.create_connection(("127.0.0.1", {target.port}), timeout=20)
        seen = s.makefile().readline().split()
        print(s.getpeername(), s.getsockname(), (seen[0], int(seen[1])))
    """)
    try:
        result = shim.python(code, srv.url("socks5"))
    finally:
        target.close()
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode().strip()
    peer, local, seen = (eval(part + ")") for part in text[:-1].split(") "))
    assert peer == ("127.0.0.1", target.port)
    assert local == seen == target.peers[0]  # the proxy's outbound address, the reply's BND


COPIES = textwrap.dedent("""
    import fcntl, os, socket, sys
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
    copies = {
        "socket.dup": s.dup(),  # os.dup(), which is fcntl(F_DUPFD_CLOEXEC) in CPython
        "F_DUPFD": socket.socket(fileno=fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 100)),
    }
    s.close()
    for name, copy in copies.items():
        copy.settimeout(20)
        copy.sendall(name.encode())
        print(name, copy.getpeername(), copy.recv(100).decode())
""")


def test_copies_of_a_socket_keep_its_destination(shim, socks_server, tcp_echo_server):
    """A copy made with fcntl(F_DUPFD / F_DUPFD_CLOEXEC), as CPython's dup() makes them,
    still answers getpeername() with the destination, not with the proxy."""
    srv = socks_server()
    host, port = tcp_echo_server
    result = shim.run([sys.executable, "-c", COPIES, host, str(port)], srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines == [f"socket.dup ('{host}', {port}) socket.dup",
                     f"F_DUPFD ('{host}', {port}) F_DUPFD"]

NONBLOCKING = textwrap.dedent("""
    import errno, fcntl, os, select, socket, sys
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket()
    s.setblocking(False)
    flags = fcntl.fcntl(s, fcntl.F_GETFL)
    rc = s.connect_ex((host, port))
    assert rc in (0, errno.EINPROGRESS), rc
    _, writable, _ = select.select([], [s], [], 20)
    assert writable, "never writable"
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert s.connect_ex((host, port)) == errno.EISCONN
    assert fcntl.fcntl(s, fcntl.F_GETFL) == flags, "O_NONBLOCK not restored"
    s.setblocking(True)
    s.settimeout(20)
    s.sendall(b"ping")
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(100):
        data += chunk
    print(rc, data.decode())
""")


def test_nonblocking_connect_semantics(shim, socks_server, tcp_echo_server):
    """EINPROGRESS, writable, SO_ERROR 0, a second connect gives EISCONN, flags restored."""
    srv = socks_server()
    result = shim.run([sys.executable, "-c", NONBLOCKING, *map(str, tcp_echo_server)],
                      srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(errno.EINPROGRESS).encode(), b"ping"]
    assert srv.wait_records(1)[0]["port"] == tcp_echo_server[1]


def test_asyncio_open_connection(shim, socks_server, tcp_echo_server):
    srv = socks_server()
    code = textwrap.dedent(f"""
        import asyncio
        async def main():
            r, w = await asyncio.wait_for(asyncio.open_connection{tuple(tcp_echo_server)!r}, 20)
            w.write(b"async hello"); await w.drain(); w.write_eof()
            print((await asyncio.wait_for(r.read(), 20)).decode())
            w.close()
        asyncio.run(main())
    """)
    result = shim.python(code, srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"async hello"


def test_unix_sockets_are_untouched(shim, socks_server, tmp_path):
    srv = socks_server()
    path = str(tmp_path / "sock")
    code = textwrap.dedent(f"""
        import socket
        server = socket.socket(socket.AF_UNIX); server.bind({path!r}); server.listen()
        client = socket.socket(socket.AF_UNIX); client.connect({path!r})
        conn, _ = server.accept(); client.sendall(b"local"); print(conn.recv(10).decode())
    """)
    result = shim.python(code, srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"local"
    assert srv.records == []


@pytest.fixture
def closed_port():
    """A port bound for the whole test and never listening: a connect to it is refused (and
    no other socket can take it meanwhile, as it could after a close)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


def test_dead_proxy_fails_closed(shim, http_server, closed_port):
    port = closed_port
    result = curl(shim, http_server.url("/"), f"socks5://127.0.0.1:{port}")
    assert result.returncode == 7
    assert b"cannot reach the proxy 127.0.0.1:%d: Connection refused" % port in result.stderr
    assert http_server.requests == []  # never contacted directly


def test_refusing_reply_gives_the_mapped_errno(shim, socks_server, closed_port):
    srv = socks_server()
    code = textwrap.dedent(f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {closed_port}), timeout=20)
        except OSError as exc:
            print(type(exc).__name__, exc.errno)
    """)
    result = shim.python(code, srv.url("socks5"))
    assert result.stdout.split() == [b"ConnectionRefusedError", b"111"], result.stderr
    assert srv.wait_records(1)[0]["outcome"] != "ok"


def test_no_proxy_configured_fails_closed(shim, http_server):
    result = curl(shim, http_server.url("/"), None)
    assert result.returncode == 7
    assert b"refusing network access: no proxy configured" in result.stderr
    assert result.stderr.count(b"socksify: error:") == 1  # logged once
    assert http_server.requests == []


def test_bad_proxy_url_fails_closed(shim, http_server):
    result = curl(shim, http_server.url("/"), "http://127.0.0.1:3128")
    assert result.returncode == 7
    assert b"unsupported scheme" in result.stderr
    assert http_server.requests == []


def test_chain_of_two_hops(shim, socks_server, http_server):
    first, second = socks_server(users={"u1": "p1"}), socks_server(users={"u2": "p2"})
    chain = f"{first.url('socks5', 'u1', 'p1')},{second.url('socks5', 'u2', 'p2')}"
    result = curl(shim, http_server.url("/"), chain)
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    [hop1] = first.wait_records(1)
    [hop2] = second.wait_records(1)
    assert (hop1["destination"], hop1["port"], hop1["user"]) == ("127.0.0.1", second.port, "u1")
    assert (hop2["destination"], hop2["port"], hop2["user"]) == (
        "127.0.0.1", http_server.port, "u2")


def test_chain_through_socks4_then_socks5(shim, socks_server, http_server):
    first, second = socks_server(), socks_server()
    result = curl(shim, http_server.url("/"), f"{first.url('socks4')},{second.url('socks5')}")
    assert result.returncode == 0, result.stderr
    assert first.wait_records(1)[0]["port"] == second.port


def test_no_proxy_bypass(shim, socks_server, http_server):
    srv = socks_server()
    result = curl(shim, http_server.url("/"), srv.url("socks5"),
                  SOCKSIFY_NO_PROXY="10.0.0.0/8, 127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == BODY
    assert srv.records == []
    assert http_server.requests == ["/"]


def test_program_talking_to_the_proxy_itself_is_untouched(shim, socks_server, http_server):
    """curl --socks5 to the same proxy under the shim: not wrapped twice."""
    srv = socks_server()
    result = curl(shim, http_server.url("/"), srv.url("socks5"), "--socks5", srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert len(srv.wait_records(1)) == 1


LOG_FD_SURVIVES = textwrap.dedent("""
    import os, socket, sys
    log_path, port, other = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # the first connection starts the library, which opens its log file
    socket.create_connection(("127.0.0.1", port), timeout=20).close()
    closed = []
    for fd in range(3, 64):  # a "rude" program closing every fd it did not open
        try:
            os.close(fd)
            closed.append(fd)
        except OSError:
            pass
    socket.create_connection(("127.0.0.1", port), timeout=20).close()
    os.closerange(3, 64)  # close_range(2) bypasses close(): the log fd may really go now
    with open(other, "w") as f:  # ... and its number be reused by the program
        socket.create_connection(("127.0.0.1", port), timeout=20).close()
        f.write("program data\\n")
    print(len(closed))
""")


def test_log_file_survives_rude_programs(shim, socks_server, tcp_echo_server, tmp_path):
    srv = socks_server()
    log, other = tmp_path / "shim.log", tmp_path / "program.txt"
    result = shim.run([sys.executable, "-c", LOG_FD_SURVIVES, str(log),
                       str(tcp_echo_server[1]), str(other)],
                      srv.url("socks5"), SOCKSIFY_LOG="debug", SOCKSIFY_LOG_FILE=str(log))
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert text.count(f"proxied 127.0.0.1:{tcp_echo_server[1]}") >= 1
    assert "refusing to close internal fd" in text
    assert other.read_text() == "program data\n"  # no log line ever written into it
    assert all(line.startswith("socksify: ") for line in text.splitlines())


def test_proxy_given_by_name(shim, socks_server, http_server):
    """The proxy's own name is resolved locally (the one name that must be)."""
    srv = socks_server()
    result = curl(shim, http_server.url("/"), f"socks5h://localhost:{srv.port}")
    assert result.returncode == 0, result.stderr
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


class SlowProxy:
    """A SOCKS5 server on loopback that waits ``delay`` seconds before each answer (never
    answering when delay is None), then relays nothing: enough for handshake timing cases."""

    def __init__(self, delay):
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            try:
                conn.recv(16)  # greeting
                if self.delay is None:
                    self.done.wait(20)
                    return
                self.done.wait(self.delay)
                conn.sendall(b"\x05\x00")
                conn.recv(64)  # request
                self.done.wait(self.delay)
                conn.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50")
                conn.recv(1)
            except OSError:
                pass

    def close(self):
        self.done.set()
        self.listener.close()
        self.thread.join(timeout=10)


def test_so_sndtimeo_bounds_the_handshake(shim):
    proxy = SlowProxy(delay=None)
    code = textwrap.dedent("""
        import socket, struct
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 300000))
        print(s.connect_ex(("127.0.0.1", 9)))
    """)
    try:
        result = shim.python(code, f"socks5://127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
    assert result.stdout.strip() == str(errno.ETIMEDOUT).encode(), result.stderr


def test_signals_during_the_handshake_do_not_break_it(shim):
    """EINTR inside the handshake restarts the wait with the time left."""
    proxy = SlowProxy(delay=0.3)
    code = textwrap.dedent("""
        import signal, socket
        hits = []
        signal.signal(signal.SIGALRM, lambda *a: hits.append(1))
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
        s = socket.socket()
        rc = s.connect_ex(("127.0.0.1", 80))
        signal.setitimer(signal.ITIMER_REAL, 0)
        print(rc, len(hits) > 0)
    """)
    try:
        result = shim.python(code, f"socks5://127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
    assert result.stdout.split() == [b"0", b"True"], result.stderr


def test_tcp_fast_open_goes_through_the_proxy(shim, socks_server, tcp_echo_server):
    """sendto(MSG_FASTOPEN, address) on a TCP socket makes the kernel connect: it must be a
    proxied connect like connect() itself."""
    srv = socks_server()
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket()
        s.settimeout(20)
        print(s.sendto(b"fast", socket.MSG_FASTOPEN, {tuple(tcp_echo_server)!r}),
              s.recv(10).decode())
    """)
    result = shim.python(code, srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"4", b"fast"]
    assert srv.wait_records(1)[0]["port"] == tcp_echo_server[1]


def test_tcp_fast_open_by_sendmsg_goes_through_the_proxy(shim, socks_server, tcp_echo_server):
    """sendmsg(MSG_FASTOPEN) with msg_name: the same connect in disguise as sendto's."""
    srv = socks_server()
    code = textwrap.dedent(f"""
        import socket
        s = socket.socket()
        s.settimeout(20)
        print(s.sendmsg([b"fa", b"st"], [], socket.MSG_FASTOPEN, {tuple(tcp_echo_server)!r}),
              s.recv(10).decode())
    """)
    result = shim.python(code, srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"4", b"fast"]
    assert srv.wait_records(1)[0]["port"] == tcp_echo_server[1]


DESCRIPTORS_ONLY = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int a = dup(0), b = fcntl(0, F_DUPFD_CLOEXEC, 0);
    if (a < 0 || b < 0 || dup2(a, b) < 0 || dup3(a, b, O_CLOEXEC) < 0) return 1;
    if (close(a) || close(b)) return 2;
    if (argc > 1) { /* the control: one connect, which does start the library */
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(1);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        connect(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&sa, sizeof sa);
    }
    return 0;
}
"""


def test_copying_and_closing_descriptors_does_not_start_the_library(shim, build_c):
    """dup, dup2, dup3, fcntl(F_DUPFD) and close of descriptors the table has no room for go
    straight to libc: the library does not start (its debug log would say "initialised"),
    as for a program that never touches the network. The control connects once."""
    prog = build_c.from_text("descriptors_only", DESCRIPTORS_ONLY)
    quiet = shim.run([prog], "socks5://127.0.0.1:9", SOCKSIFY_LOG="debug")
    assert quiet.returncode == 0, quiet.stderr
    assert b"initialised" not in quiet.stderr, quiet.stderr
    control = shim.run([prog, "connect"], "socks5://127.0.0.1:9", SOCKSIFY_LOG="debug")
    assert control.returncode == 0, control.stderr
    assert b"initialised" in control.stderr, control.stderr


SETENV_THEN_CONNECT = r"""
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    /* first thing: change the environment, before any hooked call could run init */
    setenv("SOCKSIFY_PROXY", "socks5://127.0.0.1:9", 1);
    struct sockaddr_in sa = {0};
    char buf[8] = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)atoi(argv[1]));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("connect"); return 1; }
    if (write(s, "lazy", 4) != 4 || read(s, buf, 4) != 4) return 2;
    puts(buf);
    return 0;
}
"""


def test_configuration_is_the_one_the_program_started_with(shim, socks_server, tcp_echo_server,
                                                            build_c):
    """Initialisation is lazy (init.c), but the environment is taken at start: a program that
    clears SOCKSIFY_PROXY before its first connection is still proxied by the start-up
    configuration (and one that never touches the network prints nothing)."""
    srv = socks_server()
    prog = build_c.from_text("setenv_then_connect", SETENV_THEN_CONNECT)
    result = shim.run([prog, str(tcp_echo_server[1])], srv.url("socks5"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"lazy"]
    assert srv.wait_records(1)[0]["port"] == tcp_echo_server[1]
    quiet = shim.run(["true"], "http://not-a-socks-url")
    assert quiet.returncode == 0 and quiet.stderr == b""
