"""The threaded path's handshake on reader callbacks (no task per connection): what a task
used to give for free must still hold -- shutdown mid-handshake, one clock for every
handshake timeout, and a coroutine taking over (and being cancelled) when it must wait."""

import asyncio
import socket
import time

import pytest

from socksify.server import Server, ServerConfig
from socksify.server._handler import _resume

from ._server_core_client import recv_until_closed

pytestmark = pytest.mark.e2e


async def _serve(config: ServerConfig, records: list):
    server = Server(config, on_session=records.append)
    await server.start()
    return server


async def _wait_for(predicate, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_close_during_handshakes_ends_each_session_once():
    """Server.close() with sessions waiting for their greeting or request: no task to
    cancel, yet every one is closed and gets exactly one "shutdown" record."""
    records: list = []

    async def main():
        server = await _serve(ServerConfig(listen=[("127.0.0.1", 0)]), records)
        loop = asyncio.get_running_loop()
        address = server.addresses[0]
        silent = socket.create_connection(address, timeout=5)
        greeted = socket.create_connection(address, timeout=5)
        try:
            greeted.sendall(b"\x05\x01\x00")
            greeted.settimeout(5)
            assert await loop.run_in_executor(None, greeted.recv, 2) == b"\x05\x00"
            await _wait_for(lambda: len(server._sessions) == 2)
            assert not server._tasks  # both wait on callbacks
            await server.close()
            assert await loop.run_in_executor(None, recv_until_closed, silent) == b""
            assert await loop.run_in_executor(None, recv_until_closed, greeted) == b""
        finally:
            silent.close()
            greeted.close()

    asyncio.run(main())
    assert sorted(r["outcome"] for r in records) == ["shutdown", "shutdown"]


def test_one_clock_cuts_off_each_stalled_client_at_its_own_deadline():
    """Stalled clients accepted at different times are each cut off, in the order of
    their deadlines (the one clock re-arms for the next oldest)."""
    records: list = []
    timeout = 0.6

    async def main():
        config = ServerConfig(listen=[("127.0.0.1", 0)], handshake_timeout=timeout)
        server = await _serve(config, records)
        loop = asyncio.get_running_loop()
        address = server.addresses[0]
        first = socket.create_connection(address, timeout=5)
        await asyncio.sleep(timeout / 2)
        second = socket.create_connection(address, timeout=5)
        second.sendall(b"\x05\x01\x00")  # greeted, never sends its request
        third = socket.create_connection(address, timeout=5)
        try:
            third.sendall(b"\x05\x01\x00")
            assert await loop.run_in_executor(None, recv_until_closed, first) == b""
            assert await loop.run_in_executor(None, recv_until_closed, second) == b"\x05\x00"
            assert await loop.run_in_executor(None, recv_until_closed, third) == b"\x05\x00"
            await _wait_for(lambda: len(records) == 3)
            assert [r["outcome"] for r in records] == ["handshake-timeout"] * 3
            # in the order of their deadlines: the order they were accepted in
            ports = [sock.getsockname()[1] for sock in (first, second, third)]
            assert [int(r["client"].rsplit(":", 1)[1]) for r in records] == ports
            assert server.handshakes is not None and not server.handshakes.waiting
        finally:
            for sock in (first, second, third):
                sock.close()
            await server.close()

    asyncio.run(main())


def test_resumed_coroutine_keeps_results_and_cancellation():
    """A coroutine started with send(None) and carried on by a task (what a session does
    when it must wait) sees the awaited result, and a cancel reaches it."""
    seen = []

    async def body(future):
        try:
            value = await future
            seen.append(value)
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main():
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        coro = body(future)
        pending = coro.send(None)
        assert pending is future
        task = loop.create_task(_resume(coro, pending))
        await asyncio.sleep(0)
        future.set_result("result")
        await _wait_for(lambda: seen == ["result"])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["result", "cancelled"]
