"""Kill the dispatcher at random moments: a new one takes over from the committed positions
and every point is stored exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import export_points, kill_tree, server_env, target_server

from metrana.api import Client
from metrana.session import live_dispatchers
from metrana.testing import RunningServer, stored_points

JOB = """
import multiprocessing as mp
import sys
import time

import metrana

RUN, POINTS = sys.argv[1], int(sys.argv[2])


def writer(index):
    metrana.init(workspace_name="default", project_name="failover", run_name=RUN,
                 backpressure_strategy="Block", close_strategy="CompleteAll")
    for step in range(POINTS):
        metrana.log("loss", float(step), step=step, labels={"writer": str(index)})
        if step % 2000 == 0:
            metrana.log("progress", float(step), labels={"writer": str(index)})
        if step % 100 == 99:
            time.sleep(0.03)  # spread over ~12 s: a replacement takes ~0.4 s to start
    metrana.close(timeout=120)


if __name__ == "__main__":
    spawn = mp.get_context("spawn")
    writers = [spawn.Process(target=writer, args=(i,)) for i in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(240)
    assert [p.exitcode for p in writers] == [0] * 4, [p.exitcode for p in writers]
    print("job done", flush=True)
"""


def _points_over_http(server: RunningServer) -> list[dict[str, object]]:
    with Client(server.api_key, host=server.url) as client:
        (experiment,) = client.list_experiments().experiments
        series = stored_points(client, experiment.id)
    return [
        {"metric": name, "labels": json.loads(labels), "step": step}
        for (name, labels), points in series.items()
        for step, _ in points
    ]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["embedded", "http"])
def test_dispatcher_killed_repeatedly_loses_nothing_and_stores_nothing_twice(
    tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    points = 40_000
    # over HTTP a dispatcher needs ~0.5 s to start and shake hands: kill less often
    rounds, pause = (30, (0.02, 0.15)) if target == "embedded" else (15, (0.1, 0.5))
    session_root = Path(os.environ["METRANA_SESSION_ROOT"])
    server = target_server(target, request)
    env = {**os.environ, **(server_env(server) if server else {})}
    job = subprocess.Popen(
        [sys.executable, str(script), "kills", str(points)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    rng = random.Random(7)
    kills = 0
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while job.poll() is None and time.monotonic() < deadline and kills < rounds:
            time.sleep(rng.uniform(*pause))
            pid = next(iter(live_dispatchers(session_root)), None)
            if pid is not None and pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                kills += 1
        _out, err = job.communicate(timeout=240)
    finally:
        kill_tree(job.pid)
    assert job.returncode == 0, err
    assert kills >= rounds // 2, f"only {kills} dispatchers were killed; the job ended too soon"
    if server is None:
        stored = export_points("default", "failover", "kills")
    else:
        stored = _points_over_http(server)
    identities = Counter((p["metric"], p["labels"]["writer"], p["step"]) for p in stored)  # type: ignore[index]
    assert max(identities.values()) == 1
    loss = [k for k in identities if k[0] == "loss"]
    assert len(loss) == 4 * points
    # Points sent again by a successor are replays, not two writers colliding on a step.
    logs = [p.read_text() for p in session_root.glob("*/dispatcher.log")]
    assert logs, "the dispatchers' log was not kept"
    assert not any("already stored at the same step" in text for text in logs)
