"""The threaded path's readiness poller (socksify/server/_poller.py), with the loop's
add/remove_reader/writer contract: nested (an epoll of its own that the asyncio loop
watches as a single descriptor) and shared (asyncio's own epoll, on the loop of
socksify/server/_eventloop.py); every behaviour test runs in both. Real sockets
(socketpairs) on a real event loop; every wait is bounded."""

import asyncio
import errno
import os
import select
import socket

import pytest

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux only")

WAIT = 5.0  # seconds: the bound on every wait below


@pytest.fixture(params=["nested", "shared"])
def loop(request):
    from socksify.server import _eventloop

    loop = asyncio.new_event_loop() if request.param == "nested" else _eventloop.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def pairs():
    made = []

    def make():
        a, b = socket.socketpair()
        made.extend((a, b))
        return a, b

    yield make
    for sock in made:
        sock.close()


def _poller(loop):
    from socksify.server._poller import Poller

    return Poller(loop)


def run_until(loop, future):
    return loop.run_until_complete(asyncio.wait_for(future, WAIT))


def test_reader_runs_while_readable_and_stops_once_removed(loop, pairs):
    poller = _poller(loop)
    a, b = pairs()
    calls = []
    done = loop.create_future()

    def readable():
        calls.append(a.recv(1))  # one byte per call: level-triggered calls come back
        if len(calls) == 3 and not done.done():
            poller.remove_reader(a.fileno())
            done.set_result(None)

    poller.add_reader(a.fileno(), readable)
    b.send(b"xyzw")
    run_until(loop, done)
    loop.run_until_complete(asyncio.sleep(0.05))  # a fourth byte is waiting: no call now
    assert calls == [b"x", b"y", b"z"]
    assert poller.remove_reader(a.fileno()) is False  # removed already
    poller.close()


def test_add_reader_again_swaps_the_callback(loop, pairs):
    poller = _poller(loop)
    a, b = pairs()
    first, second = [], loop.create_future()
    poller.add_reader(a.fileno(), first.append, "first")
    poller.add_reader(a.fileno(), lambda: second.done() or second.set_result(a.recv(10)))
    b.send(b"data")
    assert run_until(loop, second) == b"data"
    assert first == []
    poller.close()


def test_reader_and_writer_on_one_descriptor_are_independent(loop, pairs):
    poller = _poller(loop)
    a, b = pairs()
    wrote, read = loop.create_future(), loop.create_future()

    def writable():
        poller.remove_writer(a.fileno())  # the reader stays registered
        if not wrote.done():
            wrote.set_result(a.send(b"ping"))

    def readable():
        poller.remove_reader(a.fileno())
        read.set_result(a.recv(10))

    poller.add_reader(a.fileno(), readable)
    poller.add_writer(a.fileno(), writable)
    assert run_until(loop, wrote) == 4
    assert b.recv(10) == b"ping"
    b.send(b"pong")
    assert run_until(loop, read) == b"pong"
    poller.close()


def test_a_hang_up_wakes_the_reader(loop, pairs):
    poller = _poller(loop)
    a, b = pairs()
    seen = loop.create_future()

    def readable():
        poller.remove_reader(a.fileno())
        seen.set_result(a.recv(10))

    poller.add_reader(a.fileno(), readable)
    b.close()
    assert run_until(loop, seen) == b""
    poller.close()


def test_stale_events_of_a_reused_descriptor_are_skipped(loop, pairs):
    """Two sockets ready in one batch; the first callback closes the other and a new
    socket takes its number. The other's event in that batch belongs to the closed socket:
    the new one's callback must not run for it, only once the new socket is ready itself
    in a later batch."""
    from socksify.server._poller import Poller

    class CountingPoller(Poller):
        batches = 0

        def _dispatch(self, events):
            CountingPoller.batches += 1
            super()._dispatch(events)

    poller = CountingPoller(loop)
    a, a_peer = pairs()
    b, b_peer = pairs()
    fresh, fresh_peer = pairs()
    new_calls = []
    first_done = loop.create_future()
    replaced = {}

    def new_readable():
        new_calls.append(CountingPoller.batches)
        poller.remove_reader(replaced["fd"])

    def first(sock, other):
        # Whichever of a and b comes first replaces the other with a new socket at the
        # same number (dup2), registered at once: exactly the fd-reuse case.
        poller.remove_reader(sock.fileno())
        if first_done.done():
            return
        fd = other.fileno()
        poller.remove_reader(fd)
        os.dup2(fresh.fileno(), fd)  # closes the old socket, reuses its number
        replaced["fd"] = fd
        poller.add_reader(fd, new_readable)
        first_done.set_result(CountingPoller.batches)

    poller.add_reader(a.fileno(), first, a, b)
    poller.add_reader(b.fileno(), first, b, a)
    a_peer.send(b"1")
    b_peer.send(b"2")  # both ready before the loop runs: one batch
    batch = run_until(loop, first_done)
    loop.run_until_complete(asyncio.sleep(0.05))
    assert new_calls == []  # the new socket has nothing to read yet
    fresh_peer.send(b"3")
    loop.run_until_complete(asyncio.sleep(0.05))
    assert len(new_calls) == 1 and new_calls[0] > batch
    poller.close()


def test_an_exception_in_a_callback_reaches_the_loop_and_the_batch_goes_on(loop, pairs):
    poller = _poller(loop)
    a, a_peer = pairs()
    b, b_peer = pairs()
    reported = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    both = loop.create_future()
    ran = set()

    def failing(sock):
        poller.remove_reader(sock.fileno())
        ran.add(sock.fileno())
        if len(ran) == 2:
            both.set_result(None)
        raise RuntimeError("callback bug")

    poller.add_reader(a.fileno(), failing, a)
    poller.add_reader(b.fileno(), failing, b)
    a_peer.send(b"1")
    b_peer.send(b"2")
    run_until(loop, both)
    assert [str(exc) for exc in reported] == ["callback bug", "callback bug"]
    poller.close()


def test_close_stops_watching_and_tolerates_late_removals(loop, pairs):
    poller = _poller(loop)
    a, b = pairs()
    calls = []
    poller.add_reader(a.fileno(), calls.append, 1)
    poller.close()
    poller.close()  # twice is fine
    b.send(b"x")
    loop.run_until_complete(asyncio.sleep(0.05))
    assert calls == []
    assert poller.remove_reader(a.fileno()) is False  # forgotten at close
    assert poller.closed


def test_forget_then_close_leaves_the_number_free_for_a_new_socket(loop, pairs):
    """``forget`` makes no system call: the close takes the socket out of the epoll set,
    so a new socket given the same number registers (no EEXIST) and is watched."""
    poller = _poller(loop)
    a, a_peer = pairs()
    number = a.fileno()
    poller.add_reader(number, lambda: None)
    poller.forget(number)
    fresh, fresh_peer = pairs()  # (made first: it must not take the number itself)
    a.close()
    os.dup2(fresh.fileno(), number)  # the new socket takes the old number
    try:
        seen = loop.create_future()

        def readable():
            poller.remove_reader(number)
            seen.set_result(os.read(number, 10))

        poller.add_reader(number, readable)
        fresh_peer.send(b"new")
        assert run_until(loop, seen) == b"new"
    finally:
        os.close(number)
    poller.close()


def test_a_failed_connect_wakes_the_writer(loop):
    """EPOLLERR/EPOLLHUP wake a writer too (as asyncio's selector does): a connect to a
    closed loopback port ends with the writer's call, and SO_ERROR tells why."""
    poller = _poller(loop)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
    sock = socket.socket()
    sock.setblocking(False)
    try:
        # Linux reports the refusal after the call (the RST is handled once it returns)
        assert sock.connect_ex(closed.getsockname()) == errno.EINPROGRESS
        woken = loop.create_future()

        def writable():
            poller.remove_writer(sock.fileno())
            woken.set_result(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

        poller.add_writer(sock.fileno(), writable)
        assert run_until(loop, woken) == errno.ECONNREFUSED
    finally:
        sock.close()
        closed.close()
        poller.close()


def _shared_loop():
    from socksify.server import _eventloop

    loop = _eventloop.new_event_loop()
    return loop, _eventloop.shared_selector(loop)


def test_a_shared_poller_and_asyncio_readers_take_their_own_events(pairs):
    """On the server's loop the poller adds no descriptor to asyncio's: both kinds of
    callback run from the one epoll, each for its own sockets."""
    loop, selector = _shared_loop()
    try:
        registered = set(selector.get_map())  # asyncio's own (its self-pipe)
        poller = _poller(loop)
        assert set(selector.get_map()) == registered
        a, a_peer = pairs()
        c, c_peer = pairs()
        got_a, got_c = loop.create_future(), loop.create_future()

        def readable_a():
            poller.remove_reader(a.fileno())
            got_a.set_result(a.recv(10))

        def readable_c():
            loop.remove_reader(c.fileno())
            got_c.set_result(c.recv(10))

        poller.add_reader(a.fileno(), readable_a)
        loop.add_reader(c.fileno(), readable_c)
        a_peer.send(b"poller")
        c_peer.send(b"asyncio")
        assert run_until(loop, asyncio.gather(got_a, got_c)) == [b"poller", b"asyncio"]
        poller.close()
    finally:
        loop.close()


def test_a_second_poller_on_a_shared_loop_nests(pairs):
    loop, selector = _shared_loop()
    try:
        first, second = _poller(loop), _poller(loop)
        a, a_peer = pairs()
        b, b_peer = pairs()
        got = [loop.create_future(), loop.create_future()]
        for index, (poller, sock) in enumerate(((first, a), (second, b))):
            def readable(poller=poller, sock=sock, future=got[index]):
                poller.remove_reader(sock.fileno())
                future.set_result(sock.recv(10))

            poller.add_reader(sock.fileno(), readable)
        a_peer.send(b"1")
        b_peer.send(b"2")
        assert run_until(loop, asyncio.gather(*got)) == [b"1", b"2"]
        second.close()
        first.close()
    finally:
        loop.close()


def test_closing_a_shared_poller_unwatches_its_descriptors(pairs):
    """asyncio's epoll outlives the poller: a socket still registered at close must leave
    it, or its level-triggered event would come back at every turn of the loop."""
    loop, selector = _shared_loop()
    try:
        poller = _poller(loop)
        a, a_peer = pairs()
        poller.add_reader(a.fileno(), lambda: None)
        a_peer.send(b"x")
        assert a.fileno() in dict(selector.epoll.poll(0))
        poller.close()
        assert a.fileno() not in dict(selector.epoll.poll(0))
        loop.run_until_complete(asyncio.sleep(0.01))  # the loop still turns
    finally:
        loop.close()


def test_run_uses_the_shared_loop_where_python_allows():
    import sys

    from socksify.server import _eventloop

    async def main():
        return _eventloop.shared_selector(asyncio.get_running_loop()) is not None

    assert _eventloop.run(main()) is (sys.version_info >= (3, 11))


class _CountingYield:
    """Stands in for ``sched_yield`` in the spin: counts the calls and runs ``action`` at
    call number ``at`` (a peer's packet arriving while the selector spins)."""

    def __init__(self):
        self.calls, self.at, self.action = 0, 0, None

    def __call__(self):
        self.calls += 1
        if self.calls == self.at:
            self.action()


class _StepClock:
    """Stands in for the spin's clock: each reading is ``step`` seconds after the one
    before, so every quiet moment lasts ``step`` as the selector measures it."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


class _Spinning:
    """A shared selector with one foreign socket pair on its epoll, sched_yield counted,
    the clock stepped (50 µs a quiet moment: within SPIN_WINDOW) and packets that arrive
    exactly when the selector blocks (support.spin)."""

    def __init__(self, pairs, monkeypatch):
        from support.spin import with_arrivals

        from socksify.server import _eventloop

        self.spy, self.clock = _CountingYield(), _StepClock(50e-6)
        monkeypatch.setattr(_eventloop, "_yield", self.spy)
        monkeypatch.setattr(_eventloop, "_clock", self.clock)
        self.loop, self.selector = _shared_loop()
        self.arrivals = with_arrivals(self.selector)
        self.got = []
        self.selector.attach(self.got.extend, 512)
        self.sock, self.peer = pairs()
        self.selector.epoll.register(self.sock.fileno(), select.EPOLLIN)

    def quiet_moment(self, packet=None, at_yield=0):
        """Activity (a packet, taken), then the quiet moment after it, in which a packet
        comes when the selector blocks (``packet="block"``), at the ``at_yield``-th yield
        of its spin (``packet="spin"``), or not at all (the 10 ms wait times out).
        Returns the yields the quiet moment made and whether it got the packet."""
        self.peer.send(b"x")
        assert self.selector.select(5) == [] and self.got  # no spin with a packet at hand
        self.sock.recv(10)
        self.got.clear()
        before = self.spy.calls

        def arrive():
            self.peer.send(b"y")

        if packet == "block":
            self.arrivals.on_block = arrive
        elif packet == "spin":
            self.spy.at, self.spy.action = before + at_yield, arrive
        self.selector.select(0.01 if packet is None else 5)
        self.arrivals.on_block, self.spy.at = None, 0
        came = bool(self.got)
        if came:
            self.sock.recv(10)
        self.got.clear()
        return self.spy.calls - before, came


@pytest.fixture
def spinning(pairs, monkeypatch):
    spinning = _Spinning(pairs, monkeypatch)
    try:
        yield spinning
    finally:
        spinning.loop.close()


def test_the_spin_grows_while_events_come_soon_and_stops_when_none_come(spinning):
    """No spin at first; each quiet moment that ended with events within SPIN_WINDOW
    doubles the next spin (from 4 polls, up to SPIN_POLLS); one without events ends it."""
    from socksify.server._eventloop import SPIN_POLLS

    moment = spinning.quiet_moment
    assert [moment("block") for _ in range(6)] == [
        (0, True), (4, True), (8, True), (16, True), (SPIN_POLLS, True), (SPIN_POLLS, True)]
    assert moment() == (SPIN_POLLS, False)  # spun, nothing came, blocked until the timeout
    assert moment() == (0, False)  # no spin next time
    assert moment("block") == (0, True)
    assert moment("block") == (4, True)  # ... until events come soon again


def test_a_long_quiet_moment_turns_the_spin_off(spinning):
    """A client that pauses between messages: no spinning for it."""
    from socksify.server._eventloop import SPIN_WINDOW

    moment = spinning.quiet_moment
    moment("block")
    assert moment("block") == (4, True)
    spinning.clock.step = 2 * SPIN_WINDOW
    assert moment("block") == (8, True)
    assert moment("block") == (0, True)


def test_a_packet_that_comes_while_spinning_is_taken_without_sleeping(spinning):
    """It comes at the third yield: a non-blocking poll takes it, no blocking wait (the
    clock is not read again), and the spin stays as long for next time."""
    moment = spinning.quiet_moment
    moment("block")
    moment("block")
    readings = spinning.clock.now
    assert moment("spin", at_yield=3) == (3, True)
    assert spinning.clock.now == readings + spinning.clock.step  # the start only
    assert moment("block") == (8, True)
