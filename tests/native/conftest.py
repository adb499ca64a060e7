"""Fixtures for the native shim's tests.

- ``native``: the cffi binding ``socksify._native`` (the shim's pure C parts), as
  ``(ffi, lib)``. Built by ``pip install`` (setup.py); a missing binding is a loud failure
  under CI and a loud skip elsewhere, like a missing peer.
- ``libsocksify``: absolute path of the preload library.
- ``shim``: runs a program under the shim (``LD_PRELOAD`` + ``SOCKSIFY_*``), bounded, with a
  clean environment (no proxy variables from the caller's shell).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import pytest

TIMEOUT = 60

#: variables of the caller's shell that must not reach a program under test
_SCRUB = ("SOCKSIFY_", "ALL_PROXY", "all_proxy", "LD_PRELOAD", "LD_BIND_NOW")


def _fail_or_skip(message: str):
    if os.environ.get("SOCKSIFY_REQUIRE_PEERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def native():
    try:
        from socksify import _native
    except ImportError as exc:
        _fail_or_skip(f"MISSING: socksify._native is not built ({exc}); run pip install -e .")
    return _native.ffi, _native.lib


@pytest.fixture(scope="session")
def libsocksify():
    from socksify import _preload

    try:
        return _preload.library_path()
    except FileNotFoundError as exc:
        _fail_or_skip(f"MISSING: {exc}")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without proxy or preload settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    # a sanitizer build needs its runtime first in LD_PRELOAD (README "Native shim")
    if os.environ.get("SOCKSIFY_ASAN_RUNTIME"):
        env["LD_PRELOAD"] = os.environ["SOCKSIFY_ASAN_RUNTIME"]
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    if "LD_PRELOAD" in extra and env.get("LD_PRELOAD"):
        extra = dict(extra, LD_PRELOAD=f"{env['LD_PRELOAD']}:{extra['LD_PRELOAD']}")
    env.update(extra)
    return env


def without_sanitizer(preload: str) -> list[str]:
    """The LD_PRELOAD entries minus a sanitizer runtime the test run put first."""
    runtime = os.environ.get("SOCKSIFY_ASAN_RUNTIME")
    return [p for p in preload.split(":") if p and p != runtime]


@functools.cache
def _hangs_under_asan(program: str) -> bool:
    """True when ``program --version`` does not finish with only the ASan runtime preloaded
    (curl and wget on Debian 12: a hang in setlocale(), without socksify involved)."""
    try:
        subprocess.run([program, "--version"], env=clean_env(), capture_output=True,
                       timeout=5)
    except subprocess.TimeoutExpired:
        return True
    return False


def _skip_programs_broken_by_asan(argv) -> None:
    if not os.environ.get("SOCKSIFY_ASAN_RUNTIME"):
        return
    words = {w for arg in argv for w in str(arg).split()}
    for word in words:
        if os.path.basename(word) in ("curl", "wget"):
            program = shutil.which(word) or word
            if _hangs_under_asan(program):
                pytest.skip(f"SANITIZER RUN: {program} hangs with the ASan runtime preloaded "
                            "even without socksify; covered by the UBSan-only run")


class Shim:
    """Run programs under the preload library."""

    def __init__(self, library: str):
        self.library = library

    def env(self, proxy: str | None, **extra: str) -> dict[str, str]:
        env = clean_env(**extra)
        preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p]
        env["LD_PRELOAD"] = ":".join([*preload, self.library])
        if proxy is not None:
            env["SOCKSIFY_PROXY"] = proxy
        return env

    def run(self, argv, proxy: str | None, *, timeout: float = TIMEOUT, input=None,
            **extra: str) -> subprocess.CompletedProcess:
        """argv with LD_PRELOAD set directly; bytes output, bounded."""
        _skip_programs_broken_by_asan(argv)
        return subprocess.run(
            list(argv), env=self.env(proxy, **extra), capture_output=True, timeout=timeout,
            input=input,
        )

    def run_cli(self, args, *, timeout: float = TIMEOUT, launcher: str | None = None,
                **extra: str):
        """``socksify-run ARGS``, bounded: the Python implementation (``python -m
        socksify.run``), or the native launcher at ``launcher``."""
        _skip_programs_broken_by_asan(args)
        command = [launcher] if launcher else [sys.executable, "-m", "socksify.run"]
        return subprocess.run(
            [*command, *args], env=clean_env(**extra), capture_output=True, timeout=timeout,
        )

    def python(self, code: str, proxy: str | None, **extra: str) -> subprocess.CompletedProcess:
        """``python3 -c code`` under the shim (the system python, a dynamic program)."""
        return self.run([sys.executable, "-c", code], proxy, **extra)


@pytest.fixture
def shim(libsocksify):
    return Shim(libsocksify)


@pytest.fixture(scope="session")
def launcher(libsocksify):
    """The native socksify-run launcher next to the library (csrc/launcher/)."""
    from socksify import _preload

    path = _preload.launcher_path()
    if not os.access(path, os.X_OK):
        _fail_or_skip(f"MISSING: the native launcher {path} is not built; run pip install -e .")
    return path


@pytest.fixture(params=["python", "native"])
def socksify_run(request, shim):
    """``socksify_run(args, **env)``: run socksify-run through each implementation (the
    Python socksify/run.py and the native launcher), which must behave the same."""
    if request.param == "python":
        return shim.run_cli
    return functools.partial(shim.run_cli, launcher=request.getfixturevalue("launcher"))
