"""Every process of a job logs into one run: spawned ranks, forked children, threads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import psutil
import pytest
from conftest import export_points, kill_tree, kill_writer_after_logging, run_python

JOB = """
import multiprocessing as mp
import sys
import threading

import metrana

RUN = sys.argv[1]
POINTS = int(sys.argv[2])


def child(rank, index):
    # a forked child: no init(), its first log() opens its own ring in the parent's session
    for step in range(POINTS):
        metrana.log("child_metric", float(step * 10 + index), step=step,
                    labels={"rank": str(rank), "child": str(index)})
    metrana.close(close_strategy="CompleteAll")


def thread_body(index):
    for step in range(POINTS):
        metrana.log("thread_metric", float(step), labels={"thread": str(index)})


def rank_main(rank):
    metrana.init(workspace_name="ws", project_name="proj", run_name=RUN,
                 close_strategy="CompleteAll")
    for step in range(POINTS):
        metrana.log("loss", rank + step / POINTS, step=step, labels={"rank": str(rank)})
    fork = mp.get_context("fork")
    children = [fork.Process(target=child, args=(rank, i)) for i in range(2)]
    for process in children:
        process.start()
    if rank == 0:
        threads = [threading.Thread(target=thread_body, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for process in children:
        process.join(120)
        assert process.exitcode == 0, process.exitcode
    metrana.close()


if __name__ == "__main__":
    spawn = mp.get_context("spawn")
    ranks = [spawn.Process(target=rank_main, args=(r,)) for r in range(4)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(240)
    codes = [process.exitcode for process in ranks]
    assert codes == [0, 0, 0, 0], codes
    print("job done")
"""


def run_script(path: Path, *args: str, timeout: float = 240) -> str:
    return run_python(str(path), *args, timeout=timeout).stdout


@pytest.mark.slow
def test_spawned_ranks_forked_children_and_threads_store_every_point_once(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    points = 2_000
    assert "job done" in run_script(script, "mixed", str(points))
    stored = export_points("ws", "proj", "mixed")
    identities = Counter(
        (p["metric"], tuple(sorted(p["labels"].items())), p["step"])  # type: ignore[attr-defined]
        for p in stored
    )
    assert max(identities.values()) == 1
    by_metric = Counter(p["metric"] for p in stored)
    assert by_metric == {
        "loss": 4 * points,
        "child_metric": 4 * 2 * points,
        "thread_metric": 8 * points,
    }
    for p in stored:
        labels = p["labels"]
        assert isinstance(labels, dict)
        if p["metric"] == "loss":
            assert p["value"] == int(labels["rank"]) + p["step"] / points  # type: ignore[operator]
        elif p["metric"] == "child_metric":
            assert p["value"] == p["step"] * 10 + int(labels["child"])  # type: ignore[operator]
        else:
            assert p["value"] == float(p["step"])  # type: ignore[arg-type]
    thread_steps = sorted(p["step"] for p in stored if p["metric"] == "thread_metric")  # type: ignore[type-var]
    assert thread_steps == sorted(list(range(points)) * 8)


TWO_JOBS = """
import sys
import metrana

run, points = sys.argv[1], int(sys.argv[2])
metrana.init(workspace_name="ws", project_name="shared", run_name=run,
             close_strategy="CompleteAll")
for step in range(points):
    metrana.log("loss", float(step), step=step)
    metrana.log("acc", 1.0 / (step + 1), step=step)
metrana.close(timeout=120)
print("ok")
"""


@pytest.mark.slow
def test_two_jobs_log_into_one_store_at_once(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(TWO_JOBS))
    points = 30_000
    processes = []
    for job in ("a", "b"):
        env = dict(os.environ, METRANA_ORCHESTRATION_ID=f"job-{job}-{os.getpid()}")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script), f"run-{job}", str(points)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outputs = [p.communicate(timeout=180) for p in processes]
    finally:
        for p in processes:
            kill_tree(p.pid)
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "locked" not in err
    for job in ("a", "b"):
        stored = export_points("ws", "shared", f"run-{job}")
        assert Counter(p["metric"] for p in stored) == {"loss": points, "acc": points}


ELECTION = """
import json
import multiprocessing as mp
import sys

import metrana
from metrana.writer import _run


def rank(barrier, queue):
    barrier.wait(60)
    metrana.init(workspace_name="ws", project_name="proj", run_name="election",
                 close_strategy="CompleteAll")
    writer = _run.current_writer()
    info = writer.session.read_info()
    queue.put((writer.handshake.dispatcher_pid, info.pid, str(writer.session.dir)))
    barrier.wait(60)  # every rank is initialised: count dispatchers now
    barrier.wait(60)
    metrana.log("x", 1.0, labels={"rank": str(mp.current_process().name)})
    metrana.close()


if __name__ == "__main__":
    spawn = mp.get_context("spawn")
    barrier = spawn.Barrier(9)
    queue = spawn.Queue()
    ranks = [spawn.Process(target=rank, args=(barrier, queue)) for _ in range(8)]
    for process in ranks:
        process.start()
    barrier.wait(60)
    seen = [queue.get(timeout=60) for _ in ranks]
    barrier.wait(60)
    print(json.dumps(seen), flush=True)
    sys.stdin.readline()  # the test counts dispatcher processes, then lets the ranks finish
    barrier.wait(60)
    for process in ranks:
        process.join(60)
    assert [p.exitcode for p in ranks] == [0] * 8
"""


def _dispatchers_of(session_dir: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "metrana.dispatcher" in cmdline and session_dir in cmdline:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.NoSuchProcess:
                pass
    return found


@pytest.mark.slow
def test_eight_ranks_starting_at_once_elect_one_dispatcher(tmp_path: Path) -> None:
    import json

    script = tmp_path / "election.py"
    script.write_text(textwrap.dedent(ELECTION))
    job = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert job.stdout is not None and job.stdin is not None
        seen = json.loads(job.stdout.readline())
        assert len(seen) == 8
        handshake_pids = {s[0] for s in seen}
        lock_holder_pids = {s[1] for s in seen}
        session_dirs = {s[2] for s in seen}
        assert len(session_dirs) == 1
        assert handshake_pids == lock_holder_pids and len(handshake_pids) == 1
        alive = _dispatchers_of(session_dirs.pop())
        assert [p.pid for p in alive] == list(handshake_pids)
        job.stdin.write("go\n")
        job.stdin.flush()
        _out, err = job.communicate(timeout=120)
        assert job.returncode == 0, err
    finally:
        kill_tree(job.pid)
    assert len(export_points("ws", "proj", "election")) == 8


KILLED_WRITER = """
import sys
import metrana
from metrana.writer import _run

metrana.init(workspace_name="ws", project_name="proj", run_name="killed")
writer = _run.current_writer()
print(writer.session.read_info().pid, flush=True)
sys.stdin.readline()
for step in range(int(sys.argv[1])):
    metrana.log("loss", float(step))
print(writer.ring.written, flush=True)
sys.stdin.readline()  # wait to be killed
"""


@pytest.mark.slow
def test_writer_killed_after_logging_has_all_points_stored(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(KILLED_WRITER))
    points = 20_000
    # the points and one declaration
    assert kill_writer_after_logging(script, str(points)) == points + 1
    steps = [p["step"] for p in export_points("ws", "proj", "killed")]
    assert steps == list(range(points))
