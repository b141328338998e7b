"""Columnar batches <-> protobuf, shared by the dispatcher (encode) and the server (decode)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from .._identity import (
    NO_LABELS,
    SeriesColumns,
    SeriesKey,
    is_scale,
    labels_of,
    name_problem,
    series_key,
)
from .metrana_pb2 import IngestBatch


class DecodedBatch(msgspec.Struct):
    producer_id: str
    sequence: int
    experiment_id: int
    series: dict[SeriesKey, SeriesColumns]
    points: int


def encode_batch(
    producer_id: str,
    sequence: int,
    experiment_id: int,
    batch: Mapping[SeriesKey, SeriesColumns],
) -> bytes:
    """Serialise a batch of series columns as a ``metrana.v1.IngestBatch``."""
    message = IngestBatch(producer_id=producer_id, sequence=sequence, experiment_id=experiment_id)
    for (name, scale, labels), columns in batch.items():
        series = message.series.add(metric_name=name, scale=scale)
        if labels != NO_LABELS:
            series.labels.update(labels_of(labels))
        series.steps.extend(columns.steps)
        series.timestamps_ns.extend(columns.timestamps)
        values = columns.values
        if set(map(type, values)) == {float}:
            series.values.extend(values)  # all floats: the common case, without a Python loop
            continue
        ints = [i for i, v in enumerate(values) if type(v) is int]
        if ints:
            series.int_positions.extend(ints)
            series.int_values.extend(int(values[i]) for i in ints)
            series.values.extend(0.0 if type(v) is int else v for v in values)
        else:
            series.values.extend(values)
    return message.SerializeToString()


class BatchDecodeError(ValueError):
    """The bytes are not a valid IngestBatch."""


def decode_batch(data: bytes) -> DecodedBatch:
    """Parse and validate an ``IngestBatch``; raise :class:`BatchDecodeError` saying why not."""
    message = IngestBatch()
    try:
        message.ParseFromString(data)
    except Exception as error:  # protobuf raises DecodeError and sometimes others
        raise BatchDecodeError(f"body is not a metrana.v1.IngestBatch: {error}") from None
    if not message.producer_id:
        raise BatchDecodeError("producer_id is empty")
    series: dict[SeriesKey, SeriesColumns] = {}
    points = 0
    for index, item in enumerate(message.series):
        n = len(item.steps)
        if len(item.values) != n or len(item.timestamps_ns) != n:
            raise BatchDecodeError(
                f"series {index}: steps, values and timestamps_ns must have the same length"
            )
        problem = name_problem(item.metric_name)
        if problem is not None:
            raise BatchDecodeError(f"series {index}: metric_name {problem}")
        if not is_scale(item.scale):
            raise BatchDecodeError(f"series {index}: unknown scale {item.scale!r}")
        if len(item.int_positions) != len(item.int_values):
            raise BatchDecodeError(f"series {index}: int_positions and int_values differ")
        steps = list(item.steps)
        if any(step < 0 for step in steps):
            raise BatchDecodeError(f"series {index}: negative step")
        values: list[float | int] = list(item.values)
        for position, value in zip(item.int_positions, item.int_values, strict=True):
            if position >= n:
                raise BatchDecodeError(f"series {index}: int position {position} out of range")
            values[position] = value
        key = series_key(item.metric_name, item.scale, item.labels)
        target = series.get(key)
        if target is None:
            series[key] = SeriesColumns(steps, values, list(item.timestamps_ns))
        else:
            target.steps.extend(steps)
            target.values.extend(values)
            target.timestamps.extend(item.timestamps_ns)
        points += n
    return DecodedBatch(
        producer_id=message.producer_id,
        sequence=message.sequence,
        experiment_id=message.experiment_id,
        series=series,
        points=points,
    )
