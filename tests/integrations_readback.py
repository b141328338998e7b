"""Reading a run back through ``metrana.Client``, for the integration tests.

This is the one module of those tests that knows the REST client's shape (it changes with the
Syvain data model): the tests see plain dicts and tuples. ``server`` is the live server a run
was delivered to, or None for the embedded store under ``METRANA_HOME`` (read through a server
over the store's file, for the time of the read). Runs are looked up by name in the
``default`` workspace, the workspace of the server's key.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from conftest import store_path

from metrana.api import Client
from metrana.testing import RunningServer, read_rows, serve_in_thread

# (metric name, scale, labels as sorted (name, value) pairs)
Series = tuple[str, str, tuple[tuple[str, str], ...]]
Points = dict[Series, list[tuple[int, float | int]]]


@contextmanager
def _client(server: RunningServer | None) -> Iterator[Client]:
    if server is None:
        with (
            serve_in_thread(str(store_path())) as embedded,
            Client(embedded.api_key, host=embedded.url) as client,
        ):
            yield client
    else:
        with Client(server.api_key, host=server.url) as client:
            yield client


def _experiment(client: Client, run_name: str) -> Any:
    found = client.list_experiments(slug=run_name).experiments
    assert len(found) == 1, f"{len(found)} runs named {run_name!r}"
    return found[0]


def stored_points(server: RunningServer | None, run_name: str) -> Points:
    """Every stored point of the run, per series, as (step, value) pairs in step order."""
    with _client(server) as client:
        rows = read_rows(client, _experiment(client, run_name).id)
    points: Points = {}
    for row in sorted(rows, key=lambda row: row.step or 0):
        labels = tuple(sorted(json.loads(row.event_metadata_json).items()))
        value = row.metric_value
        assert row.step is not None and not isinstance(value, str), row
        points.setdefault((row.metric_name, row.scale, labels), []).append((row.step, value))
    return points


def run_metadata(server: RunningServer | None, run_name: str) -> dict[str, Any]:
    """The run's metadata: the config it was opened with."""
    with _client(server) as client:
        metadata: dict[str, Any] = _experiment(client, run_name).metadata
    return metadata


def run_status(server: RunningServer | None, run_name: str) -> str:
    """The run's status: created, running, done or error."""
    with _client(server) as client:
        status: str = _experiment(client, run_name).status
    return status


def reported_points(
    calls: Iterable[tuple[Mapping[str, Any], int | None]],
    scale: str = "ML_STEP",
    labels: Mapping[str, str] | None = None,
    rename: Callable[[str], str] = str,
) -> Points:
    """What a framework reported, as :func:`stored_points` returns it: every number of each
    ``(metrics, step)`` call in the series ``(rename(key), scale, labels)``, the first value of
    each step only (the store keeps the first)."""
    points: Points = {}
    label_pairs = tuple(sorted((labels or {}).items()))
    for metrics, step in calls:
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                continue
            number = int(value) if isinstance(value, numbers.Integral) else float(value)
            series = points.setdefault((rename(key), scale, label_pairs), [])
            if step not in [known for known, _ in series]:
                series.append((step, number))
    return {key: sorted(series) for key, series in points.items()}
