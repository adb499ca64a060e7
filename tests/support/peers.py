"""Finding the real programs the end-to-end tests run.

A missing peer is never a quiet pass. Outside CI the test is skipped with a loud reason that
names the Debian package to install; with ``SOCKSIFY_REQUIRE_PEERS=1`` (set by ``.ci/run``)
it fails instead, because CI must have every peer.
"""

import os
import shutil

import pytest

#: program -> Debian package that provides it
PACKAGES = {
    "curl": "curl",
    "ncat": "ncat",
    "socat": "socat",
    "wget": "wget",
    "git": "git",
    "danted": "dante-server",
    "socksify": "dante-client",
    "microsocks": "microsocks",
    "proxychains4": "proxychains4",
    "dig": "dnsutils",
    "strace": "strace",
    "unshare": "util-linux",
    "torsocks": "torsocks",
    "cc": "gcc",
    "nm": "binutils",
    "mount": "mount",
    "ip": "iproute2",
    "objcopy": "binutils",
    "openssl": "openssl",
}

_SBIN = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/local/sbin"])


def find_program(name: str) -> str | None:
    """Absolute path of ``name`` on PATH (sbin directories included), or None."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def require_peer(name: str) -> str:
    """Return the absolute path of peer program ``name``, or skip/fail loudly without it."""
    path = find_program(name)
    if path:
        return path
    package = PACKAGES.get(name, name)
    message = f"MISSING PEER: {name!r} is not installed (apt-get install {package})"
    if os.environ.get("SOCKSIFY_REQUIRE_PEERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_module(name: str):
    """Import and return a test-only Python peer (PySocks, httpx, ...) or skip/fail loudly."""
    try:
        return __import__(name)
    except ImportError:
        message = f"MISSING PEER: Python module {name!r} is not installed (pip install it)"
        if os.environ.get("SOCKSIFY_REQUIRE_PEERS") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
