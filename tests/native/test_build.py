"""The build of the native shim: pure build decisions (csrc/buildcfg.py), the preload
library's symbol tables, and a warning-free compile of every csrc/*.c."""

import importlib.util
import pathlib
import re
import subprocess

import pytest
from support.peers import require_peer

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"


def buildcfg():
    spec = importlib.util.spec_from_file_location("buildcfg", CSRC / "buildcfg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flags_default_and_switches():
    cfg = buildcfg()
    plain = cfg.compile_args({})
    assert "-fvisibility=hidden" in plain and "-Wall" in plain and "-Wextra" in plain
    assert "-Werror" not in plain and not any("sanitize" in a for a in plain)
    assert "-Werror" in cfg.compile_args({"SOCKSIFY_WERROR": "1"})
    sanitized = cfg.compile_args({"SOCKSIFY_SANITIZE": "yes"})
    assert "-fsanitize=address,undefined" in sanitized
    assert "-fsanitize=address,undefined" in cfg.link_args({"SOCKSIFY_SANITIZE": "1"})
    assert not cfg.sanitize_enabled({"SOCKSIFY_SANITIZE": "0"})
    assert cfg.compile_args({"SOCKSIFY_SANITIZE": "undefined"})[-4] == "-fsanitize=undefined"
    with pytest.raises(ValueError, match="unknown sanitizer 'thread'"):
        cfg.sanitizers({"SOCKSIFY_SANITIZE": "address,thread"})


def test_sources_lists():
    cfg = buildcfg()
    sources = cfg.preload_sources(str(CSRC))
    assert "csrc/hook_connect.c" in sources and "csrc/codec.c" in sources
    assert sources == sorted(sources)
    assert all(pathlib.Path(p).name in {s.split("/")[-1] for s in sources}
               for p in cfg.binding_sources(str(CSRC)))
    assert "csrc/socksify.h" in cfg.headers(str(CSRC))


def test_launcher_is_not_part_of_the_library(libsocksify):
    """csrc/launcher/ has its own main(): never globbed into libsocksify.so."""
    cfg = buildcfg()
    assert not any("launcher" in p for p in cfg.preload_sources(str(CSRC)))
    assert [pathlib.Path(p).name for p in cfg.launcher_sources(str(CSRC))] == [
        "socksify-run.c", "config.c"]
    assert "-static" in cfg.launcher_link_args({})
    assert "-static" not in cfg.launcher_link_args({"SOCKSIFY_SANITIZE": "1"})
    nm = require_peer("nm")
    symbols = subprocess.run([nm, "-D", "--defined-only", libsocksify], capture_output=True,
                             text=True, check=True, timeout=60).stdout.split()
    assert "main" not in symbols


def _dynsyms(library, *flags):
    out = subprocess.run(["nm", "-D", *flags, library], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def test_library_uses_no_python_symbols(libsocksify):
    """Loads into any program, also under LD_BIND_NOW=1: only libc (and, in a sanitizer
    build, the sanitizer runtimes) may be needed."""
    undefined = _dynsyms(libsocksify, "--undefined-only")
    assert undefined
    python = [s for s in undefined if s.startswith(("Py", "_Py"))]
    assert python == []
    needed = subprocess.run(["readelf", "-d", libsocksify], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    libs = re.findall(r"Shared library: \[(.+?)\]", needed)
    assert not any("python" in lib for lib in libs), libs
    if any(lib.startswith(("libasan", "libubsan")) for lib in libs):
        return  # a sanitizer build binds libc names to the sanitizer's interceptors
    weak = ("_ITM_", "__gmon_start__")
    foreign = [s for s in undefined if "@" not in s and not s.startswith(weak)]
    assert foreign == [], foreign  # every symbol is libc's (versioned GLIBC_*)


def test_library_exports_only_hooks(libsocksify):
    exported = _dynsyms(libsocksify, "--defined-only")
    assert "connect" in exported and "getaddrinfo" in exported
    assert not [s for s in exported if s.startswith("sfy_")]


@pytest.mark.parametrize("name", sorted(p.name for p in CSRC.glob("*.c")))
def test_every_source_compiles_without_warnings(name, tmp_path):
    cc = require_peer("cc")
    cfg = buildcfg()
    args = [a for a in cfg.compile_args({"SOCKSIFY_WERROR": "1"}) if a != "-g"]
    result = subprocess.run(
        [cc, "-fPIC", "-D_GNU_SOURCE", f"-I{CSRC}", *args, "-c", str(CSRC / name),
         "-o", str(tmp_path / "out.o")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
