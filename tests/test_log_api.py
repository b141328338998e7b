"""The public API in one process against a real dispatcher and the embedded store."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from conftest import dispatcher_stopped, export_points, run_python, store_path

import metrana
from metrana import ring as _ring
from metrana.storage import SqliteStore
from metrana.testing import InProcessSession
from metrana.writer import _run

NAMES = {"workspace_name": "w", "project_name": "p", "run_name": "api"}


def test_log_before_init_raises() -> None:
    with pytest.raises(metrana.MetranaNotInitializedError, match=r"before metrana.init\(\)"):
        metrana.log("loss", 1.0)
    with pytest.raises(metrana.MetranaNotInitializedError):
        metrana.close()


@pytest.mark.slow
def test_init_twice_raises_and_reinit_after_close_works() -> None:
    metrana.init(**NAMES)
    with pytest.raises(metrana.MetranaAlreadyInitializedError, match="close"):
        metrana.init(**NAMES)
    metrana.log("loss", 1.0)
    metrana.close(close_strategy="CompleteAll")
    with pytest.raises(metrana.MetranaNotInitializedError):
        metrana.log("loss", 2.0)
    metrana.init(**NAMES)
    metrana.log("loss", 2.0)
    metrana.close(close_strategy="CompleteAll")
    points = export_points("w", "p", "api")
    assert [(p["step"], p["value"]) for p in points] == [(0, 1.0), (1, 2.0)]


BAD_INPUTS = [
    (("loss", "1.0"), {}, metrana.MetranaInvalidMetricTypeError, "value must be an int or float"),
    (("loss", True), {}, metrana.MetranaInvalidMetricTypeError, "value must be an int or float"),
    (("loss", None), {}, metrana.MetranaInvalidMetricTypeError, "value must be"),
    (("", 1.0), {}, metrana.MetranaInvalidMetricError, "metric_name must not be empty"),
    ((3, 1.0), {}, metrana.MetranaInvalidMetricTypeError, "metric_name must be a str"),
    (("x" * 300, 1.0), {}, metrana.MetranaInvalidMetricError, "at most 256"),
    (("loss", 1.0), {"step": -1}, metrana.MetranaInvalidMetricError, "non-negative"),
    (("loss", 1.0), {"step": 1.5}, metrana.MetranaInvalidMetricTypeError, "step must be"),
    (("loss", 1.0), {"step": "3"}, metrana.MetranaInvalidMetricTypeError, "step must be"),
    (("loss", 1.0), {"labels": {"rank": 0}}, metrana.MetranaInvalidMetricTypeError, "str to str"),
    (("loss", 1.0), {"labels": {1: "a"}}, metrana.MetranaInvalidMetricTypeError, "str to str"),
    (("loss", 1.0), {"labels": ["a"]}, metrana.MetranaInvalidMetricTypeError, "dict"),
    (("loss", 1.0), {"scale": "FORTNIGHT"}, metrana.MetranaInvalidMetricError, "unknown scale"),
    (("loss", 1.0), {"timestamp": 1.5}, metrana.MetranaInvalidMetricTypeError, "timestamp"),
    (("loss", 1.0), {"timestamp": "now"}, metrana.MetranaInvalidMetricTypeError, "timestamp"),
    # 64-bit signed integers only: what the store and the wire hold
    (("loss", 2**63), {}, metrana.MetranaInvalidMetricError, r"does not fit a 64-bit signed"),
    (("loss", -(2**63) - 1), {}, metrana.MetranaInvalidMetricError, "log it as a float"),
    (("loss", 2**64 - 1), {}, metrana.MetranaInvalidMetricError, "64-bit signed"),
    (("loss", [1.0, 2**63]), {}, metrana.MetranaInvalidMetricError, "64-bit signed"),
    (({"a": 1.0, "b": 2**63},), {}, metrana.MetranaInvalidMetricError, "64-bit signed"),
    (("loss", 1.0), {"step": 2**63}, metrana.MetranaInvalidMetricError, r"below 2\*\*63"),
    (("loss", [1.0, 2.0]), {"step": 2**63 - 1}, metrana.MetranaInvalidMetricError, "below 2"),
    (("loss", 1.0), {"timestamp": 2**63}, metrana.MetranaInvalidMetricError, "Unix nanosec"),
    (("loss", 1.0), {"timestamp": -1}, metrana.MetranaInvalidMetricError, "Unix nanosec"),
]


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), BAD_INPUTS)
def test_bad_input_raises_and_reaches_no_ring(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with InProcessSession() as session:
        session.init(**NAMES)
        writer = _run.current_writer()
        assert writer is not None
        before = writer.ring.written
        with pytest.raises(error, match=message):
            metrana.log(*args, **kwargs)  # type: ignore[arg-type]
        assert writer.ring.written == before
        metrana.log("ok", 1.0)
        metrana.close(close_strategy="CompleteAll")
    assert {key[0] for key in session.target.points} == {"ok"}
    assert session.target.point_count() == 1


@pytest.mark.slow
def test_the_64_bit_integer_limits_are_stored_exactly() -> None:
    metrana.init(**NAMES)
    metrana.log("big", 2**63 - 1, step=2**63 - 1, timestamp=2**63 - 1)
    metrana.log("big", -(2**63), step=0, timestamp=0)
    metrana.close(close_strategy="CompleteAll")
    points = [(p["step"], p["value"], p["timestamp_ns"]) for p in export_points("w", "p", "api")]
    assert points == [(0, -(2**63), 0), (2**63 - 1, 2**63 - 1, 2**63 - 1)]


@pytest.mark.slow
def test_values_scales_labels_and_auto_steps_are_stored_faithfully() -> None:
    metrana.init(**NAMES)
    metrana.log("v", 1)
    metrana.log("v", 2.5)
    metrana.log("v", math.nan)
    metrana.log("v", math.inf)
    metrana.log("v", -math.inf)
    metrana.log("v", 7, step=10)
    metrana.log("v", 8)  # continues after the explicit step
    metrana.log("ret", 3.0, scale=metrana.StandardMetricScale.EPISODE, labels={"env": "a"})
    metrana.log("ret", 4.0, scale="EPISODE", labels={"env": "a"})
    metrana.log("ret", 5.0, scale="episode", labels={"env": "b"})
    metrana.log("t", 1.0, step=0, timestamp=1_700_000_000_000_000_000)
    metrana.close(close_strategy="CompleteAll")
    points = export_points("w", "p", "api")
    v = [(p["step"], p["value"]) for p in points if p["metric"] == "v"]
    assert v == [(0, 1), (1, 2.5), (2, "nan"), (3, "inf"), (4, "-inf"), (10, 7), (11, 8)]
    ret = [(p["labels"], p["step"], p["value"], p["scale"]) for p in points if p["metric"] == "ret"]
    assert ret == [
        ({"env": "a"}, 0, 3.0, "EPISODE"),
        ({"env": "a"}, 1, 4.0, "EPISODE"),
        ({"env": "b"}, 0, 5.0, "EPISODE"),
    ]
    (t,) = [p for p in points if p["metric"] == "t"]
    assert t["timestamp_ns"] == 1_700_000_000_000_000_000
    store = SqliteStore(store_path())
    (run,) = store.runs()
    assert (run.status, run.series, run.points) == ("done", 4, 11)


@pytest.mark.slow
def test_resumed_run_continues_auto_steps() -> None:
    metrana.init(**NAMES)
    for i in range(5):
        metrana.log("loss", float(i))
    metrana.close(close_strategy="CompleteAll")
    metrana.init(**NAMES, resume_strategy="Allow")
    metrana.log("loss", 99.0)
    metrana.close(close_strategy="CompleteAll")
    steps = [p["step"] for p in export_points("w", "p", "api")]
    assert steps == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_resume_never_raises_for_another_job(monkeypatch: pytest.MonkeyPatch) -> None:
    metrana.init(**NAMES)
    metrana.log("loss", 1.0)
    metrana.close(close_strategy="CompleteAll")
    monkeypatch.setenv("METRANA_ORCHESTRATION_ID", "another-job")
    with pytest.raises(metrana.MetranaRunExistsError, match=r"already exists.*'Never'"):
        metrana.init(**NAMES, resume_strategy="Never")
    assert _run.current_writer() is None


@pytest.mark.slow
def test_drop_new_counts_exactly_what_did_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "100")
    metrana.init(**NAMES)
    writer = _run.current_writer()
    assert writer is not None
    with dispatcher_stopped():
        for i in range(150):
            metrana.log("loss", float(i))
        # one slot holds the series declaration
        assert (writer.logged, writer.dropped) == (99, 51)
        assert writer.ring.get_slot(_ring.M_DROPPED) == 51
    metrana.close(close_strategy="CompleteAll")
    steps = [p["step"] for p in export_points("w", "p", "api")]
    assert steps == list(range(99))


@pytest.mark.slow
def test_raise_backpressure_names_the_queue_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "10")
    metrana.init(**NAMES, backpressure_strategy="Raise")
    with dispatcher_stopped():
        for i in range(9):  # the declaration takes the tenth slot
            metrana.log("loss", float(i))
        with pytest.raises(metrana.MetranaEventQueueFullError, match=r"full \(10 events"):
            metrana.log("loss", 1.0)
    metrana.close(close_strategy="CompleteAll")
    assert len(export_points("w", "p", "api")) == 9


@pytest.mark.slow
def test_unbounded_queue_never_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "0")
    metrana.init(**NAMES)
    writer = _run.current_writer()
    assert writer is not None
    with dispatcher_stopped():
        for i in range(200_000):  # more than one 4 MiB segment (~26 bytes a point)
            metrana.log("loss", float(i))
        assert writer.dropped == 0
        assert writer.ring._segment.number >= 1
    metrana.close(close_strategy="CompleteAll")
    assert len(export_points("w", "p", "api")) == 200_000


@pytest.mark.slow
def test_interpreter_exit_closes_with_the_configured_strategy() -> None:
    result = run_python(
        "-c",
        "import metrana\n"
        "metrana.init(workspace_name='w', project_name='p', run_name='api',"
        " close_strategy='CompleteAll')\n"
        "for i in range(20000): metrana.log('loss', float(i))\n",
    )
    assert result.returncode == 0
    assert [p["step"] for p in export_points("w", "p", "api")] == list(range(20000))


def test_stale_sessions_are_reaped_but_not_those_holding_rings(tmp_path: Path) -> None:
    from metrana.session import reap_sessions

    root = tmp_path / "sessions"
    empty, holding = root / "a", root / "b"
    for directory in (empty, holding):
        directory.mkdir(parents=True)
        (directory / "dispatcher.lock").touch()
    (holding / "w-1-2-3.meta").touch()
    assert reap_sessions(root, older_than=0) == 1
    assert not empty.exists() and holding.exists()


@pytest.mark.slow
def test_stats_and_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRANA_EVENT_QUEUE_MAX_SIZE", "100")
    metrana.init(**NAMES)
    with dispatcher_stopped():
        for i in range(150):
            metrana.log("loss", float(i))
        with pytest.raises(metrana.MetranaTimeoutError, match="99 points not yet delivered") as err:
            metrana.flush(timeout=0.2)
        assert err.value.pending == 99
        snapshot = metrana.stats()
        assert snapshot.process is not None
        process = snapshot.process
        assert (process.logged, process.dropped_queue_full, process.pending) == (99, 51, 99)
        assert process.delivered == 0 and process.ring_fill == 1.0
        assert snapshot.session.logged == 99 and snapshot.session.dropped_queue_full == 51
    metrana.flush(timeout=30)
    process = metrana.stats().process
    assert process is not None
    assert (process.delivered, process.pending) == (99, 0)
    deadline = time.monotonic() + 10
    while metrana.stats().session.stored != 99 and time.monotonic() < deadline:
        time.sleep(0.05)  # the dispatcher publishes its totals twice a second
    assert metrana.stats().session.stored == 99
    metrana.close()
    with pytest.raises(metrana.MetranaNotInitializedError):
        metrana.stats()


KEPT_LOG = """
import inspect, os, sys
import metrana
from metrana.writer import _run

names = dict(workspace_name='w', project_name='p', run_name='kept', close_strategy='CompleteAll')
metrana.init(**names)
log = metrana.log  # the open writer's own function, kept by the caller
assert log is not _run.log
assert list(inspect.signature(log).parameters)[:2] == ['metric_name', 'value']
for i in range(100):
    log('parent', float(i), step=i)
pid = os.fork()
if pid == 0:  # the parent's function, called in a forked child: the child's own ring takes it
    assert metrana.log is _run.log
    for i in range(50):
        log('child', float(i), step=i)
    metrana.close()
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
for i in range(100, 200):
    log('parent', float(i), step=i)
metrana.close()
assert metrana.log is _run.log
try:
    log('parent', 1.0)
except metrana.MetranaNotInitializedError as error:
    print('after close:', error)
metrana.init(**names)
log('parent', 500.0, step=500)  # the kept function follows to the new writer
metrana.close()
"""


@pytest.mark.slow
def test_a_kept_log_function_follows_fork_close_and_a_new_init() -> None:
    result = run_python("-c", KEPT_LOG)
    assert "after close: metrana.log() called before metrana.init()" in result.stdout
    points = export_points("w", "p", "kept")
    parent = [(p["step"], p["value"]) for p in points if p["metric"] == "parent"]
    child = [(p["step"], p["value"]) for p in points if p["metric"] == "child"]
    assert parent == [(i, float(i)) for i in range(200)] + [(500, 500.0)]
    assert child == [(i, float(i)) for i in range(50)]


def test_raise_on_log_raises_once_even_after_get_last_step(isolated: Path) -> None:
    """RaiseOnLog empties log()'s table of plain series so that the next call raises; a
    get_last_step() of the same name before that call must not put it back."""
    from metrana._config import resolve_config
    from metrana.session import ErrorPublisher, Session
    from metrana.writer._writer import Writer

    config = resolve_config(**NAMES, error_strategy="RaiseOnLog")
    session = Session.for_config(config)
    session.dir.mkdir(parents=True, exist_ok=True)
    writer = Writer(config, session)
    try:
        writer.log("loss", 1.0)
        ErrorPublisher(session.dir, 100).publish("rejected", "boom")
        writer.poll_errors()  # what the watchdog does
        assert writer.last_step("loss") == 0
        with pytest.raises(metrana.MetranaDeliveryError, match="boom"):
            writer.log("loss", 2.0)
        writer.log("loss", 3.0)  # raised once; logging goes on
        assert writer.last_step("loss") == 1
    finally:
        writer.abandon()
