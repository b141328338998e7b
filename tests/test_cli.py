"""The command line: runs, export (jsonl and csv), demo, and the benchmark smoke run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli, kill_tree

import metrana

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def logged_run() -> None:
    metrana.init(workspace_name="ws", project_name="proj", run_name="cli-run")
    for step in range(50):
        metrana.log("loss", step / 2, step=step)
    metrana.log("reward", 1.5, scale="EPISODE", labels={"env": "cartpole"})
    metrana.close(close_strategy="CompleteAll")


@pytest.mark.slow
def test_runs_lists_status_series_and_points(logged_run: None) -> None:
    out = cli("runs").stdout
    assert out.splitlines()[0].split() == [
        "ID",
        "WORKSPACE",
        "PROJECT",
        "RUN",
        "STATUS",
        "SERIES",
        "POINTS",
    ]
    assert out.splitlines()[1].split() == ["1", "ws", "proj", "cli-run", "done", "2", "51"]
    (run,) = json.loads(cli("runs", "--json").stdout)
    assert (run["run_name"], run["status"], run["series"], run["points"]) == (
        "cli-run",
        "done",
        2,
        51,
    )


@pytest.mark.slow
def test_export_csv_to_a_file(logged_run: None, tmp_path: Path) -> None:
    target = tmp_path / "points.csv"
    result = cli(
        "export",
        "--workspace",
        "ws",
        "--project",
        "proj",
        "--run",
        "cli-run",
        "--format",
        "csv",
        "--output",
        str(target),
    )
    assert "exported 51 points" in result.stderr
    with target.open() as written:
        rows = list(csv.DictReader(written))
    assert len(rows) == 51
    reward = [r for r in rows if r["metric"] == "reward"]
    assert reward[0]["labels"] == '{"env":"cartpole"}'
    assert (reward[0]["scale"], reward[0]["step"], reward[0]["value"]) == ("EPISODE", "0", "1.5")


@pytest.mark.slow
def test_export_into_a_pipe_closed_early_ends_quietly() -> None:
    """`metrana export ... | head -1`: the reader leaves; no traceback, exit 0."""
    metrana.init(workspace_name="ws", project_name="proj", run_name="long-run")
    for step in range(50_000):  # megabytes of output: more than a pipe holds
        metrana.log("loss", step / 2, step=step)
    metrana.close(close_strategy="CompleteAll")
    command = [sys.executable, "-m", "metrana.cli", "export"]
    command += ["--workspace", "ws", "--project", "proj", "--run", "long-run"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as export:
        try:
            assert export.stdout is not None and export.stderr is not None
            first = json.loads(export.stdout.readline())
            export.stdout.close()  # as head does after its line
            assert export.wait(timeout=60) == 0
            assert export.stderr.read() == ""
        finally:
            kill_tree(export.pid)
    assert (first["metric"], first["step"]) == ("loss", 0)


@pytest.mark.slow
def test_export_of_an_unknown_run_says_so(logged_run: None) -> None:
    result = cli("export", "--workspace", "ws", "--project", "proj", "--run", "nope", check=False)
    assert result.returncode == 1
    assert "no run ws/proj/nope" in result.stderr


@pytest.mark.slow
def test_runs_without_a_store_says_where_it_looked(tmp_path: Path) -> None:
    result = cli("runs", "--store", str(tmp_path / "missing.sqlite"), check=False)
    assert result.returncode != 0
    assert "no store at" in result.stderr


@pytest.mark.slow
def test_demo_stores_every_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "metrana.cli", "demo", "--ranks", "2", "--steps", "2000"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    # 2 ranks x 2000 steps x 2 metrics + 2000 learning-rate points + 2 x 2 workers x 100 episodes
    assert "points   10,400 of 10,400 logged" in result.stdout
    root = Path(os.environ["METRANA_SESSION_ROOT"])  # the run is over: its session is removed
    assert not root.exists() or list(root.iterdir()) == []


@pytest.mark.slow
def test_benchmark_smoke_run() -> None:
    """The harness runs every section at toy sizes; no timing is asserted, only that each target
    row is reported and every point of the end-to-end runs was stored."""
    result = subprocess.run(
        [sys.executable, "-m", "stress", "bench", "--quick"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {f["what"] for f in figures} >= {
        "empty Python call",
        "bare msgspec encode + mmap copy",
        "metrana.log(name, value, step=)",
    }
    committed = [
        f for f in figures if f["figure"] == "end_to_end" and f["what"].endswith("until committed")
    ]
    assert {f["what"] for f in committed} == {
        "2 writers -> embedded store, until committed",
        "2 writers -> metrana serve over HTTP (loopback), until committed",
        "2 writers of 1,024-value arrays -> embedded store, until committed",
        "2 writers of 1,024-value arrays -> metrana serve over HTTP (loopback), until committed",
    }
    for end_to_end in committed:
        assert end_to_end["ok"] and end_to_end["stored"] == end_to_end["points"]
    shapes = {f["what"]: f for f in figures if f["figure"] == "bulk_calls"}
    assert {"log(name, value, step=): scalar", "log(name, float64 array of 1,024, step=)",
            "log(dict of 10 floats, step=)"} <= set(shapes)  # fmt: skip
    assert all(f["dropped"] == 0 and f["ns_per_point"] > 0 for f in shapes.values())
    rest = {f["what"]: f for f in figures if f["figure"] == "rest"}
    assert rest["JSON ingest, 1,000-event batches, embedded store"]["events"] == 2_000
    assert {
        "list_metrics of 10,000 rows",
        "compare_metrics of two series, 10,000 rows in all",
    } <= set(rest)
    overheads = [f for f in figures if f["figure"] == "integration_overhead"]
    assert [f["what"].split(":")[0] for f in overheads] == ["Lightning", "Transformers"]
    for overhead in overheads:  # measured, or skipped for want of the integrations extra
        assert "wall_overhead_us" in overhead or overhead["note"].startswith("not installed")
    engines = {f["what"]: f for f in figures if f["figure"] == "postgres"}
    assert len(engines) == 5 and all(f.get("ok", True) for f in engines.values()), engines
    rows = [f for f in figures if f["figure"] == "target"]
    assert len(rows) == 30 and all({"target", "measured", "met"} <= set(r) for r in rows)
    table = result.stdout.splitlines()
    assert any(line.startswith("row ") and line.rstrip().endswith("measured") for line in table)
