"""Rings left behind when every process of a job died: the next init() on the host, or
`metrana sync`, starts a dispatcher that delivers them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import cli, dispatcher_pids, export_points, kill_tree

WRITER = """
import sys, metrana
metrana.init(workspace_name="ws", project_name="p", run_name="orphan")
print("ready", flush=True)
sys.stdin.readline()            # the test stops the dispatcher meanwhile
for step in range(500):
    metrana.log("loss", float(step), step=step)
metrana.stats()
print("logged", flush=True)
sys.stdin.readline()            # killed here, with 500 points in its ring
"""


def _orphan(tmp_path: Path) -> Path:
    """A session whose writer and dispatcher were both SIGKILLed, 500 points in the ring."""
    session_root = Path(os.environ["METRANA_SESSION_ROOT"])
    with subprocess.Popen(
        [sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            (dispatcher,) = dispatcher_pids(session_root)
            os.kill(dispatcher, signal.SIGSTOP)
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "logged"
            child.kill()
            child.wait(10)
            os.kill(dispatcher, signal.SIGKILL)
            psutil.Process(dispatcher).wait(10)
        finally:
            kill_tree(child.pid)
    (session,) = [d for d in session_root.iterdir() if any(d.glob("w-*.meta"))]
    assert dispatcher_pids(session_root) == []
    return session


def _wait_gone(session: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(session.glob("w-*.meta")):
        assert time.monotonic() < deadline, "the orphaned rings were not delivered"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_metrana_sync_delivers_an_orphaned_session(tmp_path: Path) -> None:
    session = _orphan(tmp_path)
    result = cli("sync")
    assert "delivering the rings of 1 orphaned session(s)" in result.stderr
    _wait_gone(session)
    steps = sorted(int(p["step"]) for p in export_points("ws", "p", "orphan"))  # type: ignore[call-overload]
    assert steps == list(range(500))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_next_init_on_the_host_delivers_an_orphaned_session(tmp_path: Path) -> None:
    session = _orphan(tmp_path)
    import metrana

    metrana.init(workspace_name="ws", project_name="p", run_name="another-run")
    metrana.close()
    _wait_gone(session)
    steps = sorted(int(p["step"]) for p in export_points("ws", "p", "orphan"))  # type: ignore[call-overload]
    assert steps == list(range(500))
