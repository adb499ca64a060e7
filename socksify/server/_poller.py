"""Readiness callbacks for the Linux path's sockets, straight from epoll.

Why: asyncio's ``add_reader``/``remove_reader`` and its dispatch of each readiness event
(a selector key, a Handle, a trip through the ready queue) cost about 25 µs per
connection on the connection-rate load; scripts/bench_rate_floor.py measures it (bare
epoll nested in asyncio vs the same server on asyncio callbacks). The server keeps
asyncio for timers, futures, tasks and the portable path, and gives this poller only the
per-connection readiness callbacks: the listeners, the handshake's client sockets, the
outbound connects and the threaded relay's loop phase.

On a loop from :func:`._eventloop.new_event_loop` the poller shares asyncio's epoll: the
loop's selector hands it the events of the descriptors asyncio does not know, in the same
wait. On any other loop it has an epoll of its own, which the loop watches as one
descriptor (nested). Both behave the same.

Rules of this module:

- Same four methods, with the same meaning, as the loop's: ``add_reader``,
  ``remove_reader``, ``add_writer``, ``remove_writer``; one reader and one writer per
  descriptor, level-triggered, a callback runs on every wake-up until it is removed.
  ``add_*`` on a descriptor that has one only swaps the callback (no system call).
- Called on the loop's thread only.
- A descriptor is removed before it is closed, as with asyncio. The events of a batch
  whose descriptor was unregistered meanwhile are skipped: by then its number may belong
  to a new socket. Level-triggered, an event that still holds comes back at the next poll.
- EPOLLHUP and EPOLLERR wake the reader and the writer (as asyncio's selector does): each
  sees the error on its next call.
- An exception from a callback goes to the loop's exception handler, as from asyncio's
  own callbacks; the batch goes on.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from typing import Any

from ._eventloop import shared_selector

__all__ = ["Poller"]

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_BOTH = _IN | _OUT
#: Events taken per wake-up; the rest stay ready and come at the next loop turn, so one
#: busy poller cannot starve asyncio's own callbacks and timers.
_BATCH = 512

Callback = tuple[Callable[..., Any], tuple]


class Poller:
    """Readiness callbacks on one epoll (see the module docstring)."""

    __slots__ = ("_loop", "_epoll", "_shared", "_readers", "_writers", "_dropped", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        #: descriptors unregistered since the current batch was polled
        self._dropped: set[int] = set()
        self.closed = False
        shared = shared_selector(loop)
        if shared is not None and shared.attach(self._dispatch, _BATCH):
            self._shared = shared
            self._epoll = shared.epoll
        else:
            self._shared = None
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._poll)

    def add_reader(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        readers = self._readers
        if fd not in readers:
            if fd in self._writers:
                self._epoll.modify(fd, _BOTH)
            else:
                self._epoll.register(fd, _IN)
        readers[fd] = (callback, args)

    def add_writer(self, fd: int, callback: Callable[..., Any], *args: Any) -> None:
        writers = self._writers
        if fd not in writers:
            if fd in self._readers:
                self._epoll.modify(fd, _BOTH)
            else:
                self._epoll.register(fd, _OUT)
        writers[fd] = (callback, args)

    def remove_reader(self, fd: int) -> bool:
        if self._readers.pop(fd, None) is None:
            return False
        self._drop(fd, self._writers, _OUT)
        return True

    def remove_writer(self, fd: int) -> bool:
        if self._writers.pop(fd, None) is None:
            return False
        self._drop(fd, self._readers, _IN)
        return True

    def forget(self, fd: int) -> None:
        """Drop ``fd``'s callbacks without a system call. Only for a descriptor closed
        right after by the only holder of its socket: that close takes it out of the
        epoll set (an epoll entry lives as long as the open file, not the number)."""
        self._readers.pop(fd, None)
        self._writers.pop(fd, None)
        self._dropped.add(fd)

    def _drop(self, fd: int, others: dict[int, Callback], other_mask: int) -> None:
        """One callback of ``fd`` is gone: watch only for ``others``, or not at all."""
        try:
            if fd in others:
                self._epoll.modify(fd, other_mask)
            else:
                self._epoll.unregister(fd)
                self._dropped.add(fd)
        except (OSError, ValueError):
            # Closed already (the descriptor, which epoll then forgot by itself; or the
            # poller, at shutdown): nothing is watched any more either way.
            self._dropped.add(fd)

    def _poll(self) -> None:
        """Nested: the loop saw our epoll readable."""
        self._dispatch(self._epoll.poll(0, _BATCH))

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        """Run the callbacks of one batch of ``(fd, epoll mask)`` events."""
        dropped = self._dropped
        dropped.clear()
        readers, writers = self._readers, self._writers
        for fd, mask in events:
            if dropped and fd in dropped:
                continue
            if mask & ~_OUT:  # readable, or hung up / failed
                entry = readers.get(fd)
                if entry is not None:
                    try:
                        entry[0](*entry[1])
                    except Exception as exc:
                        self._report(exc, entry[0])
                    if dropped and fd in dropped:
                        continue
            if mask & ~_IN:  # writable, or hung up / failed
                entry = writers.get(fd)
                if entry is not None:
                    try:
                        entry[0](*entry[1])
                    except Exception as exc:
                        self._report(exc, entry[0])

    def _report(self, exc: Exception, callback: Callable[..., Any]) -> None:
        self._loop.call_exception_handler({
            "message": f"Exception in callback {callback!r}",
            "exception": exc,
        })

    def close(self) -> None:
        """Stop watching everything (the server is closing; its sockets are closed)."""
        if self.closed:
            return
        self.closed = True
        if self._shared is not None:
            # asyncio's epoll lives on: take out what is still watched, or a level-triggered
            # event would come back at every turn with no one to take it
            for fd in {*self._readers, *self._writers}:
                try:
                    self._epoll.unregister(fd)
                except (OSError, ValueError):
                    pass
            self._shared.detach()
        else:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
        self._readers.clear()
        self._writers.clear()
