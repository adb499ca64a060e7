"""The CI pass of the fuzzers: every target, a fixed seed, a small fixed number of inputs.

The long runs are ``scripts/fuzz --seconds N``; this keeps the targets themselves working
and replays every input that once broke one (``tests/vectors/regressions/``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _hardening_support import server_env

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from fuzzing import engines, seeds, targets  # noqa: E402

#: inputs per target in the CI pass (about a second for all targets together)
CI_INPUTS = 200
CI_SEED = 20261127


def _skip_if_unavailable(target):
    reason = target.unavailable()
    if reason:
        pytest.skip(f"{target.name}: {reason}")


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_fixed_seed_pass(name):
    target = targets.get(name)
    _skip_if_unavailable(target)
    result = engines.run_hypothesis(target, max_inputs=CI_INPUTS, seed=CI_SEED)
    assert result.failures == []
    assert result.inputs == CI_INPUTS


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_seed_corpus_passes(name):
    target = targets.get(name)
    _skip_if_unavailable(target)
    corpus = target.seeds()
    assert len(corpus) >= 5  # seeded from the shared vectors, not empty
    for data in corpus:
        target.check(data)


def _expected_exception(case) -> type:
    """The exception an open case fails with: the builtin its "error" names, else the
    target's FuzzFailure (a broken property)."""
    import builtins

    named = getattr(builtins, case["error"].split(":", 1)[0], None)
    if isinstance(named, type) and issubclass(named, Exception):
        return named
    return targets.FuzzFailure


def _regression_params():
    params = []
    for path in sorted(seeds.REGRESSIONS.glob("*.json")):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for case in doc["cases"]:
            marks = []
            if case.get("status") == "open":
                marks.append(pytest.mark.xfail(
                    strict=True, raises=_expected_exception(case), reason=f"bug: {case['error']}"
                ))
            params.append(pytest.param(path.stem, case, id=case["name"], marks=marks))
    return params


@pytest.mark.parametrize(("name", "case"), _regression_params())
def test_regression_case(name, case):
    """Each input a fuzzer once failed on: passes when fixed, xfails (strictly) until then."""
    target = targets.get(name)
    _skip_if_unavailable(target)
    if case.get("strict"):
        os.environ["SOCKSIFY_FUZZ_STRICT"] = "1"
    try:
        target.check(bytes.fromhex(case["hex"]))
    finally:
        os.environ.pop("SOCKSIFY_FUZZ_STRICT", None)


def test_a_broken_property_is_caught():
    """The engine reports the failing input instead of passing silently."""

    def check(data):
        if b"\x05" in data:
            raise targets.FuzzFailure("saw 0x05")

    fake = targets.Target("fake", "fails on 0x05", check, lambda: [b"\x05\x01\x00"])
    result = engines.run_hypothesis(fake, max_inputs=200, seed=1)
    assert len(result.failures) == 1
    assert b"\x05" in bytes.fromhex(result.failures[0]["hex"])
    assert "FuzzFailure: saw 0x05" in result.failures[0]["error"]


def test_fuzz_command_reports_inputs_and_time():
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "fuzz"), "--seconds", "1", "--target", "udp",
         "--engine", "hypothesis", "--seed", "3", "--json"],
        capture_output=True, text=True, timeout=120, env=server_env(),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["target"] == "udp" and result["failures"] == []
    assert result["inputs"] > 0 and result["seconds"] > 0


def test_fuzz_command_rejects_unknown_target():
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "fuzz"), "--target", "nope"],
        capture_output=True, text=True, timeout=60, env=server_env(),
    )
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
