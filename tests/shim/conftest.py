"""Helpers for the Python shim's tests.

The reference server fixture runs IN this process, so code under ``socksify.patch()`` runs
in a child process (``python -m socksify ...``), where it cannot proxy the server's own
outbound connections back into the server. In-process tests of the patch use no proxy at
all, or a proxy in another process (microsocks).
"""

import os
import subprocess
import sys
import textwrap

import pytest

#: variables that would change which proxy a child uses
_PROXY_VARIABLES = (
    "SOCKSIFY_PROXY",
    "SOCKSIFY_NO_PROXY",
    "SOCKSIFY_LOG",
    "SOCKSIFY_DNS_RANGE",
    "ALL_PROXY",
    "all_proxy",
)


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env.update(extra)
    return env


class Runner:
    """Runs ``python -m socksify [args] script.py`` with a script written from text."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.count = 0

    def script(self, text: str, name: str | None = None) -> str:
        self.count += 1
        path = self.tmp_path / (name or f"script{self.count}.py")
        path.write_text(textwrap.dedent(text))
        return str(path)

    def run(self, args, *, env=None, timeout=60, python=sys.executable, cwd=None, stdin=None):
        return subprocess.run(
            [python, "-m", "socksify", *args],
            capture_output=True,
            text=True,
            env=clean_env(**(env or {})),
            timeout=timeout,
            cwd=cwd or self.tmp_path,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
        )

    def start(self, args, *, stdin=None) -> subprocess.Popen:
        """``python -m socksify [args]`` left running (text pipes), for a test that talks to
        it while it runs."""
        return subprocess.Popen(
            [sys.executable, "-m", "socksify", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )

    def run_script(self, proxy: str, text: str, *script_args, options=(), env=None, timeout=60):
        """Run ``text`` patched with ``--proxy proxy``; assert exit 0; return stdout."""
        path = self.script(text)
        result = self.run(
            ["--proxy", proxy, *options, path, *script_args], env=env, timeout=timeout
        )
        assert result.returncode == 0, (
            f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result.stdout


@pytest.fixture
def runner(tmp_path):
    return Runner(tmp_path)


from support.ftp import ftp_server  # noqa: E402,F401  (fixture, registered here for tests/shim)
