"""The stress faults and the processes they strike: the restartable server, the fault
thread, and the dispatchers and process trees the harness waits for or kills."""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ._serve import SERVING, start_serve

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


def live_dispatchers(session_root: Path) -> list[int]:
    from metrana.session import live_dispatchers

    return live_dispatchers(session_root)


def inject(
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
            for pid in live_dispatchers(session_root):
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


# -- the processes left at the end ----------------------------------------------------------


def wait_dispatchers(session_root: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while live_dispatchers(session_root) and time.monotonic() < deadline:
        time.sleep(0.2)


def kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        with _suppress():
            process.kill()
    psutil.wait_procs(processes, timeout=10)
