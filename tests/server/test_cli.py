"""socksify-server as a program: the ready line, signals, exit statuses, --hash-password."""

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from socksify.server._auth import Authenticator

from ._server_core_client import CoreClient

READY = re.compile(rb"^socksify-server listening on (\S+):(\d+)$")


def server_command():
    exe = shutil.which("socksify-server")
    return [exe] if exe else [sys.executable, "-m", "socksify.server"]


def start(*args, env=None):
    return subprocess.Popen(
        [*server_command(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env,
    )


def read_ready_lines(proc, count, timeout=60):
    """Read stderr lines until ``count`` ready lines were seen (bounded)."""
    found, deadline, buf = [], time.monotonic() + timeout, b""
    while len(found) < count:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"no ready line; stderr so far: {buf!r}")
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if not ready:
            continue
        chunk = os.read(proc.stderr.fileno(), 4096)
        buf += chunk
        *lines, rest = buf.split(b"\n")
        for line in lines:
            match = READY.match(line)
            if match:
                found.append((match.group(1).decode(), int(match.group(2))))
        buf = rest
    return found


def stop(proc, signum):
    proc.send_signal(signum)
    try:
        return proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_then_signal_exits_0(signum):
    proc = start("--listen", "127.0.0.1:0")
    [(host, port)] = read_ready_lines(proc, 1)
    assert host == "127.0.0.1" and port > 0
    import socket

    with socket.create_connection((host, port), timeout=5):
        pass
    assert stop(proc, signum) == 0


def test_two_listeners_ipv6_in_brackets():
    proc = start("--listen", "127.0.0.1:0", "--listen", "[::1]:0")
    lines = read_ready_lines(proc, 2)
    assert lines[0][0] == "127.0.0.1" and lines[1][0] == "[::1]"
    assert stop(proc, signal.SIGTERM) == 0


def test_signal_closes_open_sessions(tcp_echo_server):
    import socket

    from socksify.protocol import Address, Command, Connection, Request, Role

    proc = start("--listen", "127.0.0.1:0")
    [(host, port)] = read_ready_lines(proc, 1)
    conn = Connection(Role.CLIENT, 4)
    with socket.create_connection((host, port), timeout=5) as sock:
        request = Request(Command.CONNECT, Address.from_host(tcp_echo_server[0]),
                          tcp_echo_server[1])
        sock.sendall(conn.send(request))
        assert len(sock.recv(8)) == 8  # the reply: the session is open
        assert stop(proc, signal.SIGTERM) == 0
        sock.settimeout(5)
        try:
            assert sock.recv(10) == b""  # closed by the server
        except ConnectionResetError:
            pass


def run(*args, input=None):
    return subprocess.run(
        [*server_command(), *args], input=input, capture_output=True, timeout=30
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "0.0.0.0:0"], "--allow-open-proxy"),
        (["--listen", "::1:80"], "brackets"),
        (["--listen", "127.0.0.1:http"], "bad port"),
        (["--user", "nocolon"], "NAME:PASSWORD"),
        (["--log-level", "loud"], "--log-level"),
        (["--bogus"], "unrecognized arguments"),
        (["--config", "/nonexistent/server.toml"], "cannot read"),
    ],
)
def test_bad_options_exit_2_with_a_message(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message.encode() in result.stderr
    assert b"Traceback" not in result.stderr


def test_bad_config_file_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\naction = "allow"\nports = ["eighty"]\n')
    result = run("--config", str(path))
    assert result.returncode == 2
    assert str(path).encode() in result.stderr and b"rule 1" in result.stderr
    assert b"Traceback" not in result.stderr


# Parses as a hash (salt "salt", digest "hashhashhashhash"): as a --user password it must
# still be the password itself.
WELL_FORMED_HASH = "scrypt$16$1$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA=="


@pytest.mark.parametrize("password", ["scrypt$abc", WELL_FORMED_HASH])
def test_user_password_is_taken_literally(password):
    proc = start("--listen", "127.0.0.1:0", "--user", f"alice:{password}")
    try:
        [(host, port)] = read_ready_lines(proc, 1)
        with CoreClient((host, port), user="alice", password=password) as client:
            assert client.negotiate() is None
        for wrong in (password + "x", "hashhashhashhash", ""):
            with CoreClient((host, port), user="alice", password=wrong) as client:
                assert client.negotiate() == "auth-failed", wrong
    finally:
        assert stop(proc, signal.SIGTERM) == 0


def test_user_password_stays_literal_in_the_config(tmp_path):
    from socksify.server.__main__ import _build_config, build_parser

    path = tmp_path / "s.toml"
    path.write_text(f'[users]\nbob = "{WELL_FORMED_HASH}"\n')
    os.chmod(path, 0o600)
    args = build_parser().parse_args(
        ["--config", str(path), "--user", "alice:scrypt$abc",
         "--user", f"carol:{WELL_FORMED_HASH}"])
    auth = Authenticator(_build_config(args).users)
    assert auth.verify(b"alice", b"scrypt$abc")
    assert auth.verify(b"carol", WELL_FORMED_HASH.encode())
    assert not auth.verify(b"bob", WELL_FORMED_HASH.encode())  # the file's [users]: a hash


@pytest.mark.parametrize(
    ("user", "message"),
    [
        # "\udcff": the byte 0xFF, which is not UTF-8, as subprocess passes it (os.fsencode)
        ("al\udcffice:pw", rb"--user: the user name 'al\udcffice' is not UTF-8"),
        ("alice:s3cr\udcffet", b"--user 'alice': the password is not UTF-8"),
    ],
)
def test_user_that_is_not_utf8_exits_2(user, message):
    result = run("--listen", "127.0.0.1:0", "--user", user)
    assert result.returncode == 2
    assert message in result.stderr
    assert b"Traceback" not in result.stderr and b"s3cr" not in result.stderr


def test_non_loopback_allowed_with_users_or_flag():
    for extra in (["--user", "a:b"], ["--allow-open-proxy"]):
        proc = start("--listen", "0.0.0.0:0", *extra)
        [(host, _port)] = read_ready_lines(proc, 1)
        assert host == "0.0.0.0"
        assert stop(proc, signal.SIGTERM) == 0


def test_hash_password_from_stdin():
    result = run("--hash-password", input=b"correct horse\n")
    assert result.returncode == 0, result.stderr
    stored = result.stdout.decode().strip()
    assert stored.startswith("scrypt$")
    auth = Authenticator({"u": stored})
    assert auth.verify(b"u", b"correct horse")
    assert not auth.verify(b"u", b"correct horse\n")


def test_listen_port_in_use_exits_1():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("--listen", f"127.0.0.1:{busy.getsockname()[1]}")
    assert result.returncode == 1
    assert b"cannot listen" in result.stderr and b"Traceback" not in result.stderr


def test_defaults_and_option_merging(tmp_path):
    from socksify.server.__main__ import _build_config, build_parser

    config = _build_config(build_parser().parse_args([]))
    assert config.listen == [("127.0.0.1", 1080)] and config.users == {}
    path = tmp_path / "s.toml"
    path.write_text('[server]\nlisten = ["127.0.0.1:7000"]\nlog_level = "error"\n'
                    '[users]\nbob = "pw"\n')
    os.chmod(path, 0o600)
    args = build_parser().parse_args(
        ["--config", str(path), "--listen", "[::1]:0", "--user", "alice:a:b",
         "--log-level", "DEBUG"])
    config = _build_config(args)
    assert config.listen == [("::1", 0)]  # --listen replaces the file's list
    assert config.users == {"bob": "pw", "alice": "a:b"}  # --user adds
    assert config.log_level == "debug"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="epoll and /proc: Linux only")
def test_the_server_waits_on_one_epoll_where_python_allows():
    """The threaded path's poller shares asyncio's epoll (socksify/server/_eventloop.py)
    where asyncio takes a loop factory (3.11+); on 3.10 it nests an epoll of its own."""
    proc = subprocess.Popen([sys.executable, "-m", "socksify.server", "--listen",
                             "127.0.0.1:0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        read_ready_lines(proc, 1)
        epolls = 0
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                epolls += os.readlink(f"/proc/{proc.pid}/fd/{fd}") == "anon_inode:[eventpoll]"
            except OSError:
                pass  # closed meanwhile
        assert epolls == (1 if sys.version_info >= (3, 11) else 2)
    finally:
        assert stop(proc, signal.SIGTERM) == 0
