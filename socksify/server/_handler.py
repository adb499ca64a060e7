"""One client session: drive ``Connection(SERVER)`` through the handshake, then carry out
the request (CONNECT, BIND, UDP ASSOCIATE, or Tor's RESOLVE and RESOLVE_PTR).

Rules of this module:

- Only ``socksify.protocol`` knows byte layouts: this module turns bytes into events with
  ``receive_data``/``next_event`` and events into bytes with ``send``.
- The client socket is read through :class:`ClientSocket` (a bare non-blocking socket and
  the server's :class:`._poller.Poller` callbacks, the threaded path) or
  :class:`ClientProtocol` (a small buffering protocol on an asyncio transport, the
  portable path) during the handshake; for CONNECT and BIND the socket or transport is
  then handed to the relay (``_relay.py``) and the session coroutine ends, so an
  established connection keeps no task alive. The session record is finished by the
  relay's ``on_done`` callback.
- Every way a session ends produces exactly one record (and one log line) through
  ``Session.finish``.
- Method choice (RFC 1928 §3): with users configured only USERNAME/PASSWORD (2) is
  acceptable; without, only NO AUTHENTICATION (0). GSSAPI (1) is never selected (RFC 1961
  is not implemented). No acceptable method -> X'FF' and close.
- SOCKS4 cannot authenticate, so when users are configured a SOCKS4/4a request is refused
  (91) unless the first matching rule is an allow rule that names ``protocols =
  ["socks4"]`` explicitly. The SOCKS4 USERID is the user name rules see.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol import (
    NEED_DATA,
    UNSPECIFIED_V4,
    Address,
    AddressType,
    AuthMethod,
    AuthResult,
    Command,
    Connection,
    Greeting,
    LocalProtocolError,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Reply4,
    Reply5,
    Request,
    Role,
    UserPassAuth,
)
from . import _bind
from ._deadline import within
from ._outbound import (
    OutboundError,
    connect_outbound,
    finish_connection,
    open_connection,
    outbound_error,
    reply_for_oserror,
)
from ._relay import Relay, start_relay, start_threaded_relay, start_threaded_relay_now
from ._rules import Query, evaluate
from ._text import printable
from ._udp import UdpAssociation

if TYPE_CHECKING:
    from ._config import ServerConfig
    from ._poller import Poller
    from ._server import Server

__all__ = ["ClientProtocol", "ClientSocket"]

logger = logging.getLogger(__name__)

#: Bytes buffered from a client before reading pauses (handshake phase only).
_READ_LIMIT = 64 * 1024
#: How an HTTP request starts (RFC 9110 §9 methods), and the answer to one on a SOCKS port
_HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"CONNECT ", b"OPTIONS ",
                 b"TRACE ", b"PATCH ")
_NOT_AN_HTTP_PROXY = (
    b"HTTP/1.0 501 Not Implemented\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    b"This is socksify-server, a SOCKS proxy (SOCKS4, SOCKS4a and SOCKS5), not an HTTP\n"
    b"proxy. Configure it as a SOCKS proxy, for example socks5h://HOST:PORT.\n"
)
_COMMAND_NAMES = {
    Command.CONNECT: "connect", Command.BIND: "bind", Command.UDP_ASSOCIATE: "udp",
    Command.RESOLVE: "resolve", Command.RESOLVE_PTR: "resolve_ptr",
}


def _plain_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(host.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class ClientProtocol(asyncio.Protocol):
    """Buffers what the client sends during the handshake; starts a :class:`Session`."""

    __slots__ = ("server", "transport", "buffer", "eof", "closed", "_waiter", "_paused",
                 "session")

    def __init__(self, server: Server):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.closed: asyncio.Future | None = None
        self._waiter: asyncio.Future | None = None
        self._paused = False
        self.session: Session | None = None

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        peer = transport.get_extra_info("peername")
        if not self.server._admit(peer):  # over a limit: refused (and logged) there
            transport.abort()
            return
        self.session = Session(self.server, self, peer)
        self.session.start()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_LIMIT and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)  # the client is done (a BIND stops waiting)
        return True  # half-open: we may still have a reply to write

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    # -- used by the session ------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """Everything buffered so far, waiting for some if there is none; b"" at EOF."""
        while not self.buffer and not self.eof:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take_buffer()

    def take_buffer(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self.transport.abort()

    def local_address(self):
        return self.transport.get_extra_info("sockname")


class ClientSocket:
    """The client's socket during the handshake, without an asyncio transport.

    Same interface as :class:`ClientProtocol` (``read``, ``write``, ``take_buffer``,
    ``eof``, ``closed``, ``close``, ``abort``). Replies are sent with one ``send`` (they
    fit an empty socket buffer; a rest waits for a writer callback). A reader callback is
    registered only once a read has to wait, and ``detach`` hands the bare socket to the
    threaded relay: no transport to build, no descriptor to duplicate per connection.
    """

    __slots__ = ("loop", "poller", "sock", "fd", "buffer", "eof", "_closed", "_waiter",
                 "_reading", "_closing", "_out", "session", "on_data")

    def __init__(self, loop: asyncio.AbstractEventLoop, poller: Poller, sock):
        self.loop = loop
        self.poller = poller  #: readiness callbacks (futures and timers stay on ``loop``)
        self.sock = sock
        self.fd = sock.fileno()
        #: received, not taken yet: the recv's own bytes object while one recv holds it
        #: all (the usual case: no copy in, none out), else a bytearray appended in place
        self.buffer: bytes | bytearray = b""
        self.eof = False
        self._closed: asyncio.Future | None = None
        self._waiter: asyncio.Future | None = None
        self._reading = False
        self._closing = False
        self._out = b""  # what send() could not take yet
        self.session: Session | None = None
        #: called when bytes (or EOF) arrived and no read() waits: the session's
        #: callback-driven handshake (no task, no future per read)
        self.on_data: Callable[[], None] | None = None

    @property
    def closed(self) -> asyncio.Future:
        """Done when the client closed its side (EOF), or the connection failed or was
        closed (BIND waits on it)."""
        if self._closed is None:
            self._closed = self.loop.create_future()
            if self._closing:
                self._closed.set_result(None)
            else:
                self._start_reading()  # a reset is seen only by reading
        return self._closed

    def _start_reading(self) -> None:
        if not self._reading and not self.eof and not self._closing:
            self._reading = True
            self.poller.add_reader(self.fd, self._readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.poller.remove_reader(self.fd)

    def _recv(self) -> None:
        """One recv into the buffer; raises BlockingIOError when there is nothing."""
        try:
            data = self.sock.recv(_READ_LIMIT)
        except (BlockingIOError, InterruptedError):
            raise BlockingIOError from None
        except OSError:
            data = b""
            self.eof = True
            self._stop_reading()
            self._lost()
            return
        if data:
            buffer = self.buffer
            if not buffer:
                self.buffer = buffer = data
            elif buffer.__class__ is bytearray:
                buffer += data
            else:  # a second read before the first was taken: append in place from here on
                self.buffer = buffer = bytearray(buffer)
                buffer += data
            if len(buffer) > _READ_LIMIT:
                self._stop_reading()  # read() starts it again once the buffer is taken
        else:
            self.eof = True
            self._stop_reading()
            if self._closed is not None and not self._closed.done():
                self._closed.set_result(None)  # the client is done (a BIND stops waiting)

    def _readable(self) -> None:
        try:
            self._recv()
        except BlockingIOError:
            return
        if self._waiter is not None:
            if not self._waiter.done():
                self._waiter.set_result(None)
        elif self.on_data is not None:
            self.on_data()

    def read_now(self, try_recv: bool) -> bytes | None:
        """Everything buffered (with ``try_recv``, or what one recv gives); b"" at EOF;
        None when nothing has arrived yet (the reader is then registered and ``on_data``
        will be called)."""
        if not self.buffer and not self.eof and not self._closing:
            if try_recv:
                try:
                    self._recv()
                except BlockingIOError:
                    pass
            if not self.buffer and not self.eof and not self._closing:
                self._start_reading()
                return None
        return self.take_buffer()

    async def read(self) -> bytes:
        """Everything buffered so far, waiting for some if there is none; b"" at EOF."""
        if not self.buffer and not self.eof and not self._closing:
            try:
                self._recv()  # often the bytes are there already: no reader, no wait
            except BlockingIOError:
                pass
        while not self.buffer and not self.eof and not self._closing:
            self._start_reading()
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take_buffer()

    def take_buffer(self) -> bytes:
        data, self.buffer = self.buffer, b""
        return data

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.abort()
            return
        if sent < len(data):
            self._out = bytes(data[sent:])
            self.poller.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._out = b""
            self.poller.remove_writer(self.fd)
            self.abort()
            return
        self._out = self._out[sent:]
        if not self._out:
            self.poller.remove_writer(self.fd)
            if self._closing:
                self._close_now()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Close once the unsent reply bytes are out."""
        if self._closing:
            return
        self._closing = True
        self._stop_reading()
        if not self._out:
            self._close_now()

    def abort(self) -> None:
        if self._out:
            self._out = b""
            self.poller.remove_writer(self.fd)
        self._closing = True
        self._stop_reading()
        self._close_now()

    def _close_now(self) -> None:
        if self.sock.fileno() >= 0:
            self.sock.close()
        self._lost()

    def _lost(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def detach(self, keep_reader: bool = False):
        """Stop watching the socket and return it with the reply bytes not sent yet.

        With ``keep_reader`` (and nothing left to send) the reader registration stays for
        the relay, which replaces its callback: one epoll_ctl pair less per connection.
        Returns ``(sock, unsent, reader_kept)``.
        """
        if self._out:
            self.poller.remove_writer(self.fd)
            keep_reader = False
        out, self._out = self._out, b""
        kept = keep_reader and self._reading
        if not kept:
            self._stop_reading()
        self._reading = False
        self._closing = True
        return self.sock, out, kept

    def local_address(self):
        return self.sock.getsockname()


class HandshakeClock:
    """The handshake timeout of every session, with one timer for all.

    Sessions start in order and share one timeout, so their deadlines come in that same
    order: a dict (insertion-ordered) of the sessions still in their handshake, and one
    timer for the oldest, replace a timer per session (a heap push, a cancel, and the
    loop's clean-up of cancelled timers per connection).
    """

    __slots__ = ("loop", "timeout", "waiting", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float):
        self.loop = loop
        self.timeout = timeout
        self.waiting: dict[Session, None] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, session: Session) -> None:
        self.waiting[session] = None
        if self._timer is None:
            self._timer = self.loop.call_later(self.timeout, self._expire)

    def discard(self, session: Session) -> None:
        self.waiting.pop(session, None)

    def _expire(self) -> None:
        self._timer = None
        waiting = self.waiting
        now = time.monotonic()
        while waiting:
            session = next(iter(waiting))
            left = session.started + self.timeout - now
            if left > 0:
                self._timer = self.loop.call_later(left, self._expire)
                return
            del waiting[session]
            session._handshake_timeout()

    def set_timeout(self, timeout: float) -> None:
        """A new timeout (a configuration reload) for new sessions and those waiting."""
        if timeout == self.timeout:
            return
        self.timeout = timeout
        if self._timer is not None:  # it was set for the old timeout
            self._timer.cancel()
            self._expire()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.waiting.clear()


class Session:
    """Everything about one client, from accept to the final record.

    Once a relay runs, the session drops its handshake state (``_detach``) and keeps only
    what the record needs: an idle relayed connection should cost little memory.
    """

    __slots__ = ("server", "loop", "proto", "client_host", "client_port", "conn",
                 "started", "task", "relay", "relaying", "udp", "user", "command",
                 "destination", "port", "peer", "outcome", "reply_code", "bytes_up",
                 "bytes_down", "_finished", "_version", "_denied_by", "_timed_out")

    def __init__(self, server: Server, proto: ClientProtocol | ClientSocket, peer):
        self.server = server
        self.loop = server._loop
        self.proto = proto
        self.client_host, self.client_port = peer[0], peer[1]
        self.conn = Connection(Role.SERVER)
        self.started = time.monotonic()
        self.task: asyncio.Task | None = None  #: only while a coroutine waits (see _go_on)
        self.relay: Relay | None = None
        self.relaying = False  #: the relay owns the session's end from here on
        self.udp: UdpAssociation | None = None
        self.user: str | None = None
        self.command = "-"
        self.destination = "-"
        self.port = 0
        self.peer: str | None = None  #: BIND: who connected; RESOLVE(_PTR): the answer
        self.outcome = "open"
        self.reply_code: int | None = None
        self.bytes_up = 0
        self.bytes_down = 0
        self._finished = False
        self._version: int | None = None
        self._denied_by: str | None = None
        self._timed_out = False

    @property
    def config(self) -> ServerConfig:
        """The server's config when read: a reload (``Server.reload``) reaches the
        requests not decided yet."""
        return self.server.config

    @property
    def client_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return _plain_ip(self.client_host)

    @property
    def version(self) -> int | None:
        return self.conn.version if self.conn is not None else self._version

    def start(self) -> None:
        self.server._sessions.add(self)
        clock = self.server.handshakes
        if clock is not None:
            clock.add(self)
        proto = self.proto
        if isinstance(proto, ClientSocket):
            # Callbacks drive the handshake: no task and no future per read. A coroutine
            # takes over only when something other than the client must be awaited.
            proto.on_data = self._step
            self._step(True)  # the greeting is often there already: try one recv
        else:
            self._go_on(self._run(self._handshake_and_request()))

    def _go_on(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` now; only if it has to wait does a task carry it on (a CONNECT to
        a nearby address with nothing to resolve completes without one)."""
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        task = self.task = self.loop.create_task(_resume(coro, pending))
        tasks = self.server._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _cancel_timer(self) -> None:
        clock = self.server.handshakes
        if clock is not None:
            clock.discard(self)

    # -- the handshake ------------------------------------------------------------------

    def _step(self, fresh: bool = False) -> None:
        """The client sent bytes (or closed): advance the handshake as far as they allow.

        ``fresh``: just accepted, nothing read yet. Otherwise the reader callback has
        read what there is; a client answers a reply only after it arrived, so once the
        bytes at hand are used up, recv would only fail with EAGAIN: the reader waits."""
        try:
            event = self._negotiate_now(fresh)
        except RemoteProtocolError as exc:
            self._cancel_timer()
            self._handshake_error(exc)
            self.finish()
            return
        except Exception as exc:  # a bug: log it with the client, keep serving the others
            self._cancel_timer()
            self._internal_error(exc)
            self.finish()
            return
        if event is None:
            if self.outcome != "open":  # refused or closed during the handshake
                self._cancel_timer()
                self.finish()
            return  # waiting for the client: on_data calls us again
        self.proto.on_data = None  # from here on a coroutine reads, if anything does
        if (event.__class__ is Request and event.command == Command.CONNECT
                and event.address.is_ip):
            self._connect_ip(event)
        else:
            self._go_on(self._run(self._handshake_and_request(event)))

    def _negotiate_now(self, fresh: bool) -> UserPassAuth | Request | None:
        """Handshake events from the bytes at hand, without waiting. Returns the first
        event that needs more than a reply (a login to check, the request), or None: no
        more bytes yet, or the session ended (``outcome`` says so).

        Each call starts by reading: the core holds no event then (at the start, and
        after every return of None it was read to NEED_DATA), so asking it first would
        only give NEED_DATA."""
        conn = self.conn
        proto = self.proto
        while True:
            data = proto.read_now(fresh)
            fresh = False
            if data is None:
                return None
            # Before the version is known, a first byte other than 4 or 5 may be HTTP. (In
            # this order: a SOCKS message starts with 4 or 5, or 1 for RFC 1929, so for
            # it the check ends at the byte, without the version property's call.)
            maybe_not_socks = (not data or data[0] > 5) and conn.version is None
            if maybe_not_socks and self._not_socks(data):
                return None
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, Greeting):
                    if not self._greeted(event):
                        return None
                elif isinstance(event, (UserPassAuth, Request)):
                    return event
                else:  # pragma: no cover - the core only returns these events to a server
                    raise RemoteProtocolError(f"unexpected {type(event).__name__}")

    def _not_socks(self, first: bytes) -> bool:
        """The client's first bytes end the session without a protocol error: it closed
        without a byte, or it speaks HTTP (a program given this port as its HTTP proxy),
        which gets a short HTTP answer that says so, as Tor's SOCKS port gives
        (tor-socks-extensions.txt §4)."""
        if not first:
            self.outcome = "client-closed"  # not worth a protocol error
        elif first.startswith(_HTTP_METHODS):
            self.outcome = "http-request"
            logger.info("HTTP request from %s on a SOCKS port: answered 501",
                        self._client_text())
            self.proto.write(_NOT_AN_HTTP_PROXY)
        else:
            return False
        self._close()
        return True

    def _greeted(self, event: Greeting) -> bool:
        method = self._choose_method(event.methods)
        self.proto.write(self.conn.send(MethodSelected(method)))
        if method == AuthMethod.NO_ACCEPTABLE:
            self.outcome = "no-acceptable-method"
            self._close()
            return False
        return True

    def _handshake_error(self, exc: RemoteProtocolError) -> None:
        if self.proto.eof:  # the client went away mid-handshake: not an attack
            self.outcome = "client-closed"
            logger.info("client %s closed during the handshake: %s",
                        self._client_text(), exc)
            self._close()
        else:
            self._protocol_failure("protocol-error", str(exc), exc.reply_hint)

    def _internal_error(self, exc: Exception) -> None:
        logger.exception("internal error serving %s", self._client_text())
        self.outcome = f"internal-error:{type(exc).__name__}"
        self._close()

    async def _run(self, body: Coroutine[Any, Any, None]) -> None:
        """Carry out ``body``, the rest of the session, the way every session coroutine
        ends: shutdown cancels it, a bug is logged with the client, and the session is
        finished unless a relay took it over."""
        try:
            await body
        except asyncio.CancelledError:
            self.outcome = "shutdown"
            self._close()
            raise
        except Exception as exc:  # a bug: log it with the client, keep serving the others
            self._internal_error(exc)
        finally:
            if not self.relaying:
                self.finish()

    async def _handshake_and_request(self, event: UserPassAuth | Request | None = None) -> None:
        """The session from ``event`` on (from the start when None) until the relay takes
        over or the request is answered."""
        if isinstance(event, Request):
            request = event
        else:
            try:
                request = await self._negotiate(event)
            except asyncio.CancelledError:
                if not self._timed_out:
                    raise
                self._protocol_failure("handshake-timeout", "no complete request in time")
                return
            except RemoteProtocolError as exc:
                self._handshake_error(exc)
                return
            finally:
                self._cancel_timer()
            if request is None:
                return
        self._cancel_timer()
        await self._dispatch(request)

    def _handshake_timeout(self) -> None:
        if self.task is not None:
            if not self.task.done():
                self._timed_out = True
                self.task.cancel()
        elif not self._finished and not self.relaying and self.conn is not None:
            # Waiting for the client's bytes on callbacks: end the session here.
            self._timed_out = True
            self.proto.on_data = None
            self._protocol_failure("handshake-timeout", "no complete request in time")
            self.finish()

    async def _negotiate(self, event: UserPassAuth | None = None) -> Request | None:
        conn = self.conn
        while True:
            if event is None:
                event = conn.next_event()
            if event is NEED_DATA:
                data = await self.proto.read()
                maybe_not_socks = (not data or data[0] > 5) and self.conn.version is None
                if maybe_not_socks and self._not_socks(data):
                    return None
                conn.receive_data(data)
            elif isinstance(event, Greeting):
                if not self._greeted(event):
                    return None
            elif isinstance(event, UserPassAuth):
                if not await self._authenticate(event):
                    self.proto.write(conn.send(AuthResult(False)))
                    self.outcome = "auth-failed"
                    self._close()
                    return None
                self.proto.write(conn.send(AuthResult(True)))
            elif isinstance(event, Request):
                return event
            else:  # pragma: no cover - the core only returns the events above to a server
                raise RemoteProtocolError(f"unexpected {type(event).__name__}")
            event = None

    def _choose_method(self, offered: tuple[int, ...]) -> int:
        # RFC 1928 §3: the server selects one of the offered methods or X'FF'.
        wanted = AuthMethod.USERNAME_PASSWORD if self.server.auth else AuthMethod.NO_AUTH
        return wanted if wanted in offered else AuthMethod.NO_ACCEPTABLE

    async def _authenticate(self, event: UserPassAuth) -> bool:
        # RFC 1929 §2. scrypt takes tens of ms: run it off the event loop.
        ok = await self.loop.run_in_executor(
            None, self.server.auth.verify, event.username, event.password
        )
        name = event.username.decode("utf-8", "replace")
        if ok:
            self.user = name
        else:
            logger.warning("failed login for user %r from %s", name, self._client_text())
        return ok

    def _protocol_failure(self, outcome: str, detail: str, hint: int | None = None) -> None:
        self.outcome = outcome
        logger.warning("%s from %s: %s", outcome, self._client_text(), detail)
        if hint is not None:
            self._send_error_reply(hint)
        self._close()

    def _send_error_reply(self, code: int) -> None:
        try:
            if self.conn.version == 4:
                code = Reply4.REJECTED
            self.proto.write(self.conn.send(Reply(code, _unspecified(), 0)))
            self.reply_code = code
        except LocalProtocolError:
            pass  # the state machine does not allow a reply here: just close

    # -- the request --------------------------------------------------------------------

    def _note_request(self, request: Request) -> None:
        """What the record and the rules need to know of the request."""
        self.command = _COMMAND_NAMES.get(request.command) or str(int(request.command))
        self.destination = request.address.host
        self.port = request.port
        if self.conn.version == 4:
            self.user = request.user_id.decode("utf-8", "replace") or None  # "" = none given

    async def _dispatch(self, request: Request) -> None:
        self._note_request(request)
        if not self._request_allowed(request):
            self._denied()
            return
        if request.command == Command.CONNECT:
            await self._connect(request)
        elif request.command == Command.BIND:
            await self._bind(request)
        elif request.command == Command.UDP_ASSOCIATE and self.conn.version == 5:
            await self._udp_associate(request)
        elif request.command == Command.RESOLVE:
            await self._resolve(request)
        elif request.command == Command.RESOLVE_PTR:
            await self._resolve_ptr(request)
        else:
            self.outcome = "command-not-supported"
            self._reply_failure(Reply5.COMMAND_NOT_SUPPORTED)

    # Access control -------------------------------------------------------------------

    def _denied(self) -> None:
        self.outcome = "not-allowed"
        logger.info("denied %s user=%s %s %s:%s by %s", self._client_text(),
                    printable(self.user), self.command, printable(self.destination),
                    self.port, self._denied_by or "the rules")
        self._reply_failure(Reply5.NOT_ALLOWED)

    def _protocol_name(self) -> str:
        return "socks4" if self.conn.version == 4 else "socks5"

    def _check(self, host: str | None, address: str | None, port: int | None) -> bool:
        if not self.config.rules and not (self.conn.version == 4 and self.server.auth):
            return True  # nothing to evaluate: the default without rules is allow
        query = Query(
            client=self.client_ip,
            command=self.command,
            port=port,
            host=host,
            address=_plain_ip(address) if address else None,
            user=self.user,
            protocol=self._protocol_name(),
        )
        allowed, rule = evaluate(self.config.rules, query, self.server.now())
        if allowed and self.conn.version == 4 and self.server.auth:
            # SOCKS4 cannot authenticate: only an explicit socks4 rule lets it through.
            allowed = rule is not None and "socks4" in rule.protocols
        if not allowed:
            self._denied_by = rule.source if rule else "default (no rule matched)"
        return allowed

    def _request_allowed(self, request: Request) -> bool:
        """Checks that need no resolution. Per-address checks follow in each command."""
        if request.command == Command.UDP_ASSOCIATE:
            return self._check(None, None, None)
        if request.address.is_ip:
            if request.command == Command.BIND and _plain_ip(request.address.host).is_unspecified:
                return self._check(None, None, None)
            return self._check(None, request.address.host, request.port)
        return True  # a name is checked once per resolved address

    def _host_of(self, request: Request) -> str | None:
        return None if request.address.is_ip else request.address.host

    # Replies --------------------------------------------------------------------------

    def _reply(self, code: int, host: str = "0.0.0.0", port: int = 0) -> None:
        """Send a Reply; SOCKS4 gets 90/91 and an IPv4 address (0.0.0.0 if there is none)."""
        host = host.split("%", 1)[0]  # an IPv6 scope id (fe80::1%eth0) has no wire form
        if self.conn.version == 4:
            code = Reply4.GRANTED if code == Reply5.SUCCEEDED else Reply4.REJECTED
            address = Address.from_host(host)
            if address.type != AddressType.IPV4:
                address = UNSPECIFIED_V4
        else:
            address = Address.from_host(host)
            if address.type == AddressType.IPV6 and host.startswith("::ffff:"):
                address = Address.from_host(str(_plain_ip(host)))
        self.reply_code = code
        self.proto.write(self.conn.send(Reply(code, address, port)))

    def _reply_failure(self, code: int) -> None:
        self._reply(code)
        self._close()

    # CONNECT --------------------------------------------------------------------------

    def _connect_ip(self, request: Request) -> None:
        """CONNECT to an IP address, the common request, carried out on the spot: no
        coroutine unless the connect is still in progress after ``open_connection``
        (a nearby destination has mostly answered by then), or early data must be
        passed on first (``_start_relay``). Same outcomes, replies and record as
        ``_handshake_and_request`` -> ``_dispatch`` -> ``_connect``."""
        self._cancel_timer()
        try:
            self._note_request(request)
            if not self._request_allowed(request):  # the rules' check of this address
                self._denied()
            else:
                try:
                    sock, in_progress = open_connection(request.address.host, request.port)
                except OSError as exc:
                    self._connect_failed(outbound_error(exc, request.address.host))
                else:
                    if in_progress:
                        self._go_on(self._run(self._connect(request, sock)))
                        return
                    if not self._connected(sock):
                        self._go_on(self._run(self._start_relay(sock)))
                        return
        except Exception as exc:  # a bug: log it with the client, keep serving the others
            self._internal_error(exc)
        if not self.relaying:
            self.finish()

    async def _connect(self, request: Request, connecting: socket.socket | None = None) -> None:
        """CONNECT: resolve, check and connect (or, with ``connecting``, wait for the
        connect ``_connect_ip`` left in progress), reply, then relay."""
        host = self._host_of(request)
        try:
            if connecting is None:
                sock = await connect_outbound(
                    self.server.resolver,
                    request.address.host,
                    request.port,
                    lambda address: self._check(host, address, request.port),
                    self.config.connect_timeout,
                    self.loop,
                    None if host is not None else [request.address.host],
                    self.server._poller,
                )
            else:
                sock = connecting
                try:
                    await finish_connection(self.loop, self.server._poller or self.loop, sock,
                                            self.config.connect_timeout)
                except (asyncio.TimeoutError, OSError) as exc:
                    raise outbound_error(exc, request.address.host) from None
        except OutboundError as exc:
            self._connect_failed(exc)
            return
        if not self._connected(sock):
            await self._start_relay(sock)

    def _connect_failed(self, exc: OutboundError) -> None:
        if exc.code == Reply5.NOT_ALLOWED:
            self._denied()
            return
        self.outcome = exc.outcome
        logger.debug("connect for %s failed: %s", self._client_text(), exc)
        self._reply_failure(exc.code)

    def _connected(self, sock: socket.socket) -> bool:
        """Reply success; then, when nothing has to be sent first (no early data, the
        reply sent whole, the client still there: the usual case on the threaded path),
        hand both sockets to the threaded relay at once. False: ``_start_relay`` does
        that part, in a coroutine."""
        bound = sock.getsockname()
        self._reply(Reply5.SUCCEEDED, bound[0], bound[1])
        proto = self.proto
        if proto.__class__ is not ClientSocket or proto._closing or proto._out or proto.buffer:
            return False
        early = self.conn.trailing_data  # (handed out once: kept where _start_relay looks)
        if early:
            proto.buffer = early + proto.buffer
            return False
        self.outcome = "ok"
        self.relaying = True
        self._detach()
        client_sock, _unsent, _kept = proto.detach(keep_reader=True)
        self.relay = start_threaded_relay_now(
            client_sock, sock, sweeper=self.server.sweeper, on_done=self._relay_done,
            loop=self.loop, poller=proto.poller,
        )
        return True

    async def _start_relay(self, sock, to_client: bytes = b"") -> None:
        proto = self.proto
        if proto.is_closing():
            sock.close()
            self.outcome = "client-closed"
            return
        early = self.conn.trailing_data + proto.take_buffer()
        self.outcome = "ok"
        self.relaying = True
        self._detach()
        if isinstance(proto, ClientSocket):
            # The relay's first add_reader on a kept registration only swaps the callback;
            # it must not be kept when the relay first awaits sends (the handshake's
            # callback would read meanwhile).
            client_sock, unsent, _kept = proto.detach(keep_reader=not (early or to_client))
            self.relay = await start_threaded_relay(
                client_sock,
                sock,
                to_remote=early,
                to_client=unsent + to_client,
                sweeper=self.server.sweeper,
                on_done=self._relay_done,
                loop=self.loop,
                poller=proto.poller,
            )
            return
        self.relay = await start_relay(
            proto.transport,
            sock,
            to_remote=early,
            to_client=to_client,
            sweeper=self.server.sweeper,
            on_done=self._relay_done,
            threaded=self.config.relay == "threads",
        )

    def _detach(self) -> None:
        """Drop the handshake state; the relay owns the transports from here on."""
        self._version = self.conn.version
        self.conn = None
        self.proto.session = None
        self.proto = None
        self.task = None

    def _relay_done(self, relay: Relay) -> None:
        self.relay = relay
        self.bytes_up, self.bytes_down = relay.bytes_up, relay.bytes_down
        error = relay.error
        if isinstance(error, TimeoutError):
            self.outcome = "idle-timeout"
        elif error is not None and not isinstance(error, OSError):  # a bug in the relay
            self.outcome = f"internal-error:{type(error).__name__}"
        self.finish()

    # BIND -----------------------------------------------------------------------------

    async def _bind(self, request: Request) -> None:
        expected: set[str] | None = None
        if request.address.is_ip:
            if not _plain_ip(request.address.host).is_unspecified:
                expected = {request.address.host}
        else:
            try:
                addresses = await self.server.resolver.resolve(request.address.host)
            except OutboundError as exc:
                self.outcome = exc.outcome
                self._reply_failure(exc.code)
                return
            host = request.address.host
            expected = {a for a in addresses if self._check(host, a, request.port)}
            if not expected:
                self._denied()
                return
        try:
            listener = _bind.open_listener(self.proto.local_address()[0])
        except OSError as exc:
            error = reply_for_oserror(exc)
            self.outcome = error.outcome
            self._reply_failure(error.code)
            return
        try:
            host, port = listener.getsockname()[:2]
            self._reply(Reply5.SUCCEEDED, host, port)  # first reply: where to connect
            accept = asyncio.ensure_future(
                _bind.accept_expected(listener, expected, self.config.bind_timeout)
            )
            await asyncio.wait({accept, self.proto.closed}, return_when=asyncio.FIRST_COMPLETED)
            if not accept.done():
                accept.cancel()
                await asyncio.gather(accept, return_exceptions=True)
                self.outcome = "client-closed"
                self._close()
                return
            try:
                sock, peer = accept.result()
            except TimeoutError:
                self.outcome = "bind-timeout"
                self._reply_failure(Reply5.TTL_EXPIRED)
                return
        finally:
            listener.close()
        self._reply(Reply5.SUCCEEDED, peer[0], peer[1])  # second reply: who connected
        self.peer = f"{_format_host(peer[0])}:{peer[1]}"
        await self._start_relay(sock)

    # UDP ASSOCIATE --------------------------------------------------------------------

    async def _udp_associate(self, request: Request) -> None:
        def allowed(host: str | None, address: str, port: int) -> bool:
            return self._check(host, address, port)

        def idle() -> None:
            # No datagram either way for idle_timeout: end it as an idle TCP relay ends.
            self.outcome = "idle-timeout"
            self._close()

        association = UdpAssociation(
            str(self.client_ip), request.port, self.server.resolver, allowed,
            sweeper=self.server.sweeper, on_idle=idle,
        )
        try:
            host, port = await association.open(self.proto.local_address()[0])
        except OSError as exc:
            association.close()
            error = reply_for_oserror(exc)
            self.outcome = error.outcome
            self._reply_failure(error.code)
            return
        self.udp = association
        self._reply(Reply5.SUCCEEDED, host, port)
        self.outcome = "ok"
        try:
            # RFC 1928 §6: the association ends when the TCP connection ends. Anything the
            # client sends on it meanwhile is read and ignored. The idle timeout ends the
            # read by closing the connection (``idle`` above).
            while await self.proto.read():
                pass
        finally:
            association.close()
            self.bytes_up, self.bytes_down = association.bytes_up, association.bytes_down
            self._close()

    # Tor's RESOLVE and RESOLVE_PTR (tor-socks-extensions.txt §2) -------------------------

    async def _resolve(self, request: Request) -> None:
        """RESOLVE: the reply carries an allowed address of the name (IPv4 first, as Tor
        answers; only IPv4 fits a SOCKS4 reply), then the connection ends."""
        host = self._host_of(request)
        try:
            addresses = await within(self.server.resolver.resolve(request.address.host),
                                     self.config.connect_timeout)
        except (OutboundError, asyncio.TimeoutError) as exc:
            self._lookup_failed(exc)
            return
        if host is not None:  # (an IP literal was checked with the request)
            addresses = [a for a in addresses if self._check(host, a, request.port)]
            if not addresses:
                self._denied()
                return
        ipv4 = [a for a in addresses if ":" not in a]
        answer = (ipv4 or ([] if self.conn.version == 4 else addresses))[:1]
        if not answer:
            self._lookup_failed(OutboundError(Reply5.HOST_UNREACHABLE, "no-ipv4-address"))
            return
        self._answer(answer[0])

    async def _resolve_ptr(self, request: Request) -> None:
        """RESOLVE_PTR: the reply carries the address's host name as a domain name."""
        if not request.address.is_ip:
            self.outcome = "address-type-not-supported"
            self._reply_failure(Reply5.ADDRESS_TYPE_NOT_SUPPORTED)
            return
        try:
            name = await within(self.server.resolver.reverse(request.address.host),
                                self.config.connect_timeout)
            answer = Address.from_host(name)  # a name that cannot travel in a reply fails
        except (OutboundError, asyncio.TimeoutError) as exc:
            self._lookup_failed(exc)
            return
        except LocalProtocolError as exc:
            self._lookup_failed(OutboundError(Reply5.GENERAL_FAILURE, "bad-name", str(exc)))
            return
        self._answer(answer.host)

    def _answer(self, host: str) -> None:
        self.peer = host  # the record's answer (for BIND, the peer that connected)
        self._reply(Reply5.SUCCEEDED, host, 0)
        self.outcome = "ok"
        self._close()

    def _lookup_failed(self, exc: OutboundError | asyncio.TimeoutError) -> None:
        if isinstance(exc, asyncio.TimeoutError):
            exc = OutboundError(Reply5.TTL_EXPIRED, "timeout")
        self.outcome = exc.outcome
        logger.debug("%s for %s failed: %s", self.command, self._client_text(), exc)
        self._reply_failure(exc.code)

    # Ending ---------------------------------------------------------------------------

    def _close(self) -> None:
        if self.proto is not None:
            self.proto.close()

    def abort(self) -> None:
        """Server shutdown: drop the session now."""
        if self.relay is not None:
            self.relay.abort()
        if self.udp is not None:
            self.udp.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        elif not self.relaying and not self._finished and self.conn is not None:
            # The handshake runs on callbacks (no task to cancel): end it here.
            self._cancel_timer()
            self.outcome = "shutdown"
            if self.proto is not None:
                self.proto.on_data = None
                self.proto.abort()
            self.finish()
            return
        if self.proto is not None:
            self.proto.abort()

    def _client_text(self) -> str:
        return f"{_format_host(self.client_host)}:{self.client_port}"

    def record(self) -> dict[str, Any]:
        return {
            "client": self._client_text(),
            "version": self.version,
            "user": self.user,
            "command": self.command,
            "destination": self.destination,
            "port": self.port,
            "peer": self.peer,
            "outcome": self.outcome,
            "reply": self.reply_code,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "duration": round(time.monotonic() - self.started, 6),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.proto is not None:
            self.proto.session = None  # no session <-> protocol cycle left for the collector
        self.server._session_done(self)


def _unspecified() -> Address:
    return UNSPECIFIED_V4


class _Resumed:
    """Awaitable going on with a coroutine that already ran (``coro.send``) until it
    yielded ``pending``: the task that awaits this sees ``pending`` as if the coroutine
    had run in it from the start (results, exceptions and cancellation pass through)."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro, pending):
        self.coro = coro
        self.pending = pending

    def __await__(self):
        coro, pending = self.coro, self.pending
        self.coro = self.pending = None
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # cancellation (or a throw) goes to the coroutine
                send, arg = coro.throw, exc
            else:
                send, arg = coro.send, value
            try:
                pending = send(arg)
            except StopIteration as done:
                return done.value


async def _resume(coro, pending) -> None:
    await _Resumed(coro, pending)
