"""Two deliberately minimal SOCKS5 CONNECT servers, for scripts/bench_rate_floor.py only.

They check nothing, log nothing and keep no records: they answer any greeting with "no
authentication", accept only IPv4 CONNECT requests, reply 0.0.0.0:0 and relay with one
``recv``/``send`` per readiness event. What they measure is the floor a Python server pays
per connection, with and without asyncio, on the benchmark's connection-rate load.

    python3 -m benchlib.bare_servers epoll|nested|merged|asyncio PORT PROCESSES

Each of PROCESSES forked processes listens on 127.0.0.1:PORT with SO_REUSEPORT (as
socksify-server's workers do). Never use them for anything else.
"""

from __future__ import annotations

import os
import select
import socket
import sys

_REPLY = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
_GREETING, _REQUEST, _CONNECTING, _RELAY = range(4)


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _outbound(request: bytes) -> socket.socket:
    """A non-blocking socket connecting to the request's IPv4 address and port."""
    remote = socket.socket()
    remote.setblocking(False)
    remote.connect_ex((socket.inet_ntoa(request[4:8]), int.from_bytes(request[8:10], "big")))
    return remote


class _Link:
    """One socket and its peer, for both servers."""

    __slots__ = ("sock", "peer", "state")

    def __init__(self, sock: socket.socket, state: int, peer: _Link | None = None):
        self.sock = sock
        self.peer = peer
        self.state = state


class _EpollServer:
    """select.epoll and a dict of links: no event loop library at all. ``ready()`` handles
    the descriptors epoll reports; who waits on epoll decides the variant."""

    def __init__(self, port: int):
        self.listener = _listener(port)
        self.poller = select.epoll()
        self.poller.register(self.listener.fileno(), select.EPOLLIN)
        self.links: dict[int, _Link] = {}

    def _drop(self, link: _Link) -> None:
        for one in (link, link.peer):
            if one is not None and one.sock.fileno() >= 0:
                self.links.pop(one.sock.fileno(), None)
                one.sock.close()  # close() also removes the descriptor from the epoll set

    def ready(self, events) -> None:
        poller, links = self.poller, self.links
        for fd, _ in events:
            link = links.get(fd)
            if link is None:
                while True:
                    try:
                        sock, _ = self.listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    links[sock.fileno()] = _Link(sock, _GREETING)
                    poller.register(sock.fileno(), select.EPOLLIN)
                continue
            if link.state == _CONNECTING:
                client = link.peer
                client.sock.send(_REPLY)
                link.state = client.state = _RELAY
                poller.modify(fd, select.EPOLLIN)
                poller.register(client.sock.fileno(), select.EPOLLIN)
                continue
            try:
                data = link.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self._drop(link)
            elif link.state == _RELAY:
                link.peer.sock.send(data)
            elif link.state == _GREETING:
                link.sock.send(b"\x05\x00")
                link.state = _REQUEST
            else:
                remote = _Link(_outbound(data), _CONNECTING, link)
                link.peer = remote
                links[remote.sock.fileno()] = remote
                poller.unregister(fd)
                poller.register(remote.sock.fileno(), select.EPOLLOUT)


def serve_epoll(port: int) -> None:
    """The epoll server waiting in epoll itself."""
    server = _EpollServer(port)
    while True:
        server.ready(server.poller.poll())


def serve_nested(port: int) -> None:
    """The epoll server inside an asyncio loop: asyncio watches only the epoll descriptor
    and hands its events to ``ready()`` (what keeping asyncio for everything else, but not
    for the per-connection events, would cost)."""
    import asyncio

    loop = asyncio.new_event_loop()
    server = _EpollServer(port)
    loop.add_reader(server.poller.fileno(), lambda: server.ready(server.poller.poll(0)))
    loop.run_forever()


def serve_merged(port: int) -> None:
    """The epoll server on asyncio's own epoll, through socksify-server's loop
    (socksify/server/_eventloop.py): its selector hands the events of descriptors asyncio
    does not know to ``ready()``, in the same wait (one epoll, no nested wake-up)."""
    from socksify.server import _eventloop

    server = _EpollServer(port)
    loop = _eventloop.new_event_loop()
    selector = _eventloop.shared_selector(loop)
    server.poller.close()
    server.poller = selector.epoll
    server.poller.register(server.listener.fileno(), select.EPOLLIN)
    selector.attach(server.ready, 512)
    loop.run_forever()


def serve_asyncio(port: int) -> None:
    """The same state machine on asyncio's add_reader/add_writer callbacks (no transports,
    no tasks): what asyncio's own per-event machinery adds to the epoll floor."""
    import asyncio

    loop = asyncio.new_event_loop()
    listener = _listener(port)

    def drop(link: _Link) -> None:
        for one in (link, link.peer):
            if one is not None and one.sock.fileno() >= 0:
                loop.remove_reader(one.sock.fileno())
                one.sock.close()

    def connected(link: _Link) -> None:
        loop.remove_writer(link.sock.fileno())
        link.peer.sock.send(_REPLY)
        link.state = link.peer.state = _RELAY
        loop.add_reader(link.sock.fileno(), readable, link)
        loop.add_reader(link.peer.sock.fileno(), readable, link.peer)

    def readable(link: _Link) -> None:
        try:
            data = link.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            drop(link)
        elif link.state == _RELAY:
            link.peer.sock.send(data)
        elif link.state == _GREETING:
            link.sock.send(b"\x05\x00")
            link.state = _REQUEST
        else:
            remote = _Link(_outbound(data), _CONNECTING, link)
            link.peer = remote
            loop.remove_reader(link.sock.fileno())
            loop.add_writer(remote.sock.fileno(), connected, remote)

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), readable, _Link(sock, _GREETING))

    loop.add_reader(listener.fileno(), accept)
    loop.run_forever()


def main(argv: list[str]) -> None:
    kind, port, processes = argv[0], int(argv[1]), int(argv[2])
    serve = {"epoll": serve_epoll, "asyncio": serve_asyncio, "nested": serve_nested,
             "merged": serve_merged}[kind]
    for _ in range(processes - 1):
        if os.fork() == 0:
            break
    serve(port)


if __name__ == "__main__":
    main(sys.argv[1:])
