"""Idle rings: writer processes that join the session, log nothing and wait."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from typing import Any

import psutil

from .common import init_run
from .processes import wait_count


def _idle_child(run_name: str, ready: Any, release: Any) -> None:
    import metrana

    init_run(run_name)
    ready.release()
    release.wait()
    metrana.close(close_strategy="Immediate", timeout=30)


def _idle_host(rings: int, run_name: str, ready: Any, release: Any) -> None:
    """One spawned process that joins the session, then forks the others: ``rings`` idle
    writer processes, each with its own (empty) ring, that init() and wait."""
    import metrana

    init_run(run_name)
    fork = mp.get_context("fork")
    children = [
        fork.Process(target=_idle_child, args=(run_name, ready, release)) for _ in range(rings - 1)
    ]
    for child in children:
        child.start()
    ready.release()
    release.wait()
    for child in children:
        child.join(60)
    metrana.close(close_strategy="Immediate", timeout=30)


def start_idle_rings(ctx: Any, rings: int, run_name: str, ready: Any, release: Any) -> Any:
    """``rings`` idle writer processes in ``run_name``, each with a ring; answers their host
    process once all of them released ``ready``. They close when ``release`` is set."""
    host = ctx.Process(target=_idle_host, args=(rings, run_name, ready, release))
    host.start()
    wait_count(ready, rings, [host], 600, "idle rings")
    return host


def idle_writer_processes(host_pid: int, dispatcher: psutil.Process | None) -> list[psutil.Process]:
    """The idle writers: their host and everything under it but the dispatcher (the first
    idle process started it, so it is the host's child without being an idle writer)."""
    with contextlib.suppress(psutil.Error):
        top = psutil.Process(host_pid)
        return [
            p
            for p in [top, *top.children(recursive=True)]
            if dispatcher is None or p.pid != dispatcher.pid
        ]
    return []
