"""The listening server: sockets, the session set, shutdown, and a thread runner.

Rules of this module:

- :class:`Server` owns every session it accepted; ``close()`` stops accepting and drops
  the open sessions, so nothing outlives it.
- ``on_session`` (the observation hook) is called once per finished session with its
  record dict, on the event loop thread; the same record is logged as one INFO line.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import datetime
import errno
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ._auth import Authenticator
from ._config import ServerConfig
from ._eventloop import run as run_loop
from ._handler import ClientProtocol, ClientSocket, HandshakeClock, Session
from ._outbound import Resolver
from ._poller import Poller
from ._relay import IdleSweeper
from ._text import printable
from ._threaded_relay import THREADED_RELAY_AVAILABLE
from ._workers import open_listeners

__all__ = ["FIXED_AT_START", "Server", "ThreadedServer", "run_in_thread"]

logger = logging.getLogger(__name__)

SessionHook = Callable[[dict[str, Any]], None]


def format_record(record: dict[str, Any]) -> str:
    """The session log line (without the ``socksify-server:`` prefix the handler adds)."""
    destination = printable(record["destination"])
    if ":" in destination and not destination.startswith("["):
        destination = f"[{destination}]"
    peer = f" peer={record['peer']}" if record.get("peer") else ""
    return (
        f"{record['client']} user={printable(record['user'] or '-')} {record['command']} "
        f"{destination}:{record['port']} {record['outcome']}{peer} "
        f"up={record['bytes_up']} down={record['bytes_down']} time={record['duration']:.3f}s"
    )


#: What start() fixes: the listeners, the worker processes sharing them, and the accept path
#: the relay choice picks. ``Server.reload`` keeps their running values: a restart changes them.
FIXED_AT_START = ("listen", "workers", "relay")
#: Listen backlog; asyncio also accepts up to this many connections per wake-up.
_BACKLOG = 256
#: Descriptors a relayed session needs: its client and remote sockets. BIND (one more
#: while it waits) and UDP ASSOCIATE (two more UDP sockets) come from the spare ones
#: below: out of descriptors, those requests fail with reply 1.
FDS_PER_SESSION = 2
#: Descriptors kept for everything else: stdio, the event loop, listeners, threads.
_FD_RESERVE = 24
#: Descriptors kept spare for BIND listeners and UDP ASSOCIATE sockets even when
#: max_clients would take every other one (at most an eighth of the limit).
_SPARE_FLOOR = 256


def client_cap(max_clients: int, listeners: int, per_session: int = FDS_PER_SESSION) -> int:
    """``max_clients``, lowered so that the sessions fit the open-files limit.

    Raises the soft RLIMIT_NOFILE toward the hard limit first when that is needed (what
    nginx's worker_rlimit_nofile does); logs a warning when the cap is still lowered.
    Running out of descriptors would make asyncio's accept loop log a traceback per
    attempt; refusing at a cap that fits keeps the server quiet and responsive.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return max_clients
    needed = _FD_RESERVE + listeners + _SPARE_FLOOR + max_clients * per_session
    fits = needed - _SPARE_FLOOR  # without the spare ones: what must fit to keep max_clients
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= fits:
        return max_clients
    kept = _FD_RESERVE + listeners + min(_SPARE_FLOOR, soft // 8)
    cap = max(1, (soft - kept) // per_session)
    logger.warning(
        "max_clients lowered from %d to %d to fit the open-files limit (ulimit -n %d)",
        max_clients, cap, soft,
    )
    return cap


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log asyncio's "out of system resource" accept errors once a second at most.

    Out of descriptors, asyncio's accept loop reports every failed accept (up to the
    backlog per wake-up) with a traceback; one warning a second says the same.
    """
    previous = loop.get_exception_handler()
    last = [0.0]

    def handler(loop, context):
        if "out of system resource" in str(context.get("message", "")):
            now = loop.time()
            if now - last[0] >= 1.0:
                last[0] = now
                exc = context.get("exception")
                logger.warning("cannot accept connections: %s", exc or context["message"])
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _address_key(host: str) -> str:
    """What ``max_clients_per_address`` counts a client host under: the address as the
    kernel gave it, but an IPv4 client seen by a dual-stack listener (``::ffff:a.b.c.d``)
    as its IPv4 address. IPv6 clients count per exact address, not per /64."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


class Server:
    """The SOCKS4/4a/5 server.

    Use as ``async with Server(config) as server:`` (listening on entry, closed on exit);
    ``server.addresses`` lists the real ``(host, port)`` of each listener.

    Args:
        config: the :class:`ServerConfig` (validated with ``check()`` on start).
        on_session: called with each finished session's record dict.
        clock: returns the current local time for time-window rules (tests inject one).
        sockets: listening sockets to serve instead of opening ``config.listen`` (a
            worker process of ``_workers.py`` gets its share of the port this way).
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        on_session: SessionHook | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        sockets: list[socket.socket] | None = None,
    ):
        self._listen_sockets = sockets
        self.config = config or ServerConfig()
        self.on_session = on_session
        self.now = clock or datetime.datetime.now
        self.auth = Authenticator(self.config.users)
        self.resolver = Resolver(self.config.hosts)
        idle = self.config.idle_timeout
        self.sweeper = IdleSweeper(idle) if idle > 0 else None
        self._servers: list[asyncio.AbstractServer] = []
        self._listeners: list[socket.socket] = []  #: the threaded path's own accept loop
        self._loop: asyncio.AbstractEventLoop | None = None
        #: the threaded path's readiness callbacks (listeners, handshakes, connects, relays)
        self._poller: Poller | None = None
        self._accept_warned_at = float("-inf")
        self._sessions: set[Session] = set()
        #: sweepers replaced by reload(), still timing the relays that joined them
        self._retired_sweepers: list[IdleSweeper] = []
        self._tasks: set[asyncio.Task] = set()
        self.handshakes: HandshakeClock | None = None  #: set by start()
        self._admitted = 0
        self.max_clients = self.config.max_clients  #: lowered by start() to fit RLIMIT_NOFILE
        #: ``max_clients_per_address``; 0 = off, and then ``_per_address`` stays empty.
        self.max_per_address = self.config.max_clients_per_address
        #: open sessions per client address (``_address_key``), while the limit is on; an
        #: address leaves when its last session ends, so this holds only current clients.
        self._per_address: dict[str, int] = {}
        #: per limit: [clients refused since the last warning, when that warning was logged]
        self._refusals = {"max_clients": [0, float("-inf")],
                          "max_clients_per_address": [0, float("-inf")]}

    @property
    def addresses(self) -> list[tuple[str, int]]:
        out = [sock.getsockname()[:2] for sock in self._listeners]
        for server in self._servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                out.append((host, port))
        return out

    async def start(self) -> None:
        """Open every listener (raises OSError if one cannot be bound)."""
        self.config.check()
        given = self._listen_sockets
        listeners = len(given) if given is not None else len(self.config.listen)
        self.max_clients = client_cap(self.config.max_clients, listeners)
        loop = self._loop = asyncio.get_running_loop()
        if self.config.handshake_timeout:
            self.handshakes = HandshakeClock(loop, self.config.handshake_timeout)
        _quiet_accept_errors(loop)
        if self.config.relay == "threads" and THREADED_RELAY_AVAILABLE:
            # The threaded path accepts with its own reader callback: a session then costs
            # no asyncio transport and no dup of the socket for the relay.
            sockets = given if given is not None else open_listeners(self.config.listen, 1)[0]
            self._poller = Poller(loop)
            for sock in sockets:
                sock.setblocking(False)
                # Accepted sockets inherit TCP_NODELAY from the listener (Linux, where
                # this path runs): one setsockopt here instead of one per connection.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._listeners.append(sock)
                self._poller.add_reader(sock.fileno(), self._accept, sock, sock.family)
            return
        try:
            for sock in given or ():
                server = await loop.create_server(
                    lambda: ClientProtocol(self), sock=sock, backlog=_BACKLOG
                )
                self._servers.append(server)
            for host, port in self.config.listen if given is None else ():
                server = await loop.create_server(
                    lambda: ClientProtocol(self), host, port, reuse_address=True,
                    backlog=_BACKLOG,
                )
                self._servers.append(server)
        except BaseException:
            await self.close()
            raise

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        forever = [asyncio.get_running_loop().create_future()] if self._listeners else []
        await asyncio.gather(*(s.serve_forever() for s in self._servers), *forever)

    async def close(self) -> None:
        """Stop accepting, drop open sessions, and wait until the listeners are closed."""
        for server in self._servers:
            server.close()
        for sock in self._listeners:
            if sock.fileno() >= 0:
                self._poller.remove_reader(sock.fileno())
                sock.close()
        self._listeners.clear()
        for session in list(self._sessions):
            session.abort()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        # Let transports run their connection_lost callbacks (relay records).
        await asyncio.sleep(0)
        for sweeper in [self.sweeper, *self._retired_sweepers]:
            if sweeper is not None:
                sweeper.close()
        if self.handshakes is not None:
            self.handshakes.close()
        if self._poller is not None:
            self._poller.close()
        self._servers.clear()

    def reload(self, config: ServerConfig) -> ServerConfig:
        """Serve from now on with ``config``; what is already relaying is not touched.

        The keys of :data:`FIXED_AT_START` keep their running values (the listeners and the
        accept path exist already). The result is checked first: a ConfigError leaves
        everything as it was (so are new users checked against the listen address kept).
        Then users, rules, ``[hosts]``, the timeouts and ``max_clients`` apply to new
        sessions and to every login and request not decided yet (sessions read
        ``server.config``, ``auth`` and ``resolver`` when they decide); a new handshake
        timeout also bounds the handshakes in progress. Relays and UDP associations keep the
        idle timeout they started with, BIND the bind timeout of its request. Returns the
        config now in use (``self.config``).
        """
        current = self.config
        config = config.replace(**{key: getattr(current, key) for key in FIXED_AT_START})
        config.check()
        self.auth = Authenticator(config.users)
        self.resolver = Resolver(config.hosts)
        if config.idle_timeout != current.idle_timeout:
            # A relay keeps the sweeper it joined; this one times the relays started later.
            self._retired_sweepers = [s for s in self._retired_sweepers if s.relays]
            if self.sweeper is not None:
                self._retired_sweepers.append(self.sweeper)
            idle = config.idle_timeout
            self.sweeper = IdleSweeper(idle) if idle > 0 else None
        if self._loop is not None:  # started: as start() does
            self._set_handshake_timeout(config.handshake_timeout)
            self.max_clients = client_cap(config.max_clients, len(self.addresses))
        else:
            self.max_clients = config.max_clients
        self._set_max_per_address(config.max_clients_per_address)
        self.config = config
        return config

    def _set_max_per_address(self, limit: int) -> None:
        """A new ``max_clients_per_address`` for the clients accepted from now on.

        Turned on, the counts start from the sessions open now (admitted while it was off,
        they were not counted); turned off, they are dropped. Clients already holding more
        than a lowered limit keep their sessions: only new ones are refused.
        """
        if limit and not self.max_per_address:
            counts: dict[str, int] = {}
            for session in self._sessions:
                key = _address_key(session.client_host)
                counts[key] = counts.get(key, 0) + 1
            self._per_address = counts
        elif not limit:
            self._per_address = {}
        self.max_per_address = limit

    def _set_handshake_timeout(self, timeout: float) -> None:
        # Sessions discard themselves from ``self.handshakes`` when their handshake ends, so
        # the clock they were added to must stay that object (or be closed).
        clock = self.handshakes
        if not timeout:
            if clock is not None:
                clock.close()  # the handshakes in progress have no deadline any more
            self.handshakes = None
        elif clock is None:
            self.handshakes = HandshakeClock(self._loop, timeout)  # for new sessions
        else:
            clock.set_timeout(timeout)

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # -- the threaded path's accept loop ------------------------------------------------

    def _accept(self, listener: socket.socket, family: int) -> None:
        """Accept what is queued (up to a backlog's worth per wake-up, as asyncio does).
        ``family`` is the listener's, read once (``socket.family`` builds an enum)."""
        # The C socket type: socket.socket's Python __init__ and close() wrappers cost a
        # few calls per connection, and nothing here uses what they add (makefile, enums).
        new_socket = _socket.socket
        for _ in range(_BACKLOG):
            try:
                # socket.accept() without its wrapper, which converts family and type to
                # enums (two Python calls each) on every connection.
                fd, peer = listener._accept()
                sock = new_socket(family, socket.SOCK_STREAM, 0, fd)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors or memory: pause this listener for a second
                    # (the queue would wake us at once) and warn once a second at most.
                    now = self._loop.time()
                    if now - self._accept_warned_at >= 1.0:
                        self._accept_warned_at = now
                        logger.warning("cannot accept connections: %s", exc)
                    self._poller.remove_reader(listener.fileno())
                    self._loop.call_later(1.0, self._resume_accept, listener, family)
                    return
                raise
            self._accepted(sock, peer)

    def _resume_accept(self, listener: socket.socket, family: int) -> None:
        if listener in self._listeners and listener.fileno() >= 0:
            self._poller.add_reader(listener.fileno(), self._accept, listener, family)

    def _accepted(self, sock: socket.socket, peer) -> None:
        if not self._admit(peer):
            sock.close()
            return
        sock.setblocking(False)  # (TCP_NODELAY comes from the listener, see start())
        proto = ClientSocket(self._loop, self._poller, sock)
        session = proto.session = Session(self, proto, peer)
        session.start()

    # -- used by sessions ---------------------------------------------------------------

    def _admit(self, peer) -> bool:
        """Take a slot for the client at ``peer`` (its address as accept gave it), or
        log the refusal and return False: the caller then closes it without a reply.

        With ``max_clients_per_address`` on, a slot costs one dict update here and one
        in ``_session_done``; with it off, nothing.
        """
        if self._admitted >= self.max_clients:
            self._refused(peer, "max_clients")
            return False
        limit = self.max_per_address
        if limit:
            key = _address_key(peer[0])
            held = self._per_address.get(key, 0) + 1
            if held > limit:
                self._refused(peer, "max_clients_per_address")
                return False
            self._per_address[key] = held
        self._admitted += 1
        return True

    def _refused(self, peer, limit: str) -> None:
        """A client over ``limit`` was closed: warn, at most once a second per limit."""
        counter = self._refusals[limit]
        counter[0] += 1
        now = self._loop.time()
        if now - counter[1] >= 1.0:
            if limit == "max_clients":
                reached = f"max_clients ({self.max_clients}) reached"
            else:
                reached = (f"max_clients_per_address ({self.max_per_address}) reached by "
                           f"{_address_key(peer[0])}")
            logger.warning("refused %s:%s: %s (%d refused since the last warning)",
                           _format_host(peer[0]), peer[1], reached, counter[0])
            counter[0], counter[1] = 0, now

    def _session_done(self, session: Session) -> None:
        self._sessions.discard(session)
        self._admitted -= 1
        if self.max_per_address:
            key = _address_key(session.client_host)
            held = self._per_address.pop(key, 1) - 1
            if held:
                self._per_address[key] = held
        logged = logger.isEnabledFor(logging.INFO)
        if not logged and self.on_session is None:
            return  # nobody reads the record: do not build it
        record = session.record()
        if logged:
            logger.info("%s", format_record(record))
        if self.on_session is not None:
            try:
                self.on_session(record)
            except Exception:
                logger.exception("on_session hook failed")


class ThreadedServer:
    """A :class:`Server` running on its own event loop in a daemon thread."""

    def __init__(self, config: ServerConfig, on_session: SessionHook | None = None, clock=None):
        self.config = config
        self._on_session = on_session
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="socksify-server", daemon=True)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self._server.addresses if self._server else []

    def _main(self) -> None:
        try:
            run_loop(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._server = Server(self.config, on_session=self._on_session, clock=self._clock)
        async with self._server:
            self._ready.set()
            await self._stop.wait()

    def start(self, timeout: float = 10) -> ThreadedServer:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("socksify-server thread did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)


@contextlib.contextmanager
def run_in_thread(
    config: ServerConfig | None = None, *, on_session: SessionHook | None = None, clock=None
) -> Iterator[ThreadedServer]:
    """``with run_in_thread(cfg) as srv:`` runs a server in a background thread."""
    server = ThreadedServer(config or ServerConfig(), on_session, clock)
    server.start()
    try:
        yield server
    finally:
        server.stop()
