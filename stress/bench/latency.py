"""``log_latency``: µs per ``metrana.log()`` in this process, beside its baselines."""

from __future__ import annotations

import mmap
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import msgspec

from .common import MIB, init_run, median, median_quantiles, unique_run_name
from .context import Bench
from .timing import time_calls, time_log_calls

_SCRATCH_BYTES = 8 * MIB


def _empty(i: int) -> None:
    pass


def _scratch_mmap(size: int) -> tuple[IO[bytes], mmap.mmap, memoryview]:
    """A temporary file of ``size`` bytes mapped, and the map as 8-byte words (word 0 is where
    a baseline publishes its position); the caller keeps all three alive."""
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the caller keeps it open
    handle.truncate(size)
    mm = mmap.mmap(handle.fileno(), size)
    return handle, mm, memoryview(mm).cast("Q")


def _bare_append_factory() -> Callable[[int], None]:
    """msgspec-encode a small tuple into a reused buffer, copy it into an mmap, publish the
    position with one aligned 8-byte store: the least a ring append can cost in Python."""
    encoder = msgspec.msgpack.Encoder()
    buf = bytearray(64)
    size = _SCRATCH_BYTES
    handle, mm, slots = _scratch_mmap(size)
    state = [4096]

    def append(i: int) -> None:
        encoder.encode_into((0, 1, i, 0.5, 1_700_000_000_000_000_000), buf, 8)
        n = len(buf)
        pos = state[0]
        if pos + n > size:
            pos = 4096
        mm[pos : pos + n] = buf
        state[0] = pos + ((n + 7) & -8)
        slots[0] = state[0]

    append.keep = (handle, mm, slots)  # type: ignore[attr-defined]
    return append


def _shaped_append_factory() -> Callable[..., None]:
    """The bare append in the shape log() must have: a module function calling a method with
    log()'s arguments, a dict lookup of the series, ``time.time_ns()``, a lock around the
    encode and copy. What the bare append does not pay, and log() cannot avoid."""
    encoder = msgspec.msgpack.Encoder()
    buf = bytearray(64)
    size = _SCRATCH_BYTES
    handle, mm, slots = _scratch_mmap(size)

    class Series:
        __slots__ = ("id", "next_step")

        def __init__(self) -> None:
            self.id = 1
            self.next_step: int | None = 0

    class Shaped:
        def __init__(self) -> None:
            self.lock = threading.Lock()
            self.plain = {"loss": Series()}
            self.encode_into = encoder.encode_into
            self.pos = 4096

        # the append of _bare_append_factory again, inline: a call to it would be one more
        # call than log() makes
        def log(
            self,
            name: str,
            value: float,
            scale: Any = None,
            step: int | None = None,
            labels: Any = None,
            timestamp: int | None = None,
        ) -> None:
            series = self.plain[name]
            if timestamp is None:
                timestamp = time.time_ns()
            with self.lock:
                self.encode_into((0, series.id, step, value, timestamp), buf, 8)
                n = len(buf)
                pos = self.pos
                if pos + n > size:
                    pos = 4096
                mm[pos : pos + n] = buf
                self.pos = pos + ((n + 7) & -8)
                slots[0] = self.pos
                series.next_step = step

    writer = Shaped()

    # a module function with log()'s whole signature in front of the method, as metrana.log is
    def log(
        name: str,
        value: float,
        scale: Any = None,
        step: int | None = None,
        labels: Any = None,
        timestamp: int | None = None,
    ) -> None:
        writer.log(name, value, scale, step, labels, timestamp)

    log.keep = (handle, mm, slots)  # type: ignore[attr-defined]
    return log


def bench_latency(bench: Bench, calls: int, repeat: int) -> list[dict[str, Any]]:
    """log() beside its baselines, interleaved (empty, bare, shaped, log; again), so that a
    slow phase of a shared machine hits every figure alike; each figure is the median over
    the repeats."""
    import metrana

    bare_fn = _bare_append_factory()
    shaped_fn = _shaped_append_factory()
    bench.fresh("latency")
    init_run(unique_run_name("latency"), backpressure_strategy="Block")
    log = metrana.log
    runs: dict[str, list[dict[str, float]]] = {"empty": [], "bare": [], "shaped": [], "log": []}
    step = 1_000
    for k in range(repeat):
        runs["empty"].append(time_calls(_empty, calls))
        runs["bare"].append(time_calls(bare_fn, calls))
        runs["shaped"].append(time_log_calls(shaped_fn, calls))
        # fewer calls than the ring holds, then flush: no run ever waits for room
        runs["log"].append(time_log_calls(log, calls, start=step, warmup=0 if k else 1_000))
        step += calls
        metrana.flush(timeout=300)
    dropped = metrana.stats().process.dropped_queue_full
    metrana.close(close_strategy="CompleteAll", timeout=300)
    bare = median_quantiles(runs["bare"])
    measured = median_quantiles(runs["log"])
    ratios = [
        round(m["p50_us"] / b["p50_us"], 2) for m, b in zip(runs["log"], runs["bare"], strict=True)
    ]
    return [
        {"figure": "log_latency", "what": "empty Python call", **median_quantiles(runs["empty"])},
        {"figure": "log_latency", "what": "bare msgspec encode + mmap copy", **bare},
        {
            "figure": "log_latency",
            "what": "bare append shaped like log() (2 calls, lookup, time_ns, lock)",
            **median_quantiles(runs["shaped"]),
        },
        {
            "figure": "log_latency",
            "what": "metrana.log(name, value, step=)",
            **measured,
            "calls_per_run": calls,
            "dropped": dropped,
            "ratio_to_bare_p50": round(median(ratios), 2),
            "ratio_to_bare_p50_runs": ratios,
            "ratio_to_bare_mean": round(measured["mean_us"] / bare["mean_us"], 2),
        },
    ]
