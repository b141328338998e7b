"""Bulk logging: arrays, tensors, sequences and dicts as one record each, stored exactly, with
the scalar path's semantics (validation, auto steps, resume, backpressure counted by points)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    dispatcher_stopped,
    export_points,
    kill_writer_after_logging,
    run_python,
    server_env,
    store_path,
)

import metrana
from metrana import ring as _ring
from metrana._identity import SeriesColumns, ValueRun
from metrana.dispatcher._columns import points_in
from metrana.dispatcher.targets._embedded import EmbeddedTarget
from metrana.proto._codec import BatchDecodeError, decode_batch, encode_batch
from metrana.proto.metrana_pb2 import IngestBatch
from metrana.session import errors_path, read_errors
from metrana.storage import SqliteStore
from metrana.testing import InProcessSession, RunningServer, wait_until
from metrana.writer import _run

numpy = pytest.importorskip("numpy")

NAMES = {"workspace_name": "w", "project_name": "p", "run_name": "bulk"}
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
SPECIAL_FLOATS = [0.0, -0.0, 1.5, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324]


def _exact(values: list[Any]) -> list[tuple[type, str]]:
    """Values compared exactly: NaN equals NaN, -0.0 differs from 0.0, ints differ from floats."""
    return [(type(v), repr(v)) for v in values]


def _writer() -> Any:
    writer = _run.current_writer()
    assert writer is not None
    return writer


ARRAYS = [
    ("float64", numpy.array(SPECIAL_FLOATS, dtype=numpy.float64), SPECIAL_FLOATS),
    ("float64 big-endian", numpy.array(SPECIAL_FLOATS, dtype=">f8"), SPECIAL_FLOATS),
    (
        "float32",
        numpy.array([0.5, float("nan"), float("inf"), float("-inf")], dtype=numpy.float32),
        [0.5, float("nan"), float("inf"), float("-inf")],
    ),
    ("float16", numpy.array([0.25, -2.0], dtype=numpy.float16), [0.25, -2.0]),
    ("int64", numpy.array([I64_MIN, -1, 0, I64_MAX], dtype=numpy.int64), [I64_MIN, -1, 0, I64_MAX]),
    ("int32", numpy.array([-(2**31), 2**31 - 1], dtype=numpy.int32), [-(2**31), 2**31 - 1]),
    ("int16", numpy.array([-(2**15), 7], dtype=numpy.int16), [-(2**15), 7]),
    ("int8", numpy.array([-128, 127], dtype=numpy.int8), [-128, 127]),
    ("uint8", numpy.array([0, 255], dtype=numpy.uint8), [0, 255]),
    ("uint16", numpy.array([65535], dtype=numpy.uint16), [65535]),
    ("uint32", numpy.array([2**32 - 1], dtype=numpy.uint32), [2**32 - 1]),
    ("uint64", numpy.array([0, I64_MAX], dtype=numpy.uint64), [0, I64_MAX]),
    ("strided", numpy.arange(10, dtype=numpy.float64)[::3], [0.0, 3.0, 6.0, 9.0]),
    ("list of floats", list(SPECIAL_FLOATS), SPECIAL_FLOATS),
    ("tuple of ints", (I64_MIN, 0, I64_MAX), [I64_MIN, 0, I64_MAX]),
    ("mixed list", [1, 2.5, numpy.float32(0.5)], [1, 2.5, 0.5]),
]


@pytest.mark.parametrize(("given", "expected"), [a[1:] for a in ARRAYS], ids=[a[0] for a in ARRAYS])
def test_arrays_of_every_accepted_dtype_round_trip_exactly_through_the_store(
    tmp_path: Path, given: Any, expected: list[Any]
) -> None:
    store = str(tmp_path / "store.sqlite")
    with InProcessSession(EmbeddedTarget(store)) as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("curve", given, step=10)
        metrana.log("curve", given)  # auto steps continue after the array
        metrana.close()
    rows = list(SqliteStore(store).points(1))
    assert [row.step for row in rows] == list(range(10, 10 + 2 * len(expected)))
    assert _exact([row.value for row in rows]) == _exact(expected * 2)
    assert len({row.timestamp_ns for row in rows}) == 2  # one timestamp per call


def test_bulk_columns_round_trip_exactly_through_protobuf() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("f", numpy.array(SPECIAL_FLOATS))
        metrana.log("i", numpy.array([I64_MIN, I64_MAX]))
        metrana.log({"a": 1.0, "b": 2})
        metrana.close()
    batch = {k: v for b in session.target.batches for k, v in b.items()}
    decoded = decode_batch(encode_batch("producer", 1, 1, batch))
    assert decoded.points == len(SPECIAL_FLOATS) + 4
    assert _exact(decoded.series[("f", "ML_STEP", "{}")].values) == _exact(SPECIAL_FLOATS)
    assert _exact(decoded.series[("i", "ML_STEP", "{}")].values) == _exact([I64_MIN, I64_MAX])
    assert decoded.series[("b", "ML_STEP", "{}")].values == [2]


def test_value_runs_cross_protobuf_as_their_bytes_and_bad_runs_are_refused() -> None:
    floats = numpy.array(SPECIAL_FLOATS).tobytes()
    ints = numpy.array([I64_MIN, I64_MAX], dtype="<i8").tobytes()
    runs = [ValueRun(5, "d", floats, 11), ValueRun(5 + len(SPECIAL_FLOATS), "q", ints, 12)]
    body = encode_batch("producer", 1, 1, {("m", "ML_STEP", "{}"): SeriesColumns([], [], [], runs)})
    message = IngestBatch.FromString(body)
    assert [run.float64_values or run.int64_values for run in message.series[0].runs] == [
        floats,
        ints,
    ]
    decoded = decode_batch(body).series[("m", "ML_STEP", "{}")]
    assert decoded.only_runs() is not None and len(decoded) == len(SPECIAL_FLOATS) + 2
    assert decoded.steps == list(range(5, 5 + len(SPECIAL_FLOATS) + 2))
    assert _exact(decoded.values) == _exact([*SPECIAL_FLOATS, I64_MIN, I64_MAX])
    assert decoded.timestamps == [11] * len(SPECIAL_FLOATS) + [12, 12]
    for run, why in [
        ({"first_step": 0, "float64_values": b"\0" * 7}, "series 0: a run of 7 bytes (8 a value)"),
        ({"first_step": -1, "float64_values": b"\0" * 8}, "series 0: a run's steps are not"),
        ({"first_step": 2**63 - 1, "int64_values": b"\0" * 16}, "series 0: a run's steps"),
        ({"first_step": 0}, "series 0: a run without values"),
    ]:
        bad = IngestBatch(producer_id="p", sequence=1, experiment_id=1)
        bad.series.add(metric_name="m", scale="ML_STEP").runs.add(**run)
        with pytest.raises(BatchDecodeError, match=re.escape(why)):
            decode_batch(bad.SerializeToString())


def test_a_span_counts_the_points_of_its_bulk_records() -> None:
    """What a close strategy discards unread is counted in points (``points_in``)."""
    span = [
        *(_ring.DECLARE, 0, "a", "ML_STEP", {}),
        *(_ring.POINT, 0, 1, 0.5, 5),
        *(_ring.FLOATS, 0, 2, b"\0" * 24, 5),
        *(_ring.INTS, 0, 5, b"\0" * 8, 5),
        *(_ring.METRICS, [0, 1], 6, [1.0, 2], 5),
        *(_ring.CLOSE, "Immediate", None, None, None),
    ]
    assert points_in(span) == 1 + 3 + 1 + 2
    assert points_in([_ring.POINT, 0, 1, 0.5, 5] * 4) == 4


REFUSED = [
    (
        numpy.array([True, False]),
        metrana.MetranaInvalidMetricTypeError,
        "an array of dtype bool cannot be logged (bools are not metric values); convert it, "
        "e.g. array.astype('float64')",
    ),
    (
        numpy.array([1 + 2j]),
        metrana.MetranaInvalidMetricTypeError,
        "an array of dtype complex128 cannot be logged (accepted: float16/32/64 and ints); "
        "convert it, e.g. array.astype('float64')",
    ),
    (
        numpy.array(["a"]),
        metrana.MetranaInvalidMetricTypeError,
        "an array of dtype <U1 cannot be logged (accepted: float16/32/64 and ints); convert "
        "it, e.g. array.astype('float64')",
    ),
    (
        numpy.array([1.0, None], dtype=object),
        metrana.MetranaInvalidMetricTypeError,
        "an array of dtype object cannot be logged (accepted: float16/32/64 and ints); "
        "convert it, e.g. array.astype('float64')",
    ),
    (
        numpy.array([1], dtype=numpy.longdouble),
        metrana.MetranaInvalidMetricTypeError,
        "an array of dtype float128 cannot be logged (accepted: float16/32/64 and ints); "
        "convert it, e.g. array.astype('float64')",
    ),
    (
        numpy.zeros((2, 3)),
        metrana.MetranaInvalidMetricTypeError,
        "an array value must be 1-D (consecutive steps of one series), got shape (2, 3); to "
        "log one step of many series, use metrana.log_vector_env()",
    ),
    (
        numpy.array([1, 2**63], dtype=numpy.uint64),
        metrana.MetranaInvalidMetricError,
        "value 9223372036854775808 of the uint64 array does not fit a 64-bit signed integer; "
        "log the array as float64 (array.astype('float64')) if an approximation will do",
    ),
    (
        [1, 2**63],
        metrana.MetranaInvalidMetricError,
        "value 9223372036854775808 does not fit a 64-bit signed integer; log it as a float "
        "(float(value)) if an approximation will do",
    ),
    (
        [1.0, True],
        metrana.MetranaInvalidMetricTypeError,
        "value must be an int or float, got bool: True",
    ),
]


@pytest.mark.parametrize(("value", "error", "message"), REFUSED)
def test_refused_dtypes_and_shapes_raise_naming_them_and_log_nothing(
    value: Any, error: type[Exception], message: str
) -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        with pytest.raises(error) as raised:
            metrana.log("m", value)
        assert str(raised.value) == message
        assert _writer().logged == 0
        assert _writer().ring.written == 0  # not even the declaration
        metrana.close()
    assert session.target.point_count() == 0


def test_an_array_larger_than_a_quarter_of_the_ring_is_refused_with_the_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "1000")  # a 64 KiB ring: 2,048 values
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        with pytest.raises(metrana.MetranaInvalidMetricError) as raised:
            metrana.log("big", numpy.zeros(2049))
        assert str(raised.value) == (
            "an array of 2049 values is larger than one record of this process's ring takes: "
            "at most 2048 values (a quarter of its 65536 bytes; METRANA_EVENT_QUEUE_MAX_SIZE="
            "1000); log it in parts of at most 2048 values, or raise "
            "METRANA_EVENT_QUEUE_MAX_SIZE"
        )
        for _ in range(3):  # three of the largest fit, one after another
            metrana.log("big", numpy.arange(2048, dtype=numpy.float64))
        metrana.close()
    assert session.target.values("big") == {s: float(s % 2048) for s in range(3 * 2048)}


def test_a_dict_or_vector_too_large_for_a_record_is_refused_with_the_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "1000")  # a 64 KiB ring: 1,024 metrics
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        with pytest.raises(metrana.MetranaInvalidMetricError) as raised:
            metrana.log({f"m{i}": 1.0 for i in range(1025)}, step=0)
        assert str(raised.value) == (
            "1025 metrics at one step are more than one record of this process's ring takes: "
            "at most 1024 (a quarter of its 65536 bytes; METRANA_EVENT_QUEUE_MAX_SIZE=1000); "
            "log them in parts, or raise METRANA_EVENT_QUEUE_MAX_SIZE"
        )
        with pytest.raises(metrana.MetranaInvalidMetricError, match="5000 metrics at one step"):
            metrana.log_vector_env("reward", [0.5] * 5000, step=0)
        metrana.log({f"m{i}": 1.0 for i in range(500)}, step=0)  # (and the queue's 1,000)
        metrana.close()
    assert session.target.point_count() == 500


def test_an_array_is_one_record_and_counted_as_its_points() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("a", numpy.arange(1024, dtype=numpy.float64))
        metrana.log("a", numpy.arange(1024, dtype=numpy.float64), step=5000)
        writer = _writer()
        assert writer.ring.written == 3  # one declaration, two bulk records
        assert writer.logged == 2048
        assert metrana.get_last_step("a") == 6023
        metrana.flush(timeout=10)
        stats = metrana.stats()
        assert stats.process is not None
        assert (stats.process.logged, stats.process.delivered) == (2048, 2048)
        metrana.close()
    assert session.target.point_count() == 2048


def test_bulk_values_past_the_last_64_bit_step_are_refused_and_nothing_is_lost() -> None:
    """Automatic steps near 2**63 - 1: an array, a list or a dict that would run past it is
    refused at log() (a record past it would have been refused by the store and the server,
    taking its whole batch with it); what was logged before is delivered."""
    top = 2**63 - 1
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("a", 1.0, step=top - 2)
        metrana.log({"b": 1.0, "c": 2.0}, step=top)
        for bad in (numpy.zeros(3), [1.0, 2.0, 3.0], [1, 2.5, 3]):
            with pytest.raises(metrana.MetranaInvalidMetricError) as refused:
                metrana.log("a", bad)
            assert str(refused.value) == (
                f"step must be below 2**63 for every value: 3 value(s) from step {top - 1} "
                f"would end at step {top + 1}; log them at earlier steps"
            )
        metrana.log("a", numpy.zeros(2))  # exactly up to the last step
        with pytest.raises(metrana.MetranaInvalidMetricError, match=f"from step {top + 1} "):
            metrana.log({"b": 3.0, "c": 4.0})
        metrana.close()
    assert session.target.values("a") == {top - 2: 1.0, top - 1: 0.0, top: 0.0}
    assert session.target.point_count() == 5


def test_a_dict_value_beyond_64_bits_is_refused_clearly() -> None:
    with InProcessSession() as session:
        session.init(**NAMES)
        with pytest.raises(metrana.MetranaInvalidMetricError, match="64"):
            metrana.log({"a": 2**70, "b": 1.0}, step=0)
        metrana.close()
    assert session.target.point_count() == 0


def test_a_dict_is_one_record_of_several_series_at_one_step() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrics = {f"m{i}": float(i) for i in range(10)}
        metrana.log(metrics)
        written = _writer().ring.written
        assert written == 11  # ten declarations, one METRICS record
        metrana.log(metrics)
        metrana.log({**metrics, "m3": 7}, step=9)
        assert _writer().ring.written == written + 2
        metrana.log("m0", 0.5)  # m0 is now ahead of the others: each continues its own steps
        metrana.log(metrics)
        assert _writer().logged == 41
        metrana.close()
    assert session.target.values("m0") == {0: 0.0, 1: 0.0, 9: 0.0, 10: 0.5, 11: 0.0}
    assert session.target.values("m3") == {0: 3.0, 1: 3.0, 9: 7, 10: 3.0}
    assert session.target.point_count() == 41


def test_auto_steps_resume_after_arrays_in_a_later_run(tmp_path: Path) -> None:
    store = str(tmp_path / "store.sqlite")
    with InProcessSession(EmbeddedTarget(store)) as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("reward", numpy.ones(100))
        metrana.close()
    with InProcessSession(EmbeddedTarget(store)) as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("reward", [2.0, 2.0])
        metrana.close()
    steps = [(row.step, row.value) for row in SqliteStore(store).points(1)]
    assert steps == [(s, 1.0) for s in range(100)] + [(100, 2.0), (101, 2.0)]


def test_a_cpu_tensor_is_logged_like_an_array() -> None:
    torch = pytest.importorskip("torch")
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("t", torch.tensor([0.5, float("nan")], requires_grad=True))
        metrana.log("t", torch.tensor([1, 2], dtype=torch.int32))
        metrana.log("t", torch.tensor([0.25], dtype=torch.bfloat16))
        with pytest.raises(metrana.MetranaInvalidMetricTypeError, match=r"dtype bool"):
            metrana.log("t", torch.tensor([True]))
        metrana.close()
    assert _exact(list(session.target.values("t").values())) == _exact(
        [0.5, float("nan"), 1, 2, 0.25]
    )


def test_log_vector_env_fans_one_step_out_to_a_series_per_environment() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        rewards = numpy.array([0.5, float("nan"), -1.0, 2.0])
        metrana.log_vector_env("reward", rewards, step=7)
        metrana.log_vector_env("reward", rewards * 2)  # the next step of every environment
        metrana.log_vector_env("done", [1, 0], labels={"split": "eval"}, label="env")
        assert _writer().ring.written == 4 + 2 + 3  # declarations, then one record a call
        with pytest.raises(metrana.MetranaInvalidMetricError) as raised:
            metrana.log_vector_env("x", [1.0], labels={"environment_id": "0"})
        assert str(raised.value) == (
            "labels already has 'environment_id', the label that tells the environments apart;"
            " pass another label name"
        )
        with pytest.raises(metrana.MetranaInvalidMetricTypeError, match="dtype bool"):
            metrana.log_vector_env("x", numpy.array([True]))
        assert _writer().logged == 10
        metrana.close()
    points = session.target.points
    for env, reward in enumerate([0.5, float("nan"), -1.0, 2.0]):
        key = ("reward", "ENVIRONMENT_STEP", f'{{"environment_id":"{env}"}}')
        assert _exact(list(points[key].items())) == _exact([(7, reward), (8, reward * 2)])
    assert points[("done", "ENVIRONMENT_STEP", '{"env":"1","split":"eval"}')] == {0: 0}
    assert session.target.point_count() == 10


def test_a_0_d_tensor_or_array_is_logged_as_the_number_it_holds() -> None:
    torch = pytest.importorskip("torch")
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        loss = torch.tensor(0.25, requires_grad=True) * 2
        metrana.log("loss", loss)
        metrana.log("loss", numpy.array(7))
        metrana.log({"loss": torch.tensor(1.5), "n": torch.tensor(3)}, step=5)
        with pytest.raises(metrana.MetranaInvalidMetricTypeError) as raised:
            metrana.log("loss", torch.tensor(True))
        assert str(raised.value) == "value must be an int or float, got bool: True"
        metrana.close()
    assert _exact(list(session.target.values("loss").items())) == _exact(
        [(0, 0.5), (1, 7), (5, 1.5)]
    )
    assert session.target.values("n") == {5: 3}


class _FakeJaxArray:
    """Stands for a JAX array (not installed here): recognised by its type's module, turned
    into a host array by ``numpy.asarray`` through ``__array__``, counted."""

    __module__ = "jaxlib.xla_extension"
    conversions = 0

    def __init__(self, values: list[float]) -> None:
        self._values = numpy.array(values)
        self.ndim = 1

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        type(self).conversions += 1
        return self._values


def test_a_jax_array_is_copied_to_the_host_once_per_call() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("j", _FakeJaxArray([0.5, float("inf"), 2.0]), step=3)
        assert _FakeJaxArray.conversions == 1
        metrana.close()
    assert session.target.values("j") == {3: 0.5, 4: float("inf"), 5: 2.0}


class _FakeCudaTensor:
    """Stands for a tensor on an accelerator (none here): the calls it receives are recorded."""

    __module__ = "torch"
    calls: list[str] = []

    class device:
        type = "cuda"

    def __init__(self, values: list[float], on_host: bool = False) -> None:
        self._values = values
        self.dtype = "torch.float32"
        self.ndim = 1
        if on_host:
            self.device = type("cpu", (), {"type": "cpu"})  # type: ignore[assignment]

    def detach(self) -> _FakeCudaTensor:
        self.calls.append("detach")
        return self

    def cpu(self) -> _FakeCudaTensor:
        self.calls.append("cpu")
        return _FakeCudaTensor(self._values, on_host=True)

    def numpy(self) -> Any:
        self.calls.append("numpy")
        return numpy.array(self._values, dtype=numpy.float32)

    def __getitem__(self, index: int) -> float:
        raise AssertionError("read element by element")


def test_an_accelerator_tensor_is_copied_to_the_host_once_per_call() -> None:
    with InProcessSession() as session:
        session.init(**NAMES, close_strategy="CompleteAll")
        metrana.log("g", _FakeCudaTensor([0.5, 1.5, float("nan")]))
        assert _FakeCudaTensor.calls == ["detach", "cpu", "numpy"]
        metrana.close()
    assert _exact(list(session.target.values("g").values())) == _exact([0.5, 1.5, float("nan")])


# -- with a real dispatcher ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_drop_new_drops_a_bulk_record_whole_and_counts_its_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "1000")  # 64 KiB: 7 records of 1,024
    metrana.init(**NAMES)
    writer = _writer()
    with dispatcher_stopped():
        for step in range(10):
            metrana.log("a", numpy.full(1024, float(step)), step=step * 1024)
        kept = writer.logged
        assert kept % 1024 == 0 and 0 < kept < 10 * 1024
        assert (writer.dropped, writer.ring.get_slot(_ring.M_DROPPED)) == (10 * 1024 - kept,) * 2
    metrana.close(close_strategy="CompleteAll")
    steps = [p["step"] for p in export_points("w", "p", "bulk")]
    assert steps == list(range(kept))  # whole records: the first ones, none cut


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_block_waits_until_a_bulk_record_fits_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "1000")
    metrana.init(**NAMES, backpressure_strategy="Block")
    for step in range(40):  # about six times the ring
        metrana.log("a", numpy.full(2048, float(step)))
    assert _writer().dropped == 0
    metrana.close(close_strategy="CompleteAll")
    points = export_points("w", "p", "bulk")
    assert [p["step"] for p in points] == list(range(40 * 2048))
    assert [p["value"] for p in points[::2048]] == [float(s) for s in range(40)]


KILLED_BULK_WRITER = """
import sys
import numpy
import metrana
from metrana.writer import _run

metrana.init(workspace_name="ws", project_name="proj", run_name="killed")
writer = _run.current_writer()
print(writer.session.read_info().pid, flush=True)
sys.stdin.readline()
for call in range(int(sys.argv[1])):
    metrana.log("curve", numpy.arange(call * 1024, (call + 1) * 1024, dtype=numpy.int64))
    metrana.log({"loss": float(call), "acc": call})
print(writer.logged, flush=True)
sys.stdin.readline()  # wait to be killed
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_writer_killed_after_logging_arrays_loses_nothing(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_BULK_WRITER))
    calls = 200
    assert kill_writer_after_logging(script, str(calls)) == calls * (1024 + 2)
    points = export_points("ws", "proj", "killed")
    curve = [(p["step"], p["value"]) for p in points if p["metric"] == "curve"]
    assert curve == [(s, s) for s in range(calls * 1024)]
    loss = [(p["step"], p["value"]) for p in points if p["metric"] == "loss"]
    assert loss == [(s, float(s)) for s in range(calls)]
    assert len(points) == calls * (1024 + 2)
    assert SqliteStore(store_path()).count_points() == calls * (1024 + 2)


HTTP_BULK_JOB = """
import numpy
from numpy import inf, nan
import metrana

metrana.init(workspace_name="default", project_name="proj", run_name="arrays",
             close_strategy="CompleteAll")
for call in range(50):
    metrana.log("f", numpy.array(%r) + call, step=call * %d)
    metrana.log("i", numpy.array([%d, %d, call]))
    metrana.log({"loss": float(call), "n": call})
metrana.log_vector_env("reward", numpy.arange(64, dtype=numpy.float32))
metrana.close()
"""


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_arrays_dicts_and_vectors_arrive_exactly_over_http(
    tmp_path: Path, live_server: RunningServer
) -> None:
    script = tmp_path / "job.py"
    n = len(SPECIAL_FLOATS)
    script.write_text(HTTP_BULK_JOB % (SPECIAL_FLOATS, n, I64_MIN, I64_MAX))
    run_python(str(script), env=server_env(live_server), timeout=100)
    store = SqliteStore(tmp_path / "server.sqlite")
    (run,) = [r for r in store.runs() if r.run_name == "arrays"]
    assert run.points == 50 * (n + 3 + 2) + 64
    stored: dict[str, list[tuple[int, Any]]] = {}
    for row in store.points(run.experiment_id):
        stored.setdefault(row.metric, []).append((row.step, row.value))
    expected_f = [(c * n + k, v + c) for c in range(50) for k, v in enumerate(SPECIAL_FLOATS)]
    assert _exact(stored["f"]) == _exact(expected_f)
    assert stored["i"] == [(c * 3 + k, v) for c in range(50) for k, v in
                           enumerate([I64_MIN, I64_MAX, c])]  # fmt: skip
    assert stored["n"] == [(c, c) for c in range(50)]
    assert sorted(v for _, v in stored["reward"]) == [float(e) for e in range(64)]


def test_a_record_whose_bytes_lie_sets_its_ring_aside_and_the_dispatcher_goes_on() -> None:
    """A METRICS record with two series ids and one value (what a scribbled ring could hold)
    fails in the decoders with a built-in error: the ring is set aside as corrupt, with the
    error published, and the dispatcher keeps running instead of crashing on it."""
    with InProcessSession() as session:
        session.init(**NAMES)
        metrana.log({"a": 1.0, "b": 2.0}, step=0)
        writer = _writer()
        (row,) = writer._rows.values()
        encode = writer._encode
        with writer._lock:
            assert writer._append(b"".join((row.prefix, encode(1), encode([3.0]), encode(5))))
        dispatcher = session.dispatcher
        assert dispatcher is not None
        assert wait_until(lambda: writer.ring.writer_id in dispatcher._broken, timeout=10)
        assert session._thread is not None and session._thread.is_alive()
        published = read_errors(errors_path(writer.session.dir))
        assert published is not None
        (entry,) = [e for e in published.errors if e.kind == "corrupt_ring"]
        assert entry.message.startswith(
            f"ring {writer.ring.writer_id} holds a record that does not decode (ValueError: "
        )
        metrana.close(close_strategy="Immediate")


class _SeriesLike:
    """What a pandas Series offers an array consumer (pandas is not installed here): a dtype,
    a shape, ``__array__`` and a ``flags`` object without NumPy's ``c_contiguous``."""

    def __init__(self, values: Any) -> None:
        self._values = values
        self.dtype = values.dtype
        self.shape = values.shape
        self.ndim = values.ndim
        self.flags = type("Flags", (), {"writeable": False})()

    def __len__(self) -> int:
        return len(self._values)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self._values if dtype is None else self._values.astype(dtype)


def test_an_array_like_without_numpy_flags_is_logged_like_an_array() -> None:
    with InProcessSession() as session:
        session.init(**NAMES)
        metrana.log("f", _SeriesLike(numpy.array([0.5, 1.5])), step=0)
        metrana.log("i", _SeriesLike(numpy.array([7, 8], dtype=numpy.int64)), step=0)
        metrana.close(close_strategy="CompleteAll")
    assert session.target.values("f") == {0: 0.5, 1: 1.5}
    assert session.target.values("i") == {0: 7, 1: 8}
