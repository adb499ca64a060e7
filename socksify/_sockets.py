"""The table of proxied sockets: what each one must report, keyed by file descriptor.

Rules of this module:

- One :class:`SockState` per proxied socket (or socket about to become one), keyed by its
  fd, because ``socket.socket`` has ``__slots__`` and no room for attributes of ours.
- Entries die with their socket: ``close()`` drops them, and a weak reference drops them
  when a socket is garbage-collected without ``close()`` (its fd number may be reused).
- ``detach()`` marks an entry as detached; the next socket object that asks for that fd
  (``ssl.wrap_socket`` and ``socket(fileno=...)`` build one) adopts it. Another live object
  over the same fd shares it: it is the same connection.
- Releasing an entry ends what it owns (the control connection of a UDP association).
"""

from __future__ import annotations

import _socket
from _weakref import ref as _weak_ref  # not the weakref module: start-up cost

__all__ = ["SockState", "drop_state", "new_state", "owner_fds", "release", "state_of", "states"]

_base = _socket.socket


class SockState:
    """What a proxied socket reports; keyed by fd in ``states``."""

    __slots__ = (
        "__weakref__",
        "owner",
        "detached",
        "peer",
        "bound",
        "tunnel",
        "udp",
        "udp_peer",
        "udp_names",
        "pending_bind",
        "kind",
    )

    def __init__(self, sock, kind: str):
        self.owner = _weak_ref(sock, _forget_owner)
        self.detached = False
        self.kind = kind  # "tcp", "bind", "bind-used", "udp", "pending-bind"
        self.peer = None  # sockaddr tuple for getpeername()
        self.bound = None  # sockaddr tuple for getsockname()
        self.tunnel = None
        self.udp = None  # _udp.UdpAssociation
        self.udp_peer = None  # (host to send, port) of a connected datagram socket
        #: port -> placeholder, for datagrams sent to a NAME (remote DNS): the relay answers
        #: from the address it resolved; recvfrom reports the placeholder the program used
        self.udp_names = {}
        self.pending_bind = None


states: dict[int, SockState] = {}
owner_fds: dict = {}  # weakref -> fd, to clean up when a socket is garbage-collected


def _forget_owner(ref) -> None:
    fd = owner_fds.pop(ref, None)
    state = states.get(fd)
    if state is not None and state.owner is ref and not state.detached:
        states.pop(fd, None)  # another thread may have dropped it already
        release(state)


def release(state: SockState) -> None:
    if state.udp is not None:
        state.udp.close()
        state.udp = None


def state_of(sock) -> SockState | None:
    fd = _base.fileno(sock)  # -1 once the socket is closed (it never raises): no entry
    state = states.get(fd)
    if state is None:
        return None
    owner = state.owner()
    if owner is sock:
        return state
    if state.detached:  # ssl.wrap_socket() & co: a new object took over the fd
        state.owner = _weak_ref(sock, _forget_owner)
        owner_fds[state.owner] = fd
        state.detached = False
        return state
    if owner is None:  # the old owner was collected and the fd number reused
        states.pop(fd, None)  # another thread may have dropped it already
        release(state)
        return None
    return state  # another live object over the same fd (socket(fileno=...)): same socket


def new_state(sock, kind: str) -> SockState:
    fd = _base.fileno(sock)
    old = states.pop(fd, None)
    if old is not None:
        release(old)
    state = SockState(sock, kind)
    states[fd] = state
    owner_fds[state.owner] = fd
    return state


def drop_state(sock) -> SockState | None:
    state = states.pop(_base.fileno(sock), None)  # -1 once closed: no entry
    if state is not None:
        owner_fds.pop(state.owner, None)
        release(state)
    return state
