"""Driving the server loop's spin (socksify/server/_eventloop.py) in tests without races.

``ArrivalEpoll`` wraps the selector's real epoll: when ``on_block`` is set, the next wait
that would block first runs it (a peer's packet "arrives" exactly while the selector
blocks, after every poll of its spin), so no timer races the spin on a loaded machine.
"""

from __future__ import annotations


class ArrivalEpoll:
    def __init__(self, epoll):
        self._epoll = epoll
        self.on_block = None  #: run once, at the start of the next blocking wait

    def poll(self, timeout=-1, maxevents=-1):
        if timeout != 0 and self.on_block is not None:
            action, self.on_block = self.on_block, None
            action()
        return self._epoll.poll(timeout, maxevents)

    def __getattr__(self, name):  # register, unregister, modify, close, fileno ...
        return getattr(self._epoll, name)


def with_arrivals(selector) -> ArrivalEpoll:
    """Put an :class:`ArrivalEpoll` around ``selector``'s epoll; returns it."""
    wrapper = ArrivalEpoll(selector._selector)  # where EpollSelector keeps its epoll
    selector._selector = wrapper
    return wrapper
