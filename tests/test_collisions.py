"""Two processes logging the same series at the same steps: each (series, step) is stored once
(the first write wins) and the dispatcher warns, saying what to do, over either target.
Points sent again after a failure are replays and never warn (see test_failover)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from conftest import export_points, run_python, server_env, target_server

from metrana.api import Client
from metrana.testing import stored_points

JOB = """
import multiprocessing as mp

import metrana


def rank(index, barrier):
    metrana.init(workspace_name="default", project_name="proj", run_name="collide",
                 close_strategy="CompleteAll")
    barrier.wait(60)
    for step in range(2_000):
        metrana.log("loss", float(index), step=step)  # no rank label: the ranks collide
        metrana.log("acc", float(step), step=step, labels={"rank": str(index)})
    metrana.close(timeout=60)


if __name__ == "__main__":
    spawn = mp.get_context("spawn")
    barrier = spawn.Barrier(2)
    ranks = [spawn.Process(target=rank, args=(i, barrier)) for i in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(120)
    assert [p.exitcode for p in ranks] == [0, 0], [p.exitcode for p in ranks]
"""


@pytest.mark.slow
@pytest.mark.parametrize("target", ["embedded", "http"])
def test_two_ranks_logging_one_series_store_each_step_once_and_warn(
    tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    server = target_server(target, request)
    run_python(str(script), env=server_env(server) if server else {}, timeout=180)

    if server is None:
        points = [(p["metric"], p["step"]) for p in export_points("default", "proj", "collide")]
    else:
        with Client(server.api_key, host=server.url) as client:
            (experiment,) = client.list_experiments().experiments
            points = [
                (name, step)
                for (name, _), series in stored_points(client, experiment.id).items()
                for step, _ in series
            ]
    loss = sorted(step for metric, step in points if metric == "loss")
    assert loss == list(range(2_000))
    assert sum(metric == "acc" for metric, _ in points) == 4_000

    logs = "".join(
        p.read_text() for p in Path(os.environ["METRANA_SESSION_ROOT"]).glob("*/dispatcher.log")
    )
    assert "of metric 'loss' were already stored at the same step (first write wins)" in logs
    assert "give each a 'rank' label or log it from one rank only" in logs
    assert "of metric 'acc'" not in logs
