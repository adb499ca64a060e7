"""socksify-run and socksify._preload: locating the library, the environment, exec, and
refusing programs the loader will not preload into (static, set-uid/set-gid)."""

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


def test_print_library(shim, libsocksify):
    result = shim.run_cli(["--print-library"])
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


def test_environment_reaches_the_program_and_exit_status_passes_through(shim):
    result = shim.run_cli(
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


def test_flags_win_over_the_environment(shim):
    result = shim.run_cli(["--proxy", "socks4://127.0.0.1:5", "sh", "-c", "echo $SOCKSIFY_PROXY"],
                          SOCKSIFY_PROXY="socks5://127.0.0.1:6")
    assert result.stdout.strip() == b"socks4://127.0.0.1:5"


def test_program_arguments_pass_through(shim):
    result = shim.run_cli(["--proxy", "socks5://h", "--", "sh", "-c", 'echo "$@"', "sh",
                           "--proxy", "x", "-v"])
    assert result.returncode == 0
    assert result.stdout.strip() == b"--proxy x -v"


@pytest.mark.parametrize("args, message", [
    (["--proxy", "http://127.0.0.1:3128", "true"], b"unsupported scheme"),
    (["--proxy", "socks5://h:99999", "true"], b"bad port '99999'"),
    (["true"], b"no proxy configured"),
    (["--proxy", "socks5://h"], b"no command given"),
    (["--proxy", "socks5://h", "--log-level", "loud", "true"], b"bad log level"),
])
def test_usage_errors_exit_2(shim, args, message):
    result = shim.run_cli(args)
    assert result.returncode == 2
    assert result.stderr.startswith(b"socksify: error: ") and message in result.stderr
    assert b"Traceback" not in result.stderr


def test_all_proxy_socks_url_is_used(shim):
    result = shim.run_cli(["sh", "-c", "echo $SOCKSIFY_PROXY"], ALL_PROXY="socks5h://10.0.0.1:7")
    assert result.stdout.strip() == b"socks5h://10.0.0.1:7"


def test_missing_program_exits_127(shim):
    result = shim.run_cli(["--proxy", "socks5://h", "no-such-program-xyz"])
    assert result.returncode == 127
    assert b"no-such-program-xyz: command not found" in result.stderr


@pytest.fixture(scope="module")
def static_binary(tmp_path_factory):
    cc = require_peer("cc")
    src = tmp_path_factory.mktemp("static") / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void){puts("static");return 0;}\n')
    out = src.with_suffix("")
    build = subprocess.run([cc, "-static", "-o", str(out), str(src)], capture_output=True,
                           timeout=60)
    if build.returncode != 0:
        pytest.fail(f"cannot link a static binary (libc6-dev has libc.a): {build.stderr}")
    return str(out)


def test_static_binary_is_refused(shim, static_binary):
    result = shim.run_cli(["--proxy", "socks5://h", static_binary])
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
def test_setuid_and_setgid_binaries_are_refused(shim, tmp_path, bit):
    copy = tmp_path / "true"
    shutil.copy(shutil.which("true"), copy)
    copy.chmod(0o755 | bit)
    if not os.stat(copy).st_mode & bit:
        pytest.fail("this file system drops set-id bits; cannot test")
    result = shim.run_cli(["--proxy", "socks5://h", str(copy)])
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
def test_socksify_run_curl_end_to_end(shim, socks_server, http_server):
    srv = socks_server(hosts={"only-proxy.test": "127.0.0.1"})
    curl = require_peer("curl")
    result = shim.run_cli(["--proxy", srv.url("socks5h"), "--", curl, "-sS", "--max-time", "20",
                           http_server.url("/", host="only-proxy.test")])
    assert result.returncode == 0, result.stderr
    assert b"hello from the target" in result.stdout
    assert srv.wait_records(1)[0]["destination"] == "only-proxy.test"


@pytest.mark.e2e
def test_socksify_run_passes_curls_failure_status(shim, http_server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    curl = require_peer("curl")
    result = shim.run_cli(["--proxy", f"socks5://127.0.0.1:{dead}", curl, "-sS",
                           "--max-time", "20", http_server.url("/")])
    assert result.returncode == 7
    assert http_server.requests == []


def test_go_programs_are_refused(shim, tmp_path):
    """Go's net package makes raw system calls: the shim would see nothing, so refuse."""
    objcopy = require_peer("objcopy")
    note = tmp_path / "buildid"
    note.write_bytes(b"\x04\x00\x00\x00\x08\x00\x00\x00\x04\x00\x00\x00Go\x00\x00fakeid00")
    fake_go = tmp_path / "gotool"
    subprocess.run([objcopy, "--add-section", f".note.go.buildid={note}", shutil.which("true"),
                    str(fake_go)], check=True, capture_output=True, timeout=60)
    fake_go.chmod(0o755)
    result = shim.run_cli(["--proxy", "socks5://h", str(fake_go)])
    assert result.returncode == 126
    assert b"is a Go program" in result.stderr
    assert _preload.check_program(shutil.which("true"))  # the original is fine
