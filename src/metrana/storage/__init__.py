"""The storage layer shared by the embedded store (written by the dispatcher) and the server."""

from ._base import (
    ApiKeyInfo,
    ConflictError,
    InProgressError,
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
from ._open import is_database_url, open_store
from ._sqlite import SqliteStore
from ._store import Store

__all__ = [
    "ApiKeyInfo",
    "ConflictError",
    "InProgressError",
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
    "Store",
    "WriteResult",
    "is_database_url",
    "open_store",
]
