"""Running the small C programs of tests/faults/progs (built by conftest.py) under the shim."""

from __future__ import annotations

import os
import pathlib
import subprocess

PROGS = pathlib.Path(__file__).parent / "progs"
TIMEOUT = 30

#: variables of the caller's shell that must not reach a program under test
_SCRUB = ("SOCKSIFY_", "ALL_PROXY", "all_proxy", "LD_PRELOAD", "LD_BIND_NOW")


def shim_env(library: str, proxy: str | None, **extra: str) -> dict[str, str]:
    """A clean environment with the preload library and (optionally) SOCKSIFY_PROXY."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env["LD_PRELOAD"] = library
    if proxy is not None:
        env["SOCKSIFY_PROXY"] = proxy
    env.update(extra)
    return env


def library_path() -> str:
    from socksify import _preload

    return _preload.library_path()


def run_under_shim(argv, proxy, *, timeout: float = TIMEOUT, **extra):
    return subprocess.run(
        list(argv), env=shim_env(library_path(), proxy, **extra), capture_output=True,
        text=True, timeout=timeout,
    )
