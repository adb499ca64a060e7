"""The leak audit, end to end: scripts/leak-audit inside ``unshare -n``.

curl, wget, git, python3 urllib, requests, asyncio, dig and a getaddrinfo_a program run
under each shim (the Python shim runs the Python programs) with socks5h, under ``strace
-f``, in a network namespace where only loopback exists and only the proxy knows the names.
Every connect() and datagram must go to the proxy (its TCP port or one of its UDP relays);
with the proxy down, each program must fail and try nothing but the proxy.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.peers import require_module, require_peer

from ._scripts import SCRIPTS

pytestmark = pytest.mark.e2e

NATIVE_ONLY = {"curl", "wget", "git", "dig", "getaddrinfo_a"}
EVERY_PROGRAM = NATIVE_ONLY | {"python3 urllib", "requests", "asyncio"}


@pytest.fixture(scope="module")
def audit_rows():
    for peer in ("unshare", "strace", "curl", "wget", "git", "dig", "cc"):
        require_peer(peer)
    require_module("requests")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"MISSING PRIVILEGE: cannot create a network namespace: {probe.stderr!r}")
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "leak-audit"), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_every_program_ran_under_each_shim(audit_rows):
    ran = {(row["program"], row["shim"], row["proxy"]) for row in audit_rows if row["ran"]}
    expected = {
        (program, shim, proxy)
        for program in EVERY_PROGRAM
        for shim in ("python", "native")
        for proxy in ("up", "down")
        if not (shim == "python" and program in NATIVE_ONLY)
    }
    assert ran == expected


@pytest.mark.parametrize("proxy", ["up", "down"])
def test_nothing_goes_anywhere_but_the_proxy(audit_rows, proxy):
    rows = [row for row in audit_rows if row["ran"] and row["proxy"] == proxy]
    leaks = {f"{row['program']} ({row['shim']})": row["leaks"] for row in rows if row["leaks"]}
    assert leaks == {}
    # the trace saw the program's connection (so the check could have failed)
    assert all(row["connects"] >= 1 for row in rows)


def test_programs_work_with_the_proxy_up_and_fail_closed_with_it_down(audit_rows):
    bad = {
        f"{row['program']} ({row['shim']}, proxy {row['proxy']})": row["detail"]
        for row in audit_rows
        if row["ran"] and not row["worked"]
    }
    assert bad == {}


def test_dig_datagrams_went_to_the_relay(audit_rows):
    (row,) = [r for r in audit_rows if r["program"] == "dig" and r["proxy"] == "up" and r["ran"]]
    assert row["datagrams"] >= 1
    (down,) = [r for r in audit_rows if r["program"] == "dig" and r["proxy"] == "down"
               and r["ran"]]
    assert down["datagrams"] == 0
