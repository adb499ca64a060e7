"""scripts/bench_protocol_core.py: a short run replays every sequence (each checks the bytes
and events it produces first) and reports a figure for each. Speed is never asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_protocol_core.py"
SEQUENCES = ["server-s5-ipv4", "server-s5-domain", "server-s4", "client-s5-ipv4",
             "client-s5-domain", "client-s4"]


def test_a_short_run_checks_and_times_every_sequence(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--number", "50", "--repeat", "1"],
        # cwd outside the checkout: the installed package is what is timed
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"(\S+)\s+([\d.]+)\s+([\d.]+)$", line)
        if match:
            rows[match[1]] = float(match[2])
    assert sorted(rows) == sorted(SEQUENCES), proc.stdout
    assert all(value > 0 for value in rows.values()), proc.stdout
