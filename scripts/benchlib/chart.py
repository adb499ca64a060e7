"""The PNG chart: one panel per measure, one horizontal bar per subject (median, with the
spread of the rounds as an error bar), the direct baseline as a dashed line, the machine
in the title.

matplotlib is not a run-time dependency of socksify. :func:`ensure_matplotlib` installs it
with pip into the interpreter running the benchmark when it is missing (``--no-install``
turns that off and skips the chart instead).
"""

from __future__ import annotations

import math
import subprocess
import sys

from .results import Measure, verdict

BASELINE_COLOR = "#888888"
COLORS = {
    "socksify-server": "#1f77b4",
    "socksify (LD_PRELOAD)": "#1f77b4",
    "socksify-run": "#6baed6",
    "socksify (LD_PRELOAD, IP URL)": "#6baed6",
    "socksify (LD_PRELOAD, bypassed)": "#6baed6",
    "socksify.patch()": "#1f77b4",
    "socksify.patch() connect": "#1f77b4",
    "socksify.create_connection": "#6baed6",
}
PEER_COLOR = "#ff7f0e"


def ensure_matplotlib(install: bool, log) -> bool:
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    if not install:
        log("chart: matplotlib is not installed; no PNG written (pip install matplotlib)")
        return False
    log("chart: installing matplotlib with pip (a benchmark-only dependency)")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        log(f"chart: pip install matplotlib failed: {proc.stderr.strip()[-300:]}")
        return False
    return True


def write_chart(path: str, measures: list[Measure], title: str, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in measures if m.rows]
    cols = 2 if len(shown) > 1 else 1
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 2.9 * rows + 0.9),
                             squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, shown, strict=False):
        subjects = list(m.rows)
        values, lows, highs, labels, colors = [], [], [], [], []
        for s in subjects:
            row = m.rows[s]
            ok = row.status == "ok" and row.rounds
            med = row.median if ok else 0.0
            values.append(med)
            lows.append(med - min(row.rounds) if ok else 0)
            highs.append(max(row.rounds) - med if ok else 0)
            ratio = m.ratio(s)
            label = s if ok else f"{s} ({row.status})"
            if ratio is not None and s != m.baseline:
                label += f"  {ratio:.2f}x"
            labels.append(label)
            colors.append(BASELINE_COLOR if s == m.baseline else COLORS.get(s, PEER_COLOR))
        y = range(len(subjects))
        ax.barh(list(y), values, xerr=[lows, highs], color=colors, capsize=2)
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            if v:
                ax.text(v + highs[i], i, f"  {v:,.0f}" if v >= 100 else f"  {v:.2f}",
                        va="center", fontsize=7)
        base = m.value(m.baseline)
        if base:
            ax.axvline(base, color="#444444", linestyle="--", linewidth=0.8)
        better = "higher" if m.higher_is_better else "lower"
        ax.set_title(f"{m.title} ({m.unit}, {better} is better)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        notes = [f"{verdict(t.check(m)[0])}: {t.text}" for t in m.targets]
        if notes:
            ax.set_xlabel("\n".join(notes), fontsize=7)
        ax.margins(x=0.18)
    fig.suptitle(f"{title}\n{subtitle}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
