"""What the benchmark ran on, and the process limits it needs."""

from __future__ import annotations

import os
import platform
import resource
import sys


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


def machine_info() -> dict:
    """CPU model, cores, kernel and Python: printed in the table header and on the chart."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": round(memory_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_path": sys.executable,
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
