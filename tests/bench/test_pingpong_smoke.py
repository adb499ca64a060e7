"""scripts/bench_server_pingpong.py: a short run measures socksify-server with its event
loop's spin and without it, at each pause asked for. Speed is never asserted: only that
the script works and the variant without the spin is really started without it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_server_pingpong.py"


@pytest.mark.e2e
def test_a_short_run_reports_both_variants_at_each_pause(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOCKSIFY_") and not k.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--exchanges", "200", "--pause-us", "0,50",
         "--rounds", "1"],
        # cwd outside the checkout: the server must import the installed package
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r"^\s*(\d+)us\s+(spin|no spin)\s+([\d.]+) us\s+([\d.]+) us$",
                      proc.stdout, re.M)
    assert [(pause, name) for pause, name, _, _ in rows] == [
        ("0", "spin"), ("0", "no spin"), ("50", "spin"), ("50", "no spin")], proc.stdout
    # CPU is counted in clock ticks (0 can be right); every round trip takes time
    assert all(float(wall) > 0 for _, _, _, wall in rows), proc.stdout


@pytest.mark.parametrize("polls, spins", [(0, [0, 0, 0]), (30, [4, 8, 16])])
def test_the_variant_without_the_spin_never_spins(monkeypatch, polls, spins):
    """The switch the script uses (SPIN_POLLS = 0) keeps every spin at 0 polls, where the
    shipped value lets quiet moments that end soon grow it."""
    from support.spin import with_arrivals

    from socksify.server import _eventloop

    monkeypatch.setattr(_eventloop, "SPIN_POLLS", polls)
    monkeypatch.setattr(_eventloop, "_clock", lambda: 0.0)  # every quiet moment: short
    selector = _eventloop.SharedEpollSelector()
    arrivals = with_arrivals(selector)
    r, w = os.pipe()
    try:
        selector.attach(lambda events: None, 8)
        selector.epoll.register(r, 1)
        seen = []
        for _ in range(3):
            os.write(w, b"x")  # activity
            selector.select(1)
            os.read(r, 1)
            arrivals.on_block = lambda: os.write(w, b"y")  # a quiet moment, then a byte
            selector.select(5)
            os.read(r, 1)
            seen.append(selector._spins)
        assert seen == spins
    finally:
        selector.close()
        os.close(r)
        os.close(w)
