"""From ring records to batch columns: the dispatcher's view of each writer, and the split of
a span of records into the columns of each series, without a Python object per record."""

from __future__ import annotations

from typing import Any

from .. import ring as _ring
from .._errors import MetranaCorruptRingError
from .._identity import SeriesColumns, SeriesKey, labels_json
from ..ring import CLOSE, DECLARE, POINT, VALUES_PER_RECORD, decoder

__all__ = ["WriterView", "by_series", "collect", "indexes"]


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
    record. Returns the points added."""
    kinds = values[0::VALUES_PER_RECORD]
    points = kinds.count(POINT)
    if points == len(kinds):
        _add_points(writer, values, batch)
        return points
    controls = sorted(indexes(kinds, DECLARE) + indexes(kinds, CLOSE))
    if points + len(controls) != len(kinds):
        raise MetranaCorruptRingError(f"{writer.name}: a record of unknown kind in its ring")
    start = 0
    for index in controls:
        if index > start:
            _add_points(
                writer, values[VALUES_PER_RECORD * start : VALUES_PER_RECORD * index], batch
            )
        at = VALUES_PER_RECORD * index
        kind, sid, name, scale, labels = values[at : at + VALUES_PER_RECORD]
        if kind == DECLARE:
            writer.series[sid] = (name, scale, labels_json(labels))
        else:
            writer.saw_close = True
        start = index + 1
    if start < len(kinds):
        _add_points(writer, values[VALUES_PER_RECORD * start :], batch)
    return points


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
            target.steps.extend(steps)
            target.values.extend(point_values)
            target.timestamps.extend(timestamps)


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
    regular = 1 < period <= 64 and len(set(sids[:period])) == period
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
