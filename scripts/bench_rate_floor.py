#!/usr/bin/env python3
"""How fast can a Python (or any) SOCKS server set up connections on this machine at all?

    scripts/bench_rate_floor.py [--rounds 5] [--millis 2000] [--concurrency 50]
                                [--workers 1,3]

The connection-rate measure of scripts/bench (loadgen rate, concurrency 50) run against
socksify-server, microsocks, and minimal Python servers that check, log and record
nothing (scripts/benchlib/bare_servers.py): one on bare select.epoll, the same inside an
asyncio loop that watches only the epoll descriptor ("nested"), the same on asyncio's own
epoll through a selector that hands it the events asyncio does not know ("merged", as
socksify-server's loop on 3.11+), and one on asyncio reader/writer callbacks. Every bare
subject runs one process per CPU sharing the port with SO_REUSEPORT; ``--workers`` adds
socksify-server with other worker counts. Rounds are interleaved; the table gives medians
of conn/s and of the server's CPU per connection (user + system, its whole process tree).

The bare servers bound what any Python design can reach here: on a 2-core machine the load
generator and the target share the CPUs with the server, so the rate is set by CPU per
connection, and the kernel's share of it (about 15 system calls: accept, connect, three
sends, closes) is the same for every subject. "bare C (epoll)" (scripts/benchlib/
bare_server.c) is the epoll server written in C, the floor of any implementation: the gap
between it and the bare Python servers is what a C handshake path could gain.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib.context import clean_env, run_keyvalues  # noqa: E402
from benchlib.processes import (  # noqa: E402
    BARE_SERVER_SOURCE,
    Server,
    TargetServer,
    build_loadgen,
    build_program,
    free_port,
    start_microsocks,
    start_socksify_server,
    tree_cpu_seconds,
    wait_port,
)


def start_bare(kind: str, program: str | None = None) -> Server:
    """A bare Python server of ``kind``, or with ``program`` the bare C one."""
    port = free_port()
    processes = str(os.cpu_count() or 1)
    if program:
        args = [program, str(port), processes]
    else:
        args = [sys.executable, "-m", "benchlib.bare_servers", kind, str(port), processes]
    # its own session: stop() below kills the forked processes with it
    proc = subprocess.Popen(args, cwd=HERE, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, start_new_session=True, env=clean_env())
    try:
        wait_port(proc, port, f"bare {kind} server")
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return Server(f"bare C ({kind})" if program else f"bare Python ({kind})", proc, port,
                  False, args)


def stop_server(server: Server) -> None:
    if server.name.startswith("bare"):
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)
    else:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--millis", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--workers", default="",
                        help="also socksify-server with these worker counts (e.g. 1,3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        loadgen = build_loadgen(workdir)
        target = TargetServer(loadgen)
        servers: list[Server] = []
        try:
            extra = [start_socksify_server(workdir, workers=count)
                     for count in args.workers.split(",") if count]
            servers = [start_socksify_server(workdir), *extra, start_microsocks(workdir),
                       start_bare("asyncio"), start_bare("nested"),
                       start_bare("merged"), start_bare("epoll"),
                       start_bare("epoll", build_program(workdir, BARE_SERVER_SOURCE))]
            rates: dict[str, list[float]] = {s.name: [] for s in servers}
            cpus: dict[str, list[float]] = {s.name: [] for s in servers}
            for round_ in range(args.rounds):
                for server in servers:
                    before = tree_cpu_seconds(server.proc.pid)
                    out = run_keyvalues(
                        [loadgen, "rate", server.host, str(server.port), "socks5",
                         target.host, str(target.port), str(args.concurrency),
                         str(args.millis)], timeout=60 + args.millis / 1000)
                    if out["errors"]:
                        raise SystemExit(f"{server.name}: {out['errors']:.0f} errors")
                    cpu = tree_cpu_seconds(server.proc.pid) - before
                    rates[server.name].append(out["count"] / out["seconds"])
                    cpus[server.name].append(cpu / out["count"] * 1e6)
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        finally:
            for server in servers:
                stop_server(server)
            target.close()
    micro = statistics.median(rates["microsocks"])
    print(f"connection setup, concurrency {args.concurrency}, medians of {args.rounds} rounds")
    print(f"{'subject':<24} {'conn/s':>8} {'vs microsocks':>14} {'CPU us/conn':>12}")
    for name in rates:
        rate = statistics.median(rates[name])
        print(f"{name:<24} {rate:8.0f} {rate / micro:13.2f}x "
              f"{statistics.median(cpus[name]):12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
