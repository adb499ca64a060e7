"""The small C programs of the tests, built with the system compiler once per session.

::

    def test_x(build_c):
        exe = build_c(PROGS / "udp_client.c", "-O2", "-Wall")       # path of the executable
        exe = build_c.from_text("prog", SOURCE, "-O1", "-Werror")    # a source held in a string

Flags go before ``-o``, as on a ``cc FLAGS -o EXE SOURCE`` command line. The same source with
the same flags is built once. A missing compiler is a loud skip (a failure under CI, like any
missing peer); a program that does not build fails the test with the compiler's messages.
"""

from __future__ import annotations

import itertools
import pathlib
import subprocess

import pytest

from .peers import require_peer

#: a compile is quick; the bound is for a loaded CI machine
TIMEOUT = 60


def compile_c(source: pathlib.Path, exe: pathlib.Path, *flags: str, hint: str = "") -> str:
    """``cc FLAGS -o EXE SOURCE``; returns the executable's path."""
    cc = require_peer("cc")
    result = subprocess.run(
        [cc, *flags, "-o", str(exe), str(source)], capture_output=True, text=True,
        timeout=TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(f"cannot build {source.name}{hint}:\n{result.stderr}", pytrace=False)
    return str(exe)


class CBuilder:
    """Builds each (source, flags) once, every executable in a directory of its own (so
    programs of the same name from different test directories do not collide)."""

    def __init__(self, out_dir: pathlib.Path):
        self.out_dir = out_dir
        self._built: dict[tuple, str] = {}
        self._dirs = itertools.count()

    def _new_dir(self) -> pathlib.Path:
        path = self.out_dir / str(next(self._dirs))
        path.mkdir()
        return path

    def __call__(self, source: pathlib.Path | str, *flags: str, hint: str = "") -> str:
        """Build the C file ``source``; the executable is named after it (no suffix)."""
        source = pathlib.Path(source).resolve()
        key = ("file", source, flags)
        if key not in self._built:
            exe = self._new_dir() / source.stem
            self._built[key] = compile_c(source, exe, *flags, hint=hint)
        return self._built[key]

    def from_text(self, name: str, text: str, *flags: str, hint: str = "") -> str:
        """Build C source ``text`` as ``name.c``; the executable is ``name``."""
        key = ("text", name, text, flags)
        if key not in self._built:
            where = self._new_dir()
            source = where / f"{name}.c"
            source.write_text(text)
            self._built[key] = compile_c(source, where / name, *flags, hint=hint)
        return self._built[key]


@pytest.fixture(scope="session")
def build_c(tmp_path_factory) -> CBuilder:
    """:class:`CBuilder` for the session: ``build_c(source, *flags)``,
    ``build_c.from_text(name, text, *flags)``."""
    return CBuilder(tmp_path_factory.mktemp("c-programs"))
