"""What every side agrees a series is, defined once.

A series of a run is ``(metric name, scale, labels)``; its key, :data:`SeriesKey`, holds the
labels as their *canonical text* (:func:`labels_json`: JSON with sorted keys, no spaces). The
writer interns series by that key, the dispatcher batches by it, the protobuf codec rebuilds it
from the wire, the stores index series by it and the CLI prints it. Each point is then
identified by (run, series key, step), which is what makes delivery exactly-once: if two of
those places spelled the labels differently, one series would be stored twice.

The checks here are the ones every entry point applies (``log()``, the protobuf decoder, the
REST handlers): names of 1 to :data:`MAX_NAME_LENGTH` characters, the scales of
:class:`~metrana.StandardMetricScale`, and integers (values, steps, timestamps) that fit a
signed 64-bit integer, the store's and the wire's integer.
"""

from __future__ import annotations

import numbers
import sys
from array import array
from collections.abc import Mapping
from typing import Any

import msgspec

from ._enums import StandardMetricScale, parse_enum
from ._errors import MetranaInvalidMetricError, MetranaInvalidMetricTypeError

__all__: list[str] = []  # internal: nothing here is public API

# (metric name, scale, canonical labels text): the identity of a series within a run.
SeriesKey = tuple[str, str, str]

MAX_NAME_LENGTH = 256
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
SCALES: tuple[str, ...] = tuple(member.value for member in StandardMetricScale)
DEFAULT_SCALE = StandardMetricScale.ML_STEP.value
NO_LABELS = "{}"

_BIG_ENDIAN = sys.byteorder == "big"
_labels_encoder = msgspec.json.Encoder(order="sorted")
_labels_decoder = msgspec.json.Decoder(dict[str, str])


class ValueRun:
    """Consecutive points of one series kept as they came from a bulk ``log()``: steps from
    ``first_step``, the values as raw little-endian float64 (``typecode`` ``"d"``) or int64
    (``"q"``) bytes, 8 a point, and one timestamp for all of them."""

    __slots__ = ("data", "first_step", "timestamp", "typecode")

    def __init__(self, first_step: int, typecode: str, data: bytes, timestamp: int) -> None:
        self.first_step = first_step
        self.typecode = typecode
        self.data = data
        self.timestamp = timestamp

    @property
    def count(self) -> int:
        return len(self.data) // 8

    def values(self) -> list[Any]:
        """The values as Python numbers (converted in C)."""
        return numbers_of(self.typecode, self.data)


def numbers_of(typecode: str, data: bytes | memoryview) -> list[Any]:
    """Little-endian float64 (``typecode`` ``"d"``) or int64 (``"q"``) bytes as a list of
    Python numbers, converted in C."""
    column: array[Any] = array(typecode)
    column.frombytes(data)
    if _BIG_ENDIAN:
        column.byteswap()
    return column.tolist()


class SeriesColumns:
    """Points of one series in columns, as the dispatcher batches them: lists of steps, values
    and timestamps, then :class:`ValueRun` s (bulk points still as raw bytes).

    The runs stay bytes until something reads :attr:`steps`, :attr:`values` or
    :attr:`timestamps`: the lists then take the runs' points (in order) and the runs are
    emptied. The embedded store and the protobuf encoder take the runs as they are."""

    __slots__ = ("_steps", "_timestamps", "_values", "runs")

    def __init__(
        self,
        steps: list[int],
        values: list[float | int],
        timestamps: list[int],
        runs: list[ValueRun] | None = None,
    ) -> None:
        self._steps = steps
        self._values = values
        self._timestamps = timestamps
        self.runs: list[ValueRun] = runs if runs is not None else []

    @property
    def steps(self) -> list[int]:
        if self.runs:
            self._take_runs()
        return self._steps

    @property
    def values(self) -> list[float | int]:
        if self.runs:
            self._take_runs()
        return self._values

    @property
    def timestamps(self) -> list[int]:
        if self.runs:
            self._take_runs()
        return self._timestamps

    def _take_runs(self) -> None:
        for run in self.runs:
            count = run.count
            self._steps += range(run.first_step, run.first_step + count)
            self._values += run.values()
            self._timestamps += [run.timestamp] * count
        self.runs = []

    def only_runs(self) -> list[ValueRun] | None:
        """The runs, if every point is in one (the raw columns, as they are); else None."""
        return self.runs if self.runs and not self._steps else None

    def extend_lists(
        self, steps: list[int], values: list[float | int], timestamps: list[int]
    ) -> None:
        """Append points given as columns after these (without wrapping them first)."""
        if self.runs:
            self._take_runs()
        self._steps += steps
        self._values += values
        self._timestamps += timestamps

    def extend(self, other: SeriesColumns) -> None:
        """Append ``other``'s points after these."""
        if not other._steps and not self._steps:
            self.runs += other.runs
            return
        self.steps.extend(other.steps)
        self.values.extend(other.values)
        self.timestamps.extend(other.timestamps)

    def last_step(self) -> int | None:
        """The highest step, None if there is no point (without taking the runs)."""
        if not self.runs:
            return max(self._steps) if self._steps else None
        ends = [run.first_step + run.count - 1 for run in self.runs if run.count]
        if self._steps:
            ends.append(max(self._steps))
        return max(ends) if ends else None

    def __len__(self) -> int:
        return len(self._steps) + sum(len(run.data) for run in self.runs) // 8

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesColumns):
            return NotImplemented
        return (self.steps, self.values, self.timestamps) == (
            other.steps,
            other.values,
            other.timestamps,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SeriesColumns({self.steps!r}, {self.values!r}, {self.timestamps!r})"


def labels_json(labels: Mapping[str, str]) -> str:
    """The canonical text of a label set: the form a :data:`SeriesKey` holds."""
    return _labels_encoder.encode(labels if isinstance(labels, dict) else dict(labels)).decode()


def labels_of(text: str) -> dict[str, str]:
    """The label set of a canonical label text."""
    return {} if text == NO_LABELS else _labels_decoder.decode(text)


def series_key(name: str, scale: str, labels: Mapping[str, str]) -> SeriesKey:
    """The key of a series whose name, scale and labels are already checked."""
    return (name, scale, labels_json(labels))


def name_problem(name: object) -> str | None:
    """Why ``name`` is not an acceptable metric (or folder, experiment) name; None if it is."""
    if type(name) is not str or not name.strip():
        return f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters; at most {MAX_NAME_LENGTH} are accepted"
    return None


def check_metric_name(name: object) -> str:
    """``name`` if it is a metric name; else a clear error saying why not."""
    if type(name) is not str:
        raise MetranaInvalidMetricTypeError(
            f"metric_name must be a str, got {type(name).__name__}: {name!r}"
        )
    if not name or not name.strip():
        raise MetranaInvalidMetricError("metric_name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise MetranaInvalidMetricError(
            f"metric_name is {len(name)} characters; at most {MAX_NAME_LENGTH} are accepted: "
            f"{name[:40]!r}..."
        )
    return name


def check_scale(scale: object) -> str:
    """The scale's wire name (the default for None); raises for an unknown scale."""
    if scale is None:
        return DEFAULT_SCALE
    member = parse_enum(StandardMetricScale, scale)
    if member is None:
        raise MetranaInvalidMetricError(
            f"unknown scale {scale!r}; accepted values: {StandardMetricScale.accepted()}"
        )
    return member.value


def check_labels(labels: object) -> dict[str, str]:
    """A copy of ``labels`` if it maps non-empty strings to strings (``{}`` for None)."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise MetranaInvalidMetricTypeError(
            f"labels must be a dict of str to str, got {type(labels).__name__}"
        )
    for key, value in labels.items():
        if type(key) is not str or type(value) is not str:
            raise MetranaInvalidMetricTypeError(
                f"labels must map str to str; got {key!r}: {value!r} "
                f"({type(key).__name__}: {type(value).__name__})"
            )
        if not key:
            raise MetranaInvalidMetricError("label names must not be empty")
    return dict(labels)


def check_value(value: object) -> int | float:
    """Accept ints and floats (and other real numbers such as NumPy scalars); reject bools, and
    ints that a 64-bit signed integer cannot hold."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MetranaInvalidMetricTypeError(
            f"value must be an int or float, got {type(value).__name__}: {value!r}"
        )
    if isinstance(value, numbers.Integral):
        value = int(value)
        if not I64_MIN <= value <= I64_MAX:
            raise MetranaInvalidMetricError(
                f"value {value} does not fit a 64-bit signed integer; log it as a float "
                "(float(value)) if an approximation will do"
            )
        return value
    return float(value)


def check_step(step: object) -> int:
    """``step`` if it is an int from 0 to 2**63 - 1."""
    if type(step) is not int:
        raise MetranaInvalidMetricTypeError(
            f"step must be a non-negative int, got {type(step).__name__}: {step!r}"
        )
    if step < 0:
        raise MetranaInvalidMetricError(f"step must be a non-negative int, got {step}")
    if step > I64_MAX:
        raise MetranaInvalidMetricError(f"step must be below 2**63, got {step}")
    return step


def check_timestamp(timestamp: object) -> int:
    """``timestamp`` if it is an int of Unix nanoseconds from 0 to 2**63 - 1."""
    if type(timestamp) is not int:
        raise MetranaInvalidMetricTypeError(
            f"timestamp must be an int of Unix nanoseconds, got {type(timestamp).__name__}: "
            f"{timestamp!r}"
        )
    if not 0 <= timestamp <= I64_MAX:
        raise MetranaInvalidMetricError(
            f"timestamp must be Unix nanoseconds from 0 to 2**63 - 1, got {timestamp}"
        )
    return timestamp


def is_scale(value: Any) -> bool:
    """Whether ``value`` is the wire name of a scale (as the protobuf and REST carry it)."""
    return value in SCALES
