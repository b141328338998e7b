"""A delivery target that keeps what it is given in memory, for tests of the logging path."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any

from .._config import Config
from .._enums import ResumeStrategy
from .._errors import MetranaRunExistsError
from .._identity import SeriesKey
from ..api._types import ExperimentStatusError
from ..dispatcher.targets import Batch
from ..storage import RunHandle, WriteResult

__all__ = ["CapturingTarget"]


class CapturingTarget:
    """A :class:`~metrana.dispatcher.targets.Target` that stores points in memory with the
    store's semantics: each (series, step) once, first write wins, duplicates counted.

    Hand it to :class:`InProcessSession`; then read :attr:`points` (``{series key: {step:
    value}}``), :meth:`values`, :attr:`status`, :attr:`metadata` and :attr:`batches`.
    :meth:`fail_next` makes the next batches fail with the exception given (a
    ``DeliveryFailure`` is retried or spooled by the dispatcher, a ``RejectedBatch`` is dropped
    and counted)."""

    max_inflight = 1
    offline = False

    def __init__(self) -> None:
        self.points: dict[SeriesKey, dict[int, float | int]] = {}
        self.batches: list[Batch] = []
        self.status: str | None = None
        self.metadata: dict[str, Any] = {}  # init(config=...), merged at each opening
        self.opened = 0
        self.owner: str | None = None  # the orchestration id that created the run
        self._failures: deque[Exception] = deque()
        self._lock = threading.Lock()

    def fail_next(self, error: Exception, times: int = 1) -> None:
        """Fail the next ``times`` batches with ``error``."""
        with self._lock:
            self._failures.extend([error] * times)

    def open_run(self, config: Config) -> RunHandle:
        with self._lock:
            created = self.opened == 0
            if (
                not created
                and config.orchestration_id != self.owner
                and config.resume_strategy is ResumeStrategy.NEVER
            ):
                raise MetranaRunExistsError(
                    f"run {config.run.run_name!r} already exists (created by another job)"
                )
            if created:
                self.owner = config.orchestration_id
            self.metadata.update(config.metadata)
            self.opened += 1
            resume = [(*key, max(steps)) for key, steps in self.points.items() if steps]
            return RunHandle(experiment_id=1, created=created, resume=resume)

    def adopt(self, experiment_id: int) -> None:
        pass

    def submit(self, batch: Batch) -> Future[WriteResult]:
        future: Future[WriteResult] = Future()
        with self._lock:
            if self._failures:
                future.set_exception(self._failures.popleft())
                return future
            accepted = duplicates = 0
            duplicates_by_series: dict[str, int] = {}
            for key, columns in batch.items():
                stored = self.points.setdefault(key, {})
                for step, value in zip(columns.steps, columns.values, strict=True):
                    if step in stored:
                        duplicates += 1
                        duplicates_by_series[key[0]] = duplicates_by_series.get(key[0], 0) + 1
                    else:
                        stored[step] = value
                        accepted += 1
            self.batches.append(batch)
        future.set_result(WriteResult(accepted, duplicates, duplicates_by_series))
        return future

    def submit_spooled(self, batch: Batch, producer_id: str, sequence: int) -> Future[WriteResult]:
        return self.submit(batch)

    def set_status(self, status: str, error: ExperimentStatusError | None = None) -> None:
        self.status = status

    def close(self) -> None:
        pass

    def point_count(self) -> int:
        """Points stored, over every series."""
        with self._lock:
            return sum(len(steps) for steps in self.points.values())

    def values(self, metric: str) -> dict[int, float | int]:
        """``{step: value}`` of every series named ``metric`` (labels merged)."""
        with self._lock:
            merged: dict[int, float | int] = {}
            for key, steps in self.points.items():
                if key[0] == metric:
                    merged.update(steps)
            return merged
