"""The processes a measurement watches or starts: sampling CPU and memory, ``metrana serve``,
the session's dispatcher, spawned children, and the stored count."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from .._serve import SERVING, start_serve


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The memory lines of /proc/PID/status, in bytes."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("Vm", "Rss")):
                    key, _, rest = line.partition(":")
                    parts = rest.split()
                    if parts and parts[-1] == "kB":
                        out[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return out


class Sampler:
    """CPU time and RSS of one process, sampled in a thread until stopped or the process ends."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.pid = pid
        self.interval = interval
        self.cpu = 0.0
        self.rss = 0
        self.peak_rss = 0
        self.peak_shmem = 0
        self.peak_own = 0
        self.samples = 0
        self._stop = threading.Event()
        self.sample()
        self.start_rss = self.rss
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def sample(self) -> bool:
        """Take one sample; False once the process is gone."""
        try:
            times = self.process.cpu_times()
            rss = self.process.memory_info().rss
        except psutil.Error:
            return False
        self.cpu = times.user + times.system
        self.rss = rss
        status = proc_status(self.pid)
        self.peak_rss = max(self.peak_rss, rss, status.get("VmHWM", 0))
        # RssShmem: the writers' rings mapped by the dispatcher (shared, counted in the
        # writers too); RssAnon + RssFile: the process's own memory
        self.peak_shmem = max(self.peak_shmem, status.get("RssShmem", 0))
        own = status.get("RssAnon", 0) + status.get("RssFile", 0)
        self.peak_own = max(self.peak_own, own)
        self.samples += 1
        return True

    def cpu_now(self) -> float:
        """The process's CPU-seconds (user + system) as of now."""
        self.sample()
        return self.cpu

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.sample():
                return

    def stop(self) -> None:
        """A last sample, then the sampling thread ends."""
        self.sample()
        self._stop.set()
        self._thread.join(5)


class Server:
    """``metrana serve --port 0`` in its own process; its URL and first API key."""

    def __init__(self, store: Path | str) -> None:
        self.store = store
        self.process, self.api_key, line = start_serve(store, 0)
        if not line.startswith(SERVING):
            self.stop()
            raise RuntimeError(f"metrana serve did not start: {line!r}")
        self.url = line.split()[3]
        self.pid = self.process.pid

    def stop(self) -> None:
        """Terminate the server (resumed first, in case a measurement left it stopped)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _live_dispatcher(info_path: Path) -> psutil.Process | None:
    """The process a dispatcher.json names, if it still runs (and its pid was not reused)."""
    try:
        info = json.loads(info_path.read_bytes())
        process = psutil.Process(info["pid"])
        if abs(int(process.create_time() * 1000) - info["create_ms"]) <= 1:
            return process
    except (OSError, ValueError, KeyError, psutil.Error):
        pass
    return None


def find_dispatcher(session_root: Path, timeout: float = 10.0) -> psutil.Process | None:
    """The live dispatcher of the (only) session under ``session_root``, from dispatcher.json."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info_path in session_root.glob("*/dispatcher.json"):
            process = _live_dispatcher(info_path)
            if process is not None:
                return process
        time.sleep(0.01)
    return None


def kill_dispatchers(shm: Path) -> None:
    """SIGKILL every live dispatcher of the session roots under ``shm``."""
    for info_path in shm.glob("*/*/dispatcher.json"):
        process = _live_dispatcher(info_path)
        if process is not None:
            with contextlib.suppress(psutil.Error):
                process.kill()


def cpu_sum(processes: list[psutil.Process]) -> float:
    """The CPU-seconds (user + system) of ``processes`` together; the ended ones count 0."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def stored_points(store: Path | str, run_name: str) -> int:
    """Points stored for ``run_name``, through the public CLI (``metrana runs --json``)."""
    result = subprocess.run(
        [sys.executable, "-m", "metrana.cli", "runs", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        return -1
    for run in json.loads(result.stdout):
        if run.get("run_name") == run_name:
            return int(run.get("points", 0))
    return 0


def wait_count(sem: Any, n: int, processes: list[Any], timeout: float, what: str) -> None:
    """Acquire ``sem`` n times; fail early if one of ``processes`` died with an error."""
    deadline = time.monotonic() + timeout
    got = 0
    while got < n:
        if sem.acquire(timeout=0.2):
            got += 1
            continue
        failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
        if failed:
            raise RuntimeError(f"{what}: a process exited with {failed[0]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: only {got} of {n} after {timeout:.0f} s")


def join_or_kill(process: Any, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for a multiprocessing ``process`` to end, then kill it."""
    process.join(timeout)
    if process.is_alive():
        process.kill()


def ask_child(target: Callable[..., None], args: tuple[Any, ...], timeout: float, what: str) -> Any:
    """Spawn ``target(conn, *args)`` and answer the one message it sends on ``conn``; a child
    that sends nothing within ``timeout`` seconds is killed."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=target, args=(child, *args))
    process.start()
    if not parent.poll(timeout):
        process.kill()
        raise RuntimeError(f"{what}: no answer from the child")
    answer = parent.recv()
    process.join(60)
    return answer
