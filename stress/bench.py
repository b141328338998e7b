"""Performance harness: every figure beside baselines measured in the same run.

Prints one JSON line per figure, then a table. Figures:

* ``log_latency``: µs per ``metrana.log(name, value, step=…)`` in one process (mean, p50, p99),
  beside an empty Python call and a bare "msgspec-encode a small tuple and copy it into an
  mmap" append.
* ``end_to_end``: points/s from N spawned writer processes into the embedded store, until every
  point is committed (``close(CompleteAll)``), beside ``multiprocessing.Queue.put`` from N
  producers to one consumer.
"""

from __future__ import annotations

import argparse
import json
import mmap
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec


def _quantiles(samples: list[float]) -> dict[str, float]:
    samples.sort()
    n = len(samples)
    return {
        "mean_us": round(statistics.fmean(samples), 3),
        "p50_us": round(samples[n // 2], 3),
        "p99_us": round(samples[min(n - 1, int(n * 0.99))], 3),
    }


def _time_calls(fn: Callable[[int], None], calls: int) -> dict[str, float]:
    """Per-call latency in µs, the timer's own overhead subtracted."""
    clock = time.perf_counter_ns
    overhead = []
    for _ in range(10_000):
        a = clock()
        overhead.append(clock() - a)
    floor = sorted(overhead)[len(overhead) // 2]
    samples = []
    for i in range(calls):
        a = clock()
        fn(i)
        samples.append(max(0, clock() - a - floor) / 1000)
    return _quantiles(samples)


def _empty(i: int) -> None:
    pass


def _bare_append_factory() -> Callable[[int], None]:
    encoder = msgspec.msgpack.Encoder()
    buf = bytearray(64)
    size = 8 * 1024 * 1024
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the closure
    handle.truncate(size)
    mm = mmap.mmap(handle.fileno(), size)
    slots = memoryview(mm).cast("Q")
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


def bench_latency(calls: int) -> list[dict[str, Any]]:
    import metrana

    results = [
        {"figure": "log_latency", "what": "empty Python call", **_time_calls(_empty, calls)},
        {
            "figure": "log_latency",
            "what": "bare msgspec encode + mmap copy",
            **_time_calls(_bare_append_factory(), calls),
        },
    ]
    metrana.init(
        workspace_name="bench",
        project_name="latency",
        run_name=f"latency-{uuid.uuid4().hex[:8]}",
        backpressure_strategy="Block",
    )
    log = metrana.log

    def one(i: int) -> None:
        log("loss", 0.5, step=i)

    results.append(
        {
            "figure": "log_latency",
            "what": "metrana.log(name, value, step=)",
            **_time_calls(one, calls),
        }
    )
    metrana.close(close_strategy="CompleteAll", timeout=120)
    return results


def _writer_process(run_name: str, index: int, points: int, ready: Any, go: Any) -> None:
    import metrana

    metrana.init(
        workspace_name="bench",
        project_name="throughput",
        run_name=run_name,
        backpressure_strategy="Block",
        close_strategy="CompleteAll",
    )
    log = metrana.log
    name = f"loss_{index}"  # one series per writer: the same (series, step) is stored once
    ready.release()
    go.wait()
    for i in range(points):
        log(name, 0.5, step=i)
    metrana.close(timeout=300)


def bench_end_to_end(writers: int, points: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    run_name = f"e2e-{uuid.uuid4().hex[:8]}"
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    processes = [
        ctx.Process(target=_writer_process, args=(run_name, k, points, ready, go))
        for k in range(writers)
    ]
    for p in processes:
        p.start()
    for _ in processes:
        if not ready.acquire(timeout=120):
            raise RuntimeError("a writer did not start")
    started = time.perf_counter()
    go.set()
    for p in processes:
        p.join(600)
    elapsed = time.perf_counter() - started
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    from metrana._config import resolve_config
    from metrana.storage import SqliteStore

    store = SqliteStore(
        resolve_config(workspace_name="b", project_name="b", run_name="b").store_path
    )
    run = store.find_run("bench", "throughput", run_name)
    stored = run.points if run else 0
    total = writers * points
    return {
        "figure": "end_to_end",
        "what": f"{writers} writers -> embedded store, until committed",
        "points": total,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "points_per_s": round(total / elapsed),
        "ok": stored == total and not failed,
    }


def _queue_producer(queue: Any, points: int, go: Any) -> None:
    go.wait()
    for i in range(points):
        queue.put((0, 1, i, 0.5, 1_700_000_000_000_000_000))
    queue.put(None)


def bench_queue_baseline(writers: int, points: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue(maxsize=100_000)
    go = ctx.Event()
    processes = [
        ctx.Process(target=_queue_producer, args=(queue, points, go)) for _ in range(writers)
    ]
    for p in processes:
        p.start()
    time.sleep(0.5)  # let the producers import before the clock starts
    started = time.perf_counter()
    go.set()
    done = received = 0
    while done < writers:
        item = queue.get()
        if item is None:
            done += 1
        else:
            received += 1
    elapsed = time.perf_counter() - started
    for p in processes:
        p.join(60)
    return {
        "figure": "end_to_end",
        "what": f"baseline: multiprocessing.Queue.put, {writers} producers -> 1 consumer",
        "points": received,
        "seconds": round(elapsed, 3),
        "points_per_s": round(received / elapsed),
    }


def run(args: argparse.Namespace) -> int:
    home = tempfile.mkdtemp(prefix="metrana-bench-")
    os.environ["METRANA_HOME"] = home
    os.environ.setdefault("METRANA_ORCHESTRATION_ID", uuid.uuid4().hex)
    calls, writers, points = args.calls, args.writers, args.points
    if args.quick:
        calls, writers, points = 5_000, 2, 5_000
    results: list[dict[str, Any]] = []
    try:
        results += bench_latency(calls)
        results.append(bench_queue_baseline(writers, points))
        results.append(bench_end_to_end(writers, points))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [json.dumps(r) for r in results]
    for line in lines:
        print(line)
    if args.json:
        with open(args.json, "a") as out:
            out.write("\n".join(lines) + "\n")
    print()
    print(f"{'figure':<13} {'what':<62} {'mean/pts/s':>12} {'p50 µs':>8} {'p99 µs':>8}")
    for r in results:
        if r["figure"] == "log_latency":
            print(
                f"{r['figure']:<13} {r['what']:<62} {r['mean_us']:>12} "
                f"{r['p50_us']:>8} {r['p99_us']:>8}"
            )
        else:
            print(f"{r['figure']:<13} {r['what']:<62} {r['points_per_s']:>12,}")
    return 0 if all(r.get("ok", True) for r in results) else 1
