"""scripts/bench: the command line, the rounds, and the output (table, JSON, PNG).

Rounds interleave the subjects (round 1: every subject once, round 2: again, ...), so a
burst of load from elsewhere on the machine spreads over all subjects instead of landing on
one; each figure in the table is the median over the rounds. A measure whose single run is
too short to judge its target (one curl process) runs its whole round in one call instead
(``interleaves(measure)`` / ``run_interleaved_round``), many runs per subject interleaved
within the round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import chart, machine, native_measures, python_measures, server_measures
from .context import FULL, SMOKE, Context
from .processes import (
    BENCH_NAME,
    TargetServer,
    Unavailable,
    build_loadgen,
    start_microsocks,
    start_socksify_server,
)
from .report import full_report

#: measure key -> module that runs it (order = table order)
MODULES = [server_measures, native_measures, python_measures]
GROUPS = {
    "relay": ["relay1", "relay4"], "rate": ["rate1", "rate50", "rate50core"],
    "native": ["curl", "connects"], "python": ["pyconnect", "pystartup"],
}


def all_measures():
    out = []
    for module in MODULES:
        for m in module.measures():
            out.append((module, m))
    return out


def parse_args(argv):
    keys = [m.key for _, m in all_measures()]
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="socksify benchmarks against direct and peers, on loopback. "
        f"Measures: {', '.join(keys)} (groups: "
        + ", ".join(f"{g}={'+'.join(k)}" for g, k in GROUPS.items()) + ").",
    )
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and 1 round: proves the harness works (seconds); "
                        "the figures mean nothing")
    parser.add_argument("--only", metavar="MEASURE,...",
                        help="comma-separated measures or groups to run (default: all)")
    parser.add_argument("--rounds", type=int, help="rounds per measure (default 5; smoke 1)")
    parser.add_argument("--out", metavar="PNG",
                        help="write the chart here (default: docs/bench.png for a full run "
                        "of every measure; no chart for --smoke or --only unless given)")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON here")
    parser.add_argument("--no-install", action="store_true",
                        help="do not pip-install matplotlib when it is missing (skip the chart)")
    args = parser.parse_args(argv)
    selected = keys
    if args.only:
        selected = []
        for item in filter(None, (x.strip() for x in args.only.split(","))):
            expanded = GROUPS.get(item, [item])
            for key in expanded:
                if key not in keys:
                    parser.error(f"--only: unknown measure {item!r}; choose from "
                                 f"{', '.join(keys + list(GROUPS))}")
                if key not in selected:
                    selected.append(key)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    args.selected = selected
    args.rounds = args.rounds or (1 if args.smoke else 5)
    # the committed chart shows a full run of every measure; partial runs draw only on request
    if args.out is None and not args.smoke and not args.only:
        args.out = str(Path(__file__).resolve().parents[2] / "docs" / "bench.png")
    return args


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def start_client_proxy(workdir: Path):
    """The proxy every client-side subject goes through: microsocks (a small C server that
    adds little and varies little), able to resolve the benchmark's .onion name; if
    microsocks is missing, socksify-server with a [hosts] entry."""
    hosts = {BENCH_NAME: "127.0.0.1"}
    try:
        return start_microsocks(workdir, hosts)
    except Unavailable as exc:
        log(f"client-side proxy: microsocks unavailable ({exc}); using socksify-server")
        return start_socksify_server(workdir, hosts)


def run_guarded(m, subjects: list[str], blocked: Unavailable | None, step, *args) -> None:
    """Run ``step(*args)``, one round of ``subjects`` in measure ``m``. A subject that is
    unavailable, or that the step returns as unavailable (``{subject: Unavailable}``), is
    marked and left out of later rounds; a harness bug fails the subjects and the rest of
    the run goes on."""
    try:
        if blocked:
            raise blocked
        failures = step(*args) or {}
    except Unavailable as exc:
        failures = dict.fromkeys(subjects, exc)
    except Exception as exc:  # a harness bug: report it, measure the rest
        traceback.print_exc()
        failures = dict.fromkeys(
            subjects, Unavailable("failed", f"harness error {type(exc).__name__}: {exc}"))
    for subject, exc in failures.items():
        m.row(subject).fail(exc.status, str(exc))
        log(f"  {subject}: {exc.status.upper()}: {exc}")


def run(args) -> int:
    started = time.time()
    nofile = machine.raise_nofile_limit()
    info = machine.machine_info()
    load_before = machine.load_average()
    sizes = SMOKE if args.smoke else FULL
    selected = [(mod, m) for mod, m in all_measures() if m.key in args.selected]
    measures = [m for _, m in selected]

    with tempfile.TemporaryDirectory(prefix="socksify-bench-") as tmp:
        workdir = Path(tmp)
        try:
            loadgen = build_loadgen(workdir)
        except Unavailable as exc:
            log(f"cannot build the load generator: {exc}")
            return 1
        target = TargetServer(loadgen)
        ctx = Context(workdir=workdir, loadgen=loadgen, target=target, sizes=sizes,
                      smoke=args.smoke, log=log)
        needs_client = any(mod is not server_measures for mod, _ in selected)
        no_client_proxy = None
        try:
            if needs_client:
                try:
                    ctx.client_proxy = start_client_proxy(workdir)
                    log(f"client-side proxy: {ctx.client_proxy.name} on port "
                        f"{ctx.client_proxy.port} (resolves {BENCH_NAME}: "
                        f"{ctx.client_proxy.resolves_names})")
                except Unavailable as exc:
                    no_client_proxy = Unavailable("failed", f"no client-side proxy: {exc}")
            for round_no in range(1, args.rounds + 1):
                for module, m in selected:
                    where = f"round {round_no}/{args.rounds} {m.key}"
                    blocked = no_client_proxy if module is not server_measures else None
                    subjects = [s for s in module.subjects_for(m) if m.row(s).status == "ok"]
                    if getattr(module, "interleaves", lambda _m: False)(m):
                        log(f"{where}: {', '.join(subjects)} (interleaved)")
                        run_guarded(m, subjects, blocked, module.run_interleaved_round,
                                    ctx, m, subjects)
                        continue
                    for subject in subjects:
                        log(f"{where}: {subject}")
                        run_guarded(m, [subject], blocked, module.run_round, ctx, m, subject)
        finally:
            for server in ctx.servers.values():
                if not isinstance(server, Unavailable):
                    server.stop()
            if ctx.client_proxy is not None:
                ctx.client_proxy.stop()
            target.close()

    load_after = machine.load_average()
    header = [
        f"socksify benchmarks ({'SMOKE: tiny sizes, figures meaningless' if args.smoke else 'full'}"
        f" run, {args.rounds} round(s), medians)",
        f"machine: {machine.describe(info)}",
        f"socksify source: {info['revision']}",
        f"load average (1/5/15 min): before {_load(load_before)}, after {_load(load_after)}",
        f"RLIMIT_NOFILE {nofile[0]}; client-side proxy for native/Python measures: "
        f"{ctx.client_proxy.name if ctx.client_proxy else '-'}; "
        f"wall time {time.time() - started:.0f} s",
        f"command: scripts/bench {' '.join(sys.argv[1:])}".rstrip(),
    ]
    sys.stdout.write(full_report(header, measures))
    sys.stdout.flush()

    if args.json:
        payload = {"machine": info, "load_before": load_before, "load_after": load_after,
                   "smoke": args.smoke, "rounds": args.rounds,
                   "sizes": sizes.__dict__, "measures": [m.to_json() for m in measures]}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    if args.out and chart.ensure_matplotlib(not args.no_install, log):
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        chart.write_chart(
            args.out, measures,
            f"socksify benchmarks on loopback: medians of {args.rounds} round(s), "
            "ratios to direct",
            f"{machine.describe(info)}; load avg {_load(load_before)} -> {_load(load_after)}",
        )
        log(f"chart written to {args.out}")
    return 0


def _load(values) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run(args)
