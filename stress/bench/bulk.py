"""``bulk_calls``: ns per point of each call shape of ``metrana.log()`` (a 1,024-value array, a
list, a CPU tensor, a dict of ten metrics, a vector of environments), beside scalar ``log()``
calls in the same process, interleaved shape by shape, so that a slow phase of a shared
machine hits every figure alike.

Each figure is the mean over a loop (the loop's time divided by its points), the median over
the repeats. Each run logs less than the ring holds and is flushed before the next, so that no
call waits for the dispatcher.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .common import init_run, median, unique_run_name
from .context import Bench

ARRAY_VALUES = 1_024
DICT_METRICS = 10
# The ring of the bulk runs: 48 MB, so that a run of array calls fits it whole.
QUEUE_EVENTS = 1_000_000
RING_BYTES = QUEUE_EVENTS * 48

# A call shape: (name, points per call, a function logging one call at step index i).
Shape = tuple[str, int, Callable[[int], None]]


def _shapes() -> list[Shape]:
    """The shapes measured, each logging into series of its own."""
    import numpy

    import metrana

    log = metrana.log
    array = numpy.linspace(0.0, 1.0, ARRAY_VALUES)
    values = array.tolist()
    metrics = {f"metric_{k}": 0.5 + k for k in range(DICT_METRICS)}
    names = list(metrics)
    small_envs = numpy.linspace(0.0, 1.0, 64)
    many_envs = numpy.linspace(0.0, 1.0, 4_096)

    def scalar(i: int) -> None:
        log("scalar", 0.5, step=i)

    def ten_scalars(i: int) -> None:
        for name in names:
            log(name + "_scalar", 0.5, step=i)

    shapes: list[Shape] = [
        ("log(name, value, step=): scalar", 1, scalar),
        (f"log(name, float64 array of {ARRAY_VALUES:,}, step=)", ARRAY_VALUES,
         lambda i: log("array", array, step=i * ARRAY_VALUES)),
        (f"log(name, list of {ARRAY_VALUES:,} floats, step=)", ARRAY_VALUES,
         lambda i: log("list", values, step=i * ARRAY_VALUES)),
        ("ten scalar log() calls, one per metric", DICT_METRICS, ten_scalars),
        (f"log(dict of {DICT_METRICS} floats, step=)", DICT_METRICS,
         lambda i: log(metrics, step=i)),
        ("log_vector_env(name, 64 environments, step=)", 64,
         lambda i: metrana.log_vector_env("reward64", small_envs, step=i)),
        ("log_vector_env(name, 4,096 environments, step=)", 4_096,
         lambda i: metrana.log_vector_env("reward4096", many_envs, step=i)),
    ]  # fmt: skip
    try:
        import torch
    except ImportError:
        return shapes
    tensor = torch.linspace(0.0, 1.0, ARRAY_VALUES, dtype=torch.float64)
    shapes.append(
        (f"log(name, CPU tensor of {ARRAY_VALUES:,} float64, step=)", ARRAY_VALUES,
         lambda i: log("tensor", tensor, step=i * ARRAY_VALUES))
    )  # fmt: skip
    return shapes


def _calls_per_run(points_per_call: int, points: int) -> int:
    """Calls of a run: ``points`` points, and less than half the ring's bytes."""
    bytes_per_call = 9 * points_per_call + 32
    return max(1, min(points // points_per_call, RING_BYTES // 2 // bytes_per_call))


def _time_run(call: Callable[[int], None], start: int, calls: int) -> int:
    """Nanoseconds of ``calls`` calls from index ``start``."""
    clock = time.perf_counter_ns
    began = clock()
    for i in range(start, start + calls):
        call(i)
    return clock() - began


def bench_bulk_calls(bench: Bench, points: int, repeat: int) -> list[dict[str, Any]]:
    """Every shape's ns per point, each run followed by a flush; the shapes interleaved."""
    import os

    import metrana

    bench.fresh("bulk-calls")
    os.environ["METRANA_EVENT_QUEUE_MAX_SIZE"] = str(QUEUE_EVENTS)
    try:
        init_run(unique_run_name("bulk-calls"), backpressure_strategy="Block")
    finally:
        del os.environ["METRANA_EVENT_QUEUE_MAX_SIZE"]
    shapes = _shapes()
    next_index = dict.fromkeys((name for name, _, _ in shapes), 0)
    runs: dict[str, list[float]] = {name: [] for name, _, _ in shapes}
    for _ in range(repeat):
        for name, per_call, call in shapes:
            calls = _calls_per_run(per_call, points)
            call(next_index[name])  # warm up: interning, declarations
            start = next_index[name] + 1
            ns = _time_run(call, start, calls)
            next_index[name] = start + calls
            runs[name].append(round(ns / (calls * per_call), 1))
            metrana.flush(timeout=300)
    stats = metrana.stats().process
    dropped = stats.dropped_queue_full if stats is not None else -1
    metrana.close(close_strategy="CompleteAll", timeout=300)
    scalar = median(runs[shapes[0][0]])
    ten = median(runs["ten scalar log() calls, one per metric"])
    figures = []
    for name, per_call, _ in shapes:
        ns = median(runs[name])
        figures.append(
            {
                "figure": "bulk_calls",
                "what": name,
                "points_per_call": per_call,
                "ns_per_point": round(ns, 1),
                "runs_ns_per_point": runs[name],
                "scalar_ns_per_point": round(scalar, 1),
                "cheaper_than_scalar": round(scalar / ns, 1),
                "cheaper_than_ten_scalars": round(ten / ns, 1),
                "dropped": dropped,
            }
        )
    return figures
