"""Run native programs with the LD_PRELOAD shim (libsocksify.so).

Rules of this module:

- ``library_path()`` finds ``libsocksify.so`` next to this file (``pip install .`` puts it
  in the wheel, ``pip install -e .`` builds it in place); ``SOCKSIFY_LIBRARY`` overrides it.
- ``build_env()`` is pure: it puts the library IN FRONT of an existing ``LD_PRELOAD``
  (after any sanitizer runtime, which must come first) and exports the ``SOCKSIFY_*``
  settings from :mod:`socksify.proxy`, so the shim reads exactly what the CLI parsed.
- ``check_program()`` refuses what the shim cannot cover, instead of a silent leak: a
  statically linked ELF (no PT_INTERP), a set-uid/set-gid file (the loader drops
  LD_PRELOAD in secure-execution mode), and a Go program (its net package makes raw
  system calls, never libc's connect(), even when dynamically linked). Scripts (``#!``)
  are checked through their interpreter.
- ``exec_with_preload()`` replaces the current process (``os.execvpe``): no extra process,
  the program's exit status is the command's.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
from collections.abc import Mapping, Sequence

from .proxy import Settings

__all__ = [
    "LIBRARY_NAME",
    "NotCoverable",
    "build_env",
    "check_program",
    "exec_with_preload",
    "launcher_path",
    "library_path",
]

LIBRARY_NAME = "libsocksify.so"
#: the native socksify-run launcher, built next to the library (csrc/launcher/)
LAUNCHER_NAME = "socksify-run"
#: exit status when the program cannot be covered by the shim (like a shell's "cannot
#: execute": 126) and when it is not found (127)
EXIT_NOT_COVERABLE = 126
EXIT_NOT_FOUND = 127

_PT_INTERP = 3


class NotCoverable(Exception):
    """The program cannot run under the shim; the message says why. ``status`` is the exit
    status the commands use (126, or 127 when the program does not exist)."""

    def __init__(self, message: str, status: int = EXIT_NOT_COVERABLE):
        super().__init__(message)
        self.status = status


def library_path() -> str:
    """Absolute path of the preload library.

    Raises:
        FileNotFoundError: the package was installed without building the native part.
    """
    override = os.environ.get("SOCKSIFY_LIBRARY")
    path = override or os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the native shim {path} is missing: reinstall socksify with a C compiler "
            "(pip install .) to build it"
        )
    return os.path.abspath(path)


def launcher_path() -> str:
    """Path of the native ``socksify-run`` launcher in the package (next to the library;
    it may be missing when the native part was not built)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), LAUNCHER_NAME)


def _is_sanitizer_runtime(entry: str) -> bool:
    name = os.path.basename(entry)
    return name.startswith(("libasan", "libclang_rt.asan", "libubsan", "libtsan"))


def build_env(
    settings: Settings, environ: Mapping[str, str] | None = None, library: str | None = None
) -> dict[str, str]:
    """The environment for a program run under the shim.

    Args:
        settings: the parsed client settings (exported as ``SOCKSIFY_*``).
        environ: the starting environment (default ``os.environ``).
        library: the preload library (default :func:`library_path`).

    Returns:
        A new dict: ``LD_PRELOAD`` with the library first (after any sanitizer runtime
        already there, which the sanitizers require to come first) and without a duplicate
        of it; the ``SOCKSIFY_*`` variables of ``settings``.
    """
    env = dict(os.environ if environ is None else environ)
    library = library or library_path()
    existing = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p]
    runtimes = [p for p in existing if _is_sanitizer_runtime(p)]
    others = [p for p in existing if not _is_sanitizer_runtime(p) and p != library]
    env["LD_PRELOAD"] = ":".join([*runtimes, library, *others])
    env.update(settings.to_environ())
    return env


def _resolve(program: str, path: str | None) -> str | None:
    if os.sep in program:
        return program if os.path.exists(program) else None
    return shutil.which(program, path=path)


#: section names only the Go toolchain writes
_GO_SECTIONS = (b".note.go.buildid", b".go.buildinfo")


class _ElfTables:
    """Where an ELF file's program and section header tables are, from its first 64
    bytes (ELF32 or ELF64, either byte order)."""

    def __init__(self, header: bytes):
        self.is64 = header[4] == 2
        self.endian = "<" if header[5] == 1 else ">"
        if self.is64:
            self.phoff, = struct.unpack_from(self.endian + "Q", header, 0x20)
            self.phentsize, self.phnum = struct.unpack_from(self.endian + "HH", header, 0x36)
            self.shoff, = struct.unpack_from(self.endian + "Q", header, 0x28)
            self.shentsize, self.shnum, self.shstrndx = struct.unpack_from(
                self.endian + "HHH", header, 0x3A)
        else:
            self.phoff, = struct.unpack_from(self.endian + "I", header, 0x1C)
            self.phentsize, self.phnum = struct.unpack_from(self.endian + "HH", header, 0x2A)
            self.shoff, = struct.unpack_from(self.endian + "I", header, 0x20)
            self.shentsize, self.shnum, self.shstrndx = struct.unpack_from(
                self.endian + "HHH", header, 0x2E)


def _elf_has_interp(elf: _ElfTables, f) -> bool:
    """True when the ELF file has a PT_INTERP program header (it is dynamically linked)."""
    f.seek(elf.phoff)
    table = f.read(elf.phentsize * elf.phnum)
    for i in range(elf.phnum):
        p_type, = struct.unpack_from(elf.endian + "I", table, i * elf.phentsize)
        if p_type == _PT_INTERP:
            return True
    return False


def _elf_is_go(elf: _ElfTables, f) -> bool:
    """True when the ELF file has a section only Go writes (read from the section headers
    and the section-name string table; a stripped or odd file just gives False)."""
    try:
        if not elf.shoff or not elf.shnum or elf.shstrndx >= elf.shnum or elf.shnum > 4096:
            return False
        f.seek(elf.shoff)
        table = f.read(elf.shentsize * elf.shnum)
        # name offset, then the string table's own offset and size (sh_offset, sh_size)
        offset_fmt, at = (elf.endian + "QQ", 0x18) if elf.is64 else (elf.endian + "II", 0x10)
        strtab_off, strtab_size = struct.unpack_from(offset_fmt, table,
                                                     elf.shstrndx * elf.shentsize + at)
        f.seek(strtab_off)
        names = f.read(min(strtab_size, 1 << 20))
        return any(b"\0" + name + b"\0" in b"\0" + names for name in _GO_SECTIONS)
    except struct.error:
        return False


def check_program(program: str, path: str | None = None, _depth: int = 0) -> str:
    """Make sure the shim can cover ``program``; return its resolved path.

    Raises:
        NotCoverable: not found (status 127), statically linked, set-uid/set-gid, or a
            script whose interpreter is one of those.
    """
    resolved = _resolve(program, path)
    if resolved is None:
        raise NotCoverable(f"{program}: command not found", EXIT_NOT_FOUND)
    try:
        st = os.stat(resolved)
        with open(resolved, "rb") as f:
            header = f.read(64)
            # interp: None when not ELF, else whether it is dynamically linked
            interp = is_go = None
            if len(header) >= 52 and header[:4] == b"\x7fELF":
                try:
                    elf = _ElfTables(header)
                    interp = _elf_has_interp(elf, f)
                except struct.error:
                    pass  # truncated: the kernel will not run it either
                else:
                    is_go = _elf_is_go(elf, f)
    except OSError as exc:
        raise NotCoverable(f"{program}: {exc.strerror}") from None
    if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        raise NotCoverable(
            f"{resolved} is set-uid/set-gid: the loader ignores LD_PRELOAD for it, so its "
            "traffic would not go through the proxy; refusing to run it"
        )
    if interp is False:
        raise NotCoverable(
            f"{resolved} is statically linked: LD_PRELOAD cannot hook it, so its traffic "
            "would not go through the proxy; refusing to run it (use a dynamically linked "
            "build, or python -m socksify for Python programs)"
        )
    if is_go:
        raise NotCoverable(
            f"{resolved} is a Go program: Go makes its own system calls instead of calling "
            "libc's connect(), so LD_PRELOAD cannot route its traffic; refusing to run it "
            "(Go's net/http itself honours HTTPS_PROXY=socks5://HOST:PORT)"
        )
    if interp is None and header[:2] == b"#!" and _depth < 4:
        line = header[2:].split(b"\n", 1)[0].strip().split()
        if line:
            check_program(os.fsdecode(line[0]), path, _depth + 1)
    return resolved


def exec_with_preload(
    argv: Sequence[str], settings: Settings, environ: Mapping[str, str] | None = None
):
    """Replace this process with ``argv`` run under the shim (never returns).

    Raises:
        NotCoverable: see :func:`check_program`.
        FileNotFoundError: the preload library is missing.
        OSError: from ``execvp`` itself.
    """
    env = build_env(settings, environ)
    check_program(argv[0], env.get("PATH"))
    os.execvpe(argv[0], list(argv), env)
