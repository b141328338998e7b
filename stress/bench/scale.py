"""``scale``: end-to-end throughput by writer count, and the cost of idle rings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .common import median, median_runs
from .context import Bench
from .throughput import bench_throughput


def scale_curve(
    bench: Bench, counts: list[int], total_points: int, repeat: int
) -> Iterator[dict[str, Any]]:
    """For each writer count, the median of ``repeat`` embedded runs sharing ``total_points``;
    yielded one count at a time, as soon as it is measured."""
    for n in counts:
        runs = [bench_throughput(bench, n, max(1, total_points // n)) for _ in range(repeat)]
        what = f"{n} writer(s) -> embedded store, until committed"
        yield {**median_runs(runs, what), "figure": "scale"}


def _median_of(runs: list[dict[str, Any]], key: str, default: float) -> float:
    return median([r.get(key, default) for r in runs])


def bench_idle_rings(
    bench: Bench, writers: int, points: int, rings: int, repeat: int
) -> dict[str, Any]:
    """``writers`` writers with and without ``rings`` idle rings in the session, the runs
    interleaved; the throughput lost to the idle rings."""
    without, with_idle = [], []
    for _ in range(repeat):
        without.append(bench_throughput(bench, writers, points))
        with_idle.append(bench_throughput(bench, writers, points, idle=rings))
    w0 = median([r["points_per_s"] for r in without])
    w1 = median([r["points_per_s"] for r in with_idle])
    return {
        "figure": "scale",
        "what": f"{writers} writers with {rings} idle rings vs without",
        "writers": writers,
        "idle_rings": rings,
        "repeat": repeat,
        "without_idle": round(w0),
        "with_idle": round(w1),
        "cost_percent": round((1 - w1 / w0) * 100, 1),
        "dispatcher_cpu_s_per_million_without": round(
            _median_of(without, "dispatcher_cpu_s_per_million", 0), 3
        ),
        "dispatcher_cpu_s_per_million_with": round(
            _median_of(with_idle, "dispatcher_cpu_s_per_million", 0), 3
        ),
        "idle_processes_cpu_percent": _median_of(with_idle, "idle_processes_cpu_percent", 0.0),
        "runs_without": [r["points_per_s"] for r in without],
        "runs_with": [r["points_per_s"] for r in with_idle],
        "ok": all(r["ok"] for r in [*without, *with_idle]),
    }
