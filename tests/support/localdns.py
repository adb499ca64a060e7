"""Run a program whose own name lookups must stay on this machine.

A test may send traffic to loopback only, but a program that resolves a name the test made
up asks the machine's DNS server. ``local_resolver_only(argv, workdir)`` wraps ``argv`` in a
private mount namespace (``unshare -m``, root only) whose /etc/resolv.conf names 127.0.0.1:
a lookup the program makes itself goes to loopback port 53, where nothing listens, and fails
at once. /etc/hosts is unchanged.
"""

import os
from pathlib import Path

import pytest

from .peers import require_peer


def local_resolver_only(argv: list[str], workdir: Path) -> list[str]:
    unshare = require_peer("unshare")
    require_peer("mount")
    if os.geteuid() != 0:
        pytest.skip("MISSING PRIVILEGE: needs root (unshare -m, mount --bind)")
    resolv = workdir / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    return [unshare, "-m", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv), *argv]
