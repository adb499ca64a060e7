"""The reference server at its limits: slow-loris handshakes, a client that never reads,
and file-descriptor exhaustion. Memory, fds and CPU are read from /proc of a server
subprocess; nothing here asserts a duration, only bounds on resources and outcomes.
"""

import socket
import threading
import time

import pytest
from _hardening_support import LOOPBACK_ONLY_RULES, ServerProcess, echo_round_trip, socks5_connect

pytestmark = pytest.mark.e2e

MiB = 1 << 20


def _closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True if the peer closes (EOF or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


# --- slow loris -----------------------------------------------------------------------------


class SlowLoris(threading.Thread):
    """Sends a never-ending SOCKS4 USERID one byte at a time, ``interval`` apart."""

    def __init__(self, address, interval: float, limit: float):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(address, timeout=5)
        self.interval, self.limit = interval, limit
        self.cut_off = False
        self.sent = 0

    def run(self):
        data = b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"U" * 10_000
        deadline = time.monotonic() + self.limit
        try:
            for byte in data:
                if time.monotonic() > deadline:
                    return
                self.sock.send(bytes([byte]))
                self.sent += 1
                time.sleep(self.interval)
        except OSError:
            self.cut_off = True


def test_slow_loris_handshakes_time_out_without_holding_up_others(socks_server, tcp_echo_server):
    # Bytes arrive 4 times per second, so a per-read timeout would never fire; the handshake
    # as a whole must complete within 1 s.
    srv = socks_server(config="[timeouts]\nhandshake = 1.0\n" + LOOPBACK_ONLY_RULES)
    lorises = [SlowLoris(srv.address, interval=0.25, limit=15) for _ in range(30)]
    for loris in lorises:
        loris.start()
    served = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # the others keep being served meanwhile
        assert echo_round_trip(srv.address, tcp_echo_server, b"ping", timeout=5) == b"ping"
        served += 1
    for loris in lorises:
        assert _closed_by_peer(loris.sock, timeout=10)
        loris.join(15)
        loris.sock.close()
    assert served >= 1
    # Each loris got in a few bytes, far from the 10 000 it wanted to trickle.
    assert all(loris.sent < 100 for loris in lorises)
    outcomes = [r["outcome"] for r in srv.wait_records(served + len(lorises))]
    assert outcomes.count("handshake-timeout") == len(lorises)


# --- back-pressure --------------------------------------------------------------------------


class Flooder(threading.Thread):
    """A target that writes as fast as the connection takes it, until a send blocks 2 s."""

    def __init__(self, cap: int):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.cap = cap
        self.sent = 0
        self.blocked = threading.Event()

    def run(self):
        self.listener.settimeout(20)
        conn, _ = self.listener.accept()
        conn.settimeout(2)
        chunk = b"F" * (1 << 20)
        with conn:
            try:
                while self.sent < self.cap:
                    self.sent += conn.send(chunk)
            except TimeoutError:
                self.blocked.set()
            except OSError:
                pass
        self.listener.close()


def test_client_that_never_reads_does_not_grow_server_memory(tmp_path):
    server = ServerProcess(tmp_path, LOOPBACK_ONLY_RULES).start()
    flooder = Flooder(cap=1024 * MiB)
    flooder.start()
    try:
        sock, reply = socks5_connect(server.address, flooder.address)
        with sock:
            assert reply.code == 0
            rss_before = server.rss_kib()
            # We never read: the relay must stop reading from the target, so the target's
            # send blocks once the socket buffers and the relay's write buffer are full.
            assert flooder.blocked.wait(60), f"target sent {flooder.sent} bytes unblocked"
            grown = (server.rss_kib() - rss_before) * 1024
            assert flooder.sent < 128 * MiB
            assert grown < 48 * MiB, f"server RSS grew {grown / MiB:.1f} MiB"
            # Reading again resumes the flow.
            sock.settimeout(10)
            assert len(sock.recv(65536)) > 0
        flooder.join(10)
        assert server.alive()
    finally:
        assert server.stop() == 0


class Sink(threading.Thread):
    """A target that accepts one connection and never reads from it."""

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.release = threading.Event()

    def run(self):
        self.listener.settimeout(20)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            self.release.wait(60)
        self.listener.close()


def test_target_that_never_reads_does_not_grow_server_memory(tmp_path):
    """The other direction: the client floods, the target never reads."""
    server = ServerProcess(tmp_path, LOOPBACK_ONLY_RULES).start()
    sink = Sink()
    sink.start()
    try:
        sock, reply = socks5_connect(server.address, sink.address)
        with sock:
            assert reply.code == 0
            rss_before = server.rss_kib()
            sock.settimeout(2)
            sent, chunk = 0, b"U" * (1 << 20)
            try:
                while sent < 1024 * MiB:
                    sent += sock.send(chunk)
            except TimeoutError:
                pass  # blocked: the relay stopped reading from us
            grown = (server.rss_kib() - rss_before) * 1024
            assert sent < 128 * MiB, f"sent {sent / MiB:.0f} MiB without blocking"
            assert grown < 48 * MiB, f"server RSS grew {grown / MiB:.1f} MiB"
        assert server.alive()
    finally:
        sink.release.set()
        sink.join(10)
        assert server.stop() == 0


# --- file-descriptor exhaustion -------------------------------------------------------------


#: what the server may log when it runs out of descriptors (asyncio's accept error today;
#: a refusal at a client cap derived from RLIMIT_NOFILE would do as well)
_OUT_OF_FDS_SIGNS = ("Too many open files", "max_clients")


def _wait_for_log(server, signs, timeout=15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(sign in server.log() for sign in signs):
            return True
        time.sleep(0.1)
    return False


def _measure_while_exhausted(server, seconds):
    """CPU seconds, wall seconds and bytes of log the server produced over ``seconds``."""
    cpu_before, wall_before, log_before = server.cpu_seconds(), time.monotonic(), len(server.log())
    time.sleep(seconds)
    return (server.cpu_seconds() - cpu_before, time.monotonic() - wall_before,
            len(server.log()) - log_before)


def test_fd_exhaustion_logs_delays_and_recovers(tmp_path, tcp_echo_server):
    server = ServerProcess(
        tmp_path, "[timeouts]\nhandshake = 60\n" + LOOPBACK_ONLY_RULES, nofile=40
    ).start()
    idle = []
    try:
        assert echo_round_trip(server.address, tcp_echo_server, b"before") == b"before"
        for _ in range(80):  # twice what the server may open
            idle.append(socket.create_connection(server.address, timeout=5))
        assert _wait_for_log(server, _OUT_OF_FDS_SIGNS), server.log()[-2000:]

        # Out of descriptors: the server must neither exit nor spin (a busy loop would use
        # about all of the wall time; see the strict test below for the flood it does cause).
        cpu, wall, _ = _measure_while_exhausted(server, seconds=2)
        assert server.alive()
        assert cpu < wall * 0.75, f"server used {cpu:.2f} s CPU in {wall:.2f} s while out of fds"

        for sock in idle:
            sock.close()
        idle.clear()
        # Recovers by itself: a new client is served again (bounded wait).
        deadline = time.monotonic() + 20
        while True:
            try:
                if echo_round_trip(server.address, tcp_echo_server, b"after", timeout=3) \
                        == b"after":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.2)
        assert server.alive()
    finally:
        for sock in idle:
            sock.close()
        assert server.stop() == 0


def test_fd_exhaustion_does_not_flood_the_log(tmp_path):
    """Out of fds, asyncio's own accept loop (CPython gh-151615) logs a traceback and
    schedules a retry ``backlog`` times per wake-up: thousands of tracebacks (MBs of log) a
    second at ~40% CPU. The server must stay clear of that (a client cap that fits
    RLIMIT_NOFILE, refusals logged at most once a second)."""
    server = ServerProcess(tmp_path, "[timeouts]\nhandshake = 60\n" + LOOPBACK_ONLY_RULES,
                           nofile=40).start()
    idle = []
    try:
        for _ in range(80):
            idle.append(socket.create_connection(server.address, timeout=5))
        assert _wait_for_log(server, _OUT_OF_FDS_SIGNS) or server.fds() < 40
        cpu, wall, logged = _measure_while_exhausted(server, seconds=2)
        assert server.alive()
        assert logged < 20_000, f"{logged} bytes of log in {wall:.1f} s"
        assert cpu < wall * 0.2, f"{cpu:.2f} s CPU in {wall:.1f} s"
    finally:
        for sock in idle:
            sock.close()
        assert server.stop() == 0


class FloodTargets:
    """A target listener whose accepted connections the test fills by hand, non-blocking,
    until none takes another byte (every relay and socket buffer on the way is full)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(10)
        self.address = self.listener.getsockname()
        self.conns: list[socket.socket] = []

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.setblocking(False)
        self.conns.append(conn)

    def fill(self, timeout: float = 60) -> int:
        """Send to every connection until three passes in a row (50 ms apart) move nothing;
        return the bytes sent."""
        chunk, total, still = b"D" * (1 << 20), 0, 0
        deadline = time.monotonic() + timeout
        while still < 3:
            assert time.monotonic() < deadline, f"still taking data after {total} bytes"
            moved = 0
            for conn in self.conns:
                try:
                    while True:
                        moved += conn.send(chunk)
                except BlockingIOError:
                    pass
            total += moved
            still = 0 if moved else still + 1
            time.sleep(0.05)
        return total

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.listener.close()


def test_many_stalled_downloads_hold_no_relay_memory(tmp_path):
    """Clients that stop reading a fast download: what the relay read and could not pass on
    stays in the kernel (its worker threads peek, and take only what was sent), so the
    server's memory does not grow with each stalled connection. The first connections
    warm the worker pool (threads and their read buffers); then each further stalled
    connection may cost the server its bookkeeping, not megabytes of data."""
    server = ServerProcess(tmp_path, LOOPBACK_ONLY_RULES).start()
    targets = FloodTargets()
    clients = []
    try:
        def stall(count: int) -> int:
            for _ in range(count):
                sock, reply = socks5_connect(server.address, targets.address)
                assert reply.code == 0
                clients.append(sock)
                targets.accept()
            return targets.fill()

        warm_up, measured = 8, 24
        assert stall(warm_up) > warm_up * MiB  # the relays moved data before stalling
        time.sleep(0.3)  # workers hand stalled directions back after 0.1 s
        rss_before = server.rss_kib()
        sent = stall(measured)
        time.sleep(0.3)
        grown = (server.rss_kib() - rss_before) * 1024
        assert sent > measured * MiB
        assert grown < measured * 256 * 1024, (
            f"server RSS grew {grown / MiB:.1f} MiB for {measured} stalled downloads "
            f"({sent / MiB:.0f} MiB sent by the targets)")
        for sock in clients[-3:]:  # reading again resumes the flow
            sock.settimeout(10)
            data = sock.recv(65536)
            assert data and data == b"D" * len(data)
        assert server.alive()
    finally:
        for sock in clients:
            sock.close()
        targets.close()
        assert server.stop() == 0
