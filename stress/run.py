"""Stress harness: writers log known points while faults are injected; then every point that
reached a ring must be stored exactly once.

``python -m stress run`` starts a server (``metrana serve`` in its own process, behind a
fault-injecting proxy) or uses the embedded store, then N writer processes (half spawned,
half forked from a parent that called ``init()``) that each log M points of a known series.
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
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import psutil

from ._serve import SERVING, start_serve

RUN = "stress"
PROJECT = "stress"
WORKSPACE = "default"


def value_of(writer: int, step: int) -> float:
    return writer * 1_000_000_000 + step + 0.5


# -- the writers ----------------------------------------------------------------------------


def _log_points(index: int, points: int, progress: Any, pid: Any, duration: float) -> None:
    """Log ``points`` known points, spread evenly over ``duration`` seconds (0: flat out)."""
    import metrana

    pid.value = os.getpid()
    labels = {"writer": str(index)}
    started = time.monotonic()
    step = 0
    try:
        for step in range(points):
            metrana.log("value", value_of(index, step), step=step, labels=labels)
            if step % 256 == 255:
                progress.value = step + 1
                ahead = started + duration * step / points - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    except BaseException as error:
        # log() raised: the points before it were accepted; the harness reports the crash
        progress.value = step
        pid.value = -os.getpid()
        print(f"\nwriter {index} failed at step {step}: {error!r}", file=sys.stderr, flush=True)
        raise
    progress.value = points


def _forked_writer(index: int, points: int, progress: Any, pid: Any, duration: float) -> None:
    import metrana

    _log_points(index, points, progress, pid, duration)
    metrana.close(close_strategy="CompleteAll", timeout=3600)


def _spawned_writer(
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
        fork.Process(target=_forked_writer, args=(i, points, p, child_pid, duration))
        for i, p, child_pid in forked
    ]
    for child in children:
        child.start()
    _log_points(index, points, progress, pid, duration)
    for child in children:
        child.join()
    metrana.close(timeout=3600)


# -- the server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``metrana serve`` in its own process, restartable on the same port."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = _free_port()
        self.process: subprocess.Popen[str] | None = None
        self.api_key = ""
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process, api_key, line = start_serve(self.store, self.port)
        self.api_key = api_key or self.api_key  # a restart on the same store prints no key
        if not line.startswith(SERVING):
            self.stop()
            raise RuntimeError(f"metrana serve did not start: {line!r}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self, down: float) -> None:
        self.stop()
        time.sleep(down)
        for _ in range(50):  # the port may linger a moment
            try:
                self.start()
                break
            except RuntimeError:
                time.sleep(0.1)
        self.restarts += 1


# -- faults -------------------------------------------------------------------------------


@dataclass
class FaultLog:
    counts: Counter[str] = field(default_factory=Counter)
    killed_writers: set[int] = field(default_factory=set)


def _live_dispatchers(session_root: Path) -> list[int]:
    from metrana.session import live_dispatchers

    return live_dispatchers(session_root)


def _inject(
    args: argparse.Namespace,
    stop: threading.Event,
    log: FaultLog,
    session_root: Path,
    pids: list[Any],
    progress: list[Any],
    server: ServerProcess | None,
    proxy: Any,
) -> None:
    from metrana.testing import Fault

    rng = random.Random(args.seed)
    # Faults start once every writer has joined: init() fails by design when the server is
    # unreachable; what is tested here is delivery after that.
    while not stop.is_set() and not all(pid.value for pid in pids):
        stop.wait(0.05)
    kinds = ["kill_dispatcher"] * 4 + ["kill_writer"]
    if server is not None:
        kinds += ["restart_server", "status_503", "stall", "drop", "drop_response"]
    while not stop.wait(rng.uniform(args.fault_interval / 2, args.fault_interval * 1.5)):
        kind = rng.choice(kinds)
        if kind == "kill_dispatcher":
            for pid in _live_dispatchers(session_root):
                with _suppress():
                    os.kill(pid, signal.SIGKILL)
                    log.counts[kind] += 1
        elif kind == "kill_writer":
            if len(log.killed_writers) >= args.max_writer_kills:
                continue
            # a writer part way through (its points are reaching its ring), not one that
            # already finished: killing that one would prove nothing
            candidates = [
                i for i in range(args.writers)
                if i not in log.killed_writers and pids[i].value > 0
                and 0 < progress[i].value < args.points // 2
            ]  # fmt: skip
            if not candidates:
                continue
            index = rng.choice(candidates)
            with _suppress():
                os.kill(pids[index].value, signal.SIGKILL)
                log.killed_writers.add(index)
                log.counts[kind] += 1
        elif kind == "restart_server" and server is not None:
            server.restart(rng.uniform(0.2, 2.0))
            log.counts[kind] += 1
        elif proxy is not None:
            fault = {
                "status_503": Fault.status_code(503, times=rng.randint(2, 20)),
                "stall": Fault.stall(),
                "drop": Fault.drop(times=rng.randint(1, 5)),
                "drop_response": Fault.drop_response(times=rng.randint(1, 5)),
            }[kind]
            proxy.set_fault(fault)
            if kind == "stall":
                stop.wait(rng.uniform(0.5, 3.0))
                proxy.set_fault(None)
            log.counts[kind] += 1


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (ProcessLookupError, psutil.Error))  # type: ignore[arg-type]


# -- verification ---------------------------------------------------------------------------


def _stored_embedded(home: Path) -> dict[int, list[tuple[int, float]]]:
    from metrana.storage import SqliteStore

    store = SqliteStore(home / "store.sqlite")
    run = store.find_run(WORKSPACE, PROJECT, RUN)
    out: dict[int, list[tuple[int, float]]] = {}
    if run is not None:
        for point in store.points(run.experiment_id):
            out.setdefault(int(point.labels["writer"]), []).append((point.step, point.value))
    store.close()
    return out


def _stored_http(url: str, api_key: str) -> dict[int, list[tuple[int, float]]]:
    from metrana.api import Client

    out: dict[int, list[tuple[int, float]]] = {}
    with Client(api_key, host=url, timeout=120) as client:
        for experiment in client.list_experiments():
            if experiment.name != RUN:
                continue
            for series in client.list_metrics(experiment.id, metric_name="value").series:
                points = out.setdefault(int(series.labels["writer"]), [])
                points.extend((p.step, float(p.value)) for p in series.points)
    return out


def _verify(
    args: argparse.Namespace,
    stored: dict[int, list[tuple[int, float]]],
    progress: list[Any],
    killed: set[int],
    crashed: set[int],
) -> tuple[bool, dict[str, int]]:
    figures = Counter[str]()
    ok = not crashed  # a log() that raised is a failure of its own, whatever was stored
    figures["crashed"] = len(crashed)
    for index in range(args.writers):
        points = sorted(stored.get(index, []))
        steps = [step for step, _ in points]
        figures["stored"] += len(points)
        figures["duplicates"] += len(steps) - len(set(steps))
        wrong = sum(1 for step, value in points if value != value_of(index, step))
        figures["wrong"] += wrong
        if index in killed or index in crashed:
            reached = progress[index].value
            figures["killed_reached"] += reached
            prefix = steps == list(range(len(steps)))
            if not prefix or len(steps) < reached:
                ok = False
                figures["missing"] += max(0, reached - len(steps)) + (0 if prefix else 1)
        else:
            figures["logged"] += args.points
            if steps != list(range(args.points)):
                ok = False
                figures["missing"] += args.points - len(set(steps) & set(range(args.points)))
        if wrong:
            ok = False
    ok = ok and figures["duplicates"] == 0
    return ok, dict(figures)


# -- the run ------------------------------------------------------------------------------


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
            target=_spawned_writer,
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
        target=_inject,
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
                _kill_tree(process.pid)
            process.join(10)
        # the last dispatcher delivers what is left (spool included) before exiting
        _wait_dispatchers(session_root, 300)
        elapsed = time.monotonic() - started
        if server is not None:
            stored = _stored_http(server.url, server.api_key)
        else:
            stored = _stored_embedded(workdir / "home")
        killed = set(faults.killed_writers)
        crashed = {i for i in range(args.writers) if pids[i].value < 0}
        ok, figures = _verify(args, stored, progress, killed, crashed)
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
        for pid in _live_dispatchers(session_root):
            _kill_tree(pid)
        if proxy is not None:
            proxy.close()
        if server is not None:
            server.stop()
        shutil.rmtree(session_root, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_dispatchers(session_root: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _live_dispatchers(session_root) and time.monotonic() < deadline:
        time.sleep(0.2)


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with _suppress():
            process.kill()
    psutil.wait_procs(processes, timeout=10)
