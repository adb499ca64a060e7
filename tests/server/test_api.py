"""The Python API: ``async with Server(cfg)``, ``run_in_thread``, the session hook."""

import asyncio
import datetime
import socket

import pytest

from socksify.protocol import Address, Command, Connection, Reply, Request, Role
from socksify.server import ConfigError, Server, ServerConfig, format_record, run_in_thread


async def _socks4_connect(address, target):
    reader, writer = await asyncio.open_connection(*address)
    conn = Connection(Role.CLIENT, 4)
    writer.write(conn.send(Request(Command.CONNECT, Address.from_host(target[0]), target[1])))
    event = None
    while not isinstance(event, Reply):
        conn.receive_data(await reader.read(100))
        event = conn.next_event()
    writer.write(b"abc")
    data = conn.trailing_data
    while len(data) < 3:
        data += await reader.read(100)
    writer.close()
    await writer.wait_closed()
    return event, data


@pytest.mark.e2e
def test_async_with_server(tcp_echo_server):
    records = []

    async def main():
        config = ServerConfig(listen=[("127.0.0.1", 0), ("::1", 0)])
        async with Server(config, on_session=records.append) as server:
            assert [h for h, _ in server.addresses] == ["127.0.0.1", "::1"]
            reply, data = await _socks4_connect(server.addresses[0], tcp_echo_server)
            assert reply.code == 90 and data == b"abc"
            # the record is written after the session's sockets close: wait (bounded)
            deadline = asyncio.get_running_loop().time() + 30
            while not records and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert records[0]["outcome"] == "ok" and records[0]["bytes_up"] == 3


@pytest.mark.e2e
def test_run_in_thread_with_injected_clock(tcp_echo_server):
    # The clock says Saturday; the rule only allows weekdays.
    saturday = datetime.datetime(2024, 1, 6, 12, 0)
    config = ServerConfig(listen=[("127.0.0.1", 0)])
    from socksify.server import rule_from_dict

    config.rules = [rule_from_dict({"action": "allow", "days": "mon-fri"})]
    records = []
    with run_in_thread(config, on_session=records.append, clock=lambda: saturday) as srv:
        conn = Connection(Role.CLIENT, 4)
        with socket.create_connection(srv.addresses[0], timeout=5) as sock:
            sock.sendall(conn.send(Request(Command.CONNECT, Address.from_host("127.0.0.1"),
                                           tcp_echo_server[1])))
            conn.receive_data(sock.recv(100))
            assert conn.next_event().code == 91


def test_server_refuses_open_proxy_config():
    async def main():
        async with Server(ServerConfig(listen=[("0.0.0.0", 0)])):
            pass

    with pytest.raises(ConfigError, match="open proxy"):
        asyncio.run(main())


def test_format_record():
    record = {"client": "[::1]:5000", "user": None, "command": "connect",
              "destination": "2001:db8::1", "port": 443, "outcome": "ok",
              "bytes_up": 10, "bytes_down": 20, "duration": 1.23456}
    assert format_record(record) == (
        "[::1]:5000 user=- connect [2001:db8::1]:443 ok up=10 down=20 time=1.235s")


def test_format_record_escapes_client_chosen_text():
    record = {"client": "127.0.0.1:5000", "user": "mallory\nsocksify-server: FORGED",
              "command": "connect", "destination": "evil\r\n.test", "port": 80,
              "outcome": "ok", "bytes_up": 0, "bytes_down": 0, "duration": 0.0}
    line = format_record(record)
    assert "\n" not in line and "\r" not in line
    assert "user=mallory\\nsocksify-server: FORGED" in line and "evil\\r\\n.test:80" in line


def _client_cap_in_subprocess(code: str, needs_hard_limit: int):
    """Run ``code`` (which sets RLIMIT_NOFILE and calls client_cap) in a fresh interpreter,
    so the limits it sets stay out of the test process."""
    import resource
    import subprocess
    import sys

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needs_hard_limit:
        pytest.skip(f"needs a hard open-files limit of at least {needs_hard_limit}")
    prelude = "import logging, resource; logging.basicConfig();"
    result = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result


def test_client_cap_fits_the_open_files_limit():
    result = _client_cap_in_subprocess(
        "from socksify.server._server import client_cap;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 10000));"
        "print(client_cap(1000, 1, 7), resource.getrlimit(resource.RLIMIT_NOFILE)[0]);"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100));"
        "cap = client_cap(1024, 1, 7); print(cap); assert cap * 7 < 100;"
        "print(client_cap(1024, 1, 2))",
        needs_hard_limit=10000,
    )
    raised, capped, capped_copy = result.stdout.splitlines()
    assert 1 <= int(capped) < 14
    assert int(capped) * 3 <= int(capped_copy) < 50  # the copy relay needs 2 per session
    assert "max_clients lowered from 1024" in result.stderr
    assert raised.split()[0] == "1000" and int(raised.split()[1]) >= 7000  # soft limit raised


def test_a_high_max_clients_still_leaves_spare_descriptors():
    """Lowered to fit ``ulimit -n``, max_clients still leaves descriptors spare for BIND
    listeners and UDP ASSOCIATE sockets (the _SPARE_FLOOR), not just the sessions' own."""
    result = _client_cap_in_subprocess(
        "from socksify.server._server import client_cap, FDS_PER_SESSION;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (4000, 4000));"
        "cap = client_cap(20000, 1); print(cap, 4000 - cap * FDS_PER_SESSION)",
        needs_hard_limit=4000,
    )
    cap, spare = map(int, result.stdout.split())
    assert 1500 < cap < 2000  # lowered to fit
    assert spare >= 256  # the spare floor (256: under an eighth of 4000) and the reserve
    assert "max_clients lowered from 20000" in result.stderr


def test_finished_threaded_relay_sessions_leave_no_reference_cycles(tcp_echo_server):
    """A finished session is freed by reference counting: the relay cuts its cycles, so
    the collector has nothing to find (collector passes are latency spikes under load)."""
    import gc
    import struct
    import time

    from socksify.server._handler import Session
    from socksify.server._threaded_relay import ThreadedRelay

    def one(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"\x05\x01\x00")
            assert sock.recv(2) == b"\x05\x00"
            sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(tcp_echo_server[0])
                         + struct.pack("!H", tcp_echo_server[1]))
            reply = b""
            while len(reply) < 10:
                reply += sock.recv(10 - len(reply))
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"

    finished = []
    config = ServerConfig(listen=[("127.0.0.1", 0)], relay="threads")
    with run_in_thread(config, on_session=lambda record: finished.append(1)) as srv:
        port = srv.addresses[0][1]
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                one(port)
            deadline = time.monotonic() + 30
            while len(finished) < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            # The relay cuts its links in a callback it schedules as it closes (after the
            # record): two turns of the server's loop run it (a fixed sleep may not).
            for _ in range(2):
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), srv._loop).result(30)
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            cyclic = [o for o in gc.garbage if isinstance(o, (Session, ThreadedRelay))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert len(finished) == 20
    assert cyclic == []
