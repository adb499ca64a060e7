"""Compiling the small C programs of tests/faults/progs and running them under the shim."""

from __future__ import annotations

import os
import pathlib
import subprocess

from support.peers import require_peer

PROGS = pathlib.Path(__file__).parent / "progs"
TIMEOUT = 30

#: variables of the caller's shell that must not reach a program under test
_SCRUB = ("SOCKSIFY_", "ALL_PROXY", "all_proxy", "LD_PRELOAD", "LD_BIND_NOW")


def compile_prog(name: str, out_dir: pathlib.Path) -> str:
    """Build progs/NAME.c into out_dir (with -pthread); return the executable's path."""
    cc = require_peer("cc")
    exe = out_dir / name
    subprocess.run(
        [cc, "-O1", "-Wall", "-Werror", "-pthread", "-o", str(exe), str(PROGS / f"{name}.c")],
        check=True, capture_output=True, timeout=60,
    )
    return str(exe)


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
