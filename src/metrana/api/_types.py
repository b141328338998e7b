"""REST payload types, defined once and shared by ``metrana.Client`` and ``metrana serve``.

JSON cannot carry NaN or infinities, so a point value travels as a number or as one of the
strings ``"nan"``, ``"inf"``, ``"-inf"`` (see :func:`encode_value` / :func:`decode_value`).
"""

from __future__ import annotations

import math
from typing import Any, Generic, Literal, TypeVar

import msgspec

T = TypeVar("T")

PointValue = float | int | str
ExperimentStatus = Literal["running", "finished", "crashed", "failed", "cancelled"]
EXPERIMENT_STATUSES: tuple[str, ...] = ("running", "finished", "crashed", "failed", "cancelled")
Scale = Literal["ML_STEP", "EPISODE", "ENVIRONMENT_STEP"]


def encode_value(value: float | int) -> PointValue:
    """A point value as JSON can carry it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def decode_value(value: PointValue | None) -> float | int:
    """The inverse of :func:`encode_value` (None also reads as NaN)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)
    return value


class Page(msgspec.Struct, Generic[T]):
    """A list answer."""

    items: list[T]


class ApiErrorBody(msgspec.Struct):
    message: str
    details: str  # "code=<machine code>", as the Syvain API reads it


class ErrorResponse(msgspec.Struct):
    """Every non-2xx answer of the server."""

    error: ApiErrorBody


# -- auth ----------------------------------------------------------------------------------


class AuthKind(msgspec.Struct):
    kind: Literal["api_key", "ingestion_key"]


class Organization(msgspec.Struct):
    """The tenant a key belongs to: today a workspace (the data model of the Syvain API, where
    workspaces are folders of an organization, is the next step)."""

    id: str
    name: str | None = None


class AuthStatus(msgspec.Struct):
    """Who a key is: in the Syvain API's fields (``auth``, ``organization``) and Metrana's."""

    auth: AuthKind
    organization: Organization
    workspace_id: int
    workspace_name: str
    key_kind: Literal["api", "ingestion"]
    key_name: str
    experiment_id: int | None = None


# -- folders -------------------------------------------------------------------------------


class Folder(msgspec.Struct):
    id: int
    workspace_id: int
    parent_id: int | None
    name: str
    description: str
    path: list[str]
    created_ns: int


class FolderCreate(msgspec.Struct):
    name: str
    parent_id: int | None = None
    description: str = ""


class FolderPatch(msgspec.Struct):
    description: str | None = None


class FolderRename(msgspec.Struct):
    name: str


class FolderMove(msgspec.Struct):
    parent_id: int | None


# -- experiments ---------------------------------------------------------------------------


class Experiment(msgspec.Struct):
    id: int
    workspace_id: int
    folder_id: int
    name: str
    status: str
    description: str
    metadata: dict[str, Any]
    orchestration_id: str | None
    created_ns: int
    updated_ns: int


class ExperimentCreate(msgspec.Struct):
    folder_id: int
    name: str
    description: str = ""
    metadata: dict[str, Any] = {}
    status: ExperimentStatus = "running"


class ExperimentStatusUpdate(msgspec.Struct):
    status: ExperimentStatus


class ExperimentMove(msgspec.Struct):
    folder_id: int


# -- the run handshake (used by the dispatcher) ----------------------------------------------


class RunHandshakeRequest(msgspec.Struct):
    project_name: str
    run_name: str
    orchestration_id: str
    experiment_name: str | None = None
    resume_strategy: Literal["Allow", "Never"] = "Allow"
    # The workspace the job asked for; the API key's workspace must be it (None: the key's).
    workspace_name: str | None = None
    # init(config=...): merged into the experiment's metadata (shallow, these keys win)
    metadata: dict[str, Any] = {}


class SeriesLastStep(msgspec.Struct):
    metric_name: str
    scale: str
    labels: dict[str, str]
    last_step: int


class RunHandshakeResponse(msgspec.Struct):
    experiment_id: int
    created: bool
    resume: list[SeriesLastStep]


# -- metrics -------------------------------------------------------------------------------


class MetricPoint(msgspec.Struct, array_like=True):
    """One stored point: ``[step, value, timestamp_ns]`` on the wire."""

    step: int
    value: PointValue
    timestamp_ns: int


class MetricSeries(msgspec.Struct):
    metric_name: str
    scale: str
    labels: dict[str, str]
    points: list[MetricPoint]


class MetricList(msgspec.Struct):
    experiment_id: int
    series: list[MetricSeries]


class IngestMetric(msgspec.Struct):
    """One point sent through the JSON ingestion API; ``client_event_id`` makes it idempotent."""

    client_event_id: str
    metric_name: str
    value: PointValue
    step: int | None = None
    scale: Scale = "ML_STEP"
    labels: dict[str, str] = {}
    timestamp_ns: int | None = None


class IngestRequest(msgspec.Struct):
    metrics: list[IngestMetric]
    sync: bool = True


class IngestResult(msgspec.Struct):
    """Points stored now, and points already stored (same event id, or same series and step)."""

    accepted: int
    duplicates: int
    pacing_seconds: float = 0.0


class ComparisonMetricSeries(msgspec.Struct):
    """One series to compare: a metric of an experiment, optionally narrowed to the series
    whose label ``metadata_key`` equals ``metadata_value``."""

    experiment_id: int
    metric_name: str
    metadata_key: str | None = None
    metadata_value: str | None = None


class CompareRequest(msgspec.Struct):
    series: list[ComparisonMetricSeries]
    limit: int = 1000


class CompareRow(msgspec.Struct, array_like=True):
    """``[step, value of series 0, value of series 1, ...]``; null where a series has no point."""

    step: int
    values: list[PointValue | None]


class CompareResponse(msgspec.Struct):
    series: list[ComparisonMetricSeries]
    rows: list[CompareRow]


class MetricCatalogEntry(msgspec.Struct):
    metric_name: str
    scales: list[str]
    label_keys: list[str]
    experiments: int
    series: int


class MetricCatalogValues(msgspec.Struct):
    metric_name: str
    label_key: str
    values: list[str]


# -- ingestion keys --------------------------------------------------------------------------


DEFAULT_INGESTION_KEY_TTL_MS = 24 * 3600 * 1000  # a key minted without ttl_ms lives a day
MAX_INGESTION_KEY_TTL_MS = 7 * 24 * 3600 * 1000  # and none lives more than a week
KEY_RENEWAL_MARGIN_MS = 5 * 60 * 1000  # a key is renewed at most this long before it expires


def ttl_problem(ttl_ms: float) -> str | None:
    """What is wrong with an ingestion key lifetime, or None when it is accepted."""
    if 0 < ttl_ms <= MAX_INGESTION_KEY_TTL_MS:
        return None
    return f"ttl_ms must be > 0 and at most {MAX_INGESTION_KEY_TTL_MS} (7 days), not {ttl_ms}"


class IngestionKey(msgspec.Struct):
    id: int
    experiment_id: int
    name: str
    prefix: str
    created_ns: int
    revoked: bool
    expires_at_ms: int  # refused (401) from then on
    revoked_at_ms: int | None = None
    last_used_at_ms: int | None = None  # to the minute


class IngestionKeyCreate(msgspec.Struct):
    name: str = "default"
    # The key's lifetime: 0 < ttl_ms <= 7 days; the server's default (a day) if absent.
    ttl_ms: int | msgspec.UnsetType | None = msgspec.UNSET


class IngestionKeyCreated(msgspec.Struct):
    """The secret is shown once, here; the server keeps only its hash."""

    key: IngestionKey
    secret: str


# -- annotations -----------------------------------------------------------------------------


class Annotation(msgspec.Struct):
    id: int
    experiment_id: int
    text: str
    step: int | None
    timestamp_ns: int
    metadata: dict[str, Any]
    created_ns: int


class AnnotationCreate(msgspec.Struct):
    text: str
    step: int | None = None
    timestamp_ns: int | None = None
    metadata: dict[str, Any] = {}
