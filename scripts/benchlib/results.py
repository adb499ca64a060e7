"""Results: one :class:`Measure` per row group of the table, one :class:`Row` per subject,
per-round figures reduced to medians, and the issue's targets checked against them."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

DIRECT = "direct"


@dataclass
class Row:
    """One subject in one measure. ``rounds`` holds the main figure of each round,
    ``p50``/``p99`` per-round latency percentiles (µs) where the measure has them."""

    subject: str
    rounds: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    status: str = "ok"  # ok | missing | failed
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.rounds) if self.rounds else None

    @property
    def p50_median(self) -> float | None:
        return statistics.median(self.p50) if self.p50 else None

    @property
    def p99_median(self) -> float | None:
        return statistics.median(self.p99) if self.p99 else None

    def extra_median(self, key: str) -> float | None:
        values = self.extra.get(key)
        return statistics.median(values) if values else None

    def fail(self, status: str, note: str) -> None:
        """Mark the row missing/failed; figures of earlier rounds are kept but the row no
        longer counts (a subject that fails in one round is not half-measured)."""
        self.status = status
        self.note = note


@dataclass
class Target:
    """A target from the issue: ``check(measure) -> (met: bool | None, detail)``; None when
    a subject it needs is missing."""

    text: str
    check: Callable[[Measure], tuple[bool | None, str]]


@dataclass
class Measure:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    #: what one round does, for the table header
    method: str = ""
    rows: dict[str, Row] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    has_latency: bool = False
    #: the subject ratios are taken to
    baseline: str = DIRECT
    #: (key in Row.extra holding per-round values, column header): shown as medians
    extra_columns: list[tuple[str, str]] = field(default_factory=list)

    def row(self, subject: str) -> Row:
        return self.rows.setdefault(subject, Row(subject))

    def value(self, subject: str, attr: str = "median") -> float | None:
        row = self.rows.get(subject)
        if row is None or row.status != "ok":
            return None
        return getattr(row, attr)

    def ratio(self, subject: str) -> float | None:
        base, value = self.value(self.baseline), self.value(subject)
        if base in (None, 0) or value is None:
            return None
        return value / base

    def to_json(self) -> dict:
        return {
            "key": self.key, "title": self.title, "unit": self.unit, "method": self.method,
            "higher_is_better": self.higher_is_better, "baseline": self.baseline,
            "rows": [
                {"subject": r.subject, "status": r.status, "note": r.note,
                 "median": r.median, "rounds": r.rounds, "ratio": self.ratio(r.subject),
                 "p50_us": r.p50_median, "p99_us": r.p99_median, "p50_rounds": r.p50,
                 "p99_rounds": r.p99, "extra": r.extra}
                for r in self.rows.values()
            ],
            "targets": [self._target_json(t) for t in self.targets],
        }

    def _target_json(self, target: Target) -> dict:
        met, detail = target.check(self)
        return {"text": target.text, "met": met, "verdict": verdict(met), "detail": detail}


def verdict(met: bool | None) -> str:
    return {True: "MET", False: "NOT MET", None: "UNKNOWN"}[met]


def rounds_agreeing(m: Measure, holds: Callable[..., bool], *subjects: str,
                    series: str = "rounds") -> str:
    """In how many rounds ``holds(figure of each subject)`` is true, as "; k of n rounds".

    The verdict is taken on medians; this shows how firm it is: a target met by the
    medians but in 3 rounds of 5 passes or fails with the run. Round ``i`` of every
    subject is the same pass of the benchmark (subjects run in turn within a round).
    Empty with a single round (the count would repeat the verdict).
    """
    per_subject = [getattr(m.rows[s], series) for s in subjects]
    # stops at the shortest: a subject that failed in a later round
    paired = list(zip(*per_subject, strict=False))
    if len(paired) < 2:
        return ""
    return f"; {sum(bool(holds(*figures)) for figures in paired)} of {len(paired)} rounds"


def at_least(subject: str, factor: float, other: str) -> Callable:
    """``subject`` >= ``factor`` x ``other`` (medians)."""
    def check(m: Measure):
        a, b = m.value(subject), m.value(other)
        if a is None or b is None:
            return None, f"needs {subject} and {other}"
        if not b:
            return a >= factor * b, "n/a"
        firm = rounds_agreeing(m, lambda x, y: x >= factor * y, subject, other)
        return a >= factor * b, f"{a / b:.2f}x {other} (needs >= {factor:g}x){firm}"
    return check


def ahead_of_all(subject: str, others: list[str]) -> Callable:
    def check(m: Measure):
        a = m.value(subject)
        present = [o for o in others if m.value(o) is not None]
        if a is None or not present:
            return None, f"needs {subject} and a peer"
        missing = [o for o in others if o not in present]
        best = max(present, key=lambda o: m.value(o))
        detail = f"{a / m.value(best):.2f}x the best peer ({best})"
        detail += rounds_agreeing(m, lambda x, *peers: x > max(peers), subject, *present)
        if missing:
            detail += f"; not measured: {', '.join(missing)}"
        return a > m.value(best), detail
    return check


def p99_below(subject: str, other: str) -> Callable:
    def check(m: Measure):
        a, b = m.value(subject, "p99_median"), m.value(other, "p99_median")
        if a is None or b is None:
            return None, f"needs {subject} and {other}"
        firm = rounds_agreeing(m, lambda x, y: x < y, subject, other, series="p99")
        return a < b, f"p99 {a:.0f} us vs {other} {b:.0f} us{firm}"
    return check


def at_most(subject: str, limit: float, unit: str) -> Callable:
    def check(m: Measure):
        a = m.value(subject)
        if a is None:
            return None, f"needs {subject}"
        firm = rounds_agreeing(m, lambda x: x <= limit, subject)
        return a <= limit, f"{a:.2f} {unit} (needs <= {limit:g} {unit}){firm}"
    return check


def less_than(subject: str, limit: float, unit: str) -> Callable:
    def check(m: Measure):
        a = m.value(subject)
        if a is None:
            return None, f"needs {subject}"
        firm = rounds_agreeing(m, lambda x: x < limit, subject)
        return a < limit, f"{a:.2f} {unit} (needs < {limit:g} {unit}){firm}"
    return check


def overhead_at_most(subject: str, base: str, limit: float, unit: str) -> Callable:
    """``subject`` - ``base`` <= ``limit`` (medians, same unit)."""
    def check(m: Measure):
        a, b = m.value(subject), m.value(base)
        if a is None or b is None:
            return None, f"needs {subject} and {base}"
        firm = rounds_agreeing(m, lambda x, y: x - y <= limit, subject, base)
        return a - b <= limit, (f"{a - b:+.2f} {unit} over {base} (needs <= {limit:g} {unit})"
                                f"{firm}")
    return check


def within_factor(subject: str, base: str, factor: float) -> Callable:
    def check(m: Measure):
        a, b = m.value(subject), m.value(base)
        if a is None or b is None:
            return None, f"needs {subject} and {base}"
        firm = rounds_agreeing(m, lambda x, y: x <= factor * y, subject, base)
        return a <= factor * b, f"{a / b:.2f}x {base} (needs <= {factor:g}x){firm}"
    return check
