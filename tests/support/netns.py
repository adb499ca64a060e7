"""Run a Python script in a new, empty network namespace (``unshare -n``, root only) where
only loopback is up: nothing it does can reach another address, so a test may let a server
fail a DNS lookup, or connect toward a far address, there.

``run_in_empty_netns(script, path=[...])`` puts ``path`` first on the script's ``sys.path``
(for test helpers) and returns the finished process (bounded by ``timeout``).
"""

import os
import subprocess
import sys
import textwrap

import pytest

from .peers import require_peer

_PROLOGUE = """\
import subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
sys.path[:0] = {path!r}
"""


def run_in_empty_netns(script: str, *, path=(), timeout: float = 60
                       ) -> subprocess.CompletedProcess:
    unshare = require_peer("unshare")
    require_peer("ip")  # brings loopback up inside
    if os.geteuid() != 0:
        pytest.skip("MISSING PRIVILEGE: needs root (unshare -n)")
    code = _PROLOGUE.format(path=[str(p) for p in path]) + textwrap.dedent(script)
    return subprocess.run([unshare, "-n", sys.executable, "-c", code], capture_output=True,
                          timeout=timeout)
