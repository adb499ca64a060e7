"""The threaded relay (Linux): bare sockets, bulk directions copied by worker threads.

Rules of this module:

- Same contract as :class:`._relay.Relay` (byte counters, half-close, ``close``/``abort``,
  ``on_done`` once, the idle sweeper), so ``start_relay`` can pick either.
- Readiness callbacks go through ``poller``: the server's :class:`._poller.Poller` on its
  threaded path (the loop itself otherwise), which lets a relay closed on the spot
  ``forget`` its sockets instead of unregistering them. A worker thread that fails with
  something other than a socket error fails its relay only (logged, record
  ``internal-error:TYPE``); the thread goes on serving the pool.
- A direction starts on the event loop: readiness callbacks, ``recv_into`` at most 64 KiB
  of a 1 MiB buffer shared by the loop's relays, ``send`` on to the destination. Only what
  the destination does not take at once is kept (at most 64 KiB; back-pressure: reading
  stops until it drains), so an idle relay holds no buffer and no thread.
- A full 64 KiB read marks the direction bulk: it moves to a worker thread of a small
  per-process pool (a few threads, not one per connection), which loops over blocking
  ``recv_into``/``send`` with its own 4 MiB buffer: no event-loop turn and no readiness
  system call per chunk, and the calls release the GIL. The thread hands the direction
  back to the loop when its source is quiet or its destination stalls for
  :data:`_HANDBACK` seconds (so a quiet connection never holds a thread), at EOF, and on
  an error; half-close, reset, logging and closing stay on the loop. With every worker
  busy, a bulk direction goes on copying on the loop, 1 MiB at a time, the way a worker
  does (below).
- A worker never owns a byte: it reads with ``MSG_PEEK``, sends, and then takes from the
  source's receive queue only what the destination accepted (``recv`` with ``MSG_TRUNC``
  drops bytes without copying them). What a stalled destination refuses stays in the
  kernel, on the source socket, whose receive window pushes back on the sender. (Small
  reads on the loop are plain: a peek costs every small message one more system call,
  measured ~4 % of the connection rate, and they keep at most 64 KiB.)
- Once a relay has used a thread its sockets are blocking (with ``SO_RCVTIMEO`` and
  ``SO_SNDTIMEO`` of :data:`_HANDBACK`); the loop's own calls pass ``MSG_DONTWAIT``.
- Why copying and not ``os.splice``: measured on loopback (scripts/bench_relay_ceiling.py,
  a C reference relay), a splice(socket -> pipe -> socket) relay moves one stream at
  ~0.4x direct and read/write with 1 MiB buffers at ~0.55x, in C and in Python alike.
- EOF from the source, once everything read is passed on, becomes ``shutdown(SHUT_WR)``
  on the destination (half-close); the relay is done when both directions are done, or at
  once on an error from either socket, which the other side then sees as a reset
  (SO_LINGER 0). Sockets are closed only once no worker thread uses them.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import socket
import struct
import sys
import threading
from collections.abc import Callable

__all__ = ["THREADED_RELAY_AVAILABLE", "ThreadedRelay"]

#: This path needs per-call non-blocking socket calls (MSG_DONTWAIT), discarding reads
#: (MSG_TRUNC) and socket time-outs on blocking calls; it is chosen once, at start-up, by
#: the server (``relay = "threads"``).
THREADED_RELAY_AVAILABLE = (sys.platform.startswith("linux") and hasattr(socket, "MSG_DONTWAIT")
                            and hasattr(socket, "MSG_TRUNC"))
logger = logging.getLogger(__name__)

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_PEEK = socket.MSG_PEEK
#: With MSG_TRUNC a TCP recv drops the bytes from the receive queue without copying them
#: (tcp(7)); the buffer passed along is not written.
_DISCARD = getattr(socket, "MSG_TRUNC", 0)
_BULK = 64 * 1024  # read size on the loop; a full read marks the direction bulk
_LOOP_CHUNK = 1 << 20  # peek size of a bulk direction on the loop (one buffer per loop)
#: Read size in a worker thread (one buffer per worker): measured, one stream moves ~10 %
#: faster with 4 MiB than with 1 MiB, as does the C reference relay.
_THREAD_CHUNK = 4 << 20
_HANDBACK = 0.1  # seconds a worker waits on a quiet source or a stalled destination
_TIMEVAL = struct.pack("ll", 0, int(_HANDBACK * 1e6))
_LINGER_ZERO = struct.pack("ii", 1, 0)
_IDLE_TICKS = 4  # as in _relay.py: idle after four sweeps without traffic
#: Worker threads per process: bulk directions beyond this many copy on the loop.
MAX_WORKERS = max(2, 2 * (os.cpu_count() or 1))


def set_linger_zero(sock) -> None:
    """Make the next close() of ``sock`` send an RST (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    except OSError:
        pass


def _shutdown(sock: socket.socket, how: int) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


_buffers = threading.local()  # one read buffer per thread (the loop's, each worker's)


def _buffer(size: int = _LOOP_CHUNK) -> bytearray:
    try:
        return _buffers.buffer
    except AttributeError:
        _buffers.buffer = bytearray(size)
        return _buffers.buffer


class _Workers:
    """The per-process pool of bulk-copy threads (started on first use, kept)."""

    def __init__(self, limit: int):
        self.limit = limit
        #: directions handed to a thread whose worker is not done with them yet. The worker
        #: gives its slot back itself: the loop that would take the hand-back may be closed
        #: by then (a server stopped mid-copy), and the pool outlives any one server.
        self.busy = 0
        self.threads = 0
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()  # busy and threads: a submit (loop) vs a release (worker)

    def submit(self, direction: _Direction) -> bool:
        """Hand ``direction`` to a worker thread; False when all are busy."""
        with self.lock:
            if self.busy >= self.limit:
                return False
            if self.busy >= self.threads:
                try:
                    threading.Thread(target=self._work, name="socksify-relay",
                                     daemon=True).start()
                except RuntimeError:  # can't start new thread: copy on the loop instead
                    return False
                self.threads += 1
            self.busy += 1
        self.jobs.put(direction)
        return True

    def _work(self) -> None:
        jobs = self.jobs
        while True:
            job = jobs.get()
            try:
                job._run_in_thread()
            finally:
                with self.lock:
                    self.busy -= 1
            del job


_workers = _Workers(MAX_WORKERS)


def _reset_after_fork() -> None:
    global _workers
    _workers = _Workers(MAX_WORKERS)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _take(sock: socket.socket, buffer: bytearray, count: int, flags: int = 0) -> None:
    """Drop ``count`` bytes, already peeked and passed on, from ``sock``'s receive queue.
    They are there (only this direction reads ``sock``), so one call normally does it;
    none is the socket failing under us (OSError)."""
    while count:
        taken = sock.recv_into(buffer, count, _DISCARD | flags)
        if taken <= 0:
            raise ConnectionResetError(errno.ECONNRESET, "peeked bytes vanished")
        count -= taken


class _Direction:
    __slots__ = ("relay", "src", "dst", "src_fd", "dst_fd", "outbuf", "received", "eof",
                 "done", "reading", "writing", "threaded", "bulk")

    def __init__(self, relay: ThreadedRelay, src: socket.socket, dst: socket.socket):
        self.relay = relay
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.outbuf = memoryview(b"")  # read from src on the loop, not yet taken by dst
        self.received = 0
        self.eof = False
        self.done = False
        self.reading = False
        self.writing = False
        self.threaded = False  # a worker thread owns src (reading) and dst (writing)
        self.bulk = False  # bulk, copied on the loop (every worker was busy)

    def _want_read(self, on: bool) -> None:
        if on and not self.reading:
            self.relay.poller.add_reader(self.src_fd, self._readable)
        elif not on and self.reading:
            self.relay.poller.remove_reader(self.src_fd)
        self.reading = on

    def _want_write(self, on: bool) -> None:
        if on and not self.writing:
            self.relay.poller.add_writer(self.dst_fd, self._writable)
        elif not on and self.writing:
            self.relay.poller.remove_writer(self.dst_fd)
        self.writing = on

    # -- on the event loop ----------------------------------------------------------------

    def _readable(self) -> None:
        if self.bulk:
            self._copy_bulk()
            return
        buffer = self.relay.buffer
        try:
            count = self.src.recv_into(buffer, _BULK, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.relay._fail(exc, reset=self.dst)
            return
        if count == 0:
            self._at_eof()
            return
        self.received += count
        data = memoryview(buffer)[:count]
        try:
            sent = self.dst.send(data, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.relay._fail(exc, reset=self.src)
            return
        if sent < count:
            # The destination is full: keep the rest (the shared buffer is reused) and
            # stop reading until it drains.
            self.outbuf = memoryview(bytes(data[sent:]))
            self._want_read(False)
            self._want_write(True)
        elif count == _BULK and not self.relay.closing:
            if _workers.busy < _workers.limit:
                self._to_thread()
            else:  # every worker busy: copy on the loop, in bigger chunks
                self.bulk = True

    def _copy_bulk(self) -> None:
        """A bulk direction on the loop: as a worker does (peek, send, take what was sent),
        1 MiB at a time, so a stall keeps nothing here either."""
        buffer, src = self.relay.buffer, self.src
        try:
            count = src.recv_into(buffer, _LOOP_CHUNK, _DONTWAIT | _PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.relay._fail(exc, reset=self.dst)
            return
        if count == 0:
            self._at_eof()
            return
        try:
            sent = self.dst.send(memoryview(buffer)[:count], _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self.relay._fail(exc, reset=src)
            return
        try:
            _take(src, buffer, sent, _DONTWAIT)
        except OSError as exc:
            self.relay._fail(exc, reset=self.dst)
            return
        self.received += sent
        if sent < count:  # the rest stays in src's queue until the destination drains
            self._want_read(False)
            self._want_write(True)
        elif count < _BULK:  # quieter now: small reads again
            self.bulk = False
        elif _workers.busy < _workers.limit and not self.relay.closing:
            self.bulk = False
            self._to_thread()

    def _at_eof(self) -> None:
        self.eof = True
        relay = self.relay
        if relay.lock is not None or not (relay.down if self is relay.up else relay.up).done:
            self._want_read(False)  # (the last direction out leaves that to close())
        self._finish()

    def _writable(self) -> None:
        """The destination drained: pass on what is kept, then read again."""
        if self.outbuf:
            try:
                sent = self.dst.send(self.outbuf, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.relay._fail(exc, reset=self.src)
                return
            self.outbuf = self.outbuf[sent:]
            if self.outbuf:
                return
        self._want_write(False)
        if self.eof:
            self._finish()
        elif not self.relay.closing:
            self._want_read(True)

    def _to_thread(self) -> None:
        """Bulk data: hand this direction to a worker thread (if one can be had)."""
        relay = self.relay
        self._want_read(False)
        relay._go_blocking()  # before the worker's first call
        with relay.lock:
            self.threaded = True
        if not _workers.submit(self):
            with relay.lock:
                self.threaded = False
            self._want_read(True)

    def _from_thread(self, outcome: str, exc: OSError | None) -> None:
        """The worker handed the direction back (``outcome``: "quiet", "stalled", "eof",
        "src" or "dst" error, "closing"). (The worker has given its pool slot back
        already.)"""
        relay = self.relay
        if relay is None:  # finished and unlinked already
            return
        if relay.closing:
            if not (relay.up.threaded or relay.down.threaded):
                relay._finished()  # the last worker out has closed the sockets
            return
        if outcome == "src":
            relay._fail(exc, reset=self.dst)
        elif outcome == "dst":
            relay._fail(exc, reset=self.src)
        elif outcome == "eof":
            self.eof = True
            self._finish()
        elif outcome == "stalled":
            self._want_write(True)
        else:
            self._want_read(True)

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
                    relay._fail(exc, reset=self.src)
                    return
        relay._direction_done()

    def stop(self, forget: Callable[[int], None] | None = None) -> None:
        """No more callbacks. ``forget``: the poller's ``forget``, when both sockets are
        closed right after (their close takes them out of the epoll set: no system call)."""
        if forget is not None:
            if self.reading or self.writing:
                forget(self.src_fd)
                forget(self.dst_fd)
                self.reading = self.writing = False
        else:
            if self.reading:
                self._want_read(False)
            if self.writing:
                self._want_write(False)
        self.outbuf = memoryview(b"")

    # -- in a worker thread ---------------------------------------------------------------

    def _run_in_thread(self) -> None:
        """Copy src -> dst with blocking calls until quiet, stalled, EOF or an error;
        then hand back to the loop. Touches only src, dst, the counter and its buffer."""
        relay = self.relay
        try:
            outcome, exc = self._copy(relay)
        except Exception as error:  # a bug, not the network: fail the relay, keep the thread
            logger.exception("relay worker: unexpected error")
            outcome, exc = "src", error
        with relay.lock:
            self.threaded = False
            # Closing, and no other worker on the relay: nothing else uses the sockets
            # any more, and the loop may be gone already (server shutdown).
            last_out = relay.closing and not (relay.up.threaded or relay.down.threaded)
        if last_out:
            relay._close_sockets()
        try:
            relay.loop.call_soon_threadsafe(self._from_thread, outcome, exc)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    def _copy(self, relay: ThreadedRelay) -> tuple[str, OSError | None]:
        """The worker's loop: peek, send, take what was sent; returns (outcome, error)."""
        src, dst = self.src, self.dst
        buffer = _buffer(_THREAD_CHUNK)
        size = len(buffer)
        view = memoryview(buffer)
        try:
            while not relay.closing:
                try:
                    count = src.recv_into(buffer, size, _PEEK)
                except BlockingIOError:  # nothing came in _HANDBACK: quiet
                    return "quiet", None
                except OSError as error:
                    return "src", error
                if count == 0:
                    return "eof", None
                # Counted as it goes out, so that a record written meanwhile (a server
                # stopped mid-copy) has what the destination may have got already.
                self.received += count
                start, outcome, exc = 0, "", None
                while start < count:
                    if relay.closing:
                        outcome = "closing"
                        break
                    try:
                        sent = dst.send(view[start:count])
                    except BlockingIOError:  # nothing taken in _HANDBACK: stalled
                        outcome = "stalled"
                        break
                    except OSError as error:
                        outcome, exc = "dst", error
                        break
                    start += sent
                    try:
                        _take(src, buffer, sent)
                    except OSError as error:
                        outcome, exc = "src", error
                        break
                if outcome:
                    self.received -= count - start  # not passed on (a stall: not yet)
                    return outcome, exc
            return "closing", None
        finally:
            view.release()


class ThreadedRelay:
    """Relays between two connected non-blocking sockets (see the module docstring)."""

    __slots__ = ("loop", "poller", "buffer", "client_sock", "remote_sock", "up", "down",
                 "on_done", "sweeper", "closing", "error", "lock", "_done", "_last", "_ticks")

    def __init__(self, client_sock: socket.socket, remote_sock: socket.socket, sweeper,
                 on_done: Callable[[ThreadedRelay], None] | None,
                 loop: asyncio.AbstractEventLoop, poller=None):
        self.loop = loop
        #: readiness callbacks: the server's ``_poller.Poller``, or the loop itself
        self.poller = poller or loop
        #: the loop's read buffer (made on the loop's thread, shared by its relays)
        self.buffer = _buffer()
        self.client_sock, self.remote_sock = client_sock, remote_sock
        self.up = _Direction(self, client_sock, remote_sock)
        self.down = _Direction(self, remote_sock, client_sock)
        self.on_done = on_done
        self.sweeper = sweeper
        self.closing = False
        #: Guards the directions' ``threaded`` flags against ``closing`` once workers are
        #: involved (None until then: an idle relay pays for no lock).
        self.lock: threading.Lock | None = None
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
        self.up._want_read(True)
        self.down._want_read(True)
        if self.sweeper is not None:
            self.sweeper.add(self)

    def _go_blocking(self) -> None:
        """Blocking sockets for the worker threads, with time-outs so that a worker
        notices a quiet source, a stalled destination or ``close`` (the loop's calls
        pass MSG_DONTWAIT and never block)."""
        if self.lock is not None:
            return
        self.lock = threading.Lock()
        for sock in (self.client_sock, self.remote_sock):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL)
            sock.setblocking(True)

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
        """Stop both directions and close both sockets (data in flight is dropped). A
        worker still on a direction is woken; the last one out closes the sockets (a
        descriptor must not be closed, and perhaps reused, under a thread's call), and
        ``on_done`` follows on the loop (at most about _HANDBACK later)."""
        self._close(wake_senders=False)  # SHUT_RD wakes a worker in recv, sends nothing

    def abort(self) -> None:
        """``close``, waking workers in send too, and report the relay done now (the
        server is shutting down and its loop may not run again)."""
        self._close(wake_senders=True)
        self._finished()

    def _close(self, wake_senders: bool) -> None:
        if self.closing:
            return
        self.closing = True
        if self.lock is None:  # no worker ever had the sockets: they close right here
            forget = getattr(self.poller, "forget", None)
            self.up.stop(forget)
            self.down.stop(forget)
            self._close_sockets()
            self._finished()
            return
        self.up.stop()
        self.down.stop()
        with self.lock:
            for direction in (self.up, self.down):
                if direction.threaded:
                    _shutdown(direction.src, socket.SHUT_RD)
                    if wake_senders:
                        _shutdown(direction.dst, socket.SHUT_WR)
            if self.up.threaded or self.down.threaded:
                return
        self._close_sockets()
        self._finished()

    def _close_sockets(self) -> None:
        self.client_sock.close()
        self.remote_sock.close()

    def _finished(self) -> None:
        if self.sweeper is not None:
            self.sweeper.relays.discard(self)
        if not self._done:
            self._done = True
            on_done, self.on_done = self.on_done, None
            if on_done is not None:
                on_done(self)
            # Break the relay <-> direction (and session) cycles, so a finished relay is
            # freed by reference counting. Nothing on the loop uses a direction's relay
            # after this; a worker's hand-back finds None and stops there.
            self.up.relay = self.down.relay = None

    def _idle_tick(self) -> None:
        total = self.up.received + self.down.received
        if total != self._last:
            self._last, self._ticks = total, 0
            return
        self._ticks += 1
        if self._ticks >= _IDLE_TICKS:
            self.error = TimeoutError("idle timeout")
            self.close()
