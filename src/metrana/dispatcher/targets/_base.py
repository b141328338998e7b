"""What a delivery target is, and how a delivery fails."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Protocol

from ..._config import Config
from ..._identity import SeriesColumns, SeriesKey
from ...api._types import ExperimentStatusError
from ...storage import RunHandle, WriteResult

__all__ = ["Batch", "DeliveryFailure", "RejectedBatch", "Target"]

Batch = Mapping[SeriesKey, SeriesColumns]


class DeliveryFailure(Exception):
    """A batch could not be delivered now: the dispatcher spools it, or re-reads it from the
    rings and retries it later.

    ``undelivered`` gives the batch back: a target may keep only its encoding while it is
    in flight, and rebuild the columns for the spool when it fails."""

    def __init__(self, message: str, undelivered: Callable[[], Batch] | None = None) -> None:
        super().__init__(message)
        self.undelivered = undelivered


class RejectedBatch(DeliveryFailure):
    """The target refused the batch itself for good; it is dropped and counted, not retried."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Target(Protocol):
    """A delivery target: opens the run, stores batches idempotently, closes the run."""

    max_inflight: int
    offline: bool

    def open_run(self, config: Config) -> RunHandle: ...

    def adopt(self, experiment_id: int) -> None:
        """Carry on with a run opened by a previous dispatcher (the target was unreachable);
        the run is opened again before the first delivery."""
        ...

    def submit_spooled(self, batch: Batch, producer_id: str, sequence: int) -> Future[WriteResult]:
        """Deliver a batch replayed from the spool under its own stable identity."""
        ...

    def submit(self, batch: Batch) -> Future[WriteResult]:
        """Start delivering a batch; the future fails with a DeliveryFailure whose
        ``undelivered`` gives the batch back if it could not."""
        ...

    def set_status(self, status: str, error: ExperimentStatusError | None = None) -> None:
        """End the run: ``done``, or ``error`` with its name and detail."""
        ...

    def close(self) -> None: ...
