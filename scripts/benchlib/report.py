"""The text table: one block per measure (subject, median, p50/p99 where the measure has
latencies, ratio to direct, rounds, status), then its targets with MET / NOT MET."""

from __future__ import annotations

from .results import Measure, verdict


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def measure_table(m: Measure) -> str:
    header = ["subject", f"median ({m.unit})"]
    if m.has_latency:
        header += ["p50 (us)", "p99 (us)"]
    header += [title for _, title in m.extra_columns]
    header += [f"vs {m.baseline}", "rounds", "status"]
    lines = []
    for row in m.rows.values():
        cells = [row.subject, fmt(row.median) if row.status == "ok" else "-"]
        if m.has_latency:
            ok = row.status == "ok"
            cells += [fmt(row.p50_median) if ok else "-", fmt(row.p99_median) if ok else "-"]
        cells += [fmt(row.extra_median(key)) if row.status == "ok" else "-"
                  for key, _ in m.extra_columns]
        ratio = m.ratio(row.subject)
        cells.append("1.00x" if row.subject == m.baseline and ratio else
                     (f"{ratio:.2f}x" if ratio is not None else "-"))
        cells.append(str(len(row.rounds)))
        status = row.status.upper() if row.status != "ok" else "ok"
        if row.extra.get("errors"):  # failed connections during a rate round
            status += f" ({row.extra['errors']} connections failed)"
        cells.append(f"{status}: {row.note}" if row.note else status)
        lines.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=True)]
    # the status column is last and may be long: do not pad it
    widths[-1] = 0

    def render(cells):
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) if i < len(cells) - 1 else str(c)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [f"== {m.title} [{m.key}] ({'higher' if m.higher_is_better else 'lower'} is "
           f"better)", f"   {m.method}", render(header)]
    out += [render(cells) for cells in lines]
    for target in m.targets:
        met, detail = target.check(m)
        out.append(f"   target: {target.text}: {verdict(met)} ({detail})")
    return "\n".join(out)


def full_report(header_lines: list[str], measures: list[Measure]) -> str:
    parts = ["\n".join(header_lines)]
    parts += [measure_table(m) for m in measures]
    summary = []
    for m in measures:
        for target in m.targets:
            met, _ = target.check(m)
            summary.append(f"  {verdict(met):8s} {target.text}")
    if summary:
        parts.append("== Targets\n" + "\n".join(summary))
    return "\n\n".join(parts) + "\n"
