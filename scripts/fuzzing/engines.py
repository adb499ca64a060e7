"""Two ways to feed a target: hypothesis (always installed for the tests) and atheris.

- ``run_hypothesis``: property-based. Inputs are random bytes or seeds from the vectors with
  a few mutations (flip, insert, delete, duplicate, splice, interesting values). Hypothesis
  has no time budget, so it runs in batches of ``batch`` inputs, each with its own seed,
  until the time is up or ``max_inputs`` were tried. A failure is shrunk to a small input.
  With a fixed seed and ``max_inputs`` it is deterministic (the CI pass).
- ``run_atheris``: coverage-guided (libFuzzer through atheris, Python bytecode coverage).
  ``atheris.Fuzz()`` never returns, so ``scripts/fuzz`` runs it in a child process and reads
  libFuzzer's final statistics.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field

from .targets import Target

__all__ = ["Result", "mutated_inputs", "run_hypothesis"]


@dataclass
class Result:
    target: str
    engine: str
    inputs: int = 0
    seconds: float = 0.0
    #: failing inputs: {"hex": ..., "error": "ExcType: message"}
    failures: list = field(default_factory=list)
    skipped: str | None = None


# Values that often sit on a boundary of a length or code byte.
_INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x7F, 0x80, 0xFE, 0xFF, 0x5A, 0x5B)


def _mutate(seed: bytes, ops: list, other: bytes, tokens: tuple = ()) -> bytes:
    data = bytearray(seed)
    for kind, where, blob in ops:
        pos = where % (len(data) + 1)
        if kind == 0 and data:  # flip bits
            data[pos % len(data)] ^= (blob[0] if blob else 1) or 1
        elif kind == 1:  # insert bytes
            data[pos:pos] = blob
        elif kind == 2:  # delete a range
            del data[pos : pos + 1 + len(blob)]
        elif kind == 3:  # truncate
            del data[pos:]
        elif kind == 4 and data:  # interesting value
            data[pos % len(data)] = _INTERESTING[(blob[0] if blob else 0) % len(_INTERESTING)]
        elif kind == 5:  # duplicate a range
            data[pos:pos] = data[pos : pos + 1 + 4 * len(blob)]
        elif kind == 6:  # splice another seed in
            data[pos:] = other[where % (len(other) + 1) :]
        elif kind == 7 and tokens:  # insert a dictionary token
            data[pos:pos] = tokens[(blob[0] if blob else where) % len(tokens)]
    return bytes(data)


def mutated_inputs(seeds: list[bytes], tokens: tuple = ()):
    """A hypothesis strategy: random bytes, or a seed with up to four mutations (some insert
    dictionary ``tokens``)."""
    from hypothesis import strategies as st

    if not seeds:
        return st.binary(max_size=512)
    op = st.tuples(st.integers(0, 7), st.integers(0, 1 << 16), st.binary(max_size=8))
    mutated = st.builds(
        _mutate, st.sampled_from(seeds), st.lists(op, max_size=4), st.sampled_from(seeds),
        st.just(tuple(tokens)),
    )
    return st.one_of(st.binary(max_size=512), st.sampled_from(seeds), mutated, mutated)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:500]}{where}"


def run_hypothesis(
    target: Target,
    *,
    seconds: float | None = None,
    max_inputs: int | None = None,
    seed: int = 0,
    batch: int = 500,
    current_input_fd: int | None = None,
) -> Result:
    """Fuzz ``target`` until ``seconds`` pass or ``max_inputs`` were tried (whichever first).

    Stops at the first failure (after hypothesis shrank it). ``current_input_fd``, if given,
    receives each input before it runs, so a crash of the whole process (a native target)
    leaves the input behind.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    result = Result(target.name, "hypothesis")
    reason = target.unavailable()
    if reason:
        result.skipped = reason
        return result
    if seconds is None and max_inputs is None:
        raise ValueError("give seconds or max_inputs")
    strategy = mutated_inputs(target.seeds(), target.dictionary)
    failing: list = []
    start = time.monotonic()
    deadline = start + seconds if seconds is not None else None

    def one(data: bytes) -> None:
        result.inputs += 1
        if current_input_fd is not None:
            os.ftruncate(current_input_fd, 0)
            os.pwrite(current_input_fd, data, 0)
        try:
            target.check(data)
        except Exception as exc:
            failing[:] = [data, exc]
            raise

    round_no = 0
    while True:
        todo = batch
        if max_inputs is not None:
            todo = min(todo, max_inputs - result.inputs)
        if todo <= 0 or (deadline is not None and time.monotonic() >= deadline):
            break
        test = settings(
            max_examples=todo,
            deadline=None,
            database=None,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
        )(hypothesis_seed(seed * 100_003 + round_no)(given(strategy)(one)))
        round_no += 1
        before = result.inputs
        try:
            test()
        except Exception as exc:
            data, error = failing if failing else (b"", exc)
            result.failures.append({"hex": data.hex(), "error": _describe(error)})
            break
        if result.inputs == before:  # hypothesis found nothing new to try
            break
    result.seconds = round(time.monotonic() - start, 2)
    return result


def run_atheris(target: Target, *, seconds: float, seed: int, corpus_dir: str,
                artifact_dir: str, max_inputs: int | None = None) -> None:
    """Coverage-guided fuzzing in this process; never returns (libFuzzer exits)."""
    import sys

    import atheris

    reason = target.unavailable()
    if reason:
        print(f"SKIPPED: {reason}", file=sys.stderr, flush=True)
        sys.exit(0)
    for index, data in enumerate(target.seeds()):
        with open(os.path.join(corpus_dir, f"seed-{index:04d}"), "wb") as f:
            f.write(data)
    check = target.check

    def one(data: bytes) -> None:
        check(data)

    argv = [sys.argv[0]]
    if target.dictionary:
        # libFuzzer dictionary format: one quoted token a line, \xNN escapes.
        path = os.path.join(artifact_dir, "tokens.dict")
        with open(path, "w") as f:
            for token in target.dictionary:
                f.write('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n')
        argv.append(f"-dict={path}")
    argv += [
        f"-max_total_time={max(1, int(seconds))}",
        f"-seed={seed or 1}",
        "-print_final_stats=1",
        "-max_len=4096",
        "-rss_limit_mb=2048",
        "-timeout=10",
        f"-artifact_prefix={artifact_dir.rstrip('/')}/",
        corpus_dir,
    ]
    if max_inputs:
        argv.insert(2, f"-runs={max_inputs}")
    atheris.Setup(argv, one)
    atheris.Fuzz()
