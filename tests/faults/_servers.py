"""Servers for the transfer-fault tests: a stalling HTTP target, a resetting target, and the
reference server as a separate process (so that it can be killed with SIGKILL)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

READY_TIMEOUT = 60.0  # generous: a loaded CI machine starts Python slowly


class ServerProcess:
    """``socksify-server`` in a child process, on a free port of 127.0.0.1."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "socksify.server", "--listen", "127.0.0.1:0", *args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + READY_TIMEOUT
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if found:
                # keep draining stderr so a chatty server never blocks on a full pipe
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                return int(found.group(1))
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"socksify-server did not start: {line!r}")

    def url(self, scheme: str = "socks5h") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, the kernel closes its sockets."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class StallingHttpTarget:
    """Answers every GET with ``size`` bytes (Content-Length), but stops after ``first``
    bytes until :meth:`release` (bounded): the moment to kill the proxy mid-transfer."""

    def __init__(self, size: int = 4 << 20, first: int = 1 << 20):
        self.size, self.first = size, first
        self.first_part_sent = threading.Event()
        self._release = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/big"

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            with contextlib.suppress(OSError):
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % self.size
                )
                conn.sendall(head + b"x" * self.first)
                self.first_part_sent.set()
                self._release.wait(20)
                conn.sendall(b"y" * (self.size - self.first))

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=25)


class ResettingTarget:
    """Reads one line, answers ``hello\\n``, waits for the client's acknowledgement line (so
    the client has the answer: the reset cannot overtake it), then aborts the connection
    (a TCP RST)."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.resets = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.settimeout(10)
            with conn, contextlib.suppress(OSError):
                _read_line(conn)
                conn.sendall(b"hello\n")
                # The client's ack (read whole, so nothing unread turns the close into a
                # reset early) says "hello" has arrived: only now is the reset sent. Without
                # it the close is a plain one, which the test reports as "eof".
                if _read_line(conn) == b"ack\n":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.resets += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=15)


def _read_line(conn: socket.socket) -> bytes:
    """One line (up to EOF), read one byte at a time so nothing after it is consumed."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data
