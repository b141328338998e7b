"""``metrana.integrations.lightning`` (and ``pytorch_lightning``): real ``Trainer.fit`` runs
on a tiny CPU model, read back through the REST client: exactly the series, steps and values
Lightning reported, the hyperparameters in the run's metadata, every DDP rank's points stored
once. They need the ``integrations`` extra."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import need, run_python, server_env, wait_for_dispatchers_to_exit
from integrations_readback import reported_points, run_metadata, run_status, stored_points

from metrana.testing import RunningServer

JOB = Path(__file__).parent / "integration_jobs" / "lightning_job.py"

# Lightning's own warnings (a small DataLoader, a deprecated pytree helper) are not the test's.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning",
    "ignore::DeprecationWarning",
    "ignore:.*LeafSpec.*is deprecated:FutureWarning",
)


@pytest.mark.slow
@pytest.mark.parametrize("package", ["lightning.pytorch", "pytorch_lightning"])
def test_the_logger_stores_what_lightning_reported(
    package: str, live_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(package.split(".")[0], "integrations")
    from integration_jobs.lightning_job import METADATA, fit

    for name, value in server_env(live_server).items():
        monkeypatch.setenv(name, value)
    calls: list[Any] = []
    fit(package, "fitted", calls)

    assert len(calls) == 10  # 2 epochs: 4 training steps and a validation each
    expected = reported_points(calls)
    assert set(expected) == {
        ("train_loss", "ML_STEP", ()),
        ("val_loss", "ML_STEP", ()),
        ("epoch", "ML_STEP", ()),
    }
    assert [step for step, _ in expected[("train_loss", "ML_STEP", ())]] == list(range(8))
    assert expected[("val_loss", "ML_STEP", ())][1][0] == 7
    wait_for_dispatchers_to_exit()  # finalize("success") closed the run
    assert stored_points(live_server, "fitted") == expected
    assert run_metadata(live_server, "fitted") == METADATA
    assert run_status(live_server, "fitted") == "done"


@pytest.mark.slow
def test_under_ddp_every_rank_or_rank_zero_logs_each_point_once(
    tmp_path: Path, live_server: RunningServer
) -> None:
    need("lightning", "integrations")
    run_python(str(JOB), str(tmp_path), env=server_env(live_server), timeout=120)
    wait_for_dispatchers_to_exit()

    def reported(run_name: str, rank: int, labelled: bool) -> Any:
        calls = json.loads((tmp_path / f"{run_name}-{rank}.json").read_text())
        return reported_points(calls, labels={"rank": str(rank)} if labelled else None)

    # rank_zero_only=False: each rank's own points, under its rank label, each stored once
    every = stored_points(live_server, "ddp-every-rank")
    assert every == {**reported("ddp-every-rank", 0, True), **reported("ddp-every-rank", 1, True)}
    assert len(every) == 6  # train_loss, val_loss and epoch of two ranks
    zero = every[("train_loss", "ML_STEP", (("rank", "0"),))]
    one = every[("train_loss", "ML_STEP", (("rank", "1"),))]
    assert [s for s, _ in zero] == [s for s, _ in one] == list(range(8))
    assert [v for _, v in zero] != [v for _, v in one]  # each rank's shard of the data
    # the default: rank zero's points only, unlabelled
    assert stored_points(live_server, "ddp-rank-zero") == reported("ddp-rank-zero", 0, False)
    for run_name in ("ddp-every-rank", "ddp-rank-zero"):
        assert run_metadata(live_server, run_name)["optimizer/name"] == "sgd"
        assert run_status(live_server, run_name) == "done"
