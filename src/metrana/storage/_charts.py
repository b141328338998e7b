"""What a chart reads: an experiment's series with their stored chunks over a step range,
undecoded, so the server can turn the columns into arrays without a Python object per point
(``metrana.server._downsample``)."""

from __future__ import annotations

from typing import Any

import msgspec

from . import _chunks
from ._db import Connection, any_decoder
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
            "SELECT MIN(first_step), MAX(last_step) FROM chunks WHERE series_id=?", (series_id,)
        ).fetchone()
        chunks = [
            _decoder.decode(data)
            for (data,) in conn.execute(
                "SELECT data FROM chunks WHERE series_id=? AND last_step>=? AND first_step<=? "
                "ORDER BY first_step",
                (series_id, -(2**63) if low is None else low, 2**63 - 1 if high is None else high),
            )
        ]
        metadata = any_decoder.decode(labels)
        sources.append(ChartSource(name, scale, metadata, bounds[0], bounds[1], chunks))
    return sources


__all__ = ["DENSE_FIELDS", "ChartSource", "chart_sources"]
assert DENSE_FIELDS == _chunks._DENSE_FIELDS
