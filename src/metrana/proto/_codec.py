"""Columnar batches <-> protobuf, shared by the dispatcher (encode) and the server (decode)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from .._identity import (
    I64_MAX,
    NO_LABELS,
    SeriesColumns,
    SeriesKey,
    ValueRun,
    is_scale,
    labels_of,
    name_problem,
    series_key,
)
from .metrana_pb2 import IngestBatch
from .metrana_pb2 import ValueRun as ValueRunMessage


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
        runs = columns.only_runs()
        if runs is not None:  # bulk points: their bytes as they are
            for run in runs:
                if run.typecode == "d":
                    series.runs.add(first_step=run.first_step, timestamp_ns=run.timestamp,
                                    float64_values=run.data)  # fmt: skip
                else:
                    series.runs.add(first_step=run.first_step, timestamp_ns=run.timestamp,
                                    int64_values=run.data)  # fmt: skip
            continue
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


def _value_run(index: int, run: ValueRunMessage) -> ValueRun:
    """A checked run of series ``index``."""
    kind = run.WhichOneof("values")
    if kind is None:
        raise BatchDecodeError(f"series {index}: a run without values")
    data = run.float64_values if kind == "float64_values" else run.int64_values
    count = len(data) // 8
    if len(data) % 8 or not count:
        raise BatchDecodeError(f"series {index}: a run of {len(data)} bytes (8 a value)")
    if run.first_step < 0 or run.first_step + count - 1 > I64_MAX:
        raise BatchDecodeError(f"series {index}: a run's steps are not from 0 to 2**63 - 1")
    if run.timestamp_ns < 0:
        raise BatchDecodeError(f"series {index}: negative timestamp")
    typecode = "d" if kind == "float64_values" else "q"
    return ValueRun(run.first_step, typecode, data, run.timestamp_ns)


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
        runs = [_value_run(index, run) for run in item.runs]
        key = series_key(item.metric_name, item.scale, item.labels)
        columns = SeriesColumns(steps, values, list(item.timestamps_ns), runs)
        target = series.get(key)
        if target is None:
            series[key] = columns
        else:
            target.extend(columns)
        points += len(columns)
    return DecodedBatch(
        producer_id=message.producer_id,
        sequence=message.sequence,
        experiment_id=message.experiment_id,
        series=series,
        points=points,
    )
