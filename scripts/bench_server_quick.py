#!/usr/bin/env python3
"""Quick socksify-server figures while tuning (scripts/bench gives the real table).

    scripts/bench_server_quick.py [--workers N] [--rate-ms 2000] [--relay-mb 2000]
                                  [--rounds 3] [--profile FILE]
                                  [--server-cpus 0 --client-cpus 1]

Builds loadgen (scripts/benchlib/loadgen.c), starts its target and one socksify-server,
then prints rate (concurrency 50) and one-stream relay figures per round. --profile runs a
single-process server under cProfile and writes the stats to FILE. --server-cpus and
--client-cpus (comma-separated CPU numbers) pin the server, and loadgen with its target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.processes import build_loadgen, free_port, pinned_to  # noqa: E402


def keyvalues(text: str) -> dict[str, float]:
    words = text.split()
    return {words[i]: float(words[i + 1]) for i in range(0, len(words) - 1, 2)}


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` and its children (workers), in seconds."""
    user = system = 0.0
    pids = [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / os.sysconf("SC_CLK_TCK")
        system += int(fields[12]) / os.sysconf("SC_CLK_TCK")
    return user, system


def cpu_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its children (workers)."""
    return sum(cpu_split(pid))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1")
    parser.add_argument("--rate-ms", type=int, default=2000)
    parser.add_argument("--relay-mb", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="rate,relay")
    parser.add_argument("--profile")
    parser.add_argument("--server-cpus", type=cpu_list)
    parser.add_argument("--client-cpus", type=cpu_list)
    args = parser.parse_args()
    clients = pinned_to(args.client_cpus)
    with tempfile.TemporaryDirectory() as tmp:
        loadgen = build_loadgen(Path(tmp))
        target = subprocess.Popen([loadgen, "serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, preexec_fn=clients)
        tport = target.stdout.readline().split()[1]
        port = free_port()
        config = Path(tmp) / "s.toml"
        config.write_text(f'[server]\nmax_clients = 20000\nworkers = "{args.workers}"\n')
        command = [sys.executable, "-m", "socksify.server"]
        if args.profile:
            command = [sys.executable, "-m", "cProfile", "-o", args.profile,
                       "-m", "socksify.server"]
        server = subprocess.Popen([*command, "--listen", f"127.0.0.1:{port}",
                                   "--log-level", "error", "--config", str(config)],
                                  stderr=subprocess.PIPE, preexec_fn=pinned_to(args.server_cpus))
        server.stderr.readline()
        try:
            for _ in range(args.rounds):
                if "rate" in args.only:
                    user, system = cpu_split(server.pid)
                    out = subprocess.run(
                        [loadgen, "rate", "127.0.0.1", str(port), "socks5", "127.0.0.1",
                         tport, "50", str(args.rate_ms)],
                        capture_output=True, text=True, timeout=120, preexec_fn=clients).stdout
                    kv = keyvalues(out)
                    after = cpu_split(server.pid)
                    user = (after[0] - user) / kv["count"] * 1e6
                    system = (after[1] - system) / kv["count"] * 1e6
                    print(f"rate50 {kv['count'] / kv['seconds']:8.0f} conn/s  "
                          f"cpu {user + system:4.0f} us (user {user:3.0f}, system {system:3.0f})  "
                          f"p99 {kv['p99_us']:7.0f} us  errors {kv['errors']:.0f}", flush=True)
                if "relay" in args.only:
                    cpu = cpu_seconds(server.pid)
                    out = subprocess.run(
                        [loadgen, "relay", "127.0.0.1", str(port), "socks5", "127.0.0.1",
                         tport, "1", str(args.relay_mb * 1_000_000)],
                        capture_output=True, text=True, timeout=300, preexec_fn=clients).stdout
                    kv = keyvalues(out)
                    ours = kv["bytes"] / kv["seconds"] / 1e6
                    cpu = (cpu_seconds(server.pid) - cpu) / (kv["bytes"] / 1e9)
                    out = subprocess.run(
                        [loadgen, "relay", "127.0.0.1", "1", "direct", "127.0.0.1",
                         tport, "1", str(args.relay_mb * 1_000_000)],
                        capture_output=True, text=True, timeout=300, preexec_fn=clients).stdout
                    kv = keyvalues(out)
                    direct = kv["bytes"] / kv["seconds"] / 1e6
                    print(f"relay1 {ours:8.0f} MB/s  direct {direct:8.0f} MB/s  "
                          f"{ours / direct:.2f}x  cpu {cpu:.2f} s/GB", flush=True)
                    time.sleep(0.2)
        finally:
            server.send_signal(2)
            server.wait(30)
            target.stdin.close()
            target.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
