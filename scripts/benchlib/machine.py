"""What the benchmark ran on, and the process limits it needs."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    return float("nan")


def source_revision() -> str:
    """The commit measured, and whether the package's sources differ from it (the bench
    measures the installed work tree, uncommitted changes included)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
             "socksify", "csrc"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head} + uncommitted changes in socksify/ or csrc/" if dirty else head


def machine_info() -> dict:
    """CPU model, cores, kernel and Python: printed in the table header and on the chart."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": round(memory_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_path": sys.executable,
        "revision": source_revision(),
    }


def describe(info: dict) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']:g} GiB, "
            f"Linux {info['kernel']}, "
            f"Python {info['python']}")


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; children (servers, load generators)
    inherit it. 2,000 idle proxied connections need ~4,000 descriptors in the proxy."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft, hard
    return resource.getrlimit(resource.RLIMIT_NOFILE)
