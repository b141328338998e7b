"""``metrana.integrations.transformers`` and ``.accelerate``: a real ``Trainer`` (in the test
process, and two processes under ``torchrun``) and a real ``Accelerator``, on tiny CPU models
built from a config, read back through the REST client: exactly the series, steps and values
the framework reported, its config in the run's metadata. They need the ``integrations``
extra."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import need, run_python, server_env, wait_for_dispatchers_to_exit
from integrations_readback import reported_points, run_metadata, run_status, stored_points

from metrana.testing import RunningServer

JOB = Path(__file__).parent / "integration_jobs" / "transformers_job.py"

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning"
)


@pytest.fixture
def over_http(live_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """The integrations' ``metrana.init()`` delivers to the live server."""
    for name, value in server_env(live_server).items():
        monkeypatch.setenv(name, value)
    return live_server


def renamed(key: str) -> str:
    """The names the Trainer's trackers use (and the callback too)."""
    from metrana.integrations.transformers import metric_name

    return metric_name(key)


@pytest.mark.slow
def test_the_callback_stores_what_the_trainer_logged(
    tmp_path: Path, over_http: RunningServer
) -> None:
    need("transformers", "integrations")
    from integration_jobs.transformers_job import CONFIG, train

    from metrana.integrations._common import jsonable

    recorder, trainer = train("trained", tmp_path)
    # logs at steps 2, 4 and 6, evaluations at 3 and 6, the summary at 6
    assert [step for _, step in recorder.calls] == [2, 3, 4, 6, 6, 6]
    wait_for_dispatchers_to_exit()  # on_train_end closed the run
    expected = reported_points(recorder.calls, rename=renamed)
    assert ("train/loss", "ML_STEP", ()) in expected and ("eval/loss", "ML_STEP", ()) in expected
    assert stored_points(over_http, "trained") == expected
    assert run_metadata(over_http, "trained") == {
        **CONFIG,
        "training_args": jsonable(trainer.args.to_dict()),
        "model_config": jsonable(trainer.model.config.to_dict()),
    }
    assert run_status(over_http, "trained") == "done"


@pytest.mark.slow
def test_under_torchrun_every_process_logs_each_point_once(
    tmp_path: Path, live_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("transformers", "integrations")
    monkeypatch.delenv("METRANA_ORCHESTRATION_ID")  # torchrun's TORCHELASTIC_RUN_ID ties them
    run_python(
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(JOB),
        str(tmp_path),
        env=server_env(live_server),
        timeout=120,
    )
    wait_for_dispatchers_to_exit()
    expected: dict[Any, Any] = {}
    for rank in (0, 1):
        calls = json.loads((tmp_path / f"torchrun-{rank}.json").read_text())
        assert [step for _, step in calls] == [2, 3, 4, 6, 6, 6]
        expected |= reported_points(calls, labels={"rank": str(rank)}, rename=renamed)
    stored = stored_points(live_server, "torchrun")
    assert stored == expected
    assert len(stored) == 2 * 13  # 13 series of each process
    metadata = run_metadata(live_server, "torchrun")
    assert metadata["task"] == "lm"
    assert metadata["training_args"]["max_steps"] == 6
    assert metadata["model_config"]["n_embd"] == 8
    assert run_status(live_server, "torchrun") == "done"


@pytest.mark.slow
def test_the_accelerate_tracker_stores_what_was_logged(over_http: RunningServer) -> None:
    need("accelerate", "integrations")
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from metrana.integrations.accelerate import MetranaTracker

    AcceleratorState._reset_state(True)  # a Trainer of another test may have made one
    tracker = MetranaTracker("default", "proj", "accelerated", config={"seed": 1})
    accelerator = Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("proj", config={"lr": 3e-4, "betas": (0.9, 0.99)})
    calls = [
        ({"loss": 1.0 / (step + 1), "tokens": 512 * step, "note": "text"}, step)
        for step in range(5)
    ]
    for values, step in calls:
        accelerator.log(values, step=step)
    assert accelerator.get_tracker("metrana", unwrap=True) is sys.modules["metrana"]
    accelerator.end_training()
    wait_for_dispatchers_to_exit()
    assert stored_points(over_http, "accelerated") == reported_points(calls)
    assert run_metadata(over_http, "accelerated") == {"seed": 1, "lr": 3e-4, "betas": [0.9, 0.99]}
    assert run_status(over_http, "accelerated") == "done"
