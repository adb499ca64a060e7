#!/usr/bin/env python3
"""One connection through socksify-server, a byte each way at a time, with a pause between
exchanges: the server's CPU and the wall time per exchange, with its event loop's spin
(socksify/server/_eventloop.py) and without it.

    scripts/bench_server_pingpong.py [--exchanges 5000] [--pause-us 0,40,300] [--rounds 3]

What it shows: with no pause the spin catches the next byte without sleeping (shorter round
trips); with pauses of ~0.1 ms and more it must stay off (no CPU spent spinning). The echo
target runs in this process; one single-process server per variant, started side by side
and used in turns. Run it under the shared benchmark lock.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.processes import free_port, tree_cpu_seconds  # noqa: E402

#: socksify-server with the spin turned off: SPIN_POLLS = 0 keeps every spin at 0 polls
NO_SPIN = ("from socksify.server import _eventloop; _eventloop.SPIN_POLLS = 0; "
           "from socksify.server.__main__ import main; raise SystemExit(main())")


def echo_target() -> int:
    """A TCP echo server in threads of this process; returns its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def start_server(config: Path, spin: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    head = ["-m", "socksify.server"] if spin else ["-c", NO_SPIN]
    proc = subprocess.Popen([sys.executable, *head, "--listen", f"127.0.0.1:{port}",
                             "--log-level", "error", "--config", str(config)],
                            stderr=subprocess.PIPE)
    proc.stderr.readline()  # "listening on ..."
    return proc, port


def tunnel(port: int, target: int) -> socket.socket:
    """A SOCKS5 CONNECT through the server at ``port`` to 127.0.0.1:``target``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"\x05\x01\x00")
    assert sock.recv(2) == b"\x05\x00"
    sock.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + target.to_bytes(2, "big"))
    reply = sock.recv(10)
    assert reply[:2] == b"\x05\x00", reply
    return sock


def exchanges(sock: socket.socket, count: int, pause: float) -> float:
    """``count`` one-byte round trips with ``pause`` seconds between them; seconds spent."""
    start = time.perf_counter()
    for _ in range(count):
        sock.sendall(b"x")
        if sock.recv(8) != b"x":
            raise SystemExit("the echo did not come back")
        if pause:
            time.sleep(pause)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=5000)
    parser.add_argument("--pause-us", default="0,40,300")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    target = echo_target()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "server.toml"
        config.write_text("[server]\nworkers = 1\n")
        servers = {"spin": start_server(config, True), "no spin": start_server(config, False)}
        try:
            print(f"{'pause':>8}  {'variant':8}  {'server CPU/exchange':>20}  "
                  f"{'wall/exchange':>14}")
            for pause_us in (float(x) for x in args.pause_us.split(",")):
                cpu: dict[str, list[float]] = {name: [] for name in servers}
                wall: dict[str, list[float]] = {name: [] for name in servers}
                for _ in range(args.rounds):
                    for name, (proc, port) in servers.items():
                        with tunnel(port, target) as sock:
                            before = tree_cpu_seconds(proc.pid)
                            seconds = exchanges(sock, args.exchanges, pause_us / 1e6)
                            used = tree_cpu_seconds(proc.pid) - before
                        cpu[name].append(used / args.exchanges * 1e6)
                        wall[name].append(seconds / args.exchanges * 1e6)
                for name in servers:
                    print(f"{pause_us:6.0f}us  {name:8}  {statistics.median(cpu[name]):17.1f} us"
                          f"  {statistics.median(wall[name]):11.1f} us", flush=True)
        finally:
            for proc, _ in servers.values():
                proc.send_signal(2)
                proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
