"""Bidirectional relay between two connected TCP transports (the hot path).

Rules of this module:

- Built on asyncio (buffered) Protocols and transports, not streams: a chunk read from one
  side is handed straight to the other side's ``transport.write`` (no task, queue or
  extra copy), and no coroutine stays alive per relayed connection, so an idle pair costs
  only the two transports and three small objects.
- Back-pressure: when one side's write buffer passes its high-water mark, asyncio calls
  ``pause_writing`` on that side's protocol and the *other* side stops reading until
  ``resume_writing``. Memory per connection is bounded by the two write buffers.
- Half-close is kept (RFC 1928 §6 asks the server to relay "as if directly connected"): EOF
  from one side becomes ``write_eof()`` (``shutdown(SHUT_WR)`` once the buffer is flushed)
  toward the other; the pair is closed when both directions are done, or at once when
  either side fails (a reset or error on one side is passed on as a reset, SO_LINGER 0).
- Idle timeout: one :class:`IdleSweeper` timer per server looks every quarter of the timeout
  at each relay's byte counters (nothing is timed per chunk, no timer per relay); four looks
  without traffic close the pair.
- :func:`start_relay` is the only entry point; it picks the threaded Linux path
  (``_threaded_relay.py``: bare sockets, bulk directions copied by a few worker threads
  with 4 MiB reads, measured faster than ``os.splice``) when asked (``relay = "threads"``)
  and possible, this portable path otherwise; the choice is the server's, made once at
  start-up.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._threaded_relay import THREADED_RELAY_AVAILABLE, ThreadedRelay, set_linger_zero

if TYPE_CHECKING:
    from ._poller import Poller

__all__ = ["IdleSweeper", "Relay", "start_relay", "start_threaded_relay",
           "start_threaded_relay_now"]

#: Write-buffer high-water mark per transport; low-water is a quarter of it.
HIGH_WATER = 256 * 1024
_IDLE_TICKS = 4


_READ_SIZE = 256 * 1024
_buffers = threading.local()  # one read buffer per event-loop thread


def _read_buffer() -> bytearray:
    try:
        return _buffers.buffer
    except AttributeError:
        _buffers.buffer = bytearray(_READ_SIZE)
        return _buffers.buffer


class _Endpoint(asyncio.BufferedProtocol):
    """One side of a relay: what it reads goes to ``peer``'s transport.

    Reads land in one buffer shared by every relay of the thread (``recv_into``, no
    allocation per chunk). When the peer transport cannot send a chunk at once it keeps
    (a view of) it, so the shared buffer is handed over and a fresh one is made.
    """

    __slots__ = ("relay", "transport", "peer", "received", "eof", "lost")

    def __init__(self, relay: Relay):
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Endpoint | None = None
        self.received = 0
        self.eof = False
        self.lost = False

    def connection_made(self, transport):  # only for transports created for us
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return _read_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        peer_transport = self.peer.transport
        if peer_transport.is_closing():
            return
        buffer = _buffers.buffer
        peer_transport.write(memoryview(buffer)[:nbytes])
        if peer_transport.get_write_buffer_size():
            _buffers.buffer = bytearray(_READ_SIZE)  # the transport may hold a view of it

    def eof_received(self) -> bool:
        self.eof = True
        peer_transport = self.peer.transport
        if self.peer.eof or peer_transport.is_closing():
            self.relay.close()
            return False
        peer_transport.write_eof()
        return True  # keep our transport open: the other direction may still flow

    def pause_writing(self) -> None:
        # Our write buffer is full: stop reading from the side that fills it.
        if not self.peer.transport.is_closing():
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            # A reset (or another error) on this side is passed on as a reset.
            peer_transport = self.peer.transport
            if peer_transport is not None and not peer_transport.is_closing():
                set_linger_zero(peer_transport.get_extra_info("socket"))
                peer_transport.abort()
        self.relay._lost(exc)


class Relay:
    """A running relay between the client transport and the remote transport.

    ``bytes_up`` counts client -> remote, ``bytes_down`` remote -> client. ``on_done`` is
    called once, after both transports are closed, with the relay.
    """

    __slots__ = ("client", "remote", "on_done", "sweeper", "_last", "_ticks", "_done", "error")

    def __init__(self, sweeper: IdleSweeper | None, on_done: Callable[[Relay], None] | None):
        self.client = _Endpoint(self)
        self.remote = _Endpoint(self)
        self.client.peer, self.remote.peer = self.remote, self.client
        self.on_done = on_done
        self.sweeper = sweeper
        self._last = -1
        self._ticks = 0
        self._done = False
        self.error: Exception | None = None

    @property
    def bytes_up(self) -> int:
        return self.client.received

    @property
    def bytes_down(self) -> int:
        return self.remote.received

    def close(self) -> None:
        """Close both sides (buffered data is still flushed by the transports)."""
        for end in (self.client, self.remote):
            if end.transport is not None and not end.transport.is_closing():
                end.transport.close()

    def abort(self) -> None:
        """Close both sides now, dropping buffered data (server shutdown)."""
        for end in (self.client, self.remote):
            if end.transport is not None:
                end.transport.abort()

    def _lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = exc
        self.close()
        if self.client.lost and self.remote.lost and not self._done:
            self._done = True
            if self.sweeper is not None:
                self.sweeper.relays.discard(self)
            if self.on_done is not None:
                self.on_done(self)

    def _idle_tick(self) -> None:
        total = self.client.received + self.remote.received
        if total != self._last:
            self._last, self._ticks = total, 0
            return
        self._ticks += 1
        if self._ticks >= _IDLE_TICKS:
            self.error = TimeoutError("idle timeout")
            self.close()


class IdleSweeper:
    """Closes relays and UDP associations that saw no data for ``timeout`` seconds, with
    one timer for all (members provide ``_idle_tick()``, called ``_IDLE_TICKS`` times per
    ``timeout``)."""

    __slots__ = ("timeout", "relays", "_timer")

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.relays: set = set()  #: Relay, ThreadedRelay, UdpAssociation
        self._timer: asyncio.TimerHandle | None = None

    def add(self, relay: Relay) -> None:
        self.relays.add(relay)
        if self._timer is None:
            self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.timeout / _IDLE_TICKS, self._tick)

    def _tick(self) -> None:
        for relay in list(self.relays):
            relay._idle_tick()
        self._timer = None
        if self.relays:
            self._schedule()


async def start_relay(
    client_transport: asyncio.Transport,
    remote_sock: socket.socket,
    *,
    to_remote: bytes = b"",
    to_client: bytes = b"",
    sweeper: IdleSweeper | None = None,
    on_done: Callable[[Relay], None] | None = None,
    threaded: bool = False,
) -> Relay:
    """Start relaying between ``client_transport`` and the connected ``remote_sock``.

    The caller must not use ``client_transport`` afterwards: it is switched to the relay's
    protocol, or (``threaded=True`` on Linux) its socket is taken over by the
    :class:`._threaded_relay.ThreadedRelay` and the transport closed. ``to_remote`` is early
    data the client already sent (it is written first); ``to_client`` is data to send the
    client before anything from the remote side. Returns at once: the relay runs on
    callbacks until both sides are closed, then calls ``on_done(relay)``.
    """
    if (
        threaded
        and THREADED_RELAY_AVAILABLE
        and not to_client
        and client_transport.get_write_buffer_size() == 0
        and not client_transport.is_closing()
    ):
        try:
            client_sock = _take_socket(client_transport)
        except OSError:  # out of file descriptors: the portable path needs none extra
            pass
        else:
            return await _start_threaded(client_sock, remote_sock, to_remote, sweeper, on_done)
    loop = asyncio.get_running_loop()
    relay = Relay(sweeper, on_done)
    relay.client.transport = client_transport
    # Nothing may be read from the client until the remote transport exists.
    client_transport.pause_reading()
    client_transport.set_protocol(relay.client)
    client_transport.set_write_buffer_limits(high=HIGH_WATER)
    if to_client:
        client_transport.write(to_client)
    try:
        await loop.connect_accepted_socket(lambda: relay.remote, sock=remote_sock)
    except BaseException:
        remote_sock.close()
        relay.remote.lost = True
        relay.close()
        raise
    relay.remote.transport.set_write_buffer_limits(high=HIGH_WATER)
    if to_remote:
        relay.client.received += len(to_remote)
        relay.remote.transport.write(to_remote)
    if client_transport.is_closing() or relay.client.lost:
        relay.close()
    else:
        client_transport.resume_reading()
    if sweeper is not None and not relay._done:
        sweeper.add(relay)
    return relay


def _take_socket(transport: asyncio.Transport) -> socket.socket:
    """Take the socket out of ``transport`` (a dup of it) and close the transport."""
    fd = os.dup(transport.get_extra_info("socket").fileno())
    transport.pause_reading()
    transport.abort()  # closes its own fd only; the connection lives on in the dup
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


async def start_threaded_relay(
    client_sock: socket.socket,
    remote_sock: socket.socket,
    *,
    to_remote: bytes = b"",
    to_client: bytes = b"",
    sweeper: IdleSweeper | None = None,
    on_done: Callable[[ThreadedRelay], None] | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    poller: Poller | None = None,
) -> ThreadedRelay:
    """:func:`start_relay` for a bare connected client socket (Linux, the threaded relay
    available): the server's accept path hands the socket over without building a
    transport. ``loop``: the running loop, when the caller has it (looking it up costs a
    getpid system call on Python 3.11). ``poller``: the server's
    :class:`._poller.Poller` for the relay's readiness callbacks (the loop when None)."""
    return await _start_threaded(client_sock, remote_sock, to_remote, sweeper, on_done, to_client,
                                 loop, poller)


def start_threaded_relay_now(
    client_sock: socket.socket,
    remote_sock: socket.socket,
    *,
    sweeper: IdleSweeper | None,
    on_done: Callable[[ThreadedRelay], None] | None,
    loop: asyncio.AbstractEventLoop,
    poller: Poller | None = None,
) -> ThreadedRelay:
    """:func:`start_threaded_relay` with nothing to send first: no coroutine."""
    relay = ThreadedRelay(client_sock, remote_sock, sweeper, on_done, loop, poller)
    relay.start()
    return relay


async def _start_threaded(
    client_sock, remote_sock, to_remote, sweeper, on_done, to_client=b"", loop=None,
    poller=None,
) -> ThreadedRelay:
    relay = ThreadedRelay(client_sock, remote_sock, sweeper, on_done,
                          loop or asyncio.get_running_loop(), poller)
    if to_client:
        try:
            await relay.loop.sock_sendall(client_sock, to_client)
        except OSError as exc:
            relay._fail(exc)
            return relay
    if to_remote:
        relay.up.received += len(to_remote)
        try:
            await relay.loop.sock_sendall(remote_sock, to_remote)
        except OSError as exc:
            relay._fail(exc)
            return relay
    relay.start()
    return relay
