"""scripts/bench_rate_floor.py: one short round runs every subject (socksify-server, also
with another worker count, microsocks, the four bare Python servers and the bare C one)
and reports figures for each. Speed is never asserted: only that the script works, so its
README figures can be reproduced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.peers import find_program, require_peer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_rate_floor.py"
SUBJECTS = ["socksify-server", "socksify (workers=1)", "microsocks", "bare Python (asyncio)",
            "bare Python (nested)", "bare Python (merged)", "bare Python (epoll)",
            "bare C (epoll)"]


@pytest.mark.e2e
def test_one_round_reports_every_subject(tmp_path):
    require_peer("microsocks")
    if not find_program("cc"):
        pytest.fail("bench_rate_floor needs a C compiler for its load generator "
                    "(apt-get install gcc)", pytrace=False)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOCKSIFY_") and not k.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--millis", "200",
         "--concurrency", "10", "--workers", "1"],
        # cwd outside the checkout: the server must import the installed package
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"(.+?)\s+(\d+)\s+([\d.]+)x\s+(\d+)$", line)
        if match:
            rows[match[1]] = (int(match[2]), int(match[4]))
    assert sorted(rows) == sorted(SUBJECTS), proc.stdout
    for name, (rate, _cpu) in rows.items():  # CPU is counted in clock ticks: 0 can be right
        assert rate > 0, (name, proc.stdout)
