"""scripts/load_connections: hold many proxied connections through ONE socksify-server
process, then close them all, and report memory and descriptors at each stage.

Three processes, so each stays under the per-process descriptor limit: this one (the
clients: one socket per connection), the server (two per connection: client and remote,
with either relay) and a target that accepts and echoes (one per connection). The soft
RLIMIT_NOFILE is raised to the hard limit in each.

Stages: baseline (server started, idle) -> held (every connection open and proven with an
echo through the proxy) -> closed (every client socket closed, then the server's descriptor
count watched until it stops falling, bounded). Memory is the server's VmRSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

READY_TIMEOUT = 20.0
SETTLE_TIMEOUT = 60.0

#: The target: accept and echo, with its own raised descriptor limit (a separate process).
TARGET_CODE = r"""
import asyncio, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(data)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
asyncio.run(main())
"""


@dataclasses.dataclass
class Snapshot:
    rss_kib: int
    fds: int


@dataclasses.dataclass
class LoadResult:
    requested: int
    established: int
    failed: int
    first_error: str
    #: the server's ``[server] relay``: "threads" or "portable"
    relay: str
    max_clients_log: str
    seconds_to_open: float
    baseline: Snapshot
    held: Snapshot
    closed: Snapshot
    #: the closed snapshot of each further round (same connections again): growth from
    #: round to round is a leak; a level that stays put is the allocator keeping its pages
    later_rounds: list[Snapshot] = dataclasses.field(default_factory=list)
    #: with worker processes: each worker at baseline and while held (the totals above
    #: add the main process and every worker)
    workers_baseline: list[Snapshot] = dataclasses.field(default_factory=list)
    workers_held: list[Snapshot] = dataclasses.field(default_factory=list)

    @property
    def kib_per_connection(self) -> float:
        if not self.established:
            return 0.0
        return (self.held.rss_kib - self.baseline.rss_kib) / self.established

    @property
    def fds_per_connection(self) -> float:
        return (self.held.fds - self.baseline.fds) / self.established if self.established else 0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return sorted(int(child) for child in fh.read().split())


def _one_snapshot(pid: int) -> Snapshot:
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return Snapshot(rss, len(os.listdir(f"/proc/{pid}/fd")))


def worker_snapshots(pid: int) -> list[Snapshot]:
    """One snapshot per worker process of the server ``pid`` (none without workers)."""
    return [_one_snapshot(child) for child in _children(pid)]


def snapshot(pid: int) -> Snapshot:
    """The server process plus its worker processes, if any."""
    total = _one_snapshot(pid)
    for worker in worker_snapshots(pid):
        total = Snapshot(total.rss_kib + worker.rss_kib, total.fds + worker.fds)
    return total


def settle(pid: int, until=None, timeout: float = SETTLE_TIMEOUT) -> Snapshot:
    """Poll until the descriptor count stops changing for 0.5 s (or ``until(fds)``)."""
    deadline = time.monotonic() + timeout
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        current = snapshot(pid)
        if until is not None and until(current.fds):
            return current
        if last is None or current.fds != last.fds:
            last, stable_since = current, time.monotonic()
        elif until is None and time.monotonic() - stable_since >= 0.5:
            return current
        time.sleep(0.05)
    return snapshot(pid)


def _limit_fds(limit: int):
    """A preexec_fn that lowers the child's descriptor limit (soft and hard) to ``limit``."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


class Processes:
    """The target and the server, started and stopped together."""

    def __init__(self, connections: int, relay: str, server_fd_limit: int | None = None,
                 workers: int = 1):
        self.tmp = tempfile.TemporaryDirectory(prefix="load-connections-")
        self.target = subprocess.Popen(
            [sys.executable, "-c", TARGET_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True,
        )
        self.target_port = int(self.target.stdout.readline())
        config = os.path.join(self.tmp.name, "server.toml")
        with open(config, "w") as fh:
            fh.write(f"[server]\nmax_clients = {connections}\n"
                     f'relay = "{relay}"\nworkers = {workers}\n')
        self.server = subprocess.Popen(
            [sys.executable, "-m", "socksify.server", "--listen", "127.0.0.1:0",
             "--config", config, "--log-level", "warning"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            preexec_fn=None if server_fd_limit is None else _limit_fds(server_fd_limit),
        )
        self.server_log: list[str] = []
        self.server_port = self._wait_ready()

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = self.server.stderr.readline()
            if not line:
                break
            self.server_log.append(line.rstrip())
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if found:
                threading.Thread(target=self._drain, daemon=True).start()
                return int(found.group(1))
        self.stop()
        raise RuntimeError("socksify-server did not start: " + " | ".join(self.server_log))

    def _drain(self) -> None:
        for line in self.server.stderr:
            if len(self.server_log) < 200:
                self.server_log.append(line.rstrip())

    def stop(self) -> None:
        for proc in (self.server, self.target):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self.target.stdin.close()
        self.tmp.cleanup()


def _socks5_connect_bytes(port: int) -> bytes:
    """RFC 1928 §3 greeting (no authentication) and §4 CONNECT 127.0.0.1:port, pipelined."""
    return b"\x05\x01\x00" + b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(
        "!H", port
    )


async def open_all(proxy_port: int, target_port: int, count: int, parallel: int = 200):
    """Open ``count`` tunnels; return (writers, errors). Each one is proven by an echo."""
    hello = _socks5_connect_bytes(target_port)
    gate = asyncio.Semaphore(parallel)
    writers: list[asyncio.StreamWriter] = []
    errors: list[str] = []

    async def one(index: int) -> None:
        async with gate:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", proxy_port), 30)
                writer.write(hello)
                answer = await asyncio.wait_for(reader.readexactly(12), 30)
                method, reply = answer[:2], answer[2:]  # a refusal still has 10 bytes
                if method != b"\x05\x00" or reply[1] != 0:
                    raise ConnectionError(f"refused: method {method!r} reply {reply[:2]!r}")
                probe = index.to_bytes(4, "big")
                writer.write(probe)
                if await asyncio.wait_for(reader.readexactly(4), 30) != probe:
                    raise ConnectionError("echo mismatch")
                writers.append(writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                if writer is not None:
                    writer.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    return writers, errors


def one_round(procs: Processes, connections: int, baseline: Snapshot,
              workers_held: list[Snapshot] | None = None):
    """Open, hold, close; return (writers, errors, seconds to open, held, closed).
    ``workers_held`` receives each worker's snapshot while the connections are held."""
    pid = procs.server.pid

    async def scenario():
        started = time.monotonic()
        writers, errors = await open_all(procs.server_port, procs.target_port, connections)
        opened_in = time.monotonic() - started
        held = settle(pid)
        if workers_held is not None:
            workers_held.extend(worker_snapshots(pid))
        for writer in writers:
            writer.close()
        await asyncio.sleep(0)
        return writers, errors, opened_in, held

    writers, errors, opened_in, held = asyncio.run(scenario())
    settle(pid, until=lambda fds: fds <= baseline.fds)
    time.sleep(0.5)  # let the event loop finish the last callbacks before reading RSS
    return writers, errors, opened_in, held, snapshot(pid)


def run(connections: int, relay: str, rounds: int = 2,
        server_fd_limit: int | None = None, workers: int = 1) -> LoadResult:
    """The whole measurement with the server's ``relay`` ("threads" or "portable");
    ``server_fd_limit`` lowers the server's RLIMIT_NOFILE;
    ``workers`` > 1 runs the server with that many worker processes (``max_clients`` is
    per worker, so each one could take every connection)."""
    raise_fd_limit()
    procs = Processes(connections, relay, server_fd_limit, workers)
    try:
        baseline = settle(procs.server.pid)
        workers_baseline = worker_snapshots(procs.server.pid)
        workers_held: list[Snapshot] = []
        writers, errors, opened_in, held, closed = one_round(
            procs, connections, baseline, workers_held)
        later = [one_round(procs, connections, baseline)[4] for _ in range(rounds - 1)]
        capped = [line for line in procs.server_log if "max_clients" in line]
        return LoadResult(
            requested=connections, established=len(writers), failed=len(errors),
            first_error=errors[0] if errors else "", relay=relay,
            max_clients_log=capped[0] if capped else "", seconds_to_open=opened_in,
            baseline=baseline, held=held, closed=closed, later_rounds=later,
            workers_baseline=workers_baseline, workers_held=workers_held,
        )
    finally:
        procs.stop()


def report(result: LoadResult) -> str:
    mib = 1024
    lines = [
        f'socksify-server, relay = "{result.relay}", '
        + (f"{len(result.workers_held)} worker processes" if result.workers_held
           else "one process"),
        f"  connections requested      {result.requested}",
        f"  established (echo proven)  {result.established}   failed {result.failed}"
        + (f"   first error: {result.first_error}" if result.failed else ""),
        f"  time to open all           {result.seconds_to_open:.1f} s",
        f"  server RSS  baseline {result.baseline.rss_kib / mib:7.1f} MiB   "
        f"held {result.held.rss_kib / mib:7.1f} MiB   after close "
        f"{result.closed.rss_kib / mib:7.1f} MiB",
        f"  server fds  baseline {result.baseline.fds:7d}       held {result.held.fds:7d}"
        f"       after close {result.closed.fds:7d}",
        f"  memory per connection      {result.kib_per_connection:.1f} KiB"
        f"   (descriptors per connection {result.fds_per_connection:.2f})",
    ]
    for number, (base, held) in enumerate(
            zip(result.workers_baseline, result.workers_held, strict=False), start=1):
        # a held connection is two descriptors (client and remote socket) in its worker
        held_here = (held.fds - base.fds) // 2
        per = (held.rss_kib - base.rss_kib) / held_here if held_here else 0.0
        lines.append(f"  worker {number}: ~{held_here} connections, RSS {base.rss_kib / mib:.1f}"
                     f" -> {held.rss_kib / mib:.1f} MiB ({per:.1f} KiB each), fds "
                     f"{base.fds} -> {held.fds}")
    for number, later in enumerate(result.later_rounds, start=2):
        lines.append(f"  round {number}: after close RSS {later.rss_kib / mib:7.1f} MiB, "
                     f"fds {later.fds}")
    if result.max_clients_log:
        lines.append(f"  server said: {result.max_clients_log}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="load_connections",
        description="Hold N proxied connections through one socksify-server process, close "
        "them, and report memory per connection and descriptors before/after.")
    parser.add_argument("--connections", type=int, default=9000)
    parser.add_argument("--relay", choices=["threads", "portable", "both"], default="both",
                        help="the server's [server] relay (default both, one after the other)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="open/close the connections this many times (default 2)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server worker processes (default 1: one process)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    relays = ["portable", "threads"] if args.relay == "both" else [args.relay]
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    results = [run(args.connections, relay, max(1, args.rounds), workers=args.workers)
               for relay in relays]
    if args.json:
        print(json.dumps([
            {**dataclasses.asdict(r), "kib_per_connection": r.kib_per_connection,
             "fds_per_connection": r.fds_per_connection} for r in results], indent=1))
    else:
        print(f"descriptor limit (hard, per process): {raise_fd_limit()}")
        print("\n\n".join(report(r) for r in results))
    ok = all(
        r.established == r.requested
        and all(s.fds <= r.baseline.fds for s in [r.closed, *r.later_rounds])
        for r in results
    )
    return 0 if ok else 1
