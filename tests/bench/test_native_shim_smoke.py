"""scripts/bench_native_shim.py: a tiny run measures every curl variant and prints a figure
for each. Speed is never asserted: only that the script works, so the README's figures from
it can be reproduced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.peers import require_peer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_native_shim.py"
ALWAYS = ["plain curl (direct)", "curl --socks5-hostname", "python -m socksify.run curl",
          "LD_PRELOAD=libsocksify.so curl"]
#: rows that need the page named by a name only the proxy resolves (root: unshare -m)
BY_NAME = ["LD_PRELOAD=libsocksify.so curl, IP literal", "curl --socks5, IP literal",
           "empty LD_PRELOAD, curl --socks5, IP"]


@pytest.mark.e2e
def test_a_tiny_run_gives_every_curl_variant_a_figure(tmp_path):
    for peer in ("curl", "microsocks", "cc"):
        require_peer(peer)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOCKSIFY_") and not k.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "1", "--connects", "10", "--passes", "1000",
         "--perf-runs", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    section = proc.stdout.split("\n1. ", 1)[1].split("\n2. ", 1)[0]
    rows = dict(re.findall(r"^   (\S.*?)\s+(\d+\.\d\d)\s+[-+]\d", section, re.M))
    expected = ALWAYS + (BY_NAME if "by name (remote DNS)" in section else [])
    missing = [name for name in expected if name not in rows]
    assert not missing, section
    assert all(float(rows[name]) > 0 for name in expected), section
