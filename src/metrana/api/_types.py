"""REST payload types, defined once and shared by ``metrana.Client`` and ``metrana serve``.

They are the models of the Syvain Metrics API (``docs/rest-client.md``), field for field: ids
are strings, times are Unix milliseconds (``*_ms``), and every answer is a wrapper object
(``{"experiment": ...}``, ``{"rows": [...]}``) inside the envelope ``{"data": ..., "error":
null}``. Metrana's additions are extra fields of answers (which the Syvain client allows), such
as ``scale`` on a row, and the dispatcher's run handshake at the end of this module.

Request types carry the API's bounds as ``msgspec.Meta`` constraints, so the server and the
client check them alike. JSON cannot carry NaN or infinities: an answer's metric value that is
one travels as the string ``"nan"``, ``"inf"`` or ``"-inf"`` (see :func:`encode_value`),
which the Syvain client reads as a float; ingested values must be finite, as the API says.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

PointValue = float | int | str
Scale = Literal["ML_STEP", "EPISODE", "ENVIRONMENT_STEP"]
ExperimentStatus = Literal["created", "running", "done", "error"]
TrackingStatus = Literal["running", "done", "error"]
MetricRowSortKey = Literal["step", "client_timestamp", "server_timestamp"]
ComparisonSortKey = Literal["step", "client_timestamp", "server_timestamp", "series"]
SortDirection = Literal["asc", "desc"]

MAX_INGEST_EVENTS = 1000  # metrics in one ingest_metrics request
DEFAULT_ROW_LIMIT = 1000  # rows of list_metrics / compare_metrics without a limit
MAX_ROW_LIMIT = 100_000  # and at most this many in one answer

NonNegative = Annotated[int, Meta(ge=0)]
Id = Annotated[str, Meta(min_length=1, max_length=40)]
FolderName = Annotated[str, Meta(min_length=1, max_length=200)]
Slug = Annotated[str, Meta(min_length=1, max_length=200)]
Json = dict[str, Any]


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


def non_finite_path(value: Any, path: str = "") -> str | None:
    """Where a JSON value holds a NaN or an infinity (``"metadata.a[2]"``), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "value")
    if isinstance(value, dict):
        for key, item in value.items():
            found = non_finite_path(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = non_finite_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


class ApiErrorBody(msgspec.Struct):
    message: str
    details: str  # "code=<machine code>", as the Syvain client reads it


class ErrorResponse(msgspec.Struct):
    """Every non-2xx answer of the server."""

    error: ApiErrorBody


# -- auth ----------------------------------------------------------------------------------


class AuthIdentity(msgspec.Struct):
    kind: Literal["api_key", "session", "ingestion_key"]


class Organization(msgspec.Struct):
    """The tenant every key, folder and experiment belongs to."""

    id: str
    name: str | None = None


class AuthStatusResponse(msgspec.Struct):
    """Who a key is. ``key_name`` and ``experiment_id`` (of an ingestion key) are Metrana's."""

    auth: AuthIdentity
    organization: Organization
    key_name: str | None = None
    experiment_id: str | None = None


# -- folders -------------------------------------------------------------------------------


class Folder(msgspec.Struct):
    folder_id: str
    org_id: str
    name: str
    parent_id_path: list[str]  # the ids of its ancestors, the top one first
    path_name: str  # "workspace/project/experiment": the names from the top, "/"-joined


class FolderCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: FolderName
    parent_id: Id | None = None


class FolderPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Rename and/or move (``parent_id`` null: to the top level); at least one field."""

    name: FolderName | UnsetType = UNSET
    parent_id: Id | UnsetType | None = UNSET


class FoldersResponse(msgspec.Struct):
    folders: list[Folder]


class FolderResponse(msgspec.Struct):
    folder: Folder


# -- experiments ---------------------------------------------------------------------------


class Experiment(msgspec.Struct, omit_defaults=True):
    id: str
    org_id: str
    folder: Folder | None
    url: str  # the experiment's page on this server's dashboard
    slug: str
    description: str
    metadata: Json
    status: ExperimentStatus
    error_name: str | None
    error_detail: str | None
    created_at_ms: int
    updated_at_ms: int
    started_at_ms: int | None
    done_at_ms: int | None
    last_heartbeat_at_ms: int | None
    last_event_at_ms: int | None
    orchestration_id: str | None = None  # Metrana's: the job that last opened the run


class FolderContentsResponse(msgspec.Struct):
    folder: Folder
    folders: list[Folder]
    experiments: list[Experiment]


class ExperimentCreate(msgspec.Struct, forbid_unknown_fields=True):
    slug: Slug
    description: Annotated[str, Meta(max_length=4000)] = ""
    metadata: Json = {}
    folder_id: Id | UnsetType | None = UNSET


class ExperimentStatusError(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(max_length=500)] = "Error"
    detail: Annotated[str, Meta(max_length=8000)] = ""


class ExperimentStatusUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    status: TrackingStatus
    error: ExperimentStatusError | None = None
    timestamp_ms: NonNegative | None = None


class ExperimentMove(msgspec.Struct, forbid_unknown_fields=True):
    folder_id: Id | None


class ExperimentsResponse(msgspec.Struct):
    experiments: list[Experiment]


class ExperimentResponse(msgspec.Struct):
    experiment: Experiment


# -- metrics -------------------------------------------------------------------------------


class MetricEventRow(msgspec.Struct):
    """One stored point. ``event_id`` is derived from (series, step), so a point has the same
    id whichever path stored it; ``scale`` is Metrana's."""

    event_id: str
    org_id: str
    experiment_id: str
    experiment_slug: str
    metric_name: str
    metric_value: PointValue
    step: int | None
    event_metadata_json: str
    client_timestamp_ms: int
    server_timestamp_ms: int
    scale: str
    experiment_description: str | None = None
    experiment_metadata_json: str | None = None


class RowsResponse(msgspec.Struct):
    rows: list[MetricEventRow]


class MetricCreateInput(
    msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True
):
    """One event of ``ingest_metrics``. A null ``step`` takes the series' next step at
    ingestion; ``scale`` is Metrana's (``ML_STEP`` when absent). The clients always send a
    ``client_event_id``; the server also takes events without one, as the Syvain collector
    sends them, which are then told apart by (series, step) alone."""

    client_event_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    name: Annotated[str, Meta(min_length=1, max_length=500)]
    value: float
    step: NonNegative | None
    metadata: Json = {}
    timestamp_ms: NonNegative | None = None
    scale: Scale = "ML_STEP"


class IngestCreate(msgspec.Struct, forbid_unknown_fields=True):
    data: Annotated[list[MetricCreateInput], Meta(max_length=MAX_INGEST_EVENTS)]


class IngestResponse(msgspec.Struct):
    """``ok``/``mode`` are the API's; the counts and the pacing hint are Metrana's: events
    stored now, and events already stored (same ``client_event_id``, or same series and
    step)."""

    ok: Literal[True]
    mode: Literal["sync", "queued"]
    accepted: int = 0
    duplicates: int = 0
    pacing_seconds: float = 0.0


class ComparisonMetricSeries(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One series of ``compare_metrics``: a metric of an experiment, optionally only its events
    whose metadata ``metadata_key`` is ``metadata_value`` (compared as text) or
    ``metadata_value_json`` (compared as JSON)."""

    experiment_id: Id
    metric_name: Annotated[str, Meta(min_length=1)]
    metadata_key: Annotated[str, Meta(min_length=1)] | None = None
    metadata_value: str | None = None
    metadata_value_json: str | None = None

    def __post_init__(self) -> None:
        """The Syvain client's rules, on construction and when decoded."""
        if self.metadata_key is None and (
            self.metadata_value is not None or self.metadata_value_json is not None
        ):
            raise ValueError("metadata_key is required when filtering by metadata value.")
        if self.metadata_value is not None and self.metadata_value_json is not None:
            raise ValueError("Provide only one of metadata_value or metadata_value_json.")
        if self.metadata_value_json is not None:
            try:
                msgspec.json.decode(self.metadata_value_json)
            except msgspec.DecodeError:
                raise ValueError("metadata_value_json must be valid JSON.") from None


class MetricCatalogItem(msgspec.Struct):
    metric_name: str
    metadata_keys: list[str]


class MetricCatalogResponse(msgspec.Struct):
    metrics: list[MetricCatalogItem]


class MetricCatalogMetadataValue(msgspec.Struct):
    key: str
    values: list[Any]
    value_count: int


class MetricCatalogValues(msgspec.Struct):
    metric_name: str
    scanned_event_count: int
    keys: list[MetricCatalogMetadataValue]


class MetricCatalogValuesResponse(msgspec.Struct):
    metadata: MetricCatalogValues


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
    """``prefix`` (the key's first 12 characters, to recognise it) is Metrana's."""

    id: str
    experiment_id: str
    name: str
    created_at_ms: int
    expires_at_ms: int  # refused (401) from then on
    revoked_at_ms: int | None
    last_used_at_ms: int | None  # to the minute
    prefix: str


class IngestionKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] = "SDK ingestion key"
    # The key's lifetime: 0 < ttl_ms <= 7 days; the server's default (a day) if absent.
    ttl_ms: Annotated[int, Meta(gt=0, le=MAX_INGESTION_KEY_TTL_MS)] | None = None


class IngestionKeyCreateResponse(msgspec.Struct):
    """The token is shown once, here; the server keeps only its hash."""

    key: IngestionKey
    token: str


class IngestionKeyResponse(msgspec.Struct):
    key: IngestionKey


class IngestionKeysResponse(msgspec.Struct):
    keys: list[IngestionKey]


# -- annotations -----------------------------------------------------------------------------


class Annotation(msgspec.Struct):
    id: str
    experiment_id: str
    annotation: str
    metadata: Json
    created_at_ms: int


class AnnotationCreate(msgspec.Struct, forbid_unknown_fields=True):
    annotation: Annotated[str, Meta(min_length=1, max_length=16_000)]
    metadata: Json = {}


class AnnotationsResponse(msgspec.Struct):
    annotations: list[Annotation]


class ExperimentAnnotationResponse(msgspec.Struct):
    experiment: Experiment
    annotation: Annotation


# -- the run handshake (Metrana's: used by the dispatcher) -----------------------------------


class RunHandshakeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Create or resume the experiment ``run_name`` in folder
    ``workspace_name/project_name[/experiment_name]`` of the key's organization (the folders
    are created on demand). ``metadata`` (the run's config) is merged into the experiment's,
    its keys replacing those already there."""

    workspace_name: Annotated[str, Meta(min_length=1, max_length=200)]
    project_name: Annotated[str, Meta(min_length=1, max_length=200)]
    run_name: Slug
    orchestration_id: Annotated[str, Meta(min_length=1, max_length=200)]
    experiment_name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    resume_strategy: Literal["Allow", "Never"] = "Allow"
    metadata: Json = {}


class SeriesLastStep(msgspec.Struct):
    metric_name: str
    scale: str
    labels: dict[str, str]
    last_step: int


class RunHandshakeResponse(msgspec.Struct):
    experiment: Experiment
    created: bool
    resume: list[SeriesLastStep]


# -- query parameters -------------------------------------------------------------------------
# Decoded from the query string with ``msgspec.convert(..., strict=False)``: "10" reads as 10,
# "true" as True; a list field gathers the repeated parameter. ``sort_by`` is comma-joined.


class ListFoldersQuery(msgspec.Struct, forbid_unknown_fields=True):
    path: str | None = None  # only the folder whose path_name this is ("a/b")


class ListExperimentsQuery(msgspec.Struct, forbid_unknown_fields=True):
    status: ExperimentStatus | None = None
    slug: str | None = None
    search: str | None = None  # in the slug or the description, ignoring case
    from_ms: NonNegative | None = msgspec.field(default=None, name="from")  # created at/after
    to_ms: NonNegative | None = msgspec.field(default=None, name="to")  # created before
    limit: NonNegative | None = None


class RowFilters(msgspec.Struct, forbid_unknown_fields=True):
    """What ``list_metrics`` and ``compare_metrics`` share: step and time ranges (inclusive,
    times in ms of the client timestamp), order and limit."""

    step: NonNegative | None = None
    from_step: NonNegative | None = None
    to_step: NonNegative | None = None
    from_time: NonNegative | None = None
    to_time: NonNegative | None = None
    sort_by: str | None = None
    sort_direction: SortDirection | None = None
    limit: NonNegative | None = None
    include_experiment_meta_as_of: bool | None = None


class ListMetricsQuery(RowFilters, forbid_unknown_fields=True):
    metric_name: str | None = None
    metadata_key: str | None = None
    metadata_value: str | None = None
    metadata_value_json: str | None = None


class CompareQuery(RowFilters, forbid_unknown_fields=True):
    series: list[str] = []  # one compact JSON ComparisonMetricSeries each


class IngestQuery(msgspec.Struct, forbid_unknown_fields=True):
    sync: bool | None = None


class CatalogQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: NonNegative | None = None


class CatalogValuesQuery(msgspec.Struct, forbid_unknown_fields=True):
    key: list[str] = []
    limit: NonNegative | None = None


class ListAnnotationsQuery(msgspec.Struct, forbid_unknown_fields=True):
    from_ms: NonNegative | None = msgspec.field(default=None, name="from")
    to_ms: NonNegative | None = msgspec.field(default=None, name="to")
    limit: NonNegative | None = None
