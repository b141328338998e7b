"""The figure ``docs/perf/throughput.png``: throughput against writer count, with the
headline runs, the HTTP target, the queue baseline and the idle-ring run beside the curve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .common import end_to_end_what
from .report import find_figure, scale_curve_figures


def plot(results: list[dict[str, Any]], writers: int, path: Path) -> str:
    """Draw the throughput plot into ``path``; answers the path, or why there is no plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return "matplotlib not installed: no plot"
    curve = sorted(scale_curve_figures(results), key=lambda r: r["writers"])
    if not curve:
        return "no scale figures: no plot"
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    xs = [r["writers"] for r in curve]
    ys = [r["points_per_s"] for r in curve]
    lows = [y - min((x["points_per_s"] for x in r.get("runs", [])), default=y) for y, r in
            zip(ys, curve, strict=True)]  # fmt: skip
    highs = [max((x["points_per_s"] for x in r.get("runs", [])), default=y) - y for y, r in
             zip(ys, curve, strict=True)]  # fmt: skip
    ax.errorbar(xs, ys, yerr=[lows, highs], fmt="o-", color="C0", capsize=3,
                label="embedded store, until committed (median, min-max)")  # fmt: skip
    ax.axhline(
        1_000_000, ls="--", color="C0", alpha=0.5, label=f"target, {writers} writers, embedded"
    )
    headline = find_figure(results, "end_to_end", end_to_end_what(writers, http=False))
    if headline:
        ax.plot([writers], [headline["points_per_s"]], "D", color="C0", ms=7, mfc="white",
                label="embedded, headline runs (median)")  # fmt: skip
    http = find_figure(results, "end_to_end", end_to_end_what(writers, http=True))
    if http:
        ax.plot([writers], [http["points_per_s"]], "s", color="C1", ms=8,
                label="metrana serve over HTTP (median)")  # fmt: skip
        ax.axhline(500_000, ls=":", color="C1", alpha=0.7, label=f"target, {writers} writers, HTTP")
    queue = find_figure(results, "end_to_end", "baseline: multiprocessing.Queue")
    if queue:
        ax.plot([queue["writers"]], [queue["points_per_s"]], "^", color="C2", ms=8,
                label="baseline: multiprocessing.Queue.put")  # fmt: skip
    idle = find_figure(results, "scale", "idle rings")
    if idle:
        ax.plot([writers], [idle["with_idle"]], "x", color="C3", ms=9,
                label=f"{writers} writers + {idle['idle_rings']} idle rings")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("writer processes")
    ax.set_ylabel("points per second, end to end")
    machine = find_figure(results, "environment", "machine") or {}
    load = (machine.get("loadavg_start") or [None])[0]
    where = f", load {load:.1f} at the start" if load is not None else ""
    ax.set_title(f"Metrana throughput vs writers ({os.cpu_count()} CPUs{where})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return str(path)
