"""The storage layer shared by the embedded store (written by the dispatcher) and the server."""

from ._base import (
    ExperimentRow,
    PointRow,
    RunHandle,
    RunSummary,
    SeriesColumns,
    SeriesKey,
    StorageError,
    StorageRunExistsError,
    WriteResult,
)
from ._sqlite import SqliteStore

__all__ = [
    "ExperimentRow",
    "PointRow",
    "RunHandle",
    "RunSummary",
    "SeriesColumns",
    "SeriesKey",
    "SqliteStore",
    "StorageError",
    "StorageRunExistsError",
    "WriteResult",
]
