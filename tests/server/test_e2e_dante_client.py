"""Dante's client library (``socksify`` from dante-client) against the reference server:
CONNECT (curl), UDP ASSOCIATE (a Python UDP client) and BIND (a small C program that
listens on port 0 and accepts), all preloaded with libdsocks.

Dante adds "direct" routes for local networks by default; ``SOCKS_AUTOADD_LANROUTES=no``
turns that off so loopback traffic goes through the proxy.
"""

import os
import pathlib
import select
import socket
import subprocess
import sys
import time

import pytest
from support.peers import require_peer

pytestmark = pytest.mark.e2e

PROGS = pathlib.Path(__file__).resolve().parent / "progs"

DANTE_CLIENT_CONF = """\
route {{
    from: 0.0.0.0/0 to: 0.0.0.0/0 via: {host} port = {port}
    proxyprotocol: socks_v5
    protocol: tcp udp
    command: connect bind udpassociate bindreply udpreply
    method: none
}}
"""


@pytest.fixture
def dante_env(socks_server, tmp_path):
    require_peer("socksify")
    srv = socks_server()
    conf = tmp_path / "dante-client.conf"
    conf.write_text(DANTE_CLIENT_CONF.format(host=srv.host, port=srv.port))
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env.update(SOCKS_CONF=str(conf), SOCKS_AUTOADD_LANROUTES="no")
    return srv, env


def test_dante_client_connect(dante_env, http_server):
    srv, env = dante_env
    socksify = require_peer("socksify")
    curl = require_peer("curl")
    result = subprocess.run([socksify, curl, "-sS", "--max-time", "10", http_server.url("/")],
                            env=env, capture_output=True, timeout=30)
    assert b"hello from the target" in result.stdout, result.stderr[-1000:]
    record = srv.wait_records(1)[0]
    assert record["command"] == "connect" and record["port"] == http_server.port


UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"dante udp", ("127.0.0.1", int(sys.argv[1])))
data, source = s.recvfrom(100)
print(data.decode(), source[1])
"""


def test_dante_client_udp(dante_env, udp_echo_server):
    srv, env = dante_env
    socksify = require_peer("socksify")
    result = subprocess.run(
        [socksify, sys.executable, "-c", UDP_CLIENT, str(udp_echo_server[1])],
        env=env, capture_output=True, timeout=30,
    )
    assert result.stdout.split() == [b"dante", b"udp", str(udp_echo_server[1]).encode()], \
        result.stderr[-1000:]
    record = srv.wait_records(1)[0]
    assert record["command"] == "udp" and record["bytes_up"] == record["bytes_down"] == 9


@pytest.fixture
def bind_accept(build_c):
    return build_c(PROGS / "bind_accept.c", "-O")


def _read_line(proc, timeout=30):
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            raise AssertionError(f"no line from {proc.args}: {line!r}")
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            raise AssertionError(f"{proc.args} ended: {proc.stderr.read()[-1000:]!r}")
        line += chunk
    return line.decode().split()


def test_dante_client_bind(dante_env, bind_accept):
    srv, env = dante_env
    socksify = require_peer("socksify")
    proc = subprocess.Popen([socksify, bind_accept], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        tag, host, port = _read_line(proc)
        assert tag == "ADDR" and host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=10) as peer:
            tag, peer_host, peer_port = _read_line(proc)
            assert (tag, peer_host, int(peer_port)) == ("PEER", *peer.getsockname())
            peer.sendall(b"hello binder")
            answer = b""
            while len(answer) < 23 and (chunk := peer.recv(100)):  # TCP may split it
                answer += chunk
            assert answer == b"hi from the bind client"
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
    record = srv.wait_records(1)[0]
    assert record["command"] == "bind" and record["outcome"] == "ok"
    assert record["bytes_up"] == 23 and record["bytes_down"] == 12
