"""Points stored as columnar chunks: one row per (series, batch) instead of one per point.

A chunk holds a series' points of one batch, sorted by step, with its first and last step and
its point count, in one of two forms (ints stay ints, NaN stays NaN in both):

* *dense*, when the steps are consecutive and the values all floats or all ints: a msgpack
  ``[typecode, first_step, values, timestamps]``, the values as raw little-endian float64
  (``"d"``) or int64 (``"q"``) bytes, the timestamps as one int when they are all equal (the
  points of one bulk ``log()``), as ``[[count, timestamp], ...]`` runs (several bulk calls),
  or as raw int64 bytes; 8 to 16 bytes a point. The bytes of bulk points (``ValueRun``) are
  stored as they came from the writer's ring, other points are converted in C;
* *lists* otherwise: a msgpack ``[steps, values, timestamps]``.

Chunks are reached by (experiment, series): the experiment leads the key in PostgreSQL (a
distributed PostgreSQL shards them by it) and is a column of SQLite's (schema 5), so that both
engines run the same statements.

No two chunks of a series share a step: a batch's points whose step is already stored are
dropped (first write wins) and counted as duplicates.

The common case costs one indexed lookup per series: a batch whose steps all come after the
series' last stored step (logging moves forward) is stored whole. Anything else reads the
chunks whose step range overlaps the batch and removes the steps already there.
"""

from __future__ import annotations

import operator
import sys
import time
from array import array
from typing import Any

import msgspec

from .._identity import ValueRun, numbers_of
from ._base import SeriesColumns
from ._db import Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    series_id INTEGER NOT NULL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL,
    stored_ms INTEGER,  -- when the batch was stored (the events' server timestamp)
    -- the series' experiment (schema 5: added, not leading the key, see docs/deployment.md)
    experiment_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, first_step)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_last_step ON chunks(series_id, last_step);
"""

Column = tuple[list[int], list[Any], list[int]]
# Points with when they were stored: (steps, values, timestamps in ns, stored in ms).
Stored = tuple[list[int], list[Any], list[int], list[int | None]]
# A chunk to insert: (data, first step, last step, point count).
Chunk = tuple[bytes, int, int, int]

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[list[Any]] = msgspec.msgpack.Decoder(list[Any])
_BIG_ENDIAN = sys.byteorder == "big"
_ONLY_FLOATS, _ONLY_INTS = {float}, {int}
_DENSE_FIELDS = 4  # [typecode, first_step, values, timestamps]


def _raw(column: array[Any]) -> memoryview:
    """The little-endian bytes of an array of numbers."""
    if _BIG_ENDIAN:
        column.byteswap()
    return memoryview(column).cast("B")


def _dense(steps: list[int], values: list[Any], timestamps: list[int]) -> bytes | None:
    """The dense form of increasing points, if their steps are consecutive and their values
    all floats or all ints; else None."""
    count = len(steps)
    first = steps[0]
    if steps[-1] - first != count - 1 or steps != list(range(first, first + count)):
        return None
    kinds = set(map(type, values))
    if kinds == _ONLY_FLOATS:
        typecode = "d"
    elif kinds == _ONLY_INTS:
        typecode = "q"
    else:
        return None
    stamp = timestamps[0]
    stamps: int | memoryview = (
        stamp if timestamps.count(stamp) == count else _raw(array("q", timestamps))
    )
    return _encoder.encode((typecode, first, _raw(array(typecode, values)), stamps))


def _dense_runs(runs: list[ValueRun], last: int | None) -> Chunk | None:
    """The dense chunk of bulk runs, their bytes as they are, if they follow
    one another from after ``last`` with one type of value; else None."""
    first = runs[0].first_step
    typecode = runs[0].typecode
    if last is not None and first <= last:
        return None
    at = first
    stamps: list[list[int]] = []
    for run in runs:
        if run.first_step != at or run.typecode != typecode:
            return None
        count = run.count
        at += count
        if stamps and stamps[-1][1] == run.timestamp:
            stamps[-1][0] += count
        else:
            stamps.append([count, run.timestamp])
    values = b"".join([run.data for run in runs]) if len(runs) > 1 else runs[0].data
    stamp: int | list[list[int]] = stamps[0][1] if len(stamps) == 1 else stamps
    return _encoder.encode((typecode, first, values, stamp)), first, at - 1, at - first


def decode(data: bytes) -> Column:
    """A chunk's points as columns, whichever its form."""
    fields = _decoder.decode(data)
    if len(fields) != _DENSE_FIELDS:
        return fields[0], fields[1], fields[2]
    typecode, first, values, stamps = fields
    steps = list(range(first, first + len(values) // 8))
    if type(stamps) is int:
        return steps, numbers_of(typecode, values), [stamps] * len(steps)
    if type(stamps) is list:
        timestamps: list[int] = []
        for count, stamp in stamps:
            timestamps += [stamp] * count
        return steps, numbers_of(typecode, values), timestamps
    return steps, numbers_of(typecode, values), numbers_of("q", stamps)


def _steps(data: bytes) -> list[int] | range:
    """A chunk's steps."""
    fields = _decoder.decode(data)
    if len(fields) != _DENSE_FIELDS:
        return list(fields[0])
    return range(fields[1], fields[1] + len(fields[2]) // 8)


def last_step(conn: Connection, experiment_id: int, series_id: int) -> int | None:
    row = conn.execute(
        "SELECT MAX(last_step) FROM chunks WHERE experiment_id=? AND series_id=?",
        (experiment_id, series_id),
    )
    value = row.fetchone()[0]
    return None if value is None else int(value)


def _increasing(steps: list[int]) -> bool:
    return all(map(operator.lt, steps, steps[1:]))


def write(conn: Connection, experiment_id: int, series_id: int, columns: SeriesColumns) -> int:
    """Store the points of ``columns`` whose step is new in a series of an experiment; answer
    how many were stored."""
    last = last_step(conn, experiment_id, series_id)
    runs = columns.only_runs()
    chunk = _dense_runs(runs, last) if runs else None
    if chunk is None:
        chunk = _chunk_of_lists(conn, (experiment_id, series_id), columns, last)
        if chunk is None:
            return 0
    data, first, last_of_chunk, count = chunk
    conn.execute(
        "INSERT INTO chunks (experiment_id, series_id, first_step, last_step, count, data, "
        "stored_ms) VALUES (?,?,?,?,?,?,?)",
        (experiment_id, series_id, first, last_of_chunk, count, data, time.time_ns() // 10**6),
    )
    return count


def _chunk_of_lists(
    conn: Connection, key: tuple[int, int], columns: SeriesColumns, last: int | None
) -> Chunk | None:
    """The chunk of the points of ``columns`` whose step is new, in
    the dense form if it applies; None if there is none."""
    steps = columns.steps
    if not steps:
        return None
    if last is None or steps[0] > last:
        data = _dense(steps, columns.values, columns.timestamps)
        if data is not None:
            return data, steps[0], steps[-1], len(steps)
        if _increasing(steps):
            data = _encoder.encode((steps, columns.values, columns.timestamps))
            return data, steps[0], steps[-1], len(steps)
    steps, values, timestamps = _new_points(conn, key, columns)
    if not steps:
        return None
    data = _dense(steps, values, timestamps) or _encoder.encode((steps, values, timestamps))
    return data, steps[0], steps[-1], len(steps)


def _new_points(conn: Connection, key: tuple[int, int], columns: SeriesColumns) -> Column:
    """The points of ``columns`` not stored yet in the series ``key`` (experiment, series)
    (the first of equal steps wins), by step."""
    low, high = min(columns.steps), max(columns.steps)
    taken: set[int] = set()
    for (data,) in conn.execute(
        "SELECT data FROM chunks WHERE experiment_id=? AND series_id=? AND last_step>=? "
        "AND first_step<=?",
        (*key, low, high),
    ):
        taken.update(s for s in _steps(data) if low <= s <= high)
    kept: dict[int, tuple[Any, int]] = {}
    for step, value, timestamp in zip(
        columns.steps, columns.values, columns.timestamps, strict=True
    ):
        if step not in taken and step not in kept:
            kept[step] = (value, timestamp)
    order = sorted(kept)
    return order, [kept[s][0] for s in order], [kept[s][1] for s in order]


def read(conn: Connection, experiment_id: int, series_id: int, limit: int | None = None) -> Column:
    """A series' points in step order (the first ``limit`` of them)."""
    steps, values, timestamps, _ = read_range(conn, experiment_id, series_id, limit=limit)
    return steps, values, timestamps


def read_range(
    conn: Connection,
    experiment_id: int,
    series_id: int,
    from_step: int | None = None,
    to_step: int | None = None,
    limit: int | None = None,
    descending: bool = False,
) -> Stored:
    """A series' points with steps from ``from_step`` to ``to_step`` (inclusive), in step
    order (descending: the last first), the first ``limit`` of that order, with when each was
    stored (ms; None for points stored before schema 3). Only the chunks that can hold them
    are read."""
    low = -(2**63) if from_step is None else from_step
    high = 2**63 - 1 if to_step is None else to_step
    steps: list[int] = []
    values: list[Any] = []
    timestamps: list[int] = []
    stored: list[int | None] = []
    bound: int | None = None  # the last chunk's edge, to see whether chunks interleave
    ordered = True
    for first, last, data, stored_ms in conn.execute(
        "SELECT first_step, last_step, data, stored_ms FROM chunks WHERE experiment_id=? "
        "AND series_id=? AND last_step>=? AND first_step<=? "
        f"ORDER BY {'last_step DESC' if descending else 'first_step'}",
        (experiment_id, series_id, low, high),
    ):
        if limit is not None and len(steps) >= limit:
            # Chunks come by their nearest edge: once one starts past the limit-th point read
            # so far, it and every later one hold only points past the limit.
            kth = (steps if ordered else sorted(steps, reverse=descending))[limit - 1]
            if last < kth if descending else first > kth:
                break
        if bound is not None and (last >= bound if descending else first <= bound):
            ordered = False  # chunks interleave: sort at the end
        edge = first if descending else last
        bound = edge if bound is None else (min(bound, edge) if descending else max(bound, edge))
        chunk_steps, chunk_values, chunk_timestamps = decode(data)
        if chunk_steps[0] < low or chunk_steps[-1] > high:
            kept = [i for i, step in enumerate(chunk_steps) if low <= step <= high]
            chunk_steps = [chunk_steps[i] for i in kept]
            chunk_values = [chunk_values[i] for i in kept]
            chunk_timestamps = [chunk_timestamps[i] for i in kept]
        if descending:
            chunk_steps.reverse()
            chunk_values.reverse()
            chunk_timestamps.reverse()
        steps += chunk_steps
        values += chunk_values
        timestamps += chunk_timestamps
        stored += [stored_ms] * len(chunk_steps)
    if not ordered:
        order = sorted(range(len(steps)), key=steps.__getitem__, reverse=descending)
        steps = [steps[i] for i in order]
        values = [values[i] for i in order]
        timestamps = [timestamps[i] for i in order]
        stored = [stored[i] for i in order]
    if limit is not None:
        return steps[:limit], values[:limit], timestamps[:limit], stored[:limit]
    return steps, values, timestamps, stored


def migrate_point_rows(conn: Connection) -> None:
    """Stores written before chunks kept a row per point in ``points``: move them over."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='points'"
    ).fetchone()
    if exists is None:
        return
    series_ids = conn.execute(
        "SELECT DISTINCT p.series_id, IFNULL(s.experiment_id, 0) FROM points p "
        "LEFT JOIN series s ON s.id = p.series_id"
    ).fetchall()
    for series_id, experiment_id in series_ids:
        rows = conn.execute(
            "SELECT step, value, timestamp_ns FROM points WHERE series_id=? ORDER BY step",
            (series_id,),
        ).fetchall()
        columns = SeriesColumns(
            [r[0] for r in rows],
            [float("nan") if r[1] is None else r[1] for r in rows],
            [r[2] for r in rows],
        )
        write(conn, experiment_id, series_id, columns)
    conn.execute("DROP TABLE points")
