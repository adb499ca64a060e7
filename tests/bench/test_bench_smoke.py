"""scripts/bench: the smoke pass CI runs (tiny sizes, one round), and the pure parts of the
harness (targets, table). Speed is never asserted here: only that every measure is present
and every subject that can run produced figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.peers import find_program

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import cli, report, results  # noqa: E402
from benchlib.results import DIRECT, Measure, Target  # noqa: E402

MEASURES = [m.key for _, m in cli.all_measures()]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One ``scripts/bench --smoke`` run shared by the checks below: (stdout, json)."""
    if not find_program("cc"):
        pytest.fail("scripts/bench needs a C compiler for its load generator "
                    "(apt-get install gcc)", pytrace=False)
    out = tmp_path_factory.mktemp("bench") / "results.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOCKSIFY_") and not k.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--no-install", "--json", str(out)],
        # cwd outside the checkout: `python -m socksify.run` must import the installed package
        capture_output=True, text=True, timeout=240, env=env, cwd=out.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.e2e
def test_smoke_table_has_every_measure(smoke):
    stdout, _ = smoke
    assert stdout.startswith("socksify benchmarks (SMOKE")
    assert "machine: " in stdout and "load average" in stdout
    for key in MEASURES:
        assert f"[{key}]" in stdout, f"measure {key} missing from the table"


@pytest.mark.e2e
def test_smoke_every_available_subject_has_figures(smoke):
    _, data = smoke
    assert [m["key"] for m in data["measures"]] == MEASURES
    problems = []
    for m in data["measures"]:
        assert m["rows"], f"{m['key']}: no subjects"
        for row in m["rows"]:
            where = f"{m['key']}/{row['subject']}"
            if row["status"] == "ok":
                assert row["rounds"] and math.isfinite(row["median"]), where
                # a memory delta over a few connections can be noise around zero
                assert row["median"] > 0 or m["key"] == "memory", where
                if m["key"].startswith("rate"):
                    assert row["p50_us"] > 0 and row["p99_us"] >= row["p50_us"], where
                    # the load generator's own CPU is in it: never zero
                    assert all(x > 0 for x in row["extra"]["load_cpu_us_per_conn"]), where
            elif row["status"] == "missing":
                # a peer that is not installed is reported with what to install; a measure
                # this machine cannot run (rate50core on one CPU) says what it needs
                assert "install" in row["note"] or "CPUs" in row["note"], where
                if os.environ.get("SOCKSIFY_REQUIRE_PEERS") == "1":
                    problems.append(f"{where}: MISSING: {row['note']}")
            else:
                problems.append(f"{where}: {row['status'].upper()}: {row['note']}")
        for target in m["targets"]:
            assert target["verdict"] in ("MET", "NOT MET", "UNKNOWN"), target
    assert not problems, "\n".join(problems)


@pytest.mark.e2e
def test_smoke_direct_is_the_baseline(smoke):
    _, data = smoke
    for m in data["measures"]:
        direct = [r for r in m["rows"] if r["subject"] == DIRECT]
        if direct and direct[0]["status"] == "ok":
            assert direct[0]["ratio"] == pytest.approx(1.0), m["key"]


def test_only_rejects_an_unknown_measure():
    proc = subprocess.run([sys.executable, str(BENCH), "--only", "relay1,nonsense"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown measure 'nonsense'" in proc.stderr


def test_only_expands_groups_in_table_order():
    args = cli.parse_args(["--smoke", "--only", "python,relay1"])
    assert args.selected == ["pyconnect", "pystartup", "relay1"]
    assert args.rounds == 1 and args.out is None


def _measure(values: dict[str, list[float]], higher: bool = True) -> Measure:
    m = Measure("x", "X", "MB/s", higher)
    for subject, rounds in values.items():
        m.row(subject).rounds.extend(rounds)
    return m


def test_targets_use_medians_and_report_missing_subjects():
    m = _measure({DIRECT: [100, 1000, 110], "ours": [60, 1, 70], "peer": [40, 50, 45]})
    assert m.ratio("ours") == pytest.approx(60 / 110)
    assert results.at_least("ours", 0.55, DIRECT)(m)[0] is False
    assert results.at_least("ours", 1.3, "peer")(m)[0] is True
    assert results.ahead_of_all("ours", ["peer", "absent"])(m)[0] is True
    assert "not measured: absent" in results.ahead_of_all("ours", ["peer", "absent"])(m)[1]
    m.row("peer").fail("missing", "peer not installed (apt-get install peer)")
    assert results.at_least("ours", 1.3, "peer")(m)[0] is None


def test_targets_say_in_how_many_rounds_they_held():
    m = _measure({DIRECT: [100, 100, 100], "ours": [60, 50, 70], "a": [40, 55, 30],
                  "b": [61, 20, 20]})
    # the medians meet it (0.60x) but round 2 (0.50x) did not
    assert results.at_least("ours", 0.55, DIRECT)(m) == (
        True, "0.60x direct (needs >= 0.55x); 2 of 3 rounds")
    # each round against the best peer of THAT round: b in round 1, a in round 2
    assert results.ahead_of_all("ours", ["a", "b"])(m)[1].endswith("; 1 of 3 rounds")
    assert results.within_factor("ours", DIRECT, 0.55)(m)[1].endswith("; 1 of 3 rounds")
    assert results.at_most("a", 40, "KiB")(m)[1].endswith("; 2 of 3 rounds")
    m.row("ours").p99.extend([5, 9, 5])
    m.row("a").p99.extend([6, 6, 6])
    assert results.p99_below("ours", "a")(m)[1].endswith("; 2 of 3 rounds")
    # a subject that failed in round 3 after two good rounds: only the paired rounds count
    m.row("b").rounds.pop()
    assert results.overhead_at_most("b", "a", 10, "ms")(m)[1].endswith("; 1 of 2 rounds")


def test_one_round_gives_no_round_count():
    m = _measure({DIRECT: [100], "ours": [60]})
    assert results.at_least("ours", 0.55, DIRECT)(m) == (True, "0.60x direct (needs >= 0.55x)")


def test_table_shows_missing_peers_and_verdicts():
    m = _measure({DIRECT: [10.0], "ours": [10.4]}, higher=False)
    m.row("gone").fail("missing", "gone not installed (apt-get install gone)")
    m.targets = [Target("ours <= direct + 0.5", results.overhead_at_most("ours", DIRECT, 0.5,
                                                                          "ms"))]
    text = report.measure_table(m)
    assert "MISSING: gone not installed (apt-get install gone)" in text
    assert "target: ours <= direct + 0.5: MET" in text
    assert "1.04x" in text


def test_a_missing_peer_names_its_package():
    from benchlib.processes import Unavailable, find_program

    with pytest.raises(Unavailable) as info:
        find_program("no-such-peer-socksify-bench")
    assert info.value.status == "missing"
    assert "apt-get install no-such-peer-socksify-bench" in str(info.value)


def test_curl_round_figure_is_the_median_of_its_runs():
    from benchlib.native_measures import round_value

    # one slow outlier (a context switch) does not move the figure; a mean would (+1.0)
    assert round_value([6.0, 6.2, 6.1, 16.1, 6.3]) == pytest.approx(6.2)
    assert round_value([5.0, 7.0]) == pytest.approx(6.0)
    with pytest.raises(ValueError):
        round_value([])


def test_curl_passes_rotate_the_subject_order():
    from benchlib.native_measures import pass_order

    subjects = ["a", "b", "c"]
    orders = [pass_order(subjects, n) for n in range(4)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    # every subject runs once per pass, and each leads a pass in turn
    assert all(sorted(order) == subjects for order in orders)
    assert pass_order([], 3) == []


def test_curl_targets_judge_the_preload_and_the_launcher():
    from benchlib.native_measures import CURL_OWN, CURL_TARGETS, PRELOAD, RUN

    m = _measure({CURL_OWN: [6.0, 6.1, 6.0], PRELOAD: [6.3, 6.4, 9.0], RUN: [6.6, 6.7, 6.6]},
                 higher=False)
    verdicts = [t.check(m) for t in CURL_TARGETS]
    assert [met for met, _ in verdicts] == [True, False]
    assert "+0.40 ms over curl --socks5-hostname" in verdicts[0][1]
    assert "+0.60 ms over curl --socks5-hostname" in verdicts[1][1]
    m.row(RUN).fail("failed", "exit 7")
    assert CURL_TARGETS[1].check(m)[0] is None


def test_an_interleaved_round_marks_only_the_subjects_it_reports(capsys):
    from benchlib.processes import Unavailable

    m = _measure({"ok": [], "broken": []})

    def step(measure, subjects):
        for s in subjects:
            measure.row(s).rounds.append(1.0)
        return {"broken": Unavailable("failed", "exit 7")}

    cli.run_guarded(m, ["ok", "broken"], None, step, m, ["ok"])
    assert m.row("ok").status == "ok" and m.row("ok").rounds == [1.0]
    assert (m.row("broken").status, m.row("broken").note) == ("failed", "exit 7")
    # no client proxy: every subject of the step is marked, the step does not run
    m2 = _measure({"x": [], "y": []})
    cli.run_guarded(m2, ["x", "y"], Unavailable("failed", "no proxy"), step, m2, ["x"])
    assert [m2.row(s).status for s in "xy"] == ["failed", "failed"]
    assert m2.row("x").rounds == []
    assert "no proxy" in capsys.readouterr().err


def test_cpu_split_gives_the_server_cpus_of_its_own():
    from benchlib.processes import Unavailable
    from benchlib.server_measures import cpu_split

    usable = os.sched_getaffinity(0)
    if len(usable) < 2:  # the measure reports what it needs instead of sharing one CPU
        with pytest.raises(Unavailable, match="needs 2 or more CPUs"):
            cpu_split()
        return
    server, clients = cpu_split()
    assert server and clients and not set(server) & set(clients)
    assert set(server) | set(clients) == usable


@pytest.mark.e2e
def test_a_pinned_socksify_server_runs_one_worker_per_cpu_it_may_use(tmp_path):
    from benchlib.processes import descendants, start_socksify_server

    cpu = min(os.sched_getaffinity(0))
    server = start_socksify_server(tmp_path, cpus=[cpu])
    try:
        tree = descendants(server.proc.pid)
        # workers = "auto" counts the CPUs the server may use: one, so no worker processes
        assert tree == [server.proc.pid]
        assert os.sched_getaffinity(server.proc.pid) == {cpu}
    finally:
        server.stop()
