"""``ingestion_url="offline"``: every batch goes to the spool, for ``metrana sync`` later."""

from __future__ import annotations

from concurrent.futures import Future

from ..._config import Config
from ...api._types import ExperimentStatusError
from ...storage import RunHandle, WriteResult
from ._base import Batch, DeliveryFailure

__all__ = ["OfflineTarget"]


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

    def set_status(self, status: str, error: ExperimentStatusError | None = None) -> None:
        pass

    def close(self) -> None:
        pass
