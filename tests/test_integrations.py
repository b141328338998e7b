"""What the integrations share, without a training loop: a missing framework's ImportError,
``import metrana`` importing no framework, values and configs converted, metrics logged once a
step, the run opened on first use (or the process's own run used), and the Lightning and
Gymnasium pieces' own rules. The dispatcher runs in this process (``InProcessSession``)."""

from __future__ import annotations

import argparse
import enum
import importlib
import logging
import math
import sys
from collections.abc import Iterator

import pytest
from conftest import need, run_python

import metrana
from metrana.integrations._common import LazyRun, Metrics, flatten, jsonable, scalar
from metrana.testing import InProcessSession

NAMES = {"workspace_name": "w", "project_name": "p", "run_name": "r"}
FRAMEWORKS = (
    "torch",
    "lightning",
    "pytorch_lightning",
    "transformers",
    "accelerate",
    "stable_baselines3",
    "gymnasium",
)


@pytest.mark.parametrize(
    ("integration", "module", "package"),
    [
        ("lightning", "lightning.pytorch.loggers", "lightning"),
        ("pytorch_lightning", "pytorch_lightning.loggers", "pytorch-lightning"),
        ("transformers", "transformers", "transformers"),
        ("accelerate", "accelerate.tracking", "accelerate"),
        ("stable_baselines3", "stable_baselines3.common.logger", "stable-baselines3"),
        ("gymnasium", "gymnasium", "gymnasium"),
    ],
)
def test_an_integration_whose_framework_is_missing_says_what_to_install(
    integration: str, module: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, f"metrana.integrations.{integration}", raising=False)
    with pytest.raises(ImportError, match=f"needs the '{package}' package") as raised:
        importlib.import_module(f"metrana.integrations.{integration}")
    assert f"pip install {package}" in str(raised.value)


@pytest.mark.slow
def test_importing_metrana_imports_no_framework() -> None:
    out = run_python(
        "-c",
        "import sys, metrana, metrana.integrations, metrana.api\n"
        f"print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))",
    ).stdout
    assert out.strip() == "[]"


class Color(enum.Enum):
    RED = "red"


def test_scalars_are_numbers_and_the_rest_is_skipped() -> None:
    assert scalar(3) == 3 and type(scalar(3)) is int
    assert scalar(0.5) == 0.5
    assert scalar(2**70) == float(2**70)  # beyond 64 bits: a float
    assert scalar(math.nan) != scalar(math.nan)  # NaN stays NaN
    for skipped in (True, "3", [1.0], None, {"a": 1}):
        assert scalar(skipped) is None
    numpy = pytest.importorskip("numpy")
    assert scalar(numpy.float32(0.25)) == 0.25
    assert scalar(numpy.array(7)) == 7
    assert scalar(numpy.array([1.0, 2.0])) is None  # not one number


def test_configs_are_made_json_and_flattened() -> None:
    def function() -> None:
        pass

    assert jsonable(
        {1: (1, 2), "e": Color.RED, "f": function, "nan": math.nan, "set": {3}, "o": object}
    ) == {
        "1": [1, 2],
        "e": "red",
        "f": "test_configs_are_made_json_and_flattened.<locals>.function",
        "nan": "nan",
        "set": [3],
        "o": "object",
    }
    params = argparse.Namespace(lr=0.1, model=argparse.Namespace(depth=2), opt={"b": {"c": 1}})
    assert flatten(params) == {"lr": 0.1, "model/depth": 2, "opt/b/c": 1}
    assert flatten({"empty": {}, "n": None}) == {"empty": {}, "n": None}


@pytest.fixture
def session() -> Iterator[InProcessSession]:
    with InProcessSession() as running:
        running.start(**NAMES)
        yield running


def test_metrics_are_logged_once_a_step_numbers_only(session: InProcessSession) -> None:
    run = LazyRun(**NAMES)
    run.open()
    metrics = Metrics()
    metrics.log({"loss": 0.5, "epoch": 0, "note": "text", "flag": True}, step=3)
    metrics.log({"val": 0.25, "epoch": 0}, step=3)  # epoch again at step 3: left out
    metrics.log({"loss": 0.4, "x" * 300: 1.0}, step=4, labels={"rank": "1"})
    run.finish()
    session.wait_exit()
    target = session.target
    assert target.values("loss") == {3: 0.5, 4: 0.4}
    assert target.values("epoch") == {3: 0}
    assert target.values("val") == {3: 0.25}
    assert target.point_count() == 4  # no duplicate reached the store
    assert target.status == "done"


def test_an_integration_logs_into_the_processs_own_run_and_says_its_config_is_not_stored(
    session: InProcessSession, caplog: pytest.LogCaptureFixture
) -> None:
    metrana.init(**NAMES)
    run = LazyRun(config={"lr": 0.1})
    with caplog.at_level(logging.WARNING, logger="metrana"):
        run.open()
        run.add_config({"momentum": 0.9})  # one warning, not two
    (record,) = caplog.records
    assert "config not stored (lr)" in record.getMessage()
    Metrics().log({"loss": 1.0}, step=0)
    run.finish()  # the process's run is the process's to close
    assert metrana.stats().process.logged == 1
    metrana.close()


def test_config_added_after_the_run_opened_is_named_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with InProcessSession() as session:
        session.start(**NAMES, config={"lr": 0.1})
        run = LazyRun(**NAMES)
        run.add_config({"lr": 0.1})
        run.open()
        assert run.owned
        with caplog.at_level(logging.WARNING, logger="metrana"):
            run.add_config({"lr": 0.1})  # what the run has: nothing to say
            run.add_config({"lr": 0.2, "epochs": 3})
            run.add_config({"more": 1})
        (record,) = caplog.records
        assert "config not stored (epochs, lr)" in record.getMessage()
        run.finish()
        assert not run.opened


def test_without_a_run_or_names_an_integration_says_what_is_missing() -> None:
    with pytest.raises(metrana.MetranaNotInitializedError, match="workspace_name, run_name"):
        LazyRun(project_name="p").open()


def test_a_lightning_logger_logs_only_on_rank_zero_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need("lightning", "integrations")
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    from metrana.integrations.lightning import MetranaLogger

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    quiet = MetranaLogger(**NAMES)
    quiet.log_hyperparams({"lr": 0.1})
    quiet.log_metrics({"loss": 1.0}, step=0)
    quiet.finalize("success")
    assert metrana.writer._run.current_writer() is None  # rank 1 opened nothing
    with InProcessSession() as session:
        session.start(**NAMES)
        every = MetranaLogger(**NAMES, rank_zero_only=False)
        assert (every.name, every.version) == ("p", "r")
        every.log_metrics({"loss": 1.0}, step=0)
        every.finalize("success")
        session.wait_exit()
    ((key, steps),) = session.target.points.items()
    assert key == ("loss", "ML_STEP", '{"rank":"1"}') and steps == {0: 1.0}


def test_the_episode_wrapper_logs_finished_episodes_only() -> None:
    need("gymnasium", "integrations")
    import gymnasium

    from metrana.integrations.gymnasium import MetranaEpisodeLogger

    with InProcessSession() as session:
        session.init(**NAMES)
        env = MetranaEpisodeLogger(gymnasium.make("CartPole-v1"), env_id=2, labels={"seed": "0"})
        env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(3):
            env.step(env.action_space.sample())
        env.reset()  # in the middle of an episode: not logged
        steps = 0
        while True:
            steps += 1
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                break
        metrana.close(close_strategy="CompleteAll")
        session.wait_exit()
    labels = '{"environment_id":"2","seed":"0"}'
    assert session.target.points == {
        ("episode/return", "EPISODE", labels): {0: float(steps)},
        ("episode/length", "EPISODE", labels): {0: steps},
    }


def test_metric_names_follow_the_trainers_trackers() -> None:
    need("transformers", "integrations")
    from metrana.integrations.transformers import metric_name

    assert [metric_name(k) for k in ("loss", "eval_loss", "test_acc", "evaluation")] == [
        "train/loss",
        "eval/loss",
        "test/acc",
        "train/evaluation",
    ]
