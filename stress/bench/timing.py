"""Per-call latency in µs, measured call by call with ``perf_counter_ns``."""

from __future__ import annotations

import time
from collections.abc import Callable

from .common import quantiles


def _timer_floor() -> int:
    """The median cost of reading the clock twice: what every sample is corrected by."""
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(10_000):
        a = clock()
        overhead.append(clock() - a)
    return sorted(overhead)[len(overhead) // 2]


def _warmup_steps(start: int, warmup: int) -> range:
    """The steps of the untimed calls before ``start``: the ones just before it if there is
    room, else the first ``warmup``."""
    return range(start - warmup, start) if start >= warmup else range(warmup)


def time_calls(
    fn: Callable[[int], None], calls: int, start: int = 0, warmup: int = 1_000
) -> dict[str, float]:
    """Per-call latency of ``fn(i)`` in µs, the timer's own overhead subtracted."""
    for i in _warmup_steps(start, warmup):
        fn(i)
    clock = time.perf_counter_ns
    floor = _timer_floor()
    samples = []
    for i in range(start, start + calls):
        a = clock()
        fn(i)
        samples.append(max(0, clock() - a - floor) / 1000)
    return quantiles(samples)


def time_log_calls(
    log: Callable[..., None], calls: int, start: int = 0, warmup: int = 1_000
) -> dict[str, float]:
    """Per-call latency of ``log("loss", 0.5, step=i)`` called as a training loop calls it,
    with no wrapper function around it, the timer's own overhead subtracted."""
    for i in _warmup_steps(start, warmup):
        log("loss", 0.5, step=i)
    clock = time.perf_counter_ns
    floor = _timer_floor()
    samples = []
    # the loop of time_calls written out again: a wrapper around log() would be timed too
    for i in range(start, start + calls):
        a = clock()
        log("loss", 0.5, step=i)
        samples.append(max(0, clock() - a - floor) / 1000)
    return quantiles(samples)
