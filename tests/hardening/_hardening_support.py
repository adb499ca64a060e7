"""Helpers for the hardening tests: the server as a subprocess, a SOCKS5 client built on the
sans-IO core, and /proc readings (open fds, RSS, CPU time) of a process.

The server runs as a subprocess where the test measures the process itself (fds, memory,
CPU, a low RLIMIT_NOFILE); its log goes to a file so a flood of warnings cannot block it.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    Reply,
    Request,
    Role,
    UserPassAuth,
)

#: every hostile test's server only reaches loopback (no rule bypass can reach further)
LOOPBACK_ONLY_RULES = """
[[rules]]
action = "allow"
to = ["127.0.0.0/8", "::1"]
"""


def only_to(port: int) -> str:
    """Rules that let the server reach 127.0.0.1:``port`` and nothing else (random requests
    must not poke at other services on this machine)."""
    return f"""
[[rules]]
action = "allow"
to = ["127.0.0.1"]
ports = [{port}]
"""


def server_env() -> dict:
    """The environment for a server subprocess: it imports the same socksify as this process
    (the installed package under tox, the checkout with an editable install)."""
    import socksify

    env = dict(os.environ)
    where = str(Path(socksify.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [where, env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """``python -m socksify.server`` on 127.0.0.1:0, log in ``tmp_path/server.log``."""

    def __init__(self, tmp_path: Path, config: str = "", args=(), nofile: int | None = None,
                 listen: str = "127.0.0.1:0", name: str = "server"):
        self.tmp_path = tmp_path
        self.config_path = tmp_path / f"{name}.toml"
        self.config_path.write_text(config)
        self.config_path.chmod(0o600)
        self.log_path = tmp_path / f"{name}.log"
        self.args = ["--listen", listen, "--config", str(self.config_path), *args]
        self.nofile = nofile
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def _limit(self) -> None:
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self, timeout: float = 60) -> ServerProcess:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socksify.server", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            preexec_fn=self._limit, env=server_env(),
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if "listening on" in line:
                    self.port = int(line.rsplit(":", 1)[1])
                    return self
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.log()}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"server not ready: {self.log()}")

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_fds(self, at_most: int, timeout: float = 15) -> int:
        """Wait (bounded) until the server has at most ``at_most`` open fds; return the count."""
        deadline = time.monotonic() + timeout
        count = self.fds()
        while count > at_most and time.monotonic() < deadline:
            time.sleep(0.1)
            count = self.fds()
        return count

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def socks5_connect(proxy: tuple[str, int], dest: tuple[str, int], *, user=None, password=None,
                   timeout: float = 10) -> tuple[socket.socket, Reply]:
    """A SOCKS5 CONNECT through ``proxy`` with the sans-IO core; returns (socket, reply).

    The caller closes the socket; check ``reply.code`` (0 = succeeded).
    """
    sock = socket.create_connection(proxy, timeout=timeout)
    try:
        conn = Connection(Role.CLIENT, 5)
        method = AuthMethod.USERNAME_PASSWORD if user is not None else AuthMethod.NO_AUTH
        sock.sendall(conn.send(Greeting((method,))))
        request = Request(Command.CONNECT, Address.from_host(dest[0]), dest[1])
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                data = sock.recv(4096)
                conn.receive_data(data)
                continue
            if isinstance(event, MethodSelected):
                if event.method == AuthMethod.USERNAME_PASSWORD:
                    sock.sendall(conn.send(UserPassAuth(user.encode(), password.encode())))
                elif event.method == AuthMethod.NO_AUTH:
                    sock.sendall(conn.send(request))
                else:
                    raise ConnectionRefusedError("no acceptable method")
            elif isinstance(event, Reply):
                # Bytes the target sent right behind the reply are dropped: callers either
                # expect none (an echo server speaks second) or do not care (a flood).
                conn.trailing_data  # noqa: B018
                return sock, event
            elif event.success:  # AuthResult
                sock.sendall(conn.send(request))
            else:
                raise PermissionError("authentication failed")
    except BaseException:
        sock.close()
        raise


def echo_round_trip(proxy: tuple[str, int], echo: tuple[str, int], payload: bytes,
                    timeout: float = 10) -> bytes:
    """CONNECT to the echo server through ``proxy``, send ``payload``, return what came back."""
    sock, reply = socks5_connect(proxy, echo, timeout=timeout)
    with sock:
        if reply.code != 0:
            raise ConnectionRefusedError(f"reply {reply.code}")
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
