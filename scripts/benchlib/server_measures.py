"""Server-side measures: relay throughput, connection rate and latency, memory per idle
connection; subjects direct, socksify-server, microsocks, danted.

All load comes from the compiled ``loadgen`` (see loadgen.c), through each server's SOCKS5
CONNECT to the ``loadgen serve`` target; "direct" is the same load straight to the target.

``rate50`` lets the servers, the load generator and the target share every CPU, as a busy
machine would. ``rate50core`` gives each server CPUs of its own (the first half of them;
one on a 2-core machine) and the load generator and the target the rest, as on a proxy host
whose clients are elsewhere: the figure is then the server's own cost, not how the
scheduler interleaves four programs on two CPUs.

Each rate row also shows the "load CPU": the CPU time per connection of the load generator
and the target together. A server's design changes that too (how many packets and wake-ups
its replies and closes cost the other side), and on CPUs shared with the load the rate
follows the sum of the proxy's and the load's CPU per connection, not the proxy's alone.
"""

from __future__ import annotations

import os
import subprocess
import time

from .context import Context, clean_env, last_line, run_keyvalues
from .processes import SERVER_STARTERS, Unavailable, stop, tree_cpu_seconds, tree_memory_kib
from .results import (
    DIRECT,
    Measure,
    Target,
    ahead_of_all,
    at_least,
    at_most,
    p99_below,
)

SERVERS = ["socksify-server", "microsocks", "danted"]
SUBJECTS = [DIRECT, *SERVERS]
OURS = "socksify-server"


def measures() -> list[Measure]:
    relay1 = Measure("relay1", "Relay throughput, 1 stream", "MB/s", True,
                     "one stream of ~2 GB through the proxy into a sink")
    relay1.targets = [RELAY_DIRECT, RELAY_DANTE]
    relay4 = Measure("relay4", "Relay throughput, 4 streams", "MB/s", True,
                     "4 parallel streams, ~2 GB in all")
    relay4.targets = [RELAY4_AHEAD]
    for m in (relay1, relay4):
        m.extra_columns = [("cpu_s_per_gb", "proxy CPU (s/GB)")]
    rate1 = Measure("rate1", "Connection setup, concurrency 1", "conn/s", True,
                    "connect + SOCKS5 greeting + CONNECT + reply (latency ends here), 1 byte "
                    "through, the target closes; one at a time", has_latency=True)
    rate1.targets = [P99_DANTE_1]
    rate50 = Measure("rate50", "Connection setup, concurrency 50", "conn/s", True,
                     "the same with 50 connections in flight", has_latency=True)
    rate50.targets = [RATE_MICROSOCKS, P99_DANTE_50]
    rate50core = Measure("rate50core", "Connection setup, concurrency 50, server on its own CPUs",
                         "conn/s", True, "the same, with each server on CPUs of its own "
                         "(socksify-server: workers = auto, one per CPU it may use) and the "
                         "load generator and the target on the others", has_latency=True)
    rate50core.targets = [RATE_MICROSOCKS_CORE, P99_DANTE_CORE]
    for m in (rate1, rate50, rate50core):
        m.extra_columns = [("cpu_us_per_conn", "proxy CPU (us/conn)"),
                           ("load_cpu_us_per_conn", "load CPU (us/conn)")]
    memory = Measure("memory", "Memory per idle proxied connection", "KiB", False,
                     "PSS of the server's process tree before/after N idle CONNECTed "
                     "connections, divided by N")
    memory.targets = [MEMORY]
    memory.extra_columns = [("rss_kib_per_conn", "RSS (KiB)"), ("uss_kib_per_conn", "USS (KiB)")]
    return [relay1, relay4, rate1, rate50, rate50core, memory]


RELAY_DIRECT = Target("socksify-server 1 stream >= 0.55x direct", at_least(OURS, 0.55, DIRECT))
RELAY_DANTE = Target("socksify-server 1 stream >= 1.5x Dante", at_least(OURS, 1.5, "danted"))
RELAY4_AHEAD = Target("socksify-server 4 streams ahead of every peer",
                      ahead_of_all(OURS, ["microsocks", "danted"]))
RATE_MICROSOCKS = Target("socksify-server conn/s ahead of microsocks at concurrency 50",
                         ahead_of_all(OURS, ["microsocks"]))
P99_DANTE_1 = Target("socksify-server p99 handshake latency below Dante's (concurrency 1)",
                     p99_below(OURS, "danted"))
P99_DANTE_50 = Target("socksify-server p99 handshake latency below Dante's (concurrency 50)",
                      p99_below(OURS, "danted"))
RATE_MICROSOCKS_CORE = Target(
    "socksify-server conn/s ahead of microsocks at concurrency 50, on its own CPUs",
    ahead_of_all(OURS, ["microsocks"]))
P99_DANTE_CORE = Target(
    "socksify-server p99 handshake latency below Dante's (concurrency 50, on its own CPUs)",
    p99_below(OURS, "danted"))
MEMORY = Target("socksify-server <= 4 KiB per idle proxied connection",
                at_most(OURS, 4.0, "KiB"))


def cpu_split() -> tuple[list[int], list[int]]:
    """(server CPUs, client CPUs) for ``rate50core``: the first half of the CPUs this
    process may use, and the rest."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        raise Unavailable("missing", f"needs 2 or more CPUs, this process may use "
                          f"{len(usable)} (one for the server, one for its clients)")
    half = len(usable) // 2
    return usable[:half], usable[half:]


def server_for(ctx: Context, subject: str, cpus: list[int] | None = None):
    """The long-running server for ``subject``, on ``cpus`` only if given (started on first
    use; a failure to start is remembered, so it is reported once per measure and not
    retried every round)."""
    key = (subject, tuple(cpus)) if cpus else subject
    if key not in ctx.servers:
        try:
            ctx.servers[key] = SERVER_STARTERS[subject](ctx.workdir, cpus=cpus)
        except Unavailable as exc:
            ctx.servers[key] = exc
    server = ctx.servers[key]
    if isinstance(server, Unavailable):
        raise server
    if server.proc.poll() is not None:
        ctx.servers[key] = Unavailable("failed", f"{subject} died (status "
                                       f"{server.proc.returncode})")
        raise ctx.servers[key]
    return server


def _endpoint(ctx: Context, subject: str, cpus: list[int] | None = None) -> list[str]:
    """loadgen's "PROXY_HOST PROXY_PORT direct|socks5 TARGET_HOST TARGET_PORT" arguments."""
    target = [ctx.target.host, str(ctx.target.port)]
    if subject == DIRECT:
        return ["127.0.0.1", "1", "direct", *target]
    server = server_for(ctx, subject, cpus)
    return [server.host, str(server.port), "socks5", *target]


def _server_pid(ctx: Context, subject: str, cpus: list[int] | None = None) -> int | None:
    return None if subject == DIRECT else server_for(ctx, subject, cpus).proc.pid


def relay_round(ctx: Context, measure: Measure, subject: str, streams: int) -> None:
    per_stream = max(1, ctx.sizes.relay_bytes // streams)
    argv = [ctx.loadgen, "relay", *_endpoint(ctx, subject), str(streams), str(per_stream)]
    pid = _server_pid(ctx, subject)
    cpu_before = tree_cpu_seconds(pid) if pid else 0.0
    # bounded: even 20 MB/s finishes the full size in time
    out = run_keyvalues(argv, timeout=30 + ctx.sizes.relay_bytes / 20e6)
    row = measure.row(subject)
    row.rounds.append(out["bytes"] / out["seconds"] / 1e6)
    if pid:
        cpu = tree_cpu_seconds(pid) - cpu_before
        row.extra.setdefault("cpu_s_per_gb", []).append(cpu / (out["bytes"] / 1e9))


def rate_round(ctx: Context, measure: Measure, subject: str, concurrency: int,
               own_cpus: bool = False) -> None:
    """One rate run; with ``own_cpus`` the server runs on :func:`cpu_split`'s server CPUs
    and the load generator and the target on the client CPUs."""
    server_cpus, client_cpus = cpu_split() if own_cpus else (None, None)
    argv = [ctx.loadgen, "rate", *_endpoint(ctx, subject, server_cpus), str(concurrency),
            str(ctx.sizes.rate_millis)]
    pid = _server_pid(ctx, subject, server_cpus)
    cpu_before = tree_cpu_seconds(pid) if pid else 0.0
    target = ctx.target.proc.pid  # one thread, shared with the other measures
    target_cpu_before = tree_cpu_seconds(target)
    target_cpus = os.sched_getaffinity(target) if client_cpus else None
    if client_cpus:
        os.sched_setaffinity(target, client_cpus)
    try:
        out = run_keyvalues(argv, timeout=60 + ctx.sizes.rate_millis / 1000,
                            cpus=client_cpus)
    finally:
        if target_cpus:
            os.sched_setaffinity(target, target_cpus)
    row = measure.row(subject)
    row.rounds.append(out["count"] / out["seconds"])
    if pid:
        cpu = tree_cpu_seconds(pid) - cpu_before
        row.extra.setdefault("cpu_us_per_conn", []).append(cpu / out["count"] * 1e6)
    load = out["cpu_s"] + tree_cpu_seconds(target) - target_cpu_before
    row.extra.setdefault("load_cpu_us_per_conn", []).append(load / out["count"] * 1e6)
    row.p50.append(out["p50_us"])
    row.p99.append(out["p99_us"])
    row.extra["errors"] = row.extra.get("errors", 0) + int(out["errors"])


def memory_round(ctx: Context, measure: Measure, subject: str) -> None:
    """A fresh server each round (a server that relayed gigabytes keeps freed heap it
    would reuse, which would hide the cost of new connections)."""
    server = SERVER_STARTERS[subject](ctx.workdir)
    holder = None
    try:
        endpoint = [server.host, str(server.port), "socks5", ctx.target.host,
                    str(ctx.target.port)]
        # warm up: lazily created workers, pools and first-use allocations
        run_keyvalues([ctx.loadgen, "rate", *endpoint, "5", "100"], timeout=60)
        time.sleep(0.3)
        before = tree_memory_kib(server.proc.pid)
        n = ctx.sizes.idle_connections
        holder = subprocess.Popen([ctx.loadgen, "idle", *endpoint, str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=clean_env())
        line = _readline(holder, timeout=120)
        if line.split()[:1] != ["ready"]:
            try:
                holder.wait(5)
            except subprocess.TimeoutExpired:
                stop(holder)
            raise Unavailable("failed", "idle connections not established: "
                              f"{last_line(holder.stderr.read()) or 'no reply in 120 s'}")
        time.sleep(0.5)  # let the server finish its per-connection set-up
        after = tree_memory_kib(server.proc.pid)
        row = measure.row(subject)
        row.rounds.append((after["pss"] - before["pss"]) / n)
        row.extra.setdefault("rss_kib_per_conn", []).append((after["rss"] - before["rss"]) / n)
        row.extra.setdefault("uss_kib_per_conn", []).append((after["uss"] - before["uss"]) / n)
        row.extra["processes"] = after["processes"]
        row.extra["connections"] = n
    finally:
        if holder is not None:
            try:
                holder.stdin.close()
                holder.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                stop(holder)
        server.stop()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """One stdout line from ``proc`` within ``timeout`` seconds ("" on EOF or timeout)."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline()


def run_round(ctx: Context, measure: Measure, subject: str) -> None:
    if measure.key == "relay1":
        relay_round(ctx, measure, subject, 1)
    elif measure.key == "relay4":
        relay_round(ctx, measure, subject, 4)
    elif measure.key == "rate1":
        rate_round(ctx, measure, subject, 1)
    elif measure.key == "rate50":
        rate_round(ctx, measure, subject, 50)
    elif measure.key == "rate50core":
        rate_round(ctx, measure, subject, 50, own_cpus=True)
    elif measure.key == "memory":
        memory_round(ctx, measure, subject)
    else:
        raise KeyError(measure.key)


def subjects_for(measure: Measure) -> list[str]:
    # memory: "direct" has no proxy process to weigh
    return SERVERS if measure.key == "memory" else SUBJECTS
