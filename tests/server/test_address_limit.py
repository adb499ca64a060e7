"""``max_clients_per_address``: how many sessions one client address may hold at once.

Real servers (in process, or ``python -m socksify.server`` for SIGHUP), real SOCKS4
clients and a real echo target, everything on loopback. A second client address is
127.0.0.2 (the whole of 127.0.0.0/8 is local on Linux). Slots come back when a session
ends, before its record is written: the tests wait for records (bounded), never sleep.
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import time

import pytest

from socksify.protocol import Address, Command, Connection, Request, Role
from socksify.server import ServerConfig
from socksify.server._config import ConfigError, load_config, parse_config_text
from socksify.server._server import Server, _address_key

from .test_reload import RELOADED, ServerProcess, write

pytestmark = pytest.mark.e2e

WAIT = 60  # seconds: generous, it only costs time when a test fails
GRANTED = 90  # SOCKS4 reply: request granted


def limit_toml(limit: int, relay: str = "threads") -> str:
    return f'[server]\nmax_clients_per_address = {limit}\nrelay = "{relay}"\n'


@pytest.fixture(params=["threads", "portable"])
def relay(request):
    """The accept path: the Linux ClientSocket one ("threads") or asyncio's ("portable")."""
    return request.param


def socks4_request(target) -> bytes:
    conn = Connection(Role.CLIENT, 4)
    return conn.send(Request(Command.CONNECT, Address.from_host(target[0]), target[1]))


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def open_relay(server, target, source: str = "127.0.0.1") -> socket.socket:
    """A SOCKS4 CONNECT to ``target`` through ``server`` from ``source``; checks that the
    relay echoes. Returns the socket, relaying."""
    sock = socket.create_connection(server, timeout=WAIT, source_address=(source, 0))
    try:
        sock.sendall(socks4_request(target))
        reply = recv_exactly(sock, 8)
        assert len(reply) == 8 and reply[1] == GRANTED, reply
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
    except BaseException:
        sock.close()
        raise
    return sock


def refused(server, target, source: str = "127.0.0.1") -> bool:
    """True when the server closes a client from ``source`` without any reply."""
    with socket.create_connection(server, timeout=WAIT, source_address=(source, 0)) as sock:
        try:
            sock.sendall(socks4_request(target))
            return sock.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True


def close_all(socks) -> None:
    for sock in socks:
        sock.close()


def test_the_fourth_session_from_one_address_is_refused_until_one_ends(
    socks_server, tcp_echo_server, relay, caplog
):
    srv = socks_server(config=limit_toml(3, relay))
    held = [open_relay(srv.address, tcp_echo_server) for _ in range(3)]
    try:
        assert refused(srv.address, tcp_echo_server)
        assert "max_clients_per_address (3) reached by 127.0.0.1" in caplog.text
        held.pop(0).close()
        srv.wait_records(1, timeout=WAIT)  # written after the slot was given back
        held.append(open_relay(srv.address, tcp_echo_server))
        assert refused(srv.address, tcp_echo_server)
    finally:
        close_all(held)
    # A refused client never became a session: 4 records, all relays.
    records = srv.wait_records(4, timeout=WAIT)
    assert [r["outcome"] for r in records] == ["ok"] * 4, records


def test_another_address_is_not_counted_with_the_first(socks_server, tcp_echo_server, relay):
    srv = socks_server(config=limit_toml(3, relay))
    held = [open_relay(srv.address, tcp_echo_server) for _ in range(3)]
    try:
        assert refused(srv.address, tcp_echo_server)
        held += [open_relay(srv.address, tcp_echo_server, "127.0.0.2") for _ in range(3)]
        assert refused(srv.address, tcp_echo_server, "127.0.0.2")
    finally:
        close_all(held)


def test_the_count_is_dropped_with_the_last_session(socks_server, tcp_echo_server):
    """An address whose sessions all ended leaves the map: it holds only current clients."""
    srv = socks_server(config=limit_toml(3))
    server = srv.server._server
    held = [open_relay(srv.address, tcp_echo_server, source)
            for source in ("127.0.0.1", "127.0.0.2", "127.0.0.2")]
    assert server._per_address == {"127.0.0.1": 1, "127.0.0.2": 2}
    close_all(held)
    srv.wait_records(3, timeout=WAIT)
    assert server._per_address == {}


def test_ipv6_clients_count_per_address(socks_server, tcp_echo_server):
    try:
        srv = socks_server(config=limit_toml(1), listen="[::1]:0")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    held = open_relay(srv.address, tcp_echo_server, "::1")
    try:
        assert refused(srv.address, tcp_echo_server, "::1")
    finally:
        held.close()


def test_an_ipv4_mapped_client_counts_as_its_ipv4_address():
    assert _address_key("::ffff:127.0.0.1") == "127.0.0.1"
    assert _address_key("127.0.0.1") == "127.0.0.1"
    assert _address_key("::1") == "::1"
    assert _address_key("::ffff:1") == "::ffff:1"  # not a mapped address: kept exact


@pytest.mark.parametrize("key", ["max_clients_per_address = 0\n", ""])
def test_zero_and_the_default_set_no_limit(socks_server, tcp_echo_server, key):
    srv = socks_server(config=f"[server]\nmax_clients = 8\n{key}")
    server = srv.server._server
    assert server.max_per_address == 0
    held = [open_relay(srv.address, tcp_echo_server) for _ in range(6)]
    try:
        assert server._per_address == {}  # nothing counted when the limit is off
    finally:
        close_all(held)


@pytest.mark.parametrize("value", ["-1", '"3"', "true", "1.5", "[3]"])
def test_a_bad_value_is_an_error_naming_the_key(value):
    with pytest.raises(ConfigError, match="max_clients_per_address"):
        parse_config_text(f"[server]\nmax_clients_per_address = {value}\n")


@pytest.mark.parametrize("value", [-1, True, 2.0, "3", None])
def test_the_python_api_checks_the_value(value):
    with pytest.raises(ConfigError, match="max_clients_per_address"):
        ServerConfig(max_clients_per_address=value).check()


def test_the_example_config_names_the_key():
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "server.toml"
    assert "max_clients_per_address" in example.read_text()
    assert load_config(str(example)).max_clients_per_address == 0


# -- reload ---------------------------------------------------------------------------------


async def _relay(address, target):
    reader, writer = await asyncio.open_connection(*address)
    writer.write(socks4_request(target))
    reply = await asyncio.wait_for(reader.readexactly(8), WAIT)
    assert reply[1] == GRANTED, reply
    return reader, writer


async def _is_refused(address, target) -> bool:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(socks4_request(target))
    try:
        return await asyncio.wait_for(reader.read(100), WAIT) == b""
    except ConnectionResetError:
        return True
    finally:
        writer.close()


async def _until(predicate) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.01)


def test_a_reload_changes_the_limit_for_new_clients(tcp_echo_server, relay):
    """Lowered: the clients already over it stay, new ones are refused; off: everyone in;
    on again: the sessions open now are counted."""
    records: list[dict] = []

    async def main():
        config = ServerConfig(listen=[("127.0.0.1", 0)], max_clients_per_address=3,
                              relay=relay)
        async with Server(config, on_session=records.append) as server:
            address = server.addresses[0]
            held = [await _relay(address, tcp_echo_server) for _ in range(2)]
            server.reload(config.replace(max_clients_per_address=1))
            assert await _is_refused(address, tcp_echo_server)
            assert server._per_address == {"127.0.0.1": 2}
            server.reload(config.replace(max_clients_per_address=0))
            held += [await _relay(address, tcp_echo_server) for _ in range(2)]
            assert server._per_address == {}
            server.reload(config.replace(max_clients_per_address=5))
            assert server._per_address == {"127.0.0.1": 4}
            held.append(await _relay(address, tcp_echo_server))
            assert await _is_refused(address, tcp_echo_server)
            held.pop()[1].close()
            await _until(lambda: server._per_address == {"127.0.0.1": 4})
            held.append(await _relay(address, tcp_echo_server))
            for _reader, writer in held:
                writer.close()
            await _until(lambda: not server._per_address)

    asyncio.run(main())
    assert len(records) == 6 and {r["outcome"] for r in records} == {"ok"}, records


def test_sighup_applies_a_new_limit(tmp_path, tcp_echo_server):
    config = tmp_path / "server.toml"
    write(config, "[server]\nmax_clients_per_address = 1\n")
    srv = ServerProcess(tmp_path, "--listen", "127.0.0.1:0", "--config", str(config))
    held = []
    try:
        [address] = srv.listening()
        held.append(open_relay(address, tcp_echo_server))
        assert refused(address, tcp_echo_server)
        srv.wait_for("max_clients_per_address (1) reached by 127.0.0.1")
        write(config, "[server]\nmax_clients_per_address = 2\n")
        srv.hup()
        held.append(open_relay(address, tcp_echo_server))
        assert refused(address, tcp_echo_server)
        write(config, "[server]\nmax_clients_per_address = -2\n")
        lines = srv.hup("configuration not reloaded")
        assert any("not reloaded" in line and "max_clients_per_address" in line
                   for line in lines), lines
    finally:
        close_all(held)
        assert srv.stop() == 0, srv.lines
    assert any(f"{RELOADED} {config}" in line for line in srv.lines)
