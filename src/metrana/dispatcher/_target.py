"""Where the dispatcher delivers: the target interface and the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from .._config import Config
from .._enums import ResumeStrategy
from .._errors import MetranaRunExistsError
from ..storage import (
    RunHandle,
    SeriesColumns,
    SeriesKey,
    SqliteStore,
    StorageRunExistsError,
    WriteResult,
)


class Target(Protocol):
    """A delivery target: opens the run, stores batches idempotently, closes the run."""

    def open_run(self, config: Config) -> RunHandle: ...

    def write(self, batch: Mapping[SeriesKey, SeriesColumns]) -> WriteResult: ...

    def set_status(self, status: str) -> None: ...

    def close(self) -> None: ...


class EmbeddedTarget:
    """Writes straight into the SQLite store under ``METRANA_HOME`` (acknowledged = committed)."""

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

    def write(self, batch: Mapping[SeriesKey, SeriesColumns]) -> WriteResult:
        return self.store.write_points(self.experiment_id, batch)

    def set_status(self, status: str) -> None:
        self.store.set_status(self.experiment_id, status)

    def close(self) -> None:
        self.store.close()


def make_target(config: Config) -> Target:
    """The target named by the configuration."""
    if config.is_embedded:
        return EmbeddedTarget(config.store_path)
    raise NotImplementedError(f"ingestion target {config.ingestion_url!r} is not supported yet")
