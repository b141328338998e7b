"""Where the dispatcher delivers: the target interface and the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Protocol

from .._config import OFFLINE, Config
from .._enums import ResumeStrategy
from .._errors import MetranaDispatcherError, MetranaRunExistsError
from ..storage import (
    RunHandle,
    SeriesColumns,
    SeriesKey,
    SqliteStore,
    StorageError,
    StorageRunExistsError,
    WriteResult,
)

Batch = Mapping[SeriesKey, SeriesColumns]


class DeliveryFailure(Exception):
    """A batch could not be delivered now: the dispatcher spools it, or re-reads it from the
    rings and retries it later.

    ``undelivered`` gives the batch back: a target may keep only its encoding while it is
    in flight, and rebuild the columns for the spool when it fails."""

    def __init__(self, message: str, undelivered: Callable[[], Batch] | None = None) -> None:
        super().__init__(message)
        self.undelivered = undelivered


class TargetUnreachable(MetranaDispatcherError):
    """The run could not be opened because the target did not answer (not because it said
    no): a replacement dispatcher may carry on with its predecessor's run."""


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

    def set_status(self, status: str) -> None: ...

    def close(self) -> None: ...


class EmbeddedTarget:
    """Writes straight into the SQLite store under ``METRANA_HOME`` (acknowledged = committed)."""

    max_inflight = 1
    offline = False

    def __init__(self, path: str) -> None:
        self.store = SqliteStore(path)
        self.experiment_id = 0

    def open_run(self, config: Config) -> RunHandle:
        run = config.run
        try:
            handle = self.store.open_run(
                run.workspace_name,
                run.project_name,
                run.experiment_name,
                run.run_name,
                config.orchestration_id,
                allow_resume=config.resume_strategy is ResumeStrategy.ALLOW,
            )
        except StorageRunExistsError as error:
            raise MetranaRunExistsError(str(error)) from error
        self.experiment_id = handle.experiment_id
        return handle

    def adopt(self, experiment_id: int) -> None:
        self.experiment_id = experiment_id

    def submit(self, batch: Batch) -> Future[WriteResult]:
        """Write in this thread: the future is done when the transaction committed."""
        future: Future[WriteResult] = Future()
        try:
            future.set_result(self.store.write_points(self.experiment_id, batch))
        except StorageError as error:
            future.set_exception(DeliveryFailure(str(error), lambda: batch))
        return future

    def submit_spooled(self, batch: Batch, producer_id: str, sequence: int) -> Future[WriteResult]:
        return self.submit(batch)

    def set_status(self, status: str) -> None:
        self.store.set_status(self.experiment_id, status)

    def close(self) -> None:
        self.store.close()


def make_target(config: Config) -> Target:
    """The target named by the configuration."""
    if config.is_embedded:
        return EmbeddedTarget(config.store_path)
    if config.ingestion_url == OFFLINE:
        return OfflineTarget()
    from ._http import HttpTarget

    return HttpTarget(config)


class OfflineTarget:
    """``ingestion_url="offline"``: everything goes to the spool, for ``metrana sync`` later."""

    max_inflight = 1
    offline = True

    def open_run(self, config: Config) -> RunHandle:
        return RunHandle(experiment_id=0, created=True, resume=[])

    def adopt(self, experiment_id: int) -> None:
        pass

    def submit(self, batch: Batch) -> Future[WriteResult]:
        future: Future[WriteResult] = Future()
        future.set_exception(DeliveryFailure("offline: batches go to the spool", lambda: batch))
        return future

    def submit_spooled(self, batch: Batch, producer_id: str, sequence: int) -> Future[WriteResult]:
        return self.submit(batch)

    def set_status(self, status: str) -> None:
        pass

    def close(self) -> None:
        pass
