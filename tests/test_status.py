"""``metrana status``: every session on the host, read from outside, while a job runs and after.

The job is a child process (and a worker forked from it) that logs slowly until the test drops
a stop file, so the test can sample twice and see the counts rise. Every wait polls a condition
with a deadline; nothing relies on a fixed sleep.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import conftest
import psutil
import pytest
from conftest import kill_tree

T = TypeVar("T")

EMPTY = "no Metrana sessions on this host"

JOB = textwrap.dedent(
    """
    import multiprocessing as mp
    import os
    import sys
    import time

    import metrana

    STOP, READY = sys.argv[1], sys.argv[2]


    def log_until_stopped(metric):
        deadline = time.monotonic() + 100  # never outlive a broken test
        step = 0
        while not os.path.exists(STOP) and time.monotonic() < deadline:
            metrana.log(metric, float(step), step=step)
            step += 1
            time.sleep(0.002)  # a slow job: the test can sample it twice


    def worker():
        # forked: no init(), its first log() opens its own ring in the parent's session
        log_until_stopped("worker_metric")
        metrana.close(close_strategy="CompleteAll")


    if __name__ == "__main__":
        metrana.init(workspace_name="ws", project_name="proj", run_name="status-run",
                     close_strategy="CompleteAll")
        metrana.log("loss", 0.0, step=0)
        forked = mp.get_context("fork").Process(target=worker)
        forked.start()
        with open(READY + ".tmp", "w") as handle:
            handle.write(f"{os.getpid()} {forked.pid}")
        os.replace(READY + ".tmp", READY)
        log_until_stopped("loss")
        forked.join(60)
        assert forked.exitcode == 0, forked.exitcode
        metrana.close()
    """
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``metrana ARGS``; the tests check the exit status themselves."""
    return conftest.cli(*args, check=False)


def status_json() -> list[dict[str, Any]]:
    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    sessions: list[dict[str, Any]] = json.loads(result.stdout)
    return sessions


def poll(condition: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Evaluate ``condition`` until it returns something truthy, for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_status_json_follows_a_running_job_then_its_end(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    stop, ready = tmp_path / "stop", tmp_path / "ready"
    job = subprocess.Popen(
        [sys.executable, str(script), str(stop), str(ready)],
        env={**os.environ, "RANK": "3", "LOCAL_RANK": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        poll(lambda: ready.exists() or job.poll() is not None, "the job to start")
        assert job.poll() is None, job.communicate()
        parent_pid, worker_pid = map(int, ready.read_text().split())

        def session_with_both_writers() -> dict[str, Any] | None:
            for session in status_json():
                pids = {w["pid"] for w in session["writers"]}
                if (
                    pids == {parent_pid, worker_pid}
                    and all(w["logged"] > 0 for w in session["writers"])
                    and session["dispatcher"]["health"] == "ok"
                    and session["points_per_s"]
                ):
                    return session
            return None

        first = poll(session_with_both_writers, "both writers and a healthy dispatcher")
        assert first["state"] == "running"
        assert first["run"]["workspace"] == "ws"
        assert first["run"]["project"] == "proj"
        assert first["run"]["run_name"] == "status-run"
        assert first["target"].startswith("embedded:")
        assert first["handshake"] == "ready" and first["experiment_id"] == 1
        dispatcher = first["dispatcher"]
        assert dispatcher["alive"] is True
        assert dispatcher["pid"] not in (parent_pid, worker_pid)
        assert psutil.pid_exists(dispatcher["pid"])
        assert first["rate_basis"] == "uptime" and first["points_per_s"] > 0
        assert Path(first["log_file"]).name == "dispatcher.log"
        assert Path(first["log_file"]).exists()
        assert first["errors"]["count"] == 0
        assert first["dropped"]["total"] == 0 and first["rejected"] == 0
        for writer in first["writers"]:
            assert writer["alive"] is True and writer["closed"] is False
            # the environment the job was started with (a forked worker inherits its rank)
            assert (writer["rank"], writer["local_rank"]) == (3, 1)
            assert 0.0 <= writer["ring_fill"] <= 1.0
            assert writer["dropped"] == {
                "queue_full": 0,
                "on_close": 0,
                "rejected": 0,
                "total": 0,
            }

        before = {w["writer_id"]: w for w in first["writers"]}

        def risen() -> dict[str, Any] | None:
            for session in status_json():
                if session["key"] != first["key"]:
                    continue
                now = {w["writer_id"]: w for w in session["writers"]}
                if (
                    now.keys() == before.keys()
                    and all(now[i]["logged"] > before[i]["logged"] for i in now)
                    and all(now[i]["delivered"] > before[i]["delivered"] for i in now)
                    and session["dispatcher"]["stored"] > dispatcher["stored"]
                ):
                    return session
            return None

        second = poll(risen, "every writer's counts to rise")
        assert second["logged"] > first["logged"]
        assert second["delivered"] > first["delivered"]
        assert second["dispatcher"]["pid"] == dispatcher["pid"]

        text = cli("status")
        assert text.returncode == 0, text.stderr
        assert "ws/proj/status-run" in text.stdout
        assert first["log_file"] in text.stdout
        assert "running" in text.stdout
        for pid in (parent_pid, worker_pid):
            assert str(pid) in text.stdout

        stop.touch()
        out, err = job.communicate(timeout=60)
        assert job.returncode == 0, f"stdout:{out}\nstderr:{err}"

        def ended() -> bool:
            sessions = [s for s in status_json() if s["key"] == first["key"]]
            if not sessions:
                return True  # reaped
            (session,) = sessions
            return not session["dispatcher"]["alive"] and all(
                w["closed"] or not w["alive"] for w in session["writers"]
            )

        poll(ended, "the session to end")
        for session in status_json():
            if session["key"] == first["key"]:
                assert session["state"] == "finished"
                assert session["pending"] == 0
                assert session["dispatcher"]["health"] == "stopped"
                assert session["dispatcher"]["stored"] >= second["dispatcher"]["stored"]
        finished = cli("status")
        assert finished.returncode == 0 and "finished" in finished.stdout
    finally:
        kill_tree(job.pid)


@pytest.mark.slow
def test_status_with_no_sessions(isolated: Path) -> None:
    root = Path(os.environ["METRANA_SESSION_ROOT"])
    assert not root.exists()
    text = cli("status")
    assert (text.returncode, text.stdout.strip()) == (0, EMPTY)
    as_json = cli("status", "--json")
    assert (as_json.returncode, json.loads(as_json.stdout)) == (0, [])
    root.mkdir(mode=0o700)  # an empty root: no sessions either
    assert cli("status").stdout.strip() == EMPTY


def _read_lines(process: subprocess.Popen[str], count: int, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(lines)} lines within {timeout} s: {lines}"
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if ready:
            line = process.stdout.readline()
            assert line, "the watch ended early"
            lines.append(line)
    return lines


@pytest.mark.slow
def test_watch_refreshes_until_ctrl_c_and_exits_0() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "metrana.cli", "status", "--watch", "0.1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watch:
        try:
            lines = _read_lines(watch, 3, timeout=30)
            assert [json.loads(line) for line in lines] == [[], [], []]
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=30) == 0
        finally:
            kill_tree(watch.pid)

    with subprocess.Popen(
        [sys.executable, "-m", "metrana.cli", "status", "--watch"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as live:
        try:
            assert _read_lines(live, 1, timeout=30)[0].strip() == EMPTY
            live.send_signal(signal.SIGINT)
            assert live.wait(timeout=30) == 0
        finally:
            kill_tree(live.pid)


@pytest.mark.slow
def test_status_usage_errors_exit_2() -> None:
    for args in (("--watch", "0"), ("--watch", "soon"), ("--bogus",)):
        result = cli("status", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("usage: metrana")


def test_drop_reasons_are_named_once_for_stats_status_and_docs() -> None:
    from metrana.session import DROP_REASONS, Dropped, SessionStats, WriterStats

    names = [reason.name for reason in DROP_REASONS]
    assert list(Dropped.__struct_fields__) == [*names, "total"]
    guarantees = (Path(__file__).parent.parent / "docs" / "guarantees.md").read_text()
    for reason in DROP_REASONS:
        assert reason.counter in WriterStats.__struct_fields__
        assert reason.counter in SessionStats.__struct_fields__
        assert f"| `{reason.counter}` |" in guarantees, reason.counter
