"""Build decisions for the native shim, as small pure functions (tested in
tests/native/test_build.py, after argon2-cffi-bindings' ``_get_target_platform``).

Two products come from ``csrc/``:

- ``socksify/libsocksify.so``: the LD_PRELOAD library. A plain shared object built from
  every ``csrc/*.c``, no Python symbols at all, so it loads into any dynamically linked
  program (also with ``LD_BIND_NOW=1``). Only the hooked libc names are exported.
- ``socksify._native``: a cffi API-mode extension module over the library's PURE parts
  (codec, config parser, DNS map, errno map) for the test suite, which runs the shared
  vectors in ``tests/vectors/`` through it.

Environment switches (read at build time):

- ``SOCKSIFY_SANITIZE=1``: build both with AddressSanitizer and UndefinedBehaviorSanitizer
  (run the tests with the ASan runtime preloaded; see README.rst "Native shim").
  ``SOCKSIFY_SANITIZE=undefined`` (or ``address``) picks one; a comma list picks several.
- ``SOCKSIFY_WERROR=1``: warnings are errors (the test build and CI).
- ``SOCKSIFY_LAUNCHER_LIBC=glibc``: link the socksify-run launcher against glibc even when
  ``musl-gcc`` (Debian/Ubuntu package musl-tools) is installed. By default the launcher is
  built with musl when it can be (see launcher_cc()) and with the system compiler otherwise.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from collections.abc import Callable, Mapping

CSRC = os.path.dirname(os.path.abspath(__file__))
PRELOAD_EXT_NAME = "socksify.libsocksify"
PRELOAD_FILENAME = "libsocksify.so"
#: the pure sources the cffi binding compiles (no hooks, no globals, no dlsym)
BINDING_SOURCES = ("codec.c", "config.c", "dnsmap.c", "errmap.c")
#: the native socksify-run launcher (csrc/launcher/socksify-run.c): its own main() plus the
#: library's pure config parser; never part of libsocksify.so (preload_sources() lists only
#: the .c files directly in csrc/)
LAUNCHER_SOURCES = ("launcher/socksify-run.c", "config.c")
LAUNCHER_FILENAME = "socksify-run"
#: where the build leaves a copy of the launcher for build_scripts (installed into bin/)
LAUNCHER_SCRIPT_DIR = os.path.join("build", "launcher")
#: the marker of the library hint in the launcher binary (HINT_MARKER, HINT_SIZE in
#: csrc/launcher/socksify-run.c): the path follows it, NUL-terminated
HINT_MARKER = b"@(#)socksify-library-hint:"
HINT_SIZE = 4096
#: build-only Python files that must travel in the sdist with the C sources
BUILD_SCRIPTS = ("buildcfg.py", "build_ffi.py")

_WARNINGS = ["-Wall", "-Wextra"]


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "yes", "true", "on")


_SANITIZERS = ("address", "undefined")


def sanitizers(env: Mapping[str, str]) -> list[str]:
    """The sanitizers SOCKSIFY_SANITIZE asks for: "1"/"yes" means address and undefined.

    Raises:
        ValueError: for a name other than address and undefined.
    """
    value = env.get("SOCKSIFY_SANITIZE", "").strip().lower()
    if value in ("", "0", "no", "false", "off"):
        return []
    if value in ("1", "yes", "true", "on"):
        return list(_SANITIZERS)
    names = [name.strip() for name in value.split(",") if name.strip()]
    bad = [name for name in names if name not in _SANITIZERS]
    if bad:
        raise ValueError(f"SOCKSIFY_SANITIZE: unknown sanitizer {bad[0]!r} "
                         f"(use 1, address, undefined or a comma list)")
    return names


def sanitize_enabled(env: Mapping[str, str]) -> bool:
    """True when SOCKSIFY_SANITIZE asks for a sanitizer build."""
    return bool(sanitizers(env))


def compile_args(env: Mapping[str, str]) -> list[str]:
    """C compiler flags shared by the preload library and the cffi binding."""
    args = ["-std=gnu11", "-fvisibility=hidden", "-fno-strict-aliasing", *_WARNINGS]
    if _flag(env, "SOCKSIFY_WERROR"):
        args.append("-Werror")
    if sanitize_enabled(env):
        args += [f"-fsanitize={','.join(sanitizers(env))}", "-fno-omit-frame-pointer", "-O1",
                 "-g"]
    else:
        args.append("-O2")
    return args


def link_args(env: Mapping[str, str]) -> list[str]:
    """Linker flags. The preload library must resolve every symbol at load time from libc
    alone (``-z defs`` would reject a stray Python symbol, but Python's own link line
    for extensions forbids it, so the test suite checks ``nm -D`` instead)."""
    args = ["-Wl,--as-needed"]
    if sanitize_enabled(env):
        args.append(f"-fsanitize={','.join(sanitizers(env))}")
    return args


def launcher_link_args(env: Mapping[str, str]) -> list[str]:
    """Linker flags of the socksify-run launcher: static and stripped (no dynamic loader
    work before the program's own exec: ~0.2 ms less per run, scripts/bench_native_shim.py),
    except in a sanitizer build (the sanitizer runtimes are shared libraries). setup.py
    falls back to a dynamic link when the C library has no static archive."""
    if sanitize_enabled(env):
        return link_args(env)
    return [*link_args(env), "-static", "-s"]


#: the compiler driver of a static musl build (Debian/Ubuntu: apt-get install musl-tools)
MUSL_CC = "musl-gcc"


def launcher_cc(env: Mapping[str, str],
                which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The compiler driver for a static musl launcher, or None for the system compiler.

    Why musl: the launcher's own execve is part of every ``socksify-run`` (the performance
    target counts it). A static glibc binary spends ~0.25 ms in start-up before main()
    (IRELATIVE ifunc relocations, TLS, tunables; ~26 page faults for ``int main(){}``); a
    static musl one ~0.03 ms (5 faults): the launcher 0.28 -> 0.09 ms task-clock, 39 -> 19
    page faults (scripts/bench_native_shim.py, figures in README.rst "Native shim").
    None in a sanitizer build (the runtimes need glibc), with SOCKSIFY_LAUNCHER_LIBC=glibc,
    or when musl-gcc is not installed; setup.py also falls back to the system compiler when
    the musl build fails.
    """
    if sanitize_enabled(env):
        return None
    choice = env.get("SOCKSIFY_LAUNCHER_LIBC", "").strip().lower()
    if choice not in ("", "musl", "glibc"):
        raise ValueError(f"SOCKSIFY_LAUNCHER_LIBC: unknown C library {choice!r} "
                         f"(use musl or glibc)")
    if choice == "glibc":
        return None
    return which(MUSL_CC)


def preload_sources(csrc: str = CSRC) -> list[str]:
    """Every C file in csrc/, sorted (hook files of all helpers included), as relative paths."""
    return sorted(
        os.path.join("csrc", name) for name in os.listdir(csrc) if name.endswith(".c")
    )


def launcher_sources(csrc: str = CSRC) -> list[str]:
    """The launcher's sources, relative to the working directory (the project root)."""
    return [os.path.relpath(os.path.join(csrc, name)) for name in LAUNCHER_SOURCES]


def headers(csrc: str = CSRC) -> list[str]:
    """Header and build-script files the build depends on (and the sdist must carry)."""
    names = sorted(n for n in os.listdir(csrc) if n.endswith(".h")) + list(BUILD_SCRIPTS)
    return [os.path.join("csrc", name) for name in names]


def binding_sources(csrc: str = CSRC) -> list[str]:
    """The pure sources compiled into socksify._native, relative to the working directory
    (setuptools refuses absolute source paths; setup.py runs in the project root)."""
    return [os.path.relpath(os.path.join(csrc, name)) for name in BINDING_SOURCES]


def library_hint(inplace: bool, package_dir: str,
                 paths: Mapping[str, str] | None = None) -> str:
    """Where the bin/ copy of the launcher should look first for the library (the hint
    stamped into the binary; the launcher still searches when the file is not there).

    An in-place build (``pip install -e .``, ``setup.py build_ext --inplace``) knows it: the
    library in the source tree, as an absolute real path. A wheel build knows only where the
    library will land relative to bin/: sysconfig's platlib relative to its scripts
    directory (``../lib/python3.X/site-packages/socksify/libsocksify.so`` in a venv, tox's
    envs included). ``paths`` stands in for ``sysconfig.get_paths()`` in tests.
    """
    if inplace:
        return os.path.realpath(os.path.join(package_dir, PRELOAD_FILENAME))
    paths = sysconfig.get_paths() if paths is None else paths
    platlib, scripts = paths.get("platlib"), paths.get("scripts")
    if not platlib or not scripts:
        return ""
    return os.path.join(os.path.relpath(platlib, scripts), "socksify", PRELOAD_FILENAME)


def stamp_library_hint(binary: str, hint: str) -> None:
    """Write ``hint`` into the launcher ``binary`` after HINT_MARKER (in place; "" clears
    it). The launcher reads it at run time (csrc/launcher/socksify-run.c hinted_library).

    Raises:
        ValueError: the marker is not in the file exactly once, or the hint is too long.
    """
    encoded = os.fsencode(hint)
    room = HINT_SIZE - len(HINT_MARKER) - 1
    if len(encoded) > room or b"\0" in encoded:
        raise ValueError(f"library hint too long for the launcher ({len(encoded)} > {room} "
                         f"bytes) or contains NUL: {hint!r}")
    with open(binary, "r+b") as f:
        data = f.read()
        at = data.find(HINT_MARKER)
        if at < 0 or data.find(HINT_MARKER, at + 1) >= 0:
            raise ValueError(f"{binary}: the library hint marker is not there exactly once")
        f.seek(at + len(HINT_MARKER))
        f.write(encoded + b"\0" * (room + 1 - len(encoded)))


def read_library_hint(binary: str) -> str:
    """The hint stamped into the launcher ``binary`` ("" when none)."""
    with open(binary, "rb") as f:
        data = f.read()
    at = data.find(HINT_MARKER)
    if at < 0:
        raise ValueError(f"{binary}: no library hint marker")
    start = at + len(HINT_MARKER)
    return os.fsdecode(data[start:data.index(b"\0", start)])
