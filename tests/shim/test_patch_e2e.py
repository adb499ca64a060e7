"""The patched socket module end to end: real client libraries in a child process
(``python -m socksify``) through real proxies to real servers on loopback."""

import hashlib
import json
import socket
import subprocess
import sys
import textwrap

import pytest
from support.peers import require_module, require_peer
from support.targets import pattern_bytes

pytestmark = pytest.mark.e2e

HOSTS = {"only-proxy.test": "127.0.0.1", "only-proxy6.test": "::1"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FETCH = {
    "urllib": """
        import urllib.request
        body = urllib.request.urlopen(URL, timeout=10).read()
    """,
    "http.client": """
        import http.client, urllib.parse
        parts = urllib.parse.urlsplit(URL)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", parts.path)
        body = conn.getresponse().read()
    """,
    "requests": """
        import requests
        body = requests.get(URL, timeout=10).content
    """,
    "httpx": """
        import httpx
        body = httpx.get(URL, timeout=10).content
    """,
}


@pytest.mark.parametrize("library", list(FETCH))
def test_http_clients_through_remote_dns(runner, socks_server, http_server, library):
    if library in ("requests", "httpx"):
        require_module(library)
    srv = socks_server(hosts=HOSTS)
    url = http_server.url("/bytes/200000", host="only-proxy.test")
    script = (
        "import sys, hashlib\nURL = sys.argv[1]\n"
        + textwrap.dedent(FETCH[library])
        + ("print(hashlib.sha256(body).hexdigest())\n")
    )
    out = runner.run_script(srv.url("socks5h"), script, url)
    assert out.strip() == sha(pattern_bytes(200000))
    records = srv.wait_records(1)
    assert {r["destination"] for r in records} == {"only-proxy.test"}
    assert all(r["command"] == "connect" and r["outcome"] == "ok" for r in records)


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
def test_local_dns_schemes_send_addresses(runner, socks_server, http_server, scheme):
    srv = socks_server()
    script = """
        import sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
    """
    out = runner.run_script(
        srv.url(scheme), script, http_server.url("/bytes/5000", host="localhost")
    )
    assert out.strip() == "5000"
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"


def test_ipv6_targets(runner, socks_server, http_server6, tcp_echo_server6):
    srv = socks_server(hosts=HOSTS)
    script = """
        import socket, sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
        s = socket.socket(socket.AF_INET6)
        s.settimeout(10)
        s.connect(("::1", int(sys.argv[2])))
        s.sendall(b"v6 echo")
        print(s.recv(100).decode(), s.getpeername()[:2] == ("::1", int(sys.argv[2])))
    """
    out = runner.run_script(
        srv.url("socks5h"), script, http_server6.url("/bytes/777"), str(tcp_echo_server6[1])
    )
    assert out.split("\n")[:2] == ["777", "v6 echo True"]
    assert {r["destination"] for r in srv.wait_records(2)} == {"::1"}


def test_ipv6_placeholder_for_af_inet6_lookups(runner, socks_server, tcp_echo_server6):
    srv = socks_server(hosts=HOSTS)
    script = """
        import ipaddress, socket, sys
        port = int(sys.argv[1])
        info = socket.getaddrinfo("only-proxy6.test", port, socket.AF_INET6,
                                  socket.SOCK_STREAM)[0]
        address = info[4]
        assert ipaddress.ip_address(address[0]) in ipaddress.ip_network("100::/64"), address
        s = socket.socket(socket.AF_INET6)
        s.settimeout(10)
        s.connect(address)
        s.sendall(b"six")
        print(s.recv(10).decode(), s.getpeername()[0] == address[0])
        print(socket.gethostbyaddr(address[0])[0])
    """
    out = runner.run_script(srv.url("socks5h"), script, str(tcp_echo_server6[1]))
    assert out.split() == ["six", "True", "only-proxy6.test"]
    assert srv.wait_records(1)[0]["destination"] == "only-proxy6.test"


def test_asyncio_streams(runner, socks_server, tcp_echo_server):
    srv = socks_server(hosts=HOSTS)
    script = """
        import asyncio, sys
        async def main(port):
            reader, writer = await asyncio.open_connection("only-proxy.test", port)
            writer.write(b"x" * 50000)
            await writer.drain()
            data = await reader.readexactly(50000)
            sockname = writer.get_extra_info("sockname")
            peername = writer.get_extra_info("peername")
            writer.close()
            await writer.wait_closed()
            print(len(data), peername[0].startswith("240."), peername[1] == port)
        asyncio.run(main(int(sys.argv[1])))
    """
    out = runner.run_script(srv.url("socks5h"), script, str(tcp_echo_server[1]))
    assert out.split() == ["50000", "True", "True"]
    assert srv.wait_records(1)[0]["destination"] == "only-proxy.test"


def test_sockets_created_before_patch_and_from_import(runner, socks_server, tcp_echo_server):
    srv = socks_server()
    script = """
        import sys
        from socket import socket, create_connection
        early = socket()
        import socksify
        socksify.patch(sys.argv[1])
        port = int(sys.argv[2])
        early.settimeout(10)
        early.connect(("127.0.0.1", port))
        early.sendall(b"early")
        print(early.recv(10).decode())
        late = socket()
        late.settimeout(10)
        print(late.connect_ex(("127.0.0.1", port)))
        late.sendall(b"late")
        print(late.recv(10).decode())
        socksify.unpatch()
    """
    path = runner.script(script)
    result = subprocess.run(
        [sys.executable, path, srv.url("socks5"), str(tcp_echo_server[1])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["early", "0", "late"]
    assert len(srv.wait_records(2)) == 2


def test_getsockname_and_getpeername(runner, socks_server, tcp_echo_server):
    srv = socks_server()
    script = """
        import json, socket, sys
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        print(json.dumps([s.getpeername(), s.getsockname()]))
    """
    out = runner.run_script(srv.url("socks5"), script, str(tcp_echo_server[1]))
    peer, local = json.loads(out)
    assert peer == list(tcp_echo_server)
    # BND.ADDR/PORT: the proxy's outbound socket, i.e. what the echo server sees as its peer
    assert local[0] == "127.0.0.1" and local[1] != 0
    assert local[1] != srv.port


def test_ssl_wrapped_socket(runner, socks_server, tmp_path):
    openssl = require_peer("openssl")
    import ssl
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=only-proxy.test",
            "-addext",
            "subjectAltName=DNS:only-proxy.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"tls hello " + tls.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    srv = socks_server(hosts=HOSTS)
    script = """
        import socket, ssl, sys
        context = ssl.create_default_context(cafile=sys.argv[2])
        raw = socket.create_connection(("only-proxy.test", int(sys.argv[1])), timeout=10)
        with context.wrap_socket(raw, server_hostname="only-proxy.test") as tls:
            tls.sendall(b"there")
            print(tls.recv(100).decode(), tls.getpeername()[0].startswith("240."))
    """
    with listener:
        out = runner.run_script(
            srv.url("socks5h"), script, str(listener.getsockname()[1]), str(cert)
        )
    thread.join(10)
    assert out.strip() == "tls hello there True"
    assert srv.wait_records(1)[0]["destination"] == "only-proxy.test"


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
def test_ftplib_active_mode_uses_bind(runner, socks_server, ftp_server, scheme):
    srv = socks_server()
    script = """
        import ftplib, hashlib, sys
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=10)
        ftp.login()
        ftp.set_pasv(False)
        chunks = []
        ftp.retrbinary("RETR /pattern.bin", chunks.append)
        print(hashlib.sha256(b"".join(chunks)).hexdigest())
        ftp.quit()
    """
    out = runner.run_script(srv.url(scheme), script, str(ftp_server.port))
    assert out.strip() == sha(ftp_server.files["/pattern.bin"])
    transfer = ftp_server.transfers[0]
    assert transfer["mode"] == "active"
    records = srv.wait_records(2)
    bind = [r for r in records if r["command"] == "bind"]
    assert len(bind) == 1 and bind[0]["outcome"] == "ok"
    # the server's data connection went to the proxy's BIND listener
    assert transfer["target"][1] != 0


def test_ftplib_active_mode_through_danted(runner, danted, ftp_server):
    proxy = danted()
    script = """
        import ftplib, sys
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=10)
        ftp.login()
        ftp.set_pasv(False)
        chunks = []
        ftp.retrbinary("RETR /hello.txt", chunks.append)
        sys.stdout.write(b"".join(chunks).decode())
        ftp.quit()
    """
    out = runner.run_script(proxy.url("socks5"), script, str(ftp_server.port))
    assert out.encode() == ftp_server.files["/hello.txt"]
    assert ftp_server.transfers[0]["mode"] == "active"


def test_explicit_port_listener_stays_local(runner, socks_server, tcp_echo_server):
    srv = socks_server()
    script = """
        import errno, socket, sys
        # ports free now (picked before any proxied connection); one may be taken by another
        # socket before the listener binds it, so the listener tries them in turn
        probes = [socket.socket() for _ in range(5)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        ports = [probe.getsockname()[1] for probe in probes]
        for probe in probes:
            probe.close()
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        for port in ports:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", port))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                listener.close()
        listener.listen()
        print(listener.getsockname() == ("127.0.0.1", port))
    """
    out = runner.run_script(srv.url("socks5"), script, str(tcp_echo_server[1]))
    assert out.strip() == "True"
    assert [r["command"] for r in srv.wait_records(1)] == ["connect"]


UDP_SCRIPT = """
    import socket, sys
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    s.sendto(b"one", (host, port))
    data, source = s.recvfrom(100)
    print(data.decode(), source == (socket.gethostbyname(host), port))
    buf = bytearray(100)
    s.sendto(b"two", (host, port))
    n, source = s.recvfrom_into(buf)
    print(bytes(buf[:n]).decode())
    s.sendmsg([b"thr", b"ee"], [], 0, (host, port))
    data, anc, flags, source = s.recvmsg(100)
    print(data.decode())
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(10)
    c.connect((host, port))
    c.send(b"four")
    print(c.recv(100).decode())
    c.send(b"five")
    n = c.recv_into(buf)
    print(bytes(buf[:n]).decode(), c.getpeername()[1] == port)
    c.close(); s.close()
"""


def test_udp_associate(runner, socks_server, udp_echo_server):
    srv = socks_server(hosts=HOSTS)
    out = runner.run_script(
        srv.url("socks5h"), UDP_SCRIPT, "only-proxy.test", str(udp_echo_server[1])
    )
    assert out.split("\n")[:5] == ["one True", "two", "three", "four", "five True"]
    records = srv.wait_records(2)
    assert [r["command"] for r in records] == ["udp", "udp"]


def test_udp_recvmsg_into(runner, socks_server, udp_echo_server):
    """recvmsg_into, like recvmsg: the data without the SOCKS UDP header, scattered over the
    buffers in order; no ancillary data, no flags; the source as recvfrom reports it (the
    placeholder of a name, the peer of a connected socket)."""
    srv = socks_server(hosts=HOSTS)
    script = """
        import socket, sys
        host, port = sys.argv[1], int(sys.argv[2])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(10)
        s.sendto(b"scattered", (host, port))
        first, second = bytearray(4), bytearray(b"..........")
        n, ancdata, flags, source = s.recvmsg_into([first, memoryview(second)])
        print(n, ancdata, flags, source == (socket.gethostbyname(host), port))
        print(bytes(first), bytes(second))
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(10)
        c.connect(("127.0.0.1", port))
        c.send(b"connected")
        buffer = bytearray(100)
        n, ancdata, flags, source = c.recvmsg_into([buffer], 64)
        print(n, ancdata, flags, source == ("127.0.0.1", port), bytes(buffer[:n]))
        c.close(); s.close()
    """
    out = runner.run_script(srv.url("socks5h"), script, "only-proxy.test", str(udp_echo_server[1]))
    assert out.splitlines() == [
        "9 [] 0 True",
        "b'scat' b'tered.....'",
        "9 [] 0 True b'connected'",
    ]


def test_udp_associate_through_danted(runner, danted, udp_echo_server):
    proxy = danted()
    out = runner.run_script(proxy.url("socks5"), UDP_SCRIPT, "127.0.0.1", str(udp_echo_server[1]))
    assert out.split("\n")[:5] == ["one True", "two", "three", "four", "five True"]


@pytest.mark.parametrize("kind", ["socks4", "chain"])
def test_udp_fails_closed_with_eperm(runner, socks_server, udp_echo_server, kind):
    srv = socks_server()
    proxy = srv.url("socks4") if kind == "socks4" else f"{srv.url('socks5')},{srv.url('socks5')}"
    script = """
        import errno, socket, sys
        import socksify
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.sendto(b"x", ("127.0.0.1", int(sys.argv[1])))
        except PermissionError as exc:
            print(exc.errno == errno.EPERM, isinstance(exc, socksify.ProxyError))
            print(exc)
    """
    out = runner.run_script(proxy, script, str(udp_echo_server[1]))
    lines = out.split("\n")
    assert lines[0] == "True True"
    assert "UDP cannot be relayed" in lines[1]
    assert srv.records == [] or all(r["command"] == "connect" for r in srv.records)


def test_bypass_list_goes_direct(runner, socks_server, http_server, tcp_echo_server):
    srv = socks_server()
    script = """
        import socket, sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
        s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
        print(s.getpeername()[1] == int(sys.argv[2]))
    """
    out = runner.run_script(
        srv.url("socks5"),
        script,
        http_server.url("/bytes/10"),
        str(tcp_echo_server[1]),
        options=["--no-proxy", "127.0.0.0/8"],
    )
    assert out.split() == ["10", "True"]
    assert srv.records == []


def test_bypass_from_environment_names(runner, socks_server, http_server):
    srv = socks_server()
    script = """
        import sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
    """
    out = runner.run_script(
        srv.url("socks5h"),
        script,
        http_server.url("/", host="localhost"),
        env={"SOCKSIFY_NO_PROXY": ".example.org,localhost"},
    )
    assert out.strip() != ""
    # localhost resolves locally even with socks5h, and 127.0.0.1 is not on the list:
    # loopback is proxied, by address
    assert [r["destination"] for r in srv.wait_records(1)] == ["127.0.0.1"]


ERRORS_SCRIPT = """
    import socket, sys
    import socksify
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    except OSError as exc:
        print(type(exc).__name__, isinstance(exc, socksify.ProxyError),
              [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"][0],
              getattr(exc, "reply_code", None), exc.errno)
"""


def test_errors_in_the_patched_world(runner, socks_server, tcp_echo_server):
    import errno

    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        out = runner.run_script(
            f"socks5://127.0.0.1:{dead.getsockname()[1]}", ERRORS_SCRIPT, str(tcp_echo_server[1])
        )
    assert out.split() == [
        "ProxyUnreachableError",
        "True",
        "ConnectionRefusedError",
        "None",
        str(errno.ECONNREFUSED),
    ]
    srv = socks_server(users={"u": "p"})
    out = runner.run_script(srv.url("socks5", "u", "bad"), ERRORS_SCRIPT, str(tcp_echo_server[1]))
    assert out.split() == ["ProxyAuthError", "True", "PermissionError", "None", str(errno.EACCES)]
    config = (
        f'[[rules]]\naction = "deny"\nports = [{tcp_echo_server[1]}]\n[[rules]]\naction = "allow"\n'
    )
    srv = socks_server(config=config)
    out = runner.run_script(srv.url("socks5"), ERRORS_SCRIPT, str(tcp_echo_server[1]))
    assert out.split() == ["ProxyRefusedError", "True", "PermissionError", "2", str(errno.EACCES)]


def test_connect_ex_returns_the_errno(runner, socks_server):
    import errno

    srv = socks_server()
    script = """
        import socket
        probe = socket.socket(); socket.socket.bind(probe, ("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        s = socket.socket()
        s.settimeout(10)
        print(s.connect_ex(("127.0.0.1", closed_port)))
    """
    out = runner.run_script(srv.url("socks5"), script)
    assert out.strip() == str(errno.ECONNREFUSED)  # SOCKS5 reply 5


@pytest.mark.parametrize("mode", ["blocking", "non-blocking"])
def test_second_connect_on_a_connected_socket_is_eisconn(
    runner, socks_server, tcp_echo_server, mode
):
    """As without socksify: connect_ex gives EISCONN and connect raises it, nothing is sent
    (no second handshake through the tunnel, no shutdown), and the connection still works.
    The non-blocking handshake is done inside the first connect_ex (0), so the next one
    already finds the socket connected."""
    srv = socks_server(hosts=HOSTS)
    script = """
        import errno, select, socket, sys
        address = ("only-proxy.test", int(sys.argv[1]))
        s = socket.socket()
        if sys.argv[2] == "blocking":
            s.settimeout(10)
            print(s.connect_ex(address))
        else:
            s.setblocking(False)
            print(s.connect_ex(address))
            print(bool(select.select([], [s], [], 10)[1]))
        print(errno.errorcode.get(s.connect_ex(address)))
        try:
            s.connect(address)
        except OSError as exc:
            print(type(exc).__name__, errno.errorcode.get(exc.errno))
        s.settimeout(10)
        sent = b"after the second connect"
        s.sendall(sent)
        received = b""
        while len(received) < len(sent):
            chunk = s.recv(100)
            if not chunk:
                break
            received += chunk
        print(received.decode())
        s.close()
    """
    out = runner.run_script(srv.url("socks5h"), script, str(tcp_echo_server[1]), mode)
    first = ["0"] if mode == "blocking" else ["0", "True"]
    assert out.splitlines() == first + ["EISCONN", "OSError EISCONN", "after the second connect"]
    records = srv.wait_records(1)
    assert len(records) == 1
    assert (records[0]["destination"], records[0]["outcome"]) == ("only-proxy.test", "ok")
    assert records[0]["bytes_up"] == records[0]["bytes_down"] == len(b"after the second connect")


def test_microsocks_in_the_patched_world(runner, microsocks, http_server):
    proxy = microsocks(users={"dave": "pw"})
    script = """
        import sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
    """
    out = runner.run_script(
        proxy.url("socks5h", "dave", "pw"), script, http_server.url("/bytes/1234", host="localhost")
    )
    assert out.strip() == "1234"


def test_chain_in_the_patched_world(runner, socks_server, http_server):
    near = socks_server()
    far = socks_server(hosts=HOSTS)
    script = """
        import sys, urllib.request
        print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))
    """
    out = runner.run_script(
        f"{near.url('socks5')},{far.url('socks4a')}",
        script,
        http_server.url("/bytes/4321", host="only-proxy.test"),
    )
    assert out.strip() == "4321"
    assert far.wait_records(1)[0]["destination"] == "only-proxy.test"
    assert near.wait_records(1)[0]["port"] == far.port


def test_log_lines_on_stderr(runner, tcp_echo_server):
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        path = runner.script(ERRORS_SCRIPT)
        result = runner.run(
            [path, str(tcp_echo_server[1])],
            env={
                "SOCKSIFY_PROXY": f"socks5://127.0.0.1:{dead.getsockname()[1]}",
                "SOCKSIFY_LOG": "info",
            },
        )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("socksify: ") for line in lines)
    assert any("cannot reach SOCKS proxy" in line for line in lines)


def test_close_ends_the_udp_association(runner, socks_server, udp_echo_server):
    """The proxy records a UDP session when its control connection closes: that must happen
    at close() of the datagram socket, while the program is still running."""
    srv = socks_server()
    script = runner.script("""
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(10)
        s.sendto(b"ping", ("127.0.0.1", int(sys.argv[1])))
        assert s.recvfrom(10)[0] == b"ping"
        s.close()
        print("closed", flush=True)
        sys.stdin.readline()
    """)
    proc = runner.start(
        ["--proxy", srv.url("socks5"), script, str(udp_echo_server[1])], stdin=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline().strip() == "closed"
        record = srv.wait_records(1)[0]  # while the child still waits on stdin
        assert record["command"] == "udp" and record["outcome"] == "ok"
        assert proc.poll() is None
    finally:
        proc.communicate("\n", timeout=30)
    assert proc.returncode == 0


def test_many_threads_at_once(runner, socks_server, http_server):
    srv = socks_server(hosts=HOSTS)
    script = """
        import concurrent.futures, hashlib, sys, urllib.request
        def fetch(index):
            url = f"{sys.argv[1]}/bytes/{1000 + index}"
            return len(urllib.request.urlopen(url, timeout=20).read()) == 1000 + index
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            print(sum(pool.map(fetch, range(48))))
    """
    base = http_server.url("", host="only-proxy.test")
    out = runner.run_script(srv.url("socks5h"), script, base)
    assert out.strip() == "48"
    assert len(srv.wait_records(48)) == 48


def test_asyncio_datagram_endpoint(runner, socks_server, udp_echo_server):
    srv = socks_server(hosts=HOSTS)
    script = """
        import asyncio, sys
        class Echo(asyncio.DatagramProtocol):
            def __init__(self):
                self.received = asyncio.get_running_loop().create_future()
            def datagram_received(self, data, addr):
                if not self.received.done():
                    self.received.set_result((data, addr))
        async def main(port):
            loop = asyncio.get_running_loop()
            transport, protocol = await loop.create_datagram_endpoint(
                Echo, remote_addr=("only-proxy.test", port))
            transport.sendto(b"datagram via asyncio")
            data, addr = await asyncio.wait_for(protocol.received, 10)
            transport.close()
            print(data.decode(), addr[0].startswith("240."), addr[1] == port)
        asyncio.run(main(int(sys.argv[1])))
    """
    out = runner.run_script(srv.url("socks5h"), script, str(udp_echo_server[1]))
    assert out.strip() == "datagram via asyncio True True"
    assert srv.wait_records(1)[0]["command"] == "udp"


def test_ipv4_sockets_through_an_ipv6_only_proxy(runner, socks_server, tcp_echo_server):
    srv = socks_server(listen="[::1]:0")
    script = """
        import socket, sys
        port = int(sys.argv[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(b"four over six")
        print(s.recv(100).decode(), s.getpeername() == ("127.0.0.1", port), s.family.name,
              s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
    """
    out = runner.run_script(srv.url("socks5"), script, str(tcp_echo_server[1]))
    assert out.strip() == "four over six True AF_INET True"
    assert srv.wait_records(1)[0]["destination"] == "127.0.0.1"
    script = """
        import asyncio, sys
        async def main(port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"async four over six")
            print((await reader.readexactly(19)).decode())
            writer.close()
        asyncio.run(main(int(sys.argv[1])))
    """
    out = runner.run_script(srv.url("socks5"), script, str(tcp_echo_server[1]))
    assert out.strip() == "async four over six"


def test_bind_listener_accepts_one_connection(runner, socks_server, tcp_echo_server):
    srv = socks_server()
    script = runner.script("""
        import errno, socket, sys
        c = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        listener = socket.socket()
        listener.settimeout(10)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        host, port = listener.getsockname()
        print(host, port, flush=True)
        conn, peer = listener.accept()
        print(conn.recv(10).decode(), peer[0], conn.getsockname() == (host, port), flush=True)
        conn.sendall(b"back")
        try:
            listener.accept()
        except OSError as exc:
            print("second accept", errno.errorcode[exc.errno], flush=True)
        conn.close()
    """)
    proc = runner.start(["--proxy", srv.url("socks5"), script, str(tcp_echo_server[1])])
    try:
        host, port = proc.stdout.readline().split()
        assert host == "127.0.0.1" and int(port) not in (0, srv.port)
        with socket.create_connection((host, int(port)), timeout=10) as peer:
            peer.sendall(b"inbound")
            assert proc.stdout.readline().split() == ["inbound", "127.0.0.1", "True"]
            assert peer.recv(10) == b"back"
        assert proc.stdout.readline().strip() == "second accept EINVAL"
    finally:
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "bind" in [r["command"] for r in srv.wait_records(2)]


def test_port_zero_listener_before_any_proxied_connection_stays_local(runner, socks_server):
    srv = socks_server()
    script = """
        import socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = socket.socket()
        probe.settimeout(5)
        probe.connect(("127.0.0.1", port))
        conn, _ = listener.accept()
        probe.sendall(b"local listener")
        print(conn.recv(100).decode())
    """
    out = runner.run_script(srv.url("socks5"), script)
    assert out.strip() == "local listener"
    # the listener was local; the probe (loopback is proxied) went through the proxy to it
    assert [r["command"] for r in srv.wait_records(1)] == ["connect"]


def test_asyncio_chain_auth_and_errors(runner, socks_server, tcp_echo_server):
    near = socks_server(users={"ann": "pw"})
    far = socks_server(hosts=HOSTS)
    script = """
        import asyncio, errno, sys
        import socksify
        async def main(port, dead_port):
            reader, writer = await asyncio.open_connection("only-proxy.test", port)
            writer.write(b"chained")
            print((await reader.readexactly(7)).decode())
            writer.close()
            try:
                await asyncio.open_connection("127.0.0.1", dead_port)
            except ConnectionRefusedError as exc:
                print(type(exc).__name__, isinstance(exc, socksify.ProxyError), exc.reply_code)
        asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
    """
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        chain = f"{near.url('socks5', 'ann', 'pw')},{far.url('socks5h')}"
        out = runner.run_script(
            chain, script, str(tcp_echo_server[1]), str(closed.getsockname()[1])
        )
    assert out.split("\n")[:2] == ["chained", "ProxyRefusedError True 5"]
    # Two sessions each (the refused one may end, and be recorded, before the first).
    far_records = far.wait_records(2)
    assert sorted(r["destination"] for r in far_records) == ["127.0.0.1", "only-proxy.test"]
    assert [r["user"] for r in near.wait_records(2)] == ["ann", "ann"]


def test_udp_from_an_ipv6_socket_to_an_ipv6_target(runner, socks_server):
    import threading

    echo = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    echo.bind(("::1", 0))
    echo.settimeout(15)

    def serve():
        try:
            data, source = echo.recvfrom(100)
            echo.sendto(data, source)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    srv = socks_server()
    script = """
        import socket, sys
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.settimeout(10)
        s.sendto(b"six by udp", ("::1", int(sys.argv[1])))
        data, source = s.recvfrom(100)
        print(data.decode(), source[:2] == ("::1", int(sys.argv[1])))
    """
    with echo:
        out = runner.run_script(srv.url("socks5"), script, str(echo.getsockname()[1]))
    thread.join(5)
    assert out.strip() == "six by udp True"
    assert srv.wait_records(1)[0]["command"] == "udp"
