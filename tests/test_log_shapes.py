"""Richer log(): several metrics at one step, sequences and NumPy arrays of values,
get_last_step(), and the RL helpers."""

from __future__ import annotations

import logging

import pytest
from conftest import export_points, run_python

import metrana


def _init(run: str = "shapes") -> None:
    metrana.init(workspace_name="ws", project_name="p", run_name=run, close_strategy="CompleteAll")


def _stored(run: str = "shapes") -> dict[tuple[str, str, str], list[tuple[int, object]]]:
    out: dict[tuple[str, str, str], list[tuple[int, object]]] = {}
    for point in export_points("ws", "p", run):
        labels = ",".join(f"{k}={v}" for k, v in sorted(point["labels"].items()))  # type: ignore[attr-defined]
        key = (str(point["metric"]), str(point["scale"]), labels)
        out.setdefault(key, []).append((int(point["step"]), point["value"]))  # type: ignore[call-overload]
    return out


@pytest.mark.slow
def test_a_dict_logs_several_metrics_at_one_step() -> None:
    _init()
    metrana.log({"loss": 0.5, "acc": 0.75}, step=10)
    metrana.log({"loss": 0.25, "acc": 1}, step=11, labels={"split": "val"})
    metrana.close()
    stored = _stored()
    assert stored[("loss", "ML_STEP", "")] == [(10, 0.5)]
    assert stored[("acc", "ML_STEP", "")] == [(10, 0.75)]
    assert stored[("acc", "ML_STEP", "split=val")] == [(11, 1)]


@pytest.mark.slow
def test_sequences_and_arrays_log_consecutive_steps() -> None:
    numpy = pytest.importorskip("numpy")
    _init()
    metrana.log("reward", [1.0, 2.0, 3.0], step=5)
    metrana.log("reward", (4, 5))  # continues after the last step: 8, 9
    metrana.log("q", numpy.array([0.5, 1.5], dtype=numpy.float32))
    metrana.log("q", numpy.float64(2.5))
    metrana.close()
    stored = _stored()
    assert stored[("reward", "ML_STEP", "")] == [(5, 1.0), (6, 2.0), (7, 3.0), (8, 4), (9, 5)]
    assert stored[("q", "ML_STEP", "")] == [(0, 0.5), (1, 1.5), (2, 2.5)]


@pytest.mark.slow
def test_bad_shapes_raise_and_log_nothing() -> None:
    numpy = pytest.importorskip("numpy")
    _init()
    with pytest.raises(metrana.MetranaInvalidMetricTypeError, match="must be 1-D"):
        metrana.log("m", numpy.zeros((2, 2)))
    with pytest.raises(metrana.MetranaInvalidMetricTypeError, match="got bool"):
        metrana.log("m", [1.0, True, 2.0])
    with pytest.raises(metrana.MetranaInvalidMetricTypeError, match="do not pass value"):
        metrana.log({"a": 1.0}, 2.0)
    with pytest.raises(metrana.MetranaInvalidMetricTypeError, match="got str"):
        metrana.log({"a": 1.0, "b": "x"})
    with pytest.raises(metrana.MetranaInvalidMetricTypeError, match="metric_name must be a str"):
        metrana.log(["not", "a", "name"], 1.0)
    stats = metrana.stats()
    assert stats.process is not None and stats.process.logged == 0
    metrana.close()
    assert _stored() == {}


@pytest.mark.slow
def test_numpy_is_not_imported_unless_given() -> None:
    out = run_python(
        "-c",
        "import sys, metrana\n"
        "metrana.init(workspace_name='ws', project_name='p', run_name='np')\n"
        "metrana.log('a', [1.0, 2.0])\n"
        "metrana.log('i', (1, 2))\n"
        "metrana.log({'b': 1.0, 'c': 2})\n"
        "metrana.log_vector_env('r', [0.5, 1.5])\n"
        "metrana.close()\n"
        "print(sorted(m for m in ('numpy', 'torch', 'jax') if m in sys.modules))",
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_get_last_step_follows_logging_and_resume() -> None:
    _init("last")
    assert metrana.get_last_step("loss") is None
    metrana.log("loss", 1.0)
    metrana.log("loss", 1.0)
    metrana.log("loss", 1.0, step=41)
    assert metrana.get_last_step("loss") == 41
    assert metrana.get_last_step("loss", labels={"rank": "0"}) is None
    metrana.close()
    _init("last")  # the same run again: resumed from the store
    assert metrana.get_last_step("loss") == 41
    metrana.close()


@pytest.mark.slow
def test_rl_helpers_log_on_their_scales_with_counters_beside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _init("rl")
    with caplog.at_level(logging.WARNING, logger="metrana"):
        metrana.log_rl_episode("return", 200.0, episode=3, rl_step=1000, env_id=1)
        metrana.log_rl_episode("return", 150.0, episode=4, rl_step=1200, env_id=1)
        metrana.log_rl_environment_step("reward", 1.0, env_step=7, episode=3, rl_step=990, env_id=1)
        metrana.log_rl_episode("return", 10.0)  # nothing given: auto step, warned once
        metrana.log_rl_episode("return", 11.0)
    metrana.close()
    warnings = [r.getMessage() for r in caplog.records if "log_rl_episode called" in r.getMessage()]
    assert len(warnings) == 1 and "episode and rl_step and env_id" in warnings[0]
    stored = _stored("rl")
    assert stored[("return", "EPISODE", "environment_id=1")] == [(3, 200.0), (4, 150.0)]
    assert stored[("return/rl_step", "EPISODE", "environment_id=1")] == [(3, 1000), (4, 1200)]
    assert stored[("return", "EPISODE", "")] == [(0, 10.0), (1, 11.0)]
    assert stored[("reward", "ENVIRONMENT_STEP", "environment_id=1")] == [(7, 1.0)]
    assert stored[("reward/episode", "ENVIRONMENT_STEP", "environment_id=1")] == [(7, 3)]
    assert stored[("reward/rl_step", "ENVIRONMENT_STEP", "environment_id=1")] == [(7, 990)]
