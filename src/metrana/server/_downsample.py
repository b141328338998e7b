"""Series downsampled for a chart: the ``chart_series`` route.

A chart of ``width`` pixels needs about ``width`` points per series, not a million. Each series'
chunks over the asked step range become numpy arrays (a dense chunk's values are its bytes,
read in place), non-finite values are set aside as marks (a run of consecutive ones of one kind
is one mark), and the finite points are reduced with MinMaxLTTB (``tsdownsample``, in Rust):
min/max per bucket preselects candidates, LTTB keeps the ``width`` of them that preserve the
curve's shape; the first and last points are always kept, and every spike survives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from tsdownsample import MinMaxLTTBDownsampler

from ..api import _chart_types as ct
from ..storage._charts import DENSE_FIELDS, ChartSource

_downsampler = MinMaxLTTBDownsampler()  # type: ignore[no-untyped-call]
_KINDS: tuple[Any, ...] = ("nan", "inf", "-inf")
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def _columns(chunk: list[Any]) -> tuple[Ints, Floats, Ints]:
    """A chunk's (steps, values as float64, timestamps in ns)."""
    if len(chunk) != DENSE_FIELDS:
        steps, values, stamps = chunk
        return (
            np.asarray(steps, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
            np.asarray(stamps, dtype=np.int64),
        )
    typecode, first, raw, stamps = chunk
    data = np.frombuffer(raw, dtype="<f8" if typecode == "d" else "<i8").astype(np.float64)
    count = len(data)
    steps_of = np.arange(first, first + count, dtype=np.int64)
    if isinstance(stamps, int):
        times = np.full(count, stamps, dtype=np.int64)
    elif isinstance(stamps, list):
        runs = np.asarray(stamps, dtype=np.int64).reshape(-1, 2)
        times = np.repeat(runs[:, 1], runs[:, 0])
    else:
        times = np.frombuffer(stamps, dtype="<i8").astype(np.int64)
    return steps_of, data, times


def _arrays(source: ChartSource, low: int | None, high: int | None) -> tuple[Ints, Floats, Ints]:
    """A series' points in the range, in step order."""
    if not source.chunks:
        empty = np.empty(0, dtype=np.int64)
        return empty, np.empty(0, dtype=np.float64), empty
    parts = [_columns(chunk) for chunk in source.chunks]
    steps = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    times = np.concatenate([p[2] for p in parts])
    if len(steps) > 1 and bool(np.any(steps[1:] < steps[:-1])):  # batches interleave
        order = np.argsort(steps, kind="stable")
        steps, values, times = steps[order], values[order], times[order]
    if low is not None or high is not None:
        keep = np.ones(len(steps), dtype=bool)
        if low is not None:
            keep &= steps >= low
        if high is not None:
            keep &= steps <= high
        steps, values, times = steps[keep], values[keep], times[keep]
    return steps, values, times


def _marks(steps: Ints, values: Floats, bad: npt.NDArray[np.bool_]) -> list[ct.ChartMark]:
    """Runs of consecutive non-finite values of one kind, as marks."""
    where = np.flatnonzero(bad)
    if len(where) == 0:
        return []
    found = values[where]
    kinds = np.where(np.isnan(found), 0, np.where(found > 0, 1, 2))
    breaks = np.flatnonzero((np.diff(where) != 1) | (np.diff(kinds) != 0)) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks - 1, [len(where) - 1]))
    return [
        ct.ChartMark(int(steps[where[s]]), int(steps[where[e]]), _KINDS[int(kinds[s])])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def downsample(
    source: ChartSource, width: int, low: int | None, high: int | None
) -> ct.ChartSeries:
    """One series of the chart: at most ``width`` finite points (first and last kept) and
    every non-finite value as a mark."""
    steps, values, times = _arrays(source, low, high)
    bad = ~np.isfinite(values)
    marks = _marks(steps, values, bad)
    if marks:
        good = ~bad
        steps, values, times = steps[good], values[good], times[good]
    if len(steps) > width:
        picked = _downsampler.downsample(steps, values, n_out=width)
        steps, values, times = steps[picked], values[picked], times[picked]
    return ct.ChartSeries(
        metric_name=source.metric_name,
        scale=source.scale,
        metadata=source.metadata,
        total_points=len(bad),
        first_step=source.first_step,
        last_step=source.last_step,
        steps=steps.tolist(),
        values=values.tolist(),
        times_ms=(times // 1_000_000).tolist(),
        marks=marks,
    )


__all__ = ["downsample"]
