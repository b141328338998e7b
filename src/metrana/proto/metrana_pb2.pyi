from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ValueRun(_message.Message):
    __slots__ = ("first_step", "timestamp_ns", "float64_values", "int64_values")
    FIRST_STEP_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    FLOAT64_VALUES_FIELD_NUMBER: _ClassVar[int]
    INT64_VALUES_FIELD_NUMBER: _ClassVar[int]
    first_step: int
    timestamp_ns: int
    float64_values: bytes
    int64_values: bytes
    def __init__(self, first_step: _Optional[int] = ..., timestamp_ns: _Optional[int] = ..., float64_values: _Optional[bytes] = ..., int64_values: _Optional[bytes] = ...) -> None: ...

class SeriesBatch(_message.Message):
    __slots__ = ("metric_name", "scale", "labels", "steps", "values", "timestamps_ns", "int_positions", "int_values", "runs")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    METRIC_NAME_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_NS_FIELD_NUMBER: _ClassVar[int]
    INT_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    INT_VALUES_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    metric_name: str
    scale: str
    labels: _containers.ScalarMap[str, str]
    steps: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    timestamps_ns: _containers.RepeatedScalarFieldContainer[int]
    int_positions: _containers.RepeatedScalarFieldContainer[int]
    int_values: _containers.RepeatedScalarFieldContainer[int]
    runs: _containers.RepeatedCompositeFieldContainer[ValueRun]
    def __init__(self, metric_name: _Optional[str] = ..., scale: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., steps: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., timestamps_ns: _Optional[_Iterable[int]] = ..., int_positions: _Optional[_Iterable[int]] = ..., int_values: _Optional[_Iterable[int]] = ..., runs: _Optional[_Iterable[_Union[ValueRun, _Mapping]]] = ...) -> None: ...

class IngestBatch(_message.Message):
    __slots__ = ("producer_id", "sequence", "experiment_id", "series")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    sequence: int
    experiment_id: int
    series: _containers.RepeatedCompositeFieldContainer[SeriesBatch]
    def __init__(self, producer_id: _Optional[str] = ..., sequence: _Optional[int] = ..., experiment_id: _Optional[int] = ..., series: _Optional[_Iterable[_Union[SeriesBatch, _Mapping]]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "pacing_seconds", "replayed", "duplicates_by_series")
    class DuplicatesBySeriesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    PACING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_BY_SERIES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    pacing_seconds: float
    replayed: bool
    duplicates_by_series: _containers.ScalarMap[str, int]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., pacing_seconds: _Optional[float] = ..., replayed: _Optional[bool] = ..., duplicates_by_series: _Optional[_Mapping[str, int]] = ...) -> None: ...
