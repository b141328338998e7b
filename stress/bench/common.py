"""What every section shares: where the repository is, how a benchmark run is named and
opened, and the medians the figures are made of."""

from __future__ import annotations

import statistics
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = "default"  # the workspace of the first API key of a new `metrana serve` store
PROJECT = "bench"
MIB = 1024 * 1024


def unique_run_name(prefix: str) -> str:
    """``prefix`` and eight random hex digits: a run no earlier measurement wrote to."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def init_run(run_name: str, **options: Any) -> None:
    """``metrana.init()`` for ``run_name`` in the benchmark's workspace and project."""
    import metrana

    metrana.init(workspace_name=WORKSPACE, project_name=PROJECT, run_name=run_name, **options)


def quantiles(samples: list[float]) -> dict[str, float]:
    """Mean, p50 and p99 of latency samples in µs (sorts ``samples`` in place)."""
    samples.sort()
    n = len(samples)
    return {
        "mean_us": round(statistics.fmean(samples), 3),
        "p50_us": round(samples[n // 2], 3),
        "p99_us": round(samples[min(n - 1, int(n * 0.99))], 3),
    }


def median(values: list[float]) -> float:
    """The median of ``values``, NaN when there are none."""
    return float(statistics.median(values)) if values else float("nan")


def median_quantiles(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The median of each quantile over several runs, with the runs themselves."""
    out: dict[str, Any] = {
        key: round(median([r[key] for r in runs]), 3) for key in ("mean_us", "p50_us", "p99_us")
    }
    out["runs"] = runs
    return out


def values_of(runs: list[dict[str, Any]], key: str) -> list[Any]:
    """``run[key]`` of each run that has it."""
    return [r[key] for r in runs if key in r]


def median_runs(runs: list[dict[str, Any]], what: str) -> dict[str, Any]:
    """One end-to-end figure from several runs: the median of each number, every run kept."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out: dict[str, Any] = {"figure": runs[0]["figure"], "what": what}
    for key in keys:
        middle = median(values_of(runs, key))
        out[key] = round(middle) if isinstance(runs[0][key], int) else round(middle, 3)
    out["stored"] = sum(r["stored"] for r in runs)
    out["points"] = sum(r["points"] for r in runs)
    out["ok"] = all(r["ok"] for r in runs)
    out["runs"] = [
        {k: r[k] for k in ("points_per_s", "seconds", "dispatcher_cpu_s_per_million") if k in r}
        for r in runs
    ]
    return out


def ms_figure(figure: str, what: str, values: list[float]) -> dict[str, Any]:
    """A figure in milliseconds: the median of ``values`` and the values, to 0.1 ms."""
    return {
        "figure": figure,
        "what": what,
        "ms": round(median(values), 1),
        "runs": [round(x, 1) for x in values],
    }


def end_to_end_what(writers: int, http: bool, array: int = 0) -> str:
    """How an end-to-end figure names its runs: the writers (logging arrays of ``array``
    values, if not 0), the target, until committed."""
    target = "metrana serve over HTTP (loopback)" if http else "embedded store"
    who = f"{writers} writers of {array:,}-value arrays" if array else f"{writers} writers"
    return f"{who} -> {target}, until committed"
