"""Where the dispatcher delivers: the target interface and the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from typing import Protocol

from .._config import Config
from .._enums import ResumeStrategy
from .._errors import MetranaRunExistsError
from ..storage import (
    RunHandle,
    SeriesColumns,
    SeriesKey,
    SqliteStore,
    StorageError,
    StorageRunExistsError,
    WriteResult,
)


class DeliveryFailure(Exception):
    """A batch could not be delivered now; the dispatcher re-reads and retries it later."""


class RejectedBatch(DeliveryFailure):
    """The target refused the batch itself for good; it is dropped and counted, not retried."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Target(Protocol):
    """A delivery target: opens the run, stores batches idempotently, closes the run."""

    max_inflight: int

    def open_run(self, config: Config) -> RunHandle: ...

    def submit(self, batch: Mapping[SeriesKey, SeriesColumns]) -> Future[WriteResult]:
        """Start delivering a batch; the future fails with DeliveryFailure if it could not."""
        ...

    def set_status(self, status: str) -> None: ...

    def close(self) -> None: ...


class EmbeddedTarget:
    """Writes straight into the SQLite store under ``METRANA_HOME`` (acknowledged = committed)."""

    max_inflight = 1

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

    def submit(self, batch: Mapping[SeriesKey, SeriesColumns]) -> Future[WriteResult]:
        """Write in this thread: the future is done when the transaction committed."""
        future: Future[WriteResult] = Future()
        try:
            future.set_result(self.store.write_points(self.experiment_id, batch))
        except StorageError as error:
            future.set_exception(DeliveryFailure(str(error)))
        return future

    def set_status(self, status: str) -> None:
        self.store.set_status(self.experiment_id, status)

    def close(self) -> None:
        self.store.close()


def make_target(config: Config) -> Target:
    """The target named by the configuration."""
    if config.is_embedded:
        return EmbeddedTarget(config.store_path)
    from ._http import HttpTarget

    return HttpTarget(config)
