"""Metric queries: an experiment's series with their points, several series side by side, and
the catalog of metric names and label values.

Functions that take a ``workspace_id`` only see that workspace's experiments: an id from
another workspace reads as not found.
"""

from __future__ import annotations

from typing import Any

from ..api import _types as t
from . import _chunks, _experiments, _folders
from ._base import InvalidRequestError, NotFoundError
from ._db import Connection, and_equal, labels_decoder


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', '\\"') + '"'


def list_metrics(
    conn: Connection,
    workspace_id: int,
    experiment_id: int,
    metric_name: str | None,
    scale: str | None,
    limit: int | None,
) -> t.MetricList:
    """Every series of an experiment (optionally one metric or scale) with its points in
    step order; ``limit`` keeps the first points of each series."""
    query, args = and_equal(
        "SELECT id, metric_name, scale, labels FROM series WHERE experiment_id=?",
        [experiment_id],
        metric_name=metric_name,
        scale=scale,
    )
    _experiments.row(conn, workspace_id, experiment_id)
    series = []
    for series_id, name, series_scale, labels in conn.execute(
        query + " ORDER BY metric_name, scale, labels", args
    ).fetchall():
        steps, values, timestamps = _chunks.read(conn, series_id, limit)
        points = [
            t.MetricPoint(step, t.encode_value(value), timestamp)
            for step, value, timestamp in zip(steps, values, timestamps, strict=True)
        ]
        series.append(t.MetricSeries(name, series_scale, labels_decoder.decode(labels), points))
    return t.MetricList(experiment_id=experiment_id, series=series)


def compare_metrics(
    conn: Connection, workspace_id: int, request: t.CompareRequest
) -> t.CompareResponse:
    """Several series aligned by step: one row per step any of them has (first ``limit``)."""
    if not request.series:
        raise InvalidRequestError("compare needs at least one series")
    columns: list[dict[int, float | int]] = []
    limit = max(0, request.limit)
    for wanted in request.series:
        _experiments.row(conn, workspace_id, wanted.experiment_id)
        # The first ``limit`` steps of the union are among each series' first ``limit``: a
        # step past those has ``limit`` smaller ones in its own series already.
        steps, values, _ = _chunks.read(conn, _pick_series(conn, wanted), limit)
        columns.append(dict(zip(steps, values, strict=True)))
    steps = sorted(set().union(*columns))[:limit]
    rows = [
        t.CompareRow(step, [t.encode_value(c[step]) if step in c else None for c in columns])
        for step in steps
    ]
    return t.CompareResponse(series=request.series, rows=rows)


def _pick_series(conn: Connection, wanted: t.ComparisonMetricSeries) -> int:
    """The one series ``wanted`` names; an error when it names none or several."""
    query = "SELECT id, labels FROM series WHERE experiment_id=? AND metric_name=?"
    args: list[Any] = [wanted.experiment_id, wanted.metric_name]
    if wanted.metadata_key is not None:
        query += " AND json_extract(labels, ?) IS ?"
        args += [_json_path(wanted.metadata_key), wanted.metadata_value]
    rows = conn.execute(query, args).fetchall()
    where = f"experiment {wanted.experiment_id}, metric {wanted.metric_name!r}" + (
        f", {wanted.metadata_key}={wanted.metadata_value!r}" if wanted.metadata_key else ""
    )
    if not rows:
        raise NotFoundError(f"no series for {where}")
    if len(rows) > 1:
        label_sets = ", ".join(str(r[1]) for r in rows[:5])
        raise InvalidRequestError(
            f"{len(rows)} series match {where} (labels {label_sets}); narrow it with "
            "metadata_key and metadata_value"
        )
    return int(rows[0][0])


def metric_catalog(
    conn: Connection, workspace_id: int, folder_id: int | None
) -> list[t.MetricCatalogEntry]:
    """Every metric name in the workspace (or under a folder), with its scales, label keys
    and how many experiments and series carry it."""
    scope, args = _experiment_scope(conn, workspace_id, folder_id)
    entries: dict[str, t.MetricCatalogEntry] = {}
    for name, scales, experiments, count in conn.execute(
        "SELECT metric_name, group_concat(DISTINCT scale), "
        "COUNT(DISTINCT experiment_id), COUNT(*) FROM series "
        f"WHERE experiment_id IN ({scope}) GROUP BY metric_name ORDER BY metric_name",
        args,
    ):
        entries[name] = t.MetricCatalogEntry(
            metric_name=name,
            scales=sorted(str(scales).split(",")),
            label_keys=[],
            experiments=experiments,
            series=count,
        )
    for name, key in conn.execute(
        "SELECT DISTINCT s.metric_name, j.key FROM series s, json_each(s.labels) j "
        f"WHERE s.experiment_id IN ({scope}) ORDER BY j.key",
        args,
    ):
        entries[name].label_keys.append(key)
    return list(entries.values())


def _experiment_scope(
    conn: Connection, workspace_id: int, folder_id: int | None
) -> tuple[str, list[Any]]:
    """A subquery (and its arguments) for the ids of the workspace's experiments, or of
    those anywhere under a folder."""
    if folder_id is None:
        return "SELECT id FROM experiments WHERE workspace_id=?", [workspace_id]
    _folders.row(conn, workspace_id, folder_id)
    folders = _folders.subtree(conn, folder_id)
    marks = ",".join("?" * len(folders))
    return f"SELECT id FROM experiments WHERE folder_id IN ({marks})", list(folders)


def metric_catalog_values(
    conn: Connection, workspace_id: int, metric_name: str, label_key: str
) -> t.MetricCatalogValues:
    """The distinct values a label takes on a metric across the workspace."""
    values = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT json_extract(s.labels, ?) AS v FROM series s "
            "JOIN experiments e ON e.id = s.experiment_id "
            "WHERE e.workspace_id=? AND s.metric_name=? AND v IS NOT NULL ORDER BY v",
            (_json_path(label_key), workspace_id, metric_name),
        )
    ]
    return t.MetricCatalogValues(metric_name=metric_name, label_key=label_key, values=values)
