"""The stress writers: each logs a known series (``value_of``) and publishes how far it got.
They run in child processes (spawned ranks that fork the rest), so they stay top-level."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from typing import Any

RUN = "stress"
PROJECT = "stress"
WORKSPACE = "default"


def value_of(writer: int, step: int) -> float:
    return writer * 1_000_000_000 + step + 0.5


# Writers of an odd index log in bulk: arrays (and every third call a list) of this many values.
BULK_VALUES = 200


def _log_bulk(index: int, points: int, progress: Any, duration: float) -> None:
    """Log ``points`` known points in calls of ``BULK_VALUES`` (an ndarray, every third call a
    list), spread evenly over ``duration`` seconds; ``progress`` after each call returned."""
    import numpy

    import metrana

    labels = {"writer": str(index)}
    started = time.monotonic()
    for call, first in enumerate(range(0, points, BULK_VALUES)):
        values = [value_of(index, step) for step in range(first, min(points, first + BULK_VALUES))]
        metrana.log("value", values if call % 3 == 2 else numpy.array(values), step=first,
                    labels=labels)  # fmt: skip
        progress.value = first + len(values)
        ahead = started + duration * first / points - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def _log_points(index: int, points: int, progress: Any, pid: Any, duration: float) -> None:
    """Log ``points`` known points, spread evenly over ``duration`` seconds (0: flat out); a
    writer of an odd index logs them in bulk calls."""
    import metrana

    pid.value = os.getpid()
    labels = {"writer": str(index)}
    started = time.monotonic()
    step = 0
    try:
        if index % 2:
            _log_bulk(index, points, progress, duration)
            return
        for step in range(points):
            metrana.log("value", value_of(index, step), step=step, labels=labels)
            if step % 256 == 255:
                progress.value = step + 1
                ahead = started + duration * step / points - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    except BaseException as error:
        # log() raised: the points before it were accepted; the harness reports the crash
        if not index % 2:
            progress.value = step
        pid.value = -os.getpid()
        print(f"\nwriter {index} failed after {progress.value} points: {error!r}", file=sys.stderr,
              flush=True)  # fmt: skip
        raise
    progress.value = points


def forked_writer(index: int, points: int, progress: Any, pid: Any, duration: float) -> None:
    import metrana

    _log_points(index, points, progress, pid, duration)
    metrana.close(close_strategy="CompleteAll", timeout=3600)


def spawned_writer(
    index: int,
    points: int,
    progress: Any,
    pid: Any,
    forked: list[tuple[int, Any, Any]],
    duration: float,
) -> None:
    """A spawned "rank": calls init(), logs, and forks its share of the writers."""
    import metrana

    metrana.init(
        workspace_name=WORKSPACE,
        project_name=PROJECT,
        run_name=RUN,
        backpressure_strategy="Block",
        close_strategy="CompleteAll",
    )
    fork = mp.get_context("fork")
    children = [
        fork.Process(target=forked_writer, args=(i, points, p, child_pid, duration))
        for i, p, child_pid in forked
    ]
    for child in children:
        child.start()
    _log_points(index, points, progress, pid, duration)
    for child in children:
        child.join()
    metrana.close(timeout=3600)
