"""Worker processes for ``socksify-server`` (``workers = N``): the pre-fork model.

Rules of this module:

- The parent opens every listening socket before it forks, so a bad address fails once, in
  the parent, and port 0 is resolved once: per address it binds one socket (learning the
  real port), then ``N - 1`` more on that same port, all with ``SO_REUSEPORT``. Worker ``i``
  keeps the ``i``-th socket of every address; the kernel spreads new connections over the
  listening sockets by a hash of the 4-tuple, so the workers share no accept queue and
  no lock (what nginx's ``reuseport`` does).
- The parent never accepts. It keeps its copy of every socket, so a worker that dies is
  replaced on the same socket and the connections already queued on it are not lost.
- SIGINT and SIGTERM in the parent are forwarded to the workers as SIGTERM; each worker
  stops like the single-process server (stop accepting, close its sessions), and the
  parent exits 0 once all have exited. Signals are blocked around ``fork`` so a worker
  never runs the parent's handler.
- SIGHUP in the parent calls ``reload()`` once (it checks the new configuration and logs
  what is wrong; the parent keeps the new one for the workers it starts later). Only when
  it returns true is SIGHUP passed on to every worker, which reloads itself. The parent's
  signal handlers only note the signal; its loop acts on it (see ``_Supervisor``). A new worker
  starts with SIGHUP still blocked and its default action: ``serve`` unblocks it once its
  own handler is installed, so a reload sent meanwhile waits instead of killing it.
- Each worker is an ordinary single-process server: sessions, limits (``max_clients``
  counts per worker), logs and records are per worker.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

__all__ = ["open_listeners", "run_workers"]

logger = logging.getLogger(__name__)

_BACKLOG = 256
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Blocked around fork: the stop signals and the reload signal.
_FORK_BLOCKED = (*_SIGNALS, signal.SIGHUP)
#: A worker that dies sooner than this after its start is replaced only after this delay
#: (a worker that cannot run at all must not turn into a fork loop).
_RESTART_DELAY = 1.0


def _listener(family: int, address: tuple, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def open_listeners(listen: list[tuple[str, int]], workers: int) -> list[list[socket.socket]]:
    """Per worker, one listening socket for every address of every ``listen`` entry.

    ``result[0]`` holds the first socket of each address (their names are the addresses
    to announce); raises OSError (nothing left open) when an address cannot be bound.
    One worker gets plain sockets (no SO_REUSEPORT: a port in use is an error, as it
    should be); several get SO_REUSEPORT ones.
    """
    reuse_port = workers > 1
    shares: list[list[socket.socket]] = [[] for _ in range(workers)]
    try:
        for host, port in listen:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            seen = set()
            for family, _type, _proto, _name, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                first = _listener(family, address, reuse_port)
                shares[0].append(first)
                real = (address[0], first.getsockname()[1], *address[2:])
                for share in shares[1:]:
                    share.append(_listener(family, real, reuse_port))
    except BaseException:
        for share in shares:
            for sock in share:
                sock.close()
        raise
    return shares


def run_workers(
    config, serve: Callable[[list[socket.socket]], int],
    announce: Callable[[str, int], None],
    reload: Callable[[], bool] | None = None,
) -> int:
    """Open the listeners, announce them, run ``config.workers`` workers until a signal.

    ``serve(sockets)`` runs in each forked worker and returns its exit status; with
    ``reload`` it must unblock SIGHUP once it handles it. ``reload()`` runs in the parent on
    SIGHUP; true passes SIGHUP on to the workers (None: SIGHUP keeps its default action).
    Raises OSError when a listener cannot be opened (before anything was forked).
    """
    shares = open_listeners(config.listen, config.workers)
    supervisor = _Supervisor(shares, serve, reload)
    try:
        supervisor.run(config.workers, announce)
    finally:
        for share in shares:
            for sock in share:
                sock.close()
    return 0


class _Supervisor:
    """The parent's loop. Its signal handlers only note what came; the loop does the work
    (stop, reload, reap, restart) outside them: a handler runs between any two bytecodes
    of the loop, and one that logged could land inside the loop's own write to stderr
    ("reentrant call inside BufferedWriter", which ended the parent under a burst of
    SIGHUPs). ``signal.set_wakeup_fd`` wakes the loop's wait for every signal handled."""

    def __init__(self, shares: list[list[socket.socket]], serve, reload):
        self.shares = shares
        self.serve = serve
        self.reload = reload
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, start time)
        self.restarts: dict[int, float] = {}  # worker index -> when to start it again
        self.stopping = False
        self.reload_pending = False
        self.wake_r, self.wake_w = os.pipe()

    def _on_stop(self, signum, frame) -> None:
        self.stopping = True

    def _on_reload(self, signum, frame) -> None:
        self.reload_pending = True

    def run(self, workers: int, announce: Callable[[str, int], None]) -> None:
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        previous_wakeup = signal.set_wakeup_fd(self.wake_w)
        previous = {signum: signal.signal(signum, self._on_stop) for signum in _SIGNALS}
        # A handler (SIG_IGN would reap the workers behind waitpid's back): an exit wakes us.
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _noted)
        if self.reload is not None:
            previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_reload)
        # The caller may hold SIGHUP blocked until here (the server's main): one sent
        # meanwhile arrives now, to the handler (or, without reload, its default action).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        try:
            # Announced once the handlers are in place: whoever waits for these lines may
            # signal at once.
            for sock in self.shares[0]:
                host, port = sock.getsockname()[:2]
                announce(host, port)
            for index in range(workers):
                if self.stopping:  # fork no more: nobody would stop them
                    break
                self._spawn(index)
            self._loop()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(self.wake_r)
            os.close(self.wake_w)

    def _loop(self) -> None:
        stopped = False
        while self.children or (self.restarts and not self.stopping):
            if self.stopping and not stopped:
                stopped = True
                self._signal_workers(signal.SIGTERM)
            if self.reload_pending and not self.stopping:
                self._reload()
            self._reap()
            if self.stopping:
                self.restarts.clear()
            now = time.monotonic()
            for index, due in list(self.restarts.items()):
                if due <= now:
                    del self.restarts[index]
                    self._spawn(index)
            if self.stopping and not self.children:
                break
            timeout = min((due - now for due in self.restarts.values()), default=1.0)
            select.select([self.wake_r], [], [], max(0.0, timeout))
            try:
                while os.read(self.wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def _reload(self) -> None:
        """One reload per pass: SIGHUPs that come meanwhile make one more pass."""
        self.reload_pending = False
        try:
            valid = self.reload()
        except Exception:  # a reload must never end the server
            logger.exception("configuration not reloaded")
            valid = False
        if valid and not self.stopping:
            self._signal_workers(signal.SIGHUP)

    def _signal_workers(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            index, started = self.children.pop(pid, (None, 0.0))
            if index is None or self.stopping:
                continue
            logger.warning("worker %d (pid %d) exited with status %d; starting a new one",
                           index, pid, os.waitstatus_to_exitcode(status))
            # A worker that could not run at all must not turn into a fork loop.
            delay = _RESTART_DELAY if time.monotonic() - started < _RESTART_DELAY else 0.0
            self.restarts[index] = time.monotonic() + delay

    def _spawn(self, index: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        try:
            pid = os.fork()
            if pid == 0:  # the worker: never returns into the parent's code
                status = 1
                try:
                    signal.set_wakeup_fd(-1)
                    os.close(self.wake_r)
                    os.close(self.wake_w)
                    for signum in (*_FORK_BLOCKED, signal.SIGCHLD):
                        signal.signal(signum, signal.SIG_DFL)
                    # SIGHUP stays blocked when serve() handles it (see the module's rules).
                    signal.pthread_sigmask(
                        signal.SIG_UNBLOCK, _SIGNALS if self.reload else _FORK_BLOCKED
                    )
                    for other, share in enumerate(self.shares):
                        if other != index:
                            for sock in share:
                                sock.close()
                    status = self.serve(self.shares[index])
                except BaseException:
                    logger.exception("worker %d failed", index)
                finally:
                    logging.shutdown()
                    sys.stderr.flush()
                    os._exit(status)
            self.children[pid] = (index, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORK_BLOCKED)


def _noted(signum, frame) -> None:
    """SIGCHLD's handler: nothing to do here (the wake-up fd wakes the loop)."""
