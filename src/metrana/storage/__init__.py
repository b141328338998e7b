"""The storage layer shared by the embedded store (written by the dispatcher) and the server."""

from ._base import (
    ApiKeyInfo,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PointRow,
    Principal,
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
    "ApiKeyInfo",
    "ConflictError",
    "InvalidRequestError",
    "NotFoundError",
    "PointRow",
    "Principal",
    "RunHandle",
    "RunSummary",
    "SeriesColumns",
    "SeriesKey",
    "SqliteStore",
    "StorageError",
    "StorageRunExistsError",
    "WriteResult",
]
