"""SIGHUP: ``socksify-server`` reads its configuration again (real server processes, real
SOCKS clients, real echo targets; everything on 127.0.0.1).

Every test waits for the server's own log line ("configuration reloaded from FILE", or the
error or restart warning) before it looks at the effect, with generous bounds.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from support.targets import pattern_bytes

import socksify
from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    Command,
    Connection,
    Greeting,
    MethodSelected,
    Request,
    Role,
)
from socksify.server import ServerConfig
from socksify.server._config import ConfigError
from socksify.server._server import Server

from ._server_core_client import CoreClient
from .test_workers import children, wait_children

pytestmark = pytest.mark.e2e

READY = re.compile(r"socksify-server listening on (\S+):(\d+)$")
RELOADED = "configuration reloaded from"
NOT_RELOADED = "configuration not reloaded"
WAIT = 60  # seconds: generous, it only costs time when a test fails


class ServerProcess:
    """``python -m socksify.server ARGS`` in ``cwd``, not the checkout: the server imports
    the socksify this test imported (the installed one under tox), never the checkout's by
    accident. stderr is read by a thread into ``lines``, which tests wait on."""

    def __init__(self, cwd, *args: str):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(socksify.__file__)))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socksify.server", *args], cwd=cwd, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<EOF>")
            self._changed.notify_all()

    def wait_for(self, text: str, count: int = 1, start: int = 0) -> list[str]:
        """The first ``count`` lines from ``lines[start]`` on that contain ``text``
        (bounded: fails with the log so far)."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = [line for line in self.lines[start:] if text in line]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or "<EOF>" in self.lines:
                    raise AssertionError(
                        f"waited for {count} line(s) with {text!r}; stderr: {self.lines}"
                    )
                self._changed.wait(left)

    def since(self, start: int) -> list[str]:
        with self._changed:
            return list(self.lines[start:])

    def mark(self) -> int:
        with self._changed:
            return len(self.lines)

    def listening(self, count: int = 1) -> list[tuple[str, int]]:
        out = []
        for line in self.wait_for("listening on", count):
            host, port = READY.search(line).groups()
            out.append((host, int(port)))
        return out

    def hup(self, text: str = RELOADED, count: int = 1) -> list[str]:
        """SIGHUP, then wait for ``count`` lines with ``text``; returns every line since."""
        start = self.mark()
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for(text, count, start)
        return self.since(start)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(WAIT)
            self._reader.join(WAIT)
            self.proc.stderr.close()


@pytest.fixture
def start_server(tmp_path):
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(tmp_path, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.stop() == 0, server.lines


class Socks5(CoreClient):
    """A SOCKS5 CONNECT that reports how it ended instead of asserting: ``outcome`` is
    "auth-failed", "no-acceptable-method" or the reply code; after 0 the socket relays."""

    def __init__(self, server, target, user=None, password=None):
        super().__init__(server, 5, user, password, timeout=WAIT)
        self.outcome = self.negotiate() or self.send_request(Command.CONNECT, *target).code

    def echo(self, payload: bytes) -> bytes:
        """Send ``payload`` through the relay; what the echo target sends back."""
        self.sock.sendall(payload)
        got = b""  # (nothing came after the reply: the target speaks only when spoken to)
        while len(got) < len(payload):
            chunk = self.sock.recv(1 << 20)
            assert chunk, f"closed after {len(got)} of {len(payload)} bytes"
            got += chunk
        return got


def outcome(server, target, user=None, password=None, payload=b"hello reload"):
    """One CONNECT through ``server``; for a granted one, the echo is checked too."""
    client = Socks5(server, target, user, password)
    try:
        if client.outcome == 0:
            assert client.echo(payload) == payload
        return client.outcome
    finally:
        client.close()


DENY_ECHO = """
[[rules]]
action = "deny"
ports = [{port}]

[[rules]]
action = "allow"
"""
ALLOW_ALL = """
[[rules]]
action = "allow"
"""
NOT_ALLOWED = 2  # RFC 1928 §6: connection not allowed by ruleset


def write(path, text: str) -> None:
    """Replace the file at once (what an editor's save or a deploy does); owner-only, as a
    file with passwords should be."""
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    new.chmod(0o600)
    os.replace(new, path)


def test_a_rule_change_applies_after_sighup(tmp_path, start_server, tcp_echo_server):
    config = tmp_path / "server.toml"
    write(config, DENY_ECHO.format(port=tcp_echo_server[1]))
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config))
    [address] = srv.listening()
    assert outcome(address, tcp_echo_server) == NOT_ALLOWED
    write(config, ALLOW_ALL)
    lines = srv.hup()
    assert f"{RELOADED} {config}" in lines[-1]
    assert outcome(address, tcp_echo_server) == 0
    # ... and back: a reload can deny again what it allowed
    write(config, DENY_ECHO.format(port=tcp_echo_server[1]))
    srv.hup()
    assert outcome(address, tcp_echo_server) == NOT_ALLOWED


def test_users_added_and_removed_by_a_reload(tmp_path, start_server, tcp_echo_server):
    config = tmp_path / "server.toml"
    write(config, '[users]\nalice = "alice-pw"\n')
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config))
    [address] = srv.listening()
    assert outcome(address, tcp_echo_server, "alice", "alice-pw") == 0
    assert outcome(address, tcp_echo_server, "bob", "bob-pw") == "auth-failed"
    write(config, '[users]\nbob = "bob-pw"\n')
    srv.hup()
    assert outcome(address, tcp_echo_server, "bob", "bob-pw") == 0
    assert outcome(address, tcp_echo_server, "alice", "alice-pw") == "auth-failed"
    # No users left: authentication is no longer required.
    write(config, "")
    srv.hup()
    assert outcome(address, tcp_echo_server) == 0


def test_users_from_the_command_line_survive_a_reload(tmp_path, start_server, tcp_echo_server):
    """The same options are applied again over the new file: --user still adds its user."""
    config = tmp_path / "server.toml"
    write(config, '[users]\nalice = "alice-pw"\n')
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config),
                       "--user", "carol:carol-pw")
    [address] = srv.listening()
    write(config, '[users]\nbob = "bob-pw"\n')
    srv.hup()
    assert outcome(address, tcp_echo_server, "carol", "carol-pw") == 0
    assert outcome(address, tcp_echo_server, "bob", "bob-pw") == 0
    assert outcome(address, tcp_echo_server, "alice", "alice-pw") == "auth-failed"


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ("[[rules]\naction = \"allow\"\n", "invalid TOML"),
        ("[server]\nbogus = 1\n", "unknown key(s) bogus"),
        ("[timeouts]\nidle = -1\n", "idle must be a number >= 0"),
    ],
)
def test_a_bad_file_is_logged_and_the_old_config_keeps_serving(
    tmp_path, start_server, tcp_echo_server, bad, problem, workers
):
    config = tmp_path / "server.toml"
    write(config, DENY_ECHO.format(port=tcp_echo_server[1]) + '[users]\nalice = "alice-pw"\n')
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config), "--workers", workers)
    [address] = srv.listening()
    if workers != "1":
        wait_children(srv.proc.pid, int(workers))
    start = srv.mark()
    write(config, bad)
    srv.hup(NOT_RELOADED)
    assert outcome(address, tcp_echo_server, "alice", "alice-pw") == NOT_ALLOWED
    assert outcome(address, tcp_echo_server) == "no-acceptable-method"
    # The server still reloads: a good file after the bad one is taken.
    write(config, ALLOW_ALL)
    srv.hup(count=int(workers))
    assert outcome(address, tcp_echo_server) == 0
    logged = srv.since(start)
    errors = [line for line in logged if NOT_RELOADED in line]
    assert len(errors) == 1, logged  # once, by the parent when there are workers
    assert str(config) in errors[0] and problem in errors[0], errors
    assert "old one stays in use" in errors[0]
    assert not any("Traceback" in line for line in logged), logged


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_a_relay_open_before_the_reload_keeps_passing_bytes(
    tmp_path, start_server, tcp_echo_server, relay
):
    config = tmp_path / "server.toml"
    write(config, f'[server]\nrelay = "{relay}"\n')
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config))
    [address] = srv.listening()
    client = Socks5(address, tcp_echo_server)
    try:
        assert client.outcome == 0
        assert client.echo(b"before") == b"before"
        # The new file denies this very destination and changes the idle timeout.
        write(config, f'[server]\nrelay = "{relay}"\n[timeouts]\nidle = 300\n'
                      + DENY_ECHO.format(port=tcp_echo_server[1]))
        srv.hup()
        assert outcome(address, tcp_echo_server) == NOT_ALLOWED  # the reload took effect
        payload = pattern_bytes(2 << 20)
        assert client.echo(payload) == payload  # the relay from before is untouched
        client.sock.shutdown(socket.SHUT_WR)
        client.sock.settimeout(WAIT)
        assert client.sock.recv(1) == b""  # the echo's half-close comes through
    finally:
        client.close()


def test_a_handshake_in_progress_is_decided_by_the_new_rules(
    tmp_path, start_server, tcp_echo_server
):
    """Documented: a request not decided yet at the reload is judged by the new config."""
    config = tmp_path / "server.toml"
    write(config, "[timeouts]\nhandshake = 300\n" + DENY_ECHO.format(port=tcp_echo_server[1]))
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config))
    [address] = srv.listening()
    client = socket.create_connection(address, timeout=WAIT)
    try:
        conn = Connection(Role.CLIENT, 5)
        client.sendall(conn.send(Greeting((AuthMethod.NO_AUTH,))))
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(client.recv(100))
        assert event == MethodSelected(AuthMethod.NO_AUTH)  # the server is in the handshake
        write(config, "[timeouts]\nhandshake = 300\n" + ALLOW_ALL)
        srv.hup()
        client.sendall(conn.send(Request(Command.CONNECT, Address.from_host(
            tcp_echo_server[0]), tcp_echo_server[1])))
        while (event := conn.next_event()) is NEED_DATA:
            conn.receive_data(client.recv(100))
        assert event.code == 0
    finally:
        client.close()


def test_workers_all_reload(tmp_path, start_server, tcp_echo_server):
    config = tmp_path / "server.toml"
    write(config, DENY_ECHO.format(port=tcp_echo_server[1]))
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config), "--workers", "2")
    [address] = srv.listening()
    workers = wait_children(srv.proc.pid, 2)
    for _ in range(4):
        assert outcome(address, tcp_echo_server) == NOT_ALLOWED
    write(config, ALLOW_ALL)
    lines = srv.hup(count=2)  # one line per worker
    assert sum("is valid: reloading the workers" in line for line in lines) == 1, lines
    for _ in range(12):  # the kernel spreads these over both workers
        assert outcome(address, tcp_echo_server) == 0
    assert children(srv.proc.pid) == workers  # reloaded, not restarted
    # A worker started after the reload (replacing a dead one) has the new configuration.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + WAIT
    while (now := children(srv.proc.pid)) and (len(now) != 2 or victim in now):
        assert time.monotonic() < deadline, f"worker {victim} was not replaced: {now}"
        time.sleep(0.05)
    srv.wait_for("starting a new one")
    for _ in range(12):
        assert outcome(address, tcp_echo_server) == 0


def test_sighups_while_the_workers_start_kill_none(tmp_path, start_server, tcp_echo_server):
    """A worker gets SIGHUP before its event loop handles it: the signal waits (blocked
    since the fork) instead of killing the worker, and is handled once the loop is up."""
    config = tmp_path / "server.toml"
    write(config, ALLOW_ALL)
    srv = start_server("--listen", "127.0.0.1:0", "--config", str(config), "--workers", "2")
    [address] = srv.listening()
    # The parent forks right after its ready line: SIGHUPs from now on reach workers that
    # are still starting. (The sleep paces the signals; it orders nothing.)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.002)
    srv.hup(count=2)
    for _ in range(12):
        assert outcome(address, tcp_echo_server) == 0
    assert srv.stop() == 0  # and every line is read
    assert not any("exited with status" in line for line in srv.lines), srv.lines


class FifoConfig:
    """A config "file" that is a FIFO: each time the server opens it to read, a thread
    writes ``text`` and closes it. ``first_reader`` is set when the server's first read has
    begun (it is then in main(), past its start) and the write waits for ``go``: so a test
    can signal the server at a known point of its start-up, before any handler exists."""

    def __init__(self, path, text: str):
        self.path, self.text = path, text
        os.mkfifo(path)
        self.first_reader, self.go, self.stopping = (threading.Event() for _ in range(3))
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _open(self) -> int | None:
        """Open for writing once a reader has the FIFO open (ENXIO until then)."""
        while not self.stopping.is_set():
            try:
                return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.005)
        return None

    def _feed(self) -> None:
        while (fd := self._open()) is not None:
            if not self.first_reader.is_set():
                self.first_reader.set()
                self.go.wait(WAIT)
            os.set_blocking(fd, True)
            os.write(fd, self.text.encode())
            os.close(fd)
            time.sleep(0.05)  # the reader sees EOF and closes before the next open

    def close(self) -> None:
        self.stopping.set()
        self.go.set()
        self.thread.join(WAIT)
        # A reader still waiting (a test that failed early) gets an EOF, not a hang that
        # would keep its process from stopping.
        for _ in range(10):
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                break
            time.sleep(0.05)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_sighup_during_start_up_is_a_reload_not_death(tmp_path, start_server,
                                                        tcp_echo_server, workers):
    """SIGHUP's default action ends a process: one that comes while the server is still
    starting (here: while it reads its config file, before any handler exists) must wait
    and then reload it, as `systemctl reload` right after a start would expect."""
    config = FifoConfig(tmp_path / "server.toml", ALLOW_ALL)
    try:
        srv = start_server("--listen", "127.0.0.1:0", "--config", str(config.path),
                           "--workers", workers)
        assert config.first_reader.wait(WAIT), "the server never read its config"
        srv.proc.send_signal(signal.SIGHUP)
        config.go.set()
        [address] = srv.listening()
        # every process that reloads reads the FIFO: the feeder must outlive those reads
        # (the parent checks the file, then each worker reloads and logs)
        srv.wait_for(RELOADED, count=int(workers))
        assert outcome(address, tcp_echo_server) == 0
        assert srv.proc.poll() is None
    finally:
        config.close()


def test_a_changed_listen_address_needs_a_restart(tmp_path, start_server, tcp_echo_server):
    config = tmp_path / "server.toml"
    write(config, '[server]\nlisten = "127.0.0.1:0"\n' + DENY_ECHO.format(port=tcp_echo_server[1]))
    srv = start_server("--config", str(config))
    [address] = srv.listening()
    write(config, '[server]\nlisten = "127.0.0.2:0"\n' + ALLOW_ALL)
    lines = srv.hup()
    warnings = [line for line in lines if "restart" in line]
    assert len(warnings) == 1 and "listen" in warnings[0], lines
    # Still on the old address, with the rest (the rules) reloaded.
    assert outcome(address, tcp_echo_server) == 0


def test_sighup_without_a_config_file_applies_the_same_options(start_server, tcp_echo_server):
    srv = start_server("--listen", "127.0.0.1:0", "--user", "alice:alice-pw")
    [address] = srv.listening()
    lines = srv.hup()
    assert "the command line" in lines[-1], lines
    assert outcome(address, tcp_echo_server, "alice", "alice-pw") == 0
    assert outcome(address, tcp_echo_server) == "no-acceptable-method"


def test_reload_keeps_the_listen_address_and_refuses_an_open_proxy():
    """Server.reload checks the config it would run: the non-loopback address kept from
    start plus no users would be an open proxy."""
    server = Server(ServerConfig(listen=[("192.0.2.1", 1080)], users={"alice": "pw"}))
    with pytest.raises(ConfigError, match="open proxy"):
        server.reload(ServerConfig(listen=[("127.0.0.1", 1080)]))
    assert server.config.users == {"alice": "pw"} and server.auth
    applied = server.reload(ServerConfig(listen=[("127.0.0.1", 1080)], users={"bob": "pw"},
                                         relay="portable", workers=3, connect_timeout=3))
    assert applied is server.config
    assert applied.listen == [("192.0.2.1", 1080)]
    assert (applied.relay, applied.workers) == ("threads", 1)
    assert applied.users == {"bob": "pw"} and applied.connect_timeout == 3


# -- Server.reload in process: what happens to the sessions already there -------------------


async def _open_relay(address, target):
    """A SOCKS4 CONNECT through ``address`` (asyncio streams); returns (reader, writer)."""
    reader, writer = await asyncio.open_connection(*address)
    conn = Connection(Role.CLIENT, 4)
    writer.write(conn.send(Request(Command.CONNECT, Address.from_host(target[0]), target[1])))
    reply = await asyncio.wait_for(reader.readexactly(8), WAIT)
    assert reply[1] == 90, reply
    return reader, writer


async def _echoes(reader, writer, payload=b"ping") -> bool:
    writer.write(payload)
    try:
        return await asyncio.wait_for(reader.readexactly(len(payload)), WAIT) == payload
    except asyncio.IncompleteReadError:
        return False


def test_a_new_idle_timeout_times_new_relays_only(tcp_echo_server):
    """Relays keep the idle timeout they started with; relays started later get the new one."""
    records = []

    async def main():
        config = ServerConfig(listen=[("127.0.0.1", 0)], idle_timeout=300)
        async with Server(config, on_session=records.append) as server:
            address = server.addresses[0]
            old = await _open_relay(address, tcp_echo_server)
            assert await _echoes(*old)
            server.reload(config.replace(idle_timeout=0.4))
            new = await _open_relay(address, tcp_echo_server)
            assert await _echoes(*new)
            # The new relay is closed for idleness; the old one has been idle longer.
            assert await asyncio.wait_for(new[0].read(), WAIT) == b""
            assert await _echoes(*old)
            for _reader, writer in (old, new):
                writer.close()

    asyncio.run(main())
    assert [r["outcome"] for r in records][:1] == ["idle-timeout"], records


@pytest.mark.parametrize(("after", "closed"), [(0.3, True), (0, False)])
def test_a_new_handshake_timeout_reaches_the_handshakes_in_progress(after, closed):
    """A shorter handshake timeout cuts off a client stalled in its handshake; 0 (none)
    leaves it waiting, and its handshake can still complete."""
    records = []

    async def main():
        config = ServerConfig(listen=[("127.0.0.1", 0)], handshake_timeout=300)
        async with Server(config, on_session=records.append) as server:
            reader, writer = await asyncio.open_connection(*server.addresses[0])
            writer.write(b"\x05")  # half a greeting: the session is in its handshake
            await writer.drain()
            server.reload(config.replace(handshake_timeout=after))
            if closed:
                assert await asyncio.wait_for(reader.read(), WAIT) == b""
            else:
                # Still served: the rest of the greeting gets the method selection.
                writer.write(b"\x01\x00")
                assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\x05\x00"
            writer.close()

    asyncio.run(main())
    if closed:
        assert [r["outcome"] for r in records] == ["handshake-timeout"], records
