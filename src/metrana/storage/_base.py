"""Types of the storage layer: what goes in and what comes out, whatever the engine."""

from __future__ import annotations

from typing import Any

import msgspec

from .._identity import SeriesColumns, SeriesKey

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
    "StorageError",
    "StorageRunExistsError",
    "WriteResult",
]


class WriteResult(msgspec.Struct):
    """What a batch did: points stored now, and points whose (series, step) was already stored."""

    accepted: int
    duplicates: int
    duplicates_by_series: dict[str, int] = {}
    rejected: int = 0  # refused for good: a part of a batch split after a 413 (HTTP)


class RunHandle(msgspec.Struct):
    """The answer to opening a run: its experiment id and the last stored step per series."""

    experiment_id: int
    created: bool
    resume: list[tuple[str, str, str, int]]


class RunSummary(msgspec.Struct):
    """An experiment, named as ``metrana.init()`` addresses it: its folder path is
    ``workspace/project[/experiment_name]`` and its slug the ``run_name``."""

    experiment_id: int
    organization: str
    workspace: str
    project: str
    experiment_name: str | None
    run_name: str
    status: str
    series: int
    points: int


class PointRow(msgspec.Struct, array_like=True):
    metric: str
    scale: str
    labels: dict[str, Any]  # the events' metadata: log()'s labels are its string case
    step: int
    value: float | int
    timestamp_ns: int


class StorageError(Exception):
    """The storage engine failed; the message says how."""


class StorageRunExistsError(StorageError):
    """The run exists, belongs to another job, and the resume policy is Never."""


class InProgressError(StorageError):
    """A request with the same Idempotency-Key is still being acted on: retry it shortly to
    get its answer."""


class NotFoundError(StorageError):
    """The object does not exist (or is not visible to the caller's organization)."""


class ConflictError(StorageError):
    """The change contradicts what is stored (a duplicate name, a folder moved into itself)."""


class InvalidRequestError(StorageError):
    """The request is well-formed but asks for something that cannot be answered."""


class Principal(msgspec.Struct, frozen=True):
    """Who a presented key is: an organization's API key, or an experiment's ingestion key."""

    kind: str  # "api" or "ingestion"
    key_id: int
    key_name: str
    org_id: int
    org_name: str
    experiment_id: int | None = None


class ApiKeyInfo(msgspec.Struct):
    id: int
    organization: str
    name: str
    prefix: str
    created_ns: int
    revoked: bool
