"""SOCKS servers nobody here wrote, as pytest factory fixtures: ``microsocks`` and ``danted``.

::

    def test_x(microsocks, danted):
        m = microsocks(users={"alice": "s3cret"})       # SOCKS5 only; at most one user
        d = danted(users={"bob": "pw"}, allow_bind=True, allow_udp=True)   # SOCKS4 and 5
        m.url("socks5h", "alice", "s3cret")

Both listen on a free 127.0.0.1 port (picked here, so a program that loses it to another
socket before it binds is started again on a new one); the fixture waits (bounded) until the
port accepts a connection, and stops the process at the end of the test. Dante checks user
names against system accounts, so ``danted(users=...)`` creates throwaway system users
(``useradd`` + ``chpasswd``; root only, otherwise the test is skipped loudly) and removes
them afterwards.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time

import pytest

from .peers import require_peer
from .socks_server import proxy_url


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ExitedEarly(RuntimeError):
    """The program exited before it listened (most likely: another socket took its port)."""


def wait_listening(proc: subprocess.Popen, host: str, port: int, timeout: float = 30) -> None:
    """Wait (bounded, generous for a loaded machine) until ``host:port`` accepts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise ExitedEarly(f"{proc.args[0]} exited with {proc.returncode}: {out[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{proc.args[0]} did not listen on {host}:{port} in {timeout}s")


def start_on_free_port(launch, host: str = "127.0.0.1", attempts: int = 5):
    """``launch(port)`` -> Popen of a program told its port on the command line; returns
    ``(proc, port)`` once it listens. The port is picked free and only bound later by the
    program, so another socket can take it in between: a program that exits before
    listening is started again on a new port (bounded)."""
    for _attempt in range(attempts):
        port = free_port(host)
        proc = launch(port)
        try:
            wait_listening(proc, host, port)
            return proc, port
        except ExitedEarly as exc:
            stop_process(proc)
            error = exc
    raise error


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stdout:
        proc.stdout.close()


class PeerProxy:
    """A running third-party SOCKS server: ``.host``, ``.port``, ``.url()`` (no records)."""

    def __init__(self, name: str, proc: subprocess.Popen, host: str, port: int, users=None):
        self.name = name
        self.proc = proc
        self.host = host
        self.port = port
        self.users = dict(users or {})
        self.records: list = []  # peers keep no records we can read

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def url(self, scheme: str = "socks5h", user=None, password=None) -> str:
        return proxy_url(scheme, self.host, self.port, user, password)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def microsocks():
    """Factory: ``microsocks(users=None)`` -> :class:`PeerProxy` (SOCKS5, one user at most)."""
    program = require_peer("microsocks")
    started: list[PeerProxy] = []

    def start(users=None):
        if users and len(users) > 1:
            raise ValueError("microsocks supports a single user")

        def launch(port: int) -> subprocess.Popen:
            args = [program, "-i", "127.0.0.1", "-p", str(port)]
            for name, password in (users or {}).items():
                args += ["-u", name, "-P", password]
            return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        proc, port = start_on_free_port(launch)
        handle = PeerProxy("microsocks", proc, "127.0.0.1", port, users)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


DANTED_CONF = """\
logoutput: {log}
debug: 0
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: {method}
user.privileged: root
user.unprivileged: nobody
timeout.negotiate: 10
timeout.io: 60

client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error
}}

socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: {commands}
    log: error
}}
{reply_rule}
"""

REPLY_RULE = """
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: {replies}
    log: error
}}
"""


#: GECOS field of the throwaway accounts, so a leftover one is recognised and reused.
_GECOS = "socksify test account"


def _set_password(name: str, password: str) -> None:
    subprocess.run(
        ["chpasswd"], input=f"{name}:{password}\n".encode(), check=True, capture_output=True,
        timeout=30,
    )


def _create_system_user(name: str, password: str) -> None:
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", _GECOS,
         name],
        check=True, capture_output=True, timeout=30,
    )
    _set_password(name, password)


def _delete_system_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, timeout=30)


@pytest.fixture
def danted(tmp_path):
    """Factory: ``danted(users=None, allow_bind=True, allow_udp=True)`` -> :class:`PeerProxy`.

    SOCKS4 and SOCKS5 (Dante 1.4 rejects SOCKS4a) on a free 127.0.0.1 port; with
    ``users`` the SOCKS5 method is username/password against throwaway system accounts of
    those names (root only; marked in their GECOS field and deleted after the test; a name
    that is a real system account skips the test).
    """
    program = require_peer("danted")
    started: list[PeerProxy] = []
    created: list[str] = []

    def start(users=None, allow_bind=True, allow_udp=True):
        accounts = {}
        if users:
            if os.geteuid() != 0:
                pytest.skip("MISSING PRIVILEGE: danted(users=...) needs root to create users")
            for name, password in users.items():
                try:
                    existing = pwd.getpwnam(name)
                except KeyError:
                    existing = None
                if existing is None:
                    _create_system_user(name, password)
                elif existing.pw_gecos == _GECOS:  # ours, left over from an earlier run
                    _set_password(name, password)
                else:
                    pytest.skip(f"danted(users=...): {name!r} is a real system account; "
                                "pick a throwaway name")
                if name not in created:
                    created.append(name)
                accounts[name] = password
        commands = ["connect"]
        replies = []
        if allow_bind:
            commands.append("bind")
            replies.append("bindreply")
        if allow_udp:
            commands.append("udpassociate")
            replies.append("udpreply")
        reply_rule = REPLY_RULE.format(replies=" ".join(replies)) if replies else ""
        env = dict(os.environ, TMPDIR=str(tmp_path))

        def launch(port: int) -> subprocess.Popen:
            conf = tmp_path / f"danted-{port}.conf"
            conf.write_text(
                DANTED_CONF.format(
                    port=port,
                    log=tmp_path / f"danted-{port}.log",
                    method="username" if users else "none",
                    commands=" ".join(commands),
                    reply_rule=reply_rule,
                )
            )
            return subprocess.Popen(
                [program, "-f", str(conf), "-N", "1", "-p",
                 str(tmp_path / f"danted-{port}.pid")],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            )

        proc, port = start_on_free_port(launch)
        handle = PeerProxy("danted", proc, "127.0.0.1", port, accounts or None)
        handle.log_path = tmp_path / f"danted-{port}.log"
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
    for account in created:
        _delete_system_user(account)
