"""``end_to_end``: points/s from N spawned writers until every point is committed, into the
embedded store or ``metrana serve``, beside ``multiprocessing.Queue``; the dispatcher's and
the server's CPU and memory are sampled on the way."""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import psutil

from .common import MIB, end_to_end_what, init_run, unique_run_name
from .context import Bench
from .dispatcher import Spy, add_cpu_time
from .idle_rings import idle_writer_processes, start_idle_rings
from .processes import (
    Sampler,
    cpu_sum,
    find_dispatcher,
    join_or_kill,
    stored_points,
    wait_count,
)


def _writer_process(
    run_name: str, index: int, points: int, ready: Any, go: Any, done: Any, array: int = 0
) -> None:
    """Log ``points`` points flat out: one scalar call each, or (``array``) float64 arrays of
    ``array`` values, one call each."""
    import metrana

    init_run(run_name, backpressure_strategy="Block", close_strategy="CompleteAll")
    log = metrana.log
    name = f"loss_{index}"  # one series per writer: the same (series, step) is stored once
    values = None
    if array:
        import numpy

        values = numpy.linspace(0.0, 1.0, array)
    ready.release()
    go.wait()
    if values is not None:
        for first in range(0, points, array):
            log(name, values, step=first)
    else:
        for i in range(points):
            log(name, 0.5, step=i)
    metrana.close(timeout=900)
    done.release()


def _dispatcher_figures(sampler: Sampler, cpu_s: float, points: int) -> dict[str, Any]:
    return {
        "dispatcher_cpu_s": round(cpu_s, 3),
        "dispatcher_cpu_s_per_million": round(cpu_s / points * 1e6, 3),
        "dispatcher_rss_start_mib": round(sampler.start_rss / MIB, 1),
        "dispatcher_peak_rss_mib": round(sampler.peak_rss / MIB, 1),
        "dispatcher_peak_rss_shmem_mib": round(sampler.peak_shmem / MIB, 1),
        "dispatcher_peak_rss_own_mib": round(sampler.peak_own / MIB, 1),
    }


def _server_figures(sampler: Sampler, cpu_s: float, points: int) -> dict[str, Any]:
    return {
        "server_rss_idle_mib": round(sampler.start_rss / MIB, 1),
        "server_peak_rss_mib": round(sampler.peak_rss / MIB, 1),
        "server_cpu_s_per_million": round(cpu_s / points * 1e6, 3),
    }


def bench_throughput(
    bench: Bench,
    writers: int,
    points: int,
    *,
    http: bool = False,
    idle: int = 0,
    profile: bool = False,
    label: str = "",
    array: int = 0,
    server: Any = None,
) -> dict[str, Any]:
    """N spawned writers log ``points`` each, flat out (scalar calls, or arrays of ``array``
    values), from one start signal until the last ``close(CompleteAll)`` returned: every point
    acknowledged by the target. ``server`` (with ``url``, ``api_key``, ``pid`` and ``store``)
    replaces the bench's ``metrana serve`` over SQLite."""
    http = http or server is not None
    if server is None and http:
        server = bench.http_server()
    tag = "http" if http else "embedded"
    root = bench.fresh(tag, url=server.url if server else None,
                       api_key=server.api_key if server else None)  # fmt: skip
    run_name = unique_run_name(tag)
    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Semaphore(0), ctx.Event(), ctx.Semaphore(0)
    release = ctx.Event()
    host = None
    processes: list[Any] = []
    sampler = server_sampler = None
    spy: Spy | None = None
    profile_result: dict[str, Any] | None = None
    try:
        if idle:
            host = start_idle_rings(ctx, idle, run_name, ready, release)
        processes = [
            ctx.Process(target=_writer_process, args=(run_name, k, points, ready, go, done, array))
            for k in range(writers)
        ]
        for process in processes:
            process.start()
        wait_count(ready, writers, processes, 600, "writers starting")
        dispatcher = find_dispatcher(root)
        if dispatcher is not None:
            sampler = Sampler(dispatcher.pid)
            if profile:
                spy = Spy(dispatcher.pid, bench.work / f"profile-{bench.count}.txt")
        if server is not None:
            server_sampler = Sampler(server.pid)
        cpu0 = sampler.cpu_now() if sampler else 0.0
        server_cpu0 = server_sampler.cpu_now() if server_sampler else 0.0
        idle_procs: list[psutil.Process] = []
        if host is not None:
            idle_procs = idle_writer_processes(host.pid, dispatcher)
        idle_cpu0 = cpu_sum(idle_procs)
        started = time.monotonic()
        go.set()
        wait_count(done, writers, processes, 1800, "writers finishing")
        elapsed = time.monotonic() - started
        cpu1 = sampler.cpu_now() if sampler else 0.0
        server_cpu1 = server_sampler.cpu_now() if server_sampler else 0.0
        idle_cpu1 = cpu_sum(idle_procs)
        total = writers * points
        if spy is not None:
            profile_result = spy.stop(total)
            spy = None
            if profile_result.get("top_self") and sampler is not None:
                add_cpu_time(profile_result, (cpu1 - cpu0) / total * 1e6)
    finally:
        release.set()
        go.set()
        if spy is not None:
            spy.stop(0)
        for process in [*processes, *([host] if host else [])]:
            join_or_kill(process, 120)
        if sampler is not None:
            sampler.stop()
        if server_sampler is not None:
            server_sampler.stop()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    stored = stored_points(server.store if server else bench.store, run_name)
    result: dict[str, Any] = {
        "figure": "end_to_end",
        "what": end_to_end_what(writers, http, array) + label,
        "writers": writers,
        "idle_rings": idle,
        "points": total,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "points_per_s": round(total / elapsed),
        "ok": stored == total and not failed,
    }
    if sampler is not None:
        result.update(_dispatcher_figures(sampler, cpu1 - cpu0, total))
    if idle_procs:
        # the idle writers' own CPU (their watchdog threads) during the timed run
        result["idle_processes_cpu_percent"] = round((idle_cpu1 - idle_cpu0) / elapsed * 100, 1)
    if server_sampler is not None:
        result.update(_server_figures(server_sampler, server_cpu1 - server_cpu0, total))
    if profile_result is not None:
        result["profile"] = profile_result
    return result


def _queue_producer(queue: Any, points: int, ready: Any, go: Any) -> None:
    ready.release()
    go.wait()
    for i in range(points):
        queue.put((0, 1, i, 0.5, 1_700_000_000_000_000_000))
    queue.put(None)


def bench_queue_baseline(writers: int, points: int) -> dict[str, Any]:
    """The baseline of the end-to-end rows: ``multiprocessing.Queue.put`` from N producers
    to one consumer, points/s."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue(maxsize=100_000)
    ready, go = ctx.Semaphore(0), ctx.Event()
    processes = [
        ctx.Process(target=_queue_producer, args=(queue, points, ready, go)) for _ in range(writers)
    ]
    for p in processes:
        p.start()
    wait_count(ready, writers, processes, 300, "queue producers")
    started = time.perf_counter()
    go.set()
    done = received = 0
    while done < writers:
        item = queue.get()
        if item is None:
            done += 1
        else:
            received += 1
    elapsed = time.perf_counter() - started
    for p in processes:
        p.join(60)
    return {
        "figure": "end_to_end",
        "what": f"baseline: multiprocessing.Queue.put, {writers} producers -> 1 consumer",
        "writers": writers,
        "points": received,
        "seconds": round(elapsed, 3),
        "points_per_s": round(received / elapsed),
    }
