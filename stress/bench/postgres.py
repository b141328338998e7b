"""PostgreSQL against SQLite, measured in the same run on a throwaway cluster: points/s of N
writers into ``metrana serve`` until committed (over SQLite, the baseline; over PostgreSQL
through one replica; through two replicas behind a round-robin balancer), and the latency of
``compare_metrics`` over 10 series on each engine."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from metrana.api import Client
from metrana.storage import SeriesColumns, open_store
from metrana.testing import FaultProxy, PostgresCluster, postgres_cluster

from .common import end_to_end_what, median_runs
from .context import Bench
from .processes import Server
from .rest import T0, _median_ms

COMPARE_SERIES = 10
COMPARE_ROWS = 10_000  # rows of the answer
FILL_CHUNK = 50_000


class Balanced:
    """Two ``metrana serve`` replicas over one database behind a round-robin balancer
    (``FaultProxy`` with two upstreams): what the throughput run sees as its server."""

    def __init__(self, url: str) -> None:
        self.replicas = [Server(url)]
        self.api_key = self.replicas[0].api_key
        self.replicas.append(Server(url))
        self.proxy = FaultProxy([r.url for r in self.replicas])
        self.url = self.proxy.url
        self.store = url
        self.pid = self.replicas[0].pid  # the server figures sample the first replica

    def stop(self) -> None:
        """Stop the balancer and both replicas."""
        self.proxy.close()
        for replica in self.replicas:
            replica.stop()


@contextlib.contextmanager
def _serving(server: Server | Balanced) -> Iterator[Server | Balanced]:
    try:
        yield server
    finally:
        server.stop()


def _ingestion(
    bench: Bench, cluster: PostgresCluster, writers: int, points: int, repeat: int
) -> list[dict[str, Any]]:
    from .throughput import bench_throughput

    figures = []
    what = end_to_end_what(writers, http=True)
    engines: list[tuple[str, Any]] = [
        ("SQLite", lambda: Server(bench.work / "pg-baseline.sqlite")),
        ("PostgreSQL, one replica", lambda: Server(cluster.create_database("bench_one"))),
        ("PostgreSQL, two replicas", lambda: Balanced(cluster.create_database("bench_two"))),
    ]
    for label, start in engines:
        with _serving(start()) as server:
            runs = [
                bench_throughput(bench, writers, points, server=server, label=f" [{label}]")
                for _ in range(repeat)
            ]
        figure = median_runs(runs, f"{what} [{label}]")
        figure["figure"] = "postgres"
        figures.append(figure)
    return figures


def _fill(location: str, series_points: int) -> tuple[str, list[int]]:
    """``COMPARE_SERIES`` runs of one ``loss`` series of ``series_points`` points each; an API
    key and the experiment ids."""
    store = open_store(location)
    try:
        _, api_key = store.create_api_key("default", "bench")
        ids = []
        for run in range(COMPARE_SERIES):
            handle = store.open_run("default", "compare", None, f"r{run}", "bench", True)
            for sequence, start in enumerate(range(0, series_points, FILL_CHUNK), 1):
                steps = list(range(start, min(start + FILL_CHUNK, series_points)))
                columns = SeriesColumns(steps, [s * 1e-6 for s in steps], [T0 + s for s in steps])
                store.write_batch(f"fill-{run}", sequence, handle.experiment_id,
                                  {("loss", "ML_STEP", "{}"): columns})  # fmt: skip
            ids.append(handle.experiment_id)
        return api_key, ids
    finally:
        store.close()


def _compare(
    bench: Bench, cluster: PostgresCluster, series_points: int, repeat: int
) -> list[dict[str, Any]]:
    figures = []
    for label, location in (
        ("SQLite", str(bench.work / "compare.sqlite")),
        ("PostgreSQL", cluster.create_database("bench_compare")),
    ):
        filled = time.perf_counter()
        api_key, ids = _fill(location, series_points)
        fill_s = time.perf_counter() - filled
        with _serving(Server(location)) as server, Client(api_key, host=server.url,
                                                          timeout=60.0) as client:  # fmt: skip
            wanted = [{"experiment_id": str(e), "metric_name": "loss"} for e in ids]

            def compare(client: Client = client, wanted: list[dict[str, str]] = wanted) -> None:
                rows = client.compare_metrics(wanted, limit=COMPARE_ROWS).rows
                assert len(rows) == COMPARE_ROWS, len(rows)

            ms, runs = _median_ms(compare, repeat)
        figures.append({
            "figure": "postgres", "what": f"compare_metrics of {COMPARE_SERIES} series, "
            f"{COMPARE_ROWS:,} rows [{label}]", "ms": ms, "runs_ms": runs,
            "series_points": series_points, "fill_s": round(fill_s, 1),
            "fill_points_per_s": round(COMPARE_SERIES * series_points / fill_s),
        })  # fmt: skip
    return figures


def bench_postgres(
    bench: Bench, writers: int, points: int, series_points: int, repeat: int
) -> list[dict[str, Any]]:
    """Ingestion into each engine (SQLite the baseline), then compare_metrics on each."""
    with postgres_cluster() as cluster:
        return [
            *_ingestion(bench, cluster, writers, points, repeat),
            *_compare(bench, cluster, series_points, max(repeat, 5)),
        ]
