"""Points in and out: columnar batches (the dispatcher's), JSON points (the REST ingestion), and
a run's points read back.

Points are keyed by (series, step) and the first write wins: a point whose step is already
stored is counted as a duplicate, not changed (see ``_chunks``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .._identity import I64_MAX, name_problem
from ..api import _types as t
from . import _chunks, _experiments
from ._base import InvalidRequestError, PointRow, SeriesColumns, SeriesKey, WriteResult
from ._db import Connection, any_decoder, encode_json


class SeriesIds:
    """Series ids by (experiment, series key), created on first use and remembered across
    transactions. Clear it when a transaction rolls back: the ids it created are gone."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, SeriesKey], int] = {}

    def get(self, conn: Connection, experiment_id: int, key: SeriesKey) -> int:
        """The id of a series of an experiment, created if it does not exist."""
        cache_key = (experiment_id, key)
        series_id = self._ids.get(cache_key)
        if series_id is None:
            conn.execute(
                "INSERT OR IGNORE INTO series (experiment_id, metric_name, scale, labels) "
                "VALUES (?,?,?,?)",
                (experiment_id, *key),
            )
            found = conn.execute(
                "SELECT id FROM series WHERE experiment_id=? AND metric_name=? AND scale=? "
                "AND labels=?",
                (experiment_id, *key),
            ).fetchone()
            series_id = int(found[0])
            self._ids[cache_key] = series_id
        return series_id

    def clear(self) -> None:
        """Forget every id."""
        self._ids.clear()


def write_columns(
    conn: Connection,
    series_ids: SeriesIds,
    experiment_id: int,
    batch: Mapping[SeriesKey, SeriesColumns],
) -> WriteResult:
    """Store a batch of an experiment's series; points already stored are counted, not
    changed."""
    accepted = 0
    duplicates = 0
    by_series: dict[str, int] = {}
    _experiments.note_events(conn, experiment_id, events=bool(batch))
    for key, columns in batch.items():
        series_id = series_ids.get(conn, experiment_id, key)
        stored = _chunks.write(conn, experiment_id, series_id, columns)
        dup = len(columns) - stored
        accepted += stored
        if dup:
            duplicates += dup
            by_series[key[0]] = by_series.get(key[0], 0) + dup
    return WriteResult(accepted=accepted, duplicates=duplicates, duplicates_by_series=by_series)


def write_batch(
    conn: Connection,
    series_ids: SeriesIds,
    producer_id: str,
    sequence: int,
    experiment_id: int,
    batch: Mapping[SeriesKey, SeriesColumns],
) -> tuple[WriteResult, bool]:
    """Store a producer's batch once: a (producer, sequence) seen before is not applied again
    and its first answer is returned, with ``True`` for "replayed". A batch belongs to one
    experiment, which leads its key; those recorded before schema 5 have experiment 0."""
    found = conn.execute(
        "SELECT accepted, duplicates FROM producer_batches WHERE experiment_id IN (?, 0) "
        "AND producer_id=? AND sequence=?",
        (experiment_id, producer_id, sequence),
    ).fetchone()
    if found is not None:
        return WriteResult(accepted=int(found[0]), duplicates=int(found[1])), True
    result = write_columns(conn, series_ids, experiment_id, batch)
    conn.execute(
        "INSERT INTO producer_batches (experiment_id, producer_id, sequence, accepted, "
        "duplicates) VALUES (?,?,?,?,?)",
        (experiment_id, producer_id, sequence, result.accepted, result.duplicates),
    )
    return result, False


def ingest_json(
    conn: Connection,
    series_ids: SeriesIds,
    org_id: int,
    experiment_id: int,
    events: Sequence[t.MetricCreateInput],
) -> t.IngestResponse:
    """Store the events of ``ingest_metrics`` (call it in one transaction). A
    ``client_event_id`` seen before, or a (series, step) already stored, counts as a
    duplicate; a null step continues the series after its last stored step (or the last one
    given earlier in the request)."""
    duplicates = 0
    batch: dict[SeriesKey, SeriesColumns] = {}
    now = time.time_ns()
    _experiments.row(conn, org_id, experiment_id, lock=True)  # steps continue from the last
    next_steps: dict[SeriesKey, int] = {}
    for index, event in enumerate(events):
        _check_event(index, event)
        if (
            event.client_event_id is not None
            and not conn.execute(
                "INSERT OR IGNORE INTO client_events (experiment_id, client_event_id) VALUES (?,?)",
                (experiment_id, event.client_event_id),
            ).rowcount
        ):
            duplicates += 1
            continue
        key = (event.name, event.scale, encode_json(event.metadata))
        if key not in next_steps:  # a step-less event goes after every step stored or given
            series_id = series_ids.get(conn, experiment_id, key)
            last = _chunks.last_step(conn, experiment_id, series_id)
            next_steps[key] = 0 if last is None else last + 1
        step = next_steps[key] if event.step is None else event.step
        next_steps[key] = max(step + 1, next_steps[key])
        columns = batch.setdefault(key, SeriesColumns([], [], []))
        columns.steps.append(step)
        columns.values.append(event.value)
        columns.timestamps.append(now if event.timestamp_ms is None else event.timestamp_ms * 10**6)
    result = write_columns(conn, series_ids, experiment_id, batch)
    return t.IngestResponse(
        ok=True, mode="sync", accepted=result.accepted, duplicates=duplicates + result.duplicates
    )


def _check_event(index: int, event: t.MetricCreateInput) -> None:
    problem = name_problem(event.name)
    if problem is not None:
        raise InvalidRequestError(f"data[{index}].name {problem}")
    if not math.isfinite(event.value):
        raise InvalidRequestError(
            f"data[{index}].value must be a finite number, not {event.value!r}: NaN and "
            "infinities cannot be ingested as JSON (log() stores them)"
        )
    if event.step is not None and event.step > I64_MAX:
        raise InvalidRequestError(f"data[{index}].step must be below 2**63, got {event.step}")
    place = t.non_finite_path(event.metadata)
    if place is not None:
        raise InvalidRequestError(
            f"data[{index}].metadata must hold finite numbers only: metadata.{place} is not"
        )


def points(conn: Connection, experiment_id: int) -> Iterator[PointRow]:
    """Every point of a run, ordered by series then step. The chunks are read at the call
    (while the caller holds the connection); the rows are made as they are iterated."""
    series = conn.execute(
        "SELECT id, metric_name, scale, labels FROM series WHERE experiment_id=? "
        "ORDER BY metric_name, scale, labels",
        (experiment_id,),
    ).fetchall()
    return _rows([(row, _chunks.read(conn, experiment_id, row[0])) for row in series])


def _rows(columns: list[tuple[Any, _chunks.Column]]) -> Iterator[PointRow]:
    for (_, name, scale, labels), (steps, values, timestamps) in columns:
        decoded = any_decoder.decode(labels)
        for step, value, timestamp in zip(steps, values, timestamps, strict=True):
            yield PointRow(name, scale, decoded, step, value, timestamp)


def count_points(conn: Connection) -> int:
    """Points stored in the whole store."""
    return int(conn.execute("SELECT IFNULL(SUM(count), 0) FROM chunks").fetchone()[0])
