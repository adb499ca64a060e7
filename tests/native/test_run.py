"""socksify-run and socksify._preload: locating the library, the environment, exec, and
refusing programs the loader will not preload into (static, set-uid/set-gid, Go).

Every command-line test runs twice through the ``socksify_run`` fixture: the Python
implementation (socksify/run.py) and the native launcher (csrc/launcher/socksify-run.c),
which must behave the same."""

import os
import shutil
import socket
import stat
import subprocess
import sys

import pytest
from support.peers import require_peer

from socksify import _preload
from socksify.proxy import load_settings

from .conftest import clean_env, without_sanitizer

SETTINGS = load_settings("socks5h://127.0.0.1:1080", environ={})


def _buildcfg():
    """csrc/buildcfg.py (build decisions; not part of the installed package)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "csrc" / "buildcfg.py"
    spec = importlib.util.spec_from_file_location("buildcfg", path)
    cfg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg)
    return cfg


def _copy_launcher(launcher, dest, hint=""):
    """A copy of the native launcher at ``dest`` with ``hint`` stamped in as the library
    hint ("" = none: the copy finds the library by its search alone)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(launcher, dest)
    _buildcfg().stamp_library_hint(str(dest), hint)
    return str(dest)


def test_print_library(socksify_run, libsocksify):
    result = socksify_run(["--print-library"])
    assert result.returncode == 0, result.stderr
    path = result.stdout.decode().strip()
    assert os.path.isabs(path) and os.path.samefile(path, libsocksify)
    assert path.endswith("/libsocksify.so")


def test_build_env_puts_the_library_first_and_exports_settings(libsocksify):
    env = _preload.build_env(SETTINGS, {"LD_PRELOAD": "/x/liba.so /x/libb.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == f"{libsocksify}:/x/liba.so:/x/libb.so"
    assert env["SOCKSIFY_PROXY"] == "socks5h://127.0.0.1:1080"
    assert env["SOCKSIFY_LOG"] == "error" and env["SOCKSIFY_DNS_RANGE"]
    assert env["PATH"] == "/bin"
    again = _preload.build_env(SETTINGS, env)
    assert again["LD_PRELOAD"] == env["LD_PRELOAD"]  # no duplicate


def test_build_env_keeps_a_sanitizer_runtime_first(libsocksify):
    env = _preload.build_env(SETTINGS, {"LD_PRELOAD": "/x/libfoo.so:/usr/lib/libasan.so.8"})
    assert env["LD_PRELOAD"] == f"/usr/lib/libasan.so.8:{libsocksify}:/x/libfoo.so"


def test_environment_reaches_the_program_and_exit_status_passes_through(socksify_run):
    result = socksify_run(
        ["--proxy", "socks5://127.0.0.1:9", "--log-level", "debug", "--",
         "sh", "-c", 'echo "$LD_PRELOAD|$SOCKSIFY_PROXY|$SOCKSIFY_LOG"; exit 7'],
        LD_PRELOAD="/nonexistent/other.so",
    )
    assert result.returncode == 7
    preload, proxy, level = result.stdout.decode().strip().split("|")
    entries = without_sanitizer(preload)
    assert entries[0].endswith("libsocksify.so")
    assert entries[1:] == ["/nonexistent/other.so"]
    assert (proxy, level) == ("socks5://127.0.0.1:9", "debug")


def test_flags_win_over_the_environment(socksify_run):
    result = socksify_run(["--proxy", "socks4://127.0.0.1:5", "sh", "-c", "echo $SOCKSIFY_PROXY"],
                          SOCKSIFY_PROXY="socks5://127.0.0.1:6")
    assert result.stdout.strip() == b"socks4://127.0.0.1:5"


def test_program_arguments_pass_through(socksify_run):
    result = socksify_run(["--proxy", "socks5://h", "--", "sh", "-c", 'echo "$@"', "sh",
                           "--proxy", "x", "-v"])
    assert result.returncode == 0
    assert result.stdout.strip() == b"--proxy x -v"


@pytest.mark.parametrize("args, message", [
    (["--proxy", "http://127.0.0.1:3128", "true"], b"unsupported scheme"),
    (["--proxy", "socks5://h:99999", "true"], b"bad port '99999'"),
    (["true"], b"no proxy configured"),
    (["--proxy", "socks5://h"], b"no command given"),
    (["--proxy", "socks5://h", "--log-level", "loud", "true"], b"bad log level"),
    (["--proxy", "socks5://h", "--log-level", "", "true"], b"bad log level ''"),
    (["--proxy", "socks5://h", "--log-level=", "true"], b"bad log level ''"),
    # "\udcff": the byte 0xFF (not UTF-8), as subprocess passes it (os.fsencode)
    (["--proxy", "socks5://\udcff@h", "true"], b"user name is not UTF-8 after percent-decoding"),
    (["--proxy", "socks5://u:\udcff@h", "true"], b"password is not UTF-8 after percent-decoding"),
])
def test_usage_errors_exit_2(socksify_run, args, message):
    result = socksify_run(args)
    assert result.returncode == 2
    assert result.stderr.startswith(b"socksify: error: ") and message in result.stderr
    assert b"Traceback" not in result.stderr


def test_all_proxy_socks_url_is_used(socksify_run):
    result = socksify_run(["sh", "-c", "echo $SOCKSIFY_PROXY"], ALL_PROXY="socks5h://10.0.0.1:7")
    assert result.stdout.strip() == b"socks5h://10.0.0.1:7"


def test_missing_program_exits_127(socksify_run):
    result = socksify_run(["--proxy", "socks5://h", "no-such-program-xyz"])
    assert result.returncode == 127
    assert b"no-such-program-xyz: command not found" in result.stderr


def test_file_without_a_shebang_line_is_not_run_by_sh(socksify_run, tmp_path):
    """os.execvp semantics in both implementations (no /bin/sh retry as glibc's execvp
    does): ENOEXEC is exit status 126, the same message, the file never runs."""
    script = tmp_path / "no-shebang"
    script.write_text("echo ran-by-sh\n")
    script.chmod(0o755)
    result = socksify_run(["--proxy", "socks5://h", str(script)])
    assert result.returncode == 126
    assert result.stderr.endswith(f"socksify: error: {script}: Exec format error\n".encode())
    assert b"ran-by-sh" not in result.stdout


def test_a_later_path_entry_runs_after_a_non_executable_one(socksify_run, tmp_path):
    """A $PATH entry whose file cannot be executed does not stop the search (os.execvp)."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "prog-xyz").write_text("#!/bin/sh\necho first\n")  # not executable
    (second / "prog-xyz").write_text("#!/bin/sh\necho second\n")
    (second / "prog-xyz").chmod(0o755)
    result = socksify_run(["--proxy", "socks5://h", "prog-xyz"],
                          PATH=f"{first}:{second}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"second\n"


@pytest.fixture(scope="module")
def static_binary(build_c):
    return build_c.from_text(
        "hello", '#include <stdio.h>\nint main(void){puts("static");return 0;}\n', "-static",
        hint=" as a static binary (libc6-dev has libc.a)",
    )


def test_static_binary_is_refused(socksify_run, static_binary):
    result = socksify_run(["--proxy", "socks5://h", static_binary])
    assert result.returncode == 126
    assert b"is statically linked" in result.stderr
    assert b"static\n" not in result.stdout  # it never ran


def test_dynamic_binary_and_script_are_accepted(tmp_path, static_binary):
    assert _preload.check_program("sh") == shutil.which("sh")
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    assert _preload.check_program(str(script)) == str(script)
    bad = tmp_path / "bad-script"
    bad.write_text(f"#!{static_binary}\n")
    bad.chmod(0o755)
    with pytest.raises(_preload.NotCoverable, match="statically linked"):
        _preload.check_program(str(bad))


@pytest.mark.parametrize("bit", [stat.S_ISUID, stat.S_ISGID])
def test_setuid_and_setgid_binaries_are_refused(socksify_run, tmp_path, bit):
    copy = tmp_path / "true"
    shutil.copy(shutil.which("true"), copy)
    copy.chmod(0o755 | bit)
    if not os.stat(copy).st_mode & bit:
        pytest.fail("this file system drops set-id bits; cannot test")
    result = socksify_run(["--proxy", "socks5://h", str(copy)])
    assert result.returncode == 126
    assert b"set-uid/set-gid" in result.stderr


def test_python_m_socksify_runs_native_programs(shim):
    result = subprocess.run(
        [sys.executable, "-m", "socksify", "--proxy", "socks5://127.0.0.1:9", "--",
         "sh", "-c", 'echo "$LD_PRELOAD"; exit 3'],
        capture_output=True, timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 3
    assert without_sanitizer(result.stdout.decode().strip())[0].endswith("libsocksify.so")


@pytest.mark.e2e
def test_socksify_run_curl_end_to_end(socksify_run, socks_server, http_server):
    srv = socks_server(hosts={"only-proxy.test": "127.0.0.1"})
    curl = require_peer("curl")
    result = socksify_run(["--proxy", srv.url("socks5h"), "--", curl, "-sS", "--max-time", "20",
                           http_server.url("/", host="only-proxy.test")])
    assert result.returncode == 0, result.stderr
    assert b"hello from the target" in result.stdout
    assert srv.wait_records(1)[0]["destination"] == "only-proxy.test"


@pytest.mark.e2e
def test_socksify_run_passes_curls_failure_status(socksify_run, http_server):
    curl = require_peer("curl")
    with socket.socket() as dead:  # bound, never listening (for the whole run): refused
        dead.bind(("127.0.0.1", 0))
        result = socksify_run(["--proxy", f"socks5://127.0.0.1:{dead.getsockname()[1]}", curl,
                               "-sS", "--max-time", "20", http_server.url("/")])
    assert result.returncode == 7
    assert http_server.requests == []


def test_go_programs_are_refused(socksify_run, tmp_path):
    """Go's net package makes raw system calls: the shim would see nothing, so refuse."""
    objcopy = require_peer("objcopy")
    note = tmp_path / "buildid"
    note.write_bytes(b"\x04\x00\x00\x00\x08\x00\x00\x00\x04\x00\x00\x00Go\x00\x00fakeid00")
    fake_go = tmp_path / "gotool"
    subprocess.run([objcopy, "--add-section", f".note.go.buildid={note}", shutil.which("true"),
                    str(fake_go)], check=True, capture_output=True, timeout=60)
    fake_go.chmod(0o755)
    result = socksify_run(["--proxy", "socks5://h", str(fake_go)])
    assert result.returncode == 126
    assert b"is a Go program" in result.stderr
    assert _preload.check_program(shutil.which("true"))  # the original is fine


def test_usage_error_messages_are_the_same_in_both_implementations(shim, launcher):
    """Same status and the same ``socksify: error:`` line from run.py and the launcher."""
    for args in (["--proxy", "socks5://h:99999", "true"], ["--proxy", "ftp://h", "true"],
                 ["--proxy", "socks5://[::1", "true"], ["true"], ["--proxy", "socks5://h"],
                 ["--proxy", "socks5://h", "--no-proxy", "10.0.0.0/99", "true"],
                 ["--proxy", "socks5://h", "--log-level", "", "true"]):
        python = shim.run_cli(args)
        native = shim.run_cli(args, launcher=launcher)
        assert python.returncode == native.returncode == 2, args
        assert python.stderr == native.stderr, args


def test_option_forms_help_and_unknown_options(socksify_run):
    result = socksify_run(["--proxy=socks4://127.0.0.1:5", "--log-level=debug", "sh", "-c",
                           "echo $SOCKSIFY_PROXY $SOCKSIFY_LOG"])
    assert result.stdout.split() == [b"socks4://127.0.0.1:5", b"debug"]
    assert socksify_run(["--help"]).returncode == 0
    assert b"--print-library" in socksify_run(["--help"]).stdout
    bad = socksify_run(["--proxy", "socks5://h", "--bogus", "true"])
    assert bad.returncode == 2 and b"unrecognized arguments" in bad.stderr


def test_script_with_a_static_interpreter_is_refused(socksify_run, tmp_path, static_binary):
    script = tmp_path / "script"
    script.write_text(f"#!{static_binary} -x\n")
    script.chmod(0o755)
    result = socksify_run(["--proxy", "socks5://h", str(script)])
    assert result.returncode == 126 and b"is statically linked" in result.stderr


def test_sanitizer_runtime_stays_first_through_the_cli(socksify_run):
    result = socksify_run(["--proxy", "socks5://h", "sh", "-c", 'echo "$LD_PRELOAD"'],
                          LD_PRELOAD="/x/libfoo.so /usr/lib/libasan.so.8")
    entries = result.stdout.decode().strip().split(":")
    runtime = os.environ.get("SOCKSIFY_ASAN_RUNTIME")
    entries = [e for e in entries if e != runtime]
    assert entries[0] == "/usr/lib/libasan.so.8"
    assert entries[1].endswith("/libsocksify.so") and entries[2:] == ["/x/libfoo.so"]


def test_launcher_in_bin_finds_the_library_in_site_packages(shim, launcher, libsocksify,
                                                            tmp_path):
    """The bin/ copy of a venv, --user or system install: ../lib/python3*/*-packages."""
    site = tmp_path / "lib" / "python3.11" / "site-packages" / "socksify"
    site.mkdir(parents=True)
    shutil.copy(libsocksify, site / "libsocksify.so")
    copy = _copy_launcher(launcher, tmp_path / "bin" / "socksify-run")
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(site / "libsocksify.so")


def test_launcher_without_a_library_falls_back_to_python(shim, launcher, libsocksify,
                                                         tmp_path):
    """An odd layout (an editable install's bin/ copy): the Python implementation runs."""
    copy = _copy_launcher(launcher, tmp_path / "socksify-run", hint=str(tmp_path / "gone.so"))
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert os.path.samefile(result.stdout.decode().strip(), libsocksify)
    failed = shim.run_cli(["--print-library"], launcher=launcher,
                          SOCKSIFY_LIBRARY=str(tmp_path / "missing.so"))
    assert failed.returncode == 1 and b"missing.so is missing" in failed.stderr


def test_launcher_in_bin_finds_an_editable_install(shim, launcher, libsocksify, tmp_path):
    """pip install -e: setuptools' finder module names the source package directory."""
    source = tmp_path / "checkout" / "socksify"
    source.mkdir(parents=True)
    shutil.copy(libsocksify, source / "libsocksify.so")
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (site / "__editable___socksify_0_1_0_finder.py").write_text(
        f"import sys\nMAPPING: dict[str, str] = {{'socksify': '{source}'}}\n")
    copy = _copy_launcher(launcher, tmp_path / "bin" / "socksify-run")
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(source / "libsocksify.so")


def test_launcher_finds_the_library_through_its_absolute_hint(shim, launcher, libsocksify,
                                                              tmp_path):
    """An in-place build (pip install -e) stamps the library's absolute path into the
    launcher: the bin/ copy finds it there, with no site-packages to search."""
    elsewhere = tmp_path / "checkout" / "socksify" / "libsocksify.so"
    elsewhere.parent.mkdir(parents=True)
    shutil.copy(libsocksify, elsewhere)
    copy = _copy_launcher(launcher, tmp_path / "bin" / "socksify-run", hint=str(elsewhere))
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(elsewhere)


def test_launcher_finds_the_library_through_a_relative_hint(shim, launcher, libsocksify,
                                                            tmp_path):
    """A wheel build stamps the library's place relative to bin/; the hint wins over the
    search (which would find the python3.11 copy first)."""
    hinted = tmp_path / "lib" / "python3.99" / "site-packages" / "socksify" / "libsocksify.so"
    searched = tmp_path / "lib" / "python3.11" / "site-packages" / "socksify" / "libsocksify.so"
    for path in (hinted, searched):
        path.parent.mkdir(parents=True)
        shutil.copy(libsocksify, path)
    copy = _copy_launcher(launcher, tmp_path / "bin" / "socksify-run",
                          hint="../lib/python3.99/site-packages/socksify/libsocksify.so")
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(hinted)


@pytest.mark.parametrize("hint", ["/nonexistent/socksify/libsocksify.so",
                                  "../lib/python3.99/site-packages/socksify/libsocksify.so"])
def test_launcher_searches_when_the_hinted_library_is_gone(shim, launcher, libsocksify,
                                                           tmp_path, hint):
    """A stale hint (moved checkout, another layout) costs one stat: the search finds the
    library of an editable install through setuptools' finder, as without a hint."""
    source = tmp_path / "checkout" / "socksify"
    source.mkdir(parents=True)
    shutil.copy(libsocksify, source / "libsocksify.so")
    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "__editable___socksify_0_1_0_finder.py").write_text(
        f"import sys\nMAPPING: dict[str, str] = {{'socksify': '{source}'}}\n")
    copy = _copy_launcher(launcher, tmp_path / "bin" / "socksify-run", hint=hint)
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(source / "libsocksify.so")


def test_library_next_to_the_launcher_wins_over_the_hint(shim, launcher, libsocksify,
                                                         tmp_path):
    """The in-package copy (socksify/socksify-run) uses the library beside it, whatever
    was stamped (a wheel's relative hint means nothing from inside the package)."""
    beside = tmp_path / "pkg" / "libsocksify.so"
    other = tmp_path / "other" / "libsocksify.so"
    for path in (beside, other):
        path.parent.mkdir(parents=True)
        shutil.copy(libsocksify, path)
    copy = _copy_launcher(launcher, tmp_path / "pkg" / "socksify-run", hint=str(other))
    result = shim.run_cli(["--print-library"], launcher=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == str(beside)


def test_installed_launcher_carries_the_library_hint(launcher):
    """setup.py stamps the hint into the built launcher: the library's absolute path in an
    in-place build (pip install -e), else its place relative to bin/. (The copy under test
    may come from another build than the library: scripts/build_preload.py copies the
    package's files next to its own library.)"""
    hint = _buildcfg().read_library_hint(launcher)
    assert hint.endswith("/socksify/libsocksify.so"), hint
    if os.path.isabs(hint):
        assert os.path.isfile(hint), hint
    else:
        assert hint.startswith("../"), hint


def test_launcher_comes_from_the_same_build_as_the_library(launcher, libsocksify):
    """A sanitizer build tests its own launcher, not the source tree's: the launcher needs
    the same sanitizer runtimes as the library beside it (none in a regular build).
    scripts/build_preload.py once copied the tree's musl launcher over its ASan one."""
    runtimes = (b"libasan.so", b"libubsan.so")
    with open(libsocksify, "rb") as lib, open(launcher, "rb") as exe:
        library, program = lib.read(), exe.read()
    assert [r in program for r in runtimes] == [r in library for r in runtimes]


def test_library_hint_and_stamp():
    """buildcfg.library_hint: absolute in place, relative to sysconfig's scripts directory
    otherwise; stamp_library_hint refuses a hint that does not fit."""
    cfg = _buildcfg()
    paths = {"platlib": "/venv/lib/python3.12/site-packages", "scripts": "/venv/bin"}
    assert cfg.library_hint(False, "build/lib/socksify", paths) == \
        "../lib/python3.12/site-packages/socksify/libsocksify.so"
    assert cfg.library_hint(False, "build/lib/socksify", {}) == ""
    assert cfg.library_hint(True, "/src/socksify") == "/src/socksify/libsocksify.so"
    assert cfg.HINT_SIZE == 4096 and cfg.HINT_MARKER.startswith(b"@(#)")


def test_stamping_a_launcher_round_trips(launcher, tmp_path):
    cfg = _buildcfg()
    copy = _copy_launcher(launcher, tmp_path / "socksify-run", hint="/a/b/libsocksify.so")
    assert cfg.read_library_hint(copy) == "/a/b/libsocksify.so"
    cfg.stamp_library_hint(copy, "")
    assert cfg.read_library_hint(copy) == ""
    with pytest.raises(ValueError, match="too long"):
        cfg.stamp_library_hint(copy, "/x" * 4096)
    (tmp_path / "other").write_bytes(b"no marker here")
    with pytest.raises(ValueError, match="exactly once"):
        cfg.stamp_library_hint(str(tmp_path / "other"), "/x")


def test_launcher_is_built_with_musl_when_available():
    """csrc/buildcfg.launcher_cc: musl-gcc when installed, never in a sanitizer build or
    with SOCKSIFY_LAUNCHER_LIBC=glibc (setup.py then links with the system compiler)."""
    cfg = _buildcfg()
    found = {"musl-gcc": "/usr/bin/musl-gcc"}.get
    assert cfg.launcher_cc({}, which=found) == "/usr/bin/musl-gcc"
    assert cfg.launcher_cc({"SOCKSIFY_LAUNCHER_LIBC": "musl"}, which=found) == "/usr/bin/musl-gcc"
    assert cfg.launcher_cc({"SOCKSIFY_LAUNCHER_LIBC": "glibc"}, which=found) is None
    assert cfg.launcher_cc({"SOCKSIFY_SANITIZE": "1"}, which=found) is None
    assert cfg.launcher_cc({}, which=lambda name: None) is None
    with pytest.raises(ValueError, match="SOCKSIFY_LAUNCHER_LIBC"):
        cfg.launcher_cc({"SOCKSIFY_LAUNCHER_LIBC": "uclibc"}, which=found)


def test_launcher_is_linked_with_musl_when_musl_gcc_is_installed(launcher):
    """The decision of csrc/buildcfg.launcher_cc reaches the binary: with musl-gcc on the
    machine (scripts/install-deps installs musl-tools) the launcher is a static musl binary,
    not a glibc one (whose start-up costs ~0.2 ms more per run). A build that fell back to
    glibc (the musl build failed) fails here instead of silently running slower."""
    if not shutil.which("musl-gcc"):
        pytest.skip("musl-gcc is not installed: the launcher is linked with the system libc")
    if os.environ.get("SOCKSIFY_LAUNCHER_LIBC", "").lower() == "glibc":
        pytest.skip("SOCKSIFY_LAUNCHER_LIBC=glibc chose the system libc")
    with open(launcher, "rb") as f:
        data = f.read()
    assert b"GLIBC_TUNABLES" not in data, f"{launcher} is linked with glibc"


def _elf_with_one_program_header(path, phoff, p_type):
    """A 64-bit ELF file whose only program header (of type p_type) is at offset phoff."""
    import struct

    header = (b"\x7fELF\x02\x01\x01" + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0, phoff, 0, 0, 64, 56, 1, 64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", p_type, 4, 0, 0, 0, 0, 0, 0x1000)
    path.write_bytes(header.ljust(phoff, b"\0") + phdr)
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("phoff", [64, 2048], ids=["headers-in-first-block", "headers-far"])
def test_program_headers_are_read_wherever_they_are(socksify_run, tmp_path, phoff):
    """The launcher reads the first KiB once and the program headers from it, or with
    pread() when they lie further: PT_INTERP found means dynamic (run, and the kernel
    refuses this fake), none means static (refused before running)."""
    static = _elf_with_one_program_header(tmp_path / "static", phoff, 1)  # PT_LOAD
    refused = socksify_run(["--proxy", "socks5://h", static])
    assert refused.returncode == 126 and b"is statically linked" in refused.stderr
    dynamic = _elf_with_one_program_header(tmp_path / "dynamic", phoff, 3)  # PT_INTERP
    ran = socksify_run(["--proxy", "socks5://h", dynamic])
    assert b"is statically linked" not in ran.stderr and ran.returncode != 0


def test_long_environment_values_reach_the_program(socksify_run):
    """The launcher builds the program's environment on the stack: long values (a long
    LD_PRELOAD, a long unrelated variable) arrive whole, the other variables unchanged."""
    long_value = "x" * 100_000
    preload = ":".join(f"/nonexistent/lib{i}.so" for i in range(2000))
    code = ("import os; e = os.environ; "
            "mine = [p for p in e['LD_PRELOAD'].split(':') if p.startswith('/nonexistent/')]; "
            "print(len(e['LONG_ONE']), len(mine), mine[0], mine[-1], e['KEPT'])")
    result = socksify_run(["--proxy", "socks5://127.0.0.1:1", sys.executable, "-c", code],
                          LONG_ONE=long_value, LD_PRELOAD=preload, KEPT="kept")
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.decode().split() == [
        "100000", "2000", "/nonexistent/lib0.so", "/nonexistent/lib1999.so", "kept"]
