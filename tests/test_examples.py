"""The examples run for real: torchrun DDP ranks, a gymnasium worker pool, DataLoader workers.

Each test runs a real job in child processes and counts the stored points exactly, per rank or
per worker, through ``metrana export``. They need the ``examples`` extra (torch, gymnasium),
which ``make test`` installs; elsewhere they are skipped, except under CI, where a missing
package is an error.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from conftest import export_points, need, run_python, wait_for_dispatchers_to_exit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def series_of(points: list[dict[str, Any]]) -> dict[tuple[str, str, tuple[Any, ...]], list[Any]]:
    """(metric, scale, sorted labels) -> the stored points, by step."""
    out: dict[tuple[str, str, tuple[Any, ...]], list[Any]] = defaultdict(list)
    for point in points:
        key = (point["metric"], point["scale"], tuple(sorted(point["labels"].items())))
        out[key].append(point)
    for stored in out.values():
        stored.sort(key=lambda p: p["step"])
    return out


@pytest.mark.slow
def test_torchrun_ddp_every_rank_logs_into_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("torch")
    # Nothing but torchrun's TORCHELASTIC_RUN_ID ties the ranks together.
    monkeypatch.delenv("METRANA_ORCHESTRATION_ID")
    ranks, steps = 4, 20
    result = run_python(
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(ranks),
        str(EXAMPLES / "ddp_train.py"),
        "--steps",
        str(steps),
        "--run-name",
        "ddp-test",
        "--report-dir",
        str(tmp_path),
        timeout=120,
    )
    lines = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("rank-*.json"))]
    assert sorted(line["rank"] for line in lines) == list(range(ranks)), result.stdout
    # One session and one dispatcher for the four ranks.
    assert len({line["session"] for line in lines}) == 1, lines
    # (a rank that asks before the dispatcher's first stats snapshot reads None)
    assert len({line["dispatcher"] for line in lines} - {None}) == 1, lines
    assert len({line["pid"] for line in lines}) == ranks
    logged = {line["rank"]: line["logged"] for line in lines}
    assert logged == {0: 5 * steps, 1: 2 * steps, 2: 2 * steps, 3: 2 * steps}

    wait_for_dispatchers_to_exit()
    points = export_points("examples", "ddp", "ddp-test")
    assert len(points) == (2 * ranks + 3) * steps
    series = series_of(points)
    expected = {("loss", "ML_STEP", (("rank", str(r)),)) for r in range(ranks)}
    expected |= {("grad_norm", "ML_STEP", (("rank", str(r)),)) for r in range(ranks)}
    expected |= {(m, "ML_STEP", ()) for m in ("global_loss", "learning_rate", "samples_per_s")}
    assert set(series) == expected
    for stored in series.values():
        assert [p["step"] for p in stored] == list(range(steps))
    # rank 0's global loss is the all-reduced mean of the ranks' losses, step by step
    for step in range(steps):
        mean = sum(
            series[("loss", "ML_STEP", (("rank", str(r)),))][step]["value"] for r in range(4)
        )
        assert series[("global_loss", "ML_STEP", ())][step]["value"] == pytest.approx(
            mean / 4, rel=1e-5
        )
    assert series[("learning_rate", "ML_STEP", ())][0]["value"] == pytest.approx(0.05)
    # DDP keeps the replicas in step: every rank saw the same (all-reduced) gradient norm
    for step in range(steps):
        norms = {
            series[("grad_norm", "ML_STEP", (("rank", str(r)),))][step]["value"] for r in range(4)
        }
        assert max(norms) == pytest.approx(min(norms), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_env_pool_workers_log_from_inside_their_processes(tmp_path: Path, context: str) -> None:
    need("gymnasium")
    num_envs, steps, rollout = 4, 256, 32
    summary_path = tmp_path / "summary.json"
    run_name = f"pool-{context}"
    run_python(
        str(EXAMPLES / "rl_env_pool.py"),
        "--context",
        context,
        "--num-envs",
        str(num_envs),
        "--steps",
        str(steps),
        "--rollout",
        str(rollout),
        "--run-name",
        run_name,
        "--summary",
        str(summary_path),
        timeout=60,
    )
    summary = json.loads(summary_path.read_text())
    assert summary["start_method"] == context
    learner, workers = summary["learner_pid"], summary["worker_pids"]
    assert len(set(workers)) == num_envs and learner not in workers
    # Every worker joined the learner's session: one ring each beside the learner's.
    assert summary["session_writer_pids"] == sorted([learner, *workers])
    updates = steps // rollout
    assert summary["updates"] == updates

    wait_for_dispatchers_to_exit()
    points = export_points("examples", "rl", run_name)
    series = series_of(points)
    total = 3 * updates
    for metric in ("train/loss", "train/entropy", "train/mean_reward"):
        assert [p["step"] for p in series.pop((metric, "ML_STEP", ()))] == list(range(updates))
    for index, pid in enumerate(workers):
        labels = (("pid", str(pid)), ("worker", str(index)))
        returns = summary["episode_returns"][index]
        episodes = len(returns)
        assert episodes > 0
        # one reward per env.step() in the worker: exactly one per vector step
        rewards = series.pop(("reward", "ENVIRONMENT_STEP", labels))
        assert [p["step"] for p in rewards] == list(range(steps))
        assert {p["value"] for p in rewards} == {1.0}
        # per episode, what the worker logged is what the learner saw
        stored_returns = series.pop(("episode_return", "EPISODE", labels))
        assert [p["step"] for p in stored_returns] == list(range(episodes))
        assert [p["value"] for p in stored_returns] == returns
        lengths = series.pop(("episode_length", "EPISODE", labels))
        assert [p["value"] for p in lengths] == returns  # CartPole pays 1 per step
        # reset() logs too: the first reset and one after every finished episode
        angles = series.pop(("initial_pole_angle", "EPISODE", labels))
        assert [p["step"] for p in angles] == list(range(episodes + 1))
        total += steps + 2 * episodes + episodes + 1
    assert not series, f"unexpected series: {sorted(series)}"
    assert len(points) == total


DATALOADER_JOB = """
import sys

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

import metrana

SIZE, BATCH, EPOCHS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


class Logged(Dataset):
    def __init__(self):
        self.epoch = 0

    def __len__(self):
        return SIZE

    def __getitem__(self, index):
        # runs in a forked worker: no init(), its first log() opens the worker's own ring
        worker = get_worker_info()
        metrana.log("sample", float(index), step=index,
                    labels={"worker": str(worker.id), "epoch": str(self.epoch)})
        return torch.tensor([float(index)])


if __name__ == "__main__":
    metrana.init(workspace_name="ws", project_name="data", run_name="loader",
                 close_strategy="CompleteAll")
    dataset = Logged()
    batches = 0
    for epoch in range(EPOCHS):
        dataset.epoch = epoch  # new workers are forked each epoch and see it
        loader = DataLoader(dataset, batch_size=BATCH, num_workers=2,
                            multiprocessing_context="fork")
        for batch in loader:
            metrana.log("batch_sum", float(batch.sum()), step=batches)
            batches += 1
    metrana.close()
    print("batches", batches)
"""


@pytest.mark.slow
def test_dataloader_workers_log_from_getitem(tmp_path: Path) -> None:
    need("torch")
    size, batch, epochs = 200, 8, 2
    script = tmp_path / "loader.py"
    script.write_text(textwrap.dedent(DATALOADER_JOB))
    result = run_python(str(script), str(size), str(batch), str(epochs), timeout=60)
    batches_per_epoch = size // batch
    assert f"batches {epochs * batches_per_epoch}" in result.stdout
    # The workers exit without close() (multiprocessing runs no atexit there): the dispatcher
    # drains their rings as those of dead writers, stores everything, then exits.
    wait_for_dispatchers_to_exit()
    points = export_points("ws", "data", "loader")
    assert len(points) == epochs * size + epochs * batches_per_epoch
    counts = Counter(p["metric"] for p in points)
    assert counts == {"sample": epochs * size, "batch_sum": epochs * batches_per_epoch}
    # The DataLoader hands batch k to worker k % 2: each worker logged exactly its indices.
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for p in points:
        if p["metric"] == "sample":
            assert p["value"] == float(p["step"])
            seen[(p["labels"]["epoch"], p["labels"]["worker"])].append(p["step"])
    for epoch in range(epochs):
        for worker in range(2):
            wanted = [i for i in range(size) if (i // batch) % 2 == worker]
            assert sorted(seen[(str(epoch), str(worker))]) == wanted
    sums = sorted(p["value"] for p in points if p["metric"] == "batch_sum")
    per_batch = [float(sum(range(k * batch, (k + 1) * batch))) for k in range(batches_per_epoch)]
    assert sums == sorted(per_batch * epochs)
