"""System metrics: the dispatcher samples every writer process and the host with psutil.

Series (scale ML_STEP, step = the sample's Unix time in seconds, so that a restarted
dispatcher continues them without colliding): per writer, labelled ``pid`` and ``rank``
(when the writer had ``RANK``/``LOCAL_RANK``): ``system/cpu_percent``, ``system/rss_bytes``,
``system/threads``, ``system/open_files``; per host, labelled ``host``:
``system/host_memory_used_bytes``, ``system/host_memory_percent``, ``system/load_1m``.
They are best effort: a failed or abandoned batch gives its samples back (``give_back``), but the
samples held by a dispatcher that exits or is killed, or in a batch rejected for good, are lost.
"""

from __future__ import annotations

import os
import socket
import time

import psutil

from .._identity import DEFAULT_SCALE, SeriesColumns, SeriesKey, series_key


def _key(name: str, labels: dict[str, str]) -> SeriesKey:
    return series_key(f"system/{name}", DEFAULT_SCALE, labels)


class SystemSampler:
    """Samples processes and the host every ``interval`` seconds, and keeps the samples until
    a batch takes them (they are in no ring: a batch that is abandoned gives them back)."""

    def __init__(self, interval: float, host: str = "") -> None:
        self.pending: dict[SeriesKey, SeriesColumns] = {}
        self.interval = max(0.1, interval)
        self.host = host or socket.gethostname()
        self._processes: dict[tuple[int, int], psutil.Process] = {}
        self._next = 0.0
        self._last_step = -1

    def due(self, now: float) -> bool:
        return now >= self._next

    def take(self) -> dict[SeriesKey, SeriesColumns]:
        """The samples not yet sent, for a batch."""
        points, self.pending = self.pending, {}
        return points

    def give_back(self, points: dict[SeriesKey, SeriesColumns]) -> None:
        """Put the samples of an abandoned batch back, before those taken since."""
        for key, series in points.items():
            later = self.pending.get(key)
            if later is not None:
                series = SeriesColumns(
                    series.steps + later.steps,
                    series.values + later.values,
                    series.timestamps + later.timestamps,
                )
            self.pending[key] = series

    def sample(self, writers: list[tuple[int, int, int]]) -> int:
        """Add one sample of each writer ``(pid, create_ms, rank or -1)`` and of the host to
        the pending samples; answer the number of points added."""
        into = self.pending
        self._next = time.monotonic() + self.interval
        now_ns = time.time_ns()
        step = max(now_ns // 1_000_000_000, self._last_step + 1)
        self._last_step = step
        points = 0

        def add(name: str, labels: dict[str, str], value: float | int) -> None:
            nonlocal points
            columns = into.setdefault(_key(name, labels), SeriesColumns([], [], []))
            columns.steps.append(step)
            columns.values.append(value)
            columns.timestamps.append(now_ns)
            points += 1

        alive = set()
        for pid, create_ms, rank in writers:
            alive.add((pid, create_ms))
            process = self._processes.get((pid, create_ms))
            try:
                if process is None:
                    process = self._processes[(pid, create_ms)] = psutil.Process(pid)
                    process.cpu_percent(None)  # the first call only starts the measurement
                    continue
                with process.oneshot():
                    labels = {"pid": str(pid)}
                    if rank >= 0:
                        labels["rank"] = str(rank)
                    add("cpu_percent", labels, process.cpu_percent(None))
                    add("rss_bytes", labels, process.memory_info().rss)
                    add("threads", labels, process.num_threads())
                    add("open_files", labels, process.num_fds())
            except (psutil.Error, OSError):
                self._processes.pop((pid, create_ms), None)
        for key in list(self._processes):
            if key not in alive:
                del self._processes[key]
        memory = psutil.virtual_memory()
        host = {"host": self.host}
        add("host_memory_used_bytes", host, memory.used)
        add("host_memory_percent", host, memory.percent)
        add("load_1m", host, os.getloadavg()[0])
        return points
