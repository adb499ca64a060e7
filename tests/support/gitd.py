"""``git_daemon``: a real ``git daemon`` serving one small bare repository on loopback.

The fixture gives a :class:`GitDaemon` with ``.host``, ``.port``, ``.url`` (the
``git://127.0.0.1:PORT/repo.git`` URL to clone), ``.head`` (the commit id a clone must end up
at) and ``.files`` (path -> bytes committed to the repository). The daemon runs with
``--export-all --reuseaddr`` on a free port and is stopped after the test. Every wait is
bounded: the fixture fails if the daemon is not ready within 10 seconds.
"""

import contextlib
import os
import socket
import subprocess
import time

import pytest

from support.peers import require_peer

_READY_TIMEOUT = 30.0  # generous: git daemon starts slowly on a loaded machine

FILES = {
    "README": b"a small repository served by git daemon for socksify tests\n",
    "data/numbers.txt": b"".join(b"%d\n" % i for i in range(2000)),
}


def _git(git: str, *args: str, cwd: str, env: dict) -> str:
    result = subprocess.run(
        [git, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.strip()


def _free_port() -> int:
    # git daemon has no "port 0, tell me the port" mode, so pick a free one and retry on a race
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def git_env(home: str) -> dict:
    """An environment that keeps git away from the user's and the system's configuration."""
    env = dict(os.environ)
    env.update(
        HOME=home,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME="socksify tests",
        GIT_AUTHOR_EMAIL="tests@socksify.invalid",
        GIT_COMMITTER_NAME="socksify tests",
        GIT_COMMITTER_EMAIL="tests@socksify.invalid",
        GIT_TERMINAL_PROMPT="0",
    )
    return env


class GitDaemon:
    def __init__(self, base: str, git: str):
        self.host = "127.0.0.1"
        self.files = dict(FILES)
        env = git_env(base)
        work = os.path.join(base, "work")
        os.makedirs(work)
        for path, content in self.files.items():
            full = os.path.join(work, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as fh:
                fh.write(content)
        _git(git, "init", "-q", "-b", "main", cwd=work, env=env)
        _git(git, "add", ".", cwd=work, env=env)
        _git(git, "commit", "-q", "-m", "initial", cwd=work, env=env)
        self.head = _git(git, "rev-parse", "HEAD", cwd=work, env=env)
        self.root = os.path.join(base, "srv")
        os.makedirs(self.root)
        _git(
            git,
            "clone",
            "-q",
            "--bare",
            work,
            os.path.join(self.root, "repo.git"),
            cwd=base,
            env=env,
        )
        self.process = None
        for _attempt in range(5):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [
                    git,
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    f"--base-path={self.root}",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                    "--informative-errors",
                    self.root,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                break
            self.stop()
        else:
            raise RuntimeError("git daemon did not start listening within the time limit")
        self.url = f"git://{self.host}:{self.port}/repo.git"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # exited: most likely lost the port race
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1),
            ):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture
def git_daemon(tmp_path):
    daemon = GitDaemon(str(tmp_path / "gitd"), require_peer("git"))
    yield daemon
    daemon.stop()
