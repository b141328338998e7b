"""The dispatcher ships to a live server over HTTP: a job of several processes, resume, and a
refused key."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from conftest import dispatcher_pids, init_over_http, run_python, server_env

import metrana
from metrana.api import Client
from metrana.testing import RunningServer, stored_points

RANKS = """
import multiprocessing as mp
import sys

import metrana

POINTS = int(sys.argv[1])


def rank_main(rank):
    metrana.init(workspace_name="default", project_name="proj", run_name="http-job",
                 close_strategy="CompleteAll")
    for step in range(POINTS):
        metrana.log("loss", rank + step / POINTS, labels={"rank": str(rank)})
    metrana.close()


if __name__ == "__main__":
    spawn = mp.get_context("spawn")
    ranks = [spawn.Process(target=rank_main, args=(r,)) for r in range(4)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(240)
    assert [p.exitcode for p in ranks] == [0, 0, 0, 0], [p.exitcode for p in ranks]
"""


@pytest.mark.slow
def test_four_processes_of_50k_points_arrive_exactly_over_http(
    tmp_path: Path, live_server: RunningServer, client: Client
) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(RANKS)
    run_python(str(script), "50000", env=server_env(live_server), timeout=300)

    (experiment,) = client.list_experiments().experiments
    assert (experiment.slug, experiment.status) == ("http-job", "done")
    assert experiment.folder is not None and experiment.folder.path_name == "default/proj"
    series = stored_points(client, experiment.id, metric_name="loss")
    assert sorted(series) == [("loss", f'{{"rank":"{rank}"}}') for rank in "0123"]
    assert sum(len(points) for points in series.values()) == 200_000
    for rank in range(4):
        points = series[("loss", f'{{"rank":"{rank}"}}')]
        assert [step for step, _ in points] == list(range(50_000))
        assert points[123][1] == rank + 123 / 50_000


TWO_RANKS = """
import multiprocessing as mp

import metrana


def rank_main(rank):
    metrana.init(workspace_name="team", project_name="proj", experiment_name="sweep",
                 run_name="two-ranks", close_strategy="CompleteAll")
    for step in range(1_000):
        metrana.log("loss", rank * 10 + step / 1_000, step=step, labels={"rank": str(rank)})
    metrana.close()


if __name__ == "__main__":
    ranks = [mp.get_context("spawn").Process(target=rank_main, args=(r,)) for r in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(120)
    assert [p.exitcode for p in ranks] == [0, 0], [p.exitcode for p in ranks]
"""


@pytest.mark.slow
def test_two_spawned_ranks_read_back_by_the_real_syvain_client(
    tmp_path: Path, live_server: RunningServer
) -> None:
    """A job of two spawned processes over HTTP; the real syvain-metrics-api-client finds the
    run by its folder path and compares the two ranks' series, filtered by metadata."""
    from syvain_metrics_api_client import SyvainMetricsApiClient

    script = tmp_path / "two_ranks.py"
    script.write_text(TWO_RANKS)
    run_python(str(script), env=server_env(live_server), timeout=180)
    syvain = SyvainMetricsApiClient(live_server.api_key, host=live_server.url)
    (folder,) = syvain.list_folders(path="team/proj/sweep").folders
    (experiment,) = syvain.get_folder(folder.folder_id).experiments
    assert (experiment.slug, experiment.status) == ("two-ranks", "done")
    series = [
        {"experiment_id": experiment.id, "metric_name": "loss", "metadata_key": "rank",
         "metadata_value": str(rank)}
        for rank in (0, 1)
    ]  # fmt: skip
    rows = syvain.compare_metrics(series, sort_by=["series", "step"], limit=5_000).rows
    assert len(rows) == 2_000
    assert [(row.event_metadata_json, row.step, row.metric_value) for row in rows] == [
        (f'{{"rank":"{rank}"}}', float(step), rank * 10 + step / 1_000)
        for rank in (0, 1)
        for step in range(1_000)
    ]
    assert len({row.event_id for row in rows}) == 2_000


RESUMING = """
import sys
import metrana

metrana.init(workspace_name="default", project_name="proj", run_name="resumed",
             resume_strategy="Allow", close_strategy="CompleteAll")
for i in range(int(sys.argv[1])):
    metrana.log("reward", float(i))
metrana.close()
"""


@pytest.mark.slow
def test_a_resumed_run_continues_auto_incremented_steps(
    tmp_path: Path, live_server: RunningServer, client: Client
) -> None:
    script = tmp_path / "resume.py"
    script.write_text(RESUMING)
    run_python(str(script), "10", env={**server_env(live_server), "METRANA_ORCHESTRATION_ID": "a"})
    run_python(str(script), "5", env={**server_env(live_server), "METRANA_ORCHESTRATION_ID": "b"})

    (experiment,) = client.list_experiments().experiments
    (points,) = stored_points(client, experiment.id).values()
    assert [step for step, _ in points] == list(range(15))
    assert [value for _, value in points] == [float(i) for i in range(10)] + [
        float(i) for i in range(5)
    ]


REFUSED = """
import sys
import time
import metrana

started = time.monotonic()
try:
    metrana.init(workspace_name="default", project_name="proj", run_name="refused",
                 api_key="mtr_this-key-does-not-exist")
except metrana.MetranaError as error:
    print(type(error).__name__, round(time.monotonic() - started, 2))
    print(error)
    sys.exit(0)
sys.exit("init() did not fail")
"""


@pytest.mark.slow
def test_an_unknown_key_fails_init_fast_and_writes_nothing(
    tmp_path: Path, live_server: RunningServer, client: Client
) -> None:
    script = tmp_path / "refused.py"
    script.write_text(REFUSED)
    env = {"METRANA_INGESTION_URL": live_server.url}
    output = run_python(str(script), env=env, timeout=60).stdout.splitlines()
    kind, seconds = output[0].split()
    assert kind == "MetranaDispatcherError"
    assert float(seconds) < 10
    assert "refused the API key (401)" in output[1]
    assert "unknown, revoked or expired key" in output[1]
    assert client.list_experiments().experiments == []
    assert client.list_folders().folders == []


@pytest.mark.slow
def test_an_unreachable_server_fails_init_within_its_timeout(tmp_path: Path) -> None:
    script = tmp_path / "refused.py"
    script.write_text(REFUSED.replace("mtr_this-key-does-not-exist", "mtr_any"))
    env = {
        "METRANA_INGESTION_URL": "http://127.0.0.1:9",  # discard port: nothing listens
        "METRANA_INIT_TIMEOUT": "5",
        "METRANA_RETRY_MAX_ELAPSED": "2",
    }
    started = time.monotonic()
    output = run_python(str(script), env=env, timeout=60).stdout.splitlines()
    assert output[0].split()[0] == "MetranaDispatcherError"
    assert "cannot reach the server at http://127.0.0.1:9" in output[1]
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_resume_never_refuses_another_jobs_run_over_http(
    tmp_path: Path, live_server: RunningServer
) -> None:
    script = tmp_path / "resume.py"
    script.write_text(RESUMING)
    run_python(str(script), "1", env={**server_env(live_server), "METRANA_ORCHESTRATION_ID": "a"})
    never = tmp_path / "never.py"
    never.write_text(
        REFUSED.replace('api_key="mtr_this-key-does-not-exist"', 'resume_strategy="Never"').replace(
            'run_name="refused"', 'run_name="resumed"'
        )
    )
    env = {**server_env(live_server), "METRANA_ORCHESTRATION_ID": "b"}
    output = run_python(str(never), env=env).stdout.splitlines()
    assert output[0].split()[0] == "MetranaRunExistsError"
    assert "already exists" in output[1]


ELSEWHERE = """
import metrana

metrana.init(workspace_name="elsewhere", project_name="proj", run_name="r",
             close_strategy="CompleteAll")
metrana.log("loss", 1.0, step=0)
metrana.close()
"""


@pytest.mark.slow
def test_one_api_key_logs_to_any_workspace_of_its_organization(
    tmp_path: Path, live_server: RunningServer, client: Client
) -> None:
    script = tmp_path / "elsewhere.py"
    script.write_text(ELSEWHERE)
    run_python(str(script), env=server_env(live_server), timeout=60)
    (experiment,) = client.list_experiments().experiments
    assert experiment.folder is not None and experiment.folder.path_name == "elsewhere/proj"
    assert stored_points(client, experiment.id) == {("loss", "{}"): [(0, 1.0)]}


@pytest.mark.slow
def test_a_revoked_ingestion_key_is_replaced_and_nothing_is_lost(
    live_server: RunningServer, client: Client
) -> None:
    init_over_http(live_server, "revoked")
    for step in range(100):
        metrana.log("loss", float(step))
    metrana.flush(timeout=30)
    (experiment,) = client.list_experiments().experiments
    for key in client.list_ingestion_keys(experiment.id).keys:
        client.revoke_ingestion_key(experiment.id, key.id)
    for step in range(100, 200):
        metrana.log("loss", float(step))
    metrana.close(close_strategy="CompleteAll", timeout=30)
    (points,) = stored_points(client, experiment.id).values()
    assert [step for step, _ in points] == list(range(200))
    keys = client.list_ingestion_keys(experiment.id).keys
    assert [k.name for k in keys] == ["dispatcher", "dispatcher"]
    assert keys[0].revoked_at_ms is not None
    # the dispatcher revokes the key it minted when it exits
    dispatchers = [
        psutil.Process(pid) for pid in dispatcher_pids(Path(os.environ["METRANA_SESSION_ROOT"]))
    ]
    assert dispatchers
    _gone, alive = psutil.wait_procs(dispatchers, timeout=30)
    assert not alive, f"the dispatcher did not exit: {alive}"
    keys = client.list_ingestion_keys(experiment.id).keys
    assert [(k.name, k.revoked_at_ms is not None) for k in keys] == [
        ("dispatcher", True),
        ("dispatcher", True),
    ]


@pytest.mark.slow
def test_a_run_longer_than_its_keys_lifetime_keeps_logging_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Ingestion keys that live 0.8 s, a run of about 3 s: the dispatcher replaces its key
    before it expires (and after a refusal, if one expires first); every point is stored
    once."""
    from metrana.testing import serve_in_thread

    with serve_in_thread(str(tmp_path / "short.sqlite"), ingestion_key_ttl_ms=800) as server:
        init_over_http(server, "short-keys")
        started = time.monotonic()
        step = 0
        while time.monotonic() - started < 3.0:  # the run outlives several keys
            metrana.log("loss", float(step), step=step)
            step += 1
            if step % 100 == 0:
                time.sleep(0.01)
        metrana.close(close_strategy="CompleteAll", timeout=30)
        with Client(server.api_key, host=server.url) as client:
            (experiment,) = client.list_experiments().experiments
            (points,) = stored_points(client, experiment.id).values()
            keys = client.list_ingestion_keys(experiment.id).keys
    assert [s for s, _ in points] == list(range(step))
    assert len(keys) >= 3, [(k.id, k.expires_at_ms) for k in keys]
    assert {k.name for k in keys} == {"dispatcher"}
