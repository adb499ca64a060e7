#!/usr/bin/env python3
"""Build the native shim out of tree, optionally with sanitizers, and run its tests.

    scripts/build_preload.py                      # build into build/native/, print paths
    scripts/build_preload.py --sanitize --test    # ASan+UBSan build, then pytest tests/native
    scripts/build_preload.py --sanitize undefined --test   # UBSan only

Why out of tree: the installed (editable) package in socksify/ is used by everyone's tests;
a sanitized libsocksify.so there would break any program started without the ASan runtime.
So the build goes to ``build/native[-sanitize]/lib`` with a copy of the Python package, and
the tests run with ``PYTHONPATH`` pointing there.

ASan in a preloaded library: the ASan runtime must be the FIRST library the loader maps, so
every program gets ``LD_PRELOAD=<libasan.so>:<libsocksify.so>``. This script preloads the
runtime into pytest itself (the cffi binding is sanitized too), and sets
``SOCKSIFY_ASAN_RUNTIME`` so tests/native/conftest.py puts it first for every program it
starts; ``socksify._preload.build_env`` keeps a sanitizer runtime in front of the shim.
Leak detection is off (Python and curl keep memory until exit); UBSan halts on the first
error so a test fails.

Known limitation of the ASan run (not of socksify): on the reference machine (Debian 12,
gcc 12, glibc 2.36) curl and wget hang in setlocale() as soon as the ASan runtime is
preloaded, even without libsocksify.so. Every test that runs them goes through
tests/native/conftest.py (``Shim.run`` / ``Shim.run_cli``), which probes each program once
(``--version``, 5 s bound) and skips (loudly) those that hang; the UBSan-only build
(``--sanitize undefined``) covers them. Both runs are quick enough for CI: on the reference
2-core machine ``--sanitize --test`` takes ~45 s (579 passed, 41 skipped) and
``--sanitize undefined --test`` ~30 s (620, all pass), build included. Both test the
launcher built with the sanitizers, not the source tree's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "csrc"))

import buildcfg  # noqa: E402  (csrc/buildcfg.py: the launcher's file name)


def asan_runtime(cc: str = "cc") -> str:
    """Absolute path of the compiler's ASan runtime (libasan.so.N)."""
    out = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                         check=True, timeout=30).stdout.strip()
    path = os.path.realpath(out)
    if not os.path.isfile(path):
        raise SystemExit(f"build_preload: no ASan runtime found ({out!r}); install libasan")
    return path


def build(sanitize: str) -> str:
    """Build libsocksify.so and socksify._native into build/native*/lib; return that dir."""
    suffix = "-" + sanitize.replace(",", "-") if sanitize else ""
    base = os.path.join(ROOT, "build", "native" + suffix)
    lib = os.path.join(base, "lib")
    env = dict(os.environ, SOCKSIFY_WERROR="1")
    if sanitize:
        env["SOCKSIFY_SANITIZE"] = sanitize
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--force", "-b", lib, "-t",
         os.path.join(base, "tmp")],
        cwd=ROOT, env=env, check=True, timeout=600,
    )
    # the Python package next to the fresh native files, so `import socksify` finds both;
    # not the source tree's own native files (its libraries and launcher), which would
    # replace the ones just built with a sanitizer
    shutil.copytree(os.path.join(ROOT, "socksify"), os.path.join(lib, "socksify"),
                    dirs_exist_ok=True, ignore=shutil.ignore_patterns(
                        "*.so", "__pycache__", buildcfg.LAUNCHER_FILENAME))
    return lib


def test_env(lib: str, sanitize: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [lib, os.path.join(ROOT, "tests"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if "undefined" in sanitize:
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:exitcode=87"
    if "address" in sanitize:
        runtime = asan_runtime()
        env.update(
            LD_PRELOAD=runtime,
            SOCKSIFY_ASAN_RUNTIME=runtime,
            ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=86",
        )
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sanitize", nargs="?", const="address,undefined", default="",
                        metavar="LIST", help="sanitizer build: address,undefined (default) "
                        "or one of them")
    parser.add_argument("--test", action="store_true", help="run pytest tests/native after")
    parser.add_argument("pytest_args", nargs="*",
                        help="pytest arguments (default: tests/native)")
    args = parser.parse_args(argv)
    lib = build(args.sanitize)
    print(f"libsocksify: {os.path.join(lib, 'socksify', 'libsocksify.so')}", flush=True)
    if not args.test:
        return 0
    targets = [a for a in args.pytest_args if not a.startswith("-")]
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--timeout", "300",
               *([] if targets else [os.path.join(ROOT, "tests", "native")]),
               *(os.path.abspath(a) if a in targets else a for a in args.pytest_args)]
    return subprocess.run(command, cwd=lib, env=test_env(lib, args.sanitize)).returncode


if __name__ == "__main__":
    sys.exit(main())
