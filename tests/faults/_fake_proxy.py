"""A scripted fake SOCKS proxy: a real TCP server on 127.0.0.1 that answers with chosen bytes.

The client's messages are parsed with ``socksify.protocol`` in the SERVER role (so a client
that pipelines its greeting and request is understood); what goes back at each step is the
script's choice:

- an event (``MethodSelected``, ``AuthResult``, ``Reply``): encoded by the protocol core,
  so it is valid on the wire;
- ``bytes``: sent as they are (garbage, a truncated message, a wrong version...);
- :data:`CLOSE`: the connection is closed at that point instead of answering;
- :data:`RESET`: the connection is aborted at that point (a TCP RST);
- ``Raw(data, then_close=True)``: bytes, then close (a message cut off by an early close).

After the last scripted answer the fake proxy keeps the connection open until the client
hangs up (bounded by ``hold``), and records in :attr:`FakeProxy.client_hung_up` whether the
client did so on its own: a client that waits for more after a reply it should have
rejected would only be freed by our close, which would hide a hang behind a late EPROTO.

Steps (keys of ``script``): ``"accept"`` (before reading anything), ``"greeting"``,
``"auth"``, ``"request"``. A missing step gets the answer a good proxy would give.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import struct
import threading

from socksify.protocol import (
    NEED_DATA,
    Address,
    AuthMethod,
    AuthResult,
    Connection,
    Greeting,
    MethodSelected,
    RemoteProtocolError,
    Reply,
    Request,
    Role,
    UserPassAuth,
)

#: script value: close the connection at this step instead of answering (a FIN: the
#: client's unread bytes are read first, so the kernel does not turn the close into a reset)
CLOSE = object()
#: script value: abort the connection at this step (SO_LINGER 0: a TCP reset)
RESET = object()

_BOUND = Address.ipv4("127.0.0.1")
_IO_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Raw:
    """Bytes sent as they are; ``then_close`` closes the connection right after them."""

    data: bytes
    then_close: bool = True


def reply(code: int) -> Reply:
    """A reply with ``code`` and a plausible bound address (127.0.0.1:4242)."""
    return Reply(code, _BOUND, 4242)


def _default_answer(conn: Connection, event) -> object:
    if isinstance(event, Greeting):
        wanted = AuthMethod.NO_AUTH
        if AuthMethod.NO_AUTH not in event.methods:
            wanted = AuthMethod.USERNAME_PASSWORD
        return MethodSelected(wanted)
    if isinstance(event, UserPassAuth):
        return AuthResult(True)
    return reply(90 if conn.version == 4 else 0)


def _drain(client: socket.socket) -> None:
    """Read what the client still sends until it closes (bounded), so close() sends a FIN."""
    client.settimeout(2.0)
    with contextlib.suppress(OSError):
        while client.recv(4096):
            pass


_STEP = {Greeting: "greeting", UserPassAuth: "auth", Request: "request"}


class FakeProxy:
    """A scripted proxy on ``127.0.0.1:port`` serving any number of clients, one thread each.

    ``steps_seen`` lists, per client, the step names it reached; ``client_hung_up`` is a
    list of booleans (one per client that reached the end of the script).
    """

    def __init__(self, script: dict | None = None, *, hold: float = 8.0):
        self.script = dict(script or {})
        self.hold = hold
        self.steps_seen: list[list[str]] = []
        self.client_hung_up: list[bool] = []
        self.errors: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.host, self.port = self._listener.getsockname()[:2]
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self._finished = threading.Condition()
        self._finished_count = 0
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def url(self, scheme: str = "socks5", user: str | None = None, password=None) -> str:
        auth = ""
        if user is not None:
            auth = user + (f":{password}" if password is not None else "") + "@"
        return f"{scheme}://{auth}{self.host}:{self.port}"

    # --- serving ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # close() shut the listener down
                return
            thread = threading.Thread(target=self._serve_one, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve_one(self, client: socket.socket) -> None:
        seen: list[str] = []
        self.steps_seen.append(seen)
        with client:
            client.settimeout(_IO_TIMEOUT)
            try:
                if self._answer(client, "accept", None, seen) is CLOSE:
                    return
                conn = Connection(Role.SERVER)
                while True:
                    event = conn.next_event()
                    if event is NEED_DATA:
                        data = client.recv(4096)
                        conn.receive_data(data)
                        if not data:
                            return  # the client gave up before the script ended
                        continue
                    step = _STEP[type(event)]
                    seen.append(step)
                    outcome = self._answer(client, step, conn, seen, event)
                    if outcome is CLOSE:
                        return
                    if outcome == "done":
                        break
                self._hold(client)
            except (OSError, RemoteProtocolError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                with self._finished:
                    self._finished_count += 1
                    self._finished.notify_all()

    def wait_finished(self, count: int, timeout: float = 15.0) -> None:
        """Wait (bounded) until ``count`` client connections have been fully served."""
        with self._finished:
            if not self._finished.wait_for(lambda: self._finished_count >= count, timeout):
                raise AssertionError(
                    f"fake proxy: {self._finished_count} of {count} connections finished"
                )

    def _answer(self, client, step, conn, seen, event=None):
        """Send the scripted answer for ``step``: CLOSE, "done" (stop parsing) or None."""
        if step == "accept":
            answer = self.script.get("accept")
            if answer is None:
                return None
        else:
            answer = self.script.get(step, _default_answer(conn, event))
        if answer is CLOSE:
            seen.append(f"{step}:closed")
            client.shutdown(socket.SHUT_WR)
            _drain(client)
            return CLOSE
        if answer is RESET:
            seen.append(f"{step}:reset")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return CLOSE
        if isinstance(answer, Raw):
            client.sendall(answer.data)
            if not answer.then_close:
                return "done"
            client.shutdown(socket.SHUT_WR)
            _drain(client)
            return CLOSE
        if isinstance(answer, bytes):
            client.sendall(answer)
            return "done"
        # an event: the core encodes it (and advances its state as a real server would)
        client.sendall(conn.send(answer))
        if isinstance(answer, Reply):
            return "done"
        if isinstance(answer, MethodSelected) and answer.method == AuthMethod.NO_ACCEPTABLE:
            return "done"
        if isinstance(answer, AuthResult) and not answer.success:
            return "done"
        return None

    def _hold(self, client: socket.socket) -> None:
        """Keep the connection until the client closes it (bounded); record who hung up."""
        client.settimeout(self.hold)
        try:
            while client.recv(4096):
                pass
            self.client_hung_up.append(True)
        except TimeoutError:
            self.client_hung_up.append(False)
        except OSError:  # a reset is the client hanging up too
            self.client_hung_up.append(True)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(timeout=2)
        for thread in self._threads:
            thread.join(timeout=self.hold + 2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
