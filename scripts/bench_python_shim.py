#!/usr/bin/env python3
"""Benchmark: cost of one connect + SOCKS5 handshake + close through the Python shim.

Usage: python scripts/bench_python_shim.py [--count N] [--rounds R]

Everything runs on loopback. microsocks is the proxy (C, so the proxy is not the
bottleneck) and the destination is a separate process that accepts and closes, so neither
shares this process's GIL. Each method makes N connections per round; the figures reported
are the median over all connections, the best per-round median (steadier on a busy
machine), and the CPU time this process spent per connection (``time.process_time``, user +
system, median over rounds: what the client itself costs, whatever the machine's load), in
microseconds; rounds interleave the methods:

- direct:               socket.create_connection() to the destination, no proxy
- hand-written:         the least a SOCKS5 client can do: greeting, recv(2), request, recv(10)
- socksify.create_connection
- patched socket.create_connection   (under socksify.patched())
- patched socket.connect             (socket.socket() + connect() under socksify.patched())
- PySocks, python-socks (when installed)

Start-up: the time of ``import socksify; socksify.patch(URL)`` inside a fresh interpreter
(median of 15 runs), and what the import costs of the modules it pulls in.

This is a measurement, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from contextlib import nullcontext

ACCEPTOR = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0), backlog=4096)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def hand_written(proxy, target):
    """A minimal, correct-enough SOCKS5 CONNECT for an IPv4 destination."""
    sock = socket.create_connection(proxy)
    sock.sendall(b"\x05\x01\x00")
    if sock.recv(2) != b"\x05\x00":
        raise RuntimeError("method")
    sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(target[0]) + target[1].to_bytes(2, "big"))
    reply = sock.recv(10)
    if reply[1] != 0:
        raise RuntimeError("refused")
    return sock


def plain_connect(target):
    """socket.socket() + connect(): what code that builds its own socket does."""
    sock = socket.socket()
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


def one_round(connect, count: int) -> tuple[list[float], float]:
    """Seconds for each of ``count`` connect + handshake + close, and the CPU seconds this
    process spent per connection."""
    times = []
    cpu_start = time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        sock = connect()
        sock.close()
        times.append(time.perf_counter() - start)
    return times, (time.process_time() - cpu_start) / count


def startup(url: str, runs: int = 15, preload: str = "") -> tuple[float, float]:
    """Median and best time of ``import socksify; socksify.patch(url)`` in a fresh
    interpreter, after ``preload`` (e.g. "import socket", as any network program does)."""
    code = textwrap.dedent(f"""
        {preload}
        import time
        start = time.perf_counter()
        import socksify
        socksify.patch({url!r})
        print(time.perf_counter() - start)
    """)
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        times.append(float(out.stdout))
    return statistics.median(times) * 1e3, min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="connections per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    microsocks = shutil.which("microsocks") or shutil.which("microsocks", path="/usr/sbin")
    if not microsocks:
        sys.exit("microsocks is not installed (apt-get install microsocks)")
    import socksify

    acceptor = subprocess.Popen([sys.executable, "-c", ACCEPTOR], stdout=subprocess.PIPE, text=True)
    target = ("127.0.0.1", int(acceptor.stdout.readline()))
    proxy_port = free_port()
    proxy_proc = subprocess.Popen(
        [microsocks, "-i", "127.0.0.1", "-p", str(proxy_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(proxy_port)
        proxy = ("127.0.0.1", proxy_port)
        url = f"socks5://127.0.0.1:{proxy_port}"
        methods = [
            ("direct (no proxy)", lambda: socket.create_connection(target)),
            ("hand-written SOCKS5", lambda: hand_written(proxy, target)),
            ("socksify.create_connection", lambda: socksify.create_connection(target, url)),
        ]
        try:
            import socks  # PySocks

            methods.append(
                (
                    "PySocks create_connection",
                    lambda: socks.create_connection(
                        target,
                        proxy_type=socks.SOCKS5,
                        proxy_addr="127.0.0.1",
                        proxy_port=proxy_port,
                    ),
                )
            )
        except ImportError:
            print("(PySocks not installed)")
        try:
            from python_socks.sync import Proxy

            python_socks_proxy = Proxy.from_url(url)
            methods.append(
                ("python-socks Proxy.connect", lambda: python_socks_proxy.connect(*target))
            )
        except ImportError:
            print("(python-socks not installed)")

        patched_name = "patched socket.create_connection"
        methods.insert(3, (patched_name, lambda: socket.create_connection(target)))
        plain_name = "patched socket.connect"
        methods.insert(4, (plain_name, lambda: plain_connect(target)))
        # Rounds interleave the methods, so a busy machine slows them all alike.
        samples = {name: [] for name, _ in methods}
        round_medians = {name: [] for name, _ in methods}
        round_cpu = {name: [] for name, _ in methods}
        for _ in range(1 + args.rounds):  # the first round warms up and is not counted
            for name, connect in methods:
                patch_it = name in (patched_name, plain_name)
                with socksify.patched(url) if patch_it else nullcontext():
                    times, cpu = one_round(connect, args.count)
                samples[name] += times
                round_medians[name].append(statistics.median(times))
                round_cpu[name].append(cpu)
        results = [
            (
                name,
                statistics.median(samples[name][args.count :]) * 1e6,
                min(round_medians[name][1:]) * 1e6,
                statistics.median(round_cpu[name][1:]) * 1e6,
            )
            for name, _ in methods
        ]
        baseline = results[1][1]
        print(
            f"\n{args.rounds} x {args.count} connections each, Python "
            f"{sys.version.split()[0]}, microsocks as the proxy\n"
        )
        cpu_baseline = results[1][3]
        print(
            f"{'method':38} {'median us':>10} {'best round':>10} {'vs hand':>8}"
            f" {'cpu us':>8} {'vs hand':>8}"
        )
        for name, median, round_median, cpu in results:
            print(
                f"{name:38} {median:10.1f} {round_median:10.1f} "
                f"{100 * (median / baseline - 1):+7.1f}% {cpu:8.1f} "
                f"{100 * (cpu / cpu_baseline - 1):+7.1f}%"
            )
        print()
        for label, preload in [("fresh", ""), ("socket imported", "import socket")]:
            median_ms, best_ms = startup(url, preload=preload)
            print(
                f"import socksify; socksify.patch() [{label}]: median {median_ms:.2f} ms, "
                f"best {best_ms:.2f} ms (target < 10 ms)"
            )
    finally:
        proxy_proc.terminate()
        acceptor.terminate()
        proxy_proc.wait(5)
        acceptor.wait(5)


if __name__ == "__main__":
    main()
