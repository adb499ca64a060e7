"""Real programs under the native shim, end to end (socksify-run or LD_PRELOAD).

Complements tests/native/test_e2e_connect.py and test_e2e_dns.py (curl, wget, ncat, sh,
Python urllib, git clone by name): here git clone by IP through socksify-run, ``sh -c``
whose exec'd curl and wget both go through socksify-run's proxy, CPython by name and by IP,
a multi-threaded C client (8 threads x 50 connects, by IP and by a name only the proxy
knows) and LD_BIND_NOW=1 for Python and wget. dig is in test_udp.py, active FTP in
test_bind.py. Every test checks the proxy's session records, so a direct connection cannot
pass unnoticed.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from support import gitd as _gitd
from support.peers import require_peer
from support.targets import pattern_bytes

git_daemon = _gitd.git_daemon

PROGS = Path(__file__).parent / "progs"
TIMEOUT = 60


def connects(srv, count: int | None = None) -> list[dict]:
    records = srv.wait_records(count) if count else srv.records
    return [r for r in records if r["command"] == "connect"]


@pytest.mark.e2e
def test_git_clone_by_ip_via_socksify_run(shim, socks_server, git_daemon, tmp_path):
    git = require_peer("git")
    srv = socks_server()
    url = git_daemon.url
    clone = tmp_path / "clone"
    env = _gitd.git_env(str(tmp_path))
    extra = {k: v for k, v in env.items() if k.startswith("GIT_") or k == "HOME"}
    result = shim.run_cli(
        ["--proxy", srv.url("socks5h"), "--", git, "clone", "-q", url, str(clone)], **extra
    )
    assert result.returncode == 0, result.stderr.decode()
    head = subprocess.run(
        [git, "-C", str(clone), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=True,
    ).stdout.strip()
    assert head == git_daemon.head
    for path, content in git_daemon.files.items():
        assert (clone / path).read_bytes() == content
    [record] = connects(srv, 1)
    assert (record["destination"], record["port"]) == ("127.0.0.1", git_daemon.port)


@pytest.mark.e2e
def test_sh_c_exec_children(shim, socks_server, http_server, tmp_path):
    """The shim follows exec: a shell running curl then wget, both proxied."""
    curl, wget = require_peer("curl"), require_peer("wget")
    srv = socks_server()
    script = (
        f"{curl} -sS --max-time 20 -o {tmp_path}/a {http_server.url('/bytes/1000')} && "
        f"{wget} -q -T 20 --tries=1 -O {tmp_path}/b {http_server.url('/bytes/2000')} && "
        "echo both-done"
    )
    result = shim.run_cli(["--proxy", srv.url("socks5h"), "--", "sh", "-c", script])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip() == b"both-done"
    assert (tmp_path / "a").read_bytes() == pattern_bytes(1000)
    assert (tmp_path / "b").read_bytes() == pattern_bytes(2000)
    assert len(connects(srv, 2)) == 2


@pytest.mark.e2e
def test_python_under_preload(shim, socks_server, http_server):
    """CPython is a dynamically linked program like any other: urllib by name and by IP."""
    srv = socks_server(hosts={"py.only-proxy.test": "127.0.0.1"})
    code = (
        "import urllib.request\n"
        f"a = urllib.request.urlopen('http://py.only-proxy.test:{http_server.port}/bytes/5000',"
        " timeout=20).read()\n"
        f"b = urllib.request.urlopen('{http_server.url('/')}', timeout=20).read()\n"
        "print(len(a), len(b))\n"
    )
    result = shim.run_cli(["--proxy", srv.url("socks5h"), "--", sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.split() == [b"5000", str(len(http_server.files["/"])).encode()]
    destinations = sorted(r["destination"] for r in connects(srv, 2))
    assert destinations == ["127.0.0.1", "py.only-proxy.test"]


@pytest.fixture(scope="module")
def mt_connect(build_c):
    return build_c(PROGS / "mt_connect.c", "-O2", "-Wall", "-pthread")


@pytest.mark.e2e
@pytest.mark.parametrize("host", ["127.0.0.1", "echo.only-proxy.test"])
def test_mt_connect_8_threads_x_50(shim, socks_server, tcp_echo_server, mt_connect, host):
    srv = socks_server(hosts={"echo.only-proxy.test": "127.0.0.1"})
    result = shim.run(
        [mt_connect, host, str(tcp_echo_server[1]), "8", "50"], srv.url("socks5h"), timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"ok 400\n"
    records = connects(srv, 400)
    assert len(records) == 400
    assert {r["destination"] for r in records} == {host}
    assert all(r["outcome"] == "ok" for r in records)


@pytest.mark.e2e
@pytest.mark.parametrize("program", ["python3", "wget"])
def test_ld_bind_now(shim, socks_server, http_server, program):
    """LD_BIND_NOW=1: every symbol is bound at load time; the library must still load
    (no unresolved symbols) and work."""
    srv = socks_server()
    url = http_server.url("/bytes/3000")
    argv = {
        "wget": [require_peer("wget"), "-q", "-O", "-", "-T", "20", "--tries=1", url],
        "python3": [
            sys.executable,
            "-c",
            "import sys, urllib.request; sys.stdout.buffer.write("
            f"urllib.request.urlopen('{url}', timeout=20).read())",
        ],
    }[program]
    result = shim.run(argv, srv.url("socks5"), LD_BIND_NOW="1")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == pattern_bytes(3000)
    assert len(connects(srv, 1)) == 1
