"""Real SOCKS clients against the reference server: curl, ncat, socat, PySocks, python-socks."""

import hashlib
import logging
import subprocess
import textwrap

import pytest
from support.localdns import local_resolver_only
from support.netns import run_in_empty_netns
from support.peers import require_module, require_peer

pytestmark = pytest.mark.e2e


def curl(*args, timeout=20):
    exe = require_peer("curl")
    return subprocess.run(
        [exe, "-sS", "--max-time", "15", *args], capture_output=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("flag", "version"),
    [("--socks4", 4), ("--socks4a", 4), ("--socks5", 5), ("--socks5-hostname", 5)],
)
def test_curl_each_socks_flavour(socks_server, http_server, flag, version):
    srv = socks_server()
    result = curl(flag, f"{srv.host}:{srv.port}", http_server.url("/bytes/100000"))
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(
        http_server.body_for("/bytes/100000")
    ).digest()
    [record] = srv.wait_records(1)
    assert record["version"] == version and record["command"] == "connect"
    assert (record["destination"], record["port"]) == ("127.0.0.1", http_server.port)
    assert record["outcome"] == "ok" and record["bytes_down"] > 100000


@pytest.mark.parametrize("flag", ["--socks5-hostname", "--socks4a"])
def test_remote_dns_name_only_the_server_knows(socks_server, http_server, flag):
    srv = socks_server(hosts={"only-proxy.test": "127.0.0.1"})
    url = f"http://only-proxy.test:{http_server.port}/"
    result = curl(flag, f"{srv.host}:{srv.port}", url)
    assert result.returncode == 0, result.stderr
    assert b"hello from the target" in result.stdout
    [record] = srv.wait_records(1)
    assert record["destination"] == "only-proxy.test"


def test_local_dns_flavour_cannot_resolve_the_proxy_only_name(socks_server, http_server,
                                                              tmp_path):
    # Control for the test above: curl --socks5 resolves locally and fails on the name
    # (its DNS query goes to loopback, see support/localdns.py).
    srv = socks_server(hosts={"only-proxy.test": "127.0.0.1"})
    url = f"http://only-proxy.test:{http_server.port}/"
    argv = local_resolver_only([require_peer("curl"), "-sS", "--max-time", "15", "--socks5",
                                f"{srv.host}:{srv.port}", url], tmp_path)
    result = subprocess.run(argv, capture_output=True, timeout=20)
    assert result.returncode != 0
    assert b"Could not resolve host: only-proxy.test" in result.stderr
    assert [r["outcome"] for r in srv.records] in ([], ["client-closed"])
    assert http_server.requests == []


def test_curl_proxy_user(socks_server, http_server):
    srv = socks_server(users={"alice": "s3cret:with colon"})
    result = curl("--socks5-hostname", f"{srv.host}:{srv.port}",
                  "--proxy-user", "alice:s3cret:with colon", http_server.url("/"))
    assert result.returncode == 0, result.stderr
    [record] = srv.wait_records(1)
    assert record["user"] == "alice" and record["outcome"] == "ok"


def test_curl_wrong_password_is_refused_and_logged(socks_server, http_server, caplog):
    srv = socks_server(users={"alice": "s3cret"})
    result = curl("--socks5", f"{srv.host}:{srv.port}", "--proxy-user", "alice:nope",
                  http_server.url("/"))
    assert result.returncode != 0
    [record] = srv.wait_records(1)
    assert record["outcome"] == "auth-failed"
    assert "failed login for user 'alice' from 127.0.0.1:" in caplog.text
    assert http_server.requests == []


def test_curl_without_credentials_gets_no_acceptable_method(socks_server, http_server):
    srv = socks_server(users={"alice": "s3cret"})
    result = curl("--socks5", f"{srv.host}:{srv.port}", http_server.url("/"))
    assert result.returncode != 0
    [record] = srv.wait_records(1)
    assert record["outcome"] == "no-acceptable-method"


def test_socks4_refused_when_users_are_configured(socks_server, http_server):
    srv = socks_server(users={"alice": "s3cret"})
    result = curl("--socks4", f"{srv.host}:{srv.port}", http_server.url("/"))
    assert result.returncode != 0
    [record] = srv.wait_records(1)
    assert record["outcome"] == "not-allowed" and record["reply"] == 91


def test_socks4_allowed_by_an_explicit_rule_with_users(socks_server, http_server):
    config = """
    [[rules]]
    action = "allow"
    protocols = ["socks4"]
    users = ["legacy"]
    [[rules]]
    action = "allow"
    protocols = ["socks5"]
    """
    srv = socks_server(users={"alice": "s3cret"}, config=config)
    ok = curl("--socks4", f"{srv.host}:{srv.port}", "--proxy-user", "legacy:",
              http_server.url("/"))
    assert ok.returncode == 0, ok.stderr
    refused = curl("--socks4", f"{srv.host}:{srv.port}", "--proxy-user", "other:",
                   http_server.url("/"))
    assert refused.returncode != 0
    records = srv.wait_records(2)  # in the order the sessions ended, which may vary
    assert sorted((r["user"], r["outcome"]) for r in records) == [
        ("legacy", "ok"), ("other", "not-allowed")]


def test_ipv6_listener_and_target(socks_server, http_server6):
    srv = socks_server(listen="[::1]:0")
    assert srv.host == "::1"
    result = curl("--proxy", srv.url("socks5"), http_server6.url("/"))
    assert result.returncode == 0, result.stderr
    [record] = srv.wait_records(1)
    assert record["destination"] == "::1" and record["client"].startswith("[::1]:")


def test_ipv4_listener_to_ipv6_target_by_name(socks_server, http_server6):
    srv = socks_server(hosts={"v6only.test": "::1"})
    result = curl("--proxy", srv.url("socks5h"), f"http://v6only.test:{http_server6.port}/")
    assert result.returncode == 0, result.stderr


def test_unreachable_destination_reply_5(socks_server, http_server):
    import socket

    srv = socks_server()
    with socket.socket() as closed_port:  # bound, never listening (for the whole run): refused
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
        result = curl("--socks5", f"{srv.host}:{srv.port}", f"http://127.0.0.1:{port}/")
    assert result.returncode != 0
    [record] = srv.wait_records(1)
    assert record["outcome"] == "connection-refused" and record["reply"] == 5


UNKNOWN_NAME_SCRIPT = textwrap.dedent(
    """
    import subprocess
    from socksify.server import ServerConfig, run_in_thread
    records = []
    with run_in_thread(ServerConfig(listen=[("127.0.0.1", 0)]), on_session=records.append) as srv:
        host, port = srv.addresses[0]
        curl = subprocess.run([{curl!r}, "-sS", "--max-time", "15", "--socks5-hostname",
                               f"{{host}}:{{port}}", "http://no-such-name.invalid/"],
                              capture_output=True, timeout=20)
    print(curl.returncode, records[0]["outcome"], int(records[0]["reply"]))
    """
)


def test_unknown_name_reply_4():
    """In an empty network namespace, so that the server's failing lookup cannot send a DNS
    query anywhere (the test may only use loopback)."""
    result = run_in_empty_netns(UNKNOWN_NAME_SCRIPT.format(curl=require_peer("curl")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["97", "name-not-found", "4"]  # curl: 97 proxy


@pytest.mark.parametrize("relay", ["threads", "portable"])  # (each reads the client its way)
def test_an_http_client_on_the_socks_port_is_told_so(socks_server, http_server, caplog, relay):
    """curl given the port as its HTTP proxy gets a 501 that says what the port is (as Tor's
    SOCKS port answers), for a plain request and for CONNECT; the server logs it, without
    calling it a protocol error, and the target sees nothing."""
    caplog.set_level(logging.INFO, logger="socksify.server")
    srv = socks_server(config=f'[server]\nrelay = "{relay}"\n')
    plain = curl("-x", f"http://{srv.host}:{srv.port}", http_server.url("/"))
    assert plain.returncode == 0, plain.stderr  # an HTTP error status is still a reply
    assert b"socksify-server, a SOCKS proxy" in plain.stdout
    assert b"socks5h://HOST:PORT" in plain.stdout
    tunnel = curl("-p", "-x", f"http://{srv.host}:{srv.port}", http_server.url("/"))
    assert tunnel.returncode != 0 and b"501" in tunnel.stderr, tunnel.stderr
    assert [r["outcome"] for r in srv.wait_records(2)] == ["http-request"] * 2
    assert "HTTP request from 127.0.0.1:" in caplog.text
    assert "protocol-error" not in caplog.text
    assert http_server.requests == []


@pytest.mark.parametrize(("proxy_type", "auth"), [("socks4", "bob"), ("socks5", "bob:pw")])
def test_ncat_to_echo_server(socks_server, tcp_echo_server, proxy_type, auth):
    ncat = require_peer("ncat")
    srv = socks_server(users={"bob": "pw"} if proxy_type == "socks5" else None)
    host, port = tcp_echo_server
    result = subprocess.run(
        [ncat, "--proxy", f"{srv.host}:{srv.port}", "--proxy-type", proxy_type,
         "--proxy-auth", auth, host, str(port)],
        input=b"hello through ncat\n", capture_output=True, timeout=20,
    )
    assert result.stdout == b"hello through ncat\n", result.stderr
    [record] = srv.wait_records(1)
    assert record["user"] == "bob" and record["bytes_up"] == record["bytes_down"] == 19


def test_socat_socks4a(socks_server, tcp_echo_server):
    socat = require_peer("socat")
    srv = socks_server(hosts={"echo.only-proxy.test": tcp_echo_server[0]})
    result = subprocess.run(
        [socat, "-", f"SOCKS4A:{srv.host}:echo.only-proxy.test:{tcp_echo_server[1]},"
         f"socksport={srv.port}"],
        input=b"socat says hi\n", capture_output=True, timeout=20,
    )
    assert result.stdout == b"socat says hi\n", result.stderr
    [record] = srv.wait_records(1)
    assert record["version"] == 4 and record["destination"] == "echo.only-proxy.test"


@pytest.mark.parametrize(
    ("kind", "rdns"), [("SOCKS4", False), ("SOCKS4", True), ("SOCKS5", False), ("SOCKS5", True)]
)
def test_pysocks_connect(socks_server, tcp_echo_server, kind, rdns):
    socks = require_module("socks")
    srv = socks_server(hosts={"echo.test": "127.0.0.1"})
    sock = socks.socksocket()
    sock.settimeout(10)
    sock.set_proxy(getattr(socks, kind), srv.host, srv.port, rdns=rdns)
    target = "echo.test" if rdns else tcp_echo_server[0]
    try:
        sock.connect((target, tcp_echo_server[1]))
        sock.sendall(b"pysocks")
        assert sock.recv(100) == b"pysocks"
    finally:
        sock.close()
    [record] = srv.wait_records(1)
    assert record["destination"] == target


def test_pysocks_auth(socks_server, tcp_echo_server):
    socks = require_module("socks")
    srv = socks_server(users={"u": "p"})
    sock = socks.socksocket()
    sock.settimeout(10)
    sock.set_proxy(socks.SOCKS5, srv.host, srv.port, username="u", password="p")
    try:
        sock.connect(tcp_echo_server)
        sock.sendall(b"x" * 5000)
        data = b""
        while len(data) < 5000:
            data += sock.recv(65536)
        assert data == b"x" * 5000
    finally:
        sock.close()


@pytest.mark.parametrize("scheme", ["socks4", "socks5"])
def test_python_socks(socks_server, tcp_echo_server, scheme):
    require_module("python_socks")
    from python_socks.sync import Proxy

    srv = socks_server(users={"alice": "pw"} if scheme == "socks5" else None)
    url = srv.url(scheme, "alice", "pw") if scheme == "socks5" else srv.url(scheme)
    sock = Proxy.from_url(url).connect(dest_host=tcp_echo_server[0],
                                       dest_port=tcp_echo_server[1], timeout=10)
    try:
        sock.sendall(b"python-socks")
        assert sock.recv(100) == b"python-socks"
    finally:
        sock.close()
