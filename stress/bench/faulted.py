"""``log_latency_faulted``: log() while the HTTP target is healthy, stalled or unreachable."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from typing import Any

import psutil

from .common import init_run, median_quantiles, unique_run_name
from .context import Bench
from .processes import find_dispatcher, join_or_kill
from .timing import time_log_calls

STALL_KINDS = ("healthy", "stalled", "unreachable")
_WHAT = {
    "healthy": "log() with the HTTP target healthy",
    "stalled": "log() while the target is stalled (server SIGSTOPped)",
    "unreachable": "log() while the target is unreachable (connections refused)",
}


def _fault_child(conn: Any, calls: int, repeat: int) -> None:
    import metrana

    init_run(unique_run_name("faulted"), close_strategy="Immediate")
    log = metrana.log
    healthy = [time_log_calls(log, calls, start=1_000 + k * calls) for k in range(repeat)]
    metrana.flush(timeout=120)
    conn.send(healthy)
    conn.recv()  # the parent has stalled or cut the target
    time.sleep(0.1)
    step = 1_000 + repeat * calls
    faulted = [time_log_calls(log, calls, start=step + k * calls, warmup=0) for k in range(repeat)]
    stats = metrana.stats().process
    conn.send((faulted, stats.dropped_queue_full, stats.pending))
    conn.recv()  # the fault is lifted
    metrana.close(timeout=30)


def bench_faulted(bench: Bench, calls: int, repeat: int) -> list[dict[str, Any]]:
    """log() in a process whose HTTP target stops answering: the ring absorbs the points
    (``calls * repeat`` stays below the default ring's 100,000 events)."""
    from metrana.testing import Fault, FaultProxy

    server = bench.http_server()
    ctx = mp.get_context("spawn")
    results: dict[str, list[dict[str, float]]] = {"healthy": []}
    notes: dict[str, dict[str, Any]] = {}
    for kind in ("stalled", "unreachable"):
        proxy = FaultProxy(server.url) if kind == "unreachable" else None
        root = bench.fresh(kind, url=proxy.url if proxy else server.url, api_key=server.api_key)
        os.environ["METRANA_RETRY_MAX_ELAPSED"] = "5"
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_fault_child, args=(child, calls, repeat))
        process.start()
        stopped = False
        try:
            if not parent.poll(120):
                raise RuntimeError(f"log() under fault ({kind}): the child did not start")
            results["healthy"] += parent.recv()
            dispatcher = find_dispatcher(root)
            cpu0 = wall0 = 0.0
            if dispatcher is not None:
                cpu0, wall0 = sum(dispatcher.cpu_times()[:2]), time.monotonic()
            if proxy is not None:
                proxy.set_fault(Fault.refuse())
            else:
                os.kill(server.pid, signal.SIGSTOP)
                stopped = True
            parent.send("go")
            if not parent.poll(120):
                raise RuntimeError(f"log() under fault ({kind}): no answer")
            faulted, dropped, pending = parent.recv()
            results[kind] = faulted
            busy = None
            if dispatcher is not None:
                with contextlib.suppress(psutil.Error):
                    cpu = sum(dispatcher.cpu_times()[:2]) - cpu0
                    busy = round(cpu / (time.monotonic() - wall0) * 100, 1)
            notes[kind] = {
                "dropped": dropped,
                "pending_while_faulted": pending,
                "dispatcher_cpu_percent_while_faulted": busy,
            }
        finally:
            if stopped:
                os.kill(server.pid, signal.SIGCONT)
            if proxy is not None:
                proxy.set_fault(None)
            try:
                parent.send("done")
            except OSError:
                pass
            join_or_kill(process, 60)
            if proxy is not None:
                proxy.close()
    return [
        {
            "figure": "log_latency_faulted",
            "what": _WHAT[kind],
            **median_quantiles(results[kind]),
            **notes.get(kind, {}),
        }
        for kind in STALL_KINDS
        if results.get(kind)
    ]
