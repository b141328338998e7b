"""System metrics: the dispatcher samples the writer processes and the host."""

from __future__ import annotations

import pytest
from conftest import export_points, run_python

import metrana
from metrana.session import read_dispatcher_stats
from metrana.testing import InProcessSession, wait_until

SCRIPT = """
import os, time, metrana
os.environ["RANK"] = "3"
metrana.init(workspace_name="ws", project_name="p", run_name="sys", close_strategy="CompleteAll")
# Two samples cover every series (a process's first sample only starts its CPU measurement):
# the host's 3 points, then 3 + 4 (the dispatcher) + 4 (this writer). Wait until the store has
# at least that many points beyond this writer's own.
deadline = time.monotonic() + 30
logged = 0
while time.monotonic() < deadline:
    metrana.log("loss", 1.0)
    logged += 1
    stats = metrana.stats().session.dispatcher
    if stats is not None and stats.stored >= logged + 14:
        break
    time.sleep(0.05)
metrana.close()
print(os.getpid())
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["argument", "variable"])
def test_system_metrics_sample_writers_and_host(how: str) -> None:
    script = SCRIPT
    env = {"METRANA_SYSTEM_METRICS_INTERVAL": "0.2"}
    if how == "argument":
        script = script.replace(
            'close_strategy="CompleteAll"', 'close_strategy="CompleteAll", system_metrics=True'
        )
        env["METRANA_SYSTEM_METRICS"] = "0"  # the argument wins
    else:
        env["METRANA_SYSTEM_METRICS"] = "1"
    pid = run_python("-c", script, env=env).stdout.strip()
    points = export_points("ws", "p", "sys")
    names = {str(p["metric"]) for p in points}
    assert {"system/cpu_percent", "system/rss_bytes", "system/threads", "system/open_files",
            "system/host_memory_used_bytes", "system/host_memory_percent",
            "system/load_1m"} <= names  # fmt: skip
    mine = [
        p for p in points if p["metric"] == "system/rss_bytes" and p["labels"].get("pid") == pid
    ]  # type: ignore[attr-defined]
    assert mine, "the writer process was not sampled"
    assert all(p["labels"]["rank"] == "3" for p in mine)  # type: ignore[index]
    assert all(int(p["value"]) > 1_000_000 for p in mine)  # type: ignore[call-overload]
    steps = [int(p["step"]) for p in mine]  # type: ignore[call-overload]
    assert steps == sorted(set(steps))


@pytest.mark.parametrize("enabled", [False, True])
def test_system_metrics_are_off_by_default(enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """In one process: with the default, no sample is taken however long the run goes (here
    two stats publications, 5 sampling intervals); switched on, the same wait brings samples."""
    monkeypatch.setenv("METRANA_SYSTEM_METRICS_INTERVAL", "0.1")
    with InProcessSession() as session:
        session.init(
            workspace_name="ws", project_name="p", run_name="sys", system_metrics=enabled or None
        )
        assert session.dispatcher is not None
        assert (session.dispatcher.system is not None) is enabled
        metrana.log("loss", 1.0, step=0)
        assert session.session is not None
        first = wait_until(lambda: read_dispatcher_stats(session.session.dir), 10, message="stats")
        wait_until(
            lambda: (
                (stats := read_dispatcher_stats(session.session.dir)) is not None
                and stats.updated_ns > first.updated_ns
            ),
            10,
            message="a second stats publication",
        )
        metrana.close(close_strategy="CompleteAll")
    system = {key[0] for key in session.target.points if key[0].startswith("system/")}
    assert bool(system) is enabled
    assert session.target.values("loss") == {0: 1.0}
