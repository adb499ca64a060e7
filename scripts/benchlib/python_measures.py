"""Python shim measures: per-connect cost against other Python SOCKS clients, and what
``import socksify; socksify.patch()`` adds to interpreter start-up.

Each subject runs in its own fresh interpreter (pyconnect_worker.py), with the same
client-side proxy as the native measures.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from .context import Context, clean_env, last_line, run_keyvalues
from .processes import BENCH_NAME, Unavailable
from .results import DIRECT, Measure, Target, within_factor

WORKER = Path(__file__).resolve().parent / "pyconnect_worker.py"

HANDWRITTEN = "hand-written SOCKS5"
PATCH = "socksify.patch()"
PATCH_CONNECT = "socksify.patch() connect"
CONNECT_SUBJECTS = {
    DIRECT: "direct",
    HANDWRITTEN: "handwritten",
    "PySocks": "pysocks",
    "python-socks": "python-socks",
    "socksify.create_connection": "socksify-client",
    PATCH: "socksify-patch",
    PATCH_CONNECT: "socksify-patch-connect",
}
#: peer subject -> module whose absence makes it "missing" (pip package in the message);
#: socksify itself failing to import shows as the worker failing
MODULES = {"PySocks": ("socks", "PySocks"), "python-socks": ("python_socks", "python-socks")}

BARE = "python -c pass"
STARTUP_SUBJECTS = {
    BARE: "pass",
    PATCH: "import socksify; socksify.patch()",
    "PySocks set_default_proxy": (
        "import socket, socks; socks.set_default_proxy(socks.SOCKS5, '127.0.0.1', 1080); "
        "socket.socket = socks.socksocket"),
    "python-socks import": "from python_socks.sync import Proxy",
}
STARTUP_MODULES = {"PySocks set_default_proxy": MODULES["PySocks"],
                   "python-socks import": MODULES["python-socks"]}

CONNECT_TARGET = Target("socksify.patch() per connect <= hand-written SOCKS5 + 10 %",
                        within_factor(PATCH, HANDWRITTEN, 1.10))
PLAIN_CONNECT_TARGET = Target(
    "socksify.patch() socket.connect() <= hand-written SOCKS5 + 10 %",
    within_factor(PATCH_CONNECT, HANDWRITTEN, 1.10))


def _startup_overhead(m: Measure):
    a, b = m.value(PATCH), m.value(BARE)
    if a is None or b is None:
        return None, f"needs {PATCH} and {BARE}"
    inside = statistics.median(m.rows[PATCH].extra["in_process_ms"])
    return a - b < 10.0, (f"{a - b:+.2f} ms over `{BARE}` (needs < 10 ms); "
                          f"in-process import+patch {inside:.2f} ms")


STARTUP_TARGET = Target("import socksify; socksify.patch() adds < 10 ms to start-up",
                        _startup_overhead)


def measures() -> list[Measure]:
    connect = Measure("pyconnect", "Python shim: per connect", "us", False,
                      "median of N x (connect through the proxy, close) in one interpreter")
    connect.targets = [CONNECT_TARGET, PLAIN_CONNECT_TARGET]
    connect.extra_columns = [("cpu_us", "client CPU (us)")]
    startup = Measure("pystartup", "Python shim: interpreter start-up", "ms", False,
                      "median wall time of `python -c CODE`, start to exit")
    startup.extra_columns = [("in_process_ms", "in-process (ms)")]
    startup.targets = [STARTUP_TARGET]
    startup.baseline = BARE
    return [connect, startup]


def subjects_for(measure: Measure) -> list[str]:
    return list(CONNECT_SUBJECTS if measure.key == "pyconnect" else STARTUP_SUBJECTS)


def _require_module(subject: str, table: dict) -> None:
    if subject not in table:
        return
    module, package = table[subject]
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                           timeout=60, env=clean_env())
    if probe.returncode != 0:
        raise Unavailable("missing", f"Python module {module!r} not installed "
                          f"(pip install {package})")


def connect_round(ctx: Context, measure: Measure, subject: str) -> None:
    if not measure.row(subject).rounds:
        _require_module(subject, MODULES)
    proxy = ctx.client_proxy
    name = BENCH_NAME if proxy.resolves_names else ctx.target.host
    host = ctx.target.host if subject == DIRECT else name
    argv = [sys.executable, str(WORKER), CONNECT_SUBJECTS[subject], proxy.host,
            str(proxy.port), host, str(ctx.target.port), str(ctx.sizes.python_connects)]
    out = run_keyvalues(argv, timeout=120)
    measure.row(subject).rounds.append(out["median_us"])
    measure.row(subject).extra.setdefault("mean_us", []).append(out["mean_us"])
    measure.row(subject).extra.setdefault("cpu_us", []).append(out["cpu_us"])


def startup_round(ctx: Context, measure: Measure, subject: str) -> None:
    if not measure.row(subject).rounds:
        _require_module(subject, STARTUP_MODULES)
    # the code also times itself in-process: the same cost without interpreter start-up
    # noise (reported beside the whole-process figure)
    code = (f"import time as _t; _s = _t.perf_counter(); {STARTUP_SUBJECTS[subject]}; "
            "print(_t.perf_counter() - _s)")
    argv = [sys.executable, "-c", code]
    env = clean_env(SOCKSIFY_PROXY=ctx.client_proxy.url("socks5h"))
    times, inside = [], []
    for i in range(ctx.sizes.startup_runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise Unavailable("failed", last_line(proc.stderr.decode(errors="replace")))
        if i:  # the first run warms the page cache
            times.append(elapsed * 1e3)
            inside.append(float(proc.stdout.split()[-1]) * 1e3)
    row = measure.row(subject)
    row.rounds.append(statistics.median(times))
    row.extra.setdefault("in_process_ms", []).append(statistics.median(inside))


def run_round(ctx: Context, measure: Measure, subject: str) -> None:
    if measure.key == "pyconnect":
        connect_round(ctx, measure, subject)
    else:
        startup_round(ctx, measure, subject)
