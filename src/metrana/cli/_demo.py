"""``metrana demo``: a simulated training job of spawned ranks, each with a forked worker pool."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import sys
import time
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import metrana

from .._config import orchestration_id, resolve_config
from ..session import Session, read_dispatcher_stats, remove_if_unused, session_root
from ..storage import SqliteStore
from ._console import stderr_progress


def _env_worker(args: tuple[int, int, int]) -> int:
    """An environment worker (forked from its rank): logs per-episode returns."""
    rank, worker, episodes = args
    rng = random.Random(rank * 100 + worker)
    for episode in range(episodes):
        metrana.log(
            "episode_return",
            rng.gauss(episode * 0.1, 1.0),
            scale="EPISODE",
            step=episode,
            labels={"rank": str(rank), "worker": str(worker)},
        )
    return episodes


def _rank(rank: int, run_name: str, steps: int, workers: int, progress: Any) -> None:
    metrana.init(
        workspace_name="demo",
        project_name="simulated-training",
        run_name=run_name,
        close_strategy="CompleteAll",
    )
    rng = random.Random(rank)
    labels = {"rank": str(rank)}
    chunk = 5_000
    for step in range(steps):
        loss = 2.0 * math.exp(-step / (steps / 4)) + rng.random() * 0.05
        metrana.log("loss", loss, step=step, labels=labels)
        metrana.log("grad_norm", abs(rng.gauss(1.0, 0.2)), step=step, labels=labels)
        if rank == 0:
            metrana.log("learning_rate", 1e-3 * (1 - step / steps), step=step)
        if step % chunk == chunk - 1:
            with progress.get_lock():
                progress.value += chunk
    with progress.get_lock():
        progress.value += steps % chunk
    episodes = steps // 20
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(_env_worker, [(rank, w, episodes) for w in range(workers)])
    metrana.close()


def run_demo(ranks: int = 4, steps: int = 25_000, workers: int = 2) -> int:
    """Run the simulation; show progress bars (stderr) and print a summary of what the store
    holds (stdout)."""
    run_name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    # Like torchrun's TORCHELASTIC_RUN_ID: one job id, inherited by every spawned rank, so
    # that all ranks share one session and one dispatcher.
    orchestration_id()
    ctx = mp.get_context("spawn")
    progress: Synchronized[int] = ctx.Value("q", 0)
    expected_rank_points = ranks * steps * 2 + steps
    expected_env_points = ranks * workers * (steps // 20)
    expected = expected_rank_points + expected_env_points
    print(
        f"metrana demo: {ranks} spawned ranks x {steps} steps, each forking {workers} "
        f"environment workers -> run {run_name!r}"
    )
    config = resolve_config(
        workspace_name="demo", project_name="simulated-training", run_name=run_name
    )
    # The ranks' session (same run and job id): its dispatcher's counters drive the "stored" bar.
    session_dir = session_root() / Session.key(config)
    started = time.monotonic()
    processes = [
        ctx.Process(target=_rank, args=(r, run_name, steps, workers, progress))
        for r in range(ranks)
    ]
    for process in processes:
        process.start()
    total_steps = ranks * steps
    stored = 0

    def refresh() -> None:
        nonlocal stored
        stats = read_dispatcher_stats(session_dir)
        if stats is not None:
            stored = max(stored, min(stats.stored, expected))
        bars.update(training, completed=progress.value)
        bars.update(storing, completed=stored)

    with stderr_progress() as bars:
        training = bars.add_task("training", total=total_steps)
        storing = bars.add_task("stored  ", total=expected)
        while any(p.is_alive() for p in processes):
            refresh()
            time.sleep(0.2)
        for process in processes:
            process.join()
        elapsed = time.monotonic() - started
        refresh()
        # The dispatcher marks the run finished once its last writer is gone; give it a moment
        # so that the summary shows the run's final status.
        deadline = time.monotonic() + 10
        while Session(session_dir).dispatcher_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        remove_if_unused(session_dir)  # the demo's job is over: leave nothing in the root
        store = SqliteStore(config.store_path)
        run = store.find_run("demo", "simulated-training", run_name)
        if run is not None:  # the final count, from the store itself
            bars.update(storing, completed=run.points)
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    print(f"\nStored in {config.store_path}:")
    if run is None:
        print("  the run was not found in the store")
        return 1
    print(f"  run      {run.workspace}/{run.project}/{run.run_name}  ({run.status})")
    print(f"  series   {run.series}")
    print(
        f"  points   {run.points:,} of {expected:,} logged  ({run.points / elapsed:,.0f} points/s)"
    )
    print(f"  elapsed  {elapsed:.1f} s")
    print(
        "\nExport it with: metrana export --workspace demo --project simulated-training "
        f"--run {run_name}"
    )
    print(
        f"See its charts with: metrana ui --store {config.store_path}\n"
        "  (the dashboard on this machine; it opens a browser, or prints a login link)"
    )
    store.close()
    if failed or run.points != expected:
        print("demo FAILED: some ranks exited with errors or points are missing", file=sys.stderr)
        return 1
    return 0
