#!/usr/bin/env python3
"""The one-stream relay ceiling: direct vs a minimal C relay (several designs) vs
socksify-server, with the same loadgen traffic, medians over interleaved rounds.

    scripts/bench_relay_ceiling.py [--mb 2000] [--rounds 5] [--no-server]
                                   [VARIANT ...]

A VARIANT is splice_relay's "MODE[,opt=N...]" (see scripts/benchlib/splice_relay.c), e.g.
``splice`` ``splice-ep`` ``rw`` ``rw-ep,chunk=262144`` ``splice,rcvbuf=4194304``, or
``py:NAME=VALUE,...``: one more socksify-server started with that environment. Without
variants a default set runs. "direct" sends straight to the sink; the C relays are fixed
forwarders (loadgen connects to them "directly"); socksify-server goes through SOCKS5.
Run it under the shared benchmark lock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.processes import build_loadgen, build_program, free_port  # noqa: E402

RELAY_SOURCE = Path(__file__).resolve().parent / "benchlib" / "splice_relay.c"
DEFAULT = ["splice", "splice-ep", "rw", "rw-ep"]


def run_relay(loadgen: str, host_port: list[str], mode: str, nbytes: int) -> float:
    out = subprocess.run([loadgen, "relay", *host_port[:2], mode, *host_port[2:], "1",
                          str(nbytes)], capture_output=True, text=True, timeout=60)
    if out.returncode:
        raise SystemExit(f"loadgen relay via {host_port}: {out.stderr.strip()}")
    out = out.stdout.split()
    kv = {out[i]: float(out[i + 1]) for i in range(0, len(out) - 1, 2)}
    return kv["bytes"] / kv["seconds"] / 1e6


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-server", action="store_true")
    parser.add_argument("--server-config", default="",
                        help="extra [server] TOML lines for socksify-server")
    parser.add_argument("variants", nargs="*")
    args = parser.parse_args()
    variants = args.variants or DEFAULT
    nbytes = args.mb * 1_000_000
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        loadgen = build_loadgen(Path(tmp))
        relay_bin = build_program(Path(tmp), RELAY_SOURCE)
        target = subprocess.Popen([loadgen, "serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        procs.append(target)
        tport = target.stdout.readline().split()[1]
        subjects: dict[str, list[str]] = {"direct": ["127.0.0.1", "1", "direct",
                                                     "127.0.0.1", tport]}
        servers: list[subprocess.Popen] = []
        pids: dict[str, int] = {}  # subject -> relay process (CPU time per GB)

        def start_server(name: str, env: dict[str, str] | None = None) -> None:
            port = free_port()
            config = Path(tmp) / "s.toml"
            config.write_text("[server]\nmax_clients = 20000\n" + args.server_config + "\n")
            server = subprocess.Popen(
                [sys.executable, "-m", "socksify.server", "--listen", f"127.0.0.1:{port}",
                 "--log-level", "error", "--config", str(config)],
                stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
            procs.append(server)
            servers.append(server)
            server.stderr.readline()
            subjects[name] = ["127.0.0.1", str(port), "socks5", "127.0.0.1", tport]
            pids[name] = server.pid

        try:
            for variant in variants:
                if variant.startswith("py"):
                    # "py[:NAME=VALUE,...]": socksify-server with extra environment
                    env = dict(os.environ)
                    env.update(x.split("=", 1) for x in variant[3:].split(",") if x)
                    start_server(variant, env)
                    continue
                mode, *opts = variant.split(",")
                proc = subprocess.Popen([relay_bin, tport, mode, *opts], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
                procs.append(proc)
                rport = proc.stdout.readline().split()[1]
                subjects[f"C {variant}"] = ["127.0.0.1", "1", "direct", "127.0.0.1", rport]
                pids[f"C {variant}"] = proc.pid
            if not args.no_server:
                start_server("socksify-server")
            figures: dict[str, list[float]] = {name: [] for name in subjects}
            cpu: dict[str, list[float]] = {name: [] for name in subjects}
            for _ in range(args.rounds):
                for name, endpoint in subjects.items():
                    hp = endpoint[:2] + endpoint[3:]
                    before = cpu_seconds(pids[name]) if name in pids else 0.0
                    figures[name].append(run_relay(loadgen, hp, endpoint[2], nbytes))
                    if name in pids:
                        cpu[name].append((cpu_seconds(pids[name]) - before) / (nbytes / 1e9))
            direct = statistics.median(figures["direct"])
            print(f"{'subject':40} {'MB/s':>7} {'x direct':>8} {'s/GB':>5}   rounds")
            for name, rounds in figures.items():
                med = statistics.median(rounds)
                per_gb = f"{statistics.median(cpu[name]):5.2f}" if cpu[name] else "    -"
                print(f"{name:40} {med:7.0f} {med / direct:8.2f} {per_gb}   "
                      + " ".join(f"{r:.0f}" for r in rounds), flush=True)
        finally:
            for proc in procs:
                if proc.stdin:
                    proc.stdin.close()
                if proc in servers:
                    proc.send_signal(2)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
