"""``python -m socksify``: argv, sys.path[0], exit status, tracebacks, usage errors."""

import json
import os
import sys
import textwrap

import pytest

from socksify import _preload

pytestmark = pytest.mark.e2e

PROXY = "socks5h://127.0.0.1:9"  # never contacted by these scripts

SHOW = """
    import json, os, sys, socket
    print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "name": __name__,
                      "patched": "connect" in vars(socket.socket)}))
"""


def test_script_argv_and_path(runner, tmp_path):
    path = runner.script(SHOW, "show.py")
    os.mkdir(tmp_path / "elsewhere")
    result = runner.run(
        ["--proxy", PROXY, path, "-x", "--proxy", "y", "--"], cwd=tmp_path / "elsewhere"
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["argv"] == [path, "-x", "--proxy", "y", "--"]
    assert shown["path0"] == str(tmp_path)
    assert shown["name"] == "__main__"
    assert shown["patched"] is True


def test_relative_script_path(runner, tmp_path):
    runner.script(SHOW, "show.py")
    result = runner.run(["--proxy", PROXY, "show.py", "a"])
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["argv"] == ["show.py", "a"]
    assert shown["path0"] == str(tmp_path)


def test_module_argv_and_path(runner, tmp_path):
    runner.script(SHOW, "showmod.py")
    result = runner.run(["--proxy", PROXY, "-m", "showmod", "-h", "--version"])
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["argv"] == [str(tmp_path / "showmod.py"), "-h", "--version"]
    assert shown["path0"] in ("", str(tmp_path))
    assert shown["name"] == "__main__"


def test_exit_status_is_the_scripts(runner):
    path = runner.script("import sys\nsys.exit(7)\n")
    assert runner.run(["--proxy", PROXY, path]).returncode == 7


def test_traceback_is_not_wrapped(runner):
    path = runner.script("def f():\n    raise ValueError('boom')\nf()\n", "crash.py")
    result = runner.run(["--proxy", PROXY, path])
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "ValueError: boom"
    assert 'crash.py", line 2, in f' in result.stderr
    assert "socksify" not in result.stderr.split("crash.py")[-1]


@pytest.mark.parametrize(
    "url, part",
    [
        ("http://127.0.0.1:3128", "socks4, socks4a, socks5, socks5h"),
        ("socks5://127.0.0.1:99999", "bad port '99999'"),
        ("socks5://[::1:1080", "unclosed '['"),
        ("socks5://", "empty host"),
    ],
)
def test_bad_url_is_exit_2_with_one_line(runner, url, part):
    path = runner.script("print('ran')\n")
    result = runner.run(["--proxy", url, path])
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("socksify: error: ")
    assert part in lines[0]


# "\udcff": the byte 0xFF (not UTF-8) as subprocess passes it in argv and the environment
@pytest.mark.parametrize(
    "url, part",
    [
        ("socks5://\udcff@h",
         r"user name is not UTF-8 after percent-decoding in 'socks5://\udcff@h'"),
        ("socks5://u:s3cr\udcffet@h",
         "password is not UTF-8 after percent-decoding in 'socks5://u:***@h'"),
        ("socks5://[fe80::1%25\udcff]",
         r"bad IPv6 zone id '\udcff' in 'socks5://[fe80::1%25\udcff]'"),
    ],
)
def test_url_that_is_not_utf8_is_exit_2(runner, url, part):
    path = runner.script("print('ran')\n")
    for args, env, source in (
        (["--proxy", url, path], {}, "--proxy"),
        ([path], {"SOCKSIFY_PROXY": url}, "SOCKSIFY_PROXY"),
    ):
        result = runner.run(args, env=env)
        assert result.returncode == 2, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert result.stderr == f"socksify: error: {source}: {part}\n"


def test_bad_url_in_environment(runner):
    path = runner.script("print('ran')\n")
    result = runner.run([path], env={"SOCKSIFY_PROXY": "socks5://h:0"})
    assert result.returncode == 2
    assert "SOCKSIFY_PROXY" in result.stderr and "bad port" in result.stderr


def test_no_proxy_configured_is_exit_2(runner):
    path = runner.script("print('ran')\n")
    result = runner.run([path], env={"ALL_PROXY": "http://web:3128"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no proxy configured" in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_proxy_and_all_proxy(runner):
    path = runner.script(
        "from socksify.patch import current_settings\nprint(current_settings().chain[0].host)\n"
    )
    result = runner.run([path], env={"ALL_PROXY": "socks5h://from-all-proxy:1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-all-proxy"
    result = runner.run([path], env={"ALL_PROXY": "socks5h://a:1", "SOCKSIFY_PROXY": "socks4://b"})
    assert result.stdout.strip() == "b"


def test_missing_script_and_missing_target(runner):
    result = runner.run(["--proxy", PROXY, "no-such-script.py"])
    assert result.returncode == 2 and "no-such-script.py" in result.stderr
    result = runner.run(["--proxy", PROXY])
    assert result.returncode == 2 and "socksify: error:" in result.stderr


def test_log_level_debug_prefixes_lines(runner):
    path = runner.script("print('ran')\n")
    result = runner.run(["--proxy", PROXY, "--log-level", "debug", path])
    assert result.returncode == 0
    assert result.stderr.splitlines()[0].startswith("socksify: patched: proxy socks5h://")
    result = runner.run(["--proxy", PROXY, "--log-level", "loud", path])
    assert result.returncode == 2 and "log level" in result.stderr


def test_native_program_after_double_dash(runner):
    show = "import os; print(os.environ['SOCKSIFY_PROXY'], *os.environ['LD_PRELOAD'].split(':'))"
    result = runner.run(["--proxy", PROXY, "--", sys.executable, "-c", show])
    # With the native shim built this runs the program under LD_PRELOAD; without it, a
    # usage error that says so. Never a traceback, never an unproxied run.
    try:
        library = _preload.library_path()
    except FileNotFoundError:
        assert result.returncode == 1
        assert "socksify: error:" in result.stderr and "native shim" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
    else:
        assert result.returncode == 0, result.stderr
        proxy, *preloaded = result.stdout.split()
        assert proxy == PROXY and library in preloaded
    result = runner.run(["--proxy", PROXY, "--"])
    assert result.returncode == 2


def test_missing_module_is_exit_1_like_python(runner):
    result = runner.run(["--proxy", PROXY, "-m", "no_such_module_here"])
    assert result.returncode == 1
    assert "No module named 'no_such_module_here'" in result.stderr
    assert "Traceback" not in result.stderr


def test_directory_with_main(runner, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "__main__.py").write_text(textwrap.dedent(SHOW))
    result = runner.run(["--proxy", PROXY, str(app), "x"])
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["path0"] == str(app)
    assert shown["argv"] == [str(app), "x"]
