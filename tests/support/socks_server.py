"""The reference server (``socksify.server``) as a pytest factory fixture.

::

    def test_x(socks_server):
        srv = socks_server(users={"alice": "s3cret"}, hosts={"only-proxy.test": "127.0.0.1"})
        srv.url("socks5h", "alice", "s3cret")   # "socks5h://alice:s3cret@127.0.0.1:PORT"
        ...
        srv.records   # one dict per finished session: command, destination, port, user,
                      # outcome ("ok" or an error name), bytes_up, bytes_down, ...

Each server runs in-process on its own event loop thread, on a free port, and is stopped at
the end of the test. ``config`` may be TOML text (as in a config file) or a ServerConfig;
``users``/``hosts``/``listen`` are applied on top of it.
"""

from __future__ import annotations

import threading
import time
import urllib.parse

import pytest

from socksify.server import ServerConfig, ThreadedServer, parse_config_text
from socksify.server._config import parse_hosts_entry, parse_listen


def proxy_url(scheme: str, host: str, port: int, user=None, password=None) -> str:
    """``scheme://[user[:password]@]host:port`` with the credentials percent-encoded."""
    shown = f"[{host}]" if ":" in host else host
    auth = ""
    if user is not None:
        auth = urllib.parse.quote(user, safe="")
        if password is not None:
            auth += ":" + urllib.parse.quote(password, safe="")
        auth += "@"
    return f"{scheme}://{auth}{shown}:{port}"


class SocksServerHandle:
    """A running reference server: ``.host``, ``.port``, ``.url()``, ``.records``."""

    def __init__(self, server: ThreadedServer, records: list, lock: threading.Lock):
        self.server = server
        self.host, self.port = server.addresses[0][:2]
        self.addresses = server.addresses
        self._records = records
        self._lock = lock

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def records(self) -> list[dict]:
        """Records of the sessions finished so far (a copy)."""
        with self._lock:
            return list(self._records)

    def url(self, scheme: str = "socks5h", user=None, password=None) -> str:
        return proxy_url(scheme, self.host, self.port, user, password)

    def wait_records(self, count: int, timeout: float = 30) -> list[dict]:
        """Wait (bounded) until at least ``count`` sessions have finished; return them.

        The server writes a record after the session's sockets are closed, so a client that
        has finished is no proof that the record exists yet: wait for it. The bound is
        generous (a loaded CI machine); it only costs time when the test fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records
            if len(records) >= count:
                return records
            time.sleep(0.01)
        records = self.records
        raise AssertionError(
            f"expected {count} session records, got {len(records)}: {records[-3:]} (last 3)"
        )

    def stop(self) -> None:
        self.server.stop()


def make_config(config=None, users=None, hosts=None, listen="127.0.0.1:0") -> ServerConfig:
    if isinstance(config, str):
        base = ServerConfig(listen=[parse_listen(listen)])
        cfg = parse_config_text(config, base, where="test config")
    elif isinstance(config, ServerConfig):
        cfg = config.replace()
    else:
        cfg = ServerConfig()
    if listen is not None and not isinstance(config, str):
        cfg.listen = [parse_listen(listen)]
    elif isinstance(config, str) and cfg.listen == [("127.0.0.1", 1080)]:
        cfg.listen = [parse_listen(listen)]
    if users:
        cfg.users = {**cfg.users, **users}
    if hosts:
        cfg.hosts = {**cfg.hosts, **{n: parse_hosts_entry(n, a) for n, a in hosts.items()}}
    cfg.check()
    return cfg


@pytest.fixture
def socks_server():
    """Factory: ``socks_server(users=None, config=None, hosts=None, listen="127.0.0.1:0",
    clock=None)`` -> :class:`SocksServerHandle`."""
    started: list[SocksServerHandle] = []

    def start(users=None, config=None, hosts=None, listen="127.0.0.1:0", clock=None):
        cfg = make_config(config, users, hosts, listen)
        records: list[dict] = []
        lock = threading.Lock()

        def on_session(record: dict) -> None:
            with lock:
                records.append(record)

        server = ThreadedServer(cfg, on_session=on_session, clock=clock).start(timeout=60)
        handle = SocksServerHandle(server, records, lock)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
