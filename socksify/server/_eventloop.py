"""The server's event loop on Linux: asyncio on an epoll it shares with the Poller.

Why: a :class:`._poller.Poller` nested in asyncio (an epoll of its own, which the loop
watches as one descriptor) costs a second ``epoll_wait`` and a nested wake-up on every
loop turn. Sharing asyncio's epoll, a bare server's state machine used 7-11 % less CPU
per connection one at a time and set up 2-3 % more connections a second at concurrency 50
(``scripts/bench_rate_floor.py``: "merged" against "nested"); socksify-server itself, 160
against 170 µs per connection one at a time, and no change beyond noise at 50.

Rules of this module:

- :func:`run` is ``asyncio.run`` on such a loop, for the command line and for
  ``run_in_thread``. Python 3.10 has no loop factory for ``asyncio.run``: there, and in a
  loop someone else made (the Python API in the caller's own loop), the Poller nests, with
  the same behaviour.
- :class:`SharedEpollSelector` is asyncio's ``EpollSelector``, whose ``select`` hands the
  events of descriptors asyncio does not know to the one attached Poller, inside the same
  wait, and returns asyncio's own as before. Each descriptor belongs to one of them.
- A wait that would block right after one that returned events (a quiet moment after
  activity) first polls without blocking, yielding the CPU (``sched_yield``) between polls.
  Why: on loopback and nearby networks the next packet of a connection (the request after
  the method reply, the first bytes after the CONNECT reply) often comes within tens of
  microseconds; caught without sleeping, it costs neither this process a wake-up nor the
  sender the work of waking a sleeping CPU (on a virtual machine, an exit to the
  hypervisor). A ping-pong through the server took 41 instead of 78 µs a round trip
  (scripts/bench_server_pingpong.py), and one connection at a time the server set up ~10 %
  more connections a second (scripts/bench, ``rate1``); at concurrency 50 it seldom runs
  out of events and nothing changes.
- The spin sizes itself, as KVM's halt polling does: none at first; a quiet moment that
  ended within ``SPIN_WINDOW`` (100 µs) doubles the next spin (from 4 polls up to
  ``SPIN_POLLS``, 30, ~25 µs); one that lasted longer, or ended without events, turns it
  off until a short one comes again. So traffic with pauses of 0.1 ms or more (a client
  thinking between messages) costs no spinning, which a fixed spin would have added to
  every message (+18 µs of CPU per exchange with 0.3 ms pauses). A server with nothing to
  do blocks at once, and a runnable program on the same CPU gets it at every yield.
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import selectors
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["SharedEpollSelector", "new_event_loop", "run", "shared_selector"]

T = TypeVar("T")
_IN = getattr(select, "EPOLLIN", 0)
_OUT = getattr(select, "EPOLLOUT", 0)
#: A loop made by :func:`new_event_loop` -> its selector (no reaching into the loop).
_SELECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

Dispatch = Callable[[list[tuple[int, int]]], None]

#: The longest spin, in polls without blocking (module docstring), and the first one.
SPIN_POLLS = 30
_FIRST_SPIN = 4
#: A quiet moment after activity that ended this soon (seconds) makes the next spin longer.
SPIN_WINDOW = 100e-6
_yield = getattr(os, "sched_yield", lambda: None)
_clock = time.perf_counter


class SharedEpollSelector(selectors.EpollSelector if hasattr(select, "epoll") else object):
    """asyncio's epoll selector, sharing its epoll with one Poller (see the module
    docstring). Subclassing keeps everything else of EpollSelector as it is."""

    def __init__(self) -> None:
        super().__init__()
        self._dispatch: Dispatch | None = None
        self._batch = 0
        self._busy = False  #: the last wait returned events
        self._spins = 0  #: polls of the next spin

    @property
    def epoll(self) -> select.epoll:
        return self._selector  # where EpollSelector keeps its select.epoll

    def attach(self, dispatch: Dispatch, batch: int) -> bool:
        """Hand the foreign events, up to ``batch`` a turn beyond asyncio's own, to
        ``dispatch`` from now on; False if a Poller already has them (a second one nests
        instead)."""
        if self._dispatch is not None:
            return False
        self._dispatch, self._batch = dispatch, batch
        return True

    def detach(self) -> None:
        self._dispatch = None

    def _spin_then_wait(self, timeout: float, most: int) -> list[tuple[int, int]]:
        """The quiet moment after activity: poll ``self._spins`` times, yielding the CPU in
        between, then block; size the next spin by how soon events came (module docstring)."""
        poll = self._selector.poll
        spins = self._spins
        start = _clock()
        for _ in range(spins):
            _yield()
            events = poll(0, most)
            if events:
                return events  # caught: the same spin next time
        events = poll(timeout, most)
        if events and _clock() - start <= SPIN_WINDOW:
            self._spins = min(SPIN_POLLS, max(_FIRST_SPIN, 2 * spins))
        else:
            self._spins = 0
        return events

    def select(self, timeout: float | None = None):
        dispatch = self._dispatch
        if dispatch is None:
            return super().select(timeout)
        if timeout is None:
            timeout = -1
        elif timeout <= 0:
            timeout = 0
        else:  # as EpollSelector: epoll waits in milliseconds, round up
            timeout = math.ceil(timeout * 1e3) * 1e-3
        keys = self._fd_to_key
        most = len(keys) + self._batch
        try:
            events = self._selector.poll(0 if self._busy else timeout, most)
            if not events and self._busy and timeout != 0:
                events = self._spin_then_wait(timeout, most)
        except InterruptedError:
            return []
        if events:
            self._busy = True
        elif timeout != 0:  # waited, spun or blocked, and nothing came: quiet now
            self._busy = False
        ready, foreign = [], []
        for fd, event in events:
            key = keys.get(fd)
            if key is None:
                foreign.append((fd, event))
                continue
            mask = 0
            if event & ~_IN:
                mask |= selectors.EVENT_WRITE
            if event & ~_OUT:
                mask |= selectors.EVENT_READ
            ready.append((key, mask & key.events))
        if foreign:
            dispatch(foreign)
        return ready


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A SelectorEventLoop on a :class:`SharedEpollSelector`."""
    selector = SharedEpollSelector()
    loop = asyncio.SelectorEventLoop(selector)
    _SELECTORS[loop] = selector
    return loop


def shared_selector(loop: asyncio.AbstractEventLoop) -> SharedEpollSelector | None:
    """The selector of a loop made by :func:`new_event_loop`, else None."""
    return _SELECTORS.get(loop)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on :func:`new_event_loop` where it can be (Linux, 3.11+)."""
    if not hasattr(select, "epoll") or not hasattr(asyncio, "Runner"):
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
