"""The REST API under load: JSON ingestion in batches of 1,000 events, and reading long series
back (``list_metrics`` of 10,000 rows, ``compare_metrics`` of two series), against ``metrana
serve`` in its own process over a store filled beforehand."""

from __future__ import annotations

import statistics
import time
from typing import Any

from metrana.api import Client
from metrana.storage import SeriesColumns, SqliteStore

from .context import Bench
from .processes import Server

BATCH_EVENTS = 1_000  # the Syvain client's limit per ingest call
ROWS = 10_000  # read back per call
FILL_CHUNK = 100_000  # points per batch written while filling the store
T0 = 1_700_000_000_000_000_000


def _fill(store: SqliteStore, run_name: str, points: int) -> int:
    """A run with one series ``loss`` of ``points`` points, written straight into the store;
    answers its experiment id."""
    handle = store.open_run("default", "rest", None, run_name, "bench", allow_resume=True)
    for sequence, start in enumerate(range(0, points, FILL_CHUNK), 1):
        steps = list(range(start, min(start + FILL_CHUNK, points)))
        columns = SeriesColumns(steps, [s * 1e-6 for s in steps], [T0 + s for s in steps])
        store.write_batch(f"fill-{run_name}", sequence, handle.experiment_id, {
            ("loss", "ML_STEP", "{}"): columns
        })  # fmt: skip
    return handle.experiment_id


def _median_ms(call: Any, repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), [round(t, 1) for t in times]


def bench_rest(bench: Bench, events: int, series_points: int, repeat: int) -> list[dict[str, Any]]:
    """JSON ingestion rate, then the latency of list_metrics and compare_metrics over series of
    ``series_points`` points (medians of ``repeat`` calls)."""
    work = bench.work / "rest"
    work.mkdir(exist_ok=True)
    store_path = work / "rest.sqlite"
    store = SqliteStore(store_path)
    _, api_key = store.create_api_key("default", "bench")
    filled = time.perf_counter()
    first, second = (_fill(store, name, series_points) for name in ("long-a", "long-b"))
    filled_s = round(time.perf_counter() - filled, 1)
    target = store.open_run("default", "rest", None, "json-ingest", "bench", True).experiment_id
    store.close()
    server = Server(store_path)
    try:
        with Client(api_key, host=server.url, timeout=60.0) as client:
            batches = max(1, events // BATCH_EVENTS)
            accepted = 0
            started = time.perf_counter()
            for batch in range(batches):
                base = batch * BATCH_EVENTS
                accepted += client.ingest_metrics(str(target), [
                    {"client_event_id": f"e{base + i}", "name": "m",
                     "value": float(i), "step": base + i}
                    for i in range(BATCH_EVENTS)
                ]).accepted  # fmt: skip
            elapsed = time.perf_counter() - started
            assert accepted == batches * BATCH_EVENTS, accepted

            def list_rows() -> None:
                rows = client.list_metrics(str(first), metric_name="loss", limit=ROWS).rows
                assert len(rows) == ROWS and rows[-1].step == ROWS - 1

            def compare() -> None:
                pair = [{"experiment_id": str(e), "metric_name": "loss"} for e in (first, second)]
                rows = client.compare_metrics(pair, limit=ROWS).rows
                assert len(rows) == ROWS and rows[-1].step == ROWS // 2 - 1

            list_ms, list_runs = _median_ms(list_rows, repeat)
            compare_ms, compare_runs = _median_ms(compare, repeat)
    finally:
        server.stop()
    return [
        {"figure": "rest", "what": "JSON ingest, 1,000-event batches, embedded store",
         "events_per_s": round(batches * BATCH_EVENTS / elapsed), "events": batches * 1000},
        {"figure": "rest", "what": f"list_metrics of {ROWS:,} rows", "ms": list_ms,
         "runs_ms": list_runs, "series_points": series_points, "fill_s": filled_s},
        {"figure": "rest", "what": f"compare_metrics of two series, {ROWS:,} rows in all",
         "ms": compare_ms, "runs_ms": compare_runs, "series_points": series_points},
    ]  # fmt: skip
