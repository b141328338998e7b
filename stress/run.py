"""Stress harness: writers log known points while faults are injected; then every point that
reached a ring must be stored exactly once.

``python -m stress run`` starts a server (``metrana serve`` in its own process, behind a
fault-injecting proxy) or uses the embedded store, then N writer processes (half spawned,
half forked from a parent that called ``init()``) that each log M points of a known series:
the even ones one ``log()`` per point, the odd ones in bulk (arrays and lists of 200 values, one
ring record each).
A fault thread picks, on a schedule: SIGKILL the dispatcher, SIGKILL a writer, restart the
server, a burst of 503s, a stall, dropped connections. At the end the harness reads every
series back (through the REST client, or the store) and prints one verdict line.

A killed writer cannot say which of its points reached its ring; it publishes a count after
each ``log()`` returned, so its stored steps must be exactly ``0..n-1`` for some n at least
that count: a gap, a wrong value or a shortfall is a loss.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
import uuid
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from ._faults import FaultLog, ServerProcess, inject, kill_tree, live_dispatchers, wait_dispatchers
from ._verify import stored_embedded, stored_http, verify
from ._writers import spawned_writer


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.writers, args.points, args.fault_interval, args.duration = 4, 60_000, 0.5, 8.0
    workdir = Path(tempfile.mkdtemp(prefix="metrana-stress-"))
    # the caller's session root if it set one (a test's, which its fixtures clean up)
    session_root = Path(
        os.environ.get("METRANA_SESSION_ROOT") or f"/dev/shm/metrana-stress-{uuid.uuid4().hex[:8]}"
    )
    os.environ["METRANA_HOME"] = str(workdir / "home")
    os.environ["METRANA_SESSION_ROOT"] = str(session_root)
    os.environ["METRANA_ORCHESTRATION_ID"] = uuid.uuid4().hex
    os.environ["METRANA_LOG_LEVEL"] = "Error"
    server: ServerProcess | None = None
    proxy: Any = None
    if args.target == "server":
        from metrana.testing import FaultProxy

        server = ServerProcess(workdir / "server.sqlite")
        server.start()
        proxy = FaultProxy(server.url)
        os.environ["METRANA_INGESTION_URL"] = proxy.url
        os.environ["METRANA_API_KEY"] = server.api_key
        os.environ.setdefault("METRANA_RETRY_MAX_ELAPSED", "5")

    ranks = max(1, args.writers // 2)
    shared = mp.get_context("spawn")
    progress: list[Synchronized[int]] = [shared.Value("q", 0) for _ in range(args.writers)]
    pids: list[Synchronized[int]] = [shared.Value("q", 0) for _ in range(args.writers)]
    # writers 0..ranks-1 are spawned ranks; the others are forked, spread over the ranks
    forked: dict[int, list[tuple[int, Any, Any]]] = {r: [] for r in range(ranks)}
    for index in range(ranks, args.writers):
        forked[index % ranks].append((index, progress[index], pids[index]))
    spawn = mp.get_context("spawn")
    started = time.monotonic()
    processes = [
        spawn.Process(
            target=spawned_writer,
            args=(r, args.points, progress[r], pids[r], forked[r], args.duration),
        )
        for r in range(ranks)
    ]
    print(
        f"stress: {args.writers} writers ({ranks} spawned, {args.writers - ranks} forked) x "
        f"{args.points:,} points over {args.duration:.0f} s -> {args.target}; faults every "
        f"~{args.fault_interval} s",
        flush=True,
    )
    for process in processes:
        process.start()
    stop = threading.Event()
    faults = FaultLog()
    injector = threading.Thread(
        target=inject,
        args=(args, stop, faults, session_root, pids, progress, server, proxy),
        daemon=True,
    )
    injector.start()
    try:
        deadline = time.monotonic() + args.timeout
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            done = sum(p.value for p in progress)
            total = args.writers * args.points
            print(f"\r  logged {done:>12,}/{total:,}  faults {sum(faults.counts.values()):<6}",
                  end="", flush=True)  # fmt: skip
            time.sleep(1.0)
        print(flush=True)
        stop.set()
        injector.join(30)
        if proxy is not None:
            proxy.set_fault(None)
        timed_out = any(p.is_alive() for p in processes)
        for process in processes:
            if process.is_alive():
                kill_tree(process.pid)
            process.join(10)
        # the last dispatcher delivers what is left (spool included) before exiting
        wait_dispatchers(session_root, 300)
        elapsed = time.monotonic() - started
        if server is not None:
            stored = stored_http(server.url, server.api_key)
        else:
            stored = stored_embedded(workdir / "home")
        killed = set(faults.killed_writers)
        crashed = {i for i in range(args.writers) if pids[i].value < 0}
        ok, figures = verify(args, stored, progress, killed, crashed)
        ok = ok and not timed_out
        verdict = "exactly once" if ok else "FAILED"
        fault_text = ", ".join(f"{n} {k}" for k, n in sorted(faults.counts.items())) or "none"
        print(
            f"VERDICT {verdict}: {figures.get('stored', 0):,} points stored of "
            f"{figures.get('logged', 0):,} logged by surviving writers + "
            f"{figures.get('killed_reached', 0):,} known to have reached the rings of "
            f"{len(killed)} killed writers; {figures.get('crashed', 0)} writers crashed; "
            f"missing {figures.get('missing', 0)}, duplicates "
            f"{figures.get('duplicates', 0)}, wrong values {figures.get('wrong', 0)}; "
            f"faults: {fault_text}; {elapsed:.0f} s" + ("; TIMED OUT" if timed_out else ""),
            flush=True,
        )
        return 0 if ok else 1
    finally:
        stop.set()
        for pid in live_dispatchers(session_root):
            kill_tree(pid)
        if proxy is not None:
            proxy.close()
        if server is not None:
            server.stop()
        shutil.rmtree(session_root, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
