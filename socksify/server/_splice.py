"""Linux fast path of the relay: ``os.splice`` through a pipe keeps the bytes in the kernel.

Rules of this module:

- Same contract as :class:`._relay.Relay` (byte counters, half-close, ``close``/``abort``,
  ``on_done`` once, the idle sweeper), so ``start_relay`` can pick either.
- Per direction: readable source -> ``splice(src, pipe)``; then ``splice(pipe, dst)`` until
  the pipe is empty. When the destination cannot take more, reading the source stops and a
  writer callback waits for the destination (back-pressure: at most one pipe's worth of
  data, 64 KiB by default, is in flight per direction, and it stays in the kernel).
- EOF from the source, once the pipe is drained, becomes ``shutdown(SHUT_WR)`` on the
  destination (half-close); the relay is done when both directions are done, or at once on
  an error from either socket, which the other side then sees as a reset (SO_LINGER 0).
- A direction copies through a 64 KiB buffer until one read fills it, and only then
  takes a pipe, so an idle relay or a short exchange holds no pipe; when the server's
  pipe budget is spent (or the system refuses a pipe), that direction goes on copying,
  with the same back-pressure and half-close.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable

__all__ = ["SPLICE_AVAILABLE", "PipeBudget", "SpliceRelay"]

SPLICE_AVAILABLE = hasattr(os, "splice") and hasattr(os, "SPLICE_F_NONBLOCK")
_FLAGS = (getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0))
_CHUNK = 1 << 20
_COPY_CHUNK = 64 * 1024  # read size when a direction copies (no pipe available)
_LINGER_ZERO = struct.pack("ii", 1, 0)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
#: Pipe capacity per active direction (kernel memory, only while data is in flight).
PIPE_SIZE = 1 << 20
_IDLE_TICKS = 4  # as in _relay.py: idle after four sweeps without traffic


def set_linger_zero(sock) -> None:
    """Make the next close() of ``sock`` send an RST (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    except OSError:
        pass


def _make_pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # A bigger pipe means fewer splice calls and loop turns per megabyte.
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:  # over /proc/sys/fs/pipe-max-size or the user's pipe quota
        pass
    return read_fd, write_fd


class PipeBudget:
    """How many more pipe descriptors the server may open (None: no limit).

    Pipes are what the splice path costs beyond the two sockets of a session; when the
    budget is spent, a direction copies through a small buffer instead, so the number of
    sessions is bounded by sockets alone (see ``_server.client_cap``).
    """

    __slots__ = ("free",)

    def __init__(self, free: int | None):
        self.free = free

    def take(self) -> bool:
        if self.free is None:
            return True
        if self.free < 2:
            return False
        self.free -= 2
        return True

    def give(self) -> None:
        if self.free is not None:
            self.free += 2


_UNLIMITED = PipeBudget(None)


class _Direction:
    __slots__ = ("relay", "src", "dst", "src_fd", "dst_fd", "pipe_r", "pipe_w", "pending",
                 "received", "eof", "done", "reading", "writing", "copying", "upgrade",
                 "outbuf")

    def __init__(self, relay: SpliceRelay, src: socket.socket, dst: socket.socket):
        self.relay = relay
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.pipe_r = self.pipe_w = -1
        self.pending = 0  # bytes in flight: in the pipe, or in outbuf when copying
        self.received = 0
        self.eof = False
        self.done = False
        self.reading = False
        self.writing = False
        # A direction starts by copying (recv/send through outbuf) and takes a pipe once a
        # read fills the copy buffer: short exchanges (a request, a reply, EOF) cost no
        # pipe and its five system calls; bulk data is spliced.
        self.copying = True
        self.upgrade = True  # False once no pipe could be had: copy to the end
        self.outbuf = memoryview(b"")

    def start(self) -> None:
        self._want_read(True)

    def _want_read(self, on: bool) -> None:
        loop = self.relay.loop
        if on and not self.reading:
            loop.add_reader(self.src_fd, self._readable)
        elif not on and self.reading:
            loop.remove_reader(self.src_fd)
        self.reading = on

    def _want_write(self, on: bool) -> None:
        loop = self.relay.loop
        if on and not self.writing:
            loop.add_writer(self.dst_fd, self._writable)
        elif not on and self.writing:
            loop.remove_writer(self.dst_fd)
        self.writing = on

    def _open_pipe(self) -> None:
        """Switch this direction to splicing through a pipe, or copy to the end."""
        self.upgrade = False
        budget = self.relay.pipes
        if budget.take():
            try:
                self.pipe_r, self.pipe_w = _make_pipe()
            except OSError:  # EMFILE, ENFILE: no descriptors left for a pipe
                budget.give()
                return
            self.copying = False

    def _readable(self) -> None:
        try:
            count = self._read_some()
        except BlockingIOError:
            return
        except OSError as exc:
            self.relay._fail(exc, reset=self.dst)
            return
        if count == 0:
            self.eof = True
            self._want_read(False)
            if not self.pending:
                self._finish()
            return
        self.received += count
        self.pending += count
        self._flush()
        if self.upgrade and count == _COPY_CHUNK and not self.pending and not self.relay.closing:
            self._open_pipe()  # bulk data: splice from here on

    def _read_some(self) -> int:
        if self.copying:
            data = self.src.recv(_COPY_CHUNK)
            self.outbuf = memoryview(data)
            return len(data)
        return os.splice(self.src_fd, self.pipe_w, _CHUNK, flags=_FLAGS)

    def _flush(self) -> None:
        while self.pending:
            try:
                if self.copying:
                    count = self.dst.send(self.outbuf)
                    self.outbuf = self.outbuf[count:]
                else:
                    count = os.splice(self.pipe_r, self.dst_fd, self.pending, flags=_FLAGS)
            except BlockingIOError:
                # The destination is full: stop reading until it drains.
                self._want_read(False)
                self._want_write(True)
                return
            except OSError as exc:
                self.relay._fail(exc, reset=self.src)
                return
            self.pending -= count
        self._want_write(False)
        if self.eof:
            self._finish()
        elif not self.reading and not self.relay.closing:
            self._want_read(True)

    def _writable(self) -> None:
        self._flush()

    def _finish(self) -> None:
        """Source EOF and everything passed on: half-close toward the destination."""
        if self.done:
            return
        self.done = True
        relay = self.relay
        other = relay.down if self is relay.up else relay.up
        if not other.done:
            # The last direction to finish skips this: both sources are at EOF and read
            # to the end, so closing the pair sends the same FIN (one system call less).
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    self.relay._fail(exc, reset=self.src)
                    return
        self._close_pipe()
        self.relay._direction_done()

    def stop(self) -> None:
        if self.reading:
            self._want_read(False)
        if self.writing:
            self._want_write(False)
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self.pipe_r >= 0:
            os.close(self.pipe_r)
            os.close(self.pipe_w)
            self.pipe_r = self.pipe_w = -1
            self.relay.pipes.give()
        self.outbuf = memoryview(b"")


class SpliceRelay:
    """Relays between two connected non-blocking sockets with ``os.splice``."""

    __slots__ = ("loop", "client_sock", "remote_sock", "up", "down", "on_done", "sweeper",
                 "pipes", "closing", "error", "_done", "_last", "_ticks")

    def __init__(self, client_sock: socket.socket, remote_sock: socket.socket, sweeper,
                 on_done: Callable[[SpliceRelay], None] | None,
                 pipes: PipeBudget | None = None):
        self.loop = asyncio.get_running_loop()
        self.pipes = pipes or _UNLIMITED
        self.client_sock, self.remote_sock = client_sock, remote_sock
        self.up = _Direction(self, client_sock, remote_sock)
        self.down = _Direction(self, remote_sock, client_sock)
        self.on_done = on_done
        self.sweeper = sweeper
        self.closing = False
        self.error: Exception | None = None
        self._done = False
        self._last = -1
        self._ticks = 0

    @property
    def bytes_up(self) -> int:
        return self.up.received

    @property
    def bytes_down(self) -> int:
        return self.down.received

    def start(self) -> None:
        self.up.start()
        self.down.start()
        if self.sweeper is not None:
            self.sweeper.add(self)

    def _direction_done(self) -> None:
        if self.up.done and self.down.done:
            self.close()

    def _fail(self, exc: Exception, reset: socket.socket | None = None) -> None:
        """One socket failed (``exc``): close both, with a reset toward ``reset`` (the
        other side), so a peer's RST reaches the far end as an RST, not as a clean EOF."""
        if self.error is None:
            self.error = exc
        if reset is not None and not self.closing:
            set_linger_zero(reset)
        self.close()

    def close(self) -> None:
        """Stop both directions and close both sockets (data in flight is dropped)."""
        if self.closing:
            return
        self.closing = True
        self.up.stop()
        self.down.stop()
        self.client_sock.close()
        self.remote_sock.close()
        if self.sweeper is not None:
            self.sweeper.relays.discard(self)
        if not self._done:
            self._done = True
            if self.on_done is not None:
                self.on_done(self)
        # Break the relay <-> direction (and session) cycles once the callers' frames are
        # gone, so a finished relay is freed by reference counting, not by the collector.
        self.loop.call_soon(self._unlink)

    def _unlink(self) -> None:
        self.up.relay = self.down.relay = None
        self.on_done = None

    abort = close

    def _idle_tick(self) -> None:
        total = self.up.received + self.down.received
        if total != self._last:
            self._last, self._ticks = total, 0
            return
        self._ticks += 1
        if self._ticks >= _IDLE_TICKS:
            self.error = TimeoutError("idle timeout")
            self.close()
