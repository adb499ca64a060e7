"""The Linux relay's worker threads: bulk directions move to a small thread pool and come
back to the event loop when quiet, stalled, at EOF or on an error
(socksify/server/_threaded_relay.py).

The server runs in this process (the ``socks_server`` fixture), so the pool's counters in
``_threaded_relay._workers`` show whether a thread took a direction and whether it let go.
"""

import contextlib
import hashlib
import socket
import struct
import threading
import time

import pytest
from support.targets import pattern_bytes

from socksify.server import _threaded_relay

from ._server_core_client import CoreClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not _threaded_relay.THREADED_RELAY_AVAILABLE,
                       reason="the Linux relay path only"),
]

CONNECT = 1
THREADS_TOML = '[server]\nrelay = "threads"\n'


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def workers_idle() -> bool:
    return _threaded_relay._workers.busy == 0


class Target:
    """A one-connection TCP target the test drives by hand (``accept`` gives the socket)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.address = self.listener.getsockname()[:2]

    def accept(self) -> socket.socket:
        sock, _ = self.listener.accept()
        sock.settimeout(30)
        return sock

    def close(self):
        self.listener.close()


@pytest.fixture
def target():
    t = Target()
    yield t
    t.close()


def recv_all(sock, count) -> bytes:
    chunks, got = [], 0
    while got < count:
        chunk = sock.recv(min(1 << 20, count - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_bulk_both_ways_at_once_through_worker_threads(socks_server, target):
    srv = socks_server(config=THREADS_TOML)
    up, down = pattern_bytes(8 << 20), pattern_bytes(6 << 20)[::-1]
    threads_before = _threaded_relay._workers.threads
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *target.address))
        client.sock.settimeout(30)
        with target.accept() as far:
            got = {}
            senders = [
                threading.Thread(target=client.sock.sendall, args=(up,)),
                threading.Thread(target=far.sendall, args=(down,)),
                threading.Thread(target=lambda: got.setdefault("far", recv_all(far, len(up)))),
            ]
            for t in senders:
                t.start()
            got["client"] = client.conn.trailing_data + recv_all(client.sock, len(down))
            for t in senders:
                t.join(30)
            assert digest(got["far"]) == digest(up)
            assert digest(got["client"]) == digest(down)
            # A direction that read 64 KiB at once went to a worker thread.
            workers = _threaded_relay._workers
            assert workers.threads > threads_before or workers.threads >= 2
    record = srv.wait_records(1)[0]
    assert (record["outcome"], record["bytes_up"], record["bytes_down"]) == (
        "ok", len(up), len(down))
    wait_until(workers_idle, what="the workers to hand every direction back")


def test_a_quiet_connection_holds_no_worker_and_still_relays(socks_server, target):
    srv = socks_server(config=THREADS_TOML)
    bulk = pattern_bytes(4 << 20)
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *target.address))
        with target.accept() as far:
            client.sock.sendall(bulk)
            assert digest(recv_all(far, len(bulk))) == digest(bulk)
            # Quiet now: the thread must let go (9,000 idle connections must not mean
            # 9,000 threads) ...
            wait_until(workers_idle, what="a quiet direction to leave its worker")
            # ... and the event loop relays what comes next, small or bulk, both ways.
            client.sock.sendall(b"ping")
            assert recv_all(far, 4) == b"ping"
            far.sendall(b"pong")
            assert client.recv_exactly(4) == b"pong"
            client.sock.sendall(bulk)
            assert digest(recv_all(far, len(bulk))) == digest(bulk)
            client.sock.shutdown(socket.SHUT_WR)
            assert far.recv(10) == b""  # half-close passed on after bulk
            far.sendall(b"bye")
            far.shutdown(socket.SHUT_WR)
            assert client.recv_exactly(4) == b"bye"
    record = srv.wait_records(1)[0]
    assert (record["bytes_up"], record["bytes_down"]) == (2 * len(bulk) + 4, 7)


def test_a_client_that_never_reads_bounds_the_server_and_frees_the_worker(
        socks_server, target):
    srv = socks_server(config=THREADS_TOML)
    chunk = pattern_bytes(1 << 20)
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *target.address))
        with target.accept() as far:
            # The target pushes until the relay stops taking data (the client never reads).
            far.settimeout(2)
            sent = 0
            try:
                while sent < 512 << 20:
                    sent += far.send(chunk)
            except TimeoutError:
                pass
            # Kernel socket buffers on three sockets, plus at most one 64 KiB read kept by
            # the loop; far below the 512 MiB the target would have sent.
            assert sent < 256 << 20
            wait_until(workers_idle, what="a stalled direction to leave its worker")
            # Nothing was lost while the direction moved between thread and loop.
            client.sock.settimeout(30)
            received = client.recv_exactly(sent)
            assert len(received) == sent
            assert all(received[i:i + len(chunk)] == chunk[:len(received[i:i + len(chunk)])]
                       for i in range(0, sent, len(chunk)))


def test_a_target_reset_mid_bulk_reaches_the_client_as_a_reset(socks_server, target):
    srv = socks_server(config=THREADS_TOML)
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *target.address))
        client.sock.settimeout(30)
        with target.accept() as far:
            far.sendall(pattern_bytes(4 << 20))  # bulk: the down direction is threaded
            far.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with pytest.raises(ConnectionResetError):
            while client.sock.recv(1 << 20):
                pass
    srv.wait_records(1)
    wait_until(workers_idle, what="the workers to be released after the reset")


def test_a_client_reset_mid_bulk_reaches_the_target_as_a_reset(socks_server, target):
    srv = socks_server(config=THREADS_TOML)
    client = CoreClient(srv.address, 5)
    assert client.succeeded(client.request(CONNECT, *target.address))
    with target.accept() as far:
        client.sock.sendall(pattern_bytes(4 << 20))  # bulk: the up direction is threaded
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        with pytest.raises(ConnectionResetError):
            while far.recv(1 << 20):
                pass
    srv.wait_records(1)
    wait_until(workers_idle, what="the workers to be released after the reset")


def test_more_bulk_streams_than_workers(socks_server, tcp_echo_server):
    srv = socks_server(config=THREADS_TOML)
    streams = 2 * _threaded_relay.MAX_WORKERS + 1
    payload = pattern_bytes(2 << 20)
    results, most_busy = [], [0]

    def one():
        with CoreClient(srv.address, 5) as client:
            assert client.succeeded(client.request(CONNECT, *tcp_echo_server))
            client.sock.settimeout(30)
            sender = threading.Thread(target=lambda: (client.sock.sendall(payload),
                                                      client.sock.shutdown(socket.SHUT_WR)))
            sender.start()
            echoed = client.conn.trailing_data
            while chunk := client.sock.recv(1 << 20):
                echoed += chunk
                most_busy[0] = max(most_busy[0], _threaded_relay._workers.busy)
            sender.join(30)
            results.append(digest(echoed) == digest(payload))

    clients = [threading.Thread(target=one) for _ in range(streams)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(60)
    assert results == [True] * streams
    assert most_busy[0] <= _threaded_relay.MAX_WORKERS
    records = srv.wait_records(streams)
    assert all(r["bytes_up"] == r["bytes_down"] == len(payload) for r in records)
    wait_until(workers_idle, what="the workers to be released")


def test_idle_timeout_closes_a_relay_whose_worker_is_stalled(socks_server, target):
    srv = socks_server(config=THREADS_TOML + "[timeouts]\nidle = 1\n")
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *target.address))
        with target.accept() as far:
            far.settimeout(5)
            try:  # fill every buffer toward a client that does not read
                while True:
                    far.send(pattern_bytes(1 << 20))
            except (TimeoutError, ConnectionResetError, BrokenPipeError):
                pass
            record = srv.wait_records(1)[0]
            assert record["outcome"] == "idle-timeout"
    wait_until(workers_idle, what="the workers to be released")


class Pump:
    """Sends 1 MiB chunks on ``sock`` from a thread until ``stop()`` (or an error)."""

    def __init__(self, sock):
        self.sock = sock
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        try:
            while not self.stopping.is_set():
                self.sock.sendall(pattern_bytes(1 << 20))
        except OSError:
            pass

    def stop(self):
        self.stopping.set()

    def join(self):
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_server_stop_mid_bulk_reports_the_session_and_frees_the_pool_slot(
        socks_server, target):
    """A server stopped while a worker copies reports the session, closes its side, and
    gives the worker's pool slot back: the loop that would have taken the hand-back may be
    closed by then, and the pool outlives the server. Five rounds: the hand-back races the
    loop's end."""
    for _ in range(5):
        srv = socks_server(config=THREADS_TOML)
        client = CoreClient(srv.address, 5)
        assert client.succeeded(client.request(CONNECT, *target.address))
        with target.accept() as far:
            pump = Pump(client.sock)
            assert len(recv_all(far, 8 << 20)) == 8 << 20  # bulk flowing through a worker
            srv.stop()
            pump.stop()
            assert srv.records and srv.records[0]["bytes_up"] >= 8 << 20
            far.settimeout(10)
            try:  # the server closed its side: EOF (or a reset) after what was in flight
                while far.recv(1 << 20):
                    pass
            except ConnectionResetError:
                pass
            pump.join()
        client.close()
        wait_until(workers_idle, what="the pool slot of a server stopped mid-bulk")


def test_a_bug_in_a_worker_fails_that_relay_only_and_the_thread_lives_on(
        socks_server, target, monkeypatch):
    """An unexpected exception in a worker (not a socket error) ends that relay with an
    internal-error record; the pool slot comes back and the next bulk relay works."""
    real_buffer = _threaded_relay._buffer
    injected = []

    def failing_once_in_a_worker(size=_threaded_relay._LOOP_CHUNK):
        if size == _threaded_relay._THREAD_CHUNK and not injected:
            injected.append(threading.current_thread().name)
            raise RuntimeError("injected bug")
        return real_buffer(size)

    monkeypatch.setattr(_threaded_relay, "_buffer", failing_once_in_a_worker)
    srv = socks_server(config=THREADS_TOML)
    bulk = pattern_bytes(4 << 20)
    with CoreClient(srv.address, 5) as client:
        assert client.succeeded(client.request(CONNECT, *target.address))
        with target.accept() as far:
            def send_bulk():
                with contextlib.suppress(OSError):  # the proxy may reset mid-send
                    client.sock.sendall(bulk)

            sender = threading.Thread(target=send_bulk, daemon=True)
            sender.start()
            far.settimeout(10)
            with contextlib.suppress(OSError):
                while far.recv(1 << 20):
                    pass  # until the proxy closes (or resets) its side
            sender.join(10)
    assert injected == ["socksify-relay"]
    record = srv.wait_records(1)[0]
    assert record["outcome"] == "internal-error:RuntimeError"
    wait_until(workers_idle, what="the failed worker's slot to come back")
    threads = _threaded_relay._workers.threads
    with CoreClient(srv.address, 5) as client:  # the pool still copies bulk data
        assert client.succeeded(client.request(CONNECT, *target.address))
        with target.accept() as far:
            client.sock.sendall(bulk)
            assert digest(recv_all(far, len(bulk))) == digest(bulk)
    assert _threaded_relay._workers.threads == threads  # no thread lost, none added
    wait_until(workers_idle, what="the workers to hand every direction back")
