"""From ring records to batch columns: the dispatcher's view of each writer, and the split of
a span of records into the columns of each series, without a Python object per record (a
bulk record's raw bytes stay bytes: a ``ValueRun`` of the series' columns)."""

from __future__ import annotations

from typing import Any

from .. import ring as _ring
from .._errors import MetranaCorruptRingError
from .._identity import SeriesColumns, SeriesKey, ValueRun, labels_json
from ..ring import CLOSE, DECLARE, FLOATS, INTS, METRICS, POINT, VALUES_PER_RECORD, decoder

__all__ = ["WriterView", "by_series", "collect", "indexes", "points_in"]


class WriterView:
    """The dispatcher's view of one writer."""

    def __init__(self, reader: _ring.RingReader) -> None:
        self.reader = reader
        self.series: dict[int, SeriesKey] = {}
        self.saw_close = False
        self.dead = False
        self.batch_points = 0
        self.forgotten = False

    @property
    def name(self) -> str:
        return f"writer {self.reader.pid} ({self.reader.writer_id})"


def collect(writer: WriterView, values: list[Any], batch: dict[SeriesKey, SeriesColumns]) -> int:
    """Add the points of ``values`` (the records of a span of one writer's ring, five
    values each) to ``batch``, column by column; take note of declarations and the CLOSE
    record. Returns the points added (a bulk record adds all of its points)."""
    kinds = values[0::VALUES_PER_RECORD]
    points = kinds.count(POINT)
    if points == len(kinds):
        _add_points(writer, values, batch)
        return points
    others = sorted(
        indexes(kinds, DECLARE)
        + indexes(kinds, CLOSE)
        + indexes(kinds, FLOATS)
        + indexes(kinds, INTS)
        + indexes(kinds, METRICS)
    )
    if points + len(others) != len(kinds):
        raise MetranaCorruptRingError(f"{writer.name}: a record of unknown kind in its ring")
    every = VALUES_PER_RECORD
    # Point records, and METRICS records spelled as point records, not added yet: added
    # together, so that a run of dicts logged with the same keys is split by slicing.
    pending: list[Any] = []
    start = 0
    for index in others:
        if index > start:
            pending += values[every * start : every * index]
        at = every * index
        kind, first, second, third, fourth = values[at : at + every]
        if kind == METRICS:
            pending += _as_points(first, second, third, fourth)
            points += len(first)
        elif kind in (FLOATS, INTS):
            if pending:
                _add_points(writer, pending, batch)
                pending = []
            points += _add_run(writer, kind, first, second, third, fourth, batch)
        elif kind == DECLARE:
            writer.series[first] = (second, third, labels_json(fourth))
        else:
            writer.saw_close = True
        start = index + 1
    if start < len(kinds):
        pending += values[every * start :]
    if pending:
        _add_points(writer, pending, batch)
    return points


def points_in(values: list[Any]) -> int:
    """The points held by the records of a span (a bulk record holds many)."""
    kinds = values[0::VALUES_PER_RECORD]
    points = kinds.count(POINT)
    if points == len(kinds):
        return points
    for kind in (FLOATS, INTS):
        for index in indexes(kinds, kind):
            points += len(values[VALUES_PER_RECORD * index + 3]) // 8
    for index in indexes(kinds, METRICS):
        points += len(values[VALUES_PER_RECORD * index + 1])
    return points


def _as_points(sids: list[int], step: int, values: list[Any], timestamp: int) -> list[Any]:
    """A METRICS record (one step of several series) as the flat values of point records."""
    flat = [POINT, 0, step, 0, timestamp] * len(sids)
    flat[1::VALUES_PER_RECORD] = sids
    flat[3::VALUES_PER_RECORD] = values
    return flat


def _add_run(
    writer: WriterView,
    kind: int,
    sid: int,
    first_step: int,
    data: bytes,
    timestamp: int,
    batch: dict[SeriesKey, SeriesColumns],
) -> int:
    """A FLOATS or INTS record (consecutive points of one series, raw little-endian values)
    into ``batch`` as a :class:`ValueRun`: its bytes as they are. Returns its points."""
    if len(data) % 8:
        raise MetranaCorruptRingError(f"{writer.name}: a bulk record of {len(data)} bytes")
    if not data:
        return 0
    key = writer.series.get(sid)
    if key is None:
        key = _declared_outside_ring(writer, sid)
    run = ValueRun(first_step, "d" if kind == FLOATS else "q", data, timestamp)
    target = batch.get(key)
    if target is None:
        batch[key] = SeriesColumns([], [], [], [run])
    elif target.only_runs() is not None:
        target.runs.append(run)
    else:
        target.extend(SeriesColumns([], [], [], [run]))
    return len(data) // 8


def _add_points(
    writer: WriterView, values: list[Any], batch: dict[SeriesKey, SeriesColumns]
) -> None:
    """Point records (kind, series id, step, value, timestamp) into ``batch``."""
    every = VALUES_PER_RECORD
    for sid, steps, point_values, timestamps in by_series(
        values[1::every], values[2::every], values[3::every], values[4::every]
    ):
        key = writer.series.get(sid)
        if key is None:
            key = _declared_outside_ring(writer, sid)
        target = batch.get(key)
        if target is None:
            batch[key] = SeriesColumns(steps, point_values, timestamps)
        else:
            target.extend_lists(steps, point_values, timestamps)


def _declared_outside_ring(writer: WriterView, sid: int) -> SeriesKey:
    """A series declared before the committed position (we replaced a dispatcher)."""
    path = writer.reader.directory / _ring.declarations_name(writer.reader.writer_id)
    for raw in _ring.read_declarations(path):
        record = decoder.decode(raw)
        writer.series[record[1]] = (record[2], record[3], labels_json(record[4]))
    key = writer.series.get(sid)
    if key is None:
        raise MetranaCorruptRingError(f"{writer.name}: point of undeclared series {sid}")
    return key


def indexes(items: list[Any], value: Any) -> list[int]:
    """Where ``value`` occurs in ``items`` (a scan in C: control records are rare)."""
    found: list[int] = []
    start = 0
    while True:
        try:
            start = items.index(value, start) + 1
        except ValueError:
            return found
        found.append(start - 1)


# The most series logged in the same order at every step that are split by slicing: a vector
# of environments (log_vector_env) has one per environment.
MAX_PERIOD = 65_536

# One series' points in columns: (series id, steps, values, timestamps).
Columns = tuple[int, list[int], list[Any], list[int]]


def by_series(
    sids: list[int], steps: list[int], values: list[Any], timestamps: list[int]
) -> list[Columns]:
    """Split point columns by series id, keeping each series' order.

    Without a loop in Python for the common shapes: one series, or several logged in the same
    order at every step (loss, accuracy, learning rate...); any other mix takes the loop."""
    first = sids[0]
    count = len(sids)
    if sids.count(first) == count:
        return [(first, steps, values, timestamps)]
    try:
        period = sids.index(first, 1)
    except ValueError:
        period = 0
    regular = 1 < period <= MAX_PERIOD and len(set(sids[:period])) == period
    if regular and all(
        sids[j::period].count(sids[j]) == len(range(j, count, period)) for j in range(period)
    ):
        return [
            (sids[j], steps[j::period], values[j::period], timestamps[j::period])
            for j in range(period)
        ]
    grouped: dict[int, tuple[list[int], list[Any], list[int]]] = {}
    for sid, step, value, timestamp in zip(sids, steps, values, timestamps, strict=True):
        columns = grouped.get(sid)
        if columns is None:
            columns = grouped[sid] = ([], [], [])
        columns[0].append(step)
        columns[1].append(value)
        columns[2].append(timestamp)
    return [(sid, *columns) for sid, columns in grouped.items()]
