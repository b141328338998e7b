"""The embedded target: the dispatcher writes into the SQLite store under ``METRANA_HOME``."""

from __future__ import annotations

from concurrent.futures import Future

from ..._config import Config
from ..._enums import ResumeStrategy
from ..._errors import MetranaRunExistsError
from ...api._types import ExperimentStatusError
from ...storage import RunHandle, StorageError, StorageRunExistsError, WriteResult, open_store
from ._base import Batch, DeliveryFailure

__all__ = ["EmbeddedTarget"]


class EmbeddedTarget:
    """Writes straight into the SQLite store under ``METRANA_HOME`` (acknowledged = committed)."""

    max_inflight = 1
    offline = False

    def __init__(self, path: str) -> None:
        self.store = open_store(path)
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
                metadata=config.metadata,
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

    def set_status(self, status: str, error: ExperimentStatusError | None = None) -> None:
        self.store.set_status(self.experiment_id, status, error)

    def close(self) -> None:
        self.store.close()
