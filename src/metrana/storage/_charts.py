"""What a chart reads: an experiment's series with their stored chunks over a step range,
undecoded, so the server can turn the columns into arrays without a Python object per point
(``metrana.server._downsample``); and what the home table shows of each experiment
(:func:`summaries`)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..api import _chart_types as ct
from ..api._types import encode_value
from . import _chunks
from ._db import Connection, any_decoder, parse_id
from ._metrics import _experiment

_decoder: msgspec.msgpack.Decoder[list[Any]] = msgspec.msgpack.Decoder(list[Any])
DENSE_FIELDS = 4  # a dense chunk: [typecode, first_step, values bytes, timestamps]; else lists


class ChartSource(msgspec.Struct):
    """One series and the fields of its chunks that overlap the range (see ``_chunks``)."""

    metric_name: str
    scale: str
    metadata: dict[str, Any]
    first_step: int | None
    last_step: int | None
    chunks: list[list[Any]]


def chart_sources(
    conn: Connection,
    org_id: int,
    experiment_id: int,
    metric_names: list[str],
    low: int | None,
    high: int | None,
) -> list[ChartSource]:
    """The series of an experiment (those named, or all), in name order, with the chunks
    holding steps from ``low`` to ``high`` (inclusive)."""
    exp = _experiment(conn, org_id, experiment_id)
    sql = "SELECT id, metric_name, scale, labels FROM series WHERE experiment_id=?"
    args: list[Any] = [exp.id]
    if metric_names:
        sql += f" AND metric_name IN ({','.join('?' * len(metric_names))})"
        args += metric_names
    sources = []
    for series_id, name, scale, labels in conn.execute(
        sql + " ORDER BY metric_name, scale, labels", args
    ).fetchall():
        bounds = conn.execute(
            "SELECT MIN(first_step), MAX(last_step) FROM chunks WHERE experiment_id=? "
            "AND series_id=?",
            (exp.id, series_id),
        ).fetchone()
        span = (-(2**63) if low is None else low, 2**63 - 1 if high is None else high)
        chunks = [
            _decoder.decode(data)
            for (data,) in conn.execute(
                "SELECT data FROM chunks WHERE experiment_id=? AND series_id=? AND last_step>=? "
                "AND first_step<=? ORDER BY first_step",
                (exp.id, series_id, *span),
            )
        ]
        metadata = any_decoder.decode(labels)
        sources.append(ChartSource(name, scale, metadata, bounds[0], bounds[1], chunks))
    return sources


def summaries(
    conn: Connection, org_id: int, experiment_ids: list[str], metric_names: list[str]
) -> list[ct.ExperimentSummary]:
    """Each experiment's (those given that the organization has, or all of its) series and
    points, counted from the chunks' counts, and the last point of each series of
    ``metric_names`` (the chunk that ends last holds it: a chunk holds only new steps)."""
    sql = "SELECT id FROM experiments WHERE org_id=?"
    args: list[Any] = [org_id]
    if experiment_ids:
        ids = [parse_id("experiment", text) for text in experiment_ids]
        sql += f" AND id IN ({','.join('?' * len(ids))})"
        args += ids
    found = {row[0]: ct.ExperimentSummary(str(row[0]), 0, 0, []) for row in conn.execute(sql, args)}
    if not found:
        return []
    within = f"s.experiment_id IN ({','.join('?' * len(found))})"
    for experiment_id, series, points in conn.execute(
        "SELECT s.experiment_id, COUNT(*), "
        "SUM((SELECT COALESCE(SUM(c.count), 0) FROM chunks c "
        "WHERE c.experiment_id = s.experiment_id AND c.series_id = s.id)) "
        f"FROM series s WHERE {within} GROUP BY s.experiment_id",
        list(found),
    ):
        found[experiment_id].series, found[experiment_id].points = int(series), int(points or 0)
    if metric_names:
        for series_id, experiment_id, name, labels in conn.execute(
            "SELECT s.id, s.experiment_id, s.metric_name, s.labels FROM series s "
            f"WHERE {within} AND s.metric_name IN ({','.join('?' * len(metric_names))}) "
            "ORDER BY s.metric_name, s.labels",
            [*found, *metric_names],
        ).fetchall():
            last = conn.execute(
                "SELECT data FROM chunks WHERE experiment_id=? AND series_id=? "
                "ORDER BY last_step DESC LIMIT 1",
                (experiment_id, series_id),
            ).fetchone()
            if last is None:
                continue
            steps, values, _ = _chunks.decode(bytes(last[0]))
            at = max(range(len(steps)), key=steps.__getitem__)
            found[experiment_id].last_values.append(
                ct.LastValue(name, any_decoder.decode(labels), steps[at], encode_value(values[at]))
            )
    return list(found.values())


__all__ = ["DENSE_FIELDS", "ChartSource", "chart_sources", "summaries"]
assert DENSE_FIELDS == _chunks._DENSE_FIELDS
