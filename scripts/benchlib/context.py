"""What every measure needs: sizes for this run, the compiled load generator, the target,
and helpers to run a subprocess with a bound and read its "key value ..." line."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .processes import TargetServer, Unavailable, pinned_to


@dataclass(frozen=True)
class Sizes:
    """How much one round does. FULL is the issue's run; SMOKE only proves the plumbing."""

    relay_bytes: int  # per measurement, split over the streams
    rate_millis: int
    idle_connections: int
    #: curl processes per subject per round (interleaved), besides one warm-up each: one
    #: process takes 5-7 ms with a bimodal spread of ~1.5 ms, so a round's median needs
    #: ~100 of them to hold within ~0.1 ms (the target's margin is 0.5 ms)
    curl_runs: int
    native_connects: int
    python_connects: int
    startup_runs: int


FULL = Sizes(relay_bytes=2_000_000_000, rate_millis=2000, idle_connections=2000,
             curl_runs=100, native_connects=1000, python_connects=2000, startup_runs=15)
SMOKE = Sizes(relay_bytes=8_000_000, rate_millis=150, idle_connections=200,
              curl_runs=2, native_connects=50, python_connects=40, startup_runs=2)


@dataclass
class Context:
    workdir: Path
    loadgen: str
    target: TargetServer
    sizes: Sizes
    smoke: bool
    log: callable
    #: servers started once for the run, by subject name (None: not started yet)
    servers: dict = field(default_factory=dict)
    #: the proxy all client-side (native and Python shim) subjects go through
    client_proxy: object = None


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without proxy settings, so no subject picks up a proxy
    (or a preload) the benchmark did not give it."""
    env = {
        k: v for k, v in os.environ.items()
        if not (k.startswith(("SOCKSIFY_", "TORSOCKS_", "PROXYCHAINS_")) or k.lower().endswith(
            "_proxy") or k in ("LD_PRELOAD",))
    }
    env.update(extra)
    return env


def last_line(text: str) -> str:
    """The last non-empty line of a program's output (a traceback's exception line)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""


def run_keyvalues(argv: list[str], timeout: float, env: dict | None = None,
                  cpus: list[int] | None = None) -> dict[str, float]:
    """Run ``argv`` (on ``cpus`` only, if given); parse its last stdout line
    "k1 v1 k2 v2 ..." into floats."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env if env is not None else clean_env(),
                              stdin=subprocess.DEVNULL, preexec_fn=pinned_to(cpus))
    except subprocess.TimeoutExpired:
        raise Unavailable("failed", f"{os.path.basename(argv[0])} timed out after "
                          f"{timeout:.0f} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise Unavailable("failed", f"exit {proc.returncode}: "
                          f"{last_line(proc.stderr) or last_line(proc.stdout)}")
    fields = lines[-1].split()
    return {fields[i]: float(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
